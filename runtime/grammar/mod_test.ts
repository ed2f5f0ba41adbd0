/**
 * Constrained decoding: the automaton against hand-checked JSON, the tool grammars against
 * the calls the real chat templates render, and the real Qwen vocabulary (151,936 tokens):
 * tokenized valid text is accepted token by token, the sorted-vocabulary mask equals one
 * `accepts` per token, and the costs are measured.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readGGUF } from "../gguf/reader.ts";
import { llamaTemplate, llamaVocab } from "../../test/_llama_source.ts";
import { applyChatTemplate } from "../tokenizer/chat_template.ts";
import { tokenizerFromGGUF } from "../tokenizer/tokenizer.ts";
import { createOutputParser, type ToolDef, type ToolFormat } from "../tools/mod.ts";
import {
  compileConstraint,
  COMPILED_SPECS_KEPT,
  type ConstraintSpec,
  type ConstraintVocab,
  constraintVocab,
  GrammarError,
  type MaskingConstraint,
} from "./mod.ts";

/** A byte vocabulary: token b < 256 is byte b; 256 is EOG. */
const BYTES: ConstraintVocab = {
  nVocab: 257,
  piece: (id) => (id < 256 ? Uint8Array.of(id) : new Uint8Array(0)),
  isEog: (id) => id === 256,
};

/** Whether `text` is a complete match of the spec (byte by byte, then EOG). */
function matches(spec: ConstraintSpec, text: string, vocab = BYTES): boolean {
  const c = compileConstraint(spec, vocab);
  for (const b of new TextEncoder().encode(text)) {
    if (!c.accepts(b)) return false;
    c.advance(b);
  }
  return c.accepts(256);
}

const schema = (s: Record<string, unknown>): ConstraintSpec => ({ kind: "json_schema", schema: s });

Deno.test("json_object: any object, bounded whitespace, nothing after", () => {
  const o: ConstraintSpec = { kind: "json_object" };
  for (
    const ok of [
      "{}",
      '{"a": 1}',
      '{"a":[1, -2.5e3, "x\\u00e9\\n", true, null, {"b": {}}]}',
      '{\n"k": "日本語 ✓ 😀"\n}',
    ]
  ) assert.ok(matches(o, ok), ok);
  for (
    const bad of [
      "[]",
      " {}",
      "{}\n",
      '{"a":  1}', // two spaces
      '{"a": 01}',
      '{"a": "x\ny"}', // raw newline in a string
      '{"a": tru}',
      '{"a" 1}',
      "{,}",
      '{"a": 1,}',
      '{"a": "\\x"}',
      '{"a": 1}}',
    ]
  ) assert.ok(!matches(o, bad), bad);
  // invalid UTF-8 inside a string is rejected byte by byte
  const c = compileConstraint(o, BYTES);
  for (const b of new TextEncoder().encode('{"a": "x')) c.advance(b); // inside a value
  assert.ok(!c.accepts(0xff) && !c.accepts(0x80));
});

Deno.test("json_schema: properties, required, additionalProperties, types, enum, const", () => {
  const s = schema({
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    properties: {
      path: { type: "string", minLength: 1, maxLength: 5, pattern: "^/" },
      mode: { enum: ["r", "w", 3] },
      n: { type: "integer", minimum: 0 },
      x: { type: ["number", "null"] },
      tags: { type: "array", items: { type: "string" }, minItems: 1, maxItems: 2 },
      v: { const: { a: [1] } },
      flag: { type: "boolean", description: "ignored keyword", default: false },
    },
    required: ["path"],
    additionalProperties: false,
  });
  for (
    const ok of [
      '{"path": "/a"}',
      '{"mode": "w", "path": "/éééé"}',
      '{"path": "/", "n": 12, "x": null, "tags": ["q"], "v": {"a":[1]}, "flag": true}',
      '{"path": "/a", "x": -0.5e-3, "mode": 3}',
    ]
  ) assert.ok(matches(s, ok), ok);
  for (
    const bad of [
      "{}", // required missing
      '{"path": ""}', // minLength
      '{"path": "a/"}', // pattern ^/
      '{"path": "/abcde"}', // maxLength (code points)
      '{"path": "/a", "other": 1}', // additionalProperties false
      '{"path": "/a", "path": "b"}', // duplicate
      '{"path": "/a", "mode": "x"}', // enum
      '{"path": "/a", "n": -1}', // minimum 0
      '{"path": "/a", "n": 1.5}', // integer
      '{"path": "/a", "tags": []}', // minItems
      '{"path": "/a", "tags": ["a", "b", "c"]}', // maxItems
      '{"path": "/a", "v": {"a":[2]}}', // const
      '{"path": 1}', // type
    ]
  ) assert.ok(!matches(s, bad), bad);
  // declared properties only when additionalProperties is absent; any key for a bare object
  assert.ok(!matches(schema({ type: "object", properties: { a: {} } }), '{"b": 1}'));
  assert.ok(matches(schema({ type: "object" }), '{"b": 1}'));
  // `properties: {}` is a tool without arguments: only {}
  assert.ok(matches(schema({ type: "object", properties: {} }), "{}"));
  assert.ok(!matches(schema({ type: "object", properties: {} }), '{"b": 1}'));
  assert.ok(matches(schema({ additionalProperties: { type: "integer" } }), '{"b": 1}'));
  assert.ok(!matches(schema({ additionalProperties: { type: "integer" } }), '{"b": "1"}'));
});

Deno.test("json_schema: $ref into $defs (recursive), anyOf, oneOf, allOf", () => {
  const tree = schema({
    $defs: {
      node: {
        type: "object",
        properties: {
          v: { type: "integer" },
          kids: { type: "array", items: { $ref: "#/$defs/node" } },
        },
        required: ["v"],
      },
    },
    $ref: "#/$defs/node",
  });
  assert.ok(matches(tree, '{"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": [{"v": 4}]}]}'));
  assert.ok(!matches(tree, '{"v": 1, "kids": [{"w": 2}]}'));
  const any = schema({
    anyOf: [
      { type: "object", properties: { a: { type: "string" } }, required: ["a"] },
      { type: "object", properties: { a: { type: "integer" }, b: {} }, required: ["a", "b"] },
    ],
  });
  assert.ok(matches(any, '{"a": "x"}'));
  assert.ok(matches(any, '{"a": 1, "b": [true]}'));
  assert.ok(!matches(any, '{"a": 1}'));
  const one = schema({ oneOf: [{ type: "string" }, { type: "integer" }] });
  assert.ok(matches(one, '"s"') && matches(one, "42") && !matches(one, "4.5"));
  const all = schema({
    allOf: [{ properties: { a: { type: "integer" } } }, { required: ["a"] }],
  });
  assert.ok(matches(all, '{"a": 1}') && !matches(all, "{}"));
  assert.throws(
    () => compileConstraint(schema({ $ref: "https://x/y.json" }), BYTES),
    (e) => e instanceof GrammarError && e.code === "unsupported_schema",
  );
});

Deno.test("numbers are bounded: at most 15 integer digits", () => {
  assert.ok(matches(schema({ type: "integer" }), "123456789012345"));
  assert.ok(!matches(schema({ type: "integer" }), "1234567890123456"));
});

// -------------------------------------------------------------------------------------------
// Tool grammars against the real templates

const TOOLS: ToolDef[] = [
  {
    name: "get_weather",
    description: "Weather forecast",
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

function rendered(tpl: string, calls: typeof CALLS, eot: string): string {
  const t = readFileSync(llamaTemplate(tpl), "utf8");
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
  const o = { tools, bosToken: "<s>", eosToken: "</s>" };
  const prompt = applyChatTemplate(t, [user], { ...o, addGenerationPrompt: true });
  const full = applyChatTemplate(t, [user, asst], { ...o, addGenerationPrompt: false });
  assert.ok(full.startsWith(prompt));
  const out = full.slice(prompt.length);
  return eot && out.includes(eot) ? out.slice(0, out.indexOf(eot)) : out;
}

const TOOL_CASES: [string, ToolFormat, string, boolean][] = [
  ["Qwen-Qwen3-0.6B.jinja", "qwen3", "<|im_end|>", true],
  ["Qwen3-Coder.jinja", "qwen3_coder", "<|im_end|>", true],
  ["unsloth-mistral-Devstral-Small-2507.jinja", "mistral", "</s>", true],
  ["Mistral-Small-3.2-24B-Instruct-2506.jinja", "mistral", "</s>", true],
  ["mistralai-Mistral-Nemo-Instruct-2407.jinja", "mistral", "</s>", true],
  ["deepseek-ai-DeepSeek-V3.1.jinja", "deepseek", "<｜end▁of▁sentence｜>", true],
];

for (const [tpl, format, eot, parallel] of TOOL_CASES) {
  Deno.test(`tools grammar (${format}) accepts exactly what ${tpl} renders`, () => {
    const chatTemplate = readFileSync(llamaTemplate(tpl), "utf8");
    const text = rendered(tpl, CALLS, eot);
    const spec = (
      choice: "required" | "auto" | { name: string },
      par: boolean,
    ): ConstraintSpec => ({
      kind: "tools",
      format,
      tools: TOOLS,
      choice,
      parallel: par,
      chatTemplate,
      thinking: text.startsWith("<think>"), // Qwen3 renders an empty think block
    });
    assert.ok(matches(spec("required", parallel), text), JSON.stringify(text));
    // one call only without parallel
    assert.ok(!matches(spec("required", false), text));
    const single = rendered(tpl, CALLS.slice(0, 1), eot);
    assert.ok(matches(spec("required", false), single), JSON.stringify(single));
    // auto: free text, then the call
    assert.ok(matches(spec("auto", true), "Let me see. " + text));
    assert.ok(matches(spec("auto", true), "No tool needed."));
    // a named choice: the other tool is rejected
    const named = spec({ name: "bash" }, false);
    assert.ok(!matches(named, single));
    // wrong arguments are rejected inside a call, in both modes
    const bad = single.replace('"Paris"', "12").replace(/Paris/, "");
    if (bad !== single && format !== "qwen3_coder") {
      assert.ok(!matches(spec("required", false), bad), bad);
    }
    // what the grammar accepts, the parser reads back
    const p = createOutputParser(format, { tools: TOOLS, thinking: false });
    const evs = [...p.push(text), ...p.end()];
    const ends = evs.filter((e) => e.type === "tool_call_end");
    assert.deepEqual(ends.map((e) => JSON.parse(e.arguments)), CALLS.map((c) => c.args));
  });
}

Deno.test("tools grammar (harmony): the gpt-oss call header, and auto mode's trigger", () => {
  const spec: ConstraintSpec = {
    kind: "tools",
    format: "harmony",
    tools: TOOLS,
    choice: "required",
    parallel: true,
  };
  const call = "<|channel|>commentary to=functions.bash <|constrain|>json<|message|>" +
    '{"command": "ls"}';
  assert.ok(matches(spec, call));
  assert.ok(!matches(spec, call.replace("bash", "rm")));
  // auto: what the gpt-oss template renders (recipient before the channel)
  const tpl = rendered("openai-gpt-oss-120b.jinja", CALLS.slice(0, 1), "<|call|>");
  assert.ok(matches({ ...spec, choice: "auto" }, "<|channel|>analysis<|message|>hm<|end|>" + tpl));
  assert.ok(!matches({ ...spec, choice: "auto" }, tpl.replace('"Paris"', "1")));
});

Deno.test("tools grammar with thinking: free reasoning up to </think>, then the call", () => {
  const spec: ConstraintSpec = {
    kind: "tools",
    format: "qwen3",
    tools: TOOLS,
    choice: "required",
    parallel: false,
    thinking: true,
  };
  const call = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>';
  assert.ok(matches(spec, "<think>\nhmm {\n</think>\n\n" + call));
  assert.ok(matches(spec, "hmm</think>" + call));
  assert.ok(!matches(spec, "hmm</think>\n\nPlain answer."));
  assert.throws(
    () => compileConstraint({ ...spec, choice: { name: "nope" } }, BYTES),
    (e) => e instanceof GrammarError && e.code === "bad_spec",
  );
});

// -------------------------------------------------------------------------------------------
// The real Qwen vocabulary

const tok = tokenizerFromGGUF(readGGUF(llamaVocab("qwen2")));
const QV = constraintVocab(tok);
const EOG = [...tok.eogIds][0];

Deno.test("Qwen vocab: tokenized valid output is accepted token by token, then EOG", () => {
  const text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "São Paulo 日本", ' +
    '"days": 12, "unit": "c"}}\n</tool_call>';
  const c = compileConstraint(
    { kind: "tools", format: "qwen3", tools: TOOLS, choice: "required", parallel: false },
    QV,
  );
  const ids = tok.encode(text);
  assert.ok(ids.length > 20);
  for (const id of ids) {
    assert.ok(!c.accepts(EOG), "EOG before the call is complete");
    assert.ok(c.accepts(id), `token ${id} ${JSON.stringify(tok.tokenText(id))}`);
    c.advance(id);
  }
  assert.ok(c.isComplete() && c.accepts(EOG));
  // a clone is independent
  const j = compileConstraint({ kind: "json_object" }, QV);
  const k = j.clone();
  j.advance(tok.encode("{")[0]);
  assert.ok(!k.accepts(tok.encode('"')[0]) && j.accepts(tok.encode('"')[0]));
});

Deno.test("a repeated spec reuses its compiled grammar; its constraints stay independent", () => {
  const spec: ConstraintSpec = {
    kind: "tools",
    format: "qwen3",
    tools: TOOLS,
    choice: "required",
    parallel: false,
  };
  const text =
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "days": 3}}\n</tool_call>';
  const ids = tok.encode(text);
  const mask = (c: ReturnType<typeof compileConstraint>) => {
    const l = new Float32Array(QV.nVocab);
    assert.ok(l.length > 150_000);
    (c as MaskingConstraint).fillMask(l);
    return l;
  };
  const a = compileConstraint(spec, QV);
  const fresh = mask(a); // fills the mask row of the start state
  for (const id of ids.slice(0, 5)) a.advance(id);
  // the same spec again (a new but equal object): starts at the beginning, not where a is
  const b = compileConstraint(structuredClone(spec), QV);
  assert.deepEqual(mask(b), fresh);
  for (const id of ids) {
    assert.ok(b.accepts(id));
    b.advance(id);
  }
  assert.ok(b.isComplete() && !a.isComplete());
  // a continues from its own state
  for (const id of ids.slice(5)) a.advance(id);
  assert.ok(a.isComplete());
  // after COMPILED_SPECS_KEPT other specs the first is compiled again: same behaviour
  for (let i = 0; i < COMPILED_SPECS_KEPT; i++) {
    compileConstraint(schema({ type: "integer", minimum: i }), QV);
  }
  assert.deepEqual(mask(compileConstraint(spec, QV)), fresh);
});

Deno.test("Qwen vocab: fillMask equals accepts() per token; costs measured", () => {
  const spec: ConstraintSpec = {
    kind: "json_schema",
    schema: {
      type: "object",
      properties: { city: { type: "string", maxLength: 40 }, days: { type: "integer" } },
      required: ["city", "days"],
      additionalProperties: false,
    },
  };
  // states: start, inside a key, inside a string value, after a value, in a number
  const prefixes = ["", '{"ci', '{"city": "Par', '{"city": "Paris"', '{"days": 1'];
  for (const prefix of prefixes) {
    const c = compileConstraint(spec, QV) as MaskingConstraint;
    for (const id of tok.encode(prefix)) c.advance(id);
    const fresh = c.clone() as MaskingConstraint;
    const logits = new Float32Array(QV.nVocab);
    let t0 = performance.now();
    const live = fresh.fillMask(logits);
    const maskMs = performance.now() - t0;
    // brute force on an independent compile (no shared cache)
    const d = compileConstraint(spec, QV);
    for (const id of tok.encode(prefix)) d.advance(id);
    let n = 0;
    t0 = performance.now();
    for (let id = 0; id < QV.nVocab; id++) {
      const ok = d.accepts(id);
      assert.equal(logits[id] === 0, ok, `${JSON.stringify(prefix)}: token ${id}`);
      if (ok) n++;
    }
    const perAccept = (performance.now() - t0) * 1000 / QV.nVocab;
    assert.equal(live, n);
    assert.ok(n > 0);
    // cached: a second pass over the same state
    t0 = performance.now();
    for (let id = 0; id < QV.nVocab; id++) d.accepts(id);
    const cached = (performance.now() - t0) * 1000 / QV.nVocab;
    console.log(
      `state ${JSON.stringify(prefix).padEnd(20)} accepted ${String(n).padStart(6)}: ` +
        `fillMask ${maskMs.toFixed(1)} ms, accepts ${perAccept.toFixed(2)} µs uncached, ` +
        `${cached.toFixed(3)} µs cached`,
    );
  }
});
