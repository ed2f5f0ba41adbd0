/**
 * A loaded model: config, memory-mapped weights, the kernel thread pool. Immutable and
 * shared by every session (llama.cpp's model/context split). Dense tensors are advised
 * resident (MADV_WILLNEED); expert tensors are advised random-access and only touched for
 * the experts a token routes to.
 */
import process from "node:process";
import { availableParallelism } from "node:os";
import { native } from "../../ffi/mod.ts";
import {
  Advice,
  closeFile,
  IOError,
  MappedFile,
  type NativeBuffer,
  openFile,
} from "../../ffi/memory.ts";
import { type CacheSnapshot, ExpertCache } from "../experts/cache.ts";
import { Pager } from "../experts/pager.ts";
import { BudgetError, formatSize } from "../experts/budget.ts";
import { type GGUFFile, readGGUF } from "../gguf/reader.ts";
import { CpuBackend } from "../backend/cpu.ts";
import { bindTensors } from "./bind.ts";
import {
  type Bound,
  type ExpertTensors,
  LayerWeights,
  shortName,
  type Vec,
  type Weight,
} from "../models/weights.ts";
import {
  type ArchSpec,
  kvBytesPerToken,
  type ModelConfig,
  recurrentStateFloats,
} from "../models/config.ts";
import { DEFAULT_CHECKPOINTS } from "./recurrent.ts";
import { archOf } from "../models/registry.ts";
import { inspectGGUF } from "../inspect.ts";
import { planBudget } from "../experts/budget.ts";
import {
  type ExpertProfile,
  hotSet,
  identityOfGGUF,
  loadProfile,
  type ModelIdentity,
  ProfileRecorder,
  saveProfile,
} from "../experts/profile.ts";
import { existsSync, statSync } from "node:fs";
import { PrefetchController, type PrefetchMode, type PrefetchState } from "../experts/prefetch.ts";

export type { Bound, ExpertTensors, ExpertWeight, Vec, Weight } from "../models/weights.ts";
export { LayerWeights } from "../models/weights.ts";

/** Options of {@link loadModel}. */
export interface LoadOptions {
  /** Kernel threads (default: available cores, at most 16). */
  threads?: number;
  /** Ask the OS to prefetch the dense weights (default true). */
  willNeed?: boolean;
  /**
   * Bytes of the expert cache (DESIGN.md §4), or "auto". 0 turns the cache off: every
   * expert stays mapped and is paged in by faults. Otherwise routed experts are read with
   * explicit O_DIRECT reads (buffered where the file system refuses O_DIRECT) into an
   * {@link ExpertCache} of this many bytes, and the mapping of the expert tensors is never
   * touched. Default "auto": see {@link LoadOptions.ramBudget}.
   */
  expertCache?: number | "auto";
  /**
   * Memory budget for the whole model (`--ram-budget`): bytes, or "auto" (the default) for
   * the detected limit (MemAvailable, or the cgroup's if lower). A model that fits is simply
   * mapped; otherwise the expert cache gets what the dense weights, the KV cache and the
   * runtime leave ({@link planBudget}); a budget below that minimum is a
   * {@link BudgetError}.
   */
  ramBudget?: number | "auto";
  /**
   * With an expert cache: predict each layer's experts by applying its router to the
   * previous layer's hidden state, and read them while that layer computes. "auto" (the
   * default) measures decode steps with and without it and keeps the faster (see
   * {@link PrefetchController}); true/"on" and false/"off" force it.
   */
  prefetch?: boolean | PrefetchMode;
  /**
   * A hot-expert profile file (`--expert-profile`). If it exists (and belongs to this
   * model) its hottest experts are pinned in the cache at load, up to `pinFraction` of the
   * slots; either way this run's routing is counted and the file is (re)written, with the
   * old counts plus the new, by {@link Model.close} or {@link Model.saveExpertProfile}.
   */
  expertProfile?: string;
  /**
   * KV tokens the budget must leave room for, over all sessions (default: one session of
   * min(training context, 4096)); a server with N slots of C tokens passes N × C.
   */
  kvTokens?: number;
  /**
   * Recurrent-state copies of a hybrid model the budget must leave room for: every live
   * sequence's state plus the checkpoints its session keeps (default: one sequence with
   * {@link DEFAULT_CHECKPOINTS} checkpoints); a server with N slots of c checkpoints passes
   * N × (1 + c). Ignored for models without recurrent layers.
   */
  stateCopies?: number;
  /** Share of the cache slots a profile may pin (default 0.5). */
  pinFraction?: number;
  /** Reader threads of the expert pager (default 4; only with `expertCache`). */
  pagerThreads?: number;
}

/** Bytes of the expert cache for `opts`: 0 = mapped (see {@link LoadOptions.ramBudget}). */
export function expertCacheBytes(gguf: GGUFFile, opts: LoadOptions): number {
  const { expertCache, ramBudget } = opts;
  // an explicit cache size alone is taken as given (openExpertSource checks it holds a step)
  if (typeof expertCache === "number" && ramBudget === undefined) return expertCache;
  const r = inspectGGUF(gguf);
  const spec = archOf(gguf.kv);
  const cfg = spec.config(gguf.kv);
  const perToken = kvBytesPerToken(spec, cfg);
  const kv = opts.kvTokens !== undefined
    ? opts.kvTokens * perToken
    : Math.min(cfg.nCtxTrain || 4096, 4096) * perToken;
  const copies = opts.stateCopies ?? 1 + DEFAULT_CHECKPOINTS;
  const plan = planBudget({
    fileBytes: r.fileSize,
    denseBytes: r.denseBytes,
    expertBytes: r.expertBytes,
    bytesPerExpert: r.bytesPerExpert,
    kvBytes: kv,
    stateBytes: recurrentStateFloats(cfg) * 4 * copies,
    overheadBytes: 512 << 20,
    expertsPerToken: cfg.nExpertUsed,
    ramBudget,
    expertCache,
  });
  return plan.mode === "cache" ? plan.expertCacheBytes : 0;
}

/**
 * What a {@link Session} needs to serve experts from the cache: the cache, the pager, the
 * file descriptor the pager reads from and whether it is O_DIRECT.
 */
export interface ExpertSource {
  readonly cache: ExpertCache;
  readonly pager: Pager;
  /** The fd reads go to (swapped for a buffered one if O_DIRECT reads fail with EINVAL). */
  fd: number;
  /** Whether `fd` is O_DIRECT. */
  direct: boolean;
  /** Numeric address of the cache arena's byte 0. */
  readonly arenaAddress: number;
  /** Whether to apply the next layer's router early and read its predicted experts ahead. */
  readonly prefetch: PrefetchController;
  /** Pager wall time (ns) already reported to the cache's read statistics. */
  wallMark: number;
}

const EINVAL = 22;

/**
 * The model file was truncated, rewritten, replaced or removed while it was in use: its
 * mapped weights can no longer be trusted (or even touched: a truncated mapping faults).
 */
export class ModelFileChangedError extends Error {
  /** The model file. */
  readonly path: string;
  constructor(path: string, what: string) {
    super(`The model file ${path} changed on disk while in use (${what}); load it again`);
    this.name = "ModelFileChangedError";
    this.path = path;
  }
}

export { ModelLoadError } from "./bind.ts";

/** A loaded model. Call {@link Model.close} when done. */
export class Model {
  readonly path: string;
  readonly gguf: GGUFFile;
  readonly arch: ArchSpec;
  readonly config: ModelConfig;
  readonly file: MappedFile;
  /** The op backend the forward pass runs on (owns the kernel threads). */
  readonly backend: CpuBackend;
  readonly threads: number;
  readonly tokenEmbd: Weight;
  readonly output: Weight;
  readonly outputNorm: Vec;
  readonly layers: readonly LayerWeights[];
  /** Each layer's routed experts (null for a dense layer): what the expert cache pages. */
  readonly expertLayers: readonly (ExpertTensors | null)[];
  #closed = false;
  #tables: NativeBuffer[] = [];
  /** The expert cache and its reader, when loaded with `expertCache`. */
  #experts: ExpertSource | null = null;
  /** Routing counts for `expertProfile`, the file and the model's identity. */
  #profile: { recorder: ProfileRecorder; path: string; identity: ModelIdentity } | null = null;
  /** Experts pinned from a profile at load. */
  pinnedFromProfile = 0;
  /** Run first by close() (e.g. the shared step session of batched evaluation). */
  #closers: (() => void)[] = [];
  /** The file's identity at load: inode, size, modification time. */
  #stat: { ino: number; size: number; mtimeMs: number } | null = null;

  private constructor(
    path: string,
    gguf: GGUFFile,
    file: MappedFile,
    threads: number,
    willNeed: boolean,
    cached: boolean,
    residentExperts: boolean,
  ) {
    this.path = path;
    this.gguf = gguf;
    this.file = file;
    this.arch = archOf(gguf.kv);
    this.config = this.arch.config(gguf.kv);
    const cfg = this.config;
    const bound = bindTensors(path, gguf, file, this.arch.tensors(cfg), this.#tables, {
      cached,
      willNeed,
      residentExperts,
    });
    const at = (name: string) => bound.get(name);
    this.tokenEmbd = at("token_embd.weight") as Weight;
    this.output = (at("output.weight") as Weight | undefined) ?? this.tokenEmbd;
    this.outputNorm = at("output_norm.weight") as Vec;
    const layers: LayerWeights[] = [];
    for (let i = 0; i < cfg.nLayer; i++) {
      const own = new Map<string, Bound>();
      const prefix = `blk.${i}.`;
      for (const [name, b] of bound) if (name.startsWith(prefix)) own.set(shortName(name), b);
      const window =
        cfg.slidingWindow > 0 && cfg.swaPattern > 0 && i % cfg.swaPattern < cfg.swaPattern - 1
          ? cfg.slidingWindow
          : 0;
      layers.push(new LayerWeights(i, window, own));
    }
    this.layers = layers;
    this.expertLayers = layers.map((l) => l.experts);
    if (willNeed) {
      // dense tensors: everything that is not a routed expert
      for (const info of gguf.tensors) {
        if (/_exps\.weight$/.test(info.name)) continue;
        file.advise(info.absoluteOffset, info.nbytes, Advice.WILLNEED);
      }
    }
    this.threads = threads;
    this.backend = new CpuBackend(threads);
  }

  /** Load a GGUF model: parse, map, bind every tensor. */
  static load(path: string, opts: LoadOptions = {}): Model {
    const gguf = readGGUF(path);
    const budget = expertCacheBytes(gguf, opts);
    if (!(Number.isSafeInteger(budget) && budget >= 0)) {
      throw new RangeError(`expertCache must be a byte count >= 0, got ${budget}`);
    }
    const file = MappedFile.open(path);
    let model: Model | undefined;
    try {
      const threads = opts.threads ?? Math.max(1, Math.min(availableParallelism(), 16));
      // the budget mapped the whole model (it fits): its experts may be read ahead too
      const resident = budget === 0 && opts.expertCache === undefined;
      model = new Model(path, gguf, file, threads, opts.willNeed ?? true, budget > 0, resident);
      if (budget > 0) {
        model.#experts = openExpertSource(
          model,
          budget,
          opts.pagerThreads ?? 4,
          opts.prefetch === true ? "on" : opts.prefetch === false ? "off" : opts.prefetch ?? "auto",
        );
      }
      if (opts.expertProfile !== undefined) model.#openProfile(opts.expertProfile, opts);
      const st = statSync(path);
      model.#stat = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
      return model;
    } catch (e) {
      if (model) model.#release();
      else file.close();
      throw e;
    }
  }

  /**
   * The expert cache when the model was loaded with `expertCache` (null when every expert
   * is mapped). Its {@link ExpertCache.snapshot} has hits, misses, bytes read, read
   * bandwidth and stall time.
   */
  get expertCache(): ExpertCache | null {
    return this.#experts?.cache ?? null;
  }

  /** The cache's statistics and the prefetch controller's state, or null without a cache. */
  expertCacheStats(): (CacheSnapshot & { prefetch: PrefetchState }) | null {
    const ex = this.#experts;
    return ex ? { ...ex.cache.snapshot(), prefetch: ex.prefetch.state() } : null;
  }

  /** What sessions read experts through (null when every expert is mapped). */
  get expertSource(): ExpertSource | null {
    return this.#experts;
  }

  /**
   * Throw {@link ModelFileChangedError} if the file is no longer the one loaded (another
   * inode at the path, another size or modification time, or gone). Sessions call it before
   * every step: one stat, about a microsecond. A truncation during a step is not caught.
   */
  checkFile(): void {
    const was = this.#stat;
    if (!was) return;
    let now;
    try {
      now = statSync(this.path);
    } catch {
      throw new ModelFileChangedError(this.path, "it is gone");
    }
    if (now.ino !== was.ino) throw new ModelFileChangedError(this.path, "replaced by another file");
    if (now.size !== was.size) {
      throw new ModelFileChangedError(this.path, `${was.size} bytes at load, ${now.size} now`);
    }
    if (now.mtimeMs !== was.mtimeMs) throw new ModelFileChangedError(this.path, "rewritten");
  }

  /** The routing recorder of `expertProfile` (null without one); sessions feed it. */
  get profileRecorder(): ProfileRecorder | null {
    return this.#profile?.recorder ?? null;
  }

  #openProfile(path: string, opts: LoadOptions): void {
    const identity = identityOfGGUF(this.gguf);
    const recorder = new ProfileRecorder(this.config.nLayer, this.config.nExpert);
    let saved: ExpertProfile | null = null;
    if (existsSync(path)) {
      saved = loadProfile(path, identity);
      recorder.merge(saved);
    }
    this.#profile = { recorder, path, identity };
    const ex = this.#experts;
    if (saved && ex) {
      const frac = Math.min(1, Math.max(0, opts.pinFraction ?? 0.5));
      this.#pin(hotSet(saved, Math.floor(ex.cache.slots * frac)));
    }
  }

  /** Pin `keys` and read the absent ones (one ticket). */
  #pin(keys: Int32Array): void {
    const ex = this.#experts!;
    const { cache, pager } = ex;
    const nE = this.config.nExpert;
    const fresh: number[] = [];
    let bytes = 0;
    const t0 = performance.now();
    for (const key of keys) {
      const L = this.expertLayers[Math.floor(key / nE)];
      const e = key % nE;
      if (!L) continue; // a dense layer has no experts to pin
      const a = cache.pin(key);
      if (!a.fresh) continue;
      fresh.push(a.slot);
      bytes += stageExpertRead(ex, L, a.slot, e);
    }
    try {
      if (fresh.length > 0) pager.wait(pager.flush(), this.path);
    } catch (e) {
      pager.discard();
      for (const s of fresh) cache.discard(s);
      throw e;
    }
    for (const s of fresh) cache.markLoaded(s);
    if (bytes > 0) cache.recordRead(bytes, (performance.now() - t0) / 1000);
    ex.wallMark = pager.stats().wallNs;
    this.pinnedFromProfile = keys.length;
  }

  /** Write the routing counts (saved + this run's) to the `expertProfile` file now. */
  saveExpertProfile(): void {
    const p = this.#profile;
    if (p) saveProfile(p.path, p.recorder.toProfile(p.identity));
  }

  /**
   * Release the pool and the mapping (writing the expert profile first, when one was
   * given). Sessions must be closed first.
   */
  close(): void {
    if (this.#closed) return;
    try {
      this.saveExpertProfile();
    } finally {
      this.#release();
    }
  }

  /** Call `f` when the model closes, before its memory goes. */
  onClose(f: () => void): void {
    this.#closers.push(f);
  }

  #release(): void {
    for (const f of this.#closers.splice(0)) {
      try {
        f();
      } catch { /* closing must go on */ }
    }
    this.#closed = true;
    const ex = this.#experts;
    if (ex) {
      this.#experts = null;
      ex.pager.close(); // joins the readers before the arena goes
      ex.cache.free();
      try {
        closeFile(ex.fd, this.path);
      } catch { /* closing a read-only fd cannot lose data */ }
    }
    this.backend.close();
    for (const t of this.#tables) t.free();
    this.file.close();
  }
}

/**
 * Stage the pager reads of expert `e` of layer `L` (gate, up, down) into cache slot `slot`:
 * under O_DIRECT, the aligned superset is read so the data lands at the slot's data offsets.
 * Returns the expert's bytes.
 */
export function stageExpertRead(
  src: ExpertSource,
  L: ExpertTensors,
  slot: number,
  e: number,
): number {
  const { cache, pager } = src;
  const arena = cache.arena!;
  let bytes = 0;
  for (let p = 0; p < 3; p++) {
    const t = p === 0 ? L.gateExps : p === 1 ? L.upExps : L.downExps;
    const off = t.fileOffset + e * t.expertBytes;
    const dst = cache.dataOffset(slot, p);
    if (src.direct) pager.addDirect(src.fd, arena, dst - (off % 4096), t.expertBytes, off);
    else pager.add(src.fd, arena, dst, t.expertBytes, off);
    bytes += t.expertBytes;
  }
  return bytes;
}

/** Create the cache, the pager and the reading fd of a model loaded with `expertCache`. */
function openExpertSource(
  model: Model,
  budgetBytes: number,
  threads: number,
  prefetch: PrefetchMode,
): ExpertSource {
  const nExpert = model.config.nExpert, k = model.config.nExpertUsed;
  // a decode step holds the k experts of one layer at once: fewer slots cannot run
  const { slotBytes } = ExpertCache.forLayers(model.expertLayers, nExpert, { slots: 1 }, {
    arena: false,
  });
  const need = Math.min(k, nExpert) * slotBytes;
  if (budgetBytes < need) {
    throw new BudgetError(
      `An expert cache of ${formatSize(budgetBytes)} cannot hold the ${k} experts one token ` +
        `routes to in a layer (${k} slots of ${formatSize(slotBytes)}): give --expert-cache ` +
        `${formatSize(need)} or more.`,
      budgetBytes,
      need,
      need,
    );
  }
  const cache = ExpertCache.forLayers(model.expertLayers, nExpert, { budgetBytes });
  let pager: Pager | undefined;
  let fd = -1;
  try {
    let direct = true;
    try {
      fd = openFile(model.path, true);
    } catch (e) {
      if (!(e instanceof IOError && e.errno === EINVAL)) throw e;
      direct = false;
      fd = openFile(model.path, false);
    }
    pager = Pager.create(Math.max(1, Math.min(threads, 256)));
    // io_uring: pin the arena once, so a read does not pin its pages each time (about half
    // the CPU of an O_DIRECT read); the arena is inside the budget already. SPOOL_PAGER_REGISTER=0
    // turns it off (a no-op on the threads backend).
    if (process.env.SPOOL_PAGER_REGISTER !== "0") pager.register(cache.arena!);
    const arenaAddress = native().address(cache.arena!.ptr);
    return {
      cache,
      pager,
      fd,
      direct,
      arenaAddress,
      prefetch: new PrefetchController(prefetch),
      wallMark: 0,
    };
  } catch (e) {
    pager?.close();
    if (fd >= 0) closeFile(fd, model.path);
    cache.free();
    throw e;
  }
}
