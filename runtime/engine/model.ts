/**
 * A loaded model: config, memory-mapped weights, the kernel thread pool. Immutable and
 * shared by every session (llama.cpp's model/context split). Dense tensors are advised
 * resident (MADV_WILLNEED); expert tensors are advised random-access and only touched for
 * the experts a token routes to.
 */
import { availableParallelism } from "node:os";
import { isNull, KernelError, native, Status } from "../../ffi/mod.ts";
import type { Ptr } from "../../ffi/mod.ts";
import {
  Advice,
  closeFile,
  IOError,
  MappedFile,
  NativeBuffer,
  openFile,
} from "../../ffi/memory.ts";
import { type CacheSnapshot, ExpertCache } from "../experts/cache.ts";
import { Pager } from "../experts/pager.ts";
import { BudgetError, formatSize } from "../experts/budget.ts";
import { type GGUFFile, readGGUF, type TensorInfo } from "../gguf/reader.ts";
import { GGMLType, rowBytes } from "../gguf/types.ts";
import type { ArchSpec, ModelConfig } from "../models/config.ts";
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

/** A 2-D weight (rows × cols) in the mapping: y = W x has `rows` outputs. */
export interface Weight {
  readonly name: string;
  readonly type: number;
  readonly rows: number;
  readonly cols: number;
  readonly ptr: Ptr;
  /** Bytes of one row. */
  readonly rowBytes: number;
}

/** A 3-D expert tensor: `nExpert` matrices of rows × cols, expert index outermost. */
export interface ExpertWeight {
  readonly name: string;
  readonly type: number;
  readonly rows: number;
  readonly cols: number;
  /** Pointer to each expert's matrix. */
  readonly ptrs: readonly Ptr[];
  /** The same addresses as a native array of nExpert uint64 (spool_moe_ffn's gate/up/down). */
  readonly table: NativeBuffer;
  /** Bytes of one expert's matrix. */
  readonly expertBytes: number;
  /** Offset of expert 0 in the file. */
  readonly fileOffset: number;
}

/** A 1-D F32 vector (norm weight or bias) as a JS view plus its pointer. */
export interface Vec {
  readonly name: string;
  readonly ptr: Ptr;
  readonly data: Float32Array;
}

/** The weights of one transformer block. */
export interface LayerWeights {
  readonly attnNorm: Vec;
  readonly q: Weight;
  readonly k: Weight;
  readonly v: Weight;
  readonly o: Weight;
  readonly qBias?: Vec;
  readonly kBias?: Vec;
  readonly vBias?: Vec;
  readonly oBias?: Vec;
  readonly qNorm?: Vec;
  readonly kNorm?: Vec;
  readonly sinks?: Vec;
  readonly ffnNorm: Vec;
  readonly router: Weight;
  readonly routerBias?: Vec;
  readonly gateExps: ExpertWeight;
  readonly upExps: ExpertWeight;
  readonly downExps: ExpertWeight;
  /** Per-expert biases (gpt-oss), (nExpert, rows) row-major. */
  readonly gateExpsBias?: Vec;
  readonly upExpsBias?: Vec;
  readonly downExpsBias?: Vec;
  readonly shared?: {
    readonly gateInp: Vec;
    readonly gate: Weight;
    readonly up: Weight;
    readonly down: Weight;
  };
  /** Sliding window of this layer (0 = global attention). */
  readonly window: number;
}

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
  const cfg = archOf(gguf.kv).config(gguf.kv);
  const perToken = cfg.nLayer * cfg.nHeadKv * (cfg.headDim + cfg.headDimV) * 2;
  const kv = opts.kvTokens !== undefined
    ? opts.kvTokens * perToken
    : Math.min(cfg.nCtxTrain || 4096, 4096) * perToken;
  const plan = planBudget({
    fileBytes: r.fileSize,
    denseBytes: r.denseBytes,
    expertBytes: r.expertBytes,
    bytesPerExpert: r.bytesPerExpert,
    kvBytes: kv,
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

/** A weight tensor is missing or has the wrong shape or type. */
export class ModelLoadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelLoadError";
  }
}

/** A loaded model. Call {@link Model.close} when done. */
export class Model {
  readonly path: string;
  readonly gguf: GGUFFile;
  readonly arch: ArchSpec;
  readonly config: ModelConfig;
  readonly file: MappedFile;
  readonly pool: Ptr;
  readonly threads: number;
  readonly tokenEmbd: Weight;
  readonly output: Weight;
  readonly outputNorm: Vec;
  readonly layers: readonly LayerWeights[];
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
  ) {
    this.path = path;
    this.gguf = gguf;
    this.file = file;
    this.arch = archOf(gguf.kv);
    this.config = this.arch.config(gguf.kv);
    const cfg = this.config;
    const n = native();
    const t = (name: string, optional = false): TensorInfo | undefined => {
      const info = gguf.tensorByName.get(name);
      if (!info && !optional) {
        throw new ModelLoadError(`Cannot load ${path}: tensor "${name}" is missing`);
      }
      if (info && info.absoluteOffset + info.nbytes > file.size) {
        throw new ModelLoadError(`Cannot load tensor "${name}": data runs past the end of ${path}`);
      }
      return info;
    };
    const weight = (
      name: string,
      rows: number,
      cols: number,
      optional = false,
    ): Weight | undefined => {
      const info = t(name, optional);
      if (!info) return undefined;
      const [c, r = 1] = info.shape;
      if (c !== cols || r !== rows || info.shape.length > 2) {
        throw new ModelLoadError(
          `Cannot load tensor "${name}": expected shape [${cols}, ${rows}], got [${info.shape}]`,
        );
      }
      return {
        name,
        type: info.type,
        rows,
        cols,
        ptr: file.ptrAt(info.absoluteOffset),
        rowBytes: rowBytes(info.type, cols),
      };
    };
    const req = (name: string, rows: number, cols: number) => weight(name, rows, cols)!;
    const vec = (name: string, len: number, optional = false): Vec | undefined => {
      const info = t(name, optional);
      if (!info) return undefined;
      if (info.type !== GGMLType.F32 || info.nElements !== len) {
        throw new ModelLoadError(
          `Cannot load tensor "${name}": expected F32 of ${len} values, got ${info.typeName} of ${info.nElements}`,
        );
      }
      const data = new Float32Array(file.bytes(info.absoluteOffset, info.nbytes).slice().buffer);
      return { name, ptr: n.ptr(data), data };
    };
    const tables = this.#tables;
    const experts = (name: string, rows: number, cols: number): ExpertWeight => {
      const info = t(name)!;
      const [c, r, e] = info.shape;
      if (c !== cols || r !== rows || e !== cfg.nExpert) {
        throw new ModelLoadError(
          `Cannot load tensor "${name}": expected shape [${cols}, ${rows}, ${cfg.nExpert}], got [${info.shape}]`,
        );
      }
      const expertBytes = rowBytes(info.type, cols) * rows;
      const ptrs: Ptr[] = [];
      const table = new NativeBuffer(e * 8);
      const addrs = new BigUint64Array(table.u8.buffer, table.u8.byteOffset, e);
      for (let i = 0; i < e; i++) {
        ptrs.push(file.ptrAt(info.absoluteOffset + i * expertBytes));
        addrs[i] = BigInt(n.address(ptrs[i]));
      }
      tables.push(table);
      if (cached) {
        // served from the cache: never fault these pages in
        file.advise(info.absoluteOffset, info.nbytes, Advice.RANDOM);
        file.advise(info.absoluteOffset, info.nbytes, Advice.DONTNEED);
      } else if (willNeed) file.advise(info.absoluteOffset, info.nbytes, Advice.RANDOM);
      return {
        name,
        type: info.type,
        rows,
        cols,
        ptrs,
        table,
        expertBytes,
        fileOffset: info.absoluteOffset,
      };
    };
    const E = cfg.nEmbd, hd = cfg.headDim, hdv = cfg.headDimV;
    const nq = cfg.nHead * hd, nk = cfg.nHeadKv * hd, nv = cfg.nHeadKv * hdv;
    this.tokenEmbd = req("token_embd.weight", cfg.nVocab, E);
    this.output = weight("output.weight", cfg.nVocab, E, true) ?? this.tokenEmbd;
    this.outputNorm = vec("output_norm.weight", E)!;
    const layers: LayerWeights[] = [];
    for (let i = 0; i < cfg.nLayer; i++) {
      const p = `blk.${i}.`;
      const ff = cfg.nFfExp;
      const layer: LayerWeights = {
        attnNorm: vec(p + "attn_norm.weight", E)!,
        q: req(p + "attn_q.weight", nq, E),
        k: req(p + "attn_k.weight", nk, E),
        v: req(p + "attn_v.weight", nv, E),
        o: req(p + "attn_output.weight", E, cfg.nHead * hdv),
        qBias: cfg.attnQKVBias ? vec(p + "attn_q.bias", nq) : undefined,
        kBias: cfg.attnQKVBias ? vec(p + "attn_k.bias", nk) : undefined,
        vBias: cfg.attnQKVBias ? vec(p + "attn_v.bias", nv) : undefined,
        oBias: cfg.attnOutBias ? vec(p + "attn_output.bias", E) : undefined,
        qNorm: cfg.qkNorm === "head"
          ? vec(p + "attn_q_norm.weight", hd)
          : cfg.qkNorm === "full"
          ? vec(p + "attn_q_norm.weight", nq)
          : undefined,
        kNorm: cfg.qkNorm === "head"
          ? vec(p + "attn_k_norm.weight", hd)
          : cfg.qkNorm === "full"
          ? vec(p + "attn_k_norm.weight", nk)
          : undefined,
        sinks: cfg.attnSinks ? vec(p + "attn_sinks.weight", cfg.nHead) : undefined,
        ffnNorm: vec(p + cfg.ffnNormName + ".weight", E)!,
        router: req(p + "ffn_gate_inp.weight", cfg.nExpert, E),
        routerBias: cfg.routerBias ? vec(p + "ffn_gate_inp.bias", cfg.nExpert) : undefined,
        gateExps: experts(p + "ffn_gate_exps.weight", ff, E),
        upExps: experts(p + "ffn_up_exps.weight", ff, E),
        downExps: experts(p + "ffn_down_exps.weight", E, ff),
        gateExpsBias: cfg.expertBias ? vec(p + "ffn_gate_exps.bias", ff * cfg.nExpert) : undefined,
        upExpsBias: cfg.expertBias ? vec(p + "ffn_up_exps.bias", ff * cfg.nExpert) : undefined,
        downExpsBias: cfg.expertBias ? vec(p + "ffn_down_exps.bias", E * cfg.nExpert) : undefined,
        shared: cfg.nFfShexp > 0
          ? {
            gateInp: vec(p + "ffn_gate_inp_shexp.weight", E)!,
            gate: req(p + "ffn_gate_shexp.weight", cfg.nFfShexp, E),
            up: req(p + "ffn_up_shexp.weight", cfg.nFfShexp, E),
            down: req(p + "ffn_down_shexp.weight", E, cfg.nFfShexp),
          }
          : undefined,
        window:
          cfg.slidingWindow > 0 && cfg.swaPattern > 0 && i % cfg.swaPattern < cfg.swaPattern - 1
            ? cfg.slidingWindow
            : 0,
      };
      layers.push(layer);
    }
    this.layers = layers;
    if (willNeed) {
      // dense tensors: everything that is not a routed expert
      for (const info of gguf.tensors) {
        if (/_exps\.weight$/.test(info.name)) continue;
        file.advise(info.absoluteOffset, info.nbytes, Advice.WILLNEED);
      }
    }
    this.threads = threads;
    const pool = n.sym.spool_pool_create(threads);
    if (isNull(pool)) throw new KernelError("spool_pool_create", Status.NOMEM);
    this.pool = pool;
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
      model = new Model(path, gguf, file, threads, opts.willNeed ?? true, budget > 0);
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
      const L = this.layers[Math.floor(key / nE)];
      const e = key % nE;
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
    native().sym.spool_pool_destroy(this.pool);
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
  L: LayerWeights,
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
  const { slotBytes } = ExpertCache.forLayers(model.layers, nExpert, { slots: 1 }, {
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
  const cache = ExpertCache.forLayers(model.layers, nExpert, { budgetBytes });
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
