/**
 * GGUF reader: header, metadata (KV) and tensor infos, validated; never tensor data.
 *
 * Layout of a GGUF v2/v3 file (little-endian):
 *
 * ```
 * magic "GGUF" | version u32 | n_tensors u64 | n_kv u64
 * n_kv x      { key: string, value_type u32, value }
 * n_tensors x { name: string, n_dims u32, dims u64[n_dims] (ne0 first), ggml_type u32, offset u64 }
 * padding to general.alignment (default 32)
 * tensor data; each offset is relative to the start of this section
 * string = len u64 + UTF-8 bytes; array = element_type u32 + count u64 + elements
 * ```
 *
 * The reader pulls the header through a {@link ByteSource} in chunks (1 MiB by default), so it
 * works the same on an in-memory buffer and on a file, and every length or count is checked
 * against the bytes left before anything is allocated. See {@link GGUFValue} for how values
 * are decoded (64-bit integers: `number` when safe, else `bigint`).
 *
 * @module
 */

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { GGUFError, type GGUFErrorCode } from "./errors.ts";
import {
  type GGMLTypeId,
  type GGMLTypeName,
  type GGUFArray,
  type GGUFArraySpec,
  type GGUFScalarSpec,
  type GGUFTypeSpec,
  type GGUFValue,
  GGUFValueType,
  isGGMLType,
  isGGUFValueType,
  typeInfo,
  valueTypeName,
  valueTypeSize,
} from "./types.ts";

/** Random-access bytes: an in-memory buffer or a file. */
export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Read `length` bytes at `offset`. May return fewer bytes only at the end of the source.
   * The reader never writes into the returned array and never keeps it past the next read.
   */
  read(offset: number, length: number): Uint8Array;
}

/** A {@link ByteSource} over an open file; call `close()` when done. */
export interface FileByteSource extends ByteSource {
  /** Path the file was opened with. */
  readonly path: string;
  /** Close the file descriptor. Idempotent. */
  close(): void;
}

/** One tensor described in the header. */
export interface TensorInfo {
  /** Tensor name, e.g. `blk.0.ffn_gate_exps.weight`. */
  readonly name: string;
  /** ggml type id. */
  readonly type: GGMLTypeId;
  /** ggml type name, e.g. `"Q4_K"`. */
  readonly typeName: GGMLTypeName;
  /** Dims in ggml order, ne0 (the contiguous one) first. */
  readonly shape: readonly number[];
  /** Product of the dims. */
  readonly nElements: number;
  /** Bytes of data. */
  readonly nbytes: number;
  /** Offset of the data relative to the data section. */
  readonly offset: number;
  /** Offset of the data in the file (`dataOffset + offset`). */
  readonly absoluteOffset: number;
}

/** A parsed GGUF header. */
export interface GGUFFile {
  /** Format version, 2 or 3. */
  readonly version: number;
  /** Metadata, in file order. See {@link GGUFValue} for how values are decoded. */
  readonly kv: Map<string, GGUFValue>;
  /** Declared GGUF type of each metadata value (with array element types), for exact rewrites. */
  readonly kvTypes: Map<string, GGUFTypeSpec>;
  /** File offset of each metadata value (after its type field); used in error messages. */
  readonly kvOffsets: Map<string, number>;
  /** Tensor infos, in file order. */
  readonly tensors: readonly TensorInfo[];
  /** Tensor infos by name. */
  readonly tensorByName: Map<string, TensorInfo>;
  /** Data alignment: `general.alignment`, default 32. */
  readonly alignment: number;
  /** Bytes of header (magic through the last tensor info), before padding. */
  readonly headerSize: number;
  /** Start of the data section in the file. */
  readonly dataOffset: number;
  /** File size in bytes. */
  readonly fileSize: number;
  /** File path, when read from a path or given in options. */
  readonly path?: string;
}

/** Options of {@link readGGUF}. */
export interface ReadGGUFOptions {
  /** Path to name in errors (defaults to the path read from, if any). */
  path?: string;
  /** Bytes per read from the source; default 1 MiB. */
  chunkSize?: number;
}

/** Default data alignment when `general.alignment` is absent. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** Deepest nesting of arrays of arrays the reader accepts. */
export const GGUF_MAX_ARRAY_DEPTH = 16;
/** Most dims a tensor may have (ggml's GGML_MAX_DIMS). */
export const GGUF_MAX_DIMS = 4;

const DEFAULT_CHUNK = 1 << 20;
const TWO32 = 4294967296;
const MAX_HI = 0x1fffff; // hi word of the largest u64 below 2^53
const LE_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const T = GGUFValueType;

const SCALAR_SPECS: readonly GGUFScalarSpec[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((
  t,
) => Object.freeze({ type: t }) as GGUFScalarSpec);
const ARRAY_SPECS: readonly GGUFArraySpec[] = SCALAR_SPECS.map((s) =>
  Object.freeze({ type: 9, elementType: s.type }) as GGUFArraySpec
);

/** Wrap an in-memory buffer as a {@link ByteSource} (reads are zero-copy views). */
export function bufferSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read(offset: number, length: number): Uint8Array {
      return bytes.subarray(offset, Math.min(offset + length, bytes.length));
    },
  };
}

/**
 * Open a file as a {@link ByteSource} with `node:fs` (works in Deno and Bun).
 * @throws GGUFError `io` if the file cannot be opened
 */
export function openFileSource(path: string): FileByteSource {
  let fd: number;
  let size: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new GGUFError("io", { path, detail: `cannot open: ${errText(e)}`, cause: e });
  }
  try {
    size = fstatSync(fd).size;
  } catch (e) {
    closeSync(fd);
    throw new GGUFError("io", { path, detail: `cannot stat: ${errText(e)}`, cause: e });
  }
  let open = true;
  return {
    path,
    size,
    read(offset: number, length: number): Uint8Array {
      if (!open) throw new GGUFError("io", { path, offset, detail: "file is closed" });
      const len = Math.max(0, Math.min(length, size - offset));
      const out = new Uint8Array(len);
      let got = 0;
      try {
        while (got < len) {
          const n = readSync(fd, out, got, len - got, offset + got);
          if (n <= 0) break;
          got += n;
        }
      } catch (e) {
        throw new GGUFError("io", { path, offset, detail: `read failed: ${errText(e)}`, cause: e });
      }
      return got === len ? out : out.subarray(0, got);
    },
    close(): void {
      if (open) {
        open = false;
        closeSync(fd);
      }
    },
  };
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Parse and validate the header of a GGUF v2/v3 file: metadata and tensor infos. Tensor data
 * is never read; use `absoluteOffset` and `nbytes` of each {@link TensorInfo}.
 *
 * @param input a file path, an in-memory file, or any {@link ByteSource}
 * @throws GGUFError for every malformed input (see {@link GGUFErrorCode}); never another type
 */
export function readGGUF(
  input: string | Uint8Array | ByteSource,
  options: ReadGGUFOptions = {},
): GGUFFile {
  if (typeof input === "string") {
    const src = openFileSource(input);
    try {
      return new Reader(src, options.path ?? input, options.chunkSize).parse();
    } finally {
      src.close();
    }
  }
  const src = input instanceof Uint8Array ? bufferSource(input) : input;
  return new Reader(src, options.path, options.chunkSize).parse();
}

/** Round `n` up to a multiple of `align` (a power of two). */
export function alignUp(n: number, align: number): number {
  const r = n % align;
  return r === 0 ? n : n + (align - r);
}

class Reader {
  private buf: Uint8Array = new Uint8Array(0);
  private dv: DataView = new DataView(this.buf.buffer);
  private base = 0; // file offset of buf[0]
  private p = 0; // index into buf
  private readonly size: number;
  private readonly chunk: number;
  // Where we are, for error messages; the field string is built only on error.
  private sect = "header";
  private idx = -1;
  private part = "";
  private key: string | undefined = undefined;
  private readonly stack: number[] = [];
  private depth = 0;
  private spec: GGUFTypeSpec = SCALAR_SPECS[0];

  constructor(
    private readonly src: ByteSource,
    private readonly path: string | undefined,
    chunk: number | undefined,
  ) {
    this.size = src.size;
    this.chunk = Math.max(64, chunk ?? DEFAULT_CHUNK);
  }

  private get pos(): number {
    return this.base + this.p;
  }

  private field(): string {
    let f = this.sect;
    if (this.idx >= 0) f += `[${this.idx}]`;
    f += this.part;
    for (let d = 0; d < this.depth; d++) f += `[${this.stack[d]}]`;
    return f;
  }

  private fail(code: GGUFErrorCode, offset: number, detail?: string, cause?: unknown): never {
    if (this.key !== undefined) detail = `key "${this.key}"${detail ? "; " + detail : ""}`;
    throw new GGUFError(code, { offset, field: this.field(), path: this.path, detail, cause });
  }

  /** Make `n` bytes available at `p`; `what` names them in a truncation error. */
  private need(n: number, what: string): void {
    if (this.p + n <= this.buf.length) return;
    const pos = this.pos;
    if (n > this.size - pos) {
      this.fail("truncated", pos, `${what}; file has ${this.size} bytes`);
    }
    const len = Math.min(Math.max(n, this.chunk), this.size - pos);
    const b = this.src.read(pos, len);
    if (b.length < n) this.fail("truncated", pos, `${what}; source returned ${b.length} bytes`);
    this.buf = b;
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.base = pos;
    this.p = 0;
  }

  private u32(what: string): number {
    this.need(4, what);
    const v = this.dv.getUint32(this.p, true);
    this.p += 4;
    return v;
  }

  /** A u64 that must be below 2^53 (counts, lengths, dims, offsets). */
  private u64(what: string): number {
    this.need(8, what);
    const lo = this.dv.getUint32(this.p, true);
    const hi = this.dv.getUint32(this.p + 4, true);
    if (hi > MAX_HI) {
      const v = this.dv.getBigUint64(this.p, true);
      this.fail("overflow", this.pos, `${what} is ${v}, beyond 2^53`);
    }
    this.p += 8;
    return hi * TWO32 + lo;
  }

  private str(what: string): string {
    const start = this.pos;
    let len: number;
    if (this.p + 8 <= this.buf.length) {
      // Hot path (150k tokens per vocab): no message strings are built unless something fails.
      const lo = this.dv.getUint32(this.p, true);
      const hi = this.dv.getUint32(this.p + 4, true);
      if (hi > MAX_HI) {
        const v = this.dv.getBigUint64(this.p, true);
        this.fail("overflow", start, `${what} length is ${v}, beyond 2^53`);
      }
      this.p += 8;
      len = hi * TWO32 + lo;
    } else {
      len = this.u64(`${what} length (u64)`);
    }
    if (len > this.size - this.pos) {
      this.fail("truncated", start, `${what} of ${len} bytes; file has ${this.size} bytes`);
    }
    if (this.p + len > this.buf.length) this.need(len, `${what} of ${len} bytes`);
    const p = this.p;
    this.p += len;
    if (len <= SHORT_STRING && !IS_BUN) {
      const s = decodeShort(this.buf, p, p + len);
      if (s !== null) return s;
    }
    try {
      return decoder.decode(this.buf.subarray(p, p + len));
    } catch (e) {
      return this.fail("bad_utf8", start, `${what} of ${len} bytes is not valid UTF-8`, e);
    }
  }

  parse(): GGUFFile {
    const size = this.size;
    // --- header
    this.part = ".magic";
    this.need(4, "magic (4 bytes)");
    const b0 = this.buf[0], b1 = this.buf[1], b2 = this.buf[2], b3 = this.buf[3];
    if (b0 !== 0x47 || b1 !== 0x47 || b2 !== 0x55 || b3 !== 0x46) {
      const got = [b0, b1, b2, b3].map((x) => "0x" + x.toString(16).padStart(2, "0")).join(" ");
      this.fail("bad_magic", 0, `expected "GGUF", got ${got}`);
    }
    this.p = 4;
    this.part = ".version";
    const version = this.u32("version (u32)");
    if (version !== 2 && version !== 3) {
      const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 |
        version >>> 24) >>> 0;
      let detail: string;
      if (version === 1) detail = "GGUF v1 is not supported; convert the file to v3";
      else if ((version & 0xffff) === 0 && swapped >= 1 && swapped <= 3) {
        detail = `big-endian GGUF v${swapped} is not supported; use a little-endian file`;
      } else detail = `version ${version}; supported are 2 and 3`;
      this.fail("unsupported_version", 4, detail);
    }
    this.part = ".tensor_count";
    const nTensors = this.u64("tensor count (u64)");
    this.part = ".kv_count";
    const nKV = this.u64("kv count (u64)");
    // Smallest kv: empty key (8) + type (4) + 1-byte value; smallest tensor info: 32 bytes.
    if (nKV * 13 > size - this.pos) {
      this.fail("truncated", 16, `${nKV} kv pairs need at least ${nKV * 13} bytes`);
    }
    this.part = ".tensor_count";
    if (nTensors * 32 > size - this.pos) {
      this.fail("truncated", 8, `${nTensors} tensor infos need at least ${nTensors * 32} bytes`);
    }

    // --- metadata
    const kv = new Map<string, GGUFValue>();
    const kvTypes = new Map<string, GGUFTypeSpec>();
    const kvOffsets = new Map<string, number>();
    this.sect = "kv";
    for (let i = 0; i < nKV; i++) {
      this.idx = i;
      this.key = undefined;
      this.part = ".key";
      const keyAt = this.pos;
      const key = this.str("key string");
      if (kv.has(key)) this.fail("duplicate_name", keyAt, `key "${key}" appears twice`);
      this.key = key;
      this.part = ".type";
      const t = this.u32("value type (u32)");
      if (!isGGUFValueType(t)) this.fail("unknown_type", this.pos - 4, `value type ${t}`);
      this.part = ".value";
      kvOffsets.set(key, this.pos);
      kv.set(key, this.value(t));
      kvTypes.set(key, this.spec);
    }
    this.key = undefined;

    // --- alignment
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const av = kv.get("general.alignment");
    if (av !== undefined) {
      this.sect = 'kv["general.alignment"]';
      this.idx = -1;
      this.part = "";
      const at = kvOffsets.get("general.alignment")!;
      const at_t = kvTypes.get("general.alignment")!.type;
      if (at_t !== T.UINT32) {
        this.fail("bad_alignment", at, `type is ${valueTypeName(at_t)}, must be UINT32`);
      }
      const a = av as number;
      if (a === 0 || (a & (a - 1)) !== 0) {
        this.fail("bad_alignment", at, `${a} is not a power of two`);
      }
      alignment = a;
    }

    // --- tensor infos
    const tensors: TensorInfo[] = new Array(nTensors);
    const tensorByName = new Map<string, TensorInfo>();
    const offsetAt: number[] = new Array(nTensors); // file offset of each tensor's offset field
    this.sect = "tensor_infos";
    for (let i = 0; i < nTensors; i++) {
      this.idx = i;
      this.part = ".name";
      const nameAt = this.pos;
      const name = this.str("name string");
      if (tensorByName.has(name)) {
        this.fail("duplicate_name", nameAt, `tensor "${name}" appears twice`);
      }
      this.part = ".n_dims";
      const nDims = this.u32("n_dims (u32)");
      if (nDims === 0 || nDims > GGUF_MAX_DIMS) {
        this.fail("bad_shape", this.pos - 4, `n_dims is ${nDims}, must be 1 to ${GGUF_MAX_DIMS}`);
      }
      this.part = ".dims";
      this.depth = 1;
      const dimsAt = this.pos;
      const shape: number[] = new Array(nDims);
      let nElements = 1;
      this.need(8 * nDims, `${nDims} dims (u64)`);
      for (let d = 0; d < nDims; d++) {
        this.stack[0] = d;
        const lo = this.dv.getUint32(this.p, true);
        const hi = this.dv.getUint32(this.p + 4, true);
        if (hi >= 0x80000000) {
          const v = this.dv.getBigInt64(this.p, true);
          this.fail("bad_shape", this.pos, `dim is ${v}, negative`);
        }
        if (hi > MAX_HI) {
          const v = this.dv.getBigUint64(this.p, true);
          this.fail("overflow", this.pos, `dim is ${v}, beyond 2^53`);
        }
        const v = hi * TWO32 + lo;
        if (v === 0) this.fail("bad_shape", this.pos, `dim is 0`);
        nElements *= v;
        if (!Number.isSafeInteger(nElements)) {
          this.fail(
            "overflow",
            this.pos,
            `element count of [${shape.slice(0, d)}, ${v}, ...] beyond 2^53`,
          );
        }
        shape[d] = v;
        this.p += 8;
      }
      this.depth = 0;
      this.part = ".type";
      const type = this.u32("ggml type (u32)");
      if (!isGGMLType(type)) this.fail("unknown_type", this.pos - 4, `ggml type id ${type}`);
      const ti = typeInfo(type);
      if (shape[0] % ti.blockSize !== 0) {
        this.part = ".dims";
        this.stack[0] = 0;
        this.depth = 1;
        this.fail(
          "bad_shape",
          dimsAt,
          `ne0 = ${shape[0]} is not a multiple of the ${ti.name} block size ${ti.blockSize}`,
        );
      }
      const nbytes = (shape[0] / ti.blockSize) * ti.typeSize * (nElements / shape[0]);
      if (!Number.isSafeInteger(nbytes)) {
        this.part = ".dims";
        this.fail("overflow", dimsAt, `${nElements} elements of ${ti.name} is beyond 2^53 bytes`);
      }
      this.part = ".offset";
      offsetAt[i] = this.pos;
      const offset = this.u64("offset (u64)");
      if (offset % alignment !== 0) {
        this.fail(
          "bad_alignment",
          this.pos - 8,
          `offset ${offset} is not a multiple of ${alignment}`,
        );
      }
      const info: TensorInfo = {
        name,
        type,
        typeName: ti.name,
        shape,
        nElements,
        nbytes,
        offset,
        absoluteOffset: 0,
      };
      tensors[i] = info;
      tensorByName.set(name, info);
    }

    // --- data section
    const headerSize = this.pos;
    const dataOffset = alignUp(headerSize, alignment);
    const dataSize = size - dataOffset;
    for (let i = 0; i < nTensors; i++) {
      const t = tensors[i] as { absoluteOffset: number } & TensorInfo;
      t.absoluteOffset = dataOffset + t.offset;
      if (t.offset + t.nbytes > dataSize) {
        this.idx = i;
        this.part = ".offset";
        this.fail(
          "out_of_bounds",
          offsetAt[i],
          `tensor "${t.name}" data [${t.absoluteOffset}, ${t.absoluteOffset + t.nbytes}) ends ` +
            `past the end of the file (${size} bytes, data section at ${dataOffset})`,
        );
      }
    }
    const order = tensors.map((_, i) => i).sort((a, b) => tensors[a].offset - tensors[b].offset);
    for (let k = 1; k < order.length; k++) {
      const a = tensors[order[k - 1]], b = tensors[order[k]];
      if (a.offset + a.nbytes > b.offset) {
        this.idx = order[k];
        this.part = ".offset";
        this.fail(
          "overlap",
          offsetAt[order[k]],
          `tensor "${b.name}" data [${b.offset}, ${b.offset + b.nbytes}) overlaps tensor ` +
            `"${a.name}" [${a.offset}, ${a.offset + a.nbytes}) (offsets relative to data section)`,
        );
      }
    }

    return {
      version,
      kv,
      kvTypes,
      kvOffsets,
      tensors,
      tensorByName,
      alignment,
      headerSize,
      dataOffset,
      fileSize: size,
      ...(this.path !== undefined ? { path: this.path } : {}),
    };
  }

  /** Read one value of type `t` (known valid); sets `this.spec`. */
  private value(t: number): GGUFValue {
    this.spec = SCALAR_SPECS[t];
    switch (t) {
      case T.UINT8:
        this.need(1, "u8");
        return this.buf[this.p++];
      case T.INT8: {
        this.need(1, "i8");
        const v = this.dv.getInt8(this.p);
        this.p += 1;
        return v;
      }
      case T.UINT16: {
        this.need(2, "u16");
        const v = this.dv.getUint16(this.p, true);
        this.p += 2;
        return v;
      }
      case T.INT16: {
        this.need(2, "i16");
        const v = this.dv.getInt16(this.p, true);
        this.p += 2;
        return v;
      }
      case T.UINT32:
        return this.u32("u32");
      case T.INT32: {
        this.need(4, "i32");
        const v = this.dv.getInt32(this.p, true);
        this.p += 4;
        return v;
      }
      case T.FLOAT32: {
        this.need(4, "f32");
        const v = this.dv.getFloat32(this.p, true);
        this.p += 4;
        return v;
      }
      case T.FLOAT64: {
        this.need(8, "f64");
        const v = this.dv.getFloat64(this.p, true);
        this.p += 8;
        return v;
      }
      case T.UINT64:
      case T.INT64: {
        this.need(8, t === T.UINT64 ? "u64" : "i64");
        const v = read64(this.dv, this.p, t === T.INT64);
        this.p += 8;
        return v;
      }
      case T.BOOL: {
        this.need(1, "bool");
        const v = this.buf[this.p];
        if (v > 1) this.fail("bad_value", this.pos, `bool byte is ${v}, must be 0 or 1`);
        this.p++;
        return v === 1;
      }
      case T.STRING:
        return this.str("string");
      default: // ARRAY
        return this.array();
    }
  }

  private array(): GGUFArray {
    const start = this.pos;
    const et = this.u32("array element type (u32)");
    if (!isGGUFValueType(et)) this.fail("unknown_type", start, `array element type ${et}`);
    const count = this.u64("array length (u64)");
    const minSize = et === T.STRING ? 8 : et === T.ARRAY ? 12 : valueTypeSize(et);
    const left = this.size - this.pos;
    if (count * minSize > left) {
      this.fail(
        "truncated",
        start,
        `array of ${count} ${valueTypeName(et)} needs at least ${count * minSize} bytes, ` +
          `${left} left in file`,
      );
    }
    this.spec = ARRAY_SPECS[et];
    switch (et) {
      case T.STRING: {
        const out: string[] = new Array(count);
        const d = this.depth++;
        for (let i = 0; i < count; i++) {
          this.stack[d] = i;
          out[i] = this.str("string");
        }
        this.depth = d;
        this.spec = ARRAY_SPECS[et];
        return out;
      }
      case T.ARRAY: {
        if (this.depth + 2 > GGUF_MAX_ARRAY_DEPTH) {
          this.fail("bad_value", start, `arrays nested deeper than ${GGUF_MAX_ARRAY_DEPTH}`);
        }
        const out: GGUFArray[] = new Array(count);
        const items: GGUFTypeSpec[] = new Array(count);
        const d = this.depth++;
        for (let i = 0; i < count; i++) {
          this.stack[d] = i;
          out[i] = this.array();
          items[i] = this.spec;
        }
        this.depth = d;
        this.spec = { type: 9, elementType: 9, items };
        return out;
      }
      case T.BOOL: {
        this.need(count, `array of ${count} BOOL`);
        const out: boolean[] = new Array(count);
        const b = this.buf, p = this.p;
        for (let i = 0; i < count; i++) {
          const v = b[p + i];
          if (v > 1) {
            this.stack[this.depth++] = i;
            this.fail("bad_value", this.base + p + i, `bool byte is ${v}, must be 0 or 1`);
          }
          out[i] = v === 1;
        }
        this.p += count;
        return out;
      }
      case T.UINT64:
      case T.INT64: {
        this.need(count * 8, `array of ${count} ${valueTypeName(et)}`);
        const out: (number | bigint)[] = new Array(count);
        const signed = et === T.INT64;
        for (let i = 0; i < count; i++) out[i] = read64(this.dv, this.p + 8 * i, signed);
        this.p += count * 8;
        return out;
      }
      default:
        return this.typedArray(et, count);
    }
  }

  private typedArray(et: number, count: number): GGUFArray {
    const n = count * valueTypeSize(et as 0);
    this.need(n, `array of ${count} ${valueTypeName(et)}`);
    // An own, aligned copy. (Not `.slice()`: on a Node Buffer that is a view, not a copy.)
    const bytes = new Uint8Array(n);
    bytes.set(this.buf.subarray(this.p, this.p + n));
    this.p += n;
    if (!LE_HOST && n > 0) swapInPlace(bytes, valueTypeSize(et as 0));
    const ab = bytes.buffer;
    switch (et) {
      case T.UINT8:
        return bytes;
      case T.INT8:
        return new Int8Array(ab);
      case T.UINT16:
        return new Uint16Array(ab);
      case T.INT16:
        return new Int16Array(ab);
      case T.UINT32:
        return new Uint32Array(ab);
      case T.INT32:
        return new Int32Array(ab);
      case T.FLOAT32:
        return new Float32Array(ab);
      default: // FLOAT64
        return new Float64Array(ab);
    }
  }
}

const SHORT_STRING = 64;
// Bun's TextDecoder is fast (~0.1 µs a call) and beats the JS decoder there; Deno's is not.
const IS_BUN = "Bun" in globalThis;

/**
 * Decode a short UTF-8 string without TextDecoder (which costs ~0.4 µs a call); null when the
 * bytes are not valid UTF-8 (the caller then lets TextDecoder produce the error). Rejects what
 * a fatal TextDecoder rejects: bad lead or continuation bytes, overlong forms, surrogates and
 * code points above U+10FFFF.
 */
function decodeShort(b: Uint8Array, p: number, end: number): string | null {
  let s = "";
  while (p < end) {
    const c = b[p++];
    if (c < 0x80) {
      s += String.fromCharCode(c);
    } else if (c < 0xc2) {
      return null;
    } else if (c < 0xe0) {
      if (p >= end) return null;
      const c2 = b[p++];
      if ((c2 & 0xc0) !== 0x80) return null;
      s += String.fromCharCode(((c & 0x1f) << 6) | (c2 & 0x3f));
    } else if (c < 0xf0) {
      if (p + 1 >= end) return null;
      const c2 = b[p++], c3 = b[p++];
      if ((c2 & 0xc0) !== 0x80 || (c3 & 0xc0) !== 0x80) return null;
      if (c === 0xe0 && c2 < 0xa0) return null; // overlong
      if (c === 0xed && c2 >= 0xa0) return null; // surrogate
      s += String.fromCharCode(((c & 0x0f) << 12) | ((c2 & 0x3f) << 6) | (c3 & 0x3f));
    } else if (c < 0xf5) {
      if (p + 2 >= end) return null;
      const c2 = b[p++], c3 = b[p++], c4 = b[p++];
      if ((c2 & 0xc0) !== 0x80 || (c3 & 0xc0) !== 0x80 || (c4 & 0xc0) !== 0x80) return null;
      if (c === 0xf0 && c2 < 0x90) return null; // overlong
      if (c === 0xf4 && c2 >= 0x90) return null; // above U+10FFFF
      const cp = (((c & 0x07) << 18) | ((c2 & 0x3f) << 12) | ((c3 & 0x3f) << 6) | (c4 & 0x3f)) -
        0x10000;
      s += String.fromCharCode(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
      return null;
    }
  }
  return s;
}

/** Read a 64-bit integer: a number when it is a safe integer, else a bigint. */
function read64(dv: DataView, p: number, signed: boolean): number | bigint {
  const lo = dv.getUint32(p, true);
  if (signed) {
    const hi = dv.getInt32(p + 4, true);
    const v = hi * TWO32 + lo;
    if (hi >= -0x200000 && hi <= MAX_HI && Number.isSafeInteger(v)) return v;
    return dv.getBigInt64(p, true);
  }
  const hi = dv.getUint32(p + 4, true);
  if (hi <= MAX_HI) return hi * TWO32 + lo;
  return dv.getBigUint64(p, true);
}

function swapInPlace(b: Uint8Array, width: number): void {
  for (let i = 0; i < b.length; i += width) b.subarray(i, i + width).reverse();
}

// ---------------------------------------------------------------------------------------------
// Typed getters

function kvError(g: GGUFFile, key: string, detail: string): GGUFError {
  return new GGUFError("bad_value", {
    field: `kv[${JSON.stringify(key)}]`,
    offset: g.kvOffsets.get(key),
    path: g.path,
    detail,
  });
}

function typeText(g: GGUFFile, key: string): string {
  const s = g.kvTypes.get(key);
  if (s === undefined) return "missing";
  return s.type === 9 ? `ARRAY of ${valueTypeName(s.elementType)}` : valueTypeName(s.type);
}

/**
 * The value of `key`, any type.
 * @throws GGUFError `bad_value` if the key is missing
 */
export function getValue(g: GGUFFile, key: string): GGUFValue {
  const v = g.kv.get(key);
  if (v === undefined) throw kvError(g, key, `key "${key}" is missing`);
  return v;
}

/**
 * The STRING value of `key`.
 * @throws GGUFError `bad_value` if missing or not a string
 */
export function getString(g: GGUFFile, key: string): string {
  const v = getOptionalString(g, key);
  if (v === undefined) throw kvError(g, key, `key "${key}" is missing`);
  return v;
}

/**
 * The STRING value of `key`, or undefined when absent.
 * @throws GGUFError `bad_value` if present but not a string
 */
export function getOptionalString(g: GGUFFile, key: string): string | undefined {
  const v = g.kv.get(key);
  if (v === undefined || typeof v === "string") return v;
  throw kvError(g, key, `key "${key}" is ${typeText(g, key)}, expected STRING`);
}

/**
 * The numeric value (any integer or float type) of `key`, as a number.
 * @throws GGUFError `bad_value` if missing, not numeric, or a 64-bit value beyond 2^53
 */
export function getNumber(g: GGUFFile, key: string): number {
  const v = getOptionalNumber(g, key);
  if (v === undefined) throw kvError(g, key, `key "${key}" is missing`);
  return v;
}

/**
 * The numeric value of `key` as a number, or undefined when absent.
 * @throws GGUFError `bad_value` if present but not numeric, or beyond 2^53
 */
export function getOptionalNumber(g: GGUFFile, key: string): number | undefined {
  const v = g.kv.get(key);
  if (v === undefined || typeof v === "number") return v;
  if (typeof v === "bigint") {
    throw kvError(g, key, `key "${key}" is ${v}, beyond the safe integer range`);
  }
  throw kvError(g, key, `key "${key}" is ${typeText(g, key)}, expected a number`);
}

/**
 * The BOOL value of `key`.
 * @throws GGUFError `bad_value` if missing or not a bool
 */
export function getBool(g: GGUFFile, key: string): boolean {
  const v = getOptionalBool(g, key);
  if (v === undefined) throw kvError(g, key, `key "${key}" is missing`);
  return v;
}

/**
 * The BOOL value of `key`, or undefined when absent.
 * @throws GGUFError `bad_value` if present but not a bool
 */
export function getOptionalBool(g: GGUFFile, key: string): boolean | undefined {
  const v = g.kv.get(key);
  if (v === undefined || typeof v === "boolean") return v;
  throw kvError(g, key, `key "${key}" is ${typeText(g, key)}, expected BOOL`);
}

/**
 * The ARRAY value of `key` (a typed array or a plain array, see {@link GGUFValue}).
 * @throws GGUFError `bad_value` if missing or not an array
 */
export function getArray(g: GGUFFile, key: string): GGUFArray {
  const v = getOptionalArray(g, key);
  if (v === undefined) throw kvError(g, key, `key "${key}" is missing`);
  return v;
}

/**
 * The ARRAY value of `key`, or undefined when absent.
 * @throws GGUFError `bad_value` if present but not an array
 */
export function getOptionalArray(g: GGUFFile, key: string): GGUFArray | undefined {
  const v = g.kv.get(key);
  if (v === undefined) return undefined;
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return v as GGUFArray;
  throw kvError(g, key, `key "${key}" is ${typeText(g, key)}, expected ARRAY`);
}

/**
 * The ARRAY of STRING value of `key`, e.g. `tokenizer.ggml.tokens`.
 * @throws GGUFError `bad_value` if missing or not an array of strings
 */
export function getStringArray(g: GGUFFile, key: string): readonly string[] {
  const v = getArray(g, key);
  const s = g.kvTypes.get(key);
  if (s?.type !== 9 || s.elementType !== T.STRING) {
    throw kvError(g, key, `key "${key}" is ${typeText(g, key)}, expected ARRAY of STRING`);
  }
  return v as readonly string[];
}
