import assert from "node:assert/strict";
import {
  expNonPositive,
  LLAMA_DEFAULTS,
  OPENAI_DEFAULTS,
  penalize,
  penalizedLogit,
  Sampler,
  SamplerScratch,
  SamplingError,
  type SamplingParams,
  SplitMix64,
} from "./sampling.ts";
import {
  CROSS_CHAIN_42,
  CROSS_LLAMA_42,
  CROSS_OPENAI_42,
  CROSS_PROBS,
  randomLogits,
} from "./_sampling_vectors.ts";

/** Only the stages under test: no top-k, top-p, min-p or penalties unless set. */
const PLAIN: SamplingParams = { ...OPENAI_DEFAULTS, seed: 1 };

function f32(values: number[]): Float32Array {
  return new Float32Array(values);
}

/** Logits whose softmax is `probs` (up to float32 rounding). */
function logitsOf(probs: number[]): Float32Array {
  return f32(probs.map(Math.log));
}

function assertClose(actual: number[], expected: number[], tol: number, what = ""): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol,
      `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tol ${tol})`,
    );
  }
}

/** A small deterministic generator for test data (not the sampler's PRNG). */
function softmax(l: ArrayLike<number>, t = 1): number[] {
  const m = Array.from(l).reduce((a, b) => Math.max(a, b), -Infinity);
  const e = Array.from(l, (v) => Math.exp((v - m) / t));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

// ---------------------------------------------------------------------------------------------
// PRNG and exp

Deno.test("splitmix64 matches the reference outputs", () => {
  // Reference values of splitmix64 (as in Vigna's splitmix64.c, Java's SplittableRandom);
  // also checked against an independent Python implementation.
  const g = new SplitMix64(1234567);
  assert.deepEqual([g.nextU64(), g.nextU64(), g.nextU64(), g.nextU64(), g.nextU64()], [
    6457827717110365317n,
    3203168211198807973n,
    9817491932198370423n,
    4593380528125082431n,
    16408922859458223821n,
  ]);
  assert.equal(new SplitMix64(0).nextU64(), 0xe220a8397b1dcdafn);
  const d = new SplitMix64(42);
  assert.deepEqual(
    [d.nextDouble(), d.nextDouble(), d.nextDouble()],
    [0.7415648787718233, 0.1599103928769201, 0.27860113025513866],
  );
  // Seeds are taken mod 2^64.
  assert.equal(new SplitMix64(-1n).state, (1n << 64n) - 1n);
  assert.equal(new SplitMix64((1n << 64n) + 5n).nextU64(), new SplitMix64(5).nextU64());
});

Deno.test("expNonPositive is within 1e-11 of Math.exp, and 0 below -512 and for NaN", () => {
  let worst = 0;
  for (let i = 0; i <= 200_000; i++) {
    const x = -i * 0.0025; // [0, -500]
    const rel = Math.abs(expNonPositive(x) - Math.exp(x)) / Math.exp(x);
    if (rel > worst) worst = rel;
  }
  assert.ok(worst < 1e-11, `worst relative error ${worst}`);
  assert.equal(expNonPositive(0), 1);
  assert.equal(expNonPositive(-513), 0);
  assert.equal(expNonPositive(-Infinity), 0);
  assert.equal(expNonPositive(NaN), 0);
});

// ---------------------------------------------------------------------------------------------
// Stages, hand-computed

Deno.test("penalties: repeat divides positive logits and multiplies the others; presence and frequency subtract", () => {
  const logits = f32([2.0, -1.0, 0.5, 3.0, -2.0, 0.0]);
  const history = [0, 1, 1, 5, 3, 3, 3]; // counts: 0:1, 1:2, 3:3, 5:1
  const p = { repeatPenalty: 2, repeatLastN: -1, presencePenalty: 0.25, frequencyPenalty: 0.5 };
  // id0: 2/2 - (1*0.5 + 0.25) = 0.25; id1: -1*2 - (2*0.5 + 0.25) = -3.25; id2, id4 unchanged;
  // id3: 3/2 - (3*0.5 + 0.25) = -0.25; id5: 0*2 - (0.5 + 0.25) = -0.75.
  assert.deepEqual(Array.from(penalize(logits, history, p)), [0.25, -3.25, 0.5, -0.25, -2, -0.75]);
  // Only the last 3 tokens (3, 3, 3) count.
  assert.deepEqual(
    Array.from(penalize(logits, history, { ...p, repeatLastN: 3 })),
    [2, -1, 0.5, -0.25, -2, 0],
  );
  // repeatLastN 0 and neutral values disable.
  assert.deepEqual(Array.from(penalize(logits, history, { ...p, repeatLastN: 0 })), [
    2,
    -1,
    0.5,
    3,
    -2,
    0,
  ]);
  const neutral = { repeatPenalty: 1, repeatLastN: 64, presencePenalty: 0, frequencyPenalty: 0 };
  assert.deepEqual(penalize(logits, history, neutral), logits);
  // The input is not modified.
  assert.deepEqual(Array.from(logits), [2.0, -1.0, 0.5, 3.0, -2.0, 0.0]);
  // float32 arithmetic like llama.cpp: 2 / 1.1f rounded to float32.
  const r = penalize(f32([2]), [0], { ...neutral, repeatPenalty: 1.1 });
  assert.equal(r[0], Math.fround(2 / Math.fround(1.1)));
  assert.ok(Math.abs(r[0] - 1.8181818) < 1e-6);
});

Deno.test("penalizedLogit equals penalize's entry bit for bit", () => {
  const rng = new SplitMix64(7n);
  const u = () => Number(rng.nextU64() >> 11n) / 2 ** 53;
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(u() * 40);
    const logits = f32(Array.from({ length: n }, () => (u() - 0.5) * 20));
    const history = Array.from({ length: Math.floor(u() * 30) }, () => Math.floor(u() * n));
    const bias = new Map<number, number>();
    for (let i = 0; i < 3; i++) bias.set(Math.floor(u() * n), (u() - 0.5) * 4);
    const p = {
      repeatPenalty: trial % 5 === 0 ? 1 : 0.5 + u() * 1.5,
      repeatLastN: [-1, 0, 3, 64][trial % 4],
      presencePenalty: trial % 3 === 0 ? 0 : u(),
      frequencyPenalty: trial % 7 === 0 ? 0 : u(),
      logitBias: trial % 2 ? bias : undefined,
    };
    const all = penalize(logits, history, p);
    for (let id = 0; id < n; id++) {
      assert.ok(
        Object.is(penalizedLogit(logits, history, p, id), all[id]),
        `trial ${trial} id ${id}`,
      );
    }
  }
});

Deno.test("logit bias comes before the penalties (llama.cpp's chain) and -Infinity bans", () => {
  const logits = f32([2, 1, 0]);
  const p = {
    repeatPenalty: 2,
    repeatLastN: 64,
    presencePenalty: 0,
    frequencyPenalty: 0,
    logitBias: new Map([[0, 1], [2, -Infinity]]),
  };
  // (2 + 1) / 2 = 1.5 (bias after the penalty would give 2 / 2 + 1 = 2).
  assert.deepEqual(Array.from(penalize(logits, [0], p)), [1.5, 1, -Infinity]);
  const s = new Sampler({ ...PLAIN, logitBias: new Map([[0, -Infinity]]) });
  const d = s.distribution(logits);
  assert.equal(d.probs[0], 0);
  for (let i = 0; i < 200; i++) assert.notEqual(s.sample(logits).token, 0);
  assert.equal(s.sample(logits).top, undefined);
});

Deno.test("top-k keeps the k highest logits, ties to the lower id, sorted", () => {
  const logits = f32([1, 3, 2, 3, 0]);
  const d2 = new Sampler({ ...PLAIN, topK: 2 }).distribution(logits);
  assert.deepEqual(d2.tokens, [1, 3]);
  assertClose(d2.probs, [0.5, 0.5], 1e-12);
  assert.deepEqual(new Sampler({ ...PLAIN, topK: 1 }).distribution(logits).tokens, [1]);
  const d3 = new Sampler({ ...PLAIN, topK: 3 }).distribution(logits);
  assert.deepEqual(d3.tokens, [1, 3, 2]);
  const e = Math.exp(-1);
  assertClose(d3.probs, [1 / (2 + e), 1 / (2 + e), e / (2 + e)], 1e-9);
  // k >= vocabulary or 0: everything, id order.
  assert.deepEqual(new Sampler({ ...PLAIN, topK: 5 }).distribution(logits).tokens, [0, 1, 2, 3, 4]);
  assert.deepEqual(new Sampler({ ...PLAIN, topK: 0 }).distribution(logits).tokens, [0, 1, 2, 3, 4]);
});

Deno.test("top-p keeps the shortest prefix with cumulative probability >= p", () => {
  // probabilities by id: 0: .2, 1: .45, 2: .05, 3: .3
  const logits = logitsOf([0.2, 0.45, 0.05, 0.3]);
  // sorted: 1 (.45), 3 (.30, cum .75), 0 (.20, cum .95), 2 (.05)
  const d = new Sampler({ ...PLAIN, topP: 0.9 }).distribution(logits);
  assert.deepEqual(d.tokens, [1, 3, 0]);
  assertClose(d.probs, [0.45 / 0.95, 0.3 / 0.95, 0.2 / 0.95], 1e-7);
  assert.deepEqual(new Sampler({ ...PLAIN, topP: 0.7 }).distribution(logits).tokens, [1, 3]);
  assert.deepEqual(new Sampler({ ...PLAIN, topP: 0.4 }).distribution(logits).tokens, [1]);
  assert.deepEqual(new Sampler({ ...PLAIN, topP: 0 }).distribution(logits).tokens, [1]);
  assert.deepEqual(new Sampler({ ...PLAIN, topP: 0.99 }).distribution(logits).tokens, [1, 3, 0, 2]);
  // The same after top-k (the sorted path); softmax over the k survivors: .45, .3, .2 of .95.
  // cum .4737, .7895, 1 -> p = 0.8 needs all three.
  assert.deepEqual(new Sampler({ ...PLAIN, topK: 3, topP: 0.8 }).distribution(logits).tokens, [
    1,
    3,
    0,
  ]);
  assert.deepEqual(new Sampler({ ...PLAIN, topK: 3, topP: 0.75 }).distribution(logits).tokens, [
    1,
    3,
  ]);
});

Deno.test("top-p without top-k over a wide tail widens its threshold and keeps exact ties by id", () => {
  // 5000 tokens: id 7 at logit 0, the rest at -9. p(7) = 1 / (1 + 4999 e^-9) = 0.61846, each
  // other q = e^-9 / (1 + 4999 e^-9); reaching 0.9 needs ceil((0.9 - p7) / q) = 3689 more
  // tokens (cum 0.900016; 3688 give 0.899940), taken in id order: ids 0..6 and 8..3689.
  const n = 5000;
  const logits = new Float32Array(n).fill(-9);
  logits[7] = 0;
  const d = new Sampler({ ...PLAIN, topP: 0.9 }).distribution(logits);
  assert.equal(d.tokens.length, 3690);
  const want = [7];
  for (let i = 0; i <= 3689; i++) if (i !== 7) want.push(i);
  assert.deepEqual(d.tokens, want);
  const q = Math.exp(-9);
  assertClose([d.probs[0], d.probs[1]], [1 / (1 + 3689 * q), q / (1 + 3689 * q)], 1e-9);
});

Deno.test("min-p keeps tokens with p >= minP * p_max", () => {
  const logits = f32([0, -1, -2, -3, -4]); // p / p_max = e^0, e^-1, e^-2, ...
  // ln 0.1 = -2.303: keeps 0, -1, -2; ln 0.2 = -1.609: keeps 0, -1.
  assert.deepEqual(new Sampler({ ...PLAIN, minP: 0.1 }).distribution(logits).tokens, [0, 1, 2]);
  assert.deepEqual(new Sampler({ ...PLAIN, minP: 0.2 }).distribution(logits).tokens, [0, 1]);
  assert.deepEqual(new Sampler({ ...PLAIN, minP: 1 }).distribution(logits).tokens, [0]);
  // Sorted path (after top-k) and with top-p (top-p .99 keeps all five here).
  assert.deepEqual(new Sampler({ ...PLAIN, topK: 4, minP: 0.1 }).distribution(logits).tokens, [
    0,
    1,
    2,
  ]);
  const d = new Sampler({ ...PLAIN, topP: 0.99, minP: 0.1 }).distribution(logits);
  assert.deepEqual(d.tokens, [0, 1, 2]);
  const e1 = Math.exp(-1), e2 = Math.exp(-2);
  assertClose(d.probs, [1 / (1 + e1 + e2), e1 / (1 + e1 + e2), e2 / (1 + e1 + e2)], 1e-9);
  // min-p is relative to the max after the penalties.
  const lp = f32([2, 1.5, 0]);
  const s = new Sampler({ ...PLAIN, minP: 0.5, repeatPenalty: 2 });
  // after penalty on id 0: [1, 1.5, 0]; max 1.5, cut 1.5 + ln .5 = 0.807: keeps 1, 0.
  assert.deepEqual(s.distribution(lp, [0]).tokens, [1, 0]);
});

Deno.test("temperature scales the logits of the survivors, after top-p", () => {
  const logits = f32([2, 1, 0]);
  assertClose(
    new Sampler({ ...PLAIN, temperature: 0.5 }).distribution(logits).probs,
    softmax([4, 2, 0]),
    1e-9,
  );
  assertClose(
    new Sampler({ ...PLAIN, temperature: 2 }).distribution(logits).probs,
    softmax([1, 0.5, 0]),
    1e-9,
  );
  // Chain order: top-p .75 on [.5, .3, .2] keeps 2 at temperature 1 (cum .5, .8). Had the
  // temperature (2) come first, the flatter [.414, .321, .262] would need all three.
  const d = new Sampler({ ...PLAIN, topP: 0.75, temperature: 2 }).distribution(
    logitsOf([0.5, 0.3, 0.2]),
  );
  assert.deepEqual(d.tokens, [0, 1]);
  const a = Math.sqrt(0.5), b = Math.sqrt(0.3);
  assertClose(d.probs, [a / (a + b), b / (a + b)], 1e-7);
});

Deno.test("greedy is argmax after bias and penalties, ties to the lowest id", () => {
  const s = new Sampler({ ...LLAMA_DEFAULTS, temperature: 0 });
  assert.equal(s.sample(f32([1, 5, 5, 2])).token, 1);
  assert.equal(s.sample(f32([5, 5, 5, 5])).token, 0);
  assert.equal(s.sample(f32([-Infinity, -3, -3])).token, 1);
  // The penalty demotes id 1 (5 / 2 = 2.5): id 2 wins.
  const r = new Sampler({ temperature: 0, repeatPenalty: 2 });
  assert.equal(r.sample(f32([1, 5, 4, 2]), [1]).token, 2);
  assert.deepEqual(r.distribution(f32([1, 5, 4, 2]), [1]), { tokens: [2], probs: [1] });
  // Greedy does not use the PRNG: any seed gives the same tokens.
  const a = new Sampler({ temperature: 0, seed: 1 });
  const b = new Sampler({ temperature: 0, seed: 2 });
  for (let i = 0; i < 20; i++) {
    const l = randomLogits(100, i);
    assert.equal(a.sample(l).token, b.sample(l).token);
  }
});

// ---------------------------------------------------------------------------------------------
// Against a naive reference of the chain (full sort, literal stages)

function referenceChain(
  logits: Float32Array,
  history: number[],
  p: SamplingParams,
): { tokens: number[]; probs: number[] } {
  const w = penalize(logits, history, p);
  let c = Array.from(w, (v, id) => ({ id, v }));
  const sorted = () => c.sort((a, b) => b.v - a.v || a.id - b.id);
  let truncated = false;
  if (p.topK > 0 && p.topK < w.length) {
    sorted();
    c = c.slice(0, p.topK);
    truncated = true;
  }
  if (p.topP < 1) {
    sorted();
    const pr = softmax(c.map((x) => x.v));
    let cum = 0;
    let keep = c.length;
    for (let i = 0; i < c.length; i++) {
      cum += pr[i];
      if (cum >= p.topP) {
        keep = i + 1;
        break;
      }
    }
    c = c.slice(0, keep);
    truncated = true;
  }
  if (p.minP > 0) {
    sorted();
    const cut = c[0].v + Math.log(p.minP);
    c = c.filter((x, i) => i === 0 || x.v >= cut);
    truncated = true;
  }
  if (!truncated) c.sort((a, b) => a.id - b.id);
  return { tokens: c.map((x) => x.id), probs: softmax(c.map((x) => x.v), p.temperature) };
}

Deno.test("the chain equals a naive full-sort reference on random logits", () => {
  const cases: Partial<SamplingParams>[] = [
    LLAMA_DEFAULTS,
    OPENAI_DEFAULTS,
    { ...OPENAI_DEFAULTS, topP: 0.9 },
    { ...OPENAI_DEFAULTS, minP: 0.1 },
    { ...OPENAI_DEFAULTS, topP: 0.8, minP: 0.02, temperature: 0.7 },
    { ...LLAMA_DEFAULTS, topK: 0 },
    { ...LLAMA_DEFAULTS, topK: 5, topP: 1, minP: 0 },
    { ...LLAMA_DEFAULTS, topK: 300, topP: 0.5, minP: 0, temperature: 1.3 },
    {
      ...LLAMA_DEFAULTS,
      repeatPenalty: 1.3,
      presencePenalty: 0.4,
      frequencyPenalty: 0.2,
      repeatLastN: 16,
    },
  ];
  for (const [ci, params] of cases.entries()) {
    for (const n of [7, 1000, 4096]) {
      const logits = randomLogits(n, 100 * ci + n, 1 + (ci % 3));
      const history = Array.from({ length: 40 }, (_, i) => (i * 37 + ci) % n);
      const s = new Sampler({ ...params, seed: 1 });
      const got = s.distribution(logits, history);
      const want = referenceChain(logits, history, s.params as SamplingParams);
      assert.deepEqual(got.tokens, want.tokens, `case ${ci}, n ${n}`);
      assertClose(got.probs, want.probs, 1e-9, `case ${ci}, n ${n}`);
    }
  }
});

Deno.test("the chain equals the reference at the Qwen3 vocabulary size (151936)", () => {
  const n = 151936;
  const logits = randomLogits(n, 7, 2.5);
  for (let j = 0; j < 30; j++) logits[(j * 7919) % n] = 10 + j * 0.1; // a few strong ones
  for (
    const params of [
      LLAMA_DEFAULTS,
      { ...OPENAI_DEFAULTS, topP: 0.9 },
      { ...LLAMA_DEFAULTS, topK: 0, topP: 0.95, minP: 0.05 },
    ]
  ) {
    const s = new Sampler({ ...params, seed: 3 });
    const got = s.distribution(logits, [1, 2, 3]);
    const want = referenceChain(logits, [1, 2, 3], s.params as SamplingParams);
    assert.deepEqual(got.tokens, want.tokens);
    assertClose(got.probs, want.probs, 1e-9);
  }
});

// ---------------------------------------------------------------------------------------------
// Draws

Deno.test("seeded sampling is reproducible: same seed, same 100 tokens; another seed differs", () => {
  const run = (seed: number) => {
    const s = new Sampler({ ...LLAMA_DEFAULTS, repeatPenalty: 1.1, seed });
    const history: number[] = [];
    for (let i = 0; i < 100; i++) {
      history.push(s.sample(randomLogits(1000, i, 1.5), history).token);
    }
    return history;
  };
  const a = run(42);
  assert.deepEqual(run(42), a);
  assert.notDeepEqual(run(43), a);
  assert.ok(new Set(a).size > 10, "the draws vary");
  // reset() restarts the stream.
  const s = new Sampler({ ...OPENAI_DEFAULTS, seed: 9 });
  const l = randomLogits(50, 1, 0.5);
  const first = Array.from({ length: 10 }, () => s.sample(l).token);
  s.reset();
  assert.deepEqual(Array.from({ length: 10 }, () => s.sample(l).token), first);
  assert.equal(s.seed, 9n);
  assert.equal(typeof new Sampler().seed, "bigint"); // a random seed was drawn
});

Deno.test("samplers sharing one SamplerScratch, interleaved, draw what each draws alone", () => {
  const kinds = [
    { ...LLAMA_DEFAULTS, repeatPenalty: 1.1, seed: 1, logprobs: 3 },
    { ...OPENAI_DEFAULTS, seed: 2, topP: 0.9 },
    { ...LLAMA_DEFAULTS, topK: 5, minP: 0.1, seed: 3 },
  ];
  const alone = kinds.map((p, k) => {
    const s = new Sampler(p);
    const h: number[] = [];
    const lp: number[] = [];
    for (let i = 0; i < 60; i++) {
      const r = s.sample(randomLogits(k === 1 ? 700 : 1000, i + 100 * k, 1.5), h);
      h.push(r.token);
      lp.push(r.logprob, ...(r.top ?? []).map((t) => t.logprob));
    }
    return { h, lp };
  });
  const scratch = new SamplerScratch();
  const shared = kinds.map((p) => ({
    s: new Sampler(p, scratch),
    h: [] as number[],
    lp: [] as number[],
  }));
  for (let i = 0; i < 60; i++) {
    for (const [k, x] of shared.entries()) {
      const r = x.s.sample(randomLogits(k === 1 ? 700 : 1000, i + 100 * k, 1.5), x.h);
      x.h.push(r.token);
      x.lp.push(r.logprob, ...(r.top ?? []).map((t) => t.logprob));
    }
  }
  for (const [k, x] of shared.entries()) {
    assert.deepEqual(x.h, alone[k].h);
    assert.deepEqual(x.lp, alone[k].lp);
  }
});

Deno.test("seeded sequences equal the independently computed ones (also checked under Bun)", () => {
  const s = new Sampler({ ...LLAMA_DEFAULTS, repeatPenalty: 1.1, seed: 42 });
  const history: number[] = [];
  for (let i = 0; i < 100; i++) history.push(s.sample(randomLogits(1000, i, 1.5), history).token);
  assert.deepEqual(history, CROSS_CHAIN_42);

  const logits = logitsOf(CROSS_PROBS);
  const o = new Sampler({ ...OPENAI_DEFAULTS, seed: 42 });
  assert.deepEqual(Array.from({ length: 20 }, () => o.sample(logits).token), CROSS_OPENAI_42);
  const l = new Sampler({ ...LLAMA_DEFAULTS, seed: 42 });
  assert.deepEqual(Array.from({ length: 20 }, () => l.sample(logits).token), CROSS_LLAMA_42);
  // And from first principles: u from the PRNG, first id whose running probability > u.
  const g = new SplitMix64(42);
  const o2 = new Sampler({ ...OPENAI_DEFAULTS, seed: 42 });
  for (let i = 0; i < 200; i++) {
    const u = g.nextDouble();
    let cum = 0;
    let want = 4;
    for (let t = 0; t < 5; t++) {
      cum += CROSS_PROBS[t];
      if (cum > u) {
        want = t;
        break;
      }
    }
    assert.equal(o2.sample(logits).token, want, `draw ${i}, u = ${u}`);
  }
});

Deno.test("sampling frequencies over 20k draws match the probabilities (max abs diff <= 0.01)", () => {
  const draws = 20_000;
  const freq = (s: Sampler, logits: Float32Array) => {
    const c = new Array(logits.length).fill(0);
    for (let i = 0; i < draws; i++) c[s.sample(logits).token]++;
    return c.map((x) => x / draws);
  };
  // Whole distribution (the standard error of each frequency is <= 0.0036).
  const logits = f32([0.3, -1.2, 2.0, 0.0, 1.1, -0.5, 0.7, -2.5]);
  const want = softmax(logits);
  const got = freq(new Sampler({ ...OPENAI_DEFAULTS, seed: 2024 }), logits);
  assertClose(got, want, 0.01, "full");
  // Truncated and tempered: top-k 3 of [.4, .3, .2, .1] at temperature 0.5 -> p^2 renormalized.
  const t = freq(
    new Sampler({ ...OPENAI_DEFAULTS, topK: 3, temperature: 0.5, seed: 7 }),
    logitsOf([0.2, 0.1, 0.4, 0.3]),
  );
  assertClose(t, [0.04 / 0.29, 0, 0.16 / 0.29, 0.09 / 0.29], 0.01, "top-k + temperature");
  assert.equal(t[1], 0);
});

Deno.test("logprobs: log-softmax after penalties over the whole vocabulary; top-N sorted", () => {
  const n = 50;
  const logits = randomLogits(n, 11, 2);
  logits[20] = logits[30] = 10; // a tie at the top, until 30 is penalized
  const s = new Sampler({ ...LLAMA_DEFAULTS, repeatPenalty: 1.5, logprobs: n, seed: 5 });
  const history = [30, 3, 3];
  const r = s.sample(logits, history);
  assert.ok(r.top);
  assert.equal(r.top.length, n);
  let sum = 0;
  for (const t of r.top) sum += Math.exp(t.logprob);
  assert.ok(Math.abs(sum - 1) < 1e-6, `sum ${sum}`);
  for (let i = 1; i < n; i++) {
    const a = r.top[i - 1], b = r.top[i];
    assert.ok(a.logprob > b.logprob || (a.logprob === b.logprob && a.token < b.token));
  }
  // Definition: penalized logits, temperature 1, no truncation.
  const w = penalize(logits, history, s.params);
  const lse = Math.log(Array.from(w).reduce((a, v) => a + Math.exp(v), 0));
  for (const t of r.top) assert.ok(Math.abs(t.logprob - (w[t.token] - lse)) < 1e-9);
  assert.ok(Math.abs(r.logprob - (w[r.token] - lse)) < 1e-9);
  assert.equal(r.top[0].token, 20); // 30 was penalized
  // Top 3 with a tie between ids 4 and 2 (equal logits): id order.
  const t3 = new Sampler({ ...PLAIN, logprobs: 3 }).sample(f32([0, 1, 3, 2, 3]));
  assert.deepEqual(t3.top?.map((t) => t.token), [2, 4, 3]);
  const z = Math.log(1 + Math.E + 2 * Math.exp(3) + Math.exp(2));
  assertClose(t3.top!.map((t) => t.logprob), [3 - z, 3 - z, 2 - z], 1e-9);
  // Greedy reports logprobs too.
  const g = new Sampler({ temperature: 0, logprobs: 2 }).sample(f32([0, 1, 3, 2, 3]));
  assert.equal(g.token, 2);
  assert.ok(Math.abs(g.logprob - (3 - z)) < 1e-9);
  assert.deepEqual(g.top?.map((t) => t.token), [2, 4]);
});

Deno.test("logprobs at vocabulary 151936 match a direct log-softmax and the top-N of a full sort", () => {
  const n = 151936;
  const logits = randomLogits(n, 99, 3);
  const s = new Sampler({ ...LLAMA_DEFAULTS, logprobs: 20, seed: 1 });
  const r = s.sample(logits);
  const lse = Math.log(Array.from(logits).reduce((a, v) => a + Math.exp(v), 0));
  assert.ok(Math.abs(r.logprob - (logits[r.token] - lse)) < 1e-9);
  const order = Array.from(logits, (v, id) => ({ v, id })).sort((a, b) => b.v - a.v || a.id - b.id);
  assert.deepEqual(r.top?.map((t) => t.token), order.slice(0, 20).map((x) => x.id));
  for (const t of r.top!) assert.ok(Math.abs(t.logprob - (logits[t.token] - lse)) < 1e-9);
});

// ---------------------------------------------------------------------------------------------
// Errors

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SamplingError, String(e));
    return e.code;
  }
  throw new Error("expected a SamplingError");
}

Deno.test("bad parameters, logits and tokens throw SamplingError with a code", () => {
  assert.equal(code(() => new Sampler({ temperature: -1 })), "bad_param");
  assert.equal(code(() => new Sampler({ topP: 1.5 })), "bad_param");
  assert.equal(code(() => new Sampler({ topK: 2.5 })), "bad_param");
  assert.equal(code(() => new Sampler({ minP: NaN })), "bad_param");
  assert.equal(code(() => new Sampler({ repeatPenalty: 0 })), "bad_param");
  assert.equal(code(() => new Sampler({ repeatLastN: -2 })), "bad_param");
  assert.equal(code(() => new Sampler({ seed: -1 })), "bad_param");
  assert.equal(code(() => new Sampler({ logprobs: -1 })), "bad_param");
  assert.equal(code(() => new Sampler({ logitBias: new Map([[1, Infinity]]) })), "bad_param");
  const s = new Sampler({ seed: 1, repeatPenalty: 1.1 });
  assert.equal(code(() => s.sample(new Float32Array(0))), "bad_logits");
  assert.equal(code(() => s.sample(f32([0, NaN, 1]))), "bad_logits");
  assert.equal(code(() => s.sample(f32([0, Infinity, 1]))), "bad_logits");
  assert.equal(code(() => s.sample(f32([-Infinity, -Infinity]))), "no_candidates");
  assert.equal(code(() => s.sample(f32([0, 1]), [0, 2])), "bad_token");
  assert.equal(code(() => s.sample(f32([0, 1]), [0, 1.5])), "bad_token");
  const b = new Sampler({ logitBias: new Map([[5, 1]]) });
  assert.equal(code(() => b.sample(f32([0, 1]))), "bad_token");
  // The message says what and where.
  assert.throws(() => s.sample(f32([0, NaN])), /logit of token 1 is NaN/);
  // An error midway through the history leaves no stale counts behind: 3 - 1 > 1.5 (a stale
  // count of token 0 would give 3 - 2 < 1.5).
  const g = new Sampler({ temperature: 0, frequencyPenalty: 1 });
  assert.equal(code(() => g.sample(f32([3, 1.5]), [0, 7])), "bad_token");
  assert.equal(g.sample(f32([3, 1.5]), [0]).token, 0);
});

Deno.test("defaults: llama.cpp's for new Sampler(), OpenAI's preset is the untruncated model", () => {
  const s = new Sampler();
  assert.equal(s.params.temperature, 0.8);
  assert.equal(s.params.topK, 40);
  assert.equal(s.params.topP, 0.95);
  assert.equal(s.params.minP, 0.05);
  assert.equal(s.params.repeatPenalty, 1);
  assert.equal(s.params.repeatLastN, 64);
  assert.deepEqual(
    [OPENAI_DEFAULTS.temperature, OPENAI_DEFAULTS.topP, OPENAI_DEFAULTS.topK, OPENAI_DEFAULTS.minP],
    [1, 1, 0, 0],
  );
  // Undefined fields do not override the defaults; other keys are ignored.
  assert.equal(new Sampler({ temperature: undefined }).params.temperature, 0.8);
  const wide = { topK: 7, maxTokens: 10, stop: ["x"] } as Partial<SamplingParams>;
  assert.deepEqual(
    Object.keys(new Sampler(wide).params).sort(),
    Object.keys(LLAMA_DEFAULTS).sort(),
  );
  assert.equal(new Sampler(wide).params.topK, 7);
});
