/**
 * The next-layer prefetch reads the best-ranked half of each token's predicted experts
 * (prefetchTop): the rule itself, and a decode through the cache that predicts exactly that
 * many experts per layer step. A layer's load never evicts an expert it routes to, so no
 * expert is read twice for one layer step.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Model } from "./model.ts";
import { Session } from "./session.ts";
import { prefetchTop } from "./expert_residency.ts";
import { ensureSyntheticModel } from "../models/synth.ts";
import { ExpertCache } from "../experts/cache.ts";

const DIR = fileURLToPath(new URL("../../test/fixtures/engine/", import.meta.url));

/** 3 MoE layers, top-4 of 16 experts, Q8_0. */
function fixture(): string {
  return ensureSyntheticModel(`${DIR}qwen3moe-q8-prefetch.gguf`, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 23,
    dims: { nLayer: 3, nExpert: 16, nExpertUsed: 4 },
  });
}

Deno.test("prefetchTop: half of the top-k, at least one; SPOOL_PREFETCH_TOP overrides", () => {
  const saved = process.env.SPOOL_PREFETCH_TOP;
  try {
    delete process.env.SPOOL_PREFETCH_TOP;
    deepStrictEqual([1, 2, 4, 8, 10].map(prefetchTop), [1, 1, 2, 4, 5]);
    process.env.SPOOL_PREFETCH_TOP = "3";
    deepStrictEqual([1, 2, 4, 8].map(prefetchTop), [1, 2, 3, 3]);
    process.env.SPOOL_PREFETCH_TOP = "0"; // not a count: the default
    equal(prefetchTop(8), 4);
  } finally {
    if (saved === undefined) delete process.env.SPOOL_PREFETCH_TOP;
    else process.env.SPOOL_PREFETCH_TOP = saved;
  }
});

Deno.test({
  name: "prefetch: each layer step predicts top-k / 2 experts per token",
  sanitizeResources: false,
  sanitizeOps: false,
  fn() {
    // 3 MoE layers, top-4 of 16: a decode step predicts layers 1 and 2, 2 experts each
    const path = fixture();
    const m = Model.load(path, { threads: 2, expertCache: 24 << 20, prefetch: "on" });
    const s = new Session(m, { nCtx: 64 });
    try {
      let logits = s.eval([5, 17, 99], "last");
      const before = m.expertCacheStats()!;
      const steps = 6;
      for (let i = 0; i < steps; i++) {
        let best = 0;
        for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
        logits = s.eval([best], "last");
      }
      const after = m.expertCacheStats()!;
      equal(after.predicted - before.predicted, steps * 2 * 2);
      equal(after.inUse, 0);
    } finally {
      s.close();
      m.close();
    }
  },
});

Deno.test({
  name: "a layer's misses never evict its own resident or prefetched experts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn() {
    // 40 slots for 3 layers × 16 experts: 32-token steps route to all 16 of a layer; the
    // prefetch brings some of the next layer's in on probation (it counts no access), the
    // first to go when a miss needs a slot. Were a layer's misses acquired before its hits
    // were looked up, they would evict those prefetched experts and read them again.
    const path = fixture();
    const probe = Model.load(path, { threads: 1, expertCache: 0 });
    const slot = ExpertCache.forLayers(probe.expertLayers, 16, { slots: 1 }, { arena: false })
      .slotBytes;
    probe.close();
    const m = Model.load(path, { threads: 2, expertCache: 40 * slot, prefetch: "on" });
    const s = new Session(m, { nCtx: 256 });
    try {
      for (let step = 0; step < 6; step++) {
        const tokens = Array.from({ length: 32 }, (_, i) => 1 + (i * 53 + step * 97) % 250);
        Session.evalMany([{ session: s, tokens }]);
      }
      const st = m.expertCacheStats()!;
      ok(st.predicted > 0 && st.evictions > 0, JSON.stringify(st));
      // no expert the prefetch read is gone when its layer looks it up (with the misses
      // acquired as met, before the later hits were looked up, 35 were, each read twice)
      equal(st.prefetchLost, 0);
      equal(st.inUse, 0);
    } finally {
      s.close();
      m.close();
    }
  },
});
