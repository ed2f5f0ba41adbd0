/**
 * Quantization and quantized matmul kernels.
 *
 *  1. Byte identity with llama.cpp: spool_quantize output equals ggml's quantize_row_*_ref
 *     (libggml-base.so from node-llama-cpp, opened directly), and spool_dequantize_row equals
 *     ggml's dequantize_row_* bit for bit, for several input distributions.
 *  2. Hand-built blocks dequantize to known numbers.
 *  3. matmul: REF against an independent float64 dot of the dequantized weights; SIMD
 *     against REF for every type x act mode x several shapes; threads and scratch variants
 *     against each other (bit-exact: one dot per output).
 *  4. Error statuses.
 *
 * Tolerances (NMSE = sum((a-b)^2) / sum(b^2)):
 *  - REF F32-act vs float64 dot of the dequantized weights: 1e-10 (f32 accumulation only);
 *  - REF Q8-act vs that float64 dot: 1e-3 (8-bit activations: ~3e-5 expected);
 *  - SIMD vs REF, same act mode: 1e-10 (the activation quantizers are bit-identical and the
 *    integer sums exact, so only the f32 summation order differs).
 */
import nodeAssert from "node:assert/strict";
import { existsSync } from "node:fs";
import { check, Impl, KernelError, native } from "../../ffi/mod.ts";
import type { Ptr } from "../../ffi/mod.ts";
import {
  closeQuantizePool,
  dequantize,
  quantize,
  quantRowBytes,
  QuantType as T,
} from "../../runtime/gguf/quantize.ts";
import { nmse, normal, rng } from "./_ops_ref.ts";

function assert(cond: unknown, msg?: string): asserts cond {
  nodeAssert.ok(cond, msg);
}
function assertEquals<V>(actual: V, expected: V, msg?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, msg);
}
function assertThrows(f: () => unknown, cls: new (...a: never[]) => Error): Error {
  try {
    f();
  } catch (e) {
    nodeAssert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    return e as Error;
  }
  throw new Error(`expected ${cls.name} to be thrown`);
}

const nat = native();
const sym = nat.sym;
const simdImpl = (sym.spool_cpu_features() & 8) ? Impl.NEON : Impl.AVX2;
const hasSimd = (() => {
  const ok = sym.spool_set_impl(simdImpl) === 0;
  sym.spool_set_impl(Impl.AUTO);
  return ok;
})();

// ---------------------------------------------------------------- data generators

type Dist = "normal" | "uniform" | "outliers" | "zeros" | "tiny" | "mixed";
const DISTS: Dist[] = ["normal", "uniform", "outliers", "zeros", "tiny", "mixed"];

function gen(dist: Dist, n: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    switch (dist) {
      case "normal":
        a[i] = normal(r) * 0.05;
        break;
      case "uniform":
        a[i] = (r() * 2 - 1) * 3;
        break;
      case "outliers":
        a[i] = normal(r) * 0.02 + (r() < 0.01 ? (r() < 0.5 ? -1 : 1) * (5 + 20 * r()) : 0);
        break;
      case "zeros":
        a[i] = 0;
        break;
      case "tiny":
        a[i] = normal(r) * 1e-6;
        break;
      case "mixed": // every 256-value stretch picks a different character, some all-zero
        {
          const k = Math.floor(i / 256) % 5;
          a[i] = k === 0
            ? 0
            : k === 1
            ? normal(r)
            : k === 2
            ? Math.abs(normal(r))
            : k === 3
            ? -Math.abs(normal(r)) * 100
            : normal(r) * 1e-3;
        }
        break;
    }
  }
  return a;
}

function bitsEqual(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

function withImpl<R>(impl: number, f: () => R): R {
  check(sym.spool_set_impl(impl), "spool_set_impl");
  try {
    return f();
  } finally {
    sym.spool_set_impl(Impl.AUTO);
  }
}

const pool = sym.spool_pool_create(2);

// ---------------------------------------------------------------- ggml oracle
const GGML = new URL(
  "../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so",
  import.meta.url,
).pathname;
const haveGGML = Deno.build.os === "linux" && Deno.build.arch === "x86_64" && existsSync(GGML);
if (!haveGGML) {
  console.warn(`quant_test: ${GGML} not found; skipping the llama.cpp byte-identity tests`);
}

const QNAME: Record<number, string> = {
  [T.Q4_0]: "q4_0",
  [T.Q4_1]: "q4_1",
  [T.Q8_0]: "q8_0",
  [T.Q4_K]: "q4_K",
  [T.Q5_K]: "q5_K",
  [T.Q6_K]: "q6_K",
  [T.Q8_K]: "q8_K",
  [T.MXFP4]: "mxfp4",
};
const row = { parameters: ["pointer", "pointer", "i64"], result: "void" } as const;
function openGGML() {
  const defs: Record<string, typeof row> = {
    ggml_fp32_to_fp16_row: row,
    ggml_fp32_to_bf16_row_ref: row,
    ggml_fp16_to_fp32_row: row,
    ggml_bf16_to_fp32_row: row,
  };
  for (const n of Object.values(QNAME)) {
    defs[`quantize_row_${n}_ref`] = row;
    defs[`dequantize_row_${n}`] = row;
  }
  return Deno.dlopen(GGML, defs);
}
const ggml = haveGGML ? openGGML() : undefined;
type GFn = (a: Deno.PointerValue, b: Deno.PointerValue, k: bigint) => void;

function ggmlQuantize(type: number, src: Float32Array): Uint8Array {
  const cols = src.length;
  const out = new Uint8Array(quantRowBytes(type, cols));
  const s = ggml!.symbols as unknown as Record<string, GFn>;
  const fn = type === T.F16
    ? s.ggml_fp32_to_fp16_row
    : type === T.BF16
    ? s.ggml_fp32_to_bf16_row_ref
    : s[`quantize_row_${QNAME[type]}_ref`];
  fn(Deno.UnsafePointer.of(src), Deno.UnsafePointer.of(out), BigInt(cols));
  return out;
}

function ggmlDequantize(type: number, bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const s = ggml!.symbols as unknown as Record<string, GFn>;
  const fn = type === T.F16
    ? s.ggml_fp16_to_fp32_row
    : type === T.BF16
    ? s.ggml_bf16_to_fp32_row
    : s[`dequantize_row_${QNAME[type]}`];
  fn(Deno.UnsafePointer.of(bytes), Deno.UnsafePointer.of(out), BigInt(n));
  return out;
}

const WEIGHT_TYPES = [
  T.F32,
  T.F16,
  T.BF16,
  T.Q4_0,
  T.Q4_1,
  T.Q8_0,
  T.MXFP4,
  T.Q4_K,
  T.Q5_K,
  T.Q6_K,
];
const QUANT_TYPES = [
  T.F16,
  T.BF16,
  T.Q4_0,
  T.Q4_1,
  T.Q8_0,
  T.MXFP4,
  T.Q4_K,
  T.Q5_K,
  T.Q6_K,
  T.Q8_K,
];
const tname = (t: number) => Object.entries(T).find(([, v]) => v === t)![0];

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : a.length;
}

for (const type of QUANT_TYPES) {
  Deno.test({
    name: `quantize ${tname(type)}: byte-identical to llama.cpp, dequantize bit-identical`,
    ignore: !haveGGML,
    fn() {
      const rows = 6, cols = 1024;
      DISTS.forEach((dist, di) => {
        const src = gen(dist, rows * cols, 1000 + di * 17 + type);
        const ours = quantize(type, src, rows, cols);
        const theirs = ggmlQuantize(type, src);
        const at = firstDiff(ours, theirs);
        assertEquals(at, -1, `${tname(type)} ${dist}: first differing byte at ${at}`);
        const ref = ggmlDequantize(type, theirs, rows * cols);
        for (const impl of hasSimd ? [Impl.REF, simdImpl] : [Impl.REF]) {
          const deq = withImpl(impl, () => dequantize(type, ours, rows * cols));
          assertEquals(bitsEqual(deq, ref), -1, `${tname(type)} ${dist} dequantize (impl ${impl})`);
        }
      });
    },
  });
}

Deno.test({
  name: "Q8_1 activations (Q4_1's products) are byte-identical to ggml's quantize_row_q8_1_ref",
  ignore: !haveGGML,
  fn() {
    const lib = Deno.dlopen(GGML, { quantize_row_q8_1_ref: row });
    try {
      const cols = 1024;
      DISTS.forEach((dist, di) => {
        const src = gen(dist, cols, 500 + di);
        const ours = quantize(T.Q8_1, src, 1, cols);
        const theirs = new Uint8Array(ours.length);
        lib.symbols.quantize_row_q8_1_ref(
          Deno.UnsafePointer.of(src),
          Deno.UnsafePointer.of(theirs),
          BigInt(cols),
        );
        assertEquals(firstDiff(ours, theirs), -1, `Q8_1 ${dist}`);
      });
    } finally {
      lib.close();
    }
  },
});

Deno.test({
  name: "dequantize of random blocks is bit-identical to llama.cpp (REF and SIMD)",
  ignore: !haveGGML,
  fn() {
    const r = rng(7);
    for (const type of [T.Q4_0, T.Q4_1, T.Q8_0, T.MXFP4, T.Q4_K, T.Q5_K, T.Q6_K]) {
      const n = 2048;
      const bytes = new Uint8Array(quantRowBytes(type, n));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
      // keep f16 scales finite: overwrite d (and dmin) with halves of modest magnitude
      const blk = sym.spool_type_block_bytes(type);
      const dv = new DataView(bytes.buffer);
      for (let o = 0; o < bytes.length; o += blk) {
        const h = 0x2000 + Math.floor(r() * 0x2000) | (r() < 0.5 ? 0x8000 : 0);
        if (type === T.Q6_K) dv.setUint16(o + 208, h, true);
        else if (type === T.Q4_K || type === T.Q5_K) {
          dv.setUint16(o, h, true);
          dv.setUint16(o + 2, 0x2000 + Math.floor(r() * 0x2000), true);
        } else if (type === T.Q4_1) {
          dv.setUint16(o, h, true);
          dv.setUint16(o + 2, 0x2000 + Math.floor(r() * 0x2000) | (r() < 0.5 ? 0x8000 : 0), true);
        } else if (type !== T.MXFP4) dv.setUint16(o, h, true);
      }
      const ref = ggmlDequantize(type, bytes, n);
      for (const impl of hasSimd ? [Impl.REF, simdImpl] : [Impl.REF]) {
        const deq = withImpl(impl, () => dequantize(type, bytes, n));
        assertEquals(bitsEqual(deq, ref), -1, `${tname(type)} impl ${impl}`);
      }
    }
  },
});

// ---------------------------------------------------------------- hand-built blocks
function dequantAll(type: number, bytes: Uint8Array, n: number): Float32Array[] {
  return (hasSimd ? [Impl.REF, simdImpl] : [Impl.REF]).map((impl) =>
    withImpl(impl, () => dequantize(type, bytes, n))
  );
}

Deno.test("dequantize hand-built blocks to known values", () => {
  // Q8_0: d = 0.5 (f16 0x3800), qs[j] = j - 16
  {
    const b = new Uint8Array(34);
    new DataView(b.buffer).setUint16(0, 0x3800, true);
    for (let j = 0; j < 32; j++) b[2 + j] = (j - 16) & 0xff;
    for (const y of dequantAll(T.Q8_0, b, 32)) {
      assertEquals(Array.from(y), Array.from({ length: 32 }, (_, j) => (j - 16) * 0.5));
    }
  }
  // Q4_0: d = 1, byte j holds (j, 15 - j): value j -> j - 8, value j + 16 -> 7 - j
  {
    const b = new Uint8Array(18);
    new DataView(b.buffer).setUint16(0, 0x3c00, true);
    for (let j = 0; j < 16; j++) b[2 + j] = j | ((15 - j) << 4);
    const want = [
      ...Array.from({ length: 16 }, (_, j) => j - 8),
      ...Array.from({ length: 16 }, (_, j) => 7 - j),
    ];
    for (const y of dequantAll(T.Q4_0, b, 32)) assertEquals(Array.from(y), want);
  }
  // MXFP4: e = 128 -> scale 1 (the table holds doubled E2M1 values)
  {
    const b = new Uint8Array(17);
    b[0] = 128;
    for (let j = 0; j < 16; j++) b[1 + j] = j | ((15 - j) << 4);
    const kv = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];
    const want = [...kv, ...kv.slice().reverse()];
    for (const y of dequantAll(T.MXFP4, b, 32)) assertEquals(Array.from(y), want);
  }
  // Q4_K: d = 1, dmin = 0.5; sub-blocks 0..3: scale 2, min 1; 4..7: scale 1, min 2; qs = 0x53
  {
    const b = new Uint8Array(144);
    const dv = new DataView(b.buffer);
    dv.setUint16(0, 0x3c00, true);
    dv.setUint16(2, 0x3800, true);
    for (let j = 0; j < 4; j++) b[4 + j] = 2, b[8 + j] = 1, b[12 + j] = 0x21;
    b.fill(0x53, 16);
    const want: number[] = [];
    for (let s = 0; s < 8; s++) {
      const q = s % 2 === 0 ? 3 : 5;
      for (let l = 0; l < 32; l++) want.push(s < 4 ? 2 * q - 0.5 : q - 1);
    }
    for (const y of dequantAll(T.Q4_K, b, 256)) assertEquals(Array.from(y), want);
  }
  // Q5_K: d = 1, dmin = 0, every scale 1, qs = 0x21, every 5th bit set -> 17 and 18
  {
    const b = new Uint8Array(176);
    new DataView(b.buffer).setUint16(0, 0x3c00, true);
    for (let j = 0; j < 4; j++) b[4 + j] = 1, b[8 + j] = 0, b[12 + j] = 0x01;
    b.fill(0xff, 16, 48); // qh
    b.fill(0x21, 48); // qs
    const want: number[] = [];
    for (let s = 0; s < 8; s++) for (let l = 0; l < 32; l++) want.push(s % 2 === 0 ? 17 : 18);
    for (const y of dequantAll(T.Q5_K, b, 256)) assertEquals(Array.from(y), want);
  }
  // Q6_K: d = 1, scales[j] = j - 8, ql = 0x21, qh = 0xE4 -> codes 1, 17, 34, 50 per quarter
  {
    const b = new Uint8Array(210);
    b.fill(0x21, 0, 128);
    b.fill(0xe4, 128, 192);
    for (let j = 0; j < 16; j++) b[192 + j] = (j - 8) & 0xff;
    new DataView(b.buffer).setUint16(208, 0x3c00, true);
    const q = [1 - 32, 17 - 32, 34 - 32, 50 - 32];
    const want: number[] = [];
    for (let i = 0; i < 256; i++) {
      want.push((Math.floor(i / 16) - 8) * q[Math.floor((i % 128) / 32)]);
    }
    for (const y of dequantAll(T.Q6_K, b, 256)) assertEquals(Array.from(y), want);
  }
  // F16 / BF16
  {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]);
    for (const y of dequantAll(T.F16, new Uint8Array(f16.buffer), 4)) {
      assertEquals(Array.from(y), [1, -2, 65504, 2 ** -24]);
    }
    const bf = new Uint16Array([0x3f80, 0xc040, 0x4049]);
    for (const y of dequantAll(T.BF16, new Uint8Array(bf.buffer), 3)) {
      assertEquals(Array.from(y), [1, -3, 3.140625]);
    }
  }
});

// ---------------------------------------------------------------- matmul
interface MM {
  type: number;
  w: Uint8Array;
  rows: number;
  cols: number;
  x: Float32Array;
  nTok: number;
}

function matmul(m: MM, act: number, opts: { pool?: Ptr; scratch?: boolean } = {}): Float32Array {
  const y = new Float32Array(m.nTok * m.rows);
  const need = sym.spool_matmul_scratch_bytes(m.type, m.cols, m.nTok, act);
  const scratch = opts.scratch && need > 0 ? new Uint8Array(need) : undefined;
  check(
    sym.spool_matmul(
      opts.pool ?? null,
      m.type,
      nat.ptr(m.w),
      m.rows,
      m.cols,
      nat.ptr(m.x),
      m.nTok,
      nat.ptr(y),
      act,
      scratch ? nat.ptr(scratch) : null,
    ),
    "spool_matmul",
  );
  return y;
}

function makeMM(type: number, rows: number, cols: number, nTok: number, seed: number): MM {
  const wf = gen("normal", rows * cols, seed).map((v) => v * 20 / Math.sqrt(cols));
  const x = gen("normal", nTok * cols, seed + 1).map((v) => v * 20);
  return { type, w: quantize(type, wf, rows, cols), rows, cols, x, nTok };
}

function f64Reference(m: MM, xs: Float32Array = m.x): Float64Array {
  const wd = dequantize(m.type, m.w, m.rows * m.cols);
  const y = new Float64Array(m.nTok * m.rows);
  for (let t = 0; t < m.nTok; t++) {
    for (let r = 0; r < m.rows; r++) {
      let s = 0;
      for (let c = 0; c < m.cols; c++) s += wd[r * m.cols + c] * xs[t * m.cols + c];
      y[t * m.rows + r] = s;
    }
  }
  return y;
}

const ACT_F32 = 0, ACT_Q8 = 1;

Deno.test("matmul REF vs float64 dot of the dequantized weights", () => {
  for (const type of WEIGHT_TYPES) {
    const cols = type === T.F32 || type === T.F16 || type === T.BF16 ? 320 : 512;
    const m = makeMM(type, 33, cols, 3, 40 + type);
    const want = f64Reference(m);
    const yF = withImpl(Impl.REF, () => matmul(m, ACT_F32, { pool }));
    const eF = nmse(yF, want);
    assert(eF <= 1e-10, `${tname(type)} F32-act NMSE ${eF}`);
    const yQ = withImpl(Impl.REF, () => matmul(m, ACT_Q8, { pool }));
    const eQ = nmse(yQ, want);
    const boundQ = [T.F32, T.F16, T.BF16].includes(type as 0) ? 1e-10 : 1e-3;
    assert(eQ <= boundQ, `${tname(type)} Q8-act NMSE ${eQ}`);
  }
});

const SHAPES: [number, number, number][] = [
  [37, 512, 1], // rows not a multiple of any chunk
  [130, 768, 3],
  [67, 256, 17],
  [40, 2048, 64],
];

Deno.test({
  name: "matmul SIMD vs REF for every type, act mode and shape",
  ignore: !hasSimd,
  fn() {
    const worst: Record<string, number> = {};
    for (const type of WEIGHT_TYPES) {
      for (const [rows, cols, nTok] of SHAPES) {
        const m = makeMM(type, rows, cols, nTok, rows * 7 + nTok + type);
        for (const act of [ACT_F32, ACT_Q8]) {
          const ref = withImpl(Impl.REF, () => matmul(m, act, { pool, scratch: true }));
          const simd = withImpl(simdImpl, () => matmul(m, act, { pool, scratch: true }));
          const e = nmse(simd, ref);
          const key = `${tname(type)}/${act ? "q8" : "f32"}`;
          worst[key] = Math.max(worst[key] ?? 0, e);
          assert(e <= 1e-10, `${key} ${rows}x${cols} nTok=${nTok}: NMSE ${e}`);
        }
      }
    }
    const fmt = Object.entries(worst).map(([k, v]) => `${k} ${v.toExponential(1)}`);
    console.log(`worst SIMD-vs-REF NMSE: ${fmt.join(", ")}`);
  },
});

Deno.test("matmul: threads, scratch and stack fallback give bit-identical outputs", () => {
  for (const type of [T.Q4_K, T.Q8_0, T.Q6_K, T.MXFP4, T.F16]) {
    const m = makeMM(type, 101, 512, 5, 900 + type);
    for (const act of [ACT_F32, ACT_Q8]) {
      const a = matmul(m, act, { pool, scratch: true });
      const b = matmul(m, act, { scratch: false }); // no pool, stack scratch
      assertEquals(bitsEqual(a, b), -1, `${tname(type)} act ${act}`);
    }
  }
});

Deno.test("matmul Q8 activations stay close to f32 activations", () => {
  for (const type of [T.Q4_0, T.Q4_1, T.Q8_0, T.MXFP4, T.Q4_K, T.Q5_K, T.Q6_K]) {
    const m = makeMM(type, 64, 1024, 2, 300 + type);
    const e = nmse(matmul(m, ACT_Q8, { pool, scratch: true }), matmul(m, ACT_F32, { pool }));
    assert(e <= 1e-3, `${tname(type)}: Q8 vs F32 act NMSE ${e}`);
    assert(e > 0, `${tname(type)}: Q8 path should differ from F32 path`);
  }
});

Deno.test("matmul scratch sizes and statuses", () => {
  assertEquals(sym.spool_matmul_scratch_bytes(T.Q4_K, 2048, 3, ACT_Q8), 3 * 8 * 292);
  assertEquals(sym.spool_matmul_scratch_bytes(T.Q8_0, 2048, 3, ACT_Q8), 3 * 64 * 34);
  assertEquals(sym.spool_matmul_scratch_bytes(T.MXFP4, 64, 1, ACT_Q8), 2 * 34);
  assertEquals(sym.spool_matmul_scratch_bytes(T.Q4_K, 2048, 3, ACT_F32), 0);
  assertEquals(sym.spool_matmul_scratch_bytes(T.F16, 2048, 3, ACT_Q8), 0);

  const m = makeMM(T.Q8_0, 4, 4096, 1, 5);
  const y = new Float32Array(64 * 4);
  const x = new Float32Array(64 * 4096);
  const call = (type: number, cols: number, nTok: number, act = ACT_Q8, scratch: Ptr = null) =>
    sym.spool_matmul(null, type, nat.ptr(m.w), 4, cols, nat.ptr(x), nTok, nat.ptr(y), act, scratch);
  const err = (status: number) => {
    try {
      check(status, "spool_matmul");
    } catch (e) {
      return e;
    }
    return undefined;
  };
  const e1 = err(call(99, 4096, 1));
  assert(e1 instanceof KernelError && e1.status === -2, "bad type -> KernelError -2");
  const e2 = err(call(T.Q8_0, 4016, 1));
  assert(e2 instanceof KernelError && e2.status === -1, "cols % 32 -> -1");
  assertEquals(call(T.Q8_K, 4096, 1), -2); // activation-only type
  assertEquals(call(T.Q8_0, 4096, 1, 7), -1); // bad act mode
  assertEquals(call(T.Q8_0, 4096, 64), -3); // 278 KiB of Q8 activations: no stack fallback
  assertEquals(call(T.Q8_0, 4096, 64, ACT_F32), 0);
  assertEquals(sym.spool_dequantize_row(77, nat.ptr(m.w), nat.ptr(y), 32), -2);
  assertEquals(sym.spool_dequantize_row(T.Q4_K, nat.ptr(m.w), nat.ptr(y), 100), -1);
  assertEquals(sym.spool_quantize(null, T.Q4_K, nat.ptr(x), nat.ptr(m.w), 1, 100), -1);
  assertEquals(sym.spool_quantize(null, 5, nat.ptr(x), nat.ptr(m.w), 1, 64), -2);
  assertEquals(sym.spool_type_block_size(T.Q4_K), 256);
  assertEquals(sym.spool_type_block_bytes(T.Q6_K), 210);
  assertEquals(sym.spool_type_block_bytes(T.MXFP4), 17);
  assertEquals(sym.spool_type_block_size(123), 0);
  const k = assertThrows(() => quantize(T.Q4_K, new Float32Array(100), 1, 100), KernelError);
  assertEquals((k as KernelError).status, -1);
  const t = assertThrows(() => dequantize(5, new Uint8Array(64), 32), KernelError);
  assertEquals((t as KernelError).status, -2);
});

Deno.test("quantize.ts round trip and quantizeInto offsets", async () => {
  const { quantizeInto } = await import("../../runtime/gguf/quantize.ts");
  const src = gen("normal", 4 * 256, 3);
  const whole = quantize(T.Q4_K, src, 4, 256);
  assertEquals(whole.length, 4 * 144);
  const dst = new Uint8Array(10 + whole.length);
  assertEquals(quantizeInto(T.Q4_K, src, 4, 256, dst, 10), whole.length);
  assertEquals(firstDiff(dst.subarray(10), whole), -1);
  const back = dequantize(T.Q4_K, whole, 4 * 256);
  assert(nmse(back, src) < 1e-2, `Q4_K round trip NMSE ${nmse(back, src)}`);
  const q8 = dequantize(T.Q8_0, quantize(T.Q8_0, src, 4, 256), 1024);
  assert(nmse(q8, src) < 1e-4, `Q8_0 round trip NMSE ${nmse(q8, src)}`);
});

Deno.test({
  name: "quant_test teardown",
  sanitizeResources: false,
  fn() {
    sym.spool_pool_destroy(pool);
    closeQuantizePool();
    ggml?.close();
  },
});
