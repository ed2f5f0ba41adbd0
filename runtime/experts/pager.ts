/**
 * The expert pager: explicit reads from SSD into native buffers, many in flight, never
 * through page faults (DESIGN.md §4). A thin wrapper over `spool_pager_*` (spool.h,
 * kernels/cpu/pager.c): native code runs the reads (io_uring on Linux where it works, one
 * ring thread keeping `threads` reads in flight; else `threads` pread workers), JS submits
 * batches of requests under a ticket and waits for (or polls) the ticket. Submitting costs
 * the calling thread a copy of the requests and a wakeup, never a read.
 *
 * ```ts
 * const pager = Pager.create(16);
 * pager.add(fd, slot, 0, len, offset);        // stage requests (no allocation)
 * const ticket = pager.flush();               // one native call for the batch
 * // ... compute ...
 * pager.wait(ticket, "model.gguf");           // throws IOError naming file and range
 * pager.close();                              // joins the workers (quiesce)
 * ```
 *
 * O_DIRECT fds (from `openFile(path, true)`) need 4096-aligned destinations, offsets and
 * lengths; {@link Pager.addDirect} reads the aligned superset of a range and says where
 * the requested bytes landed. {@link measureDiskBandwidth} measures the drive's direct
 * read bandwidth with this pager (the SSD ceiling of DESIGN.md §4).
 */
import { isNull, KernelError, native, Status } from "../../ffi/mod.ts";
import {
  closeFile,
  DIRECT_ALIGN,
  fileSize,
  IOError,
  NativeBuffer,
  openFile,
} from "../../ffi/memory.ts";
import type { Ptr } from "../../ffi/types.ts";
import process from "node:process";

/** Doubles per request in the native layout (SPOOL_PAGER_REQ_DOUBLES). */
const REQ = 5;
/** Live tickets one pager can hold (SPOOL_PAGER_MAX_TICKETS). */
export const MAX_TICKETS = 1024;
const EINVAL = 22;
const ENOMEM = 12;

/** One read: `len` bytes at file `offset` of `fd` into `dst` at `dstOffset`. */
export interface ReadRequest {
  /** File descriptor from `openFile`. */
  fd: number;
  /** Destination buffer; must stay allocated until the ticket is waited. */
  dst: NativeBuffer;
  /** Byte position in `dst` (default 0). */
  dstOffset?: number;
  /** Bytes to read. */
  len: number;
  /** File offset. */
  offset: number;
  /**
   * Bytes that must arrive (default `len`); end of file after them is not an error. Used
   * for the aligned superset of a range near end of file under O_DIRECT.
   */
  need?: number;
}

/** Cumulative counters of a pager (spool_pager_stat). */
export interface PagerStats {
  /** Bytes delivered by successful reads. */
  bytes: number;
  /** Reads (pieces of requests) that succeeded. */
  reads: number;
  /** Nanoseconds reads were in flight (claimed until done), summed over reads: >= wallNs. */
  busyNs: number;
  /** Nanoseconds during which at least one read was in flight. */
  wallNs: number;
  /** Requests waiting in the queue now. */
  queued: number;
  /** Reads in flight now. */
  inFlight: number;
  /** Reads (pieces) that went into registered buffers ({@link Pager.register}). */
  fixedReads: number;
}

/** Where a range lies in its aligned superset (see {@link alignedSpan}). */
export interface AlignedSpan {
  /** First byte of the superset: `offset` rounded down to `align`. */
  start: number;
  /** End of the superset (exclusive): `offset + len` rounded up to `align`. */
  end: number;
  /** Position of `offset` inside the superset (`offset - start`). */
  skip: number;
}

/** The `align`-aligned superset of [offset, offset+len), for O_DIRECT reads. */
export function alignedSpan(offset: number, len: number, align = DIRECT_ALIGN): AlignedSpan {
  const start = Math.floor(offset / align) * align;
  const end = Math.ceil((offset + len) / align) * align;
  return { start, end, skip: offset - start };
}

/** Bytes a destination needs to hold the aligned superset of [offset, offset+len). */
export function alignedSpanBytes(offset: number, len: number, align = DIRECT_ALIGN): number {
  return Math.ceil((offset + len) / align) * align - Math.floor(offset / align) * align;
}

/** A cached-once f64 view of a whole native buffer (its byteLength a multiple of 8). */
function f64Of(b: NativeBuffer): Float64Array {
  const u8 = b.u8;
  return new Float64Array(u8.buffer, u8.byteOffset, b.byteLength / 8);
}

/** How errors name files: one path, or a lookup by fd. */
export type PathForErrors = string | ((fd: number) => string);

const STAT_WHAT = {
  bytes: 0,
  reads: 1,
  busyNs: 2,
  wallNs: 3,
  queued: 4,
  inFlight: 5,
  fixedReads: 7,
} as const;
const STAT_BACKEND = 6;

/**
 * How a pager reads: `uring` (Linux io_uring: one thread keeps the reads in flight on a
 * ring) or `threads` (pread worker threads; the reference, and the fallback). `auto` (what
 * {@link Pager.create} uses by default) picks io_uring where it works, unless the
 * environment variable `SPOOL_PAGER=threads` (or `uring`) says otherwise.
 */
export type PagerBackend = "auto" | "threads" | "uring";
const BACKEND_CODE: Record<PagerBackend, number> = { auto: 0, threads: 1, uring: 2 };

/**
 * A native pager: `threads` I/O workers (the queue depth) reading requests submitted in
 * batches under tickets. Not shareable across JS threads; call {@link Pager.close} before
 * the library could be closed.
 */
export class Pager {
  /** Queue depth: worker threads running, or reads kept in flight on the io_uring. */
  readonly threads: number;
  /** The backend reading for this pager (never `auto`). */
  readonly backend: "threads" | "uring";
  #p: Ptr;
  #closed = false;
  /** Staged requests (REQ doubles each) and their count. */
  #reqs: NativeBuffer;
  #f64: Float64Array;
  #reqPtr: Ptr;
  #n = 0;
  /** Buffers registered with the ring (released with the pager). */
  #registered = new Set<NativeBuffer>();
  /** Numeric base addresses of destination buffers (Native.address costs ~0.5 µs). */
  #addr = new WeakMap<NativeBuffer, number>();

  private constructor(p: Ptr, threads: number, backend: "threads" | "uring", capacity: number) {
    this.#p = p;
    this.threads = threads;
    this.backend = backend;
    this.#reqs = new NativeBuffer(capacity * REQ * 8, { align: 64 });
    this.#f64 = f64Of(this.#reqs);
    this.#reqPtr = this.#reqs.ptr;
  }

  /**
   * Start a pager of queue depth `threads` (1..256; default 8) with `backend` (default
   * `auto`). `uring` throws a KernelError carrying the errno where io_uring is unavailable
   * (ENOSYS, EPERM under seccomp, ...); `auto` falls back to threads there.
   */
  static create(threads = 8, backend: PagerBackend = "auto"): Pager {
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new RangeError(`pager threads must be an integer in 1..256, got ${threads}`);
    }
    const code = BACKEND_CODE[backend];
    if (code === undefined) {
      throw new RangeError(`pager backend must be auto, threads or uring, got ${backend}`);
    }
    const n = native();
    const p = n.sym.spool_pager_create_backend(threads, code);
    if (isNull(p)) {
      const errno = n.sym.spool_last_errno();
      // not memory: io_uring was asked for (backend "uring", or SPOOL_PAGER=uring) and failed
      const status = errno === ENOMEM ? Status.NOMEM : Status.IO;
      const detail = status === Status.IO
        ? "io_uring is unavailable here (backend uring or SPOOL_PAGER=uring)"
        : undefined;
      throw new KernelError("spool_pager_create", status, errno, detail);
    }
    const used = n.sym.spool_pager_stat(p, STAT_BACKEND) === BACKEND_CODE.uring
      ? "uring"
      : "threads";
    return new Pager(p, n.sym.spool_pager_threads(p), used, 256);
  }

  #live(): Ptr {
    if (this.#closed) throw new Error("Pager used after close()");
    return this.#p;
  }

  #address(dst: NativeBuffer): number {
    if (dst.freed) throw new Error("Pager: destination NativeBuffer was freed");
    let a = this.#addr.get(dst);
    if (a === undefined) {
      a = native().address(dst.ptr);
      this.#addr.set(dst, a);
    }
    return a;
  }

  #grow(): void {
    const cap = (this.#f64.length / REQ) * 2;
    const next = new NativeBuffer(cap * REQ * 8, { align: 64 });
    const f64 = f64Of(next);
    f64.set(this.#f64.subarray(0, this.#n * REQ));
    this.#reqs.free();
    this.#reqs = next;
    this.#f64 = f64;
    this.#reqPtr = next.ptr;
  }

  /**
   * Stage one read of `len` bytes at file `offset` into `dst` at `dstOffset`; `need`
   * (default `len`) bytes must arrive. Staged reads go out with the next {@link flush}.
   */
  add(
    fd: number,
    dst: NativeBuffer,
    dstOffset: number,
    len: number,
    offset: number,
    need: number = len,
  ): void {
    if (!(dstOffset >= 0 && len >= 0 && dstOffset + len <= dst.byteLength)) {
      throw new RangeError(
        `read of ${len} bytes at ${dstOffset} does not fit a ${dst.byteLength}-byte buffer`,
      );
    }
    if (!(need >= 0 && need <= len)) {
      throw new RangeError(`need (${need}) must be in 0..len (${len})`);
    }
    if ((this.#n + 1) * REQ > this.#f64.length) this.#grow();
    const f = this.#f64, i = this.#n++ * REQ;
    f[i] = fd;
    f[i + 1] = this.#address(dst) + dstOffset;
    f[i + 2] = len;
    f[i + 3] = offset;
    f[i + 4] = need;
  }

  /**
   * Stage an O_DIRECT read of [offset, offset+len): the 4096-aligned superset is read into
   * `dst` from `dstOffset` (whose address must be 4096-aligned; `dst` needs
   * {@link alignedSpanBytes} bytes there). Returns the position in `dst` of byte `offset`.
   * A superset running past end of file is fine as long as the requested bytes exist.
   */
  addDirect(
    fd: number,
    dst: NativeBuffer,
    dstOffset: number,
    len: number,
    offset: number,
  ): number {
    const start = Math.floor(offset / DIRECT_ALIGN) * DIRECT_ALIGN;
    const end = Math.ceil((offset + len) / DIRECT_ALIGN) * DIRECT_ALIGN;
    const skip = offset - start;
    this.add(fd, dst, dstOffset, end - start, start, len === 0 ? 0 : skip + len);
    return dstOffset + skip;
  }

  /** Submit the staged reads as one ticket (> 0). Throws KernelError on a bad batch. */
  flush(): number {
    const p = this.#live();
    const n = this.#n;
    this.#n = 0;
    const t = native().sym.spool_pager_submit(p, this.#reqPtr, n);
    if (t < 0) {
      const detail = t === Status.ALIGN
        ? "an O_DIRECT fd needs 4096-aligned destination, offset and length"
        : t === Status.RANGE
        ? `${MAX_TICKETS} tickets are live: wait for some first`
        : `${n} requests`;
      throw new KernelError("spool_pager_submit", t, 0, detail);
    }
    return t;
  }

  /** Drop the staged reads without submitting them. */
  discard(): void {
    this.#n = 0;
  }

  /** Stage and submit `reqs` as one ticket. */
  submit(reqs: readonly ReadRequest[]): number {
    this.#n = 0;
    try {
      for (const r of reqs) this.add(r.fd, r.dst, r.dstOffset ?? 0, r.len, r.offset, r.need);
    } catch (e) {
      this.#n = 0;
      throw e;
    }
    return this.flush();
  }

  #fail(ticket: number, status: number, path: PathForErrors | undefined): never {
    const S = native().sym, p = this.#p;
    if (status === Status.INVALID) {
      throw new KernelError("spool_pager_wait", status, 0, `unknown ticket ${ticket}`);
    }
    const errno = S.spool_pager_error(p, ticket, 0);
    const offset = S.spool_pager_error(p, ticket, 1);
    const length = S.spool_pager_error(p, ticket, 2);
    const fd = S.spool_pager_error(p, ticket, 3);
    const name = typeof path === "function" ? path(fd) : path ?? `fd ${fd}`;
    throw new IOError("read", name, status, errno, offset, length);
  }

  /**
   * Block until every read of `ticket` finished. Throws {@link IOError} naming the file
   * (`path`, or `path(fd)`), the failed request's offset and length, and the cause (short
   * read, errno).
   */
  wait(ticket: number, path?: PathForErrors): void {
    const st = native().sym.spool_pager_wait(this.#live(), ticket);
    if (st < 0) this.#fail(ticket, st, path);
  }

  /**
   * True once every read of `ticket` finished (then the ticket is released, like after
   * {@link wait}); false while reads are pending. Throws like {@link wait} on failure.
   */
  poll(ticket: number, path?: PathForErrors): boolean {
    const r = native().sym.spool_pager_poll(this.#live(), ticket);
    if (r < 0) this.#fail(ticket, r, path);
    return r === 1;
  }

  /**
   * Register `buf` (e.g. the expert cache) with an io_uring pager: its pages are pinned
   * once now, and reads into it skip the kernel's per-read pinning (about half the CPU
   * time of an O_DIRECT read here). Returns true when registered (or already registered);
   * false where there is nothing to gain or it cannot be done (threads backend, a kernel
   * before 5.19, RLIMIT_MEMLOCK, more than 64 GiB registered): reads work the same either
   * way. The whole buffer becomes resident and pinned (count it against the memory
   * budget); it must not be freed before {@link unregister} or {@link close}.
   */
  register(buf: NativeBuffer): boolean {
    const p = this.#live();
    if (buf.freed) throw new Error("Pager.register: the NativeBuffer was freed");
    if (this.#registered.has(buf)) return true;
    if (buf.byteLength === 0) return false;
    const r = native().sym.spool_pager_register(p, buf.ptr, buf.byteLength);
    if (r < 0 && r !== Status.RANGE) throw new KernelError("spool_pager_register", r);
    if (r === 1) this.#registered.add(buf);
    return r === 1;
  }

  /** Undo {@link register} (a no-op for a buffer that is not registered). */
  unregister(buf: NativeBuffer): void {
    const p = this.#live();
    if (!this.#registered.delete(buf)) return;
    native().sym.spool_pager_unregister(p, buf.ptr);
  }

  /** Cumulative counters since the pager started. */
  stats(): PagerStats {
    const S = native().sym, p = this.#live();
    return {
      bytes: S.spool_pager_stat(p, STAT_WHAT.bytes),
      reads: S.spool_pager_stat(p, STAT_WHAT.reads),
      busyNs: S.spool_pager_stat(p, STAT_WHAT.busyNs),
      wallNs: S.spool_pager_stat(p, STAT_WHAT.wallNs),
      queued: S.spool_pager_stat(p, STAT_WHAT.queued),
      inFlight: S.spool_pager_stat(p, STAT_WHAT.inFlight),
      fixedReads: S.spool_pager_stat(p, STAT_WHAT.fixedReads),
    };
  }

  /**
   * Stop the workers: queued reads are dropped, reads in flight finish, threads are
   * joined. Destination buffers may be freed afterwards. Safe to call more than once.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#registered.clear();
    native().sym.spool_pager_destroy(this.#p);
    this.#p = null;
    this.#reqs.free();
  }
}

/** Options of {@link measureDiskBandwidth}. */
export interface DiskBenchOptions {
  /** Queue depths (= pager threads) to measure (default 1, 4, 8, 16, 32). */
  depths?: number[];
  /** Bytes per request (default 1 MiB; a multiple of 4096). */
  requestBytes?: number;
  /** Seconds per depth (default 2). */
  seconds?: number;
  /** Stop a depth after this many bytes as well (default unlimited). */
  maxBytes?: number;
  /** Use O_DIRECT (default true; falls back to buffered reads where refused). */
  direct?: boolean;
  /** Seed of the random offsets (default 1). */
  seed?: number;
  /**
   * Rounds over all depths (default 1). With more, depths alternate round by round and each
   * row reports the median round (DESIGN.md §7), with the spread in gbpsMin / gbpsMax.
   */
  rounds?: number;
  /** Pager backend (default `auto`, see {@link PagerBackend}). */
  backend?: PagerBackend;
  /** Register the destination buffers with an io_uring pager (default true). */
  register?: boolean;
}

/** One depth of {@link measureDiskBandwidth}. */
export interface DiskBenchRow {
  /** Queue depth (pager threads). */
  depth: number;
  /** Bytes read (all rounds). */
  bytes: number;
  /** Wall seconds (all rounds). */
  seconds: number;
  /** Bandwidth in GB/s (1e9 bytes per second), the median over rounds. */
  gbps: number;
  /** Slowest and fastest round. */
  gbpsMin: number;
  gbpsMax: number;
  /** Mean reads in flight (worker busy time over wall time) of the median round. */
  meanInFlight: number;
  /**
   * CPU seconds this process spent (user + system, all threads: JS, the pager's threads and
   * the kernel's io_uring workers) per GB read, in the median round. The cost of reading.
   */
  cpuSecPerGB: number;
}

/** One measured round of one depth. */
interface Run {
  bytes: number;
  secs: number;
  cpuSecs: number;
  inFlight: number;
}

/** Result of {@link measureDiskBandwidth}. */
export interface DiskBenchResult {
  path: string;
  /** File size in bytes. */
  size: number;
  /** True if reads bypassed the page cache (O_DIRECT). */
  direct: boolean;
  requestBytes: number;
  /** The pager backend that read (`threads` or `uring`). */
  backend: "threads" | "uring";
  /** True if the reads went into registered buffers ({@link Pager.register}). */
  registered: boolean;
  rows: DiskBenchRow[];
}

/**
 * Measure random-read bandwidth of the file at `path` through the pager: requests of
 * `requestBytes` at random 4096-aligned offsets, `depth` reads in flight, for each depth.
 * O_DIRECT bypasses the page cache, so the numbers are the drive's (a file system that
 * refuses O_DIRECT falls back to buffered reads and says so in `direct`). Two batches of
 * `depth` requests alternate so the queue never drains while JS resubmits.
 */
export function measureDiskBandwidth(path: string, opts: DiskBenchOptions = {}): DiskBenchResult {
  const depths = opts.depths ?? [1, 4, 8, 16, 32];
  const req = opts.requestBytes ?? 1 << 20;
  const seconds = opts.seconds ?? 2;
  const maxBytes = opts.maxBytes ?? Infinity;
  if (!(req > 0 && req % DIRECT_ALIGN === 0)) {
    throw new RangeError(`requestBytes must be a positive multiple of 4096, got ${req}`);
  }
  let direct = opts.direct !== false;
  let fd: number;
  try {
    fd = openFile(path, direct);
  } catch (e) {
    if (!(direct && e instanceof IOError && e.errno === EINVAL)) throw e;
    direct = false;
    fd = openFile(path, false);
  }
  const rounds = Math.max(1, opts.rounds ?? 1);
  const runs = new Map<number, Run[]>();
  let backend: "threads" | "uring" = "threads";
  let registered = false;
  try {
    const size = fileSize(fd, path);
    const blocks = Math.floor((size - req) / DIRECT_ALIGN);
    if (blocks < 1) throw new RangeError(`${path} (${size} bytes) is too small for the benchmark`);
    let x = (opts.seed ?? 1) >>> 0 || 1;
    const rand = () => { // xorshift32
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x;
    };
    const randomOffset = () => ((rand() * 2 ** 21 + (rand() >>> 11)) % blocks) * DIRECT_ALIGN;
    const measure = (depth: number) => {
      const pager = Pager.create(depth, opts.backend ?? "auto");
      backend = pager.backend;
      const bufs = [0, 1].map(() => new NativeBuffer(depth * req, { align: DIRECT_ALIGN }));
      try {
        if (opts.register !== false) registered = bufs.map((b) => pager.register(b)).every(Boolean);
        const batch = (k: number) => {
          for (let i = 0; i < depth; i++) pager.add(fd, bufs[k], i * req, req, randomOffset());
          return pager.flush();
        };
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const s0 = pager.stats();
        const tickets = [batch(0), batch(1)];
        let k = 0;
        let bytes = 0;
        for (;;) {
          pager.wait(tickets[k], path);
          bytes += depth * req;
          const elapsed = (performance.now() - t0) / 1000;
          if (elapsed >= seconds || bytes >= maxBytes) break;
          tickets[k] = batch(k);
          k ^= 1;
        }
        pager.wait(tickets[k ^ 1], path);
        bytes += depth * req;
        const secs = (performance.now() - t0) / 1000;
        const s1 = pager.stats();
        const cpu = process.cpuUsage(c0);
        const cpuSecs = (cpu.user + cpu.system) / 1e6;
        return { bytes, secs, cpuSecs, inFlight: (s1.busyNs - s0.busyNs) / (secs * 1e9) };
      } finally {
        pager.close();
        for (const b of bufs) b.free();
      }
    };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? depths.slice().reverse() : depths;
      for (const depth of order) {
        const list = runs.get(depth) ?? [];
        list.push(measure(depth));
        runs.set(depth, list);
      }
    }
    const rows = depths.map((depth): DiskBenchRow => {
      const list = runs.get(depth)!.slice().sort((a, b) => a.bytes / a.secs - b.bytes / b.secs);
      const mid = list[Math.floor(list.length / 2)];
      return {
        depth,
        bytes: list.reduce((s, x) => s + x.bytes, 0),
        seconds: list.reduce((s, x) => s + x.secs, 0),
        gbps: mid.bytes / mid.secs / 1e9,
        gbpsMin: list[0].bytes / list[0].secs / 1e9,
        gbpsMax: list[list.length - 1].bytes / list[list.length - 1].secs / 1e9,
        meanInFlight: mid.inFlight,
        cpuSecPerGB: mid.cpuSecs / (mid.bytes / 1e9),
      };
    });
    return { path, size, direct, requestBytes: req, backend, registered, rows };
  } finally {
    closeFile(fd, path);
  }
}
