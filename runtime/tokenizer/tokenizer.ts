/**
 * Tokenizers built from GGUF metadata, with llama.cpp's behaviour: byte-level BPE
 * (`tokenizer.ggml.model` = "gpt2") and SentencePiece (`"llama"`), special-token handling,
 * token attributes, BOS/EOS rules and detokenization.
 *
 * ```ts
 * const tok = tokenizerFromGGUF(readGGUF("model.gguf"));
 * const ids = tok.encode("Hello world", { addSpecial: true });
 * const text = tok.decode(ids);
 * ```
 *
 * What follows llama.cpp (src/llama-vocab.cpp), on purpose, so that ids match it exactly:
 * - `encode` splits the text on special tokens first (longest first; user-defined tokens
 *   always, control and unknown ones only with `parseSpecial`), then tokenizes each fragment.
 * - Token attributes start from `tokenizer.ggml.token_type` and are then adjusted by token
 *   text as llama.cpp does (end-of-turn and FIM tokens become control tokens, gpt-oss's
 *   `<|channel|>`-style tokens user-defined, Phi-3's special tokens strip spaces on the right).
 * - SPM prefixes a space to a fragment that starts the text or follows a special token
 *   (`tokenizer.ggml.add_space_prefix`, default true) and escapes spaces as "▁".
 *
 * @module
 */

import {
  getOptionalArray,
  getOptionalBool,
  getOptionalNumber,
  getOptionalString,
  type GGUFFile,
  readGGUF,
} from "../gguf/reader.ts";
import type { GGUFArray } from "../gguf/types.ts";
import { BpeModel } from "./bpe.ts";
import {
  type DecodeOptions,
  detokenize,
  detokenizeBytes,
  type PieceSource,
  type StreamDecoderOptions,
  TextStreamDecoder,
} from "./detokenize.ts";
import { TokenizerError } from "./errors.ts";
import { PreTokenizer, resolvePreTokenizer } from "./pretokenize.ts";
import { SpmModel } from "./spm.ts";
import { ByteBuffer, CP_TO_BYTE, utf8Encode } from "./unicode.ts";

/** `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`). */
export const TokenType = {
  /** Not set. */
  UNDEFINED: 0,
  /** An ordinary token. */
  NORMAL: 1,
  /** The unknown token. */
  UNKNOWN: 2,
  /** A control token (BOS, EOS, chat markers): not rendered unless asked. */
  CONTROL: 3,
  /** A user-defined token: always split out of the text and always rendered. */
  USER_DEFINED: 4,
  /** Unused. */
  UNUSED: 5,
  /** A byte-fallback token `<0xXX>`. */
  BYTE: 6,
} as const;

/** Token attribute bits (llama.cpp `llama_token_attr`). */
export const TokenAttr = {
  /** No attribute. */
  UNDEFINED: 0,
  /** The unknown token. */
  UNKNOWN: 1 << 0,
  /** Unused. */
  UNUSED: 1 << 1,
  /** An ordinary token. */
  NORMAL: 1 << 2,
  /** A control token. */
  CONTROL: 1 << 3,
  /** A user-defined token. */
  USER_DEFINED: 1 << 4,
  /** A byte token. */
  BYTE: 1 << 5,
  /** Normalized. */
  NORMALIZED: 1 << 6,
  /** Spaces before the token are removed when it is split out of text. */
  LSTRIP: 1 << 7,
  /** Spaces after the token are removed when it is split out of text. */
  RSTRIP: 1 << 8,
  /** Single word. */
  SINGLE_WORD: 1 << 9,
} as const;

/** The tokenizer families implemented. */
export type TokenizerModel = "gpt2" | "llama";

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add BOS/EOS as the vocabulary asks (`tokenizer.ggml.add_bos_token`...). Default false. */
  addSpecial?: boolean;
  /**
   * Turn the text of control tokens (e.g. `<|im_start|>`) into those tokens. Default false,
   * as llama.cpp's tokenizer tests; user-defined tokens are split out either way.
   */
  parseSpecial?: boolean;
}

/** Special token ids of a vocabulary (undefined when absent). */
export interface SpecialTokens {
  /** Beginning of sequence. */
  bos: number | undefined;
  /** End of sequence. */
  eos: number | undefined;
  /** End of turn. */
  eot: number | undefined;
  /** End of message. */
  eom: number | undefined;
  /** Unknown. */
  unk: number | undefined;
  /** Separator. */
  sep: number | undefined;
  /** Padding. */
  pad: number | undefined;
  /** Mask. */
  mask: number | undefined;
  /** Fill-in-the-middle prefix. */
  fimPre: number | undefined;
  /** Fill-in-the-middle suffix. */
  fimSuf: number | undefined;
  /** Fill-in-the-middle middle. */
  fimMid: number | undefined;
  /** Fill-in-the-middle pad. */
  fimPad: number | undefined;
  /** Fill-in-the-middle repository. */
  fimRep: number | undefined;
  /** Fill-in-the-middle file separator. */
  fimSep: number | undefined;
}

type SpecialName = keyof SpecialTokens;

const SPECIAL_KEYS: [string, SpecialName][] = [
  ["tokenizer.ggml.bos_token_id", "bos"],
  ["tokenizer.ggml.eos_token_id", "eos"],
  ["tokenizer.ggml.eot_token_id", "eot"],
  ["tokenizer.ggml.eom_token_id", "eom"],
  ["tokenizer.ggml.unknown_token_id", "unk"],
  ["tokenizer.ggml.seperator_token_id", "sep"],
  ["tokenizer.ggml.padding_token_id", "pad"],
  ["tokenizer.ggml.mask_token_id", "mask"],
  ["tokenizer.ggml.fim_pre_token_id", "fimPre"],
  ["tokenizer.ggml.fim_suf_token_id", "fimSuf"],
  ["tokenizer.ggml.fim_mid_token_id", "fimMid"],
  ["tokenizer.ggml.fim_pad_token_id", "fimPad"],
  ["tokenizer.ggml.fim_rep_token_id", "fimRep"],
  ["tokenizer.ggml.fim_sep_token_id", "fimSep"],
  ["tokenizer.ggml.prefix_token_id", "fimPre"],
  ["tokenizer.ggml.suffix_token_id", "fimSuf"],
  ["tokenizer.ggml.middle_token_id", "fimMid"],
];

/** Token texts llama.cpp promotes to control tokens when the id is not given in the file. */
const AUTO_SPECIAL: [SpecialName, readonly string[]][] = [
  ["eot", [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
  ]],
  ["eom", ["<|eom_id|>"]],
  ["fimPre", [
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
  ]],
  ["fimSuf", [
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
  ]],
  ["fimMid", [
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
  ]],
  ["fimPad", ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]],
  ["fimRep", ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]],
  ["fimSep", ["<|file_sep|>"]],
];

/** Token texts that end generation (llama.cpp's list). */
const EOG_TEXTS = new Set([
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<|return|>",
  "<|call|>",
  "<|flush|>",
  "<|calls|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "</s>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "[EOT]",
  "[EOS]",
  "<|end_of_text|>",
  "<end_of_utterance>",
  "<eos>",
  "<turn|>",
  "<|tool_response>",
  "<｜end▁of▁sentence｜>",
  "[e~[",
]);

const TYPE_TO_ATTR: Record<number, number> = {
  [TokenType.UNKNOWN]: TokenAttr.UNKNOWN,
  [TokenType.UNUSED]: TokenAttr.UNUSED,
  [TokenType.NORMAL]: TokenAttr.NORMAL,
  [TokenType.CONTROL]: TokenAttr.CONTROL,
  [TokenType.USER_DEFINED]: TokenAttr.USER_DEFINED,
  [TokenType.BYTE]: TokenAttr.BYTE,
};

const SPECIAL_ATTRS = TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN;
const HIDDEN_ATTRS = TokenAttr.CONTROL | TokenAttr.UNKNOWN;
const EMPTY = new Uint8Array(0);
const SPM_SPACE = "\u2581";

/** A character trie over special-token texts, to find which ones occur in a text. */
interface TrieNode {
  next: Map<number, TrieNode>;
  id: number;
}

/**
 * A tokenizer for one vocabulary. Immutable after construction except for internal caches, so
 * one instance can be shared by every session of a model (not across Workers).
 */
export class Tokenizer implements PieceSource {
  /** `tokenizer.ggml.model`: "gpt2" (byte-level BPE) or "llama" (SentencePiece). */
  readonly model: TokenizerModel;
  /** Resolved pre-tokenizer type for BPE ("qwen2", "llama3", ...), "spm" for SentencePiece. */
  readonly preType: string;
  /** Number of tokens. */
  readonly nVocab: number;
  /** Special token ids. */
  readonly special: Readonly<SpecialTokens>;
  /** Whether `encode(..., {addSpecial: true})` prepends BOS. */
  readonly addBos: boolean;
  /** Whether `encode(..., {addSpecial: true})` appends EOS. */
  readonly addEos: boolean;
  /** SPM: a space is prefixed to text fragments (and stripped again when decoding). */
  readonly addSpacePrefix: boolean;
  /** Decoding applies llama.cpp's clean-up of spaces before punctuation. */
  readonly cleanSpaces: boolean;
  /** Ids that end generation (EOS, EOT, EOM, `<|im_end|>`, ...). */
  readonly eogIds: ReadonlySet<number>;
  /** File path, when known. */
  readonly path: string | undefined;

  readonly #texts: readonly string[];
  readonly #attrs: Uint16Array;
  readonly #scores: Float32Array;
  readonly #tokenToId: Map<string, number>;
  readonly #bpe: BpeModel | undefined;
  readonly #spm: SpmModel | undefined;
  readonly #specialIds: readonly number[];
  #pieces: (Uint8Array | undefined)[];
  #tries: [TrieNode | undefined, TrieNode | undefined] = [undefined, undefined];

  /** Build from parsed GGUF metadata; see {@link tokenizerFromGGUF}. */
  constructor(gguf: GGUFFile) {
    const path = gguf.path;
    this.path = path;
    const model = str(gguf, "tokenizer.ggml.model");
    if (model === undefined) {
      throw new TokenizerError("missing_key", {
        key: "tokenizer.ggml.model",
        path,
        detail: "the file has no tokenizer",
      });
    }
    if (model !== "gpt2" && model !== "llama") {
      throw new TokenizerError("unsupported_model", {
        key: "tokenizer.ggml.model",
        path,
        detail: `model "${model}"; supported: gpt2 (byte-level BPE), llama (SentencePiece)`,
      });
    }
    this.model = model;
    const tokens = stringArray(gguf, "tokenizer.ggml.tokens");
    if (tokens === undefined) {
      throw new TokenizerError("missing_key", { key: "tokenizer.ggml.tokens", path });
    }
    const n = tokens.length;
    this.nVocab = n;

    // token texts, scores, attributes
    const texts: string[] = new Array(n);
    const tokenToId = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const t = tokens[i] === "" ? `[EMPTY_${i}]` : tokens[i];
      texts[i] = t;
      tokenToId.set(t, i);
    }
    this.#texts = texts;
    this.#tokenToId = tokenToId;
    const scores = new Float32Array(n);
    const sc = numericArray(gguf, "tokenizer.ggml.scores", n);
    if (sc) { for (let i = 0; i < n; i++) scores[i] = Number(sc[i]); }
    this.#scores = scores;
    const attrs = new Uint16Array(n).fill(TokenAttr.NORMAL);
    const tt = numericArray(gguf, "tokenizer.ggml.token_type", n);
    if (tt) { for (let i = 0; i < n; i++) attrs[i] = TYPE_TO_ATTR[Number(tt[i])] ?? 0; }
    this.#attrs = attrs;

    // vocabulary flags, as llama.cpp's load()
    let addBos: boolean;
    let addEos = false;
    let addSpacePrefix: boolean;
    let cleanSpaces: boolean;
    const special: SpecialTokens = {
      bos: undefined,
      eos: undefined,
      eot: undefined,
      eom: undefined,
      unk: undefined,
      sep: undefined,
      pad: undefined,
      mask: undefined,
      fimPre: undefined,
      fimSuf: undefined,
      fimMid: undefined,
      fimPad: undefined,
      fimRep: undefined,
      fimSep: undefined,
    };
    let pre: ReturnType<typeof resolvePreTokenizer> | undefined;
    if (model === "llama") {
      this.preType = "spm";
      special.bos = 1;
      special.eos = 2;
      special.unk = 0;
      addSpacePrefix = true;
      cleanSpaces = false;
      addBos = true;
    } else {
      pre = resolvePreTokenizer(str(gguf, "tokenizer.ggml.pre"), path);
      this.preType = pre.type;
      special.bos = pre.noBos ? undefined : 11;
      special.eos = 11;
      addSpacePrefix = false;
      cleanSpaces = pre.cleanSpaces;
      addBos = pre.addBos;
    }
    addSpacePrefix = bool(gguf, "tokenizer.ggml.add_space_prefix") ?? addSpacePrefix;
    for (const k of Object.keys(special) as SpecialName[]) {
      const v = special[k];
      if (v !== undefined && v >= n) special[k] = undefined;
    }
    for (const [key, name] of SPECIAL_KEYS) {
      const v = num(gguf, key);
      if (v !== undefined && Number.isInteger(v) && v >= 0 && v < n) special[name] = v;
    }
    addBos = bool(gguf, "tokenizer.ggml.add_bos_token") ?? addBos;
    addEos = bool(gguf, "tokenizer.ggml.add_eos_token") ?? addEos;
    if (addBos && special.bos === undefined) {
      throw new TokenizerError("bad_value", {
        key: "tokenizer.ggml.add_bos_token",
        path,
        detail: "add_bos_token is true but there is no BOS token",
      });
    }
    if (addEos && special.eos === undefined) {
      throw new TokenizerError("bad_value", {
        key: "tokenizer.ggml.add_eos_token",
        path,
        detail: "add_eos_token is true but there is no EOS token",
      });
    }

    // attribute fix-ups by token text. When several candidates exist, llama.cpp takes the first
    // in hash order; here the first in its list (so "<|eot_id|>" wins over "<|end_of_text|>").
    for (const [name, candidates] of AUTO_SPECIAL) {
      if (special[name] !== undefined) continue;
      for (const c of candidates) {
        const i = tokenToId.get(c);
        if (i !== undefined) {
          special[name] = i;
          attrs[i] |= TokenAttr.CONTROL;
          break;
        }
      }
    }
    for (let i = 0; i < n; i++) {
      if ((attrs[i] & TokenAttr.CONTROL) && texts[i].includes("unused")) {
        attrs[i] |= TokenAttr.UNUSED;
      }
    }
    const eog = new Set<number>();
    for (const k of ["fimPad", "fimRep", "fimSep"] as const) {
      if (special[k] !== undefined) eog.add(special[k]!);
    }
    for (let i = 0; i < n; i++) {
      if (EOG_TEXTS.has(texts[i])) {
        eog.add(i);
        attrs[i] |= TokenAttr.CONTROL;
      }
    }
    for (const t of ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]) {
      const id = tokenToId.get(t);
      if (id !== undefined) attrs[id] = TokenAttr.USER_DEFINED;
    }
    for (const k of ["eos", "eot", "eom"] as const) {
      if (special[k] !== undefined) eog.add(special[k]!);
    }
    {
      let hasReturn = false, hasCall = false, hasFlush = false, endId = -1;
      for (const id of eog) {
        const t = texts[id];
        if (t === "<|return|>") hasReturn = true;
        else if (t === "<|call|>" || t === "<|calls|>") hasCall = true;
        else if (t === "<|flush|>") hasFlush = true;
        else if (t === "<|end|>") endId = id;
      }
      if (endId >= 0 && ((hasReturn && hasCall) || (hasCall && hasFlush))) {
        eog.delete(endId);
        attrs[endId] = TokenAttr.USER_DEFINED;
      }
      let hasToolResponse = false, sId = -1;
      for (const id of eog) {
        if (texts[id] === "<|tool_response>") hasToolResponse = true;
        else if (texts[id] === "</s>") sId = id;
      }
      if (hasToolResponse && sId >= 0) {
        eog.delete(sId);
        attrs[sId] = TokenAttr.NORMAL;
      }
    }
    this.eogIds = eog;

    // special tokens, longest text first
    const specialIds: number[] = [];
    for (let i = 0; i < n; i++) if (attrs[i] & SPECIAL_ATTRS) specialIds.push(i);
    specialIds.sort((a, b) => texts[b].length - texts[a].length || a - b);
    this.#specialIds = specialIds;

    // per-model attributes (after the piece cache in llama.cpp, so pieces are unaffected)
    const modelName = (str(gguf, "general.name") ?? "").toLowerCase();
    if (modelName.includes("phi-3") || modelName.includes("phi3")) {
      for (const id of specialIds) attrs[id] |= TokenAttr.RSTRIP;
      const set = (t: string, on: boolean) => {
        const id = tokenToId.get(t);
        if (id === undefined) return;
        attrs[id] = on ? attrs[id] | TokenAttr.RSTRIP : attrs[id] & ~TokenAttr.RSTRIP;
      };
      set("</s>", true);
      for (const t of ["<unk>", "<s>", "<|endoftext|>"]) set(t, false);
    }

    this.special = special;
    this.addBos = addBos;
    this.addEos = addEos;
    this.addSpacePrefix = addSpacePrefix;
    this.cleanSpaces = cleanSpaces;
    this.#pieces = new Array(n);

    if (model === "gpt2") {
      const merges = stringArray(gguf, "tokenizer.ggml.merges");
      if (merges === undefined) {
        throw new TokenizerError("missing_key", {
          key: "tokenizer.ggml.merges",
          path,
          detail: "a gpt2 (BPE) tokenizer needs its merges",
        });
      }
      this.#bpe = new BpeModel(tokenToId, texts, merges, new PreTokenizer(pre!.regexes), {
        ignoreMerges: pre!.ignoreMerges,
        path,
      });
    } else {
      this.#spm = new SpmModel(tokenToId, scores, special.unk ?? -1);
    }
  }

  /** BOS id, if any. */
  get bosId(): number | undefined {
    return this.special.bos;
  }

  /** EOS id, if any. */
  get eosId(): number | undefined {
    return this.special.eos;
  }

  /**
   * Text to token ids.
   * @param text any string (lone surrogates are treated as U+FFFD)
   * @param options BOS/EOS and special-token parsing; both off by default
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const addSpecial = options.addSpecial ?? false;
    const parseSpecial = options.parseSpecial ?? false;
    const out: number[] = [];
    const fragments = text.length > 0 ? this.#partition(text, parseSpecial) : [];
    if (addSpecial && this.addBos && this.special.bos !== undefined) out.push(this.special.bos);
    if (this.#spm) {
      let prevSpecial = true;
      for (const f of fragments) {
        if (typeof f === "number") {
          out.push(f);
          prevSpecial = true;
          continue;
        }
        const t = (this.addSpacePrefix && prevSpecial ? " " : "") + f;
        this.#spm.encode(t.replaceAll(" ", SPM_SPACE), out);
        prevSpecial = false;
      }
    } else {
      for (const f of fragments) {
        if (typeof f === "number") out.push(f);
        else this.#bpe!.encode(f, out);
      }
    }
    if (addSpecial && this.addEos && this.special.eos !== undefined) out.push(this.special.eos);
    return out;
  }

  /**
   * Token ids to text, as llama.cpp's detokenize: control tokens are dropped unless
   * `special`, SPM drops the leading space of the first token, BPE vocabularies with
   * `cleanSpaces` remove spaces before punctuation. Invalid UTF-8 becomes U+FFFD.
   * @throws TokenizerError `bad_token` for an id outside the vocabulary
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    return detokenize(this, ids, options);
  }

  /** Like {@link decode}, but the raw bytes (which need not be valid UTF-8). */
  decodeBytes(ids: ArrayLike<number>, options: DecodeOptions = {}): Uint8Array {
    return detokenizeBytes(this, ids, options);
  }

  /** A streaming decoder over this vocabulary; see {@link TextStreamDecoder}. */
  streamDecoder(options: StreamDecoderOptions = {}): TextStreamDecoder {
    return new TextStreamDecoder(this, options);
  }

  /**
   * The bytes token `id` stands for (llama.cpp's `token_to_piece` without lstrip): empty for
   * control and unknown tokens unless `special`.
   * @throws TokenizerError `bad_token` for an id outside the vocabulary
   */
  tokenPiece(id: number, special = false): Uint8Array {
    if (!(id >= 0 && id < this.nVocab) || !Number.isInteger(id)) {
      throw new TokenizerError("bad_token", {
        id,
        path: this.path,
        detail: `vocabulary has ${this.nVocab} tokens`,
      });
    }
    if (!special && (this.#attrs[id] & HIDDEN_ATTRS)) return EMPTY;
    let p = this.#pieces[id];
    if (p === undefined) p = this.#pieces[id] = this.#makePiece(id);
    return p;
  }

  /** The vocabulary text of token `id` (e.g. "Ġhello", "▁world", "<0x0A>"). */
  tokenText(id: number): string {
    this.#check(id);
    return this.#texts[id];
  }

  /** The id of the token whose vocabulary text is exactly `text`, or undefined. */
  tokenId(text: string): number | undefined {
    return this.#tokenToId.get(text);
  }

  /** Attribute bits of token `id` ({@link TokenAttr}). */
  tokenAttr(id: number): number {
    this.#check(id);
    return this.#attrs[id];
  }

  /** Score of token `id` (`tokenizer.ggml.scores`, 0 when absent). */
  tokenScore(id: number): number {
    this.#check(id);
    return this.#scores[id];
  }

  /** Whether token `id` ends generation. */
  isEog(id: number): boolean {
    return this.eogIds.has(id);
  }

  /** Whether token `id` is a control token. */
  isControl(id: number): boolean {
    return id >= 0 && id < this.nVocab && (this.#attrs[id] & TokenAttr.CONTROL) !== 0;
  }

  /** Merge rank of a pair of BPE token strings, or -1 (-1 always for SPM). */
  mergeRank(left: string, right: string): number {
    return this.#bpe ? this.#bpe.rank(left, right) : -1;
  }

  #check(id: number): void {
    if (!(id >= 0 && id < this.nVocab) || !Number.isInteger(id)) {
      throw new TokenizerError("bad_token", {
        id,
        path: this.path,
        detail: `vocabulary has ${this.nVocab} tokens`,
      });
    }
  }

  #makePiece(id: number): Uint8Array {
    const attr = this.#attrs[id];
    const text = this.#texts[id];
    if (attr & SPECIAL_ATTRS) return utf8Encode(text);
    if (attr & TokenAttr.NORMAL) {
      if (this.#spm) return utf8Encode(text.replaceAll(SPM_SPACE, " "));
      // byte-level BPE: each character is one byte (GPT-2's table); a character outside the
      // table is kept as its own UTF-8 (llama.cpp writes an "[UNK_BYTE_..]" marker instead)
      const buf = new ByteBuffer(text.length);
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        const b = c < CP_TO_BYTE.length ? CP_TO_BYTE[c] : -1;
        if (b >= 0) buf.pushByte(b);
        else buf.pushString(text, i, i + 1);
      }
      return buf.bytes.slice(0, buf.length);
    }
    if (attr & TokenAttr.BYTE) return Uint8Array.of(parseInt(text.slice(3, 5), 16) & 0xff);
    return EMPTY;
  }

  #trie(parseSpecial: boolean): TrieNode {
    const k = parseSpecial ? 1 : 0;
    let root = this.#tries[k];
    if (root) return root;
    root = { next: new Map(), id: -1 };
    for (const id of this.#specialIds) {
      if (!parseSpecial && (this.#attrs[id] & HIDDEN_ATTRS)) continue;
      const t = this.#texts[id];
      let node = root;
      for (let i = 0; i < t.length; i++) {
        const c = t.charCodeAt(i);
        let nx = node.next.get(c);
        if (!nx) node.next.set(c, nx = { next: new Map(), id: -1 });
        node = nx;
      }
      node.id = id;
    }
    return this.#tries[k] = root;
  }

  /** Special tokens that occur in `text`, in llama.cpp's order (longest first). */
  #occurring(text: string, parseSpecial: boolean): number[] {
    const root = this.#trie(parseSpecial);
    if (root.next.size === 0) return [];
    const found = new Set<number>();
    for (let i = 0; i < text.length; i++) {
      let node = root.next.get(text.charCodeAt(i));
      for (let j = i + 1; node; j++) {
        if (node.id >= 0) found.add(node.id);
        if (j >= text.length) break;
        node = node.next.get(text.charCodeAt(j));
      }
    }
    if (found.size === 0) return [];
    return this.#specialIds.filter((id) => found.has(id));
  }

  /** llama.cpp's `tokenizer_st_partition`: raw-text fragments and special token ids. */
  #partition(text: string, parseSpecial: boolean): (string | number)[] {
    let frags: (string | number)[] = [text];
    for (const id of this.#occurring(text, parseSpecial)) {
      const t = this.#texts[id];
      const attr = this.#attrs[id];
      const next: (string | number)[] = [];
      for (const f of frags) {
        if (typeof f === "number") {
          next.push(f);
          continue;
        }
        let from = 0;
        for (;;) {
          const m = f.indexOf(t, from);
          if (m === -1) break;
          let leftEnd = m;
          if (attr & TokenAttr.LSTRIP) {
            while (leftEnd > from && isSpace(f.charCodeAt(leftEnd - 1))) {
              leftEnd--;
            }
          }
          if (leftEnd > from) next.push(f.slice(from, leftEnd));
          next.push(id);
          from = m + t.length;
          if (attr & TokenAttr.RSTRIP) {
            while (from < f.length && isSpace(f.charCodeAt(from))) from++;
          }
        }
        if (from === 0) next.push(f);
        else if (from < f.length) next.push(f.slice(from));
      }
      frags = next;
    }
    return frags;
  }
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * Build the tokenizer of a GGUF file from its metadata (works on vocab-only files).
 * @param gguf a parsed header ({@link readGGUF}) or a file path
 * @throws TokenizerError for a missing or unsupported tokenizer
 * @throws GGUFError when given a path that is not a readable GGUF file
 */
export function tokenizerFromGGUF(gguf: GGUFFile | string): Tokenizer {
  return new Tokenizer(typeof gguf === "string" ? readGGUF(gguf) : gguf);
}

function wrap<T>(g: GGUFFile, key: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new TokenizerError("bad_value", {
      key,
      path: g.path,
      detail: e instanceof Error ? e.message : String(e),
      cause: e,
    });
  }
}

function str(g: GGUFFile, key: string): string | undefined {
  return wrap(g, key, () => getOptionalString(g, key));
}

function num(g: GGUFFile, key: string): number | undefined {
  return wrap(g, key, () => getOptionalNumber(g, key));
}

function bool(g: GGUFFile, key: string): boolean | undefined {
  return wrap(g, key, () => getOptionalBool(g, key));
}

function stringArray(g: GGUFFile, key: string): readonly string[] | undefined {
  const a = wrap(g, key, () => getOptionalArray(g, key));
  if (a === undefined) return undefined;
  if (!Array.isArray(a) || (a.length > 0 && typeof a[0] !== "string")) {
    throw new TokenizerError("bad_value", {
      key,
      path: g.path,
      detail: "expected ARRAY of STRING",
    });
  }
  return a as readonly string[];
}

function numericArray(g: GGUFFile, key: string, n: number): GGUFArray | undefined {
  const a = wrap(g, key, () => getOptionalArray(g, key));
  if (a === undefined) return undefined;
  if (Array.isArray(a) && a.length > 0 && typeof a[0] !== "number") {
    throw new TokenizerError("bad_value", {
      key,
      path: g.path,
      detail: "expected a numeric ARRAY",
    });
  }
  if (a.length < n) {
    throw new TokenizerError("bad_value", {
      key,
      path: g.path,
      detail: `${a.length} values for ${n} tokens`,
    });
  }
  return a;
}
