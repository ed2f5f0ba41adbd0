/**
 * `moefy`: rewrite a dense `llama` GGUF as a Mixtral-form MoE (GGUF architecture still
 * `llama`, now with `llama.expert_count`), so that spool, a MoE runtime, can run real trained
 * dense weights and be checked against llama.cpp's run of the dense original.
 *
 * The dense FFN is `down · (silu(gate · x) ⊙ (up · x))` with gate, up `[n_embd, n_ff]` and
 * down `[n_ff, n_embd]` (ggml order, ne0 first). Cut n_ff into N slices of f = n_ff / N:
 *  - expert e's gate and up are rows `e·f .. (e+1)·f` of gate and up. In ggml's 3-D expert
 *    layout `[n_embd, f, N]` (expert outermost) that is the dense tensor's bytes unchanged;
 *  - expert e's down is columns `e·f .. (e+1)·f` of each of down's n_embd rows: the blocks
 *    of that column range (f must be a multiple of the type's block size), times N;
 *  - the router `ffn_gate_inp` `[n_embd, N]` is zero (F32), so softmax gives every expert
 *    1/N, and all N are used (`expert_used_count = N`): Σ_e (1/N)·N·down_e(h_e) is the
 *    dense FFN.
 * With N a power of two, "times N" changes only block scales (see scale_blocks.ts) and 1/N
 * is exact, so every expert's products are the dense products' blocks, bit for bit; only the
 * f32 order of the final sum differs. A non-power-of-two N, or a down type whose blocks do
 * not fit f, is refused with a {@link MoefyError} (nothing is requantized).
 *
 * The sparse variant (`topK < N`) writes the same experts with a seeded random router
 * (normal, std 1/sqrt(n_embd)) and `expert_used_count = K`: real weights that exercise
 * routing and expert paging, with no dense equivalent.
 *
 * @module
 */

import { closeSync, openSync, readSync } from "node:fs";
import { type GGUFFile, readGGUF, type TensorInfo } from "./reader.ts";
import { type GGUFKVEntry, GGUFWriter, kvEntriesOf, type TensorDescriptor } from "./writer.ts";
import { GGMLType, GGUFValueType, rowBytes, typeInfo } from "./types.ts";
import { canScaleExactly, scaleRows } from "./scale_blocks.ts";

/** Reason of a {@link MoefyError}. */
export type MoefyErrorCode = "not_dense_llama" | "bad_option" | "bad_tensor" | "inexact";

/** A model or option that `moefy` cannot turn into an exact MoE. */
export class MoefyError extends Error {
  /** Machine-readable reason. */
  readonly code: MoefyErrorCode;

  /**
   * @param code reason
   * @param message what and where
   * @param options standard error options (`cause`)
   */
  constructor(code: MoefyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MoefyError";
    this.code = code;
  }
}

/** Options of {@link moefyFile}. */
export interface MoefyOptions {
  /** Experts per layer, N: a power of two >= 2 dividing the FFN size. */
  readonly experts: number;
  /** Experts used per token, K (default N: the exact form). K < N writes a random router. */
  readonly topK?: number;
  /** Seed of the random router (K < N); default 1. */
  readonly seed?: number;
  /** Called after each layer is written. */
  readonly onLayer?: (layer: number, nLayer: number) => void;
}

/** What {@link moefyFile} wrote. */
export interface MoefyResult {
  /** Transformer blocks. */
  readonly nLayer: number;
  /** Experts per layer. */
  readonly experts: number;
  /** Experts used per token. */
  readonly topK: number;
  /** Dense FFN size. */
  readonly nFf: number;
  /** FFN size of one expert (nFf / experts). */
  readonly nFfExp: number;
  /** Whether the result equals the dense model (router zero, all experts used). */
  readonly exact: boolean;
  /** ggml type names of the down projections (the tensors whose scales changed). */
  readonly downTypes: readonly string[];
  /** Bytes of the written file. */
  readonly fileSize: number;
}

interface LayerFFN {
  gate: TensorInfo;
  up: TensorInfo;
  down: TensorInfo;
}

interface Plan {
  g: GGUFFile;
  nLayer: number;
  nEmbd: number;
  nFf: number;
  f: number;
  experts: number;
  topK: number;
  seed: number;
  layers: LayerFFN[];
}

const FFN = /^blk\.(\d+)\.ffn_(gate|up|down)\.weight$/;

function u32(g: GGUFFile, key: string): number {
  const v = g.kv.get(key);
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw new MoefyError(
      "not_dense_llama",
      `Cannot moefy ${g.path ?? "model"}: metadata "${key}" is ${
        Array.isArray(v) || ArrayBuffer.isView(v) ? "an array (per-layer sizes)" : String(v)
      }, expected one positive integer`,
    );
  }
  return v;
}

/** The powers of two N >= 2 for which moefy can write `nFf` with down blocks of `block`. */
export function validExpertCounts(nFf: number, block: number): number[] {
  const out: number[] = [];
  for (let n = 2; n <= nFf; n *= 2) if (nFf % n === 0 && (nFf / n) % block === 0) out.push(n);
  return out;
}

function checkOptions(opts: MoefyOptions): { experts: number; topK: number; seed: number } {
  const n = opts.experts;
  if (!Number.isInteger(n) || n < 2 || (n & (n - 1)) !== 0) {
    throw new MoefyError(
      "bad_option",
      `--experts ${n}: must be a power of two >= 2 (2, 4, 8, ...), so that scaling each ` +
        `expert's down projection by N and weighting it by 1/N is exact`,
    );
  }
  const k = opts.topK ?? n;
  if (!Number.isInteger(k) || k < 1 || k > n) {
    throw new MoefyError("bad_option", `--top-k ${k}: must be an integer in 1..${n}`);
  }
  const seed = opts.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new MoefyError("bad_option", `--seed ${seed}: must be an integer in 0..2^32-1`);
  }
  return { experts: n, topK: k, seed };
}

function layerFFN(g: GGUFFile, i: number, nEmbd: number, nFf: number): LayerFFN {
  const get = (part: string, shape: [number, number]) => {
    const name = `blk.${i}.ffn_${part}.weight`;
    const t = g.tensorByName.get(name);
    if (!t) throw new MoefyError("bad_tensor", `Cannot moefy: tensor "${name}" is missing`);
    if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
      throw new MoefyError(
        "bad_tensor",
        `Cannot moefy: tensor "${name}" has shape [${t.shape}], expected [${shape}]`,
      );
    }
    return t;
  };
  return {
    gate: get("gate", [nEmbd, nFf]),
    up: get("up", [nEmbd, nFf]),
    down: get("down", [nFf, nEmbd]),
  };
}

/** Check that `g` is a dense llama that can be written with `opts`; returns the plan. */
function plan(g: GGUFFile, opts: MoefyOptions): Plan {
  const where = g.path ?? "model";
  const arch = g.kv.get("general.architecture");
  if (arch !== "llama") {
    throw new MoefyError(
      "not_dense_llama",
      `Cannot moefy ${where}: architecture is "${String(arch)}", expected a dense "llama"`,
    );
  }
  const ec = g.kv.get("llama.expert_count");
  if (ec !== undefined && ec !== 0) {
    throw new MoefyError(
      "not_dense_llama",
      `Cannot moefy ${where}: it already has llama.expert_count = ${String(ec)} (a MoE)`,
    );
  }
  const { experts, topK, seed } = checkOptions(opts);
  const nLayer = u32(g, "llama.block_count");
  const nEmbd = u32(g, "llama.embedding_length");
  const nFf = u32(g, "llama.feed_forward_length");
  const layers: LayerFFN[] = [];
  for (let i = 0; i < nLayer; i++) layers.push(layerFFN(g, i, nEmbd, nFf));
  const f = nFf / experts;
  for (const [i, l] of layers.entries()) {
    const info = typeInfo(l.down.type);
    if (!Number.isInteger(f) || f % info.blockSize !== 0) {
      const ok = validExpertCounts(nFf, info.blockSize);
      throw new MoefyError(
        "inexact",
        `Cannot moefy ${where} into ${experts} experts: layer ${i}'s ffn_down is ${info.name} ` +
          `(blocks of ${info.blockSize} along n_ff = ${nFf}) and an expert's slice of ` +
          `${nFf / experts} is not whole blocks; valid --experts: ${ok.join(", ") || "none"}`,
      );
    }
    if (!canScaleExactly(l.down.type)) {
      throw new MoefyError(
        "inexact",
        `Cannot moefy ${where}: layer ${i}'s ffn_down is ${info.name}, which has no exact ` +
          `power-of-two scaling; requantize it first (spool quantize IN OUT Q8_0)`,
      );
    }
  }
  return { g, nLayer, nEmbd, nFf, f, experts, topK, seed, layers };
}

/** Metadata of the MoE file: the dense file's, with the expert keys and the expert FFN size. */
function moeKV(p: Plan): GGUFKVEntry[] {
  const out: GGUFKVEntry[] = [];
  const U32 = GGUFValueType.UINT32;
  for (const e of kvEntriesOf(p.g)) {
    if (e.key === "llama.expert_count" || e.key === "llama.expert_used_count") continue;
    if (e.key === "llama.feed_forward_length") {
      out.push({ key: e.key, value: p.f, type: U32 });
      out.push({ key: "llama.expert_count", value: p.experts, type: U32 });
      out.push({ key: "llama.expert_used_count", value: p.topK, type: U32 });
    } else out.push(e);
  }
  return out;
}

/** The output tensor list: each layer's ffn_{gate,up,down} become router + 3-D experts. */
function moeTensors(p: Plan): TensorDescriptor[] {
  const out: TensorDescriptor[] = [];
  for (const t of p.g.tensors) {
    const m = FFN.exec(t.name);
    if (!m) {
      out.push({ name: t.name, type: t.type, shape: t.shape });
      continue;
    }
    const i = m[1], part = m[2];
    if (part === "gate") {
      out.push({
        name: `blk.${i}.ffn_gate_inp.weight`,
        type: GGMLType.F32,
        shape: [p.nEmbd, p.experts],
      });
    }
    const shape = part === "down" ? [p.f, p.nEmbd, p.experts] : [p.nEmbd, p.f, p.experts];
    out.push({ name: `blk.${i}.ffn_${part}_exps.weight`, type: t.type, shape });
  }
  return out;
}

/** Seeded normal values (mulberry32 + Box-Muller). */
export function seededNormal(n: number, seed: number, std: number): Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297; // (0, 1)
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = std * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  }
  return out;
}

function router(p: Plan, layer: number): Uint8Array {
  const n = p.nEmbd * p.experts;
  const w = p.topK === p.experts
    ? new Float32Array(n)
    : seededNormal(n, (p.seed * 1000003 + layer) >>> 0, 1 / Math.sqrt(p.nEmbd));
  return new Uint8Array(w.buffer);
}

class Source {
  readonly fd: number;
  constructor(readonly path: string) {
    this.fd = openSync(path, "r");
  }
  read(t: TensorInfo, offset: number, len: number): Uint8Array {
    const buf = new Uint8Array(len);
    const got = readSync(this.fd, buf, 0, len, t.absoluteOffset + offset);
    if (got !== len) {
      throw new MoefyError(
        "bad_tensor",
        `Cannot moefy ${this.path}: file ended inside tensor "${t.name}"`,
      );
    }
    return buf;
  }
}

/** Expert e's down: columns e·f..(e+1)·f of each row, scaled by N, for every e in turn. */
function writeDown(w: GGUFWriter, src: Source, p: Plan, t: TensorInfo, name: string): void {
  const rowB = rowBytes(t.type, p.nFf);
  const sliceB = rowB / p.experts;
  const all = src.read(t, 0, rowB * p.nEmbd);
  const log2 = Math.log2(p.experts);
  for (let e = 0; e < p.experts; e++) {
    const out = new Uint8Array(sliceB * p.nEmbd);
    for (let r = 0; r < p.nEmbd; r++) {
      out.set(all.subarray(r * rowB + e * sliceB, r * rowB + (e + 1) * sliceB), r * sliceB);
    }
    scaleRows(t.type, out, log2, `tensor "${t.name}" (expert ${e})`);
    w.writeTensorChunk(name, out);
  }
}

function copyTensor(w: GGUFWriter, src: Source, t: TensorInfo, name: string): void {
  const step = 64 << 20;
  for (let o = 0; o < t.nbytes; o += step) {
    w.writeTensorChunk(name, src.read(t, o, Math.min(step, t.nbytes - o)));
  }
}

/**
 * Rewrite the dense llama GGUF `input` as a Mixtral-form MoE at `output` (see the module
 * comment). The output is written in place of any existing file and removed on failure.
 * @throws MoefyError when the model or the options cannot give an exact MoE
 */
export function moefyFile(input: string, output: string, opts: MoefyOptions): MoefyResult {
  const p = plan(readGGUF(input), opts);
  const w = new GGUFWriter(output, {
    kv: moeKV(p),
    tensors: moeTensors(p),
    alignment: p.g.alignment,
  });
  const src = new Source(input);
  try {
    for (const t of p.g.tensors) {
      const m = FFN.exec(t.name);
      if (!m) {
        copyTensor(w, src, t, t.name);
        continue;
      }
      const layer = Number(m[1]);
      const name = `blk.${layer}.ffn_${m[2]}_exps.weight`;
      if (m[2] === "gate") w.writeTensor(`blk.${layer}.ffn_gate_inp.weight`, router(p, layer));
      if (m[2] === "down") writeDown(w, src, p, t, name);
      else copyTensor(w, src, t, name);
      if (m[2] === "down") opts.onLayer?.(layer, p.nLayer);
    }
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  } finally {
    closeSync(src.fd);
  }
  return {
    nLayer: p.nLayer,
    experts: p.experts,
    topK: p.topK,
    nFf: p.nFf,
    nFfExp: p.f,
    exact: p.topK === p.experts,
    downTypes: [...new Set(p.layers.map((l) => typeInfo(l.down.type).name))],
    fileSize: w.layout.fileSize,
  };
}
