/** Pre-tokenizer splits per `tokenizer.ggml.pre`, incl. o200k (gpt-oss), which has no vectors. */

import assert from "node:assert/strict";
import { PreTokenizer, resolvePreTokenizer, SUPPORTED_PRE } from "./pretokenize.ts";
import { TokenizerError } from "./errors.ts";
import { cleanSpaces } from "./detokenize.ts";

const TEXT = "HelloWorld I'm  fine12345 , ok?\n\n  Привет мир 我想 re\u0301sume\u0301";

function split(pre: string, text = TEXT): string[] {
  return new PreTokenizer(resolvePreTokenizer(pre).regexes).split(text);
}

Deno.test("o200k (gpt-4o / gpt-oss): case-split words, contractions kept, digits in threes", () => {
  assert.deepEqual(split("gpt-4o"), [
    "Hello",
    "World",
    " I'm",
    " ",
    " fine",
    "123",
    "45",
    " ,",
    " ok",
    "?\n\n",
    " ",
    " Привет",
    " мир",
    " 我想",
    " re",
    "\u0301sume",
    "\u0301",
  ]);
  assert.equal(resolvePreTokenizer("gpt-4o").cleanSpaces, false);
});

Deno.test("qwen2 splits digits one by one; qwen35 keeps combining marks in words", () => {
  const q2 = split("qwen2");
  assert.deepEqual(q2.slice(5, 10), ["1", "2", "3", "4", "5"]);
  assert.ok(q2.includes("\u0301sume"));
  const q35 = split("qwen35");
  assert.equal(q35[q35.length - 1], " re\u0301sume\u0301");
});

Deno.test("llama3 and gpt-2 custom splitters", () => {
  assert.deepEqual(split("llama-bpe").slice(0, 7), [
    "HelloWorld",
    " I",
    "'m",
    " ",
    " fine",
    "123",
    "45",
  ]);
  assert.deepEqual(split("gpt-2", "a  b\n\n c 's"), ["a", " ", " b", "\n\n", " c", " '", "s"]);
  assert.deepEqual(split("llama-bpe", "x\r\n\r\ny 'S 'rE"), [
    "x",
    "\r\n\r\n",
    "y",
    " '",
    "S",
    " '",
    "rE",
  ]);
});

Deno.test("the pieces always cover the text exactly", () => {
  const texts = [TEXT, "", " ", "\u00a0\u3000x\ufeffy", "🦙🦙 1 22 333 4444", "a\uD800b"];
  for (const pre of SUPPORTED_PRE) {
    for (const t of texts) {
      const pieces = split(pre, t);
      assert.equal(pieces.join(""), t, pre);
      assert.ok(pieces.every((p) => p.length > 0), pre);
    }
  }
});

Deno.test("unknown pre-tokenizer is a typed error naming it", () => {
  assert.throws(
    () => resolvePreTokenizer("nope", "m.gguf"),
    (e: unknown) =>
      e instanceof TokenizerError && e.code === "unsupported_pre" &&
      e.message.includes('"nope"') && e.message.includes("m.gguf"),
  );
  assert.equal(resolvePreTokenizer(undefined).type, "default");
});

Deno.test("clean-up passes on bytes, as llama.cpp", () => {
  const run = (s: string) => {
    const b = new TextEncoder().encode(s);
    return new TextDecoder().decode(b.subarray(0, cleanSpaces(b, b.length)));
  };
  assert.equal(run("a , b . c ? d !"), "a, b. c? d!");
  assert.equal(
    run("it 's I 'm we 're you 've don 't I 'd they 'll"),
    "it's I'm we're you've don 't I 'd they 'll",
  );
  assert.equal(run("x ' y"), "x'y");
  assert.equal(run(" ,"), ",");
  assert.equal(run(""), "");
});
