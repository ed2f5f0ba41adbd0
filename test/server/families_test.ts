/**
 * Tool calls of the GLM, Kimi K2 and Qwen3.5 families end to end, through the real `openai`
 * and `@anthropic-ai/sdk` clients: a random-weight qwen3moe (the forward pass does not matter
 * here) carrying GLM-4.6's, Kimi-K2-Instruct's or Qwen3.5-4B's own chat template (Qwen3.5
 * writes Qwen3-Coder's XML calls and opens `<think>`, as MiniMax-M2 does), with the Qwen2 vocabulary
 * (both taken from the llama.cpp source node-llama-cpp ships). Constrained decoding makes the
 * model write each family's call syntax; the server parses it back into tool calls (no call
 * syntax in the content), and the tool round trip renders through the family's template.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import { existsSync, mkdirSync, renameSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { writeSyntheticModel } from "../../runtime/models/synth.ts";
import { llamaSourceFilePath, llamaTemplate } from "../templates/llama_source.ts";
import { createServer } from "../../runtime/server/serve.ts";

const DIR = fileURLToPath(new URL("../fixtures/server/", import.meta.url));

/** A tiny qwen3moe with the Qwen2 vocabulary and the given template (written once). */
function familyModel(template: string, seed: number): string {
  const path = `${DIR}qwen3moe-narrow-q8-${template.replace(/\W+/g, "_")}.gguf`;
  if (!existsSync(path)) {
    mkdirSync(DIR, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeSyntheticModel(tmp, {
      arch: "qwen3moe",
      preset: "tiny",
      // narrower than tiny: the 152k-token embedding dominates the file (27 MB, not 91 MB)
      dims: { nEmbd: 64, nHead: 2, nHeadKv: 1, headDim: 32, nFfExp: 64 },
      types: "Q8_0",
      seed,
      vocab: llamaSourceFilePath("models/ggml-vocab-qwen2.gguf"),
      chatTemplate: llamaTemplate(template),
      name: "spool-test",
    });
    renameSync(tmp, path);
  }
  return path;
}

const WEATHER = {
  type: "object",
  properties: {
    city: { type: "string", maxLength: 12 },
    days: { type: "integer", minimum: 1, maximum: 14 }, // bounded: a call always fits max_tokens
    metric: { type: "boolean" },
  },
  required: ["city", "days"],
  additionalProperties: false,
  $schema: "https://json-schema.org/draft/2020-12/schema",
};
const TOOLS: OpenAI.ChatCompletionTool[] = [
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
/** Call syntax of the families (GLM, Kimi K2, Qwen3.5's XML): none may reach the content. */
const SYNTAX =
  /<tool_call>|<arg_key>|<arg_value>|<\|tool_call|tool_calls_section|<function=|<parameter=/;

for (
  const [template, seed] of [
    ["GLM-4.6.jinja", 21],
    ["Kimi-K2-Instruct.jinja", 22],
    ["Qwen3.5-4B.jinja", 24],
  ] as const
) {
  Deno.test({
    name: `tools (${template}): openai and anthropic clients get the family's calls`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const server = await createServer({
        path: familyModel(template, seed),
        port: 0,
        nCtx: 1024,
        threads: 2,
        alias: "spool-test",
      });
      const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
      const messages: OpenAI.ChatCompletionMessageParam[] = [
        { role: "user", content: "Weather in Paris?" },
      ];
      // Qwen3.5's prompt opens <think>: reasoning may come before a required call (as in
      // llama.cpp), and a random model never closes it, so the direct-call steps switch
      // thinking off the way clients do (llama.cpp's and vLLM's chat_template_kwargs).
      const thinks = template.startsWith("Qwen3.5");
      const noThink = thinks ? { chat_template_kwargs: { enable_thinking: false } } : {};
      try {
        if (thinks) {
          await t.step(
            "openai: required with thinking on: a cut think is length, no call",
            async () => {
              const r = await openai.chat.completions.create({
                model: "m",
                messages,
                tools: TOOLS,
                tool_choice: "required",
                max_tokens: 24,
                seed: 1,
              });
              const c = r.choices[0];
              const m = c.message as typeof c.message & { reasoning_content?: string };
              equal(c.finish_reason, "length");
              deepEqual(m.tool_calls ?? [], []);
              ok((m.reasoning_content ?? "").length > 0, JSON.stringify(m));
              ok(!SYNTAX.test(m.content ?? ""), m.content ?? "");
            },
          );
        }
        let first: OpenAI.ChatCompletionMessageFunctionToolCall | undefined;
        await t.step("openai: required gives a typed call (non-streaming)", async () => {
          const r = await openai.chat.completions.create({
            ...noThink,
            model: "m",
            messages,
            tools: TOOLS,
            tool_choice: "required",
            parallel_tool_calls: false,
            max_tokens: 120,
            seed: 1,
          });
          const c = r.choices[0];
          equal(c.finish_reason, "tool_calls", JSON.stringify(c.message));
          equal(c.message.tool_calls!.length, 1);
          ok(!SYNTAX.test(c.message.content ?? ""), c.message.content ?? "");
          first = c.message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
          const args = JSON.parse(first.function.arguments);
          if (first.function.name === "get_weather") {
            equal(typeof args.city, "string");
            ok(Number.isInteger(args.days), first.function.arguments);
          } else equal(first.function.arguments, "{}");
        });

        await t.step("openai: named choice, streamed deltas, no syntax in content", async () => {
          const stream = await openai.chat.completions.create({
            ...noThink,
            model: "m",
            messages,
            tools: TOOLS,
            tool_choice: { type: "function", function: { name: "get_weather" } },
            parallel_tool_calls: false,
            max_tokens: 120,
            seed: 2,
            stream: true,
          });
          let name = "", args = "", finish = "", content = "";
          for await (const ch of stream) {
            const d = ch.choices[0]?.delta;
            content += d?.content ?? "";
            for (const tc of d?.tool_calls ?? []) {
              name += tc.function?.name ?? "";
              args += tc.function?.arguments ?? "";
            }
            if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
          }
          equal(finish, "tool_calls");
          equal(name, "get_weather");
          equal(content, "");
          const v = JSON.parse(args);
          equal(typeof v.city, "string", args);
          ok(Number.isInteger(v.days), args);
        });

        await t.step("openai: the tool result goes back through the template", async () => {
          const r = await openai.chat.completions.create({
            model: "m",
            messages: [
              ...messages,
              { role: "assistant", content: "", tool_calls: [first!] },
              { role: "tool", tool_call_id: first!.id, content: "18 C and sunny" },
            ],
            tools: TOOLS,
            tool_choice: "none",
            max_tokens: 8,
            seed: 3,
          });
          ok(r.usage!.prompt_tokens > 20);
          deepEqual(r.choices[0].message.tool_calls ?? [], []);
        });

        await t.step("anthropic: tool_choice any gives a tool_use block, streamed", async () => {
          const client = new Anthropic({ baseURL: server.url, apiKey: "x", maxRetries: 0 });
          const params = {
            model: "m",
            max_tokens: 120,
            messages: [{ role: "user" as const, content: "Weather in Paris?" }],
            tools: [{
              name: "get_weather",
              description: "Weather",
              input_schema: WEATHER as Anthropic.Tool.InputSchema,
            }],
            tool_choice: { type: "any" as const, disable_parallel_tool_use: true },
          };
          const stream = client.messages.stream(params);
          let partial = "";
          for await (const ev of stream) {
            if (ev.type === "content_block_delta" && ev.delta.type === "input_json_delta") {
              partial += ev.delta.partial_json;
            }
          }
          const final = await stream.finalMessage();
          equal(final.stop_reason, "tool_use");
          const b = final.content.find((x) => x.type === "tool_use") as Anthropic.ToolUseBlock;
          equal(b.name, "get_weather");
          const input = b.input as { city: string; days: number };
          equal(JSON.stringify(input), JSON.stringify(JSON.parse(partial)));
          equal(typeof input.city, "string");
          ok(Number.isInteger(input.days));
          for (const x of final.content) {
            if (x.type === "text") ok(!SYNTAX.test(x.text), x.text);
          }
        });
      } finally {
        await server.close();
      }
    },
  });
}

for (const [template, seed] of [["MiniMax-M2.jinja", 23], ["Qwen3.5-4B.jinja", 25]] as const) {
  Deno.test({
    name: `reasoning (${template}, which opens <think>): reasoning_content and thinking blocks`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const server = await createServer({
        path: familyModel(template, seed),
        port: 0,
        nCtx: 1024,
        threads: 2,
        alias: "spool-test",
      });
      try {
        await t.step("openai: everything before </think> is reasoning_content", async () => {
          const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
          const r = await openai.chat.completions.create({
            model: "m",
            messages: [{ role: "user", content: "Hi" }],
            max_tokens: 6,
            seed: 1,
          });
          const m = r.choices[0].message as { content: string | null; reasoning_content?: string };
          ok((m.reasoning_content ?? "").length > 0, JSON.stringify(m));
          equal(m.content ?? "", "");
          const stream = await openai.chat.completions.create({
            model: "m",
            messages: [{ role: "user", content: "Hi" }],
            max_tokens: 6,
            seed: 1,
            stream: true,
          });
          let reasoning = "", content = "";
          for await (const ch of stream) {
            const d = ch.choices[0]?.delta as { content?: string; reasoning_content?: string };
            reasoning += d?.reasoning_content ?? "";
            content += d?.content ?? "";
          }
          equal(reasoning, m.reasoning_content);
          equal(content, "");
        });

        await t.step("anthropic: a thinking block, streamed as thinking_delta", async () => {
          const client = new Anthropic({ baseURL: server.url, apiKey: "x", maxRetries: 0 });
          const params = {
            model: "m",
            // the API's rule: 1024 <= budget_tokens < max_tokens
            max_tokens: 1030,
            messages: [{ role: "user" as const, content: "Hi" }],
            thinking: { type: "enabled" as const, budget_tokens: 1024 },
          };
          const stream = client.messages.stream(params);
          let thinking = "";
          for await (const ev of stream) {
            if (ev.type === "content_block_delta" && ev.delta.type === "thinking_delta") {
              thinking += ev.delta.thinking;
            }
          }
          const final = await stream.finalMessage();
          const block = final.content.find((b) => b.type === "thinking") as Anthropic.ThinkingBlock;
          ok(block && block.thinking.length > 0, JSON.stringify(final.content));
          equal(block.thinking, thinking);
          equal(final.content.filter((b) => b.type === "text" && b.text !== "").length, 0);
        });
      } finally {
        await server.close();
      }
    },
  });
}
