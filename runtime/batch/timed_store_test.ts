/**
 * timedStore: every call into a real (SQLite) batch store is counted and timed per method,
 * values and errors pass through unchanged, and getters that read private fields still work
 * through the wrapper.
 */
import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openBatchStore } from "./open_store.ts";
import { timedStore } from "./timed_store.ts";
import { StoreError } from "./store_types.ts";

Deno.test("timedStore: counts and times each store call, passes values and errors through", async () => {
  const dir = mkdtempSync(join(tmpdir(), "spool-timed-"));
  const db = join(dir, "t.db");
  const inner = await openBatchStore(db);
  const { store, timing } = timedStore(inner);
  try {
    equal(store.path, inner.path); // a getter over the store's own state
    const requests = [0, 1, 2].map((i) => ({
      customId: `c${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m", messages: [{ role: "user", content: `q${i}` }] },
    }));
    const b = await store.createBatch({
      kind: "openai",
      endpoint: "/v1/chat/completions",
      requests,
    });
    const got = await store.getBatch(b.id);
    deepStrictEqual(got, await inner.getBatch(b.id)); // the same value as unwrapped
    equal(got!.request_counts.total, 3);
    await rejects(async () => {
      await store.cancelBatch("batch_missing");
    }, StoreError);
    equal(timing.byMethod.createBatch.calls, 1);
    equal(timing.byMethod.getBatch.calls, 1); // the unwrapped call is not counted
    equal(timing.byMethod.cancelBatch.calls, 1); // a failed call counts too
    equal(timing.calls, 3);
    ok(timing.ms > 0 && timing.ms >= timing.byMethod.createBatch.ms);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
