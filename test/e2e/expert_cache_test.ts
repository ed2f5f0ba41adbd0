/**
 * The expert cache end to end (DESIGN.md §4): a model loaded with `expertCache` reads its
 * routed experts with explicit reads into cache slots instead of faulting the mapping, and
 * must compute exactly what the mapped model computes — same greedy tokens, bit-identical
 * logits — with consistent statistics, a clear error for a budget too small for one step,
 * and an IOError naming the file and offset when an expert cannot be read.
 */
import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, rmSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { IOError } from "../../ffi/memory.ts";
import { loadModel, type SpoolModel } from "../../runtime/api.ts";
import { Model } from "../../runtime/engine/model.ts";
import { Session } from "../../runtime/engine/session.ts";
import { CacheFullError, ExpertCache } from "../../runtime/experts/cache.ts";
import { BudgetError } from "../../runtime/experts/budget.ts";
import { readGGUF } from "../../runtime/gguf/reader.ts";
import { writeSyntheticModel } from "../../runtime/models/synth.ts";

const DIR = fileURLToPath(new URL("../fixtures/e2e/", import.meta.url));
/** 4 layers × 16 experts, top-4, Q4_K (36864-byte matrices: not 4096-aligned). */
const MODEL = `${DIR}qwen3moe-q4k-16x4-bytes.gguf`;

function fixture(): string {
  if (!existsSync(MODEL)) {
    mkdirSync(DIR, { recursive: true });
    writeSyntheticModel(MODEL, {
      arch: "qwen3moe",
      preset: "tiny",
      types: "Q4_K",
      seed: 11,
      dims: { nLayer: 4, nExpert: 16, nExpertUsed: 4 },
    });
  }
  return MODEL;
}

/** Bytes of `slots` slots of the fixture's cache. */
function slotsBytes(path: string, slots: number): number {
  const m = Model.load(path, { threads: 1 });
  try {
    return ExpertCache.forLayers(m.layers, m.config.nExpert, { slots: 1 }, { arena: false })
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
    const small = loadModel(path, { threads: 2, expertCache: slotsBytes(path, 2 * k) });
    // one layer's worth: prefill chunks fit, still evicting across layers
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
        const L = m.model.layers[0];
        const perExpert = L.gateExps.expertBytes + L.upExps.expertBytes + L.downExps.expertBytes;
        equal(s.bytesRead, s.misses * perExpert);
        equal(s.insertions, s.misses);
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
  name: "expert cache: a budget too small for one step is a clear error",
  ...opts,
  fn() {
    const path = fixture();
    // fewer slots than the k experts of one token: refused at load
    throws(
      () => loadModel(path, { threads: 1, expertCache: slotsBytes(path, 3) }),
      (e: unknown) => e instanceof BudgetError && /cannot hold the 4 experts/.test(e.message),
    );
    // enough for a token, not for a prefill chunk's experts: CacheFullError, cache intact
    const m = loadModel(path, { threads: 1, expertCache: slotsBytes(path, 4) });
    try {
      const s = new Session(m.model, { nCtx: 64, batch: 64 });
      throws(() => s.eval(promptOf(m)), CacheFullError);
      s.close();
      const snap = m.model.expertCache!.snapshot();
      equal(snap.inUse, 0);
      equal(snap.loading, 0);
      // and the cache still works one token at a time
      const t = greedy(m.model, promptOf(m), 4, 1);
      equal(t.length, 4);
    } finally {
      m.close();
    }
  },
});

Deno.test({
  name: "expert cache: an expert cut off the file is an IOError naming path and offset",
  ...opts,
  async fn() {
    const src = fixture();
    const dir = Deno.makeTempDirSync({ dir: tmpdir(), prefix: "spool-cache-" });
    const path = join(dir, "cut.gguf");
    try {
      copyFileSync(src, path);
      const g = readGGUF(path);
      const sorted = [...g.tensors].sort((a, b) => a.absoluteOffset - b.absoluteOffset);
      const last = sorted[sorted.length - 1];
      ok(/_exps\.weight$/.test(last.name), `last tensor ${last.name} is an expert tensor`);
      ok(
        sorted.filter((t) => !/_exps\.weight$/.test(t.name)).every((t) =>
          t.absoluteOffset + t.nbytes <= last.absoluteOffset
        ),
      );
      const m = loadModel(path, {
        threads: 1,
        nCtx: 64,
        expertCache: slotsBytes(path, 16),
      });
      try {
        // cut the last tensor (its experts) off: dense weights stay in the file
        truncateSync(path, last.absoluteOffset);
        const err = await rejects(
          (async () => {
            for await (const _ of m.generate("hello there", { temperature: 0, maxTokens: 24 })) {
              // consume
            }
          })(),
          (e: unknown) => {
            ok(e instanceof IOError, String(e));
            equal(e.path, path);
            ok(e.offset >= last.absoluteOffset - 4096, `offset ${e.offset}`);
            ok(e.message.includes(path) && e.message.includes(`offset ${e.offset}`), e.message);
            return true;
          },
        );
        equal(err, undefined);
        const snap = m.model.expertCache!.snapshot();
        equal(snap.inUse, 0);
        equal(snap.loading, 0);
      } finally {
        m.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
