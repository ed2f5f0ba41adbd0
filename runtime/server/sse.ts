/**
 * What both APIs share when answering a generation: the server context, starting a run
 * (waiting until the engine admits it, so that errors such as a full queue still get a
 * proper status instead of a broken stream), cancelling on disconnect, and accumulating the
 * output parser's events into content, reasoning and tool calls.
 *
 * Disconnects: before the response starts, the request's `signal` cancels (in Deno it also
 * fires when a response completes, which is harmless then: the run is over). Once an SSE
 * stream runs, Hono's `stream.onAbort` cancels, as DESIGN.md §3 asks.
 *
 * @module
 */
import type { Engine, EngineEvent, EngineRequest } from "../engine/engine.ts";
import type { FinishReason } from "../engine/generate.ts";
import type { SeqUsage } from "../engine/scheduler.ts";
import type { OutputEvent } from "./_tools.ts";
import { ApiError, engineError } from "./errors.ts";
import type { Metrics } from "./metrics.ts";
import type { ModelFrontend } from "./prompt.ts";

/** What route handlers share. */
export interface ServerContext {
  /** The engine worker. */
  engine: Engine;
  /** Tokenizer, template, tool conventions. */
  fe: ModelFrontend;
  /** Counters. */
  metrics: Metrics;
  /** Most waiting requests before 503. */
  maxQueue: number;
  /** Milliseconds between keep-alives on a quiet stream (default {@link HEARTBEAT_MS}). */
  heartbeatMs?: number;
}

/** Milliseconds between keep-alives on a quiet stream (SPOOL_HEARTBEAT_MS overrides). */
export const HEARTBEAT_MS: number = Number(
  (globalThis as { process?: { env?: Record<string, string> } }).process?.env
    ?.SPOOL_HEARTBEAT_MS,
) || 15000;

/**
 * Keep a stream alive while it has nothing to say: a prompt of thousands of tokens on a
 * model paged from disk can take minutes to prefill, and clients and proxies cut quiet
 * connections (undici, under the Node SDKs, after 300 s without a byte). Calls `ping` every
 * `ms` until the stream is closed or aborted: an SSE comment for OpenAI (clients skip it),
 * a `ping` event for Anthropic (part of its stream).
 */
export function heartbeat(
  stream: { closed: boolean; aborted: boolean },
  ping: () => Promise<unknown>,
  ms: number = HEARTBEAT_MS,
): void {
  const t = setInterval(() => {
    if (stream.closed || stream.aborted) clearInterval(t);
    else ping().catch(() => clearInterval(t));
  }, ms);
}

/** A random id with `prefix` (e.g. "chatcmpl-"). */
export function newId(prefix: string): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** An admitted run. */
export interface Run {
  /** Request id. */
  id: string;
  /** Prompt tokens reused from the prefix cache. */
  cachedTokens: number;
  /** Prompt tokens. */
  promptTokens: number;
  /** The rest of the events (tokens, then done or error). */
  events: AsyncGenerator<EngineEvent, void>;
  /** Stop generating (the events end with a done/abort). */
  cancel(): void;
  /** Detach the request signal. */
  release(): void;
}

/** Throws the 503 (Anthropic: 529) of a full queue, before a stream starts. */
export function checkQueue(ctx: ServerContext): void {
  const { engine } = ctx;
  if (engine.inFlight >= engine.info.parallel + ctx.maxQueue) {
    throw new ApiError(503, "overloaded_error", "The server is busy: the queue is full", {
      code: "queue_full",
      retryAfter: 1,
    });
  }
}

/**
 * Start `req` and wait for admission. Throws {@link ApiError} for a full queue (503 with
 * retry-after), a prompt that does not fit (400), or another engine error.
 */
export async function startRun(
  ctx: ServerContext,
  req: EngineRequest,
  signal?: AbortSignal,
): Promise<Run> {
  const { engine } = ctx;
  checkQueue(ctx);
  const events = engine.run(req);
  const cancel = () => engine.cancel(req.id);
  signal?.addEventListener("abort", cancel, { once: true });
  const release = () => signal?.removeEventListener("abort", cancel);
  const first = await events.next();
  if (first.done || first.value.type !== "started") {
    release();
    const e = first.value;
    if (e && e.type === "error") throw engineError(e.code, e.message);
    throw new ApiError(499 as number, "invalid_request_error", "Request cancelled");
  }
  return {
    id: req.id,
    cachedTokens: first.value.cachedTokens,
    promptTokens: first.value.promptTokens,
    events,
    cancel,
    release,
  };
}

/** One tool call being assembled. */
export interface ToolCallState {
  /** Call id. */
  id: string;
  /** Function name. */
  name: string;
  /** Argument JSON text streamed so far. */
  streamed: string;
  /** The final argument JSON (when ended). */
  arguments?: string;
}

/** Accumulates output-parser events. */
export class OutputAccumulator {
  /** Content text. */
  content = "";
  /** Reasoning text. */
  reasoning = "";
  /** Tool calls by index. */
  readonly calls = new Map<number, ToolCallState>();

  /** Apply `events`, returning them (for streaming). */
  apply(events: OutputEvent[]): OutputEvent[] {
    for (const e of events) {
      switch (e.type) {
        case "content":
          this.content += e.text;
          break;
        case "reasoning":
          this.reasoning += e.text;
          break;
        case "tool_call_start":
          this.calls.set(e.index, { id: e.id, name: e.name, streamed: "" });
          break;
        case "tool_call_args": {
          const c = this.calls.get(e.index);
          if (c) c.streamed += e.text;
          break;
        }
        case "tool_call_end": {
          const c = this.calls.get(e.index);
          if (c) c.arguments = e.arguments;
          break;
        }
      }
    }
    return events;
  }

  /** Completed tool calls in index order (arguments: the final JSON, else what streamed). */
  toolCalls(): { index: number; id: string; name: string; arguments: string }[] {
    return [...this.calls].sort((a, b) => a[0] - b[0]).map(([index, c]) => ({
      index,
      id: c.id,
      name: c.name,
      arguments: c.arguments ?? c.streamed,
    }));
  }
}

/** The tail of a tool call's arguments not yet streamed (when its end event completes it). */
export function argumentsTail(c: ToolCallState | undefined, final: string): string {
  if (!c) return "";
  return final.startsWith(c.streamed) ? final.slice(c.streamed.length) : "";
}

/** Totals of a finished run. */
export interface RunResult {
  /** Why it ended. */
  finishReason: FinishReason;
  /** The stop string, if one matched. */
  stop?: string;
  /** Token counts. */
  usage: SeqUsage;
}

/** Record a finished run's usage. */
export function recordUsage(metrics: Metrics, usage: SeqUsage): void {
  metrics.usage(usage);
}
