/**
 * Hot-expert profiles: exact routing counts, a JSON round trip, refusal of a profile from
 * another model (or format version), and the hot set chosen by per-layer routing share.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readGGUF } from "../gguf/reader.ts";
import { GGMLType } from "../gguf/types.ts";
import { encodeGGUF } from "../gguf/writer.ts";
import { ExpertCache } from "./cache.ts";
import {
  type ExpertProfile,
  hashHeader,
  hotSet,
  identityOfGGUF,
  loadProfile,
  type ModelIdentity,
  modelIdentity,
  PROFILE_FORMAT,
  ProfileError,
  ProfileRecorder,
  saveProfile,
  validateProfile,
} from "./profile.ts";
import { replay, routingTrace } from "./_sim.ts";

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "spool_profile_"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MODEL: ModelIdentity = {
  arch: "qwen3moe",
  nLayer: 2,
  nExpert: 4,
  fileSize: 123456,
  headerHash: "ab".repeat(32),
};

Deno.test("recorder: exact counts from routing buffers, padding skipped", () => {
  const r = new ProfileRecorder(2, 4);
  // 3 tokens × k=2 in layer 0, the last token padded with -1
  r.observe(0, new Int32Array([0, 1, 1, 3, 2, -1]), 6, 2);
  r.observe(1, new Int32Array([3, 3, 9, 9]), 2, 2); // only the first 2 ids count
  r.observe(1, new Int32Array([2, 0]));
  assertEquals(Array.from(r.counts), [1, 2, 1, 1, 1, 0, 1, 2]);
  assertEquals(Array.from(r.tokens), [3, 2]);
  throws(() => r.observe(2, new Int32Array([0])), /layer 2 is outside 0..1/);
  throws(() => r.observe(0, new Int32Array([4])), /expert id 4 in layer 0 is outside 0..3/);
  const p = r.toProfile(MODEL, new Date("2025-01-02T03:04:05Z"));
  assertEquals(p, {
    format: PROFILE_FORMAT,
    version: 1,
    model: MODEL,
    createdAt: "2025-01-02T03:04:05.000Z",
    tokens: [3, 2],
    counts: [[1, 2, 1, 1], [1, 0, 1, 2]],
  });
  // continuing on top of a saved profile doubles the counts
  const r2 = new ProfileRecorder(2, 4);
  r2.merge(p);
  r2.merge(p);
  assertEquals(Array.from(r2.counts), [2, 4, 2, 2, 2, 0, 2, 4]);
  assertEquals(Array.from(r2.tokens), [6, 4]);
});

Deno.test("save/load: round trip, and a profile for another model is refused", () => {
  withDir((dir) => {
    const r = new ProfileRecorder(2, 4);
    r.observe(0, new Int32Array([1, 2]), 2, 2);
    const p = r.toProfile(MODEL);
    const path = join(dir, "hot.json");
    saveProfile(path, p);
    assertEquals(loadProfile(path), p);
    assertEquals(loadProfile(path, MODEL), p);
    const other = { ...MODEL, headerHash: "cd".repeat(32) };
    throws(() => loadProfile(path, other), (e: unknown) => {
      assert(e instanceof ProfileError);
      assertEquals(e.path, path);
      assertEquals(
        e.message,
        `Profile ${path} was recorded for another model: qwen3moe (2 layers × 4 experts, ` +
          `123456 bytes, header abababababab), but this model is qwen3moe (2 layers × 4 ` +
          `experts, 123456 bytes, header cdcdcdcdcdcd) (different GGUF header). Record a ` +
          `profile for this model or run without one.`,
      );
      return true;
    });
    throws(
      () => loadProfile(path, { ...MODEL, arch: "mixtral", nExpert: 8, fileSize: 1 }),
      /\(different architecture, expert count, file size\)/,
    );
    // another format version, other JSON, broken JSON, a missing file
    writeFileSync(path, JSON.stringify({ ...p, version: 2 }));
    throws(
      () => loadProfile(path),
      /has version 2; this spool reads version 1\. Record a new profile\./,
    );
    writeFileSync(path, JSON.stringify({ hello: 1 }));
    throws(() => loadProfile(path), /is not a spool expert profile: format is undefined/);
    writeFileSync(path, JSON.stringify({ ...p, counts: [[1, 2, 3]] }));
    throws(() => loadProfile(path), /counts must be 2 rows/);
    writeFileSync(path, "{");
    throws(
      () => loadProfile(path),
      (e: unknown) => e instanceof ProfileError && /not valid JSON/.test(e.message),
    );
    throws(() => loadProfile(join(dir, "none.json")), /Cannot read profile .*none\.json/);
  });
});

Deno.test("modelIdentity hashes exactly the header bytes of the file", () => {
  withDir((dir) => {
    const bytes = new Uint8Array(10_000).map((_, i) => (i * 7) & 0xff);
    const path = join(dir, "m.gguf");
    writeFileSync(path, bytes);
    const id = modelIdentity(path, {
      arch: "olmoe",
      nLayer: 16,
      nExpert: 64,
      fileSize: 10_000,
      headerSize: 777,
    });
    assertEquals(id.headerHash, createHash("sha256").update(bytes.subarray(0, 777)).digest("hex"));
    assertEquals(id.headerHash, hashHeader(readFileSync(path).subarray(0, 777)));
    assertEquals([id.arch, id.nLayer, id.nExpert, id.fileSize], ["olmoe", 16, 64, 10_000]);
    // one byte changed in the header: another model; after it: the same
    bytes[776] ^= 1;
    writeFileSync(path, bytes);
    const id2 = modelIdentity(path, { ...id, headerSize: 777 });
    assert(id2.headerHash !== id.headerHash);
    bytes[777] ^= 1;
    writeFileSync(path, bytes);
    assertEquals(modelIdentity(path, { ...id, headerSize: 777 }).headerHash, id2.headerHash);
    throws(() => modelIdentity(path, { ...id, headerSize: 20_000 }), /file ends at byte 10000/);
  });
});

function profileOf(counts: number[][], tokens: number[]): ExpertProfile {
  return validateProfile({
    format: PROFILE_FORMAT,
    version: 1,
    model: { ...MODEL, nLayer: counts.length, nExpert: counts[0].length },
    createdAt: "",
    tokens,
    counts,
  });
}

Deno.test("hotSet: highest routing share per layer, balanced across layers", () => {
  // layer 0 seen for 100 tokens, layer 1 for 10 (k=2): raw counts would favour layer 0
  const p = profileOf([[90, 60, 40, 10], [9, 1, 0, 10]], [100, 10]);
  // shares: L0 .9 .6 .4 .1; L1 .9 .1 0 1.0 → 1.0 (7), .9 (0), .9 (4), .6 (1), .4 (2), ...
  assertEquals(Array.from(hotSet(p, 1)), [7]);
  assertEquals(Array.from(hotSet(p, 3)), [0, 4, 7]);
  assertEquals(Array.from(hotSet(p, 5)), [0, 1, 2, 4, 7]);
  // never-routed experts are not pinned, whatever the slot count
  assertEquals(Array.from(hotSet(p, 100)), [0, 1, 2, 3, 4, 5, 7]);
  assertEquals(hotSet(p, 0).length, 0);
});

Deno.test("hotSet from a recorded trace, pinned in a cache, never evicted", () => {
  const spec = {
    seed: 3,
    nLayer: 4,
    nExpert: 32,
    k: 4,
    tokens: 400,
    zipf: 1.1,
    scanEvery: 0,
    scanLen: 0,
  };
  const trace = routingTrace(spec);
  const rec = new ProfileRecorder(4, 32);
  const ids = new Int32Array(4);
  for (let t = 0; t < spec.tokens; t++) {
    for (let l = 0; l < 4; l++) {
      for (let j = 0; j < 4; j++) ids[j] = trace[(t * 4 + l) * 4 + j] - l * 32;
      rec.observe(l, ids, 4, 4);
    }
  }
  assertEquals(Array.from(rec.tokens), [400, 400, 400, 400]);
  const hot = hotSet(rec.toProfile({ ...MODEL, nLayer: 4, nExpert: 32 }), 12);
  assertEquals(hot.length, 12);
  const cache = new ExpertCache({ nLayer: 4, nExpert: 32, slots: 24 });
  for (const k of hot) cache.markLoaded(cache.pin(k).slot);
  replay(cache, routingTrace({ ...spec, seed: 3, scanEvery: 10, scanLen: 5 }));
  for (const k of hot) assert(cache.isPinned(k) && cache.peek(k) >= 0);
  // the hot set spans the layers: each layer's top experts are alike in share
  const perLayer = [0, 0, 0, 0];
  for (const k of hot) perLayer[Math.floor(k / 32)]++;
  assert(perLayer.every((n) => n >= 2), `${perLayer}`);
});

Deno.test("identityOfGGUF: a real GGUF file; another expert count is another model", () => {
  withDir((dir) => {
    const make = (name: string, nExpert: number) => {
      const bytes = encodeGGUF({
        kv: {
          "general.architecture": "qwen3moe",
          "qwen3moe.block_count": 2,
          "qwen3moe.expert_count": nExpert,
        },
        tensors: [{ name: "blk.0.ffn_up_exps.weight", type: GGMLType.F32, shape: [8, 4, nExpert] }],
      });
      const path = join(dir, name);
      writeFileSync(path, bytes);
      return { path, bytes, g: readGGUF(path) };
    };
    const a = make("a.gguf", 4);
    const id = identityOfGGUF(a.g);
    assertEquals(id, {
      arch: "qwen3moe",
      nLayer: 2,
      nExpert: 4,
      fileSize: a.bytes.length,
      headerHash: hashHeader(a.bytes.subarray(0, a.g.headerSize)),
    });
    const b = make("b.gguf", 8);
    const other = identityOfGGUF(b.g);
    assert(other.headerHash !== id.headerHash);
    withDir((d2) => {
      const path = join(d2, "hot.json");
      saveProfile(path, new ProfileRecorder(2, 4).toProfile(id));
      assertEquals(loadProfile(path, identityOfGGUF(readGGUF(a.path))).model, id);
      throws(() => loadProfile(path, other), /different expert count, file size, GGUF header/);
    });
  });
});
