/**
 * Quantization kernels under Bun (bun:test): a representative subset of
 * test/kernels/quant_test.ts — byte identity with llama.cpp's reference quantizers (via
 * bun:ffi on libggml-base.so), SIMD vs REF matmul, a hand-built block and error statuses.
 *
 *   ./node_modules/.bin/bun test test/bun/quant_test.ts
 */
import { afterAll, describe, expect, test } from "bun:test";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { check, Impl, KernelError, native } from "../../ffi/mod.ts";
import {
  closeQuantizePool,
  dequantize,
  quantize,
  quantRowBytes,
  QuantType as T,
} from "../../runtime/gguf/quantize.ts";
import { nmse, normal, rng } from "../kernels/_ops_ref.ts";

const nat = native();
const sym = nat.sym;
const simdImpl = (sym.spool_cpu_features() & 8) ? Impl.NEON : Impl.AVX2;
const hasSimd = sym.spool_set_impl(simdImpl) === 0;
sym.spool_set_impl(Impl.AUTO);
const pool = sym.spool_pool_create(2);

function normals(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = normal(r) * scale;
  return a;
}
function withImpl<R>(impl: number, f: () => R): R {
  check(sym.spool_set_impl(impl), "spool_set_impl");
  try {
    return f();
  } finally {
    sym.spool_set_impl(Impl.AUTO);
  }
}

const GGML = fileURLToPath(
  new URL(
    "../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so",
    import.meta.url,
  ),
);
const haveGGML = process.platform === "linux" && process.arch === "x64" && existsSync(GGML);
if (!haveGGML) console.warn(`quant_test (bun): ${GGML} not found; skipping byte-identity tests`);
const NAMES: Record<number, string> = {
  [T.Q4_0]: "q4_0",
  [T.Q8_0]: "q8_0",
  [T.Q4_K]: "q4_K",
  [T.Q6_K]: "q6_K",
  [T.MXFP4]: "mxfp4",
};
const sig = { args: [FFIType.ptr, FFIType.ptr, FFIType.i64], returns: FFIType.void } as const;
const ggml = haveGGML
  ? dlopen(
    GGML,
    Object.fromEntries(Object.values(NAMES).map((n) => [`quantize_row_${n}_ref`, sig])),
  )
  : undefined;

afterAll(() => {
  sym.spool_pool_destroy(pool);
  closeQuantizePool();
  ggml?.close();
});

describe("byte identity with llama.cpp", () => {
  for (const [type, name] of Object.entries(NAMES)) {
    test.skipIf(!haveGGML)(`${name} quantize_row_${name}_ref`, () => {
      const rows = 4, cols = 1024;
      const src = normals(rows * cols, 11 + Number(type), 0.1);
      src.fill(0, 256, 512); // an all-zero stretch
      for (let i = 2048; i < 2304; i++) src[i] *= 1e-7; // tiny values
      src[3000] = 40; // an outlier
      const ours = quantize(Number(type), src, rows, cols);
      const theirs = new Uint8Array(ours.length);
      const fn = ggml!.symbols[`quantize_row_${name}_ref`];
      fn(ptr(src), ptr(theirs), rows * cols);
      expect(Buffer.compare(Buffer.from(ours), Buffer.from(theirs))).toBe(0);
    });
  }
});

test("dequantize a hand-built Q4_K block", () => {
  const b = new Uint8Array(144);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 0x3c00, true); // d = 1
  dv.setUint16(2, 0x3800, true); // dmin = 0.5
  for (let j = 0; j < 4; j++) b[4 + j] = 2, b[8 + j] = 1, b[12 + j] = 0x21;
  b.fill(0x53, 16);
  const y = dequantize(T.Q4_K, b, 256);
  expect([y[0], y[32], y[128], y[160], y[255]]).toEqual([5.5, 9.5, 2, 4, 4]);
});

test.skipIf(!hasSimd)("matmul SIMD vs REF (Q4_K, Q6_K, Q8_0, MXFP4; act f32 and q8)", () => {
  for (const type of [T.Q4_K, T.Q6_K, T.Q8_0, T.MXFP4]) {
    for (const [rows, cols, nTok] of [[37, 512, 1], [67, 256, 17]]) {
      const w = quantize(type, normals(rows * cols, rows + type, 1 / Math.sqrt(cols)), rows, cols);
      const x = normals(nTok * cols, 5);
      for (const act of [0, 1]) {
        const run = () => {
          const y = new Float32Array(rows * nTok);
          const scratch = new Uint8Array(
            Math.max(8, sym.spool_matmul_scratch_bytes(type, cols, nTok, act)),
          );
          check(
            sym.spool_matmul(
              pool,
              type,
              nat.ptr(w),
              rows,
              cols,
              nat.ptr(x),
              nTok,
              nat.ptr(y),
              act,
              nat.ptr(scratch),
            ),
            "spool_matmul",
          );
          return y;
        };
        const e = nmse(withImpl(simdImpl, run), withImpl(Impl.REF, run));
        expect(e).toBeLessThanOrEqual(1e-10);
      }
    }
  }
});

test("error statuses", () => {
  const w = new Uint8Array(quantRowBytes(T.Q8_0, 64));
  const x = new Float32Array(64), y = new Float32Array(1);
  expect(sym.spool_matmul(null, 99, nat.ptr(w), 1, 64, nat.ptr(x), 1, nat.ptr(y), 0, null)).toBe(
    -2,
  );
  expect(sym.spool_matmul(null, T.Q8_0, nat.ptr(w), 1, 48, nat.ptr(x), 1, nat.ptr(y), 0, null))
    .toBe(-1);
  expect(() => quantize(T.Q4_K, new Float32Array(100), 1, 100)).toThrow(KernelError);
  try {
    check(
      sym.spool_matmul(null, 99, nat.ptr(w), 1, 64, nat.ptr(x), 1, nat.ptr(y), 0, null),
      "spool_matmul",
    );
  } catch (e) {
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).status).toBe(-2);
  }
});
