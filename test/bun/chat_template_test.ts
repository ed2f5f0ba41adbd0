/**
 * Chat templates under Bun: Qwen3, gpt-oss, Llama 3.1 and Mistral Nemo render the standard
 * conversations exactly as Python's jinja2 did (snapshots written by
 * `test/templates/update_snapshots.ts`, kept honest by the Deno test).
 * Run with `node_modules/.bin/bun test test/bun/`.
 */

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  applyChatTemplate,
  chatTemplateCaps,
  ChatTemplateError,
  compileChatTemplate,
} from "../../runtime/tokenizer/chat_template.ts";
import { CASES, FIXED_NOW } from "../templates/conversations.ts";
import { loadTemplates } from "../templates/oracle.ts";
import { type Snapshot, SNAPSHOT_FILE } from "../templates/update_snapshots.ts";

const TEMPLATES = loadTemplates();
const SNAPSHOTS = JSON.parse(readFileSync(SNAPSHOT_FILE, "utf8")) as Snapshot[];

test("the snapshot set covers Qwen3, gpt-oss, Llama 3.1 and Mistral", () => {
  expect(new Set(SNAPSHOTS.map((s) => s.template))).toEqual(
    new Set([
      "Qwen-Qwen3-0.6B",
      "openai-gpt-oss-120b",
      "meta-llama-Llama-3.1-8B-Instruct",
      "mistralai-Mistral-Nemo-Instruct-2407",
    ]),
  );
  expect(SNAPSHOTS.length).toBe(4 * CASES.length);
});

for (const s of SNAPSHOTS) {
  test(`${s.template} × ${s.caseName} renders as jinja2 did`, () => {
    const c = CASES.find((x) => x.name === s.caseName)!;
    const render = () =>
      applyChatTemplate(TEMPLATES[s.template], c.messages, { ...c.opts, now: FIXED_NOW });
    if (s.error !== undefined) expect(render).toThrow(ChatTemplateError);
    else expect(render()).toBe(s.out!);
  });
}

test("caps and cache behave the same under Bun", () => {
  const llama = TEMPLATES["meta-llama-Llama-3.1-8B-Instruct"];
  expect(chatTemplateCaps(llama).requiresObjectArguments).toBe(true);
  expect(chatTemplateCaps(TEMPLATES["Qwen-Qwen3-0.6B"]).requiresObjectArguments).toBe(false);
  expect(compileChatTemplate(llama)).toBe(compileChatTemplate(llama));
});
