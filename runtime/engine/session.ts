/**
 * A session: what one conversation owns — the KV cache, its position, and scratch buffers —
 * plus the forward pass of the shared MoE decoder layer (DESIGN §8: the architectures differ
 * in data, in {@link ModelConfig}, and share this code).
 *
 * Shapes are noted as (rows, cols), row-major. A step processes n tokens of one sequence:
 * a prefill chunk (n up to `batch`) runs every projection as a matrix-matrix product and
 * groups the chunk's tokens by expert, so each expert's weights are read once per chunk;
 * decode (n = 1) runs matrix-vector products.
 */
import { check, native } from "../../ffi/mod.ts";
import type { Ptr } from "../../ffi/mod.ts";
import { closeFile, IOError, NativeBuffer, openFile } from "../../ffi/memory.ts";
import { CacheFullError, Part } from "../experts/cache.ts";
import { GGMLType } from "../gguf/types.ts";
import type { ModelConfig } from "../models/config.ts";
import { stageExpertRead } from "./model.ts";
import type { ExpertSource, LayerWeights, Model, Vec, Weight } from "./model.ts";

const ACT_F32 = 0;
const ACT_Q8 = 1;
const ROPE_NORMAL = 0;
const ROPE_NEOX = 2;
const GATE_SOFTMAX = 0;
const GATE_SOFTMAX_TOPK = 2;
const ACT_SWIGLU = 16;
const ACT_SWIGLU_OAI = 17;

/** Options of a {@link Session}. */
export interface SessionOptions {
  /** Context length (KV cache rows); default min(model training context, 4096). */
  nCtx?: number;
  /** Most tokens per forward step (prefill chunk); default 64. */
  batch?: number;
}

/** Which logits {@link Session.eval} returns. */
export type LogitsMode = "last" | "all" | "none";

/** The prompt or generation ran past the context window. */
export class ContextOverflowError extends Error {
  readonly nCtx: number;
  readonly needed: number;
  constructor(nCtx: number, needed: number) {
    super(`Context overflow: ${needed} tokens do not fit the context of ${nCtx} tokens`);
    this.name = "ContextOverflowError";
    this.nCtx = nCtx;
    this.needed = needed;
  }
}

function actFor(type: number): number {
  return type === GGMLType.F32 || type === GGMLType.F16 || type === GGMLType.BF16
    ? ACT_F32
    : ACT_Q8;
}

/** Rows [row, row+n) of a forward step: session `s`'s tokens at positions [pos0, pos0+n). */
interface Segment {
  s: Session;
  row: number;
  n: number;
  pos0: number;
}

/** One sequence's state over a {@link Model}. */
export class Session {
  readonly model: Model;
  readonly nCtx: number;
  readonly batch: number;
  /** Tokens in the KV cache, in order. */
  readonly tokens: number[] = [];
  /**
   * K and V of every layer, one buffer each: (nLayer, nCtx, nHeadKv × headDim) f16. One
   * large block is a lazy mapping (spool_alloc), so only the positions used take memory.
   */
  #kAll: NativeBuffer;
  #vAll: NativeBuffer;
  /** Bytes of one layer's K (V) in #kAll (#vAll). */
  readonly #kLayer: number;
  readonly #vLayer: number;
  #buf: Record<string, NativeBuffer> = {};
  #scratch!: NativeBuffer;
  #pos!: NativeBuffer;
  #ready = false;
  #closed = false;
  /** Expert cache state, when the model serves experts from a cache. */
  #ex: CachedExperts | null = null;
  /** Logits of several rows at once (evalMany), allocated on first use. */
  #logitsMany: NativeBuffer | null = null;

  constructor(model: Model, opts: SessionOptions = {}) {
    this.model = model;
    const c = model.config;
    this.nCtx = Math.max(1, opts.nCtx ?? Math.min(c.nCtxTrain || 4096, 4096));
    this.batch = Math.max(1, opts.batch ?? 64);
    this.#kLayer = this.nCtx * c.nHeadKv * c.headDim * 2;
    this.#vLayer = this.nCtx * c.nHeadKv * c.headDimV * 2;
    this.#kAll = new NativeBuffer(c.nLayer * this.#kLayer, { align: 4096 });
    this.#vAll = new NativeBuffer(c.nLayer * this.#vLayer, { align: 4096 });
  }

  /**
   * Allocate the step buffers (activations, 8-bit scratch, positions, expert tables) on
   * first use: a session that only holds a KV cache for batched steps (evalMany runs them
   * in another session's buffers) never pays for them.
   */
  #ensureBuffers(): void {
    if (this.#ready) return;
    const model = this.model;
    const c = model.config;
    const B = this.batch;
    const f = (n: number) => new NativeBuffer(Math.max(1, n) * 4);
    const ff = Math.max(c.nFfExp, c.nFfShexp);
    this.#buf = {
      x: f(B * c.nEmbd),
      h: f(B * c.nEmbd),
      q: f(B * c.nHead * c.headDim),
      k: f(B * c.nHeadKv * c.headDim),
      v: f(B * c.nHeadKv * c.headDimV),
      att: f(B * c.nHead * c.headDimV),
      o: f(B * c.nEmbd),
      router: f(B * c.nExpert),
      ids: f(B * c.nExpertUsed),
      wts: f(B * c.nExpertUsed),
      g: f(B * ff), // shared expert: (m, nFfShexp) gate, then act
      u: f(B * ff),
      d: f(B * c.nEmbd),
      moe: f(B * c.nEmbd),
      logits: f(c.nVocab),
    };
    if (model.expertSource && model.expertSource.prefetch.mode !== "off") {
      // the predictor: next layer's ffn norm and router on this layer's residual
      this.#buf.ph = f(B * c.nEmbd);
      this.#buf.prouter = f(B * c.nExpert);
      this.#buf.pids = f(B * c.nExpertUsed);
      this.#buf.pwts = f(B * c.nExpertUsed);
    }
    // scratch for 8-bit activations: the largest of any product in a step
    const s = native().sym;
    let scratch = 0;
    const need = (w: { type: number; cols: number }, n: number) => {
      scratch = Math.max(scratch, s.spool_matmul_scratch_bytes(w.type, w.cols, n, ACT_Q8));
    };
    need(model.output, B);
    for (const l of model.layers) {
      for (const w of [l.q, l.k, l.v, l.o, l.router, l.gateExps, l.upExps, l.downExps]) need(w, B);
      if (l.shared) { for (const w of [l.shared.gate, l.shared.up, l.shared.down]) need(w, B); }
      scratch = Math.max(
        scratch,
        s.spool_moe_scratch_bytes(
          l.gateExps.type,
          l.upExps.type,
          l.downExps.type,
          c.nEmbd,
          c.nFfExp,
          c.nExpert,
          B,
          c.nExpertUsed,
        ),
      );
    }
    this.#scratch = new NativeBuffer(Math.max(64, scratch));
    this.#pos = new NativeBuffer(B * 4);
    const src = model.expertSource;
    if (src) this.#ex = new CachedExperts(src, c.nExpert, B * c.nExpertUsed);
    this.#ready = true;
  }

  /** Tokens in the cache. */
  get position(): number {
    return this.tokens.length;
  }

  /** Drop cached tokens after `n` (keep the first n), e.g. to reuse a common prefix. */
  truncate(n: number): void {
    if (n < this.tokens.length) this.tokens.length = Math.max(0, n);
  }

  /**
   * Run `tokens` through the model after the cached ones. Returns logits: of the last token
   * (`last`, length nVocab), of every token (`all`, tokens.length × nVocab), or none.
   * @throws ContextOverflowError if the cache cannot hold them (nothing is evaluated)
   */
  eval(tokens: ArrayLike<number>, mode: LogitsMode = "last"): Float32Array {
    if (this.#closed) throw new Error("Session used after close()");
    this.model.checkFile();
    const n = tokens.length;
    const nVocab = this.model.config.nVocab;
    if (this.position + n > this.nCtx) throw new ContextOverflowError(this.nCtx, this.position + n);
    for (let i = 0; i < n; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t >= nVocab) {
        throw new RangeError(
          `token id ${t} at index ${i} is outside the vocabulary (0..${nVocab - 1})`,
        );
      }
    }
    const out = new Float32Array(mode === "all" ? n * nVocab : mode === "last" ? nVocab : 0);
    for (let start = 0; start < n; start += this.batch) {
      const m = Math.min(this.batch, n - start);
      const chunk = Array.from({ length: m }, (_, i) => tokens[start + i]);
      const lastChunk = start + m === n;
      const want = mode === "all" ? m : mode === "last" && lastChunk ? 1 : 0;
      const rows = Array.from({ length: want }, (_, i) => m - want + i);
      this.#forward(chunk, [{ s: this, row: 0, n: m, pos0: this.position }], rows, (i, logits) => {
        const at = mode === "all" ? (start + rows[i]) * nVocab : 0;
        out.set(logits, at);
      });
      for (const t of chunk) this.tokens.push(t);
      this.#ex?.src.cache.recordToken(m);
    }
    return out;
  }

  /**
   * One batched step over several sessions of the same model: appends each item's tokens
   * to its session and returns the logits of each item's last token (a copy per item).
   * The rows of all items run through the layers together, so an expert routed to by
   * several sequences is read once for all of them; attention stays per sequence. `scratch`
   * lends its buffers (default: one step session per model, kept for later steps, with room
   * for one row per item up to 512); steps of more rows than its batch are split into waves.
   * @throws ContextOverflowError if any item does not fit its session (nothing is evaluated)
   */
  static evalMany(
    items: readonly { session: Session; tokens: ArrayLike<number> }[],
    scratch?: Session,
  ): Float32Array[] {
    if (items.length === 0) return [];
    const model = items[0].session.model;
    const owner = scratch ?? Session.#shared(model, items.length);
    const nVocab = model.config.nVocab;
    const seen = new Set<Session>();
    for (const [k, it] of items.entries()) {
      const s = it.session;
      if (s.#closed) throw new Error("Session used after close()");
      if (s.model !== model) throw new Error("evalMany: sessions of different models");
      if (seen.has(s)) throw new Error("evalMany: a session appears twice in one step");
      seen.add(s);
      const n = it.tokens.length;
      if (n === 0) throw new RangeError(`evalMany: item ${k} has no tokens`);
      if (s.position + n > s.nCtx) throw new ContextOverflowError(s.nCtx, s.position + n);
      for (let i = 0; i < n; i++) {
        const t = it.tokens[i];
        if (!Number.isInteger(t) || t < 0 || t >= nVocab) {
          throw new RangeError(
            `token id ${t} at index ${i} of item ${k} is outside the vocabulary (0..${nVocab - 1})`,
          );
        }
      }
    }
    if (owner.#closed) throw new Error("Session used after close()");
    model.checkFile();
    const out: Float32Array[] = new Array(items.length);
    const cap = owner.batch;
    const flat: number[] = [];
    const segs: Segment[] = [];
    const want: number[] = [];
    const wantItem: number[] = [];
    const run = () => {
      owner.#forward(flat, segs, want, (i, logits) => {
        out[wantItem[i]] = logits.slice();
      });
      for (const g of segs) {
        const src = flat.slice(g.row, g.row + g.n);
        for (const t of src) g.s.tokens.push(t);
      }
      owner.#ex?.src.cache.recordToken(flat.length);
      flat.length =
        segs.length =
        want.length =
        wantItem.length =
          0;
    };
    for (let k = 0; k < items.length; k++) {
      const { session: s, tokens } = items[k];
      let off = 0;
      while (off < tokens.length) {
        if (flat.length === cap) run();
        const take = Math.min(tokens.length - off, cap - flat.length);
        // positions count tokens of earlier waves already pushed to the session
        segs.push({ s, row: flat.length, n: take, pos0: s.position });
        for (let i = 0; i < take; i++) flat.push(tokens[off + i]);
        off += take;
        if (off === tokens.length) {
          want.push(flat.length - 1);
          wantItem.push(k);
        } else run();
      }
    }
    if (flat.length > 0) run();
    return out;
  }

  /** Per model: the session whose buffers batched steps run in (see evalMany). */
  static #stepSessions = new WeakMap<Model, Session>();

  /** The model's shared step session, with room for at least `rows` rows (64 to 512). */
  static #shared(model: Model, rows: number): Session {
    let s = Session.#stepSessions.get(model);
    const want = Math.min(512, Math.max(64, rows));
    if (!s || s.#closed || s.batch < want) {
      s?.close();
      s = new Session(model, { nCtx: 1, batch: want });
      Session.#stepSessions.set(model, s);
      const made = s;
      model.onClose(() => made.close());
    }
    return s;
  }

  /** Free the KV cache and buffers. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const b of [this.#kAll, this.#vAll, ...Object.values(this.#buf)]) b.free();
    if (this.#ready) {
      this.#scratch.free();
      this.#pos.free();
    }
    this.#logitsMany?.free();
    this.#ex?.free(this.model.path);
  }

  // ---- the forward pass -----------------------------------------------------------------

  #matmul(
    w: Weight | { type: number; rows: number; cols: number; ptr: Ptr },
    x: Ptr,
    n: number,
    y: Ptr,
  ): void {
    const st = native().sym.spool_matmul(
      this.model.pool,
      w.type,
      w.ptr,
      w.rows,
      w.cols,
      x,
      n,
      y,
      actFor(w.type),
      this.#scratch.ptr,
    );
    if (st !== 0) check(st, "spool_matmul", (w as Weight).name);
  }

  /**
   * One forward step over `tokens` (m rows), made of segments: rows [row, row+n) belong to
   * session `s` at positions [pos0, pos0+n). Everything but attention runs on all m rows at
   * once (the MoE groups every row by expert, whichever sequence it belongs to); attention
   * and the KV writes run per segment on that session's cache. Calls emit(i, logits) for
   * each row in `want` (the output projection reads its matrix once for all of them).
   * Uses this session's buffers; m must not exceed its batch.
   */
  #forward(
    tokens: ArrayLike<number>,
    segs: readonly Segment[],
    want: readonly number[],
    emit: (i: number, logits: Float32Array) => void,
  ): void {
    this.#ensureBuffers();
    const model = this.model;
    const c = model.config;
    const s = native().sym;
    const m = tokens.length;
    const B = this.#buf;
    const E = c.nEmbd;
    // embeddings: x (m, E)
    const te = model.tokenEmbd;
    for (let i = 0; i < m; i++) {
      const st = s.spool_dequantize_row(
        te.type,
        native().offset(te.ptr, tokens[i] * te.rowBytes),
        B.x.ptrAt(i * E * 4),
        E,
      );
      if (st !== 0) check(st, "spool_dequantize_row", te.name);
    }
    const pos = this.#pos.i32;
    for (const g of segs) for (let j = 0; j < g.n; j++) pos[g.row + j] = g.pos0 + j;
    const t0 = performance.now();
    try {
      for (let li = 0; li < c.nLayer; li++) this.#layer(li, model.layers[li], m, segs);
    } catch (e) {
      this.#ex?.abandonPrefetch(model.path);
      throw e;
    }
    // decode steps tell the prefetch controller what prefetching is worth here
    this.#ex?.src.prefetch.record(m, (performance.now() - t0) / 1000, m === segs.length);
    const nw = want.length;
    if (nw === 0) return;
    // final norm on the rows wanted, gathered into h (nw, E), then one output product
    for (let i = 0; i < nw; i++) {
      s.spool_rmsnorm(
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
      this.#matmul(model.output, B.h.ptr, 1, B.logits.ptr);
      emit(0, B.logits.f32.subarray(0, V));
      return;
    }
    if (!this.#logitsMany || this.#logitsMany.byteLength < nw * V * 4) {
      this.#logitsMany?.free();
      this.#logitsMany = new NativeBuffer(nw * V * 4);
    }
    const lm = this.#logitsMany;
    this.#matmul(model.output, B.h.ptr, nw, lm.ptr);
    for (let i = 0; i < nw; i++) emit(i, lm.f32.subarray(i * V, (i + 1) * V));
  }

  #layer(li: number, L: LayerWeights, m: number, segs: readonly Segment[]): void {
    const c = this.model.config;
    const s = native().sym;
    const B = this.#buf;
    const E = c.nEmbd;
    const hd = c.headDim;
    const nq = c.nHead * hd, nk = c.nHeadKv * hd, nv = c.nHeadKv * c.headDimV;
    // ---- attention
    s.spool_rmsnorm(B.x.ptr, L.attnNorm.ptr, B.h.ptr, m, E, c.rmsEps);
    this.#matmul(L.q, B.h.ptr, m, B.q.ptr);
    this.#matmul(L.k, B.h.ptr, m, B.k.ptr);
    this.#matmul(L.v, B.h.ptr, m, B.v.ptr);
    if (L.qBias) addBias(B.q.f32, L.qBias, m);
    if (L.kBias) addBias(B.k.f32, L.kBias, m);
    if (L.vBias) addBias(B.v.f32, L.vBias, m);
    if (c.qkNorm === "head") {
      s.spool_rmsnorm(B.q.ptr, L.qNorm!.ptr, B.q.ptr, m * c.nHead, hd, c.rmsEps);
      s.spool_rmsnorm(B.k.ptr, L.kNorm!.ptr, B.k.ptr, m * c.nHeadKv, hd, c.rmsEps);
    } else if (c.qkNorm === "full") {
      s.spool_rmsnorm(B.q.ptr, L.qNorm!.ptr, B.q.ptr, m, nq, c.rmsEps);
      s.spool_rmsnorm(B.k.ptr, L.kNorm!.ptr, B.k.ptr, m, nk, c.rmsEps);
    }
    this.#rope(B.q.ptr, m, c.nHead);
    this.#rope(B.k.ptr, m, c.nHeadKv);
    const nAtt = c.nHead * c.headDimV;
    for (const g of segs) {
      const kOff = li * g.s.#kLayer, vOff = li * g.s.#vLayer;
      const kc = g.s.#kAll, vc = g.s.#vAll;
      s.spool_f32_to_f16(B.k.ptrAt(g.row * nk * 4), kc.ptrAt(kOff + g.pos0 * nk * 2), g.n * nk);
      s.spool_f32_to_f16(B.v.ptrAt(g.row * nv * 4), vc.ptrAt(vOff + g.pos0 * nv * 2), g.n * nv);
      const st = s.spool_attention(
        this.model.pool,
        B.q.ptrAt(g.row * nq * 4),
        kc.ptrAt(kOff),
        vc.ptrAt(vOff),
        B.att.ptrAt(g.row * nAtt * 4),
        g.n,
        c.nHead,
        c.nHeadKv,
        hd,
        g.pos0 + g.n,
        g.pos0,
        1 / Math.sqrt(hd),
        L.window,
        L.sinks ? L.sinks.ptr : null,
        1, // SPOOL_ATTN_GGML: llama.cpp's f16 roundings of q and the probabilities
      );
      if (st !== 0) check(st, "spool_attention", `layer ${li}`);
    }
    this.#matmul(L.o, B.att.ptr, m, B.o.ptr);
    const x = B.x.f32, o = B.o.f32;
    if (L.oBias) addBias(o, L.oBias, m);
    for (let i = 0, n = m * E; i < n; i++) x[i] += o[i];
    // ---- mixture of experts
    s.spool_rmsnorm(B.x.ptr, L.ffnNorm.ptr, B.h.ptr, m, E, c.rmsEps);
    this.#moe(L, li, m);
    const moe = B.moe.f32;
    for (let i = 0, n = m * E; i < n; i++) x[i] += moe[i];
  }

  #rope(x: Ptr, m: number, nHead: number): void {
    const c = this.model.config;
    const r = c.rope;
    const sc = r.scaling;
    let freqScale = 1, extFactor = 0;
    const attnFactor = 1;
    if (sc && sc.factor > 0 && (sc.type === "yarn" || sc.type === "linear")) {
      freqScale = 1 / sc.factor;
      if (sc.type === "yarn") extFactor = 1;
    }
    const st = native().sym.spool_rope(
      x,
      this.#pos.ptr,
      m,
      nHead,
      c.headDim,
      r.dim,
      r.type === "neox" ? ROPE_NEOX : ROPE_NORMAL,
      r.freqBase,
      freqScale,
      extFactor,
      attnFactor,
      32,
      1,
      sc?.origCtx || c.nCtxTrain,
      null,
    );
    if (st !== 0) check(st, "spool_rope");
  }

  /**
   * B.moe (m, E) = Σ_k w_k · expert_k(B.h) (+ the shared expert). The routed experts are one
   * spool_moe_ffn call: it groups the chunk's (token, slot) pairs by expert, reads each routed
   * expert once, and sums the slots in order k = 0..K-1 as ggml does.
   */
  #moe(L: LayerWeights, li: number, m: number): void {
    const c = this.model.config;
    const s = native().sym;
    const B = this.#buf;
    const E = c.nEmbd, K = c.nExpertUsed;
    const routing = this.model.arch.routing;
    this.#matmul(L.router, B.h.ptr, m, B.router.ptr);
    if (L.routerBias) addBias(B.router.f32, L.routerBias, m);
    const gating = routing.order === "topk_softmax" ? GATE_SOFTMAX_TOPK : GATE_SOFTMAX;
    const st = s.spool_topk_route(
      B.router.ptr,
      null,
      m,
      c.nExpert,
      K,
      gating,
      routing.renormalize ? 1 : 0,
      1,
      B.ids.ptr,
      B.wts.ptr,
    );
    if (st !== 0) check(st, "spool_topk_route");
    this.model.profileRecorder?.observe(li, B.ids.i32, m * K, K);
    // routed experts, one native call: (m, E) = Σ_k w_k · down(act(gate(h), up(h)))
    if (this.#ex) this.#moeCached(L, li, m);
    else {
      const t = [L.gateExps.table.ptr, L.upExps.table.ptr, L.downExps.table.ptr] as const;
      this.#moeFfn(L, 0, m, t[0], t[1], t[2]);
    }
    const out = B.moe.f32;
    const h = B.h.f32, d = B.d.f32;
    if (L.shared) {
      const sh = L.shared;
      const fs = c.nFfShexp;
      this.#matmul(sh.gate, B.h.ptr, m, B.g.ptr);
      this.#matmul(sh.up, B.h.ptr, m, B.u.ptr);
      s.spool_swiglu(B.g.ptr, B.u.ptr, B.g.ptr, m * fs);
      this.#matmul(sh.down, B.g.ptr, m, B.d.ptr);
      const gi = sh.gateInp.data;
      for (let t = 0; t < m; t++) {
        let dot = 0;
        for (let i = 0; i < E; i++) dot += gi[i] * h[t * E + i];
        const gate = 1 / (1 + Math.exp(-dot));
        for (let i = 0; i < E; i++) out[t * E + i] += gate * d[t * E + i];
      }
    }
  }

  /**
   * The routed experts from the cache. Tokens are taken in groups whose distinct experts fit
   * the slots that are not pinned (all m tokens at once unless the cache is tiny); each
   * token's output depends on its own slots only, so grouping changes no result. The first
   * group settles the prefetch of this layer and then starts the next layer's.
   */
  #moeCached(L: LayerWeights, li: number, m: number): void {
    const ex = this.#ex!;
    const c = this.model.config;
    const K = c.nExpertUsed;
    const ids = this.#buf.ids.i32;
    const cache = ex.src.cache;
    const cap = Math.max(K, cache.slots - cache.pinnedCount - ex.prefetchHeld(li));
    ex.scorePrediction(li, ids, m * K);
    for (let t0 = 0; t0 < m;) {
      const t1 = ex.groupEnd(ids, t0, m, K, cap);
      ex.load(L, li, ids.subarray(t0 * K, t1 * K), (t1 - t0) * K, this.model.path);
      try {
        if (t0 === 0 && t1 === m && ex.src.prefetch.active && li + 1 < c.nLayer) {
          this.#prefetch(li + 1, m);
        }
        this.#moeFfn(L, t0, t1 - t0, ex.gate.ptr, ex.up.ptr, ex.down.ptr);
      } finally {
        ex.release();
      }
      t0 = t1;
    }
  }

  /**
   * Predict layer `next`'s experts from the residual stream as it stands (after this
   * layer's attention): its ffn norm and router applied now, top-k per token; start reading
   * the predicted experts that are not resident.
   */
  #prefetch(next: number, m: number): void {
    const c = this.model.config;
    const s = native().sym;
    const B = this.#buf;
    const N = this.model.layers[next];
    s.spool_rmsnorm(B.x.ptr, N.ffnNorm.ptr, B.ph.ptr, m, c.nEmbd, c.rmsEps);
    this.#matmul(N.router, B.ph.ptr, m, B.prouter.ptr);
    if (N.routerBias) addBias(B.prouter.f32, N.routerBias, m);
    const routing = this.model.arch.routing;
    const st = s.spool_topk_route(
      B.prouter.ptr,
      null,
      m,
      c.nExpert,
      c.nExpertUsed,
      routing.order === "topk_softmax" ? GATE_SOFTMAX_TOPK : GATE_SOFTMAX,
      routing.renormalize ? 1 : 0,
      1,
      B.pids.ptr,
      B.pwts.ptr,
    );
    if (st !== 0) check(st, "spool_topk_route");
    this.#ex!.prefetch(N, next, B.pids.i32, m * c.nExpertUsed);
  }

  /** spool_moe_ffn for tokens [t0, t0+m) of B.h with the given address tables into B.moe. */
  #moeFfn(L: LayerWeights, t0: number, m: number, gate: Ptr, up: Ptr, down: Ptr): void {
    const c = this.model.config;
    const B = this.#buf;
    const K = c.nExpertUsed;
    const st = native().sym.spool_moe_ffn(
      this.model.pool,
      B.h.ptrAt(t0 * c.nEmbd * 4),
      m,
      c.nEmbd,
      c.nFfExp,
      c.nExpert,
      K,
      B.ids.ptrAt(t0 * K * 4),
      B.wts.ptrAt(t0 * K * 4),
      gate,
      L.gateExps.type,
      up,
      L.upExps.type,
      down,
      L.downExps.type,
      L.gateExpsBias ? L.gateExpsBias.ptr : null,
      L.upExpsBias ? L.upExpsBias.ptr : null,
      L.downExpsBias ? L.downExpsBias.ptr : null,
      c.act === "swiglu_oai" ? ACT_SWIGLU_OAI : ACT_SWIGLU,
      B.moe.ptrAt(t0 * c.nEmbd * 4),
      this.#scratch.ptr,
    );
    if (st !== 0) check(st, "spool_moe_ffn", L.gateExps.name);
  }
}

const EINVAL = 22;
const PARTS = [Part.GATE, Part.UP, Part.DOWN] as const;

/**
 * A session's side of the expert cache (DESIGN.md §4): per MoE layer of a step, look up the
 * routed experts, read the misses through the pager in one ticket, and fill per-session
 * address tables (nExpert u64 per matrix) with the slots' data addresses for spool_moe_ffn.
 * Entries of experts not routed this step are 0 (the kernel only reads routed ones).
 *
 * Prefetch: while layer l computes, the experts predicted for layer l+1 are read in one
 * ticket into slots this object holds references on, so nothing evicts them in flight.
 * Layer l+1's load waits for that ticket (the wait is the stall), marks the slots loaded,
 * scores the prediction and gives the references back; wrong guesses stay resident as
 * ordinary cache entries.
 */
class CachedExperts {
  readonly src: ExpertSource;
  readonly gate: NativeBuffer;
  readonly up: NativeBuffer;
  readonly down: NativeBuffer;
  /** u32 views (lo, hi pairs) of the three tables: no BigInt per write. */
  readonly #words: Uint32Array[];
  /** Slots referenced by the current layer, and their keys' experts. */
  readonly #slots: Int32Array;
  readonly #experts: Int32Array;
  #n = 0;
  /** Fresh slots of the current layer (read this step) and their experts. */
  readonly #fresh: Int32Array;
  readonly #freshExpert: Int32Array;
  /** Per expert: the stamp of the last layer step that saw it (deduplication). */
  readonly #seen: Uint32Array;
  #stamp = 0;
  /** The prefetch in flight: its layer (-1: none), ticket, slots and predicted keys. */
  #pfLayer = -1;
  #pfTicket = 0;
  #pfN = 0;
  #pfBytes = 0;
  readonly #pfSlots: Int32Array;
  readonly #pfExperts: Int32Array;
  readonly #pfKeys: Int32Array;
  #pfKeyN = 0;

  constructor(src: ExpertSource, nExpert: number, maxRouted: number) {
    this.src = src;
    this.gate = new NativeBuffer(nExpert * 8);
    this.up = new NativeBuffer(nExpert * 8);
    this.down = new NativeBuffer(nExpert * 8);
    this.#words = [this.gate, this.up, this.down].map((b) =>
      new Uint32Array(b.u8.buffer, b.u8.byteOffset, nExpert * 2)
    );
    const n = Math.min(maxRouted, nExpert);
    this.#slots = new Int32Array(n);
    this.#experts = new Int32Array(n);
    this.#fresh = new Int32Array(n);
    this.#freshExpert = new Int32Array(n);
    this.#seen = new Uint32Array(nExpert);
    this.#pfSlots = new Int32Array(n);
    this.#pfExperts = new Int32Array(n);
    this.#pfKeys = new Int32Array(n);
  }

  #nextStamp(): number {
    if (++this.#stamp === 0xffffffff) {
      this.#seen.fill(0);
      this.#stamp = 1;
    }
    return this.#stamp;
  }

  /** Slots the prefetch holds that layer `li`'s load will not reuse as its own references. */
  prefetchHeld(li: number): number {
    return this.#pfLayer >= 0 && this.#pfLayer !== li ? this.#pfN : 0;
  }

  /**
   * The end of the token group starting at `t0`: as many tokens as keep the group's
   * distinct experts within `cap` slots (at least one token).
   */
  groupEnd(ids: Int32Array, t0: number, m: number, K: number, cap: number): number {
    const stamp = this.#nextStamp();
    let distinct = 0, t = t0;
    for (; t < m; t++) {
      let add = 0;
      for (let j = 0; j < K; j++) {
        const e = ids[t * K + j];
        if (e >= 0 && this.#seen[e] !== stamp) add++;
      }
      if (t > t0 && distinct + add > cap) break;
      for (let j = 0; j < K; j++) {
        const e = ids[t * K + j];
        if (e >= 0 && this.#seen[e] !== stamp) this.#seen[e] = stamp;
      }
      distinct += add;
    }
    return t;
  }

  /** Score the prefetch made for layer `li` against the experts it actually routed to. */
  scorePrediction(li: number, ids: Int32Array, count: number): void {
    if (this.#pfLayer !== li || this.#pfKeyN === 0) return;
    const cache = this.src.cache;
    const base = cache.key(li, 0);
    const actual = this.#fresh.length >= count ? this.#fresh : new Int32Array(count);
    for (let i = 0; i < count; i++) actual[i] = ids[i] < 0 ? -1 : base + ids[i];
    cache.recordPrediction(this.#pfKeys.subarray(0, this.#pfKeyN), actual, count);
  }

  /**
   * Start reading the experts `ids[0..count)` predicts for layer `li` that are neither
   * resident nor loading, as one ticket. Takes at most the slots that leave room for one
   * more token's experts beyond those referenced now; stops quietly when the cache is full.
   */
  prefetch(L: LayerWeights, li: number, ids: Int32Array, count: number): void {
    if (this.#pfLayer >= 0) return; // one prefetch in flight per session
    const cache = this.src.cache;
    const stamp = this.#nextStamp();
    // leave room for the experts of the next load that the guess misses
    const reserve = Math.min(count, this.#slots.length);
    let room = cache.slots - cache.pinnedCount - cache.referencedCount - reserve;
    let n = 0, nk = 0;
    for (let i = 0; i < count && nk < this.#pfKeys.length; i++) {
      const e = ids[i];
      if (e < 0 || this.#seen[e] === stamp) continue;
      this.#seen[e] = stamp;
      const key = cache.key(li, e);
      this.#pfKeys[nk++] = key;
      if (cache.peek(key) >= 0 || room <= 0) continue;
      try {
        this.#pfSlots[n] = cache.acquire(key).slot;
      } catch (err) {
        if (err instanceof CacheFullError) {
          room = 0;
          continue;
        }
        throw err;
      }
      this.#pfExperts[n++] = e;
      room--;
    }
    this.#pfKeyN = nk;
    this.#pfLayer = li;
    this.#pfN = n;
    this.#pfTicket = 0;
    this.#pfBytes = 0;
    if (n === 0) return;
    this.#pfBytes = this.#stage(L, this.#pfSlots, this.#pfExperts, n);
    this.#pfTicket = this.src.pager.flush();
  }

  /**
   * Wait for the prefetch of layer `li` (if that is the one in flight), mark its slots
   * loaded and give back its references. A failed prefetch discards its slots: the load
   * that follows reads them again, and reports the error with its file and offset if it
   * persists.
   */
  #settle(li: number, path: string): void {
    if (this.#pfLayer !== li) return;
    const cache = this.src.cache, n = this.#pfN;
    let ok = true;
    if (this.#pfTicket > 0) {
      const t0 = performance.now();
      try {
        this.src.pager.wait(this.#pfTicket, path);
      } catch {
        ok = false;
      }
      cache.recordStall((performance.now() - t0) / 1000);
      if (ok) this.#recordRead(this.#pfBytes);
    }
    for (let i = 0; i < n; i++) {
      const slot = this.#pfSlots[i];
      if (ok) {
        cache.markLoaded(slot);
        cache.release(slot);
      } else cache.discard(slot);
    }
    this.#pfLayer = -1;
    this.#pfN = 0;
    this.#pfKeyN = 0;
    this.#pfTicket = 0;
  }

  /** After an error mid-step: settle (or drop) whatever prefetch is in flight. */
  abandonPrefetch(path: string): void {
    if (this.#pfLayer >= 0) this.#settle(this.#pfLayer, path);
  }

  /**
   * Make the experts in `ids[0..count)` of layer `li` resident and referenced, and point the
   * tables at them. Throws CacheFullError (the step needs more experts than the cache
   * holds) or IOError (a read failed); either way nothing stays referenced.
   */
  load(L: LayerWeights, li: number, ids: Int32Array, count: number, path: string): void {
    this.#settle(li, path);
    const cache = this.src.cache;
    const stamp = this.#nextStamp();
    this.#n = 0;
    let nFresh = 0;
    try {
      for (let i = 0; i < count; i++) {
        const e = ids[i];
        if (e < 0 || this.#seen[e] === stamp) continue;
        this.#seen[e] = stamp;
        const key = cache.key(li, e);
        let slot = cache.lookup(key);
        if (slot < 0) {
          slot = cache.acquire(key).slot;
          this.#fresh[nFresh] = slot;
          this.#freshExpert[nFresh++] = e;
        } else if (!cache.isLoaded(slot)) {
          // loading in another session's prefetch or read: this thread is the only one
          // that waits, so only a failed read can leave it so
          throw new Error(`${cache.describe(key)} is still loading in slot ${slot}`);
        }
        this.#slots[this.#n] = slot;
        this.#experts[this.#n++] = e;
      }
      if (nFresh > 0) this.#read(L, nFresh, path);
    } catch (err) {
      // nothing of this step stays referenced; unread slots go back to the free list
      for (let i = 0; i < nFresh; i++) {
        if (cache.keyOf(this.#fresh[i]) >= 0 && !cache.isLoaded(this.#fresh[i])) {
          cache.discard(this.#fresh[i]);
        }
      }
      for (let i = 0; i < this.#n; i++) {
        const sl = this.#slots[i];
        if (cache.keyOf(sl) >= 0 && cache.refCount(sl) > 0) cache.release(sl);
      }
      this.#n = 0;
      throw err;
    }
    const base = this.src.arenaAddress;
    const w = this.#words;
    for (let i = 0; i < this.#n; i++) {
      const slot = this.#slots[i], e = this.#experts[i];
      for (let p = 0; p < 3; p++) {
        const a = base + cache.dataOffset(slot, PARTS[p]);
        const words = w[p];
        words[2 * e] = a % 0x100000000;
        words[2 * e + 1] = Math.floor(a / 0x100000000);
      }
    }
  }

  /** Stage the three parts of `n` slots' experts as pager reads; returns the bytes. */
  #stage(L: LayerWeights, slots: Int32Array, experts: Int32Array, n: number): number {
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes += stageExpertRead(this.src, L, slots[i], experts[i]);
    return bytes;
  }

  /** Report `bytes` read, with the pager's in-flight wall time since the last report. */
  #recordRead(bytes: number): void {
    const src = this.src;
    const wall = src.pager.stats().wallNs;
    const secs = Math.max(0, wall - src.wallMark) / 1e9;
    src.wallMark = wall;
    src.cache.recordRead(bytes, secs);
  }

  /** Read the fresh slots' three parts in one ticket; wait; mark them loaded. */
  #read(L: LayerWeights, nFresh: number, path: string): void {
    const src = this.src, cache = src.cache, pager = src.pager;
    const t0 = performance.now();
    let bytes = this.#stage(L, this.#fresh, this.#freshExpert, nFresh);
    try {
      pager.wait(pager.flush(), path);
    } catch (e) {
      pager.discard();
      // a file system that opens O_DIRECT but refuses its reads: go buffered, once
      if (!(src.direct && e instanceof IOError && e.errno === EINVAL)) throw e;
      const fd = openFile(path, false);
      try {
        closeFile(src.fd, path);
      } catch { /* read-only fd */ }
      src.fd = fd;
      src.direct = false;
      bytes = this.#stage(L, this.#fresh, this.#freshExpert, nFresh);
      pager.wait(pager.flush(), path);
    }
    for (let i = 0; i < nFresh; i++) cache.markLoaded(this.#fresh[i]);
    this.#recordRead(bytes);
    cache.recordStall((performance.now() - t0) / 1000);
  }

  /** Give back the current layer's references and clear its table entries. */
  release(): void {
    const cache = this.src.cache;
    const w = this.#words;
    for (let i = 0; i < this.#n; i++) {
      cache.release(this.#slots[i]);
      const e = this.#experts[i];
      for (let p = 0; p < 3; p++) w[p][2 * e] = w[p][2 * e + 1] = 0;
    }
    this.#n = 0;
  }

  free(path: string): void {
    this.abandonPrefetch(path);
    this.gate.free();
    this.up.free();
    this.down.free();
  }
}

/** x (m, n) += bias (n) on every row. */
function addBias(x: Float32Array, bias: Vec, m: number): void {
  const b = bias.data;
  const n = b.length;
  for (let r = 0; r < m; r++) {
    const o = r * n;
    for (let i = 0; i < n; i++) x[o + i] += b[i];
  }
}

/** The config type, re-exported for session users. */
export type { ModelConfig };
