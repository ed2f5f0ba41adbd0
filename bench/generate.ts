/**
 * spool against llama.cpp on the same GGUF, same thread count, same prompt: 64-token
 * prefill and 32-token decode, alternating runs, median of 5, and the ratio spool/llama.cpp.
 *
 *   deno run -A bench/generate.ts [--model FILE | --preset small|qwen3-30b-a3b] [--threads 2]
 *       [--reps 5] [--prefill 64] [--decode 32]
 *
 * Presets are random-weight models written with `spool synth` into bench/out/ (git-ignored)
 * when missing. The memory-bandwidth ceiling for decode (bytes read per token, from
 * `spool inspect`, over the bandwidth measured in the same run) is printed alongside.
 */
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { native } from "../ffi/mod.ts";
import { NativeBuffer } from "../ffi/memory.ts";
import { benchOnce, benchPrompt, median } from "../runtime/engine/bench.ts";
import { Model } from "../runtime/engine/model.ts";
import { readGGUF } from "../runtime/gguf/reader.ts";
import { inspectGGUF } from "../runtime/inspect.ts";
import { writeSyntheticModel } from "../runtime/models/synth.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    preset: { type: "string", default: "small" },
    threads: { type: "string", default: "2" },
    reps: { type: "string", default: "5" },
    prefill: { type: "string", default: "64" },
    decode: { type: "string", default: "32" },
  },
});
const threads = Number(values.threads), reps = Number(values.reps);
const nPrefill = Number(values.prefill), nDecode = Number(values.decode);

/** A field of /proc/self/status in bytes (Linux), or NaN. */
function procStatusKB(field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
      Deno.readTextFileSync("/proc/self/status"),
    );
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

function presetPath(preset: string): string {
  const dir = fileURLToPath(new URL("./out/", import.meta.url));
  mkdirSync(dir, { recursive: true });
  const path = `${dir}${preset}-q4km.gguf`;
  if (!existsSync(path)) {
    console.error(`writing ${path} (random weights)...`);
    writeSyntheticModel(path, {
      arch: "qwen3moe",
      preset: preset as never,
      types: "Q4_K_M",
      fill: "fast",
      seed: 1,
    });
  }
  return path;
}

const path = values.model ?? presetPath(values.preset!);
const report = inspectGGUF(readGGUF(path), path);

const model = Model.load(path, { threads });
const prompt = benchPrompt(nPrefill, model.config.nVocab);
benchOnce(model, { prompt, decode: 4 }); // warm-up

const worker = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    fileURLToPath(new URL("./_llama_worker.ts", import.meta.url)),
    path,
    String(nPrefill),
    String(nDecode),
    String(threads),
    JSON.stringify(prompt),
  ],
  stdin: "piped",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const lines = worker.stdout.pipeThrough(new TextDecoderStream()).getReader();
let pending = "";
async function nextJSON(): Promise<Record<string, number>> {
  while (!pending.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error("llama.cpp worker exited early");
    pending += value;
  }
  const i = pending.indexOf("\n");
  const line = pending.slice(0, i);
  pending = pending.slice(i + 1);
  return JSON.parse(line);
}
const stdin = worker.stdin.getWriter();
const ready = await nextJSON();
const run = async () => {
  await stdin.write(new TextEncoder().encode("run\n"));
  return await nextJSON();
};
await run(); // llama.cpp warm-up
const ours: { prefillTokS: number; decodeTokS: number }[] = [];
const theirs: Record<string, number>[] = [];
for (let i = 0; i < reps; i++) {
  ours.push(benchOnce(model, { prompt, decode: nDecode }));
  theirs.push(await run());
}
const rss = procStatusKB("VmRSS"), hwm = procStatusKB("VmHWM");
// memory bandwidth, measured in the same run (after the RSS reading, which it would inflate)
const bw = (() => {
  const s = native().sym;
  const pool = s.spool_pool_create(threads);
  const buf = new NativeBuffer(512 << 20);
  buf.u8.fill(1);
  const r: number[] = [];
  for (let i = 0; i < 5; i++) {
    r.push(s.spool_bench_read_bandwidth(buf.ptr, buf.byteLength, 2, pool));
  }
  buf.free();
  s.spool_pool_destroy(pool);
  return median(r);
})();

await stdin.close();
await worker.status;
model.close();

const sp = median(ours.map((r) => r.prefillTokS)), sd = median(ours.map((r) => r.decodeTokS));
const lp = median(theirs.map((r) => r.prefillTokS)), ld = median(theirs.map((r) => r.decodeTokS));
const ceiling = bw / report.bytesPerToken;
const f = (x: number) => x.toFixed(1).padStart(9);
console.log(
  `\n${path}\n  ${report.architecture}, ${(report.fileSize / 1e9).toFixed(2)} GB, ` +
    `${(report.bytesPerToken / 1e6).toFixed(1)} MB read per token; ${threads} threads; ` +
    `median of ${reps}, alternating; llama.cpp loaded in ${ready.loadSeconds.toFixed(1)} s\n` +
    `  memory bandwidth ${(bw / 1e9).toFixed(1)} GB/s -> decode ceiling ${
      ceiling.toFixed(1)
    } tok/s\n`,
);
console.log(`  ${"".padEnd(22)}${"spool".padStart(9)}${"llama.cpp".padStart(11)}   ratio`);
console.log(`  prefill ${nPrefill} tok (tok/s) ${f(sp)}${f(lp)}     ${(sp / lp).toFixed(2)}`);
console.log(`  decode ${nDecode} tok (tok/s)  ${f(sd)}${f(ld)}     ${(sd / ld).toFixed(2)}`);
console.log(
  `  decode / ceiling          ${(sd / ceiling).toFixed(2)}${
    (ld / ceiling).toFixed(2).padStart(11)
  }`,
);
console.log(
  `  spool memory: RSS ${(rss / 1e9).toFixed(2)} GB, peak ${(hwm / 1e9).toFixed(2)} GB = ` +
    `${(hwm / report.fileSize).toFixed(3)} × the file (weights mapped, not copied)`,
);
