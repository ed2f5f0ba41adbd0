/**
 * The specs of glm4moe, minimax-m2 and deepseek2: hyperparameters written by synth read back
 * into the same config (with the GGUF value types llama.cpp checks), the tensor tables (shapes
 * by hand from llama.cpp's create_tensor calls), MTP blocks, the resolved routing, and one
 * ModelConfigError naming the key for each bad hyperparameter.
 */
import assert from "node:assert/strict";
import { readGGUF } from "../gguf/reader.ts";
import { GGUFValueType } from "../gguf/types.ts";
import {
  type ArchSpec,
  type KVSource,
  type ModelConfig,
  ModelConfigError,
  resolveRouting,
  type TensorSpec,
} from "./config.ts";
import { getArch } from "./registry.ts";
import { planSynthetic, type SynthDims, synthMain, writeSyntheticModel } from "./synth.ts";
import type { GGUFValue } from "../gguf/types.ts";

function kvOf(arch: string, dims: Partial<SynthDims> = {}): Map<string, GGUFValue> {
  const plan = planSynthetic({ arch, dims });
  return new Map(plan.kv.map((e) => [e.key, e.value]));
}

function shapes(spec: ArchSpec, cfg: ModelConfig): Map<string, TensorSpec> {
  return new Map(spec.tensors(cfg).map((t) => [t.name, t]));
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

Deno.test("glm4moe: config, routing and tensors of the tiny fixture", () => {
  const spec = getArch("glm4moe");
  const cfg = spec.config(kvOf("glm4moe"));
  assert.deepEqual(
    [cfg.nLayer, cfg.nLayerNextn, cfg.nLayerDenseLead, cfg.nFf, cfg.nFfExp, cfg.nFfShexp],
    [2, 1, 1, 512, 256, 256],
  );
  assert.deepEqual([cfg.rope.type, cfg.rope.dim, cfg.headDim], ["neox", 32, 64]);
  assert.deepEqual([cfg.qkNorm, cfg.attnQKVBias, cfg.ffnNormName], [
    "head",
    true,
    "post_attention_norm",
  ]);
  assert.deepEqual(resolveRouting(spec.routing, cfg), {
    gating: "sigmoid",
    routerBias: false,
    selectionBias: true,
    renormalize: true,
    scale: 1.5,
    sharedExpert: { gate: "none" },
  });
  const t = shapes(spec, cfg);
  assert.deepEqual(t.get("blk.0.ffn_gate.weight")?.shape, [256, 512]);
  assert.deepEqual(t.get("blk.0.ffn_down.weight")?.shape, [512, 256]);
  assert.equal(t.get("blk.0.ffn_gate_inp.weight"), undefined); // layer 0 is dense
  assert.deepEqual(t.get("blk.1.exp_probs_b.bias")?.shape, [4]);
  assert.equal(t.get("blk.1.exp_probs_b.bias")?.f32, true);
  assert.deepEqual(t.get("blk.1.ffn_up_shexp.weight")?.shape, [256, 256]);
  assert.equal(t.get("blk.1.ffn_gate_inp_shexp.weight"), undefined); // ungated
  assert.deepEqual(t.get("blk.1.attn_q.weight")?.shape, [256, 256]);
  assert.deepEqual(t.get("blk.1.attn_q.bias")?.optional, true);
  assert.deepEqual(t.get("blk.1.attn_k_norm.weight")?.shape, [64]);
  assert.deepEqual(t.get("blk.1.attn_k_norm.weight")?.optional, true);
  assert.equal(t.get("blk.1.post_attention_norm.weight")?.role, "norm");
  assert.equal(t.get("blk.1.ffn_norm.weight"), undefined);
  // the NextN block is layer 2 = nLayer: every tensor of it, and only those, flagged mtp
  assert.deepEqual(t.get("blk.2.nextn.eh_proj.weight")?.shape, [512, 256]);
  for (const x of t.values()) {
    assert.equal(x.mtp === true, x.layer === 2, x.name);
  }
  assert.equal(t.get("blk.2.nextn.embed_tokens.weight")?.optional, true);
  assert.equal(t.get("blk.2.ffn_gate_exps.weight")?.mtp, true);
  assert.equal([...t.values()].filter((x) => x.mtp).length, 5 + 5 + 9 + 6);
});

Deno.test("minimax-m2: config, routing and tensors of the tiny fixture", () => {
  const spec = getArch("minimax-m2");
  const cfg = spec.config(kvOf("minimax-m2"));
  assert.deepEqual([cfg.nFf, cfg.nFfExp, cfg.qkNorm, cfg.rope.dim, cfg.rope.type], [
    256,
    256,
    "full",
    32,
    "neox",
  ]);
  assert.deepEqual(resolveRouting(spec.routing, cfg), {
    gating: "sigmoid",
    routerBias: false,
    selectionBias: true,
    renormalize: true,
    scale: 1,
  });
  const t = shapes(spec, cfg);
  // q/k norms over the whole projection: n_head*head_dim and n_head_kv*head_dim
  assert.deepEqual(t.get("blk.0.attn_q_norm.weight")?.shape, [4 * 64]);
  assert.deepEqual(t.get("blk.0.attn_k_norm.weight")?.shape, [2 * 64]);
  assert.deepEqual(t.get("blk.1.exp_probs_b.bias")?.shape, [4]);
  assert.equal(t.get("blk.1.exp_probs_b.bias")?.optional, undefined);
  assert.equal([...t.values()].some((x) => x.name.includes("shexp") || x.mtp), false);
});

Deno.test("deepseek2: MLA config, grouped routing and tensors of the tiny fixture", () => {
  const spec = getArch("deepseek2");
  const kv = kvOf("deepseek2");
  const cfg = spec.config(kv);
  assert.deepEqual(cfg.mla, {
    qLoraRank: 256,
    kvLoraRank: 256,
    headDimK: 96,
    headDimV: 64,
    qkRopeDim: 32,
    qkNopeDim: 64,
  });
  // the latent KV entry: kv_lora + rope, one head
  assert.deepEqual([cfg.nHeadKv, cfg.headDim, cfg.headDimV], [1, 288, 256]);
  assert.deepEqual(cfg.rope, {
    type: "norm",
    freqBase: 10000,
    dim: 32,
    scaling: { type: "yarn", factor: 40, origCtx: 4096, yarnLogMul: Math.fround(0.1) },
  });
  assert.deepEqual(resolveRouting(spec.routing, cfg), {
    gating: "sigmoid",
    routerBias: false,
    selectionBias: true,
    groups: { count: 4, used: 2 },
    renormalize: true,
    scale: 2.5,
    sharedExpert: { gate: "none" },
  });
  const t = shapes(spec, cfg);
  const want: Record<string, number[]> = {
    "blk.0.attn_q_a.weight": [256, 256],
    "blk.0.attn_q_a_norm.weight": [256],
    "blk.0.attn_q_b.weight": [256, 4 * 96],
    "blk.0.attn_kv_a_mqa.weight": [256, 256 + 32],
    "blk.0.attn_kv_a_norm.weight": [256],
    "blk.0.attn_k_b.weight": [64, 256, 4],
    "blk.0.attn_v_b.weight": [256, 64, 4],
    "blk.0.attn_output.weight": [4 * 64, 256],
    "blk.0.ffn_up.weight": [256, 512],
    "blk.1.ffn_gate_exps.weight": [256, 256, 8],
    "blk.1.ffn_down_shexp.weight": [256, 256],
    "blk.1.exp_probs_b.bias": [8],
  };
  for (const [name, shape] of Object.entries(want)) {
    assert.deepEqual(t.get(name)?.shape, shape, name);
  }
  assert.equal(t.get("blk.1.exp_probs_b.bias")?.optional, true);
  assert.equal(t.get("blk.0.attn_q.weight"), undefined);
  assert.equal(t.get("blk.0.attn_kv_b.weight"), undefined);
  // GGUF value types as llama.cpp's loader checks them
  const plan = planSynthetic({ arch: "deepseek2" });
  const type = (k: string) => plan.kv.find((e) => e.key === `deepseek2.${k}`)?.type;
  assert.deepEqual(type("expert_weights_norm"), { type: GGUFValueType.BOOL });
  assert.deepEqual(type("expert_gating_func"), { type: GGUFValueType.UINT32 });
  assert.deepEqual(type("expert_weights_scale"), { type: GGUFValueType.FLOAT32 });
  assert.deepEqual(type("attention.q_lora_rank"), { type: GGUFValueType.UINT32 });
  assert.deepEqual(type("rope.scaling.yarn_log_multiplier"), { type: GGUFValueType.FLOAT32 });
  assert.deepEqual(type("expert_group_used_count"), { type: GGUFValueType.UINT32 });
});

Deno.test("deepseek2: no q LoRA (V2-Lite), softmax gating without exp_probs_b", () => {
  const spec = getArch("deepseek2");
  const cfg = spec.config(kvOf("deepseek2", {
    qLoraRank: 0,
    expertGating: "softmax",
    nExpertGroups: 0,
    nExpertGroupUsed: 0,
  }));
  assert.equal(cfg.mla?.qLoraRank, 0);
  const t = shapes(spec, cfg);
  assert.deepEqual(t.get("blk.0.attn_q.weight")?.shape, [256, 4 * 96]);
  assert.equal(t.get("blk.0.attn_q_a.weight"), undefined);
  const r = resolveRouting(spec.routing, cfg);
  assert.deepEqual([r.gating, r.groups], ["softmax", undefined]);
  // synth leaves exp_probs_b out with softmax gating, as V2 files do
  const plan = planSynthetic({ arch: "deepseek2", dims: { expertGating: "softmax" } });
  assert.equal(plan.tensors.some((x) => x.spec.name.includes("exp_probs_b")), false);
  // an absent expert_gating_func means softmax (DeepSeek-V2 files)
  const kv = kvOf("deepseek2");
  kv.delete("deepseek2.expert_gating_func");
  assert.equal(spec.config(kv).expertGating, "softmax");
  // llama.cpp's "lite" rule: 27 layers need no attention.q_lora_rank (and ignore it)
  const lite = kvOf("deepseek2", { nLayer: 27 });
  lite.delete("deepseek2.attention.q_lora_rank");
  assert.equal(spec.config(lite).mla?.qLoraRank, 0);
});

Deno.test("resolveRouting keeps the five original archs' routing", () => {
  const r = (arch: string) => {
    const spec = getArch(arch);
    return resolveRouting(spec.routing, planSynthetic({ arch }).config);
  };
  const plain = { routerBias: false, selectionBias: false, scale: 1 };
  assert.deepEqual(r("qwen3moe"), { gating: "softmax", renormalize: true, ...plain });
  assert.deepEqual(r("olmoe"), { gating: "softmax", renormalize: false, ...plain });
  assert.deepEqual(r("qwen2moe"), {
    gating: "softmax",
    renormalize: false,
    ...plain,
    sharedExpert: { gate: "sigmoid" },
  });
  assert.deepEqual(r("gpt-oss"), {
    gating: "softmax_weight",
    renormalize: true,
    ...plain,
    routerBias: true,
  });
});

Deno.test("bad hyperparameters give a ModelConfigError naming the key", () => {
  const set = (k: string, v: GGUFValue) => (kv: Map<string, GGUFValue>) => kv.set(k, v);
  const del = (k: string) => (kv: Map<string, GGUFValue>) => kv.delete(k);
  const D = "deepseek2.";
  rejects("deepseek2", set(`${D}expert_group_used_count`, 5), "expert_group_used_count");
  rejects("deepseek2", set(`${D}expert_group_used_count`, 4), "expert_group_used_count");
  rejects("deepseek2", set(`${D}expert_group_count`, 3), "expert_group_count");
  rejects("deepseek2", set(`${D}expert_group_count`, 8), "expert_group_count");
  // 4 groups of 2, 1 kept: 2 candidates cannot give top-3
  rejects("deepseek2", set(`${D}expert_used_count`, 3), "expert_used_count", "bad_value", {
    nExpertGroupUsed: 1,
  });
  rejects("deepseek2", set(`${D}leading_dense_block_count`, 2), "leading_dense_block_count");
  rejects("deepseek2", del(`${D}attention.kv_lora_rank`), "attention.kv_lora_rank", "missing_key");
  rejects("deepseek2", del(`${D}attention.q_lora_rank`), "attention.q_lora_rank", "missing_key");
  rejects(
    "deepseek2",
    del(`${D}attention.key_length_mla`),
    "attention.key_length_mla",
    "missing_key",
  );
  rejects("deepseek2", set(`${D}attention.key_length`, 320), "attention.key_length");
  rejects("deepseek2", set(`${D}attention.value_length`, 64), "attention.value_length");
  rejects("deepseek2", set(`${D}attention.head_count_kv`, 4), "attention.head_count_kv");
  rejects("deepseek2", set(`${D}rope.dimension_count`, 96), "rope.dimension_count");
  rejects("deepseek2", set(`${D}expert_gating_func`, 3), "expert_gating_func");
  rejects("deepseek2", set(`${D}expert_weights_norm`, 1), "expert_weights_norm");
  rejects("deepseek2", set(`${D}expert_shared_count`, 0), "expert_shared_count");
  rejects("deepseek2", set(`${D}attention.temperature_scale`, 0.5), "attention.temperature_scale");
  const G = "glm4moe.";
  rejects("glm4moe", set(`${G}nextn_predict_layers`, 3), "nextn_predict_layers");
  rejects("glm4moe", del(`${G}expert_shared_count`), "expert_shared_count", "missing_key");
  rejects("glm4moe", set(`${G}rope.dimension_count`, 33), "rope.dimension_count");
  rejects("glm4moe", del(`${G}feed_forward_length`), "feed_forward_length");
  rejects("glm4moe", set(`${G}leading_dense_block_count`, 2), "leading_dense_block_count");
  rejects("glm4moe", set(`${G}rope.dimension_sections`, [8, 8, 8, 0]), "rope.dimension_sections");
  rejects("glm4moe", set(`${G}expert_weights_scale`, -1), "expert_weights_scale");
  const M = "minimax-m2.";
  rejects("minimax-m2", del(`${M}expert_gating_func`), "expert_gating_func", "missing_key");
  rejects("minimax-m2", set(`${M}expert_feed_forward_length`, 512), "expert_feed_forward_length");
  rejects("minimax-m2", set(`${M}attention.value_length`, 32), "attention.value_length");
});

Deno.test("glm4moe: a missing expert_gating_func means sigmoid; block_count counts NextN", () => {
  const kv = kvOf("glm4moe");
  assert.equal(kv.get("glm4moe.block_count"), 3);
  assert.equal(kv.get("glm4moe.nextn_predict_layers"), 1);
  kv.delete("glm4moe.expert_gating_func");
  assert.equal(getArch("glm4moe").config(kv).expertGating, "sigmoid");
  // GLM-4.5-Air leaves the optional q/k norms out
  const plan = planSynthetic({ arch: "glm4moe", dims: { qkNorm: 0 } });
  assert.equal(plan.tensors.some((x) => x.spec.name.includes("attn_q_norm")), false);
  assert.ok(plan.tensors.some((x) => x.spec.name === "blk.1.attn_q.bias"));
});

Deno.test("real-shaped presets: GLM-4.5-Air, MiniMax-M2, DeepSeek-V3 with fewer layers", () => {
  const plan = (preset: "glm-4.5-air" | "minimax-m2" | "deepseek-v3", arch: string) =>
    planSynthetic({ arch, preset, vocab: "bytes" });
  const g = plan("glm-4.5-air", "glm4moe").config;
  assert.deepEqual(
    [g.nLayer, g.nLayerNextn, g.nEmbd, g.nHead, g.nHeadKv, g.headDim, g.rope.dim, g.nExpert],
    [5, 1, 4096, 96, 8, 128, 64, 128],
  );
  assert.deepEqual([g.nFfExp, g.nFf, g.nFfShexp, g.expertWeightsScale], [1408, 10944, 1408, 1]);
  const m = plan("minimax-m2", "minimax-m2").config;
  assert.deepEqual([m.nLayer, m.nEmbd, m.nHead, m.nHeadKv, m.rope.dim, m.nExpert, m.nFfExp], [
    3,
    3072,
    48,
    8,
    64,
    256,
    1536,
  ]);
  const dp = plan("deepseek-v3", "deepseek2");
  const d = dp.config;
  assert.deepEqual(d.mla, {
    qLoraRank: 1536,
    kvLoraRank: 512,
    headDimK: 192,
    headDimV: 128,
    qkRopeDim: 64,
    qkNopeDim: 128,
  });
  assert.deepEqual([d.headDim, d.nExpert, d.nExpertGroups, d.nExpertGroupUsed, d.nFf], [
    576,
    256,
    8,
    4,
    18432,
  ]);
  assert.equal(dp.types.mix, "Q4_K_M");
  // one MoE layer of DeepSeek-V3: 256 experts × 3 × 7168 × 2048 parameters
  const exps = dp.tensors.filter((x) => x.spec.layer === 1 && x.spec.expert);
  assert.equal(
    exps.reduce((a, x) => a + x.spec.shape.reduce((p, q) => p * q, 1), 0),
    256 * 3 * 7168 * 2048,
  );
  assert.throws(
    () => planSynthetic({ arch: "glm4moe", preset: "deepseek-v3", vocab: "bytes" }),
    /deepseek2 model, not glm4moe/,
  );
});

Deno.test("spool synth flags set the family hyperparameters", () => {
  const dir = Deno.makeTempDirSync();
  const log = console.log, err = console.error;
  const lines: string[] = [];
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    const out = `${dir}/d.gguf`;
    const code = synthMain([
      ...["--arch", "deepseek2", "--out", out, "--quiet", "--q-lora-rank", "0"],
      ...["--n-expert", "16", "--n-expert-groups", "8", "--n-expert-groups-used", "3"],
      ...["--gating", "softmax", "--expert-weights-scale", "1.25", "--kv-lora-rank", "128"],
      ...["--yarn-factor", "0", "--n-dense-lead", "0"],
    ]);
    assert.equal(code, 0, lines.join("\n"));
    const g = readGGUF(out);
    const cfg = getArch("deepseek2").config(g.kv);
    assert.deepEqual(
      [cfg.mla?.qLoraRank, cfg.mla?.kvLoraRank, cfg.nExpert, cfg.nExpertGroups],
      [0, 128, 16, 8],
    );
    assert.deepEqual(
      [cfg.nExpertGroupUsed, cfg.expertGating, cfg.expertWeightsScale, cfg.nLayerDenseLead],
      [3, "softmax", 1.25, 0],
    );
    assert.equal(cfg.rope.scaling, undefined);
    assert.ok(g.tensorByName.has("blk.0.attn_q.weight"));
    assert.equal(synthMain(["--arch", "glm4moe", "--out", out, "--gating", "relu"]), 2);
    assert.ok(lines.at(-1)?.includes("--gating must be softmax or sigmoid"), lines.at(-1));
    assert.equal(synthMain(["--arch", "glm4moe", "--out", out, "--n-nextn", "-1"]), 2);
  } finally {
    console.log = log;
    console.error = err;
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("glm4moe and deepseek2 files with NextN blocks round-trip; MTP tensors are last", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const res = writeSyntheticModel(`${dir}/d.gguf`, {
      arch: "deepseek2",
      dims: { nLayerNextn: 1 },
      types: "Q8_0",
    });
    const g = readGGUF(`${dir}/d.gguf`);
    assert.equal(g.kv.get("deepseek2.block_count"), 3);
    assert.deepEqual(getArch("deepseek2").config(g.kv), res.config);
    const spec = getArch("deepseek2").tensors(res.config);
    const first = spec.findIndex((t) => t.mtp);
    assert.ok(first > 0 && spec.slice(first).every((t) => t.mtp && t.layer === 2));
    assert.ok(g.tensorByName.has("blk.2.nextn.eh_proj.weight"));
    assert.ok(g.tensorByName.has("blk.2.attn_kv_a_mqa.weight"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
