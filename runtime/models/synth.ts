/**
 * Synthetic model generator: random-weight GGUF files of any supported architecture, type
 * mix and size, which llama.cpp loads and runs. They are the fixtures of spool's parity tests
 * (DESIGN §5) and benchmarks.
 *
 * - Weights come from a seeded PRNG (xoshiro128**), uniform with standard deviation
 *   1/sqrt(fan_in); norm weights are uniform in [0.5, 1.5] (so a forgotten norm shows); the
 *   router is scaled ×2 and the output ×3, so router margins and logits are well separated.
 *   Every tensor (and every expert slice, and every row chunk of a large tensor) has its own
 *   seed derived from (seed, tensor name, index), so a file is the same bytes whatever order
 *   or chunking produced it.
 * - Tensors are generated, quantized (native kernels, byte-identical to ggml) and streamed to
 *   the {@link GGUFWriter} one expert slice or row chunk at a time: memory stays at a few
 *   chunks whatever the file size.
 * - `fill: "fast"` (default of the real-shaped presets) quantizes a pool of 4096 random 256-element
 *   units per (type, scale) once and assembles tensors from randomly chosen pool units:
 *   valid quantized data with the same statistics, at memory-copy speed instead of
 *   quantizer speed. `fill: "exact"` quantizes every value.
 * - The tokenizer is either a self-made byte-level GPT-2 BPE (256 byte tokens in GPT-2 order,
 *   a few merges, `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, a ChatML template), or the
 *   `tokenizer.*` metadata copied from a vocab-only GGUF (e.g. ggml-vocab-qwen2.gguf).
 *
 * - Families: every registered arch. glm4moe, minimax-m2 and deepseek2 take their own
 *   hyperparameters ({@link SynthDims}: dense lead layers, NextN blocks, shared experts,
 *   partial rope, gating, weight norm and scale, expert groups, MLA ranks, YaRN); the sigmoid
 *   routers get a non-zero selection bias `exp_probs_b`. Real-shaped presets with fewer layers:
 *   qwen3-30b-a3b, glm-4.5-air, minimax-m2, deepseek-v3, qwen3.5-35b-a3b, qwen3.5-397b-a17b,
 *   qwen3-next-80b-a3b (Q4_K_M, fast fill, a real vocabulary from the vocab folder,
 *   runtime/data_dirs.ts, unless `vocab` says otherwise). The hybrids (qwen35moe, qwen3next) take their Gated DeltaNet sizes
 *   and layer pattern (_synth_hybrid.ts); their DeltaNet decay rates are drawn so the
 *   recurrence keeps memory and stays contracting (_synth_fill.ts).
 * - Modules: _synth_presets.ts (dims, presets, draft config), _synth_flags.ts (CLI dims
 *   flags), _synth_types.ts (stored types), _synth_fill.ts (PRNG, distributions, filler),
 *   _synth_vocab.ts (tokenizer metadata); this file plans, writes and holds the CLI.
 *
 * CLI: `deno run -A runtime/models/synth.ts --arch qwen3moe --preset tiny --type Q4_K --out x.gguf`
 *
 * @module
 */

import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { type GGUFKVEntry, GGUFWriter } from "../gguf/writer.ts";
import { GGMLType, type GGMLTypeName, GGUFValueType } from "../gguf/types.ts";
import { readGGUF } from "../gguf/reader.ts";
import {
  type ArchSpec,
  hparamKV,
  type KVEntry,
  type ModelConfig,
  type TensorSpec,
} from "./config.ts";
import { getArch } from "./registry.ts";
import { TensorFiller } from "./_synth_fill.ts";
import {
  draftConfig,
  PRESETS,
  resolveDims,
  SYNTH_PRESETS,
  type SynthDims,
  type SynthPreset,
  writesOptional,
} from "./_synth_presets.ts";
import { fileType, resolveTypes, type SynthTypes, tensorType } from "./_synth_types.ts";
import { byteVocabKV, vocabKVFromGGUF, vocabSize } from "./_synth_vocab.ts";
import { DIM_FLAG_NAMES, flagsToDims, HPARAM_FLAG_USAGE } from "./_synth_flags.ts";
import { REAL_ROUTER_SKEW, resolveRouterSkew, RouterSkewError } from "./_synth_skew.ts";

export { Rng } from "./_synth_fill.ts";
export { SYNTH_PRESETS, type SynthDims, type SynthPreset } from "./_synth_presets.ts";
export { resolveTypes, SYNTH_TYPES, type SynthTypes, tensorType } from "./_synth_types.ts";
export { byteVocabKV, sharedVocab, vocabKVFromGGUF } from "./_synth_vocab.ts";
export {
  REAL_ROUTER_SKEW,
  resolveRouterSkew,
  ROUTER_SKEW_PRESETS,
  routerRowScales,
  RouterSkewError,
} from "./_synth_skew.ts";

/** Options of {@link writeSyntheticModel}. */
export interface SynthOptions {
  /**
   * GGUF architecture: qwen3moe, llama (Mixtral), olmoe, gpt-oss, qwen2moe, glm4moe,
   * minimax-m2, deepseek2, qwen35moe, qwen3next.
   */
  arch: string;
  /** Size preset (default "tiny"); `dims` override its fields. */
  preset?: SynthPreset;
  /** Dimensions overriding the preset. */
  dims?: Partial<SynthDims>;
  /**
   * Types: one name for every weight matrix ("Q4_K"), "Q4_K_M" for the mix, or per kind.
   * Default: the preset's (tiny, small: F32; the real-shaped ones: Q4_K_M).
   */
  types?: string | Partial<SynthTypes>;
  /** PRNG seed (default 1). */
  seed?: number;
  /** "bytes" (self-made byte-level BPE) or the path of a vocab-only GGUF to copy. */
  vocab?: string;
  /** "exact" (quantize every value) or "fast" (pool of pre-quantized units). */
  fill?: "exact" | "fast";
  /** `tokenizer.chat_template` to write (replaces the vocab's own, if any). */
  chatTemplate?: string;
  /** `general.name`. */
  name?: string;
  /**
   * Router skew (_synth_skew.ts): the log-std S of a per-layer, per-expert scale of the router
   * rows, which gives each layer a heavy-tailed expert popularity. 0 (default, or "uniform")
   * = today's uniform routers, byte-identical files; "real" = {@link REAL_ROUTER_SKEW} (0.22),
   * the value whose sampled-decode LRU curve on shallow slices is nearest the one reported for
   * real 128-expert top-8 models (64 of 128 experts per layer cached ≈ 67% hits; deeper random
   * models concentrate their routing with depth on their own, see REAL_ROUTER_SKEW). Written as
   * `spool.synth.router_skew` when not 0.
   */
  routerSkew?: number | "uniform" | "real";
  /** Called after each tensor with bytes written so far and the data total. */
  onProgress?: (done: number, total: number, tensor: string) => void;
}

/** What {@link writeSyntheticModel} wrote. */
export interface SynthResult {
  /** Output path. */
  path: string;
  /** File size in bytes. */
  bytes: number;
  /** The model's hyperparameters (as {@link ArchSpec.config} reads them back). */
  config: ModelConfig;
  /** Tensors written, with their stored type. */
  tensors: { name: string; type: GGMLTypeName; shape: readonly number[] }[];
  /** Wall time in seconds. */
  seconds: number;
}
// ---------------------------------------------------------------------------------------------
// Generation

/** Everything needed to write a synthetic model, resolved from {@link SynthOptions}. */
export interface SynthPlan {
  /** Architecture spec. */
  spec: ArchSpec;
  /** Hyperparameters. */
  config: ModelConfig;
  /** Metadata to write, in order. */
  kv: GGUFKVEntry[];
  /** Tensors with their stored types, in order. */
  tensors: { spec: TensorSpec; type: GGMLTypeName }[];
  /** Resolved types. */
  types: SynthTypes;
  /** Seed. */
  seed: number;
  /** Fill mode. */
  fill: "exact" | "fast";
  /** Router skew (0 = uniform routers). */
  routerSkew: number;
}

/**
 * Resolve options into the metadata and tensor list of the file, without writing anything.
 * The config is read back from the metadata with the arch's own {@link ArchSpec.config}, so
 * the plan is exactly what a loader will see.
 */
export function planSynthetic(opts: SynthOptions): SynthPlan {
  const spec = getArch(opts.arch);
  const preset = PRESETS[opts.preset ?? "tiny"];
  if (!preset) throw new Error(`Unknown preset "${opts.preset}" (${SYNTH_PRESETS.join(", ")})`);
  if (preset.arch && preset.arch !== spec.arch) {
    throw new Error(`Preset ${opts.preset} is a ${preset.arch} model, not ${spec.arch}`);
  }
  const d: SynthDims = resolveDims(spec.arch, preset, opts.dims ?? {});
  const types = resolveTypes(opts.types ?? preset.types);
  const seed = (opts.seed ?? 1) >>> 0;
  const vocabOpt = opts.vocab ?? preset.vocab();
  let vocab = vocabOpt === "bytes" ? byteVocabKV() : vocabKVFromGGUF(vocabOpt);
  if (opts.chatTemplate !== undefined) {
    vocab = vocab.filter((e) => e.key !== "tokenizer.chat_template");
    vocab.push({
      key: "tokenizer.chat_template",
      value: opts.chatTemplate,
      type: GGUFValueType.STRING,
    });
  }
  const nVocab = vocabSize(vocab);
  const arch = spec.arch;

  // A draft config with the dims; the final one is read back from the metadata.
  const draft: ModelConfig = draftConfig(arch, d, nVocab);
  const S = GGUFValueType.STRING;
  const U = GGUFValueType.UINT32;
  const kv: GGUFKVEntry[] = [
    { key: "general.architecture", value: arch, type: S },
    {
      key: "general.name",
      value: opts.name ?? `spool-synth-${arch}-${opts.preset ?? "tiny"}`,
      type: S,
    },
    ...hparamKV(spec, draft).map((e: KVEntry): GGUFKVEntry => e),
  ];
  const ft = fileType(types);
  if (ft !== undefined) kv.push({ key: "general.file_type", value: ft, type: U });
  kv.push({ key: "general.quantization_version", value: 2, type: U });
  kv.push({ key: "spool.synth.seed", value: seed, type: U });
  kv.push({ key: "spool.synth.fill", value: opts.fill ?? preset.fill, type: S });
  const routerSkew = resolveRouterSkew(opts.routerSkew);
  // only when set: a uniform model's metadata (and bytes) stay what they were
  if (routerSkew !== 0) {
    kv.push({ key: ROUTER_SKEW_KEY, value: routerSkew, type: GGUFValueType.FLOAT32 });
  }
  kv.push(...vocab);

  const config = spec.config(new Map(kv.map((e) => [e.key, e.value])));
  const tensors = spec.tensors(config).filter((t) => writesOptional(t, config, d)).map((t) => ({
    spec: t,
    type: tensorType(t, types, config.nLayer),
  }));
  return { spec, config, kv, tensors, types, seed, fill: opts.fill ?? preset.fill, routerSkew };
}

/** Metadata key of the router skew (absent = 0). */
export const ROUTER_SKEW_KEY = "spool.synth.router_skew";

/** The router skew a GGUF file was written with (its {@link ROUTER_SKEW_KEY}; absent = 0). */
export function routerSkewOf(path: string): number {
  const v = readGGUF(path).kv.get(ROUTER_SKEW_KEY);
  return typeof v === "number" ? v : 0;
}

/**
 * Write a synthetic model to `path` unless the file exists with the same router skew (test
 * and benchmark fixtures): through a temporary file renamed at the end, so an interrupted
 * writer leaves nothing half-written. A file written with another skew (the
 * `spool.synth.router_skew` metadata, absent = 0) is written again. Returns `path`.
 */
export function ensureSyntheticModel(path: string, opts: SynthOptions): string {
  if (existsSync(path) && sameSkew(path, resolveRouterSkew(opts.routerSkew))) return path;
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeSyntheticModel(tmp, opts);
  renameSync(tmp, path);
  return path;
}

/** Whether the file at `path` has router skew `skew` (an unreadable file has none). */
function sameSkew(path: string, skew: number): boolean {
  try {
    return routerSkewOf(path) === Math.fround(skew);
  } catch {
    return false; // not a readable GGUF: write it again
  }
}

/**
 * Write a random-weight GGUF model. Memory stays at one expert slice or row chunk (plus, in
 * fast mode, the pools) whatever the model size.
 *
 * @throws UnsupportedArchError for an unknown arch; Error for a bad preset or type;
 *   GGUFError from the writer; KernelError from the quantizer
 */
export function writeSyntheticModel(path: string, opts: SynthOptions): SynthResult {
  const t0 = performance.now();
  const plan = planSynthetic(opts);
  const w = new GGUFWriter(path, {
    kv: plan.kv,
    tensors: plan.tensors.map((t) => ({
      name: t.spec.name,
      type: GGMLType[t.type],
      shape: t.spec.shape,
    })),
  });
  const total = w.layout.fileSize - w.layout.dataOffset;
  let done = 0;
  try {
    const filler = new TensorFiller(plan.seed, plan.fill, plan.routerSkew);
    for (const { spec, type } of plan.tensors) {
      filler.write(spec, type, (bytes) => {
        w.writeTensorChunk(spec.name, bytes);
        done += bytes.length;
      });
      opts.onProgress?.(done, total, spec.name);
    }
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  }
  return {
    path,
    bytes: w.layout.fileSize,
    config: plan.config,
    tensors: plan.tensors.map((t) => ({ name: t.spec.name, type: t.type, shape: t.spec.shape })),
    seconds: (performance.now() - t0) / 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE = `Usage: synth --arch ARCH [--preset P] --out FILE.gguf
  [--type F32|F16|BF16|Q4_0|Q8_0|Q4_K|Q5_K|Q6_K|MXFP4|Q4_K_M] [--expert-type T] [--embd-type T]
  [--output-type T] [--seed N] [--vocab bytes|VOCAB.gguf] [--fill exact|fast] [--name NAME]
  [--router-skew S|uniform|real] [--quiet]
  --router-skew: heavy-tailed expert popularity per layer (router rows scaled by a log-normal
  of log-std S, each layer its own popular experts); 0 = uniform (default, same bytes as
  without the flag). "real" = ${REAL_ROUTER_SKEW}: sampled decode of a shallow (<= 4 layers)
  128-expert top-8 model then hits ~67% with a per-layer LRU of 64 experts, as reported for
  Qwen3-30B/235B (deeper random models concentrate their routing with depth on their own;
  measure with runtime/experts/hit_curve.ts --per-layer).
${HPARAM_FLAG_USAGE}
Archs: qwen3moe, llama (Mixtral), olmoe, gpt-oss, qwen2moe, glm4moe, minimax-m2, deepseek2,
  qwen35moe, qwen3next
Presets: ${SYNTH_PRESETS.join(", ")} (the real-shaped ones belong to one arch each)`;

/**
 * Command-line entry (`spool synth ...`): parse `args`, write the model, print a summary.
 * @returns the process exit code (0 ok, 2 usage error)
 */
export function synthMain(args: string[]): number {
  const str = { type: "string" } as const;
  const options: Record<string, { type: "string" } | { type: "boolean" }> = {
    arch: str,
    preset: str,
    out: str,
    type: str,
    "expert-type": str,
    "embd-type": str,
    "output-type": str,
    seed: str,
    vocab: str,
    fill: str,
    name: str,
    "router-skew": str,
    quiet: { type: "boolean" },
    help: { type: "boolean" },
  };
  for (const f of DIM_FLAG_NAMES) options[f] = str;
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options, allowPositionals: false }).values as typeof values;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const arch = values.arch as string | undefined;
  const out = values.out as string | undefined;
  if (!arch || !out) {
    console.error(`--arch and --out are required\n${USAGE}`);
    return 2;
  }
  const dims = flagsToDims(values);
  if (typeof dims === "string") {
    console.error(dims);
    return 2;
  }
  const type = values.type as string | undefined;
  const perKind = values["expert-type"] || values["embd-type"] || values["output-type"];
  const types: string | Partial<SynthTypes> | undefined = perKind
    ? {
      weights: (type ?? "F32") as GGMLTypeName,
      experts: (values["expert-type"] ?? type) as GGMLTypeName | undefined,
      embeddings: (values["embd-type"] ?? type) as GGMLTypeName | undefined,
      output: (values["output-type"] ?? values["embd-type"] ?? type) as GGMLTypeName | undefined,
    }
    : type;
  const fill = values.fill as string | undefined;
  if (fill !== undefined && fill !== "exact" && fill !== "fast") {
    console.error(`--fill must be exact or fast, got "${fill}"`);
    return 2;
  }
  const seed = values.seed !== undefined ? Number(values.seed) : undefined;
  if (seed !== undefined && !Number.isInteger(seed)) {
    console.error(`--seed must be an integer, got "${values.seed}"`);
    return 2;
  }
  let routerSkew: number;
  try {
    routerSkew = resolveRouterSkew(values["router-skew"] as string | undefined);
  } catch (e) {
    if (!(e instanceof RouterSkewError)) throw e;
    console.error(`--router-skew: ${e.message}`);
    return 2;
  }
  const quiet = values.quiet === true;
  let lastPct = -1;
  const res = writeSyntheticModel(out, {
    arch,
    preset: values.preset as SynthPreset | undefined,
    dims,
    types,
    seed,
    vocab: values.vocab as string | undefined,
    fill: fill as "exact" | "fast" | undefined,
    name: values.name as string | undefined,
    routerSkew,
    onProgress: quiet ? undefined : (done, total) => {
      const pct = Math.floor((100 * done) / Math.max(1, total));
      if (pct >= lastPct + 5) {
        lastPct = pct;
        process.stderr.write(`\r${pct}% of ${(total / 1e6).toFixed(1)} MB`);
      }
    },
  });
  if (!quiet) process.stderr.write("\n");
  const c = res.config;
  console.log(
    `${res.path}: ${c.arch}, ${c.nLayer} layers${
      c.nLayerNextn ? ` (+${c.nLayerNextn} NextN)` : ""
    } × ${c.nEmbd}, ${c.nExpert} experts (top ` +
      `${c.nExpertUsed}, ffn ${c.nFfExp}${
        routerSkew ? `, router skew ${routerSkew}` : ""
      }), vocab ${c.nVocab}, ${res.tensors.length} tensors, ` +
      `${(res.bytes / 1e6).toFixed(1)} MB in ${res.seconds.toFixed(1)} s ` +
      `(${(res.bytes / 1e6 / res.seconds).toFixed(0)} MB/s)`,
  );
  return 0;
}

if (import.meta.main) {
  process.exitCode = synthMain(process.argv.slice(2));
}
