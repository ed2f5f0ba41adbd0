/**
 * Tokenizer tests: every llama.cpp vocab test vector, round trips as llama.cpp's
 * test-tokenizer-1-{bpe,spm}, special tokens, BOS/EOS, decoding rules, typed errors, and a tiny
 * hand-made BPE vocabulary for the merge order.
 */

import assert from "node:assert/strict";
import { encodeGGUF } from "../gguf/writer.ts";
import { readGGUF } from "../gguf/reader.ts";
import { TokenizerError } from "./errors.ts";
import { TokenAttr, type Tokenizer, tokenizerFromGGUF } from "./tokenizer.ts";
import { readVectors, vocabPath, VOCABS_WITH_VECTORS } from "./_test_helpers.ts";

const cache = new Map<string, Tokenizer>();
function load(name: string): Tokenizer {
  let t = cache.get(name);
  if (!t) cache.set(name, t = tokenizerFromGGUF(vocabPath(name)));
  return t;
}

for (const name of VOCABS_WITH_VECTORS) {
  Deno.test(`vectors: ${name} (all of llama.cpp's test-tokenizer-0 vectors)`, () => {
    const tok = load(name);
    const vectors = readVectors(name);
    assert.ok(vectors.length >= 46);
    const failures: string[] = [];
    for (const v of vectors) {
      const got = tok.encode(v.text); // test-tokenizer-0: add_special=false, parse_special=false
      if (JSON.stringify(got) !== JSON.stringify(v.ids)) {
        failures.push(`${JSON.stringify(v.text)}\n  want ${v.ids}\n  got  ${got}`);
      }
    }
    assert.deepEqual(failures, [], `${failures.length}/${vectors.length} vectors differ`);
  });
}

const FATAL = new TextDecoder("utf-8", { fatal: true });

/** llama.cpp's test-tokenizer-1: every token's text re-encodes to the same text. */
function tokenRoundTrip(tok: Tokenizer, stride: number): number {
  let checked = 0;
  for (let i = 0; i < tok.nVocab; i += stride) {
    let s: string;
    try {
      s = FATAL.decode(tok.decodeBytes([i], { special: true }));
    } catch {
      continue; // a piece that is not valid UTF-8 on its own (llama.cpp skips those too)
    }
    const back = tok.decode(tok.encode(s, { parseSpecial: true }), { special: true });
    assert.equal(back, s, `token ${i} ${JSON.stringify(tok.tokenText(i))}`);
    checked++;
  }
  return checked;
}

/** llama.cpp's test-tokenizer-1: each code point alone round-trips (no surrogates, no Cn). */
function codePointRoundTrip(tok: Tokenizer, stride: number, end = 0x110000): void {
  for (let cp = 0; cp < end; cp += stride) {
    if ((cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x40000 && cp <= 0xe0000)) continue;
    if (cp === 0x2581) continue; // "▁" is a space to SPM
    const s = String.fromCodePoint(cp);
    assert.equal(tok.decode(tok.encode(s), { special: true }), s, `U+${cp.toString(16)}`);
  }
}

Deno.test("round trip: every token of gpt-2 and llama-spm re-encodes to itself", () => {
  for (const name of ["gpt-2", "llama-spm"]) {
    assert.ok(tokenRoundTrip(load(name), 1) > 30000, name);
  }
});

Deno.test("round trip: a sample of tokens of every other vocab re-encodes to itself", () => {
  for (
    const name of [
      "qwen2",
      "qwen35",
      "llama-bpe",
      "deepseek-coder",
      "deepseek-llm",
      "falcon",
      "mpt",
      "starcoder",
      "refact",
      "gpt-neox",
      "phi-3",
    ]
  ) {
    assert.ok(tokenRoundTrip(load(name), 17) > 1500, name);
  }
});

Deno.test("round trip: single code points (a sample) for the BPE and SPM families", () => {
  // falcon is left out: its vocabulary has no token for some control bytes (0x15, 0x1c), which
  // llama.cpp drops as well
  for (const name of ["qwen2", "llama-bpe", "gpt-2", "llama-spm", "deepseek-llm", "starcoder"]) {
    codePointRoundTrip(load(name), 29);
  }
  codePointRoundTrip(load("qwen2"), 1, 0x800); // and every code point below U+0800
});

Deno.test("round trip: text through encode/decode (vocabs without clean-up passes)", () => {
  const texts = [
    "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
    "  leading and trailing  \n\n\ttabs\r\n",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅",
    "нещо на Български — ภาษาไทย, 한국어, العربية",
    "e\u0301 re\u0301sume\u0301 a\u0300a\u0300a\u0300",
  ];
  for (const name of ["qwen2", "qwen35", "deepseek-llm", "deepseek-coder", "llama-spm", "phi-3"]) {
    const tok = load(name);
    for (const t of texts) assert.equal(tok.decode(tok.encode(t)), t, `${name}: ${t}`);
  }
});

Deno.test("gpt-neox (no vectors): loads with the default pre-tokenizer and round-trips", () => {
  const tok = load("gpt-neox");
  assert.equal(tok.model, "gpt2");
  assert.equal(tok.preType, "default");
  assert.equal(tok.nVocab, 50432);
  const text = "Hello world 12345 $x+y <|endoftext|> ünïcödé 🦙";
  const ids = tok.encode(text);
  assert.deepEqual(ids.slice(0, 3), [12092, 1533, 209]); // "Hello", " world", " "
  assert.equal(tok.decode(ids, { special: true }), text);
});

Deno.test("special tokens: control tokens are text unless parseSpecial", () => {
  const q = load("qwen2");
  const text = "<|im_start|>user\nhi<|im_end|>";
  assert.deepEqual(q.encode(text, { parseSpecial: true }), [151644, 872, 198, 6023, 151645]);
  const plain = q.encode(text);
  assert.ok(!plain.includes(151644) && !plain.includes(151645));
  assert.equal(q.decode(plain), text);
  // control tokens are hidden when decoding unless asked
  const parsed = q.encode(text, { parseSpecial: true });
  assert.equal(q.decode(parsed), "user\nhi");
  assert.equal(q.decode(parsed, { special: true }), text);
  assert.ok(q.isControl(151644));
});

Deno.test("special tokens: longest match first, and user-defined tokens always split", () => {
  const q = load("qwen2");
  // user-defined tokens (type 4) are split out even without parseSpecial
  let user = -1;
  for (let i = 0; i < q.nVocab && user < 0; i++) {
    if ((q.tokenAttr(i) & TokenAttr.USER_DEFINED) && q.tokenText(i).length > 3) user = i;
  }
  assert.ok(user >= 0);
  const ut = q.tokenText(user);
  const ids = q.encode(`a${ut}b`);
  assert.equal(ids.filter((x) => x === user).length, 1);
  assert.equal(q.decode(ids), `a${ut}b`);
});

Deno.test("special tokens: Phi-3 strips whitespace after special tokens (rstrip)", () => {
  const p = load("phi-3");
  const end = p.tokenId("<|end|>")!;
  assert.equal(end, 32007);
  assert.ok(p.tokenAttr(end) & TokenAttr.RSTRIP);
  // "\n  " after <|end|> is dropped; the text after a special token gets SPM's space prefix
  assert.deepEqual(p.encode("<|end|>\n  hi", { parseSpecial: true }), [32007, 7251]);
});

Deno.test("BOS/EOS: addSpecial follows the vocabulary", () => {
  assert.deepEqual(load("llama-spm").encode("Hello world", { addSpecial: true }), [1, 15043, 3186]);
  assert.deepEqual(load("llama-bpe").encode("Hello", { addSpecial: true }), [128000, 9906]);
  assert.deepEqual(load("deepseek-coder").encode("hi", { addSpecial: true }), [32013, 4821]);
  const q = load("qwen2");
  assert.equal(q.addBos, false);
  assert.deepEqual(q.encode("hi", { addSpecial: true }), q.encode("hi"));
  assert.deepEqual(load("llama-spm").encode("", { addSpecial: true }), [1]);
  assert.deepEqual(load("llama-spm").encode(""), []);
});

Deno.test("SPM: space prefix at the start and after special tokens; decode strips it", () => {
  const s = load("llama-spm");
  assert.equal(s.addSpacePrefix, true);
  assert.deepEqual(s.encode("<s>Hello world", { parseSpecial: true }), [1, 15043, 3186]);
  assert.deepEqual(s.encode("Hello world"), [15043, 3186]);
  assert.equal(s.decode([15043, 3186]), "Hello world");
  // as llama.cpp: a leading BOS takes the strip, so the space after it stays
  assert.equal(s.decode([1, 15043, 3186]), " Hello world");
  assert.equal(s.decode([1, 15043, 3186], { special: true }), "<s> Hello world");
  assert.equal(s.decode([1, 15043, 3186], { removeSpecial: true }), " Hello world");
  // byte fallback: a character without a token becomes <0xXX> tokens and decodes back
  const ids = s.encode("🦙");
  assert.ok(ids.some((id) => s.tokenAttr(id) & TokenAttr.BYTE));
  assert.equal(s.decode(ids), "🦙");
});

Deno.test("BPE: clean-up passes as llama.cpp (gpt-2 and llama-bpe clean, qwen2 does not)", () => {
  const g = load("gpt-2");
  assert.equal(g.cleanSpaces, true);
  assert.equal(
    g.decode(g.encode("Hello , world . I 'm here ' ok ' and we 're")),
    "Hello, world. I'm here'ok'and we're",
  );
  const q = load("qwen2");
  assert.equal(q.cleanSpaces, false);
  assert.equal(q.decode(q.encode("Hello , world .")), "Hello , world .");
});

Deno.test("end-of-generation ids", () => {
  const q = load("qwen2");
  assert.ok(q.isEog(151643) && q.isEog(151645));
  assert.equal(q.special.eot, 151645);
  const l = load("llama-bpe");
  assert.ok(l.isEog(128001) && l.isEog(128009));
  assert.equal(l.special.eot, 128009);
  assert.ok(load("llama-spm").isEog(2));
});

Deno.test("streaming decoder: emoji and CJK split over byte tokens come out whole", () => {
  for (const name of ["gpt-2", "qwen2", "llama-spm", "llama-bpe"]) {
    const tok = load(name);
    const text = "I 🦙 llamas, 我想在apple工作 😶‍🌫️ — ok?";
    const ids = tok.encode(text);
    const dec = tok.streamDecoder({ stripLeadingSpace: true });
    const parts = ids.map((id) => dec.push(id));
    parts.push(dec.flush());
    for (const p of parts) assert.ok(!p.includes("\uFFFD"), `${name}: broken UTF-8 in ${p}`);
    assert.equal(parts.join(""), tok.decode(ids), name);
    // at least one token produced no text (an incomplete character was held back)
    if (name !== "llama-spm") assert.ok(parts.slice(0, -1).some((p) => p === ""), name);
  }
});

Deno.test("streaming decoder: concatenation equals decode, clean-up passes included", () => {
  const g = load("gpt-2");
  const words = [
    " ",
    "'",
    " '",
    "s",
    "re",
    "ve",
    "m",
    " ,",
    ".",
    "?",
    "!",
    "a",
    "r",
    "v",
    "e",
    "x",
  ];
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let k = 0; k < 300; k++) {
    let text = "";
    const n = 1 + Math.floor(rnd() * 12);
    for (let i = 0; i < n; i++) text += words[Math.floor(rnd() * words.length)];
    const ids = g.encode(text);
    const dec = g.streamDecoder();
    let out = "";
    for (const id of ids) out += dec.push(id);
    out += dec.flush();
    assert.equal(out, g.decode(ids), JSON.stringify(text));
  }
  // generated text: no strip by default, so a leading space survives
  const s = load("llama-spm");
  const d = s.streamDecoder();
  assert.equal(d.pushAll(s.encode(" world")) + d.flush(), "  world");
  assert.equal(s.decode(s.encode(" world")), " world");
});

Deno.test("errors are typed and say what and where", () => {
  const q = load("qwen2");
  assert.throws(() => q.tokenPiece(q.nVocab), (e: unknown) => {
    assert.ok(e instanceof TokenizerError);
    assert.equal(e.code, "bad_token");
    assert.match(e.message, /token 151936/);
    return true;
  });
  assert.throws(() => q.decode([-1]), TokenizerError);
  const mk = (kv: { key: string; value: string | string[] }[]) =>
    tokenizerFromGGUF(readGGUF(encodeGGUF({ kv }), { path: "x.gguf" }));
  assert.throws(() => mk([{ key: "general.name", value: "none" }]), (e: unknown) => {
    assert.ok(e instanceof TokenizerError);
    assert.equal(e.code, "missing_key");
    assert.match(e.message, /x\.gguf.*tokenizer\.ggml\.model/);
    return true;
  });
  assert.throws(
    () =>
      mk([{ key: "tokenizer.ggml.model", value: "t5" }, {
        key: "tokenizer.ggml.tokens",
        value: ["a"],
      }]),
    (e: unknown) =>
      e instanceof TokenizerError && e.code === "unsupported_model" && /t5/.test(e.message),
  );
  assert.throws(
    () =>
      mk([
        { key: "tokenizer.ggml.model", value: "gpt2" },
        { key: "tokenizer.ggml.pre", value: "no-such-pre" },
        { key: "tokenizer.ggml.tokens", value: ["a"] },
        { key: "tokenizer.ggml.merges", value: ["a a"] },
      ]),
    (e: unknown) =>
      e instanceof TokenizerError && e.code === "unsupported_pre" && /no-such-pre/.test(e.message),
  );
});

function tinyBpe(tokens: string[], merges: string[], pre = "gpt-2"): Tokenizer {
  return tokenizerFromGGUF(readGGUF(encodeGGUF({
    kv: [
      { key: "tokenizer.ggml.model", value: "gpt2" },
      { key: "tokenizer.ggml.pre", value: pre },
      { key: "tokenizer.ggml.tokens", value: tokens },
      { key: "tokenizer.ggml.merges", value: merges },
    ],
  })));
}

Deno.test("BPE merge order: lowest rank first, leftmost on ties; non-tokens fall back", () => {
  const tok = tinyBpe(["a", "b", "c", "ab", "bc", "abc", "aa"], ["b c", "a b", "a bc", "a a"]);
  // "abc": "b c" (rank 0) before "a b" (rank 1), then "a bc" (rank 2)
  assert.deepEqual(tok.encode("abc"), [5]);
  // "aaa": ties on "a a" are merged leftmost first
  assert.deepEqual(tok.encode("aaa"), [6, 0]);
  assert.equal(tok.mergeRank("a", "bc"), 2);
  assert.equal(tok.mergeRank("c", "a"), -1);
  // a byte with no token is dropped, as llama.cpp does
  assert.deepEqual(tok.encode("axb"), [0, 1]);
});
