/**
 * Tools on a template with no tool-call syntax (plain ChatML): the generic JSON convention
 * (tools described in a system message, output constrained to `{"tool_calls": [...]}` or
 * `{"response": ...}`) makes tool_choice auto, required and named work, through the `openai`
 * and `@anthropic-ai/sdk` clients and the AI SDK, streamed and not, with tool results sent
 * back; a call cut by max_tokens is no call.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, jsonSchema, tool } from "ai";
import OpenAI from "openai";
import { postJSON, serverModel, startServer } from "./_fixture.ts";

const WEATHER = {
  type: "object",
  properties: { city: { type: "string", maxLength: 10 } },
  required: ["city"],
  additionalProperties: false,
};
const TOOLS: OpenAI.ChatCompletionTool[] = [
  {
    type: "function",
    function: { name: "get_weather", description: "Weather", parameters: WEATHER },
  },
  {
    type: "function",
    function: { name: "get_time", parameters: { type: "object", properties: {} } },
  },
];
const USER: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Weather in Paris?" }];

function fnCall(c: OpenAI.ChatCompletionMessageToolCall) {
  return c as OpenAI.ChatCompletionMessageFunctionToolCall;
}

Deno.test({
  name: "generic tools: a ChatML model gets tool calls with auto, required and named",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = await startServer({ path: serverModel("chatml"), nCtx: 1024 });
    const url = server.url;
    const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: "x", maxRetries: 0 });
    try {
      await t.step("openai: required and named give valid calls", async () => {
        const r = await openai.chat.completions.create({
          model: "m",
          messages: USER,
          tools: TOOLS,
          tool_choice: "required",
          parallel_tool_calls: false,
          max_tokens: 200,
          seed: 1,
        });
        const c = r.choices[0];
        equal(c.finish_reason, "tool_calls", JSON.stringify(c.message));
        equal(c.message.tool_calls!.length, 1);
        const call = fnCall(c.message.tool_calls![0]);
        ok(["get_weather", "get_time"].includes(call.function.name));
        const args = JSON.parse(call.function.arguments);
        if (call.function.name === "get_weather") equal(typeof args.city, "string");
        else deepEqual(args, {});
        equal(c.message.content, null);
        const named = await openai.chat.completions.create({
          model: "m",
          messages: USER,
          tools: TOOLS,
          tool_choice: { type: "function", function: { name: "get_time" } },
          max_tokens: 200,
          seed: 2,
        });
        const nc = named.choices[0];
        equal(nc.finish_reason, "tool_calls");
        ok(nc.message.tool_calls!.every((x) => fnCall(x).function.name === "get_time"));
        deepEqual(JSON.parse(fnCall(nc.message.tool_calls![0]).function.arguments), {});
      });

      await t.step("openai: auto answers in text or calls, never raw JSON", async () => {
        for (const seed of [1, 2, 3, 4]) {
          const r = await openai.chat.completions.create({
            model: "m",
            messages: USER,
            tools: TOOLS,
            max_tokens: 60,
            seed,
          });
          const c = r.choices[0];
          if (c.message.tool_calls?.length) equal(c.finish_reason, "tool_calls");
          else {
            ok(["stop", "length"].includes(c.finish_reason));
            ok(!String(c.message.content).includes('"response"'), c.message.content ?? "");
          }
        }
        // streamed: the text response arrives as content deltas
        const stream = await openai.chat.completions.create({
          model: "m",
          messages: USER,
          tools: TOOLS,
          tool_choice: "auto",
          max_tokens: 60,
          seed: 5,
          stream: true,
        });
        let content = "", calls = 0, finish = "";
        for await (const ch of stream) {
          content += ch.choices[0]?.delta?.content ?? "";
          calls += ch.choices[0]?.delta?.tool_calls?.length ?? 0;
          finish = ch.choices[0]?.finish_reason ?? finish;
        }
        ok(!content.includes('"response"'), content); // the JSON wrapper never leaks
        equal(finish, calls > 0 ? "tool_calls" : finish === "length" ? "length" : "stop");
      });

      await t.step("cut by max_tokens: length, no call", async () => {
        const r = await postJSON(`${url}/v1/chat/completions`, {
          messages: USER,
          tools: TOOLS,
          tool_choice: "required",
          max_tokens: 5,
        });
        const c = (r.body.choices as Record<string, unknown>[])[0];
        equal(c.finish_reason, "length");
        equal((c.message as Record<string, unknown>).tool_calls, undefined);
        ok(!String((c.message as Record<string, unknown>).content ?? "").includes("tool_calls"));
      });

      await t.step("anthropic: tool_choice any gives a tool_use block", async () => {
        const client = new Anthropic({ baseURL: url, apiKey: "x", maxRetries: 0 });
        const m = await client.messages.create({
          model: "m",
          max_tokens: 200,
          messages: [{ role: "user", content: "Weather in Paris?" }],
          tools: [{
            name: "get_weather",
            description: "Weather",
            input_schema: WEATHER as Anthropic.Tool.InputSchema,
          }],
          tool_choice: { type: "any", disable_parallel_tool_use: true },
        });
        equal(m.stop_reason, "tool_use");
        const tu = m.content.find((b) => b.type === "tool_use");
        ok(tu && tu.type === "tool_use");
        equal(typeof (tu.input as { city: unknown }).city, "string");
      });

      await t.step("AI SDK: required call, result sent back, then an answer", async () => {
        const provider = createOpenAICompatible({ name: "spool", baseURL: `${url}/v1` });
        const calls: unknown[] = [];
        const r = await generateText({
          model: provider("m"),
          prompt: "Weather in Paris?",
          tools: {
            get_weather: tool({
              description: "Weather",
              inputSchema: jsonSchema<{ city: string }>(WEATHER),
              execute: (input) => {
                calls.push(input);
                return Promise.resolve("18 C");
              },
            }),
          },
          toolChoice: "required",
          maxOutputTokens: 200,
          maxRetries: 0,
          // sent as the request's parallel_tool_calls
          providerOptions: { spool: { parallel_tool_calls: false } },
        });
        equal(calls.length, 1);
        equal(typeof (calls[0] as { city: unknown }).city, "string");
        equal(r.steps[0].finishReason, "tool-calls");
        // the history with the call and its result renders (the tool message included)
        const again = await postJSON(`${url}/v1/chat/completions`, {
          messages: [
            ...USER,
            {
              role: "assistant",
              content: null,
              tool_calls: [{
                id: "call_1",
                type: "function",
                function: { name: "get_weather", arguments: '{"city":"Paris"}' },
              }],
            },
            { role: "tool", tool_call_id: "call_1", content: "18 C" },
          ],
          tools: TOOLS,
          max_tokens: 20,
        });
        equal(again.status, 200, JSON.stringify(again.body));
      });
    } finally {
      await server.close();
    }
  },
});
