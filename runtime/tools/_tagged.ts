/**
 * The streaming parser shared by the tag-per-argument tool-call formats (GLM's
 * `<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>`, MiniMax-M2's
 * `<minimax:tool_call><invoke name="N"><parameter name="K">V</parameter></invoke>...`): one
 * state machine, configured by the family's tags (see `glm.ts`, `minimax.ts`).
 *
 * Values are typed by the tool's schema as the templates write them (`v if v is string else
 * v | tojson`): a string parameter is the raw text, anything else is parsed as JSON, and a value
 * that does not parse as its type stays a string ({@link coderValueJson}). Arguments stream one
 * parameter at a time, as compact JSON (`{"k":1,"q":"x"}`).
 *
 * @module
 */

import { findMarker, heldBack } from "./_scan.ts";
import { coderValueJson, type ContentSink, type Emitter } from "./mod.ts";

/** The tags of one tag-per-argument format. */
export interface TaggedSpec {
  /** A block around the calls (MiniMax), or null (GLM: each call stands alone). */
  block: [open: string, close: string] | null;
  /** What opens one call, up to its name (`<tool_call>`, `<invoke name="`). */
  callOpen: string;
  /** What may end the name: consumed when `consumeNameEnd`, else left for the arguments. */
  nameEnd: string[];
  /** Whether the name's end marker belongs to the head (`">`) or to what follows (`<`). */
  consumeNameEnd: boolean;
  /** What closes one call (`</tool_call>`, `</invoke>`). */
  callClose: string;
  /** The argument tags: key open/close, value open/close (value open may be ""). */
  keyOpen: string;
  keyClose: string;
  valueOpen: string;
  valueClose: string;
}

type State = "text" | "block" | "name" | "params" | "tail";

/** Longest a call head may grow before it is taken as malformed (a name is short). */
const MAX_NAME = 256;

/** Parses one tag-per-argument format (see the module doc). */
export class TaggedCalls implements ContentSink {
  #buf = "";
  #state: State = "text";
  #raw = ""; // the call's text so far (for the malformed fallback)
  #name = "";
  #bad = false;
  #nParams = 0;
  constructor(readonly ev: Emitter, readonly spec: TaggedSpec) {}

  /** Feeds content text. */
  push(text: string): void {
    this.#buf += text;
    while (this.#buf !== "" && this.#step()) { /* until it needs more text */ }
  }

  /** One transition; false when more text is needed. */
  #step(): boolean {
    const b = this.#buf;
    const s = this.spec;
    switch (this.#state) {
      case "text": {
        const open = s.block ? s.block[0] : s.callOpen;
        const m = findMarker(b, [open]);
        if (!m) {
          const hold = heldBack(b, [open]);
          this.ev.content(b.slice(0, b.length - hold));
          this.#buf = b.slice(b.length - hold);
          return false;
        }
        this.ev.content(b.slice(0, m[0]));
        this.#buf = b.slice(m[0] + open.length);
        if (s.block) this.#state = "block";
        else this.#openCall();
        return true;
      }
      case "block": {
        const t = b.trimStart();
        if (t === "") return false;
        if (t.startsWith(s.block![1])) {
          this.#buf = t.slice(s.block![1].length);
          this.#state = "text";
        } else if (t.startsWith(s.callOpen)) {
          this.#buf = t.slice(s.callOpen.length);
          this.#openCall();
        } else if (s.block![1].startsWith(t) || s.callOpen.startsWith(t)) return false;
        else {
          // stray text inside the block: content, up to the next tag
          const j = t.indexOf("<", 1);
          this.ev.content(j < 0 ? t : t.slice(0, j));
          this.#buf = j < 0 ? "" : t.slice(j);
        }
        return true;
      }
      case "name": {
        const m = findMarker(b, s.nameEnd);
        if (!m) {
          if (b.length <= MAX_NAME) return false;
          this.#bad = true;
          this.#state = "tail";
          return true;
        }
        this.#name = b.slice(0, m[0]).trim();
        const used = m[0] + (s.consumeNameEnd ? m[1].length : 0);
        this.#raw += b.slice(0, used);
        this.#buf = b.slice(used);
        if (this.#name !== "" && this.ev.known(this.#name)) {
          this.ev.start(this.#name);
          this.#state = "params";
        } else {
          this.#bad = true;
          this.#state = "tail";
        }
        return true;
      }
      case "params":
        return this.#params(b);
      case "tail": {
        const m = findMarker(b, [s.callClose]);
        if (!m) {
          const hold = heldBack(b, [s.callClose]);
          this.#raw += b.slice(0, b.length - hold);
          this.#buf = b.slice(b.length - hold);
          return false;
        }
        this.#raw += b.slice(0, m[0] + m[1].length);
        this.#buf = b.slice(m[0] + m[1].length);
        if (this.#bad) this.ev.content(this.#raw);
        this.#state = s.block ? "block" : "text";
        return true;
      }
    }
  }

  #openCall(): void {
    this.#raw = this.spec.callOpen;
    this.#name = "";
    this.#bad = false;
    this.#nParams = 0;
    this.#state = "name";
  }

  /** Inside a call: the next argument, or the call's end. */
  #params(b: string): boolean {
    const s = this.spec;
    const t = b.trimStart();
    if (t === "") return false;
    const lead = b.length - t.length;
    if (t.startsWith(s.callClose)) {
      this.#raw += b.slice(0, lead + s.callClose.length);
      this.#buf = t.slice(s.callClose.length);
      this.ev.args(this.#nParams === 0 ? "{}" : "}");
      this.ev.finish();
      this.#state = s.block ? "block" : "text";
      return true;
    }
    if (!t.startsWith(s.keyOpen)) {
      if (s.keyOpen.startsWith(t) || s.callClose.startsWith(t)) return false;
      // garbage between arguments: skip up to the next tag
      const j = t.indexOf("<", 1);
      if (j < 0) return false;
      this.#raw += b.slice(0, lead + j);
      this.#buf = t.slice(j);
      return true;
    }
    const k = t.indexOf(s.keyClose, s.keyOpen.length);
    if (k < 0) return false;
    const key = t.slice(s.keyOpen.length, k).trim();
    let rest = t.slice(k + s.keyClose.length);
    if (s.valueOpen !== "") {
      const r = rest.trimStart();
      if (!r.startsWith(s.valueOpen)) {
        if (s.valueOpen.startsWith(r)) return false;
        // a key without a value: skip the key
        this.#raw += b.slice(0, b.length - rest.length);
        this.#buf = rest;
        return true;
      }
      rest = r.slice(s.valueOpen.length);
    }
    const v = rest.indexOf(s.valueClose);
    if (v < 0) return false;
    const value = rest.slice(0, v);
    const props = this.ev.tool(this.#name)?.parameters?.properties as
      | Record<string, unknown>
      | undefined;
    const json = coderValueJson(value, props?.[key]);
    this.ev.args(`${this.#nParams === 0 ? "{" : ","}${JSON.stringify(key)}:${json}`);
    this.#nParams++;
    const after = rest.slice(v + s.valueClose.length);
    this.#raw += b.slice(0, b.length - after.length);
    this.#buf = after;
    return true;
  }

  /** End of generation: flushes what is held back. */
  end(): void {
    const b = this.#buf;
    this.#buf = "";
    switch (this.#state) {
      case "text":
      case "block":
        this.ev.content(b);
        return;
      case "params":
        this.ev.args(this.#nParams === 0 ? "{}" : "}");
        this.ev.finish("the call was cut off");
        return;
      default:
        this.ev.content(this.#raw + b);
    }
  }
}
