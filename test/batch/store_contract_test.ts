/**
 * The batch store interface, the same cases against SQLite and a real PostgreSQL (a
 * throwaway cluster; skipped with a message when PostgreSQL is not installed): exactly-once
 * commits under racing double commits from two connections, disjoint leases
 * (`FOR UPDATE SKIP LOCKED`), heartbeats that keep a lease and leases that run out, one
 * finalization, three runners splitting one batch, a model-hash refusal, a dead worker's
 * leases taken over after the timeout, cancel reaching every worker; the runner's one call
 * per pass (`exchange`: commits once, leases only while in progress, reads the status, takes
 * back leases whose answer was lost), results and leases whose answer was lost (a cut after
 * the call ran, then one before) retried so each lands once and nothing waits for a lease
 * to run out, never more than B running (2·B more are queued; in the batch's tail a lease
 * leaves at most B + B/4 in hand; with PostgreSQL results go in batches, at most one
 * exchange per two results), and a cancel seen within a step or two of a stepped executor
 * rather than by the poll. PostgreSQL only:
 * connections killed with pg_terminate_backend and a server restart mid-run (retried, no
 * committed result lost, counts never go down), and bad input (a malformed connection
 * string, a schema of another version, left untouched).
 *
 * The runners use a small executor that answers from the request body, so every line's
 * content is known; the model end to end is test/batch/fleet_test.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BatchStore } from "../../runtime/batch/store.ts";
import { PgBatchStore } from "../../runtime/batch/pg_store.ts";
import { reportSkip, startPostgres } from "./_pg.ts";
import { badInput, connectionLoss, diskFull, SHARED } from "./_store_cases.ts";

Deno.test({
  name: "batch store contract: SQLite",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = mkdtempSync(join(tmpdir(), "spool-contract-"));
    try {
      let k = 0;
      for (const [name, f] of SHARED) {
        const db = join(dir, `s${k++}.db`);
        await t.step(name, () => f(() => Promise.resolve(BatchStore.open(db))));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});

Deno.test({
  name: "batch store contract: PostgreSQL",
  ignore: reportSkip("batch store contract: PostgreSQL"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const pg = await startPostgres();
    if (typeof pg === "string") throw new Error(pg);
    try {
      for (const [name, f] of SHARED) {
        await t.step(name, () => f((app) => PgBatchStore.connect(pg.url, { appName: app })));
      }
      await t.step("lost connections and a server restart are retried", () => connectionLoss(pg));
      await t.step("bad connection strings and schema versions", () => badInput(pg));
      await t.step("a full disk fails the batch, keeps every result, resumes", async () => {
        const skipped = await diskFull(pg);
        if (skipped) console.log(`SKIP the full-disk case: ${skipped}`);
      });
    } finally {
      pg.stop();
    }
  },
});
