/**
 * Tool calls of GLM-4.6/4.7, MiniMax-M2, Kimi K2 (and DeepSeek-V3.1): each family's own chat
 * template (from the llama.cpp source node-llama-cpp ships) renders an assistant turn with
 * reasoning, content and two calls; the family's parser reads it back, cut at every position
 * and in pieces of every size, without leaking call syntax into content.
 */

import assert from "node:assert/strict";
import { applyChatTemplate, type ChatMessage } from "../tokenizer/chat_template.ts";
import { llamaTemplate } from "../../test/templates/llama_source.ts";
import {
  createOutputParser,
  detectToolFormat,
  type OutputEvent,
  type ToolDef,
  type ToolFormat,
} from "./mod.ts";
import { kimiToolName } from "./kimi.ts";

const TOOLS: ToolDef[] = [
  {
    name: "get_weather",
    description: "Weather",
    parameters: {
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        city: { type: "string" },
        days: { type: "integer" },
        opts: { type: "object", properties: { metric: { type: "boolean" } } },
      },
      required: ["city"],
    },
  },
  {
    name: "bash",
    description: "Run a command",
    parameters: {
      type: "object",
      properties: { command: { type: "string" }, timeout: { type: "number" } },
      required: ["command"],
    },
  },
];
const OA_TOOLS = TOOLS.map((t) => ({ type: "function" as const, function: { ...t } }));

interface Call {
  name: string;
  args: unknown;
}

interface Parsed {
  content: string;
  reasoning: string;
  calls: Call[];
  errors: string[];
}

/** Reads events back; checks the stream invariants (deltas add up, every start ends). */
function collect(evs: OutputEvent[]): Parsed {
  let content = "", reasoning = "";
  const calls: Call[] = [];
  const errors: string[] = [];
  const args = new Map<number, string>();
  for (const e of evs) {
    if (e.type === "content") content += e.text;
    else if (e.type === "reasoning") reasoning += e.text;
    else if (e.type === "tool_call_start") {
      assert.ok(!args.has(e.index), "start twice");
      assert.match(e.id, /^call_[A-Za-z0-9]{24}$/);
      args.set(e.index, "");
      calls[e.index] = { name: e.name, args: undefined };
    } else if (e.type === "tool_call_args") {
      assert.ok(args.has(e.index), "args outside a call");
      args.set(e.index, args.get(e.index)! + e.text);
    } else {
      assert.equal(args.get(e.index), e.arguments, "deltas must add up to the arguments");
      args.delete(e.index);
      if (e.error) errors.push(e.error);
      else calls[e.index].args = JSON.parse(e.arguments);
    }
  }
  assert.equal(args.size, 0, "every started call ends");
  return { content, reasoning, calls, errors };
}

function parseIn(format: ToolFormat, pieces: string[], thinking: boolean): Parsed {
  const p = createOutputParser(format, { tools: TOOLS, thinking });
  const evs: OutputEvent[] = [];
  for (const piece of pieces) evs.push(...p.push(piece));
  evs.push(...p.end());
  return collect(evs);
}

/** Every split of `text` in two (at each UTF-16 position), and pieces of several sizes. */
function splits(text: string): string[][] {
  const out: string[][] = [];
  for (let i = 0; i <= text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  for (const n of [1, 2, 3, 5, 7, 13]) {
    const p: string[] = [];
    for (let i = 0; i < text.length; i += n) p.push(text.slice(i, i + n));
    out.push(p);
  }
  return out;
}

const CALLS: Call[] = [
  {
    name: "get_weather",
    args: { city: 'Paris, "FR" <tool_call> </arg_value', days: 3, opts: { metric: true } },
  },
  { name: "bash", args: { command: "ls -la | grep '}'", timeout: 2.5 } },
];

/** What the model generates after the prompt: the assistant turn as its template renders it. */
function generated(tplName: string, calls: Call[], eot: string): { text: string; open: boolean } {
  const tpl = llamaTemplate(tplName);
  const msgs: ChatMessage[] = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "What is the weather in Paris?" },
  ];
  const assistant: ChatMessage = {
    role: "assistant",
    content: "Let me check.",
    reasoning_content: "The user wants weather.",
    tool_calls: calls.map((c, i) => ({
      id: `call${i}`,
      type: "function",
      function: { name: c.name, arguments: JSON.stringify(c.args) },
    })),
  };
  const opts = { tools: OA_TOOLS, bosToken: "", eosToken: "" };
  const prompt = applyChatTemplate(tpl, msgs, { ...opts, addGenerationPrompt: true });
  const full = applyChatTemplate(tpl, [...msgs, assistant], {
    ...opts,
    addGenerationPrompt: false,
  });
  assert.ok(full.startsWith(prompt), `${tplName}: the history does not extend the prompt`);
  let text = full.slice(prompt.length);
  if (eot && text.includes(eot)) text = text.slice(0, text.indexOf(eot));
  // the server's rule: the prompt opened a reasoning block itself
  return { text, open: /<think>\s*$/.test(prompt) };
}

/** Template, format, end-of-turn text, whether the template renders reasoning. */
const FAMILIES: [string, ToolFormat, string, boolean][] = [
  ["GLM-4.6.jinja", "glm", "", true],
  ["GLM-4.7-Flash.jinja", "glm", "", true],
  ["MiniMax-M2.jinja", "minimax", "[e~[", true],
  ["Kimi-K2-Instruct.jinja", "kimi", "<|im_end|>", false],
  ["Kimi-K2-Thinking.jinja", "kimi", "<|im_end|>", true],
  ["moonshotai-Kimi-K2.jinja", "kimi", "<|im_end|>", false],
  ["deepseek-ai-DeepSeek-V3.1.jinja", "deepseek", "<｜end▁of▁sentence｜>", false],
  // other templates that write GLM's syntax
  ["Spark2.5.jinja", "glm", "<｜end▁of▁sentence｜>", true],
  ["poolside-Laguna-S-2.1.jinja", "glm", "</assistant>", true],
  ["inclusionai-ling-3.0-flash.jinja", "glm", "<|role_end|>", true],
];

Deno.test("detectToolFormat: GLM, MiniMax-M2, Kimi K2 from their own templates", () => {
  for (const [name, format] of FAMILIES) {
    assert.equal(detectToolFormat(llamaTemplate(name), "x"), format, name);
  }
  // MiniMax-M1 and M3 write other syntaxes: not taken for M2's
  assert.notEqual(detectToolFormat(llamaTemplate("MiniMax-M1.jinja"), "x"), "minimax");
  assert.notEqual(detectToolFormat(llamaTemplate("MiniMax-M3.jinja"), "x"), "minimax");
  assert.equal(detectToolFormat(undefined, "glm4moe"), "glm");
  assert.equal(detectToolFormat(undefined, "minimax-m2"), "minimax");
});

for (const [name, format, eot, reasons] of FAMILIES) {
  Deno.test(`round trip: ${name} renders calls, the ${format} parser reads them at every split`, () => {
    const { text, open } = generated(name, CALLS, eot);
    if (format !== "deepseek") assert.ok(text.includes("Let me check."), text);
    for (const pieces of splits(text)) {
      const r = parseIn(format, pieces, open);
      const where = `${name} ${JSON.stringify(pieces.slice(0, 2))}`;
      assert.deepEqual(r.errors, [], where);
      assert.deepEqual(r.calls, CALLS, where);
      if (format !== "deepseek") assert.equal(r.content.trim(), "Let me check.", where);
      assert.equal(r.reasoning, reasons ? "The user wants weather." : "", where);
    }
  });
}

Deno.test("glm: values typed by the schema, both layouts, malformed calls", () => {
  const compact = "<tool_call>get_weather<arg_key>city</arg_key><arg_value>007</arg_value>" +
    "<arg_key>days</arg_key><arg_value>4</arg_value><arg_key>extra</arg_key>" +
    '<arg_value>{"a": [1]}</arg_value></tool_call>';
  for (const pieces of splits(compact)) {
    const r = parseIn("glm", pieces, false);
    assert.deepEqual(r.calls, [{
      name: "get_weather",
      args: { city: "007", days: 4, extra: { a: [1] } },
    }]);
    assert.equal(r.content, "");
  }
  // a call without arguments
  assert.deepEqual(parseIn("glm", ["<tool_call>bash\n</tool_call>"], false).calls, [
    { name: "bash", args: {} },
  ]);
  // an unknown tool: content, raw
  const unknown = "Hi <tool_call>rm_rf<arg_key>x</arg_key><arg_value>1</arg_value></tool_call>";
  const u = parseIn("glm", [unknown], false);
  assert.equal(u.content, unknown);
  assert.equal(u.calls.length, 0);
  // cut off inside a value: the arguments so far, with an error
  const cut = parseIn("glm", ["<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>l"], false);
  assert.deepEqual(cut.errors, ["the call was cut off"]);
  // reasoning written by the model (GLM-4.6), then content: `<` alone is not a call
  const r = parseIn("glm", ["\n<think>a < b</think>\n", "x < y"], false);
  assert.equal(r.reasoning, "a < b");
  assert.equal(r.content, "x < y");
});

Deno.test("minimax: several invokes in one block, malformed ones, cut off", () => {
  const text = 'Sure.\n<minimax:tool_call>\n<invoke name="bash">\n<parameter name="command">' +
    'echo "</invoke>"\n</parameter>\n</invoke>\n<invoke name="nope">\n<parameter name="a">1' +
    "</parameter>\n</invoke>\n</minimax:tool_call>";
  for (const pieces of splits(text)) {
    const r = parseIn("minimax", pieces, false);
    assert.deepEqual(r.calls, [{ name: "bash", args: { command: 'echo "</invoke>"\n' } }]);
    assert.equal(
      r.content,
      'Sure.\n<invoke name="nope">\n<parameter name="a">1</parameter>\n</invoke>',
    );
  }
  const cut = parseIn("minimax", ['<minimax:tool_call>\n<invoke name="bash">\n<par'], false);
  assert.deepEqual(cut.errors, ["the call was cut off"]);
  assert.deepEqual(cut.calls.length, 1);
});

Deno.test("kimi: calls without section markers or end markers, names, cut off", () => {
  assert.equal(kimiToolName("functions.get_weather:12"), "get_weather");
  assert.equal(kimiToolName(" bash:0 "), "bash");
  assert.equal(kimiToolName("bash"), "bash");
  const loose = '<|tool_call_begin|>functions.bash:0<|tool_call_argument_begin|>{"command": "ls"}' +
    '<|tool_call_begin|>functions.get_weather:1<|tool_call_argument_begin|>{"city": "Oslo"}' +
    "<|tool_calls_section_end|>";
  for (const pieces of splits(loose)) {
    const r = parseIn("kimi", pieces, false);
    assert.deepEqual(r.calls, [
      { name: "bash", args: { command: "ls" } },
      { name: "get_weather", args: { city: "Oslo" } },
    ]);
    assert.equal(r.content, "");
  }
  const bad = "<|tool_calls_section_begin|><|tool_call_begin|>functions.rm:0" +
    "<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>";
  assert.equal(
    parseIn("kimi", [bad], false).content,
    "<|tool_call_begin|>functions.rm:0<|tool_call_argument_begin|>{}<|tool_call_end|>",
  );
  const cut = parseIn("kimi", [
    '<|tool_calls_section_begin|><|tool_call_begin|>functions.bash:0<|tool_call_argument_begin|>{"c',
  ], false);
  assert.deepEqual(cut.errors, ["the call was cut off"]);
  // K2-Thinking: reasoning first
  const t = parseIn("kimi", ["<think>hm</think>Hello"], false);
  assert.deepEqual([t.reasoning, t.content], ["hm", "Hello"]);
  // reasoning that a call section ends without </think>
  const unclosed = "<think>I will call bash <|tool_calls_section_begin|><|tool_call_begin|>" +
    'functions.bash:0<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|>' +
    "<|tool_calls_section_end|>";
  for (const pieces of splits(unclosed)) {
    const u = parseIn("kimi", pieces, false);
    assert.equal(u.reasoning, "I will call bash");
    assert.equal(u.content, "");
    assert.deepEqual(u.calls, [{ name: "bash", args: { command: "ls" } }]);
  }
});

Deno.test("the new parsers never throw on random input", () => {
  let seed = 99;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const atoms = [
    "<tool_call>",
    "</tool_call>",
    "bash",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "<minimax:tool_call>",
    "</minimax:tool_call>",
    '<invoke name="bash">',
    '<parameter name="command">',
    "</parameter>",
    "</invoke>",
    "<|tool_calls_section_begin|>",
    "<|tool_call_begin|>functions.bash:0",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
    "<|tool_calls_section_end|>",
    "<think>",
    "</think>",
    "{",
    "}",
    '"',
    "x",
    "\n",
  ];
  for (let n = 0; n < 300; n++) {
    let s = "";
    const len = Math.floor(rnd() * 30);
    for (let i = 0; i < len; i++) s += atoms[Math.floor(rnd() * atoms.length)];
    for (const f of ["glm", "minimax", "kimi"] as ToolFormat[]) {
      const size = 1 + Math.floor(rnd() * 6);
      const pieces: string[] = [];
      for (let i = 0; i < s.length; i += size) pieces.push(s.slice(i, i + size));
      parseIn(f, pieces, rnd() < 0.5); // checks the invariants
    }
  }
});
