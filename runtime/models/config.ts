/**
 * Model hyperparameters ({@link ModelConfig}), the architecture-spec types ({@link ArchSpec},
 * {@link TensorSpec}, {@link RoutingSpec}) and reading/writing hyperparameters as GGUF metadata.
 *
 * GGUF stores hyperparameters under `<arch>.<suffix>` keys (`qwen3moe.block_count`), with the
 * value types llama.cpp's loader checks (it rejects a UINT32 key stored as INT32). The table
 * {@link HPARAMS} lists every key spool knows, its GGUF type and the {@link ModelConfig} field
 * it fills; each {@link ArchSpec} says which of them it requires.
 *
 * @module
 */

import type { GGUFTypeSpec, GGUFValue } from "../gguf/types.ts";
import { GGUFValueType } from "../gguf/types.ts";

/** GGUF metadata, as the reader returns it (`GGUFFile.kv`). */
export type KVSource = ReadonlyMap<string, GGUFValue>;

/** One metadata entry to write: key, declared GGUF type and value. */
export interface KVEntry {
  /** Full key, e.g. `qwen3moe.block_count`. */
  readonly key: string;
  /** Declared GGUF type. */
  readonly type: GGUFTypeSpec;
  /** The value. */
  readonly value: GGUFValue;
}

/** Query/key normalization inside attention. */
export type QKNorm =
  /** none (mixtral, qwen2moe, gpt-oss) */
  | "none"
  /** RMS norm of each head, weight of `head_dim` (qwen3moe) */
  | "head"
  /** RMS norm of the whole q (k) projection, weight of `n_head*head_dim` (olmoe) */
  | "full";

/** Rotary embedding layout: `norm` rotates pairs (2i, 2i+1), `neox` pairs (i, i+d/2). */
export type RopeType = "norm" | "neox";

/** Hyperparameters of a model: what the GGUF says plus what its architecture implies. */
export interface ModelConfig {
  /** GGUF `general.architecture`. */
  readonly arch: string;
  /** Transformer blocks (`block_count`). */
  readonly nLayer: number;
  /** Training context length (`context_length`). */
  readonly nCtxTrain: number;
  /** Hidden size (`embedding_length`). */
  readonly nEmbd: number;
  /** Vocabulary size: `vocab_size`, else the length of `tokenizer.ggml.tokens`. */
  readonly nVocab: number;
  /** Query heads (`attention.head_count`). */
  readonly nHead: number;
  /** Key/value heads (`attention.head_count_kv`, default `nHead`). */
  readonly nHeadKv: number;
  /** Key (and query) head size (`attention.key_length`, default `nEmbd / nHead`). */
  readonly headDim: number;
  /** Value head size (`attention.value_length`, default `headDim`). */
  readonly headDimV: number;
  /** Dense FFN size (`feed_forward_length`), 0 when absent. Mixtral's expert FFN size. */
  readonly nFf: number;
  /** Experts per MoE layer (`expert_count`). */
  readonly nExpert: number;
  /** Experts used per token (`expert_used_count`). */
  readonly nExpertUsed: number;
  /** Expert FFN size (`expert_feed_forward_length`; mixtral: `feed_forward_length`). */
  readonly nFfExp: number;
  /** Shared experts (`expert_shared_count`), 0 when none; qwen2moe has one. */
  readonly nExpertShared: number;
  /** Shared-expert FFN size (`expert_shared_feed_forward_length`), 0 when none. */
  readonly nFfShexp: number;
  /** RMS norm epsilon (`attention.layer_norm_rms_epsilon`). */
  readonly rmsEps: number;
  /** Rotary embedding. */
  readonly rope: {
    /** Pair layout. */
    readonly type: RopeType;
    /** `rope.freq_base`, default 10000. */
    readonly freqBase: number;
    /** Rotated dims per head (`rope.dimension_count`, default `headDim`). */
    readonly dim: number;
    /** `rope.scaling.*`, when present and not "none". */
    readonly scaling?: {
      /** `rope.scaling.type`: "yarn", "linear", ... */
      readonly type: string;
      /** `rope.scaling.factor`. */
      readonly factor: number;
      /** `rope.scaling.original_context_length`, 0 when absent. */
      readonly origCtx: number;
      /**
       * `rope.scaling.yarn_log_multiplier` as stored (deepseek2 only; absent otherwise). The
       * converter writes `0.1 * mscale_all_dim` and llama.cpp divides it by 0.1 on load.
       */
      readonly yarnLogMul?: number;
    };
  };
  /** Sliding-window size (`attention.sliding_window`), 0 when every layer is global. */
  readonly slidingWindow: number;
  /**
   * Sliding-window pattern: layer i uses the window when `i % swaPattern < swaPattern - 1`
   * (llama.cpp's `set_swa_pattern`); 0 = no sliding layers. gpt-oss: 2 (even layers slide).
   */
  readonly swaPattern: number;
  /** Query/key normalization. */
  readonly qkNorm: QKNorm;
  /** Biases on the q, k, v projections. */
  readonly attnQKVBias: boolean;
  /** Bias on the attention output projection. */
  readonly attnOutBias: boolean;
  /** Learned per-head attention sinks (gpt-oss). */
  readonly attnSinks: boolean;
  /**
   * Name of the pre-FFN norm: `ffn_norm`, or `post_attention_norm` (gpt-oss, where it is
   * still applied before the FFN).
   */
  readonly ffnNormName: "ffn_norm" | "post_attention_norm";
  /** Router bias `ffn_gate_inp.bias` (gpt-oss). */
  readonly routerBias: boolean;
  /** Expert biases `ffn_{gate,up,down}_exps.bias` (gpt-oss). */
  readonly expertBias: boolean;
  /** FFN activation: SwiGLU `silu(g)*u`, or gpt-oss's clamped `g*sigmoid(1.702 g)*(u+1)`. */
  readonly act: "swiglu" | "swiglu_oai";
  /**
   * Leading dense layers (`leading_dense_block_count`, default 0): layers `0..nLayerDenseLead-1`
   * run a dense SwiGLU FFN of `nFf` (`ffn_gate/ffn_up/ffn_down`) instead of the MoE
   * (glm4moe, deepseek2). 0 for the five original archs.
   */
  readonly nLayerDenseLead: number;
  /**
   * NextN/MTP (multi-token prediction) blocks (`nextn_predict_layers`, default 0). The file's
   * `block_count` is `nLayer + nLayerNextn`: the MTP blocks are the LAST ones, indices
   * `nLayer..nLayer+nLayerNextn-1`, and `nLayer` counts only the trunk (llama.cpp's
   * `n_layer()` = `n_layer_all - n_layer_nextn`). spool never binds, runs or budgets them; their
   * tensors are listed with {@link TensorSpec.mtp} so a loader can skip them.
   */
  readonly nLayerNextn: number;
  /**
   * Router gate function (`expert_gating_func`: 1 softmax, 2 sigmoid). Read by the archs whose
   * {@link RoutingSpec.source} is "hparams"; "softmax" for the five original archs.
   */
  readonly expertGating: "softmax" | "sigmoid";
  /**
   * Divide the k selected weights by their sum (`expert_weights_norm`, default false; minimax-m2:
   * always true). Read when {@link RoutingSpec.source} is "hparams".
   */
  readonly expertWeightsNorm: boolean;
  /**
   * Multiply the selected weights by this (`expert_weights_scale`, DeepSeek's
   * `routed_scaling_factor`); 0 when absent, which like 1 means no scaling. Read when
   * {@link RoutingSpec.source} is "hparams".
   */
  readonly expertWeightsScale: number;
  /**
   * Expert groups (`expert_group_count`, default 0). When > 1, selection is group-limited:
   * experts are split into this many contiguous groups of `nExpert / nExpertGroups`.
   */
  readonly nExpertGroups: number;
  /** Groups kept per token (`expert_group_used_count`, default 0), 0 < used < groups when groups > 1. */
  readonly nExpertGroupUsed: number;
  /**
   * Multi-head latent attention (deepseek2), absent otherwise. With MLA, `nHeadKv` is 1 and
   * `headDim`/`headDimV` describe the latent KV cache entry: `headDim = kvLoraRank + qkRopeDim`
   * (576 for V3: K = normalized latent ++ roped k_pe) and `headDimV = kvLoraRank` (V is the
   * first `kvLoraRank` values of the same entry); `rope.dim = qkRopeDim`.
   */
  readonly mla?: MLAConfig;
}

/** Multi-head latent attention sizes (deepseek2). */
export interface MLAConfig {
  /** q LoRA rank (`attention.q_lora_rank`); 0 = plain `attn_q` (DeepSeek-V2-Lite). */
  readonly qLoraRank: number;
  /** KV latent rank (`attention.kv_lora_rank`), 512 for V3. */
  readonly kvLoraRank: number;
  /** Per-head q/k size before absorption (`attention.key_length_mla`): nope + rope, 192 for V3. */
  readonly headDimK: number;
  /** Per-head value size after decompression (`attention.value_length_mla`), 128 for V3. */
  readonly headDimV: number;
  /** Rotated part of each q/k head (`rope.dimension_count`), 64 for V3; the LAST dims of a head. */
  readonly qkRopeDim: number;
  /** Unrotated part of each q/k head: `headDimK - qkRopeDim`, 128 for V3. */
  readonly qkNopeDim: number;
}

/** How a layer's router turns logits into expert weights. */
export interface RoutingSpec {
  /**
   * `softmax_topk`: softmax over all experts, then keep the top k (qwen3moe, mixtral, olmoe,
   * qwen2moe); `topk_softmax`: top k of the logits, softmax over those k (gpt-oss; llama.cpp's
   * SOFTMAX_WEIGHT).
   */
  readonly order: "softmax_topk" | "topk_softmax";
  /** Divide the kept weights by their sum (for `topk_softmax` this is already so). */
  readonly renormalize: boolean;
  /** Add `ffn_gate_inp.bias` to the logits before selection. */
  readonly bias: boolean;
  /**
   * Shared expert(s) added to every token: `gate: "sigmoid"` scales its output by
   * `sigmoid(ffn_gate_inp_shexp · x)` (qwen2moe); `gate: "none"` adds it unscaled (glm4moe,
   * deepseek2, whose `expert_shared_count` experts are one FFN of `nFfShexp`).
   */
  readonly sharedExpert?: { readonly gate: "sigmoid" | "none" };
  /**
   * Where the gate function, renormalization, scale and grouping come from. Absent or "spec"
   * (the five original archs): softmax gating as `order` says, `renormalize` above, no scale,
   * no groups. "hparams" (glm4moe, minimax-m2, deepseek2): the model's {@link ModelConfig}
   * `expertGating`, `expertWeightsNorm`, `expertWeightsScale`, `nExpertGroups` and
   * `nExpertGroupUsed` (llama.cpp's `build_moe_ffn` arguments); `order` and `renormalize` are
   * then not read. Use {@link resolveRouting} rather than reading either directly.
   */
  readonly source?: "spec" | "hparams";
  /**
   * Selection bias `blk.N.exp_probs_b.bias [n_expert]` (DeepSeek-V3's
   * `e_score_correction_bias`): added to the gate probabilities only to CHOOSE the experts
   * (and the groups); the weights are the unbiased probabilities. Applied when the layer has the
   * tensor (required for glm4moe and minimax-m2, optional for deepseek2: V2 files lack it).
   */
  readonly selectionBias?: boolean;
}

/** A model's routing with every field decided: {@link resolveRouting} of spec and config. */
export interface Routing {
  /**
   * `softmax`: p = softmax(logits) over all experts; `sigmoid`: p = sigmoid(logits) per expert;
   * `softmax_weight`: p = logits, and the k selected are softmaxed (gpt-oss, topk_softmax).
   */
  readonly gating: "softmax" | "sigmoid" | "softmax_weight";
  /** `ffn_gate_inp.bias` added to the logits before gating (gpt-oss). */
  readonly routerBias: boolean;
  /** `exp_probs_b` added to p for selection only, when the layer has it. */
  readonly selectionBias: boolean;
  /**
   * Group-limited top-k, when set: p (biased) is split into `count` groups of `nExpert/count`;
   * a group's score is the sum of its two largest values; the `used` best groups are kept and
   * every other expert is masked to -inf before the top-k.
   */
  readonly groups?: { readonly count: number; readonly used: number };
  /** Divide the k weights by their sum (llama.cpp clamps the sum to >= 6.103515625e-5). */
  readonly renormalize: boolean;
  /** Multiply the weights by this after renormalization (1 = none). */
  readonly scale: number;
  /** Shared expert, when the model has one. */
  readonly sharedExpert?: { readonly gate: "sigmoid" | "none" };
}

/** The routing a model with spec `spec` and config `cfg` runs (see {@link RoutingSpec.source}). */
export function resolveRouting(spec: RoutingSpec, cfg: ModelConfig): Routing {
  const shared = spec.sharedExpert ? { sharedExpert: spec.sharedExpert } : {};
  if (spec.source !== "hparams") {
    return {
      gating: spec.order === "topk_softmax" ? "softmax_weight" : "softmax",
      routerBias: spec.bias,
      selectionBias: spec.selectionBias ?? false,
      renormalize: spec.renormalize,
      scale: 1,
      ...shared,
    };
  }
  const s = cfg.expertWeightsScale;
  return {
    gating: cfg.expertGating,
    routerBias: spec.bias,
    selectionBias: spec.selectionBias ?? false,
    ...(cfg.nExpertGroups > 1
      ? { groups: { count: cfg.nExpertGroups, used: cfg.nExpertGroupUsed } }
      : {}),
    renormalize: cfg.expertWeightsNorm,
    scale: s === 0 ? 1 : s,
    ...shared,
  };
}

/** What a tensor is, for choosing its stored type and its random initialization. */
export type TensorRole =
  | "embedding"
  | "output"
  | "norm"
  | "attn"
  | "attn_v"
  | "attn_out"
  | "bias"
  | "sinks"
  | "router"
  | "router_bias"
  | "expert"
  | "expert_down"
  | "expert_bias"
  | "shexp"
  | "shexp_down"
  | "shexp_gate"
  /** dense FFN gate/up of a leading dense layer (`ffn_gate`, `ffn_up`) */
  | "ffn"
  /** dense FFN down (`ffn_down`) */
  | "ffn_down"
  /** selection bias `exp_probs_b.bias` */
  | "probs_bias"
  /** MLA low-rank projections (`attn_q_a`, `attn_q_b`, `attn_kv_a_mqa`, `attn_k_b`, `attn_v_b`) */
  | "attn_mla"
  /** NextN/MTP-only matrices (`nextn.eh_proj`, `nextn.embed_tokens`, `nextn.shared_head_head`) */
  | "nextn";

/** One tensor of a model: GGUF name, ggml shape, role. */
export interface TensorSpec {
  /** GGUF name, e.g. `blk.0.ffn_gate_exps.weight`. */
  readonly name: string;
  /** Shape in ggml order (ne0, the contiguous dim, first); experts are `[ne0, ne1, nExpert]`. */
  readonly shape: readonly number[];
  /** What the tensor is. */
  readonly role: TensorRole;
  /** Layer index, absent for model-level tensors. */
  readonly layer?: number;
  /** Always stored as F32 (norms, biases, sinks, router), as llama.cpp's quantizer keeps them. */
  readonly f32: boolean;
  /** Whether the outermost dim is the expert index (3-D expert tensor or 2-D expert bias). */
  readonly expert: boolean;
  /**
   * llama.cpp loads the file without this tensor (`TENSOR_NOT_REQUIRED`); the forward applies
   * it only when present (glm4moe's q/k/v biases and q/k norms, deepseek2's `exp_probs_b`,
   * the vocabulary-sized NextN tensors). Absent = required.
   */
  readonly optional?: boolean;
  /**
   * Part of a NextN/MTP block (layer >= {@link ModelConfig.nLayer}): never bound, run, paged
   * or counted as resident; a loader skips it (llama.cpp skips them unless asked to load MTP).
   */
  readonly mtp?: boolean;
}

/** A hyperparameter key of {@link HPARAMS}. */
export type HParam = keyof typeof HPARAMS;

/**
 * An architecture: its GGUF name, the keys it needs, how its router works, its tensors.
 * Adding an architecture is one file that exports an `ArchSpec` plus one line in registry.ts.
 */
export interface ArchSpec {
  /** GGUF `general.architecture`, e.g. `"qwen3moe"`. */
  readonly arch: string;
  /** Human name, e.g. "Qwen3-MoE". */
  readonly name: string;
  /** Hyperparameter keys llama.cpp requires for this architecture. */
  readonly required: readonly HParam[];
  /** Hyperparameter keys it reads when present. */
  readonly optional: readonly HParam[];
  /** Read hyperparameters from GGUF metadata. @throws ModelConfigError */
  readonly config: (kv: KVSource) => ModelConfig;
  /** Router semantics. */
  readonly routing: RoutingSpec;
  /** Every tensor of a model with this config, in file order. */
  readonly tensors: (cfg: ModelConfig) => TensorSpec[];
  /** Forward pass; added in a later issue. */
  readonly forward?: unknown;
}

/** Reason of a {@link ModelConfigError}. */
export type ModelConfigErrorCode = "missing_key" | "bad_value" | "unknown_arch";

/** A GGUF whose metadata does not describe a model spool can build. */
export class ModelConfigError extends Error {
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
} as const satisfies Record<string, GGUFTypeSpec>;

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
    [cfg.nExpert > 0, `expert_count is ${cfg.nExpert}, expected > 0`],
    [
      cfg.nExpertUsed > 0 && cfg.nExpertUsed <= cfg.nExpert,
      `expert_used_count is ${cfg.nExpertUsed}, expected 1..${cfg.nExpert}`,
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
  };
  const out: KVEntry[] = [];
  for (const k of new Set([...spec.required, ...spec.optional])) {
    const v = values[k];
    if (v === undefined) continue;
    out.push({ key: `${cfg.arch}.${k}`, type: HPARAMS[k], value: v });
  }
  return out;
}
