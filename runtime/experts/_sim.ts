/**
 * Cache policy simulation, shared by the Deno and Bun tests: a seeded PRNG, a synthetic MoE
 * routing trace (Zipf-distributed experts per layer, with scans of one-off tail experts),
 * an LRU baseline, the best static set (an upper bound for any policy without lookahead on a
 * stationary trace), and a replay through {@link ExpertCache}. Private to runtime/experts.
 *
 * @module
 */
import type { ExpertCache } from "./cache.ts";

/** mulberry32: a small, fast, seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shape of a synthetic routing trace. */
export interface TraceSpec {
  seed: number;
  nLayer: number;
  nExpert: number;
  /** Experts per token per layer (distinct). */
  k: number;
  tokens: number;
  /** Zipf exponent of expert popularity within a layer (each layer its own ranking). */
  zipf: number;
  /** Every `scanEvery` tokens, `scanLen` tokens route uniformly to the colder half. */
  scanEvery: number;
  scanLen: number;
}

/**
 * Keys (`layer * nExpert + expert`) in access order: for each token, each layer in turn,
 * its k distinct experts.
 */
export function routingTrace(spec: TraceSpec): Int32Array {
  const { nLayer: L, nExpert: E, k } = spec;
  const r = mulberry32(spec.seed);
  const perms: Int32Array[] = [];
  const cdf = new Float64Array(E);
  let acc = 0;
  for (let i = 0; i < E; i++) cdf[i] = acc += 1 / Math.pow(i + 1, spec.zipf);
  for (let i = 0; i < E; i++) cdf[i] /= acc;
  for (let l = 0; l < L; l++) {
    const p = new Int32Array(E).map((_, i) => i);
    for (let i = E - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [p[i], p[j]] = [p[j], p[i]];
    }
    perms.push(p);
  }
  const out = new Int32Array(spec.tokens * L * k);
  let n = 0;
  const chosen = new Int32Array(k);
  for (let t = 0; t < spec.tokens; t++) {
    const scan = spec.scanEvery > 0 && t % spec.scanEvery < spec.scanLen;
    for (let l = 0; l < L; l++) {
      let c = 0;
      while (c < k) {
        let rank: number;
        if (scan) rank = (E >> 1) + Math.floor(r() * (E - (E >> 1)));
        else {
          const u = r();
          rank = 0;
          while (cdf[rank] < u) rank++;
        }
        const e = perms[l][rank];
        if (chosen.subarray(0, c).includes(e)) continue;
        chosen[c++] = e;
        out[n++] = l * E + e;
      }
    }
  }
  return out;
}

/** Hit rate of plain LRU with `slots` entries on a trace. */
export function lruHitRate(trace: Int32Array, slots: number): number {
  const m = new Map<number, true>();
  let hits = 0;
  for (const k of trace) {
    if (m.has(k)) {
      hits++;
      m.delete(k);
    } else if (m.size >= slots) m.delete(m.keys().next().value!);
    m.set(k, true);
  }
  return hits / trace.length;
}

/** Hit rate of the best fixed set of `slots` keys in hindsight (cold misses not counted). */
export function staticBestHitRate(trace: Int32Array, slots: number): number {
  const c = new Map<number, number>();
  for (const k of trace) c.set(k, (c.get(k) ?? 0) + 1);
  const v = [...c.values()].sort((a, b) => b - a);
  let hits = 0;
  for (let i = 0; i < Math.min(slots, v.length); i++) hits += v[i];
  return hits / trace.length;
}

/**
 * Replay a trace through an {@link ExpertCache} the way the engine will use it: lookup,
 * on a miss acquire and mark loaded, then release.
 */
export function replay(cache: ExpertCache, trace: Int32Array): void {
  for (let i = 0; i < trace.length; i++) {
    const key = trace[i];
    let s = cache.lookup(key);
    if (s < 0) {
      s = cache.acquire(key).slot;
      cache.markLoaded(s);
    }
    cache.release(s);
  }
}
