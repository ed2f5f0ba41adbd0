/**
 * The 235B-class run (issue 16): a model with Qwen3-235B-A22B's layer shape (hidden 4096, 64
 * query and 4 KV heads of 128, 128 experts, 8 used, expert FFN 1536, Q4_K_M, skewed routers
 * shaped like a real model's) with as many layers as the disk allows (at least 16), under a
 * memory cap with the same ratio of RAM to model as a laptop (default 32 GB) holding the full
 * 94-layer model.
 *
 *   deno run -A bench/moonshot.ts [--layers N] [--laptop 32G] [--decode 16] [--prompts 4]
 *                                 [--prompt-len 16] [--threads 2] [--bs 16,64]
 *                                 [--batch-decode 4] [--skew real|uniform|S] [--keep]
 *
 * Needs root (cgroup v1, drop_caches; DESIGN.md §7). Steps, all in this run:
 *  - Sizes come from the synthetic model's plan (the exact tensors and types a file of that
 *    depth holds), so the cap is slice bytes × laptop ÷ full 94-layer bytes.
 *  - The compute bound: the same shape with 2 and 4 layers decoded in RAM (warm, mapped)
 *    gives a fixed part a (embeddings, head, sampling) and a part per layer b; b is scaled by
 *    the slice's bytes read per token per layer over the probes' (below 8 layers llama.cpp's
 *    Q4_K_M rule makes every expert down Q6_K, so the probes' layers are heavier), and the
 *    slice's bound is 1 / (a + L·b).
 *  - The disk: O_DIRECT 1 MiB random reads of the model file, 4 and 8 in flight.
 *  - Decode under the cap: the offload benchmark's worker (sampled, temperature 1, several
 *    prompts, prefetch auto), cold start.
 *  - The extrapolation to 94 layers, from that run: T94 = a + 94·(T − a)/L at this disk
 *    (same cap ratio, so the same hit rate per layer), and at 7 GB/s with each layer's
 *    stall (its wait for reads) shortened by (disk GB/s ÷ 7).
 *  - Batch (Session.evalMany, as `batch run` steps, expert-major) at each B of --bs under the
 *    same cap: aggregate decode tok/s (greedy; B different prompts).
 */
import { parseArgs } from "node:util";
import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { planSynthetic, type SynthOptions, writeSyntheticModel } from "../runtime/models/synth.ts";
import { quantRowBytes } from "../runtime/gguf/quantize.ts";
import { GGMLType } from "../runtime/gguf/types.ts";
import { parseSize } from "../runtime/experts/budget.ts";
import { measureDiskBandwidth } from "../runtime/experts/pager.ts";
import { dropCaches, type Outcome, peakText, runCapped } from "./_cgroup.ts";

const { values: a } = parseArgs({
  options: {
    layers: { type: "string" },
    laptop: { type: "string", default: "32G" },
    decode: { type: "string", default: "16" },
    prompts: { type: "string", default: "4" },
    "prompt-len": { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    bs: { type: "string", default: "16,64" },
    "batch-decode": { type: "string", default: "4" },
    skew: { type: "string", default: "real" },
    keep: { type: "boolean", default: false },
  },
});
const OUT = fileURLToPath(new URL("./out/", import.meta.url));
const OFFLOAD = fileURLToPath(new URL("./_offload_worker.ts", import.meta.url));
const BATCH = fileURLToPath(new URL("./_batch_worker.ts", import.meta.url));
const FULL_LAYERS = 94;
const T = a.threads!, D = a.decode!, P = a.prompts!, PL = a["prompt-len"]!;
const deno = Deno.execPath();
const skew = /^[0-9.]+$/.test(a.skew!) ? Number(a.skew) : a.skew as "real" | "uniform";

/** Synth options of the shape with `n` layers. */
function opts(n: number): SynthOptions {
  return {
    arch: "qwen3moe",
    preset: "qwen3-30b-a3b",
    dims: {
      nLayer: n,
      nEmbd: 4096,
      nHead: 64,
      nHeadKv: 4,
      headDim: 128,
      nExpert: 128,
      nExpertUsed: 8,
      nFfExp: 1536,
    },
    types: "Q4_K_M",
    fill: "fast",
    seed: 1,
    routerSkew: skew,
    name: `spool-moonshot-qwen3-235b-shape-${n}`,
  };
}

/** Tensor bytes of the file with `n` layers, and the bytes one token reads per layer. */
function sizes(n: number): { file: number; perTokenLayer: number; expertsPerToken: number } {
  const plan = planSynthetic(opts(n));
  const k = plan.config.nExpertUsed / plan.config.nExpert;
  let file = 0, layers = 0, experts = 0;
  for (const t of plan.tensors) {
    const [cols, ...rest] = t.spec.shape;
    const bytes = quantRowBytes(GGMLType[t.type], cols) * rest.reduce((x, y) => x * y, 1);
    file += bytes;
    if (!t.spec.name.startsWith("blk.")) continue;
    const exps = /_exps\./.test(t.spec.name);
    layers += exps ? bytes * k : bytes;
    if (exps) experts += bytes * k;
  }
  return { file, perTokenLayer: layers / n, expertsPerToken: experts };
}

/** Free bytes on the file system of `dir`. */
function freeBytes(dir: string): number {
  const out = new Deno.Command("df", { args: ["-B1", "--output=avail", dir] }).outputSync();
  return Number(new TextDecoder().decode(out.stdout).trim().split("\n").pop());
}

function ensure(n: number): string {
  const path = `${OUT}moonshot-${n}.gguf`;
  if (existsSync(path) && statSync(path).size > sizes(n).file) return path;
  console.log(`making ${path} (${(sizes(n).file / 1e9).toFixed(1)} GB)...`);
  const r = writeSyntheticModel(path, opts(n));
  console.log(`   ${r.seconds.toFixed(0)} s`);
  return path;
}

/** Decode tok/s of `path` in RAM (page cache warm, every expert mapped). */
function inRam(path: string): number {
  new Deno.Command("dd", { args: [`if=${path}`, "of=/dev/null", "bs=8M"], stderr: "null" })
    .outputSync();
  const c = new Deno.Command(deno, {
    args: ["run", "-A", OFFLOAD, "spool", path, D, "3", PL, T, "off"],
    stdout: "piped",
    stderr: "inherit",
    env: { SPOOL_BENCH_SKIP_FIRST: "1" },
  }).outputSync();
  const line = new TextDecoder().decode(c.stdout).trim().split("\n").pop() ?? "";
  if (!line.startsWith("{")) throw new Error(`in-RAM decode of ${path} failed`);
  return Number(JSON.parse(line).decodeTokS);
}

mkdirSync(OUT, { recursive: true });
const full = sizes(FULL_LAYERS);
let L = Number(a.layers ?? 0);
const made = [...Deno.readDirSync(OUT)].map((e) => /^moonshot-(\d+)\.gguf$/.exec(e.name))
  .filter((m) => m && Number(m[1]) >= 16).map((m) => Number(m![1]));
if (!L && made.length) L = Math.max(...made); // a slice left by an earlier --keep run
if (!L) { // as many layers as fit, keeping 10 GB free (the probes need 8 GB, deleted after)
  const free = freeBytes(OUT);
  for (L = FULL_LAYERS; L > 0 && sizes(L).file + 10e9 > free; L--);
  if (L < 16) {
    throw new Error(`the disk has ${(free / 1e9).toFixed(1)} GB free: fewer than 16 layers fit`);
  }
}
const slice = sizes(L);
const laptop = parseSize(a.laptop!, "--laptop") as number;
const cap = Math.round(slice.file * laptop / full.file);
console.log(
  `Qwen3-235B-A22B layer shape, ${L} of ${FULL_LAYERS} layers: ${
    (slice.file / 1e9).toFixed(2)
  } GB (full depth ${(full.file / 1e9).toFixed(1)} GB); cap ${(cap / 2 ** 30).toFixed(2)} GiB = ` +
    `the ratio of ${a.laptop} to the full model; router skew ${a.skew}; threads ${T}`,
);

// ---- the compute bound from two shallow probes in RAM
const probe: Record<number, number> = {};
for (const n of [2, 4]) {
  const path = ensure(n);
  probe[n] = inRam(path);
  console.log(`   in RAM, ${n} layers: ${probe[n].toFixed(2)} tok/s`);
  rmSync(path);
}
const bProbe = 1 / probe[4] / 2 - 1 / probe[2] / 2; // seconds per layer
const aFixed = 1 / probe[2] - 2 * bProbe;
const b = bProbe * slice.perTokenLayer / sizes(4).perTokenLayer;
const computeTokS = 1 / (aFixed + L * b);
const compute94 = 1 / (aFixed + FULL_LAYERS * b * full.perTokenLayer / slice.perTokenLayer);
console.log(
  `compute: fixed ${(aFixed * 1e3).toFixed(1)} ms + ${(b * 1e3).toFixed(2)} ms per layer ` +
    `(probe layers scaled by bytes, ${(slice.perTokenLayer / 1e6).toFixed(1)} MB read per token ` +
    `per layer): bound ${computeTokS.toFixed(2)} tok/s at ${L} layers, ${
      compute94.toFixed(2)
    } at ${FULL_LAYERS}`,
);

// ---- the slice, the disk, decode under the cap
const model = ensure(L);
dropCaches();
const disk = measureDiskBandwidth(model, {
  depths: [4, 8],
  requestBytes: 1 << 20,
  seconds: 2,
  rounds: 1,
});
const diskGBps = Math.max(...disk.rows.map((r) => r.gbps));
console.log(
  `disk (O_DIRECT, 1 MiB random reads): ` +
    disk.rows.map((r) => `${r.depth} in flight ${r.gbps.toFixed(2)} GB/s`).join(", "),
);
const dec = await runCapped(cap, [deno, "run", "-A", OFFLOAD, "spool", model, D, P, PL, T, "auto"]);
console.log(`decode under the cap: ${JSON.stringify(dec.result ?? dec.error)}`);
report(dec);

// ---- batch under the cap
for (const B of a.bs!.split(",").filter(Boolean)) {
  const o = await runCapped(
    cap,
    [deno, "run", "-A", BATCH, "spool", model, B, "8", a["batch-decode"]!, T, "cache", "off"],
    1800,
  );
  const r = o.result;
  console.log(
    `batch B=${B}: ` +
      (o.ok && r
        ? `aggregate decode ${Number(r.decodeTokS).toFixed(2)} tok/s (step ${
          Number(r.stepSeconds).toFixed(2)
        } s, hit ${Number(r.hitRate).toFixed(3)}, ${
          (Number(r.bytesPerStep) / 1e9).toFixed(2)
        } GB read per step at ${Number(r.readGBps).toFixed(2)} GB/s), prefill ${
          Number(r.prefillTokS).toFixed(2)
        } tok/s; peak ${peakText(o)}`
        : `failed: ${o.error}`),
  );
}
if (!a.keep) rmSync(model);

function report(o: Outcome): void {
  if (!o.ok || !o.result) return;
  const r = o.result;
  const tok = Number(r.decodeTokS), perTok = Math.max(1, Number(r.bytesPerToken));
  const stall = Number(r.stallPerToken), runGBps = Number(r.readGBps);
  const ssd = diskGBps * 1e9 / perTok, ssdRun = runGBps * 1e9 / perTok;
  const ceil = Math.min(ssd, computeTokS), ceilRun = Math.min(ssdRun, computeTokS);
  const T1 = 1 / tok, perLayer = (T1 - aFixed) / L;
  const t94 = 1 / (aFixed + FULL_LAYERS * perLayer);
  const bw = Math.max(diskGBps, runGBps);
  const t94at7 = 1 / (aFixed + FULL_LAYERS * (perLayer - stall / L + (stall / L) * bw / 7));
  const uncached = slice.expertsPerToken;
  console.log(
    [
      `\n| ${L} layers under ${(cap / 2 ** 30).toFixed(2)} GiB | value |`,
      `|---|---|`,
      `| decode (sampled) | ${tok.toFixed(2)} tok/s |`,
      `| hit rate | ${Number(r.hitRate).toFixed(3)} |`,
      `| read per token | ${(perTok / 1e9).toFixed(3)} GB at ${runGBps.toFixed(2)} GB/s |`,
      `| stall per token | ${(stall * 1e3).toFixed(0)} ms |`,
      `| SSD ceiling (disk bench / in-run reads) | ${ssd.toFixed(2)} / ${
        ssdRun.toFixed(2)
      } tok/s |`,
      `| compute ceiling | ${computeTokS.toFixed(2)} tok/s |`,
      `| fraction of min(SSD, compute) | ${(tok / ceil).toFixed(2)} (in-run BW: ${
        (tok / ceilRun).toFixed(2)
      }) |`,
      `| cgroup peak | ${peakText(o)} |`,
      `| extrapolated to ${FULL_LAYERS} layers, this disk | ${t94.toFixed(2)} tok/s |`,
      `| extrapolated to ${FULL_LAYERS} layers, 7 GB/s | ${t94at7.toFixed(2)} tok/s (compute ` +
      `bound ${compute94.toFixed(2)}) |`,
      `| normalized (tok/s × ${
        (uncached / 1e9).toFixed(2)
      } GB of experts per token ÷ disk GB/s) | ${(tok * uncached / (diskGBps * 1e9)).toFixed(2)} |`,
    ].join("\n"),
  );
}
