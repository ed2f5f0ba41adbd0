/**
 * The pre-norm decoder layer most MoE models share:
 * `x += attn(norm(x)); x += ffn(norm(x))`, with the attention and FFN blocks as parameters.
 *
 * @module
 */
import { gqaAttention } from "./_attention.ts";
import { ffnBlock } from "./_ffn.ts";
import { mlaAttention } from "./_mla.ts";
import { gatedDeltaNet } from "./_deltanet.ts";
import { gatedAttention } from "./_gated_attention.ts";
import type { LayerForward, StepContext } from "./step.ts";
import type { LayerWeights } from "./weights.ts";

/** A block that reads buf.h and writes its output (attention: buf.o; FFN: buf.moe). */
export type Block = (ctx: StepContext, L: LayerWeights, li: number) => void;

/** A pre-norm residual layer from an attention block and an FFN block. */
export function decoderLayer(attn: Block, ffn: Block): LayerForward {
  return (ctx, L, li) => {
    const { be, cfg: c, buf: B, m } = ctx;
    const n = m * c.nEmbd;
    be.rmsnorm(B.x.ptr, L.vec("attn_norm").ptr, B.h.ptr, m, c.nEmbd, c.rmsEps);
    attn(ctx, L, li);
    be.add(B.x, B.o, n);
    be.rmsnorm(B.x.ptr, L.vec(c.ffnNormName).ptr, B.h.ptr, m, c.nEmbd, c.rmsEps);
    ffn(ctx, L, li);
    be.add(B.x, B.moe, n);
  };
}

/**
 * Grouped-query attention and a MoE FFN (dense in layers without routed experts): qwen3moe,
 * mixtral, olmoe, qwen2moe, gpt-oss, glm4moe, minimax-m2.
 */
export const moeDecoderLayer: LayerForward = decoderLayer(gqaAttention, ffnBlock);

/** Multi-head latent attention and a MoE FFN (dense in the leading layers): deepseek2. */
export const mlaDecoderLayer: LayerForward = decoderLayer(mlaAttention, ffnBlock);

/** A hybrid's mixer: Gated DeltaNet in its recurrent layers, gated attention in the others. */
function hybridMixer(ctx: StepContext, L: LayerWeights, li: number): void {
  if (ctx.cfg.deltaNet!.layers[li]) gatedDeltaNet(ctx, L, li);
  else gatedAttention(ctx, L, li);
}

/**
 * Qwen3.5 / Qwen3-Next: Gated DeltaNet or gated attention, then the MoE with its
 * sigmoid-gated shared expert.
 */
export const hybridDecoderLayer: LayerForward = decoderLayer(hybridMixer, ffnBlock);
