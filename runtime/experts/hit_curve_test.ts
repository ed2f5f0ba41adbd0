import assert from "node:assert/strict";
import {
  type DecodeTrace,
  hitCurve,
  layerLruHits,
  perLayerLruHitRate,
  recordDecodeTrace,
  topShare,
} from "./hit_curve.ts";
import { lruHitRate, routingTrace } from "./_sim.ts";

/** A Zipf trace (_sim.ts) split into one access list per layer. */
function zipfTrace(): DecodeTrace {
  const spec = {
    seed: 5,
    nLayer: 3,
    nExpert: 128,
    k: 8,
    tokens: 600,
    zipf: 0.9,
    scanEvery: 0,
    scanLen: 0,
  };
  const keys = routingTrace(spec);
  const perLayer = Array.from({ length: spec.nLayer }, () => [] as number[]);
  for (const key of keys) perLayer[Math.floor(key / 128)].push(key % 128);
  return {
    nLayer: 3,
    nExpert: 128,
    k: 8,
    tokens: spec.tokens,
    perLayer: perLayer.map((a) => Int32Array.from(a)),
  };
}

Deno.test("per-layer LRU hit rate equals _sim's LRU run on each layer's accesses alone", () => {
  const t = zipfTrace();
  for (const slots of [8, 32, 64, 100]) {
    let hits = 0, looks = 0;
    for (const ids of t.perLayer) {
      hits += lruHitRate(ids, slots) * ids.length;
      looks += ids.length;
    }
    const got = perLayerLruHitRate(t, slots);
    assert.ok(Math.abs(got - hits / looks) < 1e-12, `${slots}: ${got} vs ${hits / looks}`);
  }
  // more slots never hit less (LRU is a stack algorithm); all 128 only miss cold
  const curve = hitCurve(t, [16, 32, 64, 96, 128]);
  for (let i = 1; i < curve.length; i++) assert.ok(curve[i].hitRate >= curve[i - 1].hitRate);
  const cold = t.perLayer.reduce((a, ids) => a + new Set(ids).size, 0);
  assert.ok(Math.abs(curve[4].hitRate - (1 - cold / (3 * 600 * 8))) < 1e-12);
});

Deno.test("warm-up: look-ups of the first tokens are not counted", () => {
  const ids = Int32Array.from([0, 1, 0, 1, 2, 3, 2, 3]); // k = 2: tokens {0,1} {0,1} {2,3} {2,3}
  const t: DecodeTrace = { nLayer: 1, nExpert: 4, k: 2, tokens: 4, perLayer: [ids] };
  assert.deepEqual(layerLruHits(t, 4, 0), [{ hits: 4, looks: 8 }]);
  assert.deepEqual(layerLruHits(t, 4, 2), [{ hits: 2, looks: 4 }]);
  assert.deepEqual(layerLruHits(t, 2, 1), [{ hits: 4, looks: 6 }]); // 2 and 3 evict 0 and 1
});

Deno.test("topShare: share of each layer's most-picked tenth, averaged over layers", () => {
  // layer 0: expert 0 takes 6 of 10 picks; layer 1: uniform over 10 experts
  const t: DecodeTrace = {
    nLayer: 2,
    nExpert: 10,
    k: 1,
    tokens: 10,
    perLayer: [
      Int32Array.from([0, 0, 1, 0, 2, 0, 3, 0, 4, 0]),
      Int32Array.from([...Array(10).keys()]),
    ],
  };
  assert.ok(Math.abs(topShare(t, 0.1) - (0.6 + 0.1) / 2) < 1e-12);
  assert.ok(Math.abs(topShare(t, 0.2) - (0.7 + 0.2) / 2) < 1e-12);
});

Deno.test("recordDecodeTrace refuses a bad token or prompt count before loading anything", async () => {
  await assert.rejects(recordDecodeTrace("/nonexistent.gguf", { tokens: 0 }), RangeError);
  await assert.rejects(recordDecodeTrace("/nonexistent.gguf", { prompts: 9 }), RangeError);
});
