/**
 * Qwen3-MoE (GGUF `qwen3moe`; Qwen3-30B-A3B, Qwen3-235B-A22B).
 *
 * llama.cpp: `LLM_ARCH_QWEN3MOE`. Attention with RMS q/k norms per head (weights of
 * `head_dim`), head size from `attention.key_length` (128, while n_embd/n_head is 64 for
 * 30B-A3B), NeoX rope. Every layer is MoE: softmax over all experts, top k, renormalized
 * (`norm_topk_prob`). Expert FFN size from `expert_feed_forward_length`.
 *
 * @module
 */

import { moeDecoderLayer } from "./_decoder.ts";
import { attentionTensors, decoderTensors, moeTensors } from "./_blocks.ts";
import { type ArchSpec, BASE_OPTIONAL, BASE_REQUIRED, baseConfig, checkConfig } from "./config.ts";

const required = [...BASE_REQUIRED] as const;

/** Qwen3-MoE (GGUF "qwen3moe"). */
export const qwen3Moe: ArchSpec = {
  arch: "qwen3moe",
  name: "Qwen3-MoE",
  required,
  optional: [...BASE_OPTIONAL, "expert_feed_forward_length"],
  config: (kv) => checkConfig({ ...baseConfig(kv, "qwen3moe", required), qkNorm: "head" }),
  routing: { order: "softmax_topk", renormalize: true, bias: false },
  tensors: (cfg) =>
    decoderTensors(cfg, (i) => [
      ...attentionTensors(cfg, i, { qkNorm: "head" }),
      ...moeTensors(cfg, i),
    ]),
  forward: moeDecoderLayer,
};
