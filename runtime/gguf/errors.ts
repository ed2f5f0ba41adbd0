/**
 * Typed errors of the GGUF layer.
 *
 * Every failure to read or write a GGUF file is a {@link GGUFError} with a machine-readable
 * `code`, the byte `offset` in the file where the bad item starts, the `field` that was being
 * read (for example `tensor_infos[3].dims[1]` or `kv["general.alignment"]`) and the file
 * `path` when it is known. The message says all of that in words:
 *
 * ```
 * GGUF model.gguf: truncated at byte 1234 while reading kv[5].value (string of 1000 bytes; file has 2000 bytes)
 * ```
 *
 * @module
 */

/** Machine-readable reason of a {@link GGUFError}. */
export type GGUFErrorCode =
  /** The file does not start with the bytes "GGUF". */
  | "bad_magic"
  /** GGUF v1, a big-endian file, or a version this reader does not know. */
  | "unsupported_version"
  /** The file ends before an item (or a declared length or count) ends. */
  | "truncated"
  /** A 64-bit count, length, dimension or offset, or a product of them, is beyond 2^53. */
  | "overflow"
  /** Tensor data lies (partly) outside the data section of the file. */
  | "out_of_bounds"
  /** The data of two tensors overlaps. */
  | "overlap"
  /** An unknown ggml tensor type or GGUF metadata value type. */
  | "unknown_type"
  /** Bad tensor shape: 0 or more than 4 dims, a dim of 0 or below, a row not made of whole blocks. */
  | "bad_shape"
  /** Two metadata keys or two tensors share a name. */
  | "duplicate_name"
  /** A value that is malformed or of the wrong type (bool byte not 0/1, missing key, ...). */
  | "bad_value"
  /** A string that is not valid UTF-8. */
  | "bad_utf8"
  /** `general.alignment` is not a power of two, or a tensor offset is not aligned. */
  | "bad_alignment"
  /** The writer was used out of order (wrong tensor, too many bytes, close before done). */
  | "writer_state"
  /** An operating-system error while opening, reading or writing a file. */
  | "io";

/** Options of the {@link GGUFError} constructor. */
export interface GGUFErrorOptions {
  /** Byte offset in the file where the offending item starts. */
  offset?: number;
  /** The field being read or written, e.g. `tensor_infos[3].dims[1]`, `kv["general.alignment"]`. */
  field?: string;
  /** File path, when known. */
  path?: string;
  /** Extra detail, put in parentheses at the end of the message. */
  detail?: string;
  /** The underlying error, when this one wraps another. */
  cause?: unknown;
  /** Whether the file was being read (default) or written; only changes the message. */
  op?: "reading" | "writing";
}

const CODE_TEXT: Record<GGUFErrorCode, string> = {
  bad_magic: "bad magic",
  unsupported_version: "unsupported version",
  truncated: "truncated",
  overflow: "value too large",
  out_of_bounds: "data out of bounds",
  overlap: "overlapping tensor data",
  unknown_type: "unknown type",
  bad_shape: "bad tensor shape",
  duplicate_name: "duplicate name",
  bad_value: "bad value",
  bad_utf8: "invalid UTF-8",
  bad_alignment: "bad alignment",
  writer_state: "writer used out of order",
  io: "I/O error",
};

/**
 * An error reading, validating or writing a GGUF file.
 *
 * The message is built from the parts: `GGUF <path>: <what> at byte <offset> while reading
 * <field> (<detail>)`. The parts are also kept as fields for programs.
 */
export class GGUFError extends Error {
  /** Machine-readable reason. */
  readonly code: GGUFErrorCode;
  /** Byte offset in the file where the offending item starts, if known. */
  readonly offset: number | undefined;
  /** The field concerned, e.g. `tensor_infos[3].dims[1]`, if known. */
  readonly field: string | undefined;
  /** File path, if known. */
  readonly path: string | undefined;
  /** The detail given at construction, if any. */
  readonly detail: string | undefined;
  /** Whether the file was being read or written. */
  readonly op: "reading" | "writing";

  /**
   * Create an error.
   * @param code machine-readable reason
   * @param options location and detail
   */
  constructor(code: GGUFErrorCode, options: GGUFErrorOptions = {}) {
    super(
      formatMessage(code, options),
      options.cause !== undefined ? { cause: options.cause } : {},
    );
    this.name = "GGUFError";
    this.code = code;
    this.offset = options.offset;
    this.field = options.field;
    this.path = options.path;
    this.detail = options.detail;
    this.op = options.op ?? "reading";
  }

  /** Return a copy of this error that names `path` (used when the path becomes known later). */
  withPath(path: string): GGUFError {
    if (this.path === path) return this;
    return new GGUFError(this.code, {
      offset: this.offset,
      field: this.field,
      path,
      detail: this.detail,
      cause: this.cause,
      op: this.op,
    });
  }
}

function formatMessage(code: GGUFErrorCode, o: GGUFErrorOptions): string {
  let msg = o.path !== undefined ? `GGUF ${o.path}: ` : "GGUF: ";
  msg += CODE_TEXT[code];
  if (o.offset !== undefined) msg += ` at byte ${o.offset}`;
  if (o.field !== undefined) msg += ` while ${o.op ?? "reading"} ${o.field}`;
  if (o.detail !== undefined) msg += ` (${o.detail})`;
  return msg;
}
