/**
 * The expert cache end to end (DESIGN.md §4): a model loaded with `expertCache` reads its
 * routed experts with explicit reads into cache slots instead of faulting the mapping, and
 * must compute exactly what the mapped model computes — same greedy tokens, bit-identical
 * logits — with consistent statistics, a clear error for a budget too small for one token,
 * a clear error when the file changes under it, and hot-expert profiles that pin.
 */
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { copyFileSync, existsSync, renameSync, rmSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel, type SpoolModel } from "../../runtime/api.ts";
import { Model, ModelFileChangedError } from "../../runtime/engine/model.ts";
import { loadProfile, ProfileError } from "../../runtime/experts/profile.ts";
import { Session } from "../../runtime/engine/session.ts";
import { ExpertCache } from "../../runtime/experts/cache.ts";
import { BudgetError } from "../../runtime/experts/budget.ts";
import { readGGUF } from "../../runtime/gguf/reader.ts";
import { ensureSyntheticModel, writeSyntheticModel } from "../../runtime/models/synth.ts";

const DIR = fileURLToPath(new URL("../fixtures/e2e/", import.meta.url));
/** 4 layers × 16 experts, top-4, Q4_K (36864-byte matrices: not 4096-aligned). */
const MODEL = `${DIR}qwen3moe-q4k-16x4-bytes.gguf`;

function fixture(): string {
  return ensureSyntheticModel(MODEL, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q4_K",
    seed: 11,
    dims: { nLayer: 4, nExpert: 16, nExpertUsed: 4 },
  });
}

/** Bytes of `slots` slots of the fixture's cache. */
function slotsBytes(path: string, slots: number): number {
  const m = Model.load(path, { threads: 1 });
  try {
    return ExpertCache.forLayers(m.expertLayers, m.config.nExpert, { slots: 1 }, { arena: false })
      .slotBytes * slots;
  } finally {
    m.close();
  }
}

function argmax(x: Float32Array): number {
  let b = 0;
  for (let j = 1; j < x.length; j++) if (x[j] > x[b]) b = j;
  return b;
}

/** Greedy chain of `n` tokens after `prompt`, in a session of the given batch. */
function greedy(m: Model, prompt: number[], n: number, batch: number): number[] {
  const s = new Session(m, { nCtx: prompt.length + n + 1, batch });
  try {
    let logits = s.eval(prompt);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = argmax(logits);
      out.push(t);
      logits = s.eval([t]);
    }
    return out;
  } finally {
    s.close();
  }
}

function promptOf(sm: SpoolModel): number[] {
  return sm.tokenize("The expert cache reads experts from the disk.");
}

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name: "expert cache: greedy tokens and logits equal the mapped model's (many evictions)",
  ...opts,
  fn() {
    const path = fixture();
    const mapped = loadModel(path, { threads: 2 });
    const k = mapped.config.nExpertUsed;
    // 2k slots for 4 layers × 16 experts: most lookups miss, slots are evicted all the time
    const small = loadModel(path, {
      threads: 2,
      expertCache: slotsBytes(path, 2 * k),
      prefetch: false,
    });
    // one layer's worth: prefill chunks fit, still evicting across layers; with the
    // next-layer predictor reading ahead
    const mid = loadModel(path, { threads: 2, expertCache: slotsBytes(path, 16) });
    try {
      const prompt = promptOf(mapped);
      ok(prompt.length > 4);
      // decode one token at a time (a prefill chunk needs up to 16 experts of a layer)
      const want1 = greedy(mapped.model, prompt, 24, 1);
      deepStrictEqual(greedy(small.model, prompt, 24, 1), want1);
      const want = greedy(mapped.model, prompt, 24, 64);
      deepStrictEqual(greedy(mid.model, prompt, 24, 64), want);
      // logits of the whole prompt, bit for bit
      for (const [m, batch] of [[small, 1], [mid, 64]] as const) {
        const a = new Session(mapped.model, { nCtx: 64, batch });
        const b = new Session(m.model, { nCtx: 64, batch });
        const la = a.eval(prompt, "all"), lb = b.eval(prompt, "all");
        a.close();
        b.close();
        equal(la.length, lb.length);
        deepStrictEqual(new Uint32Array(lb.buffer), new Uint32Array(la.buffer));
      }
      // statistics
      for (const m of [small, mid]) {
        const cache = m.model.expertCache!;
        const s = cache.snapshot();
        equal(s.hits + s.misses, s.lookups);
        ok(s.misses > 0 && s.hits > 0, `hits ${s.hits}, misses ${s.misses}`);
        const L = m.model.expertLayers[0]!;
        const perExpert = L.gateExps.expertBytes + L.upExps.expertBytes + L.downExps.expertBytes;
        // every insertion is one expert read: a miss, or a prefetch of a predicted expert
        equal(s.bytesRead, s.insertions * perExpert);
        if (m === small) equal(s.insertions, s.misses);
        else {
          ok(s.insertions >= s.misses);
          ok(s.predicted > 0 && s.actual > 0, "the predictor ran");
          ok(s.predictedCorrect <= s.predicted && s.predictedCorrect <= s.actual);
        }
        equal(s.inUse, 0);
        equal(s.loading, 0);
        ok(s.tokens > 0);
        ok(s.stallSeconds >= 0 && s.readSeconds > 0);
      }
      const ss = small.model.expertCache!.snapshot();
      ok(ss.evictions > 0, "the small cache evicts");
      equal(ss.slots, 2 * k);
      equal(mapped.model.expertCache, null);
    } finally {
      mapped.close();
      small.close();
      mid.close();
    }
  },
});

Deno.test({
  name:
    "expert cache: a budget too small for one token is a clear error; one too small for a chunk splits it",
  ...opts,
  fn() {
    const path = fixture();
    // fewer slots than the k experts of one token: refused at load
    throws(
      () => loadModel(path, { threads: 1, expertCache: slotsBytes(path, 3) }),
      (e: unknown) => e instanceof BudgetError && /cannot hold the 4 experts/.test(e.message),
    );
    // enough for one token, not for a prefill chunk's experts: the chunk runs in token
    // groups that fit, with logits bit-identical to the mapped model's
    const m = loadModel(path, { threads: 1, expertCache: slotsBytes(path, 4) });
    const mapped = loadModel(path, { threads: 1 });
    try {
      const s = new Session(m.model, { nCtx: 64, batch: 64 });
      const r = new Session(mapped.model, { nCtx: 64, batch: 64 });
      const prompt = promptOf(m);
      const got = s.eval(prompt, "all"), want = r.eval(prompt, "all");
      s.close();
      r.close();
      deepStrictEqual(new Uint32Array(got.buffer), new Uint32Array(want.buffer));
      const snap = m.model.expertCache!.snapshot();
      equal(snap.inUse, 0);
      equal(snap.loading, 0);
      // and one token at a time
      const t = greedy(m.model, promptOf(m), 4, 1);
      equal(t.length, 4);
    } finally {
      m.close();
      mapped.close();
    }
  },
});

Deno.test({
  name: "model file truncated, replaced or rewritten while in use: ModelFileChangedError",
  ...opts,
  async fn() {
    const src = fixture();
    const dir = Deno.makeTempDirSync({ dir: tmpdir(), prefix: "spool-cache-" });
    const path = join(dir, "m.gguf");
    const run = async (m: SpoolModel) => {
      for await (const _ of m.generate("hello there", { temperature: 0, maxTokens: 4 })) {
        // consume
      }
    };
    const changed = (what: RegExp) => (e: unknown) => {
      ok(e instanceof ModelFileChangedError, String(e));
      equal(e.path, path);
      ok(what.test(e.message), e.message);
      return true;
    };
    try {
      const g = readGGUF(src);
      const sorted = [...g.tensors].sort((a, b) => a.absoluteOffset - b.absoluteOffset);
      const last = sorted[sorted.length - 1];
      const cases: [string, () => void, RegExp][] = [
        // cut the last tensor (experts) off: a read there would be short, the mapping faults
        ["truncated", () => truncateSync(path, last.absoluteOffset), /bytes at load/],
        ["replaced", () => {
          copyFileSync(src, path + ".new");
          renameSync(path + ".new", path);
        }, /replaced/],
        ["removed", () => rmSync(path), /gone/],
      ];
      for (const [label, change, what] of cases) {
        copyFileSync(src, path);
        for (const cache of [slotsBytes(src, 16), 0]) {
          copyFileSync(src, path);
          const m = loadModel(path, { threads: 1, nCtx: 64, expertCache: cache });
          try {
            await run(m); // works before
            change();
            await rejects(run(m), changed(what), label);
            const snap = m.model.expertCache?.snapshot();
            if (snap) {
              equal(snap.inUse, 0);
              equal(snap.loading, 0);
            }
          } finally {
            m.close();
          }
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});

Deno.test({
  name: "expert profile: recorded on close, reloaded to pin the hot set, same greedy tokens",
  ...opts,
  fn() {
    const path = fixture();
    const dir = Deno.makeTempDirSync({ dir: tmpdir(), prefix: "spool-profile-" });
    const prof = join(dir, "hot.json");
    try {
      const mapped = loadModel(path, { threads: 1 });
      const prompt = promptOf(mapped);
      const want = greedy(mapped.model, prompt, 12, 64);
      mapped.close();
      // first run: no file yet; routing is counted and written on close
      const a = loadModel(path, {
        threads: 1,
        expertCache: slotsBytes(path, 24),
        expertProfile: prof,
      });
      deepStrictEqual(greedy(a.model, prompt, 12, 64), want);
      equal(a.model.pinnedFromProfile, 0);
      a.close();
      ok(existsSync(prof));
      const saved = loadProfile(prof);
      const L = saved.counts.length;
      const K = 4;
      for (let l = 0; l < L; l++) {
        const sum = saved.counts[l].reduce((x, y) => x + y, 0);
        equal(sum, saved.tokens[l] * K, `layer ${l}: k routed experts per token`);
        ok(saved.tokens[l] >= prompt.length + 11);
      }
      // second run: half the slots pinned from the profile, results unchanged
      const b = loadModel(path, {
        threads: 1,
        expertCache: slotsBytes(path, 24),
        expertProfile: prof,
      });
      try {
        equal(b.model.pinnedFromProfile, 12);
        equal(b.expertStats()!.pinned, 12);
        deepStrictEqual(greedy(b.model, prompt, 12, 64), want);
        ok(b.expertStats()!.hitRate > 0);
      } finally {
        b.close();
      }
      // counts accumulate across runs
      const again = loadProfile(prof);
      equal(again.tokens[0], saved.tokens[0] * 2);
      // a profile of another model is refused with a clear error
      const other = join(dir, "other.gguf");
      writeSyntheticModel(other, {
        arch: "qwen3moe",
        preset: "tiny",
        types: "Q4_K",
        seed: 12,
        dims: { nLayer: 4, nExpert: 16, nExpertUsed: 4 },
      });
      throws(
        () =>
          loadModel(other, { threads: 1, expertCache: slotsBytes(other, 24), expertProfile: prof }),
        ProfileError,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
