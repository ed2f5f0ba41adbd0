/**
 * Prefill and decode speed of a model, as `spool bench` and bench/generate.ts measure it:
 * a prompt of `prefill` tokens evaluated in one call, then `decode` tokens one at a time,
 * sampled at temperature 1 with a fixed seed per repetition (a greedy chain of a
 * random-weight model repeats itself, which makes an expert cache look better than real
 * text does), from a fresh session and another prompt each repetition; the median of
 * `reps` runs. Decode tok/s times the forward steps, not the benchmark's sampler (llama-bench's
 * generation test, the reference, samples nothing).
 */
import type { CacheSnapshot, CacheStats } from "../experts/cache.ts";
import { Model } from "./model.ts";
import type { PrefetchMode, PrefetchState } from "../experts/prefetch.ts";
import { Session } from "./session.ts";
import { expNonPositive, SplitMix64 } from "./sampling.ts";

let weights = new Float64Array(0);

/**
 * A token drawn from softmax(logits) at temperature 1 with `rng`: the decode rule of every
 * benchmark (honest expert-cache hit rates; see the module doc). One exponential per logit,
 * with the sampler's engine-independent exp (the same tokens in Deno and Bun).
 */
export function sampleToken(logits: Float32Array, rng: SplitMix64): number {
  const n = logits.length;
  if (weights.length < n) weights = new Float64Array(n);
  let mx = -Infinity;
  for (let j = 0; j < n; j++) if (logits[j] > mx) mx = logits[j];
  let sum = 0;
  for (let j = 0; j < n; j++) sum += weights[j] = expNonPositive(logits[j] - mx);
  let u = rng.nextDouble() * sum;
  for (let j = 0; j < n; j++) {
    u -= weights[j];
    if (u <= 0) return j;
  }
  return n - 1;
}

/** Options of {@link benchModel}. */
export interface BenchOptions {
  prefill?: number;
  decode?: number;
  reps?: number;
  threads?: number;
  /** Seed of the sampled decode (each repetition of {@link benchModel} adds its index). */
  seed?: number;
  /** Token ids of the prompt (default: a fixed pseudo-random sequence). */
  prompt?: number[];
  /** Expert cache bytes (0/undefined: experts mapped), as {@link Model.load} takes it. */
  /** Expert cache bytes or "auto" (see LoadOptions). */
  expertCache?: number | "auto";
  /** Memory budget (see LoadOptions.ramBudget). */
  ramBudget?: number | "auto";
  /** Next-layer prefetch (see LoadOptions.prefetch). */
  prefetch?: boolean | PrefetchMode;
  /** Hot-expert profile file (see LoadOptions.expertProfile). */
  expertProfile?: string;
}

/** Expert-cache counters of the decode phases only (prefill excluded). */
export interface DecodeCacheStats {
  hits: number;
  misses: number;
  hitRate: number;
  bytesRead: number;
  bytesPerToken: number;
  readGBps: number;
  stallSecondsPerToken: number;
  tokens: number;
}

/** One repetition's timings. */
export interface BenchRun {
  prefillTokS: number;
  decodeTokS: number;
  /** Cache counters accrued while decoding (with an expert cache). */
  decodeCache?: CacheStats;
}

function diff(a: CacheStats, b: CacheStats): CacheStats {
  const out = { ...b };
  for (const k of Object.keys(out) as (keyof CacheStats)[]) out[k] = b[k] - a[k];
  return out;
}

/**
 * A deterministic prompt of n token ids below nVocab (avoids id 0 and special tokens);
 * another `seed` gives another prompt.
 */
export function benchPrompt(n: number, nVocab: number, seed = 12345): number[] {
  const out: number[] = [];
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(100 + (x % Math.max(1, Math.min(nVocab, 30000) - 100)));
  }
  return out;
}

/** Run one repetition on a loaded model. */
export function benchOnce(model: Model, opts: BenchOptions = {}): BenchRun {
  const np = opts.prefill ?? 64;
  const nd = opts.decode ?? 32;
  const prompt = opts.prompt ?? benchPrompt(np, model.config.nVocab);
  const s = new Session(model, { nCtx: np + nd + 8, batch: Math.max(np, 1) });
  try {
    const t0 = performance.now();
    let logits = s.eval(prompt, "last");
    const t1 = performance.now();
    const c0 = model.expertCache?.stats();
    const rng = new SplitMix64(opts.seed ?? 1);
    // the forward steps only: the sampler (a softmax over the vocabulary in JS, ~1 ms at 152k
    // tokens) stays out, as llama-bench's generation test has none
    let stepMs = 0;
    for (let i = 0; i < nd; i++) {
      const tok = sampleToken(logits, rng);
      const a = performance.now();
      logits = s.eval([tok], "last");
      stepMs += performance.now() - a;
    }
    const run: BenchRun = {
      prefillTokS: np / ((t1 - t0) / 1000),
      decodeTokS: nd / (stepMs / 1000),
    };
    if (c0) run.decodeCache = diff(c0, model.expertCache!.stats());
    return run;
  } finally {
    s.close();
  }
}

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Load `path` and measure; returns every run and the medians. */
export function benchModel(path: string, opts: BenchOptions = {}): {
  runs: BenchRun[];
  prefillTokS: number;
  decodeTokS: number;
  loadSeconds: number;
  /** The expert cache's snapshot after all runs (warm-up excluded), when one is used. */
  cache?: CacheSnapshot;
  /** Decode-only cache figures over all runs. */
  decodeCache?: DecodeCacheStats;
  /** The prefetch controller's state after the runs. */
  prefetch?: PrefetchState;
} {
  const t0 = performance.now();
  const model = Model.load(path, {
    threads: opts.threads,
    expertCache: opts.expertCache,
    ramBudget: opts.ramBudget,
    prefetch: opts.prefetch,
    expertProfile: opts.expertProfile,
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  try {
    benchOnce(model, { ...opts, decode: 4 }); // warm-up: page in the weights
    model.expertCache?.resetStats();
    const runs: BenchRun[] = [];
    for (let i = 0; i < (opts.reps ?? 5); i++) {
      // another prompt and seed each repetition: several different texts, not one replayed
      const np = opts.prefill ?? 64;
      const prompt = opts.prompt ?? benchPrompt(np, model.config.nVocab, 12345 + 7919 * i);
      runs.push(benchOnce(model, { ...opts, prompt, seed: (opts.seed ?? 1) + i }));
    }
    const out: ReturnType<typeof benchModel> = {
      runs,
      prefillTokS: median(runs.map((r) => r.prefillTokS)),
      decodeTokS: median(runs.map((r) => r.decodeTokS)),
      loadSeconds,
    };
    if (model.expertCache) {
      out.cache = model.expertCache.snapshot();
      out.prefetch = model.expertCacheStats()!.prefetch;
      let hits = 0, misses = 0, bytes = 0, secs = 0, stall = 0, tokens = 0;
      for (const r of runs) {
        const d = r.decodeCache!;
        hits += d.hits;
        misses += d.misses;
        bytes += d.bytesRead;
        secs += d.readSeconds;
        stall += d.stallSeconds;
        tokens += d.tokens;
      }
      out.decodeCache = {
        hits,
        misses,
        hitRate: hits + misses > 0 ? hits / (hits + misses) : 0,
        bytesRead: bytes,
        bytesPerToken: tokens > 0 ? bytes / tokens : 0,
        readGBps: secs > 0 ? bytes / secs / 1e9 : 0,
        stallSecondsPerToken: tokens > 0 ? stall / tokens : 0,
        tokens,
      };
    }
    return out;
  } finally {
    model.close();
  }
}
