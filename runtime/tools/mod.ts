/**
 * Tool calls per model family: detect a model's tool-call format from its chat template, and
 * parse streamed model output into content, reasoning and tool-call events.
 *
 * ```ts
 * const format = detectToolFormat(model.chatTemplate, model.config.arch);
 * const p = createOutputParser(format, { tools, thinking: true });
 * for (const piece of generatedText) for (const ev of p.push(piece)) send(ev);
 * for (const ev of p.end()) send(ev);
 * ```
 *
 * ## Input
 *
 * The parser must see the generated text **with special tokens rendered** (detokenize with
 * `special: true`, leaving out only the final end-of-generation token), because several
 * families write their call syntax with special tokens (`[TOOL_CALLS]`, `<|channel|>`,
 * `<｜tool▁call▁begin｜>`). `push` takes arbitrary fragments: a marker split across pushes is
 * held back (only what could still be the start of a marker), everything else is emitted at
 * once.
 *
 * ## Formats (each checked against the family's own template, see `mod_test.ts`)
 *
 * - `qwen3` (Qwen3, Qwen2.5, Hermes-style): `<tool_call>\n{"name": N, "arguments": {...}}\n
 *   </tool_call>`; arguments stream as they are generated. `arguments` given as a JSON string
 *   is decoded. Keys in another order are parsed when the call closes.
 * - `qwen3_coder`: `<tool_call>\n<function=N>\n<parameter=P>\nVALUE\n</parameter>\n...
 *   </function>\n</tool_call>` (also without the `<tool_call>` wrapper). Values are converted
 *   with the tool's schema: strings raw, numbers, booleans, null, objects and arrays parsed;
 *   a value that does not parse as its type stays a string. Arguments stream one parameter
 *   at a time, as compact JSON (`{"p":1,"q":"x"}`).
 * - `harmony` (gpt-oss): messages `<|channel|>C[ to=R][ <|constrain|>json]<|message|>BODY`
 *   ended by `<|end|>`, `<|call|>`, `<|return|>` (or a new `<|start|>`); the recipient may
 *   also come before the channel. `analysis` is reasoning, `final` and plain `commentary`
 *   are content, `to=functions.N` is a call whose body is the arguments.
 * - `mistral`: `[TOOL_CALLS]N[ARGS]{...}` (Devstral, Ministral 3, Magistral),
 *   `[TOOL_CALLS]N[CALL_ID]ID[ARGS]{...}` (Mistral Small 3.2; the id is kept) and
 *   `[TOOL_CALLS][{"name": N, "arguments": {...}, "id": ID}, ...]` (Nemo; emitted when the
 *   list closes). Reasoning in `[THINK]...[/THINK]`.
 * - `deepseek`: V3.1 `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>N<｜tool▁sep｜>{...}
 *   <｜tool▁call▁end｜>...<｜tool▁calls▁end｜>` and R1's `<｜tool▁call▁begin｜>function
 *   <｜tool▁sep｜>N\n```json\n{...}\n```<｜tool▁call▁end｜>`.
 * - `glm` (GLM-4.5/4.6/4.7, `glm.ts`), `minimax` (MiniMax-M2, `minimax.ts`), `kimi` (Kimi K2,
 *   `kimi.ts`): see those files.
 * - `none`: content (and reasoning) only.
 *
 * ## Thinking
 *
 * `<think>...</think>` (`[THINK]...[/THINK]` for Mistral) at the start of the output is
 * reasoning. With `thinking: true` the output is taken to start inside reasoning (templates
 * such as DeepSeek's and Qwen3-2507's open `<think>` in the prompt), so everything up to
 * `</think>` is reasoning, whether or not an opening tag is generated. Whitespace around
 * reasoning is trimmed, and the whitespace that follows `</think>` is dropped. Tool syntax
 * inside reasoning is left as reasoning text.
 *
 * ## Malformed output (never throws)
 *
 * - A call whose tool name cannot be read, or names a tool not in `tools` (when `tools` is
 *   non-empty), is emitted as **content**, raw text included, when it closes or at `end()`:
 *   nothing the model wrote is lost, and no call with an unknown name reaches a client.
 * - A call with a known name is always a call. If its arguments are not valid JSON (bad
 *   syntax, or cut off at `end()`), `tool_call_end` carries the raw arguments text and an
 *   `error` saying why; the client's own validation then reports it back to the model.
 * - Whitespace between calls and after the last call is dropped (it is not content).
 * - The concatenated `tool_call_args` texts of a call always equal its `tool_call_end`
 *   `arguments`.
 *
 * Ids are `call_` + 24 random alphanumerics; for Mistral, 9 alphanumerics (its templates
 * reject other ids in the history), or the model's own `[CALL_ID]`.
 *
 * @module
 */

import { findMarker, heldBack, JsonScanner, randomAlnum } from "./_scan.ts";
import { glmCalls } from "./glm.ts";
import { KIMI, kimiCalls } from "./kimi.ts";
import { minimaxCalls } from "./minimax.ts";

/** The tool-call syntax family of a model. */
export type ToolFormat =
  | "qwen3"
  | "qwen3_coder"
  | "harmony"
  | "mistral"
  | "deepseek"
  | "glm"
  | "minimax"
  | "kimi"
  | "none";

/** A tool the model may call. */
export interface ToolDef {
  /** The function name. */
  name: string;
  /** What it does. */
  description?: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

/** One parsed piece of model output. */
export type OutputEvent =
  | { type: "content"; text: string }
  | { type: "reasoning"; text: string }
  | { type: "tool_call_start"; index: number; id: string; name: string }
  | { type: "tool_call_args"; index: number; text: string }
  | { type: "tool_call_end"; index: number; arguments: string; error?: string };

/** A streaming parser of model output. */
export interface OutputParser {
  /** Feed a fragment of generated text; returns the events it completes. */
  push(text: string): OutputEvent[];
  /** End of generation: flush everything held back. */
  end(): OutputEvent[];
}

/** Options of {@link createOutputParser}. */
export interface OutputParserOptions {
  /** The tools offered (names are checked against them; schemas type Qwen3-Coder values). */
  tools: ToolDef[];
  /** The model thinks: the output starts inside reasoning (see the module doc). */
  thinking: boolean;
}

/**
 * The tool-call format of a model, from its chat template (the markers the template writes),
 * else from its architecture: gpt-oss → harmony; qwen2moe/qwen3moe/qwen3 → qwen3; glm4moe → glm;
 * minimax-m2 → minimax.
 */
export function detectToolFormat(chatTemplate: string | undefined, arch: string): ToolFormat {
  const t = chatTemplate ?? "";
  if (t.includes("<|channel|>") || arch === "gpt-oss") return "harmony";
  if (t.includes("<arg_key>") && t.includes("<tool_call>")) return "glm";
  if (t.includes("<minimax:tool_call>")) return "minimax";
  if (t.includes("<|tool_calls_section_begin|>")) return "kimi";
  if (t.includes("<function=") && t.includes("<parameter=")) return "qwen3_coder";
  if (t.includes("[TOOL_CALLS]")) return "mistral";
  if (t.includes("tool▁call▁begin") || t.includes("tool▁calls▁begin")) return "deepseek";
  if (t.includes("<tool_call>")) return "qwen3";
  if (!chatTemplate && /^qwen/.test(arch)) return "qwen3";
  if (!chatTemplate && arch === "glm4moe") return "glm";
  if (!chatTemplate && arch === "minimax-m2") return "minimax";
  return "none";
}

/** A new id for a tool call of the given format. */
export function newToolCallId(format: ToolFormat): string {
  return format === "mistral" ? randomAlnum(9) : `call_${randomAlnum(24)}`;
}

/** Creates the streaming parser of a format (see the module doc). */
export function createOutputParser(format: ToolFormat, opts: OutputParserOptions): OutputParser {
  if (format === "harmony") return new HarmonyParser(opts);
  const ev = new Emitter(format, opts.tools);
  let inner: ContentSink;
  let tags: [string, string] = ["<think>", "</think>"];
  switch (format) {
    case "qwen3":
      inner = new TaggedJsonCalls(ev);
      break;
    case "qwen3_coder":
      inner = new CoderCalls(ev);
      break;
    case "mistral":
      inner = new MistralCalls(ev);
      tags = ["[THINK]", "[/THINK]"];
      break;
    case "deepseek":
      inner = new DeepSeekCalls(ev);
      break;
    case "glm":
      inner = glmCalls(ev);
      break;
    case "minimax":
      inner = minimaxCalls(ev);
      break;
    case "kimi":
      inner = kimiCalls(ev);
      break;
    default:
      inner = { push: (t) => ev.content(t), end: () => {} };
  }
  // Kimi K2-Thinking may start its calls without closing its reasoning (as llama.cpp notes)
  const breaks = format === "kimi" ? [KIMI.sectionBegin, KIMI.callBegin] : [];
  const think = new ThinkSplitter(tags[0], tags[1], opts.thinking, ev, inner, breaks);
  return {
    push(text: string): OutputEvent[] {
      think.push(text);
      return ev.take();
    },
    end(): OutputEvent[] {
      think.end();
      return ev.take();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Events

/** Collects the events of one parser (shared by the family parsers, also in other files). */
export class Emitter {
  #out: OutputEvent[] = [];
  #index = 0;
  #cur = -1;
  #args = "";
  // whitespace-only content is held until something else comes: dropped before or between
  // calls (and at the end), emitted with the text that follows otherwise
  #afterCall = true;
  #ws = "";
  constructor(readonly format: ToolFormat, readonly tools: readonly ToolDef[]) {}

  take(): OutputEvent[] {
    const o = this.#out;
    this.#out = [];
    return o;
  }
  content(text: string): void {
    if (text === "") return;
    if (this.#afterCall) {
      // whitespace before the first call, between calls, or after the last is not content
      if (text.trim() === "") {
        this.#ws += text;
        return;
      }
      text = this.#ws + text;
      this.#ws = "";
      this.#afterCall = false;
    }
    const last = this.#out[this.#out.length - 1];
    if (last?.type === "content") last.text += text;
    else this.#out.push({ type: "content", text });
  }
  reasoning(text: string): void {
    if (text === "") return;
    const last = this.#out[this.#out.length - 1];
    if (last?.type === "reasoning") last.text += text;
    else this.#out.push({ type: "reasoning", text });
  }
  known(name: string): boolean {
    return this.tools.length === 0 || this.tools.some((t) => t.name === name);
  }
  tool(name: string): ToolDef | undefined {
    return this.tools.find((t) => t.name === name);
  }
  get inCall(): boolean {
    return this.#cur >= 0;
  }
  start(name: string, id?: string): void {
    if (this.#cur >= 0) this.finish();
    this.#cur = this.#index++;
    this.#args = "";
    const callId = id && /^[A-Za-z0-9_-]+$/.test(id) ? id : newToolCallId(this.format);
    this.#out.push({ type: "tool_call_start", index: this.#cur, id: callId, name });
    this.#ws = "";
  }
  args(text: string): void {
    if (text === "" || this.#cur < 0) return;
    this.#args += text;
    const last = this.#out[this.#out.length - 1];
    if (last?.type === "tool_call_args" && last.index === this.#cur) last.text += text;
    else this.#out.push({ type: "tool_call_args", index: this.#cur, text });
  }
  /** Ends the current call; `error` when it was cut off. Validates the JSON. */
  finish(error?: string): void {
    if (this.#cur < 0) return;
    const args = this.#args;
    let err = error;
    if (err === undefined) {
      try {
        const v = JSON.parse(args);
        if (typeof v !== "object" || v === null || Array.isArray(v)) {
          err = "arguments are not a JSON object";
        }
      } catch (e) {
        err = `arguments are not valid JSON: ${(e as Error).message}`;
      }
    }
    const ev: OutputEvent = { type: "tool_call_end", index: this.#cur, arguments: args };
    if (err !== undefined) ev.error = err;
    this.#out.push(ev);
    this.#cur = -1;
    this.#args = "";
    this.#afterCall = true;
    this.#ws = "";
  }
  /** A whole call at once (parsed after it closed). */
  whole(name: string, args: string, id?: string): void {
    this.start(name, id);
    this.args(args);
    this.finish();
  }
}

/** The part of a parser after the reasoning split: it sees the content text. */
export interface ContentSink {
  push(text: string): void;
  end(): void;
}

/** Splits reasoning (`<think>...</think>`) off the front of the output. */
class ThinkSplitter {
  #state: "start" | "reasoning" | "after" | "content";
  #buf = "";
  #started = false; // reasoning text emitted yet (to trim its leading whitespace)
  constructor(
    readonly open: string,
    readonly close: string,
    readonly thinking: boolean,
    readonly ev: Emitter,
    readonly sink: ContentSink,
    /** Markers that also end reasoning, left for the content (Kimi: a tool-call section). */
    readonly breaks: readonly string[] = [],
  ) {
    this.#state = "start";
  }

  push(text: string): void {
    this.#buf += text;
    while (this.#buf !== "") {
      const s = this.#state;
      if (s === "content") {
        const b = this.#buf;
        this.#buf = "";
        this.sink.push(b);
        return;
      }
      if (s === "start") {
        const t = this.#buf.trimStart();
        if (t === "") return;
        if (t.startsWith(this.open)) {
          this.#buf = t.slice(this.open.length);
          this.#state = "reasoning";
        } else if (this.open.startsWith(t)) return;
        else this.#state = this.thinking ? "reasoning" : "content";
        continue;
      }
      if (s === "after") {
        const t = this.#buf.trimStart();
        if (t === "") {
          this.#buf = "";
          return;
        }
        this.#buf = t;
        this.#state = "content";
        continue;
      }
      // reasoning
      const m = findMarker(this.#buf, [this.close, ...this.breaks]);
      if (m) {
        const [i, marker] = m;
        this.#reason(this.#buf.slice(0, i).trimEnd());
        this.#buf = this.#buf.slice(marker === this.close ? i + marker.length : i);
        this.#state = marker === this.close ? "after" : "content";
        continue;
      }
      // hold back a possible start of the close tag, and trailing whitespace
      const hold = heldBack(this.#buf, [this.close, ...this.breaks]);
      let emit = this.#buf.slice(0, this.#buf.length - hold);
      const trimmed = emit.trimEnd();
      const keep = emit.slice(trimmed.length) + this.#buf.slice(this.#buf.length - hold);
      emit = trimmed;
      this.#reason(emit);
      this.#buf = keep;
      return;
    }
  }

  #reason(text: string): void {
    const t = this.#started ? text : text.trimStart();
    if (t !== "") {
      this.#started = true;
      this.ev.reasoning(t);
    }
  }

  end(): void {
    const b = this.#buf;
    this.#buf = "";
    if (this.#state === "reasoning") this.#reason(b.trimEnd());
    else if (this.#state === "start") {
      if (this.thinking) this.#reason(b.trim());
      else this.sink.push(b);
    } else if (this.#state !== "after") this.sink.push(b);
    this.sink.end();
  }
}

/** Streams the arguments JSON value of a call. */
export class ArgsStream {
  readonly scan = new JsonScanner();
  #pending = ""; // a non-object value is emitted whole at the end
  constructor(readonly ev: Emitter) {}
  /** Feeds text; returns the rest after the value (or null while it continues). */
  feed(s: string): string | null {
    const before = this.scan.text.length;
    const used = this.scan.feed(s);
    const added = this.scan.text.slice(before);
    if (this.scan.first === "{") this.ev.args(added);
    else this.#pending += added;
    return this.scan.done ? s.slice(used) : null;
  }
  /** Finishes the call (decoding a string-encoded arguments value). */
  finish(cutOff: boolean): void {
    this.scan.finish();
    if (this.scan.first !== "{" && this.#pending !== "") {
      let text = this.#pending;
      try {
        const v = JSON.parse(text);
        if (typeof v === "string") text = v;
      } catch { /* keep raw */ }
      this.ev.args(text);
    }
    this.ev.finish(cutOff && !this.scan.done ? "the call was cut off" : undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// qwen3: <tool_call>{json}</tool_call>

const QWEN_HEAD = /^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:/;

class TaggedJsonCalls implements ContentSink {
  #buf = "";
  #inCall = false;
  #raw = ""; // call text so far (for the malformed fallback)
  #args: ArgsStream | null = null;
  #bad = false;
  #trailer = false;
  constructor(
    readonly ev: Emitter,
    readonly open = "<tool_call>",
    readonly close = "</tool_call>",
  ) {}

  push(text: string): void {
    this.#buf += text;
    while (this.#buf !== "") {
      if (!this.#inCall) {
        const m = findMarker(this.#buf, [this.open]);
        if (!m) {
          const hold = heldBack(this.#buf, [this.open]);
          this.ev.content(this.#buf.slice(0, this.#buf.length - hold));
          this.#buf = this.#buf.slice(this.#buf.length - hold);
          return;
        }
        this.ev.content(this.#buf.slice(0, m[0]));
        this.#buf = this.#buf.slice(m[0] + m[1].length);
        this.#inCall = true;
        this.#raw = "";
        this.#args = null;
        this.#bad = false;
        this.#trailer = false;
        continue;
      }
      if (this.#args && !this.#trailer) {
        const rest = this.#args.feed(this.#buf);
        this.#raw += this.#buf.slice(0, this.#buf.length - (rest?.length ?? 0));
        this.#buf = rest ?? "";
        if (rest === null) return;
        this.#trailer = true;
        continue;
      }
      // before the arguments, or after them: look for the close tag
      const m = findMarker(this.#buf, [this.close]);
      if (!this.#args && !this.#bad) {
        const head = QWEN_HEAD.exec(this.#raw + this.#buf);
        if (head) {
          let name = head[1];
          try {
            name = JSON.parse(`"${head[1]}"`);
          } catch { /* raw */ }
          const all = this.#raw + this.#buf;
          if (this.ev.known(name)) {
            this.ev.start(name);
            this.#args = new ArgsStream(this.ev);
            this.#raw = all.slice(0, head[0].length);
            this.#buf = all.slice(head[0].length);
            continue;
          }
          this.#bad = true;
        }
      }
      if (!m) {
        const hold = heldBack(this.#buf, [this.close]);
        this.#raw += this.#buf.slice(0, this.#buf.length - hold);
        this.#buf = this.#buf.slice(this.#buf.length - hold);
        return;
      }
      this.#raw += this.#buf.slice(0, m[0]);
      this.#buf = this.#buf.slice(m[0] + m[1].length);
      this.#closeCall(false);
    }
  }

  #closeCall(atEnd: boolean): void {
    this.#inCall = false;
    if (this.#args) {
      this.#args.finish(atEnd);
      this.#args = null;
      return;
    }
    // no streaming head: parse the whole body, else give it back as content
    if (!this.#bad) {
      try {
        const v = JSON.parse(this.#raw);
        if (v && typeof v.name === "string" && this.ev.known(v.name)) {
          const a = v.arguments ?? v.parameters ?? {};
          this.ev.whole(v.name, typeof a === "string" ? a : JSON.stringify(a));
          return;
        }
      } catch { /* malformed */ }
    }
    this.ev.content(this.open + this.#raw + (atEnd ? "" : this.close));
  }

  end(): void {
    if (this.#inCall) {
      this.#raw += this.#buf;
      this.#buf = "";
      if (this.#args && !this.#trailer) this.#args.feed("");
      this.#closeCall(true);
    } else {
      this.ev.content(this.#buf);
      this.#buf = "";
    }
  }
}

// ---------------------------------------------------------------------------------------------
// qwen3_coder: XML

function schemaType(schema: unknown): string[] {
  if (typeof schema !== "object" || schema === null) return [];
  const s = schema as Record<string, unknown>;
  if (typeof s.type === "string") return [s.type];
  if (Array.isArray(s.type)) return s.type.filter((t): t is string => typeof t === "string");
  const alts = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
  if (Array.isArray(alts)) return alts.flatMap(schemaType);
  if (s.properties) return ["object"];
  return [];
}

/** A Qwen3-Coder parameter value as JSON text, typed by its schema. */
export function coderValueJson(raw: string, schema: unknown): string {
  const types = schemaType(schema);
  if (types.length === 1 && types[0] === "string") return JSON.stringify(raw);
  const t = raw.trim();
  try {
    const v = JSON.parse(t);
    const kind = v === null
      ? "null"
      : Array.isArray(v)
      ? "array"
      : typeof v === "number"
      ? (Number.isInteger(v) ? "integer" : "number")
      : typeof v;
    const ok = types.length === 0 || types.includes(kind) ||
      (kind === "integer" && types.includes("number"));
    if (ok && (types.length > 0 || kind !== "string")) return JSON.stringify(v);
  } catch { /* not JSON */ }
  if (types.includes("boolean") && (t === "True" || t === "False")) {
    return t === "True" ? "true" : "false";
  }
  return JSON.stringify(raw);
}

class CoderCalls implements ContentSink {
  #buf = "";
  #state: "text" | "wrap" | "fn" | "params" | "tail" = "text";
  #wrapped = false;
  #raw = "";
  #name = "";
  #bad = false;
  #nParams = 0;
  constructor(readonly ev: Emitter) {}

  push(text: string): void {
    this.#buf += text;
    while (this.#buf !== "") {
      const b = this.#buf;
      switch (this.#state) {
        case "text": {
          const m = findMarker(b, ["<tool_call>", "<function="]);
          if (!m) {
            const hold = heldBack(b, ["<tool_call>", "<function="]);
            this.ev.content(b.slice(0, b.length - hold));
            this.#buf = b.slice(b.length - hold);
            return;
          }
          this.ev.content(b.slice(0, m[0]));
          this.#wrapped = m[1] === "<tool_call>";
          this.#raw = m[1];
          this.#buf = b.slice(m[0] + m[1].length);
          this.#state = this.#wrapped ? "wrap" : "fn";
          this.#bad = false;
          this.#nParams = 0;
          continue;
        }
        case "wrap": {
          const t = b.trimStart();
          if (t === "") return;
          if (t.startsWith("<function=")) {
            this.#raw += b.slice(0, b.length - t.length) + "<function=";
            this.#buf = t.slice("<function=".length);
            this.#state = "fn";
          } else if ("<function=".startsWith(t)) return;
          else {
            this.#bad = true;
            this.#state = "tail";
          }
          continue;
        }
        case "fn": {
          const i = b.indexOf(">");
          if (i < 0) return;
          this.#name = b.slice(0, i).trim();
          this.#raw += b.slice(0, i + 1);
          this.#buf = b.slice(i + 1);
          if (this.ev.known(this.#name)) {
            this.ev.start(this.#name);
            this.#state = "params";
          } else {
            this.#bad = true;
            this.#state = "tail";
          }
          continue;
        }
        case "params": {
          const t = b.trimStart();
          if (t.startsWith("</function>")) {
            this.#raw += b.slice(0, b.length - t.length) + "</function>";
            this.#buf = t.slice("</function>".length);
            this.ev.args(this.#nParams === 0 ? "{}" : "}");
            this.ev.finish();
            if (this.#wrapped) this.#state = "tail";
            else this.#state = "text";
            continue;
          }
          if (!t.startsWith("<parameter=")) {
            if ("<parameter=".startsWith(t) || "</function>".startsWith(t)) return;
            // garbage between parameters: skip up to the next tag
            const j = t.indexOf("<", 1);
            if (j < 0) return;
            this.#raw += b.slice(0, b.length - t.length + j);
            this.#buf = t.slice(j);
            continue;
          }
          const gt = t.indexOf(">");
          const end = t.indexOf("</parameter>");
          if (gt < 0 || end < 0) return;
          const pname = t.slice("<parameter=".length, gt).trim();
          let value = t.slice(gt + 1, end);
          if (value.startsWith("\n")) value = value.slice(1);
          if (value.endsWith("\n")) value = value.slice(0, -1);
          const schema = (this.ev.tool(this.#name)?.parameters?.properties as
            | Record<string, unknown>
            | undefined)?.[pname];
          const json = coderValueJson(value, schema);
          this.ev.args(`${this.#nParams === 0 ? "{" : ","}${JSON.stringify(pname)}:${json}`);
          this.#nParams++;
          this.#raw += b.slice(0, b.length - t.length + end + "</parameter>".length);
          this.#buf = t.slice(end + "</parameter>".length);
          continue;
        }
        case "tail": {
          const m = findMarker(b, ["</tool_call>"]);
          if (!m) {
            const hold = heldBack(b, ["</tool_call>"]);
            this.#raw += b.slice(0, b.length - hold);
            this.#buf = b.slice(b.length - hold);
            return;
          }
          this.#raw += b.slice(0, m[0] + m[1].length);
          this.#buf = b.slice(m[0] + m[1].length);
          if (this.#bad) this.ev.content(this.#raw);
          this.#state = "text";
          continue;
        }
      }
    }
  }

  end(): void {
    const b = this.#buf;
    this.#buf = "";
    if (this.#state === "text") this.ev.content(b);
    else if (this.#state === "params") {
      this.ev.args(this.#nParams === 0 ? "{}" : "}");
      this.ev.finish("the call was cut off");
    } else if (this.#bad || this.#state === "wrap" || this.#state === "fn") {
      this.ev.content(this.#raw + b);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// mistral

const TC = "[TOOL_CALLS]";

class MistralCalls implements ContentSink {
  #buf = "";
  #state: "text" | "head" | "args" | "list" = "text";
  #raw = "";
  #args: ArgsStream | null = null;
  #list: JsonScanner | null = null;
  constructor(readonly ev: Emitter) {}

  push(text: string): void {
    this.#buf += text;
    while (this.#buf !== "") {
      const b = this.#buf;
      if (this.#state === "text") {
        const m = findMarker(b, [TC]);
        if (!m) {
          const hold = heldBack(b, [TC]);
          this.ev.content(b.slice(0, b.length - hold));
          this.#buf = b.slice(b.length - hold);
          return;
        }
        this.ev.content(b.slice(0, m[0]));
        this.#buf = b.slice(m[0] + TC.length);
        this.#raw = TC;
        this.#state = "head";
        continue;
      }
      if (this.#state === "head") {
        const t = b.trimStart();
        if (t === "") return;
        if (t.startsWith("[") && !t.startsWith("[ARGS]") && !t.startsWith("[CALL_ID]")) {
          this.#state = "list";
          this.#list = new JsonScanner();
          continue;
        }
        const a = b.indexOf("[ARGS]");
        if (a < 0) {
          // the name may not contain '[' other than the markers: wait for [ARGS]
          return;
        }
        const head = b.slice(0, a);
        const ci = head.indexOf("[CALL_ID]");
        const name = (ci >= 0 ? head.slice(0, ci) : head).trim();
        const id = ci >= 0 ? head.slice(ci + "[CALL_ID]".length).trim() : undefined;
        this.#raw += b.slice(0, a + "[ARGS]".length);
        this.#buf = b.slice(a + "[ARGS]".length);
        if (!this.ev.known(name)) {
          this.ev.content(this.#raw);
          // the arguments follow as raw text too: scan them without a call
          this.#args = null;
          this.#state = "text";
          continue;
        }
        this.ev.start(name, id);
        this.#args = new ArgsStream(this.ev);
        this.#state = "args";
        continue;
      }
      if (this.#state === "args") {
        const rest = this.#args!.feed(b);
        if (rest === null) {
          this.#buf = "";
          return;
        }
        this.#args!.finish(false);
        this.#args = null;
        this.#buf = rest;
        this.#state = "text";
        continue;
      }
      // list
      const used = this.#list!.feed(b);
      this.#buf = b.slice(used);
      if (!this.#list!.done) return;
      this.#emitList(this.#list!.text);
      this.#list = null;
      this.#state = "text";
    }
  }

  #emitList(text: string): void {
    try {
      const v = JSON.parse(text);
      const calls = Array.isArray(v) ? v : [v];
      const ok = calls.every((c) =>
        c && typeof c === "object" && typeof c.name === "string" && this.ev.known(c.name)
      );
      if (ok) {
        for (const c of calls) {
          const a = c.arguments ?? {};
          this.ev.whole(c.name, typeof a === "string" ? a : JSON.stringify(a), c.id);
        }
        return;
      }
    } catch { /* malformed */ }
    this.ev.content(this.#raw + text);
  }

  end(): void {
    const b = this.#buf;
    this.#buf = "";
    if (this.#state === "text") this.ev.content(b);
    else if (this.#state === "head") this.ev.content(this.#raw + b);
    else if (this.#state === "args") {
      this.#args!.feed(b);
      this.#args!.finish(true);
    } else {
      this.#list!.feed(b);
      if (this.#list!.finish()) this.#emitList(this.#list!.text);
      else this.ev.content(this.#raw + this.#list!.text);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// deepseek

const DS_CALLS_BEGIN = "<｜tool▁calls▁begin｜>";
const DS_CALLS_END = "<｜tool▁calls▁end｜>";
const DS_CALL_BEGIN = "<｜tool▁call▁begin｜>";
const DS_CALL_END = "<｜tool▁call▁end｜>";
const DS_SEP = "<｜tool▁sep｜>";

class DeepSeekCalls implements ContentSink {
  #buf = "";
  #state: "text" | "block" | "head" | "r1name" | "args" | "trailer" = "text";
  #raw = "";
  #args: ArgsStream | null = null;
  #bad = false;
  constructor(readonly ev: Emitter) {}

  push(text: string): void {
    this.#buf += text;
    while (this.#buf !== "") {
      const b = this.#buf;
      switch (this.#state) {
        case "text": {
          const ms = [DS_CALLS_BEGIN, DS_CALL_BEGIN];
          const m = findMarker(b, ms);
          if (!m) {
            const hold = heldBack(b, ms);
            this.ev.content(b.slice(0, b.length - hold));
            this.#buf = b.slice(b.length - hold);
            return;
          }
          this.ev.content(b.slice(0, m[0]));
          this.#buf = b.slice(m[0] + (m[1] === DS_CALLS_BEGIN ? m[1].length : 0));
          this.#state = "block";
          continue;
        }
        case "block": {
          const t = b.trimStart();
          if (t === "") return;
          if (t.startsWith(DS_CALLS_END)) {
            this.#buf = t.slice(DS_CALLS_END.length);
            this.#state = "text";
          } else if (t.startsWith(DS_CALL_BEGIN)) {
            this.#buf = t.slice(DS_CALL_BEGIN.length);
            this.#raw = DS_CALL_BEGIN;
            this.#bad = false;
            this.#state = "head";
          } else if (DS_CALLS_END.startsWith(t) || DS_CALL_BEGIN.startsWith(t)) return;
          else {
            this.#buf = t;
            this.#state = "text";
          }
          continue;
        }
        case "head": {
          const i = b.indexOf(DS_SEP);
          if (i < 0) return;
          const head = b.slice(0, i).trim();
          this.#raw += b.slice(0, i + DS_SEP.length);
          this.#buf = b.slice(i + DS_SEP.length);
          if (head === "function" && !this.ev.known("function")) {
            this.#state = "r1name";
            continue;
          }
          this.#begin(head);
          continue;
        }
        case "r1name": {
          const m = /^([^\n]*)\n\s*```[a-z]*\n/.exec(b);
          if (!m) {
            if (b.includes("{") && !b.includes("```")) {
              // no fence: the name ends at the first newline or brace
              const j = b.indexOf("{");
              this.#raw += b.slice(0, j);
              this.#buf = b.slice(j);
              this.#begin(b.slice(0, j).trim());
            }
            return;
          }
          this.#raw += m[0];
          this.#buf = b.slice(m[0].length);
          this.#begin(m[1].trim());
          continue;
        }
        case "args": {
          const rest = this.#args!.feed(b);
          this.#raw += b.slice(0, b.length - (rest?.length ?? 0));
          if (rest === null) {
            this.#buf = "";
            return;
          }
          this.#buf = rest;
          this.#state = "trailer";
          continue;
        }
        case "trailer": {
          const m = findMarker(b, [DS_CALL_END]);
          if (!m) {
            const hold = heldBack(b, [DS_CALL_END]);
            this.#raw += b.slice(0, b.length - hold);
            this.#buf = b.slice(b.length - hold);
            return;
          }
          this.#raw += b.slice(0, m[0] + m[1].length);
          this.#buf = b.slice(m[0] + m[1].length);
          if (this.#bad) this.ev.content(this.#raw);
          else this.#args!.finish(false);
          this.#args = null;
          this.#state = "block";
          continue;
        }
      }
    }
  }

  #begin(name: string): void {
    if (this.ev.known(name)) {
      this.ev.start(name);
      this.#args = new ArgsStream(this.ev);
      this.#state = "args";
    } else {
      this.#bad = true;
      this.#state = "trailer";
    }
  }

  end(): void {
    const b = this.#buf;
    this.#buf = "";
    switch (this.#state) {
      case "text":
        this.ev.content(b);
        return;
      case "block":
        return;
      case "args":
        this.#args!.feed(b);
        this.#args!.finish(true);
        return;
      case "trailer":
        if (this.#bad) this.ev.content(this.#raw + b);
        else this.#args!.finish(false);
        return;
      default:
        this.ev.content(this.#raw + b);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// harmony (gpt-oss)

const H_MESSAGE = "<|message|>";
const H_ENDS = ["<|end|>", "<|call|>", "<|return|>"];
const H_BREAKS = [...H_ENDS, "<|start|>"];

class HarmonyParser implements OutputParser {
  readonly ev: Emitter;
  #buf = "";
  #state: "header" | "body" = "header";
  #header = "";
  #kind: "reasoning" | "content" | "call" | "bad" = "content";
  #args: ArgsStream | null = null;
  #raw = "";
  constructor(opts: OutputParserOptions) {
    this.ev = new Emitter("harmony", opts.tools);
  }

  push(text: string): OutputEvent[] {
    this.#buf += text;
    this.#run(false);
    return this.ev.take();
  }

  end(): OutputEvent[] {
    this.#run(true);
    return this.ev.take();
  }

  #run(atEnd: boolean): void {
    while (true) {
      const b = this.#buf;
      if (this.#state === "header") {
        const t = b.trimStart();
        if (t === "") {
          this.#buf = "";
          return;
        }
        // plain text where a header should be: content until the next break
        const headerLike = t.startsWith("<|") || t.startsWith("to=") || "<|".startsWith(t) ||
          "to=".startsWith(t);
        if (!headerLike) {
          this.#header = "";
          this.#enterBody("content");
          continue;
        }
        const i = b.indexOf(H_MESSAGE);
        if (i < 0) {
          if (atEnd) {
            this.#buf = "";
            // a header without a body: nothing was said
          }
          return;
        }
        this.#header = b.slice(0, i);
        this.#buf = b.slice(i + H_MESSAGE.length);
        const to = /to=([^\s<]+)/.exec(this.#header)?.[1];
        const channel = /<\|channel\|>\s*([A-Za-z_]+)/.exec(this.#header)?.[1] ?? "final";
        if (to !== undefined) {
          const name = to.startsWith("functions.") ? to.slice("functions.".length) : to;
          if (this.ev.known(name) && to.startsWith("functions.")) {
            this.ev.start(name);
            this.#args = new ArgsStream(this.ev);
            this.#enterBody("call");
          } else {
            this.#raw = this.#header + H_MESSAGE;
            this.#enterBody("bad");
          }
        } else this.#enterBody(channel === "analysis" ? "reasoning" : "content");
        continue;
      }
      // body
      const m = findMarker(b, H_BREAKS);
      const cut = m ? m[0] : atEnd ? b.length : b.length - heldBack(b, H_BREAKS);
      const piece = b.slice(0, cut);
      this.#body(piece);
      if (!m) {
        this.#buf = b.slice(cut);
        if (atEnd) this.#closeBody(true);
        return;
      }
      this.#buf = b.slice(m[0] + (m[1] === "<|start|>" ? 0 : m[1].length));
      if (m[1] === "<|start|>") this.#buf = this.#buf.slice("<|start|>".length);
      this.#closeBody(false);
      this.#state = "header";
    }
  }

  #enterBody(kind: "reasoning" | "content" | "call" | "bad"): void {
    this.#kind = kind;
    this.#state = "body";
  }

  #body(text: string): void {
    if (text === "") return;
    if (this.#kind === "reasoning") this.ev.reasoning(text);
    else if (this.#kind === "content") this.ev.content(text);
    else if (this.#kind === "call") this.#args!.feed(text);
    else this.#raw += text;
  }

  #closeBody(atEnd: boolean): void {
    if (this.#kind === "call") this.#args!.finish(atEnd);
    else if (this.#kind === "bad") this.ev.content(this.#raw);
    this.#args = null;
    this.#raw = "";
    this.#kind = "content";
    this.#state = "header";
  }
}
