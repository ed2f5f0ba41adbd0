/**
 * Attention blocks. Input: the normed rows in buf.h; output: the projected rows in buf.o.
 *
 * {@link gqaAttention}: grouped-query attention with optional q/k/v/o biases, q/k RMS norms
 * per head or over the whole projection, rotary embedding (possibly partial) and sinks;
 * llama.cpp's `build_attn` with the roundings of its plain CPU path (engine KV in f16).
 *
 * @module
 */
import { RopeMode, type RopeParams } from "../backend/backend.ts";
import type { ModelConfig } from "./config.ts";
import type { StepContext } from "./step.ts";
import type { LayerWeights } from "./weights.ts";

const ropeCache = new WeakMap<ModelConfig, RopeParams>();

/** The rotary parameters of a config (YaRN/linear scaling as ggml applies them). */
export function ropeParams(c: ModelConfig): RopeParams {
  let p = ropeCache.get(c);
  if (p) return p;
  const r = c.rope, sc = r.scaling;
  let freqScale = 1, extFactor = 0;
  if (sc && sc.factor > 0 && (sc.type === "yarn" || sc.type === "linear")) {
    freqScale = 1 / sc.factor;
    if (sc.type === "yarn") extFactor = 1;
  }
  p = {
    nRot: r.dim,
    mode: r.type === "neox" ? RopeMode.NEOX : RopeMode.NORMAL,
    freqBase: r.freqBase,
    freqScale,
    extFactor,
    attnFactor: 1,
    betaFast: 32,
    betaSlow: 1,
    nCtxOrig: sc?.origCtx || c.nCtxTrain,
  };
  ropeCache.set(c, p);
  return p;
}

/**
 * Grouped-query attention of layer `L` on buf.h into buf.o:
 * q, k, v projections (+ biases), q/k norms, rope, the engine's KV + attention, output
 * projection (+ bias).
 */
export function gqaAttention(ctx: StepContext, L: LayerWeights, li: number): void {
  const { be, cfg: c, buf: B, m } = ctx;
  const hd = c.headDim;
  ctx.mm(L.mat("attn_q"), B.h.ptr, m, B.q.ptr);
  ctx.mm(L.mat("attn_k"), B.h.ptr, m, B.k.ptr);
  ctx.mm(L.mat("attn_v"), B.h.ptr, m, B.v.ptr);
  // biases and q/k norms: whichever the layer has (glm4moe's are optional in the file)
  const qb = L.vecOpt("attn_q.bias"), kb = L.vecOpt("attn_k.bias"), vb = L.vecOpt("attn_v.bias");
  if (qb) be.addBias(B.q, qb, m);
  if (kb) be.addBias(B.k, kb, m);
  if (vb) be.addBias(B.v, vb, m);
  const qn = L.vecOpt("attn_q_norm"), kn = L.vecOpt("attn_k_norm");
  if (qn && kn) {
    // per head (weights of head_dim) or over the whole projection (olmoe, minimax-m2)
    const full = c.qkNorm === "full";
    be.rmsnorm(
      B.q.ptr,
      qn.ptr,
      B.q.ptr,
      full ? m : m * c.nHead,
      full ? c.nHead * hd : hd,
      c.rmsEps,
    );
    be.rmsnorm(
      B.k.ptr,
      kn.ptr,
      B.k.ptr,
      full ? m : m * c.nHeadKv,
      full ? c.nHeadKv * hd : hd,
      c.rmsEps,
    );
  }
  const rope = ropeParams(c);
  be.rope(B.q.ptr, ctx.pos, m, c.nHead, hd, rope);
  be.rope(B.k.ptr, ctx.pos, m, c.nHeadKv, hd, rope);
  ctx.attend(li, {
    nHead: c.nHead,
    nHeadKv: c.nHeadKv,
    headDim: hd,
    scale: 1 / Math.sqrt(hd),
    window: L.window,
    sinks: L.vecOpt("attn_sinks")?.ptr ?? null,
  });
  ctx.mm(L.mat("attn_output"), B.att.ptr, m, B.o.ptr);
  const ob = L.vecOpt("attn_output.bias");
  if (ob) be.addBias(B.o, ob, m);
}
