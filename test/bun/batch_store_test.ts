/**
 * The PostgreSQL batch store under Bun (postgres.js on Bun's runtime): the store contract's
 * cases against a throwaway cluster, skipped with a message when PostgreSQL is absent.
 */
import { afterAll, beforeAll, test } from "bun:test";
import { PgBatchStore } from "../../runtime/batch/pg_store.ts";
import { type PgCluster, reportSkip, startPostgres } from "../batch/_pg.ts";
import { connectionLoss, SHARED } from "../batch/_store_cases.ts";

const skip = reportSkip("Bun: PostgreSQL batch store");
let pg: PgCluster | null = null;

beforeAll(async () => {
  if (skip) return;
  const c = await startPostgres();
  if (typeof c === "string") throw new Error(c);
  pg = c;
}, 120000);

afterAll(() => pg?.stop());

for (const [name, f] of SHARED) {
  test.skipIf(skip)(`Bun, PostgreSQL store: ${name}`, async () => {
    await f((app) => PgBatchStore.connect(pg!.url, { appName: app }));
  }, 30000);
}

test.skipIf(skip)("Bun, PostgreSQL store: lost connections and a restart are retried", async () => {
  await connectionLoss(pg!);
}, 60000);
