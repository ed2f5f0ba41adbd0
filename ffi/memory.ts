/**
 * Native memory and files from JS, the same on Deno and Bun (DESIGN.md §3, §4).
 *
 * - {@link NativeBuffer}: an aligned, zero-filled native allocation (`spool_alloc`) with
 *   cached typed-array views, for weights, expert cache slots and O_DIRECT targets.
 * - {@link MappedFile}: a read-only `mmap` of a whole file. JS only ever sees windows of it
 *   ({@link MappedFile.bytes}); a view of a whole multi-GiB model is never made (Bun's
 *   `toArrayBuffer` stops at 4 GiB, and nothing needs one).
 * - {@link readAt} / {@link DirectReader}: explicit `pread`s, the latter through O_DIRECT
 *   with an automatic fall back to buffered reads where the file system refuses O_DIRECT.
 *
 * Failures throw {@link KernelError} (from `ffi/mod.ts`) or, for file operations,
 * {@link IOError}, whose message names the file and the byte range.
 */
import { isNull, KernelError, native, Status } from "./mod.ts";
import type { Ptr } from "./types.ts";

/** Advice values of {@link MappedFile.advise} (SPOOL_MADV_* in spool.h). */
export const Advice = {
  NORMAL: 0,
  RANDOM: 1,
  SEQUENTIAL: 2,
  WILLNEED: 3,
  DONTNEED: 4,
} as const;

/** Alignment O_DIRECT needs for buffers, offsets and lengths. */
export const DIRECT_ALIGN = 4096;

const EINVAL = 22;
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  5: "EIO",
  9: "EBADF",
  12: "ENOMEM",
  13: "EACCES",
  21: "EISDIR",
  22: "EINVAL",
  24: "EMFILE",
};

const STATUS_WORDS: Record<number, string> = {
  [Status.INVALID]: "invalid argument",
  [Status.NOMEM]: "out of memory",
  [Status.IO]: "I/O error",
  [Status.ALIGN]: "misaligned buffer, offset or length",
  [Status.RANGE]: "out of range",
  [Status.SHORT_READ]: "short read",
};

/** What an {@link IOError} was doing. */
export type IOAction = "open" | "read" | "map" | "stat" | "advise" | "close";

/**
 * A file operation failed. The message says what, where and why, for example
 * `Cannot read 4096 bytes at offset 123 of model.gguf: short read`.
 */
export class IOError extends KernelError {
  /** The file's path as given by the caller. */
  readonly path: string;
  /** Byte offset of the failed operation in the file (0 where it has none). */
  readonly offset: number;
  /** Bytes the operation wanted (0 where it has none). */
  readonly length: number;
  /** The operation. */
  readonly action: IOAction;
  constructor(
    action: IOAction,
    path: string,
    status: number,
    errno: number,
    offset = 0,
    length = 0,
    options?: ErrorOptions,
  ) {
    super(`spool_${action}`, status, errno, undefined, options);
    this.name = "IOError";
    this.path = path;
    this.offset = offset;
    this.length = length;
    this.action = action;
    const why = (STATUS_WORDS[status] ?? `status ${status}`) +
      (errno ? ` (errno ${errno}${ERRNO_NAMES[errno] ? ` ${ERRNO_NAMES[errno]}` : ""})` : "");
    const what = action === "read"
      ? `read ${length} bytes at offset ${offset} of`
      : action === "advise"
      ? `advise ${length} bytes at offset ${offset} of`
      : action;
    this.message = `Cannot ${what} ${path}: ${why}`;
  }
}

/** errno of the last failed call when `status` is an I/O error, else 0. */
function errnoFor(status: number): number {
  return status === Status.IO ? native().sym.spool_last_errno() : 0;
}

const OWNER = Symbol("spool.owner");
const freeRegistry = typeof FinalizationRegistry === "undefined"
  ? undefined
  : new FinalizationRegistry<Ptr>((p) => native().sym.spool_free(p));

/** Options of {@link NativeBuffer}. */
export interface NativeBufferOptions {
  /** Alignment in bytes, a power of two >= 8 (default 64; use 4096 for O_DIRECT). */
  align?: number;
  /**
   * Free the memory when the buffer object and every view of it are garbage collected, if
   * {@link NativeBuffer.free} was never called (default true). Views keep their buffer
   * alive, so a view never outlives its memory through this path.
   */
  autoFree?: boolean;
}

/**
 * An aligned, zero-filled native allocation. `ptr` is stable for its lifetime; the typed
 * views are created once and cached. Call {@link NativeBuffer.free} when done (idempotent);
 * views must not be used after that.
 */
export class NativeBuffer {
  /** Size in bytes. */
  readonly byteLength: number;
  /** Alignment of `ptr` in bytes. */
  readonly align: number;
  #ptr: Ptr;
  #freed = false;
  #ab?: ArrayBuffer;
  #u8?: Uint8Array;
  #u16?: Uint16Array;
  #i32?: Int32Array;
  #f32?: Float32Array;

  /** Allocate `byteLength` bytes (zero-filled). Throws a KernelError (NOMEM) on failure. */
  constructor(byteLength: number, options: NativeBufferOptions = {}) {
    const align = options.align ?? 64;
    if (!Number.isSafeInteger(byteLength) || byteLength < 0) {
      throw new RangeError(`NativeBuffer size must be a non-negative integer, got ${byteLength}`);
    }
    if (!Number.isInteger(align) || align < 8 || (align & (align - 1)) !== 0) {
      throw new RangeError(`NativeBuffer alignment must be a power of two >= 8, got ${align}`);
    }
    const p = native().sym.spool_alloc(byteLength, align);
    if (isNull(p)) {
      throw new KernelError(
        "spool_alloc",
        Status.NOMEM,
        native().sym.spool_last_errno(),
        `${byteLength} bytes aligned to ${align}`,
      );
    }
    this.byteLength = byteLength;
    this.align = align;
    this.#ptr = p;
    if (options.autoFree !== false) freeRegistry?.register(this, p, this);
  }

  /** A new buffer holding a copy of `data`'s bytes. */
  static from(data: ArrayBufferView, options?: NativeBufferOptions): NativeBuffer {
    const b = new NativeBuffer(data.byteLength, options);
    b.u8.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return b;
  }

  /** The native address of byte 0. Throws after {@link NativeBuffer.free}. */
  get ptr(): Ptr {
    if (this.#freed) throw new Error("NativeBuffer used after free()");
    return this.#ptr;
  }

  /** Pointer to byte `offset` (0 <= offset <= byteLength). */
  ptrAt(offset: number): Ptr {
    if (!(offset >= 0 && offset <= this.byteLength)) {
      throw new RangeError(`offset ${offset} outside NativeBuffer of ${this.byteLength} bytes`);
    }
    return offset === 0 ? this.ptr : native().offset(this.ptr, offset);
  }

  /** True once {@link NativeBuffer.free} has run. */
  get freed(): boolean {
    return this.#freed;
  }

  #buffer(): ArrayBuffer {
    if (this.#freed) throw new Error("NativeBuffer used after free()");
    if (!this.#ab) {
      if (this.byteLength >= 2 ** 32) {
        throw new RangeError(`cannot view ${this.byteLength} bytes from JS (limit 4 GiB)`);
      }
      const ab = this.byteLength === 0
        ? new ArrayBuffer(0)
        : native().buffer(this.#ptr, this.byteLength);
      // the ArrayBuffer keeps this object (and so the memory) alive while any view exists
      Object.defineProperty(ab, OWNER, { value: this });
      this.#ab = ab;
    }
    return this.#ab;
  }

  /** Byte view of the whole buffer (cached). */
  get u8(): Uint8Array {
    return this.#u8 ??= new Uint8Array(this.#buffer());
  }
  /** u16 view (f16 data), `floor(byteLength / 2)` elements (cached). */
  get u16(): Uint16Array {
    return this.#u16 ??= new Uint16Array(this.#buffer(), 0, this.byteLength >>> 1);
  }
  /** i32 view, `floor(byteLength / 4)` elements (cached). */
  get i32(): Int32Array {
    return this.#i32 ??= new Int32Array(this.#buffer(), 0, Math.floor(this.byteLength / 4));
  }
  /** f32 view, `floor(byteLength / 4)` elements (cached). */
  get f32(): Float32Array {
    return this.#f32 ??= new Float32Array(this.#buffer(), 0, Math.floor(this.byteLength / 4));
  }

  /** Release the memory. Safe to call more than once. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    freeRegistry?.unregister(this);
    native().sym.spool_free(this.#ptr);
    this.#ptr = null;
    this.#ab =
      this.#u8 =
      this.#u16 =
      this.#i32 =
      this.#f32 =
        undefined;
  }
}

const encoder = new TextEncoder();

/** NUL-terminated UTF-8 bytes of a path, for the C side. */
function cPath(path: string): Uint8Array {
  return encoder.encode(path + "\0");
}

/**
 * Open `path` read-only and return its file descriptor. `direct` asks for O_DIRECT
 * (F_NOCACHE on macOS). Throws {@link IOError}; a file system without O_DIRECT support
 * gives errno 22 (EINVAL), see {@link DirectReader} for the fall back.
 */
export function openFile(path: string, direct = false): number {
  const n = native();
  const fd = n.sym.spool_file_open(n.ptr(cPath(path)), direct ? 1 : 0);
  if (fd < 0) throw new IOError("open", path, fd, errnoFor(fd));
  return fd;
}

/** Size in bytes of an open file. */
export function fileSize(fd: number, path = `fd ${fd}`): number {
  const s = native().sym.spool_file_size(fd);
  if (s < 0) throw new IOError("stat", path, s, errnoFor(s));
  return s;
}

/** Close a file descriptor from {@link openFile}. */
export function closeFile(fd: number, path = `fd ${fd}`): void {
  const st = native().sym.spool_file_close(fd);
  if (st < 0) throw new IOError("close", path, st, errnoFor(st));
}

/** Destination of a read: a native buffer or a JS byte array. */
export type ReadTarget = NativeBuffer | Uint8Array;

function targetPtr(dst: ReadTarget, dstOffset: number, len: number): Ptr {
  if (!(dstOffset >= 0 && dstOffset + len <= dst.byteLength)) {
    throw new RangeError(
      `read of ${len} bytes at ${dstOffset} does not fit a ${dst.byteLength}-byte buffer`,
    );
  }
  if (dst instanceof NativeBuffer) return dst.ptrAt(dstOffset);
  const n = native();
  return dstOffset === 0 ? n.ptr(dst) : n.offset(n.ptr(dst), dstOffset);
}

/**
 * Read exactly `len` bytes at file offset `offset` into `dst` (at `dstOffset`), looping
 * over short reads. Returns `len`. Throws {@link IOError} (status SHORT_READ when the file
 * ends first); `path` only labels the error.
 */
export function readAt(
  fd: number,
  dst: ReadTarget,
  len: number,
  offset: number,
  path = `fd ${fd}`,
  dstOffset = 0,
): number {
  const r = native().sym.spool_pread(fd, targetPtr(dst, dstOffset, len), len, offset);
  if (r < 0) throw new IOError("read", path, r, errnoFor(r), offset, len);
  return r;
}

/**
 * A whole file mapped read-only (MAP_SHARED). Windows of it are handed to JS with
 * {@link MappedFile.bytes} and to kernels with {@link MappedFile.ptrAt}. The memory is
 * read-only: writing through a view crashes the process.
 */
export class MappedFile {
  /** Path as given to {@link MappedFile.open}. */
  readonly path: string;
  /** File size in bytes (the mapped length). */
  readonly size: number;
  #fd: number;
  #base: Ptr;
  #closed = false;

  private constructor(path: string, fd: number, size: number, base: Ptr) {
    this.path = path;
    this.#fd = fd;
    this.size = size;
    this.#base = base;
  }

  /** Open and map `path`. An empty file opens with a null mapping. */
  static open(path: string): MappedFile {
    const fd = openFile(path);
    try {
      const size = fileSize(fd, path);
      let base: Ptr = null;
      if (size > 0) {
        base = native().sym.spool_mmap(fd, size);
        if (isNull(base)) {
          throw new IOError("map", path, Status.IO, native().sym.spool_last_errno(), 0, size);
        }
      }
      return new MappedFile(path, fd, size, base);
    } catch (e) {
      native().sym.spool_file_close(fd);
      throw e;
    }
  }

  /** The file descriptor (kept open for explicit reads next to the mapping). */
  get fd(): number {
    this.#live();
    return this.#fd;
  }

  /** Address of byte 0 of the mapping (null for an empty file). */
  get ptr(): Ptr {
    this.#live();
    return this.#base;
  }

  #live(): void {
    if (this.#closed) throw new Error(`MappedFile ${this.path} used after close()`);
  }

  #range(offset: number, len: number): void {
    if (
      !(Number.isSafeInteger(offset) && Number.isSafeInteger(len) && offset >= 0 && len >= 0 &&
        offset + len <= this.size)
    ) {
      throw new RangeError(
        `range [${offset}, ${offset + len}) is outside ${this.path} (${this.size} bytes)`,
      );
    }
  }

  /** Address of byte `offset` of the file in the mapping. */
  ptrAt(offset: number): Ptr {
    this.#live();
    this.#range(offset, 0);
    return offset === 0 ? this.#base : native().offset(this.#base, offset);
  }

  /**
   * A view of `len` bytes at `offset` (no copy; valid until {@link MappedFile.close}).
   * `len` must be below 4 GiB.
   */
  bytes(offset: number, len: number): Uint8Array {
    this.#live();
    this.#range(offset, len);
    if (len === 0) return new Uint8Array(0);
    if (len >= 2 ** 32) throw new RangeError(`cannot view ${len} bytes from JS (limit 4 GiB)`);
    return new Uint8Array(native().buffer(this.ptrAt(offset), len));
  }

  /** madvise on [offset, offset+len), rounded outward to pages. */
  advise(offset: number, len: number, advice: number): void {
    this.#live();
    this.#range(offset, len);
    if (len === 0) return;
    const st = native().sym.spool_madvise(this.#base, offset, len, advice);
    if (st < 0) throw new IOError("advise", this.path, st, errnoFor(st), offset, len);
  }

  /** Read `len` bytes at `offset` with pread (not through the mapping). */
  readInto(dst: ReadTarget, offset: number, len: number, dstOffset = 0): number {
    return readAt(this.fd, dst, len, offset, this.path, dstOffset);
  }

  /** Unmap and close. Safe to call more than once; views die with it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const n = native();
    if (!isNull(this.#base)) n.sym.spool_munmap(this.#base, this.size);
    n.sym.spool_file_close(this.#fd);
    this.#base = null;
  }
}

/**
 * Explicit reads of one file through O_DIRECT (page cache bypassed, DESIGN.md §4), falling
 * back to buffered reads where the file system refuses O_DIRECT (tmpfs, some FUSE): at
 * open time, or at the first read that fails with EINVAL. {@link DirectReader.direct} says
 * which mode is in use.
 *
 * Direct reads fetch the 4096-aligned superset of the range, so the target must be
 * 4096-aligned ({@link DirectReader.alloc}) and hold {@link DirectReader.span} bytes; the
 * requested bytes start at the position {@link DirectReader.read} returns.
 */
export class DirectReader {
  /** Path as given to {@link DirectReader.open}. */
  readonly path: string;
  /** File size in bytes. */
  readonly size: number;
  #fd: number;
  #direct: boolean;
  #closed = false;

  private constructor(path: string, fd: number, direct: boolean, size: number) {
    this.path = path;
    this.#fd = fd;
    this.#direct = direct;
    this.size = size;
  }

  /**
   * Open `path`; `direct: false` forces buffered reads. `openFn` replaces {@link openFile}
   * (tests use it to simulate a file system without O_DIRECT).
   */
  static open(
    path: string,
    options: { direct?: boolean; openFn?: (path: string, direct: boolean) => number } = {},
  ): DirectReader {
    const open = options.openFn ?? openFile;
    let fd = -1;
    let direct = options.direct !== false;
    if (direct) {
      try {
        fd = open(path, true);
      } catch (e) {
        if (!(e instanceof IOError && e.errno === EINVAL)) throw e;
        direct = false;
      }
    }
    if (!direct) fd = open(path, false);
    try {
      return new DirectReader(path, fd, direct, fileSize(fd, path));
    } catch (e) {
      native().sym.spool_file_close(fd);
      throw e;
    }
  }

  /** True while reads go through O_DIRECT. */
  get direct(): boolean {
    return this.#direct;
  }

  /** Bytes a target needs to read [offset, offset+len). */
  span(offset: number, len: number): number {
    return this.#direct ? native().sym.spool_direct_span(offset, len) : len;
  }

  /** A 4096-aligned buffer big enough for any range of up to `maxLen` bytes. */
  static alloc(maxLen: number): NativeBuffer {
    const bytes = Math.ceil(maxLen / DIRECT_ALIGN) * DIRECT_ALIGN + DIRECT_ALIGN;
    return new NativeBuffer(bytes, { align: DIRECT_ALIGN });
  }

  /**
   * Read [offset, offset+len) into `dst` starting at `dstOffset` (4096-aligned for direct
   * reads). Returns the index in `dst` of the first requested byte.
   */
  read(dst: NativeBuffer, offset: number, len: number, dstOffset = 0): number {
    if (this.#closed) throw new Error(`DirectReader ${this.path} used after close()`);
    if (!this.#direct) {
      readAt(this.#fd, dst, len, offset, this.path, dstOffset);
      return dstOffset;
    }
    const span = native().sym.spool_direct_span(offset, len);
    if (span < 0) throw new IOError("read", this.path, span, 0, offset, len);
    const r = native().sym.spool_pread_direct(
      this.#fd,
      targetPtr(dst, dstOffset, span),
      len,
      offset,
    );
    if (r >= 0) return dstOffset + r;
    const errno = errnoFor(r);
    if (r === Status.IO && errno === EINVAL) {
      // O_DIRECT accepted at open but refused on read: continue buffered
      const fd = openFile(this.path, false);
      native().sym.spool_file_close(this.#fd);
      this.#fd = fd;
      this.#direct = false;
      readAt(this.#fd, dst, len, offset, this.path, dstOffset);
      return dstOffset;
    }
    throw new IOError("read", this.path, r, errno, offset, len);
  }

  /** Read [offset, offset+len) into a fresh JS byte array (a copy). */
  readBytes(offset: number, len: number): Uint8Array {
    const buf = DirectReader.alloc(len);
    try {
      const at = this.read(buf, offset, len);
      return buf.u8.slice(at, at + len);
    } finally {
      buf.free();
    }
  }

  /** Close the file. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    native().sym.spool_file_close(this.#fd);
  }
}
