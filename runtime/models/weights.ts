/**
 * A model's tensors as the forward pass sees them, bound from the architecture's own table
 * of names ({@link ArchSpec.tensors}): the loader (engine/model.ts) maps each listed tensor
 * and files it here under its short GGUF name (`blk.3.attn_q.weight` → `attn_q`,
 * `blk.3.attn_q.bias` → `attn_q.bias`), so the blocks look weights up by the names llama.cpp
 * uses and no second table of names exists.
 *
 * @module
 */
import type { NativeBuffer } from "../../ffi/memory.ts";
import type { Ptr } from "../../ffi/mod.ts";
import type { Matrix, Vector } from "../backend/backend.ts";

/** A 2-D weight (rows × cols) in the mapping: y = W x has `rows` outputs. */
export type Weight = Matrix;

/** A 1-D F32 vector (norm weight, bias, gate) as a JS view plus its pointer. */
export type Vec = Vector;

/** A 3-D expert tensor: `nExpert` matrices of rows × cols, expert index outermost. */
export interface ExpertWeight {
  readonly name: string;
  readonly type: number;
  readonly rows: number;
  readonly cols: number;
  /** Pointer to each expert's matrix. */
  readonly ptrs: readonly Ptr[];
  /** The same addresses as a native array of nExpert uint64 (spool_moe_ffn's gate/up/down). */
  readonly table: NativeBuffer;
  /** Bytes of one expert's matrix. */
  readonly expertBytes: number;
  /** Offset of expert 0 in the file. */
  readonly fileOffset: number;
}

/** The routed experts of a MoE layer: what the expert cache pages. */
export interface ExpertTensors {
  readonly gateExps: ExpertWeight;
  readonly upExps: ExpertWeight;
  readonly downExps: ExpertWeight;
  /** Per-expert biases (gpt-oss), (nExpert, rows) row-major. */
  readonly gateBias?: Vec;
  readonly upBias?: Vec;
  readonly downBias?: Vec;
}

/** A bound tensor. */
export type Bound = Weight | Vec | ExpertWeight;

/** The short name of a layer tensor: `blk.N.attn_q.weight` → `attn_q`, `.bias` kept. */
export function shortName(name: string): string {
  const s = name.replace(/^blk\.\d+\./, "");
  return s.endsWith(".weight") ? s.slice(0, -".weight".length) : s;
}

/** The tensors of one transformer block, by short name. */
export class LayerWeights {
  /** Layer index. */
  readonly index: number;
  /** Sliding window of this layer (0 = global attention). */
  readonly window: number;
  /** The routed experts (null for a dense layer). */
  readonly experts: ExpertTensors | null;
  readonly #t: ReadonlyMap<string, Bound>;

  /**
   * @param index layer index
   * @param window sliding window (0 = global)
   * @param tensors bound tensors by short name
   */
  constructor(index: number, window: number, tensors: ReadonlyMap<string, Bound>) {
    this.index = index;
    this.window = window;
    this.#t = tensors;
    const g = tensors.get("ffn_gate_exps") as ExpertWeight | undefined;
    const u = tensors.get("ffn_up_exps") as ExpertWeight | undefined;
    const d = tensors.get("ffn_down_exps") as ExpertWeight | undefined;
    this.experts = g && u && d
      ? {
        gateExps: g,
        upExps: u,
        downExps: d,
        gateBias: this.vecOpt("ffn_gate_exps.bias"),
        upBias: this.vecOpt("ffn_up_exps.bias"),
        downBias: this.vecOpt("ffn_down_exps.bias"),
      }
      : null;
  }

  /** Every 2-D matrix of the layer (for sizing scratch). */
  matrices(): Weight[] {
    return [...this.#t.values()].filter((t): t is Weight => "rowBytes" in t);
  }

  /** Whether the layer has tensor `name`. */
  has(name: string): boolean {
    return this.#t.has(name);
  }

  #get(name: string): Bound {
    const t = this.#t.get(name);
    if (t === undefined) throw new Error(`layer ${this.index} has no tensor "${name}"`);
    return t;
  }

  /** The matrix `name` (e.g. `attn_q`). */
  mat(name: string): Weight {
    return this.#get(name) as Weight;
  }

  /** The matrix `name`, or undefined. */
  matOpt(name: string): Weight | undefined {
    return this.#t.get(name) as Weight | undefined;
  }

  /** The vector `name` (e.g. `attn_norm`, `attn_q.bias`). */
  vec(name: string): Vec {
    return this.#get(name) as Vec;
  }

  /** The vector `name`, or undefined. */
  vecOpt(name: string): Vec | undefined {
    return this.#t.get(name) as Vec | undefined;
  }
}
