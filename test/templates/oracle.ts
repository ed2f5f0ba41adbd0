/**
 * The Python jinja2 oracle for chat templates: renders a batch of (template, context) cases with
 * `render_jinja2.py` (one process per batch) and compares them with spool's renderer.
 */

import process from "node:process";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildChatContext,
  type ChatTemplateError,
  renderChatTemplate,
} from "../../runtime/tokenizer/chat_template.ts";
import { CASES, type ChatTemplateCase, FIXED_NOW } from "./conversations.ts";

/**
 * The standard cases, plus the tool cases again with messages passed as given (string
 * `arguments` everywhere): more of each template's paths, including the ones that raise.
 */
export const ALL_CASES: ChatTemplateCase[] = [
  ...CASES,
  ...CASES.filter((c) => c.opts.tools).map((c) => ({
    ...c,
    name: `${c.name}_raw`,
    opts: { ...c.opts, polyfills: false },
  })),
];

const HERE = dirname(fileURLToPath(import.meta.url));

/** Folder of the shared real-model templates. */
export const TEMPLATES_DIR = process.env.SPOOL_TEMPLATE_DIR ??
  join(HERE, "..", "..", "..", "shared", "templates");

/** The oracle script. */
export const ORACLE_SCRIPT = join(HERE, "render_jinja2.py");

/** One render request. */
export interface OracleCase {
  /** Key into the templates map. */
  template: string;
  /** Exact variables to render with. */
  context: Record<string, unknown>;
}

/** One result: the output, or the error it raised. */
export type RenderResult = { ok: true; out: string } | { ok: false; error: string };

/** Local-time components of a date, as Python's datetime(...) takes them. */
export function nowParts(d: Date): number[] {
  return [
    d.getFullYear(),
    d.getMonth() + 1,
    d.getDate(),
    d.getHours(),
    d.getMinutes(),
    d.getSeconds(),
  ];
}

let available: boolean | undefined;

/** Whether `python3` with jinja2 >= 3.1 can be run (the oracle's requirement). */
export function jinja2Available(): boolean {
  if (available === undefined) {
    const r = spawnSync("python3", [
      "-c",
      "import jinja2, sys; sys.exit(0 if tuple(map(int, jinja2.__version__.split('.')[:2])) >= (3, 1) else 1)",
    ]);
    available = r.status === 0;
  }
  return available;
}

/** Renders every case with Python's jinja2 (configured as transformers does). */
export function renderWithJinja2(
  templates: Record<string, string>,
  cases: OracleCase[],
  now: Date = FIXED_NOW,
): RenderResult[] {
  const input = JSON.stringify({
    templates,
    cases: cases.map((c) => ({ ...c, now: nowParts(now) })),
  });
  const r = spawnSync("python3", [ORACLE_SCRIPT], { input, maxBuffer: 1 << 28, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`jinja2 oracle failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as RenderResult[];
}

/** Renders one case with spool. */
export function renderWithSpool(
  template: string,
  context: Record<string, unknown>,
  now: Date = FIXED_NOW,
): RenderResult {
  try {
    return { ok: true, out: renderChatTemplate(template, context, now) };
  } catch (e) {
    const err = e as ChatTemplateError;
    return { ok: false, error: `${err.kind ?? "error"}: ${err.message}` };
  }
}

/** All shared templates, by file name without `.jinja`. */
export function loadTemplates(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(TEMPLATES_DIR).sort()) {
    if (f.endsWith(".jinja")) out[f.slice(0, -6)] = readFileSync(join(TEMPLATES_DIR, f), "utf8");
  }
  return out;
}

/** One comparison of spool against jinja2 for a template and a case. */
export interface Comparison {
  template: string;
  caseName: string;
  spool: RenderResult;
  jinja2: RenderResult;
  /** Both rendered the same text, or both failed. */
  equal: boolean;
}

/** Renders every template with every standard case in both engines and compares. */
export function compareAll(
  templates: Record<string, string> = loadTemplates(),
  cases: ChatTemplateCase[] = ALL_CASES,
): Comparison[] {
  const jobs: { template: string; caseName: string; context: Record<string, unknown> }[] = [];
  for (const [name, source] of Object.entries(templates)) {
    for (const c of cases) {
      let context: Record<string, unknown>;
      try {
        context = buildChatContext(source, c.messages, { ...c.opts, now: FIXED_NOW });
      } catch {
        context = { messages: [] }; // a template that does not parse: both engines must fail
      }
      jobs.push({ template: name, caseName: c.name, context });
    }
  }
  const py = renderWithJinja2(
    templates,
    jobs.map((j) => ({ template: j.template, context: j.context })),
  );
  return jobs.map((j, i) => {
    const spool = renderWithSpool(templates[j.template], j.context);
    const jinja2 = py[i];
    const equal = spool.ok && jinja2.ok ? spool.out === jinja2.out : spool.ok === jinja2.ok;
    return { template: j.template, caseName: j.caseName, spool, jinja2, equal };
  });
}
