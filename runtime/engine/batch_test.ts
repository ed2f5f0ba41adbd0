/**
 * evalBatch / Session.evalMany: several sequences in one forward step must compute what
 * each sequence computes alone — bit-identical logits, so the same greedy tokens — whether
 * items are single decode tokens, prompt chunks, or larger than the scratch batch (waves),
 * with mapped experts or through the expert cache, for quantized and float weights (FFN
 * widths that are not a multiple of the SIMD width included); a step that overflows any context
 * evaluates nothing.
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Model } from "./model.ts";
import { ContextOverflowError, Session } from "./session.ts";
import { evalBatch } from "./batch.ts";
import { ExpertCache } from "../experts/cache.ts";
import { ensureSyntheticModel } from "../models/synth.ts";

const DIR = fileURLToPath(new URL("../../test/fixtures/engine/", import.meta.url));
const MODEL = `${DIR}qwen3moe-q8-batch.gguf`;

function fixture(): string {
  return ensureSyntheticModel(MODEL, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 21,
    dims: { nLayer: 3, nExpert: 16, nExpertUsed: 4 },
  });
}

/** Bytes of one expert-cache slot of the fixture. */
function slotBytes(): number {
  const probe = Model.load(fixture(), { threads: 1, expertCache: 0 });
  try {
    return ExpertCache.forLayers(probe.expertLayers, 16, { slots: 1 }, { arena: false }).slotBytes;
  } finally {
    probe.close();
  }
}

function argmax(x: Float32Array): number {
  let b = 0;
  for (let j = 1; j < x.length; j++) if (x[j] > x[b]) b = j;
  return b;
}

function nmse(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return num / Math.max(den, 1e-30);
}

const PROMPTS = [
  [5, 17, 99, 3, 250, 41],
  [7, 7, 7, 120, 64],
  [300, 2, 18, 77, 91, 13, 8, 44, 200],
  [11],
];

const opts = { sanitizeResources: false, sanitizeOps: false };

function check(model: Model, scratchBatch: number): void {
  const nCtx = 64;
  const alone = PROMPTS.map(() => new Session(model, { nCtx, batch: 16 }));
  const many = PROMPTS.map(() => new Session(model, { nCtx, batch: 16 }));
  const scratch = new Session(model, { nCtx: 1, batch: scratchBatch });
  try {
    // prefill: each alone, against all prompts in one batched step
    let ref = PROMPTS.map((p, i) => alone[i].eval(p, "last"));
    let got = Session.evalMany(PROMPTS.map((p, i) => ({ session: many[i], tokens: p })), scratch);
    for (let step = 0; step < 10; step++) {
      for (let i = 0; i < PROMPTS.length; i++) {
        // every row's products are the same kernels on the same values: bit-identical
        deepStrictEqual(
          new Uint32Array(got[i].buffer),
          new Uint32Array(ref[i].buffer),
          `step ${step} seq ${i}: nmse ${nmse(got[i], ref[i])}`,
        );
      }
      const next = ref.map(argmax);
      ref = next.map((t, i) => alone[i].eval([t], "last"));
      got = evalBatch(next.map((t, i) => ({ session: many[i], tokens: [t] })));
    }
    for (let i = 0; i < PROMPTS.length; i++) deepStrictEqual(many[i].tokens, alone[i].tokens);
  } finally {
    for (const s of [...alone, ...many, scratch]) s.close();
  }
}

Deno.test({
  name: "evalMany: batched prefill and decode equal each sequence alone (mapped)",
  ...opts,
  fn() {
    const m = Model.load(fixture(), { threads: 2, expertCache: 0 });
    try {
      check(m, 64); // one wave
      check(m, 4); // prompts split across waves
    } finally {
      m.close();
    }
  },
});

Deno.test({
  name: "evalMany: the same for float weights of FFN widths that are not a multiple of 8",
  ...opts,
  fn() {
    // qwen2moe: routed experts (spool_moe_ffn) and a shared expert (spool_swiglu over all
    // rows of the step); widths 36 and 44 end each row inside a SIMD vector, where a scalar
    // tail once gave a row other bits depending on how many rows shared the call
    const path = ensureSyntheticModel(`${DIR}qwen2moe-f32-oddff-batch.gguf`, {
      arch: "qwen2moe",
      preset: "tiny",
      types: "F32",
      seed: 22,
      dims: { nFfExp: 36, nFfShexp: 44 },
    });
    const m = Model.load(path, { threads: 2, expertCache: 0 });
    try {
      check(m, 64);
    } finally {
      m.close();
    }
  },
});

Deno.test({
  name: "evalMany: the same through a small expert cache with prefetch",
  ...opts,
  fn() {
    const m = Model.load(fixture(), { threads: 2, expertCache: 10 * slotBytes() });
    try {
      check(m, 64);
      const s = m.expertCacheStats()!;
      ok(s.hits > 0 && s.misses > 0 && s.evictions > 0);
      equal(s.inUse, 0);
    } finally {
      m.close();
    }
  },
});

Deno.test({
  name: "evalMany: a 128-token prompt chunk is one wave (each routed expert looked up once)",
  ...opts,
  fn() {
    // the scheduler prefills 128 tokens a step; split into waves of 64 rows, a capped model
    // would read every routed expert twice per chunk
    const m = Model.load(fixture(), { threads: 2, expertCache: 64 * slotBytes(), prefetch: "off" });
    const s = new Session(m, { nCtx: 256 });
    try {
      const before = m.expertCacheStats()!;
      const tokens = Array.from({ length: 128 }, (_, i) => 1 + (i * 37) % 200);
      Session.evalMany([{ session: s, tokens }]);
      const after = m.expertCacheStats()!;
      const lookups = after.hits + after.misses - before.hits - before.misses;
      // 3 layers × 16 experts, each at most once (128 tokens × top-4 route to all 16)
      equal(lookups, 3 * 16);
    } finally {
      s.close();
      m.close();
    }
  },
});

Deno.test({
  name: "evalMany: misses read in pieces and computed as they arrive give the mapped bits",
  ...opts,
  fn() {
    // 24 slots for 3 layers × 16 experts: a 64-token step routes to all 16 of a layer, most
    // of them misses, which go out as 4 tickets of 4 experts (READ_PIECES, PIECE_EXPERTS);
    // the step computes each as it lands (MoEPhase.MORE) while the next ones load
    const mapped = Model.load(fixture(), { threads: 2, expertCache: 0 });
    const cached = Model.load(fixture(), {
      threads: 2,
      expertCache: 24 * slotBytes(),
      prefetch: "off",
    });
    const a = new Session(mapped, { nCtx: 128 }), b = new Session(cached, { nCtx: 128 });
    try {
      let tokens = Array.from({ length: 64 }, (_, i) => 1 + (i * 53) % 250);
      for (let step = 0; step < 4; step++) {
        const [want] = Session.evalMany([{ session: a, tokens }]);
        const [got] = Session.evalMany([{ session: b, tokens }]);
        deepStrictEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer), `step ${step}`);
        tokens = [argmax(want), 3 + step, 40 + step]; // then steps of 3 rows
      }
      const s = cached.expertCacheStats()!;
      ok(s.pieces >= 3 * 3, `pieces ${s.pieces}`); // at least the first step: 3 of 4 per layer
      ok(s.misses > 0 && s.evictions > 0);
      equal(s.inUse, 0);
    } finally {
      a.close();
      b.close();
      mapped.close();
      cached.close();
    }
  },
});

Deno.test({
  name: "evalMany: an item past its context evaluates nothing; bad input is refused",
  ...opts,
  fn() {
    const m = Model.load(fixture(), { threads: 1, expertCache: 0 });
    const a = new Session(m, { nCtx: 8 });
    const b = new Session(m, { nCtx: 4 });
    try {
      throws(
        () =>
          Session.evalMany([{ session: a, tokens: [1, 2, 3] }, {
            session: b,
            tokens: [1, 2, 3, 4, 5],
          }]),
        ContextOverflowError,
      );
      equal(a.position, 0);
      equal(b.position, 0);
      throws(
        () => Session.evalMany([{ session: a, tokens: [1] }, { session: a, tokens: [2] }]),
        /twice/,
      );
      throws(() => Session.evalMany([{ session: a, tokens: [] }]), RangeError);
      throws(() => Session.evalMany([{ session: a, tokens: [1e9] }]), /outside the vocabulary/);
      equal(a.position, 0);
      deepStrictEqual(Session.evalMany([]), []);
    } finally {
      a.close();
      b.close();
      m.close();
    }
  },
});
