/**
 * Long-prompt prefill (issue 16): prefill tok/s at 1k and 8k tokens, in RAM and under a memory
 * cap, spool against llama.cpp in the same run.
 *
 *   deno run -A bench/prefill.ts [--model FILE] [--lens 1024,8192] [--chunks 64,1024]
 *                                [--cap 4G] [--no-cap] [--llama-capped 1024] [--threads 2]
 *                                [--timeout 600]
 *
 * The model defaults to bench/out/qwen3-30b-a3b-q4km.gguf (9.5 GB; made with `spool synth` if
 * missing). Each run is a fresh process; the two sides alternate, 10 s apart (see
 * bench/families.ts for why).
 *  - In RAM: llama.cpp's `llama-bench -p N -n 0` (its defaults: repacked weights, n_batch 2048,
 *    n_ubatch 512), and spool after a 64-token warm-up, the prompt evaluated in chunks of each
 *    `--chunks` size (the server's scheduler takes 128 prompt tokens a step, which its shared
 *    step buffers run as two waves of 64 rows; an offline `spool run` or a batch job can take
 *    larger ones).
 *  - Under the cap (root, cgroup v1, cold page cache): spool with its defaults (the budget sees
 *    the cap) in the same chunk sizes, and `llama-batched-bench --no-repack` (mmap, paging by
 *    faults: its best setting there), the latter only at the `--llama-capped` lengths (at
 *    about 1 tok/s an 8k prompt takes hours). A run past `--timeout` seconds is reported as a
 *    bound.
 * Each chunk is one step: every expert its tokens route to is read once for all of them
 * (expert-major), so larger chunks amortize the reads.
 */
import { parseArgs } from "node:util";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseSize } from "../runtime/experts/budget.ts";
import { peakText, runCapped } from "./_cgroup.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string" },
    lens: { type: "string", default: "1024,8192" },
    chunks: { type: "string", default: "64,1024" },
    "llama-capped": { type: "string", default: "1024" },
    cap: { type: "string", default: "4G" },
    "no-cap": { type: "boolean", default: false },
    threads: { type: "string", default: "2" },
    timeout: { type: "string", default: "600" },
  },
});
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const model = a.model ?? `${ROOT}bench/out/qwen3-30b-a3b-q4km.gguf`;
const T = a.threads!, timeout = Number(a.timeout);
const lens = a.lens!.split(",").map(Number), chunks = a.chunks!.split(",").map(Number);

if (!existsSync(model)) {
  console.log(`making ${model} (random weights, Qwen3-30B-A3B shape, Q4_K_M)...`);
  mkdirSync(`${ROOT}bench/out`, { recursive: true });
  const { writeSyntheticModel } = await import("../runtime/models/synth.ts");
  writeSyntheticModel(model, { arch: "qwen3moe", preset: "qwen3-30b-a3b", fill: "fast", seed: 1 });
}
const bin = (() => {
  const out = new Deno.Command("bash", { args: [`${ROOT}bench/build_llama.sh`] }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).slice(-2000));
  return new TextDecoder().decode(out.stdout).trim();
})();
const settle = () => new Promise((r) => setTimeout(r, 10_000));

/** The spool side: one process, prints {tokS, hit?, readGB?}. */
function spoolArgs(n: number, chunk: number): string[] {
  const code = `
    const { Model } = await import(${JSON.stringify(`${ROOT}runtime/engine/model.ts`)});
    const { Session } = await import(${JSON.stringify(`${ROOT}runtime/engine/session.ts`)});
    const { benchPrompt } = await import(${JSON.stringify(`${ROOT}runtime/engine/bench.ts`)});
    const model = Model.load(${JSON.stringify(model)}, { threads: ${T}, ramBudget: "auto" });
    const warm = new Session(model, { nCtx: 128, batch: 64 });
    warm.eval(benchPrompt(64, model.config.nVocab, 7), "last");
    warm.close();
    const s = new Session(model, { nCtx: ${n} + 16, batch: ${chunk} });
    const c0 = model.expertCache?.stats();
    const t0 = performance.now();
    s.eval(benchPrompt(${n}, model.config.nVocab, 99), "last");
    const secs = (performance.now() - t0) / 1000;
    const c1 = model.expertCache?.stats();
    const out = { tokS: ${n} / secs, secs };
    if (c0 && c1) {
      const h = c1.hits - c0.hits, m = c1.misses - c0.misses;
      Object.assign(out, { hit: h / Math.max(1, h + m), readGB: (c1.bytesRead - c0.bytesRead) / 1e9,
        readGBps: (c1.bytesRead - c0.bytesRead) / Math.max(1e-9, c1.readSeconds - c0.readSeconds) / 1e9 });
    }
    console.log(JSON.stringify(out));
    s.close(); model.close();`;
  return [Deno.execPath(), "eval", code];
}

function run(argv: string[]): Record<string, number> {
  const out = new Deno.Command(argv[0], { args: argv.slice(1) }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).slice(-1000));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
}

function llamaBench(n: number): number {
  const out = new Deno.Command(`${bin}/llama-bench`, {
    args: ["-m", model, "-p", String(n), "-n", "0", "-t", T, "-r", "1", "-o", "jsonl"],
  }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).slice(-1000));
  const line = new TextDecoder().decode(out.stdout).split("\n").find((l) => l.startsWith("{"));
  return JSON.parse(line!).avg_ts;
}

const f2 = (x: number) => x.toFixed(2);
console.log(`${model}; threads ${T}; one run per cell, alternating`);
console.log("\n| where | prompt | llama.cpp tok/s | spool tok/s, chunk → | spool / llama.cpp |");
console.log("|---|---|---|---|---|");
for (const n of lens) {
  const ll = llamaBench(n);
  await settle();
  const sp: string[] = [];
  let best = 0;
  for (const c of chunks) {
    const r = run(spoolArgs(n, Math.min(c, n)));
    best = Math.max(best, r.tokS);
    sp.push(`${c}: ${f2(r.tokS)}`);
    await settle();
  }
  console.log(`| in RAM | ${n} | ${f2(ll)} | ${sp.join(", ")} | ${f2(best / ll)} |`);
}
if (!a["no-cap"]) {
  const cap = parseSize(a.cap!, "--cap") as number;
  for (const n of lens) {
    const sp: string[] = [];
    let best = 0;
    for (const c of chunks) {
      const o = await runCapped(cap, spoolArgs(n, Math.min(c, n)), timeout);
      const r = o.result;
      if (o.ok && r) {
        best = Math.max(best, Number(r.tokS));
        sp.push(
          `${c}: ${f2(Number(r.tokS))} (hit ${f2(Number(r.hit))}, read ${
            f2(Number(r.readGB))
          } GB at ${f2(Number(r.readGBps))} GB/s, peak ${peakText(o)})`,
        );
      } else sp.push(`${c}: ${o.error ?? "failed"}`);
    }
    if (!a["llama-capped"]!.split(",").map(Number).includes(n)) {
      console.log(`| ${a.cap} cap | ${n} | not run | ${sp.join(", ")} | |`);
      continue;
    }
    const t0 = performance.now();
    const lo = await runCapped(cap, [
      `${bin}/llama-batched-bench`,
      ...["-m", model, "-c", String(n + 16), "-b", "2048", "-ub", "512"],
      ...["-npp", String(n), "-ntg", "1", "-npl", "1", "-t", T, "--no-repack"],
      ...["--output-format", "jsonl"],
    ], timeout);
    const secs = (performance.now() - t0) / 1000;
    const ll = lo.ok ? Number(lo.result!.speed_pp) : 0;
    const lt = lo.ok
      ? f2(ll)
      : `< ${f2(n / secs)} (${lo.error ?? "failed"} after ${secs.toFixed(0)} s)`;
    const ratio = lo.ok ? f2(best / ll) : `> ${f2(best / (n / secs))}`;
    console.log(`| ${a.cap} cap | ${n} | ${lt} | ${sp.join(", ")} | ${ratio} |`);
  }
}
