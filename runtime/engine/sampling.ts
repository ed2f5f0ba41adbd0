/**
 * Token sampling: llama.cpp's default sampler chain, a seeded PRNG that gives the same tokens
 * in Deno and Bun, and logprobs.
 *
 * ## The chain
 *
 * The stages run in the order of llama.cpp's `common_sampler_init` (common/sampling.cpp) with
 * the default sampler list, and each stage follows `src/llama-sampling.cpp`:
 *
 * 1. **logit bias**: `l += bias` (llama.cpp adds the logit-bias sampler before the list, so it
 *    runs before the penalties; a bias of `-Infinity` bans a token).
 * 2. **penalties** over the last `repeatLastN` tokens of `history`, for each distinct token
 *    with `count` occurrences there: `l = l <= 0 ? l * repeatPenalty : l / repeatPenalty`, then
 *    `l -= count * frequencyPenalty + presencePenalty` (OpenAI's definition of the two additive
 *    penalties). Done in float32 arithmetic, step by step, like llama.cpp.
 * 3. **top-k**: keep the `topK` highest logits (0 disables; ties keep the lower id).
 * 4. **top-p**: softmax over the remaining candidates (temperature not yet applied), sort by
 *    probability, keep the shortest prefix whose cumulative probability is `>= topP`
 *    (1 disables).
 * 5. **min-p**: keep candidates with `p >= minP * p_max`, i.e. `l >= l_max + ln(minP)`
 *    (0 disables).
 * 6. **temperature**: `l /= temperature`; 0 means greedy (argmax, ties to the lowest id, no
 *    randomness, the PRNG is not advanced).
 * 7. **dist**: softmax over the candidates, draw `u` in [0, 1) from the PRNG and take the first
 *    candidate whose running probability sum exceeds `u`.
 *
 * Differences from llama.cpp, all deliberate: sums and softmax run in float64 (llama.cpp uses
 * float32 `expf` and a float32 running sum in top-p), so a case that sits exactly on a top-p
 * or min-p boundary can round the other way; the PRNG is splitmix64, not mt19937, so a seed
 * gives different (but reproducible) tokens than llama.cpp.
 *
 * Candidate order for the draw (this decides which token a given `u` maps to): when any
 * truncation stage is active (`0 < topK < nVocab`, `topP < 1` or `minP > 0`) the candidates
 * are sorted by logit, descending, ties by ascending id; otherwise all tokens in id order.
 *
 * ## Logprobs
 *
 * Reported logprobs are the log-softmax over the **whole vocabulary** of the logits after
 * logit bias and penalties, at temperature 1 and before top-k/top-p/min-p. They describe the
 * model's distribution with the caller's hard constraints applied (a banned token has
 * `-Infinity`), independent of the randomness knobs, so they are comparable across
 * temperatures. (llama.cpp's server reports by default, `post_sampling_probs: false`, the
 * softmax of the raw logits; this adds the bias and penalties to that.) The chosen token's
 * logprob and the `top` list use the same definition; `top` is sorted by logprob, descending,
 * ties by ascending id, and lists only tokens with a finite logit.
 *
 * ## Defaults
 *
 * {@link LLAMA_DEFAULTS} are llama.cpp's `common_params_sampling` defaults (temp 0.8, top-k 40,
 * top-p 0.95, min-p 0.05, repeat penalty 1.0 over the last 64 tokens). {@link OPENAI_DEFAULTS}
 * are the OpenAI API's (temperature 1, top_p 1, no top-k, no min-p, no penalties). `new
 * Sampler()` uses the llama.cpp ones: it is what users of a local runtime expect from a CLI.
 * The OpenAI-compatible server should start from {@link OPENAI_DEFAULTS} and overlay the
 * request, so that a request without `temperature` means what it means at OpenAI.
 *
 * ## Performance
 *
 * No full sort per token. One pass over the vocabulary finds the max and keeps a bounded heap
 * for top-k and the top-N logprobs; a second sums exp(l - max) for the normalizer. top-p
 * without top-k sorts only the tokens above an adaptive logit threshold (widened until they
 * hold the mass). `exp` is a 32-entry-per-octave table plus a degree-4 polynomial (relative
 * error < 1e-11) built from IEEE `+ - * /` and `sqrt` only, so it gives bit-identical
 * results in every engine (unlike `Math.exp`) and is about 4 times faster in V8. Measured
 * at vocabulary 151936 on this 2-core machine: about 1 ms per token with the llama.cpp
 * defaults; 1.3 to 2 ms for the untruncated OpenAI defaults (the draw scans the vocabulary);
 * 12 to 35 ms in the worst case, top-p without top-k over near-flat logits (most of the
 * vocabulary must be sorted).
 *
 * @module
 */

/** Parameters of a {@link Sampler}. */
export interface SamplingParams {
  /** Softmax temperature; 0 = greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK: number;
  /** Nucleus: keep the smallest set with cumulative probability >= topP; 1 disables. */
  topP: number;
  /** Keep tokens with probability >= minP × the top probability; 0 disables. */
  minP: number;
  /** Repeat penalty (CTRL, with llama.cpp's fix for negative logits); 1 disables. */
  repeatPenalty: number;
  /** How many of the last history tokens the penalties look at; 0 disables, -1 = all. */
  repeatLastN: number;
  /** Subtracted once from the logit of every token present in the window (OpenAI). */
  presencePenalty: number;
  /** Subtracted `count` times from the logit of a token seen `count` times (OpenAI). */
  frequencyPenalty: number;
  /** PRNG seed (taken mod 2^64); undefined = a random seed (see {@link Sampler.seed}). */
  seed?: number | bigint;
  /** Report the top-N logprobs with each token; 0 or undefined = none. */
  logprobs?: number;
  /** Added to the logits of the given token ids before everything else; -Infinity bans. */
  logitBias?: ReadonlyMap<number, number>;
}

/**
 * llama.cpp's defaults (`common_params_sampling`): temp 0.8, top-k 40, top-p 0.95,
 * min-p 0.05, repeat penalty 1.0 (off) over the last 64 tokens, presence and frequency 0.
 */
export const LLAMA_DEFAULTS: Readonly<SamplingParams> = Object.freeze({
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1.0,
  repeatLastN: 64,
  presencePenalty: 0,
  frequencyPenalty: 0,
});

/**
 * The OpenAI API's defaults: temperature 1, top_p 1, and no top-k, min-p or penalties; the
 * whole vocabulary is sampled at the model's own distribution.
 */
export const OPENAI_DEFAULTS: Readonly<SamplingParams> = Object.freeze({
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repeatPenalty: 1.0,
  repeatLastN: 64,
  presencePenalty: 0,
  frequencyPenalty: 0,
});

/** One token with its logprob. */
export interface TokenLogprob {
  /** Token id. */
  token: number;
  /** Natural-log probability (see the module doc for the definition). */
  logprob: number;
}

/** What {@link Sampler.sample} returns. */
export interface SampleResult {
  /** The chosen token id. */
  token: number;
  /** Its logprob under the reported distribution (module doc). */
  logprob: number;
  /** The top-N tokens by logprob, when `logprobs` > 0. */
  top?: TokenLogprob[];
}

/** The final distribution the draw is made from, in draw order. */
export interface SamplingDistribution {
  /** Candidate token ids. */
  tokens: number[];
  /** Their probabilities after every stage, temperature included (sum 1). */
  probs: number[];
}

/** Machine-readable reason of a {@link SamplingError}. */
export type SamplingErrorCode =
  /** A parameter is out of range or of the wrong kind. */
  | "bad_param"
  /** The logits contain NaN or +Infinity, or are empty. */
  | "bad_logits"
  /** Every token is banned (all logits are -Infinity after bias and penalties). */
  | "no_candidates"
  /** A token id in the history or in the logit bias is not in [0, nVocab). */
  | "bad_token";

/** An error of the sampler, with a code and a message that says what and where. */
export class SamplingError extends Error {
  /** Why it failed. */
  readonly code: SamplingErrorCode;
  /** Builds the error. */
  constructor(code: SamplingErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SamplingError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// PRNG

const MASK64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;

/**
 * splitmix64 (Steele, Lea, Flood 2014; the seeder of xoshiro). 64-bit state, one output per
 * step; BigInt arithmetic, so Deno and Bun give the same stream. `nextDouble` uses the top 53
 * bits: `(x >> 11) * 2^-53`, in [0, 1).
 */
export class SplitMix64 {
  #state: bigint;
  /** Starts from `seed` mod 2^64. */
  constructor(seed: number | bigint) {
    this.#state = BigInt.asUintN(64, BigInt(seed));
  }
  /** The current state (the seed before the first call). */
  get state(): bigint {
    return this.#state;
  }
  /** The next 64-bit output. */
  nextU64(): bigint {
    this.#state = (this.#state + GOLDEN) & MASK64;
    let z = this.#state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }
  /** A double in [0, 1) from the top 53 bits of the next output. */
  nextDouble(): number {
    return Number(this.nextU64() >> 11n) * 2 ** -53;
  }
}

function randomSeed(): bigint {
  const b = new Uint32Array(2);
  crypto.getRandomValues(b);
  return (BigInt(b[0]) << 32n) | BigInt(b[1]);
}

// ---------------------------------------------------------------------------------------------
// exp

// 2^(-i/32) for i = 0..EXP_TABLE_SIZE: exact powers of two times 2^(-j/32), j = 0..31, the
// latter from repeated square roots of 2 (correctly rounded in every engine).
const EXP_MIN = -512; // exp(-512) = 4e-223: nothing a sum of probabilities can notice
const EXP_TABLE = (() => {
  const roots = [Math.SQRT2]; // 2^(1/2), 2^(1/4), ..., 2^(1/32)
  for (let i = 1; i < 5; i++) roots.push(Math.sqrt(roots[i - 1]));
  const frac = new Float64Array(32);
  for (let j = 0; j < 32; j++) {
    let v = 1;
    for (let b = 0; b < 5; b++) if (j & (16 >> b)) v *= roots[b];
    frac[j] = 1 / v;
  }
  const t = new Float64Array(Math.ceil((-EXP_MIN * 32) / Math.LN2) + 2);
  let pow = 1;
  for (let i = 0; i < t.length; i++) {
    if (i > 0 && (i & 31) === 0) pow *= 0.5;
    t[i] = pow * frac[i & 31];
  }
  return t;
})();
const K32 = 32 / Math.LN2;
const LN2_32 = Math.LN2 / 32;
// Adding and subtracting 1.5 * 2^52 rounds a double of magnitude < 2^51 to an integer.
const ROUND = 6755399441055744;
const C2 = 1 / 2, C3 = 1 / 6, C4 = 1 / 24;

/**
 * exp(x) for x <= 0 (NaN and x < -512 give 0): x = -(i/32) ln2 + r with |r| <= ln2 / 64, a
 * table for 2^(-i/32) and a degree-4 polynomial for e^r. Relative error < 1e-11. Only IEEE
 * + - * / and sqrt are used, so every engine gives the same bits (unlike `Math.exp`).
 */
export function expNonPositive(x: number): number {
  if (!(x >= EXP_MIN)) return 0;
  const n = (x * K32 + ROUND) - ROUND; // round(32 x / ln2), <= 0
  const r = x - n * LN2_32;
  return EXP_TABLE[-n | 0] * (1 + r * (1 + r * (C2 + r * (C3 + r * C4))));
}
const fexp = expNonPositive;

/** sum(exp((w[i] - m) * s)) over all i, with {@link expNonPositive} inlined (hot loop). */
function sumExp(w: Float32Array, m: number, s: number): number {
  const t = EXP_TABLE;
  let z = 0;
  for (let i = 0, n = w.length; i < n; i++) {
    const x = (w[i] - m) * s;
    if (x >= EXP_MIN) {
      const k = (x * K32 + ROUND) - ROUND;
      const r = x - k * LN2_32;
      z += t[-k | 0] * (1 + r * (1 + r * (C2 + r * (C3 + r * C4))));
    }
  }
  return z;
}

// ---------------------------------------------------------------------------------------------
// Sorting (logit descending, id ascending) without a comparator: pack both into one double.

const ID_BITS = 21; // vocabularies up to 2^21 = 2,097,152 tokens
const ID_SCALE = 2 ** ID_BITS;
const MAX_VOCAB = ID_SCALE;
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Key that sorts ascending as (value descending, id ascending). `v` must be a float32. */
function descKey(v: number, id: number): number {
  f32[0] = v + 0; // -0 -> +0
  const b = u32[0];
  const ordered = b & 0x80000000 ? ~b >>> 0 : (b | 0x80000000) >>> 0; // ascending with v
  return (0xffffffff - ordered) * ID_SCALE + id;
}

/** Sorts `keys[0..n)` ascending and writes the ids to `ids[0..n)`. */
function sortKeys(keys: Float64Array, n: number, ids: Int32Array): void {
  const view = keys.subarray(0, n);
  view.sort();
  for (let i = 0; i < n; i++) ids[i] = view[i] % ID_SCALE;
}

// ---------------------------------------------------------------------------------------------
// Penalties

/** The parameters {@link penalize} reads. */
export type PenaltyParams = Pick<
  SamplingParams,
  "repeatPenalty" | "repeatLastN" | "presencePenalty" | "frequencyPenalty" | "logitBias"
>;

/**
 * Applies the logit bias, then the repeat, presence and frequency penalties, in place, in
 * float32 arithmetic like llama.cpp. `counts` must be all zeros with room for every id; it
 * is left all zeros.
 */
function penalizeInPlace(
  work: Float32Array,
  history: ArrayLike<number>,
  p: PenaltyParams,
  counts: Int32Array,
  touched: number[],
): void {
  const n = work.length;
  if (p.logitBias) {
    for (const [id, bias] of p.logitBias) {
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new SamplingError(
          "bad_token",
          `Cannot apply logitBias: token id ${id} is not in [0, ${n})`,
        );
      }
      work[id] = work[id] + Math.fround(bias);
    }
  }
  const rp = Math.fround(p.repeatPenalty);
  const freq = Math.fround(p.frequencyPenalty);
  const pres = Math.fround(p.presencePenalty);
  const lastN = p.repeatLastN;
  if (lastN === 0 || (rp === 1 && freq === 0 && pres === 0)) return;
  const len = history.length;
  const start = lastN < 0 ? 0 : Math.max(0, len - lastN);
  touched.length = 0;
  for (let j = start; j < len; j++) {
    const t = history[j];
    if (!(t >= 0 && t < n) || !Number.isInteger(t)) {
      for (const u of touched) counts[u] = 0; // leave the scratch clean
      throw new SamplingError(
        "bad_token",
        `Cannot apply penalties: history[${j}] = ${t} is not a token id in [0, ${n})`,
      );
    }
    if (counts[t]++ === 0) touched.push(t);
  }
  for (const t of touched) {
    const c = counts[t];
    counts[t] = 0;
    let l = work[t];
    l = l <= 0 ? Math.fround(l * rp) : Math.fround(l / rp);
    const sub = Math.fround(Math.fround(c * freq) + pres); // count > 0 here
    work[t] = l - sub; // the store rounds to float32
  }
}

/**
 * Token `id`'s entry of {@link penalize}`(logits, history, params)`, bit for bit, without
 * copying the vocabulary (the history must hold valid token ids).
 */
export function penalizedLogit(
  logits: Float32Array,
  history: ArrayLike<number>,
  p: PenaltyParams,
  id: number,
): number {
  let l = logits[id];
  const bias = p.logitBias?.get(id);
  if (bias !== undefined) l = Math.fround(l + Math.fround(bias));
  const rp = Math.fround(p.repeatPenalty);
  const freq = Math.fround(p.frequencyPenalty);
  const pres = Math.fround(p.presencePenalty);
  const lastN = p.repeatLastN;
  if (lastN === 0 || (rp === 1 && freq === 0 && pres === 0)) return l;
  const len = history.length;
  let c = 0;
  for (let j = lastN < 0 ? 0 : Math.max(0, len - lastN); j < len; j++) if (history[j] === id) c++;
  if (c === 0) return l;
  l = l <= 0 ? Math.fround(l * rp) : Math.fround(l / rp);
  return Math.fround(l - Math.fround(Math.fround(c * freq) + pres));
}

/**
 * The logits after the logit bias and the repeat/presence/frequency penalties, as a new
 * array: the first stages of the chain, exposed for tests and callers that need the
 * penalized logits.
 */
export function penalize(
  logits: Float32Array,
  history: ArrayLike<number>,
  params: PenaltyParams,
): Float32Array {
  const out = new Float32Array(logits);
  penalizeInPlace(out, history, params, new Int32Array(logits.length), []);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sampler

function checkParams(p: SamplingParams): void {
  const bad = (name: string, v: unknown, want: string) =>
    new SamplingError("bad_param", `Invalid sampling parameter ${name} = ${String(v)}: ${want}`);
  const num = (name: keyof SamplingParams, v: number, ok: boolean, want: string) => {
    if (typeof v !== "number" || Number.isNaN(v) || !ok) throw bad(name, v, want);
  };
  num(
    "temperature",
    p.temperature,
    p.temperature >= 0 && p.temperature < Infinity,
    "a number >= 0",
  );
  num("topK", p.topK, Number.isInteger(p.topK) && p.topK >= 0, "an integer >= 0 (0 = off)");
  num("topP", p.topP, p.topP >= 0 && p.topP <= 1, "a number in [0, 1] (1 = off)");
  num("minP", p.minP, p.minP >= 0 && p.minP <= 1, "a number in [0, 1] (0 = off)");
  num("repeatPenalty", p.repeatPenalty, p.repeatPenalty > 0 && p.repeatPenalty < Infinity, "> 0");
  num(
    "repeatLastN",
    p.repeatLastN,
    Number.isInteger(p.repeatLastN) && p.repeatLastN >= -1,
    "an integer >= -1 (0 = off, -1 = whole history)",
  );
  num("presencePenalty", p.presencePenalty, Number.isFinite(p.presencePenalty), "finite");
  num("frequencyPenalty", p.frequencyPenalty, Number.isFinite(p.frequencyPenalty), "finite");
  if (p.logprobs !== undefined) {
    num("logprobs", p.logprobs, Number.isInteger(p.logprobs) && p.logprobs >= 0, "integer >= 0");
  }
  if (p.seed !== undefined) {
    const s = p.seed;
    if (typeof s === "number" ? !(Number.isSafeInteger(s) && s >= 0) : typeof s !== "bigint") {
      throw bad("seed", s, "a safe integer >= 0 or a bigint");
    }
  }
  if (p.logitBias !== undefined) {
    if (!(p.logitBias instanceof Map)) throw bad("logitBias", p.logitBias, "a Map<id, bias>");
    for (const [id, b] of p.logitBias) {
      if (!Number.isInteger(id) || id < 0) throw bad(`logitBias[${id}]`, id, "a token id >= 0");
      if (typeof b !== "number" || Number.isNaN(b) || b === Infinity) {
        throw bad(`logitBias[${id}]`, b, "a number (or -Infinity to ban)");
      }
    }
  }
}

const PARAM_KEYS: readonly (keyof SamplingParams)[] = [
  "temperature",
  "topK",
  "topP",
  "minP",
  "repeatPenalty",
  "repeatLastN",
  "presencePenalty",
  "frequencyPenalty",
  "seed",
  "logprobs",
  "logitBias",
];

/**
 * The working arrays of a {@link Sampler} (about 20 bytes per vocabulary entry). Samplers that
 * never sample at the same time (one thread, one step after another: the server's scheduler)
 * can share one, so a request allocates none of them.
 */
export class SamplerScratch {
  /** The vocabulary size the arrays are sized for. */
  n = 0;
  work = new Float32Array(0);
  counts = new Int32Array(0);
  touched: number[] = [];
  keys = new Float64Array(0);
  ids = new Int32Array(0);
  heapV = new Float64Array(0);
  heapI = new Int32Array(0);
}

/**
 * A sampler: the parameters, the PRNG state and scratch buffers of one sequence. Not shared
 * between sequences (its PRNG advances with every random draw). Use one per sequence; the
 * buffers are sized on the first call and reused.
 *
 * ```ts
 * const s = new Sampler({ ...OPENAI_DEFAULTS, temperature: 0.7, seed: 42, logprobs: 5 });
 * const { token, logprob, top } = s.sample(logits, tokens);
 * ```
 */
export class Sampler {
  /** The parameters, with defaults filled in (from {@link LLAMA_DEFAULTS}). */
  readonly params: Readonly<SamplingParams>;
  #seed: bigint;
  #rng: SplitMix64;

  #s: SamplerScratch;
  // Results of the scan: the max, its (lowest) id, the normalizer sum(exp(l - max)).
  #max = 0;
  #argmax = 0;
  #z = 0;
  // The top `#nTop` tokens (value desc, id asc) in `#heapI`: top-N logprobs and top-k.
  #nTop = 0;
  // Final candidates: `#all` = the whole vocabulary in id order; else `#ids[0..#nCand)`.
  #all = false;
  #nCand = 0;

  /**
   * Builds a sampler; missing (or undefined) parameters come from {@link LLAMA_DEFAULTS}, and
   * keys that are not sampling parameters are ignored. `scratch` lends working arrays
   * (default: its own).
   */
  constructor(
    params: Partial<SamplingParams> = {},
    scratch: SamplerScratch = new SamplerScratch(),
  ) {
    this.#s = scratch;
    // Only the known keys (callers pass wider option objects), and undefined = default.
    const p: SamplingParams = { ...LLAMA_DEFAULTS };
    const src = params as Record<string, unknown>;
    const dst = p as unknown as Record<string, unknown>;
    for (const k of PARAM_KEYS) if (src[k] !== undefined) dst[k] = src[k];
    checkParams(p);
    this.params = Object.freeze(p);
    this.#seed = p.seed === undefined ? randomSeed() : BigInt.asUintN(64, BigInt(p.seed));
    this.#rng = new SplitMix64(this.#seed);
  }

  /** The seed in use (the given one mod 2^64, or the random one drawn when none was given). */
  get seed(): bigint {
    return this.#seed;
  }

  /** Restarts the PRNG from `seed` (default: the sampler's seed). */
  reset(seed?: number | bigint): void {
    if (seed !== undefined) this.#seed = BigInt.asUintN(64, BigInt(seed));
    this.#rng = new SplitMix64(this.#seed);
  }

  /**
   * Picks the next token from `logits` (one per vocabulary entry, not modified), given the
   * token `history` (prompt and generated tokens, oldest first; only the last `repeatLastN`
   * matter, and only when a penalty is on). Advances the PRNG by one draw unless greedy.
   */
  sample(logits: Float32Array, history: ArrayLike<number> = []): SampleResult {
    const token = this.#run(logits, history, true);
    const lse = this.#max + Math.log(this.#z);
    const result: SampleResult = { token, logprob: this.#s.work[token] - lse };
    const nTop = Math.min(this.params.logprobs ?? 0, this.#nTop);
    if (nTop > 0) {
      const top: TokenLogprob[] = new Array(nTop);
      for (let i = 0; i < nTop; i++) {
        const id = this.#s.heapI[i];
        top[i] = { token: id, logprob: this.#s.work[id] - lse };
      }
      result.top = top;
    }
    return result;
  }

  /**
   * The distribution the next draw would use, after every stage (temperature included), in
   * draw order; does not advance the PRNG. Greedy gives the argmax with probability 1. For
   * tests and diagnostics: it allocates.
   */
  distribution(logits: Float32Array, history: ArrayLike<number> = []): SamplingDistribution {
    const greedy = this.#run(logits, history, false);
    if (greedy >= 0) return { tokens: [greedy], probs: [1] };
    const tokens: number[] = [];
    const weights: number[] = [];
    const w = this.#s.work;
    const invT = 1 / this.params.temperature;
    if (this.#all) {
      for (let i = 0; i < this.#s.n; i++) tokens.push(i);
    } else {
      for (let i = 0; i < this.#nCand; i++) tokens.push(this.#s.ids[i]);
    }
    let sum = 0;
    for (const t of tokens) {
      const e = fexp((w[t] - this.#max) * invT);
      weights.push(e);
      sum += e;
    }
    return { tokens, probs: weights.map((e) => e / sum) };
  }

  #ensure(n: number): void {
    if (n === 0) throw new SamplingError("bad_logits", "Cannot sample: the logits are empty");
    if (n > MAX_VOCAB) {
      throw new SamplingError("bad_logits", `Cannot sample: vocabulary ${n} > ${MAX_VOCAB}`);
    }
    if (n === this.#s.n) return;
    this.#s.n = n;
    this.#s.work = new Float32Array(n);
    this.#s.counts = new Int32Array(n);
    this.#s.keys = new Float64Array(n);
    this.#s.ids = new Int32Array(n);
  }

  /**
   * Runs the chain. With `draw`, returns the chosen token; without, returns the greedy token
   * or -1 and leaves the candidates in place for {@link distribution}.
   */
  #run(logits: Float32Array, history: ArrayLike<number>, draw: boolean): number {
    const p = this.params;
    const n = logits.length;
    this.#ensure(n);
    const w = this.#s.work;
    w.set(logits);
    penalizeInPlace(w, history, p, this.#s.counts, this.#s.touched);

    const greedy = p.temperature <= 0;
    const k = !greedy && p.topK > 0 && p.topK < n ? p.topK : 0;
    const nLogprobs = p.logprobs ?? 0;
    this.#scan(Math.min(Math.max(k, nLogprobs), n));

    if (greedy) return this.#argmax;

    // top-k
    if (k > 0) {
      this.#all = false;
      this.#nCand = Math.min(k, this.#nTop);
      // The heap ids are the sorted top; the candidates share `#ids` with the top-N list,
      // which is a prefix of the same order, so later truncation only shortens `#nCand`.
    } else {
      this.#all = true;
    }
    // top-p
    if (p.topP < 1) {
      if (this.#all) this.#collectTopP(p.topP, p.minP);
      else this.#topPSorted(p.topP);
    }
    // min-p
    if (p.minP > 0) {
      if (this.#all) this.#collectMinP(p.minP);
      else this.#minPSorted(p.minP);
    }
    if (!draw) return -1;
    return this.#dist(p.temperature);
  }

  /**
   * One pass for the max and lowest argmax, the logit check and a heap of the `h` best
   * (value desc, id asc) tokens with finite logits, left sorted in `#heapI[0..#nTop)`; a
   * second for the normalizer sum(exp(l - max)).
   */
  #scan(h: number): void {
    const w = this.#s.work;
    const n = w.length;
    if (this.#s.heapI.length < h) {
      this.#s.heapI = new Int32Array(h);
      this.#s.heapV = new Float64Array(h);
    }
    const hv = this.#s.heapV;
    const hi = this.#s.heapI;
    // Min-heap by goodness, root = worst; start full of sentinels worse than any real token.
    for (let i = 0; i < h; i++) {
      hv[i] = -Infinity;
      hi[i] = -1;
    }
    let root = h > 0 ? -Infinity : Infinity; // `v > root` admits a token
    let m = -Infinity;
    let am = -1;
    let check = 0; // NaN or +Infinity if any logit is NaN or +Infinity
    for (let i = 0; i < n; i++) {
      const v = w[i];
      check += v;
      if (v > m) {
        m = v;
        am = i;
      }
      if (v > root) {
        // Replace the root and sift down. Ids arrive in ascending order, so a tie with the
        // root never enters, and inside the heap ties order by id.
        let j = 0;
        for (;;) {
          const l = 2 * j + 1;
          if (l >= h) break;
          let c = l;
          const r = l + 1;
          if (r < h && (hv[r] < hv[l] || (hv[r] === hv[l] && hi[r] > hi[l]))) c = r;
          if (hv[c] < v || (hv[c] === v && hi[c] > i)) {
            hv[j] = hv[c];
            hi[j] = hi[c];
            j = c;
          } else break;
        }
        hv[j] = v;
        hi[j] = i;
        root = hv[0];
      }
    }
    if (Number.isNaN(check) || check === Infinity) {
      for (let i = 0; i < n; i++) {
        if (Number.isNaN(w[i]) || w[i] === Infinity) {
          throw new SamplingError(
            "bad_logits",
            `Cannot sample: the logit of token ${i} is ${w[i]} (after bias and penalties)`,
          );
        }
      }
    }
    if (m === -Infinity) {
      throw new SamplingError(
        "no_candidates",
        `Cannot sample: all ${n} logits are -Infinity after bias and penalties`,
      );
    }
    this.#max = m;
    this.#argmax = am;
    this.#z = sumExp(w, m, 1);
    // Sort the heap's real entries.
    const keys = this.#s.keys;
    let cnt = 0;
    for (let i = 0; i < h; i++) if (hi[i] >= 0) keys[cnt++] = descKey(hv[i], hi[i]);
    const ids = this.#s.ids;
    sortKeys(keys, cnt, ids);
    for (let i = 0; i < cnt; i++) hi[i] = ids[i];
    this.#nTop = cnt;
  }

  /** top-p on the sorted candidates `#ids[0..#nCand)` (softmax over them). */
  #topPSorted(topP: number): void {
    const w = this.#s.work;
    const ids = this.#s.ids;
    const cnt = this.#nCand;
    const m = w[ids[0]];
    let sum = 0;
    for (let i = 0; i < cnt; i++) sum += fexp(w[ids[i]] - m);
    let cum = 0;
    for (let i = 0; i < cnt; i++) {
      cum += fexp(w[ids[i]] - m) / sum;
      if (cum >= topP) {
        this.#nCand = i + 1;
        return;
      }
    }
  }

  /** min-p on the sorted candidates: keep the prefix with l >= l_max + ln(minP). */
  #minPSorted(minP: number): void {
    const w = this.#s.work;
    const ids = this.#s.ids;
    const thr = w[ids[0]] + Math.log(minP);
    let i = 1;
    while (i < this.#nCand && w[ids[i]] >= thr) i++;
    this.#nCand = i;
  }

  /**
   * top-p over the whole vocabulary (no top-k) without sorting it: collect the tokens within
   * `d` of the max, doubling `d` until their mass reaches `topP` (or, with min-p on, until
   * `d` reaches min-p's cut, since both stages keep a prefix of the same order and the shorter
   * one wins). Then sort only those and cut at `topP` with the full-vocabulary normalizer.
   */
  #collectTopP(topP: number, minP: number): void {
    const w = this.#s.work;
    const n = this.#s.n;
    const m = this.#max;
    const z = this.#z;
    const keys = this.#s.keys;
    const dMin = minP > 0 ? -Math.log(minP) : Infinity;
    let d = Math.min(8, dMin);
    let cnt = 0;
    for (;;) {
      const thr = m - d;
      let mass = 0;
      cnt = 0;
      for (let i = 0; i < n; i++) {
        const v = w[i];
        if (v >= thr) {
          keys[cnt++] = descKey(v, i);
          mass += fexp(v - m);
        }
      }
      // A margin well above rounding, so the exact pass below reaches topP inside the set.
      if (mass > (topP + 1e-9) * z || d >= dMin || cnt === n) break;
      d = d * 2 > 1400 ? Infinity : Math.min(d * 2, dMin);
    }
    const ids = this.#s.ids;
    sortKeys(keys, cnt, ids);
    this.#all = false;
    this.#nCand = cnt;
    let cum = 0;
    for (let i = 0; i < cnt; i++) {
      cum += fexp(w[ids[i]] - m) / z;
      if (cum >= topP) {
        this.#nCand = i + 1;
        break;
      }
    }
    // The heap's sorted top-N list lives in `#heapI`, untouched.
  }

  /** min-p over the whole vocabulary: collect l >= l_max + ln(minP), then sort those. */
  #collectMinP(minP: number): void {
    const w = this.#s.work;
    const n = this.#s.n;
    const thr = this.#max + Math.log(minP);
    const keys = this.#s.keys;
    let cnt = 0;
    for (let i = 0; i < n; i++) {
      const v = w[i];
      if (v >= thr) keys[cnt++] = descKey(v, i);
    }
    sortKeys(keys, cnt, this.#s.ids);
    this.#all = false;
    this.#nCand = cnt;
  }

  /** Temperature, softmax and the draw. */
  #dist(temperature: number): number {
    const w = this.#s.work;
    const m = this.#max; // the max survives every truncation stage
    const invT = 1 / temperature;
    const u = this.#rng.nextDouble();
    if (this.#all) {
      const n = this.#s.n;
      const z = invT === 1 ? this.#z : sumExp(w, m, invT);
      const target = u * z;
      const t = EXP_TABLE;
      let cum = 0;
      let last = this.#argmax;
      for (let i = 0; i < n; i++) {
        const x = (w[i] - m) * invT;
        if (x >= EXP_MIN) { // the same arithmetic as sumExp, inlined
          const k = (x * K32 + ROUND) - ROUND;
          const r = x - k * LN2_32;
          cum += t[-k | 0] * (1 + r * (1 + r * (C2 + r * (C3 + r * C4))));
          last = i;
          if (cum > target) return i;
        }
      }
      return last;
    }
    const ids = this.#s.ids;
    const cnt = this.#nCand;
    let z = 0;
    for (let i = 0; i < cnt; i++) z += fexp((w[ids[i]] - m) * invT);
    const target = u * z;
    let cum = 0;
    let last = ids[0];
    for (let i = 0; i < cnt; i++) {
      const e = fexp((w[ids[i]] - m) * invT);
      if (e > 0) {
        cum += e;
        last = ids[i];
        if (cum > target) return ids[i];
      }
    }
    return last;
  }
}
