/**
 * The specs of the Qwen hybrids (qwen35moe, qwen3next): hyperparameters written by synth read
 * back into the same config with the GGUF value types llama.cpp checks, the Gated DeltaNet
 * sizes and per-sequence state sizes, the layer pattern (interval or explicit array), the
 * tensor tables (shapes by hand from llama.cpp's qwen35moe.cpp / qwen3next.cpp create_tensor
 * calls), the real-shaped presets, the IMROPE-is-NEOX rule, and one ModelConfigError naming the
 * key for each bad hyperparameter; through Model.load, every listed tensor binds and a missing or
 * misshapen ssm_* tensor is a ModelLoadError naming it.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { readGGUF } from "../gguf/reader.ts";
import { encodeGGUF, kvEntriesOf, type TensorWithData } from "../gguf/writer.ts";
import { Model } from "../engine/model.ts";
import { ModelLoadError } from "./errors.ts";
import { GGUFValueType } from "../gguf/types.ts";
import type { GGUFValue } from "../gguf/types.ts";
import {
  kvBytesPerToken,
  kvLayerCount,
  type KVSource,
  type ModelConfig,
  ModelConfigError,
  recurrentStateFloats,
  resolveRouting,
  type TensorSpec,
} from "./config.ts";
import { getArch } from "./registry.ts";
import { imropeIsNeoxForText } from "./_hybrid.ts";
import { planSynthetic, type SynthDims, synthMain, writeSyntheticModel } from "./synth.ts";

function kvOf(arch: string, dims: Partial<SynthDims> = {}): Map<string, GGUFValue> {
  return new Map(planSynthetic({ arch, dims }).kv.map((e) => [e.key, e.value]));
}

function table(cfg: ModelConfig): Map<string, TensorSpec> {
  return new Map(getArch(cfg.arch).tensors(cfg).map((t) => [t.name, t]));
}

function shape(t: Map<string, TensorSpec>, name: string): readonly number[] | undefined {
  return t.get(name)?.shape;
}

/** Config of `arch` from metadata edited by `edit`; must throw ModelConfigError naming `key`. */
function rejects(
  arch: string,
  edit: (kv: Map<string, GGUFValue>) => void,
  key: string,
  code: "missing_key" | "bad_value" = "bad_value",
  dims: Partial<SynthDims> = {},
): void {
  const kv = kvOf(arch, dims);
  edit(kv);
  try {
    getArch(arch).config(kv as KVSource);
  } catch (e) {
    assert.ok(e instanceof ModelConfigError, `${arch} ${key}: ${e}`);
    assert.equal(e.key, `${arch}.${key}`, e.message);
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.includes(key), e.message);
    return;
  }
  assert.fail(`${arch}: expected a ModelConfigError naming ${key}`);
}

Deno.test("qwen35moe: config, state sizes, routing and tensors of the tiny fixture", () => {
  const spec = getArch("qwen35moe");
  const cfg = spec.config(kvOf("qwen35moe"));
  assert.deepEqual([cfg.nLayer, cfg.nLayerNextn, cfg.nHead, cfg.nHeadKv, cfg.headDim], [
    4,
    1,
    4,
    2,
    64,
  ]);
  assert.deepEqual([cfg.nFfExp, cfg.nFfShexp, cfg.nExpertShared, cfg.qkNorm, cfg.ffnNormName], [
    256,
    512,
    1,
    "head",
    "post_attention_norm",
  ]);
  // partial rope on a quarter of the head, IMROPE sections over its 8 pairs
  assert.deepEqual(cfg.rope, { type: "neox", freqBase: 1e7, dim: 16, sections: [3, 3, 2, 0] });
  // 2 key heads, 4 value heads of 64: conv over q, k (2·2·64) and v (4·64)
  assert.deepEqual(cfg.deltaNet, {
    layers: [true, true, true, false],
    fullAttnInterval: 4,
    convKernel: 4,
    headKDim: 64,
    headVDim: 64,
    nKHeads: 2,
    nVHeads: 4,
    innerSize: 256,
    convChannels: 512,
    vHeadOrder: "tiled",
    convStateFloats: 3 * 512,
    ssmStateFloats: 4 * 64 * 64,
  });
  // only the one attention layer holds KV: 2 heads × 64 for K and V, f16
  assert.equal(kvLayerCount(cfg), 1);
  assert.equal(kvBytesPerToken(spec, cfg), 1 * (128 + 128) * 2);
  assert.equal(recurrentStateFloats(cfg), 3 * (1536 + 16384));
  assert.deepEqual(resolveRouting(spec.routing, cfg), {
    gating: "softmax",
    routerBias: false,
    selectionBias: false,
    renormalize: true,
    scale: 1,
    sharedExpert: { gate: "sigmoid" },
  });
  const t = table(cfg);
  // Gated DeltaNet layer 0
  assert.deepEqual(shape(t, "blk.0.attn_qkv.weight"), [256, 512]);
  assert.deepEqual(shape(t, "blk.0.attn_gate.weight"), [256, 256]);
  assert.deepEqual(shape(t, "blk.0.ssm_conv1d.weight"), [4, 512]);
  assert.deepEqual(shape(t, "blk.0.ssm_dt.bias"), [4]);
  assert.deepEqual(shape(t, "blk.0.ssm_a"), [4]);
  assert.deepEqual(shape(t, "blk.0.ssm_beta.weight"), [256, 4]);
  assert.deepEqual(shape(t, "blk.0.ssm_alpha.weight"), [256, 4]);
  assert.deepEqual(shape(t, "blk.0.ssm_norm.weight"), [64]);
  assert.deepEqual(shape(t, "blk.0.ssm_out.weight"), [256, 256]);
  assert.equal(t.get("blk.0.ssm_ba.weight"), undefined);
  assert.equal(t.get("blk.0.attn_q.weight"), undefined);
  for (const n of ["ssm_conv1d.weight", "ssm_dt.bias", "ssm_a", "ssm_norm.weight"]) {
    assert.equal(t.get(`blk.0.${n}`)?.f32, true, n);
  }
  assert.equal(t.get("blk.0.attn_qkv.weight")?.f32, false);
  // gated attention layer 3: q twice as wide (query + gate per head), per-head q/k norms
  assert.deepEqual(shape(t, "blk.3.attn_q.weight"), [256, 2 * 4 * 64]);
  assert.deepEqual(shape(t, "blk.3.attn_k.weight"), [256, 2 * 64]);
  assert.deepEqual(shape(t, "blk.3.attn_v.weight"), [256, 2 * 64]);
  assert.deepEqual(shape(t, "blk.3.attn_output.weight"), [4 * 64, 256]);
  assert.deepEqual(shape(t, "blk.3.attn_q_norm.weight"), [64]);
  assert.equal(t.get("blk.3.attn_qkv.weight"), undefined);
  // MoE on every layer, sigmoid-gated shared expert, post_attention_norm as the pre-FFN norm
  for (const i of [0, 3]) {
    assert.deepEqual(shape(t, `blk.${i}.post_attention_norm.weight`), [256]);
    assert.deepEqual(shape(t, `blk.${i}.ffn_gate_inp.weight`), [256, 4]);
    assert.deepEqual(shape(t, `blk.${i}.ffn_gate_exps.weight`), [256, 256, 4]);
    assert.deepEqual(shape(t, `blk.${i}.ffn_down_exps.weight`), [256, 256, 4]);
    assert.deepEqual(shape(t, `blk.${i}.ffn_gate_inp_shexp.weight`), [256]);
    assert.deepEqual(shape(t, `blk.${i}.ffn_up_shexp.weight`), [256, 512]);
    assert.deepEqual(shape(t, `blk.${i}.ffn_down_shexp.weight`), [512, 256]);
    assert.equal(t.get(`blk.${i}.ffn_norm.weight`), undefined);
  }
  // the MTP block (layer 4) is a gated-attention block, every tensor of it flagged mtp
  assert.deepEqual(shape(t, "blk.4.attn_q.weight"), [256, 512]);
  assert.deepEqual(shape(t, "blk.4.nextn.eh_proj.weight"), [512, 256]);
  for (const x of t.values()) assert.equal(x.mtp === true, x.layer === 4, x.name);
  assert.equal([...t.values()].filter((x) => x.mtp).length, 7 + 5 + 4 + 6);
});

Deno.test("qwen3next: fused ssm_ba, grouped value heads, plain NEOX rope", () => {
  const cfg = getArch("qwen3next").config(kvOf("qwen3next"));
  assert.deepEqual(cfg.rope, { type: "neox", freqBase: 1e7, dim: 16 });
  assert.equal(cfg.deltaNet?.vHeadOrder, "grouped");
  assert.deepEqual(cfg.deltaNet?.layers, [true, true, true, false]);
  const t = table(cfg);
  assert.deepEqual(shape(t, "blk.0.ssm_ba.weight"), [256, 2 * 4]);
  assert.equal(t.get("blk.0.ssm_beta.weight"), undefined);
  assert.deepEqual(shape(t, "blk.2.attn_qkv.weight"), [256, 512]);
  assert.deepEqual(shape(t, "blk.3.attn_q.weight"), [256, 512]);
  assert.equal(kvOf("qwen3next").has("qwen3next.rope.dimension_sections"), false);
});

Deno.test("hybrids round-trip through a file with llama.cpp's GGUF value types", () => {
  const dir = Deno.makeTempDirSync();
  try {
    for (
      const [arch, dims] of [
        ["qwen35moe", {}],
        ["qwen3next", { nLayer: 6, recurrentLayers: "rrarra", nLayerNextn: 0 }],
      ] as const
    ) {
      const path = `${dir}/${arch}.gguf`;
      const res = writeSyntheticModel(path, { arch, types: "Q8_0", seed: 3, dims });
      const g = readGGUF(path);
      const cfg = getArch(arch).config(g.kv);
      assert.deepEqual(cfg, res.config);
      const type = (k: string) => g.kvTypes.get(`${arch}.${k}`);
      for (const k of ["ssm.conv_kernel", "ssm.inner_size", "ssm.state_size"]) {
        assert.equal(type(k)?.type, GGUFValueType.UINT32, k);
      }
      assert.equal(type("ssm.time_step_rank")?.type, GGUFValueType.UINT32);
      assert.equal(type("ssm.group_count")?.type, GGUFValueType.UINT32);
      if (arch === "qwen35moe") {
        assert.equal(type("full_attention_interval")?.type, GGUFValueType.UINT32);
        assert.deepEqual(type("rope.dimension_sections"), {
          type: GGUFValueType.ARRAY,
          elementType: GGUFValueType.INT32,
        });
        assert.deepEqual(Array.from(g.kv.get(`${arch}.rope.dimension_sections`) as Int32Array), [
          3,
          3,
          2,
          0,
        ]);
        assert.equal(g.kv.get(`${arch}.attention.recurrent_layers`), undefined);
      } else {
        // an explicit pattern: one BOOL per block, no interval
        assert.deepEqual(type("attention.recurrent_layers"), {
          type: GGUFValueType.ARRAY,
          elementType: GGUFValueType.BOOL,
        });
        assert.deepEqual(g.kv.get(`${arch}.attention.recurrent_layers`), [
          true,
          true,
          false,
          true,
          true,
          false,
        ]);
        assert.equal(g.kv.get(`${arch}.full_attention_interval`), undefined);
        assert.deepEqual([cfg.deltaNet?.fullAttnInterval, kvLayerCount(cfg)], [0, 2]);
        assert.equal(g.tensorByName.has("blk.2.attn_q.weight"), true);
        assert.equal(g.tensorByName.has("blk.3.ssm_ba.weight"), true);
      }
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the layer pattern: interval (default 4), explicit array, one number for all", () => {
  const spec = getArch("qwen35moe");
  const layers = (edit: (kv: Map<string, GGUFValue>) => void, dims: Partial<SynthDims> = {}) => {
    const kv = kvOf("qwen35moe", dims);
    edit(kv);
    return spec.config(kv).deltaNet?.layers;
  };
  const K = "qwen35moe.";
  // no interval key: llama.cpp's default of 4
  assert.deepEqual(layers((kv) => kv.delete(`${K}full_attention_interval`), { nLayer: 8 }), [
    true,
    true,
    true,
    false,
    true,
    true,
    true,
    false,
  ]);
  assert.deepEqual(layers((kv) => kv.set(`${K}full_attention_interval`, 3), { nLayer: 6 }), [
    true,
    true,
    false,
    true,
    true,
    false,
  ]);
  // an INT32 array (llama.cpp accepts it like BOOL), of block_count entries, takes precedence
  assert.deepEqual(
    layers((kv) => kv.set(`${K}attention.recurrent_layers`, new Int32Array([0, 1, 1, 0, 0]))),
    [false, true, true, false],
  );
  // one number for every layer
  assert.deepEqual(layers((kv) => kv.set(`${K}attention.recurrent_layers`, 1)), [
    true,
    true,
    true,
    true,
  ]);
});

Deno.test("hybrids: bad hyperparameters give a ModelConfigError naming the key", () => {
  const set = (k: string, v: GGUFValue) => (kv: Map<string, GGUFValue>) => kv.set(k, v);
  const del = (k: string) => (kv: Map<string, GGUFValue>) => kv.delete(k);
  for (const arch of ["qwen35moe", "qwen3next"]) {
    const A = `${arch}.`;
    rejects(arch, set(`${A}full_attention_interval`, 0), "full_attention_interval");
    rejects(
      arch,
      set(`${A}attention.recurrent_layers`, [true, false]),
      "attention.recurrent_layers",
    );
    rejects(arch, set(`${A}attention.recurrent_layers`, "rrra"), "attention.recurrent_layers");
    for (const k of ["conv_kernel", "inner_size", "state_size", "time_step_rank", "group_count"]) {
      rejects(arch, del(`${A}ssm.${k}`), `ssm.${k}`, "missing_key");
    }
    rejects(arch, set(`${A}ssm.conv_kernel`, 1), "ssm.conv_kernel");
    rejects(arch, set(`${A}ssm.state_size`, 0), "ssm.state_size");
    // 4 value heads over 3 key heads; value heads narrower than key heads
    rejects(arch, set(`${A}ssm.group_count`, 3), "ssm.time_step_rank");
    rejects(arch, set(`${A}ssm.inner_size`, 128), "ssm.inner_size");
    rejects(arch, set(`${A}attention.value_length`, 32), "attention.value_length");
    rejects(arch, set(`${A}rope.dimension_count`, 15), "rope.dimension_count");
    rejects(arch, set(`${A}rope.dimension_count`, 128), "rope.dimension_count");
    rejects(
      arch,
      del(`${A}expert_shared_feed_forward_length`),
      "expert_shared_feed_forward_length",
    );
    rejects(arch, set(`${A}expert_count`, 0), "expert_count");
    rejects(arch, set(`${A}nextn_predict_layers`, 5), "nextn_predict_layers");
  }
  const Q = "qwen35moe.";
  rejects(
    "qwen35moe",
    del(`${Q}rope.dimension_sections`),
    "rope.dimension_sections",
    "missing_key",
  );
  rejects("qwen35moe", set(`${Q}rope.dimension_sections`, [3, 3, 2]), "rope.dimension_sections");
  rejects("qwen35moe", set(`${Q}rope.dimension_sections`, [0, 0, 0, 8]), "rope.dimension_sections");
  rejects(
    "qwen35moe",
    set(`${Q}rope.dimension_sections`, [40, 40, 0, 0]),
    "rope.dimension_sections",
  );
  // the 4th (image) section takes rotated pairs 6 and 7, which text leaves unrotated
  rejects("qwen35moe", set(`${Q}rope.dimension_sections`, [2, 2, 2, 2]), "rope.dimension_sections");
});

Deno.test("IMROPE with text positions is NEOX exactly when no rotated pair takes the 4th section", () => {
  assert.equal(imropeIsNeoxForText([11, 11, 10, 0], 64), true); // Qwen3.5
  assert.equal(imropeIsNeoxForText([3, 3, 2, 0], 16), true);
  // sections summing to fewer pairs than rotated repeat (sector = pair % 12)
  assert.equal(imropeIsNeoxForText([4, 4, 4, 0], 64), true);
  assert.equal(imropeIsNeoxForText([8, 8, 8, 8], 64), false); // pairs 24..31: sector e
  assert.equal(imropeIsNeoxForText([2, 2, 0, 0], 8), false); // pair 2 (s % 3 == 2) has no w
  assert.equal(imropeIsNeoxForText([16, 0, 0, 0], 32), false);
  assert.equal(imropeIsNeoxForText([0, 0, 0, 0], 32), false);
});

Deno.test("real-shaped hybrid presets: Qwen3.5-35B-A3B, Qwen3.5-397B-A17B, Qwen3-Next-80B", () => {
  const p35 = planSynthetic({ arch: "qwen35moe", preset: "qwen3.5-35b-a3b", vocab: "bytes" });
  const c35 = p35.config;
  assert.deepEqual([c35.nLayer, c35.nLayerNextn, c35.nEmbd, c35.nHead, c35.nHeadKv], [
    12,
    1,
    2048,
    16,
    2,
  ]);
  assert.deepEqual([c35.headDim, c35.rope.dim, c35.rope.sections, c35.rope.freqBase], [
    256,
    64,
    [11, 11, 10, 0],
    1e7,
  ]);
  assert.deepEqual([c35.nExpert, c35.nExpertUsed, c35.nFfExp, c35.nFfShexp], [256, 8, 512, 512]);
  const d35 = c35.deltaNet!;
  assert.deepEqual(
    [d35.nKHeads, d35.nVHeads, d35.headKDim, d35.innerSize, d35.convChannels],
    [16, 32, 128, 4096, 8192],
  );
  // per sequence and DeltaNet layer: 3 × 8192 conv floats, 32 × 128 × 128 state floats (2 MiB)
  assert.deepEqual([d35.convStateFloats, d35.ssmStateFloats], [24576, 524288]);
  assert.equal(d35.layers.map((r) => (r ? "r" : "a")).join(""), "rrrarrrarrra");
  const t35 = table(c35);
  assert.deepEqual(shape(t35, "blk.0.attn_qkv.weight"), [2048, 8192]);
  assert.deepEqual(shape(t35, "blk.0.ssm_conv1d.weight"), [4, 8192]);
  assert.deepEqual(shape(t35, "blk.0.ssm_out.weight"), [4096, 2048]);
  assert.deepEqual(shape(t35, "blk.3.attn_q.weight"), [2048, 8192]);
  assert.deepEqual(shape(t35, "blk.3.attn_k.weight"), [2048, 512]);
  assert.deepEqual(shape(t35, "blk.3.attn_output.weight"), [4096, 2048]);
  assert.deepEqual(shape(t35, "blk.1.ffn_gate_exps.weight"), [2048, 512, 256]);
  // Q4_K_M: attn_qkv counts as attn_v (Q6_K where use_more_bits), the conv kernel stays F32
  const types = new Map(p35.tensors.map((x) => [x.spec.name, x.type]));
  assert.equal(types.get("blk.0.attn_qkv.weight"), "Q6_K");
  assert.equal(types.get("blk.1.attn_qkv.weight"), "Q4_K");
  assert.equal(types.get("blk.0.ssm_conv1d.weight"), "F32");

  const c397 = planSynthetic({ arch: "qwen35moe", preset: "qwen3.5-397b-a17b", vocab: "bytes" })
    .config;
  assert.deepEqual([c397.nLayer, c397.nLayerNextn, c397.nEmbd, c397.nHead], [4, 0, 4096, 32]);
  assert.deepEqual([c397.nExpert, c397.nExpertUsed, c397.nFfExp, c397.nFfShexp], [
    512,
    10,
    1024,
    1024,
  ]);
  assert.deepEqual([c397.deltaNet!.nVHeads, c397.deltaNet!.innerSize], [64, 8192]);
  assert.deepEqual(shape(table(c397), "blk.0.ssm_beta.weight"), [4096, 64]);
  assert.deepEqual(shape(table(c397), "blk.0.attn_qkv.weight"), [4096, 12288]);

  const cn = planSynthetic({ arch: "qwen3next", preset: "qwen3-next-80b-a3b", vocab: "bytes" })
    .config;
  assert.deepEqual([cn.nLayer, cn.nExpert, cn.nExpertUsed, cn.rope.sections], [
    4,
    512,
    10,
    undefined,
  ]);
  assert.deepEqual(shape(table(cn), "blk.0.ssm_ba.weight"), [2048, 64]);
  assert.throws(
    () => planSynthetic({ arch: "qwen3next", preset: "qwen3.5-35b-a3b" }),
    /qwen35moe model/,
  );
});

Deno.test("spool synth flags set the hybrid hyperparameters", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const out = `${dir}/m.gguf`;
    const code = synthMain([
      "--arch=qwen35moe",
      `--out=${out}`,
      "--quiet",
      "--n-layer=3",
      "--recurrent-layers=rar",
      "--ssm-state-size=32",
      "--ssm-group-count=1",
      "--ssm-time-step-rank=8",
      "--ssm-conv-kernel=3",
      "--rope-dim=32",
      "--rope-sections=6,5,5,0",
      "--n-nextn=0",
    ]);
    assert.equal(code, 0);
    const cfg = getArch("qwen35moe").config(readGGUF(out).kv);
    assert.deepEqual(cfg.deltaNet?.layers, [true, false, true]);
    assert.deepEqual(
      [
        cfg.deltaNet?.headKDim,
        cfg.deltaNet?.nKHeads,
        cfg.deltaNet?.nVHeads,
        cfg.deltaNet?.convKernel,
      ],
      [32, 1, 8, 3],
    );
    assert.deepEqual([cfg.rope.dim, cfg.rope.sections, cfg.nLayerNextn], [32, [6, 5, 5, 0], 0]);
    assert.equal(synthMain([`--arch=qwen35moe`, `--out=${out}`, "--recurrent-layers=rxr"]), 2);
    assert.equal(synthMain([`--arch=qwen35moe`, `--out=${out}`, "--rope-sections=1,2"]), 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Rewrite `src` into `dst` with its tensors and metadata edited. */
function rewrite(
  src: string,
  dst: string,
  edit: {
    tensors?: (t: TensorWithData[]) => TensorWithData[];
    kv?: (kv: ReturnType<typeof kvEntriesOf>) => ReturnType<typeof kvEntriesOf>;
  },
): void {
  const g = readGGUF(src);
  const bytes = readFileSync(src);
  let tensors: TensorWithData[] = g.tensors.map((t) => ({
    name: t.name,
    type: t.type,
    shape: t.shape,
    data: bytes.subarray(t.absoluteOffset, t.absoluteOffset + t.nbytes),
  }));
  tensors = edit.tensors?.(tensors) ?? tensors;
  writeFileSync(dst, encodeGGUF({ kv: edit.kv?.(kvEntriesOf(g)) ?? kvEntriesOf(g), tensors }));
}

for (const arch of ["qwen35moe", "qwen3next"]) {
  Deno.test(`${arch}: Model.load binds every listed tensor; bad ssm_* tensors are named`, () => {
    const dir = Deno.makeTempDirSync();
    const load = (p: string) => Model.load(p, { threads: 1 }).close();
    const fails = (p: string, ...parts: string[]) =>
      assert.throws(() => load(p), (e: Error) => {
        assert.ok(e instanceof ModelLoadError, String(e));
        for (const s of parts) assert.ok(e.message.includes(s), e.message);
        return true;
      });
    try {
      const src = `${dir}/ok.gguf`, bad = `${dir}/bad.gguf`;
      writeSyntheticModel(src, { arch, types: "Q8_0", seed: 2 });
      load(src);
      // missing: the output projection of a DeltaNet layer
      rewrite(src, bad, { tensors: (ts) => ts.filter((t) => t.name !== "blk.1.ssm_out.weight") });
      fails(bad, `"blk.1.ssm_out.weight"`, "missing");
      // a conv kernel of 3 taps in the metadata, 4 in the file
      const K = `${arch}.ssm.conv_kernel`;
      rewrite(src, bad, {
        kv: (kv) => kv.map((e) => e.key === K ? { ...e, value: 3 } : e),
      });
      fails(bad, `"blk.0.ssm_conv1d.weight"`, "expected shape [3, 512], got [4, 512]");
      // ssm_a with half its heads
      const a = "blk.2.ssm_a";
      rewrite(src, bad, {
        tensors: (ts) =>
          ts.map((t) => t.name === a ? { ...t, shape: [2], data: t.data!.subarray(0, 8) } : t),
      });
      fails(bad, `"${a}"`);
      // value heads narrower than key heads: a config error naming the key
      const I = `${arch}.ssm.inner_size`;
      rewrite(src, bad, { kv: (kv) => kv.map((e) => e.key === I ? { ...e, value: 128 } : e) });
      assert.throws(
        () => load(bad),
        (e: Error) => e instanceof ModelConfigError && e.key === I,
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
