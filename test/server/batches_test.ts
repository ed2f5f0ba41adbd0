/**
 * The batch APIs over a real socket with the official clients: OpenAI Files + Batches
 * (upload, validation with line numbers, lifecycle, output file, pagination, cancel) and
 * Anthropic Message Batches (create, results, cancel, delete); interactive requests are
 * served while a batch runs; a server restarted on the same store resumes a batch with no
 * lost and no duplicated results, and the answers equal those of the chat endpoint.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { postJSON, startServer } from "./_fixture.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

function jsonl(n: number, maxTokens = 6, prefix = "q"): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `${prefix}-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "spool-test",
        messages: [{ role: "user", content: `Tell me about item ${i}` }],
        max_tokens: maxTokens,
        temperature: 0,
      },
    })).join("\n") + "\n";
}

async function until<T>(f: () => Promise<T>, done: (x: T) => boolean, ms = 60000): Promise<T> {
  const t0 = Date.now();
  while (true) {
    const x = await f();
    if (done(x)) return x;
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${JSON.stringify(x)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: "batches: OpenAI Files + Batches with the openai SDK, and interactive requests in between",
  ...opts,
  async fn() {
    const dir = mkdtempSync(join(tmpdir(), "spool-srv-batch-"));
    const server = await startServer({ parallel: 3, batchStore: join(dir, "b.db") });
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
      // a bad file is refused with its line numbers
      const badText = jsonl(2).replace('"POST"', '"GET"') + "{oops\n";
      const bad = await client.files.create({
        file: await toFile(new TextEncoder().encode(badText), "bad.jsonl"),
        purpose: "batch",
      }).then(() => null, (e) => e);
      ok(bad instanceof OpenAI.BadRequestError, String(bad));
      match(String(bad.message), /line 1: method must be "POST".*line 3: not valid JSON/);
      // upload, create, watch the lifecycle
      const f = await client.files.create({
        file: await toFile(new TextEncoder().encode(jsonl(8)), "in.jsonl"),
        purpose: "batch",
      });
      equal(f.purpose, "batch");
      equal((await client.files.retrieve(f.id)).filename, "in.jsonl");
      const b = await client.batches.create({
        input_file_id: f.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
        metadata: { run: "t1" },
      });
      equal(b.status, "in_progress");
      equal(b.request_counts?.total, 8);
      // an interactive request while the batch runs is served without waiting for it
      const t0 = performance.now();
      const chat = await client.chat.completions.create({
        model: "spool-test",
        messages: [{ role: "user", content: "Tell me about item 3" }],
        max_tokens: 6,
        temperature: 0,
      });
      const interactiveMs = performance.now() - t0;
      const mid = await client.batches.retrieve(b.id);
      const fin = await until(() => client.batches.retrieve(b.id), (x) => x.status === "completed");
      ok(fin.request_counts!.completed === 8 && fin.request_counts!.failed === 0);
      ok(fin.completed_at! >= fin.in_progress_at!);
      deepEqual(fin.metadata, { run: "t1" });
      ok(
        mid.status === "in_progress" || interactiveMs < 5000,
        `interactive request took ${interactiveMs} ms`,
      );
      const text = await (await client.files.content(fin.output_file_id!)).text();
      const lines = text.trim().split("\n").map((l) => JSON.parse(l));
      deepEqual(lines.map((l) => l.custom_id), Array.from({ length: 8 }, (_, i) => `q-${i}`));
      for (const l of lines) {
        equal(l.response.status_code, 200);
        equal(l.response.body.object, "chat.completion");
        equal(l.error, null);
      }
      // the same request through the chat endpoint gives the same greedy answer
      equal(lines[3].response.body.choices[0].message.content, chat.choices[0].message.content);
      // list and pagination
      const b2 = await client.batches.create({
        input_file_id: f.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      const page = await client.batches.list({ limit: 1 });
      deepEqual(page.data.map((x) => x.id), [b2.id]);
      ok(page.has_more);
      const rest = await client.batches.list({ limit: 10, after: b2.id });
      deepEqual(rest.data.map((x) => x.id), [b.id]);
      // cancel
      const c = await client.batches.cancel(b2.id);
      ok(["cancelling", "cancelled", "completed"].includes(c.status), c.status);
      const cf = await until(
        () => client.batches.retrieve(b2.id),
        (x) => x.status !== "cancelling",
      );
      ok(["cancelled", "completed"].includes(cf.status), cf.status);
      equal(cf.request_counts!.total, 8);
      // a wrong endpoint and an unknown file are 400s in the OpenAI envelope
      const r = await postJSON(`${server.url}/v1/batches`, {
        input_file_id: f.id,
        endpoint: "/v1/embeddings",
      });
      equal(r.status, 400);
      equal((r.body.error as { param: string }).param, "endpoint");
      equal(
        (await postJSON(`${server.url}/v1/batches`, {
          input_file_id: "file-nope",
          endpoint: "/v1/chat/completions",
        })).status,
        400,
      );
      // delete the input file
      const del = await client.files.delete(f.id);
      ok(del.deleted);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
});

Deno.test({
  name: "batches: Anthropic Message Batches with the SDK; a restart resumes with nothing lost",
  ...opts,
  async fn() {
    const dir = mkdtempSync(join(tmpdir(), "spool-srv-batch-"));
    const store = join(dir, "b.db");
    let server = await startServer({ parallel: 2, batchStore: store });
    try {
      let client = new Anthropic({ baseURL: server.url, apiKey: "none", maxRetries: 0 });
      const requests = Array.from({ length: 10 }, (_, i) => ({
        custom_id: `a-${i}`,
        params: {
          model: "spool-test",
          max_tokens: 24,
          temperature: 0,
          messages: [{ role: "user" as const, content: `Question number ${i}` }],
        },
      }));
      const b = await client.messages.batches.create({ requests });
      equal(b.type, "message_batch");
      equal(b.processing_status, "in_progress");
      // stop the server while the batch runs, start another on the same store
      await until(
        () => client.messages.batches.retrieve(b.id),
        (x) => x.request_counts.succeeded >= 2,
      );
      await server.close();
      server = await startServer({ parallel: 2, batchStore: store });
      client = new Anthropic({ baseURL: server.url, apiKey: "none", maxRetries: 0 });
      const fin = await until(
        () => client.messages.batches.retrieve(b.id),
        (x) => x.processing_status === "ended",
      );
      equal(fin.request_counts.succeeded, 10);
      ok(fin.results_url?.endsWith(`/v1/messages/batches/${b.id}/results`));
      const results = [];
      for await (const r of await client.messages.batches.results(b.id)) results.push(r);
      deepEqual(results.map((r) => r.custom_id), requests.map((r) => r.custom_id));
      for (const r of results) {
        equal(r.result.type, "succeeded");
        if (r.result.type === "succeeded") equal(r.result.message.type, "message");
      }
      // the answers equal the messages endpoint's
      const direct = await client.messages.create(requests[7].params);
      const r7 = results[7].result;
      if (r7.type === "succeeded") deepEqual(r7.message.content, direct.content);
      // cancel a long one, then delete it
      const long = await client.messages.batches.create({
        requests: Array.from({ length: 20 }, (_, i) => ({
          custom_id: `l-${i}`,
          params: { ...requests[0].params, max_tokens: 40 },
        })),
      });
      const c = await client.messages.batches.cancel(long.id);
      ok(["canceling", "ended"].includes(c.processing_status));
      const cf = await until(
        () => client.messages.batches.retrieve(long.id),
        (x) => x.processing_status === "ended",
      );
      ok(cf.request_counts.canceled > 0, JSON.stringify(cf.request_counts));
      equal(
        cf.request_counts.canceled + cf.request_counts.succeeded,
        20,
      );
      const list = await client.messages.batches.list({ limit: 10 });
      ok(list.data.some((x) => x.id === long.id));
      const d = await client.messages.batches.delete(long.id);
      equal(d.type, "message_batch_deleted");
      // bad requests are 400s in Anthropic's envelope
      const r = await postJSON(`${server.url}/v1/messages/batches`, {
        requests: [{ custom_id: "x" }],
      });
      equal(r.status, 400);
      equal(r.body.type, "error");
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
