/**
 * Model hyperparameters ({@link ModelConfig}), the architecture-spec types ({@link ArchSpec},
 * {@link TensorSpec}, {@link RoutingSpec}) and, re-exported from _hparams.ts, reading and writing
 * hyperparameters as GGUF metadata.
 *
 * GGUF stores hyperparameters under `<arch>.<suffix>` keys (`qwen3moe.block_count`), with the
 * value types llama.cpp's loader checks (it rejects a UINT32 key stored as INT32). The table
 * {@link HPARAMS} lists every key spool knows, its GGUF type and the {@link ModelConfig} field
 * it fills; each {@link ArchSpec} says which of them it requires.
 *
 * @module
 */

import type { GGUFTypeSpec, GGUFValue } from "../gguf/types.ts";
import type { LayerForward } from "./step.ts";
import type { HParam } from "./_hparams.ts";

export {
  BASE_OPTIONAL,
  BASE_REQUIRED,
  baseConfig,
  checkConfig,
  expertGating,
  type HParam,
  hparam,
  hparamKV,
  HPARAMS,
  ModelConfigError,
  type ModelConfigErrorCode,
} from "./_hparams.ts";

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
    /**
     * `rope.dimension_sections` (qwen35moe: M-RoPE/IMROPE sections `[t, h, w, e]`, e.g.
     * `[11, 11, 10, 0]`), absent otherwise. For text llama.cpp gives the t, h and w positions the
     * token's position and e the position 0; the config reader accepts only sections under which
     * every rotated pair takes t, h or w, so that IMROPE is then exactly NEOX rope over `dim`
     * dims (see qwen35_moe.ts). Kept so a writer rebuilds the same file.
     */
    readonly sections?: readonly number[];
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
  /**
   * Hybrid Gated DeltaNet / gated full attention (qwen35moe, qwen3next), absent otherwise. Its
   * full-attention layers (`layers[i] === false`) are the only ones with a KV cache; they run
   * gated attention: `attn_q` is `2·nHead·headDim` wide (per head the query, then its output
   * gate), and the attention output is multiplied by `sigmoid(gate)` before `attn_output`.
   */
  readonly deltaNet?: DeltaNetConfig;
}

/**
 * Sizes of the Gated DeltaNet (linear attention) layers of a hybrid model and the per-sequence
 * state they keep, from llama.cpp's `ssm.*` keys: `head_k_dim = ssm.state_size`,
 * `n_k_heads = ssm.group_count`, `n_v_heads = ssm.time_step_rank`,
 * `head_v_dim = ssm.inner_size / n_v_heads` (llama.cpp requires `head_v_dim == head_k_dim`).
 */
export interface DeltaNetConfig {
  /**
   * One entry per trunk layer (`nLayer`): true = Gated DeltaNet (recurrent state, no KV),
   * false = gated full attention (KV cache). From `attention.recurrent_layers` when present,
   * else layer i is recurrent unless `(i + 1) % full_attention_interval == 0`.
   */
  readonly layers: readonly boolean[];
  /**
   * `full_attention_interval` (default 4) the pattern came from, or 0 when the file gave
   * `attention.recurrent_layers` instead.
   */
  readonly fullAttnInterval: number;
  /** Causal conv1d taps (`ssm.conv_kernel`, 4). */
  readonly convKernel: number;
  /** Key (and query) head size, the state's d_k (`ssm.state_size`, 128). */
  readonly headKDim: number;
  /** Value head size, the state's d_v (`ssm.inner_size / ssm.time_step_rank`, 128). */
  readonly headVDim: number;
  /** Query/key heads (`ssm.group_count`, 16). */
  readonly nKHeads: number;
  /** Value heads (`ssm.time_step_rank`, 32 or 64); a multiple of nKHeads. */
  readonly nVHeads: number;
  /** `ssm.inner_size` = nVHeads·headVDim: the width of v, z and the output. */
  readonly innerSize: number;
  /** Channels of the conv1d and of `attn_qkv`'s output: 2·nKHeads·headKDim + innerSize. */
  readonly convChannels: number;
  /**
   * Which key head value head j reads: "tiled" (qwen35moe; the converter reorders the value
   * heads) = `j % nKHeads`; "grouped" (qwen3next) = `floor(j / (nVHeads / nKHeads))`. The same
   * order holds for z, beta, alpha, `ssm_dt`, `ssm_a` and `ssm_out`'s input.
   */
  readonly vHeadOrder: "tiled" | "grouped";
  /** f32 values of one recurrent layer's conv state per sequence: (convKernel-1)·convChannels. */
  readonly convStateFloats: number;
  /** f32 values of one recurrent layer's delta-rule state per sequence: nVHeads·headKDim·headVDim. */
  readonly ssmStateFloats: number;
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
  | "nextn"
  /** Gated DeltaNet conv1d kernel `ssm_conv1d [d_conv, channels]` (kept F32, as llama.cpp does) */
  | "ssm_conv"
  /** Gated DeltaNet decay rate `ssm_a [n_v_heads]` = -exp(A_log), negative (F32) */
  | "ssm_a"
  /** Gated DeltaNet time-step bias `ssm_dt.bias [n_v_heads]` (F32) */
  | "ssm_dt";

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
  /** One layer's forward pass, composed of the shared blocks (models/_decoder.ts). */
  readonly forward: LayerForward;
  /** The KV cache row of a layer, when it is not nHeadKv × head size for K and V (MLA). */
  readonly kvLayout?: (cfg: ModelConfig) => KVLayout;
}

/** The per-sequence state of a model's recurrent layers. */
export interface RecurrentLayout {
  /** Per layer: true for a recurrent layer (no KV cache), false for an attention layer. */
  readonly layers: readonly boolean[];
  /** f32 values of one layer's convolution state (kernel − 1 past inputs per channel). */
  readonly convFloats: number;
  /** f32 values of one layer's recurrent state (per value head a key × value matrix). */
  readonly stateFloats: number;
}

/**
 * Values per token of one layer's K and V rows in the KV cache (f16). `v` 0 with `vInK`
 * set: V is the first `vInK` values of the K row (MLA's latent cache), stored once.
 */
export interface KVLayout {
  readonly k: number;
  readonly v: number;
  /** V read from the K row's first `vInK` values (no V storage); 0 = V stored. */
  readonly vInK: number;
}

/** The KV layout of `spec` for `cfg` (default: GQA, nHeadKv heads of K and V). */
export function kvLayout(spec: ArchSpec, cfg: ModelConfig): KVLayout {
  return spec.kvLayout?.(cfg) ??
    { k: cfg.nHeadKv * cfg.headDim, v: cfg.nHeadKv * cfg.headDimV, vInK: 0 };
}

/**
 * KV cache bytes one token takes over all layers (f16 rows; what the budget plans for). In a
 * hybrid model ({@link ModelConfig.deltaNet}) only the full-attention layers hold KV.
 */
export function kvBytesPerToken(spec: ArchSpec, cfg: ModelConfig): number {
  const l = kvLayout(spec, cfg);
  return kvLayerCount(cfg) * (l.k + l.v) * 2;
}

/** Layers with a KV cache: all trunk layers, or a hybrid's full-attention layers only. */
export function kvLayerCount(cfg: ModelConfig): number {
  return cfg.deltaNet ? cfg.deltaNet.layers.filter((r) => !r).length : cfg.nLayer;
}

/**
 * f32 values of recurrent state one sequence holds over all layers of a hybrid model (conv
 * plus delta-rule state of every Gated DeltaNet layer; fixed, whatever the length); 0 otherwise.
 */
export function recurrentStateFloats(cfg: ModelConfig): number {
  const d = cfg.deltaNet;
  if (!d) return 0;
  return d.layers.filter((r) => r).length * (d.convStateFloats + d.ssmStateFloats);
}

/** Which layers keep a KV cache: all but a hybrid's recurrent (Gated DeltaNet) layers. */
export function kvLayers(cfg: ModelConfig): boolean[] {
  return Array.from({ length: cfg.nLayer }, (_, i) => !(cfg.deltaNet?.layers[i] ?? false));
}

/** The per-sequence state of a hybrid model's recurrent layers, or null for other models. */
export function recurrentLayout(cfg: ModelConfig): RecurrentLayout | null {
  const d = cfg.deltaNet;
  return d
    ? { layers: d.layers, convFloats: d.convStateFloats, stateFloats: d.ssmStateFloats }
    : null;
}
