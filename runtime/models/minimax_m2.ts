/**
 * MiniMax-M2 / M2.5 (GGUF `minimax-m2`).
 *
 * llama.cpp: `LLM_ARCH_MINIMAX_M2`, src/models/minimax-m2.cpp. Pre-attention RMS norm;
 * attention without biases, with RMS q/k norms over the WHOLE projection before the split into
 * heads (`attn_q_norm [n_head*head_dim]`, `attn_k_norm [n_head_kv*head_dim]`), NeoX rope over
 * the first `rope.dimension_count` dims of each head (64 of 128), scale 1/sqrt(head_dim). Every
 * layer routes: gate from `expert_gating_func` (sigmoid in the released models; llama.cpp
 * aborts without it, so spool requires it), selection bias `exp_probs_b`, weights always
 * renormalized (llama.cpp passes `true`), never scaled (the loader does not read
 * `expert_weights_scale`); no shared expert. The expert tensors are created with
 * `feed_forward_length` (the converter writes it equal to `expert_feed_forward_length`).
 *
 * @module
 */

import { moeDecoderLayer } from "./_decoder.ts";
import { attentionTensors, decoderTensors, moeTensors } from "./_blocks.ts";
import {
  type ArchSpec,
  BASE_OPTIONAL,
  BASE_REQUIRED,
  baseConfig,
  checkConfig,
  expertGating,
  type HParam,
} from "./config.ts";

const ARCH = "minimax-m2";
const required: readonly HParam[] = [
  ...BASE_REQUIRED,
  "feed_forward_length",
  "expert_feed_forward_length",
  "expert_gating_func",
];

/** MiniMax-M2 (GGUF "minimax-m2"). */
export const minimaxM2: ArchSpec = {
  arch: ARCH,
  name: "MiniMax-M2",
  required,
  optional: [
    ...BASE_OPTIONAL.filter((k) => k !== "feed_forward_length"),
    "expert_group_count",
    "expert_group_used_count",
  ],
  config: (kv) => {
    const base = baseConfig(kv, ARCH, required);
    const cfg = {
      ...base,
      nFfExp: base.nFf,
      qkNorm: "full" as const,
      expertGating: expertGating(kv, ARCH),
      expertWeightsNorm: true,
      expertWeightsScale: 0,
    };
    return checkConfig(cfg, [
      [
        base.nFfExp === base.nFf,
        `expert_feed_forward_length ${base.nFfExp} differs from feed_forward_length ${base.nFf} ` +
        `(llama.cpp sizes the experts by feed_forward_length)`,
        "expert_feed_forward_length",
      ],
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
  },
  routing: {
    order: "softmax_topk",
    renormalize: true,
    bias: false,
    source: "hparams",
    selectionBias: true,
  },
  tensors: (cfg) =>
    decoderTensors(cfg, (i) => [
      ...attentionTensors(cfg, i, { qkNorm: "full" }),
      ...moeTensors(cfg, i, { probsBias: "required" }),
    ]),
  forward: moeDecoderLayer,
};
