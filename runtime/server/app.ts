/**
 * The Hono app of `spool serve`: authentication, body limit, metrics, error envelopes, and
 * the OpenAI, Anthropic and llama-server-style routes. {@link createApp} takes a started
 * {@link Engine} and the {@link ModelFrontend}; serve.ts binds it to a socket.
 *
 * Errors are written in the envelope of the API of the route: Anthropic's for
 * `/v1/messages*`, OpenAI's elsewhere. A bad or missing key is a 401 (`/health` needs none);
 * a body over the limit a 413; a full queue a 503 with `retry-after`.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Engine, EngineStats } from "../engine/engine.ts";
import { anthropicRoutes } from "./anthropic.ts";
import { completionRoutes } from "./completions.ts";
import { ApiError, type ApiFlavor, errorBody, toApiError } from "./errors.ts";
import { Metrics } from "./metrics.ts";
import { openaiRoutes } from "./openai.ts";
import { readBody } from "./body.ts";
import type { ModelFrontend } from "./prompt.ts";
import { newId, type ServerContext } from "./sse.ts";
import { type BatchContext, batchRoutes } from "./batches.ts";

/** Options of {@link createApp}. */
export interface AppOptions {
  /** The running engine. */
  engine: Engine;
  /** Tokenizer, template and tool conventions of the model. */
  frontend: ModelFrontend;
  /** Require this key (Bearer or x-api-key). */
  apiKey?: string;
  /** Largest request body in bytes (default 32 MiB). */
  maxBodyBytes?: number;
  /** Most waiting requests before 503 (default 64). */
  maxQueue?: number;
  /** Metrics to update (default: a new set). */
  metrics?: Metrics;
  /** Milliseconds between keep-alives on quiet streams (default 15000). */
  heartbeatMs?: number;
  /** The batch store (and runner) for the Files, Batches and Message Batches APIs. */
  batches?: BatchContext;
  /**
   * Origins allowed to call from a browser (CORS). Default none: no CORS headers, and a
   * request that carries another site's `Origin` is refused. `["*"]` allows any.
   */
  corsOrigins?: string[];
}

const ENDPOINTS = new Set([
  "/health",
  "/metrics",
  "/tokenize",
  "/detokenize",
  "/v1/models",
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/messages",
  "/v1/messages/count_tokens",
]);

function flavorOf(path: string): ApiFlavor {
  return path.startsWith("/v1/messages") ? "anthropic" : "openai";
}

/** The error response of `e` for the request in `c`. */
function errorResponse(c: Context, e: unknown): Response {
  const err = toApiError(e);
  if (err.status >= 500 && err.type === "server_error") console.error("spool serve:", e);
  const headers: Record<string, string> = {};
  if (err.retryAfter !== undefined) headers["retry-after"] = String(err.retryAfter);
  const flavor = flavorOf(c.req.path);
  let status = err.status === 499 ? 400 : err.status;
  if (flavor === "anthropic" && err.type === "overloaded_error") status = 529;
  return c.json(errorBody(err, flavor), status as 400, headers);
}

/** Whether `origin` is in the configured list (or the list allows any). */
function originAllowed(origin: string, list: string[]): boolean {
  return list.includes("*") || list.includes(origin);
}

/** A page served from this machine itself (same trust as the local user). */
function isLoopbackOrigin(origin: string): boolean {
  try {
    return isLoopbackHost(new URL(origin).hostname);
  } catch {
    return false;
  }
}

/** localhost, *.localhost, 127.0.0.0/8, ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" ||
    /^127\.\d+\.\d+\.\d+$/.test(h);
}

function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** Builds the app. */
export function createApp(opts: AppOptions): Hono {
  const app = new Hono();
  const metrics = opts.metrics ?? new Metrics();
  const ctx: ServerContext = {
    engine: opts.engine,
    fe: opts.frontend,
    metrics,
    maxQueue: opts.maxQueue ?? 64,
    heartbeatMs: opts.heartbeatMs,
  };

  app.use("*", async (c, next) => {
    metrics.inFlight++;
    try {
      await next();
    } finally {
      metrics.inFlight--;
      const p = c.req.path;
      metrics.request(ENDPOINTS.has(p) ? p : "other", c.res.status);
    }
  });

  // request ids: `x-request-id` (OpenAI) and `request-id` (Anthropic) on every response
  app.use("*", async (c, next) => {
    const rid = newId("req_");
    c.header("x-request-id", rid);
    if (flavorOf(c.req.path) === "anthropic" || c.req.header("anthropic-version")) {
      c.header("request-id", rid);
    }
    await next();
  });

  // browsers: CORS only when configured; another site's Origin, or a form-style body (which a
  // page can send cross-site without a preflight), cannot drive the server
  app.use("*", async (c, next) => {
    const origin = c.req.header("origin");
    const allowed = origin !== undefined && originAllowed(origin, opts.corsOrigins ?? []);
    if (origin !== undefined && !allowed && !isLoopbackOrigin(origin)) {
      return errorResponse(
        c,
        new ApiError(403, "authentication_error", `Origin ${origin} is not allowed`, {
          code: "origin_not_allowed",
        }),
      );
    }
    if (allowed) {
      c.header("access-control-allow-origin", origin!);
      c.header("vary", "Origin");
      if (c.req.method === "OPTIONS") {
        c.header("access-control-allow-methods", "GET, POST, DELETE, OPTIONS");
        c.header(
          "access-control-allow-headers",
          c.req.header("access-control-request-headers") ?? "content-type, authorization",
        );
        return c.body(null, 204);
      }
    }
    if (c.req.method === "POST" && !c.req.path.startsWith("/v1/files")) {
      const type = (c.req.header("content-type") ?? "").toLowerCase();
      if (/^(text\/plain|application\/x-www-form-urlencoded|multipart\/form-data)/.test(type)) {
        return errorResponse(
          c,
          new ApiError(
            415,
            "invalid_request_error",
            `Content-Type ${type.split(";")[0]} is not accepted: send application/json`,
            { code: "unsupported_media_type" },
          ),
        );
      }
    }
    return await next();
  });

  app.use("*", async (c, next) => {
    if (!opts.apiKey || c.req.path === "/health") return await next();
    const auth = c.req.header("authorization") ?? "";
    const bearer = auth.toLowerCase().startsWith("bearer ") ? auth.slice(7).trim() : undefined;
    const key = c.req.header("x-api-key") ?? bearer;
    if (key === undefined || !timingSafeEqual(key, opts.apiKey)) {
      const err = new ApiError(
        401,
        "authentication_error",
        key === undefined ? "Missing API key" : "Incorrect API key provided",
        { code: "invalid_api_key" },
      );
      return c.json(errorBody(err, flavorOf(c.req.path)), 401);
    }
    await next();
  });

  app.use(
    "*",
    bodyLimit({
      maxSize: opts.maxBodyBytes ?? 32 * 1024 * 1024,
      onError: (c) =>
        errorResponse(
          c,
          new ApiError(413, "request_too_large", "The request body is too large", {
            code: "request_too_large",
          }),
        ),
    }),
  );

  app.onError((e, c) => errorResponse(c, e));
  app.notFound((c) =>
    errorResponse(
      c,
      new ApiError(404, "not_found_error", `No route ${c.req.method} ${c.req.path}`),
    )
  );

  app.get("/health", (c) =>
    c.json({
      status: "ok",
      model: ctx.fe.name,
      slots: ctx.engine.info.parallel,
      requests_in_flight: ctx.engine.inFlight,
    }));

  app.get("/metrics", async (c) => {
    let stats: EngineStats | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    stats = await Promise.race([
      ctx.engine.stats(),
      new Promise<null>((r) => (timer = setTimeout(() => r(null), 5000))),
    ]);
    clearTimeout(timer);
    return c.text(metrics.render(stats), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });

  app.post("/tokenize", async (c) => {
    const b = await readBody(c, "TokenizeRequest");
    const ids = await ctx.fe.tokenizeAsync(
      b.content,
      b.add_special ?? false,
      b.parse_special ?? true,
    );
    if (!b.with_pieces) return c.json({ tokens: ids });
    const dec = new TextDecoder();
    return c.json({
      tokens: ids.map((id) => {
        const bytes = ctx.fe.tokenizer.tokenPiece(id, true);
        const s = dec.decode(bytes, { stream: false });
        return { id, piece: s.includes("\ufffd") ? [...bytes] : s };
      }),
    });
  });

  app.post("/detokenize", async (c) => {
    const b = await readBody(c, "DetokenizeRequest");
    const n = ctx.fe.info.nVocab;
    const bad = b.tokens.find((t) => t >= n);
    if (bad !== undefined) {
      throw new ApiError(
        400,
        "invalid_request_error",
        `token id ${bad} is outside the vocabulary`,
        {
          param: "tokens",
        },
      );
    }
    return c.json({ content: ctx.fe.tokenizer.decode(b.tokens, { special: true }) });
  });

  if (opts.batches) batchRoutes(app, opts.batches);
  openaiRoutes(app, ctx);
  completionRoutes(app, ctx);
  anthropicRoutes(app, ctx);
  return app;
}
