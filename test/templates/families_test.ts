/**
 * The chat templates of GLM-4.6, GLM-4.7-Flash, MiniMax-M2, Kimi K2 (Instruct, Thinking, and
 * the earlier moonshotai file) and DeepSeek-V3.1, taken from the llama.cpp source that
 * node-llama-cpp ships: every standard conversation plus an agent loop (reasoning, content and
 * two calls after the last user message, then their results) renders in spool, string-equal to
 * Python's jinja2 (the oracle; skipped without python3 + jinja2).
 */

import assert from "node:assert/strict";
import { applyChatTemplate } from "../../runtime/tokenizer/chat_template.ts";
import { type ChatTemplateCase, FIXED_NOW, TOOLS } from "./conversations.ts";
import { llamaTemplate } from "./llama_source.ts";
import { ALL_CASES, compareAll, type Comparison, jinja2Available } from "./oracle.ts";

const NAMES = [
  "GLM-4.6",
  "GLM-4.7-Flash",
  "MiniMax-M2",
  "Kimi-K2-Instruct",
  "Kimi-K2-Thinking",
  "moonshotai-Kimi-K2",
  "deepseek-ai-DeepSeek-V3.1",
];
const TEMPLATES = Object.fromEntries(NAMES.map((n) => [n, llamaTemplate(`${n}.jinja`)]));

/** A tool loop in progress: the reasoning of the current turn must stay in the prompt. */
const LOOP: ChatTemplateCase = {
  name: "h_agent_loop",
  messages: [
    { role: "system", content: "You are a coding agent." },
    { role: "user", content: "Which is bigger, a.txt or b.txt?" },
    {
      role: "assistant",
      content: "Checking both.",
      reasoning_content: "I need both sizes.",
      tool_calls: [
        {
          id: "call_a",
          type: "function",
          function: { name: "bash", arguments: '{"command":"wc -c a.txt","timeout":5000}' },
        },
        {
          id: "call_b",
          type: "function",
          function: { name: "read", arguments: '{"filePath":"b.txt"}' },
        },
      ],
    },
    { role: "tool", tool_call_id: "call_a", content: "12 a.txt" },
    { role: "tool", tool_call_id: "call_b", content: "hello" },
  ],
  opts: { tools: TOOLS, addGenerationPrompt: true, extra: { enable_thinking: true } },
};

const CASES: ChatTemplateCase[] = [
  ...ALL_CASES,
  LOOP,
  { ...LOOP, name: "h_agent_loop_raw", opts: { ...LOOP.opts, polyfills: false } },
];

const NO_ORACLE = !jinja2Available();
if (NO_ORACLE) console.warn("families_test: python3 with jinja2 >= 3.1 not found; skipped");

function show(c: Comparison): string {
  const r = (x: Comparison["spool"]) => (x.ok ? JSON.stringify(x.out).slice(0, 300) : x.error);
  return `${c.template} × ${c.caseName}\n  spool:  ${r(c.spool)}\n  jinja2: ${r(c.jinja2)}`;
}

Deno.test({
  name: "GLM, MiniMax-M2, Kimi K2, DeepSeek-V3.1 templates render as jinja2 does",
  ignore: NO_ORACLE,
}, () => {
  const results = compareAll(TEMPLATES, CASES);
  assert.equal(results.length, NAMES.length * CASES.length);
  const different = results.filter((c) => !c.equal);
  assert.deepEqual(different.map(show), [], `${different.length} renders differ`);
  // and they render: every standard case with llama.cpp-prepared messages, and the loop
  const failed = results.filter((c) => !c.spool.ok && !c.caseName.endsWith("_raw"));
  assert.deepEqual(failed.map(show), []);
  console.log(`family templates: ${results.length} renders equal to jinja2`);
});

Deno.test("the agent loop keeps the current turn's reasoning and calls in each family", () => {
  const render = (n: string) =>
    applyChatTemplate(TEMPLATES[n], LOOP.messages, { ...LOOP.opts, now: FIXED_NOW });
  const glm46 = render("GLM-4.6");
  assert.ok(glm46.includes(
    "<|assistant|>\n<think>I need both sizes.</think>\nChecking both.\n<tool_call>bash\n" +
      "<arg_key>command</arg_key>\n<arg_value>wc -c a.txt</arg_value>\n" +
      "<arg_key>timeout</arg_key>\n<arg_value>5000</arg_value>\n</tool_call>",
  ));
  assert.ok(glm46.endsWith(
    "<|observation|>\n<tool_response>\n12 a.txt\n</tool_response>\n" +
      "<tool_response>\nhello\n</tool_response><|assistant|>",
  ));
  const glm47 = render("GLM-4.7-Flash");
  assert.ok(glm47.includes(
    "<think>I need both sizes.</think>Checking both.<tool_call>bash<arg_key>command</arg_key>" +
      "<arg_value>wc -c a.txt</arg_value>",
  ));
  assert.ok(glm47.endsWith("<|assistant|><think>"));
  const mm = render("MiniMax-M2");
  assert.ok(mm.includes(
    ']~b]ai\n<think>\nI need both sizes.\n</think>\n\nChecking both.\n<minimax:tool_call>\n<invoke name="bash">\n<parameter name="command">wc -c a.txt</parameter>\n',
  ));
  assert.ok(mm.endsWith("]~b]ai\n<think>\n"));
  const kimi = render("Kimi-K2-Thinking");
  assert.ok(kimi.includes(
    "<think>I need both sizes.</think>Checking both.<|tool_calls_section_begin|>" +
      "<|tool_call_begin|>functions.bash:0<|tool_call_argument_begin|>",
  ));
  // the tool results name the calls by the ids the template queued (list.append / pop(0))
  assert.ok(kimi.includes("## Return of functions.bash:0\n12 a.txt<|im_end|>"));
  assert.ok(kimi.includes("## Return of functions.read:1\nhello<|im_end|>"));
  const k2 = render("Kimi-K2-Instruct");
  assert.ok(k2.includes("## Return of functions.read:1\nhello<|im_end|>"));
});
