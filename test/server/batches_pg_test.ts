/**
 * Two `spool serve` instances on one PostgreSQL batch store (a throwaway cluster; skipped
 * with a message when PostgreSQL is absent), with the official clients: a batch uploaded
 * and created on one server is visible on the other, both work on it (each registers as a
 * worker; together they commit each request once), its output file is served by either,
 * and its answers equal the chat endpoint's; an Anthropic batch created on one and
 * cancelled on the other ends with one result per request.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { PgBatchStore } from "../../runtime/batch/pg_store.ts";
import { reportSkip, startPostgres } from "../batch/_pg.ts";
import { startServer } from "./_fixture.ts";

function jsonl(n: number): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `q-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "spool-test",
        messages: [{ role: "user", content: `Tell me about item ${i}` }],
        max_tokens: 8,
        temperature: 0,
      },
    })).join("\n") + "\n";
}

async function until<T>(f: () => Promise<T>, done: (x: T) => boolean, ms = 90000): Promise<T> {
  const t0 = Date.now();
  while (true) {
    const x = await f();
    if (done(x)) return x;
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${JSON.stringify(x)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name: "batches: two servers share one PostgreSQL store",
  ignore: reportSkip("batches on two servers"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const pg = await startPostgres();
    if (typeof pg === "string") throw new Error(pg);
    const admin = await PgBatchStore.connect(pg.url);
    const a = await startServer({ parallel: 2, batchStore: pg.url, batchLeaseSeconds: 5 });
    const b = await startServer({ parallel: 2, batchStore: pg.url, batchLeaseSeconds: 5 });
    try {
      const ca = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: "none", maxRetries: 0 });
      const cb = new OpenAI({ baseURL: `${b.url}/v1`, apiKey: "none", maxRetries: 0 });
      const f = await ca.files.create({
        file: await toFile(new TextEncoder().encode(jsonl(16)), "in.jsonl"),
        purpose: "batch",
      });
      equal((await cb.files.retrieve(f.id)).filename, "in.jsonl");
      const batch = await ca.batches.create({
        input_file_id: f.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      const fin = await until(() => cb.batches.retrieve(batch.id), (x) => x.status === "completed");
      equal(fin.request_counts!.completed, 16);
      const text = await (await cb.files.content(fin.output_file_id!)).text();
      equal(text, await (await ca.files.content(fin.output_file_id!)).text());
      const lines = text.trim().split("\n").map((l) => JSON.parse(l));
      deepEqual(lines.map((l) => l.custom_id), Array.from({ length: 16 }, (_, i) => `q-${i}`));
      const ws = await admin.workers(batch.id);
      equal(ws.length, 2, "both servers worked on it");
      equal(ws.reduce((s, w) => s + w.done, 0), 16, "each request committed once");
      console.log(`  requests per server: ${ws.map((w) => w.done).join(" + ")}`);
      const chat = await cb.chat.completions.create({
        model: "spool-test",
        messages: [{ role: "user", content: "Tell me about item 5" }],
        max_tokens: 8,
        temperature: 0,
      });
      equal(lines[5].response.body.choices[0].message.content, chat.choices[0].message.content);

      // Anthropic: created on b, cancelled on a
      const aa = new Anthropic({ baseURL: a.url, apiKey: "none", maxRetries: 0 });
      const ab = new Anthropic({ baseURL: b.url, apiKey: "none", maxRetries: 0 });
      const mb = await ab.messages.batches.create({
        requests: Array.from({ length: 12 }, (_, i) => ({
          custom_id: `m-${i}`,
          params: {
            model: "spool-test",
            max_tokens: 60,
            messages: [{ role: "user", content: `Story ${i}` }],
          },
        })),
      });
      await until(() => aa.messages.batches.retrieve(mb.id), (x) => x.request_counts.succeeded > 0);
      await aa.messages.batches.cancel(mb.id);
      const ended = await until(
        () => ab.messages.batches.retrieve(mb.id),
        (x) => x.processing_status === "ended",
      );
      ok(ended.request_counts.canceled > 0, JSON.stringify(ended.request_counts));
      const got: string[] = [];
      for await (const r of await aa.messages.batches.results(mb.id)) got.push(r.custom_id);
      deepEqual(got, Array.from({ length: 12 }, (_, i) => `m-${i}`));
    } finally {
      await a.close();
      await b.close();
      await admin.close();
      pg.stop();
    }
  },
});
