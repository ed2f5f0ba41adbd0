/**
 * The batch runner: drives a stored batch to its end through an {@link Executor} (the
 * server's own request handling, called in process), keeping `concurrency` requests in
 * flight. The engine's scheduler runs those requests as one batch of sequences, so each
 * step reads every routed expert once for all of them (expert-major; DESIGN.md §4).
 *
 * - Results are committed one by one as they arrive ({@link BatchStore.commitResult}); a
 *   request that was in flight when the process died is pending again on restart, and a
 *   late duplicate commit changes nothing.
 * - Cancellation (`cancelling`) and expiry are checked after every completion and at least
 *   every `pollMs`: in-flight requests are aborted, the rest are marked and the batch is
 *   finalized.
 * - A full disk stops the batch: in-flight requests are aborted, the batch is marked
 *   failed (if the disk still takes that), and {@link StoreFullError} is thrown; everything
 *   committed before stays, and {@link BatchStore.resumeBatch} continues it later.
 *
 * @module
 */
import { type BatchRecord, type BatchRequest, type BatchStore, StoreFullError } from "./store.ts";
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
  /** Requests with a committed result (success or error). */
  done: number;
  failed: number;
  total: number;
  /** Completion tokens of the results committed in this run. */
  completionTokens: number;
}

/** Options of a {@link BatchRunner}. */
export interface RunnerOptions {
  /** Requests in flight at once (the batch size B the scheduler sees). */
  concurrency: number;
  /** Called after each committed result. */
  onProgress?(p: BatchProgress): void;
  /** Longest wait between checks for cancellation and expiry, ms (default 500). */
  pollMs?: number;
}

function completionTokens(body: unknown): number {
  const u = (body as { usage?: Record<string, number> } | null)?.usage;
  return Number(u?.completion_tokens ?? u?.output_tokens ?? 0) || 0;
}

/** Drives batches of a store to completion. */
export class BatchRunner {
  readonly store: BatchStore;
  readonly exec: Executor;
  readonly opts: RunnerOptions;
  #stopped = false;
  #wake: (() => void) | null = null;

  constructor(store: BatchStore, exec: Executor, opts: RunnerOptions) {
    this.store = store;
    this.exec = exec;
    this.opts = opts;
  }

  /** Stop after aborting what is in flight (those requests stay pending). */
  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }

  /** Wait until poked, a request finishes, or `pollMs` passes. */
  async #nap(): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, this.opts.pollMs ?? 500);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.#wake = null;
  }

  /** Wake a waiting run (e.g. after a cancel request). */
  poke(): void {
    this.#wake?.();
  }

  /**
   * Run batch `id` until it is completed, cancelled or expired (returns its final record),
   * or until {@link BatchRunner.stop} (returns it still in progress).
   * @throws StoreFullError when results cannot be saved (the batch is marked failed)
   */
  async runBatch(id: string): Promise<BatchRecord> {
    const store = this.store;
    const first = store.getBatch(id);
    if (!first) throw new Error(`No batch ${id}`);
    const kind = first.kind;
    const endpoint = kind === "anthropic" ? "/v1/messages" : first.endpoint;
    const inflight = new Map<number, { ac: AbortController; p: Promise<void> }>();
    let full: StoreFullError | null = null;
    let tokens = 0;
    const report = () => {
      if (!this.opts.onProgress) return;
      const c = store.getBatch(id)!.request_counts;
      this.opts.onProgress({
        batchId: id,
        done: c.completed + c.failed,
        failed: c.failed,
        total: c.total,
        completionTokens: tokens,
      });
    };
    const start = (r: BatchRequest) => {
      const ac = new AbortController();
      const p = this.exec(endpoint, r.body, ac.signal).then(
        (res) => ({ status: res.status, body: res.body }),
        (e) => ({
          status: 500,
          body: {
            error: { message: `internal error: ${(e as Error).message}`, type: "server_error" },
          },
        }),
      ).then((res) => {
        if (ac.signal.aborted || full) return; // stays pending
        const l = resultLine(kind, r.customId, res.status, res.body);
        try {
          if (store.commitResult(id, r.index, l.ok, l.line)) tokens += completionTokens(res.body);
        } catch (e) {
          if (e instanceof StoreFullError) full = e;
          else throw e;
        }
        report();
      }).finally(() => {
        inflight.delete(r.index);
        this.#wake?.();
      });
      inflight.set(r.index, { ac, p });
    };
    const abortAll = async () => {
      for (const f of inflight.values()) f.ac.abort();
      await Promise.allSettled([...inflight.values()].map((f) => f.p));
    };
    report();
    while (true) {
      const b = store.getBatch(id)!;
      if (full) {
        await abortAll();
        store.failBatch(id, "disk_full", (full as Error).message);
        throw full;
      }
      if (b.status === "cancelling") {
        await abortAll();
        return store.finalize(id, "cancelled", (c, s) => unrunLine(kind, c, s));
      }
      if (b.status !== "in_progress") return b; // finished elsewhere, or failed
      if (Date.now() / 1000 > b.expires_at) {
        await abortAll();
        return store.finalize(id, "expired", (c, s) => unrunLine(kind, c, s));
      }
      if (this.#stopped) {
        await abortAll();
        return store.getBatch(id)!;
      }
      const room = this.opts.concurrency - inflight.size;
      if (room > 0) {
        for (const r of store.pendingRequests(id, room, new Set(inflight.keys()))) start(r);
      }
      if (inflight.size === 0) {
        return store.finalize(id, "completed", (c, s) => unrunLine(kind, c, s));
      }
      await this.#nap();
    }
  }

  /**
   * Run every batch with work, oldest first, then wait for new ones (checking every
   * `pollMs`), until {@link BatchRunner.stop}. For the server; errors of one batch are
   * reported through `onError` and do not stop the loop.
   */
  async loop(onError: (id: string, e: unknown) => void = () => {}): Promise<void> {
    while (!this.#stopped) {
      const ids = this.store.activeBatches();
      for (const id of ids) {
        if (this.#stopped) break;
        try {
          await this.runBatch(id);
        } catch (e) {
          onError(id, e);
        }
      }
      if (this.#stopped) break;
      await this.#nap();
    }
  }
}
