/**
 * What the two Qwen hybrids (qwen35moe, qwen3next) share: reading their hyperparameters (the
 * Gated DeltaNet sizes, the layer pattern, the M-RoPE sections) into a {@link ModelConfig} with
 * {@link DeltaNetConfig}, and their tensor table. llama.cpp: src/models/qwen35moe.cpp and
 * qwen3next.cpp (`load_arch_hparams`, `load_arch_tensors`), which are the same up to the
 * beta/alpha projection (split vs fused), the value-head order and the rope (IMROPE vs NEOX).
 *
 * @module
 */

import {
  decoderTensors,
  deltaNetTensors,
  gatedAttentionTensors,
  moeTensors,
  sharedExpertTensors,
} from "./_blocks.ts";
import {
  BASE_OPTIONAL,
  BASE_REQUIRED,
  baseConfig,
  checkConfig,
  type DeltaNetConfig,
  type HParam,
  hparam,
  type KVSource,
  type ModelConfig,
  ModelConfigError,
  type TensorSpec,
} from "./config.ts";

/** Keys llama.cpp requires of both hybrids (generic `load_hparams` plus `ssm.*`). */
export const HYBRID_REQUIRED: readonly HParam[] = [
  ...BASE_REQUIRED,
  "ssm.conv_kernel",
  "ssm.inner_size",
  "ssm.state_size",
  "ssm.time_step_rank",
  "ssm.group_count",
];

/** Keys both hybrids read when present. */
export const HYBRID_OPTIONAL: readonly HParam[] = [
  ...BASE_OPTIONAL,
  "expert_feed_forward_length",
  "expert_shared_feed_forward_length",
  "nextn_predict_layers",
  "full_attention_interval",
  "attention.recurrent_layers",
];

/** How the two hybrids differ in their config. */
export interface HybridVariant {
  /** Value head j reads key head `j % n_k` ("tiled") or `j / (n_v / n_k)` ("grouped"). */
  readonly vHeadOrder: DeltaNetConfig["vHeadOrder"];
  /** Whether `rope.dimension_sections` is required and read (qwen35moe's IMROPE). */
  readonly sections: boolean;
}

function bad(arch: string, k: HParam, what: string): ModelConfigError {
  const key = `${arch}.${k}`;
  return new ModelConfigError("bad_value", `Metadata "${key}" ${what}`, key);
}

function arrayOf(v: unknown): number[] | undefined {
  if (ArrayBuffer.isView(v) || Array.isArray(v)) {
    return Array.from(v as ArrayLike<number | boolean>, (x) => Number(x));
  }
  return undefined;
}

/**
 * Per trunk layer, whether it is recurrent, as llama.cpp decides (`load_arch_hparams`):
 * `attention.recurrent_layers` (one entry per block of the file, or one number for all) when
 * present, else layer i is recurrent unless `(i + 1) % full_attention_interval == 0` (default 4).
 */
function layerPattern(
  kv: KVSource,
  arch: string,
  nLayer: number,
  nBlocks: number,
): { layers: boolean[]; interval: number } {
  const key = `${arch}.attention.recurrent_layers`;
  const v = kv.get(key);
  if (v !== undefined) {
    const a = arrayOf(v) ?? (typeof v === "number" ? new Array<number>(nBlocks).fill(v) : null);
    if (a === null) {
      throw bad(arch, "attention.recurrent_layers", `is ${typeof v}, expected an array`);
    }
    if (a.length !== nBlocks) {
      throw bad(
        arch,
        "attention.recurrent_layers",
        `has ${a.length} entries, expected ${nBlocks} (block_count)`,
      );
    }
    return { layers: a.slice(0, nLayer).map((x) => x !== 0), interval: 0 };
  }
  const interval = hparam(kv, arch, "full_attention_interval") ?? 4;
  if (!Number.isInteger(interval) || interval < 1) {
    throw bad(arch, "full_attention_interval", `is ${interval}, expected >= 1`);
  }
  const layers = Array.from({ length: nLayer }, (_, i) => (i + 1) % interval !== 0);
  return { layers, interval };
}

/**
 * Whether IMROPE with `sections` over `nRot` dims is, for text (positions t = h = w = pos,
 * e = 0), exactly NEOX rope over `nRot` dims: ggml's `ggml_mrope_cache_init` gives rotated pair
 * p the sector `s = p % sum(sections)` and takes theta from h when `s % 3 == 1 && s < 3·h`,
 * from w when `s % 3 == 2 && s < 3·w`, from t when `s % 3 == 0 && s < 3·t`, else from e. Every
 * theta advances by the same `freq_base^(-2/nRot)` per pair, so when no pair falls to e each
 * pair's angle is `pos · freq_base^(-2p/nRot)`, NEOX's angle, computed by the same float steps.
 */
export function imropeIsNeoxForText(sections: readonly number[], nRot: number): boolean {
  const [t, h, w] = sections;
  const sum = sections.reduce((a, b) => a + b, 0);
  if (sum <= 0) return false;
  for (let p = 0; p < nRot / 2; p++) {
    const s = p % sum;
    const m = s % 3;
    const ok = (m === 0 && s < 3 * t) || (m === 1 && s < 3 * h) || (m === 2 && s < 3 * w);
    if (!ok) return false;
  }
  return true;
}

/** qwen35moe's `rope.dimension_sections` (4 entries, or one number for all), checked. */
function ropeSections(kv: KVSource, arch: string, nRot: number, headDim: number): number[] {
  const key = `${arch}.rope.dimension_sections`;
  const v = kv.get(key);
  if (v === undefined) {
    throw new ModelConfigError("missing_key", `Missing metadata key "${key}"`, key);
  }
  const s = arrayOf(v) ?? (typeof v === "number" ? [v, v, v, v] : null);
  if (s === null || s.length !== 4 || !s.every((x) => Number.isInteger(x) && x >= 0)) {
    throw bad(arch, "rope.dimension_sections", `is ${String(v)}, expected 4 integers >= 0`);
  }
  const sum = s.reduce((a, b) => a + b, 0);
  if (s[0] + s[1] + s[2] === 0 || sum > headDim) {
    throw bad(
      arch,
      "rope.dimension_sections",
      `is [${s.join(", ")}]: t+h+w must be > 0 and the sum <= head size ${headDim}`,
    );
  }
  if (!imropeIsNeoxForText(s, nRot)) {
    throw bad(
      arch,
      "rope.dimension_sections",
      `is [${s.join(", ")}]: some of the ${nRot / 2} rotated pairs take the 4th (image) ` +
        `position, which is not supported for text`,
    );
  }
  return s;
}

/** Read the Gated DeltaNet sizes; checks name the key. */
function deltaNetSizes(
  kv: KVSource,
  arch: string,
  layers: boolean[],
  interval: number,
  vHeadOrder: DeltaNetConfig["vHeadOrder"],
): DeltaNetConfig {
  const get = (k: HParam, min: number, why: string): number => {
    const v = hparam(kv, arch, k, true)!;
    if (!Number.isInteger(v) || v < min) throw bad(arch, k, `is ${v}, expected >= ${min}${why}`);
    return v;
  };
  const convKernel = get("ssm.conv_kernel", 2, " (a causal conv keeping k-1 inputs)");
  const headKDim = get("ssm.state_size", 1, "");
  const nKHeads = get("ssm.group_count", 1, "");
  const nVHeads = get("ssm.time_step_rank", 1, "");
  const innerSize = get("ssm.inner_size", 1, "");
  if (nVHeads % nKHeads !== 0) {
    throw bad(
      arch,
      "ssm.time_step_rank",
      `(value heads) is ${nVHeads}, not a multiple of ssm.group_count (key heads) ${nKHeads}`,
    );
  }
  if (innerSize !== headKDim * nVHeads) {
    throw bad(
      arch,
      "ssm.inner_size",
      `is ${innerSize}, expected ssm.state_size × ssm.time_step_rank = ${headKDim} × ` +
        `${nVHeads} (llama.cpp needs value heads as wide as key heads)`,
    );
  }
  const headVDim = innerSize / nVHeads;
  const convChannels = 2 * nKHeads * headKDim + innerSize;
  return {
    layers,
    fullAttnInterval: interval,
    convKernel,
    headKDim,
    headVDim,
    nKHeads,
    nVHeads,
    innerSize,
    convChannels,
    vHeadOrder,
    convStateFloats: (convKernel - 1) * convChannels,
    ssmStateFloats: nVHeads * headKDim * headVDim,
  };
}

/**
 * Read and check a hybrid's config. @throws ModelConfigError naming the key
 */
export function hybridConfig(kv: KVSource, arch: string, v: HybridVariant): ModelConfig {
  // rope.dimension_sections (required of qwen35moe) is an array: ropeSections reads it
  const base = baseConfig(kv, arch, HYBRID_REQUIRED);
  const { layers, interval } = layerPattern(kv, arch, base.nLayer, base.nLayer + base.nLayerNextn);
  const rope = v.sections
    ? { ...base.rope, sections: ropeSections(kv, arch, base.rope.dim, base.headDim) }
    : base.rope;
  const cfg: ModelConfig = {
    ...base,
    rope,
    qkNorm: "head",
    ffnNormName: "post_attention_norm",
    nExpertShared: 1,
    nFfShexp: base.nFfShexp || base.nFf,
    deltaNet: deltaNetSizes(kv, arch, layers, interval, v.vHeadOrder),
  };
  return checkConfig(cfg, [
    [
      cfg.nFfShexp > 0,
      `shared expert FFN size is 0 (expert_shared_feed_forward_length and ` +
      `feed_forward_length are absent)`,
      "expert_shared_feed_forward_length",
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
}

/**
 * Every tensor of a hybrid: per trunk layer the pre-norm and either the Gated DeltaNet
 * ({@link deltaNetTensors}) or the gated attention ({@link gatedAttentionTensors}), then
 * `post_attention_norm`, the router, the routed experts and the sigmoid-gated shared expert;
 * the NextN/MTP blocks are full-attention blocks (marked `mtp`).
 */
export function hybridTensors(cfg: ModelConfig, betaAlpha: "split" | "fused"): TensorSpec[] {
  const recurrent = cfg.deltaNet?.layers ?? [];
  return decoderTensors(cfg, (i) => [
    ...(recurrent[i] === true ? deltaNetTensors(cfg, i, betaAlpha) : gatedAttentionTensors(cfg, i)),
    ...moeTensors(cfg, i, { normName: "post_attention_norm" }),
    ...sharedExpertTensors(cfg, i),
  ]);
}
