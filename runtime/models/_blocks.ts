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
    role === "router_bias" || role === "expert_bias" || role === "shexp_gate";
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
    out.push(
      t(blk(i, "attn_q", "bias"), [qDim], "bias", i),
      t(blk(i, "attn_k", "bias"), [kDim], "bias", i),
      t(blk(i, "attn_v", "bias"), [vDim], "bias", i),
    );
  }
  if (o.outBias) out.push(t(blk(i, "attn_output", "bias"), [cfg.nEmbd], "bias", i));
  if (o.qkNorm === "head") {
    out.push(
      t(blk(i, "attn_q_norm"), [cfg.headDim], "norm", i),
      t(blk(i, "attn_k_norm"), [cfg.headDim], "norm", i),
    );
  } else if (o.qkNorm === "full") {
    out.push(
      t(blk(i, "attn_q_norm"), [qDim], "norm", i),
      t(blk(i, "attn_k_norm"), [kDim], "norm", i),
    );
  }
  if (o.sinks) out.push(t(blk(i, "attn_sinks"), [cfg.nHead], "sinks", i));
  return out;
}

/** Options of {@link moeTensors}. */
export interface MoEOptions {
  /** Name of the pre-FFN norm (gpt-oss: `post_attention_norm`). */
  readonly normName?: "ffn_norm" | "post_attention_norm";
  /** Router bias `ffn_gate_inp.bias [n_expert]` (gpt-oss). */
  readonly routerBias?: boolean;
  /** Expert biases `ffn_{gate,up}_exps.bias [n_ff_exp, n_expert]`, `ffn_down_exps.bias [n_embd, n_expert]`. */
  readonly expertBias?: boolean;
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
 * The shared expert of layer `i` (qwen2moe): gate vector `ffn_gate_inp_shexp [n_embd]` (a
 * sigmoid gate, kept F32), `ffn_gate_shexp/ffn_up_shexp [n_embd, n_ff_shexp]`,
 * `ffn_down_shexp [n_ff_shexp, n_embd]`.
 */
export function sharedExpertTensors(cfg: ModelConfig, i: number): TensorSpec[] {
  const { nEmbd, nFfShexp } = cfg;
  return [
    t(blk(i, "ffn_gate_inp_shexp"), [nEmbd], "shexp_gate", i),
    t(blk(i, "ffn_gate_shexp"), [nEmbd, nFfShexp], "shexp", i),
    t(blk(i, "ffn_down_shexp"), [nFfShexp, nEmbd], "shexp_down", i),
    t(blk(i, "ffn_up_shexp"), [nEmbd, nFfShexp], "shexp", i),
  ];
}

/**
 * A whole decoder: `token_embd [n_embd, n_vocab]`, `output_norm [n_embd]`,
 * `output [n_embd, n_vocab]` (spool always writes an untied output), then each layer's tensors.
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
  return out;
}

/** Input size of a weight (ne0), used to scale random weights by 1/sqrt(fan_in). */
export function fanIn(spec: TensorSpec): number {
  return spec.shape[0];
}
