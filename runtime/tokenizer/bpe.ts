/**
 * Byte-level BPE (`tokenizer.ggml.model` = "gpt2"), as llama.cpp's `llm_tokenizer_bpe_session`.
 *
 * Text is split by the vocabulary's pre-tokenizer ({@link PreTokenizer}); each piece is written
 * as UTF-8 and every byte becomes one symbol, GPT-2's byte-to-unicode character. Adjacent
 * symbols are then merged, lowest merge rank first (ties: leftmost), until no pair has a rank.
 *
 * Data layout: every string that can be a symbol (each vocabulary token, and each merge result
 * that is not a token) has an integer id; ids below the vocabulary size are token ids. Merge
 * ranks are read from a `Map` keyed by the merge string ("left right", as stored in the file);
 * the first lookup of a pair of symbol ids caches `rank * 2^21 + result` in a `Map` keyed
 * `left * 2^21 + right`, so loading costs one hash per merge and encoding hashes no strings in
 * steady state. A piece is merged on small typed arrays: a doubly linked list of symbols and a
 * binary heap of candidate pairs keyed (rank, left position); a popped pair is used only if
 * both of its symbols are still the ones it was made from. Results are cached per piece.
 *
 * @module
 */

import { TokenizerError } from "./errors.ts";
import type { PreTokenizer } from "./pretokenize.ts";
import { BYTE_TO_CHAR, ByteBuffer } from "./unicode.ts";

const ID_BITS = 2 ** 21;
const CACHE_LIMIT = 1 << 17;
const PAIR_CACHE_LIMIT = 1 << 22;

/** Options of {@link BpeModel}. */
export interface BpeOptions {
  /** A piece that is a token as a whole is not merged (llama.cpp `ignore_merges`). */
  ignoreMerges?: boolean;
  /** File path, for errors. */
  path?: string;
}

/** The merge part of a byte-level BPE tokenizer (no special tokens; see `Tokenizer`). */
export class BpeModel {
  /** The pre-tokenizer. */
  readonly pre: PreTokenizer;
  readonly #tokenToId: Map<string, number>;
  readonly #texts: readonly string[];
  readonly #nVocab: number;
  readonly #extra: string[] = [];
  readonly #extraIds = new Map<string, number>();
  readonly #rankOf = new Map<string, number>();
  readonly #pairs = new Map<number, number>();
  readonly #byteSym = new Int32Array(256);
  readonly #ignoreMerges: boolean;
  readonly #cache = new Map<string, readonly number[]>();
  readonly #buf = new ByteBuffer(1024);
  // work arrays for one piece, grown on demand
  #sym = new Int32Array(64);
  #prev = new Int32Array(64);
  #next = new Int32Array(64);
  #hRank = new Int32Array(64);
  #hLeft = new Int32Array(64);
  #hRight = new Int32Array(64);
  #hL = new Int32Array(64);
  #hR = new Int32Array(64);
  #hRes = new Int32Array(64);
  #hN = 0;

  /**
   * Build the merge table.
   * @param tokenToId token text to id (the vocabulary)
   * @param texts token texts by id
   * @param merges `tokenizer.ggml.merges`: "left right", rank = index
   * @param pre the pre-tokenizer
   * @param options flags
   * @throws TokenizerError `too_large` if the vocabulary has 2^21 tokens or more
   */
  constructor(
    tokenToId: Map<string, number>,
    texts: readonly string[],
    merges: readonly string[],
    pre: PreTokenizer,
    options: BpeOptions = {},
  ) {
    this.pre = pre;
    this.#tokenToId = tokenToId;
    this.#texts = texts;
    const nVocab = this.#nVocab = texts.length;
    this.#ignoreMerges = options.ignoreMerges ?? false;
    for (let rank = 0; rank < merges.length; rank++) {
      const m = merges[rank];
      if (!this.#rankOf.has(m)) this.#rankOf.set(m, rank);
    }
    for (let b = 0; b < 256; b++) this.#byteSym[b] = this.#intern(BYTE_TO_CHAR[b]);
    if (nVocab >= ID_BITS) {
      throw new TokenizerError("too_large", {
        key: "tokenizer.ggml.tokens",
        path: options.path,
        detail: `${nVocab} tokens; at most ${ID_BITS - 1}`,
      });
    }
  }

  #intern(s: string): number {
    let id = this.#tokenToId.get(s) ?? this.#extraIds.get(s);
    if (id === undefined) {
      id = this.#nVocab + this.#extra.length;
      if (id >= ID_BITS) {
        throw new TokenizerError("too_large", { detail: `more than ${ID_BITS} BPE symbols` });
      }
      this.#extra.push(s);
      this.#extraIds.set(s, id);
    }
    return id;
  }

  #text(id: number): string {
    return id < this.#nVocab ? this.#texts[id] : this.#extra[id - this.#nVocab];
  }

  /** Merge rank of the pair (`left`, `right`) of token strings, or -1. */
  rank(left: string, right: string): number {
    if (left.includes(" ") || right.includes(" ")) return -1;
    return this.#rankOf.get(left + " " + right) ?? -1;
  }

  /** Append the tokens of raw text (no special tokens) to `out`. */
  encode(text: string, out: number[]): void {
    for (const word of this.pre.split(text)) {
      let ids = this.#cache.get(word);
      if (ids === undefined) {
        ids = this.#encodeWord(word);
        if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
        this.#cache.set(word, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    }
  }

  #encodeWord(word: string): number[] {
    const buf = this.#buf;
    buf.clear();
    buf.pushString(word);
    const n = buf.length;
    const bytes = buf.bytes;
    if (this.#ignoreMerges) {
      let s = "";
      for (let i = 0; i < n; i++) s += BYTE_TO_CHAR[bytes[i]];
      const id = this.#tokenToId.get(s);
      if (id !== undefined) return [id];
    }
    if (this.#sym.length < n) this.#grow(n);
    const sym = this.#sym, prev = this.#prev, next = this.#next;
    for (let i = 0; i < n; i++) {
      sym[i] = this.#byteSym[bytes[i]];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    this.#hN = 0;
    for (let i = 1; i < n; i++) this.#addPair(i - 1, i);
    while (this.#hN > 0) {
      const left = this.#hLeft[0];
      const right = this.#hRight[0];
      const l = this.#hL[0];
      const r = this.#hR[0];
      const res = this.#hRes[0];
      this.#pop();
      if (sym[left] !== l || sym[right] !== r || next[left] !== right) continue;
      // merge right into left
      sym[left] = res;
      sym[right] = -1;
      const nn = next[right];
      next[left] = nn;
      if (nn >= 0) prev[nn] = left;
      if (prev[left] >= 0) this.#addPair(prev[left], left);
      if (nn >= 0) this.#addPair(left, nn);
    }
    const out: number[] = [];
    for (let i = 0; i !== -1; i = next[i]) {
      const id = sym[i];
      if (id < this.#nVocab) {
        out.push(id);
        continue;
      }
      // not a token: llama.cpp looks up each byte of the symbol's text as a one-byte token
      const s = this.#extra[id - this.#nVocab];
      for (let k = 0; k < s.length; k++) {
        const c = s.charCodeAt(k);
        if (c < 0x80) {
          const t = this.#tokenToId.get(s[k]);
          if (t !== undefined) out.push(t);
        }
      }
    }
    return out;
  }

  #grow(n: number): void {
    let cap = this.#sym.length;
    while (cap < n) cap *= 2;
    this.#sym = new Int32Array(cap);
    this.#prev = new Int32Array(cap);
    this.#next = new Int32Array(cap);
  }

  #addPair(left: number, right: number): void {
    const l = this.#sym[left];
    const r = this.#sym[right];
    const key = l * ID_BITS + r;
    let v = this.#pairs.get(key);
    if (v === undefined) {
      const a = this.#text(l), b = this.#text(r);
      const rank = this.#rankOf.get(a + " " + b);
      v = rank === undefined ? -1 : rank * ID_BITS + this.#intern(a + b);
      if (this.#pairs.size >= PAIR_CACHE_LIMIT) this.#pairs.clear();
      this.#pairs.set(key, v);
    }
    if (v < 0) return;
    const rank = Math.floor(v / ID_BITS);
    const res = v - rank * ID_BITS;
    if (this.#hN === this.#hRank.length) this.#growHeap();
    // sift up
    let i = this.#hN++;
    const hRank = this.#hRank, hLeft = this.#hLeft;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (hRank[p] < rank || (hRank[p] === rank && hLeft[p] < left)) break;
      this.#move(p, i);
      i = p;
    }
    hRank[i] = rank;
    hLeft[i] = left;
    this.#hRight[i] = right;
    this.#hL[i] = l;
    this.#hR[i] = r;
    this.#hRes[i] = res;
  }

  #pop(): void {
    const n = --this.#hN;
    if (n === 0) return;
    const hRank = this.#hRank, hLeft = this.#hLeft;
    const rank = hRank[n], left = hLeft[n];
    const right = this.#hRight[n], l = this.#hL[n], r = this.#hR[n], res = this.#hRes[n];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (
        c + 1 < n &&
        (hRank[c + 1] < hRank[c] || (hRank[c + 1] === hRank[c] && hLeft[c + 1] < hLeft[c]))
      ) {
        c++;
      }
      if (rank < hRank[c] || (rank === hRank[c] && left < hLeft[c])) break;
      this.#move(c, i);
      i = c;
    }
    hRank[i] = rank;
    hLeft[i] = left;
    this.#hRight[i] = right;
    this.#hL[i] = l;
    this.#hR[i] = r;
    this.#hRes[i] = res;
  }

  #move(from: number, to: number): void {
    this.#hRank[to] = this.#hRank[from];
    this.#hLeft[to] = this.#hLeft[from];
    this.#hRight[to] = this.#hRight[from];
    this.#hL[to] = this.#hL[from];
    this.#hR[to] = this.#hR[from];
    this.#hRes[to] = this.#hRes[from];
  }

  #growHeap(): void {
    const cap = this.#hRank.length * 2;
    const g = (a: Int32Array) => {
      const b = new Int32Array(cap);
      b.set(a);
      return b;
    };
    this.#hRank = g(this.#hRank);
    this.#hLeft = g(this.#hLeft);
    this.#hRight = g(this.#hRight);
    this.#hL = g(this.#hL);
    this.#hR = g(this.#hR);
    this.#hRes = g(this.#hRes);
  }
}
