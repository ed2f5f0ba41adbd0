/**
 * Hybrid models (Qwen3.5 qwen35moe, Qwen3-Next qwen3next: Gated DeltaNet + gated attention)
 * through the engine: a prompt in one chunk, in many chunks and token by token gives the
 * same logits bit for bit (the recurrence's arithmetic does not depend on the split); a
 * batched step equals each sequence alone; a sequence resumed from a checkpoint equals one
 * that never stopped; the expert cache changes nothing.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { expertCacheBytes, Model } from "../../runtime/engine/model.ts";
import { readGGUF } from "../../runtime/gguf/reader.ts";
import { recurrentStateFloats } from "../../runtime/models/config.ts";
import { archOf } from "../../runtime/models/registry.ts";
import { Session } from "../../runtime/engine/session.ts";
import { ExpertCache } from "../../runtime/experts/cache.ts";
import { ensureSyntheticModel } from "../../runtime/models/synth.ts";

const DIR = fileURLToPath(new URL("../fixtures/e2e/", import.meta.url));
const PROMPT = [3, 17, 5, 99, 42, 7, 250, 11, 64, 8, 21, 33];
const MORE = [40, 41, 42, 43, 44];

function last(m: Model, tokens: number[], batch: number): Float32Array {
  const s = new Session(m, { nCtx: 64, batch });
  try {
    return s.eval(tokens, "last");
  } finally {
    s.close();
  }
}

for (const arch of ["qwen35moe", "qwen3next"]) {
  Deno.test(`${arch}: chunks, batched steps, checkpoints and the expert cache agree bit for bit`, () => {
    const path = ensureSyntheticModel(`${DIR}${arch}-q8.gguf`, {
      arch,
      preset: "tiny",
      types: "Q8_0",
      seed: 4,
    });
    const m = Model.load(path, { threads: 2 });
    try {
      const all = [...PROMPT, ...MORE];
      const whole = last(m, all, 64);
      deepStrictEqual(last(m, all, 5), whole, "in chunks of 5");
      const s = new Session(m, { nCtx: 64 });
      let l: Float32Array = new Float32Array(0);
      for (const t of all) l = s.eval([t], "last");
      deepStrictEqual(l, whole, "token by token");
      // a checkpoint after the prompt: cut back into the answer and resume from it
      s.truncate(0);
      equal(s.position, 0);
      s.eval(PROMPT, "none");
      s.checkpoint();
      s.eval(MORE, "none");
      const kept = s.truncate(PROMPT.length + 2); // inside MORE: back to the checkpoint
      equal(kept, PROMPT.length);
      deepStrictEqual(s.eval(MORE, "last"), whole, "resumed from the checkpoint");
      // another conversation finds no checkpoint of its own: a full re-read
      equal(s.truncate(3), 0);
      s.close();
      // batched: each sequence equals itself alone
      const a = new Session(m, { nCtx: 64 }), b = new Session(m, { nCtx: 64 });
      const [la, lb] = Session.evalMany([
        { session: a, tokens: all },
        { session: b, tokens: PROMPT.slice(0, 7) },
      ]);
      deepStrictEqual(la, whole);
      deepStrictEqual(lb, last(m, PROMPT.slice(0, 7), 64));
      const [la2, lb2] = Session.evalMany([{ session: a, tokens: [9] }, {
        session: b,
        tokens: [9],
      }]);
      deepStrictEqual(la2, last(m, [...all, 9], 64));
      deepStrictEqual(lb2, last(m, [...PROMPT.slice(0, 7), 9], 64));
      a.close();
      b.close();
    } finally {
      m.close();
    }
    // the expert cache (a third of the experts) gives the mapped logits
    const probe = Model.load(path, { threads: 1 });
    const want = last(probe, [...PROMPT, ...MORE], 64);
    const slot = ExpertCache.forLayers(probe.expertLayers, probe.config.nExpert, { slots: 1 }, {
      arena: false,
    }).slotBytes;
    const n = Math.ceil(probe.config.nLayer * probe.config.nExpert / 3);
    probe.close();
    const cached = Model.load(path, { threads: 2, expertCache: n * slot, prefetch: "on" });
    try {
      deepStrictEqual(last(cached, [...PROMPT, ...MORE], 64), want);
      ok(cached.expertCacheStats()!.misses > 0);
    } finally {
      cached.close();
    }
  });
}

Deno.test("qwen35moe: the budget charges recurrent state and checkpoints per slot", () => {
  const path = ensureSyntheticModel(`${DIR}qwen35moe-q8.gguf`, {
    arch: "qwen35moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 4,
  });
  const g = readGGUF(path);
  const state = recurrentStateFloats(archOf(g.kv).config(g.kv)) * 4;
  ok(state > 0);
  // a budget that leaves one sequence's state a 14-slot cache (the base it needs comes
  // from the BudgetError of a budget far too small): each recurrent-state copy charged
  // takes its bytes from the cache, in whole slots
  const slot = 233472;
  let baseBytes = 0;
  try {
    expertCacheBytes(g, { ramBudget: 1, kvTokens: 64, stateCopies: 1 });
  } catch (e) {
    baseBytes = (e as { neededBytes: number }).neededBytes;
  }
  ok(baseBytes > 0, "the BudgetError states what the model needs");
  const base = { ramBudget: Math.ceil((baseBytes + 14.5 * slot) / 0.9), kvTokens: 64 };
  const one = expertCacheBytes(g, { ...base, stateCopies: 1 });
  const many = expertCacheBytes(g, { ...base, stateCopies: 11 });
  equal(one, 14 * slot);
  ok(one > 0 && many > 0, "paged at this budget");
  ok(Math.abs(one - many - 10 * state) <= slot, `${one} - ${many} vs ${10 * state}`);
});
