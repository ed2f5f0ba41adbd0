/**
 * Private parts of the PostgreSQL store (pg_store.ts): the schema, error mapping, the
 * connection-string check and row helpers.
 *
 * @module
 */
import type postgres from "postgres";
import { Buffer } from "node:buffer";
import {
  type FileRecord,
  newId,
  StoreConfigError,
  StoreError,
  StoreFullError,
  StoreUnavailableError,
} from "./store_types.ts";

type Row = Record<string, unknown>;

/** The version of the `spool` schema this code reads and writes. */
export const PG_SCHEMA_VERSION = "1";

/** The NOTIFY channel of batch changes (payload: the batch id). */
export const PG_CHANNEL = "spool_batches";

/** The `spool` schema, version {@link PG_SCHEMA_VERSION}. */
export const SCHEMA = `
CREATE SCHEMA IF NOT EXISTS spool;
CREATE TABLE spool.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE spool.files (
  id text PRIMARY KEY, purpose text NOT NULL, filename text NOT NULL, bytes bigint NOT NULL,
  created_at bigint NOT NULL, content bytea NOT NULL);
CREATE TABLE spool.batches (
  id text PRIMARY KEY, kind text NOT NULL, endpoint text NOT NULL, input_file_id text,
  completion_window text NOT NULL, status text NOT NULL, created_at bigint NOT NULL,
  in_progress_at bigint, finalizing_at bigint, completed_at bigint, failed_at bigint,
  expired_at bigint, expires_at bigint NOT NULL, cancelling_at bigint, cancelled_at bigint,
  output_file_id text, error_file_id text, errors text NOT NULL DEFAULT '[]', metadata text,
  seq bigserial UNIQUE, model_hash text, finalized_by text);
CREATE TABLE spool.requests (
  batch_id text NOT NULL, idx integer NOT NULL, custom_id text NOT NULL, body text NOT NULL,
  state text NOT NULL DEFAULT 'pending', result text, finished_at bigint,
  lease_owner text, lease_until timestamptz, worker text, attempts integer NOT NULL DEFAULT 0,
  PRIMARY KEY (batch_id, idx), UNIQUE (batch_id, custom_id));
CREATE INDEX requests_pending ON spool.requests (batch_id, idx) WHERE state = 'pending';
CREATE INDEX requests_leased ON spool.requests (lease_owner) WHERE state = 'pending';
CREATE TABLE spool.workers (
  batch_id text NOT NULL, worker_id text NOT NULL, host text NOT NULL, pid integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(), heartbeat_at timestamptz NOT NULL,
  tokens bigint NOT NULL, tok_s double precision NOT NULL, PRIMARY KEY (batch_id, worker_id));
`;

const TRANSIENT =
  /^(CONNECTION_|ECONN|EPIPE|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|57P0[123]|08|40001|40P01)/;

/** Map a driver error to the store's errors (full disk, unreachable), else pass it on. */
export function classify(what: string, e: unknown): unknown {
  if (e instanceof StoreError || e instanceof StoreFullError) return e;
  const code = String((e as { code?: unknown })?.code ?? "");
  const msg = (e as Error)?.message ?? String(e);
  if (code === "53100") {
    return new StoreFullError(`Cannot ${what}: the database's disk is full (${msg})`, {
      cause: e,
    });
  }
  if (TRANSIENT.test(code) || /connection|terminat/i.test(code ? "" : msg)) {
    return new StoreUnavailableError(
      `Cannot ${what}: the database is unreachable (${code ? code + ": " : ""}${msg})`,
      { cause: e },
    );
  }
  return e;
}

/** Run a query, mapping driver errors with {@link classify}. */
export async function q<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw classify(what, e);
  }
}

/**
 * {@link q} for a read, which is safe to repeat: a lost connection (a terminated backend, a
 * restart) is retried a few times with backoff before it surfaces as StoreUnavailableError,
 * so a worker's bookkeeping reads ride out what its commits already ride out.
 */
export async function qRead<T>(what: string, f: () => Promise<T>, tries = 6): Promise<T> {
  for (let k = 0;; k++) {
    try {
      return await q(what, f);
    } catch (e) {
      if (!(e instanceof StoreUnavailableError) || k + 1 >= tries) throw e;
      await new Promise((r) => setTimeout(r, Math.min(2000, 50 * 2 ** k)));
    }
  }
}

/** Check a connection string; returns it without the password (for messages and logs). */
export function describePgUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch (e) {
    throw new StoreConfigError(
      `Malformed PostgreSQL connection string (expected postgres://user[:password]@host[:port]/database)`,
      { cause: e },
    );
  }
  if (u.protocol !== "postgres:" && u.protocol !== "postgresql:") {
    throw new StoreConfigError(`Not a PostgreSQL connection string: scheme "${u.protocol}"`);
  }
  if (!u.hostname && !u.searchParams.get("host")) {
    throw new StoreConfigError(`The PostgreSQL connection string names no host`);
  }
  if (u.port && !/^\d+$/.test(u.port)) {
    throw new StoreConfigError(`The PostgreSQL connection string has a bad port "${u.port}"`);
  }
  if (u.password) u.password = "***";
  return u.toString();
}

/** Write an OpenAI batch's output and error files from its committed lines. */
export async function writeOutputFiles(
  tx: postgres.TransactionSql,
  id: string,
  t: number,
): Promise<[string | null, string | null]> {
  const rows = await tx`SELECT state, result FROM spool.requests
    WHERE batch_id = ${id} AND result IS NOT NULL ORDER BY idx`;
  const out: string[] = [], err: string[] = [];
  for (const r of rows) (r.state === "done" ? out : err).push(String(r.result));
  const ids: [string | null, string | null] = [null, null];
  const parts: [string[], string][] = [[out, "output"], [err, "error"]];
  for (let i = 0; i < 2; i++) {
    const [lines, what] = parts[i];
    if (lines.length === 0) continue;
    const fid = newId("file-");
    const c = Buffer.from(lines.join("\n") + "\n", "utf8");
    await tx`INSERT INTO spool.files (id, purpose, filename, bytes, created_at, content)
      VALUES (${fid}, 'batch_output', ${`${id}_${what}.jsonl`}, ${c.byteLength}, ${t}, ${c})`;
    ids[i] = fid;
  }
  return ids;
}

/** A files row as a {@link FileRecord}. */
export function fileRecord(r: Row): FileRecord {
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
