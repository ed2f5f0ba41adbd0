/**
 * Shapes of synthetic models (synth.ts): the dimensions and family hyperparameters a model is
 * made from ({@link SynthDims}), the named presets, the per-architecture defaults that keep a
 * preset valid for llama.cpp, and the draft {@link ModelConfig} the metadata is written from.
 *
 * @module
 */

import type { ModelConfig, TensorSpec } from "./config.ts";
import { sharedVocab } from "./_synth_vocab.ts";
import {
  HYBRID_ARCHS,
  HYBRID_PRESET_DIMS,
  hybridDraft,
  hybridGenericDims,
} from "./_synth_hybrid.ts";

/** Model dimensions and family hyperparameters of a synthetic model. */
export interface SynthDims {
  /** Transformer blocks run (the trunk; NextN blocks come on top). */
  nLayer: number;
  /** Hidden size. */
  nEmbd: number;
  /** Query heads. */
  nHead: number;
  /** Key/value heads (deepseek2: 1, the latent head). */
  nHeadKv: number;
  /** Head size (key and value); deepseek2 derives its own from the MLA sizes. */
  headDim: number;
  /** Experts per layer. */
  nExpert: number;
  /** Experts per token. */
  nExpertUsed: number;
  /** Expert FFN size. */
  nFfExp: number;
  /** Shared-expert FFN size (qwen2moe). */
  nFfShexp: number;
  /** Training context length written to the metadata. */
  nCtx: number;
  /** Sliding window (gpt-oss). */
  slidingWindow: number;
  /** Rope base frequency. */
  ropeFreqBase: number;
  /** RMS norm epsilon. */
  rmsEps: number;
  /** Dense FFN size of the leading dense layers (glm4moe, deepseek2). */
  nFf: number;
  /** Leading dense layers (glm4moe, deepseek2). */
  nLayerDenseLead: number;
  /** NextN/MTP blocks written after the trunk (glm4moe, deepseek2). */
  nLayerNextn: number;
  /** Ungated shared experts (glm4moe, deepseek2), stored as one FFN of nFfExp × this. */
  nExpertShared: number;
  /** Rotated dims per head; 0 = the whole head (glm4moe, minimax-m2: partial rope). */
  ropeDim: number;
  /** 1 = write glm4moe's optional per-head q/k norms, 0 = leave them out (GLM-4.5-Air). */
  qkNorm: number;
  /** Router gate (glm4moe, minimax-m2, deepseek2). */
  expertGating: "softmax" | "sigmoid";
  /** Renormalize the selected weights (glm4moe, deepseek2). */
  expertWeightsNorm: boolean;
  /** Routed-weight scale; 0 = none (glm4moe, deepseek2). */
  expertWeightsScale: number;
  /** Expert groups for group-limited top-k; 0 = none (deepseek2). */
  nExpertGroups: number;
  /** Groups kept per token (deepseek2). */
  nExpertGroupUsed: number;
  /** MLA q LoRA rank; 0 = plain attn_q (deepseek2). */
  qLoraRank: number;
  /** MLA KV latent rank (deepseek2). */
  kvLoraRank: number;
  /** MLA unrotated q/k head dims (deepseek2); the rotated ones are ropeDim. */
  qkNopeDim: number;
  /** MLA value head size (deepseek2). */
  vHeadDim: number;
  /** YaRN rope scaling factor; 0 = no scaling (deepseek2). */
  yarnFactor: number;
  /** YaRN original context (deepseek2). */
  yarnOrigCtx: number;
  /** `rope.scaling.yarn_log_multiplier` as stored (0.1 × mscale_all_dim; deepseek2). */
  yarnLogMul: number;
  /** Hybrids: every this-many-th layer is full attention (`full_attention_interval`). */
  fullAttnInterval: number;
  /**
   * Hybrids: the trunk's pattern as "r" (Gated DeltaNet) / "a" (attention) per layer, written as
   * `attention.recurrent_layers`; "" = use `fullAttnInterval`.
   */
  recurrentLayers: string;
  /** Hybrids: conv1d taps (`ssm.conv_kernel`). */
  ssmConvKernel: number;
  /** Hybrids: key = value head size (`ssm.state_size`). */
  ssmStateSize: number;
  /** Hybrids: key heads (`ssm.group_count`). */
  ssmGroupCount: number;
  /** Hybrids: value heads (`ssm.time_step_rank`), a multiple of the key heads. */
  ssmTimeStepRank: number;
  /** qwen35moe: `rope.dimension_sections` (4 values); [] = derived from ropeDim. */
  ropeSections: number[];
}

/** Named size presets. */
export type SynthPreset =
  | "tiny"
  | "small"
  | "qwen3-30b-a3b"
  | "glm-4.5-air"
  | "minimax-m2"
  | "deepseek-v3"
  | "qwen3.5-35b-a3b"
  | "qwen3.5-397b-a17b"
  | "qwen3-next-80b-a3b";

const TINY: SynthDims = {
  nLayer: 2,
  nEmbd: 256,
  nHead: 4,
  nHeadKv: 2,
  headDim: 64,
  nExpert: 4,
  nExpertUsed: 2,
  nFfExp: 256,
  nFfShexp: 512,
  nCtx: 4096,
  slidingWindow: 16,
  ropeFreqBase: 1e6,
  rmsEps: 1e-6,
  nFf: 0,
  nLayerDenseLead: 0,
  nLayerNextn: 0,
  nExpertShared: 0,
  ropeDim: 0,
  qkNorm: 0,
  expertGating: "softmax",
  expertWeightsNorm: false,
  expertWeightsScale: 0,
  nExpertGroups: 0,
  nExpertGroupUsed: 0,
  qLoraRank: 0,
  kvLoraRank: 0,
  qkNopeDim: 0,
  vHeadDim: 0,
  yarnFactor: 0,
  yarnOrigCtx: 0,
  yarnLogMul: 0,
  fullAttnInterval: 4,
  recurrentLayers: "",
  ssmConvKernel: 4,
  ssmStateSize: 64,
  ssmGroupCount: 2,
  ssmTimeStepRank: 4,
  ropeSections: [],
};

// DESIGN §6 "small": the 30B-A3B shape with 8 layers × 512 hidden. The expert FFN is 256
// (768·512/2048 = 192, rounded up to a whole K-quant block); q is 2× hidden as in 30B-A3B.
const SMALL: SynthDims = {
  ...TINY,
  nLayer: 8,
  nEmbd: 512,
  nHead: 8,
  nHeadKv: 2,
  headDim: 128,
  nExpert: 128,
  nExpertUsed: 8,
  nFfExp: 256,
  nFfShexp: 512,
  nCtx: 40960,
  slidingWindow: 128,
};

const QWEN3_30B: SynthDims = {
  ...TINY,
  nLayer: 24,
  nEmbd: 2048,
  nHead: 32,
  nHeadKv: 4,
  headDim: 128,
  nExpert: 128,
  nExpertUsed: 8,
  nFfExp: 768,
  nFfShexp: 0,
  nCtx: 40960,
  ropeFreqBase: 1e6,
  rmsEps: 1e-6,
};

// GLM-4.5-Air (46 layers + 1 NextN, 106B-A12B) with 5 trunk layers (1 dense + 4 MoE) and its
// NextN block: 9.5 GB as Q4_K_M (1.7 GB of it the NextN block; under 8 layers llama.cpp's
// use_more_bits makes every ffn_down Q6_K, and the 1408-wide ones fall back to Q8_0). Its vocabulary is 151552 tokens; Qwen2's (151936) stands in.
const GLM45_AIR: SynthDims = {
  ...TINY,
  nLayer: 5,
  nEmbd: 4096,
  nHead: 96,
  nHeadKv: 8,
  headDim: 128,
  nExpert: 128,
  nExpertUsed: 8,
  nFfExp: 1408,
  nFfShexp: 0,
  nCtx: 131072,
  ropeFreqBase: 1e6,
  rmsEps: 1e-5,
  nFf: 10944,
  nLayerDenseLead: 1,
  nLayerNextn: 1,
  nExpertShared: 1,
  ropeDim: 64,
  qkNorm: 0,
  expertGating: "sigmoid",
  expertWeightsNorm: true,
  expertWeightsScale: 1,
};

// MiniMax-M2 (62 layers, 230B-A10B) with 3 layers: 7.8 GB as Q4_K_M. Its vocabulary is
// 200064 tokens; Qwen2's stands in.
const MINIMAX_M2: SynthDims = {
  ...TINY,
  nLayer: 3,
  nEmbd: 3072,
  nHead: 48,
  nHeadKv: 8,
  headDim: 128,
  nExpert: 256,
  nExpertUsed: 8,
  nFfExp: 1536,
  nFfShexp: 0,
  nCtx: 196608,
  ropeFreqBase: 5e6,
  rmsEps: 1e-6,
  ropeDim: 64,
  expertGating: "sigmoid",
};

// DeepSeek-V3 (61 layers, 671B-A37B) with 3 layers (1 dense + 2 MoE): 16.3 GB as Q4_K_M (every
// down Q6_K, see above), 14.1 GB with `--type Q4_K`.
// Its vocabulary is 129280 tokens; deepseek-llm's (102400) stands in.
const DEEPSEEK_V3: SynthDims = {
  ...TINY,
  nLayer: 3,
  nEmbd: 7168,
  nHead: 128,
  nHeadKv: 1,
  headDim: 0,
  nExpert: 256,
  nExpertUsed: 8,
  nFfExp: 2048,
  nFfShexp: 0,
  nCtx: 163840,
  ropeFreqBase: 10000,
  rmsEps: 1e-6,
  nFf: 18432,
  nLayerDenseLead: 1,
  nExpertShared: 1,
  ropeDim: 64,
  expertGating: "sigmoid",
  expertWeightsNorm: true,
  expertWeightsScale: 2.5,
  nExpertGroups: 8,
  nExpertGroupUsed: 4,
  qLoraRank: 1536,
  kvLoraRank: 512,
  qkNopeDim: 128,
  vHeadDim: 128,
  yarnFactor: 40,
  yarnOrigCtx: 4096,
  yarnLogMul: 0.1,
};

/** A preset: dims, default types, vocabulary, fill mode and (for real shapes) its arch. */
export interface PresetDef {
  /** Dimensions. */
  dims: SynthDims;
  /** Default types. */
  types: string;
  /** Default vocabulary: "bytes" or a vocab-only GGUF path. */
  vocab: () => string;
  /** Default fill mode. */
  fill: "exact" | "fast";
  /** The architecture a real-shaped preset belongs to (generic presets: any). */
  arch?: string;
}

const real = (arch: string, dims: SynthDims, vocab: string): PresetDef => ({
  dims,
  types: "Q4_K_M",
  vocab: () => sharedVocab(vocab),
  fill: "fast",
  arch,
});

/** The presets by name. */
export const PRESETS: Record<SynthPreset, PresetDef> = {
  tiny: { dims: TINY, types: "F32", vocab: () => "bytes", fill: "exact" },
  small: { dims: SMALL, types: "F32", vocab: () => "bytes", fill: "exact" },
  "qwen3-30b-a3b": real("qwen3moe", QWEN3_30B, "ggml-vocab-qwen2.gguf"),
  "glm-4.5-air": real("glm4moe", GLM45_AIR, "ggml-vocab-qwen2.gguf"),
  "minimax-m2": real("minimax-m2", MINIMAX_M2, "ggml-vocab-qwen2.gguf"),
  "deepseek-v3": real("deepseek2", DEEPSEEK_V3, "ggml-vocab-deepseek-llm.gguf"),
  // llama.cpp's ggml-vocab-qwen35.gguf (151936 tokens with Qwen3.5's pre-tokenizer; the real
  // vocabulary is larger) and, for Qwen3-Next, Qwen2's
  "qwen3.5-35b-a3b": real(
    "qwen35moe",
    { ...TINY, ...HYBRID_PRESET_DIMS["qwen3.5-35b-a3b"], ropeSections: [11, 11, 10, 0] },
    "ggml-vocab-qwen35.gguf",
  ),
  "qwen3.5-397b-a17b": real(
    "qwen35moe",
    { ...TINY, ...HYBRID_PRESET_DIMS["qwen3.5-397b-a17b"], ropeSections: [11, 11, 10, 0] },
    "ggml-vocab-qwen35.gguf",
  ),
  "qwen3-next-80b-a3b": real(
    "qwen3next",
    { ...TINY, ...HYBRID_PRESET_DIMS["qwen3-next-80b-a3b"], ropeSections: [] },
    "ggml-vocab-qwen2.gguf",
  ),
};

/** Names of the presets. */
export const SYNTH_PRESETS: readonly SynthPreset[] = Object.keys(PRESETS) as SynthPreset[];

/**
 * The dims of a model: the preset's, with the architecture's defaults when the preset is a
 * generic one (tiny, small), then the explicit overrides.
 */
export function resolveDims(
  arch: string,
  preset: PresetDef,
  explicit: Partial<SynthDims>,
): SynthDims {
  const d = preset.arch ? { ...preset.dims } : archDims(arch, preset.dims, explicit);
  return { ...d, ...explicit };
}

/** Per-architecture adjustments that keep a generic preset valid for llama.cpp. */
function archDims(arch: string, d: SynthDims, explicit: Partial<SynthDims>): SynthDims {
  const out = { ...d };
  const set = <K extends keyof SynthDims>(k: K, v: SynthDims[K]) => {
    if (explicit[k] === undefined) out[k] = v;
  };
  switch (arch) {
    case "qwen3moe":
      // key_length differs from n_embd/n_head, as in the real model
      if (d === TINY) set("nHead", 8);
      break;
    case "llama":
      set("rmsEps", 1e-5);
      break;
    case "olmoe":
      // q/k norms span the whole projection: no GQA, head_dim = n_embd/n_head
      set("nHeadKv", out.nHead);
      set("headDim", out.nEmbd / out.nHead);
      set("rmsEps", 1e-5);
      set("ropeFreqBase", 1e4);
      break;
    case "qwen2moe":
      set("headDim", out.nEmbd / out.nHead);
      break;
    case "gpt-oss":
      set("headDim", 64);
      set("rmsEps", 1e-5);
      set("ropeFreqBase", 150000);
      set("nCtx", 131072);
      break;
    case "glm4moe":
      // GLM-4.5: one leading dense layer, one ungated shared expert, half-rotary heads, a
      // NextN block after the trunk; sigmoid + bias routing, renormalized, scaled (≠ 1 so a
      // forgotten scale shows); q/k biases and (optional) per-head q/k norms
      set("nLayerDenseLead", 1);
      set("nLayerNextn", 1);
      set("nExpertShared", 1);
      set("nFf", 512);
      set("ropeDim", out.headDim / 2);
      set("qkNorm", 1);
      set("rmsEps", 1e-5);
      set("expertGating", "sigmoid");
      set("expertWeightsNorm", true);
      set("expertWeightsScale", 1.5);
      break;
    case "minimax-m2":
      set("ropeDim", out.headDim / 2);
      set("expertGating", "sigmoid");
      break;
    case "deepseek2":
      // DeepSeek-V3 in small: MLA with q LoRA, 8 experts in 4 groups (2 kept), sigmoid + bias,
      // routed scale 2.5, one shared expert, one leading dense layer, V3's YaRN
      set("nHeadKv", 1);
      set("nExpert", 8);
      set("nExpertGroups", 4);
      set("nExpertGroupUsed", 2);
      set("nLayerDenseLead", 1);
      set("nExpertShared", 1);
      set("nFf", 512);
      set("qLoraRank", 256);
      set("kvLoraRank", 256);
      set("qkNopeDim", 64);
      set("ropeDim", 32);
      set("vHeadDim", 64);
      set("ropeFreqBase", 10000);
      set("expertGating", "sigmoid");
      set("expertWeightsNorm", true);
      set("expertWeightsScale", 2.5);
      set("yarnFactor", 40);
      set("yarnOrigCtx", 4096);
      set("yarnLogMul", 0.1);
      set("nCtx", 163840);
      break;
    case "qwen35moe":
    case "qwen3next":
      hybridGenericDims(arch, out, set);
      break;
  }
  return out;
}

/**
 * The draft config of a model of `arch` with dims `d` and `nVocab` tokens, from which the
 * metadata is written (the final config is read back from that metadata).
 */
export function draftConfig(arch: string, d: SynthDims, nVocab: number): ModelConfig {
  const mla = arch === "deepseek2";
  const headDim = mla ? d.kvLoraRank + d.ropeDim : d.headDim;
  const dense = arch === "glm4moe" || arch === "deepseek2";
  const routed = dense || arch === "minimax-m2";
  const hybrid = HYBRID_ARCHS.has(arch) ? hybridDraft(arch, d) : {};
  return {
    arch,
    nLayer: d.nLayer,
    nCtxTrain: d.nCtx,
    nEmbd: d.nEmbd,
    nVocab,
    nHead: d.nHead,
    nHeadKv: mla ? 1 : d.nHeadKv,
    headDim,
    headDimV: mla ? d.kvLoraRank : d.headDim,
    nFf: arch === "llama" || arch === "olmoe" || arch === "minimax-m2"
      ? d.nFfExp
      : dense
      ? d.nFf
      : 0,
    nExpert: d.nExpert,
    nExpertUsed: d.nExpertUsed,
    nFfExp: d.nFfExp,
    nExpertShared: dense ? d.nExpertShared : 0,
    nFfShexp: arch === "qwen2moe" ? d.nFfShexp : dense ? d.nFfExp * d.nExpertShared : 0,
    // FLOAT32 in the file: round here so the config read back is the same
    rmsEps: Math.fround(d.rmsEps),
    rope: {
      type: "neox",
      freqBase: Math.fround(d.ropeFreqBase),
      dim: d.ropeDim || headDim,
      ...(arch === "gpt-oss" ? { scaling: { type: "yarn", factor: 32, origCtx: 4096 } } : {}),
      ...(mla && d.yarnFactor > 0
        ? {
          scaling: {
            type: "yarn",
            factor: Math.fround(d.yarnFactor),
            origCtx: d.yarnOrigCtx,
            yarnLogMul: Math.fround(d.yarnLogMul),
          },
        }
        : {}),
    },
    slidingWindow: arch === "gpt-oss" ? d.slidingWindow : 0,
    swaPattern: 0,
    qkNorm: "none",
    attnQKVBias: false,
    attnOutBias: false,
    attnSinks: false,
    ffnNormName: "ffn_norm",
    routerBias: false,
    expertBias: false,
    act: "swiglu",
    nLayerDenseLead: dense ? d.nLayerDenseLead : 0,
    nLayerNextn: dense ? d.nLayerNextn : 0,
    expertGating: routed ? d.expertGating : "softmax",
    expertWeightsNorm: routed ? d.expertWeightsNorm : false,
    expertWeightsScale: routed ? Math.fround(d.expertWeightsScale) : 0,
    nExpertGroups: routed ? d.nExpertGroups : 0,
    nExpertGroupUsed: routed ? d.nExpertGroupUsed : 0,
    ...(mla
      ? {
        mla: {
          qLoraRank: d.qLoraRank,
          kvLoraRank: d.kvLoraRank,
          headDimK: d.qkNopeDim + d.ropeDim,
          headDimV: d.vHeadDim,
          qkRopeDim: d.ropeDim,
          qkNopeDim: d.qkNopeDim,
        },
      }
      : {}),
    ...hybrid,
  };
}

/**
 * Whether to write an optional tensor ({@link TensorSpec.optional}): glm4moe's q/k norms only
 * when `qkNorm` is 1; never the vocabulary-sized NextN `embed_tokens`/`shared_head_head`
 * (llama.cpp falls back to token_embd and output, as in the released GGUFs' smaller cousins);
 * deepseek2's `exp_probs_b` only with sigmoid gating (V2's softmax files have none).
 * Everything else optional is written.
 */
export function writesOptional(t: TensorSpec, cfg: ModelConfig, d: SynthDims): boolean {
  if (!t.optional) return true;
  const name = t.name;
  if (/\.attn_[qk]_norm\./.test(name)) return d.qkNorm !== 0;
  if (/\.nextn\.(embed_tokens|shared_head_head)\./.test(name)) return false;
  if (/\.exp_probs_b\./.test(name)) return cfg.expertGating === "sigmoid";
  return true;
}
