/**
 * GLM-4.5 / 4.5-Air / 4.6 / 4.7 MoE (GGUF `glm4moe`).
 *
 * llama.cpp: `LLM_ARCH_GLM4_MOE`, src/models/glm4-moe.cpp. Pre-attention RMS norm
 * `attn_norm`; attention with q/k/v biases (optional tensors; GLM-4.5 has them) and optional
 * per-head RMS q/k norms (`attn_q_norm/attn_k_norm [head_dim]`, GLM-4.5 355B only), NeoX rope
 * over the first `rope.dimension_count` dims of each head (64 of 128: partial rope), scale
 * 1/sqrt(head_dim), no output bias. The pre-FFN norm is `post_attention_norm`. The first
 * `leading_dense_block_count` layers run a dense SwiGLU FFN of `feed_forward_length`; the rest
 * route: sigmoid gate (`expert_gating_func` 2, the default when absent), selection bias
 * `exp_probs_b`, weights renormalized when `expert_weights_norm`, scaled by
 * `expert_weights_scale`, plus `expert_shared_count` ungated shared experts (one FFN of
 * `expert_feed_forward_length * expert_shared_count`). The last `nextn_predict_layers` blocks
 * are NextN/MTP blocks, listed with `mtp: true` and never run.
 *
 * @module
 */

import { moeDecoderLayer } from "./_decoder.ts";
import {
  attentionTensors,
  decoderTensors,
  denseFfnTensors,
  moeTensors,
  sharedExpertTensors,
} from "./_blocks.ts";
import {
  type ArchSpec,
  BASE_OPTIONAL,
  BASE_REQUIRED,
  baseConfig,
  checkConfig,
  expertGating,
  type HParam,
  type ModelConfig,
  ModelConfigError,
} from "./config.ts";

const ARCH = "glm4moe";
const required: readonly HParam[] = [
  ...BASE_REQUIRED,
  "expert_feed_forward_length",
  "expert_shared_count",
];

/** Reject multimodal (M-RoPE) GLM files: `rope.dimension_sections` with a non-zero entry. */
function checkNoMrope(kv: Parameters<ArchSpec["config"]>[0]): void {
  const key = `${ARCH}.rope.dimension_sections`;
  const v = kv.get(key);
  if (v === undefined) return;
  const a = ArrayBuffer.isView(v) || Array.isArray(v) ? Array.from(v as ArrayLike<number>) : [v];
  if (a.some((x) => Number(x) !== 0)) {
    throw new ModelConfigError(
      "bad_value",
      `Metadata "${key}" is [${a.join(", ")}]: M-RoPE (multimodal GLM) is not supported`,
      key,
    );
  }
}

/** Read and check a glm4moe config. @throws ModelConfigError naming the key */
function config(kv: Parameters<ArchSpec["config"]>[0]): ModelConfig {
  checkNoMrope(kv);
  const base = baseConfig(kv, ARCH, required);
  const cfg: ModelConfig = {
    ...base,
    qkNorm: "head",
    attnQKVBias: true,
    ffnNormName: "post_attention_norm",
    nFfShexp: base.nFfExp * base.nExpertShared,
    // llama.cpp: a missing (or 0) expert_gating_func means sigmoid for GLM-4.5
    expertGating: expertGating(kv, ARCH, "sigmoid"),
  };
  return checkConfig(cfg, [
    [
      cfg.headDimV === cfg.headDim,
      `attention.value_length ${cfg.headDimV} must equal attention.key_length ${cfg.headDim}`,
      "attention.value_length",
    ],
    [
      cfg.rope.dim > 0 && cfg.rope.dim % 2 === 0 && cfg.rope.dim <= cfg.headDim,
      `rope.dimension_count ${cfg.rope.dim} must be even and in 2..${cfg.headDim}`,
      "rope.dimension_count",
    ],
  ]);
}

/** GLM-4.x MoE (GGUF "glm4moe"). */
export const glm4Moe: ArchSpec = {
  arch: ARCH,
  name: "GLM-4.5 MoE",
  required,
  optional: [
    ...BASE_OPTIONAL,
    "leading_dense_block_count",
    "nextn_predict_layers",
    "expert_gating_func",
    "expert_weights_norm",
    "expert_weights_scale",
    "expert_group_count",
    "expert_group_used_count",
  ],
  config,
  routing: {
    order: "softmax_topk",
    renormalize: true,
    bias: false,
    source: "hparams",
    selectionBias: true,
    sharedExpert: { gate: "none" },
  },
  tensors: (cfg) =>
    decoderTensors(cfg, (i) => [
      ...attentionTensors(cfg, i, {
        qkvBias: true,
        optionalBias: true,
        qkNorm: "head",
        optionalQkNorm: true,
      }),
      ...(i < cfg.nLayerDenseLead ? denseFfnTensors(cfg, i, "post_attention_norm") : [
        ...moeTensors(cfg, i, { normName: "post_attention_norm", probsBias: "required" }),
        ...(cfg.nExpertShared > 0 ? sharedExpertTensors(cfg, i, { gated: false }) : []),
      ]),
    ]),
  forward: moeDecoderLayer,
};
