/**
 * Hot-expert profiles (DESIGN.md §4): count how often each (layer, expert) is routed to in
 * real runs, save the counts as versioned JSON tied to one model file, and turn a profile
 * into the set of experts to pin in the cache.
 *
 * A profile names its model by architecture, layer and expert counts, file size and the
 * SHA-256 of the GGUF header (magic through the tensor infos: metadata, tokenizer, tensor
 * names, types, shapes and offsets). Two files with the same header have the same experts
 * at the same offsets, so a profile moves with the model but is refused for any other.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync, renameSync, writeFileSync } from "node:fs";
import process from "node:process";

/** Format tag in profile files. */
export const PROFILE_FORMAT = "spool.expert-profile";
/** Current profile format version. */
export const PROFILE_VERSION = 1;

/** Which model a profile belongs to. */
export interface ModelIdentity {
  /** `general.architecture`. */
  arch: string;
  /** Layers. */
  nLayer: number;
  /** Experts per layer. */
  nExpert: number;
  /** GGUF file size in bytes. */
  fileSize: number;
  /** Hex SHA-256 of the GGUF header bytes (see {@link hashHeader}). */
  headerHash: string;
}

/** A saved profile: routing counts per layer and expert. */
export interface ExpertProfile {
  /** Always {@link PROFILE_FORMAT}. */
  format: typeof PROFILE_FORMAT;
  /** Always {@link PROFILE_VERSION} when written by this code. */
  version: number;
  /** The model it was recorded on. */
  model: ModelIdentity;
  /** When it was saved (ISO 8601). */
  createdAt: string;
  /** Tokens observed per layer (routing calls × tokens). */
  tokens: number[];
  /** counts[layer][expert]: times the expert was selected. */
  counts: number[][];
}

/** A profile cannot be read or belongs to another model. */
export class ProfileError extends Error {
  /** The profile file, when there is one. */
  readonly path?: string;
  constructor(message: string, path?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProfileError";
    this.path = path;
  }
}

/** Hex SHA-256 of the GGUF header bytes (file bytes [0, headerSize)). */
export function hashHeader(header: Uint8Array): string {
  return createHash("sha256").update(header).digest("hex");
}

/**
 * The identity of a model file: reads its first `headerSize` bytes (from the GGUF reader's
 * `headerSize`) and hashes them.
 */
export function modelIdentity(
  path: string,
  info: { arch: string; nLayer: number; nExpert: number; fileSize: number; headerSize: number },
): ModelIdentity {
  const bytes = new Uint8Array(info.headerSize);
  const fd = openSync(path, "r");
  try {
    let got = 0;
    while (got < bytes.length) {
      const r = readSync(fd, bytes, got, bytes.length - got, got);
      if (r <= 0) {
        throw new ProfileError(`Cannot hash the header of ${path}: the file ends at byte ${got}`);
      }
      got += r;
    }
  } finally {
    closeSync(fd);
  }
  return {
    arch: info.arch,
    nLayer: info.nLayer,
    nExpert: info.nExpert,
    fileSize: info.fileSize,
    headerHash: hashHeader(bytes),
  };
}

/**
 * The identity of a parsed GGUF file (`readGGUF` with a path): architecture, trunk block and
 * expert counts from its metadata, and the hash of its header bytes.
 */
export function identityOfGGUF(g: {
  readonly path?: string;
  readonly fileSize: number;
  readonly headerSize: number;
  readonly kv: ReadonlyMap<string, unknown>;
}): ModelIdentity {
  const arch = g.kv.get("general.architecture");
  if (typeof arch !== "string") {
    throw new ProfileError(`${g.path ?? "GGUF file"} has no general.architecture`);
  }
  const num = (key: string): number => {
    const v = g.kv.get(key);
    if (typeof v === "number" || typeof v === "bigint") return Number(v);
    throw new ProfileError(
      `${g.path ?? "GGUF file"} has no ${key}: not a mixture-of-experts model`,
    );
  };
  if (!g.path) throw new ProfileError("identityOfGGUF needs a GGUF read from a path");
  return modelIdentity(g.path, {
    arch,
    // the trunk: NextN/MTP blocks (the last nextn_predict_layers) never route
    nLayer: num(`${arch}.block_count`) - Number(g.kv.get(`${arch}.nextn_predict_layers`) ?? 0),
    nExpert: num(`${arch}.expert_count`),
    fileSize: g.fileSize,
    headerSize: g.headerSize,
  });
}

/** Records routing decisions: per-(layer, expert) counts, no allocation per call. */
export class ProfileRecorder {
  /** Layers. */
  readonly nLayer: number;
  /** Experts per layer. */
  readonly nExpert: number;
  /** counts[layer * nExpert + expert]. */
  readonly counts: Float64Array;
  /** Tokens observed per layer. */
  readonly tokens: Float64Array;
  /**
   * Called with every routing result {@link observe} counts (the same arguments, after
   * the checks): a tap for tools that need the order of the choices, not just their counts
   * (hit_curve.ts records decode traces with it). The ids are the router's buffer: copy them.
   */
  onObserve: ((layer: number, ids: Int32Array, n: number, k: number) => void) | null = null;

  constructor(nLayer: number, nExpert: number) {
    if (!(Number.isInteger(nLayer) && nLayer > 0 && Number.isInteger(nExpert) && nExpert > 0)) {
      throw new RangeError(`ProfileRecorder needs nLayer, nExpert > 0, got ${nLayer}, ${nExpert}`);
    }
    this.nLayer = nLayer;
    this.nExpert = nExpert;
    this.counts = new Float64Array(nLayer * nExpert);
    this.tokens = new Float64Array(nLayer);
  }

  /**
   * Count the first `n` expert ids of a routing result of `layer` (`ids`: nTokens × k,
   * row-major, as the router writes them). Negative ids (padding) are skipped. `k` (default
   * `n`, i.e. one token) turns `n` into tokens for the per-layer token count.
   */
  observe(layer: number, ids: Int32Array, n: number = ids.length, k: number = n): void {
    if (!(layer >= 0 && layer < this.nLayer)) {
      throw new RangeError(`layer ${layer} is outside 0..${this.nLayer - 1}`);
    }
    if (n > ids.length) throw new RangeError(`${n} ids asked for, ${ids.length} given`);
    const base = layer * this.nExpert;
    const E = this.nExpert;
    for (let i = 0; i < n; i++) {
      const e = ids[i];
      if (e < 0) continue;
      if (e >= E) throw new RangeError(`expert id ${e} in layer ${layer} is outside 0..${E - 1}`);
      this.counts[base + e]++;
    }
    if (k > 0) this.tokens[layer] += Math.ceil(n / k);
    this.onObserve?.(layer, ids, n, k);
  }

  /** Add a saved profile's counts (to continue recording on top of it). */
  merge(profile: ExpertProfile): void {
    if (profile.counts.length !== this.nLayer) {
      throw new ProfileError(
        `profile has ${profile.counts.length} layers, the recorder ${this.nLayer}`,
      );
    }
    for (let l = 0; l < this.nLayer; l++) {
      const row = profile.counts[l];
      if (row.length !== this.nExpert) {
        throw new ProfileError(`profile layer ${l} has ${row.length} experts, not ${this.nExpert}`);
      }
      for (let e = 0; e < this.nExpert; e++) this.counts[l * this.nExpert + e] += row[e];
      this.tokens[l] += profile.tokens[l] ?? 0;
    }
  }

  /** The profile so far, for `model`. */
  toProfile(model: ModelIdentity, now: Date = new Date()): ExpertProfile {
    if (model.nLayer !== this.nLayer || model.nExpert !== this.nExpert) {
      throw new ProfileError(
        `recorder of ${this.nLayer} × ${this.nExpert} experts cannot describe a model of ` +
          `${model.nLayer} × ${model.nExpert}`,
      );
    }
    const counts: number[][] = [];
    for (let l = 0; l < this.nLayer; l++) {
      counts.push(Array.from(this.counts.subarray(l * this.nExpert, (l + 1) * this.nExpert)));
    }
    return {
      format: PROFILE_FORMAT,
      version: PROFILE_VERSION,
      model: { ...model },
      createdAt: now.toISOString(),
      tokens: Array.from(this.tokens),
      counts,
    };
  }
}

function describeModel(m: ModelIdentity): string {
  return `${m.arch} (${m.nLayer} layers × ${m.nExpert} experts, ${m.fileSize} bytes, header ` +
    `${m.headerHash.slice(0, 12)})`;
}

/**
 * Check that a parsed JSON value is a profile (and, with `expected`, of that model).
 * Throws {@link ProfileError} saying what is wrong.
 */
export function validateProfile(
  value: unknown,
  expected?: ModelIdentity,
  path?: string,
): ExpertProfile {
  const where = path ? `Profile ${path}` : "Profile";
  const bad = (what: string): never => {
    throw new ProfileError(`${where} is not a spool expert profile: ${what}`, path);
  };
  if (typeof value !== "object" || value === null) bad("not a JSON object");
  const p = value as Record<string, unknown>;
  if (p.format !== PROFILE_FORMAT) bad(`format is ${JSON.stringify(p.format)}`);
  if (p.version !== PROFILE_VERSION) {
    throw new ProfileError(
      `${where} has version ${JSON.stringify(p.version)}; this spool reads version ` +
        `${PROFILE_VERSION}. Record a new profile.`,
      path,
    );
  }
  const m = p.model as Record<string, unknown> | undefined;
  if (
    !m || typeof m.arch !== "string" || !Number.isInteger(m.nLayer) ||
    !Number.isInteger(m.nExpert) || typeof m.fileSize !== "number" ||
    typeof m.headerHash !== "string"
  ) bad("model identity missing or malformed");
  const model = m as unknown as ModelIdentity;
  const counts = p.counts;
  if (!Array.isArray(counts) || counts.length !== model.nLayer) {
    bad(`counts must be ${model.nLayer} rows`);
  }
  for (const row of counts as unknown[]) {
    if (
      !Array.isArray(row) || row.length !== model.nExpert ||
      !row.every((c) => typeof c === "number" && c >= 0)
    ) bad(`each counts row must be ${model.nExpert} non-negative numbers`);
  }
  if (!Array.isArray(p.tokens) || p.tokens.length !== model.nLayer) {
    bad(`tokens must have ${model.nLayer} entries`);
  }
  if (expected) {
    const diffs: string[] = [];
    if (model.arch !== expected.arch) diffs.push("architecture");
    if (model.nLayer !== expected.nLayer) diffs.push("layer count");
    if (model.nExpert !== expected.nExpert) diffs.push("expert count");
    if (model.fileSize !== expected.fileSize) diffs.push("file size");
    if (model.headerHash !== expected.headerHash) diffs.push("GGUF header");
    if (diffs.length > 0) {
      throw new ProfileError(
        `${where} was recorded for another model: ${describeModel(model)}, but this model is ` +
          `${describeModel(expected)} (different ${diffs.join(", ")}). Record a profile ` +
          `for this model or run without one.`,
        path,
      );
    }
  }
  return p as unknown as ExpertProfile;
}

/** Write a profile as JSON (to a temporary file, then renamed into place). */
export function saveProfile(path: string, profile: ExpertProfile): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(profile) + "\n");
  renameSync(tmp, path);
}

/**
 * Read a profile; with `expected`, refuse one recorded for another model. Throws
 * {@link ProfileError} (unreadable file, bad JSON, wrong format or model).
 */
export function loadProfile(path: string, expected?: ModelIdentity): ExpertProfile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ProfileError(`Cannot read profile ${path}: ${(e as Error).message}`, path, {
      cause: e,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ProfileError(`Profile ${path} is not valid JSON: ${(e as Error).message}`, path, {
      cause: e,
    });
  }
  return validateProfile(value, expected, path);
}

/**
 * The keys (`layer * nExpert + expert`) to pin in `slots` slots: the experts with the
 * highest routing share of their layer (count / that layer's tokens), so that layers
 * observed more often do not crowd out the others and the pinned set maximizes the
 * expected hits per token. Ties go to the lower layer, then the lower expert; experts
 * never routed to are not pinned. Sorted by key.
 */
export function hotSet(profile: ExpertProfile, slots: number): Int32Array {
  const { nLayer, nExpert } = profile.model;
  const cand: { key: number; share: number }[] = [];
  for (let l = 0; l < nLayer; l++) {
    const row = profile.counts[l];
    let sum = 0;
    for (const c of row) sum += c;
    const denom = profile.tokens[l] > 0 ? profile.tokens[l] : sum;
    if (denom <= 0) continue;
    for (let e = 0; e < nExpert; e++) {
      if (row[e] > 0) cand.push({ key: l * nExpert + e, share: row[e] / denom });
    }
  }
  cand.sort((a, b) => b.share - a.share || a.key - b.key);
  const n = Math.max(0, Math.min(Math.floor(slots), cand.length));
  const keys = new Int32Array(n);
  for (let i = 0; i < n; i++) keys[i] = cand[i].key;
  return keys.sort();
}
