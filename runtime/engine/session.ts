/**
 * A session: what one conversation owns — its tokens and KV cache ({@link KVCache}) — and
 * the entry points that run forward steps over it: {@link Session.eval} (one sequence,
 * prefill in chunks) and {@link Session.evalMany} (one step over many sequences, so an
 * expert routed to by several of them is read once). The math of a step is the
 * architecture's (runtime/models/), run by a {@link StepRunner}.
 */
import { KVCache } from "./kv.ts";
import type { Model } from "./model.ts";
import { Checkpoints, DEFAULT_CHECKPOINTS, RecurrentState } from "./recurrent.ts";
import { type Segment, StepRunner } from "./step.ts";
import { kvLayers, kvLayout, type ModelConfig, recurrentLayout } from "../models/config.ts";

/** Options of a {@link Session}. */
export interface SessionOptions {
  /** Context length (KV cache rows); default min(model training context, 4096). */
  nCtx?: number;
  /** Most tokens per forward step (prefill chunk); default 64. */
  batch?: number;
  /**
   * Recurrent-state checkpoints the session may keep (hybrid models only; default 4; 0: no
   * prefix reuse, every prompt is read from the start). See {@link Session.checkpoint}.
   */
  checkpoints?: number;
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

/** One sequence's state over a {@link Model}. */
export class Session {
  readonly model: Model;
  readonly nCtx: number;
  readonly batch: number;
  /** Tokens in the KV cache, in order. */
  readonly tokens: number[] = [];
  /** K and V of every attention layer. */
  readonly kv: KVCache;
  /** The recurrent layers' state (hybrid models), else null. */
  readonly rec: RecurrentState | null;
  /** Copies of `rec` at chosen positions, for prefix reuse (hybrid models), else null. */
  readonly checkpoints: Checkpoints | null;
  /** The step buffers, made on first use: a session whose steps run in another session's
   * buffers (evalMany) never pays for them. */
  #runner: StepRunner | null = null;
  #closed = false;
  /** The last logits of a reusing evalMany. */
  #logits: Float32Array | null = null;

  #keepLogits(l: Float32Array): Float32Array {
    if (this.#logits?.length !== l.length) this.#logits = new Float32Array(l.length);
    this.#logits.set(l);
    return this.#logits;
  }

  constructor(model: Model, opts: SessionOptions = {}) {
    this.model = model;
    const c = model.config;
    this.nCtx = Math.max(1, opts.nCtx ?? Math.min(c.nCtxTrain || 4096, 4096));
    this.batch = Math.max(1, opts.batch ?? 64);
    const spec = model.arch;
    this.kv = new KVCache(kvLayout(spec, c), c.nLayer, this.nCtx, kvLayers(c));
    const r = recurrentLayout(c);
    this.rec = r ? new RecurrentState(r) : null;
    this.checkpoints = this.rec
      ? new Checkpoints((opts.checkpoints ?? DEFAULT_CHECKPOINTS) * this.rec.byteLength)
      : null;
  }

  #step(): StepRunner {
    return this.#runner ??= new StepRunner(this.model, this.batch);
  }

  /** Tokens in the cache. */
  get position(): number {
    return this.tokens.length;
  }

  /**
   * Drop cached tokens after `n` (keep the first n), e.g. to reuse a common prefix; returns
   * the position kept. A KV cache keeps exactly n; a recurrent state cannot be cut back, so
   * a hybrid model resumes from its latest checkpoint within the first n tokens (0 when
   * there is none): the caller evaluates again from the returned position.
   */
  truncate(n: number): number {
    n = Math.max(0, n);
    if (n >= this.tokens.length) return this.tokens.length;
    if (this.rec) n = this.checkpoints!.restore(this.tokens, n, this.rec);
    this.tokens.length = n;
    return n;
  }

  /**
   * Keep a copy of the recurrent state as it stands after the current tokens, so that a
   * later request extending them resumes here ({@link Session.truncate}). No-op for models
   * without recurrent layers.
   */
  checkpoint(): void {
    if (this.rec && this.tokens.length > 0) this.checkpoints!.save(this.tokens, this.rec);
  }

  /**
   * Become a copy of `src` (a session of the same model): its tokens, their KV rows and its
   * recurrent state. A fork: samples of one prompt continue from one prefill.
   * @throws ContextOverflowError if `src`'s tokens do not fit this session
   */
  copyFrom(src: Session): void {
    if (this.#closed || src.#closed) throw new Error("Session used after close()");
    if (src.model !== this.model) throw new Error("Session.copyFrom: a session of another model");
    if (src.position > this.nCtx) throw new ContextOverflowError(this.nCtx, src.position);
    this.kv.copyFrom(src.kv, src.position);
    if (this.rec) this.rec.restore(src.rec!.snapshot());
    this.tokens.length = 0;
    for (const t of src.tokens) this.tokens.push(t);
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
      const step = this.#step();
      const seg = { kv: this.kv, rec: this.rec, row: 0, n: m, pos0: this.position };
      step.forward(chunk, [seg], rows, (i, l) => {
        out.set(l, mode === "all" ? (start + rows[i]) * nVocab : 0);
      });
      for (const t of chunk) this.tokens.push(t);
      step.recordTokens(m);
    }
    return out;
  }

  /**
   * One batched step over several sessions of the same model: appends each item's tokens
   * to its session and returns the logits of each item's last token (a copy per item).
   * The rows of all items run through the layers together, so an expert routed to by
   * several sequences is read once for all of them; attention stays per sequence. `scratch`
   * lends its buffers (default: one step session per model, kept for later steps, with room
   * for every row of the step up to 512); steps of more rows than its batch are split into
   * waves.
   * With `reuse`, each item's logits are its session's own buffer instead of a new array:
   * valid until that session's next `evalMany` with `reuse`, and no garbage per step (a
   * server decoding a 150k vocabulary would otherwise drop 600 kB per sequence per token).
   * @throws ContextOverflowError if any item does not fit its session (nothing is evaluated)
   */
  static evalMany(
    items: readonly { session: Session; tokens: ArrayLike<number> }[],
    scratch?: Session,
    opts: { reuse?: boolean } = {},
  ): Float32Array[] {
    if (items.length === 0) return [];
    const model = items[0].session.model;
    let rows = 0;
    for (const it of items) rows += it.tokens.length;
    // room for the whole step (a prompt chunk runs as one wave: under a memory cap every wave
    // reads the experts its tokens route to again)
    const owner = scratch ?? Session.#shared(model, rows);
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
    const owners: Session[] = [];
    const want: number[] = [];
    const wantItem: number[] = [];
    const step = owner.#step();
    const run = () => {
      step.forward(flat, segs, want, (i, logits) => {
        const k = wantItem[i];
        out[k] = opts.reuse ? items[k].session.#keepLogits(logits) : logits.slice();
      });
      for (const [j, g] of segs.entries()) {
        const src = flat.slice(g.row, g.row + g.n);
        for (const t of src) owners[j].tokens.push(t);
      }
      step.recordTokens(flat.length);
      flat.length =
        segs.length =
        owners.length =
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
        segs.push({ kv: s.kv, rec: s.rec, row: flat.length, n: take, pos0: s.position });
        owners.push(s);
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
    this.kv.free();
    this.rec?.free();
    this.checkpoints?.clear();
    this.#runner?.free();
  }
}

/** The config type, re-exported for session users. */
export type { ModelConfig };
