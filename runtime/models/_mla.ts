/**
 * Multi-head latent attention (DeepSeek-V2/V3, Kimi K2) in the absorbed form of llama.cpp's
 * deepseek2 graph with `attn_k_b`/`attn_v_b`. Input: the normed rows in buf.h; output:
 * buf.o. With H heads, per-head q/k size dK = nope + rope, latent rank R and rope size r:
 *
 *   q      (m, H, dK) = attn_q_b · rmsnorm(attn_q_a · h)   (or attn_q · h without q LoRA)
 *   kvpe   (m, R + r) = attn_kv_a_mqa · h; kv = rmsnorm(kvpe[:R]); k_pe = rope(kvpe[R:])
 *   Q      (m, H, R + r) = [attn_k_b[h] · q_nope[h], rope(q_pe[h])]   per head h
 *   K row  = [kv, k_pe] (the KV cache's one latent entry per token), V = its first R values
 *   lat    (m, H, R) = softmax(Q·Kᵀ · kq_scale) · V        (one KV head: MQA)
 *   out    (m, H·dV) = attn_v_b[h] · lat[h]; o = attn_output · out
 *
 * Rope is "normal" (adjacent pairs) on the LAST r dims of each q head and on k_pe. With YaRN,
 * llama.cpp folds mscale into the attention scale: kq_scale = mscale² / sqrt(dK) with
 * mscale = 1 + 0.1 · yarn_log_mul · ln(factor), and rope's own magnitude factor cancelled
 * (attn_factor 1 / (1 + 0.1 · ln(factor))).
 *
 * @module
 */
import type { RopeParams } from "../backend/backend.ts";
import { ropeParams } from "./_attention.ts";
import type { ModelConfig } from "./config.ts";
import type { StepContext } from "./step.ts";
import type { LayerWeights } from "./weights.ts";

/** The rope parameters and attention scale of an MLA config. */
interface MLAScales {
  readonly rope: RopeParams;
  readonly kqScale: number;
}

const scaleCache = new WeakMap<ModelConfig, MLAScales>();

/** Rope parameters and kq_scale of `c` (YaRN's mscale folded into the scale). */
export function mlaScales(c: ModelConfig): MLAScales {
  let s = scaleCache.get(c);
  if (s) return s;
  const base = ropeParams(c);
  const f = Math.fround;
  const yarn = base.extFactor !== 0;
  // llama.cpp: attn_factor = 1/(1 + 0.1 ln(1/freq_scale)) when YaRN is on (cancels ggml's own
  // mscale in rope); attn_factor_org = attn_factor · (1 + 0.1 ln(1/freq_scale)) = 1
  const lnf = Math.log(1 / base.freqScale);
  const attnFactor = yarn ? f(1 / f(1 + f(0.1 * lnf))) : 1;
  const attnFactorOrg = f(attnFactor * f(1 + f(0.1 * lnf)));
  const logMul = (c.rope.scaling?.yarnLogMul ?? 0) / 0.1;
  const mscale = f(attnFactorOrg * f(1 + f(0.1 * f(logMul * lnf))));
  const kqScale = f(f(mscale * mscale) / Math.sqrt(c.mla!.headDimK));
  s = { rope: { ...base, attnFactor }, kqScale };
  scaleCache.set(c, s);
  return s;
}

/** Absorbed multi-head latent attention of layer `L` on buf.h into buf.o. */
export function mlaAttention(ctx: StepContext, L: LayerWeights, li: number): void {
  const { be, cfg: c, buf: B, m } = ctx;
  const a = c.mla!;
  const H = c.nHead, dK = a.headDimK, R = a.kvLoraRank, r = a.qkRopeDim, nope = a.qkNopeDim;
  const row = R + r; // latent KV entry, = c.headDim
  const { rope, kqScale } = mlaScales(c);
  // q (m, H, dK)
  const q = ctx.tmp("mla.q", m * H * dK);
  if (a.qLoraRank > 0) {
    const qa = ctx.tmp("mla.qa", m * a.qLoraRank);
    ctx.mm(L.mat("attn_q_a"), B.h.ptr, m, qa.ptr);
    be.rmsnorm(qa.ptr, L.vec("attn_q_a_norm").ptr, qa.ptr, m, a.qLoraRank, c.rmsEps);
    ctx.mm(L.mat("attn_q_b"), qa.ptr, m, q.ptr);
  } else ctx.mm(L.mat("attn_q"), B.h.ptr, m, q.ptr);
  // the latent entry (m, R + r) in buf.k: rope on k_pe, RMS norm on the latent
  ctx.mm(L.mat("attn_kv_a_mqa"), B.h.ptr, m, B.k.ptr);
  be.rope(B.k.ptrAt(R * 4), ctx.pos, m, 1, row, rope);
  const kvNorm = L.vec("attn_kv_a_norm").ptr;
  for (let t = 0; t < m; t++) {
    const p = B.k.ptrAt(t * row * 4);
    be.rmsnorm(p, kvNorm, p, 1, R, c.rmsEps);
  }
  // q_pe roped in place (the last r dims of each head), then Q = [k_b · q_nope, q_pe]
  be.rope(q.ptrAt(nope * 4), ctx.pos, m, H, dK, rope);
  const kb = L.mat("attn_k_b"); // per head (R rows, nope cols)
  be.matmulBatched(
    kb,
    R * kb.rowBytes,
    H,
    q.ptr,
    H * dK,
    dK,
    m,
    B.q.ptr,
    H * row,
    row,
    ctx.scratch,
  );
  const Q = B.q.f32, qv = q.f32;
  for (let t = 0; t < m; t++) {
    for (let h = 0; h < H; h++) {
      const src = (t * H + h) * dK + nope, dst = (t * H + h) * row + R;
      Q.set(qv.subarray(src, src + r), dst);
    }
  }
  // one KV head of `row` values; V is its first R values
  ctx.attend(li, {
    nHead: H,
    nHeadKv: 1,
    headDim: row,
    headDimV: R,
    kRowStride: row,
    vRowStride: row,
    scale: kqScale,
    window: 0,
    sinks: null,
  });
  // decompress each head's latent output: (m, H, dV) = v_b[h] · lat[h]
  const vb = L.mat("attn_v_b"); // per head (dV rows, R cols)
  const dV = a.headDimV;
  const out = ctx.tmp("mla.out", m * H * dV);
  be.matmulBatched(
    vb,
    dV * vb.rowBytes,
    H,
    B.att.ptr,
    H * R,
    R,
    m,
    out.ptr,
    H * dV,
    dV,
    ctx.scratch,
  );
  ctx.mm(L.mat("attn_output"), out.ptr, m, B.o.ptr);
}
