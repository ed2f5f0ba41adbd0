/**
 * The batch runner: drives a stored batch to its end through an {@link Executor} (the
 * server's own request handling, called in process), keeping `concurrency` requests in
 * flight. The engine's scheduler runs those requests as one batch of sequences, so each
 * step reads every routed expert once for all of them (expert-major; DESIGN.md §4).
 *
 * One runner is one worker. Several workers (processes, machines) may run the same batch
 * on a shared store ({@link BatchQueue}):
 * - The store stays off the step's critical path: one call, {@link BatchQueue.exchange},
 *   commits the finished results, leases more requests and reads the batch's status (for
 *   PostgreSQL one statement, one round trip). A worker leases B plus `prefetch` (2·B)
 *   requests and keeps the extra ones queued: a finished sequence's slot is refilled from
 *   the queue at once, and its result is held until the next exchange commits it with the
 *   others that finished meanwhile. With PostgreSQL (which notifies) an exchange goes when
 *   the queue runs low, about every 3/4 `prefetch` completions; with SQLite after every
 *   completion (a local call). Near the batch's end the queue shrinks to B/4, so that no
 *   worker sits on a queue while others idle.
 * - A heartbeat on a timer extends the leases; a lease whose worker died or hung runs out
 *   and another worker takes it over. A worker on the same host that finds a dead
 *   predecessor (its pid is gone) releases that one's leases at once.
 * - Results are committed exactly once: a late duplicate commit changes nothing. A request
 *   that was in flight, queued or held uncommitted when its worker died is pending again
 *   once its lease runs out. A worker whose lease was taken over drops that request.
 * - When nothing is left to lease the worker waits for the others' leases (taking over
 *   any that run out) and the last one finalizes the batch (`finalized_by`).
 * - A batch made for another model (content hash) is refused: {@link ModelMismatchError}.
 * - Cancellation (`cancelling`) and expiry are read by every exchange, on every store
 *   notification (PostgreSQL NOTIFY; {@link BatchRunner.poke}) and at least every
 *   `pollMs` (10 × `pollMs` with notifications): in-flight requests are aborted, finished
 *   ones committed, the rest are marked and the batch is finalized.
 * - A lost database connection ({@link StoreUnavailableError}) is retried with backoff:
 *   held results stay held (at most B + prefetch) and go with the next exchange; nothing
 *   committed is lost, and leases whose answer was lost are taken back (`holding`).
 * - A full disk stops the batch: in-flight requests are aborted, the batch is marked
 *   failed (if the disk still takes that), and {@link StoreFullError} is thrown; everything
 *   committed before stays, and {@link BatchQueue.resumeBatch} continues it later.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import process from "node:process";
import {
  type BatchQueue,
  type BatchRecord,
  type BatchRequest,
  type ExchangeResult,
  ModelMismatchError,
  StoreError,
  StoreFullError,
  StoreUnavailableError,
} from "./store_types.ts";
import { resultLine, unrunLine } from "./formats.ts";

/** Runs one request of a batch: the endpoint's HTTP status and JSON body. */
export type Executor = (
  endpoint: string,
  body: Record<string, unknown>,
  signal: AbortSignal,
) => Promise<{ status: number; body: unknown }>;

/** Progress of a running batch. */
export interface BatchProgress {
  batchId: string;
  /** Requests with a committed result (success or error), by all workers. */
  done: number;
  failed: number;
  total: number;
  /** Completion tokens of the results committed by this worker in this run. */
  completionTokens: number;
}

/** Options of a {@link BatchRunner}. */
export interface RunnerOptions {
  /** Requests in flight at once (the batch size B the scheduler sees). */
  concurrency: number;
  /** Called after each committed result (at most once per `progressMs`). */
  onProgress?(p: BatchProgress): void;
  /**
   * Least milliseconds between two progress reports (default 0: one after every commit).
   * Each report reads the batch's counts from the store; a progress bar needs far fewer.
   */
  progressMs?: number;
  /** Longest wait between checks for cancellation and expiry, ms (default 500). */
  pollMs?: number;
  /** This worker's id (default: host:pid:random). */
  workerId?: string;
  /** Lease length, seconds (default 60); a dead worker's requests wait this long. */
  leaseSeconds?: number;
  /** Heartbeat period, ms (default a third of the lease). */
  heartbeatMs?: number;
  /** sha256 of the loaded model; batches made for another model are refused. */
  modelHash?: string | (() => Promise<string>);
  /** Warnings (retries, lost leases, refused batches). */
  onWarn?(message: string): void;
  /**
   * Requests leased beyond `concurrency` and queued here (default 2 × `concurrency`), so
   * the slot of a finished sequence is refilled at once, without waiting for the store, and
   * a lease (with the results held meanwhile) goes about every 3/4 `prefetch` completions.
   * Once fewer than `concurrency + prefetch` requests are left to lease, a quarter of
   * `concurrency` at most, so that no worker sits on a queue while others idle.
   */
  prefetch?: number;
}

/** A worker id: host, pid and a random suffix. */
export function newWorkerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

function completionTokens(body: unknown): number {
  const u = (body as { usage?: Record<string, number> } | null)?.usage;
  return Number(u?.completion_tokens ?? u?.output_tokens ?? 0) || 0;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

/** One request in flight. */
interface Flight {
  ac: AbortController;
  p: Promise<void>;
  /** Date.now() when its lease came back from the store. */
  since: number;
}

/** A finished request's result, held until an exchange commits it. */
interface Held {
  ok: boolean;
  line: unknown;
  tokens: number;
}

/** The state of one runBatch call. */
class Run {
  readonly inflight = new Map<number, Flight>();
  /** Leased requests waiting for a free slot, with the time their lease came back. */
  readonly queue: { r: BatchRequest; since: number }[] = [];
  /** Finished results not committed yet, by request index (at most B + prefetch). */
  readonly held = new Map<number, Held>();
  /** The last exchange leased fewer than it asked for: lease again on the next pass only. */
  drained = false;
  /** The run is ending: nothing more starts. */
  ending = false;
  /** Fewer than B + prefetch requests are left to lease: prefetch little. */
  tail = false;
  /** The store notifies this run of status changes (PostgreSQL LISTEN). */
  watching = false;
  /** Date.now() when the last exchange came back. */
  exchangedAt = 0;
  full: StoreFullError | null = null;
  tokens = 0;
  readonly t0 = Date.now();
  beating = false;
  reporting = false;
  reportAgain = false;
  /** performance.now() of the latest progress report. */
  reportedAt = -Infinity;
  /** A deferred report (progressMs), cleared when the run ends. */
  reportTimer: ReturnType<typeof setTimeout> | null = null;
  constructor(
    readonly id: string,
    readonly kind: "openai" | "anthropic",
    readonly endpoint: string,
  ) {}

  /** Abort what runs and drop what is queued (those requests stay pending). */
  async abortAll(): Promise<void> {
    this.ending = true;
    this.queue.length = 0;
    for (const f of this.inflight.values()) f.ac.abort();
    await Promise.allSettled([...this.inflight.values()].map((f) => f.p));
  }
}

/** Drives batches of a store to completion; one runner is one worker. */
export class BatchRunner {
  readonly store: BatchQueue;
  readonly exec: Executor;
  readonly opts: RunnerOptions;
  /** This worker's id (recorded with its leases, results and heartbeats). */
  readonly workerId: string;
  #stopped = false;
  #poked = false;
  #wake: (() => void) | null = null;
  /** Read the batch's status now: poked from outside (a notification, a cancel, stop). */
  #check = false;
  #hash: string | null = null;
  #tokens = 0;

  constructor(store: BatchQueue, exec: Executor, opts: RunnerOptions) {
    this.store = store;
    this.exec = exec;
    this.opts = opts;
    this.workerId = opts.workerId ?? newWorkerId();
  }

  /** Completion tokens of the results this worker committed, over all its runs. */
  get completionTokens(): number {
    return this.#tokens;
  }

  get #lease(): number {
    return this.opts.leaseSeconds ?? 60;
  }

  get #prefetch(): number {
    return Math.max(0, Math.floor(this.opts.prefetch ?? 2 * this.opts.concurrency));
  }

  /** Fewer requests than this left to lease: the batch's tail (see {@link #want}). */
  get #tailAt(): number {
    return this.opts.concurrency + this.#prefetch;
  }

  #warn(m: string): void {
    this.opts.onWarn?.(m);
  }

  /** Stop after aborting what is in flight (those requests stay pending). */
  stop(): void {
    this.#stopped = true;
    this.poke();
  }

  get #pollMs(): number {
    return this.opts.pollMs ?? 500;
  }

  /**
   * Wait until poked, a request finishes, or `ms` (default `pollMs`) passes; true when the
   * time ran out.
   */
  async #nap(ms = this.#pollMs): Promise<boolean> {
    if (this.#poked) {
      this.#poked = false;
      return false;
    }
    const out = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(true), ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve(false);
      };
    });
    this.#wake = null;
    this.#poked = false;
    return out;
  }

  /** Wake the run's loop (a request finished). */
  #rouse(): void {
    if (this.#wake) this.#wake();
    else this.#poked = true;
  }

  /** Wake a waiting run and have it read the batch's status (e.g. after a cancel request). */
  poke(): void {
    this.#check = true;
    this.#rouse();
  }

  async #modelHash(): Promise<string | null> {
    const h = this.opts.modelHash;
    if (h === undefined) return null;
    this.#hash ??= typeof h === "string" ? h : await h();
    return this.#hash;
  }

  async #report(run: Run): Promise<void> {
    if (!this.opts.onProgress) return;
    const wait = run.reportedAt + (this.opts.progressMs ?? 0) - performance.now();
    if (wait > 0) {
      // too soon after the last one: one report later covers every commit until then
      run.reportTimer ??= setTimeout(() => {
        run.reportTimer = null;
        this.#report(run).catch(() => {});
      }, wait);
      return;
    }
    run.reportedAt = performance.now();
    // one count query at a time: commits during one are covered by one more after it
    if (run.reporting) {
      run.reportAgain = true;
      return;
    }
    run.reporting = true;
    try {
      do {
        run.reportAgain = false;
        const c = (await this.store.getBatch(run.id))?.request_counts;
        if (!c) return;
        this.opts.onProgress({
          batchId: run.id,
          done: c.completed + c.failed,
          failed: c.failed,
          total: c.total,
          completionTokens: run.tokens,
        });
      } while (run.reportAgain);
    } finally {
      run.reporting = false;
    }
  }

  /** Run one request; its result is held for the next exchange, its slot refilled at once. */
  #start(run: Run, r: BatchRequest, since: number): void {
    const ac = new AbortController();
    const p = this.exec(run.endpoint, r.body, ac.signal).then(
      (res) => ({ status: res.status, body: res.body }),
      (e) => ({
        status: 500,
        body: {
          error: { message: `internal error: ${(e as Error).message}`, type: "server_error" },
        },
      }),
    ).then((res) => {
      if (ac.signal.aborted || run.full) return; // stays pending
      const l = resultLine(run.kind, r.customId, res.status, res.body);
      run.held.set(r.index, { ok: l.ok, line: l.line, tokens: completionTokens(res.body) });
    }).catch((e) => {
      this.#warn(`request ${r.index} stays pending: ${(e as Error).message}`);
    }).finally(() => {
      run.inflight.delete(r.index);
      this.#fill(run);
      this.#rouse();
    });
    run.inflight.set(r.index, { ac, p, since });
  }

  /** Start queued requests while slots are free (no store call on this path). */
  #fill(run: Run): void {
    while (!run.ending && run.inflight.size < this.opts.concurrency && run.queue.length > 0) {
      const { r, since } = run.queue.shift()!;
      if (!run.inflight.has(r.index) && !run.held.has(r.index)) this.#start(run, r, since);
    }
  }

  /**
   * How many requests to lease now: none while the queue still holds a quarter of the
   * prefetch beyond the free slots, else enough for B running and `prefetch` queued (so
   * a lease comes every ~3/4 prefetch completions, and with it the held results).
   */
  #want(run: Run): number {
    if (run.ending || this.#stopped) return 0;
    const B = this.opts.concurrency;
    // in the tail a long queue would leave others idle while this worker works it off
    const M = run.tail ? Math.min(this.#prefetch, Math.ceil(B / 4)) : this.#prefetch;
    const slack = run.inflight.size + run.queue.length - B;
    if (slack >= (M === 0 ? 0 : Math.max(1, Math.ceil(M / 4)))) return 0;
    return B + M - run.inflight.size - run.queue.length;
  }

  /**
   * Whether the next exchange should come now. Held results wait for the next lease when
   * the store notifies of cancellation (PostgreSQL): each exchange is a round trip, and a
   * result held a little longer is at worst run again after a crash. Without notifications
   * each result goes at once, reading the status with it. The status is read, and held
   * results committed, at least every `pollMs` (with notifications every 10 × `pollMs`,
   * against one lost in a reconnect).
   */
  #due(run: Run): boolean {
    if (this.#check || this.#stopped || run.full) return true;
    const idle = run.inflight.size + run.queue.length === 0;
    const h = run.held.size;
    if (h > 0 && (idle || !run.watching)) return true;
    if (!run.drained && this.#want(run) > 0) return true;
    return Date.now() - run.exchangedAt >= (run.watching ? 10 : 1) * this.#pollMs;
  }

  /**
   * One store call: commit the held results, lease `want` more, read the batch's status. On
   * an error the held results stay held, to be committed by the next call.
   */
  async #exchange(run: Run, want: number): Promise<ExchangeResult | null> {
    const commits = [...run.held].map(([index, h]) => ({ index, ok: h.ok, line: h.line }));
    const holding = [...run.inflight.keys(), ...run.queue.map((q) => q.r.index)];
    this.#check = false;
    const x = await this.store.exchange(run.id, this.workerId, {
      commits,
      lease: want,
      leaseSeconds: this.#lease,
      holding,
      countUpTo: run.tail ? 0 : this.#tailAt + want,
    });
    const since = Date.now();
    run.exchangedAt = since;
    if (!x) return null;
    for (const i of x.committed) {
      const n = run.held.get(i)?.tokens ?? 0;
      run.tokens += n;
      this.#tokens += n;
    }
    for (const c of commits) run.held.delete(c.index); // stored now, or by another worker
    if (commits.length > 0) this.#report(run).catch(() => {});
    const mine = new Set(holding);
    for (const r of x.leased) if (!mine.has(r.index)) run.queue.push({ r, since });
    run.drained = x.leased.length < want;
    if (!run.tail && x.unleased < this.#tailAt) run.tail = true;
    this.#fill(run);
    return x;
  }

  /** Extend the leases; drop requests whose lease another worker took over. */
  async #beat(run: Run): Promise<void> {
    if (run.beating) return;
    run.beating = true;
    const t0 = Date.now();
    try {
      const secs = Math.max(1e-3, (t0 - run.t0) / 1000);
      const owned = new Set(
        await this.store.heartbeat(run.id, {
          workerId: this.workerId,
          host: hostname(),
          pid: process.pid,
          tokens: run.tokens,
          tokPerSec: run.tokens / secs,
        }, this.#lease),
      );
      const lost = (idx: number, since: number) => !owned.has(idx) && since < t0;
      for (const [idx, f] of run.inflight) {
        if (lost(idx, f.since) && !f.ac.signal.aborted) {
          this.#warn(`the lease of request ${idx} ran out and another worker has it; dropped`);
          f.ac.abort();
        }
      }
      const kept = run.queue.filter((q) => !lost(q.r.index, q.since));
      run.queue.splice(0, run.queue.length, ...kept);
    } catch (e) {
      this.#warn(`heartbeat failed: ${(e as Error).message}`);
    } finally {
      run.beating = false;
    }
  }

  /** Release the leases of dead workers of this host (kill -9, then a restart). */
  async #recoverLocal(id: string): Promise<void> {
    const host = hostname();
    for (const w of await this.store.workers(id)) {
      if (w.host === host && w.workerId !== this.workerId && w.leased > 0 && !pidAlive(w.pid)) {
        const n = await this.store.releaseLeases(id, w.workerId);
        if (n > 0) this.#warn(`released ${n} leases of dead worker ${w.workerId}`);
      }
    }
  }

  /** Abort what runs, commit what finished, then finalize the batch `how`. */
  async #end(run: Run, how: "cancelled" | "expired" | null): Promise<BatchRecord> {
    await run.abortAll();
    if (run.held.size > 0) await this.#exchange(run, 0);
    if (how === null) return (await this.store.getBatch(run.id))!;
    const unrun = (c: string, s: "cancelled" | "expired") => unrunLine(run.kind, c, s);
    return await this.store.finalize(run.id, how, unrun, this.workerId);
  }

  /** One pass: the finished record, or null to wait and come back. */
  async #step(run: Run): Promise<BatchRecord | null> {
    const id = run.id;
    const x = await this.#exchange(run, this.#want(run));
    if (!x) throw new StoreError("not_found", `Batch ${id} was deleted`);
    if (x.status === "cancelling") return await this.#end(run, "cancelled");
    if (x.status !== "in_progress") {
      await run.abortAll(); // ended by another worker, or failed
      return (await this.store.getBatch(id))!;
    }
    if (Date.now() / 1000 > x.expiresAt) return await this.#end(run, "expired");
    if (this.#stopped) return await this.#end(run, null);
    if (run.inflight.size + run.queue.length + run.held.size === 0) {
      // nothing to lease: done, or other workers hold the rest (finalize checks, under lock)
      const unrun = (c: string, s: "cancelled" | "expired") => unrunLine(run.kind, c, s);
      const f = await this.store.finalize(id, "completed", unrun, this.workerId);
      if (f.status !== "in_progress") return f;
    }
    return null; // working, or waiting for other workers' leases
  }

  /** {@link #step}; a full disk aborts the run and marks the batch failed. */
  async #pass(run: Run): Promise<BatchRecord | null> {
    try {
      if (run.full) throw run.full;
      return await this.#step(run);
    } catch (e) {
      if (!(e instanceof StoreFullError)) throw e;
      run.full = e;
      await run.abortAll();
      await this.store.failBatch(run.id, "disk_full", e.message);
      throw e;
    }
  }

  /**
   * Run batch `id` until it is completed, cancelled or expired (returns its final record),
   * or until {@link BatchRunner.stop} (returns it still in progress).
   * @throws ModelMismatchError when the batch was made for another model
   * @throws StoreFullError when results cannot be saved (the batch is marked failed)
   */
  async runBatch(id: string): Promise<BatchRecord> {
    const first = await this.store.getBatch(id);
    if (!first) throw new StoreError("not_found", `No batch ${id}`);
    const mine = await this.#modelHash();
    if (first.model_hash && mine && first.model_hash !== mine) {
      throw new ModelMismatchError(id, first.model_hash, mine);
    }
    if (first.status !== "in_progress" && first.status !== "cancelling") return first;
    const endpoint = first.kind === "anthropic" ? "/v1/messages" : first.endpoint;
    const run = new Run(id, first.kind, endpoint);
    const unwatch = await this.store.watch?.((b) => {
      if (b === id) this.poke();
    }).catch(() => null);
    run.watching = !!unwatch;
    await this.#recoverLocal(id).catch((e) => this.#warn((e as Error).message));
    await this.#beat(run);
    const hb = setInterval(() => this.#beat(run), this.opts.heartbeatMs ?? this.#lease * 333);
    let fails = 0;
    try {
      while (true) {
        try {
          const r = await this.#pass(run);
          if (r) return r;
          fails = 0;
        } catch (e) {
          if (!(e instanceof StoreUnavailableError) || this.#stopped) throw e;
          this.#warn(`${e.message}; retrying`);
          await this.#nap(Math.min(5000, 250 * 2 ** fails++));
          continue;
        }
        // a completion wakes the loop, which goes on only when an exchange is due; a poll
        // that runs out reads the status (and takes over leases that ran out)
        while (!this.#due(run) && !(await this.#nap()));
      }
    } finally {
      clearInterval(hb);
      if (run.reportTimer) clearTimeout(run.reportTimer);
      run.reportTimer = null;
      await run.abortAll();
      await unwatch?.().catch(() => {});
      try {
        await this.store.releaseLeases(id, this.workerId);
      } catch { /* they run out by themselves */ }
    }
  }

  /**
   * Run every batch with work, oldest first, then wait for new ones (checking every
   * `pollMs`), until {@link BatchRunner.stop}. For the server; errors of one batch are
   * reported through `onError` and do not stop the loop; a batch made for another model
   * is reported once and left to the workers that have it.
   */
  async loop(onError: (id: string, e: unknown) => void = () => {}): Promise<void> {
    const refused = new Set<string>();
    const unwatch = await this.store.watch?.(() => this.poke()).catch(() => null);
    try {
      while (!this.#stopped) {
        let ids: string[] = [];
        try {
          ids = await this.store.activeBatches();
        } catch (e) {
          onError("*", e);
        }
        for (const id of ids) {
          if (this.#stopped) break;
          if (refused.has(id)) continue;
          try {
            await this.runBatch(id);
          } catch (e) {
            if (e instanceof ModelMismatchError) refused.add(id);
            onError(id, e);
          }
        }
        if (this.#stopped) break;
        await this.#nap();
      }
    } finally {
      await unwatch?.().catch(() => {});
    }
  }
}
