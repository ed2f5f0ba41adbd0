/**
 * Quantize and dequantize tensors with the native kernels (`spool_quantize`,
 * `spool_dequantize_row`). The quantizers are ports of llama.cpp's reference quantizers and
 * produce byte-identical blocks, so files written with them read the same in llama.cpp.
 *
 * Supported types (ggml ids): F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K, MXFP4, and Q8_1
 * and Q8_K (activation types; GGUF files do not use them). Rows are split over a lazily created
 * process-wide thread pool; {@link closeQuantizePool} joins it.
 *
 * @module
 */
import { availableParallelism } from "node:os";
import { check, isNull, KernelError, native, Status } from "../../ffi/mod.ts";
import type { Ptr } from "../../ffi/mod.ts";

/** ggml type ids the native quantizers handle (the same numbers as in GGUF). */
export const QuantType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 8,
  Q8_1: 9,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  BF16: 30,
  MXFP4: 39,
} as const;

/** A type id of {@link QuantType}. */
export type QuantTypeId = typeof QuantType[keyof typeof QuantType];

let pool: Ptr | undefined;

function sharedPool(): Ptr {
  if (pool === undefined) {
    const n = Math.max(1, Math.min(availableParallelism(), 16));
    const p = native().sym.spool_pool_create(n);
    if (isNull(p)) throw new KernelError("spool_pool_create", Status.NOMEM);
    pool = p;
  }
  return pool;
}

/** Join and free the quantizers' thread pool (it is recreated on next use). */
export function closeQuantizePool(): void {
  if (pool !== undefined) {
    native().sym.spool_pool_destroy(pool);
    pool = undefined;
  }
}

function typeName(type: number): string {
  const e = Object.entries(QuantType).find(([, v]) => v === type);
  return e ? e[0] : `type ${type}`;
}

/**
 * Bytes of one row of `cols` values in `type`. Throws a {@link KernelError} (status -2) for a
 * type the kernels do not know, and (status -1) when `cols` is not a multiple of the block.
 */
export function quantRowBytes(type: number, cols: number): number {
  const sym = native().sym;
  const blk = sym.spool_type_block_size(type);
  if (blk === 0) {
    throw new KernelError("spool_type_block_size", Status.TYPE, 0, `unsupported ${typeName(type)}`);
  }
  if (!Number.isInteger(cols) || cols < 0 || cols % blk !== 0) {
    throw new KernelError(
      "spool_quantize",
      Status.INVALID,
      0,
      `${cols} columns is not a multiple of the ${typeName(type)} block size ${blk}`,
    );
  }
  return (cols / blk) * sym.spool_type_block_bytes(type);
}

/**
 * Quantize `rows` rows of `cols` f32 values (`src`, row-major) into `dst` starting at byte
 * `dstOffset`, for streaming tensors into a GGUF writer chunk by chunk. Returns the bytes
 * written (`rows * quantRowBytes(type, cols)`).
 */
export function quantizeInto(
  type: number,
  src: Float32Array,
  rows: number,
  cols: number,
  dst: Uint8Array,
  dstOffset = 0,
): number {
  const rb = quantRowBytes(type, cols);
  const bytes = rows * rb;
  if (src.length < rows * cols) {
    throw new KernelError(
      "spool_quantize",
      Status.INVALID,
      0,
      `source holds ${src.length} values, ${rows}x${cols} needed`,
    );
  }
  if (dstOffset < 0 || dstOffset + bytes > dst.length) {
    throw new KernelError(
      "spool_quantize",
      Status.INVALID,
      0,
      `destination holds ${dst.length - dstOffset} bytes, ${bytes} needed`,
    );
  }
  if (bytes === 0) return 0;
  const n = native();
  const out = dstOffset === 0 ? dst : dst.subarray(dstOffset, dstOffset + bytes);
  check(
    n.sym.spool_quantize(sharedPool(), type, n.ptr(src), n.ptr(out), rows, cols),
    "spool_quantize",
    `${rows}x${cols} to ${typeName(type)}`,
  );
  return bytes;
}

/** Quantize `rows` × `cols` f32 values (row-major) to `type`; returns the packed rows. */
export function quantize(type: number, src: Float32Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows * quantRowBytes(type, cols));
  quantizeInto(type, src, rows, cols, out);
  return out;
}

/**
 * Dequantize the first `n` values (a multiple of the block size) of `bytes`, holding `type`
 * blocks, to f32. Bit-identical to llama.cpp's `dequantize_row_*`.
 */
export function dequantize(type: number, bytes: Uint8Array, n: number): Float32Array {
  const need = quantRowBytes(type, n);
  if (bytes.length < need) {
    throw new KernelError(
      "spool_dequantize_row",
      Status.INVALID,
      0,
      `${n} ${typeName(type)} values need ${need} bytes, got ${bytes.length}`,
    );
  }
  const out = new Float32Array(n);
  if (n === 0) return out;
  const nat = native();
  check(
    nat.sym.spool_dequantize_row(type, nat.ptr(bytes), nat.ptr(out), n),
    "spool_dequantize_row",
    typeName(type),
  );
  return out;
}
