/**
 * DeepSeek-V2 / V2-Lite / V3 / R1 / V3.1 and Kimi K2 / K2.5 (GGUF `deepseek2`).
 *
 * llama.cpp: `LLM_ARCH_DEEPSEEK2`, src/models/deepseek2.cpp. Multi-head latent attention in
 * the split form current GGUFs carry (`attn_k_b`/`attn_v_b`, signalled by
 * `attention.key_length_mla`/`value_length_mla`; legacy `attn_kv_b` files are rejected): the
 * KV cache holds one latent entry per token, `kv_lora_rank` normalized latent values plus
 * `rope.dimension_count` roped key values (576 for V3), which is `attention.key_length`, with
 * `attention.head_count_kv` 1 and `attention.value_length` = `kv_lora_rank`. q comes through a
 * LoRA (`attn_q_a`, `attn_q_a_norm`, `attn_q_b`) or, in V2-Lite, one `attn_q`. "Normal"
 * (GPT-J, adjacent pairs) rope on the LAST `qk_rope` dims of each q head and on the shared
 * k_pe, YaRN with its mscale folded into the attention scale. The first
 * `leading_dense_block_count` layers run a dense FFN of `feed_forward_length`; the rest route
 * (gate from `expert_gating_func`: softmax for V2 when absent, sigmoid for V3; optional
 * selection bias `exp_probs_b`; group-limited top-k with `expert_group_count`/
 * `expert_group_used_count`; renormalized when `expert_weights_norm`; scaled by
 * `expert_weights_scale`) and add `expert_shared_count` ungated shared experts. The last
 * `nextn_predict_layers` blocks (when present) are NextN/MTP blocks, listed `mtp: true`.
 *
 * @module
 */

import { mlaDecoderLayer } from "./_decoder.ts";
import {
  decoderTensors,
  denseFfnTensors,
  mlaAttentionTensors,
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
  hparam,
  type KVSource,
  type ModelConfig,
  ModelConfigError,
} from "./config.ts";

const ARCH = "deepseek2";
const required: readonly HParam[] = [
  ...BASE_REQUIRED,
  "expert_feed_forward_length",
  "expert_shared_count",
  "attention.kv_lora_rank",
  "attention.key_length_mla",
  "attention.value_length_mla",
  "rope.dimension_count",
];

/**
 * llama.cpp's "lite" rule (DeepSeek-V2-Lite, GigaChat3, Kanana-2): 26 or 27 trunk layers, or
 * 48 with a 128256-token vocabulary. Lite models have no q LoRA: llama.cpp does not read
 * `attention.q_lora_rank` for them and requires it for every other model.
 */
function isLite(nLayer: number, nVocab: number): boolean {
  return nLayer === 27 || nLayer === 26 || (nLayer === 48 && nVocab === 128256);
}

/** Reject what llama.cpp reads for this arch but spool does not run. */
function checkUnsupported(kv: KVSource): void {
  const t = `${ARCH}.attention.temperature_scale`;
  const v = kv.get(t);
  if (v !== undefined && v !== 0) {
    throw new ModelConfigError(
      "bad_value",
      `Metadata "${t}" is ${String(v)}: attention temperature tuning is not supported`,
      t,
    );
  }
}

/** Read and check a deepseek2 config. @throws ModelConfigError naming the key */
function config(kv: KVSource): ModelConfig {
  checkUnsupported(kv);
  const base = baseConfig(kv, ARCH, required);
  const lite = isLite(base.nLayer, base.nVocab);
  const qLoraRank = lite ? 0 : hparam(kv, ARCH, "attention.q_lora_rank", true)!;
  const kvLoraRank = hparam(kv, ARCH, "attention.kv_lora_rank", true)!;
  const headDimK = hparam(kv, ARCH, "attention.key_length_mla", true)!;
  const headDimV = hparam(kv, ARCH, "attention.value_length_mla", true)!;
  const qkRopeDim = base.rope.dim;
  // llama.cpp: absent (or 0) means softmax (DeepSeek V2/V2.5), except GLM-4.7-Lite
  const glm47Lite = (base.nLayer === 47 || base.nLayer === 48) && base.nVocab === 154880;
  const cfg: ModelConfig = {
    ...base,
    rope: { ...base.rope, type: "norm" },
    nFfShexp: base.nFfExp * base.nExpertShared,
    expertGating: expertGating(kv, ARCH, glm47Lite ? "sigmoid" : "softmax"),
    mla: { qLoraRank, kvLoraRank, headDimK, headDimV, qkRopeDim, qkNopeDim: headDimK - qkRopeDim },
  };
  return checkConfig(cfg, [
    [
      kvLoraRank > 0,
      `attention.kv_lora_rank is ${kvLoraRank}, expected > 0`,
      "attention.kv_lora_rank",
    ],
    [
      qkRopeDim > 0 && qkRopeDim % 2 === 0 && headDimK - qkRopeDim >= 1,
      `rope.dimension_count ${qkRopeDim} must be even and below attention.key_length_mla ${headDimK}`,
      "rope.dimension_count",
    ],
    [
      headDimV > 0,
      `attention.value_length_mla is ${headDimV}, expected > 0`,
      "attention.value_length_mla",
    ],
    [
      cfg.nHeadKv === 1,
      `attention.head_count_kv is ${cfg.nHeadKv}; MLA stores one latent KV head (1)`,
      "attention.head_count_kv",
    ],
    [
      cfg.headDim === kvLoraRank + qkRopeDim,
      `attention.key_length ${cfg.headDim} must be kv_lora_rank + rope.dimension_count = ` +
      `${kvLoraRank + qkRopeDim} (the latent KV entry)`,
      "attention.key_length",
    ],
    [
      cfg.headDimV === kvLoraRank,
      `attention.value_length ${cfg.headDimV} must equal kv_lora_rank ${kvLoraRank}`,
      "attention.value_length",
    ],
    [
      cfg.nExpertShared > 0,
      `expert_shared_count is ${cfg.nExpertShared}, expected > 0`,
      "expert_shared_count",
    ],
  ]);
}

/** DeepSeek-V2/V3 and Kimi K2 (GGUF "deepseek2"). */
export const deepseek2: ArchSpec = {
  arch: ARCH,
  name: "DeepSeek-V2/V3",
  required,
  optional: [
    ...BASE_OPTIONAL,
    "attention.q_lora_rank",
    "leading_dense_block_count",
    "nextn_predict_layers",
    "expert_gating_func",
    "expert_weights_norm",
    "expert_weights_scale",
    "expert_group_count",
    "expert_group_used_count",
    "rope.scaling.type",
    "rope.scaling.factor",
    "rope.scaling.original_context_length",
    "rope.scaling.yarn_log_multiplier",
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
      ...mlaAttentionTensors(cfg, i),
      ...(i < cfg.nLayerDenseLead ? denseFfnTensors(cfg, i) : [
        ...moeTensors(cfg, i, { probsBias: "optional" }),
        ...sharedExpertTensors(cfg, i, { gated: false }),
      ]),
    ]),
  forward: mlaDecoderLayer,
  kvLayout: (cfg) => ({ k: cfg.headDim, v: 0, vInK: cfg.mla!.kvLoraRank }),
};
