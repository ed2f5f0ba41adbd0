import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { readdirSync, readFileSync } from "node:fs";
import { ByteBuf } from "./_bytes.ts";
import { expectGGUFError, VOCAB_DIR } from "./_test_helpers.ts";
import { GGUFError } from "./errors.ts";
import {
  bufferSource,
  getArray,
  getBool,
  getNumber,
  getOptionalArray,
  getOptionalBool,
  getOptionalNumber,
  getOptionalString,
  getString,
  getStringArray,
  getValue,
  readGGUF,
} from "./reader.ts";
import { GGMLType, GGUFValueType as V } from "./types.ts";
import { encodeGGUF } from "./writer.ts";

const parse = (b: ByteBuf | Uint8Array) => () =>
  readGGUF(b instanceof ByteBuf ? b.view() : b, { path: "t.gguf" });

/** magic, version, tensor count, kv count: 24 bytes; the first kv starts at 24. */
function header(nTensors: number | bigint, nKV: number | bigint, version = 3): ByteBuf {
  return new ByteBuf().raw(new Uint8Array([0x47, 0x47, 0x55, 0x46])).u32(version).u64(nTensors).u64(
    nKV,
  );
}

/** Append a tensor info; returns the file offset of its `offset` field. */
function tensorInfo(
  b: ByteBuf,
  name: string,
  dims: (number | bigint)[],
  type: number,
  offset: number | bigint,
): number {
  b.str(name).u32(dims.length);
  for (const d of dims) b.u64(d);
  b.u32(type);
  const at = b.length;
  b.u64(offset);
  return at;
}

// ---------------------------------------------------------------------------------------------
// Header

Deno.test("bad magic", () => {
  const b = new ByteBuf().raw(new TextEncoder().encode("GGML")).u32(3).u64(0).u64(0);
  const e = expectGGUFError(parse(b), "bad_magic", { offset: 0, field: "header.magic" });
  assert.equal(
    e.message,
    'GGUF t.gguf: bad magic at byte 0 while reading header.magic (expected "GGUF", got 0x47 0x47 0x4d 0x4c)',
  );
  assert.equal(e.path, "t.gguf");
});

Deno.test("versions: 2 and 3 read; 1, big-endian and unknown rejected", () => {
  assert.equal(readGGUF(header(0, 0, 2).view()).version, 2);
  assert.equal(readGGUF(header(0, 0, 3).view()).version, 3);
  expectGGUFError(parse(header(0, 0, 1)), "unsupported_version", {
    offset: 4,
    field: "header.version",
    message: /v1 is not supported/,
  });
  // A big-endian v3 file: version bytes 00 00 00 03.
  const be = new ByteBuf().raw(new Uint8Array([0x47, 0x47, 0x55, 0x46, 0, 0, 0, 3])).raw(
    new Uint8Array(16),
  );
  expectGGUFError(parse(be), "unsupported_version", {
    offset: 4,
    message: /big-endian GGUF v3 is not supported/,
  });
  expectGGUFError(parse(header(0, 0, 4)), "unsupported_version", { message: /version 4/ });
});

Deno.test("truncated header fields", () => {
  expectGGUFError(parse(new Uint8Array(0)), "truncated", { offset: 0, field: "header.magic" });
  expectGGUFError(parse(new Uint8Array([0x47, 0x47])), "truncated", { offset: 0 });
  const full = header(0, 0).view();
  expectGGUFError(parse(full.subarray(0, 6)), "truncated", { offset: 4, field: "header.version" });
  expectGGUFError(parse(full.subarray(0, 15)), "truncated", {
    offset: 8,
    field: "header.tensor_count",
  });
  expectGGUFError(parse(full.subarray(0, 23)), "truncated", {
    offset: 16,
    field: "header.kv_count",
  });
});

Deno.test("counts beyond 2^53 or beyond the file are rejected before allocating", () => {
  expectGGUFError(parse(header(2n ** 62n, 0)), "overflow", {
    offset: 8,
    field: "header.tensor_count",
    message: /4611686018427387904, beyond 2\^53/,
  });
  expectGGUFError(parse(header(0, 2n ** 64n - 1n)), "overflow", { offset: 16 });
  expectGGUFError(parse(header(0, 2 ** 40)), "truncated", {
    offset: 16,
    field: "header.kv_count",
    message: /1099511627776 kv pairs need at least/,
  });
  expectGGUFError(parse(header(1000, 0)), "truncated", { offset: 8, field: "header.tensor_count" });
});

// ---------------------------------------------------------------------------------------------
// Metadata

Deno.test("truncated string: offset, field and message", () => {
  const b = header(0, 2);
  b.str("a").u32(V.UINT32).u32(1);
  const at = b.length; // kv[1].key
  b.str("name").u32(V.STRING);
  const valueAt = b.length;
  b.u64(1000).raw(new Uint8Array(10));
  const e = expectGGUFError(parse(b), "truncated", { offset: valueAt, field: "kv[1].value" });
  assert.equal(
    e.message,
    `GGUF t.gguf: truncated at byte ${valueAt} while reading kv[1].value ` +
      `(key "name"; string of 1000 bytes; file has ${b.length} bytes)`,
  );
  // Cut inside the key of kv[1].
  expectGGUFError(parse(b.view().subarray(0, at + 10)), "truncated", {
    offset: at,
    field: "kv[1].key",
  });
});

Deno.test("a string length of 2^60 is an overflow, 2^50 is truncated, neither allocates", () => {
  const mk = (len: bigint) => {
    const b = header(0, 1);
    b.str("k").u32(V.STRING).u64(len).raw(new Uint8Array(4));
    return b;
  };
  expectGGUFError(parse(mk(2n ** 60n)), "overflow", { offset: 37, field: "kv[0].value" });
  expectGGUFError(parse(mk(2n ** 50n)), "truncated", {
    offset: 37,
    message: /string of 1125899906842624 bytes/,
  });
  // Same for keys.
  const k = header(0, 1).u64(2n ** 50n).raw(new Uint8Array(16));
  expectGGUFError(parse(k), "truncated", { offset: 24, field: "kv[0].key" });
});

Deno.test("array lengths beyond 2^53 or beyond the file", () => {
  const mk = (et: number, count: bigint) => header(0, 1).str("k").u32(V.ARRAY).u32(et).u64(count);
  expectGGUFError(parse(mk(V.UINT32, 2n ** 40n)), "truncated", {
    offset: 37,
    field: "kv[0].value",
    message: /array of 1099511627776 UINT32 needs at least 4398046511104 bytes/,
  });
  expectGGUFError(parse(mk(V.STRING, 2n ** 40n)), "truncated", { offset: 37 });
  expectGGUFError(parse(mk(V.ARRAY, 2n ** 40n)), "truncated", { offset: 37 });
  expectGGUFError(parse(mk(V.UINT8, 2n ** 60n)), "overflow", { offset: 41 });
  // An inner array that lies: the field names the element.
  const n = header(0, 1).str("k").u32(V.ARRAY).u32(V.ARRAY).u64(2);
  n.u32(V.UINT8).u64(1).u8(5);
  const innerAt = n.length;
  n.u32(V.UINT16).u64(1000);
  expectGGUFError(parse(n), "truncated", { offset: innerAt, field: "kv[0].value[1]" });
});

Deno.test("duplicate keys", () => {
  const b = header(0, 2).str("general.name").u32(V.UINT8).u8(1);
  const at = b.length;
  b.str("general.name").u32(V.UINT8).u8(2);
  expectGGUFError(parse(b), "duplicate_name", {
    offset: at,
    field: "kv[1].key",
    message: /key "general.name" appears twice/,
  });
});

Deno.test("unknown value types", () => {
  expectGGUFError(parse(header(0, 1).str("k").u32(13).u32(0)), "unknown_type", {
    offset: 33,
    field: "kv[0].type",
    message: /key "k"; value type 13/,
  });
  expectGGUFError(parse(header(0, 1).str("k").u32(V.ARRAY).u32(99).u64(0)), "unknown_type", {
    offset: 37,
    field: "kv[0].value",
  });
});

Deno.test("bool bytes must be 0 or 1", () => {
  expectGGUFError(parse(header(0, 1).str("k").u32(V.BOOL).u8(2)), "bad_value", {
    offset: 37,
    field: "kv[0].value",
    message: /bool byte is 2/,
  });
  const arr = header(0, 1).str("k").u32(V.ARRAY).u32(V.BOOL).u64(5).raw(
    new Uint8Array([1, 0, 1, 7, 0]),
  );
  expectGGUFError(parse(arr), "bad_value", { offset: 49 + 3, field: "kv[0].value[3]" });
});

Deno.test("invalid UTF-8 is a typed error, in keys and nested values", () => {
  const s = (bytes: number[]) => new ByteBuf().u64(bytes.length).raw(new Uint8Array(bytes));
  const key = header(0, 1).raw(s([0x61, 0xff]).view()).u32(V.UINT8).u8(0);
  expectGGUFError(parse(key), "bad_utf8", { offset: 24, field: "kv[0].key" });
  for (
    const bad of [
      [0xc0, 0x80], // overlong NUL
      [0xe0, 0x80, 0x80], // overlong
      [0xed, 0xa0, 0x80], // surrogate
      [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      [0xe2, 0x82], // cut sequence
      [0x80], // lone continuation
      [...new Array(100).fill(0x61), 0xfe], // long string (TextDecoder path)
    ]
  ) {
    const b = header(0, 1).str("k").u32(V.ARRAY).u32(V.STRING).u64(3);
    b.str("ok").str("é");
    const at = b.length;
    b.raw(s(bad).view());
    expectGGUFError(parse(b), "bad_utf8", { offset: at, field: "kv[0].value[2]" });
  }
  // Valid edge cases decode exactly (short path and TextDecoder path agree).
  const good = ["\u{10FFFF}", "\u{FEFF}x", "\u07FF\u0800\uFFFD", "𝄞".repeat(40), "\u0000"];
  const b = encodeGGUF({ kv: [{ key: "k", value: good }] });
  assert.deepEqual(readGGUF(b).kv.get("k"), good);
});

Deno.test("arrays nested deeper than 16 are rejected", () => {
  const mk = (depth: number) => {
    const b = header(0, 1).str("k").u32(V.ARRAY);
    for (let i = 0; i < depth; i++) b.u32(V.ARRAY).u64(1);
    b.u32(V.UINT8).u64(0);
    return b;
  };
  assert.ok(readGGUF(mk(15).view()).kv.has("k"));
  expectGGUFError(parse(mk(16)), "bad_value", { message: /nested deeper than 16/ });
  expectGGUFError(parse(mk(100000)), "bad_value");
});

Deno.test("general.alignment must be a UINT32 power of two", () => {
  const mk = (type: number, v: number) => {
    const b = header(0, 1).str("general.alignment").u32(type);
    if (type === V.UINT64) b.u64(v);
    else b.u32(v);
    return b;
  };
  assert.equal(readGGUF(mk(V.UINT32, 64).view()).alignment, 64);
  for (const v of [0, 48, 3]) {
    expectGGUFError(parse(mk(V.UINT32, v)), "bad_alignment", {
      offset: 53,
      field: 'kv["general.alignment"]',
      message: new RegExp(`${v} is not a power of two`),
    });
  }
  expectGGUFError(parse(mk(V.UINT64, 32)), "bad_alignment", { offset: 53, message: /UINT64/ });
});

// ---------------------------------------------------------------------------------------------
// Tensor infos

/** A file with one F32 tensor of `dims` and enough data; returns the bytes. */
function oneTensor(dims: (number | bigint)[], type: number = GGMLType.F32, offset = 0): ByteBuf {
  const b = header(1, 0);
  tensorInfo(b, "w", dims, type, offset);
  b.pad(32).raw(new Uint8Array(256));
  return b;
}

Deno.test("n_dims must be 1 to 4", () => {
  expectGGUFError(parse(oneTensor([])), "bad_shape", {
    offset: 24 + 9,
    field: "tensor_infos[0].n_dims",
    message: /n_dims is 0/,
  });
  expectGGUFError(parse(oneTensor([1, 1, 1, 1, 1])), "bad_shape", { message: /n_dims is 5/ });
  assert.deepEqual(readGGUF(oneTensor([2, 1, 1, 2]).view()).tensors[0].shape, [2, 1, 1, 2]);
});

Deno.test("dims: zero, negative, beyond 2^53, product beyond 2^53", () => {
  const dimAt = (d: number) => 24 + 9 + 4 + 8 * d;
  expectGGUFError(parse(oneTensor([4, 0])), "bad_shape", {
    offset: dimAt(1),
    field: "tensor_infos[0].dims[1]",
    message: /dim is 0/,
  });
  expectGGUFError(parse(oneTensor([4, 2, -1n])), "bad_shape", {
    offset: dimAt(2),
    field: "tensor_infos[0].dims[2]",
    message: /dim is -1, negative/,
  });
  expectGGUFError(parse(oneTensor([2n ** 60n])), "overflow", {
    offset: dimAt(0),
    field: "tensor_infos[0].dims[0]",
  });
  expectGGUFError(parse(oneTensor([2 ** 30, 2 ** 30])), "overflow", {
    offset: dimAt(1),
    field: "tensor_infos[0].dims[1]",
    message: /element count/,
  });
  // 2^52 F32 elements: elements fit, bytes do not.
  expectGGUFError(parse(oneTensor([2 ** 26, 2 ** 26])), "overflow", {
    offset: dimAt(0),
    field: "tensor_infos[0].dims",
  });
});

Deno.test("tensor types: unknown and removed ids; rows of whole blocks", () => {
  for (const t of [4, 5, 31, 36, 38, 40, 1000]) {
    expectGGUFError(parse(oneTensor([32], t)), "unknown_type", {
      offset: 24 + 9 + 4 + 8,
      field: "tensor_infos[0].type",
      message: new RegExp(`ggml type id ${t}`),
    });
  }
  expectGGUFError(parse(oneTensor([33, 2], GGMLType.Q4_0)), "bad_shape", {
    offset: 24 + 9 + 4,
    field: "tensor_infos[0].dims[0]",
    message: /ne0 = 33 is not a multiple of the Q4_0 block size 32/,
  });
  const g = readGGUF(oneTensor([64, 2], GGMLType.Q4_0).view());
  assert.equal(g.tensors[0].nbytes, 2 * 18 * 2);
  assert.equal(g.tensors[0].typeName, "Q4_0");
});

Deno.test("tensor offsets: alignment, bounds, overlap, duplicates", () => {
  // Unaligned offset.
  const u = header(2, 0);
  tensorInfo(u, "a", [4], GGMLType.F32, 0);
  const at = tensorInfo(u, "b", [4], GGMLType.F32, 16);
  u.pad(32).raw(new Uint8Array(64));
  expectGGUFError(parse(u), "bad_alignment", {
    offset: at,
    field: "tensor_infos[1].offset",
    message: /offset 16 is not a multiple of 32/,
  });
  // Data past the end of the file.
  const o = header(2, 0);
  tensorInfo(o, "a", [4], GGMLType.F32, 0);
  const at2 = tensorInfo(o, "b", [16], GGMLType.F32, 32);
  o.pad(32).raw(new Uint8Array(32 + 63));
  const e = expectGGUFError(parse(o), "out_of_bounds", {
    offset: at2,
    field: "tensor_infos[1].offset",
  });
  assert.match(e.message, /tensor "b" data \[\d+, \d+\) ends past the end of the file/);
  // One more byte and it fits.
  o.u8(0);
  assert.equal(readGGUF(o.view()).tensors[1].nbytes, 64);
  // Overlap (declared out of order, so sorting matters).
  const v = header(3, 0);
  tensorInfo(v, "a", [8], GGMLType.F32, 64);
  tensorInfo(v, "b", [16], GGMLType.F32, 0); // [0, 64)
  const at3 = tensorInfo(v, "c", [16], GGMLType.F32, 32); // [32, 96) overlaps b
  v.pad(32).raw(new Uint8Array(128));
  expectGGUFError(parse(v), "overlap", {
    offset: at3,
    field: "tensor_infos[2].offset",
    message: /tensor "c" data \[32, 96\) overlaps tensor "b" \[0, 64\)/,
  });
  // Duplicate names.
  const d = header(2, 0);
  tensorInfo(d, "w", [4], GGMLType.F32, 0);
  const nameAt = d.length;
  tensorInfo(d, "w", [4], GGMLType.F32, 32);
  d.pad(32).raw(new Uint8Array(64));
  expectGGUFError(parse(d), "duplicate_name", {
    offset: nameAt,
    field: "tensor_infos[1].name",
    message: /tensor "w" appears twice/,
  });
  // Tensor offset beyond 2^53.
  const big = header(1, 0);
  const at4 = tensorInfo(big, "w", [4], GGMLType.F32, 2n ** 60n);
  expectGGUFError(parse(big), "overflow", { offset: at4, field: "tensor_infos[0].offset" });
});

Deno.test("layout fields of a valid file", () => {
  const bytes = encodeGGUF({
    kv: { "general.architecture": "x" },
    tensors: [
      { name: "a", type: GGMLType.Q8_0, shape: [64, 3], data: new Uint8Array(204).fill(7) },
      { name: "b", type: GGMLType.F16, shape: [5, 1, 1, 2] },
    ],
  });
  const g = readGGUF(bytes);
  // 24 + kv (8+20 + 4 + 8+1) + a (8+1 + 4 + 16 + 4 + 8) + b (8+1 + 4 + 32 + 4 + 8) = 163 -> 192
  assert.equal(g.headerSize, 163);
  assert.equal(g.dataOffset, 192);
  assert.equal(g.fileSize, 192 + 224 + 32);
  assert.deepEqual(
    g.tensors.map((t) => [t.name, t.offset, t.absoluteOffset, t.nbytes, t.nElements]),
    [["a", 0, 192, 204, 192], ["b", 224, 416, 20, 10]],
  );
  assert.equal(bytes[g.tensors[0].absoluteOffset + 203], 7);
  assert.equal(g.kvOffsets.get("general.architecture"), 24 + 28 + 4);
  assert.equal(g.path, undefined);
});

// ---------------------------------------------------------------------------------------------
// Getters

Deno.test("typed getters", () => {
  const g = readGGUF(
    encodeGGUF({
      kv: [
        { key: "s", value: "x" },
        { key: "n", value: 5 },
        { key: "f", value: 0.5 },
        { key: "big", value: 2n ** 60n },
        { key: "b", value: true },
        { key: "toks", value: ["a", "b"] },
        { key: "ids", value: new Int32Array([1, 2]) },
      ],
    }),
    { path: "m.gguf" },
  );
  assert.equal(getString(g, "s"), "x");
  assert.equal(getNumber(g, "n"), 5);
  assert.equal(getNumber(g, "f"), 0.5);
  assert.equal(getBool(g, "b"), true);
  assert.deepEqual(getStringArray(g, "toks"), ["a", "b"]);
  assert.deepEqual([...getArray(g, "ids") as Int32Array], [1, 2]);
  assert.equal(getValue(g, "big"), 2n ** 60n);
  assert.equal(getOptionalString(g, "nope"), undefined);
  assert.equal(getOptionalNumber(g, "nope"), undefined);
  assert.equal(getOptionalBool(g, "nope"), undefined);
  assert.equal(getOptionalArray(g, "nope"), undefined);
  const e = expectGGUFError(() => getString(g, "nope"), "bad_value", { field: 'kv["nope"]' });
  assert.equal(
    e.message,
    'GGUF m.gguf: bad value while reading kv["nope"] (key "nope" is missing)',
  );
  expectGGUFError(() => getString(g, "n"), "bad_value", {
    field: 'kv["n"]',
    offset: g.kvOffsets.get("n"),
    message: /key "n" is UINT32, expected STRING/,
  });
  expectGGUFError(() => getNumber(g, "big"), "bad_value", { message: /beyond the safe integer/ });
  expectGGUFError(() => getNumber(g, "s"), "bad_value");
  expectGGUFError(() => getBool(g, "n"), "bad_value");
  expectGGUFError(() => getArray(g, "s"), "bad_value");
  expectGGUFError(() => getStringArray(g, "ids"), "bad_value", {
    message: /ARRAY of INT32, expected ARRAY of STRING/,
  });
  expectGGUFError(() => getValue(g, "nope"), "bad_value");
});

// ---------------------------------------------------------------------------------------------
// Files

Deno.test("reading a missing file is an io error naming the path", () => {
  const e = expectGGUFError(() => readGGUF("/nonexistent/model.gguf"), "io");
  assert.equal(e.path, "/nonexistent/model.gguf");
  assert.match(e.message, /^GGUF \/nonexistent\/model.gguf: I\/O error \(cannot open/);
  assert.ok(e.cause instanceof Error);
});

const VOCABS: Record<string, [string, number]> = {
  "ggml-vocab-deepseek-coder.gguf": ["gpt2", 32256],
  "ggml-vocab-deepseek-llm.gguf": ["gpt2", 102400],
  "ggml-vocab-falcon.gguf": ["gpt2", 65024],
  "ggml-vocab-gpt-2.gguf": ["gpt2", 50257],
  "ggml-vocab-gpt-neox.gguf": ["gpt2", 50432],
  "ggml-vocab-llama-bpe.gguf": ["gpt2", 128256],
  "ggml-vocab-llama-spm.gguf": ["llama", 32000],
  "ggml-vocab-mpt.gguf": ["gpt2", 50432],
  "ggml-vocab-phi-3.gguf": ["llama", 32064],
  "ggml-vocab-qwen2.gguf": ["gpt2", 151936],
  "ggml-vocab-qwen35.gguf": ["gpt2", 151936],
  "ggml-vocab-refact.gguf": ["gpt2", 49216],
  "ggml-vocab-starcoder.gguf": ["gpt2", 49152],
};

Deno.test("llama.cpp vocab files parse", () => {
  // every file of the set is there (llama.cpp's own folder has a few more)
  const present = new Set(readdirSync(VOCAB_DIR).filter((f) => f.endsWith(".gguf")));
  const files = Object.keys(VOCABS).sort();
  assert.deepEqual(files.filter((f) => !present.has(f)), []);
  for (const f of files) {
    const g = readGGUF(VOCAB_DIR + f);
    const [model, nVocab] = VOCABS[f];
    assert.equal(g.version, 3, f);
    assert.equal(g.path, VOCAB_DIR + f);
    assert.equal(getString(g, "tokenizer.ggml.model"), model, f);
    const tokens = getStringArray(g, "tokenizer.ggml.tokens");
    assert.equal(tokens.length, nVocab, f);
    const types = getArray(g, "tokenizer.ggml.token_type");
    assert.ok(types instanceof Int32Array, f);
    assert.equal(types.length, nVocab, f);
    if (model === "llama") {
      const scores = getArray(g, "tokenizer.ggml.scores");
      assert.ok(scores instanceof Float32Array);
      assert.equal(scores.length, nVocab);
    } else {
      assert.ok(getStringArray(g, "tokenizer.ggml.merges").length > 10000, f);
    }
    assert.equal(g.tensors.length, 0);
    assert.equal(g.alignment, 32);
    assert.equal(g.headerSize, g.fileSize, f);
  }
  const spm = readGGUF(VOCAB_DIR + "ggml-vocab-llama-spm.gguf");
  const toks = getStringArray(spm, "tokenizer.ggml.tokens");
  assert.deepEqual(toks.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
  assert.equal(toks[29871], "▁");
  assert.equal(getNumber(spm, "tokenizer.ggml.bos_token_id"), 1);
  const types = getArray(spm, "tokenizer.ggml.token_type") as Int32Array;
  assert.deepEqual([...types.subarray(0, 4)], [2, 3, 3, 6]); // unknown, control, control, byte
  const q = readGGUF(VOCAB_DIR + "ggml-vocab-qwen2.gguf");
  assert.equal(getString(q, "tokenizer.ggml.pre"), "qwen2");
  assert.equal(getNumber(q, "tokenizer.ggml.eos_token_id"), 151643);
  assert.equal(getStringArray(q, "tokenizer.ggml.tokens")[151643], "<|endoftext|>");
  assert.equal(getStringArray(q, "tokenizer.ggml.merges")[0], "Ġ Ġ");
  assert.equal(getNumber(q, "qwen2.rope.freq_base"), 1000000);
  assert.deepEqual(q.kvTypes.get("qwen2.attention.layer_norm_rms_epsilon"), { type: V.FLOAT32 });
});

Deno.test("qwen2 vocab (152k tokens, 151k merges) parses fast", () => {
  const path = VOCAB_DIR + "ggml-vocab-qwen2.gguf";
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    readGGUF(path);
    times.push(performance.now() - t0);
  }
  const best = Math.min(...times);
  console.log(`qwen2 vocab parse: ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
  assert.ok(best < 400, `best parse took ${best.toFixed(0)} ms`);
});

Deno.test("chunk size does not change the result (reads across chunk boundaries)", () => {
  const bytes = new Uint8Array(readFileSync(VOCAB_DIR + "ggml-vocab-phi-3.gguf"));
  const a = readGGUF(bytes);
  let reads = 0;
  const src = bufferSource(bytes);
  const counting = {
    size: src.size,
    read: (o: number, n: number) => {
      reads++;
      return src.read(o, n);
    },
  };
  const b = readGGUF(counting, { chunkSize: 100 });
  assert.ok(reads > 4000, `${reads} reads`);
  assert.deepEqual([...b.kv.keys()], [...a.kv.keys()]);
  for (const [k, v] of a.kv) assert.deepEqual(b.kv.get(k), v, k);
  assert.deepEqual(b.kvTypes, a.kvTypes);
  // A file source returning copies gives the same answer too.
  const c = readGGUF(VOCAB_DIR + "ggml-vocab-phi-3.gguf", { chunkSize: 4096 });
  assert.deepEqual(
    getStringArray(c, "tokenizer.ggml.tokens"),
    getStringArray(a, "tokenizer.ggml.tokens"),
  );
});

Deno.test("a Node Buffer (pooled, with a byteOffset) reads like a Uint8Array", () => {
  const file = encodeGGUF({ kv: { ids: new Int32Array([-1, 2, 3]), s: "x" } });
  const padded = new Uint8Array(file.length + 3);
  padded.set(file, 3);
  const inputs: Uint8Array[] = [Buffer.from(file), padded.subarray(3)];
  for (const input of inputs) {
    const ids = readGGUF(input).kv.get("ids") as Int32Array;
    assert.deepEqual([...ids], [-1, 2, 3]);
    assert.equal(ids.buffer.byteLength, 12); // an own copy, not a view of the input
  }
  const vocab = readFileSync(VOCAB_DIR + "ggml-vocab-phi-3.gguf"); // a Buffer
  const types = readGGUF(vocab).kv.get("tokenizer.ggml.token_type") as Int32Array;
  assert.equal(types.length, 32064);
  assert.equal(types.buffer.byteLength, 32064 * 4);
  const copy = readGGUF(new Uint8Array(vocab)).kv.get("tokenizer.ggml.token_type") as Int32Array;
  assert.deepEqual(types, copy);
  assert.deepEqual([...types.subarray(0, 4)], [3, 3, 4, 6]); // phi-3: <unk> is control here
});

Deno.test("only GGUFError escapes, also for a source that fails", () => {
  const failing = {
    size: 1000,
    read: () => new Uint8Array(3), // claims 1000 bytes, returns 3
  };
  const e = expectGGUFError(() => readGGUF(failing), "truncated", { offset: 0 });
  assert.ok(e instanceof GGUFError);
});
