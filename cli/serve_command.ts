/**
 * `spool serve MODEL`: the OpenAI- and Anthropic-compatible local API (runtime/server).
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { parseSize } from "../runtime/experts/budget.ts";
import { createServer, defaultBatchStorePath } from "../runtime/server/serve.ts";
import { configSizes, loadConfig, readApiKey } from "../runtime/config/config.ts";
import { modelsDir, resolveModelPath } from "../runtime/pull/models_dir.ts";
import type { Command } from "./main.ts";

function usage(message: string): never {
  throw Object.assign(new Error(message), { name: "UsageError" });
}

function int(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

function size(v: string | undefined, name: string): number | "auto" | undefined {
  if (v === undefined) return undefined;
  try {
    return parseSize(v, `--${name}`);
  } catch (e) {
    usage((e as Error).message);
  }
}

function prefetchMode(v: string | undefined): "auto" | "on" | "off" | undefined {
  if (v === undefined) return undefined;
  if (v !== "auto" && v !== "on" && v !== "off") {
    usage(`--prefetch takes auto, on or off, got "${v}"`);
  }
  return v;
}

async function serveCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      "api-key": { type: "string" },
      ctx: { type: "string" },
      parallel: { type: "string" },
      "ram-budget": { type: "string" },
      "expert-cache": { type: "string" },
      threads: { type: "string", short: "t" },
      alias: { type: "string" },
      "max-queue": { type: "string" },
      checkpoints: { type: "string" },
      "batch-store": { type: "string" },
      "batch-lease": { type: "string" },
      prefetch: { type: "string" },
      "expert-profile": { type: "string" },
      "allow-host": { type: "string", multiple: true },
      cors: { type: "string", multiple: true },
      "body-timeout": { type: "string" },
      "request-timeout": { type: "string" },
    },
  });
  if (positionals.length !== 1) usage("serve takes exactly one MODEL");
  // flags win over the config file, which wins over the defaults
  const cfg = loadConfig().config;
  const sizes = configSizes(cfg);
  const apiKey = v["api-key"] ?? process.env.SPOOL_API_KEY ?? readApiKey(cfg);
  const bs = v["batch-store"] ?? defaultBatchStorePath();
  // seconds a client has to send a request head (and, unless --body-timeout, its body)
  const requestTimeout = int(v["request-timeout"], "request-timeout", 1);
  const bodyTimeout = int(v["body-timeout"], "body-timeout", 1) ?? requestTimeout;
  // seconds; read by the server's body reader
  if (bodyTimeout !== undefined) process.env.SPOOL_BODY_TIMEOUT_MS = String(bodyTimeout * 1000);
  const server = await createServer({
    path: resolveModelPath(positionals[0], modelsDir(cfg)),
    host: v.host ?? cfg.host ?? "127.0.0.1",
    port: int(v.port, "port", 0) ?? cfg.port ?? 8080,
    apiKey,
    nCtx: int(v.ctx, "ctx", 1) ?? cfg.ctx,
    parallel: int(v.parallel, "parallel", 1),
    threads: int(v.threads, "threads", 1) ?? cfg.threads,
    ramBudget: size(v["ram-budget"], "ram-budget") ?? sizes.ramBudget,
    expertCache: size(v["expert-cache"], "expert-cache") ?? sizes.expertCache,
    alias: v.alias,
    maxQueue: int(v["max-queue"], "max-queue", 0),
    checkpoints: int(v.checkpoints, "checkpoints", 0),
    batchStore: bs === "off" ? false : bs,
    batchLeaseSeconds: int(v["batch-lease"], "batch-lease", 1),
    prefetch: prefetchMode(v.prefetch),
    expertProfile: v["expert-profile"],
    allowedHosts: v["allow-host"]?.flatMap((h) => h.split(",")),
    corsOrigins: v.cors?.flatMap((h) => h.split(",")),
    requestTimeoutMs: requestTimeout !== undefined ? requestTimeout * 1000 : undefined,
  });
  const i = server.engine.info;
  // never print the key itself
  console.error(
    `spool serve: ${i.arch}, context ${i.nCtx}, ${i.parallel} slot(s), listening on ` +
      `${server.url}${apiKey ? " (API key required)" : ""}`,
  );
  console.log(server.url);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  console.error("spool serve: shutting down");
  await server.close();
  return 0;
}

/** The serve command. */
export const serveCommands: Record<string, Command> = {
  serve: {
    usage:
      "spool serve MODEL [--host H] [--port N] [--api-key K] [--ctx N] [--parallel N] [--batch-store PATH|postgres://…|off] [--allow-host H] [--cors ORIGIN] [--request-timeout S] [--body-timeout S] [--checkpoints N]",
    summary: "OpenAI- and Anthropic-compatible HTTP API (--ram-budget, --expert-cache, -t)",
    run: serveCommand,
  },
};
