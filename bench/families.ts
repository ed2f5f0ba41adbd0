/**
 * The newer families against llama.cpp in the same run (issues 11 and 12): GLM-4.5-Air,
 * MiniMax-M2, DeepSeek-V3 and Qwen3.5-35B-A3B shapes with fewer layers (random weights,
 * `spool synth` presets; `--presets` picks them), and the Qwen3-30B-A3B shape (9.5 GB, all
 * 48 layers) of the other benchmarks.
 *
 *   deno run -A bench/families.ts [--presets glm-4.5-air,minimax-m2,deepseek-v3]
 *        [--runs 5] [--prefill 64] [--decode 16] [--threads 2] [--cap 4G] [--no-cap]
 *        [--settle 10]
 *
 * In RAM: llama.cpp's own `llama-bench` (built from the source node-llama-cpp ships, see
 * bench/build_llama.sh; its defaults, which repack the weights) and spool's bench (median of
 * its reps) alternate `--runs` times; the medians and the spread (min–max) of each side and
 * the ratio spool / llama.cpp are printed. Under `--cap` (root, cgroup v1, cold page cache
 * each run): the DeepSeek-V3 shape decodes with spool's defaults (the budget sees the cap)
 * against `llama-batched-bench --no-repack` (mmap, paging by faults: its best setting there,
 * since repacking copies every weight into RAM and is killed; this llama-bench has no
 * switch for it).
 * Decode is greedy from a fixed pseudo-random prompt (random weights: a replayed chain).
 *
 * Before each run the model file is read into the page cache (see `warm`), and `--settle`
 * seconds pass between any two runs. Measured here (a VM): right after llama-bench
 * exits and frees its repacked copy (several GB of anonymous memory), the next process decodes
 * up to 20% slower for some seconds (minimax-m2 shape, spool: 29.8 tok/s at once, 32.9 after
 * 10 s, 35.0 after 20 s). spool frees little anonymous memory, so without the pause the
 * alternation handicaps spool's runs only.
 */
import { parseArgs } from "node:util";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseSize } from "../runtime/experts/budget.ts";
import { median } from "../runtime/engine/bench.ts";
import { peakText, runCapped } from "./_cgroup.ts";

const { values: a } = parseArgs({
  options: {
    presets: { type: "string", default: "glm-4.5-air,minimax-m2,deepseek-v3" },
    runs: { type: "string", default: "5" },
    prefill: { type: "string", default: "64" },
    decode: { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    cap: { type: "string", default: "4G" },
    "no-cap": { type: "boolean", default: false },
    settle: { type: "string", default: "10" },
  },
});
const OUT = fileURLToPath(new URL("./out/", import.meta.url));
const ROOT = fileURLToPath(new URL("../", import.meta.url));
const T = a.threads!, NP = a.prefill!, ND = a.decode!;

/** Model file of a preset, written by synth when missing (Q4_K_M; DeepSeek Q4_K: ~14 GB). */
async function model(preset: string): Promise<string> {
  // qwen3-30b-a3b: the same file bench/offload.ts, batch.ts and prefill.ts make
  const path = preset === "qwen3-30b-a3b"
    ? `${OUT}qwen3-30b-a3b-q4km.gguf`
    : `${OUT}${preset}.gguf`;
  if (existsSync(path)) return path;
  mkdirSync(OUT, { recursive: true });
  const arch = {
    "glm-4.5-air": "glm4moe",
    "minimax-m2": "minimax-m2",
    "deepseek-v3": "deepseek2",
    "qwen3.5-35b-a3b": "qwen35moe",
    "qwen3-30b-a3b": "qwen3moe",
  }[preset];
  if (!arch) throw new Error(`unknown preset ${preset}`);
  console.log(`making ${path} (random weights, ${arch})...`);
  const { writeSyntheticModel } = await import("../runtime/models/synth.ts");
  writeSyntheticModel(path, {
    arch,
    preset: preset as never,
    fill: "fast",
    seed: 1,
    ...(preset === "deepseek-v3" ? { types: "Q4_K" as never } : {}),
  });
  return path;
}

function llamaBin(): string {
  const out = new Deno.Command("bash", { args: [`${ROOT}bench/build_llama.sh`] }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).slice(-2000));
  return new TextDecoder().decode(out.stdout).trim();
}

/** llama-bench's tok/s for pp and tg, from its JSON-lines output. */
function parseLlama(text: string): { pre: number; dec: number } {
  let pre = NaN, dec = NaN;
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    const r = JSON.parse(line);
    if (r.n_prompt > 0 && r.n_gen === 0) pre = r.avg_ts;
    if (r.n_gen > 0 && r.n_prompt === 0) dec = r.avg_ts;
  }
  return { pre, dec };
}

function runLlama(bin: string, path: string, extra: string[]): { pre: number; dec: number } {
  const out = new Deno.Command(`${bin}/llama-bench`, {
    args: ["-m", path, "-p", NP, "-n", ND, "-t", T, "-r", "1", "-o", "jsonl", ...extra],
  }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).slice(-1000));
  return parseLlama(new TextDecoder().decode(out.stdout));
}

function runSpool(path: string): { pre: number; dec: number } {
  const code = `
    const { benchModel } = await import(${JSON.stringify(`${ROOT}runtime/engine/bench.ts`)});
    const r = benchModel(${JSON.stringify(path)}, { prefill: ${NP}, decode: ${ND}, reps: 1,
      threads: ${T}, ramBudget: "auto" });
    console.log(JSON.stringify({ pre: r.prefillTokS, dec: r.decodeTokS }));`;
  const out = new Deno.Command(Deno.execPath(), { args: ["eval", code] }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).slice(-1000));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
}

/**
 * Read the whole file into the page cache. llama.cpp's repacked copy (anonymous memory, the
 * size of the model) pushes most of a 14 GB file out of a 24 GiB machine's page cache while it
 * runs, so without this the next spool run, which computes from the mapped file, would read
 * part of it from the disk (measured: DeepSeek-V3 shape 11.5–17.9 tok/s against 18.1–18.6
 * warm). Both sides get it.
 */
function warm(path: string): void {
  new Deno.Command("dd", { args: [`if=${path}`, "of=/dev/null", "bs=8M"], stderr: "null" })
    .outputSync();
}

const fmt = (xs: number[]) =>
  `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;

const bin = llamaBin();
console.log(
  `llama.cpp: ${bin}; threads ${T}; prefill ${NP}, decode ${ND}; ${a.runs} alternating runs, ` +
    `${a.settle} s apart`,
);
for (const preset of a.presets!.split(",").filter(Boolean)) {
  const path = await model(preset);
  const sp: { pre: number; dec: number }[] = [], ll: { pre: number; dec: number }[] = [];
  const settle = () => new Promise((r) => setTimeout(r, Number(a.settle) * 1000));
  for (let i = 0; i < Number(a.runs); i++) {
    warm(path);
    ll.push(runLlama(bin, path, []));
    await settle();
    warm(path);
    sp.push(runSpool(path));
    await settle();
  }
  const r = (k: "pre" | "dec") => median(sp.map((x) => x[k])) / median(ll.map((x) => x[k]));
  console.log(`\n${preset} (${path}), in RAM, tok/s median (min–max):`);
  console.log(
    `  prefill  spool ${fmt(sp.map((x) => x.pre))}  llama.cpp ${fmt(ll.map((x) => x.pre))}  ratio ${
      r("pre").toFixed(2)
    }`,
  );
  console.log(
    `  decode   spool ${fmt(sp.map((x) => x.dec))}  llama.cpp ${fmt(ll.map((x) => x.dec))}  ratio ${
      r("dec").toFixed(2)
    }`,
  );
}

if (!a["no-cap"]) {
  const cap = parseSize(a.cap!, "--cap") as number;
  const path = await model("deepseek-v3");
  console.log(`\ndeepseek-v3 under a ${a.cap} cap (cold page cache each run):`);
  const spool = await runCapped(cap, [
    Deno.execPath(),
    "eval",
    `const { benchModel } = await import(${JSON.stringify(`${ROOT}runtime/engine/bench.ts`)});
     const r = benchModel(${JSON.stringify(path)}, { prefill: 16, decode: ${ND}, reps: 3,
       threads: ${T}, ramBudget: "auto" });
     console.log(JSON.stringify({ pre: r.prefillTokS, dec: r.decodeTokS,
       hit: r.decodeCache?.hitRate ?? 1, gbps: r.decodeCache?.readGBps ?? 0 }));`,
  ]);
  console.log(
    `  spool: ${JSON.stringify(spool.result ?? spool.error)}, peak ${peakText(spool)}`,
  );
  // llama-bench has no switch for repacking here; llama-batched-bench does
  const llama = await runCapped(cap, [
    `${bin}/llama-batched-bench`,
    ...["-m", path, "-c", "64", "-npp", "8", "-ntg", "4", "-npl", "1", "-t", T],
    ...["--no-repack", "--output-format", "jsonl"],
  ], 1800);
  const ld = llama.ok ? JSON.stringify(llama.result) : llama.error;
  console.log(`  llama.cpp --no-repack: ${ld}, peak ${peakText(llama)}`);
  if (spool.ok && llama.ok) {
    const dec = Number(llama.result!.speed_tg);
    const ours = Number(spool.result!.dec);
    console.log(
      `  decode spool ${ours.toFixed(3)} vs llama.cpp ${dec.toFixed(3)} tok/s: ${
        (ours / dec).toFixed(1)
      }×`,
    );
  }
}
