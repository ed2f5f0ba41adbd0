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
 * - `fill: "fast"` (default of the big preset) quantizes a pool of 4096 random 256-element
 *   units per (type, scale) once and assembles tensors from randomly chosen pool units:
 *   valid quantized data with the same statistics, at memory-copy speed instead of
 *   quantizer speed. `fill: "exact"` quantizes every value.
 * - The tokenizer is either a self-made byte-level GPT-2 BPE (256 byte tokens in GPT-2 order,
 *   a few merges, `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, a ChatML template), or the
 *   `tokenizer.*` metadata copied from a vocab-only GGUF (e.g. ggml-vocab-qwen2.gguf).
 *
 * CLI: `deno run -A runtime/models/synth.ts --arch qwen3moe --preset tiny --type Q4_K --out x.gguf`
 *
 * @module
 */

import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { readGGUF } from "../gguf/reader.ts";
import { type GGUFKVEntry, GGUFWriter } from "../gguf/writer.ts";
import { GGMLType, type GGMLTypeName, GGUFValueType, typeByName, typeInfo } from "../gguf/types.ts";
import { quantize } from "../gguf/quantize.ts";
import {
  type ArchSpec,
  hparamKV,
  type KVEntry,
  type ModelConfig,
  type TensorSpec,
} from "./config.ts";
import { getArch } from "./registry.ts";

// ---------------------------------------------------------------------------------------------
// Options

/** Model dimensions of a synthetic model. */
export interface SynthDims {
  /** Transformer blocks. */
  nLayer: number;
  /** Hidden size. */
  nEmbd: number;
  /** Query heads. */
  nHead: number;
  /** Key/value heads. */
  nHeadKv: number;
  /** Head size (key and value). */
  headDim: number;
  /** Experts per layer. */
  nExpert: number;
  /** Experts per token. */
  nExpertUsed: number;
  /** Expert FFN size. */
  nFfExp: number;
  /** Shared-expert FFN size (qwen2moe). */
  nFfShexp: number;
  /** Training context length written to the metadata. */
  nCtx: number;
  /** Sliding window (gpt-oss). */
  slidingWindow: number;
  /** Rope base frequency. */
  ropeFreqBase: number;
  /** RMS norm epsilon. */
  rmsEps: number;
}

/** Stored types of each kind of tensor (norms, biases, sinks and routers are always F32). */
export interface SynthTypes {
  /** Attention and shared-expert matrices. */
  weights: GGMLTypeName;
  /** Routed expert tensors. */
  experts: GGMLTypeName;
  /** token_embd. */
  embeddings: GGMLTypeName;
  /** output. */
  output: GGMLTypeName;
  /**
   * "Q4_K_M": llama.cpp's Q4_K_M mix on top of the above: output Q6_K, and attn_v,
   * ffn_down_exps and ffn_down_shexp Q6_K in the layers where llama.cpp's `use_more_bits`
   * holds (first and last eighth, every third layer between).
   */
  mix?: "Q4_K_M";
}

/** Named size presets. */
export type SynthPreset = "tiny" | "small" | "qwen3-30b-a3b";

/** Options of {@link writeSyntheticModel}. */
export interface SynthOptions {
  /** GGUF architecture: qwen3moe, llama (Mixtral), olmoe, gpt-oss, qwen2moe. */
  arch: string;
  /** Size preset (default "tiny"); `dims` override its fields. */
  preset?: SynthPreset;
  /** Dimensions overriding the preset. */
  dims?: Partial<SynthDims>;
  /**
   * Types: one name for every weight matrix ("Q4_K"), "Q4_K_M" for the mix, or per kind.
   * Default: the preset's (tiny, small: F32; qwen3-30b-a3b: Q4_K_M).
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

const TINY: SynthDims = {
  nLayer: 2,
  nEmbd: 256,
  nHead: 4,
  nHeadKv: 2,
  headDim: 64,
  nExpert: 4,
  nExpertUsed: 2,
  nFfExp: 256,
  nFfShexp: 512,
  nCtx: 4096,
  slidingWindow: 16,
  ropeFreqBase: 1e6,
  rmsEps: 1e-6,
};

// DESIGN §6 "small": the 30B-A3B shape with 8 layers × 512 hidden. The expert FFN is 256
// (768·512/2048 = 192, rounded up to a whole K-quant block); q is 2× hidden as in 30B-A3B.
const SMALL: SynthDims = {
  ...TINY,
  nLayer: 8,
  nEmbd: 512,
  nHead: 8,
  nHeadKv: 2,
  headDim: 128,
  nExpert: 128,
  nExpertUsed: 8,
  nFfExp: 256,
  nFfShexp: 512,
  nCtx: 40960,
  slidingWindow: 128,
};

const QWEN3_30B: SynthDims = {
  ...TINY,
  nLayer: 24,
  nEmbd: 2048,
  nHead: 32,
  nHeadKv: 4,
  headDim: 128,
  nExpert: 128,
  nExpertUsed: 8,
  nFfExp: 768,
  nFfShexp: 0,
  nCtx: 40960,
  ropeFreqBase: 1e6,
  rmsEps: 1e-6,
};

/** Resolve a vocab-only GGUF from ../shared/vocab (or $SPOOL_VOCAB_DIR). */
export function sharedVocab(file: string): string {
  const dir = process.env.SPOOL_VOCAB_DIR ??
    fileURLToPath(new URL("../../../shared/vocab/", import.meta.url));
  return `${dir.replace(/\/$/, "")}/${file}`;
}

const PRESETS: Record<
  SynthPreset,
  { dims: SynthDims; types: string; vocab: () => string; fill: "exact" | "fast" }
> = {
  tiny: { dims: TINY, types: "F32", vocab: () => "bytes", fill: "exact" },
  small: { dims: SMALL, types: "F32", vocab: () => "bytes", fill: "exact" },
  "qwen3-30b-a3b": {
    dims: QWEN3_30B,
    types: "Q4_K_M",
    vocab: () => sharedVocab("ggml-vocab-qwen2.gguf"),
    fill: "fast",
  },
};

/** Names of the presets. */
export const SYNTH_PRESETS: readonly SynthPreset[] = Object.keys(PRESETS) as SynthPreset[];

/** Per-architecture adjustments that keep a preset valid for llama.cpp. */
function archDims(arch: string, d: SynthDims, explicit: Partial<SynthDims>): SynthDims {
  const out = { ...d };
  const set = <K extends keyof SynthDims>(k: K, v: SynthDims[K]) => {
    if (explicit[k] === undefined) out[k] = v;
  };
  switch (arch) {
    case "qwen3moe":
      // key_length differs from n_embd/n_head, as in the real model
      if (d === TINY) set("nHead", 8);
      break;
    case "llama":
      set("rmsEps", 1e-5);
      break;
    case "olmoe":
      // q/k norms span the whole projection: no GQA, head_dim = n_embd/n_head
      set("nHeadKv", out.nHead);
      set("headDim", out.nEmbd / out.nHead);
      set("rmsEps", 1e-5);
      set("ropeFreqBase", 1e4);
      break;
    case "qwen2moe":
      set("headDim", out.nEmbd / out.nHead);
      break;
    case "gpt-oss":
      set("headDim", 64);
      set("rmsEps", 1e-5);
      set("ropeFreqBase", 150000);
      set("nCtx", 131072);
      break;
  }
  return out;
}

/** Parse a type name ("q4_k", "Q4_K") into a supported synthetic type. */
function typeName(name: string): GGMLTypeName {
  const t = typeByName(name);
  if (!t || !SYNTH_TYPES.includes(t.name)) {
    throw new Error(`Unsupported type "${name}" (supported: ${SYNTH_TYPES.join(", ")}, Q4_K_M)`);
  }
  return t.name;
}

/** Types the generator can write (what spool's quantizer implements). */
export const SYNTH_TYPES: readonly GGMLTypeName[] = [
  "F32",
  "F16",
  "BF16",
  "Q4_0",
  "Q8_0",
  "Q4_K",
  "Q5_K",
  "Q6_K",
  "MXFP4",
];

/** Resolve a `types` option into {@link SynthTypes}. */
export function resolveTypes(t: string | Partial<SynthTypes>): SynthTypes {
  if (typeof t === "string") {
    if (t.toUpperCase() === "Q4_K_M") {
      return {
        weights: "Q4_K",
        experts: "Q4_K",
        embeddings: "Q4_K",
        output: "Q6_K",
        mix: "Q4_K_M",
      };
    }
    const n = typeName(t);
    return { weights: n, experts: n, embeddings: n, output: n };
  }
  const w = typeName(t.weights ?? "F32");
  const out: SynthTypes = {
    weights: w,
    experts: typeName(t.experts ?? w),
    embeddings: typeName(t.embeddings ?? w),
    output: typeName(t.output ?? t.embeddings ?? w),
  };
  if (t.mix) out.mix = t.mix;
  return out;
}

/** llama.cpp's `use_more_bits(i_layer, n_layers)` (llama-quant.cpp). */
function useMoreBits(i: number, n: number): boolean {
  const e = Math.floor(n / 8);
  return i < e || i >= 7 * e || (i - e) % 3 === 2;
}

/**
 * The stored type of a tensor. A type whose block does not divide the row (ne0) falls back
 * like llama.cpp's quantizer does, to a 32-block type (Q8_0) or F16.
 */
export function tensorType(spec: TensorSpec, types: SynthTypes, nLayer: number): GGMLTypeName {
  if (spec.f32 || spec.shape.length === 1) return "F32";
  let t: GGMLTypeName;
  switch (spec.role) {
    case "embedding":
      t = types.embeddings;
      break;
    case "output":
      t = types.output;
      break;
    case "expert":
    case "expert_down":
      t = types.experts;
      break;
    default:
      t = types.weights;
  }
  if (types.mix === "Q4_K_M" && spec.layer !== undefined && useMoreBits(spec.layer, nLayer)) {
    if (spec.role === "attn_v" || spec.role === "expert_down" || spec.role === "shexp_down") {
      t = "Q6_K";
    }
  }
  const ne0 = spec.shape[0];
  if (ne0 % typeInfo(GGMLType[t]).blockSize !== 0) t = ne0 % 32 === 0 ? "Q8_0" : "F16";
  return t;
}

/** llama.cpp `general.file_type` (llama_ftype) of a type set, when there is one. */
function fileType(types: SynthTypes): number | undefined {
  if (types.mix === "Q4_K_M") return 15;
  const m: Partial<Record<GGMLTypeName, number>> = {
    F32: 0,
    F16: 1,
    Q4_0: 2,
    Q8_0: 7,
    Q4_K: 14,
    Q5_K: 16,
    Q6_K: 18,
    BF16: 32,
    MXFP4: 38,
  };
  return types.experts === "MXFP4" ? 38 : m[types.weights];
}

// ---------------------------------------------------------------------------------------------
// PRNG

/** 32-bit FNV-1a of a string, mixed with a seed. */
function hashSeed(seed: number, name: string, index: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= index + 0x9e3779b9;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** splitmix32 step, to expand one seed into a xoshiro state. */
function splitmix(s: number): [number, number] {
  s = (s + 0x9e3779b9) | 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [s, (z ^ (z >>> 16)) | 0];
}

/** A small deterministic PRNG: xoshiro128**, seeded through splitmix32. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** @param seed any 32-bit integer */
  constructor(seed: number) {
    let s = seed | 0;
    let v: number;
    [s, v] = splitmix(s);
    this.a = v;
    [s, v] = splitmix(s);
    this.b = v;
    [s, v] = splitmix(s);
    this.c = v;
    [, v] = splitmix(s);
    this.d = v | 1;
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9);
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r >>> 0;
  }

  /**
   * Fill `out` with uniform values in [center - half, center + half). The hot loop of the
   * generator: state kept in locals.
   */
  fillUniform(out: Float32Array, center: number, half: number): void {
    let a = this.a, b = this.b, c = this.c, d = this.d;
    const k = half / 2147483648;
    for (let i = 0; i < out.length; i++) {
      const r = Math.imul(rotl(Math.imul(b, 5), 7), 9);
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = (d << 11) | (d >>> 21);
      out[i] = center + (r | 0) * k;
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// ---------------------------------------------------------------------------------------------
// Value distributions

/** Center and half-width of the uniform distribution of a tensor's values. */
function distribution(spec: TensorSpec): { center: number; half: number } {
  const SQRT3 = Math.sqrt(3);
  const std = (s: number) => ({ center: 0, half: SQRT3 * s });
  const fan = spec.shape[0];
  switch (spec.role) {
    case "norm":
      return { center: 1, half: 0.5 };
    case "embedding":
      return std(1);
    case "output":
      return std(3 / Math.sqrt(fan));
    case "router":
    case "shexp_gate":
      return std(2 / Math.sqrt(fan));
    case "router_bias":
      return { center: 0, half: 0.5 };
    case "bias":
    case "expert_bias":
      return { center: 0, half: 0.2 };
    case "sinks":
      return { center: 0, half: 1 };
    default:
      return std(1 / Math.sqrt(fan));
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding f32 rows into a stored type

/** Encode `rows` rows of `cols` f32 values as `type` (native, byte-identical to ggml). */
function encode(type: GGMLTypeName, f32: Float32Array, rows: number, cols: number): Uint8Array {
  if (type === "F32") return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  return quantize(GGMLType[type], f32, rows, cols);
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

/** GPT-2's byte → unicode map, in GPT-2 token order: [byte, char] pairs. */
function bytesToUnicode(): [number, string][] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return bs.map((b, i) => [b, String.fromCodePoint(cs[i])]);
}

const MERGE_WORDS = [
  " the",
  " and",
  " of",
  " to",
  " in",
  " is",
  " that",
  " it",
  " a",
  "ing",
  "ion",
  "er",
  "re",
  "on",
  "Hello",
  " Hello",
  " world",
  " spool",
  " expert",
  "  ",
  "    ",
  "\n\n",
];

const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + " +
  "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * The self-made byte-level BPE vocabulary: tokens 0..255 are the 256 bytes in GPT-2 order
 * (token 0 = "!"), then merged tokens built left to right from {@link MERGE_WORDS}, then
 * `<|endoftext|>` (bos = eos), `<|im_start|>`, `<|im_end|>` as control tokens.
 * `tokenizer.ggml.model` "gpt2", `tokenizer.ggml.pre` "gpt-2" (GPT-2's pre-tokenizer regex).
 */
export function byteVocabKV(): GGUFKVEntry[] {
  const b2u = bytesToUnicode();
  const enc = new Map(b2u);
  const tokens = b2u.map(([, c]) => c);
  const types: number[] = tokens.map(() => 1);
  const have = new Set(tokens);
  const merges: string[] = [];
  const utf8 = new TextEncoder();
  for (const w of MERGE_WORDS) {
    const parts = [...utf8.encode(w)].map((b) => enc.get(b)!);
    let cur = parts[0];
    for (let i = 1; i < parts.length; i++) {
      const next = cur + parts[i];
      if (!have.has(next)) {
        merges.push(`${cur} ${parts[i]}`);
        tokens.push(next);
        types.push(1);
        have.add(next);
      }
      cur = next;
    }
  }
  const eos = tokens.length;
  for (const s of ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) {
    tokens.push(s);
    types.push(3);
  }
  const S = GGUFValueType.STRING;
  const U = GGUFValueType.UINT32;
  return [
    { key: "tokenizer.ggml.model", value: "gpt2", type: S },
    { key: "tokenizer.ggml.pre", value: "gpt-2", type: S },
    { key: "tokenizer.ggml.tokens", value: tokens, type: { type: 9, elementType: S } },
    {
      key: "tokenizer.ggml.token_type",
      value: Int32Array.from(types),
      type: { type: 9, elementType: GGUFValueType.INT32 },
    },
    { key: "tokenizer.ggml.merges", value: merges, type: { type: 9, elementType: S } },
    { key: "tokenizer.ggml.bos_token_id", value: eos, type: U },
    { key: "tokenizer.ggml.eos_token_id", value: eos, type: U },
    { key: "tokenizer.ggml.padding_token_id", value: eos, type: U },
    { key: "tokenizer.ggml.add_bos_token", value: false, type: GGUFValueType.BOOL },
    { key: "tokenizer.chat_template", value: CHATML_TEMPLATE, type: S },
  ];
}

/** The `tokenizer.*` metadata of a vocab-only GGUF, with the declared types. */
export function vocabKVFromGGUF(path: string): GGUFKVEntry[] {
  const g = readGGUF(path);
  const out: GGUFKVEntry[] = [];
  for (const [key, value] of g.kv) {
    if (key.startsWith("tokenizer.")) out.push({ key, value, type: g.kvTypes.get(key) });
  }
  if (!out.some((e) => e.key === "tokenizer.ggml.tokens")) {
    throw new Error(`${path} has no tokenizer.ggml.tokens`);
  }
  return out;
}

function vocabSize(kv: readonly GGUFKVEntry[]): number {
  const t = kv.find((e) => e.key === "tokenizer.ggml.tokens");
  return (t?.value as readonly string[]).length;
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
  if (opts.preset === "qwen3-30b-a3b" && spec.arch !== "qwen3moe") {
    throw new Error(`Preset qwen3-30b-a3b is a qwen3moe model, not ${spec.arch}`);
  }
  const explicit = opts.dims ?? {};
  const d: SynthDims = { ...archDims(spec.arch, preset.dims, explicit), ...explicit };
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
  const draft: ModelConfig = {
    arch,
    nLayer: d.nLayer,
    nCtxTrain: d.nCtx,
    nEmbd: d.nEmbd,
    nVocab,
    nHead: d.nHead,
    nHeadKv: d.nHeadKv,
    headDim: d.headDim,
    headDimV: d.headDim,
    nFf: arch === "llama" || arch === "olmoe" ? d.nFfExp : 0,
    nExpert: d.nExpert,
    nExpertUsed: d.nExpertUsed,
    nFfExp: d.nFfExp,
    nExpertShared: 0,
    nFfShexp: arch === "qwen2moe" ? d.nFfShexp : 0,
    // FLOAT32 in the file: round here so the config read back is the same
    rmsEps: Math.fround(d.rmsEps),
    rope: {
      type: "neox",
      freqBase: Math.fround(d.ropeFreqBase),
      dim: d.headDim,
      ...(arch === "gpt-oss" ? { scaling: { type: "yarn", factor: 32, origCtx: 4096 } } : {}),
    },
    slidingWindow: arch === "gpt-oss" ? d.slidingWindow : 0,
    swaPattern: 0,
    qkNorm: "none",
    attnQKVBias: false,
    attnOutBias: false,
    attnSinks: false,
    ffnNormName: "ffn_norm",
    routerBias: false,
    expertBias: false,
    act: "swiglu",
  };
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
  kv.push(...vocab);

  const config = spec.config(new Map(kv.map((e) => [e.key, e.value])));
  const tensors = spec.tensors(config).map((t) => ({
    spec: t,
    type: tensorType(t, types, config.nLayer),
  }));
  return { spec, config, kv, tensors, types, seed, fill: opts.fill ?? preset.fill };
}

/** Elements per generated chunk of a non-expert tensor (rows are never split). */
const CHUNK_ELEMS = 1 << 22;
/** Units (of {@link POOL_UNIT} elements) in a fast-fill pool. */
const POOL_UNITS = 4096;
const POOL_UNIT = 256;

interface Pool {
  bytes: Uint8Array;
  unitBytes: number;
}

/**
 * Streams the data of each tensor: `exact` generates and encodes every value; `fast`
 * assembles quantized tensors from a pool of pre-quantized units.
 */
class TensorFiller {
  private pools = new Map<string, Pool>();

  constructor(private seed: number, private fill: "exact" | "fast") {}

  /** Write tensor `spec` as `type` through `sink`, one chunk at a time. */
  write(spec: TensorSpec, type: GGMLTypeName, sink: (bytes: Uint8Array) => void): void {
    const ne0 = spec.shape[0];
    const rowsTotal = spec.shape.slice(1).reduce((a, b) => a * b, 1);
    // Experts: one chunk per expert slice (ne0 × ne1), seeded by expert index, so a slice
    // is reproducible on its own. Others: row chunks of about CHUNK_ELEMS values.
    const rowsPerChunk = spec.expert
      ? (spec.shape.length === 3 ? spec.shape[1] : 1)
      : Math.max(1, Math.floor(CHUNK_ELEMS / ne0));
    const { center, half } = distribution(spec);
    const info = typeInfo(GGMLType[type]);
    const fast = this.fill === "fast" && info.quantized && ne0 % POOL_UNIT === 0;
    let f32: Float32Array | undefined;
    for (let r0 = 0, chunk = 0; r0 < rowsTotal; r0 += rowsPerChunk, chunk++) {
      const rows = Math.min(rowsPerChunk, rowsTotal - r0);
      const rng = new Rng(hashSeed(this.seed, spec.name, chunk));
      if (fast) {
        sink(this.assemble(type, center, half, rows * ne0, rng));
        continue;
      }
      if (!f32 || f32.length !== rows * ne0) f32 = new Float32Array(rows * ne0);
      rng.fillUniform(f32, center, half);
      sink(encode(type, f32, rows, ne0));
    }
  }

  private assemble(
    type: GGMLTypeName,
    center: number,
    half: number,
    n: number,
    rng: Rng,
  ): Uint8Array {
    const key = `${type}:${center}:${half}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const f32 = new Float32Array(POOL_UNITS * POOL_UNIT);
      new Rng(hashSeed(this.seed, `pool:${key}`, 0)).fillUniform(f32, center, half);
      const bytes = encode(type, f32, POOL_UNITS, POOL_UNIT);
      pool = { bytes, unitBytes: bytes.length / POOL_UNITS };
      this.pools.set(key, pool);
    }
    const ub = pool.unitBytes;
    const units = n / POOL_UNIT;
    const out = new Uint8Array(units * ub);
    const src = pool.bytes;
    for (let u = 0, off = 0; u < units; u++, off += ub) {
      const s = (rng.nextU32() & (POOL_UNITS - 1)) * ub;
      out.set(src.subarray(s, s + ub), off);
    }
    return out;
  }
}

/**
 * Write a synthetic model to `path` unless the file exists (test and benchmark fixtures):
 * through a temporary file renamed at the end, so an interrupted writer leaves nothing
 * half-written. Returns `path`.
 */
export function ensureSyntheticModel(path: string, opts: SynthOptions): string {
  if (existsSync(path)) return path;
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeSyntheticModel(tmp, opts);
  renameSync(tmp, path);
  return path;
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
    const filler = new TensorFiller(plan.seed, plan.fill);
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

const USAGE = `Usage: synth --arch ARCH [--preset tiny|small|qwen3-30b-a3b] --out FILE.gguf
  [--type F32|F16|BF16|Q4_0|Q8_0|Q4_K|Q5_K|Q6_K|MXFP4|Q4_K_M] [--expert-type T] [--embd-type T]
  [--output-type T] [--seed N] [--vocab bytes|VOCAB.gguf] [--fill exact|fast] [--name NAME]
  [--n-layer N] [--n-embd N] [--n-head N] [--n-head-kv N] [--head-dim N] [--n-expert N]
  [--n-expert-used N] [--n-ff-exp N] [--n-ff-shexp N] [--ctx N] [--sliding-window N] [--quiet]
Archs: qwen3moe, llama (Mixtral), olmoe, gpt-oss, qwen2moe`;

const DIM_FLAGS: Record<string, keyof SynthDims> = {
  "n-layer": "nLayer",
  "n-embd": "nEmbd",
  "n-head": "nHead",
  "n-head-kv": "nHeadKv",
  "head-dim": "headDim",
  "n-expert": "nExpert",
  "n-expert-used": "nExpertUsed",
  "n-ff-exp": "nFfExp",
  "n-ff-shexp": "nFfShexp",
  ctx: "nCtx",
  "sliding-window": "slidingWindow",
};

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
    quiet: { type: "boolean" },
    help: { type: "boolean" },
  };
  for (const f of Object.keys(DIM_FLAGS)) options[f] = str;
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
  const dims: Partial<SynthDims> = {};
  for (const [flag, field] of Object.entries(DIM_FLAGS)) {
    const v = values[flag];
    if (typeof v === "string") {
      const n = Number(v);
      if (!Number.isInteger(n) || n <= 0) {
        console.error(`--${flag} must be a positive integer, got "${v}"`);
        return 2;
      }
      dims[field] = n;
    }
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
    `${res.path}: ${c.arch}, ${c.nLayer} layers × ${c.nEmbd}, ${c.nExpert} experts (top ` +
      `${c.nExpertUsed}, ffn ${c.nFfExp}), vocab ${c.nVocab}, ${res.tensors.length} tensors, ` +
      `${(res.bytes / 1e6).toFixed(1)} MB in ${res.seconds.toFixed(1)} s ` +
      `(${(res.bytes / 1e6 / res.seconds).toFixed(0)} MB/s)`,
  );
  return 0;
}

if (import.meta.main) {
  process.exitCode = synthMain(process.argv.slice(2));
}
