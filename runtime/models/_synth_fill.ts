/**
 * Random tensor data of synthetic models (synth.ts): a seeded PRNG, the value distribution of
 * each tensor role (DESIGN §5: 1/sqrt(fan_in), norms in [0.5, 1.5], router ×2, output ×3),
 * Gated DeltaNet: decay rates ssm_a negative, time-step biases around 1; see distribution())
 * and the chunked filler that quantizes (or, in fast mode, assembles pre-quantized units).
 *
 * @module
 */

import { quantize } from "../gguf/quantize.ts";
import { GGMLType, type GGMLTypeName, typeInfo } from "../gguf/types.ts";
import type { TensorSpec } from "./config.ts";
import { routerRowScales } from "./_synth_skew.ts";

// ---------------------------------------------------------------------------------------------
// PRNG

/** 32-bit FNV-1a of a string, mixed with a seed. */
export function hashSeed(seed: number, name: string, index: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= index + 0x9e3779b9;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** splitmix32 step, to expand one seed into a xoshiro state. */
function splitmix(s: number): [number, number] {
  s = (s + 0x9e3779b9) | 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [s, (z ^ (z >>> 16)) | 0];
}

/** A small deterministic PRNG: xoshiro128**, seeded through splitmix32. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** @param seed any 32-bit integer */
  constructor(seed: number) {
    let s = seed | 0;
    let v: number;
    [s, v] = splitmix(s);
    this.a = v;
    [s, v] = splitmix(s);
    this.b = v;
    [s, v] = splitmix(s);
    this.c = v;
    [, v] = splitmix(s);
    this.d = v | 1;
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9);
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r >>> 0;
  }

  /**
   * Fill `out` with uniform values in [center - half, center + half). The hot loop of the
   * generator: state kept in locals.
   */
  fillUniform(out: Float32Array, center: number, half: number): void {
    let a = this.a, b = this.b, c = this.c, d = this.d;
    const k = half / 2147483648;
    for (let i = 0; i < out.length; i++) {
      const r = Math.imul(rotl(Math.imul(b, 5), 7), 9);
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = (d << 11) | (d >>> 21);
      out[i] = center + (r | 0) * k;
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// ---------------------------------------------------------------------------------------------
// Value distributions

/** Center and half-width of the uniform distribution of a tensor's values. */
function distribution(spec: TensorSpec): { center: number; half: number } {
  const SQRT3 = Math.sqrt(3);
  const std = (s: number) => ({ center: 0, half: SQRT3 * s });
  const fan = spec.shape[0];
  switch (spec.role) {
    case "norm":
      return { center: 1, half: 0.5 };
    case "embedding":
      return std(1);
    case "output":
      return std(3 / Math.sqrt(fan));
    case "router":
    case "shexp_gate":
      return std(2 / Math.sqrt(fan));
    case "router_bias":
      return { center: 0, half: 0.5 };
    case "probs_bias":
      // sigmoid probabilities differ by ~0.1..0.5: a bias of this size changes some choices
      return { center: 0, half: 0.25 };
    case "bias":
    case "expert_bias":
      return { center: 0, half: 0.2 };
    case "sinks":
      return { center: 0, half: 1 };
    case "ssm_a":
      // -A with A in [0.05, 2.05]: per-token decay exp(-A·softplus(alpha + dt)) from ~0.97
      // (long memory) to ~0.05, never above 1. HF initializes A ~ U(0, 16), where most heads
      // forget within a token and a state bug would hardly show.
      return { center: -1.05, half: 1 };
    case "ssm_dt":
      // around HF's initial dt_bias of 1, away from 0 so a forgotten bias shows
      return { center: 1, half: 0.5 };
    default:
      return std(1 / Math.sqrt(fan));
  }
}

/** Multiply row r (of `cols` values) of `f32` by `scales[r]`. */
function scaleRows(f32: Float32Array, cols: number, scales: Float64Array): void {
  for (let r = 0; r < scales.length; r++) {
    const s = scales[r];
    for (let i = r * cols, end = i + cols; i < end; i++) f32[i] *= s;
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding f32 rows into a stored type

/** Encode `rows` rows of `cols` f32 values as `type` (native, byte-identical to ggml). */
function encode(type: GGMLTypeName, f32: Float32Array, rows: number, cols: number): Uint8Array {
  if (type === "F32") return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  return quantize(GGMLType[type], f32, rows, cols);
}

/** Elements per generated chunk of a non-expert tensor (rows are never split). */
const CHUNK_ELEMS = 1 << 22;
/** Units (of {@link POOL_UNIT} elements) in a fast-fill pool. */
const POOL_UNITS = 4096;
const POOL_UNIT = 256;

interface Pool {
  bytes: Uint8Array;
  unitBytes: number;
}

/**
 * Streams the data of each tensor: `exact` generates and encodes every value; `fast`
 * assembles quantized tensors from a pool of pre-quantized units.
 */
export class TensorFiller {
  private pools = new Map<string, Pool>();

  /**
   * @param routerSkew log-std of the router rows' scales (_synth_skew.ts); 0 = the plain
   *   uniform router, bytes unchanged
   */
  constructor(
    private seed: number,
    private fill: "exact" | "fast",
    private routerSkew = 0,
  ) {}

  /** Write tensor `spec` as `type` through `sink`, one chunk at a time. */
  write(spec: TensorSpec, type: GGMLTypeName, sink: (bytes: Uint8Array) => void): void {
    const ne0 = spec.shape[0];
    const rowsTotal = spec.shape.slice(1).reduce((a, b) => a * b, 1);
    // Experts: one chunk per expert slice (ne0 × ne1), seeded by expert index, so a slice
    // is reproducible on its own. Others: row chunks of about CHUNK_ELEMS values.
    const rowsPerChunk = spec.expert
      ? (spec.shape.length === 3 ? spec.shape[1] : 1)
      : Math.max(1, Math.floor(CHUNK_ELEMS / ne0));
    const { center, half } = distribution(spec);
    const info = typeInfo(GGMLType[type]);
    // routers are F32 (never pooled); their rows get the skew's per-expert scales, if any
    const scales = spec.role === "router"
      ? routerRowScales(this.seed, spec.name, rowsTotal, this.routerSkew)
      : null;
    const fast = this.fill === "fast" && info.quantized && ne0 % POOL_UNIT === 0 && !scales;
    let f32: Float32Array | undefined;
    for (let r0 = 0, chunk = 0; r0 < rowsTotal; r0 += rowsPerChunk, chunk++) {
      const rows = Math.min(rowsPerChunk, rowsTotal - r0);
      const rng = new Rng(hashSeed(this.seed, spec.name, chunk));
      if (fast) {
        sink(this.assemble(type, center, half, rows * ne0, rng));
        continue;
      }
      if (!f32 || f32.length !== rows * ne0) f32 = new Float32Array(rows * ne0);
      rng.fillUniform(f32, center, half);
      if (scales) scaleRows(f32, ne0, scales.subarray(r0, r0 + rows));
      sink(encode(type, f32, rows, ne0));
    }
  }

  private assemble(
    type: GGMLTypeName,
    center: number,
    half: number,
    n: number,
    rng: Rng,
  ): Uint8Array {
    const key = `${type}:${center}:${half}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const f32 = new Float32Array(POOL_UNITS * POOL_UNIT);
      new Rng(hashSeed(this.seed, `pool:${key}`, 0)).fillUniform(f32, center, half);
      const bytes = encode(type, f32, POOL_UNITS, POOL_UNIT);
      pool = { bytes, unitBytes: bytes.length / POOL_UNITS };
      this.pools.set(key, pool);
    }
    const ub = pool.unitBytes;
    const units = n / POOL_UNIT;
    const out = new Uint8Array(units * ub);
    const src = pool.bytes;
    for (let u = 0, off = 0; u < units; u++, off += ub) {
      const s = (rng.nextU32() & (POOL_UNITS - 1)) * ub;
      out.set(src.subarray(s, s + ub), off);
    }
    return out;
  }
}
