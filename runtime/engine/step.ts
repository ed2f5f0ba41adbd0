/**
 * One forward step over the rows of one or several sequences: the engine's side of
 * {@link StepContext}. It owns the step's buffers, embeds the tokens, runs the
 * architecture's layer function ({@link ArchSpec.forward}) on every layer, and computes the
 * logits of the rows wanted. The model's math lives in runtime/models/; what stays here is
 * state: the KV caches of the sequences in the step (attention per sequence) and expert
 * residency (mapped experts, or the cache through {@link ExpertResidency}).
 *
 * @module
 */
import type { Ptr } from "../../ffi/mod.ts";
import { type AttentionParams, type Buf, MoEPhase } from "../backend/backend.ts";
import type { CpuBackend } from "../backend/cpu.ts";
import { type ModelConfig, resolveRouting, type Routing } from "../models/config.ts";
import { actOf } from "../models/_ffn.ts";
import type { StepBuffers, StepContext } from "../models/step.ts";
import type { LayerWeights, Weight } from "../models/weights.ts";
import { ExpertResidency } from "./expert_residency.ts";
import type { KVCache } from "./kv.ts";
import type { RecurrentState } from "./recurrent.ts";
import type { Model } from "./model.ts";

/** Rows [row, row+n) of a step: one sequence's tokens at positions [pos0, pos0+n). */
export interface Segment {
  readonly kv: KVCache;
  /** The sequence's recurrent state (hybrid models), else null. */
  readonly rec: RecurrentState | null;
  readonly row: number;
  readonly n: number;
  readonly pos0: number;
}

/** The largest scratch any product of a step of `rows` rows needs. */
function scratchBytes(model: Model, rows: number): number {
  const be = model.backend, c = model.config;
  let scratch = be.matmulScratchBytes(model.output, rows);
  for (const L of model.layers) {
    for (const w of L.matrices()) {
      scratch = Math.max(scratch, be.matmulScratchBytes(w, rows * (w.batch ?? 1)));
    }
    const ex = L.experts;
    if (!ex) continue;
    for (const w of [ex.gateExps, ex.upExps, ex.downExps]) {
      scratch = Math.max(scratch, be.matmulScratchBytes(w, rows));
    }
    scratch = Math.max(
      scratch,
      be.moeScratchBytes(
        ex.gateExps.type,
        ex.upExps.type,
        ex.downExps.type,
        c.nEmbd,
        c.nFfExp,
        c.nExpert,
        rows,
        c.nExpertUsed,
      ),
    );
  }
  return Math.max(64, scratch);
}

/** The buffers and context of forward steps of up to `rows` rows over one model. */
export class StepRunner implements StepContext {
  readonly model: Model;
  readonly be: CpuBackend;
  readonly cfg: ModelConfig;
  readonly routing: Routing;
  /** Most rows per step. */
  readonly rows: number;
  readonly buf: StepBuffers;
  readonly #pos: Buf;
  readonly #scratch: Buf;
  readonly #logits: Buf;
  #logitsMany: Buf | null = null;
  readonly #tmp = new Map<string, Buf>();
  /** Expert cache state, when the model serves experts from a cache. */
  readonly residency: ExpertResidency | null;
  /** Rows of the current step. */
  m = 0;
  #segs: readonly Segment[] = [];

  /** Buffers for steps of up to `rows` rows of `model`. */
  constructor(model: Model, rows: number) {
    this.model = model;
    this.be = model.backend;
    this.cfg = model.config;
    this.routing = resolveRouting(model.arch.routing, model.config);
    this.rows = rows;
    const c = model.config, be = this.be;
    const f = (n: number) => be.alloc(Math.max(1, n) * 4);
    const ff = Math.max(c.nFfExp, c.nFfShexp, c.nFf);
    this.buf = {
      x: f(rows * c.nEmbd),
      h: f(rows * c.nEmbd),
      q: f(rows * c.nHead * c.headDim),
      k: f(rows * c.nHeadKv * c.headDim),
      v: f(rows * c.nHeadKv * c.headDimV),
      att: f(rows * c.nHead * c.headDimV),
      o: f(rows * c.nEmbd),
      router: f(rows * c.nExpert),
      ids: f(rows * c.nExpertUsed),
      wts: f(rows * c.nExpertUsed),
      g: f(rows * ff),
      u: f(rows * ff),
      d: f(rows * c.nEmbd),
      moe: f(rows * c.nEmbd),
    };
    this.#logits = f(c.nVocab);
    this.#scratch = be.alloc(scratchBytes(model, rows));
    this.#pos = f(rows);
    const src = model.expertSource;
    this.residency = src ? new ExpertResidency(this, src, rows) : null;
  }

  get pos(): Ptr {
    return this.#pos.ptr;
  }

  get scratch(): Ptr {
    return this.#scratch.ptr;
  }

  tmp(key: string, floats: number): Buf {
    let b = this.#tmp.get(key);
    if (!b || b.byteLength < floats * 4) {
      b?.free();
      b = this.be.alloc(Math.max(1, floats) * 4);
      this.#tmp.set(key, b);
    }
    return b;
  }

  mm(w: Weight, x: Ptr, n: number, y: Ptr): void {
    this.be.matmul(w, x, n, y, this.#scratch.ptr);
  }

  attend(li: number, a: AttentionParams): void {
    const B = this.buf, be = this.be;
    const nq = a.nHead * a.headDim;
    const nAtt = a.nHead * (a.headDimV ?? a.headDim);
    for (const g of this.#segs) {
      const kv = g.kv;
      be.toF16(B.k.ptrAt(g.row * kv.kRow * 4), kv.k(li, g.pos0), g.n * kv.kRow);
      be.toF16(B.v.ptrAt(g.row * kv.vRow * 4), kv.v(li, g.pos0), g.n * kv.vRow);
      be.attention(
        B.q.ptrAt(g.row * nq * 4),
        kv.k(li),
        kv.v(li),
        B.att.ptrAt(g.row * nAtt * 4),
        g.n,
        g.pos0 + g.n,
        g.pos0,
        a,
      );
    }
  }

  forEachSequence(li: number, fn: (row: number, n: number, conv: Ptr, state: Ptr) => void): void {
    for (const g of this.#segs) {
      if (!g.rec) throw new Error(`layer ${li}: a sequence without recurrent state`);
      fn(g.row, g.n, g.rec.conv(li), g.rec.state(li));
    }
  }

  experts(L: LayerWeights, li: number): void {
    const c = this.cfg, B = this.buf, m = this.m;
    this.model.profileRecorder?.observe(li, B.ids.i32, m * c.nExpertUsed, c.nExpertUsed);
    const ex = L.experts!;
    if (this.residency) {
      this.residency.run(L, li, m);
      return;
    }
    this.moeFfn(ex, 0, m, ex.gateExps.table.ptr, ex.upExps.table.ptr, ex.downExps.table.ptr);
  }

  /** The routed-expert kernel for rows [t0, t0+m) of buf.h with the given address tables. */
  moeFfn(
    ex: NonNullable<LayerWeights["experts"]>,
    t0: number,
    m: number,
    gate: Ptr,
    up: Ptr,
    down: Ptr,
    phase: number = MoEPhase.ALL,
  ): void {
    const c = this.cfg, B = this.buf, K = c.nExpertUsed;
    this.be.moeFfn({
      x: B.h.ptrAt(t0 * c.nEmbd * 4),
      n: m,
      nEmbd: c.nEmbd,
      nFf: c.nFfExp,
      nExpert: c.nExpert,
      k: K,
      ids: B.ids.ptrAt(t0 * K * 4),
      weights: B.wts.ptrAt(t0 * K * 4),
      gate,
      gateType: ex.gateExps.type,
      up,
      upType: ex.upExps.type,
      down,
      downType: ex.downExps.type,
      gateBias: ex.gateBias ? ex.gateBias.ptr : null,
      upBias: ex.upBias ? ex.upBias.ptr : null,
      downBias: ex.downBias ? ex.downBias.ptr : null,
      act: actOf(c),
      y: B.moe.ptrAt(t0 * c.nEmbd * 4),
      scratch: this.#scratch.ptr,
      phase,
    });
  }

  /**
   * One forward step over `tokens` (m rows) made of segments (rows of one sequence each).
   * Everything but attention runs on all m rows at once; calls emit(i, logits) for each row
   * in `want` (one output product for all of them). m must not exceed {@link rows}.
   */
  forward(
    tokens: ArrayLike<number>,
    segs: readonly Segment[],
    want: readonly number[],
    emit: (i: number, logits: Float32Array) => void,
  ): void {
    const model = this.model, c = this.cfg, be = this.be, B = this.buf;
    const m = tokens.length;
    const E = c.nEmbd;
    this.m = m;
    this.#segs = segs;
    be.getRows(model.tokenEmbd, tokens, B.x);
    const pos = this.#pos.i32;
    for (const g of segs) for (let j = 0; j < g.n; j++) pos[g.row + j] = g.pos0 + j;
    const t0 = performance.now();
    const forward = model.arch.forward;
    try {
      for (let li = 0; li < c.nLayer; li++) forward(this, model.layers[li], li);
    } catch (e) {
      this.residency?.abandonPrefetch(model.path);
      throw e;
    } finally {
      this.#segs = [];
    }
    // decode steps tell the prefetch controller what prefetching is worth here
    this.residency?.src.prefetch.record(m, (performance.now() - t0) / 1000, m === segs.length);
    const nw = want.length;
    if (nw === 0) return;
    // final norm on the rows wanted, gathered into h (nw, E), then one output product
    for (let i = 0; i < nw; i++) {
      be.rmsnorm(
        B.x.ptrAt(want[i] * E * 4),
        model.outputNorm.ptr,
        B.h.ptrAt(i * E * 4),
        1,
        E,
        c.rmsEps,
      );
    }
    const V = c.nVocab;
    if (nw === 1) {
      this.mm(model.output, B.h.ptr, 1, this.#logits.ptr);
      emit(0, this.#logits.f32.subarray(0, V));
      return;
    }
    if (!this.#logitsMany || this.#logitsMany.byteLength < nw * V * 4) {
      this.#logitsMany?.free();
      this.#logitsMany = be.alloc(nw * V * 4);
    }
    const lm = this.#logitsMany;
    this.mm(model.output, B.h.ptr, nw, lm.ptr);
    for (let i = 0; i < nw; i++) emit(i, lm.f32.subarray(i * V, (i + 1) * V));
  }

  /** Record `n` tokens with the expert cache (its aging clock). */
  recordTokens(n: number): void {
    this.residency?.src.cache.recordToken(n);
  }

  /** Free the buffers (and give back any prefetch in flight). */
  free(): void {
    this.residency?.free(this.model.path);
    for (const b of Object.values(this.buf)) b.free();
    this.#pos.free();
    this.#scratch.free();
    this.#logits.free();
    this.#logitsMany?.free();
    for (const b of this.#tmp.values()) b.free();
  }
}
