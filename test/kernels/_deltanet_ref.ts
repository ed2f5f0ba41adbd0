/**
 * Float64 references of the gated DeltaNet ops of spool.h (spool_ssm_conv, spool_gdn_gates,
 * spool_gated_delta_net, spool_gated_rmsnorm), written from the math of the Gated DeltaNet
 * layer (Qwen3-Next / Qwen3.5), not from the C code. The recurrent state is held here as the
 * key-major matrix S[i][j] (i key, j value); conversion to and from the op's transposed
 * layout (head, j, i) happens only at the boundary.
 */

/** Parameters of {@link deltaNetRef}. */
export interface DeltaNetParams {
  nTok: number;
  nKHead: number;
  nVHead: number;
  dk: number;
  dv: number;
  /** Token strides (floats) of q, k and v. */
  qStride: number;
  kStride: number;
  vStride: number;
  scale: number;
  eps: number;
  /** L2-normalize q and k. */
  l2norm: boolean;
  /** Value head h reads key head h % nKHead (else h / (nVHead / nKHead)). */
  tiled: boolean;
}

/** Causal depthwise conv over [state; x]; returns y and the new state (last k-1 rows). */
export function ssmConvRef(
  x: Float32Array,
  w: Float32Array,
  state: Float32Array,
  nTok: number,
  channels: number,
  k: number,
  silu: boolean,
): { y: Float64Array; state: Float64Array } {
  const win = (j: number, c: number) =>
    j < k - 1 ? state[j * channels + c] : x[(j - (k - 1)) * channels + c];
  const y = new Float64Array(nTok * channels);
  for (let t = 0; t < nTok; t++) {
    for (let c = 0; c < channels; c++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += win(t + i, c) * w[c * k + i];
      y[t * channels + c] = silu ? s / (1 + Math.exp(-s)) : s;
    }
  }
  const next = new Float64Array((k - 1) * channels);
  for (let r = 0; r < k - 1; r++) {
    for (let c = 0; c < channels; c++) next[r * channels + c] = win(nTok + r, c);
  }
  return { y, state: next };
}

/** g = softplus(alpha + dtBias) · a and beta = sigmoid(b), per (token, head). */
export function gdnGatesRef(
  alpha: Float32Array,
  b: Float32Array,
  dtBias: Float32Array,
  a: Float32Array,
  nTok: number,
  nHead: number,
): { g: Float64Array; beta: Float64Array } {
  const g = new Float64Array(nTok * nHead), beta = new Float64Array(nTok * nHead);
  for (let t = 0; t < nTok; t++) {
    for (let h = 0; h < nHead; h++) {
      const s = alpha[t * nHead + h] + dtBias[h];
      g[t * nHead + h] = Math.log1p(Math.exp(s)) * a[h];
      beta[t * nHead + h] = 1 / (1 + Math.exp(-b[t * nHead + h]));
    }
  }
  return { g, beta };
}

function l2(x: ArrayLike<number>, off: number, n: number, eps: number): Float64Array {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[off + i] * x[off + i];
  const inv = 1 / Math.sqrt(s + eps);
  return Float64Array.from({ length: n }, (_, i) => x[off + i] * inv);
}

/**
 * The gated delta rule over nTok tokens: per value head, S ← S·exp(g); S ← S + k ⊗ β(v − Sᵀk);
 * o = scale · Sᵀq. `state` is in the op's layout (nVHead, dv, dk); returns the output
 * (nTok, nVHead, dv) and the new state in the op's layout.
 */
export function deltaNetRef(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  g: ArrayLike<number>,
  beta: ArrayLike<number>,
  state: ArrayLike<number>,
  p: DeltaNetParams,
): { out: Float64Array; state: Float64Array } {
  const { nTok, nKHead, nVHead, dk, dv } = p;
  const out = new Float64Array(nTok * nVHead * dv);
  const next = new Float64Array(nVHead * dv * dk);
  for (let h = 0; h < nVHead; h++) {
    const kh = p.tiled ? h % nKHead : Math.floor(h / (nVHead / nKHead));
    const S = new Float64Array(dk * dv); // S[i*dv + j], key-major
    for (let j = 0; j < dv; j++) {
      for (let i = 0; i < dk; i++) S[i * dv + j] = state[(h * dv + j) * dk + i];
    }
    for (let t = 0; t < nTok; t++) {
      const qo = t * p.qStride + kh * dk, ko = t * p.kStride + kh * dk;
      const qt = p.l2norm ? l2(q, qo, dk, p.eps) : Float64Array.from(q.subarray(qo, qo + dk));
      const kt = p.l2norm ? l2(k, ko, dk, p.eps) : Float64Array.from(k.subarray(ko, ko + dk));
      const decay = Math.exp(g[t * nVHead + h]), b = beta[t * nVHead + h];
      for (let x = 0; x < S.length; x++) S[x] *= decay;
      for (let j = 0; j < dv; j++) {
        let sk = 0;
        for (let i = 0; i < dk; i++) sk += S[i * dv + j] * kt[i];
        const d = (v[t * p.vStride + h * dv + j] - sk) * b;
        for (let i = 0; i < dk; i++) S[i * dv + j] += kt[i] * d;
      }
      for (let j = 0; j < dv; j++) {
        let o = 0;
        for (let i = 0; i < dk; i++) o += S[i * dv + j] * qt[i];
        out[(t * nVHead + h) * dv + j] = o * p.scale;
      }
    }
    for (let j = 0; j < dv; j++) {
      for (let i = 0; i < dk; i++) next[(h * dv + j) * dk + i] = S[i * dv + j];
    }
  }
  return { out, state: next };
}

/** y = x / rms(x) · w · silu(z) per row of n. */
export function gatedRmsnormRef(
  x: Float32Array,
  w: Float32Array | null,
  z: Float32Array,
  rows: number,
  n: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[r * n + i] ** 2;
    const inv = 1 / Math.sqrt(s / n + eps);
    for (let i = 0; i < n; i++) {
      const zi = z[r * n + i];
      y[r * n + i] = x[r * n + i] * inv * (w ? w[i] : 1) * zi / (1 + Math.exp(-zi));
    }
  }
  return y;
}
