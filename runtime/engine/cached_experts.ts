/**
 * A session's side of the expert cache (DESIGN.md §4), for expert_residency.ts: per MoE
 * layer of a step, look up the routed experts, read the misses through the pager (in pieces
 * for multi-row steps), point the kernel's address tables at their slots, and the
 * next-layer prefetch's reads.
 *
 * @module
 */
import process from "node:process";
import { closeFile, IOError, NativeBuffer, openFile } from "../../ffi/memory.ts";
import { CacheFullError, Part } from "../experts/cache.ts";
import type { ExpertTensors } from "../models/weights.ts";
import { type ExpertSource, stageExpertRead } from "./model.ts";

const EINVAL = 22;
const PARTS = [Part.GATE, Part.UP, Part.DOWN] as const;
/**
 * A multi-row step's misses go out in up to this many tickets, computed one by one as they
 * arrive (MoEPhase.MORE) while the later ones load (SPOOL_READ_PIECES=1: one ticket, the
 * resident experts alone overlap the read; for comparison).
 */
export const READ_PIECES = Math.max(1, Number(process.env.SPOOL_READ_PIECES ?? 8) || 8);
/** The fewest experts in one piece (a piece's compute is one pool dispatch per matrix step). */
export const PIECE_EXPERTS = 4;

/**
 * A session's side of the expert cache (DESIGN.md §4): per MoE layer of a step, look up the
 * routed experts, read the misses through the pager (one ticket, or up to READ_PIECES for a
 * step of several rows, settled one at a time by readNext), and fill per-session
 * address tables (nExpert u64 per matrix) with the slots' data addresses for spool_moe_ffn.
 * Entries of experts not routed this step are 0 (the kernel only reads routed ones).
 *
 * Prefetch: while layer l computes, the experts predicted for layer l+1 are read in one
 * ticket into slots this object holds references on, so nothing evicts them in flight.
 * Layer l+1's load waits for that ticket (the wait is the stall), marks the slots loaded,
 * scores the prediction and gives the references back; wrong guesses stay resident as
 * ordinary cache entries.
 */
export class CachedExperts {
  readonly src: ExpertSource;
  readonly gate: NativeBuffer;
  readonly up: NativeBuffer;
  readonly down: NativeBuffer;
  /** u32 views (lo, hi pairs) of the three tables: no BigInt per write. */
  readonly #words: Uint32Array[];
  /** Slots referenced by the current layer, and their keys' experts. */
  readonly #slots: Int32Array;
  readonly #experts: Int32Array;
  #n = 0;
  /** Fresh slots of the current layer (read this step) and their experts. */
  readonly #fresh: Int32Array;
  readonly #freshExpert: Int32Array;
  /** Per expert: the stamp of the last layer step that saw it (deduplication). */
  readonly #seen: Uint32Array;
  #stamp = 0;
  /** The prefetch in flight: its layer (-1: none), ticket, slots and predicted keys. */
  #pfLayer = -1;
  #pfTicket = 0;
  #pfN = 0;
  #pfBytes = 0;
  readonly #pfSlots: Int32Array;
  readonly #pfExperts: Int32Array;
  readonly #pfKeys: Int32Array;
  #pfKeyN = 0;

  constructor(src: ExpertSource, nExpert: number, maxRouted: number) {
    this.src = src;
    this.gate = new NativeBuffer(nExpert * 8);
    this.up = new NativeBuffer(nExpert * 8);
    this.down = new NativeBuffer(nExpert * 8);
    this.#words = [this.gate, this.up, this.down].map((b) =>
      new Uint32Array(b.u8.buffer, b.u8.byteOffset, nExpert * 2)
    );
    const n = Math.min(maxRouted, nExpert);
    this.#slots = new Int32Array(n);
    this.#experts = new Int32Array(n);
    this.#fresh = new Int32Array(n);
    this.#freshExpert = new Int32Array(n);
    this.#seen = new Uint32Array(nExpert);
    this.#pfMark = new Uint32Array(nExpert);
    this.#pfSlots = new Int32Array(n);
    this.#pfExperts = new Int32Array(n);
    this.#pfKeys = new Int32Array(n);
  }

  #nextStamp(): number {
    if (++this.#stamp === 0xffffffff) {
      this.#seen.fill(0);
      this.#stamp = 1;
    }
    return this.#stamp;
  }

  /** Per expert: the stamp of the last prefetch that read it (see {@link begin}). */
  readonly #pfMark: Uint32Array;
  #pfMarkStamp = 0;

  /** Stamp the experts the prefetch in flight reads; returns the stamp. */
  #markPrefetched(): number {
    if (++this.#pfMarkStamp === 0xffffffff) {
      this.#pfMark.fill(0);
      this.#pfMarkStamp = 1;
    }
    for (let i = 0; i < this.#pfN; i++) this.#pfMark[this.#pfExperts[i]] = this.#pfMarkStamp;
    return this.#pfMarkStamp;
  }

  /** Slots the prefetch holds that layer `li`'s load will not reuse as its own references. */
  prefetchHeld(li: number): number {
    return this.#pfLayer >= 0 && this.#pfLayer !== li ? this.#pfN : 0;
  }

  /**
   * The end of the token group starting at `t0`: as many tokens as keep the group's
   * distinct experts within `cap` slots (at least one token).
   */
  groupEnd(ids: Int32Array, t0: number, m: number, K: number, cap: number): number {
    const stamp = this.#nextStamp();
    let distinct = 0, t = t0;
    for (; t < m; t++) {
      let add = 0;
      for (let j = 0; j < K; j++) {
        const e = ids[t * K + j];
        if (e >= 0 && this.#seen[e] !== stamp) add++;
      }
      if (t > t0 && distinct + add > cap) break;
      for (let j = 0; j < K; j++) {
        const e = ids[t * K + j];
        if (e >= 0 && this.#seen[e] !== stamp) this.#seen[e] = stamp;
      }
      distinct += add;
    }
    return t;
  }

  /** Score the prefetch made for layer `li` against the experts it actually routed to. */
  scorePrediction(li: number, ids: Int32Array, count: number): void {
    if (this.#pfLayer !== li || this.#pfKeyN === 0) return;
    const cache = this.src.cache;
    const base = cache.key(li, 0);
    const actual = this.#fresh.length >= count ? this.#fresh : new Int32Array(count);
    for (let i = 0; i < count; i++) actual[i] = ids[i] < 0 ? -1 : base + ids[i];
    cache.recordPrediction(this.#pfKeys.subarray(0, this.#pfKeyN), actual, count);
  }

  /**
   * Start reading the experts `ids[0..count)` predicts for layer `li` that are neither
   * resident nor loading, as one ticket. Takes at most the slots that leave room for one
   * more token's experts beyond those referenced now; stops quietly when the cache is full.
   */
  prefetch(L: ExpertTensors, li: number, ids: Int32Array, count: number, routed = count): void {
    if (this.#pfLayer >= 0) return; // one prefetch in flight per session
    const cache = this.src.cache;
    const stamp = this.#nextStamp();
    // leave room for the experts of the next load that the guess misses (`routed`: the
    // experts that load will route to, of which `count` are guessed)
    const reserve = Math.min(routed, this.#slots.length);
    let room = cache.slots - cache.pinnedCount - cache.referencedCount - reserve;
    let n = 0, nk = 0;
    for (let i = 0; i < count && nk < this.#pfKeys.length; i++) {
      const e = ids[i];
      if (e < 0 || this.#seen[e] === stamp) continue;
      this.#seen[e] = stamp;
      const key = cache.key(li, e);
      this.#pfKeys[nk++] = key;
      if (cache.peek(key) >= 0 || room <= 0) continue;
      try {
        this.#pfSlots[n] = cache.acquire(key).slot;
      } catch (err) {
        if (err instanceof CacheFullError) {
          room = 0;
          continue;
        }
        throw err;
      }
      this.#pfExperts[n++] = e;
      room--;
    }
    this.#pfKeyN = nk;
    this.#pfLayer = li;
    this.#pfN = n;
    this.#pfTicket = 0;
    this.#pfBytes = 0;
    if (n === 0) return;
    this.#pfBytes = this.#stage(L, this.#pfSlots, this.#pfExperts, n);
    this.#pfTicket = this.src.pager.flush();
  }

  /**
   * Wait for the prefetch of layer `li` (if that is the one in flight), mark its slots
   * loaded and give back its references. A failed prefetch discards its slots: the load
   * that follows reads them again, and reports the error with its file and offset if it
   * persists.
   */
  #settle(li: number, path: string): void {
    if (this.#pfLayer !== li) return;
    const cache = this.src.cache, n = this.#pfN;
    let ok = true;
    if (this.#pfTicket > 0) {
      const t0 = performance.now();
      try {
        this.src.pager.wait(this.#pfTicket, path);
      } catch {
        ok = false;
      }
      cache.recordStall((performance.now() - t0) / 1000);
      if (ok) this.#recordRead(this.#pfBytes);
    }
    for (let i = 0; i < n; i++) {
      const slot = this.#pfSlots[i];
      if (ok) {
        cache.markLoaded(slot);
        cache.release(slot);
      } else cache.discard(slot);
    }
    this.#pfLayer = -1;
    this.#pfN = 0;
    this.#pfKeyN = 0;
    this.#pfTicket = 0;
  }

  /** After an error mid-step: settle (or drop) whatever prefetch is in flight. */
  abandonPrefetch(path: string): void {
    if (this.#pfLayer >= 0) this.#settle(this.#pfLayer, path);
  }

  /**
   * Make the experts in `ids[0..count)` of layer `li` resident and referenced, and point the
   * tables at them: {@link begin}, then {@link finishRead}. Throws CacheFullError (the step
   * needs more experts than the cache holds) or IOError (a read failed); either way nothing
   * stays referenced.
   */
  load(L: ExpertTensors, li: number, ids: Int32Array, count: number, path: string): void {
    if (!this.begin(L, li, ids, count, path)) return;
    try {
      this.finishRead(L, path);
    } catch (err) {
      this.abandonRead(path);
      this.release();
      throw err;
    }
  }

  /**
   * The read `begin` started and `readNext` / `finishRead` settle: its tickets (one per
   * piece; piece i holds fresh experts [#rdEnd[i - 1], #rdEnd[i])), the pieces settled so
   * far, bytes and fresh count.
   */
  #rdTickets: number[] = [];
  #rdEnd: number[] = [];
  /** Bytes staged up to the end of each piece. */
  #rdBytesAt: number[] = [];
  #rdDone = 0;
  #rdBytes = 0;
  #rdFresh = 0;
  /** Milliseconds spent waiting for this read's pieces (the compute's stall). */
  #rdStall = 0;

  /**
   * Like {@link load}, but the misses' reads are only submitted: the tables point at the
   * experts that are resident now (entries of the fresh ones stay 0), and
   * {@link finishRead} waits for the rest. With `pieces`, the misses go out as up to
   * {@link READ_PIECES} tickets of at least {@link PIECE_EXPERTS} experts each, in routing
   * order, which {@link readNext} settles one at a time. Returns whether reads are pending.
   */
  begin(
    L: ExpertTensors,
    li: number,
    ids: Int32Array,
    count: number,
    path: string,
    pieces = false,
  ): boolean {
    // the experts this layer's prefetch read, to notice one lost before it is looked up
    const pfStamp = this.#pfLayer === li && this.#pfN > 0 ? this.#markPrefetched() : 0;
    this.#settle(li, path);
    const cache = this.src.cache;
    const stamp = this.#nextStamp();
    this.#n = 0;
    let nMiss = 0, nFresh = 0;
    try {
      // every hit is looked up (and so referenced, out of eviction's reach) before any miss
      // takes a slot: a miss acquired first could evict an expert this same step routes to
      // further down the list (a just-prefetched one sits on probation, the first to go),
      // which would then be read a second time
      for (let i = 0; i < count; i++) {
        const e = ids[i];
        if (e < 0 || this.#seen[e] === stamp) continue;
        this.#seen[e] = stamp;
        const key = cache.key(li, e);
        const slot = cache.lookup(key);
        if (slot < 0) {
          if (pfStamp > 0 && this.#pfMark[e] === pfStamp) cache.recordPrefetchLost();
          this.#freshExpert[nMiss++] = e;
          continue;
        }
        this.#slots[this.#n] = slot;
        this.#experts[this.#n++] = e;
        if (!cache.isLoaded(slot)) {
          throw new Error(`${cache.describe(key)} is still loading in slot ${slot}`);
        }
      }
      for (; nFresh < nMiss; nFresh++) {
        const e = this.#freshExpert[nFresh];
        const slot = cache.acquire(cache.key(li, e)).slot;
        this.#fresh[nFresh] = slot;
        this.#slots[this.#n] = slot;
        this.#experts[this.#n++] = e;
      }
      this.#rdFresh = nFresh;
      this.#resetRead();
      if (nFresh > 0) {
        const n = pieces
          ? Math.max(1, Math.min(READ_PIECES, Math.floor(nFresh / PIECE_EXPERTS)))
          : 1;
        for (let i = 0, a = 0; i < n; i++) {
          const b = Math.round(nFresh * (i + 1) / n);
          this.#rdBytes += this.#stage(L, this.#fresh, this.#freshExpert, b, a);
          this.#rdTickets.push(this.src.pager.flush());
          this.#rdEnd.push(b);
          this.#rdBytesAt.push(this.#rdBytes);
          a = b;
        }
      }
    } catch (err) {
      this.#rdFresh = nFresh;
      this.abandonRead(path);
      this.release();
      throw err;
    }
    for (let i = 0; i < this.#n; i++) {
      if (cache.isLoaded(this.#slots[i])) this.#point(this.#slots[i], this.#experts[i]);
    }
    return nFresh > 0;
  }

  /**
   * Settle the next piece {@link begin} submitted (wait, mark loaded, point the tables);
   * returns true when it did and more pieces remain after it, false (doing nothing) when
   * at most one piece is left, which {@link finishRead} settles.
   */
  readNext(L: ExpertTensors, path: string): boolean {
    if (this.#rdTickets.length - this.#rdDone <= 1) return false;
    this.#settlePiece(L, path);
    this.src.cache.recordPiece();
    return true;
  }

  /** Wait for the reads {@link begin} submitted, mark them loaded, point the tables at them. */
  finishRead(L: ExpertTensors, path: string): void {
    if (this.#rdFresh === 0) return;
    while (this.#rdDone < this.#rdTickets.length) this.#settlePiece(L, path);
    this.#recordRead(this.#rdBytes);
    this.src.cache.recordStall(this.#rdStall / 1000);
    this.#rdFresh = 0;
    this.#resetRead();
  }

  /**
   * Settle piece #rdDone. A direct read the file system refuses (EINVAL) reopens the file
   * buffered and reads this piece and every later one again, as one ticket, after the
   * later pieces' own reads have finished (they write into the same slots).
   */
  #settlePiece(L: ExpertTensors, path: string): void {
    const src = this.src, pager = src.pager;
    const i = this.#rdDone;
    const a = i === 0 ? 0 : this.#rdEnd[i - 1];
    let b = this.#rdEnd[i];
    const ticket = this.#rdTickets[i];
    this.#rdTickets[i] = 0;
    const t0 = performance.now();
    try {
      pager.wait(ticket, path);
      this.#rdStall += performance.now() - t0;
    } catch (e) {
      pager.discard();
      this.#drainFrom(i + 1, path);
      if (!(src.direct && e instanceof IOError && e.errno === EINVAL)) throw e;
      this.#goBuffered(path);
      b = this.#rdFresh;
      const before = i === 0 ? 0 : this.#rdBytesAt[i - 1];
      this.#rdBytes = before + this.#stage(L, this.#fresh, this.#freshExpert, b, a);
      pager.wait(pager.flush(), path);
      this.#rdStall += performance.now() - t0;
      this.#rdEnd.length = this.#rdTickets.length = this.#rdBytesAt.length = i + 1;
      this.#rdEnd[i] = b;
      this.#rdBytesAt[i] = this.#rdBytes;
    }
    for (let k = a; k < b; k++) {
      src.cache.markLoaded(this.#fresh[k]);
      this.#point(this.#fresh[k], this.#freshExpert[k]);
    }
    this.#rdDone = i + 1;
  }

  /** Forget the pieces of the last read (its tickets, ends, bytes and stall). */
  #resetRead(): void {
    this.#rdTickets.length = this.#rdEnd.length = this.#rdBytesAt.length = 0;
    this.#rdDone = this.#rdBytes = this.#rdStall = 0;
  }

  /** Wait out the pieces from `i` on, ignoring their errors (their slots are re-read or dropped). */
  #drainFrom(i: number, path: string): void {
    for (; i < this.#rdTickets.length; i++) {
      const t = this.#rdTickets[i];
      this.#rdTickets[i] = 0;
      if (t <= 0) continue;
      try {
        this.src.pager.wait(t, path);
      } catch { /* settled by the caller */ }
    }
  }

  /**
   * After an error between {@link begin} and {@link finishRead}: wait out the reads still
   * in flight (they write into the slots) and give the unread slots back.
   */
  abandonRead(path: string): void {
    const cache = this.src.cache;
    this.#drainFrom(0, path);
    for (let i = 0; i < this.#rdFresh; i++) {
      const sl = this.#fresh[i];
      if (cache.keyOf(sl) >= 0 && !cache.isLoaded(sl)) cache.discard(sl);
    }
    this.#rdFresh = 0;
    this.#resetRead();
  }

  /** Point expert `e`'s three table entries at `slot`'s parts. */
  #point(slot: number, e: number): void {
    const base = this.src.arenaAddress;
    for (let p = 0; p < 3; p++) {
      const a = base + this.src.cache.dataOffset(slot, PARTS[p]);
      const words = this.#words[p];
      words[2 * e] = a % 0x100000000;
      words[2 * e + 1] = Math.floor(a / 0x100000000);
    }
  }

  /** Reopen the model file without O_DIRECT (a file system that refuses its reads). */
  #goBuffered(path: string): void {
    const src = this.src;
    const fd = openFile(path, false);
    try {
      closeFile(src.fd, path);
    } catch { /* read-only fd */ }
    src.fd = fd;
    src.direct = false;
  }

  /** Stage the three parts of slots [from, n)'s experts as pager reads; returns the bytes. */
  #stage(L: ExpertTensors, slots: Int32Array, experts: Int32Array, n: number, from = 0): number {
    let bytes = 0;
    for (let i = from; i < n; i++) bytes += stageExpertRead(this.src, L, slots[i], experts[i]);
    return bytes;
  }

  /** Report `bytes` read, with the pager's in-flight wall time since the last report. */
  #recordRead(bytes: number): void {
    const src = this.src;
    const wall = src.pager.stats().wallNs;
    const secs = Math.max(0, wall - src.wallMark) / 1e9;
    src.wallMark = wall;
    src.cache.recordRead(bytes, secs);
  }

  /** Give back the current layer's references and clear its table entries. */
  release(): void {
    const cache = this.src.cache;
    const w = this.#words;
    for (let i = 0; i < this.#n; i++) {
      const sl = this.#slots[i];
      // a slot discarded after a failed read holds no reference any more
      if (cache.keyOf(sl) >= 0 && cache.refCount(sl) > 0) cache.release(sl);
      const e = this.#experts[i];
      for (let p = 0; p < 3; p++) w[p][2 * e] = w[p][2 * e + 1] = 0;
    }
    this.#n = 0;
  }

  free(path: string): void {
    this.abandonPrefetch(path);
    this.gate.free();
    this.up.free();
    this.down.free();
  }
}
