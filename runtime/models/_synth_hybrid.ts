/**
 * Synthetic Qwen hybrids (qwen35moe, qwen3next) for synth.ts: their dims in the generic presets,
 * the real-shaped presets, and the hybrid part of the draft config the metadata is written from.
 *
 * Real shapes (the models' HF `config.json`): Qwen3.5-35B-A3B has 40 layers × 2048, 16 query /
 * 2 KV heads of 256 (rope on 64 dims, IMROPE sections [11, 11, 10]), Gated DeltaNet with 16 key
 * and 32 value heads of 128 and a 4-tap conv, 256 experts (top 8) of 512 plus a shared expert of
 * 512, one MTP block; Qwen3.5-397B-A17B has 60 layers × 4096, 32 / 2 heads of 256, 16 key and
 * 64 value heads, 512 experts (top 10) of 1024 plus a shared one of 1024; Qwen3-Next-80B-A3B has
 * 48 layers × 2048, 16 / 2 heads of 256, 16 key and 32 value heads, 512 experts (top 10) of 512
 * plus a shared one of 512. All: every 4th layer full attention, rope base 1e7.
 *
 * @module
 */

import type { DeltaNetConfig, ModelConfig } from "./config.ts";
import type { SynthDims } from "./_synth_presets.ts";

/** The hybrid architectures. */
export const HYBRID_ARCHS: ReadonlySet<string> = new Set(["qwen35moe", "qwen3next"]);

/**
 * The generic presets (tiny, small) as a hybrid: four layers (three Gated DeltaNet, then one
 * full attention, the real 3:1 pattern) and one MTP block, 2 key and 4 value heads of 64 (value
 * heads a multiple of key heads, as in the real models) with a 4-tap conv, partial rope on a
 * quarter of each head, rope base 1e7, a shared expert as wide as the routed ones ×2.
 */
export function hybridGenericDims(
  arch: string,
  out: SynthDims,
  set: <K extends keyof SynthDims>(k: K, v: SynthDims[K]) => void,
): void {
  set("nLayer", Math.max(4, out.nLayer));
  set("nLayerNextn", 1);
  set("fullAttnInterval", 4);
  set("ssmConvKernel", 4);
  set("ssmStateSize", 64);
  set("ssmGroupCount", 2);
  set("ssmTimeStepRank", 4);
  set("ropeDim", out.headDim / 4);
  set("ropeFreqBase", 1e7);
  set("nFfShexp", 2 * out.nFfExp);
  if (arch === "qwen3next") set("ropeSections", []);
}

const BASE = {
  nHeadKv: 2,
  headDim: 256,
  nCtx: 262144,
  ropeFreqBase: 1e7,
  rmsEps: 1e-6,
  ropeDim: 64,
  ropeSections: [11, 11, 10, 0],
  fullAttnInterval: 4,
  recurrentLayers: "",
  ssmConvKernel: 4,
  ssmStateSize: 128,
  ssmGroupCount: 16,
};

/**
 * Real-shaped hybrid presets with fewer layers (a whole number of 3:1 groups), as Q4_K_M with a
 * 151936-token vocabulary: Qwen3.5-35B-A3B with 12 layers (+1 MTP block, 0.55 GB of it), 7.3 GB;
 * Qwen3.5-397B-A17B with 4 layers (no MTP block, about 4 GB more), 17.9 GB;
 * Qwen3-Next-80B-A3B with 4 layers (+1 MTP block, 1.1 GB of it), 5.8 GB.
 */
export const HYBRID_PRESET_DIMS = {
  "qwen3.5-35b-a3b": {
    ...BASE,
    nLayer: 12,
    nLayerNextn: 1,
    nEmbd: 2048,
    nHead: 16,
    nExpert: 256,
    nExpertUsed: 8,
    nFfExp: 512,
    nFfShexp: 512,
    ssmTimeStepRank: 32,
  },
  "qwen3.5-397b-a17b": {
    ...BASE,
    nLayer: 4,
    nLayerNextn: 0,
    nEmbd: 4096,
    nHead: 32,
    nExpert: 512,
    nExpertUsed: 10,
    nFfExp: 1024,
    nFfShexp: 1024,
    ssmTimeStepRank: 64,
  },
  "qwen3-next-80b-a3b": {
    ...BASE,
    ropeSections: [],
    nLayer: 4,
    nLayerNextn: 1,
    nEmbd: 2048,
    nHead: 16,
    nExpert: 512,
    nExpertUsed: 10,
    nFfExp: 512,
    nFfShexp: 512,
    ssmTimeStepRank: 32,
  },
} as const satisfies Record<string, Partial<SynthDims>>;

/**
 * M-RoPE sections for `ropeDim` rotated dims when none are given: the rotated pairs split as
 * the real models do ([11, 11, 10, 0] for 64 dims): t = h = ceil(n/3), w = the rest.
 */
export function defaultSections(ropeDim: number): number[] {
  const n = ropeDim / 2;
  const t = Math.ceil(n / 3);
  return [t, t, n - 2 * t, 0];
}

/** The trunk's layer pattern of `d`: `recurrentLayers` ("r"/"a" per layer) or the interval. */
function pattern(d: SynthDims): boolean[] {
  if (d.recurrentLayers) {
    if (d.recurrentLayers.length !== d.nLayer) {
      throw new Error(
        `recurrentLayers "${d.recurrentLayers}" has ${d.recurrentLayers.length} layers, ` +
          `expected ${d.nLayer}`,
      );
    }
    return [...d.recurrentLayers].map((c) => c === "r");
  }
  return Array.from({ length: d.nLayer }, (_, i) => (i + 1) % d.fullAttnInterval !== 0);
}

/** The hybrid fields of the draft config of a hybrid of `arch` with dims `d`. */
export function hybridDraft(arch: string, d: SynthDims): Partial<ModelConfig> {
  const nK = d.ssmGroupCount, nV = d.ssmTimeStepRank, dk = d.ssmStateSize;
  const inner = nV * dk;
  const channels = 2 * nK * dk + inner;
  const deltaNet: DeltaNetConfig = {
    layers: pattern(d),
    fullAttnInterval: d.recurrentLayers ? 0 : d.fullAttnInterval,
    convKernel: d.ssmConvKernel,
    headKDim: dk,
    headVDim: dk,
    nKHeads: nK,
    nVHeads: nV,
    innerSize: inner,
    convChannels: channels,
    vHeadOrder: arch === "qwen35moe" ? "tiled" : "grouped",
    convStateFloats: (d.ssmConvKernel - 1) * channels,
    ssmStateFloats: nV * dk * dk,
  };
  const ropeDim = d.ropeDim || d.headDim;
  const sections = arch === "qwen35moe"
    ? { sections: d.ropeSections.length ? [...d.ropeSections] : defaultSections(ropeDim) }
    : {};
  return {
    nFfShexp: d.nFfShexp,
    nExpertShared: 1,
    nLayerNextn: d.nLayerNextn,
    rope: { type: "neox", freqBase: Math.fround(d.ropeFreqBase), dim: ropeDim, ...sections },
    qkNorm: "head",
    ffnNormName: "post_attention_norm",
    deltaNet,
  };
}
