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
  if (c.attnQKVBias) {
    be.addBias(B.q, L.vec("attn_q.bias"), m);
    be.addBias(B.k, L.vec("attn_k.bias"), m);
    be.addBias(B.v, L.vec("attn_v.bias"), m);
  }
  if (c.qkNorm === "head") {
    be.rmsnorm(B.q.ptr, L.vec("attn_q_norm").ptr, B.q.ptr, m * c.nHead, hd, c.rmsEps);
    be.rmsnorm(B.k.ptr, L.vec("attn_k_norm").ptr, B.k.ptr, m * c.nHeadKv, hd, c.rmsEps);
  } else if (c.qkNorm === "full") {
    be.rmsnorm(B.q.ptr, L.vec("attn_q_norm").ptr, B.q.ptr, m, c.nHead * hd, c.rmsEps);
    be.rmsnorm(B.k.ptr, L.vec("attn_k_norm").ptr, B.k.ptr, m, c.nHeadKv * hd, c.rmsEps);
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
    sinks: c.attnSinks ? L.vec("attn_sinks").ptr : null,
  });
  ctx.mm(L.mat("attn_output"), B.att.ptr, m, B.o.ptr);
  if (c.attnOutBias) be.addBias(B.o, L.vec("attn_output.bias"), m);
}
