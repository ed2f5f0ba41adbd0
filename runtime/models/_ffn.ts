/**
 * Feed-forward blocks. Input: the normed rows in buf.h; output: buf.moe.
 *
 * - {@link route}: router logits, then the architecture's gating and top-k
 *   ({@link RoutingSpec}), the same function for the MoE block and the engine's next-layer
 *   predictor.
 * - {@link moeFfn}: routed experts (through the engine, which owns residency) plus the shared
 *   expert, gated by a sigmoid of `ffn_gate_inp_shexp · h` (qwen2moe) or not.
 * - {@link denseFfn}: SwiGLU `down(silu(gate h) * up h)` of a dense layer.
 *
 * @module
 */
import type { Ptr } from "../../ffi/mod.ts";
import { Act, type Backend, type Buf, Gating } from "../backend/backend.ts";
import type { ModelConfig, Routing } from "./config.ts";
import type { StepContext } from "./step.ts";
import type { LayerWeights } from "./weights.ts";

/** What {@link route} needs besides the layer. */
export interface RouteTarget {
  readonly be: Backend;
  readonly cfg: ModelConfig;
  readonly routing: Routing;
  readonly scratch: Ptr;
}

const GATING = {
  softmax: Gating.SOFTMAX,
  sigmoid: Gating.SIGMOID,
  softmax_weight: Gating.SOFTMAX_TOPK,
} as const;

/**
 * Choose each of m rows' experts: logits (m, nExpert) = router · h (+ router bias), then the
 * gating, selection (with the `exp_probs_b` selection bias and expert groups when the model
 * has them) and weights (renormalized, scaled) of `routing`, into ids and weights (m, k).
 */
export function route(
  t: RouteTarget,
  L: LayerWeights,
  h: Ptr,
  m: number,
  logits: Buf,
  ids: Ptr,
  weights: Ptr,
): void {
  const { be, cfg: c, routing: r } = t;
  be.matmul(L.mat("ffn_gate_inp"), h, m, logits.ptr, t.scratch);
  if (r.routerBias) be.addBias(logits, L.vec("ffn_gate_inp.bias"), m);
  const bias = r.selectionBias ? L.vecOpt("exp_probs_b.bias") : undefined;
  be.route(
    logits.ptr,
    bias ? bias.ptr : null,
    m,
    c.nExpert,
    c.nExpertUsed,
    GATING[r.gating],
    r.renormalize,
    r.scale,
    ids,
    weights,
    r.groups?.count ?? 1,
    r.groups?.used ?? 1,
  );
}

/** The expert activation of a config. */
export function actOf(c: ModelConfig): number {
  return c.act === "swiglu_oai" ? Act.SWIGLU_OAI : Act.SWIGLU;
}

/**
 * buf.moe (m, nEmbd) = Σ_k w_k · expert_k(buf.h) (+ the shared expert). The routed experts
 * are summed in slot order k = 0..K-1, as ggml does.
 */
export function moeFfn(ctx: StepContext, L: LayerWeights, li: number): void {
  const { be, cfg: c, buf: B, m } = ctx;
  route(ctx, L, B.h.ptr, m, B.router, B.ids.ptr, B.wts.ptr);
  ctx.experts(L, li);
  if (!L.has("ffn_up_shexp")) return;
  // shared expert: (m, nFfShexp) gate and up, SwiGLU, down into d
  ctx.mm(L.mat("ffn_gate_shexp"), B.h.ptr, m, B.g.ptr);
  ctx.mm(L.mat("ffn_up_shexp"), B.h.ptr, m, B.u.ptr);
  be.swiglu(B.g.ptr, B.u.ptr, B.g.ptr, m * c.nFfShexp);
  ctx.mm(L.mat("ffn_down_shexp"), B.g.ptr, m, B.d.ptr);
  const gate = L.vecOpt("ffn_gate_inp_shexp");
  if (gate) be.addSigmoidGated(B.moe, B.h, gate, B.d, m, c.nEmbd);
  else be.add(B.moe, B.d, m * c.nEmbd);
}

/**
 * The FFN of a layer: the MoE block when the layer has routed experts, else the dense FFN
 * (glm4moe's and deepseek2's leading dense layers).
 */
export function ffnBlock(ctx: StepContext, L: LayerWeights, li: number): void {
  if (L.experts) moeFfn(ctx, L, li);
  else denseFfn(ctx, L);
}

/** buf.moe (m, nEmbd) = down(silu(gate · h) * (up · h)) with the layer's dense FFN. */
export function denseFfn(ctx: StepContext, L: LayerWeights): void {
  const { be, buf: B, m } = ctx;
  const nFf = L.mat("ffn_gate").rows;
  ctx.mm(L.mat("ffn_gate"), B.h.ptr, m, B.g.ptr);
  ctx.mm(L.mat("ffn_up"), B.h.ptr, m, B.u.ptr);
  be.swiglu(B.g.ptr, B.u.ptr, B.g.ptr, m * nFf);
  ctx.mm(L.mat("ffn_down"), B.g.ptr, m, B.moe.ptr);
}
