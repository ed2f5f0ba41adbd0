/**
 * `spool batch status|results|cancel ID --store S`: the same operations as against a
 * server, straight on a batch store (a SQLite path or a `postgres://` connection string),
 * for jobs run by `spool batch run` on one machine or a fleet.
 *
 *   spool batch status ID --store S [--json]      counts, and per worker: requests done,
 *                                                 tok/s, last heartbeat, live leases
 *   spool batch results ID --store S [--out OUT]  every line in input order (once ended)
 *   spool batch cancel ID --store S               every worker stops within one step
 *
 * @module
 */
import { renameSync, writeFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { openBatchStore } from "../runtime/batch/open_store.ts";
import type { BatchQueue, WorkerProgress } from "../runtime/batch/store_types.ts";

/** Write every committed line of batch `id`, in input order, whole or not at all (0600). */
export async function writeBatchOutput(
  store: BatchQueue,
  id: string,
  out: string,
): Promise<number> {
  const lines = (await store.results(id)).map((r) => JSON.stringify(r.line));
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, lines.join("\n") + (lines.length ? "\n" : ""), { mode: 0o600 });
  renameSync(tmp, out);
  return lines.length;
}

async function withStore<T>(location: string, f: (s: BatchQueue) => Promise<T>): Promise<T> {
  const store = await openBatchStore(location, { appName: "spool batch" });
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

function notFound(id: string, where: string): never {
  throw Object.assign(new Error(`no batch ${id} in ${where}`), {
    hint: "`spool batch run` names its batch batch_run_<hash of the input>; see its log",
  });
}

function ago(t: number): string {
  const s = Math.max(0, Date.now() / 1000 - t);
  return s < 120 ? `${s.toFixed(1)} s ago` : `${(s / 60).toFixed(1)} min ago`;
}

function workerTable(ws: WorkerProgress[]): string[] {
  const rows = [["worker", "done", "tok/s", "last heartbeat", "leased"]];
  for (const w of ws) {
    rows.push([
      w.workerId,
      String(w.done),
      w.tokPerSec.toFixed(1),
      ago(w.heartbeatAt),
      String(
        w.leased,
      ),
    ]);
  }
  const width = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(width[i])).join("  ").trimEnd());
}

/** `spool batch status ID --store S`. */
export async function storeStatus(id: string, location: string, json: boolean): Promise<number> {
  return await withStore(location, async (store) => {
    const b = await store.getBatch(id);
    if (!b) notFound(id, store.path);
    const ws = await store.workers(id);
    if (json) {
      console.log(JSON.stringify({ batch: b, workers: ws }, null, 2));
      return 0;
    }
    const c = b.request_counts;
    console.log(
      `${b.id}  ${b.status}  ${c.completed + c.failed}/${c.total} done (${c.failed} failed` +
        `${c.cancelled ? `, ${c.cancelled} cancelled` : ""}), ${c.pending} pending` +
        (b.model_hash ? `  model sha256 ${b.model_hash.slice(0, 16)}…` : ""),
    );
    if (b.finalized_by) console.log(`finalized by ${b.finalized_by}`);
    for (const l of workerTable(ws)) console.log(l);
    return 0;
  });
}

/** `spool batch results ID --store S [--out OUT]`. */
export async function storeResults(
  id: string,
  location: string,
  out: string | undefined,
): Promise<number> {
  return await withStore(location, async (store) => {
    const b = await store.getBatch(id);
    if (!b) notFound(id, store.path);
    if (b.status === "in_progress" || b.status === "cancelling") {
      const c = b.request_counts;
      console.error(
        `batch ${id} is ${b.status} (${c.completed + c.failed} of ${c.total} done); ` +
          `results are written once it has ended`,
      );
      return 1;
    }
    if (out) {
      const n = await writeBatchOutput(store, id, out);
      console.error(`${out}: ${n} lines`);
    } else {
      for (const r of await store.results(id)) console.log(JSON.stringify(r.line));
    }
    return 0;
  });
}

/** `spool batch cancel ID --store S`. */
export async function storeCancel(id: string, location: string): Promise<number> {
  return await withStore(location, async (store) => {
    if (!(await store.getBatch(id))) notFound(id, store.path);
    const b = await store.cancelBatch(id);
    console.log(`${id}: ${b.status}`);
    return 0;
  });
}

/** Parse `ID --store S [--json] [--out OUT]`; null when --store is absent. */
export function parseStoreArgs(args: string[]): {
  id: string;
  store: string;
  json: boolean;
  out?: string;
} | null {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: false,
    options: {
      store: { type: "string" },
      json: { type: "boolean" },
      out: { type: "string", short: "o" },
    },
  });
  if (typeof v.store !== "string") return null;
  if (positionals.length !== 1) {
    throw Object.assign(new Error("takes exactly one batch ID"), { name: "UsageError" });
  }
  return {
    id: positionals[0],
    store: v.store,
    json: v.json === true,
    out: typeof v.out === "string" ? v.out : undefined,
  };
}
