/**
 * gpt-oss (GGUF `gpt-oss`; gpt-oss-20b, gpt-oss-120b).
 *
 * llama.cpp: `LLM_ARCH_OPENAI_MOE`, arch string "gpt-oss". Attention with q/k/v/o biases,
 * learned per-head sinks (`attn_sinks.weight [n_head]`), head size 64
 * (`attention.key_length`/`value_length`), NeoX rope with YaRN scaling (`rope.scaling.type`
 * "yarn", factor 32, original context 4096). Sliding-window attention (128) on even layers,
 * full attention on odd ones (`set_swa_pattern(2)`). The pre-FFN norm is named
 * `post_attention_norm`. Router with bias: top k of the logits, softmax over those k
 * (SOFTMAX_WEIGHT). Experts carry biases and use the clamped SwiGLU
 * `min(g,7)*sigmoid(1.702*min(g,7)) * (clamp(u,-7,7)+1)`; shipped as MXFP4.
 *
 * @module
 */

import { moeDecoderLayer } from "./_decoder.ts";
import { attentionTensors, decoderTensors, moeTensors } from "./_blocks.ts";
import { type ArchSpec, BASE_OPTIONAL, BASE_REQUIRED, baseConfig, checkConfig } from "./config.ts";

const required = [
  ...BASE_REQUIRED,
  "expert_feed_forward_length",
  "attention.sliding_window",
] as const;

/** gpt-oss (GGUF "gpt-oss"). */
export const gptOss: ArchSpec = {
  arch: "gpt-oss",
  name: "gpt-oss",
  required,
  optional: [
    ...BASE_OPTIONAL,
    "rope.scaling.type",
    "rope.scaling.factor",
    "rope.scaling.original_context_length",
  ],
  config: (kv) =>
    checkConfig({
      ...baseConfig(kv, "gpt-oss", required),
      swaPattern: 2,
      attnQKVBias: true,
      attnOutBias: true,
      attnSinks: true,
      ffnNormName: "post_attention_norm",
      routerBias: true,
      expertBias: true,
      act: "swiglu_oai",
    }),
  routing: { order: "topk_softmax", renormalize: true, bias: true },
  tensors: (cfg) =>
    decoderTensors(cfg, (i) => [
      ...attentionTensors(cfg, i, { qkvBias: true, outBias: true, sinks: true }),
      ...moeTensors(cfg, i, {
        normName: "post_attention_norm",
        routerBias: true,
        expertBias: true,
      }),
    ]),
  forward: moeDecoderLayer,
};
