/**
 * The PostgreSQL batch store: one queue shared by a fleet of workers (`spool batch run
 * --store postgres://…` and `spool serve --batch-store postgres://…` on several machines),
 * through postgres.js, which runs on Deno and Bun alike.
 *
 * It keeps the SQLite store's rules (store.ts) and adds what several machines need, all with
 * PostgreSQL's own primitives:
 * - Leases: a worker takes pending requests with `FOR UPDATE SKIP LOCKED` and stamps them
 *   `lease_owner`, `lease_until = now() + lease` (the database's clock, so the machines'
 *   clocks do not matter). Heartbeats extend them; a lease that runs out (its worker died
 *   or hung) is free for anyone.
 * - A result is committed by one conditional UPDATE (`state = 'pending'`): under
 *   PostgreSQL's row lock a racing second commit re-checks the row, finds it done and
 *   changes nothing; a late worker cannot duplicate a line.
 * - Finalizing locks the batch row (`FOR UPDATE`) and ends it once; `finalized_by` names
 *   the worker that did.
 * - Creation, cancellation and the end of a batch are announced with NOTIFY on
 *   `spool_batches`, so every worker reacts within one step instead of one poll.
 * - Tables live in the schema `spool` with a version in `spool.meta`; a database with
 *   another version is refused ({@link StoreSchemaError}) and left untouched.
 * - A lost connection or a restarting server surfaces as {@link StoreUnavailableError}
 *   (retry: every write is conditional); a full disk (SQLSTATE 53100) as
 *   {@link StoreFullError}.
 *
 * @module
 */
import postgres from "postgres";
import { Buffer } from "node:buffer";
import {
  describePgUrl,
  fileRecord,
  PG_CHANNEL,
  PG_SCHEMA_VERSION,
  q,
  qRead,
  SCHEMA,
  writeOutputFiles,
} from "./_pg.ts";
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
  StoreSchemaError,
  type UnrunLine,
  windowSeconds,
  type WorkerProgress,
  type WorkerReport,
} from "./store_types.ts";

export { describePgUrl, PG_CHANNEL, PG_SCHEMA_VERSION };

type Row = Record<string, unknown>;
type Sql = postgres.Sql;
const ENDED = ["completed", "cancelled", "expired"];

/** Files, batches and requests in a PostgreSQL database (see the module doc). */
export class PgBatchStore implements BatchQueue {
  readonly path: string;
  readonly kind = "postgres" as const;
  /** The postgres.js client (a small pool). */
  readonly sql: Sql;

  private constructor(path: string, sql: Sql) {
    this.path = path;
    this.sql = sql;
  }

  /**
   * Connect and create the schema if the database has none.
   * @throws StoreConfigError for a malformed connection string
   * @throws StoreSchemaError for a database with another version of spool's schema
   * @throws StoreUnavailableError when the server cannot be reached
   */
  static async connect(url: string, o: { appName?: string } = {}): Promise<PgBatchStore> {
    const shown = describePgUrl(url);
    const sql = postgres(url, {
      max: 4,
      onnotice: () => {},
      connect_timeout: 10,
      connection: { application_name: o.appName ?? "spool" },
    });
    const s = new PgBatchStore(shown, sql);
    try {
      await q(`connect to ${shown}`, () => s.#migrate());
    } catch (e) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw e;
    }
    return s;
  }

  async #migrate(): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(hashtext('spool.schema'))`;
      const [{ meta, batches }] = await tx`SELECT to_regclass('spool.meta') AS meta,
        to_regclass('spool.batches') AS batches`;
      if (meta) {
        const v = await tx`SELECT value FROM spool.meta WHERE key = 'schema_version'`;
        const got = v[0]?.value ?? "none";
        if (got !== PG_SCHEMA_VERSION) {
          throw new StoreSchemaError(
            `The database's spool schema is version ${got}; this spool reads version ` +
              `${PG_SCHEMA_VERSION}. Nothing was changed; use a matching spool or another database`,
          );
        }
        return;
      }
      if (batches) {
        throw new StoreSchemaError(
          "The database has a `spool` schema without a version (spool.meta is missing); " +
            "nothing was changed",
        );
      }
      await tx.unsafe(SCHEMA);
      await tx`INSERT INTO spool.meta (key, value) VALUES ('schema_version', ${PG_SCHEMA_VERSION})`;
    });
  }

  /** Close the pool (waits up to 5 s for queries in flight). */
  async close(): Promise<void> {
    await this.sql.end({ timeout: 5 });
  }

  // ---- files

  /** Store a file. */
  async createFile(purpose: string, filename: string, content: Uint8Array): Promise<FileRecord> {
    const id = newId("file-");
    const t = now();
    await q(
      "store the file",
      () =>
        this.sql`INSERT INTO spool.files (id, purpose, filename, bytes, created_at, content)
        VALUES (${id}, ${purpose}, ${filename}, ${content.byteLength}, ${t},
        ${Buffer.from(content.buffer, content.byteOffset, content.byteLength)})`,
    );
    return (await this.getFile(id))!;
  }

  /** A file's record, or null. */
  async getFile(id: string): Promise<FileRecord | null> {
    const r = await qRead(
      "read the file",
      () =>
        this.sql`SELECT id, purpose, filename, bytes, created_at FROM spool.files WHERE id = ${id}`,
    );
    return r[0] ? fileRecord(r[0]) : null;
  }

  /** A file's bytes, or null. */
  async fileContent(id: string): Promise<Uint8Array | null> {
    const r = await qRead(
      "read the file",
      () => this.sql`SELECT content FROM spool.files WHERE id = ${id}`,
    );
    return r[0] ? new Uint8Array(r[0].content as Uint8Array) : null;
  }

  /** Delete a file; false if there was none. */
  async deleteFile(id: string): Promise<boolean> {
    const r = await q("delete the file", () => this.sql`DELETE FROM spool.files WHERE id = ${id}`);
    return r.count > 0;
  }

  /** Files, newest first. */
  async listFiles(purpose?: string): Promise<FileRecord[]> {
    const rows = await qRead(
      "list files",
      () =>
        purpose
          ? this.sql`SELECT id, purpose, filename, bytes, created_at FROM spool.files
            WHERE purpose = ${purpose} ORDER BY created_at DESC, id`
          : this.sql`SELECT id, purpose, filename, bytes, created_at FROM spool.files
            ORDER BY created_at DESC, id`,
    );
    return rows.map(fileRecord);
  }

  // ---- batches

  /**
   * Create a batch and its requests in one transaction. With a fixed `id`, workers that
   * start together all get the one batch (`ON CONFLICT DO NOTHING`).
   */
  async createBatch(o: CreateBatchOptions): Promise<BatchRecord> {
    const id = o.id ?? newId(o.kind === "anthropic" ? "msgbatch_" : "batch_");
    const win = o.completionWindow ?? "24h";
    const t = now();
    const expires = t + windowSeconds(win);
    const made = await q("create the batch", () =>
      this.sql.begin(async (tx) => {
        const ins = await tx`INSERT INTO spool.batches (id, kind, endpoint, input_file_id,
            completion_window, status, created_at, in_progress_at, expires_at, metadata,
            model_hash)
          VALUES (${id}, ${o.kind}, ${o.endpoint}, ${o.inputFileId ?? null}, ${win},
            'in_progress', ${t}, ${t}, ${expires},
            ${o.metadata ? JSON.stringify(o.metadata) : null}, ${o.modelHash ?? null})
          ON CONFLICT (id) DO NOTHING`;
        if (ins.count === 0) return false;
        const CHUNK = 2000;
        for (let i = 0; i < o.requests.length; i += CHUNK) {
          const part = o.requests.slice(i, i + CHUNK);
          await tx`INSERT INTO spool.requests (batch_id, idx, custom_id, body)
            SELECT ${id}, * FROM unnest(${part.map((_, j) => i + j)}::int[],
              ${part.map((r) => r.customId)}::text[],
              ${part.map((r) => JSON.stringify(r.body))}::text[])`;
        }
        await tx`SELECT pg_notify(${PG_CHANNEL}, ${id})`;
        return true;
      }));
    // fresh statistics: without them the planner reads a whole batch where an exchange
    // touches a few rows by primary key (best effort; autovacuum does it later anyway)
    if (made) await this.sql`ANALYZE spool.requests (batch_id, idx, state)`.catch(() => {});
    return (await this.getBatch(id))!;
  }

  /** A batch, or null. */
  async getBatch(id: string): Promise<BatchRecord | null> {
    const r = await qRead(
      "read the batch",
      () => this.sql`SELECT * FROM spool.batches WHERE id = ${id}`,
    );
    return r[0] ? await this.#batchRecord(r[0]) : null;
  }

  /** A batch's status and expiry alone. */
  async batchStatus(id: string): Promise<{ status: BatchStatus; expiresAt: number } | null> {
    const r = await qRead(
      "read the batch",
      () => this.sql`SELECT status, expires_at FROM spool.batches WHERE id = ${id}`,
    );
    return r[0] ? { status: r[0].status as BatchStatus, expiresAt: Number(r[0].expires_at) } : null;
  }

  async #counts(id: string): Promise<RequestCounts> {
    const c: RequestCounts = {
      total: 0,
      completed: 0,
      failed: 0,
      cancelled: 0,
      expired: 0,
      pending: 0,
    };
    const rows = await qRead(
      "count requests",
      () =>
        this.sql`SELECT state, count(*)::int AS n FROM spool.requests WHERE batch_id = ${id}
        GROUP BY state`,
    );
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

  async #batchRecord(r: Row): Promise<BatchRecord> {
    return batchRecordOf(r, await this.#counts(String(r.id)));
  }

  /** Batches of `kind`, newest first, created before batch `after`. */
  async listBatches(kind: BatchKind, o: { after?: string; limit?: number } = {}): Promise<{
    data: BatchRecord[];
    hasMore: boolean;
  }> {
    const limit = Math.max(1, Math.min(o.limit ?? 20, 1000));
    let seqBelow = "9223372036854775807";
    if (o.after) {
      const r = await q(
        "list batches",
        () => this.sql`SELECT seq FROM spool.batches WHERE id = ${o.after!}`,
      );
      if (!r[0]) throw new StoreError("not_found", `No batch ${o.after}`);
      seqBelow = String(r[0].seq);
    }
    const rows = await qRead(
      "list batches",
      () =>
        this.sql`SELECT * FROM spool.batches WHERE kind = ${kind} AND seq < ${seqBelow}::bigint
        ORDER BY seq DESC LIMIT ${limit + 1}`,
    );
    const data: BatchRecord[] = [];
    for (const r of rows.slice(0, limit)) data.push(await this.#batchRecord(r));
    return { data, hasMore: rows.length > limit };
  }

  /** Ids of batches with work, oldest first. */
  async activeBatches(): Promise<string[]> {
    const rows = await qRead(
      "list batches",
      () =>
        this.sql`SELECT id FROM spool.batches WHERE status IN ('in_progress', 'cancelling')
        ORDER BY seq`,
    );
    return rows.map((r) => String(r.id));
  }

  /** Ask to cancel; every worker hears it at once (NOTIFY). */
  async cancelBatch(id: string): Promise<BatchRecord> {
    await q("cancel the batch", () =>
      this.sql.begin(async (tx) => {
        const r = await tx`UPDATE spool.batches SET status = 'cancelling', cancelling_at = ${now()}
          WHERE id = ${id} AND status IN ('in_progress', 'validating')`;
        if (r.count > 0) await tx`SELECT pg_notify(${PG_CHANNEL}, ${id})`;
      }));
    const b = await this.getBatch(id);
    if (!b) throw new StoreError("not_found", `No batch ${id}`);
    return b;
  }

  /** Delete a finished batch with its requests and workers. */
  async deleteBatch(id: string): Promise<void> {
    await q("delete the batch", () =>
      this.sql.begin(async (tx) => {
        const b = await tx`SELECT status FROM spool.batches WHERE id = ${id} FOR UPDATE`;
        if (!b[0]) throw new StoreError("not_found", `No batch ${id}`);
        const st = String(b[0].status);
        if (["in_progress", "cancelling", "finalizing", "validating"].includes(st)) {
          throw new StoreError("conflict", `Batch ${id} is still ${st}; cancel it first`);
        }
        await tx`DELETE FROM spool.requests WHERE batch_id = ${id}`;
        await tx`DELETE FROM spool.workers WHERE batch_id = ${id}`;
        await tx`DELETE FROM spool.batches WHERE id = ${id}`;
      }));
  }

  // ---- leases and results

  /** Lease up to `limit` free requests (`FOR UPDATE SKIP LOCKED`), in input order. */
  async leaseRequests(
    id: string,
    workerId: string,
    limit: number,
    leaseSeconds: number,
  ): Promise<BatchRequest[]> {
    const rows = await q("lease requests", () =>
      this.sql`WITH c AS (
          SELECT idx FROM spool.requests
          WHERE batch_id = ${id} AND state = 'pending'
            AND (lease_until IS NULL OR lease_until < now())
          ORDER BY idx LIMIT ${limit} FOR UPDATE SKIP LOCKED)
        UPDATE spool.requests r SET lease_owner = ${workerId},
          lease_until = now() + make_interval(secs => ${leaseSeconds}),
          attempts = r.attempts + 1
        FROM c WHERE r.batch_id = ${id} AND r.idx = c.idx
        RETURNING r.idx, r.custom_id, r.body`);
    return rows.map((r) => ({
      batchId: id,
      index: Number(r.idx),
      customId: String(r.custom_id),
      body: JSON.parse(String(r.body)),
    })).sort((a, b) => a.index - b.index);
  }

  /**
   * Commit, lease and read the status in one statement (one round trip; see
   * {@link BatchQueue.exchange}). The commits are one conditional UPDATE (a racing commit of
   * another worker is re-checked under the row lock, as in {@link commitResult}); the lease
   * skips the rows being committed, so no row is updated twice in the statement.
   */
  async exchange(id: string, workerId: string, x: ExchangeRequest): Promise<ExchangeResult | null> {
    const idx = x.commits.map((c) => c.index);
    const held = [...x.holding, ...idx];
    const cap = Math.max(0, x.countUpTo ?? 0);
    const states = x.commits.map((c) => c.ok ? "done" : "error");
    const lines = x.commits.map((c) => JSON.stringify(c.line));
    // rows by primary key (`idx = ANY(array)`), never a join the planner may turn into a
    // scan of the whole batch
    const [r] = await q(
      "save results and lease requests",
      () =>
        this.sql`WITH b AS (SELECT status, expires_at FROM spool.batches WHERE id = ${id}),
        done AS (UPDATE spool.requests r
          SET state = (${states}::text[])[array_position(${idx}::int[], r.idx)],
            result = (${lines}::text[])[array_position(${idx}::int[], r.idx)],
            finished_at = ${now()}, worker = ${workerId}, lease_owner = NULL, lease_until = NULL
          WHERE r.batch_id = ${id} AND r.idx = ANY(${idx}::int[]) AND r.state = 'pending'
          RETURNING r.idx),
        earlier AS (SELECT idx FROM spool.requests WHERE batch_id = ${id}
          AND idx = ANY(${idx}::int[]) AND worker = ${workerId} AND state <> 'pending'),
        c AS (SELECT idx FROM spool.requests
          WHERE batch_id = ${id} AND state = 'pending'
            AND EXISTS (SELECT 1 FROM b WHERE status = 'in_progress')
            AND (lease_until IS NULL OR lease_until < now()
              OR (lease_owner = ${workerId} AND NOT idx = ANY(${held}::int[])))
          ORDER BY idx LIMIT ${Math.max(0, x.lease)} FOR UPDATE SKIP LOCKED),
        l AS (UPDATE spool.requests r SET lease_owner = ${workerId},
            lease_until = now() + make_interval(secs => ${x.leaseSeconds}),
            attempts = r.attempts + 1
          WHERE r.batch_id = ${id} AND r.idx = ANY(ARRAY(SELECT idx FROM c))
          RETURNING r.idx, r.custom_id, r.body),
        f AS (SELECT count(*)::int AS n FROM (SELECT 1 FROM spool.requests
          WHERE batch_id = ${id} AND state = 'pending'
            AND (lease_until IS NULL OR lease_until < now())
          LIMIT ${cap + Math.max(0, x.lease)}) s)
      SELECT (SELECT status FROM b) AS status, (SELECT expires_at FROM b) AS expires_at,
        (SELECT n FROM f) AS unleased,
        ARRAY(SELECT idx FROM done UNION SELECT idx FROM earlier) AS committed,
        (SELECT coalesce(json_agg(json_build_array(idx, custom_id, body)), '[]') FROM l) AS leased`,
    );
    if (!r || r.status === null) return null;
    const leased = (r.leased as [number, string, string][]).map(([i, c, body]) => ({
      batchId: id,
      index: Number(i),
      customId: String(c),
      body: JSON.parse(body),
    })).sort((a, b) => a.index - b.index);
    return {
      status: r.status as BatchStatus,
      expiresAt: Number(r.expires_at),
      committed: (r.committed as number[]).map(Number),
      leased,
      // counted in the statement's snapshot, before its own lease
      unleased: Math.max(0, Math.min(cap, Number(r.unleased) - leased.length)),
    };
  }

  /** Extend this worker's leases and record its progress; the indices it still holds. */
  async heartbeat(id: string, w: WorkerReport, leaseSeconds: number): Promise<number[]> {
    return await q("record the heartbeat", () =>
      this.sql.begin(async (tx) => {
        await tx`INSERT INTO spool.workers (batch_id, worker_id, host, pid, heartbeat_at, tokens,
            tok_s)
          VALUES (${id}, ${w.workerId}, ${w.host}, ${w.pid}, now(), ${w.tokens}, ${w.tokPerSec})
          ON CONFLICT (batch_id, worker_id) DO UPDATE SET heartbeat_at = now(),
            tokens = excluded.tokens, tok_s = excluded.tok_s`;
        const rows = await tx`UPDATE spool.requests
          SET lease_until = now() + make_interval(secs => ${leaseSeconds})
          WHERE batch_id = ${id} AND lease_owner = ${w.workerId} AND state = 'pending'
          RETURNING idx`;
        return rows.map((r) => Number(r.idx));
      }));
  }

  /** Give up a worker's leases. */
  async releaseLeases(id: string, workerId: string): Promise<number> {
    const r = await q(
      "release leases",
      () =>
        this.sql`UPDATE spool.requests SET lease_owner = NULL, lease_until = NULL
        WHERE batch_id = ${id} AND lease_owner = ${workerId} AND state = 'pending'`,
    );
    return r.count;
  }

  /** Per-worker progress of a batch. */
  async workers(id: string): Promise<WorkerProgress[]> {
    const rows = await qRead(
      "list workers",
      () =>
        this.sql`SELECT w.worker_id, w.host, w.pid, w.tokens, w.tok_s,
          extract(epoch FROM w.started_at)::float8 AS started,
          extract(epoch FROM w.heartbeat_at)::float8 AS beat,
          (SELECT count(*)::int FROM spool.requests r WHERE r.batch_id = w.batch_id
            AND r.worker = w.worker_id) AS done,
          (SELECT count(*)::int FROM spool.requests r WHERE r.batch_id = w.batch_id
            AND r.state = 'pending' AND r.lease_owner = w.worker_id
            AND r.lease_until >= now()) AS leased
        FROM spool.workers w WHERE w.batch_id = ${id} ORDER BY w.started_at, w.worker_id`,
    );
    return rows.map((r) => ({
      workerId: String(r.worker_id),
      host: String(r.host),
      pid: Number(r.pid),
      done: Number(r.done),
      tokens: Number(r.tokens),
      tokPerSec: Number(r.tok_s),
      startedAt: Number(r.started),
      heartbeatAt: Number(r.beat),
      leased: Number(r.leased),
    }));
  }

  /** Commit a result exactly once (see the module doc). */
  async commitResult(
    id: string,
    index: number,
    ok: boolean,
    line: unknown,
    workerId?: string,
  ): Promise<boolean> {
    const r = await q(
      "save the result",
      () =>
        this.sql`UPDATE spool.requests SET state = ${ok ? "done" : "error"},
          result = ${JSON.stringify(line)}, finished_at = ${now()}, worker = ${workerId ?? null},
          lease_owner = NULL, lease_until = NULL
        WHERE batch_id = ${id} AND idx = ${index} AND state = 'pending'`,
    );
    return r.count === 1;
  }

  /** End a batch once, under its row lock (see {@link BatchQueue.finalize}). */
  async finalize(
    id: string,
    how: "completed" | "cancelled" | "expired",
    unrun: UnrunLine,
    workerId?: string,
  ): Promise<BatchRecord> {
    await q("finalize the batch", () =>
      this.sql.begin(async (tx) => {
        const b = await tx`SELECT kind, status FROM spool.batches WHERE id = ${id} FOR UPDATE`;
        if (!b[0]) throw new StoreError("not_found", `No batch ${id}`);
        if (ENDED.includes(String(b[0].status))) return;
        const t = now();
        if (how === "completed") {
          const p = await tx`SELECT 1 FROM spool.requests WHERE batch_id = ${id}
            AND state = 'pending' LIMIT 1`;
          if (p.length > 0) return;
        } else {
          const pend = await tx`SELECT idx, custom_id FROM spool.requests
            WHERE batch_id = ${id} AND state = 'pending' FOR UPDATE`;
          const lines = pend.map((r) => JSON.stringify(unrun(String(r.custom_id), how).line));
          await tx`UPDATE spool.requests r SET state = ${how}, result = u.line, finished_at = ${t}
            FROM unnest(${pend.map((r) => Number(r.idx))}::int[], ${lines}::text[])
              AS u(idx, line)
            WHERE r.batch_id = ${id} AND r.idx = u.idx`;
        }
        const [outId, errId] = String(b[0].kind) === "openai"
          ? await writeOutputFiles(tx, id, t)
          : [null, null];
        const col = how === "completed"
          ? "completed_at"
          : how === "cancelled"
          ? "cancelled_at"
          : "expired_at";
        await tx`UPDATE spool.batches SET status = ${how},
            finalizing_at = coalesce(finalizing_at, ${t}), ${tx(col)} = ${t},
            output_file_id = ${outId}, error_file_id = ${errId}, finalized_by = ${workerId ?? null}
          WHERE id = ${id}`;
        await tx`SELECT pg_notify(${PG_CHANNEL}, ${id})`;
      }));
    return (await this.getBatch(id))!;
  }

  /** Mark a batch failed (best effort). */
  async failBatch(id: string, code: string, message: string): Promise<boolean> {
    try {
      const b = await this.getBatch(id);
      const errors = [...(b?.errors ?? []), { code, message }];
      await this.sql`UPDATE spool.batches SET status = 'failed', failed_at = ${now()},
        errors = ${JSON.stringify(errors)} WHERE id = ${id}`;
      await this.sql`SELECT pg_notify(${PG_CHANNEL}, ${id})`;
      return true;
    } catch {
      return false;
    }
  }

  /** Put a failed batch back in progress. */
  async resumeBatch(id: string): Promise<BatchRecord> {
    await q(
      "resume the batch",
      () =>
        this.sql`UPDATE spool.batches SET status = 'in_progress', failed_at = NULL
        WHERE id = ${id} AND status = 'failed'`,
    );
    return (await this.getBatch(id))!;
  }

  /** Committed lines in input order. */
  async results(id: string): Promise<{ customId: string; state: RequestState; line: unknown }[]> {
    const rows = await qRead(
      "read results",
      () =>
        this.sql`SELECT custom_id, state, result FROM spool.requests
        WHERE batch_id = ${id} AND result IS NOT NULL ORDER BY idx`,
    );
    return rows.map((r) => ({
      customId: String(r.custom_id),
      state: r.state as RequestState,
      line: JSON.parse(String(r.result)),
    }));
  }

  /** The newest batch made from input file `fileId`. */
  async batchForInput(fileId: string): Promise<BatchRecord | null> {
    const r = await qRead(
      "find the batch",
      () =>
        this.sql`SELECT id FROM spool.batches WHERE input_file_id = ${fileId}
        ORDER BY seq DESC LIMIT 1`,
    );
    return r[0] ? await this.getBatch(String(r[0].id)) : null;
  }

  /** LISTEN on {@link PG_CHANNEL}; postgres.js re-listens after a reconnect. */
  async watch(onChange: (batchId: string) => void): Promise<() => Promise<void>> {
    const l = await q("listen for batch changes", () => this.sql.listen(PG_CHANNEL, onChange));
    return async () => {
      await l.unlisten().catch(() => {});
    };
  }
}
