/**
 * The batch APIs of `spool serve`: OpenAI's Files and Batches, and Anthropic's Message
 * Batches, over the durable {@link BatchQueue} (SQLite, or PostgreSQL shared by several
 * servers: any of them answers for any batch). The {@link BatchRunner} works the batches
 * in the background through the server's own request handling, at lower priority than
 * interactive requests.
 *
 * OpenAI: `POST /v1/files` (multipart, purpose=batch: the JSONL is validated line by line
 * and a bad file is a 400 naming its lines), `GET /v1/files[/{id}[/content]]`,
 * `DELETE /v1/files/{id}`, `POST /v1/batches`, `GET /v1/batches[/{id}]` (cursor `after`,
 * `limit`), `POST /v1/batches/{id}/cancel`.
 * Anthropic: `POST /v1/messages/batches`, `GET /v1/messages/batches[/{id}]` (`after_id`,
 * `before_id`, `limit`), `POST .../{id}/cancel`, `DELETE .../{id}`, `GET .../{id}/results`
 * (JSONL, once ended).
 *
 * @module
 */
import type { Context, Hono } from "hono";
import {
  anthropicBatchObject,
  type InputError,
  OPENAI_BATCH_ENDPOINTS,
  openaiBatchObject,
  parseAnthropicRequests,
  parseOpenAIBatchInput,
} from "../batch/formats.ts";
import type { BatchRunner } from "../batch/runner.ts";
import {
  type BatchQueue,
  StoreError,
  StoreFullError,
  StoreUnavailableError,
  windowSeconds,
} from "../batch/store_types.ts";
import { ApiError, badRequest } from "./errors.ts";
import { readJson } from "./body.ts";

/** What the batch routes need. */
export interface BatchContext {
  store: BatchQueue;
  /** sha256 of the server's model, recorded with each new batch. */
  modelHash?: () => Promise<string>;
  /** Poked when a batch is created or cancelled. */
  runner?: BatchRunner;
}

function describe(errors: InputError[], what: string): string {
  const shown = errors.slice(0, 10).map((e) => `${what} ${e.line}: ${e.message}`);
  const more = errors.length > 10 ? `; and ${errors.length - 10} more` : "";
  return `${shown.join("; ")}${more}`;
}

function notFound(what: string): ApiError {
  return new ApiError(404, "not_found_error", `No such ${what}`);
}

async function storeCall<T>(f: () => T | Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof StoreFullError) {
      throw new ApiError(507, "server_error", e.message, { code: "insufficient_storage" });
    }
    if (e instanceof StoreUnavailableError) {
      throw new ApiError(503, "server_error", e.message, { code: "store_unavailable" });
    }
    if (e instanceof StoreError) {
      throw e.code === "not_found"
        ? new ApiError(404, "not_found_error", e.message)
        : badRequest(e.message);
    }
    throw e;
  }
}

/**
 * The server's base URL as the client sees it: the request reaches the HTTP server over the
 * front's Unix socket (an `http+unix:` URL), so the client's `Host` names it.
 */
function base(c: Context): string {
  const u = new URL(c.req.url);
  if (u.protocol === "http:" || u.protocol === "https:") return `${u.protocol}//${u.host}`;
  return `http://${c.req.header("host") ?? u.host}`;
}

function limitOf(c: Context, max = 100): number {
  const v = c.req.query("limit");
  if (v === undefined) return 20;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw badRequest(`limit must be an integer from 1 to ${max}`, "limit");
  }
  return n;
}

/** Mount the batch routes on `app`. */
export function batchRoutes(app: Hono, ctx: BatchContext): void {
  const { store } = ctx;

  // ---- OpenAI Files
  app.post("/v1/files", async (c) => {
    let form: FormData;
    try {
      form = await c.req.formData();
    } catch {
      throw badRequest("expected a multipart/form-data body with `file` and `purpose`");
    }
    const purpose = form.get("purpose");
    const file = form.get("file");
    if (typeof purpose !== "string" || purpose === "") {
      throw badRequest("purpose is required", "purpose");
    }
    if (!(file instanceof Blob)) throw badRequest("file is required", "file");
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (purpose === "batch") {
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch {
        throw badRequest("the batch file is not valid UTF-8", "file");
      }
      const r = parseOpenAIBatchInput(text);
      if (r.errors.length > 0) {
        throw badRequest(
          `invalid batch file: ${describe(r.errors, "line")}`,
          "file",
          "invalid_file",
        );
      }
    }
    const name = (file as File).name || "upload";
    return c.json(await storeCall(() => store.createFile(purpose, name, bytes)));
  });

  app.get("/v1/files", async (c) => {
    const data = await storeCall(() => store.listFiles(c.req.query("purpose")));
    return c.json({ object: "list", data, has_more: false });
  });

  app.get("/v1/files/:id", async (c) => {
    const f = await storeCall(() => store.getFile(c.req.param("id")));
    if (!f) throw notFound("file");
    return c.json(f);
  });

  app.get("/v1/files/:id/content", async (c) => {
    const bytes = await storeCall(() => store.fileContent(c.req.param("id")));
    if (!bytes) throw notFound("file");
    return c.body(new Uint8Array(bytes), 200, { "content-type": "application/octet-stream" });
  });

  app.delete("/v1/files/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await storeCall(() => store.deleteFile(id)))) throw notFound("file");
    return c.json({ id, object: "file", deleted: true });
  });

  // ---- OpenAI Batches
  app.post("/v1/batches", async (c) => {
    const b = await readJson(c) as Record<string, unknown>;
    if (b === null || typeof b !== "object") throw badRequest("expected a JSON object");
    const fileId = b.input_file_id;
    const endpoint = b.endpoint;
    const win = b.completion_window ?? "24h";
    if (typeof fileId !== "string") throw badRequest("input_file_id is required", "input_file_id");
    if (
      typeof endpoint !== "string" ||
      !(OPENAI_BATCH_ENDPOINTS as readonly string[]).includes(endpoint)
    ) {
      throw badRequest(
        `endpoint must be one of ${OPENAI_BATCH_ENDPOINTS.join(", ")}`,
        "endpoint",
      );
    }
    if (typeof win !== "string") {
      throw badRequest("completion_window must be a string", "completion_window");
    }
    try {
      windowSeconds(win);
    } catch (e) {
      throw badRequest((e as Error).message, "completion_window");
    }
    const meta = b.metadata;
    if (meta !== undefined && meta !== null) {
      if (typeof meta !== "object" || Array.isArray(meta)) {
        throw badRequest("metadata must be an object", "metadata");
      }
      const entries = Object.entries(meta as Record<string, unknown>);
      if (
        entries.length > 16 ||
        entries.some(([k, v]) =>
          typeof v !== "string" || k.length > 64 || (v as string).length > 512
        )
      ) {
        throw badRequest(
          "metadata: at most 16 string pairs (keys up to 64, values up to 512 characters)",
          "metadata",
        );
      }
    }
    const f = await storeCall(() => store.getFile(fileId));
    if (!f) throw badRequest(`No file ${fileId}`, "input_file_id");
    if (f.purpose !== "batch") {
      throw badRequest(`file ${fileId} has purpose "${f.purpose}", not "batch"`, "input_file_id");
    }
    const content = await storeCall(() => store.fileContent(fileId));
    if (!content) throw badRequest(`The content of file ${fileId} is missing`, "input_file_id");
    const r = parseOpenAIBatchInput(new TextDecoder().decode(content), endpoint);
    if (r.errors.length > 0) {
      throw badRequest(
        `invalid batch file: ${describe(r.errors, "line")}`,
        "input_file_id",
        "invalid_file",
      );
    }
    const modelHash = await ctx.modelHash?.();
    const rec = await storeCall(() =>
      store.createBatch({
        modelHash,
        kind: "openai",
        endpoint,
        inputFileId: fileId,
        completionWindow: win,
        metadata: (meta as Record<string, string> | null | undefined) ?? null,
        requests: r.requests,
      })
    );
    ctx.runner?.poke();
    return c.json(openaiBatchObject(rec));
  });

  app.get("/v1/batches", async (c) => {
    const page = await storeCall(() =>
      store.listBatches("openai", { after: c.req.query("after"), limit: limitOf(c) })
    );
    const data = page.data.map(openaiBatchObject);
    return c.json({
      object: "list",
      data,
      first_id: data[0]?.id ?? null,
      last_id: data[data.length - 1]?.id ?? null,
      has_more: page.hasMore,
    });
  });

  app.get("/v1/batches/:id", async (c) => {
    const b = await storeCall(() => store.getBatch(c.req.param("id")));
    if (!b || b.kind !== "openai") throw notFound("batch");
    return c.json(openaiBatchObject(b));
  });

  app.post("/v1/batches/:id/cancel", async (c) => {
    const id = c.req.param("id");
    const b = await storeCall(() => store.getBatch(id));
    if (!b || b.kind !== "openai") throw notFound("batch");
    const r = await storeCall(() => store.cancelBatch(id));
    ctx.runner?.poke();
    return c.json(openaiBatchObject(r));
  });

  // ---- Anthropic Message Batches
  app.post("/v1/messages/batches", async (c) => {
    const b = await readJson(c) as Record<string, unknown>;
    if (b === null || typeof b !== "object") throw badRequest("expected a JSON object");
    const r = parseAnthropicRequests(b.requests);
    if (r.errors.length > 0) throw badRequest(`invalid requests: ${describe(r.errors, "request")}`);
    const modelHash = await ctx.modelHash?.();
    const rec = await storeCall(() =>
      store.createBatch({
        kind: "anthropic",
        endpoint: "/v1/messages",
        requests: r.requests,
        modelHash,
      })
    );
    ctx.runner?.poke();
    return c.json(anthropicBatchObject(rec, base(c)));
  });

  app.get("/v1/messages/batches", async (c) => {
    const page = await storeCall(() =>
      store.listBatches("anthropic", {
        after: c.req.query("after_id") ?? c.req.query("before_id"),
        limit: limitOf(c, 1000),
      })
    );
    const data = page.data.map((x) => anthropicBatchObject(x, base(c)));
    return c.json({
      data,
      has_more: page.hasMore,
      first_id: data[0]?.id ?? null,
      last_id: data[data.length - 1]?.id ?? null,
    });
  });

  const anthropicBatch = async (c: Context) => {
    const b = await storeCall(() => store.getBatch(c.req.param("id")!));
    if (!b || b.kind !== "anthropic") throw notFound("message batch");
    return b;
  };

  app.get(
    "/v1/messages/batches/:id",
    async (c) => c.json(anthropicBatchObject(await anthropicBatch(c), base(c))),
  );

  app.post("/v1/messages/batches/:id/cancel", async (c) => {
    const b = await anthropicBatch(c);
    const r = await storeCall(() => store.cancelBatch(b.id));
    ctx.runner?.poke();
    return c.json(anthropicBatchObject(r, base(c)));
  });

  app.delete("/v1/messages/batches/:id", async (c) => {
    const b = await anthropicBatch(c);
    await storeCall(() => store.deleteBatch(b.id));
    return c.json({ id: b.id, type: "message_batch_deleted" });
  });

  app.get("/v1/messages/batches/:id/results", async (c) => {
    const b = await anthropicBatch(c);
    if (["in_progress", "cancelling", "validating"].includes(b.status)) {
      throw badRequest(
        `message batch ${b.id} is still processing; results are available once it has ended`,
      );
    }
    const rows = await storeCall(() => store.results(b.id));
    const text = rows.map((r) => JSON.stringify(r.line)).join("\n") + "\n";
    return c.body(text, 200, { "content-type": "application/x-jsonl" });
  });
}
