/**
 * Stop strings over streamed text.
 *
 * Generation produces text in pieces (one decoded token at a time). A stop string can span
 * several pieces, so text may only be emitted once it can no longer be the start of a stop
 * string. {@link StopMatcher} takes the pieces and returns what is safe to emit now, holding
 * back the longest suffix that is a prefix of some stop string. When a stop string appears,
 * it returns the text before it and reports which one matched; the stop string itself and
 * anything after it are dropped (OpenAI's behaviour: `stop` sequences are not returned).
 *
 * Matching is exact on UTF-16 code units (no Unicode normalization, case-sensitive). A piece
 * that ends inside a surrogate pair never makes the matcher emit half a character.
 *
 * Not handled here, by design: the end-of-generation tokens (EOS/EOT, matched on token ids by
 * the engine before decoding) and `max_tokens` (the caller counts tokens and, when the limit
 * is reached, calls {@link StopMatcher.flush} to release the held-back text and reports
 * `finish_reason: "length"`).
 *
 * ```ts
 * const m = new StopMatcher(["\nUser:"]);
 * for (const piece of pieces) {
 *   const { text, stopped } = m.push(piece);
 *   emit(text);
 *   if (stopped) break; // finish_reason "stop"
 * }
 * emit(m.flush()); // end of stream (EOS or max tokens): nothing more can match
 * ```
 *
 * @module
 */

/** What {@link StopMatcher.push} returns. */
export interface StopResult {
  /** Text safe to emit now (before any stop string). */
  text: string;
  /** True when a stop string matched: generation must stop. */
  stopped: boolean;
  /** The stop string that matched, when `stopped`. */
  stop?: string;
}

/** Finds stop strings in streamed text; one per generated sequence. */
export class StopMatcher {
  /** The stop strings (empty strings dropped, duplicates removed). */
  readonly stops: readonly string[];
  #maxLen: number;
  #held = "";
  #stop: string | undefined;

  /** Builds a matcher for `stops`; with none, pushes pass through (whole characters only). */
  constructor(stops: readonly string[]) {
    this.stops = [...new Set(stops.filter((s) => s.length > 0))];
    this.#maxLen = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** The stop string that matched, once one has. */
  get stop(): string | undefined {
    return this.#stop;
  }

  /** The text held back so far (a possible start of a stop string). */
  get held(): string {
    return this.#held;
  }

  /**
   * Adds a piece of generated text. Returns the text that can be emitted now; `stopped` and
   * `stop` are set when a stop string completed, and `text` then ends right before it (of all
   * the matches, the one that starts first wins; at the same start, the longest). After a
   * stop, further pushes return empty text and the same `stop`.
   */
  push(delta: string): StopResult {
    if (this.#stop !== undefined) return { text: "", stopped: true, stop: this.#stop };
    const buf = this.#held + delta;
    // A match can start in the held text but cannot lie entirely inside it (it was checked).
    let at = -1;
    let which = "";
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length > which.length))) {
        at = i;
        which = s;
      }
    }
    if (at >= 0) {
      this.#stop = which;
      this.#held = "";
      return { text: buf.slice(0, at), stopped: true, stop: which };
    }
    let keep = this.#partialSuffix(buf);
    // Never emit the first half of a surrogate pair: its second half is in the next piece.
    const end = buf.length - keep;
    if (end > 0 && isHighSurrogate(buf.charCodeAt(end - 1))) keep++;
    this.#held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /**
   * Ends the stream (end-of-generation token, max tokens, cancellation): returns the held
   * text, which can no longer become a stop string. Empty after a stop.
   */
  flush(): string {
    const t = this.#held;
    this.#held = "";
    return t;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of a stop string. */
  #partialSuffix(buf: string): number {
    for (let len = Math.min(buf.length, this.#maxLen - 1); len > 0; len--) {
      const start = buf.length - len;
      for (const s of this.stops) {
        if (s.length > len && buf.startsWith(s.slice(0, len), start)) return len;
      }
    }
    return 0;
  }
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
