/**
 * Writes `snapshots.json`: the prompts Python's jinja2 renders for a few real templates and the
 * standard cases, for the Bun test (which has no Python oracle of its own). The Deno test checks
 * that spool still renders every snapshot. Run: `deno run -A test/templates/update_snapshots.ts`.
 */

import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildChatContext } from "../../runtime/tokenizer/chat_template.ts";
import { CASES, FIXED_NOW } from "./conversations.ts";
import { loadTemplates, renderWithJinja2 } from "./oracle.ts";

/** Templates snapshotted for Bun: Qwen3, gpt-oss, Llama 3.1, Mistral. */
export const SNAPSHOT_TEMPLATES = [
  "Qwen-Qwen3-0.6B",
  "openai-gpt-oss-120b",
  "meta-llama-Llama-3.1-8B-Instruct",
  "mistralai-Mistral-Nemo-Instruct-2407",
];

/** Where the snapshots live. */
export const SNAPSHOT_FILE = fileURLToPath(new URL("./snapshots.json", import.meta.url));

/** One snapshot: the jinja2 output, or the error it raised. */
export interface Snapshot {
  template: string;
  caseName: string;
  out?: string;
  error?: string;
}

if (import.meta.main) {
  const all = loadTemplates();
  const templates = Object.fromEntries(SNAPSHOT_TEMPLATES.map((t) => [t, all[t]]));
  const jobs = SNAPSHOT_TEMPLATES.flatMap((t) =>
    CASES.map((c) => ({
      template: t,
      caseName: c.name,
      context: buildChatContext(all[t], c.messages, { ...c.opts, now: FIXED_NOW }),
    }))
  );
  const results = renderWithJinja2(templates, jobs);
  const snapshots: Snapshot[] = jobs.map((j, i) => {
    const r = results[i];
    return r.ok
      ? { template: j.template, caseName: j.caseName, out: r.out }
      : { template: j.template, caseName: j.caseName, error: r.error };
  });
  writeFileSync(SNAPSHOT_FILE, JSON.stringify(snapshots, null, 2) + "\n");
  console.log(`wrote ${snapshots.length} snapshots to ${SNAPSHOT_FILE}`);
}
