/**
 * spool serve with the official `@anthropic-ai/sdk` over a real socket: messages (streamed and
 * not) with the exact event sequence, system blocks, tool_use/tool_result history, stop
 * sequences, cache reads in usage, count_tokens, x-api-key and Bearer, error envelopes.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { postJSON, startServer } from "./_fixture.ts";

const KEY = "ak-test-key";
// this SDK version dropped `temperature` from its types; the API (and spool) still take it
const GREEDY = { temperature: 0 } as unknown as Record<string, never>;

Deno.test({
  name: "anthropic: SDK messages, streaming event sequence, usage, count_tokens, errors",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = await startServer({ apiKey: KEY });
    const client = new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0 });
    const history: Anthropic.MessageParam[] = [
      { role: "user", content: "What is the weather in Paris?" },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Let me check." },
          { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
        ],
      },
      {
        role: "user",
        content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "18 C, sunny" }],
      },
    ];
    const tools: Anthropic.Tool[] = [{
      name: "get_weather",
      description: "Weather of a city",
      input_schema: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
      },
    }];
    try {
      let text = "";
      await t.step("non-streaming: content, stop_reason, usage; tool history renders", async () => {
        const m = await client.messages.create({
          model: "claude-sonnet-4-5",
          max_tokens: 10,
          ...GREEDY,
          system: [{ type: "text", text: "Be brief." }],
          messages: history,
          tools,
          tool_choice: { type: "none" },
          metadata: { user_id: "u1" },
        });
        equal(m.type, "message");
        equal(m.role, "assistant");
        equal(m.stop_reason, "max_tokens");
        equal(m.content[0].type, "text");
        text = (m.content[0] as Anthropic.TextBlock).text;
        ok(text.length > 0);
        equal(m.usage.output_tokens, 10);
        // count_tokens agrees with the prompt the request used
        const c = await client.messages.countTokens({
          model: "x",
          system: [{ type: "text", text: "Be brief." }],
          messages: history,
          tools,
          tool_choice: { type: "none" },
        });
        equal(c.input_tokens, m.usage.input_tokens + (m.usage.cache_read_input_tokens ?? 0));
        // the tool result and the call are in the rendered prompt (via the Qwen3 template)
        const tk = await postJSON(`${server.url}/tokenize`, { content: "18 C, sunny" }, {
          "x-api-key": KEY,
        });
        ok((tk.body.tokens as number[]).length > 0);
      });

      await t.step(
        "streaming: exact event sequence, same text, cache reads on repeat",
        async () => {
          const stream = client.messages.stream({
            model: "m",
            max_tokens: 10,
            temperature: 0,
            system: "Be brief.",
            messages: history,
            tools,
            tool_choice: { type: "none" },
          });
          const types: string[] = [];
          let streamed = "";
          for await (const ev of stream) {
            types.push(ev.type);
            if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") {
              streamed += ev.delta.text;
            }
          }
          const final = await stream.finalMessage();
          equal(streamed, text);
          equal((final.content[0] as Anthropic.TextBlock).text, text);
          equal(final.stop_reason, "max_tokens");
          ok((final.usage.cache_read_input_tokens ?? 0) > 0, JSON.stringify(final.usage));
          // message_start, content_block_start, (ping), deltas, content_block_stop, message_delta,
          // message_stop
          const compact = types.filter((x, i) => x !== types[i - 1]);
          deepEqual(compact, [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
          ]);
        },
      );

      await t.step("raw SSE has ping after the first block start; stop_sequences", async () => {
        const r = await fetch(`${server.url}/v1/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
          body: JSON.stringify({
            model: "m",
            max_tokens: 10,
            temperature: 0,
            system: "Be brief.",
            messages: history,
            tools,
            tool_choice: { type: "none" },
            stream: true,
          }),
        });
        equal(r.status, 200);
        const events = (await r.text()).split("\n").filter((l) => l.startsWith("event: ")).map((
          l,
        ) => l.slice(7));
        deepEqual(events.slice(0, 3), ["message_start", "content_block_start", "ping"]);
        deepEqual(events.slice(-3), ["content_block_stop", "message_delta", "message_stop"]);
        const stop = text.slice(2, 5);
        const m = await client.messages.create({
          model: "m",
          max_tokens: 10,
          ...GREEDY,
          system: "Be brief.",
          messages: history,
          tools,
          tool_choice: { type: "none" },
          stop_sequences: [stop],
        });
        equal(m.stop_reason, "stop_sequence");
        equal(m.stop_sequence, stop);
        equal((m.content[0] as Anthropic.TextBlock).text, text.slice(0, text.indexOf(stop)));
      });

      await t.step("errors: Anthropic envelope; images refused; bad key", async () => {
        const a = await postJSON(`${server.url}/v1/messages`, { messages: [] }, {
          "x-api-key": KEY,
        });
        equal(a.status, 400);
        equal(a.body.type, "error");
        equal((a.body.error as Record<string, unknown>).type, "invalid_request_error");
        try {
          await client.messages.create({
            model: "m",
            max_tokens: 5,
            messages: [{
              role: "user",
              content: [{
                type: "image",
                source: { type: "base64", media_type: "image/png", data: "AA==" },
              }],
            }],
          });
          ok(false, "expected a 400");
        } catch (e) {
          ok(e instanceof Anthropic.BadRequestError, String(e));
          match((e as Error).message, /text-only/);
        }
        const bad = new Anthropic({ baseURL: server.url, apiKey: "nope", maxRetries: 0 });
        try {
          await bad.messages.create({
            model: "m",
            max_tokens: 1,
            messages: [{ role: "user", content: "x" }],
          });
          ok(false, "expected a 401");
        } catch (e) {
          ok(e instanceof Anthropic.AuthenticationError, String(e));
        }
        const long = "word ".repeat(600);
        const o = await postJSON(`${server.url}/v1/messages`, {
          max_tokens: 5,
          messages: [{ role: "user", content: long }],
        }, { "x-api-key": KEY });
        equal(o.status, 400);
        match(
          String((o.body.error as Record<string, unknown>).message),
          /^prompt is too long: \d+ tokens > \d+ maximum$/,
        );
      });
    } finally {
      await server.close();
    }
  },
});
