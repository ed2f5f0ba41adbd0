/**
 * The ggml tensor type table and the GGUF metadata value types: data, plus a few lookups.
 *
 * Block sizes and bytes per block follow ggml's `ggml-common.h` (`static_assert`s on every
 * block struct). Ids 4, 5 (Q4_2, Q4_3), 31 to 33 (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36 to 38
 * (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8) were removed from ggml and are unknown here.
 *
 * @module
 */

import { GGUFError } from "./errors.ts";

/** ggml tensor type ids, as stored in GGUF tensor infos. */
export const GGMLType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
} as const;

/** Name of a ggml type, e.g. `"Q4_K"`. */
export type GGMLTypeName = keyof typeof GGMLType;
/** A known ggml type id. */
export type GGMLTypeId = typeof GGMLType[GGMLTypeName];

/** One row of the ggml type table. */
export interface GGMLTypeInfo {
  /** ggml id, as stored in GGUF. */
  readonly id: GGMLTypeId;
  /** Upper-case name, the key in {@link GGMLType}, e.g. `"Q4_K"`. */
  readonly name: GGMLTypeName;
  /** ggml's own name (`ggml_type_name`), e.g. `"q4_K"`. */
  readonly ggmlName: string;
  /** Elements per block (1 for plain types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
  /** Whether the type is block-quantized. */
  readonly quantized: boolean;
}

// [name, ggml name, elements per block, bytes per block, quantized]
const TABLE: ReadonlyArray<readonly [GGMLTypeName, string, number, number, boolean]> = [
  ["F32", "f32", 1, 4, false],
  ["F16", "f16", 1, 2, false],
  ["Q4_0", "q4_0", 32, 18, true], // d f16 + 16 nibble bytes
  ["Q4_1", "q4_1", 32, 20, true], // d, m f16 + 16
  ["Q5_0", "q5_0", 32, 22, true], // d + qh[4] + 16
  ["Q5_1", "q5_1", 32, 24, true], // d, m + qh[4] + 16
  ["Q8_0", "q8_0", 32, 34, true], // d + 32
  ["Q8_1", "q8_1", 32, 36, true], // d, s + 32
  ["Q2_K", "q2_K", 256, 84, true], // scales 16 + qs 64 + d, dmin
  ["Q3_K", "q3_K", 256, 110, true], // hmask 32 + qs 64 + scales 12 + d
  ["Q4_K", "q4_K", 256, 144, true], // d, dmin + scales 12 + qs 128
  ["Q5_K", "q5_K", 256, 176, true], // d, dmin + scales 12 + qh 32 + qs 128
  ["Q6_K", "q6_K", 256, 210, true], // ql 128 + qh 64 + scales 16 + d
  ["Q8_K", "q8_K", 256, 292, true], // d f32 + qs 256 + bsums 16 x i16
  ["IQ2_XXS", "iq2_xxs", 256, 66, true],
  ["IQ2_XS", "iq2_xs", 256, 74, true],
  ["IQ3_XXS", "iq3_xxs", 256, 98, true],
  ["IQ1_S", "iq1_s", 256, 50, true],
  ["IQ4_NL", "iq4_nl", 32, 18, true],
  ["IQ3_S", "iq3_s", 256, 110, true],
  ["IQ2_S", "iq2_s", 256, 82, true],
  ["IQ4_XS", "iq4_xs", 256, 136, true],
  ["I8", "i8", 1, 1, false],
  ["I16", "i16", 1, 2, false],
  ["I32", "i32", 1, 4, false],
  ["I64", "i64", 1, 8, false],
  ["F64", "f64", 1, 8, false],
  ["IQ1_M", "iq1_m", 256, 56, true],
  ["BF16", "bf16", 1, 2, false],
  ["TQ1_0", "tq1_0", 256, 54, true], // qs 48 + qh 4 + d
  ["TQ2_0", "tq2_0", 256, 66, true], // qs 64 + d
  ["MXFP4", "mxfp4", 32, 17, true], // e8m0 scale + 16 nibble bytes
];

/** Every known ggml type, in id order. */
export const GGML_TYPES: readonly GGMLTypeInfo[] = Object.freeze(
  TABLE.map(([name, ggmlName, blockSize, typeSize, quantized]) =>
    Object.freeze({ id: GGMLType[name], name, ggmlName, blockSize, typeSize, quantized })
  ),
);

const BY_ID: ReadonlyArray<GGMLTypeInfo | undefined> = (() => {
  const a: (GGMLTypeInfo | undefined)[] = [];
  for (const t of GGML_TYPES) a[t.id] = t;
  return a;
})();

/** Whether `id` is a known (not removed) ggml type id. */
export function isGGMLType(id: number): id is GGMLTypeId {
  return Number.isInteger(id) && BY_ID[id] !== undefined;
}

/**
 * The table row of ggml type `id`.
 * @throws GGUFError `unknown_type` for ids that are unknown or were removed from ggml
 */
export function typeInfo(id: number): GGMLTypeInfo {
  const t = Number.isInteger(id) ? BY_ID[id] : undefined;
  if (t === undefined) {
    throw new GGUFError("unknown_type", { detail: `ggml type id ${id} is unknown` });
  }
  return t;
}

/** Find a type by upper-case name (`"Q4_K"`) or ggml name (`"q4_K"`), case-insensitively. */
export function typeByName(name: string): GGMLTypeInfo | undefined {
  const n = name.toUpperCase();
  return GGML_TYPES.find((t) => t.name === n);
}

/**
 * Bytes of `nElements` consecutive elements of `type` (one row).
 * @throws GGUFError `bad_shape` if `nElements` is not a whole number of blocks,
 *   `overflow` if the byte count is beyond 2^53
 */
export function rowBytes(type: number, nElements: number): number {
  const t = typeInfo(type);
  if (!Number.isSafeInteger(nElements) || nElements < 0) {
    throw new GGUFError("bad_shape", { detail: `element count ${nElements} is not valid` });
  }
  if (nElements % t.blockSize !== 0) {
    throw new GGUFError("bad_shape", {
      detail:
        `${nElements} elements of ${t.name} is not a multiple of the block size ${t.blockSize}`,
    });
  }
  const bytes = (nElements / t.blockSize) * t.typeSize;
  if (!Number.isSafeInteger(bytes)) {
    throw new GGUFError("overflow", { detail: `${nElements} elements of ${t.name}` });
  }
  return bytes;
}

/**
 * Bytes of a whole tensor of `type` with `shape` in ggml order (ne0 first). ne0 (the row) must
 * be a whole number of blocks, as ggml requires.
 * @throws GGUFError `bad_shape` for an empty shape, a dim that is not a positive integer, or a
 *   row that is not whole blocks; `overflow` beyond 2^53 elements or bytes
 */
export function tensorBytes(type: number, shape: readonly number[]): number {
  if (shape.length === 0) throw new GGUFError("bad_shape", { detail: "shape has no dims" });
  let rows = 1;
  for (let i = 1; i < shape.length; i++) {
    const d = shape[i];
    if (!Number.isSafeInteger(d) || d <= 0) {
      throw new GGUFError("bad_shape", { detail: `dim ${i} is ${d}` });
    }
    rows *= d;
  }
  const ne0 = shape[0];
  if (!Number.isSafeInteger(ne0) || ne0 <= 0) {
    throw new GGUFError("bad_shape", { detail: `dim 0 is ${ne0}` });
  }
  if (!Number.isSafeInteger(rows * ne0)) {
    throw new GGUFError("overflow", {
      detail: `shape [${shape.join(", ")}] has too many elements`,
    });
  }
  const bytes = rowBytes(type, ne0) * rows;
  if (!Number.isSafeInteger(bytes)) {
    throw new GGUFError("overflow", { detail: `shape [${shape.join(", ")}] has too many bytes` });
  }
  return bytes;
}

/** GGUF metadata value type ids. */
export const GGUFValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** Name of a GGUF metadata value type, e.g. `"UINT32"`. */
export type GGUFValueTypeName = keyof typeof GGUFValueType;
/** A GGUF metadata value type id. */
export type GGUFValueTypeId = typeof GGUFValueType[GGUFValueTypeName];

const VALUE_TYPE_NAMES: readonly GGUFValueTypeName[] = [
  "UINT8",
  "INT8",
  "UINT16",
  "INT16",
  "UINT32",
  "INT32",
  "FLOAT32",
  "BOOL",
  "STRING",
  "ARRAY",
  "UINT64",
  "INT64",
  "FLOAT64",
];

/** Whether `id` is a known GGUF metadata value type. */
export function isGGUFValueType(id: number): id is GGUFValueTypeId {
  return Number.isInteger(id) && id >= 0 && id <= 12;
}

/** Name of GGUF value type `id` (`"UINT32"`), or `"type <id>"` when unknown. */
export function valueTypeName(id: number): string {
  return isGGUFValueType(id) ? VALUE_TYPE_NAMES[id] : `type ${id}`;
}

/** Bytes of one value of a fixed-size GGUF value type; 0 for STRING and ARRAY. */
export function valueTypeSize(id: GGUFValueTypeId): number {
  return VALUE_SIZES[id];
}

const VALUE_SIZES: readonly number[] = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];

/** A GGUF array value, as decoded by the reader and accepted by the writer. */
export type GGUFArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | readonly GGUFValue[];

/**
 * A GGUF metadata value.
 *
 * Decoding (reader): UINT8..INT32 and FLOAT32/64 scalars are `number`. UINT64 and INT64 are a
 * `number` when the value is a safe integer (|v| < 2^53) and a `bigint` otherwise, so a 64-bit
 * value is never rounded. BOOL is `boolean`, STRING a JS string. Arrays of UINT8, INT8, UINT16,
 * INT16, UINT32, INT32, FLOAT32 and FLOAT64 are the matching typed array (always, whatever the
 * length); arrays of UINT64/INT64 are `(number | bigint)[]` (the same rule as scalars); arrays
 * of BOOL, STRING and ARRAY are plain arrays.
 *
 * Encoding (writer): the same shapes; plain `number[]` is also accepted for numeric arrays.
 */
export type GGUFValue = number | bigint | boolean | string | GGUFArray;

/** The declared GGUF type of a value: a scalar type or an array with its element type. */
export type GGUFTypeSpec = GGUFScalarSpec | GGUFArraySpec;

/** Declared type of a scalar (or string) value. */
export interface GGUFScalarSpec {
  /** Any value type but ARRAY. */
  readonly type: Exclude<GGUFValueTypeId, 9>;
}

/** Declared type of an array value. */
export interface GGUFArraySpec {
  /** Always ARRAY (9). */
  readonly type: 9;
  /** Element type stored in the array header. */
  readonly elementType: GGUFValueTypeId;
  /** For arrays of arrays: the declared type of each inner array, in order. */
  readonly items?: readonly GGUFTypeSpec[];
}
