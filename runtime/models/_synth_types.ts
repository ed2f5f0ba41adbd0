/**
 * Stored types of a synthetic model's tensors (synth.ts): type sets, llama.cpp's Q4_K_M mix,
 * the fallbacks llama.cpp's quantizer applies, and `general.file_type`.
 *
 * @module
 */

import { GGMLType, type GGMLTypeName, typeByName, typeInfo } from "../gguf/types.ts";
import type { TensorSpec } from "./config.ts";
/** Stored types of each kind of tensor (norms, biases, sinks and routers are always F32). */
export interface SynthTypes {
  /** Attention and shared-expert matrices. */
  weights: GGMLTypeName;
  /** Routed expert tensors. */
  experts: GGMLTypeName;
  /** token_embd. */
  embeddings: GGMLTypeName;
  /** output. */
  output: GGMLTypeName;
  /**
   * "Q4_K_M": llama.cpp's Q4_K_M mix on top of the above: output Q6_K, and attn_v, ffn_down,
   * ffn_down_exps and ffn_down_shexp Q6_K in the layers where llama.cpp's `use_more_bits`
   * holds (first and last eighth, every third layer between).
   */
  mix?: "Q4_K_M";
}

/** Parse a type name ("q4_k", "Q4_K") into a supported synthetic type. */
function typeName(name: string): GGMLTypeName {
  const t = typeByName(name);
  if (!t || !SYNTH_TYPES.includes(t.name)) {
    throw new Error(`Unsupported type "${name}" (supported: ${SYNTH_TYPES.join(", ")}, Q4_K_M)`);
  }
  return t.name;
}

/** Types the generator can write (what spool's quantizer implements). */
export const SYNTH_TYPES: readonly GGMLTypeName[] = [
  "F32",
  "F16",
  "BF16",
  "Q4_0",
  "Q8_0",
  "Q4_K",
  "Q5_K",
  "Q6_K",
  "MXFP4",
];

/** Resolve a `types` option into {@link SynthTypes}. */
export function resolveTypes(t: string | Partial<SynthTypes>): SynthTypes {
  if (typeof t === "string") {
    if (t.toUpperCase() === "Q4_K_M") {
      return {
        weights: "Q4_K",
        experts: "Q4_K",
        embeddings: "Q4_K",
        output: "Q6_K",
        mix: "Q4_K_M",
      };
    }
    const n = typeName(t);
    return { weights: n, experts: n, embeddings: n, output: n };
  }
  const w = typeName(t.weights ?? "F32");
  const out: SynthTypes = {
    weights: w,
    experts: typeName(t.experts ?? w),
    embeddings: typeName(t.embeddings ?? w),
    output: typeName(t.output ?? t.embeddings ?? w),
  };
  if (t.mix) out.mix = t.mix;
  return out;
}

/** llama.cpp's `use_more_bits(i_layer, n_layers)` (llama-quant.cpp). */
function useMoreBits(i: number, n: number): boolean {
  const e = Math.floor(n / 8);
  return i < e || i >= 7 * e || (i - e) % 3 === 2;
}

/**
 * The stored type of a tensor. A type whose block does not divide the row (ne0) falls back
 * like llama.cpp's quantizer does, to a 32-block type (Q8_0) or F16.
 */
export function tensorType(spec: TensorSpec, types: SynthTypes, nLayer: number): GGMLTypeName {
  if (spec.f32 || spec.shape.length === 1) return "F32";
  let t: GGMLTypeName;
  switch (spec.role) {
    case "embedding":
      t = types.embeddings;
      break;
    case "output":
      t = types.output;
      break;
    case "expert":
    case "expert_down":
      t = types.experts;
      break;
    default:
      t = types.weights;
  }
  if (types.mix === "Q4_K_M" && spec.layer !== undefined && useMoreBits(spec.layer, nLayer)) {
    const down = spec.role === "expert_down" || spec.role === "shexp_down" ||
      spec.role === "ffn_down";
    if (spec.role === "attn_v" || down) {
      t = "Q6_K";
    }
  }
  const ne0 = spec.shape[0];
  if (ne0 % typeInfo(GGMLType[t]).blockSize !== 0) t = ne0 % 32 === 0 ? "Q8_0" : "F16";
  return t;
}

/** llama.cpp `general.file_type` (llama_ftype) of a type set, when there is one. */
export function fileType(types: SynthTypes): number | undefined {
  if (types.mix === "Q4_K_M") return 15;
  const m: Partial<Record<GGMLTypeName, number>> = {
    F32: 0,
    F16: 1,
    Q4_0: 2,
    Q8_0: 7,
    Q4_K: 14,
    Q5_K: 16,
    Q6_K: 18,
    BF16: 32,
    MXFP4: 38,
  };
  return types.experts === "MXFP4" ? 38 : m[types.weights];
}
