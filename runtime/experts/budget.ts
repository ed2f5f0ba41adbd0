/**
 * The memory budget (DESIGN.md §4, §7): parse `--ram-budget` / `--expert-cache` sizes,
 * detect how much memory this process may use (MemAvailable, the cgroup v1 or v2 limit, or
 * the OS totals on macOS), and plan whether a model is simply mapped or runs with its
 * experts paged through a cache of a given size.
 *
 * Sizes: `K`, `M`, `G`, `T` and `KiB`, `MiB`, `GiB`, `TiB` are binary (powers of 1024, as
 * cgroups and `docker --memory` read them); `KB`, `MB`, `GB`, `TB` are decimal (powers of
 * 1000, as disk sizes are quoted). A bare number is bytes. Case does not matter.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { freemem, totalmem } from "node:os";
import process from "node:process";

const GiB = 1024 ** 3;

/** A size string could not be parsed. */
export class SizeParseError extends Error {
  /** The text given. */
  readonly input: string;
  constructor(input: string, what: string, options?: ErrorOptions) {
    super(
      `Cannot parse ${what} "${input}": expected bytes or a number with a unit ` +
        `(K, M, G, T or KiB, MiB, GiB, TiB in powers of 1024; KB, MB, GB, TB in powers of ` +
        `1000), e.g. "4G", "512MiB", "6.5GB", or "auto"`,
      options,
    );
    this.name = "SizeParseError";
    this.input = input;
  }
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
};

/**
 * Parse a size: `"4G"` (4 GiB), `"4GiB"`, `"512M"`, `"6.5GB"` (6.5e9), `"123456"` (bytes),
 * a number (bytes), or `"auto"`. Returns whole bytes (rounded down) or `"auto"`. `what`
 * names the option in errors (e.g. `"--ram-budget"`). Throws {@link SizeParseError}.
 */
export function parseSize(input: string | number, what = "size"): number | "auto" {
  if (typeof input === "number") {
    if (!(Number.isFinite(input) && input >= 0)) throw new SizeParseError(String(input), what);
    return Math.floor(input);
  }
  const text = input.trim();
  if (text.toLowerCase() === "auto") return "auto";
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)$/.exec(text);
  if (!m) throw new SizeParseError(input, what);
  const unit = UNITS[m[2].toLowerCase()];
  if (unit === undefined) throw new SizeParseError(input, what);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new SizeParseError(input, what);
  return bytes;
}

/** Human-readable GiB with two decimals at most: "3.1 GiB", "512 MiB" below 1 GiB. */
export function formatSize(bytes: number): string {
  if (bytes >= GiB) return `${Number((bytes / GiB).toFixed(2))} GiB`;
  if (bytes >= 1024 ** 2) return `${Number((bytes / 1024 ** 2).toFixed(1))} MiB`;
  return `${bytes} B`;
}

/** Where {@link detectMemoryLimit} reads from (tests point these at fixture trees). */
export interface MemoryProbe {
  /** Root of /proc (default "/proc"). */
  procRoot?: string;
  /** Root of /sys (default "/sys"). */
  sysRoot?: string;
  /** Platform (default `process.platform`). */
  platform?: string;
  /** OS totals for the non-Linux fall back (default node:os). */
  os?: { totalmem(): number; freemem(): number };
}

/** What {@link detectMemoryLimit} found. */
export interface MemoryLimit {
  /** The bytes this process may use: the smallest of the limits found. */
  bytes: number;
  /** Which limit is the smallest. */
  source: "meminfo" | "cgroup v2" | "cgroup v1" | "os";
  /** MemAvailable from /proc/meminfo (or the OS estimate), bytes. */
  available: number;
  /** MemTotal (or os.totalmem()), bytes. */
  total: number;
  /** The cgroup memory limit, or null when none is set. */
  cgroupLimit: number | null;
  /** The file the cgroup limit came from. */
  cgroupFile: string | null;
}

/** A cgroup value at or above this is "no limit" (v1 writes 2^63 rounded down to a page). */
const UNLIMITED = 2 ** 60;

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** Parse /proc/meminfo into bytes: MemAvailable and MemTotal (null when absent). */
export function parseMeminfo(text: string): { available: number | null; total: number | null } {
  const get = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s*kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : null;
  };
  return { available: get("MemAvailable"), total: get("MemTotal") };
}

/** A cgroup limit file's value in bytes, or null for "max", a huge value or garbage. */
export function parseCgroupLimit(text: string | null): number | null {
  if (text === null) return null;
  const t = text.trim();
  if (t === "max" || !/^\d+$/.test(t)) return null;
  const v = Number(t);
  return v >= UNLIMITED ? null : v;
}

/** The lines of /proc/self/cgroup: hierarchy id, controllers, path. */
export function parseProcCgroup(
  text: string,
): { id: string; controllers: string[]; path: string }[] {
  const out: { id: string; controllers: string[]; path: string }[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (m) out.push({ id: m[1], controllers: m[2] ? m[2].split(",") : [], path: m[3] });
  }
  return out;
}

/** Mount points of cgroup file systems from /proc/self/mounts (v1 memory, and v2). */
function cgroupMounts(procRoot: string, sysRoot: string): { v1: string[]; v2: string[] } {
  const v1: string[] = [], v2: string[] = [];
  const text = readText(`${procRoot}/self/mounts`) ?? readText(`${procRoot}/mounts`);
  if (text) {
    for (const line of text.split("\n")) {
      const f = line.split(" ");
      if (f.length < 4) continue;
      const mount = f[1].startsWith("/sys/") ? `${sysRoot}${f[1].slice(4)}` : f[1];
      if (f[2] === "cgroup2") v2.push(mount);
      else if (f[2] === "cgroup" && f[3].split(",").includes("memory")) v1.push(mount);
    }
  }
  // the usual places, for a /proc without mounts (fixtures, restricted containers)
  if (v1.length === 0) v1.push(`${sysRoot}/fs/cgroup/memory`);
  if (v2.length === 0) v2.push(`${sysRoot}/fs/cgroup`, `${sysRoot}/fs/cgroup/unified`);
  return { v1, v2 };
}

/** `/a/b/c` → ["/a/b/c", "/a/b", "/a", ""] (the cgroup and its ancestors up to the root). */
function ancestors(path: string): string[] {
  const parts = path.split("/").filter((p) => p.length > 0);
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push(parts.slice(0, i).map((p) => "/" + p).join(""));
  return out;
}

/**
 * The tightest cgroup memory limit over this process's cgroup and its ancestors, v2
 * (`memory.max`) and v1 (`memory.limit_in_bytes`, and `hierarchical_memory_limit` in
 * `memory.stat`). Inside a container the cgroup path from /proc/self/cgroup may not exist
 * under the mount (the container sees its own cgroup as the root), so the mount root is
 * always tried too.
 */
export function detectCgroupLimit(
  probe: MemoryProbe = {},
): { bytes: number; file: string; version: 1 | 2 } | null {
  const procRoot = probe.procRoot ?? "/proc";
  const sysRoot = probe.sysRoot ?? "/sys";
  const text = readText(`${procRoot}/self/cgroup`);
  if (text === null) return null;
  const lines = parseProcCgroup(text);
  const mounts = cgroupMounts(procRoot, sysRoot);
  let best: { bytes: number; file: string; version: 1 | 2 } | null = null;
  const consider = (file: string, version: 1 | 2, value: number | null) => {
    if (value !== null && (best === null || value < best.bytes)) {
      best = { bytes: value, file, version };
    }
  };
  for (const l of lines) {
    if (l.id === "0" && l.controllers.length === 0) {
      for (const mount of mounts.v2) {
        for (const dir of ancestors(l.path)) {
          const file = `${mount}${dir}/memory.max`;
          consider(file, 2, parseCgroupLimit(readText(file)));
        }
      }
    } else if (l.controllers.includes("memory")) {
      for (const mount of mounts.v1) {
        for (const dir of ancestors(l.path)) {
          const file = `${mount}${dir}/memory.limit_in_bytes`;
          consider(file, 1, parseCgroupLimit(readText(file)));
          const stat = readText(`${mount}${dir}/memory.stat`);
          const m = stat && /^hierarchical_memory_limit\s+(\d+)/m.exec(stat);
          if (m) consider(`${mount}${dir}/memory.stat`, 1, parseCgroupLimit(m[1]));
        }
      }
    }
  }
  return best;
}

/**
 * How much memory this process may use: the smaller of MemAvailable (/proc/meminfo) and the
 * cgroup limit (v2 or v1; see {@link detectCgroupLimit}). Where /proc/meminfo is missing
 * (macOS), `os.freemem()` is the estimate, raised to 60% of `os.totalmem()`: macOS counts
 * its file cache and inactive pages as used, though it gives them back on demand.
 */
export function detectMemoryLimit(probe: MemoryProbe = {}): MemoryLimit {
  const procRoot = probe.procRoot ?? "/proc";
  const platform = probe.platform ?? process.platform;
  const os = probe.os ?? { totalmem, freemem };
  const meminfo = platform === "linux" ? readText(`${procRoot}/meminfo`) : null;
  let available: number, total: number, source: MemoryLimit["source"];
  const mi = meminfo ? parseMeminfo(meminfo) : null;
  if (mi && mi.available !== null) {
    available = mi.available;
    total = mi.total ?? mi.available;
    source = "meminfo";
  } else {
    total = os.totalmem();
    available = Math.max(os.freemem(), Math.floor(total * 0.6));
    source = "os";
  }
  const cg = platform === "linux" ? detectCgroupLimit(probe) : null;
  let bytes = available;
  if (cg && cg.bytes < bytes) {
    bytes = cg.bytes;
    source = cg.version === 2 ? "cgroup v2" : "cgroup v1";
  }
  return {
    bytes,
    source,
    available,
    total,
    cgroupLimit: cg?.bytes ?? null,
    cgroupFile: cg?.file ?? null,
  };
}

/** The model fits and is mapped when file + KV + overhead ≤ limit × this. */
export const MAP_FRACTION = 0.85;
/** A cache plan keeps this share of the budget free (page tables, allocator, growth). */
export const SAFETY_FRACTION = 0.1;

/** Inputs of {@link planBudget}. Byte counts are exact (see `spool inspect`). */
export interface BudgetInput {
  /** GGUF file size. */
  fileBytes: number;
  /** Dense (non-expert) tensor bytes: resident in every mode. */
  denseBytes: number;
  /** All routed-expert tensor bytes. */
  expertBytes: number;
  /** Bytes of one expert of one layer (gate + up + down; the largest over layers). */
  bytesPerExpert: number;
  /** Bytes of one cache slot (default: bytesPerExpert + 3 × 8192 of alignment slack). */
  slotBytes?: number;
  /** KV cache bytes at the planned context and batch. */
  kvBytes: number;
  /**
   * A hybrid model's recurrent state: every live sequence's plus the checkpoint copies the
   * sessions may keep (default 0). Fixed per copy, so it is charged like KV.
   */
  stateBytes?: number;
  /** Runtime overhead: JS heap, buffers, scratch activations, kernel threads. */
  overheadBytes: number;
  /** Experts routed per token (k); the cache needs at least 2k slots (default 8). */
  expertsPerToken?: number;
  /** `--ram-budget`: bytes, or "auto"/undefined to detect the limit. */
  ramBudget?: number | "auto";
  /** `--expert-cache`: bytes, or "auto"/undefined to derive from the budget. */
  expertCache?: number | "auto";
  /** The detected limit, for tests (default: {@link detectMemoryLimit}). */
  limit?: MemoryLimit;
}

/** What {@link planBudget} decided. */
export interface BudgetPlan {
  /** "mapped": the whole file stays mapped; "cache": experts are paged through slots. */
  mode: "mapped" | "cache";
  /** Bytes of the expert cache arena (0 when mapped). */
  expertCacheBytes: number;
  /** Cache slots (0 when mapped). */
  slots: number;
  /** Bytes per slot used for the plan. */
  slotBytes: number;
  /** The memory budget planned against. */
  budgetBytes: number;
  /** Where the budget came from: "--ram-budget" or the detected source. */
  budgetSource: string;
  /** Dense + KV + overhead: what any plan needs besides the cache. */
  baseBytes: number;
  /** The smallest budget that runs this model in cache mode. */
  minimumBytes: number;
  /** One sentence on why. */
  reason: string;
}

/** The budget cannot hold the dense weights, the KV cache, the runtime and a minimal cache. */
export class BudgetError extends Error {
  /** The budget asked for or detected, bytes. */
  readonly budgetBytes: number;
  /** Dense + KV + overhead, bytes. */
  readonly neededBytes: number;
  /** The smallest budget that works, bytes. */
  readonly minimumBytes: number;
  constructor(message: string, budgetBytes: number, neededBytes: number, minimumBytes: number) {
    super(message);
    this.name = "BudgetError";
    this.budgetBytes = budgetBytes;
    this.neededBytes = neededBytes;
    this.minimumBytes = minimumBytes;
  }
}

/** Default slot size for a plan: the expert plus one page of slack per part, 4096-aligned. */
export function defaultSlotBytes(bytesPerExpert: number): number {
  return Math.ceil(bytesPerExpert / 4096) * 4096 + 3 * 8192;
}

/**
 * Decide how to run a model in the memory there is.
 *
 * - Without an explicit `expertCache`: a model whose file + KV + overhead fits in
 *   {@link MAP_FRACTION} of the budget is mapped whole. Otherwise the cache gets
 *   `budget × (1 − SAFETY_FRACTION) − dense − KV − overhead`, at most every expert.
 * - With an explicit `expertCache`: cache mode with that size (at most every expert); with
 *   an explicit `ramBudget` too, the sum must fit.
 * - A budget that cannot hold dense + KV + overhead + 2k slots (after the safety share)
 *   throws {@link BudgetError} stating the minimum.
 */
export function planBudget(input: BudgetInput): BudgetPlan {
  const slotBytes = input.slotBytes ?? defaultSlotBytes(input.bytesPerExpert);
  const k = input.expertsPerToken ?? 8;
  const minSlots = 2 * k;
  const totalExperts = input.bytesPerExpert > 0
    ? Math.round(input.expertBytes / input.bytesPerExpert)
    : 0;
  const allSlotsBytes = totalExperts * slotBytes;
  const state = input.stateBytes ?? 0;
  const base = input.denseBytes + input.kvBytes + state + input.overheadBytes;
  const minimum = Math.ceil((base + minSlots * slotBytes) / (1 - SAFETY_FRACTION));
  const explicit = typeof input.ramBudget === "number";
  let budget: number, budgetSource: string;
  if (explicit) {
    budget = input.ramBudget as number;
    budgetSource = "--ram-budget";
  } else {
    const lim = input.limit ?? detectMemoryLimit();
    budget = lim.bytes;
    budgetSource = lim.source === "meminfo"
      ? "MemAvailable"
      : lim.source === "os"
      ? "free memory"
      : `${lim.source} limit`;
  }
  const plan = (
    mode: "mapped" | "cache",
    cacheBytes: number,
    reason: string,
  ): BudgetPlan => {
    const slots = mode === "cache" ? Math.floor(cacheBytes / slotBytes) : 0;
    return {
      mode,
      expertCacheBytes: mode === "cache" ? slots * slotBytes : 0,
      slots,
      slotBytes,
      budgetBytes: budget,
      budgetSource,
      baseBytes: base,
      minimumBytes: minimum,
      reason,
    };
  };
  const label = explicit
    ? `--ram-budget ${formatSize(budget)}`
    : `${formatSize(budget)} (${budgetSource})`;
  const tooSmall = (): never => {
    const who = explicit
      ? `--ram-budget ${formatSize(budget)} is`
      : `The memory available, ${formatSize(budget)} (${budgetSource}), is`;
    throw new BudgetError(
      `${who} below the ${formatSize(base)} this model needs for its dense weights ` +
        `(${formatSize(input.denseBytes)}), KV cache (${formatSize(input.kvBytes)})` +
        (state > 0 ? `, recurrent state and checkpoints (${formatSize(state)})` : "") +
        ` and runtime (${formatSize(input.overheadBytes)}) plus ${minSlots} expert slots of ` +
        `${formatSize(slotBytes)}, with ${SAFETY_FRACTION * 100}% headroom; the minimum is ` +
        `${formatSize(minimum)}.`,
      budget,
      base,
      minimum,
    );
  };

  if (typeof input.expertCache === "number") {
    const want = Math.min(input.expertCache, allSlotsBytes || input.expertCache);
    if (want < minSlots * slotBytes) {
      throw new BudgetError(
        `--expert-cache ${formatSize(input.expertCache)} holds fewer than the ${minSlots} ` +
          `slots of ${formatSize(slotBytes)} one step needs; the minimum is ` +
          `${formatSize(minSlots * slotBytes)}.`,
        input.expertCache,
        minSlots * slotBytes,
        minSlots * slotBytes,
      );
    }
    if (explicit && base + want > budget * (1 - SAFETY_FRACTION)) {
      if (budget < minimum) tooSmall();
      throw new BudgetError(
        `--expert-cache ${formatSize(want)} does not fit --ram-budget ${formatSize(budget)}: ` +
          `dense weights, KV cache and runtime take ${formatSize(base)}, leaving at most ` +
          `${formatSize(Math.max(0, Math.floor(budget * (1 - SAFETY_FRACTION) - base)))} ` +
          `for the cache.`,
        budget,
        base + want,
        Math.ceil((base + want) / (1 - SAFETY_FRACTION)),
      );
    }
    return plan("cache", want, `--expert-cache ${formatSize(want)} asked for`);
  }

  const mappedNeed = input.fileBytes + input.kvBytes + state + input.overheadBytes;
  if (mappedNeed <= budget * MAP_FRACTION) {
    return plan(
      "mapped",
      0,
      `the model (${formatSize(input.fileBytes)}) with KV cache and runtime ` +
        `(${formatSize(mappedNeed)}) fits in ${MAP_FRACTION * 100}% of ${label}`,
    );
  }
  if (budget < minimum) tooSmall();
  const room = Math.floor(budget * (1 - SAFETY_FRACTION)) - base;
  const cacheBytes = Math.min(room, allSlotsBytes || room);
  return plan(
    "cache",
    cacheBytes,
    `the model (${formatSize(input.fileBytes)}) with KV cache and runtime ` +
      `(${formatSize(mappedNeed)}) exceeds ${MAP_FRACTION * 100}% of ${label}; experts are ` +
      `paged through a ${formatSize(Math.floor(cacheBytes / slotBytes) * slotBytes)} cache ` +
      `(${Math.floor(cacheBytes / slotBytes)} slots)`,
  );
}
