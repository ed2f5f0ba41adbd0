/**
 * Commands for getting models and settings: pull, list, config.
 *
 *   spool pull OWNER/REPO[:FILE] [--revision R] [--base-url URL] [--force]
 *   spool list [--json]
 *   spool config [--json]
 *
 * Each takes `--config FILE` and `--models-dir DIR` (which override `SPOOL_CONFIG` and the
 * config file / `SPOOL_MODELS`).
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { loadConfig, type LoadedConfig } from "../runtime/config/config.ts";
import { formatAmount, progressEnabled } from "../runtime/progress.ts";
import { listModels, modelsDir } from "../runtime/pull/models_dir.ts";
import { DEFAULT_BASE_URL, pullModel } from "../runtime/pull/pull.ts";
import type { Command } from "./main.ts";

const str = { type: "string" } as const;
const bool = { type: "boolean" } as const;
const COMMON = { config: str, "models-dir": str } as const;

function usage(message: string): never {
  throw Object.assign(new Error(message), { name: "UsageError" });
}

function settings(v: { config?: string; "models-dir"?: string }): LoadedConfig & { dir: string } {
  const loaded = loadConfig({ path: v.config });
  return { ...loaded, dir: v["models-dir"] ?? modelsDir(loaded.config) };
}

async function pullCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...COMMON,
      revision: str,
      "base-url": str,
      force: bool,
      quiet: bool,
      retries: str,
    },
  });
  if (positionals.length !== 1) usage("pull takes exactly one OWNER/REPO[:FILE]");
  const retries = v.retries === undefined ? undefined : Number(v.retries);
  if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0)) {
    usage(`--retries must be a whole number, got "${v.retries}"`);
  }
  const { dir } = settings(v);
  const r = await pullModel(positionals[0], {
    dir,
    baseUrl: v["base-url"] ?? process.env.SPOOL_HUB_URL ?? DEFAULT_BASE_URL,
    revision: v.revision,
    force: v.force,
    retries,
    progress: v.quiet ? false : progressEnabled(),
    log: v.quiet ? () => {} : undefined,
  });
  if (r.alreadyPresent) {
    console.log(
      `${r.path} (${formatAmount(r.size, "bytes")}) is already here; --force fetches it again`,
    );
    return 0;
  }
  const resumed = r.resumedFrom > 0 ? `, resumed from ${formatAmount(r.resumedFrom, "bytes")}` : "";
  const check = r.verified ? `sha256 ${r.sha256} verified` : "no checksum from the server";
  console.log(`${r.path} (${formatAmount(r.size, "bytes")}${resumed}; ${check})`);
  console.log(`run it with: spool run ${r.repo}:${r.file} -p "Hello"`);
  return 0;
}

function listCommand(args: string[]): number {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...COMMON, json: bool },
  });
  if (positionals.length) usage("list takes no arguments");
  const { dir } = settings(v);
  const models = listModels(dir);
  if (v.json) {
    console.log(JSON.stringify({ dir, models }, null, 2));
    return 0;
  }
  if (!models.length) {
    console.log(`no models in ${dir}; fetch one with \`spool pull OWNER/REPO[:FILE]\``);
    return 0;
  }
  const rows = models.map((m) => [
    m.name,
    formatAmount(m.size, "bytes"),
    m.arch ?? "?",
    m.quant ?? (m.error ? `unreadable: ${m.error}` : "?"),
  ]);
  const head = ["NAME", "SIZE", "ARCH", "QUANT"];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(w[i]) : c)).join("  ");
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log(`\n${models.length} model(s) in ${dir}`);
  return 0;
}

function configCommand(args: string[]): number {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...COMMON, json: bool },
  });
  if (positionals.length) usage("config takes no arguments");
  const { config, path, dir } = settings(v);
  const out = { file: path ?? null, ...config, modelsDir: dir };
  if (v.json) console.log(JSON.stringify(out, null, 2));
  else {
    console.log(path ? `config file: ${path}` : "config file: none (built-in defaults)");
    for (const [k, val] of Object.entries(out)) if (k !== "file") console.log(`  ${k}: ${val}`);
  }
  return 0;
}

/** The pull/list/config commands, by name. */
export const shipCommands: Record<string, Command> = {
  pull: {
    usage: "spool pull OWNER/REPO[:FILE] [--revision R] [--base-url URL] [--force]",
    summary: "download a GGUF model from Hugging Face (or a mirror), resumable, sha256-checked",
    run: pullCommand,
  },
  list: {
    usage: "spool list [--json] [--models-dir DIR]",
    summary: "the models in the models directory: name, size, architecture, quantization",
    run: listCommand,
  },
  config: {
    usage: "spool config [--config FILE] [--json]",
    summary: "show the configuration in effect and where it comes from",
    run: configCommand,
  },
};
