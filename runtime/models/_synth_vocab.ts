/**
 * Tokenizer metadata of synthetic models (synth.ts): the self-made byte-level GPT-2 BPE, or the
 * `tokenizer.*` keys copied from a vocab-only GGUF.
 *
 * @module
 */

import { vocabDir } from "../data_dirs.ts";
import { readGGUF } from "../gguf/reader.ts";
import type { GGUFKVEntry } from "../gguf/writer.ts";
import { GGUFValueType } from "../gguf/types.ts";

/** A vocab-only GGUF by file name, from {@link vocabDir}. */
export function sharedVocab(file: string): string {
  return vocabDir() + file;
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

export function vocabSize(kv: readonly GGUFKVEntry[]): number {
  const t = kv.find((e) => e.key === "tokenizer.ggml.tokens");
  return (t?.value as readonly string[]).length;
}
