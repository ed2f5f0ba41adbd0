/**
 * The expert cache, budget and profile under Bun: the policy margin over LRU, pins and
 * references, exact stats, the arena's pointers, size parsing, a budget plan and a profile
 * round trip. Run with `node_modules/.bin/bun test test/bun/`.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { native } from "../../ffi/mod.ts";
import { CacheFullError, ExpertCache, SLOT_ALIGN } from "../../runtime/experts/cache.ts";
import { BudgetError, parseSize, planBudget } from "../../runtime/experts/budget.ts";
import {
  hotSet,
  loadProfile,
  ProfileError,
  ProfileRecorder,
  saveProfile,
} from "../../runtime/experts/profile.ts";
import { lruHitRate, replay, routingTrace } from "../../runtime/experts/_sim.ts";

const SPEC = {
  seed: 42,
  nLayer: 8,
  nExpert: 64,
  k: 4,
  tokens: 3000,
  zipf: 1.0,
  scanEvery: 50,
  scanLen: 10,
};

test("policy beats LRU by >= 5 points, the same numbers as under Deno", () => {
  const trace = routingTrace(SPEC);
  const cache = new ExpertCache({ nLayer: 8, nExpert: 64, slots: 64 });
  replay(cache, trace);
  const s = cache.snapshot();
  const lru = lruHitRate(trace, 64);
  expect(s.hits + s.misses).toBe(96000);
  expect(s.hitRate).toBeGreaterThanOrEqual(lru + 0.05);
  expect(s.hitRate.toFixed(4)).toBe("0.4106");
  expect(lru.toFixed(4)).toBe("0.3029");
});

test("pinned and referenced slots are never evicted; overflow is a CacheFullError", () => {
  const c = new ExpertCache({ nLayer: 2, nExpert: 16, slots: 4 });
  c.markLoaded(c.pin(5).slot);
  const held = c.acquire(6).slot; // referenced, loading
  for (let k = 10; k < 30; k++) {
    let s = c.lookup(k);
    if (s < 0) {
      s = c.acquire(k).slot;
      c.markLoaded(s);
    }
    c.release(s);
  }
  expect(c.peek(5)).toBeGreaterThanOrEqual(0);
  expect(c.keyOf(held)).toBe(6);
  c.acquire(0);
  c.acquire(1);
  expect(() => c.acquire(2)).toThrow(CacheFullError);
  expect(c.snapshot().resident).toBe(4);
});

test("stats arithmetic and prediction accounting are exact", () => {
  const c = new ExpertCache({ nLayer: 1, nExpert: 8, slots: 2 });
  for (const k of [0, 0, 1]) {
    let s = c.lookup(k);
    if (s < 0) {
      s = c.acquire(k).slot;
      c.markLoaded(s);
    }
    c.release(s);
  }
  c.recordRead(3e9, 1.5);
  c.recordStall(0.5);
  c.recordToken(2);
  c.recordPrediction([1, 2], [2, 3]);
  const s = c.snapshot();
  expect([s.hits, s.misses, s.readGBps, s.perToken.stallSeconds]).toEqual([1, 2, 2, 0.25]);
  expect([s.precision, s.recall]).toEqual([0.5, 0.5]);
});

test("arena pointers are 4096-aligned slots plus data offsets", () => {
  const n = native();
  const layers = [0, 1].map((l) => ({
    gateExps: { fileOffset: 4128 + l * 200_000, expertBytes: 13_824 },
    upExps: { fileOffset: 60_000 + l * 200_000, expertBytes: 13_824 },
    downExps: { fileOffset: 120_032 + l * 200_000, expertBytes: 9_216 },
  }));
  const c = ExpertCache.forLayers(layers, 4, { slots: 2 });
  try {
    const base = n.address(c.arena!.ptr);
    expect(base % SLOT_ALIGN).toBe(0);
    const { slot } = c.acquire(5);
    const lay = c.layoutOf(5);
    for (let p = 0; p < 3; p++) {
      expect(lay.parts[p].readStart % SLOT_ALIGN).toBe(0);
      expect(lay.parts[p].readLen % SLOT_ALIGN).toBe(0);
      expect(n.address(c.ptr(slot, p)) - base).toBe(
        c.slotOffset(slot) + lay.parts[p].dataOffsetInSlot,
      );
    }
  } finally {
    c.free();
  }
});

test("sizes and a 4 GiB plan for the 9.5 GB model", () => {
  expect(parseSize("4G")).toBe(4 * 1024 ** 3);
  expect(parseSize("6.5GB")).toBe(6.5e9);
  expect(parseSize("auto")).toBe("auto");
  const input = {
    fileBytes: 9_500_000_000,
    denseBytes: 710_000_000,
    expertBytes: 2_861_056 * 3072,
    bytesPerExpert: 2_861_056,
    kvBytes: 201_326_592,
    overheadBytes: 300_000_000,
  };
  const p = planBudget({ ...input, ramBudget: 4 * 1024 ** 3 });
  expect([p.mode, p.slots, p.expertCacheBytes]).toEqual(["cache", 919, 919 * 2_887_680]);
  expect(() => planBudget({ ...input, ramBudget: 1024 ** 3 })).toThrow(BudgetError);
});

test("profile round trip; another model is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "spool_bun_profile_"));
  try {
    const model = { arch: "olmoe", nLayer: 1, nExpert: 4, fileSize: 10, headerHash: "00" };
    const r = new ProfileRecorder(1, 4);
    r.observe(0, new Int32Array([3, 1, 3, 2]), 4, 2);
    const path = join(dir, "p.json");
    saveProfile(path, r.toProfile(model));
    const p = loadProfile(path, model);
    expect(p.counts).toEqual([[0, 1, 1, 2]]);
    expect(Array.from(hotSet(p, 2))).toEqual([1, 3]);
    expect(() => loadProfile(path, { ...model, headerHash: "11" })).toThrow(ProfileError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
