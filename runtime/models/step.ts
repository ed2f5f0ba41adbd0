/**
 * What a layer's forward pass gets from the engine for one step: the backend, the step's
 * buffers and rows, and the two things the engine owns rather than the model — the KV cache
 * (attention per sequence) and expert residency (routed experts from the mapping or the
 * cache). Architecture files compose blocks (`_attention.ts`, `_ffn.ts`) over this.
 *
 * A step holds m rows (tokens of one or several sequences); every buffer is (m, width)
 * row-major f32 unless noted.
 *
 * @module
 */
import type { Ptr } from "../../ffi/mod.ts";
import type { AttentionParams, Backend, Buf } from "../backend/backend.ts";
import type { ModelConfig, Routing } from "./config.ts";
import type { LayerWeights, Weight } from "./weights.ts";

/** The activation buffers of a step, each with room for the step's largest row count. */
export interface StepBuffers {
  /** The residual stream (m, nEmbd). */
  readonly x: Buf;
  /** Normed input of the current block (m, nEmbd). */
  readonly h: Buf;
  /** Queries (m, nHead·headDim), keys and values (m, nHeadKv·headDim[V]). */
  readonly q: Buf;
  readonly k: Buf;
  readonly v: Buf;
  /** Attention output before the projection (m, nHead·headDimV). */
  readonly att: Buf;
  /** A block's output (m, nEmbd). */
  readonly o: Buf;
  /** Router logits (m, nExpert), chosen ids (m, k) i32 and weights (m, k). */
  readonly router: Buf;
  readonly ids: Buf;
  readonly wts: Buf;
  /** FFN intermediates (m, max FFN width) and a second (m, nEmbd) output. */
  readonly g: Buf;
  readonly u: Buf;
  readonly d: Buf;
  /** The FFN block's output (m, nEmbd). */
  readonly moe: Buf;
}

/** One step of the forward pass, as a layer sees it. */
export interface StepContext {
  readonly be: Backend;
  readonly cfg: ModelConfig;
  /** The model's routing, every field decided ({@link resolveRouting}). */
  readonly routing: Routing;
  /** Rows in this step. */
  readonly m: number;
  readonly buf: StepBuffers;
  /** (m) i32 positions of the rows. */
  readonly pos: Ptr;
  /** Scratch for the products. */
  readonly scratch: Ptr;
  /**
   * A buffer of at least `floats` f32 values owned by the step under `key`, kept for later
   * steps (a block's own intermediates: MLA's q before absorption, its decompressed output).
   */
  tmp(key: string, floats: number): Buf;
  /** y (n, rows) = x (n, cols) · Wᵀ with the step's scratch. */
  mm(w: Weight, x: Ptr, n: number, y: Ptr): void;
  /**
   * Store buf.k and buf.v (already rotated) in each sequence's KV cache at layer `li`, then
   * attend buf.q to it, per sequence, into buf.att.
   */
  attend(li: number, a: AttentionParams): void;
  /**
   * For each sequence in the step: its rows [row, row+n) and, for recurrent layer `li`, its
   * convolution and recurrent states (read and updated in place by the layer's ops).
   */
  forEachSequence(li: number, fn: (row: number, n: number, conv: Ptr, state: Ptr) => void): void;
  /**
   * The routed experts of layer `L` (index `li`) on buf.h with buf.ids and buf.wts into
   * buf.moe: from the mapping or through the expert cache (the engine's choice).
   */
  experts(L: LayerWeights, li: number): void;
}

/** A layer's forward pass: reads and updates the residual buf.x. */
export type LayerForward = (ctx: StepContext, L: LayerWeights, li: number) => void;
