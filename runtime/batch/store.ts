/**
 * The durable batch store (DESIGN.md §3 "Batch store"): files, batches and their requests in
 * one SQLite database (`node:sqlite`, present in Deno and Bun), in WAL mode.
 *
 * Durability rules:
 * - A batch and all its requests are inserted in one transaction: a batch exists whole or
 *   not at all.
 * - A request is `pending` until its result line is committed (`done`, `error`) in one
 *   conditional UPDATE: a result counts only once committed, and a second commit of the
 *   same request (a run that raced a restart) changes nothing, so every custom_id appears
 *   exactly once in the output. Nothing marks a request "running": after a crash, whatever
 *   was in flight is simply pending again.
 * - Counts, output files and final statuses are derived from the request rows in the
 *   transaction that finalizes the batch.
 * - A full disk surfaces as {@link StoreFullError}; what was committed before stays.
 *
 * The interface is small on purpose (DESIGN.md §3), so that a shared queue can replace
 * SQLite for fleets.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import {
  type BatchKind,
  type BatchQueue,
  type BatchRecord,
  batchRecordOf,
  type BatchRequest,
  type BatchStatus,
  type CreateBatchOptions,
  type ExchangeRequest,
  type ExchangeResult,
  type FileRecord,
  newId,
  nowSeconds as now,
  type RequestCounts,
  type RequestState,
  StoreError,
  StoreFullError,
  type UnrunLine,
  windowSeconds,
  type WorkerProgress,
  type WorkerReport,
} from "./store_types.ts";
import { chmodSync, closeSync, openSync } from "node:fs";

export * from "./store_types.ts";

const SQLITE_FULL = 13;

function wrap<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    const err = e as { errcode?: number; message?: string };
    if (
      err.errcode === SQLITE_FULL || /disk is full|database or disk is full/.test(err.message ?? "")
    ) {
      throw new StoreFullError(`Cannot ${what}: the disk is full (${err.message})`, { cause: e });
    }
    throw e;
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  id TEXT PRIMARY KEY, purpose TEXT NOT NULL, filename TEXT NOT NULL, bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL, content BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, endpoint TEXT NOT NULL, input_file_id TEXT,
  completion_window TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL,
  in_progress_at INTEGER, finalizing_at INTEGER, completed_at INTEGER, failed_at INTEGER,
  expired_at INTEGER, expires_at INTEGER NOT NULL, cancelling_at INTEGER, cancelled_at INTEGER,
  output_file_id TEXT, error_file_id TEXT, errors TEXT NOT NULL DEFAULT '[]', metadata TEXT,
  seq INTEGER NOT NULL, model_hash TEXT, finalized_by TEXT);
CREATE TABLE IF NOT EXISTS requests (
  batch_id TEXT NOT NULL, idx INTEGER NOT NULL, custom_id TEXT NOT NULL, body TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending', result TEXT, finished_at INTEGER,
  lease_owner TEXT, lease_until INTEGER, worker TEXT,
  PRIMARY KEY (batch_id, idx), UNIQUE (batch_id, custom_id));
CREATE INDEX IF NOT EXISTS requests_pending ON requests (batch_id, state, idx);
CREATE TABLE IF NOT EXISTS workers (
  batch_id TEXT NOT NULL, worker_id TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
  started_at INTEGER NOT NULL, heartbeat_at INTEGER NOT NULL, tokens INTEGER NOT NULL,
  tok_s REAL NOT NULL, PRIMARY KEY (batch_id, worker_id));
`;

/** Columns added since the first release, for stores created before them. */
const ADDED: [table: string, column: string, type: string][] = [
  ["batches", "model_hash", "TEXT"],
  ["batches", "finalized_by", "TEXT"],
  ["requests", "lease_owner", "TEXT"],
  ["requests", "lease_until", "INTEGER"],
  ["requests", "worker", "TEXT"],
];

type Row = Record<string, unknown>;

/** Statuses of a batch that has ended. */
const ENDED = ["completed", "cancelled", "expired"];

/**
 * Files, batches and requests in one SQLite database. Leases use this machine's clock
 * (milliseconds), which every process on one store shares.
 */
export class BatchStore implements BatchQueue {
  readonly path: string;
  readonly kind = "sqlite" as const;
  readonly db: DatabaseSync;
  #seq = 0;

  private constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.db = db;
  }

  /** Open (or create) the store at `path` (":memory:" for a throwaway one). */
  static open(path: string): BatchStore {
    // it holds users' prompts and results: owner-only, created so before SQLite opens it (its
    // -wal and -shm files take the database file's mode)
    if (path !== ":memory:") {
      closeSync(openSync(path, "a", 0o600));
      chmodSync(path, 0o600);
    }
    const db = new DatabaseSync(path);
    return wrap("open the batch store", () => {
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = FULL"); // a committed result survives a power cut
      db.exec("PRAGMA busy_timeout = 5000");
      db.exec(SCHEMA);
      for (const [t, c, ty] of ADDED) {
        const cols = db.prepare(`PRAGMA table_info(${t})`).all() as Row[];
        if (!cols.some((r) => r.name === c)) db.exec(`ALTER TABLE ${t} ADD COLUMN ${c} ${ty}`);
      }
      const s = new BatchStore(path, db);
      const r = db.prepare("SELECT max(seq) AS m FROM batches").get() as Row;
      s.#seq = Number(r.m ?? 0);
      return s;
    });
  }

  /** Close the database. */
  close(): void {
    this.db.close();
  }

  #tx<T>(what: string, f: () => T): T {
    return wrap(what, () => {
      this.db.exec("BEGIN IMMEDIATE");
      try {
        const r = f();
        this.db.exec("COMMIT");
        return r;
      } catch (e) {
        try {
          this.db.exec("ROLLBACK");
        } catch { /* already rolled back */ }
        throw e;
      }
    });
  }

  // ---- files

  /** Store a file. */
  createFile(purpose: string, filename: string, content: Uint8Array): FileRecord {
    const id = newId("file-");
    const t = now();
    wrap("store the file", () =>
      this.db.prepare(
        "INSERT INTO files (id, purpose, filename, bytes, created_at, content) VALUES (?,?,?,?,?,?)",
      ).run(id, purpose, filename, content.byteLength, t, content));
    return this.getFile(id)!;
  }

  /** A file's record, or null. */
  getFile(id: string): FileRecord | null {
    const r = this.db.prepare(
      "SELECT id, purpose, filename, bytes, created_at FROM files WHERE id = ?",
    ).get(id) as Row | undefined;
    return r ? fileRecord(r) : null;
  }

  /** A file's bytes, or null. */
  fileContent(id: string): Uint8Array | null {
    const r = this.db.prepare("SELECT content FROM files WHERE id = ?").get(id) as
      | Row
      | undefined;
    return r ? new Uint8Array(r.content as Uint8Array) : null;
  }

  /** Delete a file; false if there was none. */
  deleteFile(id: string): boolean {
    const r = wrap(
      "delete the file",
      () => this.db.prepare("DELETE FROM files WHERE id = ?").run(id),
    );
    return Number(r.changes) > 0;
  }

  /** Files, newest first. */
  listFiles(purpose?: string): FileRecord[] {
    const rows = (purpose
      ? this.db.prepare(
        "SELECT id, purpose, filename, bytes, created_at FROM files WHERE purpose = ? ORDER BY created_at DESC, id",
      ).all(purpose)
      : this.db.prepare(
        "SELECT id, purpose, filename, bytes, created_at FROM files ORDER BY created_at DESC, id",
      ).all()) as Row[];
    return rows.map(fileRecord);
  }

  // ---- batches

  /**
   * Create a batch with its requests in one transaction; it starts `in_progress` (the
   * requests were validated by the caller). custom_ids must be unique.
   */
  createBatch(o: CreateBatchOptions): BatchRecord {
    const id = o.id ?? newId(o.kind === "anthropic" ? "msgbatch_" : "batch_");
    const existing = o.id ? this.getBatch(o.id) : null;
    if (existing) return existing;
    const win = o.completionWindow ?? "24h";
    const t = now();
    const expires = t + windowSeconds(win);
    this.#tx("create the batch", () => {
      const seq = ++this.#seq;
      this.db.prepare(
        `INSERT INTO batches (id, kind, endpoint, input_file_id, completion_window, status,
          created_at, in_progress_at, expires_at, metadata, seq, model_hash)
         VALUES (?,?,?,?,?, 'in_progress', ?, ?, ?, ?, ?, ?)`,
      ).run(
        id,
        o.kind,
        o.endpoint,
        o.inputFileId ?? null,
        win,
        t,
        t,
        expires,
        o.metadata ? JSON.stringify(o.metadata) : null,
        seq,
        o.modelHash ?? null,
      );
      const ins = this.db.prepare(
        "INSERT INTO requests (batch_id, idx, custom_id, body) VALUES (?,?,?,?)",
      );
      o.requests.forEach((r, i) => ins.run(id, i, r.customId, JSON.stringify(r.body)));
    });
    return this.getBatch(id)!;
  }

  /** A batch, or null. */
  getBatch(id: string): BatchRecord | null {
    const r = this.db.prepare("SELECT * FROM batches WHERE id = ?").get(id) as Row | undefined;
    return r ? this.#batchRecord(r) : null;
  }

  /** See {@link BatchQueue.batchStatus}. */
  batchStatus(id: string): { status: BatchStatus; expiresAt: number } | null {
    const r = this.db.prepare("SELECT status, expires_at FROM batches WHERE id = ?").get(id) as
      | Row
      | undefined;
    return r ? { status: r.status as BatchStatus, expiresAt: Number(r.expires_at) } : null;
  }

  #counts(id: string): RequestCounts {
    const c: RequestCounts = {
      total: 0,
      completed: 0,
      failed: 0,
      cancelled: 0,
      expired: 0,
      pending: 0,
    };
    const rows = this.db.prepare(
      "SELECT state, count(*) AS n FROM requests WHERE batch_id = ? GROUP BY state",
    ).all(id) as Row[];
    for (const r of rows) {
      const n = Number(r.n);
      c.total += n;
      const st = r.state as RequestState;
      if (st === "done") c.completed += n;
      else if (st === "error") c.failed += n;
      else if (st === "cancelled") c.cancelled += n;
      else if (st === "expired") c.expired += n;
      else c.pending += n;
    }
    return c;
  }

  #batchRecord(r: Row): BatchRecord {
    return batchRecordOf(r, this.#counts(String(r.id)));
  }

  /**
   * Batches of `kind`, newest first; `after` is a batch id (cursor pagination: the batches
   * created before it). Returns one more than `limit` is not needed: `hasMore` says.
   */
  listBatches(kind: BatchKind, o: { after?: string; limit?: number } = {}): {
    data: BatchRecord[];
    hasMore: boolean;
  } {
    const limit = Math.max(1, Math.min(o.limit ?? 20, 1000));
    let seqBelow = Number.MAX_SAFE_INTEGER;
    if (o.after) {
      const r = this.db.prepare("SELECT seq FROM batches WHERE id = ?").get(o.after) as
        | Row
        | undefined;
      if (!r) throw new StoreError("not_found", `No batch ${o.after}`);
      seqBelow = Number(r.seq);
    }
    const rows = this.db.prepare(
      "SELECT * FROM batches WHERE kind = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
    ).all(kind, seqBelow, limit + 1) as Row[];
    return {
      data: rows.slice(0, limit).map((r) => this.#batchRecord(r)),
      hasMore: rows.length > limit,
    };
  }

  /** Ids of batches that still have work (in_progress or cancelling), oldest first. */
  activeBatches(): string[] {
    return (this.db.prepare(
      "SELECT id FROM batches WHERE status IN ('in_progress', 'cancelling') ORDER BY seq",
    ).all() as Row[]).map((r) => String(r.id));
  }

  /**
   * Ask to cancel: an in-progress batch becomes `cancelling` (the runner stops it and
   * finalizes it as `cancelled`); a finished batch is returned unchanged.
   */
  cancelBatch(id: string): BatchRecord {
    const b = this.getBatch(id);
    if (!b) throw new StoreError("not_found", `No batch ${id}`);
    if (b.status === "in_progress" || b.status === "validating") {
      wrap("cancel the batch", () =>
        this.db.prepare(
          "UPDATE batches SET status = 'cancelling', cancelling_at = ? WHERE id = ? AND status IN ('in_progress', 'validating')",
        ).run(now(), id));
    }
    return this.getBatch(id)!;
  }

  /** Delete a finished batch and its requests (Anthropic's DELETE); throws if still running. */
  deleteBatch(id: string): void {
    const b = this.getBatch(id);
    if (!b) throw new StoreError("not_found", `No batch ${id}`);
    if (["in_progress", "cancelling", "finalizing", "validating"].includes(b.status)) {
      throw new StoreError("conflict", `Batch ${id} is still ${b.status}; cancel it first`);
    }
    this.#tx("delete the batch", () => {
      this.db.prepare("DELETE FROM requests WHERE batch_id = ?").run(id);
      this.db.prepare("DELETE FROM workers WHERE batch_id = ?").run(id);
      this.db.prepare("DELETE FROM batches WHERE id = ?").run(id);
    });
  }

  /**
   * Commit a request's result line (a success or an error) if it is still pending. Returns
   * false when it was already committed (or cancelled): nothing changes then.
   * @throws StoreFullError when the disk is full (the request stays pending)
   */
  commitResult(id: string, index: number, ok: boolean, line: unknown, workerId?: string): boolean {
    return wrap("save the result", () => this.#commit(id, index, ok, line, workerId));
  }

  #commit(id: string, index: number, ok: boolean, line: unknown, workerId?: string): boolean {
    const r = this.db.prepare(
      `UPDATE requests SET state = ?, result = ?, finished_at = ?, worker = ?, lease_owner = NULL,
        lease_until = NULL WHERE batch_id = ? AND idx = ? AND state = 'pending'`,
    ).run(ok ? "done" : "error", JSON.stringify(line), now(), workerId ?? null, id, index);
    return Number(r.changes) === 1;
  }

  /** See {@link BatchQueue.leaseRequests}. */
  leaseRequests(id: string, workerId: string, limit: number, leaseSeconds: number): BatchRequest[] {
    return this.#tx("lease requests", () => this.#lease(id, workerId, limit, leaseSeconds));
  }

  /** Lease (inside a transaction); with `holding`, also this worker's leases not in it. */
  #lease(id: string, w: string, limit: number, secs: number, holding?: number[]) {
    const t = Date.now();
    const mine = holding
      ? `OR (lease_owner = ? AND idx NOT IN (SELECT value FROM json_each(?)))`
      : "";
    const rows = this.db.prepare(
      `SELECT idx, custom_id, body FROM requests WHERE batch_id = ? AND state = 'pending'
        AND (lease_until IS NULL OR lease_until < ? ${mine}) ORDER BY idx LIMIT ?`,
    ).all(id, t, ...(holding ? [w, JSON.stringify(holding)] : []), limit) as Row[];
    const upd = this.db.prepare(
      "UPDATE requests SET lease_owner = ?, lease_until = ? WHERE batch_id = ? AND idx = ?",
    );
    for (const r of rows) upd.run(w, t + secs * 1000, id, Number(r.idx));
    return rows.map((r) => ({
      batchId: id,
      index: Number(r.idx),
      customId: String(r.custom_id),
      body: JSON.parse(String(r.body)),
    }));
  }

  /** See {@link BatchQueue.exchange}: one transaction. */
  exchange(id: string, workerId: string, x: ExchangeRequest): ExchangeResult | null {
    return this.#tx("save results and lease requests", () => {
      const b = this.batchStatus(id);
      if (!b) return null;
      const committed: number[] = [];
      const mine = this.db.prepare(
        "SELECT 1 FROM requests WHERE batch_id = ? AND idx = ? AND worker = ? AND state != 'pending'",
      );
      for (const c of x.commits) {
        if (this.#commit(id, c.index, c.ok, c.line, workerId) || mine.get(id, c.index, workerId)) {
          committed.push(c.index);
        }
      }
      const leased = b.status === "in_progress" && x.lease > 0
        ? this.#lease(id, workerId, x.lease, x.leaseSeconds, [
          ...x.holding,
          ...x.commits.map((c) => c.index),
        ])
        : [];
      const f = this.db.prepare(
        `SELECT count(*) AS n FROM (SELECT 1 FROM requests WHERE batch_id = ? AND state = 'pending'
          AND (lease_until IS NULL OR lease_until < ?) LIMIT ?)`,
      ).get(id, Date.now(), Math.max(0, x.countUpTo ?? 0)) as Row;
      return { ...b, committed, leased, unleased: Number(f.n) };
    });
  }

  /** See {@link BatchQueue.heartbeat}. */
  heartbeat(id: string, w: WorkerReport, leaseSeconds: number): number[] {
    return this.#tx("record the heartbeat", () => {
      const t = Date.now();
      this.db.prepare(
        `INSERT INTO workers (batch_id, worker_id, host, pid, started_at, heartbeat_at, tokens, tok_s)
         VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (batch_id, worker_id) DO UPDATE SET
         heartbeat_at = excluded.heartbeat_at, tokens = excluded.tokens, tok_s = excluded.tok_s`,
      ).run(id, w.workerId, w.host, w.pid, t, t, w.tokens, w.tokPerSec);
      this.db.prepare(
        "UPDATE requests SET lease_until = ? WHERE batch_id = ? AND lease_owner = ? AND state = 'pending'",
      ).run(t + leaseSeconds * 1000, id, w.workerId);
      return (this.db.prepare(
        "SELECT idx FROM requests WHERE batch_id = ? AND lease_owner = ? AND state = 'pending'",
      ).all(id, w.workerId) as Row[]).map((r) => Number(r.idx));
    });
  }

  /** See {@link BatchQueue.releaseLeases}. */
  releaseLeases(id: string, workerId: string): number {
    const r = wrap("release leases", () =>
      this.db.prepare(
        `UPDATE requests SET lease_owner = NULL, lease_until = NULL
          WHERE batch_id = ? AND lease_owner = ? AND state = 'pending'`,
      ).run(id, workerId));
    return Number(r.changes);
  }

  /** See {@link BatchQueue.workers}. */
  workers(id: string): WorkerProgress[] {
    const t = Date.now();
    const rows = this.db.prepare(
      `SELECT w.*, (SELECT count(*) FROM requests r WHERE r.batch_id = w.batch_id
          AND r.worker = w.worker_id) AS done,
        (SELECT count(*) FROM requests r WHERE r.batch_id = w.batch_id AND r.state = 'pending'
          AND r.lease_owner = w.worker_id AND r.lease_until >= ?) AS leased
       FROM workers w WHERE w.batch_id = ? ORDER BY w.started_at, w.worker_id`,
    ).all(t, id) as Row[];
    return rows.map((r) => ({
      workerId: String(r.worker_id),
      host: String(r.host),
      pid: Number(r.pid),
      done: Number(r.done),
      tokens: Number(r.tokens),
      tokPerSec: Number(r.tok_s),
      startedAt: Number(r.started_at) / 1000,
      heartbeatAt: Number(r.heartbeat_at) / 1000,
      leased: Number(r.leased),
    }));
  }

  /**
   * End a batch: the still-pending requests become `cancelled` (a cancelled batch),
   * `expired` (past its window) or stay as they are (completed: none are pending); output
   * and error files are written from the committed lines, in input order; counts and the
   * final status are set, all in one transaction. `lines` renders the lines of requests
   * that never ran (cancelled/expired), per kind.
   */
  finalize(
    id: string,
    how: "completed" | "cancelled" | "expired",
    unrun: UnrunLine,
    workerId?: string,
  ): BatchRecord {
    this.#tx("finalize the batch", () => {
      const b = this.db.prepare("SELECT * FROM batches WHERE id = ?").get(id) as Row | undefined;
      if (!b) throw new StoreError("not_found", `No batch ${id}`);
      if (ENDED.includes(String(b.status))) return; // ended by another worker
      if (how === "completed" && this.#counts(id).pending > 0) return;
      const t = now();
      if (how !== "completed") {
        const st = how === "cancelled" ? "cancelled" : "expired";
        const pend = this.db.prepare(
          "SELECT idx, custom_id FROM requests WHERE batch_id = ? AND state = 'pending'",
        ).all(id) as Row[];
        const upd = this.db.prepare(
          "UPDATE requests SET state = ?, result = ?, finished_at = ? WHERE batch_id = ? AND idx = ?",
        );
        for (const r of pend) {
          const l = unrun(String(r.custom_id), st);
          upd.run(st, JSON.stringify(l.line), t, id, Number(r.idx));
        }
      }
      const status = how === "completed"
        ? "completed"
        : how === "cancelled"
        ? "cancelled"
        : "expired";
      let outId: string | null = null, errId: string | null = null;
      if (String(b.kind) === "openai") {
        const rows = this.db.prepare(
          "SELECT state, result FROM requests WHERE batch_id = ? AND result IS NOT NULL ORDER BY idx",
        ).all(id) as Row[];
        const out: string[] = [], err: string[] = [];
        for (const r of rows) (r.state === "done" ? out : err).push(String(r.result));
        const enc = new TextEncoder();
        const ins = this.db.prepare(
          "INSERT INTO files (id, purpose, filename, bytes, created_at, content) VALUES (?,?,?,?,?,?)",
        );
        if (out.length > 0) {
          outId = newId("file-");
          const c = enc.encode(out.join("\n") + "\n");
          ins.run(outId, "batch_output", `${id}_output.jsonl`, c.byteLength, t, c);
        }
        if (err.length > 0) {
          errId = newId("file-");
          const c = enc.encode(err.join("\n") + "\n");
          ins.run(errId, "batch_output", `${id}_error.jsonl`, c.byteLength, t, c);
        }
      }
      const col = status === "completed"
        ? "completed_at"
        : status === "cancelled"
        ? "cancelled_at"
        : "expired_at";
      this.db.prepare(
        `UPDATE batches SET status = ?, finalizing_at = coalesce(finalizing_at, ?), ${col} = ?,
          output_file_id = ?, error_file_id = ?, finalized_by = ? WHERE id = ?`,
      ).run(status, t, t, outId, errId, workerId ?? null, id);
    });
    return this.getBatch(id)!;
  }

  /** Mark a batch failed with an error (best effort: a full disk may refuse even this). */
  failBatch(id: string, code: string, message: string): boolean {
    try {
      const b = this.getBatch(id);
      const errors = [...(b?.errors ?? []), { code, message }];
      this.db.prepare(
        "UPDATE batches SET status = 'failed', failed_at = ?, errors = ? WHERE id = ?",
      ).run(now(), JSON.stringify(errors), id);
      return true;
    } catch {
      return false;
    }
  }

  /** Put a failed batch back in progress (after the cause, e.g. a full disk, is fixed). */
  resumeBatch(id: string): BatchRecord {
    wrap("resume the batch", () =>
      this.db.prepare(
        "UPDATE batches SET status = 'in_progress', failed_at = NULL WHERE id = ? AND status = 'failed'",
      ).run(id));
    return this.getBatch(id)!;
  }

  /** The committed result lines of a batch (every state with a line), in input order. */
  results(id: string): { customId: string; state: RequestState; line: unknown }[] {
    return (this.db.prepare(
      "SELECT custom_id, state, result FROM requests WHERE batch_id = ? AND result IS NOT NULL ORDER BY idx",
    ).all(id) as Row[]).map((r) => ({
      customId: String(r.custom_id),
      state: r.state as RequestState,
      line: JSON.parse(String(r.result)),
    }));
  }

  /** The batch created from input file `fileId` (for resuming `spool batch run`), if any. */
  batchForInput(fileId: string): BatchRecord | null {
    const r = this.db.prepare(
      "SELECT id FROM batches WHERE input_file_id = ? ORDER BY seq DESC LIMIT 1",
    ).get(fileId) as Row | undefined;
    return r ? this.getBatch(String(r.id)) : null;
  }
}

function fileRecord(r: Row): FileRecord {
  return {
    id: String(r.id),
    object: "file",
    bytes: Number(r.bytes),
    created_at: Number(r.created_at),
    filename: String(r.filename),
    purpose: String(r.purpose),
    status: "processed",
    expires_at: null,
  };
}
