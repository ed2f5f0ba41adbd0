/**
 * Reading and writing hyperparameters as GGUF metadata (re-exported by config.ts, which holds
 * the types): the key table {@link HPARAMS} with the GGUF value types llama.cpp's loader checks,
 * the shared reader {@link baseConfig}, the checks every arch runs ({@link checkConfig}), the
 * writer {@link hparamKV}, and {@link ModelConfigError}.
 *
 * @module
 */

import type { GGUFTypeSpec, GGUFValue } from "../gguf/types.ts";
import { GGUFValueType } from "../gguf/types.ts";
import type { ArchSpec, KVEntry, KVSource, ModelConfig } from "./config.ts";
import { ModelLoadError } from "./errors.ts";

/** Reason of a {@link ModelConfigError}. */
export type ModelConfigErrorCode = "missing_key" | "bad_value" | "unknown_arch";

/**
 * A GGUF whose metadata does not describe a model spool can build (a {@link ModelLoadError}
 * that names the key).
 */
export class ModelConfigError extends ModelLoadError {
  /** Machine-readable reason. */
  readonly code: ModelConfigErrorCode;
  /** The metadata key concerned, if any. */
  readonly key: string | undefined;

  /**
   * @param code reason
   * @param message what and where
   * @param key the metadata key concerned
   * @param options standard error options (`cause`)
   */
  constructor(
    code: ModelConfigErrorCode,
    message: string,
    key?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ModelConfigError";
    this.code = code;
    this.key = key;
  }
}

const U32 = { type: GGUFValueType.UINT32 } as const;
const F32 = { type: GGUFValueType.FLOAT32 } as const;
const STR = { type: GGUFValueType.STRING } as const;
const BOOL = { type: GGUFValueType.BOOL } as const;
const BOOL_ARRAY = { type: GGUFValueType.ARRAY, elementType: GGUFValueType.BOOL } as const;
const I32_ARRAY = { type: GGUFValueType.ARRAY, elementType: GGUFValueType.INT32 } as const;

/**
 * Every hyperparameter key spool reads: the suffix after `<arch>.` and its GGUF value type
 * (as `convert_hf_to_gguf.py` writes it and llama.cpp's loader checks it).
 */
export const HPARAMS = {
  context_length: U32,
  embedding_length: U32,
  block_count: U32,
  feed_forward_length: U32,
  vocab_size: U32,
  "attention.head_count": U32,
  "attention.head_count_kv": U32,
  "attention.key_length": U32,
  "attention.value_length": U32,
  "attention.layer_norm_rms_epsilon": F32,
  "attention.sliding_window": U32,
  "rope.freq_base": F32,
  "rope.dimension_count": U32,
  "rope.scaling.type": STR,
  "rope.scaling.factor": F32,
  "rope.scaling.original_context_length": U32,
  expert_count: U32,
  expert_used_count: U32,
  expert_feed_forward_length: U32,
  expert_shared_feed_forward_length: U32,
  expert_shared_count: U32,
  leading_dense_block_count: U32,
  nextn_predict_layers: U32,
  expert_gating_func: U32,
  expert_weights_norm: BOOL,
  expert_weights_scale: F32,
  expert_group_count: U32,
  expert_group_used_count: U32,
  "attention.q_lora_rank": U32,
  "attention.kv_lora_rank": U32,
  "attention.key_length_mla": U32,
  "attention.value_length_mla": U32,
  "rope.scaling.yarn_log_multiplier": F32,
  // hybrids (qwen35moe, qwen3next): llama.cpp also accepts INT32/UINT32 arrays, or one UINT32,
  // for recurrent_layers, and UINT32/BOOL arrays (or one INT32) for the sections
  full_attention_interval: U32,
  "attention.recurrent_layers": BOOL_ARRAY,
  "rope.dimension_sections": I32_ARRAY,
  "ssm.conv_kernel": U32,
  "ssm.inner_size": U32,
  "ssm.state_size": U32,
  "ssm.time_step_rank": U32,
  "ssm.group_count": U32,
} as const satisfies Record<string, GGUFTypeSpec>;

/** A hyperparameter key of {@link HPARAMS}. */
export type HParam = keyof typeof HPARAMS;

/** Keys every supported architecture requires (llama.cpp's generic `load_hparams`). */
export const BASE_REQUIRED: readonly HParam[] = [
  "context_length",
  "embedding_length",
  "block_count",
  "attention.head_count",
  "attention.layer_norm_rms_epsilon",
  "expert_count",
  "expert_used_count",
];

/** Keys every supported architecture reads when present. */
export const BASE_OPTIONAL: readonly HParam[] = [
  "feed_forward_length",
  "vocab_size",
  "attention.head_count_kv",
  "attention.key_length",
  "attention.value_length",
  "rope.freq_base",
  "rope.dimension_count",
];

function num(v: GGUFValue | undefined, key: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") {
    throw new ModelConfigError("bad_value", `Metadata "${key}" is ${v}, beyond 2^53`, key);
  }
  // llama.cpp accepts per-layer arrays for some keys (head_count, feed_forward_length);
  // spool supports uniform layers only, so an array must hold one repeated value.
  if (ArrayBuffer.isView(v) || Array.isArray(v)) {
    const a = Array.from(v as ArrayLike<number>);
    if (a.length > 0 && typeof a[0] === "number" && a.every((x) => x === a[0])) return a[0];
    throw new ModelConfigError(
      "bad_value",
      `Metadata "${key}" varies per layer (${a.slice(0, 8).join(", ")}...), not supported`,
      key,
    );
  }
  throw new ModelConfigError(
    "bad_value",
    `Metadata "${key}" is ${typeof v}, expected a number`,
    key,
  );
}

function bool(v: GGUFValue | undefined, key: string): boolean | undefined {
  if (v === undefined || typeof v === "boolean") return v;
  throw new ModelConfigError("bad_value", `Metadata "${key}" is ${typeof v}, expected a bool`, key);
}

/** `expert_gating_func` ids llama.cpp defines (llama-hparams.h); spool runs 1 and 2. */
const GATING: Record<number, ModelConfig["expertGating"] | undefined> = {
  1: "softmax",
  2: "sigmoid",
};

/**
 * Read the hyperparameters shared by all architectures. `required` keys (suffixes) must be
 * present; the arch-specific flags (qkNorm, biases, ...) get their plain-decoder defaults and
 * each {@link ArchSpec.config} overrides them.
 *
 * @param kv GGUF metadata
 * @param arch expected `general.architecture`
 * @param required keys that must be present
 * @throws ModelConfigError `missing_key`, `bad_value`, or `unknown_arch` if the file's
 *   architecture is another one
 */
export function baseConfig(
  kv: KVSource,
  arch: string,
  required: readonly HParam[],
): ModelConfig {
  const fileArch = kv.get("general.architecture");
  if (fileArch !== undefined && fileArch !== arch) {
    throw new ModelConfigError(
      "unknown_arch",
      `GGUF architecture is "${String(fileArch)}", expected "${arch}"`,
      "general.architecture",
    );
  }
  const req = new Set(required);
  const get = (k: HParam): number | undefined => {
    const key = `${arch}.${k}`;
    const v = num(kv.get(key), key);
    if (v === undefined && req.has(k)) {
      throw new ModelConfigError("missing_key", `Missing metadata key "${key}"`, key);
    }
    return v;
  };
  const positive = (k: HParam, v: number | undefined): number => {
    if (v === undefined || !Number.isInteger(v) || v <= 0) {
      const key = `${arch}.${k}`;
      throw new ModelConfigError("bad_value", `Metadata "${key}" is ${v}, expected > 0`, key);
    }
    return v;
  };
  const nEmbd = positive("embedding_length", get("embedding_length"));
  const nHead = positive("attention.head_count", get("attention.head_count"));
  const headDim = get("attention.key_length") ?? nEmbd / nHead;
  if (!Number.isInteger(headDim)) {
    throw new ModelConfigError(
      "bad_value",
      `${arch}: embedding_length ${nEmbd} is not a multiple of head_count ${nHead} and ` +
        `attention.key_length is absent`,
      `${arch}.attention.key_length`,
    );
  }
  const tokens = kv.get("tokenizer.ggml.tokens");
  const nVocab = get("vocab_size") ?? (Array.isArray(tokens) ? tokens.length : 0);
  const nFf = get("feed_forward_length") ?? 0;
  const nExpertUsed = get("expert_used_count") ?? 0;
  const logMulKey = `${arch}.rope.scaling.yarn_log_multiplier`;
  const yarnLogMul = num(kv.get(logMulKey), logMulKey);
  const scalingType = kv.get(`${arch}.rope.scaling.type`);
  const scaling = typeof scalingType === "string" && scalingType !== "none"
    ? {
      type: scalingType,
      factor: get("rope.scaling.factor") ?? 1,
      origCtx: get("rope.scaling.original_context_length") ?? 0,
    }
    : undefined;
  if (scaling && yarnLogMul !== undefined) Object.assign(scaling, { yarnLogMul });
  const rmsEps = get("attention.layer_norm_rms_epsilon") ?? 1e-6;
  const nLayerAll = positive("block_count", get("block_count"));
  const nLayerNextn = get("nextn_predict_layers") ?? 0;
  if (!Number.isInteger(nLayerNextn) || nLayerNextn < 0 || nLayerNextn >= nLayerAll) {
    const key = `${arch}.nextn_predict_layers`;
    throw new ModelConfigError(
      "bad_value",
      `Metadata "${key}" is ${nLayerNextn}, expected 0..${
        nLayerAll - 1
      } (block_count ${nLayerAll})`,
      key,
    );
  }
  const normKey = `${arch}.expert_weights_norm`;
  return {
    arch,
    nLayer: nLayerAll - nLayerNextn,
    nCtxTrain: get("context_length") ?? 0,
    nEmbd,
    nVocab,
    nHead,
    nHeadKv: get("attention.head_count_kv") ?? nHead,
    headDim,
    headDimV: get("attention.value_length") ?? headDim,
    nFf,
    nExpert: get("expert_count") ?? 0,
    nExpertUsed,
    nFfExp: get("expert_feed_forward_length") ??
      (nExpertUsed > 0 && nFf > 0 ? Math.floor(nFf / nExpertUsed) : 0),
    nExpertShared: get("expert_shared_count") ?? 0,
    nFfShexp: get("expert_shared_feed_forward_length") ?? 0,
    rmsEps,
    rope: {
      type: "neox",
      freqBase: get("rope.freq_base") ?? 10000,
      dim: get("rope.dimension_count") ?? headDim,
      ...(scaling ? { scaling } : {}),
    },
    slidingWindow: get("attention.sliding_window") ?? 0,
    swaPattern: 0,
    qkNorm: "none",
    attnQKVBias: false,
    attnOutBias: false,
    attnSinks: false,
    ffnNormName: "ffn_norm",
    routerBias: false,
    expertBias: false,
    act: "swiglu",
    nLayerDenseLead: get("leading_dense_block_count") ?? 0,
    nLayerNextn,
    expertGating: "softmax",
    expertWeightsNorm: bool(kv.get(normKey), normKey) ?? false,
    expertWeightsScale: get("expert_weights_scale") ?? 0,
    nExpertGroups: get("expert_group_count") ?? 0,
    nExpertGroupUsed: get("expert_group_used_count") ?? 0,
  };
}

/**
 * The router gate of an arch that reads `expert_gating_func` (llama.cpp reads it per arch, so
 * the five original archs never do): 1 softmax, 2 sigmoid; absent or 0 (NONE) gives
 * `whenAbsent`, or, without one, a `missing_key` error.
 * @throws ModelConfigError naming the key for an absent key without default, or ids 3
 *   (SOFTMAX_WEIGHT) and 4 (SQRT_SOFTPLUS), which these archs never use
 */
export function expertGating(
  kv: KVSource,
  arch: string,
  whenAbsent?: ModelConfig["expertGating"],
): ModelConfig["expertGating"] {
  const key = `${arch}.expert_gating_func`;
  const id = num(kv.get(key), key) ?? 0;
  if (id === 0) {
    if (whenAbsent) return whenAbsent;
    throw new ModelConfigError("missing_key", `Missing metadata key "${key}"`, key);
  }
  const g = GATING[id];
  if (g === undefined) {
    throw new ModelConfigError(
      "bad_value",
      `Metadata "${key}" is ${id}; spool supports 1 (softmax) and 2 (sigmoid)`,
      key,
    );
  }
  return g;
}

/**
 * Read one numeric hyperparameter `<arch>.<k>` (for the arch files' own keys).
 * @throws ModelConfigError `missing_key` when `required` and absent, `bad_value` if not a number
 */
export function hparam(
  kv: KVSource,
  arch: string,
  k: HParam,
  required = false,
): number | undefined {
  const key = `${arch}.${k}`;
  const v = num(kv.get(key), key);
  if (v === undefined && required) {
    throw new ModelConfigError("missing_key", `Missing metadata key "${key}"`, key);
  }
  return v;
}

/**
 * Check the MoE fields every supported architecture needs and any extra rules; returns `cfg`.
 * @throws ModelConfigError `bad_value` naming the rule that failed
 */
export function checkConfig(
  cfg: ModelConfig,
  rules: ReadonlyArray<readonly [boolean, string] | readonly [boolean, string, HParam]> = [],
): ModelConfig {
  const g = cfg.nExpertGroups, gu = cfg.nExpertGroupUsed;
  const all: Array<readonly [boolean, string] | readonly [boolean, string, HParam]> = [
    [cfg.nExpert > 0, `expert_count is ${cfg.nExpert}, expected > 0`, "expert_count"],
    [
      cfg.nExpertUsed > 0 && cfg.nExpertUsed <= cfg.nExpert,
      `expert_used_count is ${cfg.nExpertUsed}, expected 1..${cfg.nExpert}`,
      "expert_used_count",
    ],
    [cfg.nFfExp > 0, `expert FFN size is ${cfg.nFfExp}, expected > 0`],
    [
      cfg.nHeadKv > 0 && cfg.nHead % cfg.nHeadKv === 0,
      `head_count ${cfg.nHead} is not a multiple of head_count_kv ${cfg.nHeadKv}`,
    ],
    [cfg.nVocab > 0, `vocabulary size is ${cfg.nVocab}, expected > 0`],
    // llama.cpp's generic load_hparams asserts these (llama-model.cpp)
    [
      g === 0 || g < cfg.nExpert,
      `expert_group_count ${g} must be below expert_count ${cfg.nExpert}`,
      "expert_group_count",
    ],
    [
      g <= 1 || cfg.nExpert % g === 0,
      `expert_count ${cfg.nExpert} is not a multiple of expert_group_count ${g}`,
      "expert_group_count",
    ],
    [
      g <= 1 || (gu > 0 && gu < g),
      `expert_group_used_count ${gu} must be in 1..${g - 1} (expert_group_count ${g})`,
      "expert_group_used_count",
    ],
    [
      g <= 1 || cfg.nExpertUsed <= gu * (cfg.nExpert / g),
      `expert_used_count ${cfg.nExpertUsed} exceeds the ${gu} groups of ${cfg.nExpert / g} ` +
      `experts kept per token`,
      "expert_used_count",
    ],
    [
      cfg.nLayerDenseLead < cfg.nLayer,
      `leading_dense_block_count ${cfg.nLayerDenseLead} leaves no MoE layer in ${cfg.nLayer} ` +
      `(block_count ${cfg.nLayer + cfg.nLayerNextn} less ${cfg.nLayerNextn} NextN)`,
      "leading_dense_block_count",
    ],
    [
      cfg.nLayerDenseLead === 0 || cfg.nFf > 0,
      `leading_dense_block_count is ${cfg.nLayerDenseLead} but feed_forward_length is absent`,
      "feed_forward_length",
    ],
    [
      Number.isFinite(cfg.expertWeightsScale) && cfg.expertWeightsScale >= 0,
      `expert_weights_scale is ${cfg.expertWeightsScale}, expected >= 0`,
      "expert_weights_scale",
    ],
    ...rules,
  ];
  for (const [ok, what, k] of all) {
    if (!ok) {
      throw new ModelConfigError(
        "bad_value",
        `${cfg.arch}: ${what}`,
        k === undefined ? undefined : `${cfg.arch}.${k}`,
      );
    }
  }
  return cfg;
}

/** The `ssm.*` and layer-pattern keys of a hybrid config (none for other models). */
function deltaNetValues(cfg: ModelConfig): Partial<Record<HParam, GGUFValue>> {
  const d = cfg.deltaNet;
  if (!d) return {};
  return {
    "ssm.conv_kernel": d.convKernel,
    "ssm.inner_size": d.innerSize,
    "ssm.state_size": d.headKDim,
    "ssm.time_step_rank": d.nVHeads,
    "ssm.group_count": d.nKHeads,
    // the interval when the pattern came from one, else the explicit per-block array (NextN
    // blocks are never recurrent)
    full_attention_interval: d.fullAttnInterval || undefined,
    "attention.recurrent_layers": d.fullAttnInterval
      ? undefined
      : [...d.layers, ...new Array<boolean>(cfg.nLayerNextn).fill(false)],
  };
}

/**
 * The hyperparameter metadata of `cfg` for an architecture: every required key, plus each
 * optional key whose value differs from the default llama.cpp would assume (so a reader
 * rebuilds the same config). `general.architecture` and the tokenizer keys are not included.
 */
export function hparamKV(spec: ArchSpec, cfg: ModelConfig): KVEntry[] {
  const values: Partial<Record<HParam, GGUFValue>> = {
    context_length: cfg.nCtxTrain,
    embedding_length: cfg.nEmbd,
    block_count: cfg.nLayer + cfg.nLayerNextn,
    feed_forward_length: cfg.nFf || undefined,
    "attention.head_count": cfg.nHead,
    "attention.head_count_kv": cfg.nHeadKv,
    "attention.key_length": cfg.headDim,
    "attention.value_length": cfg.headDimV,
    "attention.layer_norm_rms_epsilon": cfg.rmsEps,
    "attention.sliding_window": cfg.slidingWindow || undefined,
    "rope.freq_base": cfg.rope.freqBase,
    "rope.dimension_count": cfg.rope.dim,
    "rope.scaling.type": cfg.rope.scaling?.type,
    "rope.scaling.factor": cfg.rope.scaling?.factor,
    "rope.scaling.original_context_length": cfg.rope.scaling?.origCtx || undefined,
    expert_count: cfg.nExpert,
    expert_used_count: cfg.nExpertUsed,
    expert_feed_forward_length: cfg.nFfExp,
    expert_shared_feed_forward_length: cfg.nFfShexp || undefined,
    expert_shared_count: cfg.nExpertShared || undefined,
    leading_dense_block_count: cfg.nLayerDenseLead,
    nextn_predict_layers: cfg.nLayerNextn || undefined,
    expert_gating_func: cfg.expertGating === "sigmoid" ? 2 : 1,
    expert_weights_norm: cfg.expertWeightsNorm,
    expert_weights_scale: cfg.expertWeightsScale || undefined,
    expert_group_count: cfg.nExpertGroups || undefined,
    expert_group_used_count: cfg.nExpertGroupUsed || undefined,
    "attention.q_lora_rank": cfg.mla?.qLoraRank,
    "attention.kv_lora_rank": cfg.mla?.kvLoraRank,
    "attention.key_length_mla": cfg.mla?.headDimK,
    "attention.value_length_mla": cfg.mla?.headDimV,
    "rope.scaling.yarn_log_multiplier": cfg.rope.scaling?.yarnLogMul,
    "rope.dimension_sections": cfg.rope.sections ? [...cfg.rope.sections] : undefined,
    ...deltaNetValues(cfg),
  };
  const out: KVEntry[] = [];
  for (const k of new Set([...spec.required, ...spec.optional])) {
    const v = values[k];
    if (v === undefined) continue;
    out.push({ key: `${cfg.arch}.${k}`, type: HPARAMS[k], value: v });
  }
  return out;
}
