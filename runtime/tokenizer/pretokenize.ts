/**
 * Pre-tokenizers of byte-level BPE vocabularies, as llama.cpp implements them
 * (`llm_tokenizer_bpe` in src/llama-vocab.cpp, `unicode_regex_split` in src/unicode.cpp).
 *
 * A pre-tokenizer is a list of regexes applied in turn: each one splits every piece the previous
 * ones produced into its matches and the text between them. llama.cpp runs a regex in one of
 * three ways, and so does this file, to give the same pieces:
 *
 * - **custom**: the GPT-2 and Llama-3 regexes have hand-written splitters (ported here), used
 *   wherever the regex text is exactly theirs;
 * - **collapsed**: a regex with `\p{..}` classes runs on a copy of the text where every non-ASCII
 *   code point is replaced by one stand-in character per category (whitespace `\v`, number
 *   0xD1, letter 0xD2, punctuation 0xD3, mark 0xD4, symbol 0xD5, other 0xD0), and each `\p{X}`
 *   becomes `[<stand-in><ASCII members of X>]`. So `[^a-z]` matches every non-ASCII letter, for
 *   example; this is llama.cpp's behaviour and is kept on purpose;
 * - **plain**: a regex without `\p{..}` runs on the code points, with non-ASCII whitespace
 *   replaced by `\v` and `\s` meaning ASCII whitespace (std::wregex in the C locale).
 *
 * Which regexes a vocabulary uses comes from `tokenizer.ggml.pre` ({@link resolvePreTokenizer}).
 *
 * @module
 */

import { codePoints, CpFlag, cpFlags, cpToLower } from "./unicode.ts";
import { TokenizerError } from "./errors.ts";

/** The GPT-2 regex (custom splitter in llama.cpp). */
export const REGEX_GPT2 =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
/** The Llama-3 regex, case-insensitive contractions spelled out (custom splitter in llama.cpp). */
export const REGEX_LLAMA3 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const REGEX_LLAMA3_I =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Qwen2's regex: Llama-3's with single digits. */
export const REGEX_QWEN2 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Qwen3.5's regex: Qwen2's with combining marks kept in words. */
export const REGEX_QWEN35 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** o200k (GPT-4o, gpt-oss): case-aware words, digits in threes. */
export const REGEX_GPT4O =
  "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** What a `tokenizer.ggml.pre` value means: its regexes and the vocabulary flags it sets. */
export interface PreTokenizerInfo {
  /** llama.cpp's pre-tokenizer type, e.g. `"qwen2"`, `"llama3"`, `"gpt2"`. */
  readonly type: string;
  /** Regexes applied in turn. */
  readonly regexes: readonly string[];
  /** A word that is itself a token is not merged (llama.cpp `ignore_merges`). */
  readonly ignoreMerges: boolean;
  /** Decoding applies llama.cpp's `clean_up_tokenization_spaces` passes. */
  readonly cleanSpaces: boolean;
  /** Default of `add_bos` before `tokenizer.ggml.add_bos_token` overrides it. */
  readonly addBos: boolean;
  /** The type clears the default BOS id (chatglm). */
  readonly noBos?: boolean;
}

interface TypeDef {
  regexes: readonly string[];
  ignoreMerges?: boolean;
  addBos?: boolean;
  noBos?: boolean;
}

const TYPES: Record<string, TypeDef> = {
  default: {
    regexes: [
      "[\\p{P}\\$\\+<=>\\^~\\|]+",
      REGEX_GPT2,
      "\\p{N}+",
      "[0-9][0-9][0-9]",
    ],
  },
  llama3: { regexes: [REGEX_LLAMA3], ignoreMerges: true, addBos: true },
  dbrx: { regexes: [REGEX_LLAMA3] },
  "deepseek-llm": {
    regexes: [
      "[\r\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
      "\\s+$",
      "[一-龥ࠀ-一가-퟿]+",
      "\\p{N}+",
    ],
  },
  "deepseek3-llm": {
    regexes: [
      "\\p{N}{1,3}",
      "[一-龥぀-ゟ゠-ヿ]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    ],
  },
  "deepseek-coder": {
    regexes: [
      "[\r\n]",
      "\\s?\\p{L}+",
      "\\s?\\p{P}+",
      "[一-龥ࠀ-一가-퟿]+",
      "\\p{N}",
    ],
  },
  falcon: {
    regexes: [
      "[\\p{P}\\$\\+<=>\\^~\\|`]+",
      REGEX_GPT2,
      "[0-9][0-9][0-9]",
    ],
  },
  starcoder: { regexes: ["\\p{N}", REGEX_GPT2] },
  gpt2: { regexes: [REGEX_GPT2] },
  qwen2: { regexes: [REGEX_QWEN2] },
  qwen35: { regexes: [REGEX_QWEN35] },
  poro: { regexes: [" ?[^(\\s|.,!?…。，、।۔،)]+"] },
  chatglm4: { regexes: [REGEX_LLAMA3], noBos: true },
  viking: { regexes: [" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"] },
  tekken: {
    regexes: [
      "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ],
    ignoreMerges: true,
    addBos: true,
  },
  chameleon: {
    regexes: [
      "<sentinel:[0-9]+>",
      "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
      "([\\t\\n]|    |  )",
      "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]",
      REGEX_GPT2,
    ],
    addBos: true,
  },
  gpt4o: { regexes: [REGEX_GPT4O] },
  "tiny-aya": {
    regexes: [
      "\\d{1,3}(?=(?:\\d{3})*\\b)",
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ],
  },
  bailingmoe: {
    regexes: [
      "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    ],
  },
  "seed-coder": {
    regexes: [
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ],
  },
  ufakzeka: {
    regexes: [
      "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ],
  },
  minicpm5: {
    regexes: [
      "\\p{N}{1,3}",
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ],
    ignoreMerges: true,
  },
};

/** `tokenizer.ggml.pre` value -> [type, clean spaces]. From llama.cpp's `llama_vocab::impl::load`. */
const PRE_NAMES: Record<string, [string, boolean]> = {
  default: ["default", true],
  llama3: ["llama3", true],
  "llama-v3": ["llama3", true],
  "llama-bpe": ["llama3", true],
  falcon3: ["llama3", true],
  "falcon-h1": ["llama3", true],
  pixtral: ["llama3", true],
  "midm-2.0": ["llama3", true],
  lfm2: ["llama3", true],
  "jina-v5-nano": ["llama3", true],
  "deepseek-llm": ["deepseek-llm", false],
  "deepseek-coder": ["deepseek-coder", false],
  "deepseek-v3": ["deepseek3-llm", false],
  "hunyuan-dense": ["deepseek3-llm", false],
  "joyai-llm": ["deepseek3-llm", false],
  hy_v4: ["deepseek3-llm", false],
  falcon: ["falcon", true],
  mpt: ["gpt2", true],
  starcoder: ["starcoder", true],
  refact: ["starcoder", true],
  "command-r": ["starcoder", false],
  smollm: ["starcoder", false],
  codeshell: ["starcoder", true],
  exaone: ["starcoder", true],
  "minerva-7b": ["starcoder", true],
  mellum2: ["starcoder", true],
  "gpt-2": ["gpt2", true],
  "phi-2": ["gpt2", true],
  "jina-es": ["gpt2", true],
  "jina-de": ["gpt2", true],
  gigachat: ["gpt2", true],
  "jina-v2-es": ["gpt2", true],
  "jina-v2-de": ["gpt2", true],
  "a.x-4.0": ["gpt2", true],
  mellum: ["gpt2", true],
  "modern-bert": ["gpt2", true],
  "jina-v1-en": ["gpt2", true],
  "jina-v2-code": ["gpt2", true],
  "roberta-bpe": ["gpt2", true],
  exaone4: ["gpt2", true],
  olmo: ["gpt2", true],
  jais: ["gpt2", true],
  trillion: ["gpt2", false],
  "granite-docling": ["gpt2", false],
  qwen2: ["qwen2", false],
  "deepseek-r1-qwen": ["qwen2", false],
  kormo: ["qwen2", false],
  f2llmv2: ["qwen2", false],
  stablelm2: ["qwen2", true],
  megrez: ["qwen2", true],
  hunyuan: ["qwen2", false],
  "solar-open": ["qwen2", false],
  qwen35: ["qwen35", false],
  dbrx: ["dbrx", true],
  "smaug-bpe": ["dbrx", true],
  "poro-chat": ["poro", false],
  bloom: ["poro", true],
  "gpt3-finnish": ["poro", true],
  glm4: ["chatglm4", true],
  "chatglm-bpe": ["chatglm4", true],
  viking: ["viking", false],
  tekken: ["tekken", false],
  chameleon: ["chameleon", false],
  "gpt-4o": ["gpt4o", false],
  llama4: ["gpt4o", false],
  kanana2: ["gpt4o", false],
  talkie: ["gpt4o", false],
  "minimax-m2": ["gpt4o", false],
  tiny_aya: ["tiny-aya", false],
  cohere2moe: ["tiny-aya", false],
  bailingmoe: ["bailingmoe", false],
  bailingmoe2: ["bailingmoe", false],
  "llada-moe": ["bailingmoe", false],
  "seed-coder": ["seed-coder", false],
  ufakzeka: ["ufakzeka", false],
  "grok-2": ["qwen2", false],
  minicpm5: ["minicpm5", true],
};

/** Every `tokenizer.ggml.pre` value this runtime understands. */
export const SUPPORTED_PRE: readonly string[] = Object.keys(PRE_NAMES);

/**
 * What the `tokenizer.ggml.pre` value `pre` means (undefined or empty: llama.cpp's "default").
 * @throws TokenizerError `unsupported_pre` for a value this runtime does not know
 */
export function resolvePreTokenizer(pre: string | undefined, path?: string): PreTokenizerInfo {
  const name = pre === undefined || pre === "" ? "default" : pre;
  const entry = PRE_NAMES[name];
  if (entry === undefined) {
    throw new TokenizerError("unsupported_pre", {
      key: "tokenizer.ggml.pre",
      path,
      detail: `pre-tokenizer "${name}" is not implemented; known: ${SUPPORTED_PRE.join(", ")}`,
    });
  }
  const [type, cleanSpaces] = entry;
  const def = TYPES[type];
  return {
    type,
    regexes: def.regexes,
    ignoreMerges: def.ignoreMerges ?? false,
    cleanSpaces,
    addBos: def.addBos ?? false,
    noBos: def.noBos,
  };
}

// ---------------------------------------------------------------------------------------------
// Compiled splitters

type Splitter =
  | { kind: "gpt2" }
  | { kind: "llama3" }
  | { kind: "collapsed"; re: RegExp }
  | { kind: "plain"; re: RegExp };

const UCAT: Record<string, number> = {
  "\\p{N}": CpFlag.NUMBER,
  "\\p{L}": CpFlag.LETTER,
  "\\p{P}": CpFlag.PUNCTUATION,
  "\\p{M}": CpFlag.MARK,
  "\\p{S}": CpFlag.SYMBOL,
  "\\p{Lu}": CpFlag.LETTER,
  "\\p{Ll}": CpFlag.LETTER,
  "\\p{Lt}": CpFlag.LETTER,
  "\\p{Lm}": CpFlag.LETTER,
  "\\p{Lo}": CpFlag.LETTER,
};
const UCAT_CHAR: Record<number, string> = {
  [CpFlag.NUMBER]: "\xD1",
  [CpFlag.LETTER]: "\xD2",
  [CpFlag.PUNCTUATION]: "\xD3",
  [CpFlag.MARK]: "\xD4",
  [CpFlag.SYMBOL]: "\xD5",
};
const UCAT_ASCII: Record<number, string> = {
  [CpFlag.NUMBER]: "0-9",
  [CpFlag.LETTER]: "A-Za-z",
  [CpFlag.PUNCTUATION]: "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}",
  [CpFlag.MARK]: "",
  [CpFlag.SYMBOL]: "\\$\\+<->^`\\|",
};

function usesCategories(src: string): boolean {
  for (const k in UCAT) if (src.includes(k)) return true;
  return false;
}

/** llama.cpp's rewrite of a `\p{..}` regex for the collapsed text. */
function collapseRegex(src: string): string {
  let out = "";
  let inside = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === "[" && (i === 0 || src[i - 1] !== "\\")) {
      out += "[";
      inside = true;
      continue;
    }
    if (inside && c === "]" && src[i - 1] !== "\\") {
      out += "]";
      inside = false;
      continue;
    }
    if (c === "\\" && i + 3 < src.length && src[i + 1] === "p" && src[i + 2] === "{") {
      const close = src.indexOf("}", i + 3);
      if (close !== -1 && close <= i + 10) {
        const cat = UCAT[src.slice(i, close + 1)];
        if (cat !== undefined) {
          out += (inside ? "" : "[") + UCAT_CHAR[cat] + UCAT_ASCII[cat] + (inside ? "" : "]");
          i = close;
          continue;
        }
      }
    }
    out += c;
  }
  return out;
}

const ASCII_WS = "\\t\\n\\v\\f\\r ";

/** `\s`/`\S` as std::wregex sees them in the C locale: ASCII whitespace only. */
function asciiWhitespace(src: string): string {
  let out = "";
  let inside = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === "\\" && i + 1 < src.length) {
      const d = src[i + 1];
      if (d === "s") out += inside ? ASCII_WS : `[${ASCII_WS}]`;
      else if (d === "S" && !inside) out += `[^${ASCII_WS}]`;
      else out += c + d;
      i++;
      continue;
    }
    if (c === "[") inside = true;
    else if (c === "]") inside = false;
    out += c;
  }
  return out;
}

const splitterCache = new Map<string, Splitter>();

function compile(src: string): Splitter {
  let s = splitterCache.get(src);
  if (s) return s;
  if (src === REGEX_GPT2) s = { kind: "gpt2" };
  else if (src === REGEX_LLAMA3 || src === REGEX_LLAMA3_I) s = { kind: "llama3" };
  else if (usesCategories(src)) s = { kind: "collapsed", re: new RegExp(collapseRegex(src), "g") };
  else s = { kind: "plain", re: new RegExp(asciiWhitespace(src), "gu") };
  splitterCache.set(src, s);
  return s;
}

/** A compiled pre-tokenizer: call {@link PreTokenizer.split}. */
export class PreTokenizer {
  /** Regex sources, in order. */
  readonly regexes: readonly string[];
  readonly #splitters: Splitter[];

  /**
   * Compile a pre-tokenizer.
   * @param regexes regex sources as llama.cpp writes them
   */
  constructor(regexes: readonly string[]) {
    this.regexes = regexes;
    this.#splitters = regexes.map(compile);
  }

  /** Split `text` into pieces (each is then BPE-encoded on its own). */
  split(text: string): string[] {
    const { cps, u16 } = codePoints(text);
    const n = cps.length;
    if (n === 0) return [];
    let offsets: number[] = [n];
    let collapsed: string | undefined;
    let plain: string | undefined;
    let cpAt16: Uint32Array | undefined;
    for (const sp of this.#splitters) {
      const next: number[] = [];
      let start = 0;
      for (const len of offsets) {
        const end = start + len;
        switch (sp.kind) {
          case "gpt2":
            splitGpt2(cps, start, end, next);
            break;
          case "llama3":
            splitLlama3(cps, start, end, next);
            break;
          case "collapsed":
            collapsed ??= collapseText(cps);
            splitRegex(sp.re, collapsed.slice(start, end), next, undefined, 0);
            break;
          case "plain": {
            plain ??= plainText(text, cps, u16);
            if (!cpAt16) {
              cpAt16 = new Uint32Array(text.length + 1);
              for (let i = 0; i <= n; i++) cpAt16[u16[i]] = i;
            }
            splitRegex(sp.re, plain.slice(u16[start], u16[end]), next, cpAt16, u16[start]);
            break;
          }
        }
        start = end;
      }
      offsets = next;
    }
    const words: string[] = new Array(offsets.length);
    let start = 0;
    for (let i = 0; i < offsets.length; i++) {
      const end = start + offsets[i];
      words[i] = text.slice(u16[start], u16[end]);
      start = end;
    }
    return words;
  }
}

/** Split by a regex: matches and the gaps between them, as lengths in code points. */
function splitRegex(
  re: RegExp,
  s: string,
  out: number[],
  cpAt16: Uint32Array | undefined,
  base16: number,
): void {
  // With cpAt16, `s` is UTF-16 and positions convert to code points; else 1 unit = 1 code point.
  const pos = cpAt16 ? (i: number) => cpAt16[base16 + i] : (i: number) => i;
  re.lastIndex = 0;
  let last = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const a = m.index;
    const b = a + m[0].length;
    if (b === a) {
      re.lastIndex = a + 1;
      continue;
    }
    if (a > last) out.push(pos(a) - pos(last));
    out.push(pos(b) - pos(a));
    last = b;
  }
  if (last < s.length) out.push(pos(s.length) - pos(last));
}

function collapseText(cps: Uint32Array): string {
  const chars: string[] = new Array(cps.length);
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i];
    if (c < 128) {
      chars[i] = String.fromCharCode(c);
      continue;
    }
    const f = cpFlags(c);
    if (f & CpFlag.WHITESPACE) chars[i] = "\v";
    else chars[i] = UCAT_CHAR[f & CpFlag.CATEGORIES] ?? "\xD0";
  }
  return chars.join("");
}

function plainText(text: string, cps: Uint32Array, u16: Uint32Array): string {
  let out = "";
  let from = 0;
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i];
    if ((c > 0x7f && (cpFlags(c) & CpFlag.WHITESPACE)) || c === 0xfffd) {
      const a = u16[i];
      out += text.slice(from, a) + (c === 0xfffd ? "\uFFFD" : "\v");
      from = u16[i + 1];
    }
  }
  return from === 0 ? text : out + text.slice(from);
}

const OOR = 0xffffffff;
const WS = CpFlag.WHITESPACE;
const LET = CpFlag.LETTER;
const NUM = CpFlag.NUMBER;

/** llama.cpp's `unicode_regex_split_custom_gpt2`, on code points `[start, end)`. */
function splitGpt2(cps: Uint32Array, start: number, end: number, out: number[]): void {
  const cpt = (p: number) => (p >= start && p < end ? cps[p] : OOR);
  const fl = (p: number) => (p >= start && p < end ? cpFlags(cps[p]) : 0);
  let prevEnd = start;
  const add = (e: number): number => {
    const len = e - prevEnd;
    if (len > 0) out.push(len);
    prevEnd = e;
    return len;
  };
  for (let pos = start; pos < end;) {
    const c = cpt(pos);
    const f = fl(pos);
    if (c === 0x27 && pos + 1 < end) {
      const n1 = cpt(pos + 1);
      if (n1 === 0x73 || n1 === 0x74 || n1 === 0x6d || n1 === 0x64) {
        pos += add(pos + 2);
        continue;
      }
      if (pos + 2 < end) {
        const n2 = cpt(pos + 2);
        if (
          (n1 === 0x72 && n2 === 0x65) || (n1 === 0x76 && n2 === 0x65) ||
          (n1 === 0x6c && n2 === 0x6c)
        ) {
          pos += add(pos + 3);
          continue;
        }
      }
    }
    let f2 = c === 0x20 ? fl(pos + 1) : f;
    if (f2 & LET) {
      if (c === 0x20) pos++;
      while (f2 & LET) f2 = fl(++pos);
      add(pos);
      continue;
    }
    if (f2 & NUM) {
      if (c === 0x20) pos++;
      while (f2 & NUM) f2 = fl(++pos);
      add(pos);
      continue;
    }
    if (!(f2 & (WS | LET | NUM)) && f2) {
      if (c === 0x20) pos++;
      while (!(f2 & (WS | LET | NUM)) && f2) f2 = fl(++pos);
      add(pos);
      continue;
    }
    let nws = 0;
    while (fl(pos + nws) & WS) nws++;
    if (nws > 1 && cpt(pos + nws) !== OOR) {
      pos += nws - 1;
      add(pos);
      continue;
    }
    if (nws > 0) {
      pos += nws;
      add(pos);
      continue;
    }
    add(++pos);
  }
}

/** llama.cpp's `unicode_regex_split_custom_llama3`, on code points `[start, end)`. */
function splitLlama3(cps: Uint32Array, start: number, end: number, out: number[]): void {
  const cpt = (p: number) => (p >= start && p < end ? cps[p] : OOR);
  const fl = (p: number) => (p >= start && p < end ? cpFlags(cps[p]) : 0);
  let prevEnd = start;
  const add = (e: number): number => {
    const len = e - prevEnd;
    if (len > 0) out.push(len);
    prevEnd = e;
    return len;
  };
  for (let pos = start; pos < end;) {
    const c = cpt(pos);
    const f = fl(pos);
    if (c === 0x27 && pos + 1 < end) {
      const n1 = cpToLower(cpt(pos + 1));
      if (n1 === 0x73 || n1 === 0x74 || n1 === 0x6d || n1 === 0x64) {
        pos += add(pos + 2);
        continue;
      }
      if (pos + 2 < end) {
        const n2 = cpToLower(cpt(pos + 2));
        if (
          (n1 === 0x72 && n2 === 0x65) || (n1 === 0x76 && n2 === 0x65) ||
          (n1 === 0x6c && n2 === 0x6c)
        ) {
          pos += add(pos + 3);
          continue;
        }
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!(c === 0x0d || c === 0x0a || (f & NUM))) {
      if ((f & LET) || (fl(pos + 1) & LET)) {
        pos++;
        while (fl(pos) & LET) pos++;
        add(pos);
        continue;
      }
    }
    // \p{N}{1,3}
    if (f & NUM) {
      let ini = pos;
      while (fl(pos) & NUM) {
        if (++pos - ini >= 3) {
          add(pos);
          ini = pos;
        }
      }
      add(pos);
      continue;
    }
    // <space>?[^\s\p{L}\p{N}]+[\r\n]*
    let f2 = c === 0x20 ? fl(pos + 1) : f;
    if (!(f2 & (WS | LET | NUM)) && f) {
      if (c === 0x20) pos++;
      while (!(f2 & (WS | LET | NUM)) && f2) f2 = fl(++pos);
      let c2 = cpt(pos);
      while (c2 === 0x0d || c2 === 0x0a) c2 = cpt(++pos);
      add(pos);
      continue;
    }
    let nws = 0;
    let lastRN = 0;
    while (fl(pos + nws) & WS) {
      const c2 = cpt(pos + nws);
      if (c2 === 0x0d || c2 === 0x0a) lastRN = pos + nws + 1;
      nws++;
    }
    // \s*[\r\n]+
    if (lastRN > 0) {
      pos = lastRN;
      add(pos);
      continue;
    }
    // \s+(?!\S)
    if (nws > 1 && cpt(pos + nws) !== OOR) {
      pos += nws - 1;
      add(pos);
      continue;
    }
    if (nws > 0) {
      pos += nws;
      add(pos);
      continue;
    }
    add(++pos);
  }
}
