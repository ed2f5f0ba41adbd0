/**
 * GGUF files written by ggml itself (llama.cpp's own writer in libggml-base, shipped
 * prebuilt by node-llama-cpp) are read by spool's reader, and `spool inspect` reports the
 * byte counts ggml computes for the same tensors. An independent writer is the oracle here.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readGGUF } from "../../runtime/gguf/reader.ts";
import { GGMLType } from "../../runtime/gguf/types.ts";
import { inspectGGUF } from "../../runtime/inspect.ts";

const GGML = fileURLToPath(
  new URL(
    "../../node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so",
    import.meta.url,
  ),
);
const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));
const available = Deno.build.os === "linux" && Deno.build.arch === "x86_64" && existsSync(GGML);

function openGGML() {
  return Deno.dlopen(GGML, {
    ggml_init: { parameters: [{ struct: ["usize", "pointer", "u8"] }], result: "pointer" },
    ggml_new_tensor: { parameters: ["pointer", "i32", "i32", "buffer"], result: "pointer" },
    ggml_set_name: { parameters: ["pointer", "buffer"], result: "pointer" },
    ggml_get_data: { parameters: ["pointer"], result: "pointer" },
    ggml_nbytes: { parameters: ["pointer"], result: "usize" },
    ggml_free: { parameters: ["pointer"], result: "void" },
    gguf_init_empty: { parameters: [], result: "pointer" },
    gguf_set_val_str: { parameters: ["pointer", "buffer", "buffer"], result: "void" },
    gguf_set_val_u32: { parameters: ["pointer", "buffer", "u32"], result: "void" },
    gguf_set_val_f32: { parameters: ["pointer", "buffer", "f32"], result: "void" },
    gguf_set_arr_str: { parameters: ["pointer", "buffer", "buffer", "usize"], result: "void" },
    gguf_add_tensor: { parameters: ["pointer", "pointer"], result: "void" },
    gguf_write_to_file: { parameters: ["pointer", "buffer", "u8"], result: "u8" },
    gguf_free: { parameters: ["pointer"], result: "void" },
  });
}

const cstr = (s: string) => new TextEncoder().encode(s + "\0");

interface Written {
  path: string;
  tensors: { name: string; type: number; shape: number[]; nbytes: number; fill: number }[];
}

/** Write a tiny qwen3moe-shaped model with ggml's writer; tensor i is filled with byte i+1. */
function writeWithGGML(): Written {
  const lib = openGGML();
  const s = lib.symbols;
  const params = new Uint8Array(24);
  new DataView(params.buffer).setBigUint64(0, 64n << 20n, true); // mem_size 64 MiB, alloc on
  const ctx = s.ggml_init(params);
  const gguf = s.gguf_init_empty();
  const arch = "qwen3moe";
  s.gguf_set_val_str(gguf, cstr("general.architecture"), cstr(arch));
  s.gguf_set_val_str(gguf, cstr("general.name"), cstr("ggml-written"));
  const nEmbd = 256, nLayer = 2, nExpert = 4, k = 2, nFf = 64, nVocab = 40;
  s.gguf_set_val_u32(gguf, cstr(`${arch}.block_count`), nLayer);
  s.gguf_set_val_u32(gguf, cstr(`${arch}.embedding_length`), nEmbd);
  s.gguf_set_val_u32(gguf, cstr(`${arch}.expert_count`), nExpert);
  s.gguf_set_val_u32(gguf, cstr(`${arch}.expert_used_count`), k);
  s.gguf_set_val_f32(gguf, cstr(`${arch}.rope.freq_base`), 1e6);
  s.gguf_set_val_str(gguf, cstr("tokenizer.ggml.model"), cstr("gpt2"));
  const toks = Array.from({ length: nVocab }, (_, i) => cstr(`tok${i}`));
  const ptrs = new BigUint64Array(
    toks.map((t) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(t)))),
  );
  s.gguf_set_arr_str(gguf, cstr("tokenizer.ggml.tokens"), ptrs, BigInt(nVocab));
  const specs: [string, number, number[]][] = [
    ["token_embd.weight", GGMLType.Q8_0, [nEmbd, nVocab]],
    ["output_norm.weight", GGMLType.F32, [nEmbd]],
    ["output.weight", GGMLType.Q6_K, [nEmbd, nVocab]],
  ];
  for (let i = 0; i < nLayer; i++) {
    specs.push(
      [`blk.${i}.attn_norm.weight`, GGMLType.F32, [nEmbd]],
      [`blk.${i}.attn_q.weight`, GGMLType.Q4_K, [nEmbd, nEmbd]],
      [`blk.${i}.ffn_gate_inp.weight`, GGMLType.F32, [nEmbd, nExpert]],
      [`blk.${i}.ffn_gate_exps.weight`, GGMLType.Q4_K, [nEmbd, nFf, nExpert]],
      [`blk.${i}.ffn_up_exps.weight`, GGMLType.Q4_K, [nEmbd, nFf, nExpert]],
      [`blk.${i}.ffn_down_exps.weight`, GGMLType.Q8_0, [nFf, nEmbd, nExpert]],
    );
  }
  const tensors: Written["tensors"] = [];
  specs.forEach(([name, type, shape], i) => {
    const ne = new BigInt64Array(shape.map(BigInt));
    const t = s.ggml_new_tensor(ctx, type, shape.length, ne);
    s.ggml_set_name(t, cstr(name));
    const nbytes = Number(s.ggml_nbytes(t));
    const data = new Uint8Array(
      Deno.UnsafePointerView.getArrayBuffer(s.ggml_get_data(t)!, nbytes),
    );
    data.fill(i + 1);
    s.gguf_add_tensor(gguf, t);
    tensors.push({ name, type, shape, nbytes, fill: i + 1 });
  });
  mkdirSync(FIXTURES, { recursive: true });
  const path = `${FIXTURES}ggml_written.gguf`;
  const ok = s.gguf_write_to_file(gguf, cstr(path), 0);
  s.gguf_free(gguf);
  s.ggml_free(ctx);
  lib.close();
  if (!ok) throw new Error("ggml failed to write " + path);
  return { path, tensors };
}

Deno.test({
  name: "reader: a GGUF written by ggml parses, with its tensors and data where ggml put them",
  ignore: !available,
  fn() {
    const w = writeWithGGML();
    const g = readGGUF(w.path);
    const file = readFileSync(w.path);
    assertEquals(g.version, 3);
    assertEquals(g.kv.get("general.name"), "ggml-written");
    assertEquals((g.kv.get("tokenizer.ggml.tokens") as string[]).slice(0, 2), ["tok0", "tok1"]);
    assertEquals(g.tensors.map((t) => t.name), w.tensors.map((t) => t.name));
    for (const [i, t] of g.tensors.entries()) {
      assertEquals([t.type, t.shape, t.nbytes], [
        w.tensors[i].type,
        w.tensors[i].shape,
        w.tensors[i].nbytes,
      ]);
      const bytes = file.subarray(t.absoluteOffset, t.absoluteOffset + t.nbytes);
      assertEquals(bytes.every((b) => b === w.tensors[i].fill), true, `data of ${t.name}`);
    }
  },
});

Deno.test({
  name: "inspect: byte counts of a ggml-written MoE file match ggml's own tensor sizes",
  ignore: !available,
  fn() {
    const w = writeWithGGML();
    const r = inspectGGUF(readGGUF(w.path), w.path);
    const bytes = (pred: (n: string) => boolean) =>
      w.tensors.filter((t) => pred(t.name)).reduce((a, t) => a + t.nbytes, 0);
    const expert = bytes((n) => n.includes("_exps."));
    const total = bytes(() => true);
    assertEquals(r.totalBytes, total);
    assertEquals(r.expertBytes, expert);
    assertEquals(r.denseBytes, total - expert);
    assertEquals(r.expertCount, 4);
    assertEquals(r.expertUsedCount, 2);
    assertEquals(r.moeLayers, 2);
    const perExpert = bytes((n) => n.startsWith("blk.0.") && n.includes("_exps.")) / 4;
    assertEquals(r.bytesPerExpert, perExpert);
    // one token: one embedding row (Q8_0: 256/32 blocks × 34 B) + all other dense + 2 layers × k=2 experts
    const embd = w.tensors[0].nbytes;
    const dense = total - expert - embd + 8 * 34;
    assertEquals(r.denseBytesPerToken, dense);
    assertEquals(r.bytesPerToken, dense + 2 * 2 * perExpert);
    assertEquals(r.byType.find((t) => t.type === "Q4_K")?.count, 6); // attn_q, gate, up × 2 layers
    assertEquals(
      r.byType.find((t) => t.type === "Q4_K")?.bytes,
      bytes((n) => /attn_q|gate_exps|up_exps/.test(n)),
    );
    assertEquals(r.tokenizer.vocabSize, 40);
  },
});
