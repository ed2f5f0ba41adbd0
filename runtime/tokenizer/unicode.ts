/**
 * Unicode helpers for the tokenizers: code point categories as llama.cpp's `unicode.cpp` sees
 * them, GPT-2's byte-to-unicode table, and small UTF-8 routines.
 *
 * Categories come from the JS engine's Unicode tables (`\p{L}`, `\p{N}`, ...) and whitespace is
 * the Unicode `White_Space` property, which is the set llama.cpp generates its
 * `unicode_set_whitespace` from. Results are cached in a table indexed by code point.
 *
 * @module
 */

/** Category bits of a code point (llama.cpp's `unicode_cpt_flags`, same values). */
export const CpFlag = {
  /** Unassigned (`\p{Cn}`). */
  UNDEFINED: 0x0001,
  /** `\p{N}`. */
  NUMBER: 0x0002,
  /** `\p{L}`. */
  LETTER: 0x0004,
  /** `\p{Z}`. */
  SEPARATOR: 0x0008,
  /** `\p{M}`. */
  MARK: 0x0010,
  /** `\p{P}`. */
  PUNCTUATION: 0x0020,
  /** `\p{S}`. */
  SYMBOL: 0x0040,
  /** `\p{C}` except unassigned. */
  CONTROL: 0x0080,
  /** Mask of the category bits above. */
  CATEGORIES: 0x00ff,
  /** Unicode `White_Space`. */
  WHITESPACE: 0x0100,
} as const;

const MAX_CP = 0x110000;
let flagTable: Uint16Array | undefined;

const RE_L = /\p{L}/u;
const RE_N = /\p{N}/u;
const RE_P = /\p{P}/u;
const RE_M = /\p{M}/u;
const RE_S = /\p{S}/u;
const RE_Z = /\p{Z}/u;
const RE_CN = /\p{Cn}/u;
const RE_WS = /\p{White_Space}/u;

function computeFlags(cp: number): number {
  const s = String.fromCodePoint(cp);
  let f: number;
  if (RE_L.test(s)) f = CpFlag.LETTER;
  else if (RE_N.test(s)) f = CpFlag.NUMBER;
  else if (RE_P.test(s)) f = CpFlag.PUNCTUATION;
  else if (RE_M.test(s)) f = CpFlag.MARK;
  else if (RE_S.test(s)) f = CpFlag.SYMBOL;
  else if (RE_Z.test(s)) f = CpFlag.SEPARATOR;
  else if (RE_CN.test(s)) f = CpFlag.UNDEFINED;
  else f = CpFlag.CONTROL;
  if (RE_WS.test(s)) f |= CpFlag.WHITESPACE;
  return f;
}

/**
 * Category and whitespace bits of code point `cp` ({@link CpFlag}); 0 for values outside
 * Unicode (llama.cpp's "out of range", used past the end of a span).
 */
export function cpFlags(cp: number): number {
  if (cp < 0 || cp >= MAX_CP) return 0;
  const t = flagTable ??= new Uint16Array(MAX_CP);
  let f = t[cp];
  if (f === 0) f = t[cp] = computeFlags(cp);
  return f;
}

/** Lower-case mapping of one code point (simple mapping; the code point itself if none). */
export function cpToLower(cp: number): number {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
  const s = String.fromCodePoint(cp).toLowerCase();
  const l = s.codePointAt(0)!;
  return s.length === (l > 0xffff ? 2 : 1) ? l : cp;
}

/**
 * Code points of `text`, with the UTF-16 offset where each starts (`u16[i]`; `u16[n]` is the
 * length). Lone surrogates become U+FFFD, as llama.cpp does with invalid UTF-8.
 */
export function codePoints(text: string): { cps: Uint32Array; u16: Uint32Array } {
  const n16 = text.length;
  const cps = new Uint32Array(n16);
  const u16 = new Uint32Array(n16 + 1);
  let n = 0;
  for (let i = 0; i < n16;) {
    let c = text.charCodeAt(i);
    u16[n] = i;
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < n16 ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i += 2;
      } else {
        c = 0xfffd;
        i += 1;
      }
    } else {
      i += 1;
    }
    cps[n++] = c;
  }
  u16[n] = n16;
  return { cps: cps.subarray(0, n), u16: u16.subarray(0, n + 1) };
}

/** Replace lone surrogates by U+FFFD (what a UTF-8 round trip does). */
export function wellFormed(text: string): string {
  const s = text as string & { isWellFormed?: () => boolean; toWellFormed?: () => string };
  if (typeof s.isWellFormed === "function") return s.isWellFormed() ? text : s.toWellFormed!();
  return text.replace(/[\uD800-\uDFFF]/gu, "\uFFFD");
}

/**
 * GPT-2's byte-to-unicode table: byte b is written as the code point `BYTE_TO_CP[b]` in
 * byte-level BPE vocabularies (printable bytes map to themselves, the rest to U+0100 onwards).
 */
export const BYTE_TO_CP: Uint16Array = (() => {
  const t = new Uint16Array(256);
  const direct = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) t[b] = direct(b) ? b : 256 + n++;
  return t;
})();

/** Inverse of {@link BYTE_TO_CP}: code point to byte, or -1 (indexed up to U+0143). */
export const CP_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(0x144).fill(-1);
  for (let b = 0; b < 256; b++) t[BYTE_TO_CP[b]] = b;
  return t;
})();

/** {@link BYTE_TO_CP} as one-character strings. */
export const BYTE_TO_CHAR: readonly string[] = Array.from(
  BYTE_TO_CP,
  (c) => String.fromCharCode(c),
);

/** Number of bytes of the UTF-8 sequence that starts with byte `b` (llama.cpp's table). */
export function utf8SeqLen(b: number): number {
  const hi = b >> 4;
  return hi < 12 ? 1 : hi < 14 ? 2 : hi === 14 ? 3 : 4;
}

/** Growable byte buffer used by the encoders and decoders. */
export class ByteBuffer {
  /** Backing store; valid bytes are `bytes[0..length)`. */
  bytes: Uint8Array;
  /** Number of valid bytes. */
  length = 0;

  /**
   * An empty buffer.
   * @param capacity initial capacity in bytes
   */
  constructor(capacity = 256) {
    this.bytes = new Uint8Array(capacity);
  }

  /** Make room for `n` more bytes. */
  reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.bytes.length) return;
    let cap = this.bytes.length * 2;
    while (cap < need) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.bytes.subarray(0, this.length));
    this.bytes = b;
  }

  /** Append bytes. */
  push(src: Uint8Array): void {
    this.reserve(src.length);
    this.bytes.set(src, this.length);
    this.length += src.length;
  }

  /** Append one byte. */
  pushByte(b: number): void {
    if (this.length === this.bytes.length) this.reserve(1);
    this.bytes[this.length++] = b;
  }

  /** Append the UTF-8 encoding of code point `cp`. */
  pushCodePoint(cp: number): void {
    this.reserve(4);
    const o = this.bytes;
    let i = this.length;
    if (cp < 0x80) o[i++] = cp;
    else if (cp < 0x800) {
      o[i++] = 0xc0 | (cp >> 6);
      o[i++] = 0x80 | (cp & 0x3f);
    } else if (cp < 0x10000) {
      o[i++] = 0xe0 | (cp >> 12);
      o[i++] = 0x80 | ((cp >> 6) & 0x3f);
      o[i++] = 0x80 | (cp & 0x3f);
    } else {
      o[i++] = 0xf0 | (cp >> 18);
      o[i++] = 0x80 | ((cp >> 12) & 0x3f);
      o[i++] = 0x80 | ((cp >> 6) & 0x3f);
      o[i++] = 0x80 | (cp & 0x3f);
    }
    this.length = i;
  }

  /** Append the UTF-8 encoding of `s[from..to)` (lone surrogates become U+FFFD). */
  pushString(s: string, from = 0, to = s.length): void {
    this.reserve((to - from) * 3);
    for (let i = from; i < to; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        this.bytes[this.length++] = c;
        continue;
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < to ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
        } else c = 0xfffd;
      }
      this.pushCodePoint(c);
    }
  }

  /** The valid bytes (a view, valid until the next write). */
  view(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }

  /** Forget the contents. */
  clear(): void {
    this.length = 0;
  }
}

const UTF8 = new TextEncoder();

/** UTF-8 bytes of `s` (lone surrogates become U+FFFD). */
export function utf8Encode(s: string): Uint8Array {
  return UTF8.encode(s);
}
