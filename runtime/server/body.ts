/**
 * Reading request bodies: JSON with a deadline (a client sending its body too slowly gets a
 * 408 and the connection is closed), validated with the route's request schema. A body of
 * {@link OFFLOAD_BYTES} or more is parsed and validated in a worker, so that a client posting
 * tens of megabytes never stalls `/health` or anyone else's stream (`JSON.parse` and the
 * schema check of 30 MB of messages take a few hundred milliseconds). The value comes back
 * packed (pack.ts) and is rebuilt here in slices of a few milliseconds: a structured clone of
 * it would cost this thread more than the parse. Size limits stay with the app's body limit
 * (413), which applies before any of this.
 *
 * @module
 */
import type { Context } from "hono";
import process from "node:process";
import type { z } from "zod";
import { startJsonWorker } from "../engine/workers.ts";
import { ApiError, badRequest, fromWire, type WireError } from "./errors.ts";
import { type Packed, unpackLarge } from "./pack.ts";
import { BODY_SCHEMAS, type BodySchemaName, parseBody } from "./schemas.ts";

/** Bodies with at least this many bytes are parsed in a worker. */
export const OFFLOAD_BYTES = 1024 * 1024;
/** Most body workers at once (each holds a copy of its body); later bodies wait their turn. */
export const MAX_BODY_WORKERS = 2;

let workers = 0;
const waiting: (() => void)[] = [];

/** Runs `f` when fewer than {@link MAX_BODY_WORKERS} body workers are running. */
async function inTurn<T>(f: () => Promise<T>): Promise<T> {
  if (workers >= MAX_BODY_WORKERS) await new Promise<void>((r) => waiting.push(r));
  else workers++;
  try {
    return await f();
  } finally {
    const next = waiting.shift();
    if (next) next(); // the slot passes on
    else workers--;
  }
}

/** Milliseconds to wait for a request body: SPOOL_BODY_TIMEOUT_MS, else 60 s. */
export function bodyTimeoutMs(): number {
  return Number(process.env.SPOOL_BODY_TIMEOUT_MS) || 60_000;
}

/**
 * Parses `bytes` as JSON and validates it with the schema named `schema` (if any): in place
 * when small, else in a worker started for the body (the buffer is transferred to it, so
 * `bytes` is unusable afterwards). Throws a 400 for text that is not JSON, and the schema's
 * 400 for a value it refuses.
 */
export async function parseJsonBytes(
  bytes: ArrayBuffer,
  schema?: BodySchemaName,
): Promise<unknown> {
  if (bytes.byteLength < OFFLOAD_BYTES) {
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      throw badRequest(`The body is not valid JSON: ${(e as Error).message}`);
    }
    return schema ? parseBody(BODY_SCHEMAS[schema], value) : value;
  }
  return await inTurn(() => parseInWorker(bytes, schema));
}

/** {@link parseJsonBytes} in a worker started for the body. */
async function parseInWorker(bytes: ArrayBuffer, schema?: BodySchemaName): Promise<unknown> {
  const worker = startJsonWorker();
  try {
    const packed = await new Promise<Packed>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent) => {
        const m = e.data as { packed?: Packed; syntax?: string; error?: WireError };
        if (m.syntax !== undefined) {
          reject(badRequest(`The body is not valid JSON: ${m.syntax}`));
        } else if (m.error) reject(fromWire(m.error));
        else resolve(m.packed!);
      };
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault?.();
        reject(new Error(`JSON body worker: ${e.message}`));
      };
      worker.postMessage({ buf: bytes, schema }, [bytes]);
    });
    return await unpackLarge(packed);
  } finally {
    worker.terminate();
  }
}

/** The body's bytes, or a 408 (and the connection closed) when they are not in by `timeoutMs`. */
async function readBytes(c: Context, timeoutMs: number): Promise<ArrayBuffer> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new ApiError(408, "invalid_request_error", "The request body did not arrive in time", {
          code: "request_timeout",
        }),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([c.req.arrayBuffer(), late]);
  } catch (e) {
    if (e instanceof ApiError) c.header("connection", "close");
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Parses the JSON body or throws a 400; a body that does not arrive within `timeoutMs` (a
 * client sending slowly) is a 408, and the connection is closed.
 */
export async function readJson(c: Context, timeoutMs = bodyTimeoutMs()): Promise<unknown> {
  return await parseJsonBytes(await readBytes(c, timeoutMs));
}

/** {@link readJson}, validated with the request schema `schema` (a 400 names the field). */
export async function readBody<N extends BodySchemaName>(
  c: Context,
  schema: N,
  timeoutMs = bodyTimeoutMs(),
): Promise<z.infer<(typeof BODY_SCHEMAS)[N]>> {
  return await parseJsonBytes(await readBytes(c, timeoutMs), schema) as z.infer<
    (typeof BODY_SCHEMAS)[N]
  >;
}
