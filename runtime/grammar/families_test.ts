/**
 * Tool grammars of GLM-4.6/4.7, MiniMax-M2 and Kimi K2 against the calls their own templates
 * render (from the llama.cpp source node-llama-cpp ships): what the template writes is
 * accepted byte by byte, and wrong names, types, missing required or unknown parameters,
 * extra calls without `parallel`, and bad syntax are rejected.
 */

import assert from "node:assert/strict";
import { applyChatTemplate } from "../tokenizer/chat_template.ts";
import { createOutputParser, type ToolDef, type ToolFormat } from "../tools/mod.ts";
import { llamaTemplate } from "../../test/templates/llama_source.ts";
import { compileConstraint, type ConstraintSpec, type ConstraintVocab } from "./mod.ts";

/** A byte vocabulary: token b < 256 is byte b; 256 is EOG; 257.. are control tokens. */
function byteVocab(control: string[] = []): ConstraintVocab {
  const enc = new TextEncoder();
  return {
    nVocab: 257 + control.length,
    piece: (
      id,
    ) => (id < 256
      ? Uint8Array.of(id)
      : id === 256
      ? new Uint8Array(0)
      : enc.encode(control[id - 257])),
    isEog: (id) => id === 256,
    isControl: (id) => id > 256,
  };
}
const BYTES = byteVocab();

/** Whether `text` is a complete match (byte by byte, then EOG). */
function matches(spec: ConstraintSpec, text: string): boolean {
  const c = compileConstraint(spec, BYTES);
  for (const b of new TextEncoder().encode(text)) {
    if (!c.accepts(b)) return false;
    c.advance(b);
  }
  return c.accepts(256);
}

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
        unit: { type: "string", enum: ["c", "f"] },
      },
      required: ["city"],
      additionalProperties: false,
    },
  },
  {
    name: "bash",
    description: "Runs a command",
    parameters: {
      type: "object",
      properties: { command: { type: "string" } },
      required: ["command"],
      additionalProperties: false,
    },
  },
];
const CALLS = [
  { name: "get_weather", args: { city: "Paris", days: 3 } },
  { name: "bash", args: { command: "ls -la" } },
];

/** The calls as the template renders them after its generation prompt, up to `eot`. */
function rendered(tpl: string, calls: typeof CALLS, eot: string): string {
  const t = llamaTemplate(tpl);
  const tools = TOOLS.map((x) => ({ type: "function" as const, function: { ...x } }));
  const user = { role: "user", content: "Hi" };
  const asst = {
    role: "assistant",
    content: "",
    tool_calls: calls.map((c, i) => ({
      id: `abcdefgh${i}`,
      type: "function" as const,
      function: { name: c.name, arguments: JSON.stringify(c.args) },
    })),
  };
  // without reasoning, the history leaves out the <think> the generation prompt opens
  const prompt = applyChatTemplate(t, [user], { tools, addGenerationPrompt: true })
    .replace(/<think>\s*$/, "");
  const full = applyChatTemplate(t, [user, asst], { tools, addGenerationPrompt: false });
  assert.ok(full.startsWith(prompt));
  let out = full.slice(prompt.length);
  if (eot && out.includes(eot)) out = out.slice(0, out.indexOf(eot));
  // the empty reasoning block some templates render is not part of the call
  return out.replace(/^\s*(<think>\s*<\/think>|<\/think>|<think>\s*)?\s*/, "");
}

type Choice = Extract<ConstraintSpec, { kind: "tools" }>["choice"];

const CASES: [string, ToolFormat, string][] = [
  ["GLM-4.6.jinja", "glm", ""],
  ["GLM-4.7-Flash.jinja", "glm", ""],
  ["MiniMax-M2.jinja", "minimax", "[e~["],
  ["Kimi-K2-Thinking.jinja", "kimi", "<|im_end|>"],
  ["Kimi-K2-Instruct.jinja", "kimi", "<|im_end|>"],
];

for (const [tpl, format, eot] of CASES) {
  Deno.test(`tools grammar (${format}) accepts exactly what ${tpl} renders`, () => {
    const chatTemplate = llamaTemplate(tpl);
    const text = rendered(tpl, CALLS, eot);
    const spec = (choice: Choice, parallel: boolean) =>
      ({
        kind: "tools",
        format,
        tools: TOOLS,
        choice,
        parallel,
        chatTemplate,
      }) as ConstraintSpec;
    assert.ok(matches(spec("required", true), text), JSON.stringify(text));
    assert.ok(!matches(spec("required", false), text), "two calls without parallel");
    const single = rendered(tpl, CALLS.slice(0, 1), eot);
    assert.ok(matches(spec("required", false), single), JSON.stringify(single));
    // parameters in another order are fine; each at most once; required ones must be there
    const swapped = rendered(tpl, [{ name: "get_weather", args: { days: 3, city: "Paris" } }], eot);
    assert.notEqual(swapped, single);
    assert.ok(matches(spec("required", false), swapped), JSON.stringify(swapped));
    const noCity = rendered(tpl, [{ name: "get_weather", args: { days: 3 } } as never], eot);
    assert.ok(!matches(spec("required", false), noCity), JSON.stringify(noCity));
    const param =
      /<arg_key>city<\/arg_key>\n?<arg_value>Paris<\/arg_value>\n?|<parameter name="city">Paris<\/parameter>\n|"city": ?"Paris", ?/;
    const seg = param.exec(single)?.[0];
    assert.ok(seg, single);
    assert.ok(!matches(spec("required", false), single.replace(seg, seg + seg)), "a key twice");
    // an enum string is written raw, as the template renders it
    const unit = rendered(tpl, [
      { name: "get_weather", args: { city: "Oslo", unit: "f" } } as never,
    ], eot);
    assert.ok(matches(spec("required", false), unit), JSON.stringify(unit));
    const p1 = createOutputParser(format, { tools: TOOLS, thinking: false });
    const e1 = [...p1.push(unit), ...p1.end()].find((e) => e.type === "tool_call_end");
    assert.deepEqual(JSON.parse((e1 as { arguments: string }).arguments), {
      city: "Oslo",
      unit: "f",
    });
    // wrong types, unknown parameters, enum values, names
    for (
      const bad of [
        { city: "Paris", days: "three" },
        { city: "Paris", days: 2.5 },
        { city: "Paris", unit: "k" },
        { city: "Paris", other: 1 },
      ]
    ) {
      const t = rendered(tpl, [{ name: "get_weather", args: bad } as never], eot);
      assert.ok(!matches(spec("required", false), t), JSON.stringify(t));
    }
    assert.ok(!matches(spec("required", false), single.replace("get_weather", "get_weathe")));
    // a named choice takes only that tool
    assert.ok(!matches(spec({ name: "bash" }, false), single));
    assert.ok(matches(spec({ name: "get_weather" }, false), single));
    // auto: free text first, then the call; or no call at all
    assert.ok(matches(spec("auto", true), "Let me see. " + text));
    assert.ok(matches(spec("auto", true), "No tool needed."));
    const badCall = rendered(tpl, [
      { name: "get_weather", args: { city: "P", days: "x" } } as never,
    ], eot);
    assert.ok(!matches(spec("auto", false), "Let me see. " + badCall), badCall);
    // thinking first: free reasoning up to </think>, then the call
    const think = { ...spec("required", false), thinking: true } as ConstraintSpec;
    assert.ok(matches(think, "Let me think </tool_call> {\n</think>\n\n" + single));
    assert.ok(!matches(think, "hm</think>\n\nPlain answer."));
    if (format === "minimax") {
      // as the template renders reasoning before calls: "</think>\n\n" then "\n<minimax:..."
      assert.ok(matches(think, "hm\n</think>\n\n\n" + single));
    }
    // what the grammar accepts, the parser reads back
    const p = createOutputParser(format, { tools: TOOLS, thinking: false });
    const evs = [...p.push(text), ...p.end()];
    const ends = evs.filter((e) => e.type === "tool_call_end");
    assert.deepEqual(ends.map((e) => JSON.parse(e.arguments)), CALLS.map((c) => c.args));
  });
}

Deno.test("tools grammar: the call tags may be control tokens, strings may not hold others", () => {
  const tags = [
    "<tool_call>",
    "</tool_call>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "<|user|>",
  ];
  const vocab = byteVocab(tags);
  const id = (t: string) => 257 + tags.indexOf(t);
  const c = compileConstraint({
    kind: "tools",
    format: "glm",
    tools: TOOLS,
    choice: "required",
    parallel: false,
    chatTemplate: llamaTemplate("GLM-4.7-Flash.jinja"),
  }, vocab);
  const enc = new TextEncoder();
  const feed = (t: number[]) => t.every((x) => c.accepts(x) && (c.advance(x), true));
  assert.ok(feed([id("<tool_call>"), ...enc.encode("bash"), id("<arg_key>")]));
  assert.ok(feed([...enc.encode("command"), id("</arg_key>"), id("<arg_value>")]));
  assert.ok(feed([...enc.encode("ls")]));
  assert.ok(!c.accepts(id("<|user|>")), "another control token inside a string value");
  assert.ok(!c.accepts(id("</tool_call>")), "the call's end inside a value");
  assert.ok(c.accepts(id("</arg_value>")));
  assert.ok(!c.accepts(256), "EOG inside a call");
  c.advance(id("</arg_value>"));
  assert.ok(c.accepts(id("</tool_call>")));
  c.advance(id("</tool_call>"));
  assert.ok(c.accepts(256));
});

Deno.test("tools grammar: maxLength bounds raw string values of the tagged formats", () => {
  const tools: ToolDef[] = [{
    name: "f",
    parameters: {
      type: "object",
      properties: { s: { type: "string", maxLength: 3 } },
      required: ["s"],
    },
  }];
  const spec: ConstraintSpec = {
    kind: "tools",
    format: "minimax",
    tools,
    choice: "required",
    parallel: false,
  };
  const call = (v: string) =>
    `<minimax:tool_call>\n<invoke name="f">\n<parameter name="s">${v}</parameter>\n</invoke>\n` +
    "</minimax:tool_call>";
  for (const ok of ["", "ab", "abc", "é😀<", "<</", "a</"]) assert.ok(matches(spec, call(ok)), ok);
  for (const bad of ["abcd", "é😀<x", "ab</x"]) assert.ok(!matches(spec, call(bad)), bad);
  // Qwen3-Coder's raw strings get the same bound
  const coder = { ...spec, format: "qwen3_coder" } as ConstraintSpec;
  const c = (v: string) =>
    `<tool_call>\n<function=f>\n<parameter=s>\n${v}\n</parameter>\n</function>\n</tool_call>`;
  assert.ok(matches(coder, c("abc")));
  assert.ok(!matches(coder, c("abcd")));
  // a value that may be a string is raw text, and the parser types it
  const opt = {
    ...spec,
    tools: [{
      name: "f",
      parameters: { type: "object", properties: { s: { type: ["string", "null"] } } },
    }],
  } as ConstraintSpec;
  for (const [raw, value] of [["x y", "x y"], ["null", null]] as const) {
    assert.ok(matches(opt, call(raw)), raw);
    const p = createOutputParser("minimax", {
      tools: (opt as { tools: ToolDef[] }).tools,
      thinking: false,
    });
    const end = [...p.push(call(raw)), ...p.end()].find((e) => e.type === "tool_call_end");
    assert.deepEqual(JSON.parse((end as { arguments: string }).arguments), { s: value });
  }
});

Deno.test("tools grammar: raw string values are valid UTF-8", () => {
  const spec: ConstraintSpec = {
    kind: "tools",
    format: "glm",
    tools: [{ name: "f", parameters: { type: "object", properties: { s: { type: "string" } } } }],
    choice: "required",
    parallel: false,
  };
  const c = compileConstraint(spec, BYTES);
  for (const b of new TextEncoder().encode("<tool_call>f\n<arg_key>s</arg_key>\n<arg_value>é")) {
    assert.ok(c.accepts(b));
    c.advance(b);
  }
  assert.ok(!c.accepts(0x80), "a stray continuation byte");
  assert.ok(!c.accepts(0xff));
  c.advance(0xe2); // the first of three bytes
  assert.ok(!c.accepts(0x41), "ASCII inside a multi-byte character");
  assert.ok(c.accepts(0x82));
});
