/**
 * Whether to prefetch: the next-layer predictor (DESIGN.md §4) reads the experts it predicts
 * while the current layer computes. It pays for itself only where reads and compute really
 * overlap: on a machine whose cores are all busy computing, the I/O completion work steals
 * from the compute threads and the wrong guesses cost bandwidth, so it can lose. In `auto`
 * mode the controller measures instead of guessing: it alternates windows of decode steps
 * with and without prefetch, compares the time per token, keeps the faster (off unless on
 * wins by more than `margin`), and measures again every `retrial` steps, since the cache's
 * contents and the machine's load change.
 *
 * Only decode steps (one new token per sequence) are measured: prefill chunks cost per token
 * what they cost for other reasons.
 *
 * @module
 */

/** How prefetching is chosen. */
export type PrefetchMode = "auto" | "on" | "off";

/** Where the controller stands. */
export interface PrefetchState {
  mode: PrefetchMode;
  /** Prefetching in the next step. */
  active: boolean;
  /** The last decision of `auto` (null while the first trial runs). */
  decided: "on" | "off" | null;
  /** Seconds per token of the last trial, with and without prefetch. */
  onSecondsPerToken: number;
  offSecondsPerToken: number;
  /** Trials finished. */
  trials: number;
}

/** Options of a {@link PrefetchController}. */
export interface PrefetchOptions {
  /** Decode steps per window (default 8). */
  window?: number;
  /** Windows of each kind per trial (default 4). */
  rounds?: number;
  /** Steps between trials (default 2048). */
  retrial?: number;
  /** How much faster "on" must be to win (default 0.1: 10%; single runs vary by more than 3%). */
  margin?: number;
}

/** Chooses, step by step, whether sessions prefetch (see the module doc). */
export class PrefetchController {
  readonly mode: PrefetchMode;
  readonly #window: number;
  readonly #rounds: number;
  readonly #retrial: number;
  readonly #margin: number;
  #trialStep = 0; // steps into the current trial (-1: exploiting)
  #exploit = 0; // steps since the last decision
  #sum = [0, 0]; // seconds [off, on] in this trial
  #tok = [0, 0]; // tokens [off, on]
  #decided: "on" | "off" | null = null;
  #last = [0, 0];
  #trials = 0;

  constructor(mode: PrefetchMode = "auto", opts: PrefetchOptions = {}) {
    this.mode = mode;
    this.#window = Math.max(1, opts.window ?? 8);
    this.#rounds = Math.max(1, opts.rounds ?? 4);
    this.#retrial = Math.max(1, opts.retrial ?? 2048);
    this.#margin = opts.margin ?? 0.1;
  }

  /** Whether the next step prefetches. */
  get active(): boolean {
    if (this.mode !== "auto") return this.mode === "on";
    if (this.#trialStep < 0) return this.#decided === "on";
    // within a trial: windows alternate on, off, on, off, ...
    return Math.floor(this.#trialStep / this.#window) % 2 === 0;
  }

  /**
   * Report a step: `tokens` rows evaluated in `seconds`; `decode` when every sequence in it
   * added exactly one token (only those are measured).
   */
  record(tokens: number, seconds: number, decode: boolean): void {
    if (this.mode !== "auto" || !decode || tokens <= 0) return;
    if (this.#trialStep < 0) {
      if (++this.#exploit >= this.#retrial) {
        this.#trialStep = 0;
        this.#exploit = 0;
      }
      return;
    }
    const arm = this.active ? 1 : 0;
    this.#sum[arm] += seconds;
    this.#tok[arm] += tokens;
    if (++this.#trialStep < 2 * this.#rounds * this.#window) return;
    const off = this.#sum[0] / Math.max(1, this.#tok[0]);
    const on = this.#sum[1] / Math.max(1, this.#tok[1]);
    this.#decided = on < off * (1 - this.#margin) ? "on" : "off";
    this.#last = [off, on];
    this.#sum = [0, 0];
    this.#tok = [0, 0];
    this.#trials++;
    this.#trialStep = -1;
  }

  /** The controller's state, for statistics. */
  state(): PrefetchState {
    return {
      mode: this.mode,
      active: this.active,
      decided: this.#decided,
      onSecondsPerToken: this.#last[1],
      offSecondsPerToken: this.#last[0],
      trials: this.#trials,
    };
  }
}
