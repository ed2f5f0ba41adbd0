/**
 * Fuzzing the reader: thousands of mutated and truncated files, from a seeded PRNG so every
 * run is the same. Each case must parse or throw a GGUFError carrying an offset and a field,
 * within 200 ms; any other exception fails the test and prints the case to reproduce it.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Rng, VOCAB_DIR } from "./_test_helpers.ts";
import { GGUFError } from "./errors.ts";
import { type GGUFFile, readGGUF } from "./reader.ts";
import { GGMLType, GGUFValueType as V } from "./types.ts";
import { encodeGGUF } from "./writer.ts";

const CASE_LIMIT_MS = 200;

interface Base {
  name: string;
  bytes: Uint8Array;
  /** File offsets of u64 counts and lengths. */
  u64s: number[];
  /** File offsets of u32 type fields (kv value types, array element types, tensor types). */
  types: number[];
  /** File offsets of other tensor-info fields (n_dims u32, dims u64, offset u64). */
  tensorFields: { at: number; size: 4 | 8 }[];
}

function describe(name: string, bytes: Uint8Array): Base {
  const g = readGGUF(bytes);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64s = [8, 16];
  const types: number[] = [];
  const enc = new TextEncoder();
  const walkArray = (at: number): number => {
    // element type u32, count u64, elements; returns the end
    types.push(at);
    u64s.push(at + 4);
    const et = dv.getUint32(at, true);
    const n = Number(dv.getBigUint64(at + 4, true));
    let p = at + 12;
    const fixed = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8][et];
    if (fixed > 0) return p + n * fixed;
    for (let i = 0; i < n; i++) {
      if (et === V.STRING) {
        if (i < 8) u64s.push(p);
        p += 8 + Number(dv.getBigUint64(p, true));
      } else p = walkArray(p);
    }
    return p;
  };
  for (const [key, at] of g.kvOffsets) {
    u64s.push(at - 4 - enc.encode(key).length - 8); // key length
    types.push(at - 4);
    const t = g.kvTypes.get(key)!.type;
    if (t === V.STRING) u64s.push(at);
    if (t === V.ARRAY) walkArray(at);
  }
  const tensorFields: Base["tensorFields"] = [];
  let p = tensorInfoStart(g);
  for (const t of g.tensors) {
    u64s.push(p);
    p += 8 + enc.encode(t.name).length;
    tensorFields.push({ at: p, size: 4 });
    p += 4;
    for (let d = 0; d < t.shape.length; d++, p += 8) tensorFields.push({ at: p, size: 8 });
    types.push(p);
    p += 4;
    tensorFields.push({ at: p, size: 8 });
    p += 8;
  }
  assert.equal(p, g.headerSize);
  return { name, bytes, u64s, types, tensorFields };
}

/** Offset of the first tensor info: the end of the last kv value. */
function tensorInfoStart(g: GGUFFile): number {
  let p = g.headerSize;
  const enc = new TextEncoder();
  for (const t of g.tensors) {
    p -= 8 + enc.encode(t.name).length + 4 + 8 * t.shape.length + 4 + 8;
  }
  return p;
}

function bases(): Base[] {
  const rng = new Rng(7);
  const a = encodeGGUF({
    kv: [
      { key: "general.architecture", value: "llama" },
      { key: "u8", value: 7, type: V.UINT8 },
      { key: "i16", value: -7, type: V.INT16 },
      { key: "f64", value: 0.25, type: V.FLOAT64 },
      { key: "u64", value: 2n ** 60n },
      { key: "b", value: true },
      { key: "toks", value: ["<s>", "é", "", "🦙"] },
      { key: "scores", value: new Float32Array([0.5, -1, 2, 3]) },
      { key: "flags", value: [true, false] },
      { key: "i64s", value: [1n, -1n], type: { type: V.ARRAY, elementType: V.INT64 } },
    ],
    tensors: [
      { name: "tok_embd.weight", type: GGMLType.Q4_K, shape: [256, 4], data: rng.bytes(576) },
      { name: "norm", type: GGMLType.F32, shape: [5] },
      { name: "blk.0.ffn_up_exps", type: GGMLType.Q8_0, shape: [64, 2, 3] },
    ],
  });
  const b = encodeGGUF({
    kv: [
      { key: "nested", value: [[1, 2], ["x", "yz"], [[true], [0.5]]] },
      { key: "empty", value: [], type: { type: V.ARRAY, elementType: V.UINT32 } },
      { key: "s", value: "a longer string value with ünïcödé" },
    ],
    tensors: [
      { name: "a", type: GGMLType.F16, shape: [3, 3] },
      { name: "b", type: GGMLType.MXFP4, shape: [32, 1, 1, 2] },
    ],
    alignment: 64,
  });
  const words = Array.from({ length: 200 }, (_, i) => "w" + i + "ĠÄ".repeat(i % 5));
  const c = encodeGGUF({
    kv: [
      { key: "tokenizer.ggml.tokens", value: words },
      { key: "tokenizer.ggml.token_type", value: new Int32Array(200).fill(1) },
      { key: "u64s", value: [0, 2n ** 64n - 1n], type: { type: V.ARRAY, elementType: V.UINT64 } },
    ],
    tensors: [{ name: "w", type: GGMLType.IQ4_XS, shape: [256, 2] }],
  });
  return [describe("a", a), describe("b", b), describe("c", c)];
}

const HUGE: readonly bigint[] = [
  2n ** 64n - 1n,
  2n ** 63n,
  2n ** 53n,
  2n ** 53n - 1n,
  2n ** 40n,
  2n ** 32n,
  0xffffffffn,
  0x7fffffffn,
  1000000n,
  0n,
  1n,
];

type Mutation = { kind: string; apply: (b: Uint8Array, rng: Rng) => Uint8Array };

function mutations(base: Base): Mutation[] {
  const setU64 = (b: Uint8Array, at: number, v: bigint) => {
    if (at + 8 <= b.length) new DataView(b.buffer).setBigUint64(at, v, true);
  };
  const setU32 = (b: Uint8Array, at: number, v: number) => {
    if (at + 4 <= b.length) new DataView(b.buffer).setUint32(at, v >>> 0, true);
  };
  return [
    { kind: "truncate", apply: (b, r) => b.slice(0, r.int(b.length)) },
    {
      kind: "flip",
      apply: (b, r) => {
        const n = 1 + r.int(8);
        const hdr = b.length - (b.length >> 2);
        for (let i = 0; i < n; i++) b[r.int(r.next() < 0.7 ? hdr : b.length)] ^= 1 << r.int(8);
        return b;
      },
    },
    {
      kind: "huge-u64",
      apply: (b, r) => {
        const v = r.next() < 0.2 ? BigInt(b.length + r.int(64) - 32) : r.pick(HUGE);
        setU64(b, r.pick(base.u64s), v < 0n ? 0n : v);
        return b;
      },
    },
    {
      kind: "swap-type",
      apply: (b, r) => {
        setU32(b, r.pick(base.types), r.next() < 0.9 ? r.int(41) : 0xffffffff);
        return b;
      },
    },
    {
      kind: "tensor-field",
      apply: (b, r) => {
        const f = r.pick(base.tensorFields);
        if (f.size === 4) setU32(b, f.at, r.pick([0, 1, 3, 4, 5, 0xffffffff]));
        else setU64(b, f.at, r.next() < 0.5 ? r.pick(HUGE) : BigInt(r.int(4096)));
        return b;
      },
    },
    {
      kind: "mutate+truncate",
      apply: (b, r) => {
        b[r.int(b.length)] = r.int(256);
        setU64(b, r.pick(base.u64s), r.pick(HUGE));
        return b.slice(0, r.int(b.length + 1));
      },
    },
  ];
}

interface Outcome {
  ok: number;
  errors: Map<string, number>;
  maxMs: number;
}

/** Parse `bytes`; throw (failing the test) unless it parses or throws a well-formed GGUFError. */
function runCase(bytes: Uint8Array, label: string, out: Outcome): void {
  const once = (): number => {
    const t0 = performance.now();
    try {
      const g = readGGUF(bytes);
      for (const t of g.tensors) {
        assert.ok(t.absoluteOffset + t.nbytes <= bytes.length, `${label}: tensor out of file`);
        assert.ok(t.absoluteOffset % g.alignment === 0, `${label}: unaligned tensor`);
      }
      out.ok++;
    } catch (e) {
      if (!(e instanceof GGUFError)) {
        throw new Error(`${label}: non-GGUFError thrown: ${String(e)}`, { cause: e });
      }
      if (e.offset === undefined || e.field === undefined || e.offset > bytes.length) {
        throw new Error(`${label}: GGUFError without a valid offset/field: ${e.message}`);
      }
      out.errors.set(e.code, (out.errors.get(e.code) ?? 0) + 1);
    }
    return performance.now() - t0;
  };
  let ms = once();
  if (ms > CASE_LIMIT_MS) ms = Math.min(ms, once()); // retry once: a GC pause is not a hang
  assert.ok(ms <= CASE_LIMIT_MS, `${label}: took ${ms.toFixed(0)} ms`);
  out.maxMs = Math.max(out.maxMs, ms);
}

function report(name: string, o: Outcome, total: number): void {
  const errs = [...o.errors].sort().map(([c, n]) => `${c}=${n}`).join(" ");
  console.log(`${name}: ${total} cases, ${o.ok} parsed, max ${o.maxMs.toFixed(1)} ms; ${errs}`);
}

Deno.test("fuzz: 2,339 mutated and truncated encoded files", () => {
  const t0 = performance.now();
  const out: Outcome = { ok: 0, errors: new Map(), maxMs: 0 };
  let total = 0;
  for (const base of bases()) {
    const muts = mutations(base);
    const rng = new Rng(0x5eed + base.bytes.length);
    // Every prefix of the header region, then random mutations.
    for (let cut = 0; cut < base.bytes.length; cut += 1 + (cut >> 6)) {
      runCase(base.bytes.slice(0, cut), `${base.name} truncated at ${cut}`, out);
      total++;
    }
    for (let i = 0; i < 500; i++) {
      const m = muts[i % muts.length];
      const seed = rng.int(2 ** 31);
      const bytes = m.apply(base.bytes.slice(), new Rng(seed));
      runCase(bytes, `${base.name} case ${i} ${m.kind} seed ${seed}`, out);
      total++;
    }
  }
  // Random bytes behind a valid magic and version.
  const rng = new Rng(42);
  for (let i = 0; i < 100; i++) {
    const b = rng.bytes(24 + rng.int(400));
    b.set([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0]);
    if (i % 2 === 0) b.set([rng.int(3), 0, 0, 0, 0, 0, 0, 0, rng.int(8), 0, 0, 0, 0, 0, 0, 0], 8);
    runCase(b, `random ${i}`, out);
    total++;
  }
  report("encoded", out, total);
  assert.ok(total >= 1000, `${total} cases`);
  assert.ok(out.ok > 50 && out.errors.size >= 8, "mutations should reach many outcomes");
  const ms = performance.now() - t0;
  console.log(`encoded: total ${ms.toFixed(0)} ms`);
  assert.ok(ms < 10000, `fuzz took ${ms.toFixed(0)} ms`);
});

Deno.test("fuzz: a real vocab file truncated and mutated", () => {
  const t0 = performance.now();
  const bytes = new Uint8Array(readFileSync(VOCAB_DIR + "ggml-vocab-llama-spm.gguf"));
  const base = describe("llama-spm", bytes);
  const out: Outcome = { ok: 0, errors: new Map(), maxMs: 0 };
  const rng = new Rng(2024);
  let total = 0;
  // Cuts spread over the whole file, plus cuts right around every field we know of.
  const cuts = new Set<number>();
  for (let i = 0; i < 60; i++) cuts.add(Math.floor((bytes.length * i) / 60));
  for (const at of base.u64s.concat(base.types)) for (const d of [-1, 0, 3, 9]) cuts.add(at + d);
  for (const cut of cuts) {
    if (cut < 0 || cut >= bytes.length) continue;
    const ms = performance.now();
    runCase(bytes.subarray(0, cut), `vocab truncated at ${cut}`, out);
    total++;
    if (performance.now() - ms > 1000) break;
  }
  const muts = mutations(base).filter((m) => m.kind !== "truncate" && m.kind !== "tensor-field");
  for (let i = 0; i < 80; i++) {
    const m = muts[i % muts.length];
    const seed = rng.int(2 ** 31);
    runCase(m.apply(bytes.slice(), new Rng(seed)), `vocab case ${i} ${m.kind} seed ${seed}`, out);
    total++;
  }
  report("vocab", out, total);
  assert.equal(out.errors.get("truncated")! >= 60, true);
  const ms = performance.now() - t0;
  console.log(`vocab: total ${ms.toFixed(0)} ms`);
  assert.ok(ms < 10000, `vocab fuzz took ${ms.toFixed(0)} ms`);
});
