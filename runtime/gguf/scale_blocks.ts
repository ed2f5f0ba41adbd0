/**
 * Exact power-of-two scaling of stored tensor data, without dequantizing: multiply every value
 * of a run of rows by 2^p by changing only the scales of its blocks.
 *
 * A quantized block is `scale × code (+ min)`; multiplying the f16 scale (and min) by 2^p
 * adds p to its exponent, which is exact unless it overflows f16 (65504) — a subnormal scale
 * is normalized, also exactly. Every value of the block is then multiplied by 2^p exactly,
 * because the codes do not change and ggml computes `code * d + m` in f32. Per type
 * (block layouts from ggml-common.h):
 *
 * | type | scale fields scaled (byte offset in the block) | block bytes |
 * |---|---|---|
 * | F32 / F16 / BF16 | every value | 4 / 2 / 2 |
 * | Q4_0, Q5_0, Q8_0 | d (0) | 18, 22, 34 |
 * | Q4_1, Q5_1 | d (0), m (2) | 20, 24 |
 * | Q2_K | d (80), dmin (82) | 84 |
 * | Q3_K | d (108) | 110 |
 * | Q4_K, Q5_K | d (0), dmin (2) | 144, 176 |
 * | Q6_K | d (208) | 210 |
 * | IQ4_NL, IQ4_XS, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S | d (0) | |
 * | TQ1_0 / TQ2_0 | d (52 / 64) | 54 / 66 |
 * | MXFP4 | e8m0 exponent (0): e + p | 17 |
 *
 * The others (IQ1_M, whose scale is split over its sub-block scales; integer types; F64)
 * are refused by {@link scaleRows} with a {@link ScaleError}.
 *
 * @module
 */

import { GGMLType, typeInfo } from "./types.ts";

/** Data that cannot be scaled exactly (unsupported type, or a value would overflow). */
export class ScaleError extends Error {
  /** ggml type name of the data. */
  readonly typeName: string;

  /**
   * @param typeName ggml type name
   * @param message what and where
   * @param options standard error options (`cause`)
   */
  constructor(typeName: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ScaleError";
    this.typeName = typeName;
  }
}

/** f16 scale fields (byte offsets inside one block) per quantized type. */
const F16_FIELDS: Readonly<Record<number, readonly number[]>> = {
  [GGMLType.Q4_0]: [0],
  [GGMLType.Q5_0]: [0],
  [GGMLType.Q8_0]: [0],
  [GGMLType.Q4_1]: [0, 2],
  [GGMLType.Q5_1]: [0, 2],
  [GGMLType.Q2_K]: [80, 82],
  [GGMLType.Q3_K]: [108],
  [GGMLType.Q4_K]: [0, 2],
  [GGMLType.Q5_K]: [0, 2],
  [GGMLType.Q6_K]: [208],
  [GGMLType.IQ4_NL]: [0],
  [GGMLType.IQ4_XS]: [0],
  [GGMLType.IQ2_XXS]: [0],
  [GGMLType.IQ2_XS]: [0],
  [GGMLType.IQ2_S]: [0],
  [GGMLType.IQ3_XXS]: [0],
  [GGMLType.IQ3_S]: [0],
  [GGMLType.IQ1_S]: [0],
  [GGMLType.TQ1_0]: [52],
  [GGMLType.TQ2_0]: [64],
};

/** Whether {@link scaleRows} can scale data of ggml type `type` exactly. */
export function canScaleExactly(type: number): boolean {
  return type === GGMLType.F32 || type === GGMLType.F16 || type === GGMLType.BF16 ||
    type === GGMLType.MXFP4 || Object.hasOwn(F16_FIELDS, type);
}

/**
 * The f16 bit pattern `h` times 2^p (p >= 0), exactly; undefined when the result would
 * overflow to infinity. Zeros, infinities and NaNs are returned unchanged.
 */
export function scaleF16Bits(h: number, p: number): number | undefined {
  const sign = h & 0x8000;
  let e = (h >> 10) & 31;
  let m = h & 1023;
  if (e === 31 || (e === 0 && m === 0)) return h;
  if (e === 0) { // subnormal m * 2^-24: shift into the normal range first
    while (m < 1024 && p > 0) {
      m <<= 1;
      p--;
    }
    if (m < 1024) return sign | m;
    e = 1;
    m -= 1024;
  }
  e += p;
  if (e >= 31) return undefined;
  return sign | (e << 10) | m;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Multiply `bytes` (whole blocks of ggml type `type`, rewritten in place) by 2^p exactly.
 * @param where names the data in errors, e.g. `tensor "blk.3.ffn_down.weight"`
 * @throws ScaleError for a type without an exact scaling, or a value that would overflow
 */
export function scaleRows(type: number, bytes: Uint8Array, p: number, where: string): void {
  if (!Number.isInteger(p) || p < 0) throw new RangeError(`scale exponent ${p} is not >= 0`);
  const info = typeInfo(type);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const overflow = (at: number) =>
    new ScaleError(
      info.name,
      `Cannot scale ${where} by ${2 ** p} exactly: the ${info.name} value at byte ${at} ` +
        `would overflow`,
    );
  const f16At = (o: number) => {
    const h = scaleF16Bits(dv.getUint16(o, true), p);
    if (h === undefined) throw overflow(o);
    dv.setUint16(o, h, true);
  };
  if (bytes.length % info.typeSize !== 0) {
    throw new RangeError(`${where}: ${bytes.length} bytes is not whole ${info.name} blocks`);
  }
  if (type === GGMLType.F32) {
    for (let o = 0; o < bytes.length; o += 4) {
      const v = dv.getFloat32(o, true);
      if (!Number.isFinite(v)) continue;
      f32[0] = v * 2 ** p;
      if (!Number.isFinite(f32[0])) throw overflow(o);
      dv.setFloat32(o, f32[0], true);
    }
  } else if (type === GGMLType.F16) {
    for (let o = 0; o < bytes.length; o += 2) f16At(o);
  } else if (type === GGMLType.BF16) {
    for (let o = 0; o < bytes.length; o += 2) {
      u32[0] = dv.getUint16(o, true) << 16;
      if (!Number.isFinite(f32[0])) continue;
      f32[0] = f32[0] * 2 ** p; // exact in f32 (bf16 has f32's exponent range) unless it overflows
      if (!Number.isFinite(f32[0]) || (u32[0] & 0xffff) !== 0) throw overflow(o);
      dv.setUint16(o, u32[0] >>> 16, true);
    }
  } else if (type === GGMLType.MXFP4) {
    for (let o = 0; o < bytes.length; o += info.typeSize) {
      const e = bytes[o] + p; // value 2^(e-127) × code; 255 is NaN
      if (e > 254) throw overflow(o);
      bytes[o] = e;
    }
  } else if (Object.hasOwn(F16_FIELDS, type)) {
    for (let o = 0; o < bytes.length; o += info.typeSize) {
      for (const f of F16_FIELDS[type]) f16At(o + f);
    }
  } else {
    throw new ScaleError(
      info.name,
      `Cannot scale ${where} exactly: type ${info.name} has no known exact scaling ` +
        `(supported: F32, F16, BF16, the Q*, IQ* (not IQ1_M) and TQ* types, MXFP4); ` +
        `requantize the model first (spool quantize IN OUT Q8_0)`,
    );
  }
}
