/**
 * GGUF v3 writer: a streaming file writer ({@link GGUFWriter}) and an in-memory encoder
 * ({@link encodeGGUF}).
 *
 * Both lay the file out like llama.cpp does: header, padding to the alignment, then each
 * tensor's data in declaration order, each padded to the alignment (so every offset is
 * aligned). The alignment is `general.alignment` if the metadata has it, else the `alignment`
 * option, else 32; a non-default option adds a `general.alignment` UINT32 entry.
 *
 * Metadata types are inferred when not given (see {@link inferTypeSpec}): string -> STRING,
 * boolean -> BOOL, integer -> UINT32 (INT32 if negative; UINT64/INT64 beyond 32 bits), other
 * numbers -> FLOAT32, bigint -> UINT64 (INT64 if negative), typed arrays -> ARRAY of the
 * matching type. Give `type` on an entry to choose (e.g. FLOAT32 for the number 1, or
 * `{ type: ARRAY, elementType: UINT8 }`). 64-bit values take a number (safe integer) or a bigint.
 *
 * @module
 */

import { closeSync, openSync, unlinkSync, writeSync } from "node:fs";
import { ByteBuf } from "./_bytes.ts";
import { GGUFError, type GGUFErrorCode } from "./errors.ts";
import {
  alignUp,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAX_DIMS,
  type GGUFFile,
  type TensorInfo,
} from "./reader.ts";
import {
  type GGUFArray,
  type GGUFTypeSpec,
  type GGUFValue,
  GGUFValueType,
  type GGUFValueTypeId,
  isGGUFValueType,
  tensorBytes,
  typeInfo,
  valueTypeName,
} from "./types.ts";

const T = GGUFValueType;
const LE_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
/** Longest tensor name llama.cpp accepts (GGML_MAX_NAME is 64 including the NUL). */
export const GGUF_MAX_TENSOR_NAME = 63;

/** A tensor to write: name, ggml type and shape in ggml order (ne0 first). */
export interface TensorDescriptor {
  /** Tensor name (at most 63 UTF-8 bytes, as llama.cpp requires). */
  readonly name: string;
  /** ggml type id, e.g. `GGMLType.Q4_K`. */
  readonly type: number;
  /** Dims, ne0 first; 1 to 4 positive integers, ne0 a multiple of the block size. */
  readonly shape: readonly number[];
}

/** A type hint for a metadata entry: a full or partial {@link GGUFTypeSpec}. */
export interface GGUFTypeHint {
  /** Value type. */
  readonly type: GGUFValueTypeId;
  /** For ARRAY: the element type; inferred from the elements when absent. */
  readonly elementType?: GGUFValueTypeId;
  /** For ARRAY of ARRAY: hints for each inner array. */
  readonly items?: readonly (GGUFTypeHint | GGUFValueTypeId)[];
}

/** One metadata entry to write. */
export interface GGUFKVEntry {
  /** Key, e.g. `general.architecture`. */
  readonly key: string;
  /** Value. */
  readonly value: GGUFValue;
  /** Declared type; inferred from `value` when absent. */
  readonly type?: GGUFValueTypeId | GGUFTypeHint;
}

/** Metadata to write: entries with optional types, or a map/record (types inferred). */
export type GGUFKVInput =
  | readonly GGUFKVEntry[]
  | ReadonlyMap<string, GGUFValue>
  | Readonly<Record<string, GGUFValue>>;

/** What a GGUF file will contain. */
export interface GGUFLayoutOptions {
  /** Metadata, written in this order. */
  kv?: GGUFKVInput;
  /** Tensors, whose data is written in this order. */
  tensors?: readonly TensorDescriptor[];
  /** Data alignment (power of two) when the metadata has no `general.alignment`; default 32. */
  alignment?: number;
}

/** The planned layout of a file: header bytes and where each tensor goes. */
export interface GGUFLayout {
  /** Header, already padded to `dataOffset` bytes. */
  readonly header: Uint8Array;
  /** Tensors with their offsets and sizes, in write order. */
  readonly tensors: readonly TensorInfo[];
  /** Data alignment. */
  readonly alignment: number;
  /** Start of the data section. */
  readonly dataOffset: number;
  /** Total file size. */
  readonly fileSize: number;
}

function wErr(code: GGUFErrorCode, field: string | undefined, detail: string, path?: string) {
  return new GGUFError(code, { field, detail, path, op: "writing" });
}

function normalizeKV(kv: GGUFKVInput | undefined): GGUFKVEntry[] {
  if (kv === undefined) return [];
  if (Array.isArray(kv)) return kv.slice();
  if (kv instanceof Map) return [...kv].map(([key, value]) => ({ key, value }));
  return Object.entries(kv as Record<string, GGUFValue>).map(([key, value]) => ({ key, value }));
}

/** Metadata entries of a parsed file with their declared types, to rewrite it exactly. */
export function kvEntriesOf(g: GGUFFile): GGUFKVEntry[] {
  return [...g.kv].map(([key, value]) => ({ key, value, type: g.kvTypes.get(key) }));
}

// ---------------------------------------------------------------------------------------------
// Type inference and checking

function isTypedArray(v: unknown): v is GGUFArray & ArrayBufferView {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

function typedArrayType(v: ArrayBufferView): GGUFValueTypeId | undefined {
  if (v instanceof Uint8Array) return T.UINT8;
  if (v instanceof Int8Array) return T.INT8;
  if (v instanceof Uint16Array) return T.UINT16;
  if (v instanceof Int16Array) return T.INT16;
  if (v instanceof Uint32Array) return T.UINT32;
  if (v instanceof Int32Array) return T.INT32;
  if (v instanceof Float32Array) return T.FLOAT32;
  if (v instanceof Float64Array) return T.FLOAT64;
  if (v instanceof BigInt64Array) return T.INT64;
  if (v instanceof BigUint64Array) return T.UINT64;
  return undefined;
}

function inferIntType(min: number | bigint, max: number | bigint): GGUFValueTypeId {
  if (min >= 0) return max <= 0xffffffff ? T.UINT32 : T.UINT64;
  return min >= -0x80000000 && max <= 0x7fffffff ? T.INT32 : T.INT64;
}

function inferScalar(v: unknown, field: string): GGUFValueTypeId {
  switch (typeof v) {
    case "string":
      return T.STRING;
    case "boolean":
      return T.BOOL;
    case "bigint":
      return v < 0n ? T.INT64 : T.UINT64;
    case "number":
      return Number.isSafeInteger(v) ? inferIntType(v, v) : T.FLOAT32;
    default:
      if (Array.isArray(v) || isTypedArray(v)) return T.ARRAY;
      throw wErr("bad_value", field, `cannot store a ${typeof v} in GGUF`);
  }
}

function inferElementType(a: readonly unknown[], field: string): GGUFValueTypeId {
  if (a.length === 0) {
    throw wErr("bad_value", field, "cannot infer the element type of an empty array; give a type");
  }
  const first = inferScalar(a[0], `${field}[0]`);
  if (first === T.STRING || first === T.BOOL || first === T.ARRAY) {
    for (let i = 1; i < a.length; i++) {
      if (inferScalar(a[i], `${field}[${i}]`) !== first) {
        throw wErr("bad_value", `${field}[${i}]`, `array mixes ${valueTypeName(first)} and others`);
      }
    }
    return first;
  }
  let min: number | bigint = 0, max: number | bigint = 0, float = false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (typeof x === "number") {
      if (!Number.isSafeInteger(x)) float = true;
    } else if (typeof x !== "bigint") {
      throw wErr("bad_value", `${field}[${i}]`, "array mixes numbers and others");
    }
    if (x! < min) min = x as number | bigint;
    if (x! > max) max = x as number | bigint;
  }
  return float ? T.FLOAT32 : inferIntType(min, max);
}

/**
 * The GGUF type a value gets when no type is given (see the module doc for the rules).
 * @throws GGUFError `bad_value` for values GGUF cannot hold, mixed or empty untyped arrays
 */
export function inferTypeSpec(value: GGUFValue, field = "value"): GGUFTypeSpec {
  return resolveSpec(value, undefined, field);
}

function resolveSpec(
  value: unknown,
  hint: GGUFValueTypeId | GGUFTypeHint | undefined,
  field: string,
): GGUFTypeSpec {
  const h: GGUFTypeHint | undefined = typeof hint === "number" ? { type: hint } : hint;
  const type = h?.type ?? inferScalar(value, field);
  if (!isGGUFValueType(type)) throw wErr("unknown_type", field, `value type ${type}`);
  if (type !== T.ARRAY) return { type };
  if (!Array.isArray(value) && !isTypedArray(value)) {
    throw wErr("bad_value", field, `expected an array for ARRAY, got ${typeof value}`);
  }
  let et = h?.elementType;
  if (et === undefined) {
    et = isTypedArray(value)
      ? typedArrayType(value)
      : inferElementType(value as readonly unknown[], field);
    if (et === undefined) throw wErr("bad_value", field, "unsupported typed array");
  }
  if (!isGGUFValueType(et)) throw wErr("unknown_type", field, `array element type ${et}`);
  if (et !== T.ARRAY) return { type: 9, elementType: et };
  if (!Array.isArray(value)) throw wErr("bad_value", field, "ARRAY of ARRAY needs a plain array");
  const items = (value as readonly unknown[]).map((v, i) => {
    const ih = h?.items?.[i];
    return resolveSpec(v, ih ?? T.ARRAY, `${field}[${i}]`);
  });
  return { type: 9, elementType: 9, items };
}

const INT_RANGES: Partial<Record<number, readonly [number, number]>> = {
  [T.UINT8]: [0, 0xff],
  [T.INT8]: [-0x80, 0x7f],
  [T.UINT16]: [0, 0xffff],
  [T.INT16]: [-0x8000, 0x7fff],
  [T.UINT32]: [0, 0xffffffff],
  [T.INT32]: [-0x80000000, 0x7fffffff],
};

function writeScalar(b: ByteBuf, v: unknown, t: number, field: string): void {
  const bad = (what: string): never => {
    throw wErr(
      "bad_value",
      field,
      `${String(v)} (${typeof v}) is not a valid ${valueTypeName(t)}${what}`,
    );
  };
  switch (t) {
    case T.UINT8:
    case T.INT8:
    case T.UINT16:
    case T.INT16:
    case T.UINT32:
    case T.INT32: {
      const [lo, hi] = INT_RANGES[t]!;
      if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) bad("");
      const n = v as number;
      if (t === T.UINT8) b.u8(n);
      else if (t === T.INT8) b.i8(n);
      else if (t === T.UINT16) b.u16(n);
      else if (t === T.INT16) b.i16(n);
      else if (t === T.UINT32) b.u32(n);
      else b.i32(n);
      return;
    }
    case T.UINT64:
    case T.INT64: {
      let x: bigint;
      if (typeof v === "bigint") x = v;
      else if (typeof v === "number" && Number.isSafeInteger(v)) x = BigInt(v);
      else return bad(": use a safe integer or a bigint");
      if (t === T.UINT64 ? x < 0n || x > 0xffffffffffffffffn : x < -(1n << 63n) || x >= 1n << 63n) {
        bad(": out of range");
      }
      if (t === T.UINT64) b.u64(x);
      else b.i64(x);
      return;
    }
    case T.FLOAT32:
    case T.FLOAT64:
      if (typeof v !== "number") bad("");
      if (t === T.FLOAT32) b.f32(v as number);
      else b.f64(v as number);
      return;
    case T.BOOL:
      if (typeof v !== "boolean") bad("");
      b.u8(v ? 1 : 0);
      return;
    case T.STRING:
      if (typeof v !== "string") bad("");
      b.str(v as string);
      return;
  }
}

function writeValue(b: ByteBuf, v: unknown, spec: GGUFTypeSpec, field: string): void {
  if (spec.type !== T.ARRAY) return writeScalar(b, v, spec.type, field);
  const a = v as ArrayLike<unknown>;
  const et = spec.elementType;
  b.u32(et);
  b.u64(a.length);
  if (et === T.ARRAY) {
    const items = spec.items;
    if (items === undefined || items.length !== a.length) {
      throw wErr("bad_value", field, "ARRAY of ARRAY spec needs one item spec per element");
    }
    for (let i = 0; i < a.length; i++) {
      const item = a[i];
      if (!Array.isArray(item) && !isTypedArray(item)) {
        throw wErr("bad_value", `${field}[${i}]`, "expected an array");
      }
      writeValue(b, item, items[i], `${field}[${i}]`);
    }
    return;
  }
  // Fast path: a typed array of exactly the element type is copied as bytes.
  if (LE_HOST && isTypedArray(a) && typedArrayType(a) === et) {
    const view = a as ArrayBufferView;
    b.raw(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    return;
  }
  for (let i = 0; i < a.length; i++) {
    writeScalar(b, a[i], et, `${field}[${i}]`);
  }
}

// ---------------------------------------------------------------------------------------------
// Layout

/**
 * Validate tensors and metadata and lay the file out: the header bytes (padded) and each
 * tensor's offset.
 * @throws GGUFError `bad_value`, `bad_shape`, `unknown_type`, `duplicate_name`, `bad_alignment`
 */
export function planGGUF(options: GGUFLayoutOptions, path?: string): GGUFLayout {
  const entries = normalizeKV(options.kv);
  const keys = new Set<string>();
  const specs: GGUFTypeSpec[] = [];
  let alignment = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const checkAlign = (a: unknown, field: string) => {
    if (
      typeof a !== "number" || !Number.isInteger(a) || a <= 0 || a > 0x80000000 ||
      (a & (a - 1)) !== 0
    ) {
      throw new GGUFError("bad_alignment", {
        field,
        path,
        op: "writing",
        detail: `${String(a)} is not a power of two below 2^32`,
      });
    }
  };
  checkAlign(alignment, "alignment");
  let hasAlignKey = false;
  for (const e of entries) {
    const field = `kv[${JSON.stringify(e.key)}]`;
    if (typeof e.key !== "string") throw wErr("bad_value", field, "key must be a string", path);
    if (keys.has(e.key)) throw wErr("duplicate_name", field, `key "${e.key}" given twice`, path);
    keys.add(e.key);
    let spec: GGUFTypeSpec;
    try {
      spec = resolveSpec(e.value, e.type, field);
    } catch (err) {
      throw err instanceof GGUFError && path !== undefined ? err.withPath(path) : err;
    }
    specs.push(spec);
    if (e.key === "general.alignment") {
      if (spec.type !== T.UINT32) {
        throw new GGUFError("bad_alignment", {
          field,
          path,
          op: "writing",
          detail: `type is ${valueTypeName(spec.type)}, must be UINT32`,
        });
      }
      checkAlign(e.value, field);
      if (options.alignment !== undefined && options.alignment !== e.value) {
        throw new GGUFError("bad_alignment", {
          field,
          path,
          op: "writing",
          detail: `option alignment ${options.alignment} differs from general.alignment ${e.value}`,
        });
      }
      alignment = e.value as number;
      hasAlignKey = true;
    }
  }
  if (!hasAlignKey && alignment !== GGUF_DEFAULT_ALIGNMENT) {
    entries.push({ key: "general.alignment", value: alignment });
    specs.push({ type: T.UINT32 });
  }

  // Tensors.
  const descs = options.tensors ?? [];
  const names = new Set<string>();
  const tensors: TensorInfo[] = [];
  let offset = 0;
  const nameEnc = new TextEncoder();
  descs.forEach((d, i) => {
    const field = `tensor_infos[${i}]`;
    const fail = (code: GGUFErrorCode, sub: string, detail: string): never => {
      throw new GGUFError(code, { field: field + sub, path, op: "writing", detail });
    };
    if (typeof d.name !== "string") fail("bad_value", ".name", "name must be a string");
    if (names.has(d.name)) fail("duplicate_name", ".name", `tensor "${d.name}" given twice`);
    if (nameEnc.encode(d.name).length > GGUF_MAX_TENSOR_NAME) {
      fail("bad_value", ".name", `name "${d.name}" is longer than ${GGUF_MAX_TENSOR_NAME} bytes`);
    }
    names.add(d.name);
    if (!Array.isArray(d.shape) || d.shape.length === 0 || d.shape.length > GGUF_MAX_DIMS) {
      fail("bad_shape", ".n_dims", `tensor "${d.name}" needs 1 to ${GGUF_MAX_DIMS} dims`);
    }
    let ti, nbytes;
    try {
      ti = typeInfo(d.type);
      nbytes = tensorBytes(d.type, d.shape);
    } catch (e) {
      const ge = e as GGUFError;
      throw new GGUFError(ge.code, {
        field: field + (ge.code === "unknown_type" ? ".type" : ".dims"),
        path,
        op: "writing",
        detail: `tensor "${d.name}": ${ge.detail}`,
        cause: e,
      });
    }
    const shape = d.shape.slice();
    tensors.push({
      name: d.name,
      type: ti.id,
      typeName: ti.name,
      shape,
      nElements: shape.reduce((a, b) => a * b, 1),
      nbytes,
      offset,
      absoluteOffset: 0,
    });
    offset = alignUp(offset + nbytes, alignment);
  });

  // Header.
  const b = new ByteBuf(4096);
  b.raw(new Uint8Array([0x47, 0x47, 0x55, 0x46])).u32(3).u64(tensors.length).u64(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i], s = specs[i];
    b.str(e.key).u32(s.type);
    try {
      writeValue(b, e.value, s, `kv[${JSON.stringify(e.key)}]`);
    } catch (err) {
      throw err instanceof GGUFError && path !== undefined ? err.withPath(path) : err;
    }
  }
  for (const t of tensors) {
    b.str(t.name).u32(t.shape.length);
    for (const d of t.shape) b.u64(d);
    b.u32(t.type).u64(t.offset);
  }
  b.pad(alignment);
  const dataOffset = b.length;
  for (const t of tensors) (t as { absoluteOffset: number }).absoluteOffset = dataOffset + t.offset;
  return {
    header: b.view(),
    tensors,
    alignment,
    dataOffset,
    fileSize: dataOffset + offset,
  };
}

/** A tensor for {@link encodeGGUF}: a descriptor plus its data (zeros when absent). */
export interface TensorWithData extends TensorDescriptor {
  /** Exactly the tensor's bytes; zeros when absent. */
  readonly data?: Uint8Array;
}

/** Options of {@link encodeGGUF}: a layout whose tensors may carry their data. */
export interface EncodeGGUFOptions extends GGUFLayoutOptions {
  /** Tensors with their data, in order. */
  tensors?: readonly TensorWithData[];
}

/**
 * Encode a whole GGUF v3 file in memory (for tests, fuzzing, small fixtures).
 * @throws GGUFError as {@link planGGUF}, and `bad_value` when a tensor's data has the wrong size
 */
export function encodeGGUF(options: EncodeGGUFOptions): Uint8Array {
  const layout = planGGUF(options);
  const out = new Uint8Array(layout.fileSize);
  out.set(layout.header, 0);
  const descs = options.tensors ?? [];
  layout.tensors.forEach((t, i) => {
    const data = descs[i].data;
    if (data === undefined) return;
    if (data.length !== t.nbytes) {
      throw wErr(
        "bad_value",
        `tensor_infos[${i}].data`,
        `tensor "${t.name}" needs ${t.nbytes} bytes, got ${data.length}`,
      );
    }
    out.set(data, t.absoluteOffset);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Streaming writer

/**
 * Write a GGUF v3 file to disk, one tensor at a time, with `node:fs` (Deno and Bun).
 *
 * The header is written by the constructor. Then give each tensor's data in declaration
 * order, whole with {@link GGUFWriter.writeTensor} or in pieces with
 * {@link GGUFWriter.writeTensorChunk}, and call {@link GGUFWriter.close}.
 *
 * ```ts
 * const w = new GGUFWriter("out.gguf", { kv: { "general.architecture": "llama" },
 *   tensors: [{ name: "tok_embd.weight", type: GGMLType.F32, shape: [64, 100] }] });
 * w.writeTensor("tok_embd.weight", bytes); // 25600 bytes
 * w.close();
 * ```
 */
export class GGUFWriter {
  /** Output path. */
  readonly path: string;
  /** The planned layout (header, offsets, sizes). */
  readonly layout: GGUFLayout;
  private fd: number | undefined;
  private cur = 0; // index of the tensor being written
  private done = 0; // bytes of it written so far
  private pos = 0; // bytes written to the file

  /**
   * Plan the layout, create (truncate) the file and write the header.
   * @throws GGUFError as {@link planGGUF}; `io` when the file cannot be created or written
   */
  constructor(path: string, options: GGUFLayoutOptions) {
    this.path = path;
    this.layout = planGGUF(options, path);
    try {
      this.fd = openSync(path, "w");
    } catch (e) {
      throw new GGUFError("io", {
        path,
        op: "writing",
        detail: `cannot create: ${errText(e)}`,
        cause: e,
      });
    }
    this.put(this.layout.header);
    this.skipEmpty();
  }

  /** Tensors with offsets, in the order their data must be written. */
  get tensors(): readonly TensorInfo[] {
    return this.layout.tensors;
  }

  /** Name of the tensor expected next, or undefined when all are written. */
  get nextTensor(): string | undefined {
    return this.layout.tensors[this.cur]?.name;
  }

  /**
   * Write a whole tensor's data. It must be the next tensor in declaration order.
   * @throws GGUFError `writer_state` (wrong order, already started), `bad_value` (wrong size)
   */
  writeTensor(name: string, bytes: Uint8Array): void {
    const t = this.expect(name);
    if (this.done !== 0) {
      throw this.err("writer_state", `tensor "${name}" was partly written by chunks`);
    }
    if (bytes.length !== t.nbytes) {
      throw this.err("bad_value", `tensor "${name}" needs ${t.nbytes} bytes, got ${bytes.length}`);
    }
    this.writeTensorChunk(name, bytes);
  }

  /**
   * Write the next piece of a tensor's data; the tensor is done when all its bytes are written.
   * @throws GGUFError `writer_state` (wrong order), `bad_value` (more bytes than the tensor has)
   */
  writeTensorChunk(name: string, bytes: Uint8Array): void {
    const t = this.expect(name);
    if (this.done + bytes.length > t.nbytes) {
      throw this.err(
        "bad_value",
        `tensor "${name}" has ${t.nbytes} bytes; ${this.done} written, chunk of ${bytes.length} is too long`,
      );
    }
    this.put(bytes);
    this.done += bytes.length;
    if (this.done === t.nbytes) {
      this.padTo(t.absoluteOffset + alignUp(t.nbytes, this.layout.alignment));
      this.cur++;
      this.done = 0;
      this.skipEmpty();
    }
  }

  /**
   * Close the file. Every tensor must have been written in full.
   * @throws GGUFError `writer_state` naming the first tensor not fully written (the file is
   *   closed anyway; use {@link GGUFWriter.abort} to delete it)
   */
  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    closeSync(fd);
    const t = this.layout.tensors[this.cur];
    if (t !== undefined) {
      throw this.err(
        "writer_state",
        `closed before tensor "${t.name}" was written (${this.done} of ${t.nbytes} bytes); ` +
          `${this.layout.tensors.length - this.cur} tensor(s) missing`,
      );
    }
    if (this.pos !== this.layout.fileSize) {
      throw this.err("writer_state", `wrote ${this.pos} bytes, expected ${this.layout.fileSize}`);
    }
  }

  /** Close the file (if open) and delete it. Never throws. */
  abort(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch { /* already closed */ }
      this.fd = undefined;
    }
    try {
      unlinkSync(this.path);
    } catch { /* gone */ }
  }

  /** The tensor being written, checked to be `name`. */
  private expect(name: string): TensorInfo {
    if (this.fd === undefined) throw this.err("writer_state", "writer is closed");
    const t = this.layout.tensors[this.cur];
    if (t === undefined) throw this.err("writer_state", `all tensors are written; got "${name}"`);
    if (t.name !== name) {
      throw this.err(
        "writer_state",
        `expected tensor "${t.name}" next (declaration order), got "${name}"`,
      );
    }
    return t;
  }

  /** Skip tensors of 0 bytes (dims are positive, so none exist; this keeps the cursor honest). */
  private skipEmpty(): void {
    while (this.layout.tensors[this.cur]?.nbytes === 0) this.cur++;
  }

  /** An error located at the current tensor and file position. */
  private err(code: GGUFErrorCode, detail: string): GGUFError {
    const t = this.layout.tensors[this.cur];
    return new GGUFError(code, {
      path: this.path,
      op: "writing",
      field: t !== undefined ? `tensor "${t.name}"` : undefined,
      offset: this.pos,
      detail,
    });
  }

  /** Write all of `bytes` at the end of the file. */
  private put(bytes: Uint8Array): void {
    let off = 0;
    try {
      while (off < bytes.length) {
        off += writeSync(this.fd!, bytes, off, bytes.length - off);
      }
    } catch (e) {
      throw new GGUFError("io", {
        path: this.path,
        offset: this.pos + off,
        op: "writing",
        detail: `write failed: ${errText(e)}`,
        cause: e,
      });
    }
    this.pos += bytes.length;
  }

  /** Write zeros up to file offset `end`. */
  private padTo(end: number): void {
    while (this.pos < end) this.put(zeros(Math.min(end - this.pos, 1 << 20)));
  }
}

let zeroBuf = new Uint8Array(64);
function zeros(n: number): Uint8Array {
  if (zeroBuf.length < n) zeroBuf = new Uint8Array(n);
  return zeroBuf.subarray(0, n);
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
