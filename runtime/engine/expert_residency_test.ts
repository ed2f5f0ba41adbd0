/**
 * The next-layer prefetch reads the best-ranked half of each token's predicted experts
 * (prefetchTop): the rule itself, and a decode through the cache that predicts exactly that
 * many experts per layer step.
 */
import { deepStrictEqual, equal } from "node:assert/strict";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Model } from "./model.ts";
import { Session } from "./session.ts";
import { prefetchTop } from "./expert_residency.ts";
import { ensureSyntheticModel } from "../models/synth.ts";

const DIR = fileURLToPath(new URL("../../test/fixtures/engine/", import.meta.url));

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
    const path = ensureSyntheticModel(`${DIR}qwen3moe-q8-prefetch.gguf`, {
      arch: "qwen3moe",
      preset: "tiny",
      types: "Q8_0",
      seed: 23,
      dims: { nLayer: 3, nExpert: 16, nExpertUsed: 4 },
    });
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
