/**
 * Kernel benchmark: quantized matvec throughput against measured memory bandwidth, and
 * prefill-style matmul GFLOP/s.
 *
 *   deno run -A bench/kernels.ts [--threads N] [--runs N] [--types Q4_K,Q8_0] [--act q8|f32|both]
 *
 * Method:
 *  - Memory bandwidth is measured in the same run with `spool_bench_read_bandwidth`: a
 *    SIMD read-only sum over a 512 MiB buffer (16x the 32 MiB L3), split over the same pool.
 *  - Matvec (n_tok = 1) at Qwen3-30B-A3B shapes: 768x2048 (gate/up), 2048x768 (down) and
 *    151936x2048 (output head). Weights are quantized once (a 1024-row sample, replicated to
 *    the full height) and laid out as several copies in one arena of at least 512 MiB; each
 *    timed run sweeps every copy once, so the weights are never cache-resident. GB/s = weight
 *    bytes read / time; "ratio" = GB/s over the measured bandwidth. "chunk" is a second,
 *    stricter reference: the same read probe run over the same weight copies in calls of one
 *    matrix each (so it pays the same per-call pool dispatch and stream restarts as the
 *    matvec); "r/chunk" = matvec GB/s over it.
 *  - Prefill: n_tok = 64 on the two expert shapes, GFLOP/s = 2*rows*cols*64 / time.
 *  - Every number is the median of `--runs` (default 7, at least 5) runs.
 */
import { parseArgs } from "node:util";
import { check, Impl, isNull, native } from "../ffi/mod.ts";
import type { Ptr } from "../ffi/mod.ts";
import { quantize, quantRowBytes, QuantType } from "../runtime/gguf/quantize.ts";

const { values: args } = parseArgs({
  options: {
    threads: { type: "string", default: "2" },
    runs: { type: "string", default: "7" },
    types: { type: "string", default: "Q4_K,Q6_K,Q8_0,MXFP4" },
    act: { type: "string", default: "both" },
    impl: { type: "string", default: "auto" },
  },
});

const nat = native();
const sym = nat.sym;
const threads = Number(args.threads);
const runs = Math.max(5, Number(args.runs));
const typeNames = args.types!.split(",").map((s) => s.trim().toUpperCase());
const acts = args.act === "both" ? [1, 0] : args.act === "f32" ? [0] : [1];
if (args.impl === "ref") check(sym.spool_set_impl(Impl.REF), "spool_set_impl");
const implName = ["auto", "ref", "avx2", "neon"][sym.spool_get_impl()];

const pool = sym.spool_pool_create(threads);
const ARENA = 512 * 1024 * 1024;
const arena = sym.spool_alloc(ARENA, 4096);
if (isNull(arena)) throw new Error("cannot allocate the 512 MiB benchmark arena");
const arenaView = new Uint8Array(nat.buffer(arena, ARENA));
arenaView.fill(0x5a); // touch every page: untouched pages would read the shared zero page

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// ---- memory bandwidth
const bwRuns: number[] = [];
sym.spool_bench_read_bandwidth(arena, ARENA, 1, pool); // warm-up
for (let i = 0; i < runs; i++) {
  bwRuns.push(sym.spool_bench_read_bandwidth(arena, ARENA, 1, pool) / 1e9);
}
const bw = median(bwRuns);

// ---- matvec
const SHAPES: [string, number, number][] = [
  ["gate/up 768x2048", 768, 2048],
  ["down 2048x768", 2048, 768],
  ["head 151936x2048", 151936, 2048],
];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

/** Quantize a 1024-row sample and replicate it to `rows` rows, `copies` times, in the arena. */
function fillWeights(type: number, rows: number, cols: number): { bytes: number; copies: number } {
  const rb = quantRowBytes(type, cols);
  const bytes = rows * rb;
  const sampleRows = Math.min(rows, 1024);
  const r = rng(type * 131 + cols);
  const src = new Float32Array(sampleRows * cols);
  for (let i = 0; i < src.length; i++) src[i] = r() / Math.sqrt(cols) * 4;
  const sample = quantize(type, src, sampleRows, cols);
  const copies = Math.max(1, Math.floor(ARENA / bytes));
  for (let c = 0; c < copies; c++) {
    for (let o = 0; o < bytes; o += sample.length) {
      const n = Math.min(sample.length, bytes - o);
      arenaView.set(n === sample.length ? sample : sample.subarray(0, n), c * bytes + o);
    }
  }
  return { bytes, copies };
}

interface Row {
  type: string;
  shape: string;
  act: string;
  gbs: number;
  ratio: number;
  chunk: number;
  us: number;
}
const rowsOut: Row[] = [];
const prefillOut: { type: string; shape: string; act: string; gflops: number; ms: number }[] = [];

for (const name of typeNames) {
  const type = (QuantType as Record<string, number>)[name];
  if (type === undefined) throw new Error(`unknown type ${name}`);
  for (const [shapeName, rows, cols] of SHAPES) {
    const { bytes, copies } = fillWeights(type, rows, cols);
    const x = new Float32Array(64 * cols).map((_, i) => Math.sin(i * 0.37));
    const y = new Float32Array(64 * rows);
    const scratch = new Uint8Array(Math.max(64, sym.spool_matmul_scratch_bytes(type, cols, 64, 1)));
    const xp = nat.ptr(x), yp = nat.ptr(y), sp = nat.ptr(scratch);
    const ws: Ptr[] = [];
    for (let c = 0; c < copies; c++) ws.push(nat.offset(arena, c * bytes));
    // reference: the read probe over the same copies, one matrix per call
    const sweepsRef = Math.max(1, Math.ceil((256 << 20) / (bytes * copies)));
    const readRef = () => {
      for (let s = 0; s < sweepsRef; s++) {
        for (const w of ws) sym.spool_bench_read_bandwidth(w, bytes, 1, pool);
      }
    };
    readRef();
    const tr: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      readRef();
      tr.push(performance.now() - t0);
    }
    const chunk = bytes * sweepsRef * copies / (median(tr) / 1e3) / 1e9;
    for (const act of acts) {
      // at least 256 MiB per timed run: whole sweeps over all copies
      const sweeps = Math.max(1, Math.ceil((256 << 20) / (bytes * copies)));
      const mv = () => {
        for (let s = 0; s < sweeps; s++) {
          for (const w of ws) {
            check(sym.spool_matmul(pool, type, w, rows, cols, xp, 1, yp, act, sp), "matmul");
          }
        }
      };
      mv(); // warm-up
      const ts: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        mv();
        ts.push(performance.now() - t0);
      }
      const ms = median(ts);
      const calls = sweeps * copies;
      const gbs = bytes * calls / (ms / 1e3) / 1e9;
      rowsOut.push({
        type: name,
        shape: shapeName,
        act: act ? "q8" : "f32",
        gbs,
        ratio: gbs / bw,
        chunk,
        us: ms * 1e3 / calls,
      });
      if (rows <= 2048) {
        const mm = () =>
          check(sym.spool_matmul(pool, type, ws[0], rows, cols, xp, 64, yp, act, sp), "matmul");
        mm();
        const tp: number[] = [];
        for (let i = 0; i < runs; i++) {
          const t0 = performance.now();
          mm();
          tp.push(performance.now() - t0);
        }
        const pms = median(tp);
        prefillOut.push({
          type: name,
          shape: shapeName,
          act: act ? "q8" : "f32",
          gflops: 2 * rows * cols * 64 / (pms / 1e3) / 1e9,
          ms: pms,
        });
      }
    }
  }
}

const pad = (s: string | number, n: number) => String(s).padEnd(n);
const lpad = (s: string | number, n: number) => String(s).padStart(n);
console.log(
  `spool kernels bench: impl ${implName}, ${threads} threads, median of ${runs} runs; ` +
    `memory read bandwidth ${bw.toFixed(2)} GB/s (512 MiB sweep)`,
);
console.log("\nmatvec (n_tok = 1), weights streamed from DRAM (>= 512 MiB of copies, > L3):");
console.log(
  `${pad("type", 7)}${pad("shape", 20)}${pad("act", 5)}${lpad("GB/s", 8)}${lpad("ratio", 8)}${
    lpad("chunk", 8)
  }${lpad("r/chunk", 9)}${lpad("us/call", 10)}`,
);
for (const r of rowsOut) {
  console.log(
    `${pad(r.type, 7)}${pad(r.shape, 20)}${pad(r.act, 5)}${lpad(r.gbs.toFixed(2), 8)}` +
      `${lpad(r.ratio.toFixed(2), 8)}${lpad(r.chunk.toFixed(2), 8)}${
        lpad((r.gbs / r.chunk).toFixed(2), 9)
      }${lpad(r.us.toFixed(1), 10)}`,
  );
}
console.log("\nprefill (n_tok = 64):");
console.log(
  `${pad("type", 7)}${pad("shape", 20)}${pad("act", 5)}${lpad("GFLOP/s", 9)}${lpad("ms", 8)}`,
);
for (const r of prefillOut) {
  console.log(
    `${pad(r.type, 7)}${pad(r.shape, 20)}${pad(r.act, 5)}${lpad(r.gflops.toFixed(1), 9)}${
      lpad(r.ms.toFixed(2), 8)
    }`,
  );
}

sym.spool_pool_destroy(pool);
sym.spool_free(arena);
