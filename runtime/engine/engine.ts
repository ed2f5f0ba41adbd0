/**
 * The engine: a model and its {@link Scheduler} in a Worker, so the main thread (the HTTP
 * server) never blocks on compute and `/health` answers while tokens are generated.
 *
 * - Worker side: {@link serveEngine} (started by `_engine_worker.ts`) loads the model, runs
 *   the scheduler, and answers messages.
 * - Main side: {@link Engine.start} spawns the worker; {@link Engine.run} streams one
 *   request's events, and cancels it when the consumer stops early.
 *
 * Messages, main → worker: `init` (model path and options), `start` (id, prompt token ids,
 * parameters), `cancel` (id), `stats`, `close`. Worker → main: `ready` (model info), `fatal`,
 * `event` (a {@link EngineEvent}: started, token with text delta and logprobs, done with
 * usage, error), `stats`, `closed`.
 *
 * The main thread renders chat templates and tokenizes; the worker only sees token ids.
 *
 * @module
 */
import process from "node:process";
import { loadModel } from "../api.ts";
import {
  compileConstraint,
  type ConstraintSpec,
  type ConstraintVocab,
  constraintVocab,
} from "../grammar/mod.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { sampleConstrained } from "./constrained.ts";
import type { CacheSnapshot } from "../experts/cache.ts";
import { DEFAULT_CHECKPOINTS } from "./recurrent.ts";
import {
  Scheduler,
  type SchedulerOptions,
  type SchedulerStats,
  type SeqConstraint,
  type SeqEvent,
  type SeqParams,
} from "./scheduler.ts";

/** Options of {@link Engine.start}. */
export interface EngineOptions {
  /** GGUF model path. */
  path: string;
  /** Context length of each slot (default: min(training context, 4096)). */
  nCtx?: number;
  /** Sequences decoded together (default 1). */
  parallel?: number;
  /** Kernel threads. */
  threads?: number;
  /** Expert cache bytes or "auto". */
  expertCache?: number | "auto";
  /** RAM budget bytes or "auto". */
  ramBudget?: number | "auto";
  /** Next-layer expert prefetch: "auto" (measured), "on" or "off". */
  prefetch?: "auto" | "on" | "off";
  /** Hot-expert profile file (recorded, and pinned from at the next start). */
  expertProfile?: string;
  /** Most waiting requests (default 64). */
  maxQueue?: number;
  /** Prompt tokens per sequence per step (default 128). */
  chunk?: number;
  /**
   * Recurrent-state checkpoints kept per slot for prefix reuse (hybrid models; default 4;
   * 0: every request reads its whole prompt).
   */
  checkpoints?: number;
}

/** What the worker reports once the model is loaded. */
export interface EngineInfo {
  /** GGUF architecture. */
  arch: string;
  /** Context length of each slot. */
  nCtx: number;
  /** The model's training context. */
  nCtxTrain: number;
  /** Vocabulary size. */
  nVocab: number;
  /** Slots. */
  parallel: number;
  /** Whether experts come from an expert cache. */
  expertCache: boolean;
  /** Whether constrained decoding (grammar) is available. */
  constrained: boolean;
}

/** One top-logprob entry, with the token's text. */
export interface EngineLogprob {
  /** Token id. */
  id: number;
  /** The token's text (its bytes decoded as UTF-8, lossy for partial characters). */
  token: string;
  /** The token's bytes. */
  bytes: number[];
  /** Natural-log probability. */
  logprob: number;
}

/**
 * An event of one request: the scheduler's events as they cross the Worker boundary, with
 * token logprobs resolved to text and bytes.
 */
export type EngineEvent =
  | Exclude<SeqEvent, { type: "token" }>
  | (Omit<Extract<SeqEvent, { type: "token" }>, "top"> & {
    /** With `logprobs` requests: the sampled token and the top alternatives. */
    lp?: { chosen: EngineLogprob; top: EngineLogprob[] };
  });

/** A generation request for the engine. */
export interface EngineRequest {
  /** Unique id. */
  id: string;
  /** Prompt token ids. */
  prompt: number[];
  /** Sampling, limits and constraint. */
  params: SeqParams & {
    /** Report logprobs with each token (with `logprobs` = how many alternatives). */
    wantLogprobs?: boolean;
  };
}

/** Stats the worker reports. */
export interface EngineStats {
  /** Scheduler counters. */
  scheduler: SchedulerStats;
  /** The expert cache's snapshot, when the model has one. */
  expertCache: CacheSnapshot | null;
  /** The engine worker's JavaScript heap: bytes in use, and bytes the heap holds. */
  heap: { used: number; total: number; external: number };
}

/** The engine worker failed to start or died. */
export class EngineError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EngineError";
  }
}

type ToWorker =
  | { type: "init"; opts: EngineOptions }
  | { type: "start"; req: EngineRequest }
  | { type: "cancel"; id: string }
  | { type: "stats"; reqId: number }
  | { type: "close" };

type FromWorker =
  | { type: "ready"; info: EngineInfo }
  | { type: "fatal"; message: string }
  | { type: "event"; event: EngineEvent }
  | { type: "stats"; reqId: number; stats: EngineStats }
  | { type: "closed" };

/** The part of a worker scope the engine uses. */
export interface EnginePort {
  /** Send to the main thread. */
  postMessage(msg: unknown): void;
  /** Receives messages from the main thread. */
  onmessage: ((e: MessageEvent) => void) | null;
  /** Ends the worker. */
  close(): void;
}

interface GrammarHooks {
  compileConstraint: SchedulerOptions["compileConstraint"];
  sampleConstrained: SchedulerOptions["sampleConstrained"];
}

/** Constrained decoding for the scheduler; the vocabulary index is built on first use. */
function heapOfWorker(): EngineStats["heap"] {
  // a full collection first when V8 exposes one (--v8-flags=--expose-gc: the soak benchmark)
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { used: m.heapUsed, total: m.heapTotal, external: m.external };
}

function loadGrammar(tokenizer: Tokenizer): Promise<GrammarHooks | null> {
  let vocab: ConstraintVocab | null = null; // built on first use: it walks the whole vocabulary
  return Promise.resolve({
    compileConstraint: (spec: unknown) => {
      vocab ??= constraintVocab(tokenizer);
      return compileConstraint(spec as ConstraintSpec, vocab) as SeqConstraint;
    },
    sampleConstrained: sampleConstrained as SchedulerOptions["sampleConstrained"],
  });
}

/**
 * Worker side: answer `port`'s messages (init, start, cancel, stats, close). Used by the
 * worker entry; can also run in-process with any {@link EnginePort}.
 */
export function serveEngine(port: EnginePort): void {
  let scheduler: Scheduler | null = null;
  let close: (() => void) | null = null;
  let expertCache: (() => CacheSnapshot | null) | null = null;
  const wantLp = new Map<string, number>();
  const post = (m: FromWorker) => port.postMessage(m);
  port.onmessage = async (e: MessageEvent) => {
    const msg = e.data as ToWorker;
    switch (msg.type) {
      case "init": {
        try {
          const o = msg.opts;
          const m = loadModel(o.path, {
            threads: o.threads,
            nCtx: o.nCtx,
            // the budget leaves room for every slot's KV cache
            kvTokens: (o.parallel ?? 1) * (o.nCtx ?? 4096),
            // and every slot's recurrent state with its checkpoints (hybrid models)
            stateCopies: (o.parallel ?? 1) * (1 + (o.checkpoints ?? DEFAULT_CHECKPOINTS)),
            expertCache: o.expertCache,
            ramBudget: o.ramBudget,
            prefetch: o.prefetch,
            expertProfile: o.expertProfile,
          });
          const tk = m.tokenizer;
          const grammar = await loadGrammar(tk);
          const piece = (id: number): { token: string; bytes: number[] } => {
            const b = tk.tokenPiece(id, true);
            return { token: new TextDecoder().decode(b), bytes: [...b] };
          };
          scheduler = new Scheduler(
            { createSession: (so) => m.createSession(so), tokenizer: tk },
            {
              parallel: o.parallel,
              nCtx: m.nCtx,
              chunk: o.chunk,
              // experts paged through a cache: a prompt alone steps 512 tokens at a time (each
              // step reads its routed experts once; bench/prefill.ts: under a 4 GiB cap a 1k
              // prompt in steps of 64 read 85 GB, in one step 7.6 GB, 27 against 47 tok/s)
              chunkAlone: m.expertStats() ? Math.max(o.chunk ?? 128, 512) : undefined,
              maxQueue: o.maxQueue,
              checkpoints: o.checkpoints,
              compileConstraint: grammar?.compileConstraint,
              sampleConstrained: grammar?.sampleConstrained,
              onEvent: (ev) => {
                if (ev.type === "token") {
                  const n = wantLp.get(ev.id);
                  const out: EngineEvent = { ...ev };
                  delete (out as { top?: unknown }).top;
                  if (n !== undefined && ev.token >= 0) {
                    out.lp = {
                      chosen: { id: ev.token, ...piece(ev.token), logprob: ev.logprob },
                      top: (ev.top ?? []).slice(0, n).map((t) => ({
                        id: t.token,
                        ...piece(t.token),
                        logprob: t.logprob,
                      })),
                    };
                  }
                  post({ type: "event", event: out });
                  return;
                }
                if (ev.type === "done" || ev.type === "error") wantLp.delete(ev.id);
                post({ type: "event", event: ev });
              },
            },
          );
          expertCache = () => m.model.expertSource?.cache.snapshot() ?? null;
          close = () => m.close();
          const c = m.config;
          post({
            type: "ready",
            info: {
              arch: c.arch,
              nCtx: m.nCtx,
              nCtxTrain: c.nCtxTrain,
              nVocab: c.nVocab,
              parallel: scheduler.parallel,
              expertCache: m.model.expertSource !== null,
              constrained: grammar !== null,
            },
          });
        } catch (err) {
          post({ type: "fatal", message: (err as Error).message ?? String(err) });
        }
        return;
      }
      case "start": {
        if (!scheduler) {
          post({
            type: "event",
            event: { type: "error", id: msg.req.id, code: "internal", message: "not loaded" },
          });
          return;
        }
        const p = msg.req.params;
        if (p.wantLogprobs) wantLp.set(msg.req.id, p.logprobs ?? 0);
        const params: SeqParams = { ...p };
        delete (params as { wantLogprobs?: boolean }).wantLogprobs;
        // the sampler computes the top list only when asked; the chosen logprob always
        if (p.wantLogprobs) params.logprobs = Math.max(p.logprobs ?? 0, 0);
        else delete params.logprobs;
        scheduler.submit({ id: msg.req.id, prompt: msg.req.prompt, params });
        return;
      }
      case "cancel":
        scheduler?.cancel(msg.id);
        return;
      case "stats":
        post({
          type: "stats",
          reqId: msg.reqId,
          stats: {
            scheduler: scheduler?.stats() ?? emptyStats(),
            expertCache: expertCache?.() ?? null,
            heap: heapOfWorker(),
          },
        });
        return;
      case "close":
        await scheduler?.shutdown();
        close?.();
        post({ type: "closed" });
        port.close();
        return;
    }
  };
}

function emptyStats(): SchedulerStats {
  return {
    admitted: 0,
    promptTokensEvaluated: 0,
    promptTokensCached: 0,
    tokensGenerated: 0,
    steps: 0,
    stepSequences: 0,
    stepMs: 0,
    queued: 0,
    active: 0,
  };
}

/** An async queue of one request's events. */
class EventQueue {
  readonly #items: EngineEvent[] = [];
  #wake: (() => void) | null = null;
  push(e: EngineEvent): void {
    this.#items.push(e);
    this.#wake?.();
    this.#wake = null;
  }
  async next(): Promise<EngineEvent> {
    while (this.#items.length === 0) await new Promise<void>((r) => (this.#wake = r));
    return this.#items.shift()!;
  }
}

/** Main side: the engine worker. */
export class Engine {
  /** What the worker reported when the model loaded. */
  readonly info: EngineInfo;
  readonly #worker: Worker;
  readonly #queues = new Map<string, EventQueue>();
  readonly #stats = new Map<number, (s: EngineStats) => void>();
  #statsId = 0;
  #closed = false;
  #closedWaiter: (() => void) | null = null;
  #dead: string | null = null;

  private constructor(worker: Worker, info: EngineInfo) {
    this.#worker = worker;
    this.info = info;
    worker.onmessage = (e: MessageEvent) => this.#onMessage(e.data as FromWorker);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault?.();
      this.#die(`engine worker error: ${e.message}`);
    };
  }

  /** Spawn the worker and load the model; rejects with {@link EngineError}. */
  static start(opts: EngineOptions): Promise<Engine> {
    const worker = new Worker(new URL("./_engine_worker.ts", import.meta.url).href, {
      type: "module",
    });
    return new Promise((resolve, reject) => {
      worker.onmessage = (e: MessageEvent) => {
        const m = e.data as FromWorker;
        if (m.type === "ready") resolve(new Engine(worker, m.info));
        else if (m.type === "fatal") {
          worker.terminate();
          reject(new EngineError(`Cannot load ${opts.path}: ${m.message}`));
        }
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault?.();
        worker.terminate();
        reject(new EngineError(`engine worker failed: ${e.message}`));
      };
      worker.postMessage({ type: "init", opts } satisfies ToWorker);
    });
  }

  /** Requests in flight (queued or running). */
  get inFlight(): number {
    return this.#queues.size;
  }

  #onMessage(m: FromWorker): void {
    switch (m.type) {
      case "event": {
        const q = this.#queues.get(m.event.id);
        if (!q) return;
        q.push(m.event);
        if (m.event.type === "done" || m.event.type === "error") this.#queues.delete(m.event.id);
        return;
      }
      case "stats":
        this.#stats.get(m.reqId)?.(m.stats);
        this.#stats.delete(m.reqId);
        return;
      case "closed":
        this.#closedWaiter?.();
        return;
      case "fatal":
        this.#die(m.message);
        return;
    }
  }

  #die(message: string): void {
    this.#dead = message;
    for (const [id, q] of this.#queues) q.push({ type: "error", id, code: "internal", message });
    this.#queues.clear();
  }

  /**
   * Start `req` and stream its events, ending after `done` or `error`. Stopping the iteration
   * early (break, return, a thrown error) cancels the request.
   */
  async *run(req: EngineRequest): AsyncGenerator<EngineEvent, void> {
    if (this.#closed || this.#dead) {
      yield { type: "error", id: req.id, code: "internal", message: this.#dead ?? "closed" };
      return;
    }
    if (this.#queues.has(req.id)) throw new EngineError(`duplicate request id ${req.id}`);
    const q = new EventQueue();
    this.#queues.set(req.id, q);
    this.#worker.postMessage({ type: "start", req } satisfies ToWorker);
    let ended = false;
    try {
      while (true) {
        const e = await q.next();
        yield e;
        if (e.type === "done" || e.type === "error") {
          ended = true;
          return;
        }
      }
    } finally {
      if (!ended) this.cancel(req.id);
    }
  }

  /** Cancel request `id` (its stream ends with finish reason "abort"). */
  cancel(id: string): void {
    if (!this.#closed) this.#worker.postMessage({ type: "cancel", id } satisfies ToWorker);
  }

  /** Scheduler counters and expert cache stats (answered between steps). */
  stats(): Promise<EngineStats> {
    const reqId = ++this.#statsId;
    return new Promise((resolve) => {
      this.#stats.set(reqId, resolve);
      this.#worker.postMessage({ type: "stats", reqId } satisfies ToWorker);
    });
  }

  /** Abort everything, free the model, and end the worker. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const done = new Promise<void>((r) => (this.#closedWaiter = r));
    this.#worker.postMessage({ type: "close" } satisfies ToWorker);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([done, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
    this.#worker.terminate();
  }
}
