/**
 * `spool serve` as a library: start the engine worker, read the tokenizer and template, build
 * the app, and listen with `Deno.serve` or `Bun.serve` (with `idleTimeout: 0`, since Bun's
 * default of 10 s kills quiet streams) on a private Unix socket, behind the socket front of
 * front.ts that takes the public connections and cuts off clients that send their request
 * head too slowly (neither runtime's server bounds that).
 *
 * ```ts
 * const server = await createServer({ path: "model.gguf", port: 8080 });
 * console.log(server.url); // http://127.0.0.1:8080
 * await server.close();
 * ```
 *
 * @module
 */
import { basename } from "node:path";
import type { Hono } from "hono";
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { createApp, isLoopbackHost } from "./app.ts";
import { ApiError, errorBody } from "./errors.ts";
import { Metrics } from "./metrics.ts";
import { ModelFrontend } from "./prompt.ts";
import type { BatchQueue } from "../batch/store_types.ts";
import { fileSha256, openBatchStore } from "../batch/open_store.ts";
import { BatchRunner } from "../batch/runner.ts";
import { appExecutor } from "../batch/local.ts";
import { join } from "node:path";
import { homedir, tmpdir } from "node:os";
import { mkdtempSync, rmSync } from "node:fs";
import { startFront } from "./front.ts";
import { bodyTimeoutMs } from "./body.ts";
import process from "node:process";

/** Options of {@link createServer}. */
export interface ServerOptions extends EngineOptions {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** Require this API key. */
  apiKey?: string;
  /** Model id reported to clients (default: the file name without .gguf). */
  alias?: string;
  /** Largest request body in bytes. */
  maxBodyBytes?: number;
  /** Milliseconds between keep-alives on quiet streams (default 15000). */
  heartbeatMs?: number;
  /**
   * The batch store for the Files, Batches and Message Batches APIs: a SQLite path (the
   * CLI passes {@link defaultBatchStorePath}), a `postgres://` connection string (one store
   * shared by several servers, each working on every batch made for its model), or
   * false/undefined for no batch APIs. Batches found there at start-up resume where they
   * stopped.
   */
  batchStore?: string | false;
  /** Lease length of batch requests, seconds (PostgreSQL fleets; default 60). */
  batchLeaseSeconds?: number;
  /**
   * Host names accepted in the `Host` header besides loopback names and the bound address
   * (DNS rebinding protection, as llama-server and Ollama do); `["*"]` accepts any. Only
   * enforced when bound to a loopback address.
   */
  allowedHosts?: string[];
  /** Origins allowed to call from a browser (CORS; default none). */
  corsOrigins?: string[];
  /**
   * Milliseconds a client has to send a request head before it gets a 408 and its
   * connection is closed (default: SPOOL_REQUEST_TIMEOUT_MS, else 30 s). Bodies are timed
   * by SPOOL_BODY_TIMEOUT_MS (default 60 s).
   */
  requestTimeoutMs?: number;
}

/** The head timeout: SPOOL_REQUEST_TIMEOUT_MS, else 30 s. */
export function requestTimeoutMs(): number {
  return Number(process.env.SPOOL_REQUEST_TIMEOUT_MS) || 30_000;
}

/**
 * Wraps `fetch` so that a request whose `Host` is not a loopback name, the bound address or
 * an allowed host is refused with a 403: a web page on another site that resolves its name
 * to 127.0.0.1 (DNS rebinding) cannot reach the server.
 */
export function guardHost(
  fetch: (r: Request) => Response | Promise<Response>,
  bound: string,
  allowed: string[] = [],
): (r: Request) => Response | Promise<Response> {
  if (!isLoopbackHost(bound) || allowed.includes("*")) return fetch;
  const ok = new Set([...allowed.map((h) => h.toLowerCase()), bound.toLowerCase()]);
  return (r: Request) => {
    const raw = r.headers.get("host") ?? "";
    const name = raw.startsWith("[") ? raw.slice(0, raw.indexOf("]") + 1) : raw.split(":")[0];
    if (isLoopbackHost(name) || ok.has(name.toLowerCase())) return fetch(r);
    const flavor = new URL(r.url).pathname.startsWith("/v1/messages") ? "anthropic" : "openai";
    const err = new ApiError(403, "authentication_error", `Host "${raw}" is not allowed`, {
      code: "host_not_allowed",
    });
    return Response.json(errorBody(err, flavor), { status: 403 });
  };
}

/** Where `spool serve` keeps batches unless told otherwise. */
export function defaultBatchStorePath(
  env: Record<string, string | undefined> = process.env,
): string {
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), ".local", "share");
  return join(data, "spool", "batches.db");
}

/** A listening server. */
export interface SpoolServer {
  /** Base URL, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  /** The bound port. */
  readonly port: number;
  /** The Hono app. */
  readonly app: Hono;
  /** The engine worker. */
  readonly engine: Engine;
  /** Stop listening, end the engine. */
  close(): Promise<void>;
}

interface Listener {
  port: number;
  stop(): Promise<void>;
}

declare const Bun: {
  serve(o: {
    unix: string;
    idleTimeout: number;
    fetch: (r: Request) => Response | Promise<Response>;
  }): { port: number; stop(force?: boolean): Promise<void> | void };
} | undefined;

/** Serve `fetch` with the runtime's own server on the Unix socket `path`. */
function listenUnix(
  fetch: (r: Request) => Response | Promise<Response>,
  path: string,
): Promise<() => Promise<void>> {
  if (typeof Bun !== "undefined") {
    const s = Bun.serve({ unix: path, idleTimeout: 0, fetch });
    return Promise.resolve(async () => await s.stop(true));
  }
  const ac = new AbortController();
  const s = Deno.serve({ path, signal: ac.signal, onListen: () => {} }, fetch);
  return Promise.resolve(async () => {
    ac.abort();
    await s.finished;
  });
}

/**
 * Listen on `host:port`: the runtime's server on a private Unix socket (in a fresh 0700
 * folder), the socket front of front.ts on the public address, cutting off clients slower
 * than `timeoutMs` with their request head.
 */
export async function listen(
  fetch: (r: Request) => Response | Promise<Response>,
  host: string,
  port: number,
  timeoutMs: number = requestTimeoutMs(),
): Promise<Listener> {
  const dir = mkdtempSync(join(tmpdir(), "spool-serve-"));
  const path = join(dir, "http.sock");
  const stopHttp = await listenUnix(fetch, path);
  try {
    const front = await startFront({
      host,
      port,
      backendPath: path,
      headTimeoutMs: timeoutMs,
      // the JSON routes answer a 408 at bodyTimeoutMs; the front closes what is left later
      bodyTimeoutMs: bodyTimeoutMs() + 5000,
    });
    return {
      port: front.port,
      stop: async () => {
        await front.close();
        await stopHttp();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await stopHttp();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Start the engine and listen; see the module doc. */
export async function createServer(opts: ServerOptions): Promise<SpoolServer> {
  const engine = await Engine.start(opts);
  try {
    const name = opts.alias ?? basename(opts.path).replace(/\.gguf$/i, "");
    const frontend = await ModelFrontend.open(opts.path, name, engine.info);
    let store: BatchQueue | null = null;
    if (opts.batchStore) store = await openBatchStore(opts.batchStore, { appName: "spool serve" });
    // the model's identity for batches, computed once, when first needed
    let hash: Promise<string> | null = null;
    const modelHash = () => (hash ??= fileSha256(opts.path));
    let runner: BatchRunner | null = null;
    const app = createApp({
      engine,
      frontend,
      apiKey: opts.apiKey,
      maxBodyBytes: opts.maxBodyBytes,
      maxQueue: opts.maxQueue,
      heartbeatMs: opts.heartbeatMs,
      corsOrigins: opts.corsOrigins,
      metrics: new Metrics(),
      batches: store
        ? {
          store,
          modelHash,
          get runner() {
            return runner ?? undefined;
          },
        }
        : undefined,
    });
    let loop: Promise<void> | null = null;
    if (store) {
      // batch work goes through the app itself, behind interactive requests
      runner = new BatchRunner(store, appExecutor(app, { apiKey: opts.apiKey, background: true }), {
        concurrency: Math.max(1, engine.info.parallel),
        modelHash,
        leaseSeconds: opts.batchLeaseSeconds,
      });
      loop = runner.loop((id, e) =>
        console.error(`spool serve: batch ${id}: ${(e as Error).message}`)
      );
    }
    const host = opts.host ?? "127.0.0.1";
    const l = await listen(
      guardHost(app.fetch, host, opts.allowedHosts),
      host,
      opts.port ?? 8080,
      opts.requestTimeoutMs,
    );
    const urlHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
    return {
      url: `http://${urlHost}:${l.port}`,
      port: l.port,
      app,
      engine,
      close: async () => {
        runner?.stop();
        await loop;
        await l.stop();
        frontend.close();
        await engine.close();
        await store?.close();
      },
    };
  } catch (e) {
    await engine.close();
    throw e;
  }
}
