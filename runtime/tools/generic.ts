/**
 * Tools on any template: the generic JSON convention (as llama-server's fallback) for models
 * whose chat template has no known tool-call syntax (plain ChatML, for example).
 *
 * - The tools, and how to answer, are described in a system message.
 * - The output is constrained (grammar/) to one JSON object: `{"tool_calls": [{"name": N,
 *   "arguments": {...}}, ...]}` to call tools, or `{"response": "..."}` to answer in text
 *   (with a response format, `response` holds a value of its schema). `tool_choice`
 *   required or named leaves only the first form (and only that tool); without parallel
 *   calls the list holds one call.
 * - Earlier assistant turns with tool calls are rendered the same way in the history, so the
 *   model sees its own convention; tool results stay `tool` messages.
 * - {@link GenericParser} streams a text `response` as content while it is generated and
 *   emits the calls once the object closes. Output that is not such an object is content.
 *
 * @module
 */
import { newToolCallId, type OutputEvent, type OutputParser, type ToolDef } from "./mod.ts";

type Schema = Record<string, unknown>;

/** Rewrites the local `$ref`s of `s` to point under `prefix` (e.g. "#/$defs/tool_0"). */
function rebase(s: unknown, prefix: string): unknown {
  if (Array.isArray(s)) return s.map((x) => rebase(x, prefix));
  if (typeof s !== "object" || s === null) return s;
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === "$ref" && typeof v === "string" && v.startsWith("#")) out[k] = prefix + v.slice(1);
    else out[k] = rebase(v, prefix);
  }
  return out;
}

/**
 * The JSON schema of the generic output. `response`: the schema of a text answer (default a
 * string), or null when only calls are allowed.
 */
export function genericToolSchema(
  tools: readonly ToolDef[],
  parallel: boolean,
  response: Schema | null,
): Schema {
  const defs: Schema = {};
  const calls = tools.map((t, i) => {
    const def = `tool_${i}`;
    defs[def] = rebase(t.parameters ?? { type: "object" }, `#/$defs/${def}`);
    return {
      type: "object",
      properties: { name: { const: t.name }, arguments: { $ref: `#/$defs/${def}` } },
      required: ["name", "arguments"],
      additionalProperties: false,
    };
  });
  const callList: Schema = {
    type: "object",
    properties: {
      tool_calls: {
        type: "array",
        items: calls.length === 1 ? calls[0] : { anyOf: calls },
        minItems: 1,
        ...(parallel ? {} : { maxItems: 1 }),
      },
    },
    required: ["tool_calls"],
    additionalProperties: false,
  };
  if (response === null) return { $defs: defs, ...callList };
  if (response.$defs !== undefined || response.definitions !== undefined) {
    defs.response = rebase(response, "#/$defs/response");
    response = { $ref: "#/$defs/response" };
  }
  const text: Schema = {
    type: "object",
    properties: { response },
    required: ["response"],
    additionalProperties: false,
  };
  return { $defs: defs, anyOf: [callList, text] };
}

/** The system text that describes the tools and the output convention. */
export function genericToolPrompt(tools: readonly ToolDef[], mustCall: boolean): string {
  const list = tools.map((t) =>
    JSON.stringify({
      name: t.name,
      ...(t.description ? { description: t.description } : {}),
      parameters: t.parameters,
    })
  ).join("\n");
  const how = mustCall
    ? 'Respond with a JSON object {"tool_calls": [{"name": ..., "arguments": {...}}]} ' +
      "that calls one of these tools."
    : 'Respond with a JSON object: either {"tool_calls": [{"name": ..., "arguments": {...}}]} ' +
      'to call tools, or {"response": ...} to answer the user directly.';
  return `You can call these tools:\n${list}\n\n${how}`;
}

/** A JSON string body decoder that works on prefixes: decodes what is complete. */
function decodeStringPrefix(s: string): { text: string; used: number; closed: boolean } {
  let text = "";
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === '"') return { text, used: i + 1, closed: true };
    if (c !== "\\") {
      text += c;
      i++;
      continue;
    }
    if (i + 1 >= s.length) break;
    const e = s[i + 1];
    if (e === "u") {
      if (i + 6 > s.length) break;
      const hex = s.slice(i + 2, i + 6);
      const cp = parseInt(hex, 16);
      // a high surrogate waits for its pair
      if (cp >= 0xd800 && cp <= 0xdbff && i + 12 > s.length) break;
      text += String.fromCharCode(cp);
      i += 6;
      continue;
    }
    const map: Record<string, string> = {
      '"': '"',
      "\\": "\\",
      "/": "/",
      b: "\b",
      f: "\f",
      n: "\n",
      r: "\r",
      t: "\t",
    };
    text += map[e] ?? e;
    i += 2;
  }
  return { text, used: i, closed: false };
}

const RESPONSE_HEAD = /^\s*\{\s*"response"\s*:\s*"/;

/** Parses the generic JSON output (see the module doc). */
export class GenericParser implements OutputParser {
  #buf = "";
  #streamed = 0; // characters of the buffer consumed by the streamed response string
  #mode: "unknown" | "text" | "other" = "unknown";
  #done = false;
  readonly #known: Set<string>;

  /** A parser for `tools`. */
  constructor(tools: readonly ToolDef[]) {
    this.#known = new Set(tools.map((t) => t.name));
  }

  /** Feeds generated text. */
  push(text: string): OutputEvent[] {
    this.#buf += text;
    if (this.#mode === "unknown") this.#mode = this.#detect();
    if (this.#mode === "text" && this.#streamed === 0) {
      this.#streamed = RESPONSE_HEAD.exec(this.#buf)![0].length;
    }
    if (this.#mode !== "text" || this.#done) return [];
    const d = decodeStringPrefix(this.#buf.slice(this.#streamed));
    this.#streamed += d.used;
    if (d.closed) this.#done = true;
    return d.text ? [{ type: "content", text: d.text }] : [];
  }

  /** Whether the output is a text response (streamed), something else, or not known yet. */
  #detect(): "unknown" | "text" | "other" {
    const t = this.#buf.trimStart();
    if (t === "") return "unknown";
    if (!t.startsWith("{")) return "other";
    const rest = t.slice(1).trimStart();
    const key = '"response"';
    if (rest.length < key.length) return key.startsWith(rest) ? "unknown" : "other";
    if (!rest.startsWith(key)) return "other";
    const after = rest.slice(key.length).trimStart();
    if (after === "") return "unknown";
    if (!after.startsWith(":")) return "other";
    const value = after.slice(1).trimStart();
    if (value === "") return "unknown";
    return value.startsWith('"') ? "text" : "other";
  }

  /** End of generation: the calls, or what was not an object, as content. */
  end(): OutputEvent[] {
    if (this.#mode === "text") return [];
    let v: unknown;
    try {
      v = JSON.parse(this.#buf);
    } catch {
      // cut off (max_tokens) or not JSON: a cut object is dropped, anything else is content
      return /^\s*\{/.test(this.#buf)
        ? []
        : this.#buf
        ? [{ type: "content", text: this.#buf }]
        : [];
    }
    const o = v as Record<string, unknown>;
    if (typeof o !== "object" || o === null) return [{ type: "content", text: this.#buf }];
    if ("response" in o) {
      const r = o.response;
      return [{ type: "content", text: typeof r === "string" ? r : JSON.stringify(r) }];
    }
    const out: OutputEvent[] = [];
    const calls = Array.isArray(o.tool_calls) ? o.tool_calls : o.tool_call ? [o.tool_call] : [];
    let index = 0;
    for (const c of calls) {
      const name = (c as { name?: unknown })?.name;
      if (typeof name !== "string" || !this.#known.has(name)) continue;
      const args = JSON.stringify((c as { arguments?: unknown }).arguments ?? {});
      out.push(
        { type: "tool_call_start", index, id: newToolCallId("qwen3"), name },
        { type: "tool_call_args", index, text: args },
        { type: "tool_call_end", index, arguments: args },
      );
      index++;
    }
    return out;
  }
}
