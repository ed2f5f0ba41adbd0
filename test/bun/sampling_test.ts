/**
 * Sampling and stop strings under Bun: the PRNG against splitmix64's reference outputs, the
 * seeded sequences that the Deno suite also checks (computed independently in Python), the
 * hand-computed stages, logprobs, and stop strings. Run with `node_modules/.bin/bun test
 * test/bun/`.
 */

import { expect, test } from "bun:test";
import {
  LLAMA_DEFAULTS,
  OPENAI_DEFAULTS,
  penalize,
  Sampler,
  SamplingError,
  SplitMix64,
} from "../../runtime/engine/sampling.ts";
import { StopMatcher } from "../../runtime/engine/stop.ts";
import {
  CROSS_CHAIN_42,
  CROSS_LLAMA_42,
  CROSS_OPENAI_42,
  CROSS_PROBS,
  randomLogits,
} from "../../runtime/engine/_sampling_vectors.ts";

const PLAIN = { ...OPENAI_DEFAULTS, seed: 1 };
const f32 = (v: number[]) => new Float32Array(v);
const logitsOf = (probs: number[]) => f32(probs.map(Math.log));

function expectClose(actual: number[], expected: number[], tol: number): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i])).toBeLessThanOrEqual(tol));
}

test("splitmix64 matches the reference outputs", () => {
  const g = new SplitMix64(1234567);
  expect([g.nextU64(), g.nextU64(), g.nextU64(), g.nextU64(), g.nextU64()]).toEqual([
    6457827717110365317n,
    3203168211198807973n,
    9817491932198370423n,
    4593380528125082431n,
    16408922859458223821n,
  ]);
  expect(new SplitMix64(0).nextU64()).toBe(0xe220a8397b1dcdafn);
  const d = new SplitMix64(42);
  expect([d.nextDouble(), d.nextDouble(), d.nextDouble()]).toEqual([
    0.7415648787718233,
    0.1599103928769201,
    0.27860113025513866,
  ]);
});

test("seeded sequences equal the Deno ones", () => {
  const s = new Sampler({ ...LLAMA_DEFAULTS, repeatPenalty: 1.1, seed: 42 });
  const history: number[] = [];
  for (let i = 0; i < 100; i++) history.push(s.sample(randomLogits(1000, i, 1.5), history).token);
  expect(history).toEqual(CROSS_CHAIN_42);

  const logits = logitsOf(CROSS_PROBS);
  const o = new Sampler({ ...OPENAI_DEFAULTS, seed: 42 });
  expect(Array.from({ length: 20 }, () => o.sample(logits).token)).toEqual(CROSS_OPENAI_42);
  const l = new Sampler({ ...LLAMA_DEFAULTS, seed: 42 });
  expect(Array.from({ length: 20 }, () => l.sample(logits).token)).toEqual(CROSS_LLAMA_42);
});

test("penalties, top-k, top-p, min-p and temperature on hand-computed vectors", () => {
  const p = { repeatPenalty: 2, repeatLastN: -1, presencePenalty: 0.25, frequencyPenalty: 0.5 };
  expect(Array.from(penalize(f32([2, -1, 0.5, 3, -2, 0]), [0, 1, 1, 5, 3, 3, 3], p))).toEqual([
    0.25,
    -3.25,
    0.5,
    -0.25,
    -2,
    -0.75,
  ]);
  expect(new Sampler({ ...PLAIN, topK: 2 }).distribution(f32([1, 3, 2, 3, 0])).tokens).toEqual([
    1,
    3,
  ]);
  const tp = new Sampler({ ...PLAIN, topP: 0.9 }).distribution(logitsOf([0.2, 0.45, 0.05, 0.3]));
  expect(tp.tokens).toEqual([1, 3, 0]);
  expectClose(tp.probs, [0.45 / 0.95, 0.3 / 0.95, 0.2 / 0.95], 1e-7);
  expect(new Sampler({ ...PLAIN, minP: 0.1 }).distribution(f32([0, -1, -2, -3, -4])).tokens)
    .toEqual([0, 1, 2]);
  const t = new Sampler({ ...PLAIN, temperature: 0.5 }).distribution(f32([2, 1, 0]));
  const z = Math.exp(4) + Math.exp(2) + 1;
  expectClose(t.probs, [Math.exp(4) / z, Math.exp(2) / z, 1 / z], 1e-9);
  expect(new Sampler({ temperature: 0 }).sample(f32([1, 5, 5, 2])).token).toBe(1);
});

test("frequencies over 20k draws match the probabilities within 0.01", () => {
  const logits = f32([0.3, -1.2, 2.0, 0.0, 1.1, -0.5, 0.7, -2.5]);
  const m = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  const s = new Sampler({ ...OPENAI_DEFAULTS, seed: 2024 });
  const c = new Array(8).fill(0);
  for (let i = 0; i < 20_000; i++) c[s.sample(logits).token]++;
  expectClose(c.map((x) => x / 20_000), e.map((x) => x / z), 0.01);
});

test("logprobs sum to 1 over the vocabulary and the top list is sorted", () => {
  const n = 64;
  const logits = new Float32Array(n);
  for (let i = 0; i < n; i++) logits[i] = Math.sin(i * 12.9898) * 3;
  const r = new Sampler({ ...LLAMA_DEFAULTS, logprobs: n, seed: 3 }).sample(logits);
  expect(r.top!.length).toBe(n);
  const sum = r.top!.reduce((a, t) => a + Math.exp(t.logprob), 0);
  expect(Math.abs(sum - 1)).toBeLessThan(1e-6);
  for (let i = 1; i < n; i++) {
    expect(r.top![i - 1].logprob).toBeGreaterThanOrEqual(r.top![i].logprob);
  }
  expect(r.top!.find((t) => t.token === r.token)!.logprob).toBe(r.logprob);
});

test("errors are SamplingError", () => {
  expect(() => new Sampler({ topP: 2 })).toThrow(SamplingError);
  expect(() => new Sampler().sample(f32([0, NaN]))).toThrow(/logit of token 1 is NaN/);
});

test("StopMatcher: split stop strings, overlapping prefixes, flush, unicode", () => {
  const m = new StopMatcher(["ab"]);
  expect(m.push("a")).toEqual({ text: "", stopped: false });
  expect(m.push("a")).toEqual({ text: "a", stopped: false });
  expect(m.push("b")).toEqual({ text: "", stopped: true, stop: "ab" });
  const n = new StopMatcher(["\nUser:"]);
  expect(n.push("ok\nUs")).toEqual({ text: "ok", stopped: false });
  expect(n.flush()).toBe("\nUs");
  const u = new StopMatcher(["😀!"]);
  expect(u.push("a😀b\ud83d")).toEqual({ text: "a😀b", stopped: false });
  expect(u.push("\ude00!c")).toEqual({ text: "", stopped: true, stop: "😀!" });
});
