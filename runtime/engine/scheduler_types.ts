/**
 * The scheduler's protocol (runtime/engine/scheduler.ts): requests and their parameters,
 * the events a sequence emits, the model and options it is built from, and its counters.
 *
 * @module
 */
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { FinishReason } from "./generate.ts";
import type { Sampler, SampleResult, SamplingParams, TokenLogprob } from "./sampling.ts";
import type { Session } from "./session.ts";

/** Per-request state of a token constraint (grammar); see runtime/grammar. */
export interface SeqConstraint {
  /** Whether `tokenId` may come next. */
  accepts(tokenId: number): boolean;
  /** Consume `tokenId`. */
  advance(tokenId: number): void;
  /** Whether the constrained output is complete. */
  isComplete(): boolean;
}

/** Generation parameters of one sequence. */
export interface SeqParams extends Partial<SamplingParams> {
  /** Most tokens to generate (default: until the context is full). */
  maxTokens?: number;
  /** Stop strings; the output ends before the first match. */
  stop?: string[];
  /** Keep going past end-of-generation tokens. */
  ignoreEos?: boolean;
  /** A constraint specification, compiled by the scheduler's `compileConstraint`. */
  constraint?: unknown;
  /** Higher runs first when requests wait (default 0). */
  priority?: number;
  /** Prefix-cache affinity key (e.g. the client's session id). */
  affinity?: string;
  /**
   * Reuse a slot's cached prefix (default true). false evaluates the whole prompt from the
   * start, as llama.cpp's `cache_prompt: false` does.
   */
  cachePrompt?: boolean;
  /**
   * Member of a fork group: `size` requests with the same prompt and `group` key whose
   * prompt is evaluated once (see the module doc).
   */
  fork?: { group: string; size: number };
}

/** A request to generate from token ids. */
export interface SeqRequest {
  /** Caller-chosen unique id. */
  id: string;
  /** Prompt token ids. */
  prompt: number[];
  /** Parameters. */
  params: SeqParams;
}

/** Token counts and timings of a finished sequence. */
export interface SeqUsage {
  /** Prompt tokens. */
  promptTokens: number;
  /** Prompt tokens whose KV entries were reused from a slot's cache. */
  cachedTokens: number;
  /** Generated tokens (sampled, including a final end-of-generation token). */
  completionTokens: number;
  /** Milliseconds from admission to the first sampled token. */
  prefillMs: number;
  /** Milliseconds from the first sampled token to the end. */
  decodeMs: number;
  /** Milliseconds spent waiting in the queue. */
  queueMs: number;
}

/** Machine-readable error codes of {@link SeqEvent} errors. */
export type SeqErrorCode = "context_overflow" | "queue_full" | "bad_request" | "internal";

/** What the scheduler reports about a sequence. */
export type SeqEvent =
  | { type: "started"; id: string; slot: number; cachedTokens: number; promptTokens: number }
  | {
    type: "token";
    id: string;
    /** Token id (-1 for a final flush of held-back text). */
    token: number;
    /** Text that became final with this token. */
    text: string;
    logprob: number;
    top?: TokenLogprob[];
  }
  | { type: "done"; id: string; finishReason: FinishReason; stop?: string; usage: SeqUsage }
  | { type: "error"; id: string; code: SeqErrorCode; message: string };

/** What the scheduler needs from a model. */
export interface SchedulerModel {
  /** A new session with its own KV cache. */
  createSession(opts: { nCtx: number; checkpoints?: number }): Session;
  /** The tokenizer (detokenization and end-of-generation tokens). */
  readonly tokenizer: Tokenizer;
}

/** Options of a {@link Scheduler}. */
export interface SchedulerOptions {
  /** Sequences run together (slots); default 1. */
  parallel?: number;
  /** Context length of each slot. */
  nCtx: number;
  /** Most prompt tokens per sequence per step (default 128). */
  chunk?: number;
  /**
   * Most prompt tokens per sequence in a step where no sequence is decoding (default: chunk).
   * A model served through an expert cache reads every expert a step routes to once for all
   * of the step's tokens, so prompts alone take larger steps; with a sequence decoding, steps
   * stay at `chunk` so its tokens keep coming.
   */
  chunkAlone?: number;
  /** Most waiting requests before `queue_full` (default 64). */
  maxQueue?: number;
  /** Recurrent-state checkpoints per slot (hybrid models; default 4, 0 = no prefix reuse). */
  checkpoints?: number;
  /** Receives every event, in order per sequence. */
  onEvent(e: SeqEvent): void;
  /** Compiles a constraint spec to per-request state (needed for `params.constraint`). */
  compileConstraint?(spec: unknown): SeqConstraint;
  /** Samples with a constraint applied (rejection sampling over the masked distribution). */
  sampleConstrained?(
    sampler: Sampler,
    logits: Float32Array,
    history: ArrayLike<number>,
    constraint: SeqConstraint,
  ): SampleResult;
}

/** Totals since the scheduler started. */
export interface SchedulerStats {
  /** Requests admitted to a slot. */
  admitted: number;
  /** Prompt tokens evaluated (not counting reused ones). */
  promptTokensEvaluated: number;
  /** Prompt tokens reused from slot caches. */
  promptTokensCached: number;
  /** Tokens sampled. */
  tokensGenerated: number;
  /** Forward steps (evalBatch calls). */
  steps: number;
  /** Sum of sequences over steps (mean batch = this / steps). */
  stepSequences: number;
  /** Milliseconds spent in forward steps. */
  stepMs: number;
  /** Requests waiting now. */
  queued: number;
  /** Sequences running now. */
  active: number;
}
