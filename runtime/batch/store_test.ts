/**
 * The batch store and runner: input validation with line numbers, exactly-once commits,
 * output and error files in input order, cancellation, pagination, resuming after a
 * stop, and a full disk (SQLite's page limit standing in for the device) that fails the
 * batch and keeps every committed result.
 *
 * The runner is driven by a small executor function of its own here (it answers from the
 * request body, so every line's content is known); the end-to-end test with the real
 * model and kill -9 is test/batch/crash_test.ts.
 */
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  anthropicBatchObject,
  openaiBatchObject,
  parseAnthropicRequests,
  parseOpenAIBatchInput,
} from "./formats.ts";
import { BatchRunner, type Executor } from "./runner.ts";
import { BatchStore, StoreError, StoreFullError } from "./store.ts";

function tmp(): { dir: string; db: string } {
  const dir = mkdtempSync(join(tmpdir(), "spool-batch-"));
  return { dir, db: join(dir, "b.db") };
}

function lines(n: number, url = "/v1/chat/completions"): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `c${i}`,
      method: "POST",
      url,
      body: { messages: [{ role: "user", content: `q${i}` }], max_tokens: 4 },
    })).join("\n") + "\n";
}

/** Answers "echo <content>" after `delayMs`; a content of "bad" gets a 400. */
function echo(delayMs = 0, calls: string[] = []): Executor {
  return async (endpoint, body, signal) => {
    const q = (body.messages as { content: string }[])[0].content;
    calls.push(q);
    await new Promise((r) => setTimeout(r, delayMs));
    if (signal.aborted) throw new Error("aborted");
    if (q === "bad") {
      return {
        status: 400,
        body: { error: { message: "bad request", type: "invalid_request_error" } },
      };
    }
    return {
      status: 200,
      body: {
        endpoint,
        choices: [{ message: { content: `echo ${q}` } }],
        usage: { completion_tokens: 2 },
      },
    };
  };
}

Deno.test("batch input: OpenAI lines validated with line numbers", () => {
  const good = lines(3);
  const r = parseOpenAIBatchInput(good);
  equal(r.errors.length, 0);
  equal(r.requests.length, 3);
  equal(r.url, "/v1/chat/completions");
  const bad = [
    lines(1).trim(),
    "{not json",
    JSON.stringify({
      custom_id: "c0",
      method: "POST",
      url: "/v1/chat/completions",
      body: { messages: [] },
    }),
    JSON.stringify({ custom_id: "x", method: "GET", url: "/v1/chat/completions", body: {} }),
    JSON.stringify({ custom_id: "y", method: "POST", url: "/v1/embeddings", body: {} }),
    JSON.stringify({
      custom_id: "z",
      method: "POST",
      url: "/v1/completions",
      body: { prompt: "p" },
    }),
    "",
    JSON.stringify({
      custom_id: "w",
      method: "POST",
      url: "/v1/chat/completions",
      body: { messages: [], stream: true },
    }),
  ].join("\n");
  const e = parseOpenAIBatchInput(bad);
  deepStrictEqual(e.errors.map((x) => x.line), [2, 3, 4, 5, 6, 8]);
  ok(/JSON/.test(e.errors[0].message));
  ok(/more than once/.test(e.errors[1].message));
  ok(/differs/.test(e.errors[4].message));
  equal(parseOpenAIBatchInput("\n\n").errors[0].message, "the file has no requests");
  const a = parseAnthropicRequests([
    { custom_id: "a-1", params: { messages: [], max_tokens: 5 } },
    { custom_id: "a 2", params: { messages: [], max_tokens: 5 } },
    { custom_id: "a-1", params: { messages: [], max_tokens: 5 } },
    { custom_id: "a3", params: { messages: [] } },
  ]);
  equal(a.requests.length, 1);
  deepStrictEqual(a.errors.map((x) => x.line), [1, 2, 3]);
});

Deno.test("batch store: run to completion, output in input order, exactly once", async () => {
  const { dir, db } = tmp();
  try {
    const store = BatchStore.open(db);
    const text = lines(5).replace('"q3"', '"bad"');
    const f = store.createFile("batch", "in.jsonl", new TextEncoder().encode(text));
    equal(f.bytes, new TextEncoder().encode(text).byteLength);
    const input = parseOpenAIBatchInput(text);
    const b = store.createBatch({
      kind: "openai",
      endpoint: input.url!,
      inputFileId: f.id,
      metadata: { job: "t" },
      requests: input.requests,
    });
    equal(b.status, "in_progress");
    deepStrictEqual(b.request_counts, {
      total: 5,
      completed: 0,
      failed: 0,
      cancelled: 0,
      expired: 0,
      pending: 5,
    });
    const progress: number[] = [];
    const runner = new BatchRunner(store, echo(5), {
      concurrency: 2,
      onProgress: (p) => progress.push(p.done),
    });
    const done = await runner.runBatch(b.id);
    equal(done.status, "completed");
    equal(done.request_counts.completed, 4);
    equal(done.request_counts.failed, 1);
    deepStrictEqual(progress.slice(-1), [5]);
    ok(done.output_file_id && done.error_file_id);
    const out = new TextDecoder().decode(store.fileContent(done.output_file_id!)!).trim()
      .split("\n").map((l) => JSON.parse(l));
    deepStrictEqual(out.map((l) => l.custom_id), ["c0", "c1", "c2", "c4"]);
    equal(out[2].response.status_code, 200);
    equal(out[2].response.body.choices[0].message.content, "echo q2");
    equal(out[2].error, null);
    ok(/^batch_req_/.test(out[0].id));
    const err = JSON.parse(new TextDecoder().decode(store.fileContent(done.error_file_id!)!));
    equal(err.custom_id, "c3");
    equal(err.response.status_code, 400);
    // a second commit of a finished request changes nothing
    equal(store.commitResult(b.id, 0, true, { dup: true }), false);
    equal(store.results(b.id).length, 5);
    const o = openaiBatchObject(store.getBatch(b.id)!);
    equal(o.object, "batch");
    deepStrictEqual(o.request_counts, { total: 5, completed: 4, failed: 1 });
    deepStrictEqual(o.metadata, { job: "t" });
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("batch store: stop and resume runs each request once; cancel marks the rest", async () => {
  const { dir, db } = tmp();
  try {
    let store = BatchStore.open(db);
    const input = parseOpenAIBatchInput(lines(12));
    const b = store.createBatch({ kind: "openai", endpoint: input.url!, requests: input.requests });
    const calls: string[] = [];
    let runner = new BatchRunner(store, echo(10, calls), {
      concurrency: 3,
      onProgress: (p) => {
        if (p.done >= 4) runner.stop();
      },
    });
    const mid = await runner.runBatch(b.id);
    equal(mid.status, "in_progress");
    const saved = mid.request_counts.completed;
    ok(saved >= 4 && saved < 12, `saved ${saved}`);
    store.close();
    // "restart": a new store object over the same file
    store = BatchStore.open(db);
    const calls2: string[] = [];
    runner = new BatchRunner(store, echo(1, calls2), { concurrency: 4 });
    const end = await runner.runBatch(b.id);
    equal(end.status, "completed");
    equal(end.request_counts.completed, 12);
    equal(calls2.length, 12 - saved, "only the unsaved requests ran again");
    const ids = store.results(b.id).map((r) => r.customId);
    deepStrictEqual(ids, Array.from({ length: 12 }, (_, i) => `c${i}`));
    // cancel: a batch cancelled while running keeps what finished, the rest is cancelled
    const c = store.createBatch({
      kind: "anthropic",
      endpoint: "/v1/messages",
      requests: input.requests,
    });
    const cr = new BatchRunner(store, echo(15), {
      concurrency: 2,
      onProgress: (p) => {
        if (p.done === 3) {
          store.cancelBatch(c.id);
          cr.poke();
        }
      },
    });
    const fin = await cr.runBatch(c.id);
    equal(fin.status, "cancelled");
    ok(fin.request_counts.completed >= 3);
    equal(fin.request_counts.completed + fin.request_counts.cancelled, 12);
    const res = store.results(c.id);
    equal(res.length, 12);
    const types = res.map((r) => (r.line as { result: { type: string } }).result.type);
    ok(types.includes("succeeded") && types.includes("canceled"));
    const ao = anthropicBatchObject(fin, "http://x");
    equal(ao.processing_status, "ended");
    equal(ao.results_url, `http://x/v1/messages/batches/${c.id}/results`);
    // list: newest first, cursor pagination per kind
    const more = store.createBatch({
      kind: "openai",
      endpoint: input.url!,
      requests: input.requests,
    });
    const p1 = store.listBatches("openai", { limit: 1 });
    deepStrictEqual(p1.data.map((x) => x.id), [more.id]);
    ok(p1.hasMore);
    const p2 = store.listBatches("openai", { limit: 5, after: more.id });
    deepStrictEqual(p2.data.map((x) => x.id), [b.id]);
    equal(p2.hasMore, false);
    throws(() => store.deleteBatch(more.id), StoreError);
    store.deleteBatch(c.id);
    equal(store.getBatch(c.id), null);
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("batch store: a full disk fails the batch, keeps what was saved, resumes later", async () => {
  const { dir, db } = tmp();
  try {
    const store = BatchStore.open(db);
    const input = parseOpenAIBatchInput(lines(40));
    const b = store.createBatch({ kind: "openai", endpoint: input.url!, requests: input.requests });
    // the database may not grow past its current size plus a little: results need room
    const pages = Number(
      (store.db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count,
    );
    store.db.exec(`PRAGMA max_page_count = ${pages + 2}`);
    const big: Executor = (_e, body) =>
      Promise.resolve({
        status: 200,
        body: { text: "x".repeat(3000), q: (body.messages as { content: string }[])[0].content },
      });
    const runner = new BatchRunner(store, big, { concurrency: 2 });
    await rejects(runner.runBatch(b.id), StoreFullError);
    const after = store.getBatch(b.id)!;
    const saved = after.request_counts.completed;
    ok(saved > 0 && saved < 40, `saved ${saved}`);
    // every saved result is whole
    for (const r of store.results(b.id)) {
      equal((r.line as { response: { body: { text: string } } }).response.body.text.length, 3000);
    }
    // space again: resume finishes the rest, nothing twice
    store.db.exec("PRAGMA max_page_count = 1073741823");
    if (after.status === "failed") store.resumeBatch(b.id);
    const end = await new BatchRunner(store, big, { concurrency: 2 }).runBatch(b.id);
    equal(end.status, "completed");
    equal(end.request_counts.completed, 40);
    deepStrictEqual(
      store.results(b.id).map((r) => r.customId),
      Array.from({ length: 40 }, (_, i) => `c${i}`),
    );
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("the store and its WAL files are created owner-only (0600): they hold prompts", () => {
  const { dir, db } = tmp();
  try {
    const s = BatchStore.open(db);
    s.close();
    for (const f of [db, `${db}-wal`, `${db}-shm`]) {
      let mode: number;
      try {
        mode = statSync(f).mode & 0o777;
      } catch {
        continue; // WAL files are removed on a clean close
      }
      equal(mode, 0o600, f);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("batch runner: progressMs coalesces count queries; completionTokens stays exact", async () => {
  const { dir, db } = tmp();
  try {
    const store = BatchStore.open(db);
    const input = parseOpenAIBatchInput(lines(6));
    const b = store.createBatch({ kind: "openai", endpoint: input.url!, requests: input.requests });
    const progress: number[] = [];
    const runner = new BatchRunner(store, echo(2), {
      concurrency: 2,
      progressMs: 60_000,
      onProgress: (p) => progress.push(p.done),
    });
    const done = await runner.runBatch(b.id);
    equal(done.request_counts.completed, 6);
    deepStrictEqual(progress, [1]); // the first commit reports; the rest fall in the interval
    equal(runner.completionTokens, 12); // 2 per answer, counted without the reports
    store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
