/**
 * The GGUF layer under Bun: round trips through the file writer and reader, typed errors,
 * and a real llama.cpp vocab file. Run with `node_modules/.bin/bun test test/bun/`.
 */

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  encodeGGUF,
  getNumber,
  getString,
  getStringArray,
  GGML_TYPES,
  GGMLType,
  GGUFError,
  GGUFValueType as V,
  GGUFWriter,
  kvEntriesOf,
  readGGUF,
  tensorBytes,
} from "../../runtime/gguf/mod.ts";
import { Rng, VOCAB_DIR, withTempDir } from "../../runtime/gguf/_test_helpers.ts";

function caught(fn: () => unknown): GGUFError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(GGUFError);
    return e as GGUFError;
  }
  throw new Error("expected a GGUFError");
}

test("metadata of every value type round-trips", () => {
  const bytes = encodeGGUF({
    kv: [
      { key: "u8", value: 255, type: V.UINT8 },
      { key: "i32", value: -5 },
      { key: "f32", value: 0.5 },
      { key: "f64", value: Math.PI, type: V.FLOAT64 },
      { key: "u64", value: 2n ** 64n - 1n },
      { key: "i64", value: -(2 ** 40), type: V.INT64 },
      { key: "b", value: true },
      { key: "s", value: "héllo 🦙" },
      { key: "toks", value: ["", "a", "é"] },
      { key: "scores", value: new Float32Array([1.5, -2]) },
      { key: "nested", value: [[1], ["x"]] },
      { key: "empty", value: [], type: { type: V.ARRAY, elementType: V.INT8 } },
    ],
  });
  const g = readGGUF(bytes);
  expect(g.kv.get("u8")).toBe(255);
  expect(g.kv.get("i32")).toBe(-5);
  expect(g.kv.get("f32")).toBe(0.5);
  expect(g.kv.get("f64")).toBe(Math.PI);
  expect(g.kv.get("u64")).toBe(2n ** 64n - 1n);
  expect(g.kv.get("i64")).toBe(-(2 ** 40));
  expect(g.kv.get("b")).toBe(true);
  expect(g.kv.get("s")).toBe("héllo 🦙");
  expect(g.kv.get("toks")).toEqual(["", "a", "é"]);
  expect([...(g.kv.get("scores") as Float32Array)]).toEqual([1.5, -2]);
  expect(g.kvTypes.get("i32")).toEqual({ type: V.INT32 });
  expect(g.kvTypes.get("nested")).toEqual({
    type: V.ARRAY,
    elementType: V.ARRAY,
    items: [{ type: V.ARRAY, elementType: V.UINT32 }, { type: V.ARRAY, elementType: V.STRING }],
  });
  expect([...(g.kv.get("empty") as Int8Array)]).toEqual([]);
  expect(encodeGGUF({ kv: kvEntriesOf(g) })).toEqual(bytes);
});

test("GGUFWriter writes every tensor type, in chunks, readable back", () => {
  withTempDir((dir) => {
    const path = join(dir, "t.gguf");
    const rng = new Rng(5);
    const descs = GGML_TYPES.map((t) => ({
      name: t.ggmlName,
      type: t.id,
      shape: [t.blockSize * 2, 3],
    }));
    const datas = descs.map((d) => rng.bytes(tensorBytes(d.type, d.shape)));
    const w = new GGUFWriter(path, {
      kv: { "general.architecture": "x" },
      tensors: descs,
      alignment: 64,
    });
    descs.forEach((d, i) => {
      const half = datas[i].length >> 1;
      w.writeTensorChunk(d.name, datas[i].subarray(0, half));
      w.writeTensorChunk(d.name, datas[i].subarray(half));
    });
    w.close();
    const g = readGGUF(path);
    const file: Uint8Array = new Uint8Array(readFileSync(path)); // compared with datas[i]
    expect(g.alignment).toBe(64);
    expect(g.tensors.length).toBe(32);
    g.tensors.forEach((t, i) => {
      expect(t.absoluteOffset % 64).toBe(0);
      expect(t.nbytes).toBe(datas[i].length);
      expect(file.subarray(t.absoluteOffset, t.absoluteOffset + t.nbytes)).toEqual(datas[i]);
    });
    expect(g.tensorByName.get("q4_K")?.nbytes).toBe(2 * 144 * 3);
  });
});

test("validation errors are typed, with offset and field", () => {
  const ok = encodeGGUF({ tensors: [{ name: "w", type: GGMLType.F32, shape: [4] }] });
  const bad = ok.slice();
  bad[0] = 0x4c;
  let e = caught(() => readGGUF(bad, { path: "m.gguf" }));
  expect(e.code).toBe("bad_magic");
  expect(e.message).toStartWith("GGUF m.gguf: bad magic at byte 0");
  e = caught(() => readGGUF(ok.subarray(0, 56)));
  expect([e.code, e.offset, e.field]).toEqual(["truncated", 49, "tensor_infos[0].offset"]);
  const v1 = ok.slice();
  v1[4] = 1;
  expect(caught(() => readGGUF(v1)).code).toBe("unsupported_version");
  const unknownType = ok.slice();
  new DataView(unknownType.buffer).setUint32(24 + 9 + 4 + 8, 4, true);
  e = caught(() => readGGUF(unknownType));
  expect([e.code, e.offset, e.field]).toEqual(["unknown_type", 45, "tensor_infos[0].type"]);
  expect(caught(() => readGGUF("/nonexistent.gguf")).code).toBe("io");
  withTempDir((dir) => {
    const w = new GGUFWriter(join(dir, "x.gguf"), {
      tensors: [{ name: "w", type: 0, shape: [2] }],
    });
    expect(caught(() => w.close()).code).toBe("writer_state");
  });
});

test("fuzzed inputs only ever throw GGUFError", () => {
  const base = encodeGGUF({
    kv: { a: "x", b: [1, 2, 3], c: ["p", "q"] },
    tensors: [{ name: "w", type: GGMLType.Q8_0, shape: [32, 2] }],
  });
  const rng = new Rng(11);
  for (let i = 0; i < 500; i++) {
    const b = base.slice(0, i % 2 ? base.length : rng.int(base.length));
    for (let k = 0; k < 3; k++) if (b.length) b[rng.int(b.length)] = rng.int(256);
    try {
      readGGUF(b);
    } catch (e) {
      expect(e).toBeInstanceOf(GGUFError);
    }
  }
});

test("llama.cpp qwen2 vocab parses", () => {
  let ms = Infinity;
  let g = readGGUF(VOCAB_DIR + "ggml-vocab-qwen2.gguf");
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    g = readGGUF(VOCAB_DIR + "ggml-vocab-qwen2.gguf");
    ms = Math.min(ms, performance.now() - t0);
  }
  expect(getString(g, "tokenizer.ggml.model")).toBe("gpt2");
  const toks = getStringArray(g, "tokenizer.ggml.tokens");
  expect(toks.length).toBe(151936);
  expect(toks[151643]).toBe("<|endoftext|>");
  expect(getNumber(g, "tokenizer.ggml.eos_token_id")).toBe(151643);
  expect(ms).toBeLessThan(1000);
});
