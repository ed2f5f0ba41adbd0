/**
 * Detokenization: token ids back to text, whole (llama.cpp's `llama_vocab::impl::detokenize`)
 * or streamed ({@link TextStreamDecoder}).
 *
 * Pieces are bytes: a character may span several tokens (byte-level BPE, SPM byte fallback),
 * so text is decoded from the concatenated bytes, never piece by piece. The streaming decoder
 * holds back an incomplete UTF-8 sequence until the token that completes it arrives, and with
 * `cleanSpaces` it cuts only where llama.cpp's clean-up passes cannot see across the cut, so
 * the concatenation of everything it returns equals {@link detokenize} of all the ids.
 *
 * @module
 */

import { ByteBuffer } from "./unicode.ts";

/** What the decoders need from a tokenizer. */
export interface PieceSource {
  /** Bytes of token `id`; control and unknown tokens are empty unless `special`. */
  tokenPiece(id: number, special: boolean): Uint8Array;
  /** Whether decoding applies llama.cpp's clean-up passes (`clean_spaces`). */
  readonly cleanSpaces: boolean;
  /** Whether the first piece of a decode loses one leading space (`add_space_prefix`). */
  readonly addSpacePrefix: boolean;
  /** Whether a BOS token is added when encoding (decode may drop it, see `removeSpecial`). */
  readonly addBos: boolean;
  /** Whether an EOS token is added when encoding. */
  readonly addEos: boolean;
  /** BOS id, if any. */
  readonly bosId: number | undefined;
  /** EOS id, if any. */
  readonly eosId: number | undefined;
}

/** Options of {@link detokenize}. */
export interface DecodeOptions {
  /** Render control and unknown tokens as their text (default false). */
  special?: boolean;
  /**
   * Drop a leading BOS and a trailing EOS when the vocabulary adds them (default false); a
   * dropped BOS also keeps the leading space of the first text token, as llama.cpp does.
   */
  removeSpecial?: boolean;
}

const DECODER = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

/**
 * Token ids to bytes, as llama.cpp's `detokenize` (leading space removal and clean-up passes
 * included); invalid UTF-8 is left as is.
 */
export function detokenizeBytes(
  src: PieceSource,
  ids: ArrayLike<number>,
  options: DecodeOptions = {},
): Uint8Array {
  const special = options.special ?? false;
  let from = 0;
  let to = ids.length;
  let removeSpace = src.addSpacePrefix;
  if (options.removeSpecial && src.addBos && to > 0 && ids[0] === src.bosId) {
    removeSpace = false;
    from++;
  }
  if (options.removeSpecial && src.addEos && to > from && ids[to - 1] === src.eosId) to--;
  const buf = new ByteBuffer(64);
  for (let i = from; i < to; i++) {
    let piece = src.tokenPiece(ids[i], special);
    if (removeSpace && piece.length > 0 && piece[0] === 0x20) piece = piece.subarray(1);
    removeSpace = false;
    buf.push(piece);
  }
  const n = src.cleanSpaces ? cleanSpaces(buf.bytes, buf.length) : buf.length;
  return buf.bytes.slice(0, n);
}

/** Token ids to text ({@link detokenizeBytes}, then UTF-8 with U+FFFD for invalid bytes). */
export function detokenize(
  src: PieceSource,
  ids: ArrayLike<number>,
  options: DecodeOptions = {},
): string {
  return DECODER.decode(detokenizeBytes(src, ids, options));
}

/**
 * llama.cpp's `clean_up_tokenization_spaces` passes, in place on `text[0..n)`; returns the new
 * length. Removes the space in " ?", " !", " .", " ,", both spaces around a lone "'", and the
 * space before "'s", "'m", "'re", "'ve".
 */
export function cleanSpaces(text: Uint8Array, n: number): number {
  const SP = 0x20, AP = 0x27;
  // pass 1: " ?", " !", " .", " ,"
  const total1 = n;
  let total = total1 ? 1 : 0;
  for (let i = 1; i < total1; i++) {
    const x = text[i];
    if (text[i - 1] === SP && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
    text[total++] = x;
  }
  // pass 2: " ' "
  const total2 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total2; i++) {
    const x = text[i];
    if (x === AP && i + 1 < total2 && text[i - 1] === SP && text[i + 1] === SP) {
      total--;
      text[++i] = 0;
    }
    text[total++] = x;
  }
  // pass 3: " 's", " 'm", " 're", " 've"
  const total3 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total3; i++) {
    const x = text[i];
    if (text[i - 1] === SP && x === AP && i + 1 < total3) {
      const x1 = text[i + 1];
      if (x1 === 0x73 || x1 === 0x6d) total--;
      else if (x1 !== 0x74 && x1 !== 0x64 && i + 2 < total3) {
        const x2 = text[i + 2];
        if ((x1 === 0x72 && x2 === 0x65) || (x1 === 0x76 && x2 === 0x65)) total--;
      }
    }
    text[total++] = x;
  }
  return total;
}

/** Options of {@link TextStreamDecoder}. */
export interface StreamDecoderOptions {
  /** Render control and unknown tokens as their text (default false). */
  special?: boolean;
  /**
   * Remove one leading space from the first piece, as {@link detokenize} does for SPM
   * vocabularies (default false: right for generated text that continues a prompt).
   */
  stripLeadingSpace?: boolean;
  /** Apply the clean-up passes (default: the vocabulary's `cleanSpaces`). */
  cleanSpaces?: boolean;
}

/**
 * Incremental detokenizer: {@link push} one id at a time and show what it returns. Text is
 * never cut inside a UTF-8 sequence (an emoji split over three byte tokens appears whole when
 * its last byte arrives) and {@link flush} returns whatever is held back at the end.
 */
export class TextStreamDecoder {
  readonly #src: PieceSource;
  readonly #special: boolean;
  readonly #clean: boolean;
  #strip: boolean;
  readonly #pending = new ByteBuffer(64);
  #utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  /**
   * Start a stream.
   * @param src the tokenizer
   * @param options see {@link StreamDecoderOptions}
   */
  constructor(src: PieceSource, options: StreamDecoderOptions = {}) {
    this.#src = src;
    this.#special = options.special ?? false;
    this.#clean = options.cleanSpaces ?? src.cleanSpaces;
    this.#strip = options.stripLeadingSpace ?? false;
  }

  /** Add token `id`; returns the text that became final (possibly ""). */
  push(id: number): string {
    let piece = this.#src.tokenPiece(id, this.#special);
    if (this.#strip) {
      if (piece.length > 0 && piece[0] === 0x20) piece = piece.subarray(1);
      this.#strip = false; // only the first token, as in detokenize
    }
    if (!this.#clean) return this.#utf8.decode(piece, { stream: true });
    const p = this.#pending;
    p.push(piece);
    const cut = safeCut(p.bytes, p.length);
    if (cut <= 0) return "";
    const head = p.bytes.slice(0, cut);
    const n = cleanSpaces(head, cut);
    p.bytes.copyWithin(0, cut, p.length);
    p.length -= cut;
    return this.#utf8.decode(head.subarray(0, n), { stream: true });
  }

  /** Add several ids; returns the text that became final. */
  pushAll(ids: Iterable<number>): string {
    let s = "";
    for (const id of ids) s += this.push(id);
    return s;
  }

  /** End of stream: return everything held back and reset. */
  flush(): string {
    let s = "";
    const p = this.#pending;
    if (p.length > 0) {
      const n = cleanSpaces(p.bytes, p.length);
      s = this.#utf8.decode(p.bytes.subarray(0, n), { stream: true });
      p.clear();
    }
    s += this.#utf8.decode();
    this.#utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    return s;
  }
}

/**
 * The last position p in `b[0..n)` where the clean-up passes can be run on `b[0..p)` and
 * `b[p..)` separately with the same result as on the whole: `b[p-1]` is none of space, "'",
 * "r", "v" and `b[p]` none of space, "'", "?", "!", ".", ",". Returns 0 if there is none.
 */
function safeCut(b: Uint8Array, n: number): number {
  for (let p = n - 1; p > 0; p--) {
    const a = b[p - 1], c = b[p];
    if (a === 0x20 || a === 0x27 || a === 0x72 || a === 0x76) continue;
    if (c === 0x20 || c === 0x27 || c === 0x3f || c === 0x21 || c === 0x2e || c === 0x2c) continue;
    return p;
  }
  return 0;
}
