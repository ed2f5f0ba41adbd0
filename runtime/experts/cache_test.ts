/**
 * The expert cache: the frequency-aware policy against an LRU baseline on a seeded Zipf +
 * scan routing trace, exact eviction order, pins, references and loading slots that are
 * never evicted, exact statistics, and the slot layout (alignment, containment, real
 * O_DIRECT reads landing the data where the pointers say).
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { native } from "../../ffi/mod.ts";
import { DirectReader } from "../../ffi/memory.ts";
import {
  CacheFullError,
  cacheMetrics,
  ExpertCache,
  type ExpertLayerRanges,
  partCapacity,
  SLOT_ALIGN,
  slotLayout,
} from "./cache.ts";
import { lruHitRate, replay, routingTrace, staticBestHitRate } from "./_sim.ts";

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

Deno.test("policy: LFU with aging beats LRU by >= 5 points on a Zipf + scan trace", () => {
  const trace = routingTrace(SPEC);
  assertEquals(trace.length, 3000 * 8 * 4);
  for (const slots of [64, 128]) {
    const cache = new ExpertCache({ nLayer: 8, nExpert: 64, slots });
    replay(cache, trace);
    const s = cache.snapshot();
    const lru = lruHitRate(trace, slots);
    const best = staticBestHitRate(trace, slots);
    console.log(
      `slots ${slots}: frequency-aware ${s.hitRate.toFixed(4)}, LRU ${lru.toFixed(4)}, ` +
        `best static ${best.toFixed(4)}`,
    );
    assertEquals(s.lookups, trace.length);
    assertEquals(s.hits + s.misses, trace.length);
    assertEquals(s.insertions, s.misses);
    assertEquals(s.evictions, s.misses - slots);
    assertEquals(s.resident, slots);
    assertEquals(s.inUse, 0);
    assertEquals(s.loading, 0);
    if (slots === 64) assert(s.hitRate >= lru + 0.05, `${s.hitRate} vs LRU ${lru}`);
    else assert(s.hitRate >= lru + 0.03, `${s.hitRate} vs LRU ${lru}`);
    assert(s.hitRate >= best - 0.03, `${s.hitRate} vs best static ${best}`);
  }
  // pure Zipf, no scans: the gap is wider
  const zipf = routingTrace({ ...SPEC, scanEvery: 0, scanLen: 0 });
  const cache = new ExpertCache({ nLayer: 8, nExpert: 64, slots: 64 });
  replay(cache, zipf);
  const lru = lruHitRate(zipf, 64);
  console.log(
    `pure Zipf, 64 slots: ${cache.snapshot().hitRate.toFixed(4)} vs LRU ${lru.toFixed(4)}`,
  );
  assert(cache.snapshot().hitRate >= lru + 0.15);
});

Deno.test("policy: the deterministic trace replays to the same counts", () => {
  const trace = routingTrace(SPEC);
  const a = new ExpertCache({ nLayer: 8, nExpert: 64, slots: 64 });
  const b = new ExpertCache({ nLayer: 8, nExpert: 64, slots: 64 });
  replay(a, trace);
  replay(b, routingTrace(SPEC));
  assertEquals(a.stats(), b.stats());
});

/** A lookup-acquire-load-release of `key`; returns the slot. */
function touch(c: ExpertCache, key: number): number {
  let s = c.lookup(key);
  if (s < 0) {
    s = c.acquire(key).slot;
    c.markLoaded(s);
  }
  c.release(s);
  return s;
}

Deno.test("eviction: the least frequent key goes, the oldest among equals", () => {
  const c = new ExpertCache({ nLayer: 1, nExpert: 16, slots: 3 });
  for (const k of [0, 0, 0, 1, 2, 2]) touch(c, k);
  assertEquals([c.frequency(0), c.frequency(1), c.frequency(2)], [3, 1, 2]);
  touch(c, 3); // evicts 1 (count 1)
  assertEquals(c.peek(1), -1);
  assert(c.peek(0) >= 0 && c.peek(2) >= 0 && c.peek(3) >= 0);
  touch(c, 4); // 3 has count 1: the newest, but still the least frequent
  assertEquals(c.peek(3), -1);
  touch(c, 5); // 4 (count 1) goes before 2 (count 2)
  assertEquals(c.peek(4), -1);
  // a key that was evicted keeps its history: 1 comes back with count 2 > 5's 1
  touch(c, 1);
  assertEquals(c.frequency(1), 2);
  assertEquals(c.peek(5), -1);
  // but a count of 2 does not beat 2's, the coldest admitted key: 1 is on probation and is
  // the next to go, while 2 stays
  touch(c, 6);
  assertEquals(c.peek(1), -1);
  assert(c.peek(2) >= 0 && c.peek(0) >= 0);
  // reused while on probation: admitted
  touch(c, 6);
  touch(c, 7); // 6 was hit, so it is admitted with count 2; 7 (count 1) is on probation
  assert(c.peek(6) >= 0 && c.peek(7) >= 0 && c.peek(0) >= 0);
  assertEquals(c.peek(2), -1); // the coldest admitted key (2, count 2, older than 6) went
  const s = c.snapshot();
  assertEquals([s.hits, s.misses, s.evictions, s.insertions], [4, 9, 6, 9]);
});

Deno.test("admission: a cycle over more experts than slots keeps a stable resident set", () => {
  // an expert-major batch step: every layer routes to 10 of 16 experts, 8 layers = 80 keys
  // per step, through 40 slots; with oldest-first eviction among equal counts every key
  // would be evicted just before its next use (no hits at all)
  const c = new ExpertCache({ nLayer: 8, nExpert: 16, slots: 40 });
  let hits = 0, lookups = 0;
  for (let step = 0; step < 30; step++) {
    for (let l = 0; l < 8; l++) {
      const slots: number[] = [];
      for (let e = 0; e < 10; e++) {
        const key = c.key(l, e);
        let sl = c.lookup(key);
        lookups++;
        if (sl >= 0) hits++;
        else {
          sl = c.acquire(key).slot;
          c.markLoaded(sl);
        }
        slots.push(sl);
      }
      for (const sl of slots) c.release(sl); // the layer's experts are held together
    }
  }
  // about (40 − 10) of the 80 keys stay resident: hit rate near 30/80
  const rate = hits / lookups;
  assert(rate > 0.3, `hit rate ${rate}`);
});

Deno.test("eviction: counts halve every agingPeriod accesses, so a stale hot key leaves", () => {
  const c = new ExpertCache({ nLayer: 1, nExpert: 8, slots: 2, agingPeriod: 8 });
  for (let i = 0; i < 6; i++) touch(c, 0); // count 6
  touch(c, 1);
  touch(c, 1); // 8th access: halve → 0: 4 (6+... ) see below
  // accesses: 0×6, 1×2 = 8 → halved: 0 → 3, 1 → 1
  assertEquals([c.frequency(0), c.frequency(1)], [3, 1]);
  for (let i = 0; i < 7; i++) touch(c, 1); // 1 → 8 at the 15th access; 16th halves
  touch(c, 1);
  assertEquals([c.frequency(0), c.frequency(1)], [1, 4]);
  touch(c, 2); // the stale key 0 (count 1) goes, not 1
  assertEquals(c.peek(0), -1);
  assert(c.peek(1) >= 0);
});

Deno.test("pins: pinned experts survive any flood of misses", () => {
  const c = new ExpertCache({ nLayer: 4, nExpert: 32, slots: 16 });
  const pinned = [3, 40, 77, 100];
  const slotOf = new Map<number, number>();
  for (const k of pinned) {
    const { slot, fresh } = c.pin(k);
    assert(fresh);
    c.markLoaded(slot);
    slotOf.set(k, slot);
  }
  assert(c.isPinned(40));
  replay(c, routingTrace({ ...SPEC, nLayer: 4, nExpert: 32, tokens: 500, seed: 7 }));
  const s = c.snapshot();
  assert(s.evictions > 1000, `${s.evictions} evictions`);
  for (const k of pinned) assertEquals(c.peek(k), slotOf.get(k));
  assertEquals(s.pinned, 4);
  // unpinned, they compete again
  for (const k of pinned) c.unpin(k);
  assertEquals(c.snapshot().pinned, 0);
  for (let k = 0; k < 128; k++) touch(c, k);
  assert(pinned.some((k) => c.peek(k) < 0));
});

Deno.test("references: a step never loses its slots; more keys than slots is a clear error", () => {
  const c = new ExpertCache({ nLayer: 2, nExpert: 16, slots: 8 });
  for (let k = 0; k < 8; k++) touch(c, k);
  // a step holds 5 slots (hits and misses) while more misses arrive
  const held: number[] = [];
  for (const k of [0, 1, 20, 21, 2]) {
    let s = c.lookup(k);
    if (s < 0) s = c.acquire(k).slot; // left loading and referenced
    held.push(s);
  }
  const heldKeys = held.map((s) => c.keyOf(s));
  assertEquals(heldKeys, [0, 1, 20, 21, 2]);
  for (let k = 22; k < 32; k++) touch(c, k);
  assertEquals(held.map((s) => c.keyOf(s)), heldKeys);
  assertEquals(c.snapshot().inUse, 5);
  // 20, 21 and 2 (evicted by 20's miss: the oldest of the count-1 keys) are loading
  assertEquals(c.snapshot().loading, 3);
  // a step that needs 9 experts at once from an 8-slot cache: 8 held, the 9th throws
  for (const k of [3, 4, 5]) held.push(c.acquire(k).slot);
  assertEquals(c.snapshot().inUse, 8);
  assertEquals(c.snapshot().loading, 6);
  const before = c.stats();
  throws(() => c.acquire(9), (e: unknown) => {
    assert(e instanceof CacheFullError);
    assertEquals([e.slots, e.pinned, e.inUse, e.loading], [8, 0, 8, 6]);
    assert(/expert 9 of layer 0/.test(e.message), e.message);
    assert(/all 8 slots are pinned \(0\), in use by the current step \(8\)/.test(e.message));
    return true;
  });
  // nothing was corrupted: every held slot still maps to its key
  assertEquals(c.stats(), before);
  for (const s of held) assertEquals(c.peek(c.keyOf(s)), s);
  for (const s of held) c.release(s);
  // released slots that were never marked loaded stay protected until loaded or discarded
  assertEquals(c.snapshot().inUse, 0);
  assertEquals(c.snapshot().loading, 6);
  for (let k = 9; k < 12; k++) touch(c, k); // only 0 and 1's slots are evictable: fine
  const a = c.acquire(12).slot, b = c.acquire(13).slot;
  throws(() => c.acquire(14), CacheFullError);
  c.discard(c.peek(20));
  assertEquals(c.peek(20), -1);
  const got = c.acquire(14);
  assertEquals(got.fresh, true);
  c.markLoaded(got.slot);
  for (const s of [a, b, got.slot]) c.release(s);
  throws(() => c.release(got.slot), /released more often than taken/);
  throws(() => c.release(c.peek(20)), /slot -1 holds no expert/);
});

Deno.test("stats: exact counters, rates, per-token averages, predictions, metrics text", () => {
  const c = new ExpertCache({ nLayer: 2, nExpert: 4, slots: 2 });
  touch(c, 0); // miss
  touch(c, 0); // hit
  touch(c, 5); // miss
  touch(c, 6); // miss, evicts 5
  touch(c, 0); // hit
  c.recordRead(3e9, 1.5);
  c.recordRead(1e9, 0.5);
  c.recordStall(0.25);
  c.recordToken();
  c.recordToken(3);
  c.recordPrediction(new Set([1, 2, 3, 4]), [2, 3, 5, 5]);
  c.recordPrediction([0, 0, 7], new Int32Array([7, 6, 0, 1]), 3);
  const s = c.snapshot();
  assertEquals(
    [s.hits, s.misses, s.lookups, s.evictions, s.insertions, s.resident],
    [2, 3, 5, 1, 3, 2],
  );
  assertEquals(s.hitRate, 0.4);
  assertEquals([s.bytesRead, s.readSeconds, s.reads, s.readGBps], [4e9, 2, 2, 2]);
  assertEquals(s.stallSeconds, 0.25);
  assertEquals(s.tokens, 4);
  assertEquals(s.perToken, { hits: 0.5, misses: 0.75, bytesRead: 1e9, stallSeconds: 0.0625 });
  // {1,2,3,4} vs {2,3,5}: 2 of 4, 2 of 3; {0,7} vs {7,6,0}: 2 of 2, 2 of 3
  assertEquals([s.predicted, s.actual, s.predictedCorrect], [6, 6, 4]);
  assertEquals([s.precision, s.recall], [4 / 6, 4 / 6]);
  assertEquals(s.slots, 2);
  assertEquals(JSON.parse(JSON.stringify(s)), s);
  const text = cacheMetrics(s);
  assert(
    text.includes(
      "# TYPE spool_expert_cache_hits_total counter\nspool_expert_cache_hits_total 2\n",
    ),
  );
  assert(text.includes("spool_expert_cache_read_bytes_total 4000000000\n"));
  assert(text.includes("spool_expert_cache_hit_rate 0.4\n"));
  c.resetStats();
  assertEquals(c.snapshot().lookups, 0);
  assertEquals(c.snapshot().resident, 2);
});

/** Q4_K-like expert tensors at GGUF's 32-byte alignment, not 4096-aligned. */
function fakeLayers(nLayer: number, nExpert: number, base = 4128): ExpertLayerRanges[] {
  const out: ExpertLayerRanges[] = [];
  let off = base;
  for (let l = 0; l < nLayer; l++) {
    // (rows × row bytes): gate/up 96 rows of 144-byte rows, down 64 rows of 210 bytes
    // (Q6_K in some layers, as Q4_K_M does), so sizes differ between layers
    const gate = 96 * 144, up = 96 * 144, down = l % 2 ? 64 * 210 : 64 * 144;
    const t = (bytes: number) => {
      const r = { fileOffset: off, expertBytes: bytes };
      off += Math.ceil((bytes * nExpert) / 32) * 32;
      return r;
    };
    out.push({ gateExps: t(gate), upExps: t(up), downExps: t(down) });
  }
  return out;
}

Deno.test("layout: aligned reads, data inside its slot, parts disjoint", () => {
  assertEquals(partCapacity(1), 8192);
  assertEquals(partCapacity(4096), 8192);
  assertEquals(partCapacity(4097), 12288);
  const layers = fakeLayers(3, 8);
  const c = ExpertCache.forLayers(layers, 8, { slots: 5 }, { arena: false });
  // per part: the largest expert over layers, rounded to pages, plus one page
  assertEquals(c.partCapacities, [16384 + 4096, 16384 + 4096, 16384 + 4096]);
  assertEquals(c.slotBytes, 3 * 20480);
  for (let key = 0; key < 24; key++) {
    const lay = c.layoutOf(key);
    assertEquals(lay.slotBytes, c.slotBytes);
    const l = layers[Math.floor(key / 8)], e = key % 8;
    const src = [l.gateExps, l.upExps, l.downExps];
    let end = 0;
    for (let p = 0; p < 3; p++) {
      const part = lay.parts[p];
      assertEquals(part.fileOffset, src[p].fileOffset + e * src[p].expertBytes);
      assertEquals(part.len, src[p].expertBytes);
      assertEquals(part.readStart % SLOT_ALIGN, 0);
      assertEquals(part.readLen % SLOT_ALIGN, 0);
      assertEquals(part.readOffsetInSlot % SLOT_ALIGN, 0);
      assert(part.readStart <= part.fileOffset);
      assert(part.readStart + part.readLen >= part.fileOffset + part.len);
      assert(part.readLen - part.len < 2 * SLOT_ALIGN);
      assertEquals(part.dataOffsetInSlot - part.readOffsetInSlot, part.fileOffset - part.readStart);
      assert(part.readOffsetInSlot >= end, "parts overlap");
      end = part.readOffsetInSlot + part.readLen;
      assert(end <= c.partBases[p] + c.partCapacities[p]);
    }
    assert(end <= c.slotBytes);
    // the cache's data offsets agree with the layout wherever the key lands
    const { slot } = c.acquire(key);
    for (let p = 0; p < 3; p++) {
      assertEquals(c.dataOffset(slot, p), c.slotOffset(slot) + lay.parts[p].dataOffsetInSlot);
    }
    c.markLoaded(slot);
    c.release(slot);
  }
  // the stand-alone layout of one range
  assertEquals(slotLayout([{ fileOffset: 4100, len: 8000 }]), {
    slotBytes: 12288,
    parts: [{
      fileOffset: 4100,
      len: 8000,
      readStart: 4096,
      readLen: 8192,
      readOffsetInSlot: 0,
      dataOffsetInSlot: 4,
    }],
  });
  throws(
    () => slotLayout([{ fileOffset: 100, len: 8000 }], [4096]),
    /exceeds its 4096-byte region/,
  );
  throws(
    () => ExpertCache.forLayers([null, layers[0]], 8, { slots: 2 }, { arena: false }).acquire(3),
    /layer 0 has no routed experts/,
  );
});

Deno.test("arena: one 4096-aligned allocation; pointers are arena + data offset", () => {
  const n = native();
  const layers = fakeLayers(2, 4);
  const c = ExpertCache.forLayers(layers, 4, { budgetBytes: 3 * 61440 + 1000 });
  try {
    assertEquals(c.slots, 3);
    assertEquals(c.arena!.byteLength, 3 * c.slotBytes);
    const base = n.address(c.arena!.ptr);
    assertEquals(base % 4096, 0);
    for (const key of [0, 5, 7]) {
      const { slot } = c.acquire(key);
      for (let p = 0; p < 3; p++) {
        const a = n.address(c.ptr(slot, p));
        assertEquals(a - base, c.dataOffset(slot, p));
        assert(a >= base + c.slotOffset(slot) && a < base + c.slotOffset(slot) + c.slotBytes);
        assert(c.ptr(slot, p) === c.ptr(slot, p)); // cached
      }
      c.markLoaded(slot);
      c.release(slot);
    }
  } finally {
    c.free();
  }
});

Deno.test("arena: O_DIRECT reads of the aligned supersets put every byte where ptr() says", () => {
  const nExpert = 4;
  const layers = fakeLayers(2, nExpert, 4128);
  const last = layers[1].downExps;
  const size = last.fileOffset + nExpert * last.expertBytes + 5000;
  const data = new Uint8Array(size);
  let x = 12345;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    data[i] = x >>> 24;
  }
  // where the file system refuses O_DIRECT (tmpfs), DirectReader reads buffered: both
  // modes must land the data at the same offsets
  const path = Deno.makeTempFileSync({ prefix: "spool_cache_test_" });
  Deno.writeFileSync(path, data);
  const c = ExpertCache.forLayers(layers, nExpert, { slots: 3 });
  const reader = DirectReader.open(path);
  try {
    const arena = c.arena!;
    for (const key of [1, 6, 3, 7]) { // 4 keys through 3 slots: the last reuses a slot
      const { slot, fresh } = c.acquire(key);
      assert(fresh);
      const lay = c.layoutOf(key);
      for (let p = 0; p < 3; p++) {
        const part = lay.parts[p];
        const dst = c.slotOffset(slot) +
          (reader.direct ? part.readOffsetInSlot : part.dataOffsetInSlot);
        const at = reader.read(arena, part.fileOffset, part.len, dst);
        assertEquals(at, c.dataOffset(slot, p));
      }
      c.recordRead(lay.parts.reduce((a, q) => a + q.readLen, 0), 0.001);
      c.markLoaded(slot);
      for (let p = 0; p < 3; p++) {
        const part = lay.parts[p];
        const off = c.dataOffset(slot, p);
        assertEquals(
          arena.u8.subarray(off, off + part.len),
          data.subarray(part.fileOffset, part.fileOffset + part.len),
        );
      }
      c.release(slot);
    }
    console.log(`reads ${reader.direct ? "O_DIRECT" : "buffered (no O_DIRECT here)"}`);
  } finally {
    reader.close();
    c.free();
    Deno.removeSync(path);
  }
});

Deno.test("lookup/acquire/release allocate nothing per access and stay fast", () => {
  const trace = routingTrace({ ...SPEC, nLayer: 24, nExpert: 128, k: 8, tokens: 400 });
  const c = new ExpertCache({ nLayer: 24, nExpert: 128, slots: 1024 });
  replay(c, trace); // warm up
  const t0 = performance.now();
  replay(c, trace);
  const ns = (performance.now() - t0) * 1e6 / trace.length;
  console.log(`${ns.toFixed(0)} ns per access (lookup + acquire/markLoaded on miss + release)`);
  assert(ns < 2000, `${ns} ns per access`);
});
