/**
 * llama.cpp accepts what spool writes: for every architecture × stored type, a tiny random
 * fixture (runtime/models/synth.ts) is loaded by node-llama-cpp's llama.cpp, a string is
 * tokenized and evaluated, and:
 *  - the tokens are the ids spool's vocabulary gives (byte-level BPE: merges applied);
 *  - the logits are finite and of vocabulary size;
 *  - the logits of each quantized file are close to those of the F32 file with the same
 *    seed (NMSE bound per type), which shows llama.cpp decodes spool's quantized bytes into
 *    the same weights.
 * The five original archs run every type spool writes; the newer families (glm4moe,
 * minimax-m2, deepseek2, qwen35moe, qwen3next) run F32 (the reference), F16, Q8_0 and Q4_K_M,
 * plus one variant each (GLM-4.5-Air without q/k norms or NextN block, DeepSeek-V2-Lite-like MLA
 * without q LoRA and softmax routing, with a NextN block; MiniMax with group-limited routing;
 * Qwen3.5 with an irregular recurrent_layers pattern and 4 value heads per key head; Qwen3-Next
 * with attention every 2nd layer and no MTP block). A NextN/MTP block in a file must be exactly what
 * llama.cpp leaves unused: its "unused tensor" warnings name the spec's `mtp` tensors, no more,
 * no fewer.
 * One more fixture carries the real Qwen2/3 vocabulary (151936 tokens) copied from
 * the vocab folder (runtime/data_dirs.ts). All llama.cpp work runs in one child process (see
 * llama_oracle.ts), on the plain (non flash-attention) path with 2 threads.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { getArch, supportedArchs } from "../../runtime/models/registry.ts";
import {
  byteVocabKV,
  sharedVocab,
  type SynthDims,
  type SynthResult,
  type SynthTypes,
  writeSyntheticModel,
} from "../../runtime/models/synth.ts";
import { type OracleJob, runLlamaOracle } from "./llama_oracle.ts";

const DIR = fileURLToPath(new URL("../fixtures/llama_load/", import.meta.url));
const TEXT = "Hello world, the spool";

/** Stored types to check, with the NMSE bound of their logits against F32's. */
const TYPES: Record<string, { types: string | Partial<SynthTypes>; nmse: number }> = {
  F32: { types: "F32", nmse: 0 },
  F16: { types: "F16", nmse: 1e-3 },
  BF16: { types: "BF16", nmse: 1e-2 },
  Q8_0: { types: "Q8_0", nmse: 1e-2 },
  Q4_0: { types: "Q4_0", nmse: 0.3 },
  Q4_K: { types: "Q4_K", nmse: 0.3 },
  Q5_K: { types: "Q5_K", nmse: 0.1 },
  Q6_K: { types: "Q6_K", nmse: 0.05 },
  Q4_K_M: { types: "Q4_K_M", nmse: 0.3 },
  // gpt-oss ships MXFP4 experts; the other archs run them too in llama.cpp
  MXFP4: { types: { weights: "Q8_0", experts: "MXFP4", embeddings: "Q8_0" }, nmse: 0.3 },
};

/** The five original archs run every type above; the others run {@link FAMILY_TYPES}. */
const ORIGINAL = new Set(["qwen3moe", "llama", "olmoe", "gpt-oss", "qwen2moe"]);
const FAMILY_TYPES = ["F32", "F16", "Q8_0", "Q4_K_M"];

/** One more Q8_0 file per newer family, with the other variant of its hyperparameters. */
const VARIANTS: Record<string, Partial<SynthDims>> = {
  glm4moe: { qkNorm: 0, nLayerNextn: 0, expertWeightsScale: 1 },
  deepseek2: {
    nLayerNextn: 1,
    qLoraRank: 0,
    expertGating: "softmax",
    nExpertGroups: 0,
    nExpertGroupUsed: 0,
    expertWeightsNorm: false,
    yarnFactor: 0,
  },
  "minimax-m2": { nExpert: 8, nExpertGroups: 4, nExpertGroupUsed: 2 },
  // an irregular pattern given as attention.recurrent_layers, 4 value heads per key head
  qwen35moe: { nLayer: 5, recurrentLayers: "rarra", ssmGroupCount: 1, ssmTimeStepRank: 4 },
  // attention every 2nd layer, no MTP block, as many value heads as key heads
  qwen3next: { fullAttnInterval: 2, nLayerNextn: 0, ssmGroupCount: 4, ssmTimeStepRank: 4 },
};

/** The written tensors the spec flags as a NextN/MTP block's. */
function mtpOf(res: SynthResult): string[] {
  const written = new Set(res.tensors.map((t) => t.name));
  return getArch(res.config.arch).tensors(res.config).filter((t) => t.mtp && written.has(t.name))
    .map((t) => t.name);
}

function nmse(a: readonly number[], ref: readonly number[]): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return num / den;
}

Deno.test({
  name: "llama.cpp loads and runs every arch × type that spool writes",
  // the kernel library (quantizer) stays loaded for the process, by design
  sanitizeResources: false,
  fn: async () => {
    mkdirSync(DIR, { recursive: true });
    const jobs: (OracleJob & { arch: string; type: string; nVocab: number; mtp: string[] })[] = [];
    for (const arch of supportedArchs()) {
      const types = ORIGINAL.has(arch) ? Object.keys(TYPES) : FAMILY_TYPES;
      for (const type of types) {
        const path = `${DIR}${arch}_${type}.gguf`;
        const res = writeSyntheticModel(path, { arch, types: TYPES[type].types, seed: 11 });
        jobs.push({ path, text: TEXT, arch, type, nVocab: res.config.nVocab, mtp: mtpOf(res) });
      }
      if (VARIANTS[arch]) {
        const path = `${DIR}${arch}_variant_Q8_0.gguf`;
        const res = writeSyntheticModel(path, {
          arch,
          types: "Q8_0",
          seed: 12,
          dims: VARIANTS[arch],
        });
        const nVocab = res.config.nVocab;
        jobs.push({ path, text: TEXT, arch, type: "variant", nVocab, mtp: mtpOf(res) });
      }
    }
    const qwenVocab = sharedVocab("ggml-vocab-qwen2.gguf");
    const haveQwen = existsSync(qwenVocab);
    if (haveQwen) {
      const path = `${DIR}qwen3moe_qwen-vocab_Q8_0.gguf`;
      const res = writeSyntheticModel(path, {
        arch: "qwen3moe",
        types: "Q8_0",
        vocab: qwenVocab,
        seed: 11,
      });
      jobs.push({
        path,
        text: "Hello world",
        arch: "qwen3moe",
        type: "qwen-vocab",
        nVocab: res.config.nVocab,
        mtp: [],
      });
    }

    const t0 = performance.now();
    const results = await runLlamaOracle(jobs);
    const ms = performance.now() - t0;

    const tokens = byteVocabKV().find((e) => e.key === "tokenizer.ggml.tokens")!.value as string[];
    const expectIds = ["Hello", "Ġworld", ",", "Ġthe", "Ġspool"].map((s) => tokens.indexOf(s));
    assert.ok(expectIds.every((i) => i >= 0));

    const failures: string[] = [];
    const f32 = new Map<string, number[]>();
    const report: string[] = [];
    for (const [i, r] of results.entries()) {
      const job = jobs[i];
      const label = `${job.arch} ${job.type}`;
      if (!r.ok) {
        failures.push(`${label}: ${r.error}`);
        continue;
      }
      try {
        assert.equal(r.nVocab, job.nVocab, `${label}: n_vocab`);
        if (job.type === "qwen-vocab") {
          assert.deepEqual(r.tokens, [9707, 1879], `${label}: Qwen2 ids of "Hello world"`);
        } else {
          assert.deepEqual(r.tokens, expectIds, `${label}: token ids`);
        }
        assert.equal(r.logits?.length, 1, `${label}: one logits row`);
        const row = r.logits![0];
        assert.equal(row.length, job.nVocab, `${label}: logits length`);
        assert.ok(row.every(Number.isFinite), `${label}: logits finite`);
        // random fixtures must produce spread-out logits, not a constant
        const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
        const min = row.reduce((a, b) => Math.min(a, b), Infinity);
        assert.ok(max - min > 1, `${label}: logits span ${max - min}`);
        // llama.cpp leaves exactly the NextN/MTP tensors unused (it skips MTP blocks)
        const unused = (r.warnings ?? []).map((w) => /unused tensor (\S+)/.exec(w)?.[1])
          .filter((x): x is string => x !== undefined);
        assert.deepEqual(unused.sort(), job.mtp.slice().sort(), `${label}: unused tensors`);
        if (job.type === "F32") f32.set(job.arch, row);
        else if (job.type !== "qwen-vocab" && job.type !== "variant") {
          const ref = f32.get(job.arch);
          assert.ok(ref, `${label}: F32 reference missing`);
          const e = nmse(row, ref);
          report.push(`${label}: nmse ${e.toExponential(2)}`);
          assert.ok(
            e <= TYPES[job.type].nmse,
            `${label}: NMSE vs F32 ${e} > ${TYPES[job.type].nmse}`,
          );
        }
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    if (Deno.env.get("SPOOL_TEST_VERBOSE")) {
      console.log(report.join("\n"));
      console.log(`${jobs.length} files in llama.cpp: ${ms.toFixed(0)} ms`);
    }
    assert.deepEqual(failures, [], failures.join("\n"));
    const families = supportedArchs().filter((a) => !ORIGINAL.has(a)).length;
    assert.equal(
      results.length,
      ORIGINAL.size * Object.keys(TYPES).length + families * (FAMILY_TYPES.length + 1) +
        (haveQwen ? 1 : 0),
    );
    // the MTP check above checked something: the glm4moe files carry a NextN block
    assert.ok(jobs.some((j) => j.arch === "glm4moe" && j.mtp.length === 5 + 5 + 9 + 4));
    assert.ok(jobs.some((j) => j.arch === "deepseek2" && j.mtp.length === 7 + 5 + 3 + 4));
    // the hybrids' MTP block: gated attention 7, MoE 5 + 4 shared, nextn 3 + shared_head_norm
    for (const arch of ["qwen35moe", "qwen3next"]) {
      assert.ok(jobs.some((j) => j.arch === arch && j.mtp.length === 7 + 9 + 4), arch);
    }
    assert.ok(getArch("gpt-oss"));
  },
});
