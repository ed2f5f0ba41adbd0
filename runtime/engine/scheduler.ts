/**
 * The server's scheduler: continuous batching of up to `parallel` sequences over one model,
 * a prefix cache across requests, priorities, and cancellation.
 *
 * - **Slots.** The scheduler owns `parallel` {@link Session}s (each its own KV cache). A
 *   session keeps its KV entries after its request ends, so a later request whose prompt
 *   shares a prefix with them (an agent resending the whole history every turn) only
 *   prefills the new tokens. A new request gets the free slot with the longest common token
 *   prefix; ties go to the slot last used by the same affinity key (`x-session-affinity`),
 *   then to the least recently used slot (so other conversations keep their caches longer).
 * - **Steps.** Each step collects, for every active sequence, either its next prompt chunk
 *   (chunked prefill, at most `chunk` tokens, so a long prompt does not stall the others'
 *   decoding for long) or its last sampled token, and calls {@link evalBatch} once. A sequence
 *   whose prompt is fully evaluated samples from the returned logits.
 * - **Queue.** Requests beyond the free slots wait, highest `priority` first, then in arrival
 *   order; a full queue rejects with `queue_full`. Background requests (priority < 0, batch
 *   jobs) never take the last free slot when there are several: it stays for interactive
 *   ones.
 * - **Cancellation.** {@link Scheduler.cancel} ends a queued or running sequence with finish
 *   reason "abort" before its next step; its KV entries stay as a cache.
 * - **Forks.** Requests of one fork group (`params.fork`: n samples of one prompt, OpenAI's
 *   `n`) are admitted together once all have arrived and as many slots are free: the first
 *   (the leader) evaluates the prompt, the others wait; when its prompt is in, its KV (and
 *   recurrent state) is copied into their slots and each samples from the same logits with
 *   its own sampler. The prompt is evaluated once. A group larger than the slots, one whose
 *   members do not all arrive within {@link FORK_WAIT_MS}, or one with a cancelled member
 *   runs as independent requests; followers of a leader that ends before its prompt is in
 *   evaluate the prompt themselves.
 *
 * Text is produced as in {@link generate}: a UTF-8-safe stream decoder, then a stop-string
 * matcher, so no broken character and no part of a stop string is ever emitted.
 *
 * @module
 */
import { TextStreamDecoder } from "../tokenizer/detokenize.ts";
import { evalBatch } from "./batch.ts";
import type { FinishReason } from "./generate.ts";
import { OPENAI_DEFAULTS, Sampler, SamplerScratch, type SamplingParams } from "./sampling.ts";
import type { Session } from "./session.ts";
import { StopMatcher } from "./stop.ts";
import type {
  SchedulerModel,
  SchedulerOptions,
  SchedulerStats,
  SeqConstraint,
  SeqErrorCode,
  SeqEvent,
  SeqParams,
  SeqRequest,
} from "./scheduler_types.ts";

export type * from "./scheduler_types.ts";

/** Prompt tokens between two recurrent-state checkpoints inside a long prompt. */
const CHECKPOINT_EVERY = 2048;
/** Milliseconds a fork group's first request waits for the rest before running alone. */
export const FORK_WAIT_MS = 2000;
interface Slot {
  index: number;
  session: Session;
  busy: boolean;
  affinity?: string;
  lastUsed: number;
}

interface Seq {
  req: SeqRequest;
  slot: Slot;
  pending: number[];
  next: number;
  history: number[];
  sampler: Sampler;
  decoder: TextStreamDecoder;
  stops: StopMatcher;
  constraint: SeqConstraint | null;
  n: number;
  max: number;
  cached: number;
  queuedAt: number;
  admittedAt: number;
  firstTokenAt: number;
  cancelled: boolean;
  /** A fork follower waiting for its leader's prompt (set until the fork). */
  leader?: Seq;
}

interface Waiting {
  req: SeqRequest;
  order: number;
  at: number;
}

/** Length of the common prefix of two token arrays. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * Resolves on the next macrotask (lets messages in) without timer clamping. Both ports are
 * closed: under Deno a port left open keeps about 5 kB of native memory for good, and this
 * runs once per scheduler step (it was the server's memory leak).
 */
export function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      ch.port2.close();
      resolve();
    };
    ch.port2.postMessage(null);
  });
}

/** Continuous batching over a fixed set of sessions; see the module doc. */
export class Scheduler {
  readonly parallel: number;
  readonly nCtx: number;
  readonly chunk: number;
  /** Prompt tokens per sequence per step when no sequence is decoding. */
  readonly chunkAlone: number;
  readonly maxQueue: number;
  readonly #model: SchedulerModel;
  readonly #opts: SchedulerOptions;
  readonly #slots: Slot[] = [];
  readonly #queue: Waiting[] = [];
  readonly #active: Seq[] = [];
  /** Working arrays every request's sampler shares (they sample one after another). */
  readonly #scratch = new SamplerScratch();
  #order = 0;
  #clock = 0;
  /** Fork groups that run as independent requests (a member cancelled or late). */
  readonly #broken = new Set<string>();
  #running = false;
  #closed = false;
  #stats = {
    admitted: 0,
    promptTokensEvaluated: 0,
    promptTokensCached: 0,
    tokensGenerated: 0,
    steps: 0,
    stepSequences: 0,
    stepMs: 0,
  };

  /** Creates `parallel` sessions of `nCtx` tokens on `model`. */
  constructor(model: SchedulerModel, opts: SchedulerOptions) {
    this.#model = model;
    this.#opts = opts;
    this.parallel = Math.max(1, opts.parallel ?? 1);
    this.nCtx = opts.nCtx;
    this.chunk = Math.max(1, opts.chunk ?? 128);
    this.chunkAlone = Math.max(this.chunk, opts.chunkAlone ?? this.chunk);
    this.maxQueue = Math.max(0, opts.maxQueue ?? 64);
    for (let i = 0; i < this.parallel; i++) {
      this.#slots.push({
        index: i,
        session: model.createSession({ nCtx: opts.nCtx, checkpoints: opts.checkpoints }),
        busy: false,
        lastUsed: 0,
      });
    }
  }

  /** Counters and current load. */
  stats(): SchedulerStats {
    return { ...this.#stats, queued: this.#queue.length, active: this.#active.length };
  }

  /** The tokens cached in each slot (for tests and diagnostics). */
  slotTokens(): number[][] {
    return this.#slots.map((s) => [...s.session.tokens]);
  }

  /** Queue a request; events go to `onEvent`. */
  submit(req: SeqRequest): void {
    if (this.#closed) {
      this.#emit({ type: "error", id: req.id, code: "internal", message: "scheduler closed" });
      return;
    }
    if (req.prompt.length === 0) {
      this.#emit({ type: "error", id: req.id, code: "bad_request", message: "empty prompt" });
      return;
    }
    if (req.prompt.length > this.nCtx) {
      this.#emit({
        type: "error",
        id: req.id,
        code: "context_overflow",
        message: `The prompt has ${req.prompt.length} tokens, more than the context of ` +
          `${this.nCtx} tokens`,
      });
      return;
    }
    if (this.#queue.length >= this.maxQueue && !this.#slots.some((s) => !s.busy)) {
      this.#emit({
        type: "error",
        id: req.id,
        code: "queue_full",
        message: `The queue is full (${this.maxQueue} waiting requests)`,
      });
      return;
    }
    this.#queue.push({ req, order: this.#order++, at: performance.now() });
    this.#queue.sort((a, b) =>
      (b.req.params.priority ?? 0) - (a.req.params.priority ?? 0) || a.order - b.order
    );
    this.#kick();
  }

  /** End request `id` (queued or running) with finish reason "abort". */
  cancel(id: string): void {
    const qi = this.#queue.findIndex((w) => w.req.id === id);
    if (qi >= 0) {
      const [w] = this.#queue.splice(qi, 1);
      if (w.req.params.fork) this.#broken.add(w.req.params.fork.group);
      this.#emit({
        type: "done",
        id,
        finishReason: "abort",
        usage: {
          promptTokens: w.req.prompt.length,
          cachedTokens: 0,
          completionTokens: 0,
          prefillMs: 0,
          decodeMs: 0,
          queueMs: performance.now() - w.at,
        },
      });
      return;
    }
    const s = this.#active.find((q) => q.req.id === id);
    if (s) s.cancelled = true;
  }

  /** Resolves when nothing is queued or running. */
  async idle(): Promise<void> {
    while (this.#running) await nextMacrotask();
  }

  /** Abort everything and free the sessions (once the current step ends). */
  close(): void {
    this.#closed = true;
    for (const w of this.#queue.splice(0)) {
      this.#emit({ type: "error", id: w.req.id, code: "internal", message: "shutting down" });
    }
    for (const s of this.#active) s.cancelled = true;
    if (!this.#running) this.#free();
  }

  /** {@link close}, then wait until the sessions are freed. */
  async shutdown(): Promise<void> {
    this.close();
    await this.idle();
  }

  #free(): void {
    for (const s of this.#slots) s.session.close();
    this.#slots.length = 0;
  }

  #emit(e: SeqEvent): void {
    try {
      this.#opts.onEvent(e);
    } catch (err) {
      console.error("scheduler: onEvent threw", err);
    }
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    (async () => {
      try {
        while (this.#queue.length > 0 || this.#active.length > 0) {
          this.step();
          await nextMacrotask();
        }
      } finally {
        this.#running = false;
        if (this.#closed) this.#free();
      }
    })();
  }

  /** Pick the free slot for `prompt` (longest common prefix, then affinity, then LRU). */
  #pickSlot(req: SeqRequest): { slot: Slot; lcp: number } | undefined {
    let best: Slot | undefined;
    let bestLcp = -1;
    let bestAff = false;
    for (const s of this.#slots) {
      if (s.busy) continue;
      const lcp = commonPrefix(s.session.tokens, req.prompt);
      const aff = req.params.affinity !== undefined && s.affinity === req.params.affinity;
      const better = !best || lcp > bestLcp ||
        (lcp === bestLcp && aff && !bestAff) ||
        (lcp === bestLcp && aff === bestAff && s.lastUsed < best.lastUsed);
      if (better) {
        best = s;
        bestLcp = lcp;
        bestAff = aff;
      }
    }
    return best ? { slot: best, lcp: bestLcp } : undefined;
  }

  #admit(): void {
    // background work (priority < 0: batch jobs) leaves one slot free for interactive
    // requests when there are several, so a chat never waits for a whole batch sequence
    const reserve = this.#slots.length > 1 ? 1 : 0;
    while (this.#queue.length > 0) {
      const free = this.#slots.reduce((n, s) => n + (s.busy ? 0 : 1), 0);
      if (free === 0) break;
      const head = this.#queue[0];
      if ((head.req.params.priority ?? 0) < 0 && free <= reserve) break;
      const group = this.#groupOf(head, free);
      if (group === "wait") break;
      const [first, ...rest] = group ?? [head];
      for (const w of [first, ...rest]) this.#queue.splice(this.#queue.indexOf(w), 1);
      const f = first.req.params.fork;
      if (f && !this.#queue.some((q) => q.req.params.fork?.group === f.group)) {
        this.#broken.delete(f.group);
      }
      const { slot, lcp } = this.#pickSlot(first.req)!;
      const leader = this.#start(first, slot, lcp);
      for (const w of rest) this.#start(w, this.#pickSlot(w.req)!.slot, 0, leader ?? undefined);
    }
  }

  /**
   * The queued members of `w`'s fork group when they can start together, "wait" while they
   * cannot yet, or null to start `w` alone (see the module doc).
   */
  #groupOf(w: Waiting, free: number): Waiting[] | "wait" | null {
    const f = w.req.params.fork;
    if (!f || f.size <= 1 || f.size > this.#slots.length || this.#broken.has(f.group)) return null;
    const members = this.#queue.filter((q) => q.req.params.fork?.group === f.group);
    const n = w.req.prompt.length;
    const same = members.every((m) =>
      m.req.prompt.length === n && commonPrefix(m.req.prompt, w.req.prompt) === n
    );
    if (!same || (members.length < f.size && performance.now() - w.at >= FORK_WAIT_MS)) {
      this.#broken.add(f.group);
      return null;
    }
    return members.length < f.size || free < f.size ? "wait" : members;
  }

  /**
   * Start `w` in `slot`, reusing `lcp` cached tokens, or as a fork follower of `leader`
   * (its prompt copied from the leader's slot once evaluated). Null if it was refused.
   */
  #start(w: Waiting, slot: Slot, lcp: number, leader?: Seq): Seq | null {
    const { req } = w;
    let constraint: SeqConstraint | null = null;
    let sampler: Sampler;
    try {
      sampler = new Sampler({ ...OPENAI_DEFAULTS, ...definedOnly(req.params) }, this.#scratch);
      if (req.params.constraint !== undefined) {
        if (!this.#opts.compileConstraint || !this.#opts.sampleConstrained) {
          throw new Error("constrained decoding is not available in this build");
        }
        constraint = this.#opts.compileConstraint(req.params.constraint);
      }
    } catch (e) {
      this.#emit({ type: "error", id: req.id, code: "bad_request", message: (e as Error).message });
      return null;
    }
    // the last prompt token always runs again, for its logits; a recurrent state resumes
    // from its latest checkpoint inside the common prefix; a follower's prompt is copied
    const keep = req.params.cachePrompt === false ? 0 : Math.min(lcp, req.prompt.length - 1);
    const p = leader ? req.prompt.length : slot.session.truncate(keep);
    slot.busy = true;
    slot.affinity = req.params.affinity ?? slot.affinity;
    slot.lastUsed = ++this.#clock;
    const seq: Seq = {
      req,
      slot,
      pending: leader ? [] : req.prompt.slice(p),
      next: -1,
      history: [...req.prompt],
      sampler,
      decoder: new TextStreamDecoder(this.#model.tokenizer),
      stops: new StopMatcher(req.params.stop ?? []),
      constraint,
      n: 0,
      max: req.params.maxTokens ?? Infinity,
      cached: p,
      queuedAt: w.at,
      admittedAt: performance.now(),
      firstTokenAt: 0,
      cancelled: false,
      leader,
    };
    this.#stats.admitted++;
    this.#stats.promptTokensCached += p;
    this.#active.push(seq);
    this.#emit({
      type: "started",
      id: req.id,
      slot: slot.index,
      cachedTokens: p,
      promptTokens: req.prompt.length,
    });
    if (seq.max <= 0) this.#finish(seq, "length");
    return seq;
  }

  /** A follower whose leader ended before its prompt was in evaluates the prompt itself. */
  #unfork(s: Seq): void {
    s.leader = undefined;
    const session = s.slot.session;
    const lcp = commonPrefix(session.tokens, s.req.prompt);
    const p = session.truncate(Math.min(lcp, s.req.prompt.length - 1));
    this.#stats.promptTokensCached += p - s.cached;
    s.cached = p;
    s.pending = s.req.prompt.slice(p);
  }

  /** `leader`'s prompt is in: copy it into its followers' slots; each samples `logits`. */
  #fork(leader: Seq, logits: Float32Array): void {
    for (const f of this.#active.filter((q) => q.leader === leader)) {
      f.leader = undefined;
      try {
        f.slot.session.copyFrom(leader.slot.session);
        f.slot.session.checkpoint();
        this.#sample(f, logits.slice());
      } catch (e) {
        this.#fail(f, e);
      }
    }
  }

  /** One scheduling step: admit, batch every active sequence once, sample. */
  step(): void {
    for (const s of [...this.#active]) if (s.cancelled) this.#finish(s, "abort");
    this.#admit();
    for (const s of this.#active) if (s.leader && !this.#active.includes(s.leader)) this.#unfork(s);
    // fork followers wait for their leader's prompt
    const seqs = this.#active.filter((s) => !s.leader);
    if (seqs.length === 0) return;
    const take = seqs.some((s) => s.pending.length === 0) ? this.chunk : this.chunkAlone;
    const items = seqs.map((s) => {
      if (s.pending.length > 0) {
        const tokens = s.pending.splice(0, take);
        this.#stats.promptTokensEvaluated += tokens.length;
        return { session: s.slot.session, tokens };
      }
      return { session: s.slot.session, tokens: [s.next] };
    });
    const t0 = performance.now();
    let logits: Float32Array[];
    try {
      // each session's own buffer: consumed by the sampling below, before its next step
      logits = evalBatch(items, { reuse: true });
    } catch (e) {
      for (const s of seqs) {
        s.slot.session.truncate(0); // its KV may be partly written
        this.#fail(s, e);
      }
      return;
    }
    this.#stats.steps++;
    this.#stats.stepSequences += seqs.length;
    this.#stats.stepMs += performance.now() - t0;
    for (let i = 0; i < seqs.length; i++) {
      const s = seqs[i];
      const session = s.slot.session;
      if (s.pending.length > 0) {
        // still prefilling: a hybrid model's state is kept now and then inside long prompts
        if (session.rec && session.position % CHECKPOINT_EVERY < take) session.checkpoint();
        continue;
      }
      // the whole prompt is in: keep the state here (a next turn extends this prefix), and
      // hand it to the fork followers (before it samples: a sampler may scale the logits)
      if (s.n === 0) {
        session.checkpoint();
        this.#fork(s, logits[i]);
      }
      try {
        this.#sample(s, logits[i]);
      } catch (e) {
        this.#fail(s, e);
      }
    }
  }

  #sample(s: Seq, logits: Float32Array): void {
    const tk = this.#model.tokenizer;
    const r = s.constraint
      ? this.#opts.sampleConstrained!(s.sampler, logits, s.history, s.constraint)
      : s.sampler.sample(logits, s.history);
    if (s.constraint) s.constraint.advance(r.token);
    if (s.n === 0) s.firstTokenAt = performance.now();
    s.n++;
    this.#stats.tokensGenerated++;
    s.history.push(r.token);
    const id = s.req.id;
    if (!s.req.params.ignoreEos && tk.isEog(r.token)) {
      const t = s.stops.push(s.decoder.flush());
      const rest = t.text + (t.stopped ? "" : s.stops.flush());
      this.#emit({ type: "token", id, token: r.token, text: rest, logprob: r.logprob, top: r.top });
      this.#finish(s, "stop", t.stopped ? t.stop : undefined);
      return;
    }
    const st = s.stops.push(s.decoder.push(r.token));
    this.#emit({
      type: "token",
      id,
      token: r.token,
      text: st.text,
      logprob: r.logprob,
      top: r.top,
    });
    if (st.stopped) {
      this.#finish(s, "stop", st.stop);
      return;
    }
    if (s.slot.session.position + 1 > s.slot.session.nCtx || s.n >= s.max) {
      const tail = s.stops.push(s.decoder.flush());
      const end = tail.stopped ? "" : s.stops.flush();
      if (tail.text + end) {
        this.#emit({ type: "token", id, token: -1, text: tail.text + end, logprob: 0 });
      }
      this.#finish(s, tail.stopped ? "stop" : "length", tail.stop);
      return;
    }
    s.next = r.token;
  }

  #remove(s: Seq): void {
    const i = this.#active.indexOf(s);
    if (i >= 0) this.#active.splice(i, 1);
    s.slot.busy = false;
    s.slot.lastUsed = ++this.#clock;
  }

  #finish(s: Seq, reason: FinishReason, stop?: string): void {
    // the state after the answer too: an agent's next turn usually extends it
    if (reason !== "abort") s.slot.session.checkpoint();
    this.#remove(s);
    const now = performance.now();
    const first = s.firstTokenAt || now;
    this.#emit({
      type: "done",
      id: s.req.id,
      finishReason: reason,
      stop,
      usage: {
        promptTokens: s.req.prompt.length,
        cachedTokens: s.cached,
        completionTokens: s.n,
        prefillMs: first - s.admittedAt,
        decodeMs: now - first,
        queueMs: s.admittedAt - s.queuedAt,
      },
    });
  }

  #fail(s: Seq, e: unknown): void {
    this.#remove(s);
    const err = e as Error;
    const code: SeqErrorCode = err?.name === "ContextOverflowError"
      ? "context_overflow"
      : err?.name === "SamplingError"
      ? "bad_request"
      : "internal";
    this.#emit({ type: "error", id: s.req.id, code, message: err?.message ?? String(e) });
  }
}

function definedOnly(p: SeqParams): Partial<SamplingParams> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) if (v !== undefined) out[k] = v;
  return out as Partial<SamplingParams>;
}
