import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readGGUF } from "../gguf/reader.ts";
import { tensorBytes } from "../gguf/types.ts";
import { GGMLType } from "../gguf/types.ts";
import { ModelConfigError } from "./config.ts";
import {
  ARCH_FILES,
  archOf,
  ARCHS,
  getArch,
  supportedArchs,
  UnsupportedArchError,
} from "./registry.ts";
import { planSynthetic, writeSyntheticModel } from "./synth.ts";

function assertEquals(a: unknown, b: unknown, msg?: string): void {
  assert.deepStrictEqual(a, b, msg);
}

/** Run `fn`, require it to throw an instance of `cls` (message containing `includes`). */
function assertThrows<E extends Error>(
  fn: () => unknown,
  cls: new (...a: never[]) => E,
  includes?: string,
): E {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (includes) assert.ok((e as E).message.includes(includes), (e as E).message);
    return e as E;
  }
  throw new assert.AssertionError({ message: `expected ${cls.name} to be thrown` });
}

const DIR = fileURLToPath(new URL(".", import.meta.url));
const NOT_ARCH = new Set([
  "registry.ts",
  "config.ts",
  "synth.ts",
  "step.ts",
  "weights.ts",
  "errors.ts",
]);

Deno.test("every architecture file in runtime/models is registered", async () => {
  const files = readdirSync(DIR).filter((f) =>
    f.endsWith(".ts") && !f.startsWith("_") && !f.endsWith("_test.ts") && !NOT_ARCH.has(f)
  );
  assert.ok(files.length >= 5, `found ${files.join(", ")}`);
  for (const f of files) {
    const arch = ARCH_FILES[f];
    assert.ok(arch !== undefined, `runtime/models/${f} is not registered in registry.ts`);
    // The file's exported spec is the registered one.
    const mod = await import(`./${f}`);
    const specs = Object.values(mod).filter((v) => v === ARCHS[arch]);
    assertEquals(specs.length, 1, `${f} does not export the spec registered for "${arch}"`);
  }
  assertEquals(Object.keys(ARCH_FILES).sort(), files.sort());
});

Deno.test("registry maps GGUF arch strings to specs", () => {
  assertEquals(supportedArchs(), [
    "deepseek2",
    "glm4moe",
    "gpt-oss",
    "llama",
    "minimax-m2",
    "olmoe",
    "qwen2moe",
    "qwen35moe",
    "qwen3moe",
    "qwen3next",
  ]);
  for (const a of supportedArchs()) assertEquals(getArch(a).arch, a);
  const e = assertThrows(() => getArch("mamba"), UnsupportedArchError);
  assertEquals(e.arch, "mamba");
  assert.ok(e.message.includes("deepseek2, glm4moe, gpt-oss, llama, minimax-m2"), e.message);
  // a dense llama is not a MoE model
  assertThrows(
    () => archOf(new Map([["general.architecture", "llama"]])),
    UnsupportedArchError,
    "dense llama",
  );
  assertEquals(
    archOf(
      new Map<string, number | string>([
        ["general.architecture", "llama"],
        ["llama.expert_count", 8],
      ]),
    ).arch,
    "llama",
  );
});

/** Required tensors of the tiny fixture (3 model-level + per layer), counted by hand. */
// the model-level tensors: token_embd and output_norm (output is optional: tied embeddings)
const REQUIRED: Record<string, number> = {
  qwen3moe: 2 + 2 * (5 + 2 + 5), // attn (norm,q,k,v,o) + q/k norm + ffn (norm,router,3 experts)
  llama: 2 + 2 * (5 + 5),
  olmoe: 2 + 2 * (5 + 2 + 5),
  "gpt-oss": 2 + 2 * (5 + 4 + 1 + 5 + 4), // + q/k/v/o biases, sinks, router bias, 3 expert biases
  qwen2moe: 2 + 2 * (5 + 3 + 5 + 4), // + q/k/v biases, shared expert (gate vector + 3)
  // dense layer 0: attn 5 + (post_attention_norm, ffn_gate/down/up); MoE layer 1: attn 5 +
  // norm, router, 3 experts, exp_probs_b, 3 shared; MTP block 2: as layer 1 + eh_proj/enorm/hnorm
  glm4moe: 2 + (5 + 4) + (5 + 9) + (5 + 9 + 3),
  "minimax-m2": 2 + 2 * (5 + 2 + 5 + 1), // + full q/k norms, exp_probs_b
  // MLA attention 9 (norm, q_a_norm, q_a, q_b, kv_a_norm, kv_a_mqa, k_b, v_b, output);
  // dense layer 0 + 4; MoE layer 1 + 5 + 3 shared (exp_probs_b is optional)
  deepseek2: 2 + (9 + 4) + (9 + 5 + 3),
  // hybrids: 3 Gated DeltaNet layers (attn_norm, attn_qkv, attn_gate, ssm_conv1d, ssm_dt, ssm_a,
  // ssm_beta + ssm_alpha or ssm_ba, ssm_norm, ssm_out; + post_attention_norm, router, 3 experts,
  // 4 shared), 1 gated attention layer (5 + q/k norms + 5 + 4), an MTP block (16 + 3 nextn)
  qwen35moe: 2 + 3 * (10 + 5 + 4) + (7 + 5 + 4) + (16 + 3),
  qwen3next: 2 + 3 * (9 + 5 + 4) + (7 + 5 + 4) + (16 + 3),
};

/** Blocks in the tiny fixture's file (block_count): the trunk plus NextN blocks. */
const BLOCKS: Record<string, number> = { glm4moe: 3, qwen35moe: 5, qwen3next: 5 };
/** Trunk layers of the tiny fixture (the hybrids need 4 for their 3:1 pattern). */
const TRUNK: Record<string, number> = { qwen35moe: 4, qwen3next: 4 };

for (const arch of supportedArchs()) {
  Deno.test(`${arch}: tiny fixture round-trips through the reader`, () => {
    const dir = Deno.makeTempDirSync();
    try {
      const path = `${dir}/m.gguf`;
      const res = writeSyntheticModel(path, { arch, preset: "tiny", types: "Q8_0", seed: 7 });
      const g = readGGUF(path);
      const spec = getArch(arch);
      const cfg = spec.config(g.kv);
      assertEquals(cfg, res.config, "config read back equals the config written");
      assertEquals(archOf(g.kv), spec);
      // every required tensor is written, in spec order; optional ones as synth chose
      const want = spec.tensors(cfg).filter((t) => !t.optional || g.tensorByName.has(t.name));
      assertEquals(want.filter((t) => !t.optional).length, REQUIRED[arch]);
      assertEquals(g.tensors.map((t) => t.name), want.map((t) => t.name));
      for (const [i, t] of g.tensors.entries()) {
        assertEquals(t.shape, want[i].shape, t.name);
        // norms, biases, sinks and routers are F32; the rest Q8_0 (ne0 is a multiple of 32)
        assertEquals(t.typeName, want[i].f32 ? "F32" : "Q8_0", t.name);
        assertEquals(t.nbytes, tensorBytes(t.type, t.shape), t.name);
        if (want[i].expert && want[i].role !== "expert_bias") {
          assertEquals(t.shape.length, 3, t.name);
          assertEquals(t.shape[2], cfg.nExpert, t.name);
        }
      }
      assertEquals(g.fileSize, res.bytes);
      // metadata values, as written
      const n = (k: string) => g.kv.get(`${spec.arch}.${k}`);
      assertEquals(g.kv.get("general.architecture"), spec.arch);
      assertEquals(n("block_count"), BLOCKS[arch] ?? 2);
      assertEquals(cfg.nLayer, TRUNK[arch] ?? 2);
      assertEquals(n("embedding_length"), 256);
      assertEquals(n("expert_count"), arch === "deepseek2" ? 8 : 4);
      assertEquals(n("expert_used_count"), 2);
      assertEquals(n("attention.key_length"), cfg.headDim);
      assertEquals(g.kvTypes.get(`${spec.arch}.block_count`)?.type, 4); // UINT32
      assertEquals(g.kvTypes.get(`${spec.arch}.attention.layer_norm_rms_epsilon`)?.type, 6); // F32
      assertEquals((g.kv.get("tokenizer.ggml.tokens") as string[]).length, cfg.nVocab);
      assertEquals(g.kv.get("general.file_type"), 7); // MOSTLY_Q8_0
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("arch-specific config and tensors", () => {
  const cfg = (arch: string) => planSynthetic({ arch, preset: "tiny" }).config;
  const q3 = cfg("qwen3moe");
  assertEquals([q3.qkNorm, q3.nHead, q3.nHeadKv, q3.headDim, q3.nEmbd], ["head", 8, 2, 64, 256]);
  const names = (arch: string) => getArch(arch).tensors(cfg(arch)).map((t) => [t.name, t.shape]);
  const byName = (arch: string) => new Map(names(arch) as [string, number[]][]);
  // qwen3moe: per-head q/k norms; q projection 8 heads × 64 = 512 wide (≠ n_embd)
  assertEquals(byName("qwen3moe").get("blk.0.attn_q_norm.weight"), [64]);
  assertEquals(byName("qwen3moe").get("blk.0.attn_q.weight"), [256, 512]);
  assertEquals(byName("qwen3moe").get("blk.0.attn_output.weight"), [512, 256]);
  assertEquals(byName("qwen3moe").get("blk.1.ffn_down_exps.weight"), [256, 256, 4]);
  // olmoe: full-width q/k norms
  assertEquals(byName("olmoe").get("blk.0.attn_k_norm.weight"), [256]);
  // gpt-oss
  const g = byName("gpt-oss");
  assertEquals(g.get("blk.0.attn_sinks.weight"), [4]);
  assertEquals(g.get("blk.0.post_attention_norm.weight"), [256]);
  assertEquals(g.get("blk.0.ffn_norm.weight"), undefined);
  assertEquals(g.get("blk.0.ffn_gate_inp.bias"), [4]);
  assertEquals(g.get("blk.0.ffn_down_exps.bias"), [256, 4]);
  assertEquals(g.get("blk.0.attn_output.bias"), [256]);
  const go = cfg("gpt-oss");
  assertEquals([go.slidingWindow, go.swaPattern, go.act, go.rope.scaling?.type], [
    16,
    2,
    "swiglu_oai",
    "yarn",
  ]);
  assertEquals(getArch("gpt-oss").routing.order, "topk_softmax");
  // qwen2moe: shared expert, q/k/v biases, no renormalization
  const q2 = byName("qwen2moe");
  assertEquals(q2.get("blk.0.ffn_gate_inp_shexp.weight"), [256]);
  assertEquals(q2.get("blk.0.ffn_down_shexp.weight"), [512, 256]);
  assertEquals(q2.get("blk.0.attn_k.bias"), [128]);
  assertEquals(getArch("qwen2moe").routing.renormalize, false);
  assertEquals(getArch("olmoe").routing.renormalize, false);
  assertEquals(getArch("qwen3moe").routing.renormalize, true);
  // mixtral: expert FFN from feed_forward_length, "norm" rope
  const mx = cfg("llama");
  assertEquals([mx.nFf, mx.nFfExp, mx.rope.type], [256, 256, "norm"]);
  assertEquals(byName("llama").get("blk.0.ffn_gate_exps.weight"), [256, 256, 4]);
});

Deno.test("config errors name the key", () => {
  const plan = planSynthetic({ arch: "qwen3moe", preset: "tiny" });
  const kv = new Map(plan.kv.map((e) => [e.key, e.value]));
  kv.delete("qwen3moe.block_count");
  const e = assertThrows(() => getArch("qwen3moe").config(kv), ModelConfigError);
  assertEquals([e.code, e.key], ["missing_key", "qwen3moe.block_count"]);
  const kv2 = new Map(plan.kv.map((e) => [e.key, e.value]));
  kv2.set("qwen3moe.expert_used_count", 9);
  assertThrows(() => getArch("qwen3moe").config(kv2), ModelConfigError, "expert_used_count");
  const kv3 = new Map(plan.kv.map((e) => [e.key, e.value]));
  kv3.set("general.architecture", "olmoe");
  assertEquals(
    assertThrows(() => getArch("qwen3moe").config(kv3), ModelConfigError).code,
    "unknown_arch",
  );
  assertEquals(GGMLType.F32, 0);
});
