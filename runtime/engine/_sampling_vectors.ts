/**
 * Test vectors shared by the Deno (runtime/engine/sampling_test.ts) and Bun
 * (test/bun/sampling_test.ts) sampling suites: seeded sequences computed by an independent
 * Python implementation (splitmix64, inverse CDF with math.exp, float32 penalties), and the
 * deterministic logits they were computed over.
 *
 * @module
 */

/** A 32-bit LCG (Numerical Recipes constants) in [0, 1). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Deterministic pseudo-random logits: a sum of three uniforms, centred, × 2·scale. */
export function randomLogits(n: number, seed: number, scale = 3): Float32Array {
  const r = lcg(seed);
  const l = new Float32Array(n);
  for (let i = 0; i < n; i++) l[i] = (r() + r() + r() - 1.5) * 2 * scale;
  return l;
}

/** Probabilities of the 5-token distribution sampled by the short sequences. */
export const CROSS_PROBS = [0.1, 0.2, 0.3, 0.25, 0.15];
// Computed by an independent Python script (splitmix64 + inverse CDF with math.exp).
/** 20 draws with OPENAI_DEFAULTS, seed 42. */
export const CROSS_OPENAI_42 = [3, 1, 1, 2, 0, 4, 1, 3, 2, 3, 1, 2, 2, 2, 3, 1, 1, 2, 0, 3];
/** 20 draws with LLAMA_DEFAULTS, seed 42. */
export const CROSS_LLAMA_42 = [1, 2, 2, 3, 2, 4, 2, 4, 3, 1, 2, 3, 3, 3, 1, 2, 2, 3, 2, 1];

// 100 tokens of LLAMA_DEFAULTS + repeat penalty 1.1, seed 42, fed back as history, over
// randomLogits(1000, step, 1.5): the same independent Python script replays the whole chain
// (float32 penalties, top-k, top-p, min-p, temperature) and gets these.
export const CROSS_CHAIN_42 = [
  776,
  404,
  75,
  686,
  528,
  557,
  651,
  804,
  996,
  637,
  640,
  513,
  829,
  97,
  774,
  996,
  209,
  291,
  336,
  484,
  899,
  118,
  210,
  780,
  168,
  196,
  470,
  114,
  206,
  325,
  68,
  759,
  600,
  146,
  11,
  59,
  689,
  515,
  245,
  474,
  382,
  460,
  218,
  306,
  18,
  927,
  16,
  481,
  544,
  706,
  313,
  225,
  194,
  281,
  200,
  512,
  452,
  155,
  529,
  53,
  779,
  824,
  888,
  808,
  608,
  8,
  89,
  828,
  395,
  770,
  321,
  357,
  998,
  925,
  909,
  134,
  558,
  663,
  364,
  511,
  488,
  134,
  27,
  701,
  423,
  831,
  907,
  900,
  766,
  561,
  276,
  869,
  755,
  310,
  369,
  68,
  683,
  28,
  845,
  231,
];
