/**
 * The one run loop of a chat request, shared by the OpenAI and Anthropic routes (streamed
 * and not; the batch runner goes through the same routes): start the run, feed the generated
 * text through the output parser and the {@link CallGate}, hand each step's events to the
 * route, and finish with the totals and the finish reason.
 *
 * ## Tool calls cut short are never calls
 *
 * A tool call is reported only once it is complete and its arguments are a JSON object: the
 * gate holds a call's events until the parser closes it, then releases the whole call at
 * once (streaming clients get a call in one delta). A call cut by `max_tokens` (or a stop
 * string, or malformed) is dropped, and so is the raw call markup the parser would otherwise
 * hand back as content at the end. Indexes stay contiguous from 0. A run that ends by length
 * reports it (`length` / `max_tokens`) even when complete calls came before the cut.
 *
 * Legacy completions (`/v1/completions`) run through the same loop with {@link plainText},
 * a parser that hands every piece of text on as content.
 *
 * @module
 */
import type { EngineEvent, EngineLogprob } from "../engine/engine.ts";
import type { OutputEvent, OutputParser } from "./_tools.ts";
import { engineError } from "./errors.ts";
import type { ChatPlan } from "./prompt.ts";
import { OutputAccumulator, type Run, type ServerContext, startRun } from "./sse.ts";

/** Text that opens a tool call in some family's syntax: left over at the end, it is a cut call. */
const CALL_MARKERS = [
  "<tool_call>",
  "<function=",
  "[TOOL_CALLS]",
  "<｜tool▁calls▁begin｜>",
  "<｜tool▁call▁begin｜>",
  "<|tool_calls_section_begin|>",
  "<|tool_call_begin|>",
  "<minimax:tool_call>",
];

function isJsonObject(text: string): boolean {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** Passes parser events on, holding each tool call until it is complete (see the module doc). */
export class CallGate {
  readonly #parser: OutputParser;
  readonly #held = new Map<number, { id: string; name: string }>();
  #next = 0;
  /** Calls (or call markup) dropped because they were cut off or malformed. */
  dropped = 0;

  /** Gates `parser`'s events. */
  constructor(parser: OutputParser) {
    this.#parser = parser;
  }

  /** Events for a piece of generated text. */
  push(text: string): OutputEvent[] {
    return this.#filter(this.#parser.push(text), false);
  }

  /** Events at the end of generation (cut calls dropped). */
  end(): OutputEvent[] {
    const out = this.#filter(this.#parser.end(), true);
    this.dropped += this.#held.size;
    this.#held.clear();
    return out;
  }

  #filter(events: OutputEvent[], atEnd: boolean): OutputEvent[] {
    const out: OutputEvent[] = [];
    for (const e of events) {
      switch (e.type) {
        case "content": {
          let text = e.text;
          if (atEnd) {
            // what the parser flushes at the end is held-back text; a call opener in it is a
            // call that never closed
            const at = Math.min(
              ...CALL_MARKERS.map((m) => text.indexOf(m)).filter((i) => i >= 0),
            );
            if (Number.isFinite(at)) {
              text = text.slice(0, at).trimEnd();
              this.dropped++;
            }
          }
          if (text) out.push({ type: "content", text });
          break;
        }
        case "reasoning":
          out.push(e);
          break;
        case "tool_call_start":
          this.#held.set(e.index, { id: e.id, name: e.name });
          break;
        case "tool_call_args":
          break;
        case "tool_call_end": {
          const h = this.#held.get(e.index);
          this.#held.delete(e.index);
          if (!h || e.error !== undefined || !isJsonObject(e.arguments)) {
            this.dropped++;
            break;
          }
          const index = this.#next++;
          out.push(
            { type: "tool_call_start", index, id: h.id, name: h.name },
            { type: "tool_call_args", index, text: e.arguments },
            { type: "tool_call_end", index, arguments: e.arguments },
          );
          break;
        }
      }
    }
    return out;
  }
}

/** A parser for raw text (legacy completions): every piece is content, no calls. */
export function plainText(): OutputParser {
  return {
    push: (text) => text ? [{ type: "content", text }] : [],
    end: () => [],
  };
}

/** Why a chat run ended, API-neutral. */
export type ChatFinish = "length" | "tool_calls" | "stop";

/** One step of a chat run: the gated events of one token, and its logprobs if asked. */
export interface ChatStep {
  /** Parser events (content, reasoning, complete tool calls). */
  events: OutputEvent[];
  /** The token's logprob entry (with `wantLogprobs`). */
  lp?: { chosen: EngineLogprob; top: EngineLogprob[] };
}

/** A started chat run: iterate {@link ChatRun.steps}, then read the result. */
export class ChatRun {
  /** Content, reasoning and complete tool calls so far. */
  readonly acc: OutputAccumulator = new OutputAccumulator();
  /** The engine's done event (after the steps end normally). */
  done?: Extract<EngineEvent, { type: "done" }>;
  readonly #run: Run;
  readonly #gate: CallGate;
  readonly #ctx: ServerContext;

  private constructor(ctx: ServerContext, run: Run, parser: OutputParser) {
    this.#ctx = ctx;
    this.#run = run;
    this.#gate = new CallGate(parser);
  }

  /** Starts `plan` and waits for admission (throws the API error of a refusal). */
  static async start(
    ctx: ServerContext,
    plan: Pick<ChatPlan, "prompt" | "params" | "parser">,
    id: string,
    signal?: AbortSignal,
  ): Promise<ChatRun> {
    const run = await startRun(ctx, { id, prompt: plan.prompt, params: plan.params }, signal);
    return new ChatRun(ctx, run, plan.parser);
  }

  /** The admitted run (prompt and cached token counts). */
  get run(): Run {
    return this.#run;
  }

  /** Stop generating. */
  cancel(): void {
    this.#run.cancel();
  }

  /** Detach the request signal (streams cancel through their own abort hook). */
  release(): void {
    this.#run.release();
  }

  /**
   * The steps of the run; the last one carries the parser's final events. Throws the API
   * error of an engine error; ends without a final step when the run was aborted.
   */
  async *steps(): AsyncGenerator<ChatStep, void> {
    try {
      for await (const e of this.#run.events) {
        if (e.type === "token") {
          const events = this.acc.apply(this.#gate.push(e.text));
          yield e.lp ? { events, lp: e.lp } : { events };
        } else if (e.type === "done") this.done = e;
        else if (e.type === "error") throw engineError(e.code, e.message);
      }
      if (!this.done || this.done.finishReason === "abort") return;
      yield { events: this.acc.apply(this.#gate.end()) };
      this.#ctx.metrics.usage(this.done.usage);
    } finally {
      if (!this.done) this.#run.cancel();
      this.#run.release();
    }
  }

  /** Why the run ended: length first (a cut run), then tool calls, else stop. */
  finish(): ChatFinish {
    if (this.done?.finishReason === "length") return "length";
    return this.acc.calls.size > 0 ? "tool_calls" : "stop";
  }
}

/** Starts every run at once; if one is refused, the others are cancelled and it throws. */
export async function startAll(starts: (() => Promise<ChatRun>)[]): Promise<ChatRun[]> {
  const got = await Promise.allSettled(starts.map((s) => s()));
  const failed = got.find((g) => g.status === "rejected");
  if (!failed) return got.map((g) => (g as PromiseFulfilledResult<ChatRun>).value);
  for (const g of got) {
    if (g.status === "fulfilled") {
      g.value.cancel();
      g.value.release();
    }
  }
  throw failed.reason;
}
