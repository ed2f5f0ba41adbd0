/**
 * Offload benchmark (issue 4): a model larger than the RAM it is given, spool against
 * llama.cpp (node-llama-cpp) in the same run, under memory caps (cgroup v1, DESIGN.md §7).
 *
 *   deno run -A bench/offload.ts [--model FILE] [--caps 4G,6G] [--decode 16] [--prompts 4]
 *                                [--prompt-len 16] [--threads 2] [--llama-decode 3]
 *                                [--no-llama] [--prefetch auto,on,off]
 *
 * Needs root (it creates a memory cgroup and drops the page cache before each run). The
 * model defaults to bench/out/qwen3-30b-a3b-q4km.gguf (9.5 GB; made with `spool synth` if
 * missing). For each cap, each side runs in a fresh process inside the cgroup after
 * `drop_caches`, so every run starts cold:
 *   - spool with its defaults (`ramBudget: "auto"` detects the cgroup limit), decoding
 *     with sampled tokens (temperature 1, fixed seeds) after each of several different prompts (so the cache hit rate is that of
 *     new text, not of a repeated prompt), with the next-layer predictor on and off;
 *   - llama.cpp through node-llama-cpp with its defaults (mmap; the prebuilt library has no
 *     switch for repacking), one prompt.
 * Printed per cap: time to first token, decode tok/s, hit rate, bytes read per token, read
 * GB/s, stall per token, predictor precision and recall, the cgroup's peak usage; the
 * ceiling min(BW / bytes read per token, compute bound), where bytes read per token is
 * (1 − h)·L·k·S without prefetch (h observed), BW is the disk bandwidth measured in this run
 * (O_DIRECT, 1 MiB random requests, 4 and 8 in flight) or the run's own read bandwidth, and
 * the compute bound is the same decode with every weight in RAM, measured in this run;
 * spool over its ceiling, and spool over llama.cpp.
 */
import { parseArgs } from "node:util";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { measureDiskBandwidth } from "../runtime/experts/pager.ts";
import { readGGUF } from "../runtime/gguf/reader.ts";
import { inspectGGUF } from "../runtime/inspect.ts";
import { parseSize } from "../runtime/experts/budget.ts";
import { dropCaches, type Outcome, peakText, runCapped } from "./_cgroup.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string" },
    caps: { type: "string", default: "4G,6G" },
    decode: { type: "string", default: "16" },
    prompts: { type: "string", default: "4" },
    "prompt-len": { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    "llama-decode": { type: "string", default: "3" },
    "no-llama": { type: "boolean", default: false },
    "no-compute": { type: "boolean", default: false },
    prefetch: { type: "string", default: "auto,on,off" },
  },
});

const model = a.model ?? fileURLToPath(new URL("./out/qwen3-30b-a3b-q4km.gguf", import.meta.url));
const WORKER = fileURLToPath(new URL("./_offload_worker.ts", import.meta.url));

if (!existsSync(model)) {
  console.log(`making ${model} (random weights, Qwen3-30B-A3B shape, Q4_K_M; about 30 s)...`);
  mkdirSync(fileURLToPath(new URL("./out/", import.meta.url)), { recursive: true });
  const { writeSyntheticModel } = await import("../runtime/models/synth.ts");
  writeSyntheticModel(model, { arch: "qwen3moe", preset: "qwen3-30b-a3b", fill: "fast", seed: 1 });
}

const report = inspectGGUF(readGGUF(model), model);
const perTokenAll = report.expertBytesPerToken;

// ---- the disk, measured now
console.log(`model: ${model} (${(report.fileSize / 1e9).toFixed(2)} GB)`);
console.log(
  `per token at hit rate 0: ${(perTokenAll / 1e9).toFixed(3)} GB of experts ` +
    `(${report.moeLayers * report.expertUsedCount} experts of ${
      (report.bytesPerExpert / 1e6).toFixed(2)
    } MB)`,
);
dropCaches();
const disk = measureDiskBandwidth(model, {
  depths: [4, 8],
  requestBytes: 1 << 20,
  seconds: 2,
  rounds: 1,
});
const diskGBps = Math.max(...disk.rows.map((r) => r.gbps));

// the compute bound: the same decode with every weight in RAM (uncapped, page cache warm;
// the first of the worker's prompts warms it)
let computeTokS = Infinity;
if (!a["no-compute"]) {
  console.log("compute bound: uncapped, mapped, warm...");
  new Deno.Command("dd", { args: [`if=${model}`, "of=/dev/null", "bs=8M"], stderr: "null" })
    .outputSync();
  const c = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      WORKER,
      "spool",
      model,
      a.decode!,
      "3",
      a["prompt-len"]!,
      a.threads!,
      "off",
    ],
    stdout: "piped",
    stderr: "inherit",
    env: { SPOOL_BENCH_SKIP_FIRST: "1" },
  }).outputSync();
  const line = new TextDecoder().decode(c.stdout).trim().split("\n").pop() ?? "";
  if (line.startsWith("{")) computeTokS = Number(JSON.parse(line).decodeTokS);
  console.log(`   ${computeTokS.toFixed(2)} tok/s`);
}
console.log(
  `disk (O_DIRECT, 1 MiB random reads): ` +
    disk.rows.map((r) => `${r.depth} in flight ${r.gbps.toFixed(2)} GB/s`).join(", "),
);

const D = a.decode!, P = a.prompts!, PL = a["prompt-len"]!, T = a.threads!;
const deno = Deno.execPath();
const rows: string[][] = [];
const prefetchModes = a.prefetch!.split(",");
for (const capText of a.caps!.split(",")) {
  const cap = parseSize(capText) as number;
  const gb = (cap / 2 ** 30).toFixed(0) + " GiB";
  const spool: Record<string, Outcome> = {};
  for (const pf of prefetchModes) {
    console.log(`[${gb}] spool, prefetch ${pf}...`);
    spool[pf] = await runCapped(cap, [deno, "run", "-A", WORKER, "spool", model, D, P, PL, T, pf]);
    console.log("  ", JSON.stringify(spool[pf].result ?? spool[pf].error));
  }
  let llama: Outcome | undefined;
  if (!a["no-llama"]) {
    console.log(`[${gb}] llama.cpp (node-llama-cpp)...`);
    llama = await runCapped(cap, [
      deno,
      "run",
      "-A",
      WORKER,
      "llama",
      model,
      a["llama-decode"]!,
      PL,
      T,
    ]);
    console.log("  ", JSON.stringify(llama.result ?? llama.error));
  }
  const lt = llama?.ok ? Number(llama.result!.decodeTokS) : 0;
  for (const pf of prefetchModes) {
    const o = spool[pf];
    if (!o.ok) {
      rows.push([
        gb,
        `spool (prefetch ${pf})`,
        o.error ?? "failed",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
      ]);
      continue;
    }
    const r = o.result!;
    const h = Number(r.hitRate);
    // bytes actually read per token (for prefetch off: (1 - h) · L · k · S)
    const perTok = Math.max(1, Number(r.bytesPerToken));
    const ceiling = Math.min(diskGBps * 1e9 / perTok, computeTokS);
    const ceilingRun = Math.min(Number(r.readGBps) * 1e9 / perTok, computeTokS);
    const tok = Number(r.decodeTokS);
    rows.push([
      gb,
      `spool (prefetch ${pf})`,
      `${Number(r.ttftSeconds).toFixed(1)} s`,
      tok.toFixed(2),
      h.toFixed(3),
      `${(Number(r.bytesPerToken) / 1e9).toFixed(3)} GB`,
      Number(r.readGBps).toFixed(2),
      `${(Number(r.stallPerToken) * 1000).toFixed(0)} ms`,
      `${ceiling.toFixed(2)} (${(tok / ceiling).toFixed(2)})`,
      `${ceilingRun.toFixed(2)} (${(tok / ceilingRun).toFixed(2)})`,
      peakText(o),
      (tok * perTokenAll / (diskGBps * 1e9)).toFixed(2),
      r.prefetch !== "off"
        ? `${Number(r.precision).toFixed(2)}/${Number(r.recall).toFixed(2)}` +
          (r.prefetch === "auto" ? ` (auto: ${r.decided})` : "")
        : "-",
      lt > 0 ? `${(tok / lt).toFixed(1)}×` : llama ? "llama.cpp failed" : "-",
    ]);
  }
  if (llama) {
    rows.push([
      gb,
      "llama.cpp",
      llama.ok ? `${Number(llama.result!.ttftSeconds).toFixed(1)} s` : llama.error ?? "failed",
      llama.ok ? lt.toFixed(3) : "-",
      "",
      "",
      "",
      "",
      "",
      "",
      peakText(llama),
      llama.ok ? (lt * perTokenAll / (diskGBps * 1e9)).toFixed(2) : "",
      "",
      "",
    ]);
  }
}

const head = [
  "cap",
  "engine",
  "first token",
  "decode tok/s",
  "hit rate",
  "read/token",
  "read GB/s",
  "stall/token",
  "ceiling, disk bench BW (ratio)",
  "ceiling, in-run read BW (ratio)",
  "cgroup peak",
  "normalized (tok/s × bytes/token uncached ÷ disk B/s)",
  "pred. prec/recall",
  "vs llama.cpp",
];
console.log(
  `\ndisk bandwidth this run: ${diskGBps.toFixed(2)} GB/s; compute bound ` +
    `${computeTokS.toFixed(2)} tok/s; threads ${T}. Ceiling = min(BW / bytes read per ` +
    `token, compute bound), with BW from the disk benchmark or the run's own reads. Decode ` +
    `is sampled (temperature 1, a fixed seed per prompt), never a replayed greedy chain. ` +
    `Normalized = tok/s × ${(perTokenAll / 1e9).toFixed(3)} GB (experts per token, nothing ` +
    `cached) ÷ disk GB/s, the figure SSD-offload projects compare on.`,
);
console.log(`| ${head.join(" | ")} |\n|${head.map(() => "---").join("|")}|`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
