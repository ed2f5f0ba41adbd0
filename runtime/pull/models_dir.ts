/**
 * The models directory: where `spool pull` stores GGUF files, what `spool list` shows, and
 * how a model *name* given to `spool run`/`serve` becomes a path.
 *
 * Layout: `<modelsDir>/<owner>/<repo>/<file>.gguf` (the file may have sub-folders, as in
 * the Hub repository). In-progress downloads end in `.part` and are never listed.
 *
 * The directory is, first match wins: `SPOOL_MODELS`, the config's `modelsDir`,
 * `$XDG_CACHE_HOME/spool/models`, `~/.cache/spool/models`.
 *
 * @module
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, relative, sep } from "node:path";
import process from "node:process";
import { readGGUF } from "../gguf/reader.ts";
import type { SpoolConfig } from "../config/config.ts";

/** Raised when a model name matches no file, or several, in the models directory. */
export class ModelNotFoundError extends Error {
  /** A one-line suggestion printed by the CLI. */
  readonly hint: string;
  /** Matching files when the name was ambiguous. */
  readonly candidates: string[];
  constructor(message: string, hint: string, candidates: string[] = []) {
    super(message);
    this.name = "ModelNotFoundError";
    this.hint = hint;
    this.candidates = candidates;
  }
}

/** Resolve the models directory (see the module doc for the order). */
export function modelsDir(
  config: SpoolConfig = {},
  env: Record<string, string | undefined> = process.env,
): string {
  if (env.SPOOL_MODELS) return env.SPOOL_MODELS;
  if (config.modelsDir) return config.modelsDir;
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache");
  return join(base, "spool", "models");
}

/** One GGUF file in the models directory. */
export interface ModelEntry {
  /** Name to pass to `spool run`: the path under the models dir, `/`-separated. */
  name: string;
  /** Absolute path. */
  path: string;
  /** File size in bytes. */
  size: number;
  /** `general.architecture`, or null when the header could not be read. */
  arch: string | null;
  /** Quantization: llama.cpp's file type name (Q4_K_M, ...) or the dominant tensor type. */
  quant: string | null;
  /** Why the header could not be read, if it could not. */
  error?: string;
}

/** llama.cpp `general.file_type` (llama_ftype) names. */
const FILE_TYPES: Record<number, string> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  19: "IQ2_XXS",
  20: "IQ2_XS",
  21: "Q2_K_S",
  22: "IQ3_XS",
  23: "IQ3_XXS",
  24: "IQ1_S",
  25: "IQ4_NL",
  26: "IQ3_S",
  27: "IQ3_M",
  28: "IQ2_S",
  29: "IQ2_M",
  30: "IQ4_XS",
  31: "IQ1_M",
  32: "BF16",
  36: "TQ1_0",
  37: "TQ2_0",
  38: "MXFP4_MOE",
};

function walk(dir: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names.sort()) {
    const p = join(dir, n);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) walk(p, out);
    else if (n.toLowerCase().endsWith(".gguf")) out.push(p);
  }
}

/** Describe one GGUF file: size, architecture and quantization from its header. */
export function describeModel(path: string, root: string): ModelEntry {
  const name = relative(root, path).split(sep).join("/");
  const size = statSync(path).size;
  try {
    const g = readGGUF(path);
    const arch = g.kv.get("general.architecture");
    const ft = g.kv.get("general.file_type");
    let quant: string | null = typeof ft === "number" ? FILE_TYPES[ft] ?? `ftype ${ft}` : null;
    if (!quant) {
      // No file type: the type holding the most bytes, ignoring F32 norms when others exist.
      const bytes = new Map<string, number>();
      for (const t of g.tensors) bytes.set(t.typeName, (bytes.get(t.typeName) ?? 0) + t.nbytes);
      const sorted = [...bytes].filter(([k]) => k !== "F32" || bytes.size === 1)
        .sort((a, b) => b[1] - a[1]);
      quant = sorted[0]?.[0] ?? null;
    }
    return { name, path, size, arch: typeof arch === "string" ? arch : null, quant };
  } catch (e) {
    return { name, path, size, arch: null, quant: null, error: (e as Error).message };
  }
}

/** Every GGUF file under `dir` (sorted by name); an absent directory lists nothing. */
export function listModels(dir: string): ModelEntry[] {
  const files: string[] = [];
  walk(dir, files);
  return files.map((f) => describeModel(f, dir));
}

/**
 * Turn what the user typed into a model file path:
 *  - an existing file path is returned as is;
 *  - `owner/repo:file` or a name from `spool list` (`owner/repo/file.gguf`) is looked up in
 *    the models directory;
 *  - `owner/repo` picks that repository's only GGUF file;
 *  - otherwise the name (with or without `.gguf`, any case) must match the file name of
 *    exactly one model in the directory.
 * @throws ModelNotFoundError when nothing, or more than one model, matches.
 */
export function resolveModelPath(nameOrPath: string, dir: string = modelsDir()): string {
  if (existsSync(nameOrPath) && statSync(nameOrPath).isFile()) return nameOrPath;
  const spec = nameOrPath.replace(/:/, "/");
  const direct = join(dir, spec);
  if (existsSync(direct) && statSync(direct).isFile()) return direct;
  const models = existsSync(dir) ? listModels(dir) : [];
  const lower = spec.toLowerCase().replace(/\.gguf$/, "");
  const strip = (s: string) => s.toLowerCase().replace(/\.gguf$/, "");
  let hits = models.filter((m) => strip(m.name) === lower);
  if (hits.length === 0) hits = models.filter((m) => m.name.toLowerCase().startsWith(`${lower}/`));
  if (hits.length === 0) {
    hits = models.filter((m) => strip(m.name.slice(m.name.lastIndexOf("/") + 1)) === lower);
  }
  if (hits.length === 1) return hits[0].path;
  if (hits.length > 1) {
    const names = hits.map((m) => m.name);
    throw new ModelNotFoundError(
      `"${nameOrPath}" matches ${hits.length} models in ${dir}: ${names.join(", ")}`,
      "name one of them in full (see `spool list`)",
      names,
    );
  }
  const looksLikePath = nameOrPath.includes(sep) && !/^[\w.-]+\/[\w.-]+(:.*)?$/.test(nameOrPath);
  throw new ModelNotFoundError(
    looksLikePath
      ? `Model file ${nameOrPath} does not exist`
      : `No model "${nameOrPath}": not a file, and not in the models directory ${dir}`,
    models.length
      ? `\`spool list\` shows the ${models.length} model(s) there; \`spool pull OWNER/REPO\` fetches one`
      : "fetch one with `spool pull OWNER/REPO[:FILE]`, or give a path to a .gguf file",
  );
}
