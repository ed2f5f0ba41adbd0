/**
 * The expert cache (DESIGN.md §4): a byte budget turned into fixed-size slots in one
 * 4096-aligned native arena, keyed by (layer, expert), with frequency-aware eviction, pins
 * for a saved hot set, reference counts that keep the slots of the current step alive, and
 * the statistics `spool bench` and `/metrics` report.
 *
 * ## Slots
 *
 * Expert `e` of layer `l` is three contiguous byte ranges of the GGUF file (gate, up, down;
 * expert index outermost, so expert e starts at `fileOffset + e * expertBytes`). A slot holds
 * all three. Each part gets a fixed region of the slot, 4096-aligned, big enough for the
 * largest expert of any layer *plus one page of slack*: an O_DIRECT read fetches the
 * 4096-aligned superset of a range, which is at most `alignUp(len, 4096) + 4096` bytes, and
 * lands at the start of the part's region; the matrix itself then starts
 * `fileOffset % 4096` bytes in. {@link slotLayout} spells this out for one expert, so the
 * pager knows what to read where and the kernels know where each matrix starts. A buffered
 * read (no O_DIRECT) may instead read exactly `[fileOffset, fileOffset + len)` to the data
 * offset; both land the data at the same place.
 *
 * ## Eviction: LFU with exponential aging, per key
 *
 * MoE routing has a stable hot set per layer (a few experts take a large share of the
 * tokens) plus a long tail of experts that show up once and not again for a long time.
 * Plain LRU admits every one-off expert at the head of its list and lets a run of them (a
 * "scan": a prompt on an unusual topic, or just the tail of L × k experts per token) push
 * the hot experts out, so it thrashes. A per-slot CLOCK counter was tried first and gained
 * only 1 to 3 points over LRU on the test trace: a slot's count dies with the slot, so an
 * evicted hot expert comes back as cold as a one-off. Here every key — resident or not —
 * has an access count (a Uint16Array of nLayer × nExpert, bumped by each
 * {@link ExpertCache.lookup}), and all counts are halved every
 * {@link ExpertCacheOptions.agingPeriod} accesses, so the count estimates recent routing
 * frequency. The victim is the evictable slot whose key has the lowest count, the oldest
 * first among equals: evictable slots sit in 256 frequency buckets (intrusive doubly linked
 * lists in typed arrays, counts ≥ 255 sharing the last), a slot is linked when it becomes
 * evictable and unlinked when it becomes busy, and a victim is the tail of the lowest
 * nonempty bucket. A one-off expert enters with count 1 and is the next to go; a hot expert
 * that was evicted anyway returns with its history. On the synthetic Zipf + scan trace of
 * cache_test.ts this gets within 2 points of the best static set and about 10 points above
 * LRU. Each access is O(1) (at most 256 bucket steps to find a victim); aging costs
 * O(keys + slots) once per period, O(1/8) per access with the default period. No access
 * allocates.
 *
 * ## In-flight protection
 *
 * {@link ExpertCache.lookup} (on a hit) and {@link ExpertCache.acquire} take a reference,
 * which {@link ExpertCache.release} gives back; {@link ExpertCache.pin} protects a key
 * until {@link ExpertCache.unpin}. A freshly assigned slot is "loading" until
 * {@link ExpertCache.markLoaded} (or {@link ExpertCache.discard} after a failed read),
 * even once released, so a read in flight never lands in a reassigned slot. A referenced,
 * pinned or loading slot is never evicted. When every slot is one of those, a miss throws
 * {@link CacheFullError} (a step that needs more experts at once than the cache holds)
 * instead of overwriting a slot in use.
 *
 * ## Use
 *
 * ```ts
 * const cache = ExpertCache.forLayers(model.expertLayers, nExpert, { budgetBytes: plan.expertCacheBytes });
 * // per MoE layer of a step, for each routed expert:
 * const key = cache.key(layer, expert);
 * let slot = cache.lookup(key);               // counts a hit or a miss
 * if (slot < 0) {
 *   slot = cache.acquire(key).slot;           // fresh: read cache.layoutOf(key) into
 *   // ... pager reads into cache.arena at cache.slotOffset(slot) + part.readOffsetInSlot ...
 *   cache.markLoaded(slot);                   // once the reads are waited for
 * }
 * // kernels use cache.ptr(slot, Part.GATE | Part.UP | Part.DOWN); after the layer:
 * cache.release(slot);
 * ```
 *
 * @module
 */
import { DIRECT_ALIGN, NativeBuffer } from "../../ffi/memory.ts";
import type { Ptr } from "../../ffi/mod.ts";

/** The alignment of slots and of the read placements inside them (O_DIRECT's). */
export const SLOT_ALIGN: number = DIRECT_ALIGN;

/** Frequency buckets; counts at or above the last one share it. */
const NBUCKETS = 256;

/** Names of the parts of an expert, in slot order. */
export const EXPERT_PARTS: readonly ["gate", "up", "down"] = ["gate", "up", "down"] as const;

/** Index of a part in a slot: 0 gate, 1 up, 2 down. */
export const Part = { GATE: 0, UP: 1, DOWN: 2 } as const;

/** `n` rounded up to a multiple of `a` (a power of two is not required). */
function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** `n` rounded down to a multiple of `a`. */
function alignDown(n: number, a: number): number {
  return Math.floor(n / a) * a;
}

/** One byte range of one expert in the file. */
export interface ExpertRange {
  /** Offset of the range in the file. */
  readonly fileOffset: number;
  /** Length in bytes. */
  readonly len: number;
}

/** Where one part of an expert comes from in the file and where it goes in a slot. */
export interface SlotPart {
  /** Offset of the part's data in the file. */
  readonly fileOffset: number;
  /** Bytes of data. */
  readonly len: number;
  /** Start of the aligned read: `fileOffset` rounded down to 4096. */
  readonly readStart: number;
  /**
   * Length of the aligned read (a multiple of 4096) covering `[fileOffset, fileOffset+len)`.
   * For the file's last expert it may run past the end of the file: only the first
   * `fileOffset + len - readStart` bytes must arrive (the pager's `need`).
   */
  readonly readLen: number;
  /** Offset in the slot where the aligned read lands (a multiple of 4096). */
  readonly readOffsetInSlot: number;
  /** Offset in the slot of the part's first data byte (`readOffsetInSlot + fileOffset - readStart`). */
  readonly dataOffsetInSlot: number;
}

/** The layout of one expert in a slot. */
export interface SlotLayout {
  /** Bytes of a slot (a multiple of 4096). */
  readonly slotBytes: number;
  /** One entry per part, in the order given. */
  readonly parts: readonly SlotPart[];
}

/**
 * Bytes a slot region must have to hold any aligned read of a `len`-byte range, whatever
 * the range's offset: `alignUp(len, 4096) + 4096`.
 */
export function partCapacity(len: number): number {
  return len === 0 ? 0 : alignUp(len, SLOT_ALIGN) + SLOT_ALIGN;
}

/**
 * The layout of one expert in a slot: for each part (gate, up, down), the aligned superset
 * to read and where the data starts. `capacities` gives each part's region size (by default
 * {@link partCapacity} of its own length; a cache passes the maximum over all layers so that
 * every expert fits the same slot).
 */
export function slotLayout(
  ranges: readonly ExpertRange[],
  capacities?: readonly number[],
): SlotLayout {
  const parts: SlotPart[] = [];
  let base = 0;
  for (let p = 0; p < ranges.length; p++) {
    const { fileOffset, len } = ranges[p];
    if (
      !(Number.isSafeInteger(fileOffset) && fileOffset >= 0 && Number.isSafeInteger(len) &&
        len >= 0)
    ) {
      throw new RangeError(`expert part ${p}: bad range ${fileOffset} + ${len}`);
    }
    const cap = capacities?.[p] ?? partCapacity(len);
    const readStart = alignDown(fileOffset, SLOT_ALIGN);
    const readLen = len === 0 ? 0 : alignUp(fileOffset + len, SLOT_ALIGN) - readStart;
    if (readLen > cap) {
      throw new RangeError(
        `expert part ${p}: an aligned read of ${readLen} bytes exceeds its ${cap}-byte region`,
      );
    }
    parts.push({
      fileOffset,
      len,
      readStart,
      readLen,
      readOffsetInSlot: base,
      dataOffsetInSlot: base + (fileOffset - readStart),
    });
    base += alignUp(cap, SLOT_ALIGN);
  }
  return { slotBytes: base, parts };
}

/** An expert tensor as the cache needs it: where expert 0 starts and one expert's bytes. */
export interface ExpertTensorRange {
  /** Offset of expert 0 in the file. */
  readonly fileOffset: number;
  /** Bytes of one expert's matrix. */
  readonly expertBytes: number;
}

/** The three expert tensors of a layer (the shape of `LayerWeights` in engine/model.ts). */
export interface ExpertLayerRanges {
  readonly gateExps: ExpertTensorRange;
  readonly upExps: ExpertTensorRange;
  readonly downExps: ExpertTensorRange;
}

/** Options of {@link ExpertCache}. */
export interface ExpertCacheOptions {
  /** Layers (MoE or not: keys cover every layer index). */
  nLayer: number;
  /** Experts per layer. */
  nExpert: number;
  /**
   * Per layer, its expert tensors (gate, up, down), or null for a layer without routed
   * experts. Needed for the slot layout and the arena; without it the cache only runs its
   * policy (simulation, planning, tests) and {@link ExpertCache.ptr} throws.
   */
  layers?: readonly (ExpertLayerRanges | null)[];
  /** Number of slots. Give this or `budgetBytes`. */
  slots?: number;
  /** Byte budget; slots = floor(budgetBytes / slotBytes). Needs `layers`. */
  budgetBytes?: number;
  /** Allocate the native arena (default: true when `layers` is given). */
  arena?: boolean;
  /**
   * Accesses ({@link ExpertCache.lookup} calls) between two halvings of every key's count
   * (default 8 × nLayer × nExpert: about 128 tokens for 24 layers × 128 experts, top-8).
   * Shorter follows a drifting hot set faster; longer estimates a stable one better.
   */
  agingPeriod?: number;
}

/** A cache miss cannot be served: every slot is pinned, in use or loading. */
export class CacheFullError extends Error {
  /** Slots in the cache. */
  readonly slots: number;
  /** Pinned slots. */
  readonly pinned: number;
  /** Slots referenced by the current step. */
  readonly inUse: number;
  /** Slots whose read has not completed. */
  readonly loading: number;
  constructor(
    key: number,
    what: string,
    slots: number,
    pinned: number,
    inUse: number,
    loading: number,
  ) {
    super(
      `Cannot load ${what} (key ${key}) into the expert cache: all ${slots} slots are ` +
        `pinned (${pinned}), in use by the current step (${inUse}) or still loading ` +
        `(${loading}). The step needs more experts at once than the cache holds: raise ` +
        `--expert-cache, pin fewer experts, or release slots after each layer.`,
    );
    this.name = "CacheFullError";
    this.slots = slots;
    this.pinned = pinned;
    this.inUse = inUse;
    this.loading = loading;
  }
}

/** What {@link ExpertCache.acquire} returns. */
export interface Acquired {
  /** The slot now holding (or about to hold) the key. */
  readonly slot: number;
  /** True when the slot was just assigned: the caller must read the expert, then {@link ExpertCache.markLoaded}. */
  readonly fresh: boolean;
}

/** Raw counters of an {@link ExpertCache}. */
export interface CacheStats {
  /** Lookups that found the key resident (or in flight). */
  hits: number;
  /** Lookups that did not. */
  misses: number;
  /** Slots assigned to a key (fresh acquires). */
  insertions: number;
  /** Resident keys dropped to make room. */
  evictions: number;
  /** Bytes read from disk into slots, as reported by {@link ExpertCache.recordRead}. */
  bytesRead: number;
  /** Seconds those reads took (wall time of the reads, overlapped or not). */
  readSeconds: number;
  /** Reads reported. */
  reads: number;
  /** Seconds compute waited on reads ({@link ExpertCache.recordStall}). */
  stallSeconds: number;
  /**
   * Pieces of a layer's misses computed while later pieces were still being read
   * ({@link ExpertCache.recordPiece}; multi-row steps).
   */
  pieces: number;
  /**
   * Experts the prefetch read for a layer that were gone (evicted) when that layer looked
   * them up, and so were read again ({@link ExpertCache.recordPrefetchLost}).
   */
  prefetchLost: number;
  /** Tokens processed ({@link ExpertCache.recordToken}). */
  tokens: number;
  /** Prefetch predictions: keys predicted (deduplicated per call). */
  predicted: number;
  /** Keys actually routed to in predicted steps (deduplicated per call). */
  actual: number;
  /** Keys both predicted and routed to. */
  predictedCorrect: number;
}

/** A point-in-time view of a cache: configuration, counters and derived rates. */
export interface CacheSnapshot extends CacheStats {
  /** Slots in the cache. */
  slots: number;
  /** Bytes per slot (0 without a layout). */
  slotBytes: number;
  /** slots × slotBytes. */
  capacityBytes: number;
  /** Slots holding a key (loaded or in flight). */
  resident: number;
  /** Pinned slots. */
  pinned: number;
  /** Slots with a nonzero reference count. */
  inUse: number;
  /** Slots assigned whose data is not marked loaded yet. */
  loading: number;
  /** hits + misses. */
  lookups: number;
  /** hits / lookups (0 without lookups). */
  hitRate: number;
  /** bytesRead / readSeconds / 1e9 (0 without read time). */
  readGBps: number;
  /** Per-token averages (0 without tokens). */
  perToken: {
    hits: number;
    misses: number;
    bytesRead: number;
    stallSeconds: number;
  };
  /** predictedCorrect / predicted (0 without predictions). */
  precision: number;
  /** predictedCorrect / actual (0 without predictions). */
  recall: number;
}

function emptyStats(): CacheStats {
  return {
    hits: 0,
    misses: 0,
    insertions: 0,
    evictions: 0,
    bytesRead: 0,
    readSeconds: 0,
    reads: 0,
    stallSeconds: 0,
    pieces: 0,
    prefetchLost: 0,
    tokens: 0,
    predicted: 0,
    actual: 0,
    predictedCorrect: 0,
  };
}

/**
 * Fixed-size expert slots under a byte budget. See the module comment for the layout, the
 * eviction policy and the reference rules. Keys are `layer * nExpert + expert`
 * ({@link ExpertCache.key}).
 */
export class ExpertCache {
  /** Layers covered by the key space. */
  readonly nLayer: number;
  /** Experts per layer. */
  readonly nExpert: number;
  /** Number of slots. */
  readonly slots: number;
  /** Bytes per slot (0 when the cache has no layout). */
  readonly slotBytes: number;
  /** Region size of each part (gate, up, down) in a slot; empty without a layout. */
  readonly partCapacities: readonly number[];
  /** Offset of each part's region in a slot. */
  readonly partBases: readonly number[];
  /** The arena (slots × slotBytes, 4096-aligned), or null for a policy-only cache. */
  readonly arena: NativeBuffer | null;
  /** Accesses between two halvings of every key's frequency. */
  readonly agingPeriod: number;
  readonly #layers: readonly (ExpertLayerRanges | null)[] | null;
  /** key → slot, -1 when absent. */
  readonly #keySlot: Int32Array;
  /** Aged access count of every key, resident or not. */
  readonly #keyFreq: Uint16Array;
  #sinceAging = 0;
  /** slot → key, -1 when free. */
  readonly #slotKey: Int32Array;
  readonly #refs: Int32Array;
  readonly #pinned: Uint8Array;
  readonly #loaded: Uint8Array;
  /**
   * Slots on probation: their key was not admitted (its count did not beat the coldest
   * resident key's), so they sit in bucket 0 and go first; a hit promotes them.
   */
  readonly #transient: Uint8Array;
  /** Frequency buckets of the evictable slots: doubly linked lists, newest at the head. */
  readonly #head: Int32Array;
  readonly #tail: Int32Array;
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  /** Bucket a slot is linked in, -1 when not linked (free or busy). */
  readonly #bucketOf: Int16Array;
  /** No bucket below this one is nonempty. */
  #minBucket = NBUCKETS;
  /** Stack of free slots. */
  readonly #free: Int32Array;
  /** Scratch for re-bucketing while aging. */
  readonly #scratch: Int32Array;
  #nFree: number;
  #nPinned = 0;
  /** Slots with refs > 0. */
  #nRef = 0;
  /** Resident slots whose data is not complete yet. */
  #nLoading = 0;
  /** Resident slots that are pinned, referenced or loading (not evictable). */
  #nBusy = 0;
  #nResident = 0;
  /** Data offsets in the arena, slot × 3 + part (set when a key is assigned). */
  readonly #dataOff: Float64Array;
  /** Cached data pointers, same index. */
  readonly #ptrs: Ptr[];
  readonly #ptrValid: Uint8Array;
  /** Prediction accounting: stamps per key. */
  readonly #stamp: Uint32Array;
  #stampNow = 0;
  #s: CacheStats = emptyStats();

  constructor(options: ExpertCacheOptions) {
    const { nLayer, nExpert } = options;
    if (!(Number.isInteger(nLayer) && nLayer > 0 && Number.isInteger(nExpert) && nExpert > 0)) {
      throw new RangeError(`ExpertCache needs nLayer, nExpert > 0, got ${nLayer}, ${nExpert}`);
    }
    const nKeys = nLayer * nExpert;
    if (nKeys >= 2 ** 31) throw new RangeError(`${nLayer} × ${nExpert} keys is too many`);
    this.nLayer = nLayer;
    this.nExpert = nExpert;
    this.agingPeriod = options.agingPeriod ?? 8 * nKeys;
    if (!(Number.isInteger(this.agingPeriod) && this.agingPeriod >= 1)) {
      throw new RangeError(`agingPeriod must be a positive integer, got ${this.agingPeriod}`);
    }
    const layers = options.layers ?? null;
    if (layers && layers.length !== nLayer) {
      throw new RangeError(`ExpertCache: ${layers.length} layer ranges for ${nLayer} layers`);
    }
    this.#layers = layers;
    const caps: number[] = [];
    if (layers) {
      caps.push(0, 0, 0);
      for (const l of layers) {
        if (!l) continue;
        const t = [l.gateExps, l.upExps, l.downExps];
        for (let p = 0; p < 3; p++) caps[p] = Math.max(caps[p], partCapacity(t[p].expertBytes));
      }
    }
    const bases: number[] = [];
    let slotBytes = 0;
    for (const c of caps) {
      bases.push(slotBytes);
      slotBytes += c;
    }
    this.partCapacities = caps;
    this.partBases = bases;
    this.slotBytes = slotBytes;
    let slots = options.slots;
    if (slots === undefined) {
      if (options.budgetBytes === undefined) {
        throw new RangeError("ExpertCache needs slots or budgetBytes");
      }
      if (slotBytes === 0) {
        throw new RangeError("ExpertCache: budgetBytes needs layers (the slot size)");
      }
      slots = Math.floor(options.budgetBytes / slotBytes);
    }
    if (!(Number.isInteger(slots) && slots >= 1)) {
      throw new RangeError(
        options.slots === undefined
          ? `an expert cache of ${options.budgetBytes} bytes holds no ${slotBytes}-byte slot`
          : `ExpertCache needs at least one slot, got ${slots}`,
      );
    }
    slots = Math.min(slots, nKeys);
    this.slots = slots;
    const wantArena = options.arena ?? layers !== null;
    if (wantArena && !layers) {
      throw new RangeError("ExpertCache: an arena needs layers (the slot size)");
    }
    this.arena = wantArena ? new NativeBuffer(slots * slotBytes, { align: SLOT_ALIGN }) : null;
    this.#keySlot = new Int32Array(nKeys).fill(-1);
    this.#keyFreq = new Uint16Array(nKeys);
    this.#slotKey = new Int32Array(slots).fill(-1);
    this.#refs = new Int32Array(slots);
    this.#pinned = new Uint8Array(slots);
    this.#loaded = new Uint8Array(slots);
    this.#transient = new Uint8Array(slots);
    this.#head = new Int32Array(NBUCKETS).fill(-1);
    this.#tail = new Int32Array(NBUCKETS).fill(-1);
    this.#next = new Int32Array(slots).fill(-1);
    this.#prev = new Int32Array(slots).fill(-1);
    this.#bucketOf = new Int16Array(slots).fill(-1);
    this.#free = new Int32Array(slots);
    this.#scratch = new Int32Array(slots);
    for (let i = 0; i < slots; i++) this.#free[i] = slots - 1 - i; // pop 0 first
    this.#nFree = slots;
    this.#dataOff = new Float64Array(slots * 3);
    this.#ptrs = new Array<Ptr>(slots * 3).fill(null);
    this.#ptrValid = new Uint8Array(slots * 3);
    this.#stamp = new Uint32Array(nKeys);
  }

  /**
   * A cache for a model's layers (`LayerWeights`-shaped objects) under `budgetBytes`,
   * or with `slots` slots.
   */
  static forLayers(
    layers: readonly (ExpertLayerRanges | null)[],
    nExpert: number,
    size: { budgetBytes: number } | { slots: number },
    options: Pick<ExpertCacheOptions, "arena" | "agingPeriod"> = {},
  ): ExpertCache {
    return new ExpertCache({ nLayer: layers.length, nExpert, layers, ...size, ...options });
  }

  /** The key of (layer, expert). */
  key(layer: number, expert: number): number {
    return layer * this.nExpert + expert;
  }

  /** "expert E of layer L", for messages. */
  describe(key: number): string {
    return `expert ${key % this.nExpert} of layer ${Math.floor(key / this.nExpert)}`;
  }

  #checkKey(key: number): void {
    if (!(key >= 0 && key < this.#keySlot.length && Number.isInteger(key))) {
      throw new RangeError(`expert key ${key} is outside 0..${this.#keySlot.length - 1}`);
    }
  }

  #checkSlot(slot: number): void {
    if (!(slot >= 0 && slot < this.slots && Number.isInteger(slot)) || this.#slotKey[slot] < 0) {
      throw new RangeError(`slot ${slot} holds no expert`);
    }
  }

  // ---- frequency buckets ----

  /** Count one access of `key`; every `agingPeriod` accesses all counts are halved. */
  #touch(key: number): void {
    if (this.#keyFreq[key] < 0xffff) this.#keyFreq[key]++;
    if (++this.#sinceAging >= this.agingPeriod) this.#age();
  }

  /** Halve every key's count and re-bucket the evictable slots (O(keys + slots) per period). */
  #age(): void {
    this.#sinceAging = 0;
    const f = this.#keyFreq;
    for (let i = 0; i < f.length; i++) f[i] >>>= 1;
    // Re-link oldest first within each old bucket, from the lowest bucket up, so that the
    // order of equal counts stays oldest-at-the-tail.
    const order = this.#scratch;
    let n = 0;
    for (let b = this.#minBucket; b < NBUCKETS; b++) {
      for (let s = this.#tail[b]; s >= 0; s = this.#prev[s]) order[n++] = s;
    }
    for (let i = 0; i < n; i++) this.#unlink(order[i]);
    this.#minBucket = NBUCKETS;
    for (let i = 0; i < n; i++) this.#link(order[i]);
  }

  #link(s: number): void {
    const f = this.#keyFreq[this.#slotKey[s]];
    const b = this.#transient[s] ? 0 : f < NBUCKETS ? f : NBUCKETS - 1;
    const h = this.#head[b];
    this.#prev[s] = -1;
    this.#next[s] = h;
    if (h >= 0) this.#prev[h] = s;
    else this.#tail[b] = s;
    this.#head[b] = s;
    this.#bucketOf[s] = b;
    if (b < this.#minBucket) this.#minBucket = b;
  }

  #unlink(s: number): void {
    const b = this.#bucketOf[s];
    if (b < 0) return;
    const p = this.#prev[s], n = this.#next[s];
    if (p >= 0) this.#next[p] = n;
    else this.#head[b] = n;
    if (n >= 0) this.#prev[n] = p;
    else this.#tail[b] = p;
    this.#prev[s] = this.#next[s] = -1;
    this.#bucketOf[s] = -1;
  }

  /** Whether a resident slot may not be evicted: pinned, referenced or still loading. */
  #busy(s: number): boolean {
    return this.#pinned[s] !== 0 || this.#refs[s] !== 0 || this.#loaded[s] === 0;
  }

  /** Call after a state change of resident slot `s` that was busy (`was`) or not. */
  #settle(s: number, was: boolean): void {
    const now = this.#busy(s);
    if (now === was) return;
    if (now) {
      this.#nBusy++;
      this.#unlink(s);
    } else {
      this.#nBusy--;
      this.#link(s);
    }
  }

  // ---- lookups ----

  /** The slot holding `key` (loaded or in flight), or -1. No stats, no reference. */
  peek(key: number): number {
    this.#checkKey(key);
    return this.#keySlot[key];
  }

  /**
   * The slot holding `key`, or -1, counting a hit or a miss and one access of the key's
   * frequency. A hit takes a reference (give it back with {@link ExpertCache.release}).
   * A hit may still be loading: check {@link ExpertCache.isLoaded} before using the data.
   */
  lookup(key: number): number {
    this.#checkKey(key);
    this.#touch(key);
    const s = this.#keySlot[key];
    if (s < 0) {
      this.#s.misses++;
      return -1;
    }
    this.#s.hits++;
    this.#transient[s] = 0; // reused while on probation: admitted
    this.#ref(s);
    return s;
  }

  /**
   * A referenced slot for `key`: its current slot (`fresh: false`) or a newly assigned one
   * (`fresh: true`; a free slot, else the evicted least-frequent one), which the caller
   * fills and then marks with {@link ExpertCache.markLoaded}. Counts no hit, miss or access
   * (call {@link ExpertCache.lookup} for that; a prefetch acquires without it). Throws
   * {@link CacheFullError} when every slot is pinned, in use or loading.
   */
  acquire(key: number): Acquired {
    this.#checkKey(key);
    const cur = this.#keySlot[key];
    if (cur >= 0) {
      this.#ref(cur);
      return { slot: cur, fresh: false };
    }
    const s = this.#assign(key);
    this.#ref(s);
    return { slot: s, fresh: true };
  }

  /** Assign a free or evicted slot to `key` (absent). The slot starts busy (loading). */
  #assign(key: number): number {
    if (this.#layers && !this.#layers[Math.floor(key / this.nExpert)]) {
      throw new RangeError(
        `${this.describe(key)}: layer ${Math.floor(key / this.nExpert)} has no routed experts`,
      );
    }
    let s: number;
    let transient = 0;
    if (this.#nFree > 0) s = this.#free[--this.#nFree];
    else {
      // admission (TinyLFU-like): a key whose count does not beat the coldest resident
      // key's comes in on probation, so a run of one-off or cyclic keys (an expert-major
      // batch step needs more experts than the cache holds) recycles the same few slots
      // instead of flushing a stable resident set
      transient = this.#keyFreq[key] > this.#coldestAdmitted() ? 0 : 1;
      s = this.#victim(key);
      this.#unlink(s);
      this.#keySlot[this.#slotKey[s]] = -1;
      this.#nResident--;
      this.#s.evictions++;
    }
    this.#slotKey[s] = key;
    this.#keySlot[key] = s;
    this.#loaded[s] = 0;
    this.#transient[s] = transient;
    this.#nLoading++;
    this.#nBusy++;
    this.#nResident++;
    this.#s.insertions++;
    if (this.#layers) this.#setOffsets(s, key);
    return s;
  }

  /**
   * The count of the coldest evictable admitted (not probation) key: the lowest nonempty
   * bucket that holds one; -1 when none is evictable (then a new key is admitted).
   */
  #coldestAdmitted(): number {
    for (let b = this.#minBucket; b < NBUCKETS; b++) {
      for (let s = this.#tail[b]; s >= 0; s = this.#prev[s]) {
        if (!this.#transient[s]) return b;
        if (b > 0) break; // only bucket 0 holds probation slots
      }
    }
    return -1;
  }

  /** The oldest slot of the lowest nonempty frequency bucket (only evictable slots are linked). */
  #victim(key: number): number {
    for (let b = this.#minBucket; b < NBUCKETS; b++) {
      const s = this.#tail[b];
      if (s >= 0) {
        this.#minBucket = b;
        return s;
      }
    }
    this.#minBucket = NBUCKETS;
    throw new CacheFullError(
      key,
      this.describe(key),
      this.slots,
      this.#nPinned,
      this.#nRef,
      this.#nLoading,
    );
  }

  #setOffsets(s: number, key: number): void {
    const l = this.#layers![Math.floor(key / this.nExpert)]!;
    const e = key % this.nExpert;
    const base = s * this.slotBytes;
    const t0 = l.gateExps, t1 = l.upExps, t2 = l.downExps;
    const o0 = t0.fileOffset + e * t0.expertBytes;
    const o1 = t1.fileOffset + e * t1.expertBytes;
    const o2 = t2.fileOffset + e * t2.expertBytes;
    this.#dataOff[s * 3] = base + this.partBases[0] + o0 % SLOT_ALIGN;
    this.#dataOff[s * 3 + 1] = base + this.partBases[1] + o1 % SLOT_ALIGN;
    this.#dataOff[s * 3 + 2] = base + this.partBases[2] + o2 % SLOT_ALIGN;
    this.#ptrValid[s * 3] = this.#ptrValid[s * 3 + 1] = this.#ptrValid[s * 3 + 2] = 0;
  }

  #ref(s: number): void {
    const was = this.#busy(s);
    if (this.#refs[s]++ === 0) this.#nRef++;
    this.#settle(s, was);
  }

  /**
   * Give back a reference taken by lookup or acquire. A slot still loading stays
   * protected until {@link ExpertCache.markLoaded} or {@link ExpertCache.discard}, so a
   * read in flight never lands in a reassigned slot.
   */
  release(slot: number): void {
    this.#checkSlot(slot);
    if (this.#refs[slot] <= 0) {
      throw new Error(
        `slot ${slot} (${this.describe(this.#slotKey[slot])}) released more often than taken`,
      );
    }
    const was = this.#busy(slot);
    if (--this.#refs[slot] === 0) this.#nRef--;
    this.#settle(slot, was);
  }

  /**
   * Forget a slot's key without waiting for eviction (a failed or cancelled read, once no
   * read into the slot is in flight). The slot returns to the free list; its references
   * and pin go with it.
   */
  discard(slot: number): void {
    this.#checkSlot(slot);
    if (this.#busy(slot)) this.#nBusy--;
    else this.#unlink(slot);
    if (this.#pinned[slot] !== 0) this.#nPinned--;
    if (this.#refs[slot] !== 0) this.#nRef--;
    if (this.#loaded[slot] === 0) this.#nLoading--;
    this.#pinned[slot] = 0;
    this.#refs[slot] = 0;
    this.#loaded[slot] = 0;
    this.#transient[slot] = 0;
    this.#keySlot[this.#slotKey[slot]] = -1;
    this.#slotKey[slot] = -1;
    this.#nResident--;
    this.#free[this.#nFree++] = slot;
  }

  /** Mark a slot's data complete (after its reads finish). */
  markLoaded(slot: number): void {
    this.#checkSlot(slot);
    if (this.#loaded[slot] === 1) return;
    const was = this.#busy(slot);
    this.#loaded[slot] = 1;
    this.#nLoading--;
    this.#settle(slot, was);
  }

  /** Slots pinned now. */
  get pinnedCount(): number {
    return this.#nPinned;
  }

  /** Slots referenced now (by steps in progress or prefetches in flight). */
  get referencedCount(): number {
    return this.#nRef;
  }

  /** Whether a slot's data is complete. */
  isLoaded(slot: number): boolean {
    this.#checkSlot(slot);
    return this.#loaded[slot] === 1;
  }

  /** The key a slot holds, or -1. */
  keyOf(slot: number): number {
    return this.#slotKey[slot] ?? -1;
  }

  /** References held on a slot. */
  refCount(slot: number): number {
    return this.#refs[slot] ?? 0;
  }

  /** The aged access count of `key` (what eviction compares). */
  frequency(key: number): number {
    this.#checkKey(key);
    return this.#keyFreq[key];
  }

  /**
   * Pin `key`: its slot is never evicted until {@link ExpertCache.unpin}. An absent key
   * gets a slot (`fresh: true`, to be read and marked loaded); pinning takes no reference.
   */
  pin(key: number): Acquired {
    this.#checkKey(key);
    let s = this.#keySlot[key];
    const fresh = s < 0;
    if (fresh) s = this.#assign(key);
    this.#transient[s] = 0; // pinned keys are admitted by definition
    if (this.#pinned[s] === 0) {
      const was = this.#busy(s);
      this.#pinned[s] = 1;
      this.#nPinned++;
      this.#settle(s, was);
    }
    return { slot: s, fresh };
  }

  /** Unpin `key` (no-op when not pinned). The expert stays, under normal eviction. */
  unpin(key: number): void {
    this.#checkKey(key);
    const s = this.#keySlot[key];
    if (s < 0 || this.#pinned[s] === 0) return;
    const was = this.#busy(s);
    this.#pinned[s] = 0;
    this.#nPinned--;
    this.#settle(s, was);
  }

  /** Whether `key` is pinned. */
  isPinned(key: number): boolean {
    this.#checkKey(key);
    const s = this.#keySlot[key];
    return s >= 0 && this.#pinned[s] === 1;
  }

  /** Byte offset in the arena of the slot. */
  slotOffset(slot: number): number {
    return slot * this.slotBytes;
  }

  /** Byte offset in the arena of a part's first data byte in a slot (needs a layout). */
  dataOffset(slot: number, part: number): number {
    this.#checkSlot(slot);
    if (!this.#layers) throw new Error("ExpertCache without layers has no slot layout");
    return this.#dataOff[slot * 3 + part];
  }

  /**
   * Pointer to a part's data (0 gate, 1 up, 2 down) in a slot, cached until the slot is
   * reassigned. Needs the arena.
   */
  ptr(slot: number, part: number): Ptr {
    const i = slot * 3 + part;
    if (this.#ptrValid[i] === 1 && this.#slotKey[slot] >= 0) return this.#ptrs[i];
    if (!this.arena) throw new Error("ExpertCache without an arena has no pointers");
    if (!(part >= 0 && part < 3)) {
      throw new RangeError(`part ${part} is not 0 (gate), 1 (up) or 2 (down)`);
    }
    const p = this.arena.ptrAt(this.dataOffset(slot, part));
    this.#ptrs[i] = p;
    this.#ptrValid[i] = 1;
    return p;
  }

  /**
   * Where to read expert `key` and where each part's data starts, with offsets relative to
   * the slot (add {@link ExpertCache.slotOffset} for the arena). Allocates; meant for the
   * pager once per miss.
   */
  layoutOf(key: number): SlotLayout {
    this.#checkKey(key);
    if (!this.#layers) throw new Error("ExpertCache without layers has no slot layout");
    const l = this.#layers[Math.floor(key / this.nExpert)];
    if (!l) throw new RangeError(`${this.describe(key)}: layer has no routed experts`);
    const e = key % this.nExpert;
    const ranges = [l.gateExps, l.upExps, l.downExps].map((t) => ({
      fileOffset: t.fileOffset + e * t.expertBytes,
      len: t.expertBytes,
    }));
    return slotLayout(ranges, this.partCapacities);
  }

  // ---- statistics ----

  /** Report bytes read into slots and the seconds the reads took. */
  recordRead(bytes: number, seconds: number): void {
    this.#s.bytesRead += bytes;
    this.#s.readSeconds += seconds;
    this.#s.reads++;
  }

  /** Report seconds compute waited for reads. */
  recordStall(seconds: number): void {
    this.#s.stallSeconds += seconds;
  }

  /** Count one piece of misses computed while later pieces were still loading. */
  recordPiece(): void {
    this.#s.pieces++;
  }

  /** Count one prefetched expert evicted before its layer looked it up. */
  recordPrefetchLost(): void {
    this.#s.prefetchLost++;
  }

  /** Count `n` tokens processed (default 1), for per-token averages. */
  recordToken(n = 1): void {
    this.#s.tokens += n;
  }

  /**
   * Score a prefetch prediction against the experts actually routed to: adds the distinct
   * predicted keys, the distinct actual keys and their intersection. `nActual` limits how
   * many entries of `actual` are read (a routing buffer). No allocation.
   */
  recordPrediction(
    predicted: ReadonlySet<number> | ArrayLike<number>,
    actual: ArrayLike<number>,
    nActual: number = actual.length,
  ): void {
    const st = this.#stamp;
    if (this.#stampNow >= 0xfffffffc) {
      st.fill(0);
      this.#stampNow = 0;
    }
    const P = this.#stampNow + 1, A = this.#stampNow + 2;
    this.#stampNow += 2;
    let nPred = 0, nAct = 0, hit = 0;
    const isSet = predicted instanceof Set;
    if (!isSet) {
      const pr = predicted as ArrayLike<number>;
      for (let i = 0; i < pr.length; i++) {
        const k = pr[i];
        if (k < 0 || k >= st.length || st[k] === P) continue;
        st[k] = P;
        nPred++;
      }
    } else nPred = (predicted as ReadonlySet<number>).size;
    for (let i = 0; i < nActual; i++) {
      const k = actual[i];
      if (k < 0 || k >= st.length || st[k] === A) continue;
      const was = st[k] === P || (isSet && (predicted as ReadonlySet<number>).has(k));
      st[k] = A;
      nAct++;
      if (was) hit++;
    }
    this.#s.predicted += nPred;
    this.#s.actual += nAct;
    this.#s.predictedCorrect += hit;
  }

  /** A copy of the raw counters. */
  stats(): CacheStats {
    return { ...this.#s };
  }

  /** Zero the counters (not the contents). */
  resetStats(): void {
    this.#s = emptyStats();
  }

  /** Configuration, counters and derived rates, as a plain object (JSON-ready). */
  snapshot(): CacheSnapshot {
    const s = this.#s;
    const lookups = s.hits + s.misses;
    const t = s.tokens;
    return {
      ...s,
      slots: this.slots,
      slotBytes: this.slotBytes,
      capacityBytes: this.slots * this.slotBytes,
      resident: this.#nResident,
      pinned: this.#nPinned,
      inUse: this.#nRef,
      loading: this.#nLoading,
      lookups,
      hitRate: lookups > 0 ? s.hits / lookups : 0,
      readGBps: s.readSeconds > 0 ? s.bytesRead / s.readSeconds / 1e9 : 0,
      perToken: {
        hits: t > 0 ? s.hits / t : 0,
        misses: t > 0 ? s.misses / t : 0,
        bytesRead: t > 0 ? s.bytesRead / t : 0,
        stallSeconds: t > 0 ? s.stallSeconds / t : 0,
      },
      precision: s.predicted > 0 ? s.predictedCorrect / s.predicted : 0,
      recall: s.actual > 0 ? s.predictedCorrect / s.actual : 0,
    };
  }

  /** Release the arena. The cache must not be used afterwards. */
  free(): void {
    this.arena?.free();
  }
}

/**
 * Prometheus text exposition of a snapshot (`# HELP`/`# TYPE` lines and samples), for a
 * `/metrics` endpoint. Counters end in `_total`.
 */
export function cacheMetrics(s: CacheSnapshot, prefix = "spool_expert_cache"): string {
  const out: string[] = [];
  const m = (name: string, type: "counter" | "gauge", help: string, v: number) => {
    out.push(
      `# HELP ${prefix}_${name} ${help}`,
      `# TYPE ${prefix}_${name} ${type}`,
      `${prefix}_${name} ${v}`,
    );
  };
  m("hits_total", "counter", "Expert lookups served from a slot.", s.hits);
  m("misses_total", "counter", "Expert lookups that needed a read.", s.misses);
  m("evictions_total", "counter", "Experts evicted to make room.", s.evictions);
  m("read_bytes_total", "counter", "Bytes read from disk into slots.", s.bytesRead);
  m("read_seconds_total", "counter", "Seconds spent reading experts.", s.readSeconds);
  m("stall_seconds_total", "counter", "Seconds compute waited for expert reads.", s.stallSeconds);
  m("tokens_total", "counter", "Tokens processed.", s.tokens);
  m("predicted_total", "counter", "Experts predicted by the prefetcher.", s.predicted);
  m(
    "predicted_correct_total",
    "counter",
    "Predicted experts that were routed to.",
    s.predictedCorrect,
  );
  m("slots", "gauge", "Slots in the cache.", s.slots);
  m("slot_bytes", "gauge", "Bytes per slot.", s.slotBytes);
  m("resident", "gauge", "Slots holding an expert.", s.resident);
  m("pinned", "gauge", "Pinned slots.", s.pinned);
  m("hit_rate", "gauge", "Hits over lookups since the last reset.", s.hitRate);
  m("read_gbps", "gauge", "Effective read bandwidth, GB/s.", s.readGBps);
  return out.join("\n") + "\n";
}
