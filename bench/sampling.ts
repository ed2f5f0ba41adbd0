/**
 * Micro-benchmark of Sampler.sample at vocab 151936 (not a test):
 *   deno run bench/sampling.ts   |   bun bench/sampling.ts
 */
import {
  LLAMA_DEFAULTS,
  OPENAI_DEFAULTS,
  Sampler,
  type SamplingParams,
} from "../runtime/engine/sampling.ts";
const N = 151936;
// Logits shaped like an LM's: Gaussian bulk (sd 2.5) plus a few strong candidates.
let s = 12345;
const rnd = () => {
  s = (s * 1103515245 + 12345) >>> 0;
  return s / 4294967296;
};
const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
function makeLogits(): Float32Array {
  const l = new Float32Array(N);
  for (let i = 0; i < N; i++) l[i] = gauss() * 2.5;
  for (let j = 0; j < 20; j++) l[Math.floor(rnd() * N)] = 12 + rnd() * 6;
  return l;
}
const sets = Array.from({ length: 8 }, makeLogits);
const flat = Array.from({ length: 4 }, () => {
  const l = new Float32Array(N);
  for (let i = 0; i < N; i++) l[i] = rnd() * 4;
  return l;
});
const hist = Array.from({ length: 200 }, () => Math.floor(rnd() * N));
function bench(name: string, p: Partial<SamplingParams>, logitsSet = sets, iters = 400) {
  const smp = new Sampler({ ...p, seed: 1 });
  for (let i = 0; i < 100; i++) smp.sample(logitsSet[i % logitsSet.length], hist);
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) smp.sample(logitsSet[i % logitsSet.length], hist);
    times.push((performance.now() - t0) / iters);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${name.padEnd(44)} median ${times[2].toFixed(3)} ms/token (min ${times[0].toFixed(3)})`,
  );
}
bench("llama defaults", LLAMA_DEFAULTS);
bench("llama defaults + repeat 1.1 + logprobs 5", {
  ...LLAMA_DEFAULTS,
  repeatPenalty: 1.1,
  logprobs: 5,
});
bench("greedy", { ...LLAMA_DEFAULTS, temperature: 0 });
bench("openai defaults (full vocab, T=1)", OPENAI_DEFAULTS);
bench("openai T=0.7", { ...OPENAI_DEFAULTS, temperature: 0.7 });
bench("openai top_p 0.9 (no top-k)", { ...OPENAI_DEFAULTS, topP: 0.9 });
bench("top-k 0, top-p 0.95, min-p 0.05", { ...LLAMA_DEFAULTS, topK: 0 });
bench("flat logits, top_p 0.9 no top-k (worst)", { ...OPENAI_DEFAULTS, topP: 0.9 }, flat, 20);
