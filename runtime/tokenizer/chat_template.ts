/**
 * Chat templates: renders a model's own Jinja chat template (GGUF `tokenizer.chat_template`)
 * the way Hugging Face transformers renders it with Python's jinja2, using `@huggingface/jinja`
 * for lexing and parsing and a Python-faithful evaluation layer on top.
 *
 * Why a layer: `@huggingface/jinja` follows JavaScript semantics in places where chat templates
 * rely on Python's (printing `None`/`True`, dict and list repr, `str.strip(chars)`,
 * `'%s' % x`, per-iteration loop scopes, lexical macro scopes, `tojson` options, strict
 * `Undefined` attribute errors, unknown filters failing at compile time...). The subclass below
 * overrides the interpreter's evaluation hooks (block output, binary operators, member access,
 * filters, tests, loops, macros) so that every template in the template folder
 * (runtime/data_dirs.ts) renders byte-identical to jinja2 3.1 configured as transformers does
 * (`ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`, loop controls,
 * `tojson` = `json.dumps(ensure_ascii=False)`, `raise_exception`, `strftime_now`).
 * One deliberate difference: the mutating list methods `append`, `pop`, `insert`, `extend`,
 * `remove`, `clear` and `reverse` are allowed (as in llama.cpp), because Kimi K2's templates
 * need them to render a tool call; templates that render under the immutable sandbox render the
 * same (such calls raised there), and the test oracle allows the same methods.
 *
 * Messages are prepared as llama.cpp's common/chat does before rendering: content parts joined,
 * `developer` mapped to `system`, empty `content` for tool-call messages, tool-call `arguments`
 * parsed to objects for templates that need them, and a system message merged into the next
 * one for templates without a system role. These are decided by probing the template once.
 *
 * @module
 */

import { Environment, parse, tokenize } from "@huggingface/jinja";

import {
  encodeKey,
  FILTERS,
  isDict,
  iterate,
  mapOf,
  mkBool,
  mkDict,
  mkFn,
  mkInt,
  mkList,
  mkNone,
  mkStr,
  mkUndef,
  needInt,
  needStr,
  type Node,
  plain,
  type Program,
  PyError,
  PyInterpreter,
  pyStr,
  RaisedError,
  type RV,
  splitArgs,
  strOf,
  TESTS,
  toRV,
  UNSUPPORTED_FILTERS,
} from "./_jinja_py.ts";
// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/** A text part of a multi-part message content (OpenAI shape). Other part types are skipped. */
export interface ChatContentPart {
  /** Part type; only `"text"` parts are rendered. */
  type: string;
  /** Text of a `"text"` part. */
  text?: string;
  [key: string]: unknown;
}

/** One tool call of an assistant message (OpenAI shape). */
export interface ChatToolCall {
  /** Call id, echoed by the tool result's `tool_call_id`. */
  id?: string;
  /** Always `"function"`. */
  type?: "function";
  /** The function called. */
  function: {
    /** Function name. */
    name: string;
    /** Arguments: a JSON string (OpenAI) or an already parsed object. */
    arguments: string | Record<string, unknown>;
  };
}

/** A chat message in the OpenAI-like shape the server receives. */
export interface ChatMessage {
  /** `system`, `developer`, `user`, `assistant` or `tool`. */
  role: string;
  /** Text, or content parts (text parts are joined with "\n"), or null with tool calls. */
  content?: string | ChatContentPart[] | null;
  /** Tool calls of an assistant message. */
  tool_calls?: ChatToolCall[];
  /** Id of the call a `tool` message answers. */
  tool_call_id?: string;
  /** Optional name (tool name on `tool` messages for some clients). */
  name?: string;
  /** Reasoning ("thinking") text of an assistant message. */
  reasoning_content?: string;
  [key: string]: unknown;
}

/** A tool definition (OpenAI shape). */
export interface ChatTool {
  /** Always `"function"`. */
  type: "function";
  /** The function's name, description and JSON Schema parameters. */
  function: {
    name: string;
    description?: string;
    parameters?: Record<string, unknown>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** Options of {@link applyChatTemplate}. */
export interface ApplyChatTemplateOptions {
  /** Tools offered to the model (rendered as `tools`; `null` when absent or empty). */
  tools?: readonly ChatTool[] | null;
  /** Append the assistant turn header (`add_generation_prompt`). Default true. */
  addGenerationPrompt?: boolean;
  /** Text of the BOS token (`bos_token`). Default "". */
  bosToken?: string;
  /** Text of the EOS token (`eos_token`). Default "". */
  eosToken?: string;
  /**
   * Extra template variables (chat_template_kwargs), e.g. `{enable_thinking: false}` or
   * `{reasoning_effort: "high"}`. Applied last, so they can override any other variable.
   */
  extra?: Record<string, unknown>;
  /** The time used by `strftime_now`, `date_string` and `datetime` (local time). Default now. */
  now?: Date;
  /**
   * Apply llama.cpp's message preparation (see {@link prepareChatMessages}). Default true.
   * When false, messages are passed to the template as given (after a JSON-like copy).
   */
  polyfills?: boolean;
}

/** What probing a template found (llama.cpp/minja-style capabilities). */
export interface ChatTemplateCaps {
  /** A system message's content appears in the output. */
  supportsSystemRole: boolean;
  /** Tool calls are rendered (with string or object arguments). */
  supportsToolCalls: boolean;
  /** Tool calls render only when `arguments` is an object (e.g. `arguments | tojson`). */
  requiresObjectArguments: boolean;
  /** The template contains gpt-oss's `<|channel|>` (keeps the `developer` role). */
  keepsDeveloperRole: boolean;
}

/** Why a template failed: it does not parse, it failed while rendering, or it raised. */
export type ChatTemplateErrorKind = "syntax" | "render" | "raise";

/** A chat template failed to compile or render. The message says which and why. */
export class ChatTemplateError extends Error {
  /** Compile error, evaluation error, or the template's own `raise_exception`. */
  readonly kind: ChatTemplateErrorKind;
  /** Builds an error of the given kind. */
  constructor(kind: ChatTemplateErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ChatTemplateError";
    this.kind = kind;
  }
}

// ---------------------------------------------------------------------------------------------
// Compilation: parse once, check filters and tests as jinja2's compiler does
// ---------------------------------------------------------------------------------------------

/** A parsed chat template, with its probed capabilities. */
export interface CompiledChatTemplate {
  /** The template source. */
  readonly source: string;
  /** Renders with the given variables (already prepared; see {@link buildChatContext}). */
  render(context: Record<string, unknown>, now?: Date): string;
  /** Capabilities found by probing (computed on first use, then cached). */
  readonly caps: ChatTemplateCaps;
}

/**
 * jinja2 fails at compile time on an unknown filter or test, unless it sits in a "soft" frame
 * (the test or body of an `if`, or a conditional expression), where it fails only when run.
 */
function checkNames(node: unknown, soft: boolean): void {
  if (Array.isArray(node)) {
    for (const n of node) checkNames(n, soft);
    return;
  }
  if (node instanceof Map) {
    for (const [k, v] of node) {
      checkNames(k, soft);
      checkNames(v, soft);
    }
    return;
  }
  if (typeof node !== "object" || node === null || typeof (node as Node).type !== "string") return;
  const n = node as Node;
  switch (n.type) {
    case "If":
      checkNames(n.test, true);
      checkNames(n.body, true);
      checkNames(n.alternate, true);
      return;
    case "Ternary":
      checkNames(n.condition, true);
      checkNames(n.trueExpr, true);
      checkNames(n.falseExpr, true);
      return;
    case "For":
      checkNames(n.iterable, soft);
      checkNames(n.loopvar, false);
      checkNames(n.body, false);
      checkNames(n.defaultBlock, false);
      return;
    case "Macro":
    case "CallStatement":
      for (const [k, v] of Object.entries(n)) if (k !== "type") checkNames(v, false);
      return;
    case "FilterExpression":
    case "FilterStatement": {
      const f = n.filter as Node;
      const name = (f.type === "CallExpression" ? (f.callee as Node).value : f.value) as string;
      if (!soft && !FILTERS[name] && !UNSUPPORTED_FILTERS.has(name)) {
        throw new PyError("TemplateAssertionError", `No filter named '${name}'.`);
      }
      break;
    }
    case "TestExpression": {
      const name = (n.test as Node).value as string;
      if (!soft && !TESTS[name]) {
        throw new PyError("TemplateAssertionError", `No test named '${name}'.`);
      }
      break;
    }
  }
  for (const [k, v] of Object.entries(n)) if (k !== "type") checkNames(v, soft);
}

/**
 * `{%+ ... %}` keeps the line's leading whitespace under lstrip_blocks. The lexer knows no `+`,
 * so an empty expression is put in front of the tag: it stops the strip and prints nothing.
 */
function keepPlusBlocks(source: string): string {
  return source.replace(/\{%\+/g, '{{ "" }}{%');
}

const CACHE_LIMIT = 64;
const cache = new Map<string, CompiledChatTemplate>();

/**
 * Parses a chat template once (cached by source, up to 64 templates, least recently used out).
 * Throws {@link ChatTemplateError} (`kind: "syntax"`) when it does not parse.
 */
export function compileChatTemplate(source: string): CompiledChatTemplate {
  const hit = cache.get(source);
  if (hit) {
    cache.delete(source);
    cache.set(source, hit);
    return hit;
  }
  let program: Program;
  try {
    program = parse(tokenize(keepPlusBlocks(source), { lstrip_blocks: true, trim_blocks: true }));
    checkNames(program, false);
  } catch (e) {
    // The parser reads past the last token on an unclosed block (a TypeError).
    const why = e instanceof TypeError
      ? "unexpected end of template (an unclosed block?)"
      : (e as Error).message;
    throw new ChatTemplateError("syntax", `Cannot parse chat template: ${why}`, { cause: e });
  }
  let caps: ChatTemplateCaps | undefined;
  const compiled: CompiledChatTemplate = {
    source,
    render: (context, now) => renderProgram(program, context, now ?? new Date()),
    get caps() {
      return caps ??= probeCaps(compiled);
    },
  };
  cache.set(source, compiled);
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  return compiled;
}

function renderProgram(program: Program, context: Record<string, unknown>, now: Date): string {
  const env = new Environment();
  const globals: [string, RV][] = [
    ["true", mkBool(true)],
    ["false", mkBool(false)],
    ["none", mkNone()],
    ["True", mkBool(true)],
    ["False", mkBool(false)],
    ["None", mkNone()],
    [
      "raise_exception",
      mkFn((a) => {
        throw new RaisedError(a.length ? pyStr(a[0]) : "");
      }),
    ],
    ["strftime_now", mkFn((a) => mkStr(strftime(now, needStr(a[0] ?? mkUndef(), "format"))))],
    [
      "range",
      mkFn((a) => {
        const n = a.map((x) => needInt(x, "range() argument"));
        const [start, stop, step] = n.length === 1 ? [0, n[0], 1] : [n[0], n[1], n[2] ?? 1];
        if (step === 0) throw new PyError("ValueError", "range() arg 3 must not be zero");
        const out: RV[] = [];
        for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(mkInt(i));
        return mkList(out);
      }),
    ],
    [
      "dict",
      mkFn((raw) => {
        const [a, k] = splitArgs(raw);
        const m = new Map<string, RV>(a[0] && isDict(a[0]) ? mapOf(a[0]) : []);
        if (a[0] && !isDict(a[0])) {
          for (const pair of iterate(a[0])) {
            const [key, val] = iterate(pair);
            m.set(encodeKey(key), val);
          }
        }
        for (const [key, v] of k) m.set(key, v);
        return mkDict(m);
      }),
    ],
  ];
  for (const [k, v] of globals) env.setVariable(k, v);
  for (const [k, v] of Object.entries(context)) env.setVariable(k, toRV(v));
  const interp = new PyInterpreter(env);
  try {
    return strOf(interp.run(program));
  } catch (e) {
    if (e instanceof RaisedError) {
      throw new ChatTemplateError("raise", e.message, { cause: e });
    }
    throw new ChatTemplateError("render", `Chat template failed: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// strftime (C locale, local time)
// ---------------------------------------------------------------------------------------------

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/**
 * C-locale `strftime` of a local time, as Python's `datetime.strftime` writes it on Linux:
 * `%a %A %b %B %d %e %H %I %j %m %M %p %S %y %Y %%`, plus glibc's `%-d`-style unpadded forms.
 */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const start = new Date(date.getFullYear(), 0, 1);
  const yday = Math.round(
    (new Date(date.getFullYear(), date.getMonth(), date.getDate()).getTime() - start.getTime()) /
      86400000,
  ) + 1;
  const h12 = date.getHours() % 12 === 0 ? 12 : date.getHours() % 12;
  const fields: Record<string, [number | string, number]> = {
    a: [DAYS[date.getDay()].slice(0, 3), 0],
    A: [DAYS[date.getDay()], 0],
    b: [MONTHS[date.getMonth()].slice(0, 3), 0],
    h: [MONTHS[date.getMonth()].slice(0, 3), 0],
    B: [MONTHS[date.getMonth()], 0],
    d: [date.getDate(), 2],
    H: [date.getHours(), 2],
    I: [h12, 2],
    j: [yday, 3],
    m: [date.getMonth() + 1, 2],
    M: [date.getMinutes(), 2],
    S: [date.getSeconds(), 2],
    p: [date.getHours() < 12 ? "AM" : "PM", 0],
    y: [date.getFullYear() % 100, 2],
    Y: [date.getFullYear(), 0],
  };
  return format.replace(/%(-?)([a-zA-Z%])/g, (m, dash: string, c: string) => {
    if (c === "%") return "%";
    if (c === "e") return String(date.getDate()).padStart(dash ? 0 : 2, " ");
    const f = fields[c];
    if (!f) return m;
    const [v, w] = f;
    return typeof v === "string" ? v : dash ? String(v) : pad(v, w);
  });
}

// ---------------------------------------------------------------------------------------------
// Capabilities (minja/llama.cpp-style probes) and message preparation
// ---------------------------------------------------------------------------------------------

const NEEDLE = "argument_needle";

/** Whether the output shows the needle argument as such (not only JSON-escaped inside a string). */
function rendersArguments(out: string): boolean {
  const all = out.split(NEEDLE).length - 1;
  const escaped = out.split(`\\"${NEEDLE}`).length - 1;
  return all > escaped;
}

function tryRender(t: CompiledChatTemplate, context: Record<string, unknown>): string {
  try {
    return t.render(context, new Date(2024, 6, 26));
  } catch {
    return "";
  }
}

function probeCaps(t: CompiledChatTemplate): ChatTemplateCaps {
  const user = { role: "user", content: "Hey" };
  const base = { add_generation_prompt: false, bos_token: "", eos_token: "", tools: null };
  // Tool-use variants may need `tools` even to render a plain chat: probe both ways. The
  // needle argument is kept out of the tool schema so that only the call can show it.
  const tools = [{
    type: "function",
    function: {
      name: "ipython",
      description: "Runs code",
      parameters: { type: "object", properties: { code: { type: "string" } } },
    },
  }];
  const sysMessages = [{ role: "system", content: "<System Needle>" }, user];
  const sys = tryRender(t, { ...base, messages: sysMessages }) ||
    tryRender(t, { ...base, tools, messages: sysMessages });
  const probe = (args: unknown) =>
    tryRender(t, {
      ...base,
      tools,
      messages: [
        user,
        {
          role: "assistant",
          content: "",
          tool_calls: [{
            id: "call_1___",
            type: "function",
            function: { name: "ipython", arguments: args },
          }],
        },
        { role: "tool", tool_call_id: "call_1___", content: "ok" },
        { role: "assistant", content: "Done" },
        user,
      ],
    });
  const argsObj = { [NEEDLE]: "print('Hello, World!')" };
  const strOk = rendersArguments(probe(JSON.stringify(argsObj)));
  const objOk = rendersArguments(probe(argsObj));
  return {
    supportsSystemRole: sys.includes("<System Needle>"),
    supportsToolCalls: strOk || objOk,
    requiresObjectArguments: !strOk && objOk,
    keepsDeveloperRole: t.source.includes("<|channel|>"),
  };
}

/** The capabilities of a template (probed once per template source). */
export function chatTemplateCaps(template: string): ChatTemplateCaps {
  return compileChatTemplate(template).caps;
}

/** Text of a message content: a string as is, text parts joined with "\n", else "". */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .filter((p): p is ChatContentPart =>
        typeof p === "object" && p !== null && (p as ChatContentPart).type === "text"
      )
      .map((p) => p.text ?? "")
      .join("\n");
  }
  return "";
}

const OMIT_WHEN_EMPTY = new Set(["reasoning_content", "name", "tool_call_id"]);

/**
 * Prepares messages as llama.cpp's common/chat does before rendering, given a template's caps:
 * - content: text parts joined with "\n"; null or missing becomes "";
 * - role `developer` becomes `system`, except for templates with `<|channel|>` (gpt-oss);
 * - tool-call `arguments` are parsed from JSON strings to objects when the template requires
 *   objects (kept as the string when it is not valid JSON), and objects are stringified when it
 *   does not;
 * - a leading system message is merged into the next message ("system\nnext") when the template
 *   has no system role (dropped when it is the only message);
 * - empty `reasoning_content`, `name`, `tool_call_id` and `tool_calls` are left out.
 * Other fields are copied as given.
 */
export function prepareChatMessages(
  messages: readonly ChatMessage[],
  caps: ChatTemplateCaps,
): Record<string, unknown>[] {
  const out = messages.map((m) => {
    const msg: Record<string, unknown> = {};
    msg.role = m.role === "developer" && !caps.keepsDeveloperRole ? "system" : m.role;
    msg.content = contentText(m.content);
    for (const [k, v] of Object.entries(m)) {
      if (k === "role" || k === "content" || v === undefined) continue;
      // llama.cpp leaves these out when empty (templates test `is defined`).
      if (OMIT_WHEN_EMPTY.has(k) && (v === "" || v === null)) continue;
      if (k === "tool_calls" && Array.isArray(v) && v.length === 0) continue;
      if (k === "tool_calls" && Array.isArray(v)) {
        msg.tool_calls = v.map((tc: ChatToolCall) => {
          const fn = tc.function ?? { name: "", arguments: "" };
          let args: unknown = fn.arguments;
          if (caps.requiresObjectArguments && typeof args === "string") {
            try {
              args = JSON.parse(args);
            } catch {
              // keep the raw string, as llama.cpp does
            }
          } else if (!caps.requiresObjectArguments && typeof args === "object" && args !== null) {
            args = JSON.stringify(args);
          }
          return plain({
            ...tc,
            type: tc.type ?? "function",
            function: { ...fn, arguments: args },
          });
        });
        continue;
      }
      msg[k] = plain(v);
    }
    return msg;
  });
  if (!caps.supportsSystemRole && out.length > 0 && out[0].role === "system") {
    const [first, ...rest] = out;
    if (rest.length > 0) {
      rest[0] = { ...rest[0], content: `${first.content}\n${rest[0].content}` };
    }
    return rest;
  }
  return out;
}

/**
 * The variables a template is rendered with, llama.cpp-style: `messages` (prepared unless
 * `polyfills: false`), `tools` (null when none), `add_generation_prompt`, `bos_token`,
 * `eos_token`, `date_string` ("%d %b %Y") and `datetime` ("%b %d %Y") of `now`, then `extra`.
 */
export function buildChatContext(
  template: string,
  messages: readonly ChatMessage[],
  opts: ApplyChatTemplateOptions = {},
): Record<string, unknown> {
  const now = opts.now ?? new Date();
  const prepared = opts.polyfills === false
    ? messages.map((m) => plain(m) as Record<string, unknown>)
    : prepareChatMessages(messages, compileChatTemplate(template).caps);
  return {
    messages: prepared,
    tools: opts.tools && opts.tools.length > 0 ? plain(opts.tools) : null,
    add_generation_prompt: opts.addGenerationPrompt ?? true,
    bos_token: opts.bosToken ?? "",
    eos_token: opts.eosToken ?? "",
    date_string: strftime(now, "%d %b %Y"),
    datetime: strftime(now, "%b %d %Y"),
    ...(opts.extra ? plain(opts.extra) as Record<string, unknown> : {}),
  };
}

/**
 * Renders a chat template (the GGUF's own `tokenizer.chat_template`) for the given messages,
 * with jinja2 semantics as transformers configures it. The template is parsed once and cached.
 *
 * ```ts
 * const prompt = applyChatTemplate(template, [{ role: "user", content: "Hi" }], {
 *   bosToken: "<s>", addGenerationPrompt: true, extra: { enable_thinking: false },
 * });
 * ```
 *
 * Throws {@link ChatTemplateError}: `kind: "raise"` when the template calls `raise_exception`
 * (e.g. roles that do not alternate), `"syntax"` or `"render"` otherwise.
 */
export function applyChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  opts: ApplyChatTemplateOptions = {},
): string {
  const now = opts.now ?? new Date();
  const context = buildChatContext(template, messages, { ...opts, now });
  return compileChatTemplate(template).render(context, now);
}

/**
 * Renders a template with exactly the given variables (no message preparation): the engine
 * under {@link applyChatTemplate}, and what tests compare against Python's jinja2.
 */
export function renderChatTemplate(
  template: string,
  context: Record<string, unknown>,
  now: Date = new Date(),
): string {
  return compileChatTemplate(template).render(context, now);
}

/** GGUF metadata, as a Map (the reader's `kv`) or a plain object. */
export type ChatTemplateKV = ReadonlyMap<string, unknown> | Readonly<Record<string, unknown>>;

function kvGet(kv: ChatTemplateKV, key: string): unknown {
  return kv instanceof Map ? kv.get(key) : (kv as Record<string, unknown>)[key];
}

/**
 * Picks the chat template from GGUF metadata as transformers picks from a template dict:
 * `name` when given (`tokenizer.chat_template.<name>`), else the `tool_use` variant when tools
 * are offered and the model has one, else the default `tokenizer.chat_template`.
 * Returns undefined when the model has no such template.
 */
export function chatTemplateFromGGUF(
  kv: ChatTemplateKV,
  opts: { tools?: readonly unknown[] | boolean | null; name?: string } = {},
): string | undefined {
  const str = (key: string) => {
    const v = kvGet(kv, key);
    return typeof v === "string" ? v : undefined;
  };
  if (opts.name !== undefined) {
    return opts.name === "default"
      ? str("tokenizer.chat_template")
      : str(`tokenizer.chat_template.${opts.name}`);
  }
  const hasTools = Array.isArray(opts.tools) ? opts.tools.length > 0 : opts.tools === true;
  if (hasTools) {
    const toolUse = str("tokenizer.chat_template.tool_use");
    if (toolUse !== undefined) return toolUse;
  }
  return str("tokenizer.chat_template");
}
