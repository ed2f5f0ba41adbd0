/**
 * Helpers shared by the tokenizer tests (Deno and Bun): where llama.cpp's vocab files live and
 * how their test vectors are read (as tests/test-tokenizer-0.cpp reads them). Private to
 * runtime/tokenizer.
 *
 * @module
 */

import { vocabDir } from "../data_dirs.ts";
import { existsSync, readFileSync } from "node:fs";

/** Folder of llama.cpp's vocab-only GGUF files (`SPOOL_VOCAB_DIR` overrides). */
export const VOCAB_DIR: string = vocabDir();

/** Vocab files that come with `.inp`/`.out` vectors. */
export const VOCABS_WITH_VECTORS: readonly string[] = [
  "deepseek-coder",
  "deepseek-llm",
  "falcon",
  "gpt-2",
  "llama-bpe",
  "llama-spm",
  "mpt",
  "phi-3",
  "qwen2",
  "qwen35",
  "refact",
  "starcoder",
];

/** Path of `ggml-vocab-NAME.gguf`. */
export function vocabPath(name: string): string {
  return `${VOCAB_DIR}/ggml-vocab-${name}.gguf`;
}

/** Whether the vocab files are present. */
export function haveVocabs(): boolean {
  return existsSync(vocabPath("qwen2"));
}

/** One test vector: a text and the ids llama.cpp must produce (no BOS, no special parsing). */
export interface Vector {
  /** Input text. */
  text: string;
  /** Expected ids. */
  ids: number[];
}

/**
 * The vectors of `ggml-vocab-NAME.gguf`: texts split on "\n__ggml_vocab_test__\n" (the last
 * one ends at the end of the file), ids one line per text.
 */
export function readVectors(name: string): Vector[] {
  const raw = readFileSync(`${vocabPath(name)}.inp`, "utf8");
  const sep = "\n__ggml_vocab_test__\n";
  const texts: string[] = [];
  let pos = 0;
  while (pos < raw.length) {
    const next = raw.indexOf(sep, pos);
    if (next === -1) {
      texts.push(raw.slice(pos));
      break;
    }
    texts.push(raw.slice(pos, next));
    pos = next + sep.length;
  }
  const lines = readFileSync(`${vocabPath(name)}.out`, "utf8").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length !== texts.length) {
    throw new Error(`${name}: ${texts.length} texts but ${lines.length} lines of ids`);
  }
  return texts.map((text, i) => {
    const l = lines[i].trim();
    return { text, ids: l === "" ? [] : l.split(" ").map(Number) };
  });
}
