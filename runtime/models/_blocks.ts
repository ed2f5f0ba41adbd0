/**
 * Shared building blocks of the architecture specs: the tensor lists of the parts every MoE
 * decoder has (embeddings, attention, router, experts, norms), parameterized where models
 * differ. Names and shapes follow llama.cpp's `llama-arch.cpp` / `llama-model.cpp`
 * (`create_tensor(tn(LLM_TENSOR_...), {ne0, ne1, ...})`): shapes are ggml order, ne0 first,
 * so a weight `W` of a projection `y = W x` with x of size n_in is `[n_in, n_out]`.
 *
 * @module
 */

import type { ModelConfig, TensorRole, TensorSpec } from "./config.ts";

function t(
  name: string,
  shape: readonly number[],
  role: TensorRole,
  layer?: number,
): TensorSpec {
  const f32 = role === "norm" || role === "bias" || role === "sinks" || role === "router" ||
    role === "router_bias" || role === "expert_bias" || role === "shexp_gate" ||
    role === "probs_bias" || role === "ssm_conv" || role === "ssm_a" || role === "ssm_dt";
  const expert = role === "expert" || role === "expert_down" || role === "expert_bias";
  return layer === undefined
    ? { name, shape, role, f32, expert }
    : { name, shape, role, layer, f32, expert };
}

/** `blk.<i>.<name>.<suffix>`. */
export function blk(i: number, name: string, suffix: "weight" | "bias" = "weight"): string {
  return `blk.${i}.${name}.${suffix}`;
}

/** Options of {@link attentionTensors}. */
export interface AttentionOptions {
  /** Biases on q, k, v (qwen2moe, gpt-oss). */
  readonly qkvBias?: boolean;
  /** Bias on the output projection (gpt-oss). */
  readonly outBias?: boolean;
  /** q/k norm weights: per head (`head_dim`) or over the whole projection (`n_embd`). */
  readonly qkNorm?: "none" | "head" | "full";
  /** Per-head sinks `attn_sinks.weight` of `[n_head]` (gpt-oss). */
  readonly sinks?: boolean;
  /** Mark the q/k/v biases optional (glm4moe: llama.cpp loads them when present). */
  readonly optionalBias?: boolean;
  /** Mark the q/k norms optional (glm4moe: only GLM-4.5 355B carries them). */
  readonly optionalQkNorm?: boolean;
}

/** The same tensors, each marked {@link TensorSpec.optional}. */
export function optional(list: TensorSpec[]): TensorSpec[] {
  return list.map((x) => ({ ...x, optional: true }));
}

/** The same tensors, each marked {@link TensorSpec.mtp} (a NextN/MTP block's). */
export function mtp(list: TensorSpec[]): TensorSpec[] {
  return list.map((x) => ({ ...x, mtp: true }));
}

/**
 * Pre-attention norm and the attention block of layer `i`:
 * `attn_norm [n_embd]`, `attn_q [n_embd, n_head*head_dim]`, `attn_k/v [n_embd, n_head_kv*head_dim]`,
 * `attn_output [n_head*head_dim_v, n_embd]`, and the optional norms, biases and sinks.
 * The order is llama.cpp's creation order (not required for loading, but keeps files alike).
 */
export function attentionTensors(
  cfg: ModelConfig,
  i: number,
  o: AttentionOptions = {},
): TensorSpec[] {
  const qDim = cfg.nHead * cfg.headDim;
  const kDim = cfg.nHeadKv * cfg.headDim;
  const vDim = cfg.nHeadKv * cfg.headDimV;
  const oDim = cfg.nHead * cfg.headDimV;
  const out: TensorSpec[] = [
    t(blk(i, "attn_norm"), [cfg.nEmbd], "norm", i),
    t(blk(i, "attn_q"), [cfg.nEmbd, qDim], "attn", i),
    t(blk(i, "attn_k"), [cfg.nEmbd, kDim], "attn", i),
    t(blk(i, "attn_v"), [cfg.nEmbd, vDim], "attn_v", i),
    t(blk(i, "attn_output"), [oDim, cfg.nEmbd], "attn_out", i),
  ];
  if (o.qkvBias) {
    const b = [
      t(blk(i, "attn_q", "bias"), [qDim], "bias", i),
      t(blk(i, "attn_k", "bias"), [kDim], "bias", i),
      t(blk(i, "attn_v", "bias"), [vDim], "bias", i),
    ];
    out.push(...(o.optionalBias ? optional(b) : b));
  }
  if (o.outBias) out.push(t(blk(i, "attn_output", "bias"), [cfg.nEmbd], "bias", i));
  if (o.qkNorm === "head" || o.qkNorm === "full") {
    const [q, k] = o.qkNorm === "head" ? [cfg.headDim, cfg.headDim] : [qDim, kDim];
    const n = [
      t(blk(i, "attn_q_norm"), [q], "norm", i),
      t(blk(i, "attn_k_norm"), [k], "norm", i),
    ];
    out.push(...(o.optionalQkNorm ? optional(n) : n));
  }
  if (o.sinks) out.push(t(blk(i, "attn_sinks"), [cfg.nHead], "sinks", i));
  return out;
}

/**
 * Gated full attention of a hybrid layer `i` (qwen35moe, qwen3next; llama.cpp
 * `create_tensor_qkv(..., n_embd_head_k * n_head * 2, ...)`): as {@link attentionTensors} with
 * per-head q/k norms, but `attn_q [n_embd, 2*n_head*head_dim]`: per head, head_dim query rows
 * then head_dim output-gate rows.
 */
export function gatedAttentionTensors(cfg: ModelConfig, i: number): TensorSpec[] {
  const q = blk(i, "attn_q");
  return attentionTensors(cfg, i, { qkNorm: "head" }).map((x) =>
    x.name === q ? { ...x, shape: [cfg.nEmbd, 2 * cfg.nHead * cfg.headDim] } : x
  );
}

/**
 * A Gated DeltaNet (linear attention) layer `i` of a hybrid model, with `d = cfg.deltaNet`
 * (llama.cpp qwen35moe.cpp / qwen3next.cpp `load_block_trunk`): `attn_norm [n_embd]`,
 * `attn_qkv [n_embd, d.convChannels]` (q, k of every key head, then v of every value head),
 * `attn_gate [n_embd, d.innerSize]` (z), `ssm_conv1d [d.convKernel, d.convChannels]` (F32),
 * `ssm_dt.bias [n_v]`, `ssm_a [n_v]` (no suffix; -exp(A_log)), then beta/alpha: "split"
 * (qwen35moe) `ssm_beta, ssm_alpha [n_embd, n_v]`, "fused" (qwen3next) `ssm_ba [n_embd, 2*n_v]`
 * (per key head: its n_v/n_k betas, then its n_v/n_k alphas); `ssm_norm [head_v_dim]`,
 * `ssm_out [d.innerSize, n_embd]`.
 */
export function deltaNetTensors(
  cfg: ModelConfig,
  i: number,
  betaAlpha: "split" | "fused",
): TensorSpec[] {
  const d = cfg.deltaNet;
  if (!d) throw new Error(`${cfg.arch}: deltaNetTensors needs cfg.deltaNet`);
  const { nEmbd } = cfg;
  const nV = d.nVHeads;
  return [
    t(blk(i, "attn_norm"), [nEmbd], "norm", i),
    t(blk(i, "attn_qkv"), [nEmbd, d.convChannels], "attn_v", i),
    t(blk(i, "attn_gate"), [nEmbd, d.innerSize], "attn", i),
    t(blk(i, "ssm_conv1d"), [d.convKernel, d.convChannels], "ssm_conv", i),
    t(blk(i, "ssm_dt", "bias"), [nV], "ssm_dt", i),
    t(`blk.${i}.ssm_a`, [nV], "ssm_a", i),
    ...(betaAlpha === "split"
      ? [
        t(blk(i, "ssm_beta"), [nEmbd, nV], "attn", i),
        t(blk(i, "ssm_alpha"), [nEmbd, nV], "attn", i),
      ]
      : [t(blk(i, "ssm_ba"), [nEmbd, 2 * nV], "attn", i)]),
    t(blk(i, "ssm_norm"), [d.headVDim], "norm", i),
    t(blk(i, "ssm_out"), [d.innerSize, nEmbd], "attn_out", i),
  ];
}

/** Options of {@link moeTensors}. */
export interface MoEOptions {
  /** Name of the pre-FFN norm (gpt-oss: `post_attention_norm`). */
  readonly normName?: "ffn_norm" | "post_attention_norm";
  /** Router bias `ffn_gate_inp.bias [n_expert]` (gpt-oss). */
  readonly routerBias?: boolean;
  /** Expert biases `ffn_{gate,up}_exps.bias [n_ff_exp, n_expert]`, `ffn_down_exps.bias [n_embd, n_expert]`. */
  readonly expertBias?: boolean;
  /**
   * Selection bias `exp_probs_b.bias [n_expert]` (F32): "required" (glm4moe, minimax-m2) or
   * "optional" (deepseek2: V3 files have it, V2 files do not).
   */
  readonly probsBias?: "required" | "optional";
}

/**
 * Pre-FFN norm, router and routed experts of layer `i`:
 * `ffn_norm [n_embd]`, `ffn_gate_inp [n_embd, n_expert]` (kept F32),
 * `ffn_gate_exps/ffn_up_exps [n_embd, n_ff_exp, n_expert]`, `ffn_down_exps [n_ff_exp, n_embd, n_expert]`.
 * Expert e of a 3-D tensor is the contiguous slice `e * ne0 * ne1` elements in.
 */
export function moeTensors(cfg: ModelConfig, i: number, o: MoEOptions = {}): TensorSpec[] {
  const { nEmbd, nFfExp, nExpert } = cfg;
  const out: TensorSpec[] = [
    t(blk(i, o.normName ?? "ffn_norm"), [nEmbd], "norm", i),
    t(blk(i, "ffn_gate_inp"), [nEmbd, nExpert], "router", i),
    t(blk(i, "ffn_gate_exps"), [nEmbd, nFfExp, nExpert], "expert", i),
    t(blk(i, "ffn_down_exps"), [nFfExp, nEmbd, nExpert], "expert_down", i),
    t(blk(i, "ffn_up_exps"), [nEmbd, nFfExp, nExpert], "expert", i),
  ];
  if (o.routerBias) out.push(t(blk(i, "ffn_gate_inp", "bias"), [nExpert], "router_bias", i));
  if (o.probsBias) {
    const b = t(blk(i, "exp_probs_b", "bias"), [nExpert], "probs_bias", i);
    out.push(o.probsBias === "optional" ? { ...b, optional: true } : b);
  }
  if (o.expertBias) {
    out.push(
      t(blk(i, "ffn_gate_exps", "bias"), [nFfExp, nExpert], "expert_bias", i),
      t(blk(i, "ffn_down_exps", "bias"), [nEmbd, nExpert], "expert_bias", i),
      t(blk(i, "ffn_up_exps", "bias"), [nFfExp, nExpert], "expert_bias", i),
    );
  }
  return out;
}

/**
 * The shared expert of layer `i`: `ffn_gate_shexp/ffn_up_shexp [n_embd, n_ff_shexp]`,
 * `ffn_down_shexp [n_ff_shexp, n_embd]`, and when `gated` (qwen2moe, the default) the gate
 * vector `ffn_gate_inp_shexp [n_embd]` (a sigmoid gate, kept F32). glm4moe and deepseek2 pass
 * `gated: false`: their shared experts (`expert_shared_count` of them, stored as one FFN of
 * `n_ff_exp * expert_shared_count`) are added unscaled.
 */
export function sharedExpertTensors(
  cfg: ModelConfig,
  i: number,
  o: { readonly gated?: boolean } = {},
): TensorSpec[] {
  const { nEmbd, nFfShexp } = cfg;
  return [
    ...((o.gated ?? true) ? [t(blk(i, "ffn_gate_inp_shexp"), [nEmbd], "shexp_gate", i)] : []),
    t(blk(i, "ffn_gate_shexp"), [nEmbd, nFfShexp], "shexp", i),
    t(blk(i, "ffn_down_shexp"), [nFfShexp, nEmbd], "shexp_down", i),
    t(blk(i, "ffn_up_shexp"), [nEmbd, nFfShexp], "shexp", i),
  ];
}

/**
 * Dense SwiGLU FFN of a leading dense layer `i` (glm4moe, deepseek2):
 * `ffn_gate/ffn_up [n_embd, n_ff]`, `ffn_down [n_ff, n_embd]`, preceded by its pre-FFN norm
 * `normName [n_embd]`.
 */
export function denseFfnTensors(
  cfg: ModelConfig,
  i: number,
  normName: "ffn_norm" | "post_attention_norm" = "ffn_norm",
): TensorSpec[] {
  const { nEmbd, nFf } = cfg;
  return [
    t(blk(i, normName), [nEmbd], "norm", i),
    t(blk(i, "ffn_gate"), [nEmbd, nFf], "ffn", i),
    t(blk(i, "ffn_down"), [nFf, nEmbd], "ffn_down", i),
    t(blk(i, "ffn_up"), [nEmbd, nFf], "ffn", i),
  ];
}

/**
 * Multi-head latent attention of layer `i` (deepseek2, llama.cpp's split "MLA" form that
 * current GGUFs carry; legacy `attn_kv_b` files are not supported), with `m = cfg.mla`:
 * `attn_norm [n_embd]`; q: `attn_q_a [n_embd, q_lora]`, `attn_q_a_norm [q_lora]`,
 * `attn_q_b [q_lora, n_head*k_mla]` when `q_lora > 0`, else `attn_q [n_embd, n_head*k_mla]`;
 * `attn_kv_a_mqa [n_embd, kv_lora + rope]`, `attn_kv_a_norm [kv_lora]`;
 * `attn_k_b [nope, kv_lora, n_head]` (3-D: per head, q_nope → latent),
 * `attn_v_b [kv_lora, v_mla, n_head]` (3-D: per head, latent → value);
 * `attn_output [n_head*v_mla, n_embd]`.
 */
export function mlaAttentionTensors(cfg: ModelConfig, i: number): TensorSpec[] {
  const m = cfg.mla;
  if (!m) throw new Error(`${cfg.arch}: mlaAttentionTensors needs cfg.mla`);
  const { nEmbd, nHead } = cfg;
  const q = m.qLoraRank > 0
    ? [
      t(blk(i, "attn_q_a_norm"), [m.qLoraRank], "norm", i),
      t(blk(i, "attn_q_a"), [nEmbd, m.qLoraRank], "attn_mla", i),
      t(blk(i, "attn_q_b"), [m.qLoraRank, nHead * m.headDimK], "attn_mla", i),
    ]
    : [t(blk(i, "attn_q"), [nEmbd, nHead * m.headDimK], "attn", i)];
  return [
    t(blk(i, "attn_norm"), [nEmbd], "norm", i),
    ...q,
    t(blk(i, "attn_kv_a_norm"), [m.kvLoraRank], "norm", i),
    t(blk(i, "attn_kv_a_mqa"), [nEmbd, m.kvLoraRank + m.qkRopeDim], "attn_mla", i),
    t(blk(i, "attn_k_b"), [m.qkNopeDim, m.kvLoraRank, nHead], "attn_mla", i),
    t(blk(i, "attn_v_b"), [m.kvLoraRank, m.headDimV, nHead], "attn_mla", i),
    t(blk(i, "attn_output"), [nHead * m.headDimV, nEmbd], "attn_out", i),
  ];
}

/**
 * The NextN-specific tensors of MTP block `i` (glm4moe, deepseek2): `nextn.eh_proj
 * [2*n_embd, n_embd]`, `nextn.enorm`, `nextn.hnorm [n_embd]`, and the optional
 * `nextn.shared_head_norm [n_embd]`, `nextn.embed_tokens`, `nextn.shared_head_head
 * [n_embd, n_vocab]` (llama.cpp falls back to output_norm, token_embd and output). The block
 * also has a full decoder layer's tensors; {@link decoderTensors} marks all of them `mtp`.
 */
export function nextnTensors(cfg: ModelConfig, i: number): TensorSpec[] {
  const { nEmbd, nVocab } = cfg;
  return [
    t(blk(i, "nextn.eh_proj"), [2 * nEmbd, nEmbd], "nextn", i),
    t(blk(i, "nextn.enorm"), [nEmbd], "norm", i),
    t(blk(i, "nextn.hnorm"), [nEmbd], "norm", i),
    ...optional([
      t(blk(i, "nextn.shared_head_norm"), [nEmbd], "norm", i),
      t(blk(i, "nextn.embed_tokens"), [nEmbd, nVocab], "nextn", i),
      t(blk(i, "nextn.shared_head_head"), [nEmbd, nVocab], "nextn", i),
    ]),
  ];
}

/**
 * A whole decoder: `token_embd [n_embd, n_vocab]`, `output_norm [n_embd]`,
 * `output [n_embd, n_vocab]` (spool always writes an untied output), then each layer's tensors
 * for `i < nLayer`, then the `nLayerNextn` NextN/MTP blocks (`layer(i)` plus
 * {@link nextnTensors}, every tensor marked {@link TensorSpec.mtp}).
 */
export function decoderTensors(
  cfg: ModelConfig,
  layer: (i: number) => TensorSpec[],
): TensorSpec[] {
  const out: TensorSpec[] = [
    t("token_embd.weight", [cfg.nEmbd, cfg.nVocab], "embedding"),
    t("output_norm.weight", [cfg.nEmbd], "norm"),
    { ...t("output.weight", [cfg.nEmbd, cfg.nVocab], "output"), optional: true },
  ];
  for (let i = 0; i < cfg.nLayer; i++) out.push(...layer(i));
  for (let i = cfg.nLayer; i < cfg.nLayer + cfg.nLayerNextn; i++) {
    out.push(...mtp([...layer(i), ...nextnTensors(cfg, i)]));
  }
  return out;
}

/** Input size of a weight (ne0), used to scale random weights by 1/sqrt(fan_in). */
export function fanIn(spec: TensorSpec): number {
  return spec.shape[0];
}
