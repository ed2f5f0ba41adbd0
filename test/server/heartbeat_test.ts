/**
 * Quiet streams get keep-alives (a long prefill on a model paged from disk can take minutes,
 * and clients cut silent connections): SSE comments on OpenAI streams, `ping` events on
 * Anthropic ones; the official SDKs read such streams unchanged.
 */
import { equal, ok } from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { startServer } from "./_fixture.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name: "heartbeat: keep-alives on quiet streams; the SDKs still parse them",
  ...opts,
  async fn() {
    // a 1 ms period: every await in the stream leaves room for keep-alives
    const server = await startServer({ heartbeatMs: 1, batchStore: false });
    try {
      const long = "the expert cache reads experts from the disk ".repeat(40);
      const raw = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          messages: [{ role: "user", content: long }],
          max_tokens: 16,
          stream: true,
        }),
      });
      const text = await raw.text();
      const beats = text.split("\n").filter((l) => l === ": keep-alive").length;
      ok(beats > 0, "no keep-alive comment in the OpenAI stream");
      ok(text.trimEnd().endsWith("data: [DONE]"));
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
      let n = 0;
      for await (
        const ch of await client.chat.completions.create({
          model: "spool-test",
          messages: [{ role: "user", content: long }],
          max_tokens: 8,
          stream: true,
          temperature: 0,
        })
      ) if (ch.choices[0]?.delta?.content !== undefined) n++;
      ok(n > 0);
      const a = await fetch(`${server.url}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "spool-test",
          max_tokens: 16,
          stream: true,
          messages: [{ role: "user", content: long }],
        }),
      });
      const at = await a.text();
      const pings = at.split("\n").filter((l) => l === "event: ping").length;
      ok(pings > 1, `${pings} ping events (the protocol's own is one)`);
      const ac = new Anthropic({ baseURL: server.url, apiKey: "none", maxRetries: 0 });
      const m = await ac.messages.stream({
        model: "spool-test",
        max_tokens: 8,
        messages: [{ role: "user", content: long }],
      }).finalMessage();
      equal(m.type, "message");
      equal(m.usage.output_tokens, 8);
    } finally {
      await server.close();
    }
  },
});
