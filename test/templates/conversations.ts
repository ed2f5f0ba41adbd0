/**
 * The standard conversation set every chat template in the template folder
 * (runtime/data_dirs.ts) is rendered with, in the OpenAI-like shape the server receives (as OpenCode sends it: tool schemas with a JSON
 * Schema 2020-12 `$schema`, `content: ""` next to `tool_calls`, `role: "tool"` results).
 */

import type {
  ApplyChatTemplateOptions,
  ChatMessage,
  ChatTool,
} from "../../runtime/tokenizer/chat_template.ts";

/** One rendering case: messages plus options. */
export interface ChatTemplateCase {
  /** Short name, used in test output. */
  name: string;
  /** The conversation. */
  messages: ChatMessage[];
  /** Rendering options (tools, generation prompt, extra variables). */
  opts: ApplyChatTemplateOptions;
}

/** A fixed local time for `strftime_now`, `date_string` and `datetime`. */
export const FIXED_NOW = new Date(2025, 2, 14, 9, 26, 53);

/** Two tools as OpenCode sends them (with `$schema`, `additionalProperties`). */
export const TOOLS: ChatTool[] = [
  {
    type: "function",
    function: {
      name: "bash",
      description: "Runs a shell command and returns its output.",
      parameters: {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        type: "object",
        properties: {
          command: { type: "string", description: "The command to run" },
          timeout: { type: "number", description: "Optional timeout in milliseconds" },
          description: {
            type: "string",
            description: "Clear, concise description of what this command does in 5-10 words",
          },
        },
        required: ["command", "description"],
        additionalProperties: false,
      },
    },
  },
  {
    type: "function",
    function: {
      name: "read",
      description: "Reads a file from the local filesystem.",
      parameters: {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        type: "object",
        properties: {
          filePath: { type: "string", description: "The absolute path to the file to read" },
          offset: { type: "integer", description: "The line number to start reading from" },
          limit: { type: "integer", description: "The number of lines to read" },
          encodings: {
            type: "array",
            items: { type: "string", enum: ["utf-8", "latin1"] },
            description: "Encodings to try, in order",
          },
        },
        required: ["filePath"],
        additionalProperties: false,
      },
    },
  },
];

const SYSTEM = "You are a careful coding agent. Answer briefly.";

/**
 * The standard cases: (a) system+user, (b) multi-turn, (c) tools, (d) parallel calls,
 * (e) reasoning, plus (f) no generation prompt with a developer message in parts and thinking
 * off, and (g) a full tool round trip with reasoning on the tool-call message.
 */
export const CASES: ChatTemplateCase[] = [
  {
    name: "a_system_user",
    messages: [
      { role: "system", content: SYSTEM },
      { role: "user", content: "What does `ls -la` print? Réponds en français ☕" },
    ],
    opts: { addGenerationPrompt: true },
  },
  {
    name: "b_multi_turn",
    messages: [
      { role: "user", content: "Hi there!" },
      { role: "assistant", content: "Hello! How can I help you today?" },
      {
        role: "user",
        content: [{ type: "text", text: "Write a haiku" }, {
          type: "text",
          text: "about \"quotes\" and 'apostrophes'.",
        }],
      },
      {
        role: "assistant",
        content: "Quotes wrap the words,\napostrophes keep their place —\nsyntax in the rain.",
      },
      { role: "user", content: "Thanks. One more, shorter?" },
    ],
    opts: { addGenerationPrompt: true },
  },
  {
    name: "c_tools",
    messages: [
      { role: "system", content: SYSTEM },
      { role: "user", content: "List the files in the current directory." },
      {
        role: "assistant",
        content: "",
        tool_calls: [{
          id: "call_0001",
          type: "function",
          function: {
            name: "bash",
            arguments: '{"command":"ls -la","description":"Lists files in the current directory"}',
          },
        }],
      },
      {
        role: "tool",
        tool_call_id: "call_0001",
        content: "total 8\n-rw-r--r-- 1 me me 120 README.md\n-rw-r--r-- 1 me me 42 main.ts",
      },
    ],
    opts: { tools: TOOLS, addGenerationPrompt: true },
  },
  {
    name: "d_parallel_calls",
    messages: [
      { role: "system", content: SYSTEM },
      { role: "user", content: "Read README.md and main.ts." },
      {
        role: "assistant",
        content: "",
        tool_calls: [
          {
            id: "call_0002",
            type: "function",
            function: { name: "read", arguments: '{"filePath":"/repo/README.md"}' },
          },
          {
            id: "call_0003",
            type: "function",
            function: {
              name: "read",
              arguments: '{"filePath":"/repo/main.ts","offset":1,"limit":20}',
            },
          },
        ],
      },
      { role: "tool", tool_call_id: "call_0002", content: "# Demo\nA tiny project." },
      { role: "tool", tool_call_id: "call_0003", content: 'console.log("héllo");' },
    ],
    opts: { tools: TOOLS, addGenerationPrompt: true },
  },
  {
    name: "e_reasoning",
    messages: [
      { role: "system", content: SYSTEM },
      { role: "user", content: "What is 17 * 23?" },
      {
        role: "assistant",
        reasoning_content: "17 * 23 = 17 * 20 + 17 * 3 = 340 + 51 = 391.",
        content: "391",
      },
      { role: "user", content: "And 391 / 17?" },
    ],
    opts: { addGenerationPrompt: true, extra: { enable_thinking: true } },
  },
  {
    name: "f_no_generation_prompt",
    messages: [
      { role: "developer", content: [{ type: "text", text: SYSTEM }] },
      { role: "user", content: "Say hi." },
      { role: "assistant", content: "Hi!" },
    ],
    opts: { addGenerationPrompt: false, extra: { enable_thinking: false } },
  },
  {
    name: "g_tool_round_trip",
    messages: [
      { role: "user", content: "How big is README.md?" },
      {
        role: "assistant",
        content: "Let me check.",
        reasoning_content: "I should run wc -c on the file.",
        tool_calls: [{
          id: "call_0004",
          type: "function",
          function: {
            name: "bash",
            arguments: '{"command":"wc -c README.md","description":"Counts bytes","timeout":5000}',
          },
        }],
      },
      { role: "tool", tool_call_id: "call_0004", content: "120 README.md" },
      {
        role: "assistant",
        content: "README.md is 120 bytes.",
        reasoning_content: "The tool said 120.",
      },
      { role: "user", content: "Thanks!" },
    ],
    opts: { tools: TOOLS, addGenerationPrompt: true, extra: { reasoning_effort: "high" } },
  },
];
