/**
 * Moving large JSON values between threads without stalling the receiver. A structured clone
 * (`postMessage`) of a 30 MB value costs the receiving thread hundreds of milliseconds in one
 * go (it rebuilds every string and object), more than the parse itself. {@link packLarge}
 * sends instead a small JSON skeleton of the value and, in one transferred (moved, not
 * copied) buffer of UTF-8 pieces: its strings of {@link PACKED_CHARS} or more, and the
 * elements of its arrays of {@link SPLIT_ITEMS} or more as JSON batches of that many.
 * {@link unpackLarge} parses the skeleton and puts the strings and batches back in slices of
 * a few milliseconds, yielding to the event loop in between, however many objects there are.
 *
 * @module
 */

/** Strings with at least this many characters travel as pieces. */
export const PACKED_CHARS = 64;
/** Arrays with at least this many elements travel as JSON batches of this many. */
export const SPLIT_ITEMS = 256;

/** Marks a string piece in the JSON (a real string starting with a mark is always a piece). */
const STR = "\u0000";
/** Marks a split array: its batches' piece numbers, comma-separated. */
const ARR = "\u0001";

/** A packed value (see the module doc). */
export interface Packed {
  /** JSON of the value with marks in place of the pieces. */
  json: string;
  /** The pieces' UTF-8 bytes, one after another (transfer it). */
  bytes: ArrayBuffer;
  /** Where each piece starts in `bytes`, and where the last ends (transfer it). */
  offsets: ArrayBuffer;
}

/** Packs `value` (plain JSON data) for the trip to another thread. */
export function packLarge(value: unknown): Packed {
  const parts: Uint8Array[] = [];
  const ends: number[] = [0];
  const enc = new TextEncoder();
  const put = (text: string): number => {
    const b = enc.encode(text);
    parts.push(b);
    ends.push(ends[ends.length - 1] + b.length);
    return ends.length - 2;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") {
      const marked = v.startsWith(STR) || v.startsWith(ARR);
      return v.length >= PACKED_CHARS || marked ? STR + put(v) : v;
    }
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) {
      if (v.length < SPLIT_ITEMS) return v.map(walk);
      const batches: number[] = [];
      for (let i = 0; i < v.length; i += SPLIT_ITEMS) {
        batches.push(put(JSON.stringify(v.slice(i, i + SPLIT_ITEMS).map(walk))));
      }
      return ARR + batches.join(",");
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = walk((v as Record<string, unknown>)[k]);
    return out;
  };
  const json = JSON.stringify(walk(value));
  const bytes = new Uint8Array(ends[ends.length - 1]);
  parts.forEach((p, i) => bytes.set(p, ends[i]));
  return { json, bytes: bytes.buffer, offsets: new Float64Array(ends).buffer };
}

/** Yield to the event loop when a slice has run this many milliseconds. */
const SLICE_MS = 5;

/** The value of a {@link Packed}, rebuilt in slices (see the module doc). */
export async function unpackLarge(p: Packed): Promise<unknown> {
  const bytes = new Uint8Array(p.bytes);
  const ends = new Float64Array(p.offsets);
  const dec = new TextDecoder();
  const piece = (i: number) => dec.decode(bytes.subarray(ends[i], ends[i + 1]));
  let t = performance.now();
  const pause = async () => {
    if (performance.now() - t < SLICE_MS) return;
    await new Promise((r) => setTimeout(r, 0));
    t = performance.now();
  };
  const root: Record<string, unknown> = { v: JSON.parse(p.json) };
  const stack: Record<string | number, unknown>[] = [root];
  while (stack.length > 0) {
    const o = stack.pop()!;
    const keys = Array.isArray(o) ? o.keys() : Object.keys(o);
    let n = 0;
    for (const k of keys) {
      let v = o[k];
      if (typeof v === "string" && v.startsWith(STR)) o[k] = piece(Number(v.slice(1)));
      else if (typeof v === "string" && v.startsWith(ARR)) {
        const items: unknown[] = [];
        for (const b of v.slice(1).split(",")) {
          for (const x of JSON.parse(piece(Number(b))) as unknown[]) items.push(x);
          await pause();
        }
        o[k] = v = items;
      }
      if (v !== null && typeof v === "object") stack.push(v as Record<string, unknown>);
      if (++n % 64 === 0) await pause();
    }
    await pause();
  }
  return root.v;
}
