/**
 * Mixtral (GGUF `llama` with `llama.expert_count` > 0; Mixtral-8x7B, 8x22B).
 *
 * llama.cpp: `LLM_ARCH_LLAMA` with experts. Plain GQA attention, no biases, no q/k norm,
 * "norm" (GPT-J style, adjacent pairs) rope. The expert FFN size is `llama.feed_forward_length`
 * (there is no `expert_feed_forward_length`). Router: top k of the logits, softmax over them,
 * which equals softmax over all, top k, renormalize (llama.cpp does the latter).
 *
 * @module
 */

import { moeDecoderLayer } from "./_decoder.ts";
import { attentionTensors, decoderTensors, moeTensors } from "./_blocks.ts";
import { type ArchSpec, BASE_OPTIONAL, BASE_REQUIRED, baseConfig, checkConfig } from "./config.ts";

const required = [...BASE_REQUIRED, "feed_forward_length"] as const;

/** Mixtral (GGUF "llama" with experts). */
export const mixtral: ArchSpec = {
  arch: "llama",
  name: "Mixtral (llama + experts)",
  required,
  optional: BASE_OPTIONAL.filter((k) => k !== "feed_forward_length"),
  config: (kv) => {
    const base = baseConfig(kv, "llama", required);
    return checkConfig({
      ...base,
      nFfExp: base.nFf,
      rope: { ...base.rope, type: "norm" },
    });
  },
  routing: { order: "softmax_topk", renormalize: true, bias: false },
  tensors: (cfg) =>
    decoderTensors(cfg, (i) => [...attentionTensors(cfg, i), ...moeTensors(cfg, i)]),
  forward: moeDecoderLayer,
};
