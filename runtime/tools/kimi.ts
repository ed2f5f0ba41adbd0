/**
 * Kimi K2 tool calls (K2-Instruct, K2-Thinking; GGUF `deepseek2`), as their chat templates
 * render them:
 *
 * ```
 * <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>
 * {json}<|tool_call_end|>...<|tool_calls_section_end|>
 * ```
 *
 * (no newlines; IDX counts the calls of the conversation). The model's `functions.NAME:IDX`
 * is not kept as the call id: ids get the usual `call_` form, which every client accepts, and
 * the templates rebuild theirs from a counter. As llama.cpp does, a call may come without the
 * section markers, and without `<|tool_call_end|>` before the next call or the section's end.
 * Reasoning (K2-Thinking) is `<think>...</think>`.
 *
 * @module
 */

import { findMarker, heldBack } from "./_scan.ts";
import { ArgsStream, type ContentSink, type Emitter } from "./mod.ts";

/** Kimi K2's markers. */
export const KIMI = {
  sectionBegin: "<|tool_calls_section_begin|>",
  sectionEnd: "<|tool_calls_section_end|>",
  callBegin: "<|tool_call_begin|>",
  argsBegin: "<|tool_call_argument_begin|>",
  callEnd: "<|tool_call_end|>",
} as const;

/** The tool name in a call head: `functions.NAME:IDX` (also `NAME:IDX` or `NAME`). */
export function kimiToolName(head: string): string {
  const m = /^(?:functions\.)?(.*?)(?::\d+)?$/.exec(head.trim());
  return m ? m[1] : head.trim();
}

type State = "text" | "section" | "head" | "args" | "trailer";

const MAX_HEAD = 256;

class KimiCalls implements ContentSink {
  #buf = "";
  #state: State = "text";
  #raw = "";
  #args: ArgsStream | null = null;
  #bad = false;
  constructor(readonly ev: Emitter) {}

  push(text: string): void {
    this.#buf += text;
    while (this.#buf !== "" && this.#step()) { /* until it needs more text */ }
  }

  #step(): boolean {
    const b = this.#buf;
    switch (this.#state) {
      case "text": {
        const ms = [KIMI.sectionBegin, KIMI.callBegin];
        const m = findMarker(b, ms);
        if (!m) {
          const hold = heldBack(b, ms);
          this.ev.content(b.slice(0, b.length - hold));
          this.#buf = b.slice(b.length - hold);
          return false;
        }
        this.ev.content(b.slice(0, m[0]));
        this.#buf = b.slice(m[0] + (m[1] === KIMI.sectionBegin ? m[1].length : 0));
        this.#state = "section";
        return true;
      }
      case "section": {
        const t = b.trimStart();
        if (t === "") return false;
        if (t.startsWith(KIMI.sectionEnd)) {
          this.#buf = t.slice(KIMI.sectionEnd.length);
          this.#state = "text";
        } else if (t.startsWith(KIMI.callBegin)) {
          this.#buf = t.slice(KIMI.callBegin.length);
          this.#raw = KIMI.callBegin;
          this.#bad = false;
          this.#state = "head";
        } else if (KIMI.sectionEnd.startsWith(t) || KIMI.callBegin.startsWith(t)) return false;
        else {
          this.#buf = t;
          this.#state = "text";
        }
        return true;
      }
      case "head": {
        const i = b.indexOf(KIMI.argsBegin);
        if (i < 0) {
          if (b.length <= MAX_HEAD) return false;
          this.#bad = true;
          this.#state = "trailer";
          return true;
        }
        const name = kimiToolName(b.slice(0, i));
        this.#raw += b.slice(0, i + KIMI.argsBegin.length);
        this.#buf = b.slice(i + KIMI.argsBegin.length);
        if (name !== "" && this.ev.known(name)) {
          this.ev.start(name);
          this.#args = new ArgsStream(this.ev);
          this.#state = "args";
        } else {
          this.#bad = true;
          this.#state = "trailer";
        }
        return true;
      }
      case "args": {
        const rest = this.#args!.feed(b);
        this.#raw += b.slice(0, b.length - (rest?.length ?? 0));
        if (rest === null) {
          this.#buf = "";
          return false;
        }
        this.#buf = rest;
        this.#state = "trailer";
        return true;
      }
      case "trailer":
        return this.#trailer(b);
    }
  }

  /** After the arguments (or in a malformed call): up to `<|tool_call_end|>`. */
  #trailer(b: string): boolean {
    const ms = [KIMI.callEnd, KIMI.callBegin, KIMI.sectionEnd];
    const m = findMarker(b, ms);
    if (!m) {
      const hold = heldBack(b, ms);
      this.#raw += b.slice(0, b.length - hold);
      this.#buf = b.slice(b.length - hold);
      return false;
    }
    // the end marker is optional: a next call or the section's end also closes the call
    const used = m[0] + (m[1] === KIMI.callEnd ? m[1].length : 0);
    this.#raw += b.slice(0, used);
    this.#buf = b.slice(used);
    if (this.#bad) this.ev.content(this.#raw);
    else this.#args!.finish(false);
    this.#args = null;
    this.#state = "section";
    return true;
  }

  end(): void {
    const b = this.#buf;
    this.#buf = "";
    switch (this.#state) {
      case "text":
        this.ev.content(b);
        return;
      case "section":
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

/** The streaming parser of Kimi K2 tool calls. */
export function kimiCalls(ev: Emitter): ContentSink {
  return new KimiCalls(ev);
}
