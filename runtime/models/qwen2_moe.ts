/**
 * Qwen2-MoE (GGUF `qwen2moe`; Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B).
 *
 * llama.cpp: `LLM_ARCH_QWEN2MOE`. Attention with q/k/v biases, head_dim = n_embd / n_head,
 * NeoX rope. Routed experts (softmax over all, top k, NOT renormalized) plus one shared
 * expert on every token, scaled by `sigmoid(ffn_gate_inp_shexp · x)`. Sizes:
 * `expert_feed_forward_length` (routed) and `expert_shared_feed_forward_length` (shared;
 * llama.cpp falls back to `feed_forward_length` when absent).
 *
 * @module
 */

import { moeDecoderLayer } from "./_decoder.ts";
import { attentionTensors, decoderTensors, moeTensors, sharedExpertTensors } from "./_blocks.ts";
import { type ArchSpec, BASE_OPTIONAL, BASE_REQUIRED, baseConfig, checkConfig } from "./config.ts";

const required = [...BASE_REQUIRED] as const;

/** Qwen2-MoE (GGUF "qwen2moe"). */
export const qwen2Moe: ArchSpec = {
  arch: "qwen2moe",
  name: "Qwen2-MoE",
  required,
  optional: [...BASE_OPTIONAL, "expert_feed_forward_length", "expert_shared_feed_forward_length"],
  config: (kv) => {
    const base = baseConfig(kv, "qwen2moe", required);
    const cfg = {
      ...base,
      nExpertShared: 1,
      nFfShexp: base.nFfShexp || base.nFf,
      attnQKVBias: true,
    };
    return checkConfig(cfg, [
      [cfg.nFfShexp > 0, "shared expert FFN size is 0"],
      [
        cfg.nHead * cfg.headDim === cfg.nEmbd,
        `head_count*key_length ${cfg.nHead * cfg.headDim} must equal embedding_length ${cfg.nEmbd}`,
      ],
    ]);
  },
  routing: {
    order: "softmax_topk",
    renormalize: false,
    bias: false,
    sharedExpert: { gate: "sigmoid" },
  },
  tensors: (cfg) =>
    decoderTensors(cfg, (i) => [
      ...attentionTensors(cfg, i, { qkvBias: true }),
      ...moeTensors(cfg, i),
      ...sharedExpertTensors(cfg, i),
    ]),
  forward: moeDecoderLayer,
};
