/**
 * spool's configuration file: defaults for every command, validated with zod.
 *
 * Where it is read from, first match wins:
 *  1. an explicit path (`--config FILE`), which must exist;
 *  2. `SPOOL_CONFIG`, which must exist;
 *  3. `$XDG_CONFIG_HOME/spool/config.json`, else `~/.config/spool/config.json`; a missing
 *     file here means "no configuration" (all defaults).
 *
 * ```json
 * {
 *   "modelsDir": "~/models",
 *   "threads": 8,
 *   "ctx": 8192,
 *   "ramBudget": "12G",
 *   "expertCache": "auto",
 *   "host": "127.0.0.1",
 *   "port": 8080,
 *   "apiKeyFile": "~/.config/spool/api_key"
 * }
 * ```
 *
 * Every key is optional; unknown keys are errors (a typo must not be silently ignored).
 * Paths may start with `~/`; relative paths are resolved against the config file's folder.
 * Command-line flags override the file; the file overrides built-in defaults.
 * The API key is read from `apiKeyFile` by {@link readApiKey} and never appears in a message.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import process from "node:process";
import { z } from "zod";
import { parseSize } from "../experts/budget.ts";

/** Raised for an unreadable, malformed or invalid config file; the message names the key. */
export class ConfigError extends Error {
  /** Path of the config file, when known. */
  readonly path?: string;
  /** The offending key (dotted), when the error is about one key. */
  readonly key?: string;
  /** A one-line suggestion printed by the CLI. */
  readonly hint: string;
  constructor(message: string, opts: { path?: string; key?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ConfigError";
    this.path = opts.path;
    this.key = opts.key;
    this.hint = opts.path
      ? `fix or remove ${opts.path} (keys: ${CONFIG_KEYS.join(", ")})`
      : `valid keys: ${CONFIG_KEYS.join(", ")}`;
  }
}

const size = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  try {
    parseSize(v);
  } catch {
    ctx.addIssue({
      code: "custom",
      message: `expected a size such as "3G", "512MiB", a byte count or "auto"`,
    });
  }
});

const path = z.string().min(1, "expected a non-empty path");

/** The zod schema of the config file. */
export const ConfigSchema = z.strictObject({
  /** Where `spool pull` stores models and where model names are looked up. */
  modelsDir: path.optional(),
  /** Compute threads (default: the machine's cores). */
  threads: z.int().min(1).max(1024).optional(),
  /** Context length in tokens. */
  ctx: z.int().min(16).optional(),
  /** Total RAM spool may use: a size or "auto". */
  ramBudget: size.optional(),
  /** Bytes of expert cache: a size or "auto". */
  expertCache: size.optional(),
  /** Address `spool serve` listens on. */
  host: z.string().min(1).optional(),
  /** Port `spool serve` listens on (0: any free port). */
  port: z.int().min(0).max(65535).optional(),
  /** File holding the API key the server requires (one line). */
  apiKeyFile: path.optional(),
});

/** A validated configuration (every key optional; paths absolute). */
export type SpoolConfig = z.infer<typeof ConfigSchema>;

/** The keys a config file may hold. */
export const CONFIG_KEYS: readonly string[] = Object.keys(ConfigSchema.shape);

/** A loaded configuration and the file it came from. */
export interface LoadedConfig {
  /** The validated values. */
  config: SpoolConfig;
  /** The file read, or undefined when none exists (all defaults). */
  path?: string;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Explicit file (`--config`); must exist. */
  path?: string;
  /** Environment to read `SPOOL_CONFIG`, `XDG_CONFIG_HOME` and `HOME` from (default: process.env). */
  env?: Record<string, string | undefined>;
}

function home(env: Record<string, string | undefined>): string {
  return env.HOME || homedir();
}

/** Expand a leading `~/` and resolve a relative path against `base`. */
export function expandPath(p: string, base: string, env = process.env): string {
  if (p === "~") return home(env);
  if (p.startsWith("~/")) return join(home(env), p.slice(2));
  return isAbsolute(p) ? p : resolve(base, p);
}

/** The default config file path (whether or not it exists). */
export function defaultConfigPath(env: Record<string, string | undefined> = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(home(env), ".config");
  return join(base, "spool", "config.json");
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Validate a parsed JSON value as a config. `file` is used in messages and to resolve
 * relative paths.
 * @throws ConfigError naming the first bad key, its value and what was expected.
 */
export function parseConfig(
  value: unknown,
  file?: string,
  env: Record<string, string | undefined> = process.env,
): SpoolConfig {
  const where = file ?? "config";
  const r = ConfigSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    if (issue.code === "unrecognized_keys") {
      const keys = issue.keys.join(", ");
      throw new ConfigError(
        `${where}: unknown key${issue.keys.length > 1 ? "s" : ""} ${keys}`,
        { path: file, key: issue.keys[0] },
      );
    }
    const key = issue.path.join(".");
    if (!key) throw new ConfigError(`${where}: expected a JSON object`, { path: file });
    const bad = (value as Record<string, unknown>)[String(issue.path[0])];
    throw new ConfigError(
      `${where}: "${key}" is ${describe(bad)}: ${issue.message}`,
      { path: file, key },
    );
  }
  const c = r.data;
  const base = file ? dirname(resolve(file)) : process.cwd();
  if (c.modelsDir) c.modelsDir = expandPath(c.modelsDir, base, env);
  if (c.apiKeyFile) c.apiKeyFile = expandPath(c.apiKeyFile, base, env);
  return c;
}

/**
 * Find, read and validate the config file (see the module doc for the order).
 * @throws ConfigError for a missing explicit file, bad JSON or a bad value.
 */
export function loadConfig(opts: LoadConfigOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const explicit = opts.path ?? env.SPOOL_CONFIG;
  const file = explicit || defaultConfigPath(env);
  if (!existsSync(file)) {
    if (explicit) {
      const from = opts.path ? "--config" : "SPOOL_CONFIG";
      throw new ConfigError(`Config file ${file} (from ${from}) does not exist`, { path: file });
    }
    return { config: {} };
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`Cannot read config file ${file}: ${(e as Error).message}`, {
      path: file,
      cause: e,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file} is not valid JSON: ${(e as Error).message}`, {
      path: file,
      cause: e,
    });
  }
  return { config: parseConfig(json, file, env), path: file };
}

/**
 * Read the API key from `config.apiKeyFile` (first line, trimmed); undefined when no file is
 * configured. The key itself never appears in an error message.
 * @throws ConfigError when the file is missing, unreadable or empty.
 */
export function readApiKey(config: SpoolConfig): string | undefined {
  const file = config.apiKeyFile;
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(
      `"apiKeyFile" ${file} cannot be read (${(e as { code?: string }).code ?? "error"})`,
      { key: "apiKeyFile" },
    );
  }
  const key = text.split(/\r?\n/, 1)[0].trim();
  if (!key) throw new ConfigError(`"apiKeyFile" ${file} is empty`, { key: "apiKeyFile" });
  return key;
}

/**
 * Size options as numbers or "auto", for loadModel: `ramBudget` and `expertCache` from the
 * config, already validated by the schema.
 */
export function configSizes(
  config: SpoolConfig,
): { ramBudget?: number | "auto"; expertCache?: number | "auto" } {
  const out: { ramBudget?: number | "auto"; expertCache?: number | "auto" } = {};
  if (config.ramBudget !== undefined) out.ramBudget = parseSize(config.ramBudget, "ramBudget");
  if (config.expertCache !== undefined) {
    out.expertCache = parseSize(config.expertCache, "expertCache");
  }
  return out;
}
