/**
 * A growable little-endian byte buffer, used to encode GGUF headers (and by tests to hand-craft
 * malformed files). Private to runtime/gguf.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Growable little-endian byte buffer. */
export class ByteBuf {
  /** Backing storage; valid bytes are `[0, length)`. */
  bytes: Uint8Array;
  private dv: DataView;
  /** Bytes written so far. */
  length = 0;

  /** Create a buffer with `capacity` bytes reserved. */
  constructor(capacity = 4096) {
    this.bytes = new Uint8Array(capacity);
    this.dv = new DataView(this.bytes.buffer);
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
    this.dv = new DataView(b.buffer);
  }

  /** Append one byte. */
  u8(v: number): this {
    this.reserve(1);
    this.bytes[this.length++] = v;
    return this;
  }

  /** Append an i8. */
  i8(v: number): this {
    this.reserve(1);
    this.dv.setInt8(this.length++, v);
    return this;
  }

  /** Append a u16. */
  u16(v: number): this {
    this.reserve(2);
    this.dv.setUint16(this.length, v, true);
    this.length += 2;
    return this;
  }

  /** Append an i16. */
  i16(v: number): this {
    this.reserve(2);
    this.dv.setInt16(this.length, v, true);
    this.length += 2;
    return this;
  }

  /** Append a u32. */
  u32(v: number): this {
    this.reserve(4);
    this.dv.setUint32(this.length, v, true);
    this.length += 4;
    return this;
  }

  /** Append an i32. */
  i32(v: number): this {
    this.reserve(4);
    this.dv.setInt32(this.length, v, true);
    this.length += 4;
    return this;
  }

  /** Append a u64 (a number below 2^53, or any bigint, taken modulo 2^64). */
  u64(v: number | bigint): this {
    this.reserve(8);
    this.dv.setBigUint64(this.length, BigInt.asUintN(64, BigInt(v)), true);
    this.length += 8;
    return this;
  }

  /** Append an i64 (a safe integer, or any bigint, taken modulo 2^64). */
  i64(v: number | bigint): this {
    this.reserve(8);
    this.dv.setBigInt64(this.length, BigInt.asIntN(64, BigInt(v)), true);
    this.length += 8;
    return this;
  }

  /** Append an f32. */
  f32(v: number): this {
    this.reserve(4);
    this.dv.setFloat32(this.length, v, true);
    this.length += 4;
    return this;
  }

  /** Append an f64. */
  f64(v: number): this {
    this.reserve(8);
    this.dv.setFloat64(this.length, v, true);
    this.length += 8;
    return this;
  }

  /** Append raw bytes. */
  raw(b: Uint8Array): this {
    this.reserve(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
    return this;
  }

  /** Append a GGUF string: u64 byte length, then UTF-8 bytes. */
  str(s: string): this {
    this.reserve(8 + s.length * 3);
    const at = this.length;
    const { written } = encoder.encodeInto(s, this.bytes.subarray(at + 8));
    this.dv.setUint32(at, written, true);
    this.dv.setUint32(at + 4, 0, true);
    this.length = at + 8 + written;
    return this;
  }

  /** Append zero bytes up to a multiple of `align`. */
  pad(align: number): this {
    const r = this.length % align;
    if (r !== 0) {
      const n = align - r;
      this.reserve(n);
      this.bytes.fill(0, this.length, this.length + n);
      this.length += n;
    }
    return this;
  }

  /** The bytes written so far (a view, not a copy). */
  view(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}
