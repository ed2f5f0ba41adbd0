/**
 * A server agents can trust, over a real socket with the real clients (`openai`,
 * `@anthropic-ai/sdk`, the AI SDK with `@ai-sdk/anthropic`) and raw HTTP:
 * - a tool call cut by max_tokens is never a call (length / max_tokens, no markup in content,
 *   no fabricated input), streamed and not;
 * - structured output: Anthropic output_config.format and output_format, AI SDK
 *   generateObject, OpenAI response_format alongside tools, pattern/format/bounds honoured;
 * - hostile schemas are 400s naming the problem, never 500s;
 * - protocol details and the local-server security rules.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { createAnthropic } from "@ai-sdk/anthropic";
import { generateObject, jsonSchema } from "ai";
import OpenAI from "openai";
import { postJSON, startServer } from "./_fixture.ts";

const WEATHER = {
  type: "object",
  properties: { city: { type: "string", maxLength: 10 } },
  required: ["city"],
  additionalProperties: false,
};
const OA_TOOLS = [{
  type: "function" as const,
  function: { name: "get_weather", description: "Weather", parameters: WEATHER },
}];
const AN_TOOLS = [{ name: "get_weather", description: "Weather", input_schema: WEATHER }];
const USER = [{ role: "user" as const, content: "Weather in Paris?" }];

/** A schema that exercises the enforced keywords, and a checker written independently. */
const RECORD = {
  type: "object",
  properties: {
    code: { type: "string", pattern: "^[A-Z]{3}-[0-9]{2}$" },
    n: { type: "integer", minimum: 5, maximum: 9 },
    x: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
    day: { type: "string", format: "date" },
    id: { type: "string", format: "uuid" },
    tags: { type: "array", items: { enum: ["a", "b"] }, minItems: 1, maxItems: 2 },
    word: { type: "string", minLength: 2, maxLength: 4 },
  },
  required: ["code", "n", "x", "day", "id", "tags", "word"],
  additionalProperties: false,
};
function checkRecord(text: string): void {
  const v = JSON.parse(text);
  match(v.code, /^[A-Z]{3}-[0-9]{2}$/);
  ok(Number.isInteger(v.n) && v.n >= 5 && v.n <= 9, `n ${v.n}`);
  ok(v.x > 0 && v.x < 1, `x ${v.x}`);
  match(v.day, /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/);
  match(v.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  ok(v.tags.length >= 1 && v.tags.length <= 2 && v.tags.every((t: string) => "ab".includes(t)));
  const w = [...v.word].length;
  ok(w >= 2 && w <= 4, `word ${v.word}`);
  deepEqual(Object.keys(v).sort(), ["code", "day", "id", "n", "tags", "word", "x"]);
}

Deno.test({
  name: "trust: cut tool calls, structured outputs, hostile schemas, protocol, security",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = await startServer({ nCtx: 1024 });
    const url = server.url;
    const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: "x", maxRetries: 0 });
    const anthropic = new Anthropic({ baseURL: url, apiKey: "x", maxRetries: 0 });
    try {
      await t.step("openai: a call cut by max_tokens is length, no call, no markup", async () => {
        for (const max_tokens of [3, 6, 9]) {
          const r = await postJSON(`${url}/v1/chat/completions`, {
            messages: USER,
            tools: OA_TOOLS,
            tool_choice: "required",
            max_tokens,
            seed: 1,
          });
          equal(r.status, 200);
          const c = (r.body.choices as Record<string, unknown>[])[0];
          const m = c.message as Record<string, unknown>;
          equal(c.finish_reason, "length");
          equal(m.tool_calls, undefined);
          ok(!String(m.content ?? "").includes("<tool_call>"), String(m.content));
          ok(!String(m.content ?? "").includes('"name"'), String(m.content));
        }
        // streamed: no tool_calls delta at all, finish_reason length
        const stream = await openai.chat.completions.create({
          model: "m",
          messages: USER,
          tools: OA_TOOLS,
          tool_choice: "required",
          max_tokens: 6,
          stream: true,
        });
        let finish = "", content = "", deltas = 0;
        for await (const ch of stream) {
          const d = ch.choices[0]?.delta;
          content += d?.content ?? "";
          deltas += d?.tool_calls?.length ?? 0;
          if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
        }
        equal(finish, "length");
        equal(deltas, 0);
        ok(!content.includes("<tool_call>"));
      });

      await t.step(
        "anthropic: a cut call is max_tokens with no tool_use, streamed too",
        async () => {
          const m = await anthropic.messages.create({
            model: "m",
            max_tokens: 6,
            messages: USER,
            tools: AN_TOOLS as Anthropic.Tool[],
            tool_choice: { type: "any" },
          });
          equal(m.stop_reason, "max_tokens");
          equal(m.content.filter((b) => b.type === "tool_use").length, 0);
          for (const b of m.content) {
            if (b.type === "text") ok(!b.text.includes("<tool_call>"), b.text);
          }
          const s = anthropic.messages.stream({
            model: "m",
            max_tokens: 6,
            messages: USER,
            tools: AN_TOOLS as Anthropic.Tool[],
            tool_choice: { type: "any" },
          });
          const fin = await s.finalMessage();
          equal(fin.stop_reason, "max_tokens");
          equal(fin.content.filter((b) => b.type === "tool_use").length, 0);
          // a complete call still is one, with a toolu_ id and a real input
          const full = await anthropic.messages.create({
            model: "m",
            max_tokens: 300,
            messages: USER,
            tools: AN_TOOLS as Anthropic.Tool[],
            tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true },
          });
          equal(full.stop_reason, "tool_use", JSON.stringify(full));
          const tu = full.content.find((b) => b.type === "tool_use")!;
          ok(tu && tu.type === "tool_use");
          match(tu.id, /^toolu_/);
          equal(typeof (tu.input as { city: unknown }).city, "string");
        },
      );

      await t.step("anthropic: output_config.format and output_format are enforced", async () => {
        for (const key of ["output_config", "output_format"]) {
          const format = { type: "json_schema", schema: RECORD };
          const r = await postJSON(`${url}/v1/messages`, {
            model: "m",
            max_tokens: 200,
            messages: [{ role: "user", content: "A record, please." }],
            ...(key === "output_config"
              ? { output_config: { format } }
              : { output_format: format }),
          });
          equal(r.status, 200, JSON.stringify(r.body));
          equal(r.body.stop_reason, "end_turn");
          const blocks = r.body.content as { type: string; text: string }[];
          checkRecord(blocks.map((b) => b.text).join(""));
        }
        // streamed through the SDK
        const s = anthropic.messages.stream({
          model: "m",
          max_tokens: 200,
          messages: [{ role: "user", content: "A record." }],
          output_config: { format: { type: "json_schema", schema: RECORD } },
        } as unknown as Anthropic.MessageStreamParams);
        const fin = await s.finalMessage();
        checkRecord(fin.content.map((b) => b.type === "text" ? b.text : "").join(""));
      });

      await t.step("AI SDK: generateObject with @ai-sdk/anthropic (all modes)", async () => {
        // the AI SDK strips what Anthropic's structured outputs lack (pattern, lengths,
        // bounds) before sending: this schema keeps to what it sends as is
        const schema = {
          type: "object",
          properties: {
            color: { enum: ["red", "green", "blue"] },
            day: { type: "string", format: "date" },
            id: { type: "string", format: "uuid" },
            ok: { type: "boolean" },
            n: { type: "integer" },
          },
          required: ["color", "day", "id", "ok", "n"],
          additionalProperties: false,
        };
        const provider = createAnthropic({ baseURL: `${url}/v1`, apiKey: "x" });
        for (const mode of [undefined, "outputFormat", "jsonTool"] as const) {
          const { object } = await generateObject({
            model: provider("spool-test"),
            schema: jsonSchema<Record<string, unknown>>(schema),
            prompt: "Pick one.",
            maxOutputTokens: 300,
            maxRetries: 0,
            ...(mode ? { providerOptions: { anthropic: { structuredOutputMode: mode } } } : {}),
          });
          ok(["red", "green", "blue"].includes(object.color as string), JSON.stringify(object));
          match(object.day as string, /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/);
          match(object.id as string, /^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$/i);
          equal(typeof object.ok, "boolean");
          ok(Number.isInteger(object.n));
        }
      });

      await t.step("openai: response_format holds when tools are offered (auto)", async () => {
        for (const seed of [1, 2, 3]) {
          const r = await openai.chat.completions.create({
            model: "m",
            messages: [{ role: "user", content: "A record." }],
            tools: OA_TOOLS,
            response_format: { type: "json_schema", json_schema: { name: "r", schema: RECORD } },
            max_tokens: 200,
            seed,
          });
          const c = r.choices[0];
          if (c.message.tool_calls?.length) {
            equal(c.finish_reason, "tool_calls");
            const call = c.message.tool_calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
            equal(typeof JSON.parse(call.function.arguments).city, "string");
          } else {
            equal(c.finish_reason, "stop");
            checkRecord(c.message.content!);
          }
        }
      });

      await t.step("hostile or unsupported schemas: 400 naming the problem", async () => {
        let deep: Record<string, unknown> = { type: "string" };
        for (let i = 0; i < 3000; i++) deep = { type: "object", properties: { a: deep } };
        const cases: [unknown, RegExp][] = [
          [{ $ref: "#" }, /unsatisfiable/],
          [{ enum: [] }, /unsatisfiable/],
          [false, /unsatisfiable|Invalid/],
          [
            { $defs: { a: { $ref: "#/$defs/b" }, b: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" },
            /unsatisfiable/,
          ],
          [{ type: "array", uniqueItems: true }, /"uniqueItems"/],
          [{ type: "string", format: "color" }, /"format": "color"/],
          [{ not: {} }, /"not"/],
          [deep, /nested too deeply/],
        ];
        for (const [schema, re] of cases) {
          const o = await postJSON(`${url}/v1/chat/completions`, {
            messages: USER,
            max_tokens: 5,
            response_format: { type: "json_schema", json_schema: { name: "x", schema } },
          });
          equal(o.status, 400, JSON.stringify(o.body).slice(0, 300));
          match((o.body.error as { message: string }).message, re);
          const a = await postJSON(`${url}/v1/messages`, {
            max_tokens: 5,
            messages: USER,
            stream: true,
            output_config: { format: { type: "json_schema", schema } },
          });
          equal(a.status, 400);
          equal((a.body.error as { type: string }).type, "invalid_request_error");
          match((a.body.error as { message: string }).message, re);
          const tl = await postJSON(`${url}/v1/chat/completions`, {
            messages: USER,
            max_tokens: 5,
            tools: [{ type: "function", function: { name: "f", parameters: schema } }],
            tool_choice: "required",
          });
          equal(tl.status, 400, JSON.stringify(tl.body).slice(0, 300));
        }
        // deep nesting elsewhere in a request is a 400 too, never a stack overflow
        // built as text: the client's own JSON.stringify would overflow first
        const arg = "__DEEP__";
        const deepJson = '{"a":'.repeat(20000) + "1" + "}".repeat(20000);
        for (
          const [path, body] of [
            ["/v1/chat/completions", {
              max_tokens: 2,
              messages: [...USER, {
                role: "assistant",
                content: null,
                tool_calls: [{
                  id: "c",
                  type: "function",
                  function: { name: "f", arguments: arg },
                }],
              }, { role: "tool", tool_call_id: "c", content: "x" }],
            }],
            ["/v1/messages", {
              max_tokens: 2,
              messages: [...USER, {
                role: "assistant",
                content: [{ type: "tool_use", id: "t", name: "f", input: arg }],
              }, {
                role: "user",
                content: [{ type: "tool_result", tool_use_id: "t", content: "x" }],
              }],
            }],
          ] as const
        ) {
          const text = JSON.stringify(body).replace('"__DEEP__"', deepJson);
          const r = await postJSON(`${url}${path}`, text);
          equal(r.status, 400, `${path}: ${JSON.stringify(r.body).slice(0, 300)}`);
        }
        // satisfiable left recursion and recursive schemas generate
        const r = await postJSON(`${url}/v1/chat/completions`, {
          messages: USER,
          max_tokens: 60,
          response_format: {
            type: "json_schema",
            json_schema: {
              name: "x",
              schema: { anyOf: [{ $ref: "#" }, { type: "string", maxLength: 10 }] },
            },
          },
        });
        equal(r.status, 200, JSON.stringify(r.body));
        const text = (r.body.choices as { message: { content: string } }[])[0].message.content;
        equal(typeof JSON.parse(text), "string");
      });

      await t.step("openai protocol: 400s, refusal null, usage null, request id", async () => {
        const bad: [Record<string, unknown>, RegExp][] = [
          [{ messages: USER, max_tokens: 0 }, /max_tokens/],
          [{ messages: USER, top_logprobs: 2 }, /logprobs/],
          [{ messages: [...USER, { role: "tool", content: "x" }] }, /tool_call_id/],
        ];
        for (const [body, re] of bad) {
          const r = await postJSON(`${url}/v1/chat/completions`, body);
          equal(r.status, 400);
          match((r.body.error as { message: string }).message, re);
        }
        const r = await postJSON(`${url}/v1/chat/completions`, { messages: USER, max_tokens: 2 });
        match(r.headers.get("x-request-id") ?? "", /^req_/);
        const msg = (r.body.choices as { message: Record<string, unknown> }[])[0].message;
        equal(msg.refusal, null);
        const s = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            messages: USER,
            max_tokens: 3,
            stream: true,
            stream_options: { include_usage: true },
          }),
        });
        const chunks = (await s.text()).split("\n").filter((l) => l.startsWith("data: {")).map((
          l,
        ) => JSON.parse(l.slice(6)));
        const last = chunks.pop();
        ok(chunks.length > 0 && chunks.every((c) => c.usage === null));
        equal(typeof last.usage.total_tokens, "number");
      });

      await t.step(
        "openai: n choices; completions with several prompts; models shapes",
        async () => {
          const r = await openai.chat.completions.create({
            model: "m",
            messages: USER,
            max_tokens: 4,
            n: 3,
            seed: 7,
          });
          deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
          ok(r.choices.every((c) => c.finish_reason === "length"));
          equal(r.usage!.completion_tokens, 12);
          const s = await openai.chat.completions.create({
            model: "m",
            messages: USER,
            max_tokens: 3,
            n: 2,
            stream: true,
            stream_options: { include_usage: true },
          });
          const finished = new Set<number>();
          let usage = 0;
          for await (const ch of s) {
            for (const c of ch.choices) if (c.finish_reason) finished.add(c.index);
            if (ch.usage) usage = ch.usage.completion_tokens;
          }
          deepEqual([...finished].sort(), [0, 1]);
          equal(usage, 6);
          const cp = await openai.completions.create({
            model: "m",
            prompt: ["Once upon", "The weather"],
            max_tokens: 3,
          });
          deepEqual(cp.choices.map((c) => c.index), [0, 1]);
          equal(cp.usage!.completion_tokens, 6);
          const am = await fetch(`${url}/v1/models`, {
            headers: { "anthropic-version": "2023-06-01" },
          });
          const list = await am.json();
          equal(list.data[0].type, "model");
          equal(list.has_more, false);
          equal(list.first_id, list.data[0].id);
          const models = await anthropic.models.list();
          equal(models.data[0].id, "spool-test");
        },
      );

      await t.step("anthropic protocol: 400s, prompt too long, prefill, request-id", async () => {
        const base = { model: "m", max_tokens: 5 };
        const bad: [Record<string, unknown>, RegExp][] = [
          [{ ...base, messages: [{ role: "user", content: "" }, ...USER] }, /non-empty content/],
          [{ ...base, messages: USER, tools: [{ name: "f" }] }, /input_schema/],
          [{ ...base, messages: USER, thinking: { type: "enabled", budget_tokens: 10 } }, /1024/],
          [{
            ...base,
            messages: [{ role: "user", content: "word ".repeat(1500) }],
          }, /^prompt is too long: \d+ tokens > 1024 maximum$/],
        ];
        for (const [body, re] of bad) {
          const r = await postJSON(`${url}/v1/messages`, body);
          equal(r.status, 400, JSON.stringify(r.body));
          match((r.body.error as { message: string }).message, re);
          match(r.headers.get("request-id") ?? "", /^req_/);
        }
        // a trailing assistant message is continued: fewer prompt tokens than a closed turn
        const msgs = [...USER, { role: "assistant", content: "The weather is" }];
        const counted = await postJSON(`${url}/v1/messages/count_tokens`, { messages: msgs });
        const r = await postJSON(`${url}/v1/messages`, { ...base, messages: msgs });
        equal(r.status, 200);
        const usage = r.body.usage as { input_tokens: number; cache_read_input_tokens: number };
        ok(
          usage.input_tokens + usage.cache_read_input_tokens < Number(counted.body.input_tokens),
          `${JSON.stringify(usage)} vs ${counted.body.input_tokens}`,
        );
      });

      await t.step("security: Host, Origin, text/plain, control-token text", async () => {
        const port = server.port;
        // DNS rebinding: a foreign Host is refused (raw request: fetch sets Host itself)
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(
          new TextEncoder().encode(
            "GET /v1/models HTTP/1.1\r\nHost: evil.example:" + port +
              "\r\nConnection: close\r\n\r\n",
          ),
        );
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf);
        conn.close();
        match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 403/);
        const cross = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "text/plain", origin: "https://evil.example" },
          body: JSON.stringify({ messages: USER, max_tokens: 2 }),
        });
        equal(cross.status, 403);
        equal(cross.headers.get("access-control-allow-origin"), null);
        await cross.body?.cancel();
        const plain = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "text/plain" },
          body: JSON.stringify({ messages: USER, max_tokens: 2 }),
        });
        equal(plain.status, 415);
        await plain.body?.cancel();
        // `<|im_end|>` typed by a user is plain text: many tokens, not one control token
        const count = async (text: string) =>
          Number(
            (await postJSON(`${url}/v1/messages/count_tokens`, {
              messages: [{ role: "user", content: text }],
            })).body.input_tokens,
          );
        ok((await count("a<|im_end|>b")) - (await count("ab")) > 2);
      });
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "trust: a full queue is a prompt 503/529; a queued stream answers at once",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startServer({ nCtx: 512, parallel: 1, maxQueue: 1 });
    const url = server.url;
    try {
      // The end-of-turn tokens of the qwen2 vocab are banned, so a sampled early stop cannot
      // free the slot before the test has filled the queue (CI saw that once).
      const noStop = { "151643": -100, "151645": -100 };
      const long = (stream: boolean) =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ messages: USER, max_tokens: 400, stream, logit_bias: noStop }),
        });
      const firstRes = await long(true); // holds the only slot
      const reader = firstRes.body!.getReader();
      // the first token proves it is generating (not merely queued)
      for (let seen = ""; !seen.includes('"content"');) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the first stream ended before its first token");
        seen += new TextDecoder().decode(value);
      }
      const first = (async () => {
        while (!(await reader.read()).done) { /* drain */ }
        return new Response("");
      })();
      const t0 = performance.now();
      const queued = await long(true); // waits in the queue, but its headers come now
      const headersMs = performance.now() - t0;
      equal(queued.status, 200);
      const o = await postJSON(`${url}/v1/chat/completions`, { messages: USER, max_tokens: 2 });
      equal(o.status, 503);
      const a = await postJSON(`${url}/v1/messages`, { max_tokens: 2, messages: USER });
      equal(a.status, 529);
      equal((a.body.error as { type: string }).type, "overloaded_error");
      const firstDone = await first;
      await firstDone.text();
      ok(headersMs < 1000, `queued stream headers after ${headersMs.toFixed(0)} ms`);
      match(await queued.text(), /\[DONE\]/);
    } finally {
      await server.close();
    }
  },
});
