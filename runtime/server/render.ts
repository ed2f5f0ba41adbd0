/**
 * Turning a conversation into prompt tokens: the chat template rendered (with a prefilled
 * assistant turn left open when asked), control-token text in messages kept as plain text,
 * and the tokenization. {@link PromptRenderer} does it on the calling thread;
 * {@link RenderPool} does it in a worker with its own copy of the tokenizer, so that a huge
 * prompt (megabytes of text take seconds to render and tokenize) never blocks the thread
 * that answers everyone else (`/health` included). The server renders conversations under
 * {@link OFFLOAD_CHARS} characters in place (a worker round trip costs more than they do)
 * and larger ones in the worker.
 *
 * @module
 */
import { startRenderWorker } from "../engine/workers.ts";
import { readGGUF } from "../gguf/reader.ts";
import {
  applyChatTemplate,
  type ChatMessage,
  chatTemplateFromGGUF,
  type ChatTool,
} from "../tokenizer/chat_template.ts";
import { TokenAttr, type Tokenizer, tokenizerFromGGUF } from "../tokenizer/tokenizer.ts";
import type { ToolDef } from "./_tools.ts";
import { badRequest, fromWire, type WireError } from "./errors.ts";

export { wireError } from "./errors.ts";

/** Conversations (or texts) with at least this many characters are rendered in the worker. */
export const OFFLOAD_CHARS = 256 * 1024;

/** A rendered prompt. */
export interface RenderedPrompt {
  /** Token ids. */
  prompt: number[];
  /** The prompt ends inside an opened reasoning block (`<think>` at its end). */
  forcedOpen: boolean;
}

/** Characters of text in `messages` (content strings and parts), cheaply. */
export function conversationChars(messages: ChatMessage[]): number {
  let n = 0;
  for (const m of messages) {
    const c = m.content as unknown;
    if (typeof c === "string") n += c.length;
    else if (Array.isArray(c)) { for (const p of c) n += String(p?.text ?? "").length; }
    for (const t of m.tool_calls ?? []) n += String(t.function.arguments ?? "").length;
  }
  return n;
}

/** Renders and tokenizes prompts for one model's tokenizer and template. */
export class PromptRenderer {
  readonly #tok: Tokenizer;
  readonly #template: string | undefined;
  readonly #bos: string;
  readonly #eos: string;
  /** Matches the text of any control token (kept plain text in messages). */
  readonly #controlRe: RegExp | null;

  /** A renderer for `tokenizer` and the chat `template`. */
  constructor(tokenizer: Tokenizer, template: string | undefined) {
    this.#tok = tokenizer;
    this.#template = template;
    this.#bos = tokenizer.bosId !== undefined ? tokenizer.tokenText(tokenizer.bosId) : "";
    this.#eos = tokenizer.eosId !== undefined ? tokenizer.tokenText(tokenizer.eosId) : "";
    const controls: string[] = [];
    for (let id = 0; id < tokenizer.nVocab; id++) {
      if (!(tokenizer.tokenAttr(id) & TokenAttr.CONTROL)) continue;
      const t = tokenizer.tokenText(id);
      if (t.length >= 2) controls.push(t);
    }
    controls.sort((a, b) => b.length - a.length);
    const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    this.#controlRe = controls.length > 0 ? new RegExp(controls.map(esc).join("|"), "g") : null;
  }

  /** Token ids of `text`. */
  tokenize(text: string, addSpecial = true, parseSpecial = true): number[] {
    return this.#tok.encode(text, { addSpecial, parseSpecial });
  }

  /**
   * The rendered chat prompt. With `prefill`, the last (assistant) message is left open for
   * the model to continue: rendered without a generation prompt, and cut right after its text.
   */
  render(
    messages: ChatMessage[],
    tools: ToolDef[],
    kwargs?: Record<string, unknown>,
    prefill = false,
  ): string {
    if (!this.#template) {
      throw badRequest("This model has no chat template; use /v1/completions", "messages");
    }
    const chatTools: ChatTool[] = tools.map((t) => ({
      type: "function",
      function: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        parameters: t.parameters,
      },
    }));
    const opts = {
      tools: chatTools.length > 0 ? chatTools : null,
      addGenerationPrompt: !prefill,
      bosToken: this.#bos,
      eosToken: this.#eos,
      extra: kwargs,
    };
    if (prefill) {
      const last = String(messages[messages.length - 1].content ?? "").trimEnd();
      const full = applyChatTemplate(this.#template, messages, opts);
      const at = last ? full.lastIndexOf(last) : -1;
      if (at >= 0) return full.slice(0, at + last.length);
      opts.addGenerationPrompt = true;
    }
    return applyChatTemplate(this.#template, messages, opts);
  }

  /** Renders and tokenizes a conversation (see the module doc). */
  prompt(
    messages: ChatMessage[],
    tools: ToolDef[],
    kwargs?: Record<string, unknown>,
    prefill = false,
  ): RenderedPrompt {
    const sh = this.#shieldControls(messages);
    const text = this.render(sh.messages, tools, kwargs, prefill);
    return {
      prompt: this.#tokenizeShielded(text, sh.shielded),
      // the prompt opens a reasoning block itself (DeepSeek, Qwen3-2507 thinking templates)
      forcedOpen: /<think>\s*$/.test(text),
    };
  }

  /**
   * Messages with the control-token texts in their content replaced by private-use
   * placeholders, and the texts they stand for (tokenized as plain text, so `<|im_end|>`
   * typed by a user cannot close a turn: prompt injection).
   */
  #shieldControls(messages: ChatMessage[]): { messages: ChatMessage[]; shielded: string[] } {
    const re = this.#controlRe;
    const shielded: string[] = [];
    if (!re) return { messages, shielded };
    const shield = (text: string) =>
      text.replace(re, (m) => {
        shielded.push(m);
        return `\uE000${shielded.length - 1}\uE001`;
      });
    const out = messages.map((m) => {
      if (typeof m.content === "string" && m.content.length > 0) {
        re.lastIndex = 0;
        if (re.test(m.content)) return { ...m, content: shield(m.content) };
      }
      return m;
    });
    return { messages: out, shielded };
  }

  #tokenizeShielded(text: string, shielded: string[]): number[] {
    if (shielded.length === 0) return this.tokenize(text, false, true);
    const out: number[] = [];
    const re = /\uE000(\d+)\uE001/g;
    let at = 0;
    for (const m of text.matchAll(re)) {
      if (m.index! > at) out.push(...this.tokenize(text.slice(at, m.index), false, true));
      out.push(...this.tokenize(shielded[Number(m[1])], false, false));
      at = m.index! + m[0].length;
    }
    if (at < text.length) out.push(...this.tokenize(text.slice(at), false, true));
    return out;
  }
}

/** A job for the render worker. */
export type RenderJob =
  | { op: "tokenize"; text: string; addSpecial: boolean; parseSpecial: boolean }
  | {
    op: "prompt";
    messages: ChatMessage[];
    tools: ToolDef[];
    kwargs?: Record<string, unknown>;
    prefill: boolean;
  };

/** Runs a job on a renderer (the worker's side). */
export function runJob(r: PromptRenderer, job: RenderJob): unknown {
  if (job.op === "tokenize") return r.tokenize(job.text, job.addSpecial, job.parseSpecial);
  return r.prompt(job.messages, job.tools, job.kwargs, job.prefill);
}

/** A worker that renders and tokenizes for the model at `path` (loaded on first use). */
export class RenderPool {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();
  #next = 0;

  /** Starts the worker for the GGUF at `path`. */
  constructor(path: string) {
    this.#worker = startRenderWorker();
    this.#worker.onmessage = (e: MessageEvent) => {
      const m = e.data as { id: number; value?: unknown; error?: WireError };
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.error) p.fail(fromWire(m.error));
      else p.ok(m.value);
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault?.();
      for (const p of this.#pending.values()) p.fail(new Error(`render worker: ${e.message}`));
      this.#pending.clear();
    };
    this.#worker.postMessage({ init: path });
  }

  /** Runs `job` in the worker. */
  run(job: RenderJob): Promise<unknown> {
    const id = ++this.#next;
    return new Promise((ok, fail) => {
      this.#pending.set(id, { ok, fail });
      this.#worker.postMessage({ id, job });
    });
  }

  /** Ends the worker. */
  close(): void {
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.fail(new Error("render worker closed"));
    this.#pending.clear();
  }
}

/** The renderer of the GGUF at `path` (for the worker). */
export function rendererOf(path: string): PromptRenderer {
  const gguf = readGGUF(path);
  return new PromptRenderer(tokenizerFromGGUF(gguf), chatTemplateFromGGUF(gguf.kv) ?? undefined);
}
