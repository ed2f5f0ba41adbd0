/**
 * Independent JS references (float64 unless noted) of the ops in spool.h, and small
 * helpers (PRNG, normal draws, NMSE) shared by the kernel tests under test/kernels/ (Deno)
 * and test/bun/ (Bun).
 * Written from the op definitions in spool.h, not from the C code.
 */

/** Deterministic PRNG (mulberry32) with uniform and normal draws. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next(), v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  /** n normal values times `scale`, as f32. */
  f32(n: number, scale = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * scale;
    return a;
  }
}

/** The mulberry32 stream of {@link Rng} as a function: uniform in [0, 1). */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** Standard normal from a uniform source (Box-Muller; u clamped away from 0). */
export function normal(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

/** Normalized mean squared error sum((a-b)^2) / sum(b^2) (b is the reference). */
export function nmse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return den === 0 ? num : num / den;
}

/** f16 bits -> value (exact), NaN payloads kept as bits by {@link f16ToF32Bits}. */
export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1024 + m) * 2 ** (e - 25);
}

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

/** The f32 bit pattern an f16 widens to: exact value, NaN -> sign | exp 0xff | man << 13. */
export function f16ToF32Bits(h: number): number {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 31 && m) return ((((h & 0x8000) << 16) | 0x7f800000 | (m << 13)) >>> 0);
  cvtF32[0] = f16ToNumber(h);
  return cvtU32[0];
}

function roundHalfEven(q: number): number {
  const f = Math.floor(q), d = q - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** f32 (given as bits) -> f16 bits, round to nearest even; NaN -> sign | 0x7e00. */
export function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  if (exp === 0xff) return sign | ((bits & 0x7fffff) ? 0x7e00 : 0x7c00);
  cvtU32[0] = bits & 0x7fffffff;
  const a = cvtF32[0]; // |x|, exact
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (or carries to 0x400)
  const e = exp - 127;
  let r = roundHalfEven(a * 2 ** (10 - e)); // in [1024, 2048]
  let ee = e;
  if (r === 2048) {
    r = 1024;
    ee++;
  }
  return sign | ((ee + 15) << 10) | (r - 1024);
}

/** y = x / sqrt(mean(x^2) + eps) * w per row. */
export function rmsnormRef(
  x: Float32Array,
  w: Float32Array | null,
  rows: number,
  n: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[r * n + i] ** 2;
    const sc = 1 / Math.sqrt(s / n + Math.fround(eps));
    for (let i = 0; i < n; i++) y[r * n + i] = x[r * n + i] * sc * (w ? w[i] : 1);
  }
  return y;
}

/** Row-wise softmax. */
export function softmaxRef(x: Float32Array, rows: number, n: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) m = Math.max(m, x[r * n + i]);
    let s = 0;
    for (let i = 0; i < n; i++) s += y[r * n + i] = Math.exp(x[r * n + i] - m);
    for (let i = 0; i < n; i++) y[r * n + i] /= s;
  }
  return y;
}

/** x * sigmoid(x). */
export function siluRef(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** Parameters of {@link ropeRef}. */
export interface RopeParams {
  nTok: number;
  nHead: number;
  headDim: number;
  nRot: number;
  mode: number;
  freqBase: number;
  freqScale: number;
  extFactor: number;
  attnFactor: number;
  betaFast: number;
  betaSlow: number;
  nCtxOrig: number;
  freqFactors: Float32Array | null;
}

/**
 * RoPE with YaRN as ggml defines it. The angle sequence is reproduced with f32 rounding
 * (theta starts at pos and is multiplied by freq_base^(-2/n_rot) once per pair, each
 * product rounded to f32, as ggml's cache does), because an f32 angle of a large position
 * differs from the exact one by far more than the rotation's own rounding. Everything
 * after the angle (cos, sin, ramp, rotation) is float64.
 */
export function ropeRef(x: Float32Array, pos: Int32Array, p: RopeParams): Float64Array {
  const f = Math.fround;
  const y = Float64Array.from(x);
  const half = p.nRot / 2;
  const thetaScale = f(Math.pow(f(p.freqBase), f(-2 / p.nRot)));
  let low = 0, high = 0;
  if (p.extFactor !== 0) {
    const corr = (rot: number) =>
      p.nRot * Math.log(p.nCtxOrig / (rot * 2 * Math.PI)) / (2 * Math.log(p.freqBase));
    low = Math.max(0, Math.floor(corr(p.betaFast)));
    high = Math.min(p.nRot - 1, Math.ceil(corr(p.betaSlow)));
  }
  let mscale = p.attnFactor;
  if (p.extFactor !== 0) mscale *= 1 + 0.1 * Math.log(1 / p.freqScale);
  for (let t = 0; t < p.nTok; t++) {
    const cs = new Float64Array(half), sn = new Float64Array(half);
    let base = f(pos[t]);
    for (let i = 0; i < half; i++) {
      const extrap = f(base / (p.freqFactors ? p.freqFactors[i] : 1));
      const interp = f(f(p.freqScale) * extrap);
      let theta = interp;
      if (p.extFactor !== 0) {
        const yv = Math.min(1, Math.max(0, (i - low) / Math.max(0.001, high - low)));
        const mix = f((1 - yv) * f(p.extFactor));
        theta = f(f(interp * f(1 - mix)) + f(extrap * mix));
      }
      cs[i] = Math.cos(theta) * mscale;
      sn[i] = Math.sin(theta) * mscale;
      base = f(base * thetaScale);
    }
    for (let h = 0; h < p.nHead; h++) {
      const o = (t * p.nHead + h) * p.headDim;
      for (let i = 0; i < half; i++) {
        const a = p.mode === 2 ? o + i : o + 2 * i;
        const b = p.mode === 2 ? o + i + half : o + 2 * i + 1;
        const x0 = x[a], x1 = x[b];
        y[a] = x0 * cs[i] - x1 * sn[i];
        y[b] = x0 * sn[i] + x1 * cs[i];
      }
    }
  }
  return y;
}

/**
 * Top-k routing of one token; ties prefer the lower id. Gating ids as in spool.h. With
 * nGroup > 1, DeepSeek-V3's group limit (spool_topk_route_groups): only the experts of the
 * nGroupUsed groups whose two best selection scores sum highest can be chosen.
 */
export function routeRef(
  logits: ArrayLike<number>,
  bias: ArrayLike<number> | null,
  k: number,
  gating: number,
  norm: boolean,
  scale: number,
  nGroup = 1,
  nGroupUsed = 1,
): { ids: number[]; weights: number[] } {
  const n = logits.length;
  const m = Math.max(...Array.from(logits));
  let sum = 0;
  for (let e = 0; e < n; e++) sum += Math.exp(logits[e] - m);
  const prob = (e: number) =>
    gating === 0
      ? Math.exp(logits[e] - m) / sum
      : gating === 1
      ? 1 / (1 + Math.exp(-logits[e]))
      : logits[e];
  let order = Array.from({ length: n }, (_, e) => e);
  const sel = order.map((e) => prob(e) + (bias ? bias[e] : 0));
  if (nGroup > 1) {
    // group score: the sum of the group's two best selection scores; keep the best groups
    const per = n / nGroup;
    const gs = Array.from({ length: nGroup }, (_, g) => {
      const top = sel.slice(g * per, (g + 1) * per).sort((a, b) => b - a);
      return top[0] + top[1];
    });
    const groups = gs.map((_, g) => g).sort((a, b) => gs[b] - gs[a] || a - b);
    const kept = new Set(groups.slice(0, nGroupUsed));
    order = order.filter((e) => kept.has(Math.floor(e / per)));
  }
  order.sort((a, b) => sel[b] - sel[a] || a - b);
  const ids = order.slice(0, k);
  let w: number[];
  if (gating === 2) {
    const mk = Math.max(...ids.map((e) => logits[e]));
    const ex = ids.map((e) => Math.exp(logits[e] - mk));
    const s = ex.reduce((a, b) => a + b, 0);
    w = ex.map((v) => v / s);
  } else {
    w = ids.map(prob);
  }
  if (norm) { // llama.cpp clamps the sum to f16's smallest normal before dividing
    const s = Math.max(w.reduce((a, b) => a + b, 0), 6.103515625e-5);
    w = w.map((v) => v / s);
  }
  return { ids, weights: w.map((v) => v * scale) };
}

/** Parameters of {@link attentionRef}. */
export interface AttnParams {
  nTok: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nKv: number;
  pos0: number;
  scale: number;
  window: number;
  sinks: Float32Array | null;
}

/** x rounded to the nearest f16 value (through f32; ties to even). */
export function roundF16(x: number): number {
  cvtF32[0] = x;
  return f16ToNumber(f32BitsToF16(cvtU32[0]));
}

/**
 * Causal GQA attention over f16 K/V (bits), float64 throughout. With `ggml` (spool's
 * SPOOL_ATTN_GGML), the two roundings of ggml's non-flash attention are emulated: q is
 * rounded to f16 before q·k, and each normalized probability exp(s - m) / Σ is rounded to f16
 * before it multiplies v; the output is Σ p·v with no further division.
 */
export function attentionRef(
  q: Float32Array,
  k: Uint16Array,
  v: Uint16Array,
  p: AttnParams,
  ggml = false,
): Float64Array {
  const hd = p.headDim, group = p.nHead / p.nHeadKv, stride = p.nHeadKv * hd;
  const kf = Float64Array.from(k, f16ToNumber), vf = Float64Array.from(v, f16ToNumber);
  const qf = ggml ? Float64Array.from(q, roundF16) : Float64Array.from(q);
  const out = new Float64Array(p.nTok * p.nHead * hd);
  for (let t = 0; t < p.nTok; t++) {
    const pos = p.pos0 + t;
    const j0 = p.window > 0 ? Math.max(0, pos - p.window + 1) : 0;
    for (let h = 0; h < p.nHead; h++) {
      const qo = (t * p.nHead + h) * hd, ko = Math.floor(h / group) * hd;
      const s: number[] = [];
      for (let j = j0; j <= pos; j++) {
        let d = 0;
        for (let i = 0; i < hd; i++) d += qf[qo + i] * kf[j * stride + ko + i];
        s.push(d * Math.fround(p.scale));
      }
      const sink = p.sinks ? p.sinks[h] : -Infinity;
      let m = sink;
      for (const x of s) m = x > m ? x : m;
      let e = s.map((x) => Math.exp(x - m));
      let den = e.reduce((a, b) => a + b, 0) + Math.exp(sink - m);
      if (ggml) {
        e = e.map((x) => roundF16(x / den));
        den = 1;
      }
      for (let i = 0; i < hd; i++) {
        let acc = 0;
        for (let j = j0; j <= pos; j++) acc += e[j - j0] * vf[j * stride + ko + i];
        out[qo + i] = acc / den;
      }
    }
  }
  return out;
}

/** f32 values rounded through f16 bits (for building KV caches). */
export function toF16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  return Uint16Array.from(u, f32BitsToF16);
}

/** Parameters of {@link attentionExRef} (spool_attention_ex): head sizes and row strides. */
export interface AttnExParams {
  nTok: number;
  nHead: number;
  nHeadKv: number;
  hdk: number;
  hdv: number;
  /** elements from one position's K row to the next */
  kStride: number;
  /** elements from one position's V row to the next */
  vStride: number;
  nKv: number;
  pos0: number;
  scale: number;
  window: number;
  sinks: Float32Array | null;
}

/**
 * softmax(q·kᵀ·scale)·v in float64 for spool_attention_ex's layout: q (nTok, nHead, hdk),
 * key j of kv head h at k[j*kStride + h*hdk ..], value at v[j*vStride + h*hdv ..] (k and v
 * may be the same array: MLA), causal from pos0, optional window and sinks. With `ggml`, q
 * and the normalized probabilities are rounded to f16 as in {@link attentionRef}.
 */
export function attentionExRef(
  q: Float32Array,
  k: Uint16Array,
  v: Uint16Array,
  p: AttnExParams,
  ggml = false,
): Float64Array {
  const group = p.nHead / p.nHeadKv;
  const table = Float64Array.from({ length: 65536 }, (_, h) => f16ToNumber(h));
  const kf = Float64Array.from(k, (h) => table[h]);
  const vf = v === k ? kf : Float64Array.from(v, (h) => table[h]);
  const qf = ggml ? Float64Array.from(q, roundF16) : Float64Array.from(q);
  const out = new Float64Array(p.nTok * p.nHead * p.hdv);
  const scale = Math.fround(p.scale);
  for (let t = 0; t < p.nTok; t++) {
    const pos = p.pos0 + t;
    const j0 = p.window > 0 ? Math.max(0, pos - p.window + 1) : 0;
    for (let h = 0; h < p.nHead; h++) {
      const qo = (t * p.nHead + h) * p.hdk, kvh = Math.floor(h / group);
      const s: number[] = [];
      for (let j = j0; j <= pos; j++) {
        const ko = j * p.kStride + kvh * p.hdk;
        let d = 0;
        for (let i = 0; i < p.hdk; i++) d += qf[qo + i] * kf[ko + i];
        s.push(d * scale);
      }
      const sink = p.sinks ? p.sinks[h] : -Infinity;
      const m = s.reduce((a, b) => (b > a ? b : a), sink);
      let e = s.map((x) => Math.exp(x - m));
      let den = e.reduce((a, b) => a + b, 0) + Math.exp(sink - m);
      if (ggml) {
        e = e.map((x) => roundF16(x / den));
        den = 1;
      }
      const oo = (t * p.nHead + h) * p.hdv;
      for (let j = j0; j <= pos; j++) {
        const vo = j * p.vStride + kvh * p.hdv, w = e[j - j0] / den;
        for (let i = 0; i < p.hdv; i++) out[oo + i] += w * vf[vo + i];
      }
    }
  }
  return out;
}
