/**
 * Typed errors of the native layer. Kernels return status codes (spool.h); `check` turns a
 * non-zero status into a {@link KernelError} that names the op.
 */

/** Status codes of spool.h. */
export const Status = {
  OK: 0,
  INVALID: -1,
  TYPE: -2,
  NOMEM: -3,
  IO: -4,
  ALIGN: -5,
  RANGE: -6,
  SHORT_READ: -7,
} as const;

const STATUS_TEXT: Record<number, string> = {
  [-1]: "invalid argument",
  [-2]: "unsupported tensor type for this op",
  [-3]: "out of memory",
  [-4]: "I/O error",
  [-5]: "misaligned buffer, offset or length",
  [-6]: "value out of range",
  [-7]: "file ended before the requested range",
};

/** A native op returned a failure status. */
export class KernelError extends Error {
  /** The op that failed, e.g. "spool_matmul". */
  readonly op: string;
  /** The status code (negative). */
  readonly status: number;
  /** errno for I/O failures, else 0. */
  readonly errno: number;
  constructor(op: string, status: number, errno = 0, detail?: string, options?: ErrorOptions) {
    const what = STATUS_TEXT[status] ?? `status ${status}`;
    const err = errno ? ` (errno ${errno})` : "";
    super(`${op} failed: ${what}${err}${detail ? `: ${detail}` : ""}`, options);
    this.name = "KernelError";
    this.op = op;
    this.status = status;
    this.errno = errno;
  }
}

/** The native library could not be found, opened, or has the wrong ABI version. */
export class KernelLoadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KernelLoadError";
  }
}
