/**
 * OLMoE (GGUF `olmoe`; OLMoE-1B-7B).
 *
 * llama.cpp: `LLM_ARCH_OLMOE`. q/k RMS norms over the whole projection (weights of `n_embd`,
 * applied before splitting into heads), so llama.cpp needs n_head_kv = n_head and
 * head_dim = n_embd / n_head. NeoX rope. Router: softmax over all experts, top k, NOT
 * renormalized (`norm_topk_prob: false`). As for Mixtral, the expert FFN size is
 * `olmoe.feed_forward_length` (llama.cpp creates the experts with `n_ff`).
 *
 * @module
 */

import { moeDecoderLayer } from "./_decoder.ts";
import { attentionTensors, decoderTensors, moeTensors } from "./_blocks.ts";
import { type ArchSpec, BASE_OPTIONAL, BASE_REQUIRED, baseConfig, checkConfig } from "./config.ts";

const required = [...BASE_REQUIRED, "feed_forward_length"] as const;

/** OLMoE (GGUF "olmoe"). */
export const olmoe: ArchSpec = {
  arch: "olmoe",
  name: "OLMoE",
  required,
  optional: BASE_OPTIONAL.filter((k) => k !== "feed_forward_length"),
  config: (kv) => {
    const base = baseConfig(kv, "olmoe", required);
    const cfg = { ...base, nFfExp: base.nFf, qkNorm: "full" as const };
    return checkConfig(cfg, [
      [
        cfg.nHeadKv === cfg.nHead,
        `head_count_kv ${cfg.nHeadKv} must equal head_count ${cfg.nHead}`,
      ],
      [
        cfg.nHead * cfg.headDim === cfg.nEmbd,
        `head_count*key_length ${cfg.nHead * cfg.headDim} must equal embedding_length ${cfg.nEmbd}`,
      ],
    ]);
  },
  routing: { order: "softmax_topk", renormalize: false, bias: false },
  tensors: (cfg) =>
    decoderTensors(cfg, (i) => [
      ...attentionTensors(cfg, i, { qkNorm: "full" }),
      ...moeTensors(cfg, i),
    ]),
  forward: moeDecoderLayer,
};
