/**
 * API errors and their two envelopes: OpenAI's `{error:{message,type,param,code}}` and
 * Anthropic's `{type:"error",error:{type,message}}`. Handlers throw {@link ApiError}; the app
 * maps it (and engine errors, zod errors, anything else) to the envelope of the route's API.
 *
 * @module
 */
import type { SeqErrorCode } from "../engine/scheduler.ts";

/** Which API's envelope an error is written in. */
export type ApiFlavor = "openai" | "anthropic";

/** Error kinds, named after OpenAI's `type` values; Anthropic's are derived. */
export type ApiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "not_found_error"
  | "request_too_large"
  | "rate_limit_error"
  | "overloaded_error"
  | "server_error";

/** An error with an HTTP status, a kind, and optionally the offending parameter and a code. */
export class ApiError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** Error kind. */
  readonly type: ApiErrorType;
  /** The request parameter at fault (e.g. "messages.2.content"), if any. */
  readonly param: string | null;
  /** A machine-readable code (e.g. "context_length_exceeded"), if any. */
  readonly code: string | null;
  /** Seconds a client should wait before retrying (sets `retry-after`). */
  readonly retryAfter?: number;

  /** Builds the error. */
  constructor(
    status: number,
    type: ApiErrorType,
    message: string,
    opts: { param?: string | null; code?: string | null; retryAfter?: number; cause?: unknown } =
      {},
  ) {
    super(message, { cause: opts.cause });
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.retryAfter = opts.retryAfter;
  }
}

/** A 400 invalid_request_error. */
export function badRequest(message: string, param?: string, code?: string): ApiError {
  return new ApiError(400, "invalid_request_error", message, { param, code });
}

/** The API error for an engine error code. */
export function engineError(code: SeqErrorCode, message: string): ApiError {
  switch (code) {
    case "context_overflow":
      return new ApiError(400, "invalid_request_error", message, {
        param: "messages",
        code: "context_length_exceeded",
      });
    case "queue_full":
      return new ApiError(503, "overloaded_error", message, {
        code: "queue_full",
        retryAfter: 1,
      });
    case "bad_request":
      return new ApiError(400, "invalid_request_error", message);
    default:
      return new ApiError(500, "server_error", message);
  }
}

const ANTHROPIC_TYPES: Record<ApiErrorType, string> = {
  invalid_request_error: "invalid_request_error",
  authentication_error: "authentication_error",
  not_found_error: "not_found_error",
  request_too_large: "request_too_large",
  rate_limit_error: "rate_limit_error",
  overloaded_error: "overloaded_error",
  server_error: "api_error",
};

/** The JSON body of `e` in `flavor`'s envelope. */
export function errorBody(e: ApiError, flavor: ApiFlavor): Record<string, unknown> {
  if (flavor === "anthropic") {
    return { type: "error", error: { type: ANTHROPIC_TYPES[e.type], message: e.message } };
  }
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

/** Any thrown value as an {@link ApiError} (unknown errors become 500 server_error). */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const err = e as Error;
  if (err?.name === "ContextOverflowError") return engineError("context_overflow", err.message);
  if (err?.name === "GrammarError") {
    return new ApiError(400, "invalid_request_error", err.message, { cause: e });
  }
  if (err instanceof RangeError && /call stack/i.test(err.message)) {
    // a structure nested beyond what any part of the server handles: the request's fault
    return new ApiError(400, "invalid_request_error", "The request is nested too deeply", {
      cause: e,
    });
  }
  if (err?.name === "ChatTemplateError") {
    return new ApiError(400, "invalid_request_error", `Chat template: ${err.message}`, {
      param: "messages",
    });
  }
  return new ApiError(500, "server_error", err?.message ?? String(e), { cause: e });
}

/** An error as it crosses the worker boundary. */
export interface WireError {
  /** The error's name. */
  name: string;
  /** Its message. */
  message: string;
  /** The API error's fields, for an {@link ApiError}. */
  api?: { status: number; type: string; param: string | null; code: string | null };
}

/** The error to send back for `e`. */
export function wireError(e: unknown): WireError {
  const err = e as Error;
  const out: WireError = { name: err?.name ?? "Error", message: err?.message ?? String(e) };
  if (e instanceof ApiError) {
    out.api = { status: e.status, type: e.type, param: e.param, code: e.code };
  }
  return out;
}

/** The error `w` stands for, rebuilt on this side of the worker boundary. */
export function fromWire(w: WireError): Error {
  if (w.api) {
    return new ApiError(w.api.status, w.api.type as ApiError["type"], w.message, {
      param: w.api.param,
      code: w.api.code,
    });
  }
  const e = w.name === "RangeError" ? new RangeError(w.message) : new Error(w.message);
  e.name = w.name;
  return e;
}
