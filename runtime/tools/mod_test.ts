import assert from "node:assert/strict";
import { templateDir } from "../data_dirs.ts";
import { readFileSync } from "node:fs";
import { applyChatTemplate, type ChatMessage } from "../tokenizer/chat_template.ts";
import {
  coderValueJson,
  createOutputParser,
  detectToolFormat,
  type OutputEvent,
  type ToolDef,
  type ToolFormat,
} from "./mod.ts";

/** llama.cpp's chat templates (see runtime/data_dirs.ts). */
const TEMPLATES = templateDir();
const template = (name: string) => readFileSync(TEMPLATES + name, "utf8");

const TOOLS: ToolDef[] = [
  {
    name: "get_weather",
    description: "Weather",
    parameters: {
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: { city: { type: "string" }, days: { type: "integer" } },
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
  id?: string;
}

/** Runs the parser over `text` cut into pieces of `size` chars; checks the stream invariants. */
function parse(
  format: ToolFormat,
  text: string,
  size: number,
  thinking = false,
): { content: string; reasoning: string; calls: Call[]; errors: string[] } {
  const p = createOutputParser(format, { tools: TOOLS, thinking });
  const evs: OutputEvent[] = [];
  for (let i = 0; i < text.length; i += size) evs.push(...p.push(text.slice(i, i + size)));
  evs.push(...p.end());
  let content = "", reasoning = "";
  const calls: Call[] = [];
  const errors: string[] = [];
  const args = new Map<number, string>();
  const open = new Set<number>();
  for (const e of evs) {
    if (e.type === "content") content += e.text;
    else if (e.type === "reasoning") reasoning += e.text;
    else if (e.type === "tool_call_start") {
      assert.ok(!open.has(e.index), "start twice");
      assert.match(e.id, format === "mistral" ? /^[A-Za-z0-9]{9}$/ : /^call_[A-Za-z0-9]{24}$|^/);
      open.add(e.index);
      args.set(e.index, "");
      calls[e.index] = { name: e.name, args: undefined, id: e.id };
    } else if (e.type === "tool_call_args") {
      assert.ok(open.has(e.index), "args outside a call");
      args.set(e.index, args.get(e.index)! + e.text);
    } else {
      assert.ok(open.has(e.index), "end outside a call");
      open.delete(e.index);
      assert.equal(args.get(e.index), e.arguments, "deltas must add up to the arguments");
      if (e.error) errors.push(e.error);
      else calls[e.index].args = JSON.parse(e.arguments);
    }
  }
  assert.equal(open.size, 0, "every started call ends");
  return { content, reasoning, calls, errors };
}

const SIZES = [1, 2, 3, 5, 7, 13, 1e9];

/** The assistant turn exactly as the template renders it after the generation prompt. */
function renderAssistant(tplName: string, calls: Call[], extra: Record<string, unknown> = {}) {
  const tpl = template(tplName);
  const user: ChatMessage = { role: "user", content: "What is the weather in Paris?" };
  const assistant = {
    role: "assistant",
    content: "",
    tool_calls: calls.map((c, i) => ({
      id: c.id ?? `call${i}abcd`.slice(0, 9),
      type: "function",
      function: { name: c.name, arguments: JSON.stringify(c.args) },
    })),
  } as ChatMessage;
  const opts = { tools: OA_TOOLS, bosToken: "<s>", eosToken: "</s>", extra };
  const prompt = applyChatTemplate(tpl, [user], { ...opts, addGenerationPrompt: true });
  const full = applyChatTemplate(tpl, [user, assistant], { ...opts, addGenerationPrompt: false });
  if (tplName.includes("R1-Distill")) {
    // the generation prompt opens <think>, which the history leaves out: cut after the
    // common prefix (which ends with the assistant header)
    let i = 0;
    while (i < prompt.length && prompt[i] === full[i]) i++;
    const cut = prompt.lastIndexOf("<｜Assistant｜>", i) + "<｜Assistant｜>".length;
    assert.ok(cut > 20 && cut <= i);
    return full.slice(cut);
  }
  assert.ok(full.startsWith(prompt), `${tplName}: history does not extend the prompt`);
  return full.slice(prompt.length);
}

const CALLS: Call[] = [
  { name: "get_weather", args: { city: 'Paris, "FR" <tool_call>', days: 3 } },
  { name: "bash", args: { command: "ls -la | grep '}'" } },
];

const ROUND_TRIPS: [string, ToolFormat, string, Call[]][] = [
  ["Qwen-Qwen3-0.6B.jinja", "qwen3", "<|im_end|>\n", CALLS],
  ["Qwen-Qwen2.5-7B-Instruct.jinja", "qwen3", "<|im_end|>\n", CALLS],
  ["Qwen3-Coder.jinja", "qwen3_coder", "<|im_end|>\n", CALLS],
  ["openai-gpt-oss-120b.jinja", "harmony", "", CALLS.slice(0, 1)],
  ["unsloth-mistral-Devstral-Small-2507.jinja", "mistral", "</s>", CALLS],
  ["mistralai-Ministral-3-14B-Reasoning-2512.jinja", "mistral", "</s>", CALLS],
  [
    "Mistral-Small-3.2-24B-Instruct-2506.jinja",
    "mistral",
    "</s>",
    CALLS.map((c, i) => ({ ...c, id: `Ab${i}De5Gh9` })),
  ],
  [
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "mistral",
    "</s>",
    CALLS.map((c, i) => ({ ...c, id: `xY${i}zW8vQa` })),
  ],
  ["deepseek-ai-DeepSeek-V3.1.jinja", "deepseek", "<｜end▁of▁sentence｜>", CALLS],
  ["deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "deepseek", "<｜end▁of▁sentence｜>", CALLS],
];

Deno.test("detectToolFormat picks each family from its real template", () => {
  for (const [name, format] of ROUND_TRIPS) {
    assert.equal(detectToolFormat(template(name), "x"), format, name);
  }
  assert.equal(
    detectToolFormat(template("meta-llama-Llama-3.1-8B-Instruct.jinja"), "llama"),
    "none",
  );
  assert.equal(detectToolFormat(undefined, "gpt-oss"), "harmony");
  assert.equal(detectToolFormat(undefined, "qwen3moe"), "qwen3");
  assert.equal(detectToolFormat(undefined, "llama"), "none");
});

for (const [name, format, eot, calls] of ROUND_TRIPS) {
  Deno.test(`round trip: ${name} renders calls, ${format} parser reads them back`, () => {
    let text = renderAssistant(name, calls);
    // the model stops at its end-of-turn token: the text ends before the first one
    if (eot && text.includes(eot)) text = text.slice(0, text.indexOf(eot));
    text = text.replace(/<\|call\|>$/, "");
    for (const size of SIZES) {
      const r = parse(format, text, size, false);
      assert.deepEqual(r.errors, [], `${name} size ${size}`);
      assert.deepEqual(
        r.calls.map((c) => ({ name: c.name, args: c.args })),
        calls.map((c) => ({
          name: c.name,
          args: c.args,
        })),
        `${name} size ${size}: ${JSON.stringify(text)}`,
      );
      assert.equal(
        r.content.trim(),
        "",
        `${name} size ${size}: content ${JSON.stringify(r.content)}`,
      );
      // ids the model wrote are kept (Mistral templates check them on the next turn)
      for (let i = 0; i < calls.length; i++) {
        if (calls[i].id) assert.equal(r.calls[i].id, calls[i].id);
      }
    }
  });
}

Deno.test("qwen3: content before a call, thinking, split tags never leak", () => {
  const text = "<think>\nLet me check.\n</think>\n\nSure.\n<tool_call>\n" +
    '{"name": "bash", "arguments": {"command": "echo </tool_call>"}}\n</tool_call>';
  for (const size of SIZES) {
    const r = parse("qwen3", text, size, true);
    assert.equal(r.reasoning, "Let me check.");
    assert.equal(r.content, "Sure.\n");
    assert.deepEqual(r.calls.map((c) => c.args), [{ command: "echo </tool_call>" }]);
  }
  // forced-open reasoning (the prompt opened <think>): no opening tag in the output
  const r = parse("qwen3", "I think.\n</think>\n\nHello <tool_ world", 3, true);
  assert.equal(r.reasoning, "I think.");
  assert.equal(r.content, "Hello <tool_ world");
  // thinking off: a plain answer is content
  assert.equal(parse("qwen3", "Hi there", 2, false).content, "Hi there");
  // "arguments" before "name", and arguments as a JSON string
  const odd = '<tool_call>{"arguments": {"city": "Rome"}, "name": "get_weather"}</tool_call>' +
    '<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"pwd\\"}"}</tool_call>';
  assert.deepEqual(parse("qwen3", odd, 4).calls.map((c) => c.args), [
    { city: "Rome" },
    { command: "pwd" },
  ]);
});

Deno.test("qwen3: malformed calls have a defined behaviour", () => {
  // unknown tool: given back as content, raw
  const unknown = 'Hi<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>';
  let r = parse("qwen3", unknown, 3);
  assert.equal(r.content, unknown);
  assert.equal(r.calls.length, 0);
  // bad JSON with a known name: a call whose end carries the raw text and an error
  r = parse(
    "qwen3",
    '<tool_call>\n{"name": "bash", "arguments": {"command": ls}}\n</tool_call>',
    2,
  );
  assert.equal(r.calls.length, 1);
  assert.equal(r.errors.length, 1);
  assert.match(r.errors[0], /not valid JSON/);
  // cut off at the end
  r = parse("qwen3", '<tool_call>\n{"name": "bash", "arguments": {"command": "l', 5);
  assert.deepEqual(r.errors, ["the call was cut off"]);
  // cut off before the name: content
  r = parse("qwen3", '<tool_call>\n{"na', 5);
  assert.equal(r.content, '<tool_call>\n{"na');
});

Deno.test("qwen3_coder: values are typed by the schema", () => {
  assert.equal(coderValueJson("3", { type: "integer" }), "3");
  assert.equal(coderValueJson("007", { type: "string" }), '"007"');
  assert.equal(coderValueJson("true", { type: "boolean" }), "true");
  assert.equal(coderValueJson('{"a": [1]}', { type: "object" }), '{"a":[1]}');
  assert.equal(coderValueJson("not json", { type: "object" }), '"not json"');
  assert.equal(coderValueJson("2.5", { type: ["number", "null"] }), "2.5");
  const text = "Checking.\n<tool_call>\n<function=bash>\n<parameter=command>\nfor i in 1 2; do\n" +
    '  echo "<$i>"\ndone\n</parameter>\n<parameter=timeout>\n30\n</parameter>\n</function>\n' +
    "</tool_call>";
  for (const size of SIZES) {
    const r = parse("qwen3_coder", text, size);
    assert.equal(r.content, "Checking.\n");
    assert.deepEqual(r.calls.map((c) => c.args), [{
      command: 'for i in 1 2; do\n  echo "<$i>"\ndone',
      timeout: 30,
    }]);
  }
  // unterminated: the parameters so far, with an error
  const cut = parse(
    "qwen3_coder",
    "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n",
    4,
  );
  assert.deepEqual(cut.errors, ["the call was cut off"]);
});

Deno.test("harmony: analysis is reasoning, final is content, commentary to= is a call", () => {
  const text = "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant" +
    "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>" +
    '{"city": "Oslo"}<|call|>';
  for (const size of SIZES) {
    const r = parse("harmony", text, size);
    assert.equal(r.reasoning, "Need weather.");
    assert.equal(r.content, "");
    assert.deepEqual(r.calls.map((c) => [c.name, c.args]), [["get_weather", { city: "Oslo" }]]);
  }
  const fin = parse(
    "harmony",
    "<|channel|>analysis<|message|>Easy.<|end|><|start|>assistant<|channel|>final<|message|>4<|return|>",
    2,
  );
  assert.equal(fin.reasoning, "Easy.");
  assert.equal(fin.content, "4");
  // the final message without its <|return|> (the EOG token is not part of the text)
  assert.equal(parse("harmony", "<|channel|>final<|message|>Hello", 3).content, "Hello");
  // an unknown recipient is content, raw
  const bad = "<|channel|>commentary to=functions.nope <|constrain|>json<|message|>{}<|call|>";
  assert.equal(parse("harmony", bad, 4).content, bad.replace("<|call|>", ""));
});

Deno.test("mistral and deepseek: reasoning, content, and cut-off calls", () => {
  const m = parse(
    "mistral",
    '[THINK]hmm[/THINK]Ok.[TOOL_CALLS]bash[ARGS]{"command": "ls"}',
    3,
    false,
  );
  assert.equal(m.reasoning, "hmm");
  assert.equal(m.content, "Ok.");
  assert.deepEqual(m.calls.map((c) => c.args), [{ command: "ls" }]);
  const cut = parse("mistral", '[TOOL_CALLS]bash[ARGS]{"command": "l', 3);
  assert.deepEqual(cut.errors, ["the call was cut off"]);
  const ds = parse(
    "deepseek",
    "Thinking hard</think>Let me run it.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>bash" +
      '<｜tool▁sep｜>{"command": "date"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    4,
    true,
  );
  assert.equal(ds.reasoning, "Thinking hard");
  assert.equal(ds.content, "Let me run it.");
  assert.deepEqual(ds.calls.map((c) => c.args), [{ command: "date" }]);
});

Deno.test("parsers never throw on random input", () => {
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const atoms = [
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "{",
    "}",
    '"',
    '{"name": "bash", "arguments": ',
    "[TOOL_CALLS]",
    "[ARGS]",
    "<|channel|>",
    "<|message|>",
    "<|end|>",
    " to=functions.bash",
    "<function=bash>",
    "<parameter=command>",
    "</parameter>",
    "</function>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>",
    "x",
    "\n",
  ];
  const formats: ToolFormat[] = ["qwen3", "qwen3_coder", "harmony", "mistral", "deepseek", "none"];
  for (let n = 0; n < 300; n++) {
    let s = "";
    const len = Math.floor(rnd() * 30);
    for (let i = 0; i < len; i++) s += atoms[Math.floor(rnd() * atoms.length)];
    for (const f of formats) {
      const p = createOutputParser(f, { tools: TOOLS, thinking: rnd() < 0.5 });
      const size = 1 + Math.floor(rnd() * 6);
      const evs: OutputEvent[] = [];
      for (let i = 0; i < s.length; i += size) evs.push(...p.push(s.slice(i, i + size)));
      evs.push(...p.end());
      const starts = evs.filter((e) => e.type === "tool_call_start").length;
      const ends = evs.filter((e) => e.type === "tool_call_end").length;
      assert.equal(starts, ends, `${f}: ${JSON.stringify(s)}`);
    }
  }
});
