import assert from "node:assert/strict";
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { ByteBuf } from "./_bytes.ts";
import { expectGGUFError, Rng, VOCAB_DIR, withTempDir } from "./_test_helpers.ts";
import { readGGUF } from "./reader.ts";
import {
  GGML_TYPES,
  GGMLType,
  GGUFValueType as V,
  rowBytes,
  tensorBytes,
  typeByName,
  typeInfo,
} from "./types.ts";
import {
  encodeGGUF,
  type GGUFKVEntry,
  GGUFWriter,
  inferTypeSpec,
  kvEntriesOf,
  planGGUF,
} from "./writer.ts";

function readRange(path: string, offset: number, length: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const b = new Uint8Array(length);
    assert.equal(readSync(fd, b, 0, length, offset), length);
    return b;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// types.ts

Deno.test("type table: sizes from ggml-common.h", () => {
  const expect: Record<string, [number, number, number]> = {
    F32: [0, 1, 4],
    F16: [1, 1, 2],
    Q4_0: [2, 32, 18],
    Q4_1: [3, 32, 20],
    Q5_0: [6, 32, 22],
    Q5_1: [7, 32, 24],
    Q8_0: [8, 32, 34],
    Q8_1: [9, 32, 36],
    Q2_K: [10, 256, 84],
    Q3_K: [11, 256, 110],
    Q4_K: [12, 256, 144],
    Q5_K: [13, 256, 176],
    Q6_K: [14, 256, 210],
    Q8_K: [15, 256, 292],
    IQ2_XXS: [16, 256, 66],
    IQ2_XS: [17, 256, 74],
    IQ3_XXS: [18, 256, 98],
    IQ1_S: [19, 256, 50],
    IQ4_NL: [20, 32, 18],
    IQ3_S: [21, 256, 110],
    IQ2_S: [22, 256, 82],
    IQ4_XS: [23, 256, 136],
    I8: [24, 1, 1],
    I16: [25, 1, 2],
    I32: [26, 1, 4],
    I64: [27, 1, 8],
    F64: [28, 1, 8],
    IQ1_M: [29, 256, 56],
    BF16: [30, 1, 2],
    TQ1_0: [34, 256, 54],
    TQ2_0: [35, 256, 66],
    MXFP4: [39, 32, 17],
  };
  assert.equal(GGML_TYPES.length, 32);
  for (const [name, [id, bs, ts]] of Object.entries(expect)) {
    const t = typeInfo(id);
    assert.deepEqual([t.name, t.blockSize, t.typeSize], [name, bs, ts]);
    assert.equal(GGMLType[name as keyof typeof GGMLType], id);
  }
  for (const removed of [4, 5, 31, 32, 33, 36, 37, 38, 40, -1, 1.5]) {
    expectGGUFError(() => typeInfo(removed), "unknown_type");
  }
  assert.equal(typeByName("q4_k")?.id, 12);
  assert.equal(typeByName("bf16")?.typeSize, 2);
  assert.equal(typeByName("Q4_2"), undefined);
});

Deno.test("rowBytes and tensorBytes", () => {
  assert.equal(rowBytes(GGMLType.Q4_K, 4096), 16 * 144);
  assert.equal(rowBytes(GGMLType.F32, 7), 28);
  assert.equal(rowBytes(GGMLType.MXFP4, 64), 34);
  expectGGUFError(() => rowBytes(GGMLType.Q4_K, 100), "bad_shape", { message: /block size 256/ });
  assert.equal(tensorBytes(GGMLType.Q8_0, [64, 10]), 680);
  assert.equal(tensorBytes(GGMLType.Q6_K, [2048, 768, 128]), 8 * 210 * 768 * 128);
  expectGGUFError(() => tensorBytes(GGMLType.F32, []), "bad_shape");
  expectGGUFError(() => tensorBytes(GGMLType.F32, [4, 0]), "bad_shape");
  expectGGUFError(() => tensorBytes(GGMLType.Q8_0, [33, 2]), "bad_shape");
  expectGGUFError(() => tensorBytes(GGMLType.F32, [2 ** 30, 2 ** 30, 2 ** 30]), "overflow");
  expectGGUFError(() => tensorBytes(3.5, [4]), "unknown_type");
});

// ---------------------------------------------------------------------------------------------
// Metadata round trips

const ALL_TYPES_KV: GGUFKVEntry[] = [
  { key: "u8", value: 255, type: V.UINT8 },
  { key: "i8", value: -128, type: V.INT8 },
  { key: "u16", value: 65535, type: V.UINT16 },
  { key: "i16", value: -32768, type: V.INT16 },
  { key: "u32", value: 4294967295, type: V.UINT32 },
  { key: "i32", value: -2147483648, type: V.INT32 },
  { key: "f32", value: Math.fround(-3.14159), type: V.FLOAT32 },
  { key: "f32.one", value: 1, type: V.FLOAT32 },
  { key: "bool.t", value: true },
  { key: "bool.f", value: false },
  { key: "str.empty", value: "" },
  { key: "str.unicode", value: "héllo 世界 🦙 \u0000 end" },
  { key: "u64.max", value: 0xffffffffffffffffn, type: V.UINT64 },
  { key: "u64.safe", value: Number.MAX_SAFE_INTEGER, type: V.UINT64 },
  { key: "u64.2^53", value: 2n ** 53n, type: V.UINT64 },
  { key: "u64.zero", value: 0, type: V.UINT64 },
  { key: "i64.min", value: -(2n ** 63n), type: V.INT64 },
  { key: "i64.max", value: 2n ** 63n - 1n, type: V.INT64 },
  { key: "i64.negsafe", value: -Number.MAX_SAFE_INTEGER, type: V.INT64 },
  { key: "i64.-1", value: -1, type: V.INT64 },
  { key: "f64", value: Math.PI, type: V.FLOAT64 },
  { key: "f64.tiny", value: 5e-324, type: V.FLOAT64 },
  { key: "f64.negzero", value: -0, type: V.FLOAT64 },
  { key: "f32.inf", value: -Infinity, type: V.FLOAT32 },
  { key: "arr.u8", value: new Uint8Array([0, 1, 255]) },
  { key: "arr.i8", value: new Int8Array([-128, 0, 127]) },
  { key: "arr.u16", value: new Uint16Array([0, 65535]) },
  { key: "arr.i16", value: new Int16Array([-32768, 32767]) },
  { key: "arr.u32", value: new Uint32Array([0, 4294967295]) },
  { key: "arr.i32", value: new Int32Array([-2147483648, 2147483647]) },
  { key: "arr.f32", value: new Float32Array([1.5, -0.25, 1e-30]) },
  { key: "arr.f64", value: new Float64Array([Math.E, -1e300]) },
  { key: "arr.u8.fromnumbers", value: [1, 2, 3], type: { type: V.ARRAY, elementType: V.UINT8 } },
  {
    key: "arr.u64",
    value: [0, 2n ** 64n - 1n, 12345],
    type: { type: V.ARRAY, elementType: V.UINT64 },
  },
  {
    key: "arr.i64",
    value: [-(2n ** 63n), -5, 2n ** 62n],
    type: { type: V.ARRAY, elementType: V.INT64 },
  },
  { key: "arr.bool", value: [true, false, true] },
  { key: "arr.str", value: ["", "a", "日本語", "x".repeat(300)] },
  { key: "arr.empty.str", value: [], type: { type: V.ARRAY, elementType: V.STRING } },
  { key: "arr.empty.f32", value: new Float32Array(0) },
  { key: "arr.empty.arr", value: [], type: { type: V.ARRAY, elementType: V.ARRAY } },
  {
    key: "arr.nested",
    value: [[1, 2], ["a", "b"], [], [[true], new Int16Array([-7])]],
    type: {
      type: V.ARRAY,
      items: [V.ARRAY, V.ARRAY, { type: V.ARRAY, elementType: V.FLOAT64 }, V.ARRAY],
    },
  },
];

function normalize(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return { [v.constructor.name]: Array.from(v as unknown as number[]) };
  if (Array.isArray(v)) return v.map(normalize);
  return v;
}

Deno.test("every value type round-trips with its declared type", () => {
  const bytes = encodeGGUF({ kv: ALL_TYPES_KV });
  const g = readGGUF(bytes);
  assert.equal(g.version, 3);
  assert.equal(g.kv.size, ALL_TYPES_KV.length);
  assert.deepEqual([...g.kv.keys()], ALL_TYPES_KV.map((e) => e.key));
  const kv = g.kv;
  assert.equal(kv.get("u8"), 255);
  assert.equal(kv.get("i8"), -128);
  assert.equal(kv.get("u32"), 4294967295);
  assert.equal(kv.get("i32"), -2147483648);
  assert.equal(kv.get("f32"), Math.fround(-3.14159));
  assert.equal(kv.get("f32.one"), 1);
  assert.equal(kv.get("bool.t"), true);
  assert.equal(kv.get("bool.f"), false);
  assert.equal(kv.get("str.empty"), "");
  assert.equal(kv.get("str.unicode"), "héllo 世界 🦙 \u0000 end");
  // 64-bit: a number when safe, a bigint beyond.
  assert.equal(kv.get("u64.max"), 0xffffffffffffffffn);
  assert.equal(kv.get("u64.safe"), Number.MAX_SAFE_INTEGER);
  assert.equal(kv.get("u64.2^53"), 2n ** 53n);
  assert.equal(kv.get("u64.zero"), 0);
  assert.equal(kv.get("i64.min"), -(2n ** 63n));
  assert.equal(kv.get("i64.max"), 2n ** 63n - 1n);
  assert.equal(kv.get("i64.negsafe"), -Number.MAX_SAFE_INTEGER);
  assert.equal(kv.get("i64.-1"), -1);
  assert.equal(kv.get("f64"), Math.PI);
  assert.equal(kv.get("f64.tiny"), 5e-324);
  assert.ok(Object.is(kv.get("f64.negzero"), -0));
  assert.equal(kv.get("f32.inf"), -Infinity);
  assert.deepEqual(normalize(kv.get("arr.u8")), { Uint8Array: [0, 1, 255] });
  assert.deepEqual(normalize(kv.get("arr.i8")), { Int8Array: [-128, 0, 127] });
  assert.deepEqual(normalize(kv.get("arr.u16")), { Uint16Array: [0, 65535] });
  assert.deepEqual(normalize(kv.get("arr.i16")), { Int16Array: [-32768, 32767] });
  assert.deepEqual(normalize(kv.get("arr.u32")), { Uint32Array: [0, 4294967295] });
  assert.deepEqual(normalize(kv.get("arr.i32")), { Int32Array: [-2147483648, 2147483647] });
  assert.deepEqual(normalize(kv.get("arr.f32")), {
    Float32Array: [1.5, -0.25, Math.fround(1e-30)],
  });
  assert.deepEqual(normalize(kv.get("arr.f64")), { Float64Array: [Math.E, -1e300] });
  assert.deepEqual(normalize(kv.get("arr.u8.fromnumbers")), { Uint8Array: [1, 2, 3] });
  assert.deepEqual(kv.get("arr.u64"), [0, 2n ** 64n - 1n, 12345]);
  assert.deepEqual(kv.get("arr.i64"), [-(2n ** 63n), -5, 2n ** 62n]);
  assert.deepEqual(kv.get("arr.bool"), [true, false, true]);
  assert.deepEqual(kv.get("arr.str"), ["", "a", "日本語", "x".repeat(300)]);
  assert.deepEqual(kv.get("arr.empty.str"), []);
  assert.deepEqual(normalize(kv.get("arr.empty.f32")), { Float32Array: [] });
  assert.deepEqual(kv.get("arr.empty.arr"), []);
  assert.deepEqual(normalize(kv.get("arr.nested")), [
    { Uint32Array: [1, 2] },
    ["a", "b"],
    { Float64Array: [] },
    [[true], { Int16Array: [-7] }],
  ]);
  // Declared types.
  const t = g.kvTypes;
  assert.deepEqual(t.get("u8"), { type: V.UINT8 });
  assert.deepEqual(t.get("f32.one"), { type: V.FLOAT32 });
  assert.deepEqual(t.get("u64.zero"), { type: V.UINT64 });
  assert.deepEqual(t.get("arr.u8.fromnumbers"), { type: V.ARRAY, elementType: V.UINT8 });
  assert.deepEqual(t.get("arr.empty.arr"), { type: V.ARRAY, elementType: V.ARRAY, items: [] });
  assert.deepEqual(t.get("arr.nested"), {
    type: V.ARRAY,
    elementType: V.ARRAY,
    items: [
      { type: V.ARRAY, elementType: V.UINT32 },
      { type: V.ARRAY, elementType: V.STRING },
      { type: V.ARRAY, elementType: V.FLOAT64 },
      {
        type: V.ARRAY,
        elementType: V.ARRAY,
        items: [
          { type: V.ARRAY, elementType: V.BOOL },
          { type: V.ARRAY, elementType: V.INT16 },
        ],
      },
    ],
  });
  // Rewriting with the read types reproduces the file byte for byte.
  assert.deepEqual(encodeGGUF({ kv: kvEntriesOf(g) }), bytes);
});

Deno.test("value types are inferred as documented", () => {
  const cases: [unknown, unknown][] = [
    ["s", { type: V.STRING }],
    [true, { type: V.BOOL }],
    [7, { type: V.UINT32 }],
    [4294967295, { type: V.UINT32 }],
    [4294967296, { type: V.UINT64 }],
    [-1, { type: V.INT32 }],
    [-2147483649, { type: V.INT64 }],
    [1.5, { type: V.FLOAT32 }],
    [NaN, { type: V.FLOAT32 }],
    [5n, { type: V.UINT64 }],
    [-5n, { type: V.INT64 }],
    [[1, 2], { type: V.ARRAY, elementType: V.UINT32 }],
    [[1, -2], { type: V.ARRAY, elementType: V.INT32 }],
    [[1, 2.5], { type: V.ARRAY, elementType: V.FLOAT32 }],
    [[1, 2n ** 40n], { type: V.ARRAY, elementType: V.UINT64 }],
    [["a"], { type: V.ARRAY, elementType: V.STRING }],
    [[false], { type: V.ARRAY, elementType: V.BOOL }],
    [new Float32Array(2), { type: V.ARRAY, elementType: V.FLOAT32 }],
    [new Int8Array(2), { type: V.ARRAY, elementType: V.INT8 }],
    [[[1]], {
      type: V.ARRAY,
      elementType: V.ARRAY,
      items: [{ type: V.ARRAY, elementType: V.UINT32 }],
    }],
  ];
  for (const [v, spec] of cases) assert.deepEqual(inferTypeSpec(v as never), spec, String(v));
  expectGGUFError(() => inferTypeSpec([]), "bad_value", { message: /empty array/ });
  expectGGUFError(() => inferTypeSpec(["a", 1]), "bad_value", { field: "value[1]" });
  expectGGUFError(() => inferTypeSpec([1, "a"]), "bad_value", { field: "value[1]" });
});

Deno.test("metadata values are checked against their declared type", () => {
  const bad = (value: unknown, type: GGUFKVEntry["type"], message?: RegExp) =>
    expectGGUFError(
      () => encodeGGUF({ kv: [{ key: "k", value: value as never, type }] }),
      "bad_value",
      {
        field: 'kv["k"]',
        message,
      },
    );
  bad(256, V.UINT8, /256 \(number\) is not a valid UINT8/);
  bad(-1, V.UINT32);
  bad(1.5, V.INT32);
  bad(2 ** 31, V.INT32);
  bad(2 ** 53, V.UINT64, /safe integer or a bigint/);
  bad(-1n, V.UINT64);
  bad(2n ** 63n, V.INT64);
  bad("1", V.FLOAT32);
  bad(1, V.BOOL);
  bad(1, V.STRING);
  bad("x", V.ARRAY);
  expectGGUFError(
    () =>
      encodeGGUF({
        kv: [{ key: "k", value: [1, 300], type: { type: V.ARRAY, elementType: V.UINT8 } }],
      }),
    "bad_value",
    { field: 'kv["k"][1]' },
  );
  expectGGUFError(
    () => encodeGGUF({ kv: [{ key: "k", value: 1, type: 13 as never }] }),
    "unknown_type",
  );
  expectGGUFError(
    () => encodeGGUF({ kv: [{ key: "a", value: 1 }, { key: "a", value: 2 }] }),
    "duplicate_name",
    { field: 'kv["a"]' },
  );
});

Deno.test("metadata input forms: record, map, entries", () => {
  const a = encodeGGUF({ kv: { "general.architecture": "llama", "llama.block_count": 2 } });
  const b = encodeGGUF({
    kv: new Map<string, string | number>([["general.architecture", "llama"], [
      "llama.block_count",
      2,
    ]]),
  });
  const c = encodeGGUF({
    kv: [
      { key: "general.architecture", value: "llama" },
      { key: "llama.block_count", value: 2, type: V.UINT32 },
    ],
  });
  assert.deepEqual(a, b);
  assert.deepEqual(a, c);
  // magic, version 3, 0 tensors, 2 kv, then the first key
  const dv = new DataView(a.buffer, a.byteOffset);
  assert.deepEqual([...a.subarray(0, 4)], [0x47, 0x47, 0x55, 0x46]);
  assert.equal(dv.getUint32(4, true), 3);
  assert.equal(dv.getBigUint64(8, true), 0n);
  assert.equal(dv.getBigUint64(16, true), 2n);
  assert.equal(dv.getBigUint64(24, true), 20n);
  assert.equal(new TextDecoder().decode(a.subarray(32, 52)), "general.architecture");
  assert.equal(a.length % 32, 0);
});

// ---------------------------------------------------------------------------------------------
// Tensors

Deno.test("every tensor type round-trips through GGUFWriter, alignment 32 and 64", () => {
  const rng = new Rng(1234);
  for (const alignment of [32, 64]) {
    withTempDir((dir) => {
      const path = join(dir, "all.gguf");
      const descs = GGML_TYPES.map((t, i) => ({
        name: `t${i}.${t.ggmlName}`,
        type: t.id,
        shape: [t.blockSize * (1 + (i % 3)), 1 + (i % 2), 3],
      }));
      const datas = descs.map((d) => rng.bytes(tensorBytes(d.type, d.shape)));
      const w = new GGUFWriter(path, {
        kv: { "general.architecture": "test" },
        tensors: descs,
        alignment,
      });
      assert.equal(w.nextTensor, "t0.f32");
      descs.forEach((d, i) => w.writeTensor(d.name, datas[i]));
      assert.equal(w.nextTensor, undefined);
      w.close();

      const g = readGGUF(path);
      assert.equal(g.alignment, alignment);
      assert.equal(g.kv.get("general.alignment"), alignment === 32 ? undefined : alignment);
      assert.equal(g.dataOffset % alignment, 0);
      assert.equal(g.tensors.length, GGML_TYPES.length);
      assert.equal(statSync(path).size, w.layout.fileSize);
      assert.equal(g.fileSize, w.layout.fileSize);
      let expectOffset = 0;
      g.tensors.forEach((t, i) => {
        const ti = GGML_TYPES[i];
        assert.equal(t.name, descs[i].name);
        assert.equal(t.type, ti.id);
        assert.equal(t.typeName, ti.name);
        assert.deepEqual(t.shape, descs[i].shape);
        assert.equal(t.nElements, descs[i].shape.reduce((a, b) => a * b));
        assert.equal(
          t.nbytes,
          (descs[i].shape[0] / ti.blockSize) * ti.typeSize * descs[i].shape[1] * 3,
        );
        assert.equal(t.offset, expectOffset);
        assert.equal(t.offset % alignment, 0);
        assert.equal(t.absoluteOffset, g.dataOffset + t.offset);
        assert.deepEqual(readRange(path, t.absoluteOffset, t.nbytes), datas[i]);
        expectOffset += Math.ceil(t.nbytes / alignment) * alignment;
        assert.equal(g.tensorByName.get(t.name), t);
      });
      // Padding between tensors is zeros.
      const t0 = g.tensors[0];
      const gap = readRange(path, t0.absoluteOffset + t0.nbytes, g.tensors[1].offset - t0.nbytes);
      assert.ok(gap.every((x) => x === 0));
    });
  }
});

Deno.test("alignment from general.alignment in the metadata", () => {
  const bytes = encodeGGUF({
    kv: [{ key: "general.alignment", value: 128, type: V.UINT32 }],
    tensors: [
      { name: "a", type: GGMLType.F32, shape: [3] },
      { name: "b", type: GGMLType.F16, shape: [5] },
    ],
  });
  const g = readGGUF(bytes);
  assert.equal(g.alignment, 128);
  assert.equal(g.dataOffset % 128, 0);
  assert.deepEqual(g.tensors.map((t) => [t.offset, t.nbytes]), [[0, 12], [128, 10]]);
  assert.equal(bytes.length, g.dataOffset + 256);
  expectGGUFError(
    () => planGGUF({ kv: [{ key: "general.alignment", value: 64 }], alignment: 32 }),
    "bad_alignment",
    { message: /differs/ },
  );
  expectGGUFError(() => planGGUF({ alignment: 48 }), "bad_alignment", { field: "alignment" });
  expectGGUFError(
    () => planGGUF({ kv: [{ key: "general.alignment", value: 64, type: V.UINT64 }] }),
    "bad_alignment",
    { message: /must be UINT32/ },
  );
});

Deno.test("multi-chunk writes of a large tensor", () => {
  withTempDir((dir) => {
    const path = join(dir, "chunks.gguf");
    const rng = new Rng(99);
    const big = { name: "big", type: GGMLType.Q8_0, shape: [4096, 260] }; // 1,131,520 bytes
    const small = { name: "small", type: GGMLType.F32, shape: [7] };
    const bigData = rng.bytes(tensorBytes(big.type, big.shape));
    const smallData = rng.bytes(28);
    const w = new GGUFWriter(path, { tensors: [big, small] });
    let off = 0;
    const sizes = [1, 1000, 4095, 65536, 333333];
    for (let i = 0; off < bigData.length; i++) {
      const n = Math.min(sizes[i % sizes.length], bigData.length - off);
      w.writeTensorChunk("big", bigData.subarray(off, off + n));
      off += n;
    }
    assert.equal(w.nextTensor, "small");
    w.writeTensorChunk("small", smallData.subarray(0, 0)); // empty chunk is fine
    w.writeTensorChunk("small", smallData.subarray(0, 10));
    w.writeTensorChunk("small", smallData.subarray(10));
    w.close();
    const g = readGGUF(path);
    const [tb, ts] = g.tensors;
    assert.equal(tb.nbytes, 1131520);
    assert.deepEqual(readRange(path, tb.absoluteOffset, tb.nbytes), bigData);
    assert.deepEqual(readRange(path, ts.absoluteOffset, 28), smallData);
    assert.equal(ts.offset, 1131520); // already a multiple of 32
    assert.equal(statSync(path).size, g.dataOffset + 1131520 + 32);
  });
});

Deno.test("writer misuse is a typed error", () => {
  withTempDir((dir) => {
    const path = join(dir, "bad.gguf");
    const tensors = [
      { name: "a", type: GGMLType.F32, shape: [4] },
      { name: "b", type: GGMLType.F32, shape: [2] },
    ];
    const w = new GGUFWriter(path, { tensors });
    expectGGUFError(() => w.writeTensor("b", new Uint8Array(8)), "writer_state", {
      message: /expected tensor "a" next/,
    });
    expectGGUFError(() => w.writeTensor("a", new Uint8Array(15)), "bad_value", {
      message: /needs 16 bytes, got 15/,
    });
    w.writeTensorChunk("a", new Uint8Array(10));
    expectGGUFError(() => w.writeTensorChunk("a", new Uint8Array(7)), "bad_value", {
      message: /10 written, chunk of 7/,
    });
    expectGGUFError(() => w.writeTensor("a", new Uint8Array(16)), "writer_state");
    w.writeTensorChunk("a", new Uint8Array(6));
    expectGGUFError(() => w.close(), "writer_state", {
      field: 'tensor "b"',
      message: /closed before tensor "b" was written \(0 of 8 bytes\)/,
    });
    expectGGUFError(() => w.writeTensor("b", new Uint8Array(8)), "writer_state", {
      message: /closed/,
    });
    w.abort();
    assert.equal(existsSync(path), false);

    const w2 = new GGUFWriter(path, { tensors: tensors.slice(0, 1) });
    w2.writeTensor("a", new Uint8Array(16));
    expectGGUFError(() => w2.writeTensor("c", new Uint8Array(1)), "writer_state", {
      message: /all tensors are written/,
    });
    w2.close();
    w2.close(); // idempotent
    assert.equal(readGGUF(path).tensors[0].nbytes, 16);
  });
  const plan = (tensors: { name: string; type: number; shape: number[] }[]) => () =>
    planGGUF({ tensors });
  expectGGUFError(
    plan([{ name: "a", type: 0, shape: [1] }, { name: "a", type: 0, shape: [1] }]),
    "duplicate_name",
    {
      field: "tensor_infos[1].name",
    },
  );
  expectGGUFError(plan([{ name: "a", type: 4, shape: [32] }]), "unknown_type", {
    field: "tensor_infos[0].type",
  });
  expectGGUFError(plan([{ name: "a", type: GGMLType.Q4_0, shape: [33] }]), "bad_shape", {
    field: "tensor_infos[0].dims",
  });
  expectGGUFError(plan([{ name: "a", type: 0, shape: [] }]), "bad_shape", {
    field: "tensor_infos[0].n_dims",
  });
  expectGGUFError(plan([{ name: "a", type: 0, shape: [1, 1, 1, 1, 1] }]), "bad_shape");
  expectGGUFError(plan([{ name: "a", type: 0, shape: [2, -1] }]), "bad_shape");
  expectGGUFError(plan([{ name: "x".repeat(64), type: 0, shape: [1] }]), "bad_value", {
    message: /63 bytes/,
  });
  expectGGUFError(
    () => encodeGGUF({ tensors: [{ name: "a", type: 0, shape: [2], data: new Uint8Array(7) }] }),
    "bad_value",
    { message: /needs 8 bytes, got 7/ },
  );
  expectGGUFError(() => new GGUFWriter("/nonexistent-dir/x.gguf", {}), "io", {
    message: /nonexistent-dir/,
  });
});

// ---------------------------------------------------------------------------------------------
// Real files

Deno.test("rewriting a llama.cpp vocab file reproduces its bytes", () => {
  const path = VOCAB_DIR + "ggml-vocab-llama-spm.gguf";
  const orig = new Uint8Array(readFileSync(path));
  const g = readGGUF(orig);
  const again = encodeGGUF({ kv: kvEntriesOf(g) });
  // llama.cpp does not pad a file without tensors; we pad the header to the alignment.
  assert.equal(again.length, Math.ceil(orig.length / 32) * 32);
  assert.deepEqual(again.subarray(0, orig.length), orig);
  assert.ok(again.subarray(orig.length).every((x) => x === 0));
});

Deno.test("ByteBuf encodes little-endian", () => {
  const b = new ByteBuf(1).u8(1).u16(0x0302).u32(0x07060504).u64(2n ** 64n - 1n).i64(-2).str("é");
  assert.deepEqual([...b.view()], [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    255,
    255,
    255,
    255,
    255,
    255,
    255,
    255,
    254,
    255,
    255,
    255,
    255,
    255,
    255,
    255,
    2,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0xc3,
    0xa9,
  ]);
});
