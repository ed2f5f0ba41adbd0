/**
 * Tokenizers under Bun: llama.cpp's test vectors for a byte-level BPE (qwen2) and a
 * SentencePiece (llama-spm) vocabulary, special tokens, and the streaming decoder.
 * Run with `node_modules/.bin/bun test test/bun/`.
 */

import { expect, test } from "bun:test";
import { TokenizerError, tokenizerFromGGUF } from "../../runtime/tokenizer/mod.ts";
import { readVectors, vocabPath } from "../../runtime/tokenizer/_test_helpers.ts";

for (const name of ["qwen2", "llama-spm", "llama-bpe"]) {
  test(`vectors: ${name}`, () => {
    const tok = tokenizerFromGGUF(vocabPath(name));
    const vectors = readVectors(name);
    let ok = 0;
    for (const v of vectors) {
      const got = tok.encode(v.text);
      expect(got).toEqual(v.ids);
      ok++;
    }
    expect(ok).toBe(vectors.length);
  });
}

test("special tokens, BOS and decoding", () => {
  const q = tokenizerFromGGUF(vocabPath("qwen2"));
  const text = "<|im_start|>user\nhi<|im_end|>";
  expect(q.encode(text, { parseSpecial: true })).toEqual([151644, 872, 198, 6023, 151645]);
  expect(q.decode(q.encode(text))).toBe(text);
  const s = tokenizerFromGGUF(vocabPath("llama-spm"));
  expect(s.encode("Hello world", { addSpecial: true })).toEqual([1, 15043, 3186]);
  expect(s.decode([15043, 3186])).toBe("Hello world");
  expect(() => s.tokenPiece(1 << 20)).toThrow(TokenizerError);
});

test("streaming decoder holds back split characters", () => {
  const q = tokenizerFromGGUF(vocabPath("qwen2"));
  const text = "I 🦙 llamas, 我想在apple工作 😶‍🌫️";
  const ids = q.encode(text);
  const dec = q.streamDecoder();
  const parts = ids.map((id) => dec.push(id));
  parts.push(dec.flush());
  for (const p of parts) expect(p.includes("\uFFFD")).toBe(false);
  expect(parts.join("")).toBe(text);
});
