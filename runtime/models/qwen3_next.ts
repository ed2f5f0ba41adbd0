/**
 * Qwen3-Next / Qwen3-Coder-Next (GGUF `qwen3next`: 80B-A3B).
 *
 * llama.cpp: `LLM_ARCH_QWEN3NEXT`, src/models/qwen3next.cpp. The same hybrid as qwen35moe
 * (three Gated DeltaNet layers, then one gated full-attention layer, per
 * `full_attention_interval`; routed experts plus a sigmoid-gated shared expert; MTP blocks
 * marked `mtp`), except: beta and alpha come from one fused projection `ssm_ba [n_embd, 2·n_v]`
 * laid out per key head (its n_v/n_k betas, then its n_v/n_k alphas); the value heads are in
 * "grouped" order (value head j reads key head j / (n_v/n_k), as in the HF checkpoint); and
 * the partial rope is plain NEOX (no sections). Legacy files with the fused `ssm_in`
 * (q,k,v,z interleaved per key head) instead of `attn_qkv` + `attn_gate` are not supported:
 * loading names the missing `attn_qkv`.
 *
 * The forward pass is not implemented yet ({@link ArchSpec.forward} throws).
 *
 * @module
 */

import type { ArchSpec } from "./config.ts";
import { HYBRID_OPTIONAL, HYBRID_REQUIRED, hybridConfig, hybridTensors } from "./_hybrid.ts";
import { hybridDecoderLayer } from "./_decoder.ts";

const ARCH = "qwen3next";

/** Qwen3-Next (GGUF "qwen3next"). */
export const qwen3Next: ArchSpec = {
  arch: ARCH,
  name: "Qwen3-Next",
  required: HYBRID_REQUIRED,
  optional: HYBRID_OPTIONAL,
  config: (kv) => hybridConfig(kv, ARCH, { vHeadOrder: "grouped", sections: false }),
  routing: {
    order: "softmax_topk",
    renormalize: true,
    bias: false,
    sharedExpert: { gate: "sigmoid" },
  },
  tensors: (cfg) => hybridTensors(cfg, "fused"),
  forward: hybridDecoderLayer,
};
