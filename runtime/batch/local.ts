/**
 * An in-process executor for batch requests: the server's engine (a Worker running the
 * scheduler) and its Hono app, called through `app.fetch` without a socket. Batch results
 * are therefore byte-for-byte what `spool serve` answers for the same request, with the
 * same validation, tool-call handling and error envelopes.
 *
 * @module
 */
import { basename } from "node:path";
import type { Hono } from "hono";
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { createApp } from "../server/app.ts";
import { ModelFrontend } from "../server/prompt.ts";
import type { Executor } from "./runner.ts";

/** Header that marks a request as batch work: it waits behind interactive requests. */
export const BATCH_PRIORITY_HEADER = "x-spool-priority";

/**
 * Build an {@link Executor} over a Hono app (the server's own, or a local one). On a
 * server, batch requests go in with `background: true` (priority -1: behind interactive
 * ones); a local batch run has nothing else to make way for.
 */
export function appExecutor(
  app: Hono,
  o: { apiKey?: string; background?: boolean } = {},
): Executor {
  const apiKey = o.apiKey;
  return async (endpoint, body, signal) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (o.background) headers[BATCH_PRIORITY_HEADER] = "-1";
    if (apiKey) headers["x-api-key"] = apiKey;
    const res = await app.fetch(
      new Request(`http://spool.internal${endpoint}`, {
        method: "POST",
        headers,
        body: JSON.stringify({ ...body, stream: false }),
        signal,
      }),
    );
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = { error: { message: text, type: "server_error" } };
    }
    return { status: res.status, body: json };
  };
}

/** A model loaded in a worker with the server's request handling, for batch jobs. */
export interface LocalExecutor {
  exec: Executor;
  engine: Engine;
  app: Hono;
  close(): Promise<void>;
}

/** Start the engine for `opts` and wrap it in an executor. */
export async function openLocalExecutor(
  opts: EngineOptions & { alias?: string },
): Promise<LocalExecutor> {
  const engine = await Engine.start({ maxQueue: 1 << 20, ...opts });
  try {
    const name = opts.alias ?? basename(opts.path).replace(/\.gguf$/i, "");
    const frontend = await ModelFrontend.open(opts.path, name, engine.info);
    const app = createApp({ engine, frontend, maxQueue: 1 << 20 });
    return {
      exec: appExecutor(app),
      engine,
      app,
      close: async () => {
        frontend.close();
        await engine.close();
      },
    };
  } catch (e) {
    await engine.close();
    throw e;
  }
}
