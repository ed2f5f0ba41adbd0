/**
 * spool serve over a real socket with the official `openai` SDK and plain fetch: chat
 * (streamed and not), usage with cached tokens from the prefix cache, logprobs, stop,
 * seeds, completions, models, tokenize/detokenize, error envelopes, 401, context overflow,
 * queue full, /health while generating, disconnect cancellation, and metrics.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import OpenAI from "openai";
import { postJSON, startServer } from "./_fixture.ts";

const KEY = "sk-test-0123456789";

Deno.test({
  name: "openai: SDK chat, streaming, usage, prefix cache, logprobs, completions",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = await startServer({ apiKey: KEY, parallel: 2 });
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
    try {
      const messages: OpenAI.ChatCompletionMessageParam[] = [
        { role: "system", content: "You are terse." },
        { role: "user", content: [{ type: "text", text: "Say hello" }] },
      ];
      let first = "";
      await t.step("non-streaming chat: text, finish length, usage", async () => {
        const r = await client.chat.completions.create({
          model: "spool-test",
          messages,
          max_tokens: 12,
          temperature: 0,
        });
        equal(r.object, "chat.completion");
        equal(r.model, "spool-test");
        equal(r.choices[0].finish_reason, "length");
        equal(r.choices[0].message.role, "assistant");
        first = r.choices[0].message.content ?? "";
        ok(first.length > 0);
        equal(r.usage!.completion_tokens, 12);
        const n = await postJSON(`${server.url}/tokenize`, { content: "x" }, auth());
        ok(Array.isArray(n.body.tokens));
        ok(r.usage!.prompt_tokens > 10, `prompt tokens ${r.usage!.prompt_tokens}`);
        equal(r.usage!.total_tokens, r.usage!.prompt_tokens + 12);
      });

      await t.step(
        "greedy is deterministic; the second turn reuses the cached prefix",
        async () => {
          const r = await client.chat.completions.create({
            model: "spool-test",
            messages,
            max_tokens: 12,
            temperature: 0,
          });
          equal(r.choices[0].message.content, first);
          // the same prompt again: everything but the last prompt token comes from the cache
          equal(r.usage!.prompt_tokens_details!.cached_tokens, r.usage!.prompt_tokens - 1);
          // turn 2: history plus a new user message, sent with the client's session header
          const turn2 = await client.chat.completions.create({
            model: "spool-test",
            messages: [...messages, { role: "assistant", content: first }, {
              role: "user",
              content: "And again",
            }],
            max_tokens: 4,
            temperature: 0,
          }, { headers: { "x-session-affinity": "s1" } });
          const cached = turn2.usage!.prompt_tokens_details!.cached_tokens!;
          ok(
            cached >= r.usage!.prompt_tokens - 1,
            `cached ${cached} of ${turn2.usage!.prompt_tokens}`,
          );
          ok(cached < turn2.usage!.prompt_tokens);
        },
      );

      await t.step("streaming: chunks join to the same text; include_usage; [DONE]", async () => {
        const stream = await client.chat.completions.create({
          model: "spool-test",
          messages,
          max_tokens: 12,
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true },
        });
        let text = "";
        let finish: string | null = null;
        let usage: OpenAI.CompletionUsage | undefined;
        let chunks = 0;
        for await (const ch of stream) {
          chunks++;
          if (ch.usage) usage = ch.usage;
          for (const c of ch.choices) {
            text += c.delta.content ?? "";
            if (c.finish_reason) finish = c.finish_reason;
          }
        }
        equal(text, first);
        equal(finish, "length");
        equal(usage!.completion_tokens, 12);
        ok(chunks >= 3);
      });

      await t.step("seeded sampling repeats; stop strings cut the text", async () => {
        const ask = (seed: number) =>
          client.chat.completions.create({
            model: "spool-test",
            messages,
            max_tokens: 10,
            temperature: 1,
            top_p: 0.9,
            seed,
            presence_penalty: 0.5,
          });
        const [a, b] = [await ask(7), await ask(7)];
        equal(a.choices[0].message.content, b.choices[0].message.content);
        // a stop string taken from the greedy text ends the output right before it
        const stop = first.slice(3, 6);
        ok(stop.length > 0);
        const r = await client.chat.completions.create({
          model: "spool-test",
          messages,
          max_tokens: 12,
          temperature: 0,
          stop: [stop],
        });
        equal(r.choices[0].finish_reason, "stop");
        equal(r.choices[0].message.content, first.slice(0, first.indexOf(stop)));
      });

      await t.step("logprobs and top_logprobs", async () => {
        const r = await client.chat.completions.create({
          model: "spool-test",
          messages,
          max_tokens: 4,
          temperature: 0,
          logprobs: true,
          top_logprobs: 3,
        });
        const lp = r.choices[0].logprobs!.content!;
        equal(lp.length, 4);
        for (const e of lp) {
          equal(e.top_logprobs.length, 3);
          ok(e.logprob <= 0);
          // greedy: the chosen token is the most likely one
          equal(e.top_logprobs[0].token, e.token);
          equal(e.top_logprobs[0].logprob, e.logprob);
          ok(e.top_logprobs[1].logprob <= e.top_logprobs[0].logprob);
          deepEqual(e.bytes, [...new TextEncoder().encode(e.token)].length ? e.bytes : []);
        }
        equal(
          lp.map((e) => e.token).join(""),
          first.slice(0, lp.map((e) => e.token).join("").length),
        );
      });

      await t.step("completions, models, tokenize/detokenize", async () => {
        const c = await client.completions.create({
          model: "spool-test",
          prompt: "Once upon a time",
          max_tokens: 5,
          temperature: 0,
        });
        equal(c.object, "text_completion");
        equal(c.usage!.completion_tokens, 5);
        ok(c.choices[0].text.length > 0);
        const models = await client.models.list();
        equal(models.data[0].id, "spool-test");
        equal((models.data[0] as unknown as { context_length: number }).context_length, 512);
        const tk = await postJSON(`${server.url}/tokenize`, { content: "Hello world" }, auth());
        equal(tk.status, 200);
        const ids = tk.body.tokens as number[];
        deepEqual(ids, [9707, 1879]);
        const dt = await postJSON(`${server.url}/detokenize`, { tokens: ids }, auth());
        equal(dt.body.content, "Hello world");
      });
    } finally {
      await server.close();
    }
  },
});

function auth(): Record<string, string> {
  return { authorization: `Bearer ${KEY}` };
}

Deno.test({
  name: "openai: error envelopes, 401, overflow, queue full, health while generating, cancel",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = await startServer({ apiKey: KEY, parallel: 1, maxQueue: 0, nCtx: 256 });
    const url = `${server.url}/v1/chat/completions`;
    const hello = [{ role: "user", content: "hi" }];
    try {
      await t.step("401 with a bad or missing key, in each API's envelope", async () => {
        const a = await postJSON(url, { messages: hello }, { authorization: "Bearer nope" });
        equal(a.status, 401);
        equal((a.body.error as Record<string, unknown>).code, "invalid_api_key");
        ok("param" in (a.body.error as object) && "type" in (a.body.error as object));
        const b = await postJSON(`${server.url}/v1/messages`, { messages: hello, max_tokens: 1 });
        equal(b.status, 401);
        equal(b.body.type, "error");
        equal((b.body.error as Record<string, unknown>).type, "authentication_error");
        // the SDK surfaces it as its typed error
        const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "wrong", maxRetries: 0 });
        try {
          await bad.chat.completions.create({
            model: "m",
            messages: [{ role: "user", content: "x" }],
          });
          ok(false, "expected a 401");
        } catch (e) {
          ok(e instanceof OpenAI.AuthenticationError, String(e));
        }
        // /health needs no key
        equal((await fetch(`${server.url}/health`)).status, 200);
      });

      await t.step("validation: 400 with param; unknown params ignored; bad JSON", async () => {
        const a = await postJSON(url, { messages: hello, temperature: 5 }, auth());
        equal(a.status, 400);
        const err = a.body.error as Record<string, unknown>;
        equal(err.type, "invalid_request_error");
        equal(err.param, "temperature");
        const b = await postJSON(url, { messages: [] }, auth());
        equal(b.status, 400);
        equal((b.body.error as Record<string, unknown>).param, "messages");
        const c = await postJSON(url, "{not json", auth());
        equal(c.status, 400);
        const d = await postJSON(url, {
          messages: hello,
          max_tokens: 2,
          some_future_param: { x: 1 },
          store: true,
          user: "u",
        }, auth());
        equal(d.status, 200, JSON.stringify(d.body));
        const img = await postJSON(url, {
          messages: [{
            role: "user",
            content: [{ type: "image_url", image_url: { url: "data:," } }],
          }],
        }, auth());
        equal(img.status, 400);
        match(String((img.body.error as Record<string, unknown>).message), /text-only/);
        const nf = await postJSON(`${server.url}/v1/nothing`, {}, auth());
        equal(nf.status, 404);
        ok(nf.body.error);
      });

      await t.step(
        "a prompt over the context is a 400; max_tokens past it is a length stop",
        async () => {
          const long = "word ".repeat(400);
          const a = await postJSON(url, { messages: [{ role: "user", content: long }] }, auth());
          equal(a.status, 400);
          equal((a.body.error as Record<string, unknown>).code, "context_length_exceeded");
          // max_tokens far beyond the context (OpenCode sends 32000): stops at the context end
          const b = await postJSON(
            url,
            { messages: hello, max_tokens: 32000, temperature: 0 },
            auth(),
          );
          equal(b.status, 200, JSON.stringify(b.body));
          const choice = (b.body.choices as Record<string, unknown>[])[0];
          const usage = b.body.usage as Record<string, number>;
          if (choice.finish_reason === "length") {
            equal(usage.prompt_tokens + usage.completion_tokens, 257); // the last token needs no KV row
          } else equal(choice.finish_reason, "stop");
        },
      );

      await t.step(
        "/health answers while generating; queue full is 503 + retry-after; cancel",
        async () => {
          const base = (await server.engine.stats()).scheduler.tokensGenerated;
          const ac = new AbortController();
          const res = await fetch(url, {
            method: "POST",
            headers: { ...auth(), "content-type": "application/json" },
            body: JSON.stringify({ messages: hello, max_tokens: 200, stream: true }),
            signal: ac.signal,
          });
          equal(res.status, 200);
          const reader = res.body!.getReader();
          await reader.read(); // role chunk
          await reader.read(); // generation is under way
          const times: number[] = [];
          for (let i = 0; i < 10; i++) {
            const t0 = performance.now();
            const h = await fetch(`${server.url}/health`);
            equal(h.status, 200);
            await h.body?.cancel();
            times.push(performance.now() - t0);
          }
          times.sort((a, b) => a - b);
          ok(times[9] < 100, `health took ${times[9].toFixed(1)} ms`);
          // the only slot is busy and the queue holds 0: the next request is refused
          const busy = await postJSON(url, { messages: hello, max_tokens: 1 }, auth());
          equal(busy.status, 503);
          equal(busy.headers.get("retry-after"), "1");
          // disconnect: the engine stops generating for it
          ac.abort();
          await reader.cancel().catch(() => {});
          let active = 1;
          for (let i = 0; i < 50 && active > 0; i++) {
            await new Promise((r) => setTimeout(r, 20));
            active = (await server.engine.stats()).scheduler.active;
          }
          equal(active, 0);
          const before = (await server.engine.stats()).scheduler.tokensGenerated;
          ok(before - base < 200, `generated ${before - base}`);
          await new Promise((r) => setTimeout(r, 100));
          equal((await server.engine.stats()).scheduler.tokensGenerated, before);
          // and the slot serves the next request
          const next = await postJSON(url, { messages: hello, max_tokens: 2 }, auth());
          equal(next.status, 200);
        },
      );

      await t.step("metrics: requests, tokens, queue depth, expert cache counters", async () => {
        const r = await fetch(`${server.url}/metrics`, { headers: auth() });
        equal(r.status, 200);
        const text = await r.text();
        match(text, /spool_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\} \d+/);
        match(text, /spool_requests_total\{endpoint="\/v1\/chat\/completions",status="503"\} 1/);
        match(text, /spool_requests_total\{endpoint="\/v1\/chat\/completions",status="401"\} 2/);
        const completion = Number(/spool_completion_tokens_total (\d+)/.exec(text)![1]);
        ok(completion > 2);
        match(text, /spool_queue_depth 0/);
        match(text, /spool_expert_cache_hits_total \d+/);
        match(text, /spool_decode_tokens_per_second [\d.]+/);
        // memory: the kinds add up to this process's RSS (the server runs in process here)
        const kinds = [...text.matchAll(/process_resident_memory_bytes\{kind="(\w+)"\} (\d+)/g)];
        const sum = kinds.reduce((a, m) => a + Number(m[2]), 0);
        const rss = Deno.memoryUsage().rss;
        ok(Math.abs(sum - rss) < 0.2 * rss, `${sum} vs rss ${rss}`);
        if (Deno.build.os === "linux") deepEqual(kinds.map((m) => m[1]), ["anon", "file", "shmem"]);
        const engineHeap = /spool_js_heap_bytes\{thread="engine",kind="used"\} (\d+)/.exec(text);
        ok(Number(engineHeap?.[1]) > 1e6, "the engine worker's heap is reported");
      });
    } finally {
      await server.close();
    }
  },
});
