/**
 * Bun leg of constrained decoding: the JSON-schema automaton, tool grammars and the output
 * parsers (qwen3, glm, minimax, kimi) behave the same under Bun (`bun test test/bun/grammar_test.ts`).
 */
import { expect, test } from "bun:test";
import {
  compileConstraint,
  type ConstraintSpec,
  type ConstraintVocab,
} from "../../runtime/grammar/mod.ts";
import { createOutputParser, type ToolDef, type ToolFormat } from "../../runtime/tools/mod.ts";

const BYTES: ConstraintVocab = {
  nVocab: 257,
  piece: (id) => (id < 256 ? Uint8Array.of(id) : new Uint8Array(0)),
  isEog: (id) => id === 256,
};

function matches(spec: ConstraintSpec, text: string): boolean {
  const c = compileConstraint(spec, BYTES);
  for (const b of new TextEncoder().encode(text)) {
    if (!c.accepts(b)) return false;
    c.advance(b);
  }
  return c.accepts(256);
}

const TOOLS: ToolDef[] = [{
  name: "bash",
  parameters: {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    properties: { command: { type: "string", maxLength: 8 } },
    required: ["command"],
    additionalProperties: false,
  },
}];

test("json_schema automaton accepts valid and rejects invalid JSON", () => {
  const spec: ConstraintSpec = { kind: "json_schema", schema: TOOLS[0].parameters };
  expect(matches(spec, '{"command": "ls"}')).toBe(true);
  expect(matches(spec, '{"command": "ls -la /tmp"}')).toBe(false); // maxLength 8
  expect(matches(spec, "{}")).toBe(false);
  expect(matches({ kind: "json_object" }, '{"a": [1, "é"]}')).toBe(true);
});

test("qwen3 tools grammar and parser agree", () => {
  const call = '<tool_call>\n{"name": "bash", "arguments": {"command": "pwd"}}\n</tool_call>';
  const spec: ConstraintSpec = {
    kind: "tools",
    format: "qwen3",
    tools: TOOLS,
    choice: "required",
    parallel: false,
  };
  expect(matches(spec, call)).toBe(true);
  expect(matches(spec, call.replace("bash", "rm"))).toBe(false);
  const p = createOutputParser("qwen3", { tools: TOOLS, thinking: false });
  const evs = [];
  for (let i = 0; i < call.length; i += 3) evs.push(...p.push(call.slice(i, i + 3)));
  evs.push(...p.end());
  const end = evs.find((e) => e.type === "tool_call_end");
  expect(end && end.type === "tool_call_end" && JSON.parse(end.arguments)).toEqual({
    command: "pwd",
  });
  expect(evs.some((e) => e.type === "content")).toBe(false);
});

test("GLM, MiniMax-M2 and Kimi K2 tools grammars and parsers agree", () => {
  const calls: [ToolFormat, string][] = [
    [
      "glm",
      "<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>pwd</arg_value>\n</tool_call>",
    ],
    [
      "minimax",
      '<minimax:tool_call>\n<invoke name="bash">\n<parameter name="command">pwd</parameter>\n' +
      "</invoke>\n</minimax:tool_call>",
    ],
    [
      "kimi",
      "<|tool_calls_section_begin|><|tool_call_begin|>functions.bash:0" +
      '<|tool_call_argument_begin|>{"command": "pwd"}<|tool_call_end|><|tool_calls_section_end|>',
    ],
  ];
  for (const [format, call] of calls) {
    const spec: ConstraintSpec = {
      kind: "tools",
      format,
      tools: TOOLS,
      choice: "required",
      parallel: false,
    };
    expect(matches(spec, call)).toBe(true);
    expect(matches(spec, call.replace("pwd", "ls -la /tmp"))).toBe(false); // maxLength 8
    expect(matches(spec, call.replace("bash", "rm"))).toBe(false);
    const p = createOutputParser(format, { tools: TOOLS, thinking: false });
    const evs = [];
    for (let i = 0; i < call.length; i += 3) evs.push(...p.push(call.slice(i, i + 3)));
    evs.push(...p.end());
    const end = evs.find((e) => e.type === "tool_call_end");
    expect(end && end.type === "tool_call_end" && JSON.parse(end.arguments)).toEqual({
      command: "pwd",
    });
    expect(evs.some((e) => e.type === "content")).toBe(false);
  }
});
