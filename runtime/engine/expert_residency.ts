/**
 * Expert residency for a step (DESIGN.md §4): the routed experts of a MoE layer from the
 * expert cache instead of the mapping, and the next-layer prefetch.
 *
 * {@link ExpertResidency.run} takes a layer's routed ids, makes those experts resident
 * (reading the misses through the pager, see cached_experts.ts), points the kernel's
 * address tables at their slots and runs the routed-expert kernel; tokens are taken in groups whose
 * distinct experts fit the cache. Prefetch: the next layer's ffn norm and router are
 * applied to the residual as it stands and the best-ranked half of each token's predicted
 * experts are read while this layer computes.
 *
 * @module
 */
import process from "node:process";
import { type Buf, MoEPhase } from "../backend/backend.ts";
import { route } from "../models/_ffn.ts";
import type { ExpertTensors, LayerWeights } from "../models/weights.ts";
import type { ExpertSource } from "./model.ts";
import type { StepRunner } from "./step.ts";
import { CachedExperts } from "./cached_experts.ts";

/** The prediction buffers of the next-layer prefetch. */
interface PredictBuffers {
  readonly h: Buf;
  readonly logits: Buf;
  readonly ids: Buf;
  readonly wts: Buf;
}

/** A step runner's side of the expert cache: loads, groups, prefetch. */
export class ExpertResidency {
  readonly src: ExpertSource;
  readonly #step: StepRunner;
  readonly #ex: CachedExperts;
  readonly #pred: PredictBuffers | null;
  /** Overlap reads with compute (SPOOL_OVERLAP=0 turns it off, for comparison). */
  readonly #overlap = process.env.SPOOL_OVERLAP !== "0";
  /** Predicted experts per token the prefetch reads ({@link prefetchTop}). */
  readonly #top: number;

  /** Residency for steps of up to `rows` rows of `step`'s model. */
  constructor(step: StepRunner, src: ExpertSource, rows: number) {
    this.#step = step;
    this.src = src;
    const c = step.cfg, be = step.be;
    this.#top = prefetchTop(c.nExpertUsed);
    this.#ex = new CachedExperts(src, c.nExpert, rows * c.nExpertUsed);
    const f = (n: number) => be.alloc(Math.max(1, n) * 4);
    this.#pred = src.prefetch.mode !== "off"
      ? {
        h: f(rows * c.nEmbd),
        logits: f(rows * c.nExpert),
        ids: f(rows * c.nExpertUsed),
        wts: f(rows * c.nExpertUsed),
      }
      : null;
  }

  /**
   * The routed experts of layer `L` for the step's m rows, from the cache. Tokens are taken
   * in groups whose distinct experts fit the slots that are not pinned (all m tokens at
   * once unless the cache is tiny); each token's output depends on its own slots only, so
   * grouping changes no result. The first group settles the prefetch of this layer and then
   * starts the next layer's.
   */
  run(L: LayerWeights, li: number, m: number): void {
    const ex = this.#ex, step = this.#step;
    const c = step.cfg;
    const K = c.nExpertUsed;
    const ids = step.buf.ids.i32;
    const cache = ex.src.cache;
    const tensors = L.experts!;
    const path = step.model.path;
    const cap = Math.max(K, cache.slots - cache.pinnedCount - ex.prefetchHeld(li));
    ex.scorePrediction(li, ids, m * K);
    for (let t0 = 0; t0 < m;) {
      const t1 = ex.groupEnd(ids, t0, m, K, cap);
      if (t0 === 0 && t1 === m && this.#overlap) {
        this.#runOverlapped(tensors, li, m, path);
        return;
      }
      ex.load(tensors, li, ids.subarray(t0 * K, t1 * K), (t1 - t0) * K, path);
      try {
        if (t0 === 0 && t1 === m && ex.src.prefetch.active) this.#prefetch(li + 1, m);
        step.moeFfn(tensors, t0, t1 - t0, ex.gate.ptr, ex.up.ptr, ex.down.ptr);
      } finally {
        ex.release();
      }
      t0 = t1;
    }
  }

  /**
   * All m tokens in one group, with the reads overlapped: the misses are submitted (and the
   * next layer's prefetch queued behind them), the resident experts computed
   * (MoEPhase.BEGIN) while they load, then the rest and the slot-order sum
   * (MoEPhase.FINISH): the same bits as one call. A step of several rows submits its misses
   * in pieces (see {@link CachedExperts.begin}) and computes each piece as it arrives
   * (MoEPhase.MORE) while the next ones load, so its reads and compute overlap throughout
   * instead of only for the experts that were resident.
   */
  #runOverlapped(tensors: ExpertTensors, li: number, m: number, path: string): void {
    const ex = this.#ex, step = this.#step;
    const K = step.cfg.nExpertUsed;
    const g = ex.gate.ptr, u = ex.up.ptr, d = ex.down.ptr;
    const pending = ex.begin(tensors, li, step.buf.ids.i32, m * K, path, m > 1);
    try {
      if (ex.src.prefetch.active) this.#prefetch(li + 1, m);
      if (pending) {
        step.moeFfn(tensors, 0, m, g, u, d, MoEPhase.BEGIN);
        while (ex.readNext(tensors, path)) step.moeFfn(tensors, 0, m, g, u, d, MoEPhase.MORE);
        ex.finishRead(tensors, path);
        step.moeFfn(tensors, 0, m, g, u, d, MoEPhase.FINISH);
      } else step.moeFfn(tensors, 0, m, g, u, d);
    } finally {
      ex.abandonRead(path);
      ex.release();
    }
  }

  /**
   * Predict the experts of the next MoE layer at or after `next` from the residual stream
   * as it stands (after this layer's attention): its ffn norm and router applied now, top-k
   * per token; start reading the predicted experts that are not resident.
   */
  #prefetch(next: number, m: number): void {
    const step = this.#step, model = step.model, c = step.cfg;
    const P = this.#pred;
    if (!P) return;
    while (next < c.nLayer && !model.layers[next].experts) next++;
    if (next >= c.nLayer) return;
    const N = model.layers[next];
    step.be.rmsnorm(step.buf.x.ptr, N.vec(c.ffnNormName).ptr, P.h.ptr, m, c.nEmbd, c.rmsEps);
    route(step, N, P.h.ptr, m, P.logits, P.ids.ptr, P.wts.ptr);
    // each token's best-ranked guesses only, packed to the front (see prefetchTop)
    const K = c.nExpertUsed, top = this.#top;
    const ids = P.ids.i32;
    if (top < K) {
      for (let t = 1; t < m; t++) for (let j = 0; j < top; j++) ids[t * top + j] = ids[t * K + j];
    }
    this.#ex.prefetch(N.experts!, next, ids, m * top, m * K);
  }

  /** After an error mid-step: settle (or drop) whatever prefetch is in flight. */
  abandonPrefetch(path: string): void {
    this.#ex.abandonPrefetch(path);
  }

  /** Release the tables and prediction buffers. */
  free(path: string): void {
    this.#ex.free(path);
    if (this.#pred) { for (const b of Object.values(this.#pred)) b.free(); }
  }
}

/**
 * The prefetch reads each token's first `prefetchTop(K)` predicted experts, in the router's
 * order (best first): half of its top-k, at least one (SPOOL_PREFETCH_TOP=N overrides, for
 * comparison). A wrong guess costs a whole expert read on a disk that is already the limit;
 * the first ranks are guessed far more often right. Measured here (16.6 GB Q8_0
 * Qwen3-30B-A3B shape with 24 layers, 4 GiB cap, 4 prompts × 16 sampled tokens, prefetch on,
 * one run each): top 2, 3, 4, 5, 6, 8 of 8: 3.07, 3.14, 3.04, 2.83, 2.72, 2.34 tok/s at
 * precision 0.95, 0.92, 0.88, 0.84, 0.80, 0.72; prefetch off 2.65 and 2.67.
 */
export function prefetchTop(k: number): number {
  const n = Number(process.env.SPOOL_PREFETCH_TOP ?? 0);
  return Math.min(k, n >= 1 ? Math.floor(n) : Math.max(1, Math.floor(k / 2)));
}
