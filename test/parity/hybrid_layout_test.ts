/**
 * llama.cpp as the oracle of the hybrids' tensor layouts (runtime/models/qwen35_moe.ts and
 * qwen3_next.ts), by a cross-architecture identity: qwen35moe and qwen3next run the same math
 * and differ only in (1) beta/alpha (qwen3next fuses them into `ssm_ba`, per key head its
 * betas then its alphas; qwen35moe has `ssm_beta` and `ssm_alpha`), (2) the value-head order
 * (qwen3next "grouped": value head j reads key head j / (n_v/n_k); qwen35moe "tiled": key head
 * j % n_k) and (3) the rope (qwen3next NEOX; qwen35moe IMROPE with `rope.dimension_sections`).
 *
 * A random qwen3next fixture (2 key heads, 4 value heads) is rewritten as a qwen35moe file with
 * the same weights, splitting `ssm_ba` and permuting the value heads from grouped to tiled order
 * in every tensor they touch (attn_qkv's v rows, attn_gate, ssm_conv1d's v channels, ssm_dt,
 * ssm_a, beta, alpha, ssm_out's input columns), with sections [3, 3, 2, 0] over 16 rotated dims.
 * If the spec's layout claims and the IMROPE-is-NEOX rule hold, llama.cpp gives both files the
 * same logits at every position of a 16-token prompt. Two controls show the check can fail:
 * the same rewrite without the head permutation, and with sections [0, 4, 4, 0] (no t section:
 * rotated pair 0, the fastest, falls to the 4th section, whose text position is 0, so it is not
 * rotated), must both change the logits. (A control that moves only the slowest pairs, e.g.
 * [2, 2, 2, 2], does not: at rope base 1e7 their angles over 16 positions are below 1e-4.)
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readGGUF } from "../../runtime/gguf/reader.ts";
import { type GGUFKVEntry, GGUFWriter } from "../../runtime/gguf/writer.ts";
import { GGUFValueType } from "../../runtime/gguf/types.ts";
import { getArch } from "../../runtime/models/registry.ts";
import { writeSyntheticModel } from "../../runtime/models/synth.ts";
import { runLlamaOracle } from "./llama_oracle.ts";

const DIR = fileURLToPath(new URL("../fixtures/hybrid_layout/", import.meta.url));
const PROMPT = [1, 5, 9, 20, 33, 7, 100, 2, 50, 61, 3, 4, 17, 88, 250, 6];
const NK = 2, NV = 4, R = NV / NK, DK = 64;

/** Tiled position of grouped value head h = g·R + i: i·NK + g. */
function tiled(h: number): number {
  const g = Math.floor(h / R), i = h % R;
  return i * NK + g;
}

/** Rows of `rows × cols` f32 data with the head blocks of rows [from, from + NV·w) permuted. */
function permuteRows(src: Float32Array, cols: number, from: number, w: number): Float32Array {
  const out = src.slice();
  for (let h = 0; h < NV; h++) {
    const s = (from + h * w) * cols, d = (from + tiled(h) * w) * cols;
    out.set(src.subarray(s, s + w * cols), d);
  }
  return out;
}

/** `rows × cols` f32 data with the head blocks (of w columns) of every row permuted. */
function permuteCols(src: Float32Array, cols: number, w: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < src.length / cols; r++) {
    for (let h = 0; h < NV; h++) {
      const s = r * cols + h * w, d = r * cols + tiled(h) * w;
      out.set(src.subarray(s, s + w), d);
    }
  }
  return out;
}

/**
 * Write `next` (a qwen3next F32 file) as a qwen35moe file at `out`: keys renamed, sections
 * added, `ssm_ba` split, value heads permuted to tiled order unless `permute` is false.
 */
function rewrite(next: string, out: string, sections: number[], permute: boolean): void {
  const g = readGGUF(next);
  const bytes = readFileSync(next);
  const kv: GGUFKVEntry[] = [];
  for (const [key, value] of g.kv) {
    const k = key.startsWith("qwen3next.") ? `qwen35moe.${key.slice(10)}` : key;
    kv.push({
      key: k,
      value: k === "general.architecture" ? "qwen35moe" : value,
      type: g.kvTypes.get(key),
    });
  }
  kv.push({
    key: "qwen35moe.rope.dimension_sections",
    value: new Int32Array(sections),
    type: { type: GGUFValueType.ARRAY, elementType: GGUFValueType.INT32 },
  });
  const tensors: { name: string; shape: readonly number[]; data: Float32Array }[] = [];
  for (const t of g.tensors) {
    assert.equal(t.typeName, "F32", t.name);
    const data = new Float32Array(
      bytes.buffer.slice(
        bytes.byteOffset + t.absoluteOffset,
        bytes.byteOffset + t.absoluteOffset + t.nbytes,
      ),
    );
    const cols = t.shape[0];
    const name = t.name.replace(/^blk\.\d+\./, "");
    const p = (f: () => Float32Array): Float32Array => (permute ? f() : data);
    if (name === "ssm_ba.weight") {
      // per key head g: R betas, then R alphas (grouped heads g·R + i)
      const beta = new Float32Array(NV * cols), alpha = new Float32Array(NV * cols);
      for (let h = 0; h < NV; h++) {
        const g0 = Math.floor(h / R), i = h % R, d = (permute ? tiled(h) : h) * cols;
        beta.set(data.subarray((g0 * 2 * R + i) * cols, (g0 * 2 * R + i + 1) * cols), d);
        alpha.set(data.subarray((g0 * 2 * R + R + i) * cols, (g0 * 2 * R + R + i + 1) * cols), d);
      }
      const pre = t.name.slice(0, -"ssm_ba.weight".length);
      tensors.push({ name: `${pre}ssm_beta.weight`, shape: [cols, NV], data: beta });
      tensors.push({ name: `${pre}ssm_alpha.weight`, shape: [cols, NV], data: alpha });
      continue;
    }
    let d: Float32Array = data;
    if (name === "attn_qkv.weight" || name === "ssm_conv1d.weight") {
      d = p(() => permuteRows(data, cols, 2 * NK * DK, DK));
    } else if (name === "attn_gate.weight") d = p(() => permuteRows(data, cols, 0, DK));
    else if (name === "ssm_dt.bias" || name === "ssm_a") d = p(() => permuteRows(data, 1, 0, 1));
    else if (name === "ssm_out.weight") d = p(() => permuteCols(data, cols, DK));
    tensors.push({ name: t.name, shape: t.shape, data: d });
  }
  const w = new GGUFWriter(out, {
    kv,
    tensors: tensors.map((t) => ({ name: t.name, type: 0, shape: t.shape })),
  });
  for (const t of tensors) w.writeTensorChunk(t.name, new Uint8Array(t.data.buffer));
  w.close();
}

function nmse(a: number[], ref: number[]): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return num / den;
}

Deno.test({
  name: "llama.cpp: a qwen3next file rewritten as qwen35moe by the specs' layouts gives its logits",
  sanitizeResources: false,
  fn: async () => {
    mkdirSync(DIR, { recursive: true });
    const next = `${DIR}qwen3next.gguf`;
    writeSyntheticModel(next, {
      arch: "qwen3next",
      types: "F32",
      seed: 21,
      dims: { ssmGroupCount: NK, ssmTimeStepRank: NV, ssmStateSize: DK, nLayerNextn: 0 },
    });
    const files = {
      same: [`${DIR}qwen35moe_tiled.gguf`, [3, 3, 2, 0], true],
      grouped: [`${DIR}qwen35moe_grouped.gguf`, [3, 3, 2, 0], false],
      sections: [`${DIR}qwen35moe_sect0440.gguf`, [0, 4, 4, 0], true],
    } as const;
    for (const [path, sections, permute] of Object.values(files)) {
      rewrite(next, path, [...sections], permute);
    }
    // the rewritten file is a valid qwen35moe for spool too (the sections one is rejected)
    const cfg = getArch("qwen35moe").config(readGGUF(files.same[0]).kv);
    assert.deepEqual([cfg.deltaNet?.nKHeads, cfg.deltaNet?.nVHeads, cfg.rope.sections], [
      NK,
      NV,
      [3, 3, 2, 0],
    ]);
    assert.throws(() => getArch("qwen35moe").config(readGGUF(files.sections[0]).kv));

    const paths = [next, ...Object.values(files).map((f) => f[0])];
    const res = await runLlamaOracle(
      paths.map((path) => ({ path, tokens: PROMPT, logits: "all" })),
    );
    for (const r of res) assert.ok(r.ok, `${r.path}: ${r.error}`);
    const flat = (i: number) => res[i].logits!.flat();
    const ref = flat(0);
    assert.equal(ref.length, PROMPT.length * res[0].nVocab!);
    const same = nmse(flat(1), ref), grouped = nmse(flat(2), ref), sect = nmse(flat(3), ref);
    if (Deno.env.get("SPOOL_TEST_VERBOSE")) {
      console.log(`nmse: tiled ${same}, unpermuted ${grouped}, sections 0,4,4,0 ${sect}`);
    }
    // measured: tiled 5.5e-10 (summation order: ssm_out's permuted inputs, the broadcast of k
    // heads); controls: unpermuted 0.45, sections [0,4,4,0] 5.6e-4 (one attention layer of 4)
    assert.ok(same < 1e-8, `tiled rewrite: NMSE ${same}`);
    assert.ok(grouped > 1e-3, `unpermuted heads should change the logits: NMSE ${grouped}`);
    assert.ok(sect > 1e-5, `sections [0,4,4,0] should change the logits: NMSE ${sect}`);
  },
});
