/**
 * Tool calls end to end over a real socket: constrained decoding makes even a random-weight
 * model produce valid calls when the client requires one. The `openai` SDK (streamed deltas
 * and a named choice), `@anthropic-ai/sdk` (tool_use blocks, input_json_delta) and the AI SDK
 * (`@ai-sdk/openai-compatible` + `ai`: a full round trip, the tool result sent back and a
 * text answer), plus response_format json_schema.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, jsonSchema, tool } from "ai";
import OpenAI from "openai";
import { startServer } from "./_fixture.ts";

const WEATHER = {
  type: "object",
  properties: { city: { type: "string", maxLength: 12 }, days: { type: "integer" } },
  required: ["city"],
  additionalProperties: false,
  $schema: "https://json-schema.org/draft/2020-12/schema",
};

Deno.test({
  name: "tools: openai, anthropic and AI SDK clients get valid enforced tool calls",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = await startServer({ nCtx: 1024 });
    const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: "function",
        function: { name: "get_weather", description: "Weather", parameters: WEATHER },
      },
      {
        type: "function",
        function: {
          name: "get_time",
          parameters: { type: "object", properties: {}, additionalProperties: false },
        },
      },
    ];
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: "user", content: "Weather in Paris?" },
    ];
    try {
      await t.step("openai: required gives a valid call (non-streaming)", async () => {
        const r = await openai.chat.completions.create({
          model: "m",
          messages,
          tools,
          tool_choice: "required",
          parallel_tool_calls: false,
          max_tokens: 80,
          seed: 1,
        });
        const c = r.choices[0];
        equal(c.finish_reason, "tool_calls", JSON.stringify(c.message));
        equal(c.message.tool_calls!.length, 1);
        const call = c.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
        ok(["get_weather", "get_time"].includes(call.function.name));
        let args: Record<string, unknown> = {};
        try {
          args = JSON.parse(call.function.arguments);
        } catch (e) {
          throw new Error(`${call.function.name} arguments ${call.function.arguments}`, {
            cause: e,
          });
        }
        if (call.function.name === "get_weather") equal(typeof args.city, "string");
        else deepEqual(args, {});
        ok(call.id.length > 0);
      });

      await t.step("openai: named choice, streamed as tool_calls deltas", async () => {
        const stream = await openai.chat.completions.create({
          model: "m",
          messages,
          tools,
          tool_choice: { type: "function", function: { name: "get_weather" } },
          parallel_tool_calls: false,
          max_tokens: 80,
          seed: 2,
          stream: true,
        });
        let name = "", args = "", id = "", finish = "", content = "";
        for await (const ch of stream) {
          const d = ch.choices[0]?.delta;
          content += d?.content ?? "";
          for (const tc of d?.tool_calls ?? []) {
            if (tc.id) id = tc.id;
            name += tc.function?.name ?? "";
            args += tc.function?.arguments ?? "";
          }
          if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
        }
        equal(finish, "tool_calls");
        equal(name, "get_weather");
        ok(id);
        equal(content, "");
        equal(typeof JSON.parse(args).city, "string");
      });

      await t.step("openai: response_format json_schema is enforced", async () => {
        const r = await openai.chat.completions.create({
          model: "m",
          messages: [{ role: "user", content: "Give me a city." }],
          response_format: {
            type: "json_schema",
            json_schema: {
              name: "c",
              schema: {
                type: "object",
                properties: { name: { type: "string", maxLength: 8 }, ok: { type: "boolean" } },
                required: ["name", "ok"],
                additionalProperties: false,
              },
            },
          },
          max_tokens: 60,
          seed: 3,
          chat_template_kwargs: { enable_thinking: false },
        } as OpenAI.ChatCompletionCreateParamsNonStreaming);
        equal(r.choices[0].finish_reason, "stop", r.choices[0].message.content ?? "");
        const v = JSON.parse(r.choices[0].message.content!);
        equal(typeof v.name, "string");
        equal(typeof v.ok, "boolean");
      });

      await t.step("anthropic: tool_choice any gives a tool_use block, streamed", async () => {
        const client = new Anthropic({ baseURL: server.url, apiKey: "x", maxRetries: 0 });
        const params = {
          model: "m",
          max_tokens: 80,
          messages: [{ role: "user" as const, content: "Weather in Paris?" }],
          tools: [{
            name: "get_weather",
            description: "Weather",
            input_schema: WEATHER as Anthropic.Tool.InputSchema,
          }],
          tool_choice: { type: "any" as const, disable_parallel_tool_use: true },
        };
        const m = await client.messages.create(params);
        equal(m.stop_reason, "tool_use");
        const block = m.content.find((b) => b.type === "tool_use") as Anthropic.ToolUseBlock;
        equal(block.name, "get_weather");
        equal(typeof (block.input as { city: string }).city, "string");
        const stream = client.messages.stream(params);
        let partial = "";
        for await (const ev of stream) {
          if (ev.type === "content_block_delta" && ev.delta.type === "input_json_delta") {
            partial += ev.delta.partial_json;
          }
        }
        const final = await stream.finalMessage();
        const b2 = final.content.find((b) => b.type === "tool_use") as Anthropic.ToolUseBlock;
        deepEqual(b2.input, JSON.parse(partial));
        equal(final.stop_reason, "tool_use");
      });

      await t.step("AI SDK: required tool call, result sent back, text answer", async () => {
        const provider = createOpenAICompatible({
          name: "spool",
          baseURL: `${server.url}/v1`,
          includeUsage: true,
        });
        const model = provider.chatModel("spool-test");
        const weatherTool = tool({
          description: "Weather of a city",
          inputSchema: jsonSchema<{ city: string; days?: number }>(WEATHER as never),
        });
        const first = await generateText({
          model,
          messages: [{ role: "user", content: "Weather in Paris?" }],
          tools: { get_weather: weatherTool },
          toolChoice: "required",
          maxOutputTokens: 80,
          seed: 4,
          // sent as the request's parallel_tool_calls
          providerOptions: { spool: { parallel_tool_calls: false } },
        });
        equal(first.toolCalls.length, 1, JSON.stringify(first.content));
        const call = first.toolCalls[0];
        equal(call.toolName, "get_weather");
        equal(typeof (call.input as { city: string }).city, "string");
        ok(first.usage.inputTokens! > 0);
        const second = await generateText({
          model,
          messages: [
            { role: "user", content: "Weather in Paris?" },
            ...first.response.messages,
            {
              role: "tool",
              content: [{
                type: "tool-result",
                toolCallId: call.toolCallId,
                toolName: "get_weather",
                output: { type: "text", value: "18 C and sunny" },
              }],
            },
          ],
          tools: { get_weather: weatherTool },
          toolChoice: "none",
          maxOutputTokens: 12,
          seed: 5,
        });
        ok(second.text.length > 0);
        equal(second.toolCalls.length, 0);
        // the whole first exchange was a cached prefix of the second prompt
        ok(
          (second.usage.inputTokenDetails?.cacheReadTokens ?? 0) > 0,
          JSON.stringify(second.usage),
        );
      });
    } finally {
      await server.close();
    }
  },
});
