/**
 * SentencePiece BPE (`tokenizer.ggml.model` = "llama"), as llama.cpp's `llm_tokenizer_spm`.
 *
 * The caller escapes spaces as "▁" (and adds the space prefix). Each character starts as one
 * symbol; every adjacent pair whose concatenation is a token is a candidate, and the candidate
 * whose token has the highest score is merged first (ties: leftmost). A final symbol that is
 * not a token is written as byte tokens `<0xXX>` (byte fallback).
 *
 * Speed: when no token has "▁" after another character (true of SentencePiece vocabularies
 * that split on whitespace), no token can span a boundary "x▁" with x not "▁", so the text is
 * cut there and each word is merged on its own and cached; the result is the same as merging
 * the whole text at once, since a pair across such a boundary is never a candidate.
 *
 * Data layout: symbols are a doubly linked list over typed arrays holding each symbol's UTF-16
 * start and length in the input; candidates sit in a binary heap keyed (score desc, left asc)
 * and are skipped when one of their symbols has changed since (llama.cpp's length check).
 *
 * @module
 */

import { ByteBuffer } from "./unicode.ts";

const SPACE = "\u2581";

/** The merge part of a SentencePiece tokenizer (no special tokens; see `Tokenizer`). */
export class SpmModel {
  readonly #tokenToId: Map<string, number>;
  readonly #scores: Float32Array;
  readonly #byteTok = new Int32Array(256);
  readonly #unk: number;
  readonly #buf = new ByteBuffer(16);
  readonly #wordSplit: boolean;
  readonly #cache = new Map<string, readonly number[]>();

  /**
   * Prepare the byte-fallback table and check whether words can be merged separately.
   * @param tokenToId token text to id
   * @param scores score of each token (`tokenizer.ggml.scores`)
   * @param unkId id used when a byte has no token at all (-1: drop the byte)
   * @param options `wordSplit: false` merges each text in one run (the word split is only a
   *   speed-up; it is used when the vocabulary allows it)
   */
  constructor(
    tokenToId: Map<string, number>,
    scores: Float32Array,
    unkId: number,
    options: { wordSplit?: boolean } = {},
  ) {
    this.#tokenToId = tokenToId;
    this.#scores = scores;
    this.#unk = unkId;
    const hex = "0123456789ABCDEF";
    for (let b = 0; b < 256; b++) {
      const name = `<0x${hex[b >> 4]}${hex[b & 15]}>`;
      let id = tokenToId.get(name);
      if (id === undefined && b < 0x80) id = tokenToId.get(String.fromCharCode(b));
      this.#byteTok[b] = id ?? unkId;
    }
    let split = options.wordSplit ?? true;
    if (split) {
      for (const t of tokenToId.keys()) {
        const k = t.indexOf(SPACE, 1);
        if (k > 0 && /[^\u2581]\u2581/.test(t)) {
          split = false;
          break;
        }
      }
    }
    this.#wordSplit = split;
  }

  /** The token of byte `b` (`<0xXX>`, else the one-character token), or the unknown id. */
  byteToken(b: number): number {
    return this.#byteTok[b];
  }

  /** Append the tokens of already-escaped text (spaces as "▁") to `out`. */
  encode(text: string, out: number[]): void {
    if (!this.#wordSplit) {
      this.#encodeRun(text, out);
      return;
    }
    let from = 0;
    const n = text.length;
    for (let i = 1; i <= n; i++) {
      if (i < n && !(text.charCodeAt(i) === 0x2581 && text.charCodeAt(i - 1) !== 0x2581)) continue;
      const word = text.slice(from, i);
      from = i;
      let ids = this.#cache.get(word);
      if (ids === undefined) {
        const w: number[] = [];
        this.#encodeRun(word, w);
        ids = w;
        if (this.#cache.size >= 1 << 17) this.#cache.clear();
        this.#cache.set(word, ids);
      }
      for (let k = 0; k < ids.length; k++) out.push(ids[k]);
    }
  }

  #encodeRun(text: string, out: number[]): void {
    // symbols: one per code point
    const n16 = text.length;
    if (n16 === 0) return;
    const start = new Int32Array(n16);
    const len = new Int32Array(n16);
    let n = 0;
    for (let i = 0; i < n16;) {
      const c = text.charCodeAt(i);
      const w = c >= 0xd800 && c <= 0xdbff && i + 1 < n16 &&
          (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00
        ? 2
        : 1;
      start[n] = i;
      len[n] = w;
      n++;
      i += w;
    }
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new SpmHeap();
    const tryAdd = (left: number, right: number) => {
      if (left === -1 || right === -1) return;
      const s = text.substr(start[left], len[left] + len[right]);
      const id = this.#tokenToId.get(s);
      if (id === undefined) return;
      heap.push(this.#scores[id], left, right, len[left] + len[right]);
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    while (heap.size > 0) {
      const left = heap.topLeft(), right = heap.topRight(), size = heap.topSize();
      heap.pop();
      if (len[left] === 0 || len[right] === 0 || len[left] + len[right] !== size) continue;
      len[left] += len[right];
      len[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }
    for (let i = 0; i !== -1; i = next[i]) {
      const s = text.substr(start[i], len[i]);
      const id = this.#tokenToId.get(s);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      const buf = this.#buf;
      buf.clear();
      buf.pushString(s);
      for (let k = 0; k < buf.length; k++) {
        const t = this.#byteTok[buf.bytes[k]];
        if (t >= 0) out.push(t);
      }
    }
  }

  /** Unknown-token id given at construction (-1 if none). */
  get unkId(): number {
    return this.#unk;
  }
}

/** Max-heap of SPM candidates: highest score first, then lowest left index. */
class SpmHeap {
  #score: Float64Array = new Float64Array(64);
  #left: Int32Array = new Int32Array(64);
  #right: Int32Array = new Int32Array(64);
  #size: Int32Array = new Int32Array(64);
  size = 0;

  topLeft(): number {
    return this.#left[0];
  }
  topRight(): number {
    return this.#right[0];
  }
  topSize(): number {
    return this.#size[0];
  }

  #before(i: number, score: number, left: number): boolean {
    // true if entry i should be above (score, left)
    const s = this.#score[i];
    return s > score || (s === score && this.#left[i] < left);
  }

  #set(i: number, score: number, left: number, right: number, size: number): void {
    this.#score[i] = score;
    this.#left[i] = left;
    this.#right[i] = right;
    this.#size[i] = size;
  }

  #move(from: number, to: number): void {
    this.#set(to, this.#score[from], this.#left[from], this.#right[from], this.#size[from]);
  }

  push(score: number, left: number, right: number, size: number): void {
    if (this.size === this.#score.length) {
      const cap = this.size * 2;
      const s = new Float64Array(cap);
      s.set(this.#score);
      this.#score = s;
      for (const k of ["left", "right", "size"] as const) {
        const a = new Int32Array(cap);
        if (k === "left") {
          a.set(this.#left);
          this.#left = a;
        } else if (k === "right") {
          a.set(this.#right);
          this.#right = a;
        } else {
          a.set(this.#size);
          this.#size = a;
        }
      }
    }
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.#before(p, score, left)) break;
      this.#move(p, i);
      i = p;
    }
    this.#set(i, score, left, right, size);
  }

  pop(): void {
    const n = --this.size;
    if (n === 0) return;
    const score = this.#score[n], left = this.#left[n];
    const right = this.#right[n], size = this.#size[n];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && this.#before(c + 1, this.#score[c], this.#left[c])) c++;
      if (!this.#before(c, score, left)) break;
      this.#move(c, i);
      i = c;
    }
    this.#set(i, score, left, right, size);
  }
}
