/**
 * Qwen3.5 / Qwen3.6 MoE (GGUF `qwen35moe`: 35B-A3B, 122B-A10B, 397B-A17B).
 *
 * llama.cpp: `LLM_ARCH_QWEN35MOE`, src/models/qwen35moe.cpp. A hybrid: of every
 * `full_attention_interval` (4) layers the first three are Gated DeltaNet linear attention with
 * a fixed-size recurrent state and the fourth is gated full attention (q projection twice as
 * wide, per head the query then a sigmoid output gate; per-head RMS q/k norms; IMROPE over the
 * first `rope.dimension_count` (64 of 256) dims of each head with `rope.dimension_sections`
 * [11, 11, 10, 0], which for text is exactly NEOX rope, checked when reading the config).
 * `attention.recurrent_layers`, when present, gives the pattern instead. The DeltaNet input
 * projections are `attn_qkv`, `attn_gate` (z), and separate `ssm_beta`, `ssm_alpha`; the
 * converter stores the value heads in "tiled" order (value head j reads key head j % n_k).
 * Every layer: pre-norm `attn_norm`, residual, `post_attention_norm`, then softmax top-k routed
 * experts (renormalized, unscaled) plus one shared expert scaled by
 * `sigmoid(ffn_gate_inp_shexp · x)`. The last `nextn_predict_layers` blocks are MTP blocks
 * (full attention + MoE + nextn tensors), listed with `mtp: true` and never run.
 *
 * The forward pass is not implemented yet ({@link ArchSpec.forward} throws).
 *
 * @module
 */

import type { ArchSpec } from "./config.ts";
import { HYBRID_OPTIONAL, HYBRID_REQUIRED, hybridConfig, hybridTensors } from "./_hybrid.ts";
import { hybridDecoderLayer } from "./_decoder.ts";

const ARCH = "qwen35moe";

/** Qwen3.5/3.6 MoE (GGUF "qwen35moe"). */
export const qwen35Moe: ArchSpec = {
  arch: ARCH,
  name: "Qwen3.5-MoE",
  required: [...HYBRID_REQUIRED, "rope.dimension_sections"],
  optional: HYBRID_OPTIONAL,
  config: (kv) => hybridConfig(kv, ARCH, { vHeadOrder: "tiled", sections: true }),
  routing: {
    order: "softmax_topk",
    renormalize: true,
    bias: false,
    sharedExpert: { gate: "sigmoid" },
  },
  tensors: (cfg) => hybridTensors(cfg, "split"),
  forward: hybridDecoderLayer,
};
