/**
 * The wire formats of the two batch APIs: input validation (OpenAI's JSONL, Anthropic's
 * `requests` array), result lines, and the batch objects, from the stored records.
 *
 * OpenAI (Batch API): each input line is `{custom_id, method: "POST", url, body}`; each
 * output line `{id, custom_id, response: {status_code, request_id, body}, error}`. Requests
 * that ended in an HTTP error go to the error file with their error body; requests that
 * never ran (cancelled, expired) carry `error: {code, message}` and no response.
 * Anthropic (Message Batches): `{custom_id, params}` in, and results
 * `{custom_id, result: {type: "succeeded", message} | {type: "errored", error} | {type:
 * "canceled"} | {type: "expired"}}`.
 *
 * @module
 */
import { type BatchRecord, newId } from "./store.ts";

/** Endpoints an OpenAI batch may target. */
export const OPENAI_BATCH_ENDPOINTS = ["/v1/chat/completions", "/v1/completions"] as const;

/** One problem in a batch input. */
export interface InputError {
  /** 1-based line (OpenAI JSONL) or 0-based request index (Anthropic). */
  line: number;
  message: string;
}

/** A validated request. */
export interface ParsedRequest {
  customId: string;
  body: Record<string, unknown>;
}

/** The most input errors reported at once. */
export const MAX_INPUT_ERRORS = 50;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Validate an OpenAI batch input file line by line. `endpoint`, when given, is what every
 * line's `url` must be; otherwise all lines must agree. Blank lines are skipped.
 */
export function parseOpenAIBatchInput(
  text: string,
  endpoint?: string,
): { requests: ParsedRequest[]; url: string | null; errors: InputError[] } {
  const requests: ParsedRequest[] = [];
  const errors: InputError[] = [];
  const seen = new Set<string>();
  let url: string | null = endpoint ?? null;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length && errors.length < MAX_INPUT_ERRORS; i++) {
    const raw = lines[i].trim();
    if (raw === "") continue;
    const bad = (message: string) => errors.push({ line: i + 1, message });
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      bad(`not valid JSON: ${(e as Error).message}`);
      continue;
    }
    if (!isObject(v)) {
      bad("each line must be a JSON object");
      continue;
    }
    const { custom_id: cid, method, url: u, body } = v;
    if (typeof cid !== "string" || cid === "") {
      bad("custom_id must be a non-empty string");
      continue;
    }
    if (seen.has(cid)) {
      bad(`custom_id "${cid}" appears more than once`);
      continue;
    }
    if (method !== "POST") {
      bad(`method must be "POST", got ${JSON.stringify(method)}`);
      continue;
    }
    if (typeof u !== "string" || !(OPENAI_BATCH_ENDPOINTS as readonly string[]).includes(u)) {
      bad(`url must be one of ${OPENAI_BATCH_ENDPOINTS.join(", ")}, got ${JSON.stringify(u)}`);
      continue;
    }
    if (url !== null && u !== url) {
      bad(`url ${u} differs from the batch's endpoint ${url}`);
      continue;
    }
    url = u;
    if (!isObject(body)) {
      bad("body must be a JSON object");
      continue;
    }
    if (u === "/v1/chat/completions" && !Array.isArray(body.messages)) {
      bad("body.messages must be an array");
      continue;
    }
    if (u === "/v1/completions" && typeof body.prompt !== "string" && !Array.isArray(body.prompt)) {
      bad("body.prompt must be a string");
      continue;
    }
    if (body.stream === true) {
      bad("body.stream is not supported in a batch");
      continue;
    }
    seen.add(cid);
    requests.push({ customId: cid, body });
  }
  if (requests.length === 0 && errors.length === 0) {
    errors.push({ line: 1, message: "the file has no requests" });
  }
  return { requests, url, errors };
}

/** Validate Anthropic's `requests` array of `{custom_id, params}`. */
export function parseAnthropicRequests(
  value: unknown,
): { requests: ParsedRequest[]; errors: InputError[] } {
  const requests: ParsedRequest[] = [];
  const errors: InputError[] = [];
  if (!Array.isArray(value) || value.length === 0) {
    return { requests, errors: [{ line: 0, message: "requests must be a non-empty array" }] };
  }
  const seen = new Set<string>();
  for (let i = 0; i < value.length && errors.length < MAX_INPUT_ERRORS; i++) {
    const r = value[i];
    const bad = (message: string) => errors.push({ line: i, message });
    if (!isObject(r)) {
      bad("each request must be an object");
      continue;
    }
    const cid = r.custom_id;
    if (typeof cid !== "string" || !/^[a-zA-Z0-9_-]{1,64}$/.test(cid)) {
      bad("custom_id must be 1 to 64 letters, digits, '-' or '_'");
      continue;
    }
    if (seen.has(cid)) {
      bad(`custom_id "${cid}" appears more than once`);
      continue;
    }
    const p = r.params;
    if (!isObject(p) || !Array.isArray(p.messages) || typeof p.max_tokens !== "number") {
      bad("params must be a Messages request with messages and max_tokens");
      continue;
    }
    if (p.stream === true) {
      bad("params.stream is not supported in a batch");
      continue;
    }
    seen.add(cid);
    requests.push({ customId: cid, body: p });
  }
  return { requests, errors };
}

/** The result line of a request that ran (an HTTP response of the endpoint). */
export function resultLine(
  kind: "openai" | "anthropic",
  customId: string,
  status: number,
  body: unknown,
): { ok: boolean; line: unknown } {
  const ok = status >= 200 && status < 300;
  if (kind === "openai") {
    return {
      ok,
      line: {
        id: newId("batch_req_"),
        custom_id: customId,
        response: { status_code: status, request_id: newId("req_"), body },
        error: null,
      },
    };
  }
  if (ok) {
    return { ok, line: { custom_id: customId, result: { type: "succeeded", message: body } } };
  }
  const err = isObject(body) && isObject(body.error)
    ? body
    : { type: "error", error: { type: "api_error", message: JSON.stringify(body) } };
  return { ok, line: { custom_id: customId, result: { type: "errored", error: err } } };
}

/** The line of a request that never ran: the batch was cancelled or expired first. */
export function unrunLine(
  kind: "openai" | "anthropic",
  customId: string,
  state: "cancelled" | "expired",
): { ok: boolean; line: unknown } {
  if (kind === "anthropic") {
    return {
      ok: false,
      line: {
        custom_id: customId,
        result: { type: state === "cancelled" ? "canceled" : "expired" },
      },
    };
  }
  return {
    ok: false,
    line: {
      id: newId("batch_req_"),
      custom_id: customId,
      response: null,
      error: state === "cancelled"
        ? { code: "batch_cancelled", message: "The batch was cancelled before this request ran." }
        : { code: "batch_expired", message: "The batch expired before this request ran." },
    },
  };
}

/** The OpenAI batch object of a record. */
export function openaiBatchObject(b: BatchRecord): Record<string, unknown> {
  const c = b.request_counts;
  return {
    id: b.id,
    object: "batch",
    endpoint: b.endpoint,
    errors: b.errors.length > 0 ? { object: "list", data: b.errors } : null,
    input_file_id: b.input_file_id,
    completion_window: b.completion_window,
    status: b.status,
    output_file_id: b.output_file_id,
    error_file_id: b.error_file_id,
    created_at: b.created_at,
    in_progress_at: b.in_progress_at,
    expires_at: b.expires_at,
    finalizing_at: b.finalizing_at,
    completed_at: b.completed_at,
    failed_at: b.failed_at,
    expired_at: b.expired_at,
    cancelling_at: b.cancelling_at,
    cancelled_at: b.cancelled_at,
    request_counts: {
      total: c.total,
      completed: c.completed,
      failed: c.failed + c.cancelled + c.expired,
    },
    metadata: b.metadata,
  };
}

const iso = (t: number | null) => (t === null ? null : new Date(t * 1000).toISOString());

/** The Anthropic message batch object of a record; `base` is the server's URL. */
export function anthropicBatchObject(b: BatchRecord, base: string): Record<string, unknown> {
  const c = b.request_counts;
  const ended = !["in_progress", "cancelling", "validating", "finalizing"].includes(b.status);
  const endedAt = b.completed_at ?? b.cancelled_at ?? b.expired_at ?? b.failed_at;
  return {
    id: b.id,
    type: "message_batch",
    processing_status: ended ? "ended" : b.status === "cancelling" ? "canceling" : "in_progress",
    request_counts: {
      processing: c.pending,
      succeeded: c.completed,
      errored: c.failed,
      canceled: c.cancelled,
      expired: c.expired,
    },
    ended_at: ended ? iso(endedAt) : null,
    created_at: iso(b.created_at),
    expires_at: iso(b.expires_at),
    archived_at: null,
    cancel_initiated_at: iso(b.cancelling_at),
    results_url: ended ? `${base}/v1/messages/batches/${b.id}/results` : null,
  };
}
