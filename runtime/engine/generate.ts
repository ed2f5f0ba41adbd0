/**
 * Text generation over a {@link Session}: prefill (reusing the longest cached prefix), then
 * sample token by token until an end-of-generation token, a stop string, `maxTokens`, the
 * end of the context, or an abort. Text is streamed through a UTF-8-safe detokenizer and a
 * stop-string matcher, so no broken character and no part of a stop string is ever emitted.
 */
import type { PieceSource } from "../tokenizer/detokenize.ts";
import { TextStreamDecoder } from "../tokenizer/detokenize.ts";
import { Sampler, type SamplingParams, type TokenLogprob } from "./sampling.ts";
import type { Session } from "./session.ts";
import { StopMatcher } from "./stop.ts";

/** What generation needs from a tokenizer. */
export interface GenerationTokenizer extends PieceSource {
  /** True for end-of-generation tokens (EOS, EOT, <|im_end|>, ...). */
  isEog(id: number): boolean;
}

/** Options of {@link generate}: sampling parameters plus limits. */
export interface GenerateOptions extends Partial<SamplingParams> {
  /** Most tokens to generate (default: until the context is full). */
  maxTokens?: number;
  /** Stop strings; the output ends before the first match. */
  stop?: readonly string[];
  /** Stop early (finish reason "abort"). */
  signal?: AbortSignal;
  /** Keep going past end-of-generation tokens (default false). */
  ignoreEos?: boolean;
}

/** Why generation ended. */
export type FinishReason = "stop" | "length" | "abort";

/** One generated token. */
export interface GeneratedToken {
  token: number;
  /** Text that became final with this token (may be "", or several characters). */
  text: string;
  logprob: number;
  top?: TokenLogprob[];
}

/** Totals of a finished generation. */
export interface GenerationResult {
  finishReason: FinishReason;
  /** The stop string that ended it, if any. */
  stop?: string;
  promptTokens: number;
  /** Prompt tokens whose KV entries were reused from the session cache. */
  cachedTokens: number;
  completionTokens: number;
  /** Seconds spent evaluating the prompt, and generating. */
  prefillSeconds: number;
  decodeSeconds: number;
}

/**
 * Evaluate `prompt` in `session`, reusing the longest prefix already cached; returns the
 * logits of the last prompt token and how many tokens were reused.
 */
export function prefill(session: Session, prompt: readonly number[]): {
  logits: Float32Array;
  cached: number;
} {
  if (prompt.length === 0) throw new RangeError("prompt has no tokens");
  const cache = session.tokens;
  let p = 0;
  while (p < cache.length && p < prompt.length && cache[p] === prompt[p]) p++;
  if (p === prompt.length) p--; // the last token must run again for its logits
  p = session.truncate(p); // a recurrent state resumes from a checkpoint at or before p
  return { logits: session.eval(prompt.slice(p), "last"), cached: p };
}

/**
 * Generate from `prompt` (token ids). Yields tokens with their text as they come; the
 * generator's return value is the {@link GenerationResult}.
 */
export async function* generate(
  session: Session,
  tokenizer: GenerationTokenizer,
  prompt: readonly number[],
  opts: GenerateOptions = {},
): AsyncGenerator<GeneratedToken, GenerationResult> {
  const sampler = new Sampler(opts);
  const decoder = new TextStreamDecoder(tokenizer);
  const stops = new StopMatcher(opts.stop ?? []);
  const t0 = performance.now();
  let { logits, cached } = prefill(session, prompt);
  const t1 = performance.now();
  const history: number[] = [...prompt];
  const max = opts.maxTokens ?? Infinity;
  let n = 0;
  let finish: FinishReason = "length";
  let stopString: string | undefined;
  while (true) {
    if (opts.signal?.aborted) {
      finish = "abort";
      break;
    }
    if (n >= max) break;
    const s = sampler.sample(logits, history);
    n++;
    history.push(s.token);
    if (!opts.ignoreEos && tokenizer.isEog(s.token)) {
      finish = "stop";
      const r = stops.push(decoder.flush());
      const rest = r.text + (r.stopped ? "" : stops.flush());
      if (rest) yield { token: s.token, text: rest, logprob: s.logprob, top: s.top };
      break;
    }
    const piece = decoder.push(s.token);
    const r = stops.push(piece);
    yield { token: s.token, text: r.text, logprob: s.logprob, top: s.top };
    if (r.stopped) {
      finish = "stop";
      stopString = r.stop;
      break;
    }
    if (session.position + 1 > session.nCtx || n >= max) {
      // context full or limit reached: flush what the decoder and matcher still hold
      const tail = stops.push(decoder.flush());
      const end = tail.stopped ? "" : stops.flush();
      if (tail.text + end) yield { token: -1, text: tail.text + end, logprob: 0 };
      finish = tail.stopped ? "stop" : "length";
      stopString = tail.stop;
      break;
    }
    logits = session.eval([s.token], "last");
    // let the event loop breathe (cancellation, other requests) between tokens
    await Promise.resolve();
  }
  return {
    finishReason: finish,
    stop: stopString,
    promptTokens: prompt.length,
    cachedTokens: cached,
    completionTokens: n,
    prefillSeconds: (t1 - t0) / 1000,
    decodeSeconds: (performance.now() - t1) / 1000,
  };
}
