import assert from "node:assert/strict";
import { sampleToken } from "./bench.ts";
import { SplitMix64 } from "./sampling.ts";

/** The textbook rule: u · Σ e^(l − max), then the first id whose running sum reaches it. */
function reference(logits: Float32Array, u: number): number {
  let mx = -Infinity;
  for (const l of logits) mx = Math.max(mx, l);
  let sum = 0;
  for (const l of logits) sum += Math.exp(l - mx);
  let left = u * sum;
  for (let j = 0; j < logits.length; j++) {
    left -= Math.exp(logits[j] - mx);
    if (left <= 0) return j;
  }
  return logits.length - 1;
}

Deno.test("bench sampler: draws follow softmax(logits)", () => {
  const logits = new Float32Array([0, Math.log(2), Math.log(3), -1e4]);
  const counts = [0, 0, 0, 0];
  const rng = new SplitMix64(7);
  const n = 60_000;
  for (let i = 0; i < n; i++) counts[sampleToken(logits, rng)]++;
  for (const [id, p] of [[0, 1 / 6], [1, 2 / 6], [2, 3 / 6]]) {
    // 5 standard deviations of a binomial proportion
    assert.ok(Math.abs(counts[id] / n - p) < 5 * Math.sqrt(p * (1 - p) / n), `id ${id}: ${counts}`);
  }
  assert.equal(counts[3], 0);
});

Deno.test("bench sampler: the same tokens as the textbook rule with Math.exp", () => {
  const vocab = 5000;
  const logits = new Float32Array(vocab);
  let x = 12345;
  const a = new SplitMix64(3), b = new SplitMix64(3);
  for (let draw = 0; draw < 200; draw++) {
    for (let j = 0; j < vocab; j++) {
      x = (x * 1103515245 + 12345) >>> 0;
      logits[j] = (x / 2 ** 32) * 12 - 6;
    }
    assert.equal(sampleToken(logits, a), reference(logits, b.nextDouble()), `draw ${draw}`);
  }
});
