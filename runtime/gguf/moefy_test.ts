/**
 * moefy and its exact block scaling, on small generated data: every type's ×2^p is checked
 * bit for bit through the native dequantizers (ggml-identical); a tiny dense llama is
 * rewritten and each expert's tensors are compared with the dense slices they came from;
 * the refusals name what is wrong.
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dequantize, quantize } from "./quantize.ts";
import { readGGUF, type TensorInfo } from "./reader.ts";
import { GGUFWriter } from "./writer.ts";
import { GGMLType, GGUFValueType } from "./types.ts";
import { ScaleError, scaleF16Bits, scaleRows } from "./scale_blocks.ts";
import { MoefyError, moefyFile, seededNormal, validExpertCounts } from "./moefy.ts";

Deno.test("scaleF16Bits: exponent shift, subnormals normalized, overflow refused", () => {
  equal(scaleF16Bits(0x3c00, 3), 0x4800); // 1 -> 8
  equal(scaleF16Bits(0xbc00, 1), 0xc000); // -1 -> -2
  equal(scaleF16Bits(0x0001, 1), 0x0002); // 2^-24 -> 2^-23 (still subnormal)
  equal(scaleF16Bits(0x0200, 1), 0x0400); // 2^-15 -> 2^-14 (smallest normal)
  equal(scaleF16Bits(0x0201, 2), 0x0802); // (512+1)·2^-24 ·4 = (1+1/512)·2^-13
  equal(scaleF16Bits(0x7bff, 1), undefined); // 65504 · 2 overflows
  for (const h of [0x0000, 0x8000, 0x7c00, 0x7e00]) equal(scaleF16Bits(h, 4), h);
});

const T = GGMLType;
const CASES: [string, number][] = [
  ["F32", T.F32],
  ["F16", T.F16],
  ["BF16", T.BF16],
  ["Q4_0", T.Q4_0],
  ["Q4_1", T.Q4_1],
  ["Q8_0", T.Q8_0],
  ["Q4_K", T.Q4_K],
  ["Q5_K", T.Q5_K],
  ["Q6_K", T.Q6_K],
  ["MXFP4", T.MXFP4],
];

Deno.test("scaleRows: every value times 2^p, bit for bit, for each runnable type", () => {
  const n = 1024;
  const x = seededNormal(n, 5, 0.02);
  x[3] = 3.5; // an outlier, and tiny values (subnormal-range scales in some blocks)
  for (let i = 512; i < 544; i++) x[i] = 1e-7 * (i - 527);
  for (const [name, type] of CASES) {
    const bytes = quantize(type, x, 1, n);
    const before = dequantize(type, bytes, n);
    const scaled = bytes.slice();
    scaleRows(type, scaled, 3, name);
    const after = dequantize(type, scaled, n);
    for (let i = 0; i < n; i++) {
      if (after[i] !== before[i] * 8) {
        throw new Error(`${name}[${i}]: ${before[i]} x 8 = ${before[i] * 8}, got ${after[i]}`);
      }
    }
  }
});

Deno.test("scaleRows: refusals are typed and say why", () => {
  throws(
    () => scaleRows(T.IQ1_M, new Uint8Array(56), 1, `tensor "x"`),
    (e: unknown) => e instanceof ScaleError && /IQ1_M/.test(e.message),
  );
  const big = new Uint8Array(34);
  new DataView(big.buffer).setUint16(0, 0x7800, true); // d = 32768
  throws(() => scaleRows(T.Q8_0, big, 2, `tensor "y"`), /tensor "y".*overflow/);
});

/** A tiny dense llama: 2 layers, n_embd 64, n_ff 256, FFN weights in `ffType` (down: `downType`). */
function denseLlama(
  path: string,
  ffType: number,
  arch = "llama",
  downType = ffType,
): Map<string, Uint8Array> {
  const E = 64, F = 256, V = 32;
  const specs: [string, number, number[]][] = [
    ["token_embd.weight", T.Q8_0, [E, V]],
    ["output_norm.weight", T.F32, [E]],
  ];
  for (let i = 0; i < 2; i++) {
    specs.push(
      [`blk.${i}.attn_norm.weight`, T.F32, [E]],
      [`blk.${i}.attn_q.weight`, T.Q4_1, [E, E]],
      [`blk.${i}.attn_k.weight`, T.Q4_1, [E, E]],
      [`blk.${i}.attn_v.weight`, T.Q4_1, [E, E]],
      [`blk.${i}.attn_output.weight`, T.Q4_1, [E, E]],
      [`blk.${i}.ffn_norm.weight`, T.F32, [E]],
      [`blk.${i}.ffn_gate.weight`, ffType, [E, F]],
      [`blk.${i}.ffn_down.weight`, downType, [F, E]],
      [`blk.${i}.ffn_up.weight`, ffType, [E, F]],
    );
  }
  const U32 = GGUFValueType.UINT32;
  const w = new GGUFWriter(path, {
    kv: [
      { key: "general.architecture", value: arch },
      { key: `${arch}.block_count`, value: 2, type: U32 },
      { key: `${arch}.context_length`, value: 128, type: U32 },
      { key: `${arch}.embedding_length`, value: E, type: U32 },
      { key: `${arch}.feed_forward_length`, value: F, type: U32 },
      { key: `${arch}.attention.head_count`, value: 4, type: U32 },
      {
        key: `${arch}.attention.layer_norm_rms_epsilon`,
        value: 1e-5,
        type: GGUFValueType.FLOAT32,
      },
    ],
    tensors: specs.map(([name, type, shape]) => ({ name, type, shape })),
  });
  const data = new Map<string, Uint8Array>();
  specs.forEach(([name, type, shape], k) => {
    const cols = shape[0], rows = shape.length > 1 ? shape[1] : 1;
    const x = seededNormal(cols * rows, 100 + k, 0.05);
    const bytes = type === T.F32 ? new Uint8Array(x.buffer) : quantize(type, x, rows, cols);
    data.set(name, bytes);
    w.writeTensor(name, bytes);
  });
  w.close();
  return data;
}

function tensorBytes(path: string, t: TensorInfo): Uint8Array {
  return new Uint8Array(readFileSync(path).subarray(t.absoluteOffset, t.absoluteOffset + t.nbytes));
}

Deno.test("moefy: experts are the dense slices, down x N, router zero, metadata", () => {
  const dir = mkdtempSync(join(tmpdir(), "spool-moefy-"));
  try {
    const dense = join(dir, "dense.gguf"), moe = join(dir, "moe.gguf");
    const data = denseLlama(dense, T.Q4_1);
    const r = moefyFile(dense, moe, { experts: 4 });
    deepStrictEqual([r.experts, r.topK, r.nFfExp, r.exact], [4, 4, 64, true]);
    const g = readGGUF(moe);
    equal(g.kv.get("llama.expert_count"), 4);
    equal(g.kv.get("llama.expert_used_count"), 4);
    equal(g.kv.get("llama.feed_forward_length"), 64);
    equal(g.kvTypes.get("llama.expert_count")?.type, GGUFValueType.UINT32);
    ok(!g.tensorByName.has("blk.0.ffn_gate.weight"));
    for (let i = 0; i < 2; i++) {
      const t = (s: string) => g.tensorByName.get(`blk.${i}.${s}.weight`)!;
      deepStrictEqual(t("ffn_gate_exps").shape, [64, 64, 4]);
      deepStrictEqual(t("ffn_down_exps").shape, [64, 64, 4]);
      deepStrictEqual(t("ffn_gate_inp").shape, [64, 4]);
      ok(tensorBytes(moe, t("ffn_gate_inp")).every((b) => b === 0), "router is zero");
      // gate and up: the dense bytes, reshaped
      deepStrictEqual(tensorBytes(moe, t("ffn_up_exps")), data.get(`blk.${i}.ffn_up.weight`));
      // down: expert e, row r = dense row r, columns e*64..(e+1)*64, times 4
      const dd = dequantize(T.Q4_1, data.get(`blk.${i}.ffn_down.weight`)!, 256 * 64);
      const de = dequantize(T.Q4_1, tensorBytes(moe, t("ffn_down_exps")), 64 * 64 * 4);
      for (let e = 0; e < 4; e++) {
        for (let row = 0; row < 64; row++) {
          for (let c = 0; c < 64; c++) {
            const want = dd[row * 256 + e * 64 + c] * 4;
            const got = de[e * 64 * 64 + row * 64 + c];
            if (got !== want) throw new Error(`layer ${i} e${e} [${row},${c}]: ${got} != ${want}`);
          }
        }
      }
    }
    // everything else is copied
    deepStrictEqual(
      tensorBytes(moe, g.tensorByName.get("blk.1.attn_q.weight")!),
      data.get("blk.1.attn_q.weight"),
    );
    // sparse: a seeded router, K used, the same experts
    const sparse = join(dir, "sparse.gguf"), again = join(dir, "again.gguf");
    moefyFile(dense, sparse, { experts: 4, topK: 2, seed: 9 });
    moefyFile(dense, again, { experts: 4, topK: 2, seed: 9 });
    const gs = readGGUF(sparse);
    equal(gs.kv.get("llama.expert_used_count"), 2);
    const router = gs.tensorByName.get("blk.0.ffn_gate_inp.weight")!;
    ok(tensorBytes(sparse, router).some((b) => b !== 0), "random router");
    ok(readFileSync(sparse).equals(readFileSync(again)), "seeded: same file");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("moefy: refusals name the problem and the valid choices", () => {
  const dir = mkdtempSync(join(tmpdir(), "spool-moefy-"));
  try {
    const dense = join(dir, "dense.gguf"), out = join(dir, "out.gguf");
    denseLlama(dense, T.Q4_1);
    const refuses = (opts: Parameters<typeof moefyFile>[2], code: string, re: RegExp) =>
      throws(
        () => moefyFile(dense, out, opts),
        (e: unknown) => e instanceof MoefyError && e.code === code && re.test(e.message),
      );
    refuses({ experts: 3 }, "bad_option", /power of two/);
    refuses({ experts: 1 }, "bad_option", /power of two/);
    refuses({ experts: 4, topK: 5 }, "bad_option", /1\.\.4/);
    // Q4_1 blocks are 32 wide: 256 / 16 = 16 values is half a block
    refuses({ experts: 16 }, "inexact", /Q4_1.*valid --experts: 2, 4, 8/);
    deepStrictEqual(validExpertCounts(1536, 32), [2, 4, 8, 16]);
    // Q6_K: 256-wide blocks along n_ff = 256 leave no valid split
    const q6 = join(dir, "q6.gguf");
    denseLlama(q6, T.Q4_1, "llama", T.Q6_K);
    throws(() => moefyFile(q6, out, { experts: 2 }), /Q6_K.*valid --experts: none/);
    // a MoE is not moefied again; another architecture is refused
    const moe = join(dir, "moe.gguf");
    moefyFile(dense, moe, { experts: 2 });
    throws(() => moefyFile(moe, out, { experts: 2 }), /already has llama.expert_count = 2/);
    const qwen = join(dir, "qwen.gguf");
    denseLlama(qwen, T.Q4_1, "qwen2");
    throws(() => moefyFile(qwen, out, { experts: 2 }), /architecture is "qwen2"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
