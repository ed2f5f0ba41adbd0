import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dequantize } from "../gguf/quantize.ts";
import { alignUp, readGGUF } from "../gguf/reader.ts";
import { GGMLType, tensorBytes } from "../gguf/types.ts";
import {
  byteVocabKV,
  planSynthetic,
  resolveTypes,
  Rng,
  sharedVocab,
  synthMain,
  writeSyntheticModel,
} from "./synth.ts";

function tmp(): { dir: string; [Symbol.dispose](): void } {
  const dir = Deno.makeTempDirSync();
  return { dir, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

function sha(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function f32Of(path: string, name: string): Float32Array {
  const g = readGGUF(path);
  const t = g.tensorByName.get(name)!;
  assert.equal(t.typeName, "F32", name);
  const bytes = readFileSync(path).subarray(t.absoluteOffset, t.absoluteOffset + t.nbytes);
  return new Float32Array(new Uint8Array(bytes).buffer); // copy: a Buffer may share a pool
}

function stats(a: Float32Array): { mean: number; std: number; min: number; max: number } {
  let s = 0, s2 = 0, min = Infinity, max = -Infinity;
  for (const v of a) {
    s += v;
    s2 += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = s / a.length;
  return { mean, std: Math.sqrt(s2 / a.length - mean * mean), min, max };
}

Deno.test("same seed, same bytes; another seed, other bytes (exact and fast fill)", () => {
  using t = tmp();
  for (const fill of ["exact", "fast"] as const) {
    const opts = { arch: "qwen3moe", preset: "tiny" as const, types: "Q4_K", fill, seed: 42 };
    writeSyntheticModel(`${t.dir}/a.gguf`, opts);
    writeSyntheticModel(`${t.dir}/b.gguf`, opts);
    writeSyntheticModel(`${t.dir}/c.gguf`, { ...opts, seed: 43 });
    assert.equal(sha(`${t.dir}/a.gguf`), sha(`${t.dir}/b.gguf`), fill);
    assert.notEqual(sha(`${t.dir}/a.gguf`), sha(`${t.dir}/c.gguf`), fill);
  }
});

Deno.test("tensor data depends on (seed, name) only: layer 0 is the same in a 3-layer model", () => {
  using t = tmp();
  writeSyntheticModel(`${t.dir}/2.gguf`, { arch: "olmoe", types: "Q8_0", seed: 5 });
  writeSyntheticModel(`${t.dir}/3.gguf`, {
    arch: "olmoe",
    types: "Q8_0",
    seed: 5,
    dims: { nLayer: 3 },
  });
  const a = readGGUF(`${t.dir}/2.gguf`), b = readGGUF(`${t.dir}/3.gguf`);
  const fa = readFileSync(`${t.dir}/2.gguf`), fb = readFileSync(`${t.dir}/3.gguf`);
  for (const name of ["blk.0.ffn_up_exps.weight", "blk.1.attn_q.weight", "token_embd.weight"]) {
    const ta = a.tensorByName.get(name)!, tb = b.tensorByName.get(name)!;
    assert.deepEqual(
      fa.subarray(ta.absoluteOffset, ta.absoluteOffset + ta.nbytes),
      fb.subarray(tb.absoluteOffset, tb.absoluteOffset + tb.nbytes),
      name,
    );
  }
  assert.equal(b.tensors.length, a.tensors.length + 12);
});

Deno.test("file size is the sum of the tensor sizes, each aligned", () => {
  using t = tmp();
  const res = writeSyntheticModel(`${t.dir}/m.gguf`, {
    arch: "gpt-oss",
    types: { weights: "Q8_0", experts: "MXFP4", embeddings: "Q4_K" },
  });
  const g = readGGUF(`${t.dir}/m.gguf`);
  let end = g.dataOffset;
  for (const ti of g.tensors) {
    assert.equal(ti.absoluteOffset, end, ti.name);
    end += alignUp(ti.nbytes, g.alignment);
  }
  assert.equal(g.fileSize, end);
  assert.equal(res.bytes, end);
  // hand arithmetic: gpt-oss tiny, 4 experts of 256×256, MXFP4 = 17 bytes per 32 values
  const exps = g.tensorByName.get("blk.0.ffn_gate_exps.weight")!;
  assert.deepEqual([exps.typeName, exps.nbytes], ["MXFP4", 4 * 256 * (256 / 32) * 17]);
  const q = g.tensorByName.get("blk.0.attn_q.weight")!;
  assert.deepEqual([q.typeName, q.nbytes], ["Q8_0", 256 * (256 / 32) * 34]);
  const emb = g.tensorByName.get("token_embd.weight")!;
  assert.deepEqual([emb.typeName, emb.nbytes], ["Q4_K", res.config.nVocab * 144]);
  assert.equal(g.tensorByName.get("blk.0.ffn_gate_inp.weight")!.typeName, "F32");
  assert.equal(g.tensorByName.get("blk.0.ffn_up_exps.bias")!.typeName, "F32");
  assert.equal(g.kv.get("general.file_type"), 38); // MOSTLY_MXFP4_MOE
});

Deno.test("value distributions: norms in [0.5, 1.5], weights 1/sqrt(fan_in), router ×2, output ×3", () => {
  using t = tmp();
  const p = `${t.dir}/m.gguf`;
  writeSyntheticModel(p, { arch: "qwen3moe", types: "F32", seed: 3 });
  const norm = stats(f32Of(p, "blk.0.attn_norm.weight"));
  assert.ok(
    norm.min >= 0.5 && norm.max < 1.5 && Math.abs(norm.mean - 1) < 0.1,
    JSON.stringify(norm),
  );
  const expect = (name: string, std: number) => {
    const s = stats(f32Of(p, name));
    assert.ok(Math.abs(s.mean) < 0.05 * std + 1e-3, `${name} mean ${s.mean}`);
    assert.ok(Math.abs(s.std / std - 1) < 0.03, `${name} std ${s.std}, expected ${std}`);
  };
  expect("blk.0.attn_q.weight", 1 / 16);
  expect("blk.0.attn_output.weight", 1 / Math.sqrt(512));
  expect("blk.1.ffn_down_exps.weight", 1 / 16);
  expect("blk.0.ffn_gate_inp.weight", 2 / 16);
  expect("output.weight", 3 / 16);
  expect("token_embd.weight", 1);
});

Deno.test("fast fill writes valid quantized blocks with the right scale", () => {
  using t = tmp();
  const p = `${t.dir}/m.gguf`;
  writeSyntheticModel(p, { arch: "qwen3moe", types: "Q4_K", fill: "fast", dims: { nExpert: 8 } });
  const g = readGGUF(p);
  const ti = g.tensorByName.get("blk.0.ffn_gate_exps.weight")!;
  const bytes = readFileSync(p).subarray(ti.absoluteOffset, ti.absoluteOffset + ti.nbytes);
  const x = dequantize(GGMLType.Q4_K, bytes, ti.nElements);
  const s = stats(x);
  assert.ok(x.every(Number.isFinite));
  assert.ok(Math.abs(s.std * 16 - 1) < 0.1, `std ${s.std}`); // 1/sqrt(256), Q4_K error < 10%
});

Deno.test("Q4_K_M mix follows llama.cpp's use_more_bits; the 30B-A3B preset is 9.5 GB", () => {
  const plan = planSynthetic({ arch: "qwen3moe", preset: "qwen3-30b-a3b" });
  const type = new Map(plan.tensors.map((x) => [x.spec.name, x.type]));
  assert.equal(type.get("output.weight"), "Q6_K");
  assert.equal(type.get("token_embd.weight"), "Q4_K");
  // 24 layers: first 3, last 3, and (i - 3) % 3 == 2 between → Q6_K
  const moreBitsLayers = [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23];
  for (let i = 0; i < 24; i++) {
    const want = moreBitsLayers.includes(i) ? "Q6_K" : "Q4_K";
    assert.equal(type.get(`blk.${i}.ffn_down_exps.weight`), want, `layer ${i} down`);
    assert.equal(type.get(`blk.${i}.attn_v.weight`), want, `layer ${i} attn_v`);
    assert.equal(type.get(`blk.${i}.ffn_gate_exps.weight`), "Q4_K");
    assert.equal(type.get(`blk.${i}.ffn_gate_inp.weight`), "F32");
  }
  const c = plan.config;
  assert.deepEqual(
    [
      c.nLayer,
      c.nEmbd,
      c.nHead,
      c.nHeadKv,
      c.headDim,
      c.nExpert,
      c.nExpertUsed,
      c.nFfExp,
      c.nVocab,
    ],
    [24, 2048, 32, 4, 128, 128, 8, 768, 151936],
  );
  let bytes = 0, params = 0;
  for (const x of plan.tensors) {
    bytes += tensorBytes(GGMLType[x.type], x.spec.shape);
    params += x.spec.shape.reduce((a, b) => a * b, 1);
  }
  assert.equal(params, 15_577_227_264); // DESIGN §6: 15.6 B
  // by hand: Q4_K = 144 bytes per 256 values, Q6_K = 210, F32 = 4 per value
  const q4 = (n: number) => (n / 256) * 144, q6 = (n: number) => (n / 256) * 210;
  const E = 128 * 2048 * 768; // one layer's gate (or up, or down) experts
  const perLayer = 2 * q4(E) + 2 * 4 * 2048 + 2 * 4 * 128 + 4 * 2048 * 128 + // gate, up, norms, router
    q4(2048 * 4096) * 2 + q4(2048 * 512); // q, o, k
  const moreBits = q6(E) + q6(2048 * 512); // down, v
  const fewerBits = q4(E) + q4(2048 * 512);
  const total = 24 * perLayer + 12 * moreBits + 12 * fewerBits + q4(2048 * 151936) +
    q6(2048 * 151936) + 4 * 2048;
  assert.equal(bytes, total);
  assert.ok(Math.abs(bytes / 1e9 - 9.5) < 0.05, `${bytes}`); // DESIGN §6: 9.5 GB
  assert.equal(plan.fill, "fast");
  assert.equal(plan.kv.find((e) => e.key === "tokenizer.ggml.pre")?.value, "qwen2");
});

Deno.test("byte-level vocab: 256 bytes in GPT-2 order, merges, control tokens", () => {
  const kv = new Map(byteVocabKV().map((e) => [e.key, e.value]));
  const tokens = kv.get("tokenizer.ggml.tokens") as string[];
  const types = kv.get("tokenizer.ggml.token_type") as Int32Array;
  const merges = kv.get("tokenizer.ggml.merges") as string[];
  assert.equal(tokens[0], "!");
  assert.equal(tokens[188], "Ā"); // byte 0
  assert.equal(tokens[220], "Ġ"); // space, as in GPT-2
  assert.equal(new Set(tokens).size, tokens.length);
  assert.equal(tokens.length, 256 + merges.length + 3);
  assert.equal(tokens.length, 310);
  assert.ok(tokens.includes("Hello") && tokens.includes("Ġworld"));
  for (const m of merges) {
    const [a, b] = m.split(" ");
    assert.ok(tokens.includes(a) && tokens.includes(b) && tokens.includes(a + b), m);
  }
  const eos = kv.get("tokenizer.ggml.eos_token_id") as number;
  assert.equal(tokens[eos], "<|endoftext|>");
  assert.deepEqual([types[eos], types[eos + 2], types[0]], [3, 3, 1]);
});

Deno.test("type resolution and the CLI", () => {
  assert.deepEqual(resolveTypes("q8_0"), {
    weights: "Q8_0",
    experts: "Q8_0",
    embeddings: "Q8_0",
    output: "Q8_0",
  });
  assert.throws(() => resolveTypes("Q3_K"), /Unsupported type "Q3_K"/);
  using t = tmp();
  const out = `${t.dir}/cli.gguf`;
  const log = console.log;
  const lines: string[] = [];
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    assert.equal(synthMain(["--arch", "qwen2moe", "--out", out, "--type", "Q8_0", "--quiet"]), 0);
    assert.equal(synthMain(["--arch", "qwen2moe"]), 2);
  } finally {
    console.log = log;
  }
  const g = readGGUF(out);
  assert.equal(g.kv.get("general.architecture"), "qwen2moe");
  assert.equal(g.tensorByName.get("blk.1.ffn_up_shexp.weight")!.typeName, "Q8_0");
  assert.match(lines[0], /qwen2moe, 2 layers × 256, 4 experts/);
});

Deno.test("Rng is deterministic and uniform", () => {
  const a = new Float32Array(1 << 16), b = new Float32Array(1 << 16);
  new Rng(9).fillUniform(a, 0, 1);
  new Rng(9).fillUniform(b, 0, 1);
  assert.deepEqual(a, b);
  const s = stats(a);
  assert.ok(s.min >= -1 && s.max < 1 && Math.abs(s.mean) < 0.01);
  assert.ok(Math.abs(s.std - 1 / Math.sqrt(3)) < 0.01);
  assert.ok(sharedVocab("x.gguf").endsWith("/x.gguf"));
});
