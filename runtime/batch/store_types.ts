/**
 * What every batch store shares: the records, the errors, and {@link BatchQueue}, the
 * interface the runner, the server and the CLI use. Two stores implement it: SQLite
 * (`store.ts`, embedded, the default) and PostgreSQL (`pg_store.ts`, one queue for a fleet).
 *
 * Methods return `T | Promise<T>` ({@link Awaitable}): SQLite answers synchronously, the
 * PostgreSQL store asynchronously; callers always `await`.
 *
 * @module
 */
import { randomBytes } from "node:crypto";

/** A value or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/** Which API a batch belongs to. */
export type BatchKind = "openai" | "anthropic";

/** OpenAI batch statuses (Anthropic's processing_status is derived from them). */
export type BatchStatus =
  | "validating"
  | "failed"
  | "in_progress"
  | "finalizing"
  | "completed"
  | "expired"
  | "cancelling"
  | "cancelled";

/** A request row's state. */
export type RequestState = "pending" | "done" | "error" | "cancelled" | "expired";

/** A stored file (OpenAI Files API shape). */
export interface FileRecord {
  id: string;
  object: "file";
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
  status: "processed";
  expires_at: number | null;
}

/** Request counts of a batch. */
export interface RequestCounts {
  total: number;
  /** Results committed with success. */
  completed: number;
  /** Results committed as errors. */
  failed: number;
  cancelled: number;
  expired: number;
  pending: number;
}

/** A stored batch. */
export interface BatchRecord {
  id: string;
  kind: BatchKind;
  /** `/v1/chat/completions`, `/v1/completions` or `/v1/messages`. */
  endpoint: string;
  input_file_id: string | null;
  completion_window: string;
  status: BatchStatus;
  created_at: number;
  in_progress_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  expires_at: number;
  cancelling_at: number | null;
  cancelled_at: number | null;
  output_file_id: string | null;
  error_file_id: string | null;
  /** Batch-level errors (`{code, message, line?}`), e.g. a full disk. */
  errors: { code: string; message: string; line?: number }[];
  metadata: Record<string, string> | null;
  request_counts: RequestCounts;
  /** sha256 of the model file the batch is for (null: any model). */
  model_hash: string | null;
  /** The worker that finalized the batch (it writes the output of `spool batch run`). */
  finalized_by: string | null;
}

/** One request of a batch. */
export interface BatchRequest {
  batchId: string;
  /** 0-based position in the input. */
  index: number;
  customId: string;
  /** The request body (for OpenAI, the line's `body`; for Anthropic, `params`). */
  body: Record<string, unknown>;
}

/** The store cannot be written: the disk (or the database's size limit) is full. */
export class StoreFullError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreFullError";
  }
}

/** A store operation refers to something missing or not allowed in its state. */
export class StoreError extends Error {
  /** "not_found" or "conflict". */
  readonly code: "not_found" | "conflict";
  constructor(code: "not_found" | "conflict", message: string) {
    super(message);
    this.name = "StoreError";
    this.code = code;
  }
}

/**
 * The store cannot be reached right now (a lost database connection, a restarting server):
 * the operation did not happen, or happened and was not acknowledged; retrying is safe
 * because every write is conditional.
 */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/** A store location that cannot be used: a malformed connection string, a bad path. */
export class StoreConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreConfigError";
  }
}

/** The database holds a spool schema of another version; nothing was changed. */
export class StoreSchemaError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StoreSchemaError";
  }
}

/** A worker's model file differs (by content hash) from the one the batch was made for. */
export class ModelMismatchError extends Error {
  /** The batch's model hash. */
  readonly expected: string;
  /** This worker's. */
  readonly actual: string;
  constructor(batchId: string, expected: string, actual: string) {
    super(
      `Batch ${batchId} was created for the model with sha256 ${expected.slice(0, 16)}…, ` +
        `but this worker loaded sha256 ${actual.slice(0, 16)}…; every worker of a job must ` +
        `load the same model file`,
    );
    this.name = "ModelMismatchError";
    this.expected = expected;
    this.actual = actual;
  }
}

/** A random id with a prefix, e.g. `batch_` + 24 hex digits. */
export function newId(prefix: string): string {
  return prefix + randomBytes(12).toString("hex");
}

const WINDOWS: Record<string, number> = { "24h": 86400 };

/** Seconds of a completion window ("24h", or any "<n>h"). */
export function windowSeconds(w: string): number {
  if (WINDOWS[w]) return WINDOWS[w];
  const m = /^(\d+)h$/.exec(w);
  if (!m || Number(m[1]) <= 0) {
    throw new RangeError(`completion_window must be like "24h", got "${w}"`);
  }
  return Number(m[1]) * 3600;
}

/** Seconds since the epoch. */
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** What a worker reports with each heartbeat. */
export interface WorkerReport {
  /** Unique per process: `host:pid:random`. */
  workerId: string;
  host: string;
  pid: number;
  /** Completion tokens of the results this worker committed in this run. */
  tokens: number;
  /** Its generation speed over this run. */
  tokPerSec: number;
}

/** A worker's progress on a batch (`spool batch status --store`). */
export interface WorkerProgress {
  workerId: string;
  host: string;
  pid: number;
  /** Results this worker committed (all its runs). */
  done: number;
  tokens: number;
  tokPerSec: number;
  startedAt: number;
  /** Seconds since the epoch of its last heartbeat. */
  heartbeatAt: number;
  /** Requests it holds a live lease on. */
  leased: number;
}

/** Options of {@link BatchQueue.createBatch}. */
export interface CreateBatchOptions {
  kind: BatchKind;
  endpoint: string;
  completionWindow?: string;
  inputFileId?: string | null;
  metadata?: Record<string, string> | null;
  requests: { customId: string; body: Record<string, unknown> }[];
  /** A fixed id; when a batch of that id exists, it is returned unchanged. */
  id?: string;
  /** sha256 of the model file; workers with another model refuse the batch. */
  modelHash?: string | null;
}

/** A finished request's result, committed by {@link BatchQueue.exchange}. */
export interface ResultCommit {
  index: number;
  /** A success (state `done`) or an error line (state `error`). */
  ok: boolean;
  line: unknown;
}

/** What one {@link BatchQueue.exchange} asks for. */
export interface ExchangeRequest {
  /** Results to commit, each exactly once (as {@link BatchQueue.commitResult}). */
  commits: ResultCommit[];
  /** Lease up to this many more requests (only while the batch is in progress). */
  lease: number;
  leaseSeconds: number;
  /**
   * Indices the worker has in hand (running, queued or being committed). A pending request
   * leased to this worker but not among them was leased by a call whose answer was lost:
   * it is leased again (returned) instead of being held, unrun, until the worker exits.
   */
  holding: number[];
  /** Count the requests left to lease after this call, up to this many (default 0: none). */
  countUpTo?: number;
}

/** What one {@link BatchQueue.exchange} did, and the batch's state, read in the same call. */
export interface ExchangeResult {
  status: BatchStatus;
  expiresAt: number;
  /**
   * Indices of `commits` whose result is stored as this worker's: committed now, or by an
   * earlier call whose answer was lost. The others were committed by another worker first.
   */
  committed: number[];
  /** The requests leased now, in input order. */
  leased: BatchRequest[];
  /**
   * Pending requests nobody holds a live lease on, after this call, counted up to
   * `countUpTo` (a bounded count: a batch nearing its end).
   */
  unleased: number;
}

/** Renders the line of a request that never ran. */
export type UnrunLine = (
  customId: string,
  state: "cancelled" | "expired",
) => { ok: boolean; line: unknown };

/**
 * The batch store interface (DESIGN.md §3). Files, batches and their requests; requests
 * are handed to workers in leases, and a result is committed exactly once.
 */
export interface BatchQueue {
  /** Where it is (a path, or a connection string without its password). */
  readonly path: string;
  /** "sqlite" or "postgres". */
  readonly kind: "sqlite" | "postgres";
  /** Release the database. */
  close(): Awaitable<void>;
  /** Store a file. */
  createFile(purpose: string, filename: string, content: Uint8Array): Awaitable<FileRecord>;
  /** A file's record, or null. */
  getFile(id: string): Awaitable<FileRecord | null>;
  /** A file's bytes, or null. */
  fileContent(id: string): Awaitable<Uint8Array | null>;
  /** Delete a file; false if there was none. */
  deleteFile(id: string): Awaitable<boolean>;
  /** Files, newest first. */
  listFiles(purpose?: string): Awaitable<FileRecord[]>;
  /** Create a batch and its requests in one transaction (see {@link CreateBatchOptions.id}). */
  createBatch(o: CreateBatchOptions): Awaitable<BatchRecord>;
  /** A batch, or null. */
  getBatch(id: string): Awaitable<BatchRecord | null>;
  /** A batch's status and expiry alone (one indexed row; the runner asks once per pass). */
  batchStatus(id: string): Awaitable<{ status: BatchStatus; expiresAt: number } | null>;
  /** Batches of `kind`, newest first, created before batch `after`. */
  listBatches(
    kind: BatchKind,
    o?: { after?: string; limit?: number },
  ): Awaitable<{ data: BatchRecord[]; hasMore: boolean }>;
  /** Ids of batches with work (in_progress, cancelling), oldest first. */
  activeBatches(): Awaitable<string[]>;
  /** Ask to cancel (every worker stops it); a finished batch is returned unchanged. */
  cancelBatch(id: string): Awaitable<BatchRecord>;
  /** Delete a finished batch; throws {@link StoreError} "conflict" while it runs. */
  deleteBatch(id: string): Awaitable<void>;
  /**
   * Lease up to `limit` pending requests nobody holds a live lease on (free, or whose
   * lease ran out: its worker died or hung), in input order, for `leaseSeconds`.
   */
  leaseRequests(
    id: string,
    workerId: string,
    limit: number,
    leaseSeconds: number,
  ): Awaitable<BatchRequest[]>;
  /**
   * Extend this worker's leases by `leaseSeconds` and record its progress; returns the
   * indices it still holds (a lease taken over by another worker is not among them).
   */
  heartbeat(id: string, w: WorkerReport, leaseSeconds: number): Awaitable<number[]>;
  /**
   * A worker's one call per pass (the runner's): commit finished results, lease more
   * requests if the batch is in progress, and read its status, in one transaction (for
   * PostgreSQL one statement, one round trip). All or nothing: on an error nothing
   * happened, or all of it did and the answer was lost; repeating the call is safe
   * (commits are conditional, and `holding` recovers the leases of a lost answer).
   * Null when the batch does not exist.
   * @throws StoreFullError when the disk is full (nothing is committed)
   */
  exchange(
    id: string,
    workerId: string,
    x: ExchangeRequest,
  ): Awaitable<ExchangeResult | null>;
  /** Give up a worker's leases (a clean stop, or a worker found dead on this host). */
  releaseLeases(id: string, workerId: string): Awaitable<number>;
  /** Per-worker progress of a batch. */
  workers(id: string): Awaitable<WorkerProgress[]>;
  /**
   * Commit a result if the request is still pending (exactly once: a second commit of the
   * same request is a no-op and returns false).
   * @throws StoreFullError when the disk is full (the request stays pending)
   */
  commitResult(
    id: string,
    index: number,
    ok: boolean,
    line: unknown,
    workerId?: string,
  ): Awaitable<boolean>;
  /**
   * End a batch (once: a batch already ended is returned unchanged, and "completed" while
   * requests are pending changes nothing); see the SQLite store.
   */
  finalize(
    id: string,
    how: "completed" | "cancelled" | "expired",
    unrun: UnrunLine,
    workerId?: string,
  ): Awaitable<BatchRecord>;
  /** Mark a batch failed (best effort). */
  failBatch(id: string, code: string, message: string): Awaitable<boolean>;
  /** Put a failed batch back in progress. */
  resumeBatch(id: string): Awaitable<BatchRecord>;
  /** Committed lines in input order. */
  results(id: string): Awaitable<{ customId: string; state: RequestState; line: unknown }[]>;
  /** The newest batch made from input file `fileId`. */
  batchForInput(fileId: string): Awaitable<BatchRecord | null>;
  /**
   * Call `onChange(batchId)` when a batch is created, cancelled or ended by any process
   * (PostgreSQL LISTEN/NOTIFY); returns the unsubscribe function. Optional.
   */
  watch?(onChange: (batchId: string) => void): Promise<() => Promise<void>>;
}

/**
 * A batch row of either store (SQLite or PostgreSQL: the same columns) as a
 * {@link BatchRecord}, with its request counts.
 */
export function batchRecordOf(r: Record<string, unknown>, counts: RequestCounts): BatchRecord {
  const n = (k: string) => (r[k] === null || r[k] === undefined ? null : Number(r[k]));
  return {
    id: String(r.id),
    kind: r.kind as BatchKind,
    endpoint: String(r.endpoint),
    input_file_id: (r.input_file_id as string | null) ?? null,
    completion_window: String(r.completion_window),
    status: r.status as BatchStatus,
    created_at: Number(r.created_at),
    in_progress_at: n("in_progress_at"),
    finalizing_at: n("finalizing_at"),
    completed_at: n("completed_at"),
    failed_at: n("failed_at"),
    expired_at: n("expired_at"),
    expires_at: Number(r.expires_at),
    cancelling_at: n("cancelling_at"),
    cancelled_at: n("cancelled_at"),
    output_file_id: (r.output_file_id as string | null) ?? null,
    error_file_id: (r.error_file_id as string | null) ?? null,
    errors: JSON.parse(String(r.errors ?? "[]")),
    metadata: r.metadata ? JSON.parse(String(r.metadata)) : null,
    request_counts: counts,
    model_hash: (r.model_hash as string | null) ?? null,
    finalized_by: (r.finalized_by as string | null) ?? null,
  };
}
