/**
 * Typed errors of the tokenizer layer.
 *
 * Every failure to build a tokenizer from GGUF metadata, or to use one, is a
 * {@link TokenizerError} with a machine-readable `code`, the metadata `key` or token `id`
 * concerned when there is one, and the file `path` when it is known. The message says all of
 * that in words:
 *
 * ```
 * Tokenizer model.gguf: unsupported tokenizer at kv["tokenizer.ggml.model"] (model "t5"; supported: gpt2, llama)
 * ```
 *
 * @module
 */

/** Machine-readable reason of a {@link TokenizerError}. */
export type TokenizerErrorCode =
  /** `tokenizer.ggml.model` names a tokenizer this runtime does not implement. */
  | "unsupported_model"
  /** `tokenizer.ggml.pre` names a pre-tokenizer this runtime does not know. */
  | "unsupported_pre"
  /** A required metadata key is absent (tokens, merges). */
  | "missing_key"
  /** A metadata value has the wrong type or an inconsistent length. */
  | "bad_value"
  /** A token id outside the vocabulary was given to decode or to a lookup. */
  | "bad_token"
  /** The vocabulary is too large for the internal tables. */
  | "too_large";

/** Options of the {@link TokenizerError} constructor. */
export interface TokenizerErrorOptions {
  /** The metadata key concerned, e.g. `tokenizer.ggml.merges`. */
  key?: string;
  /** The token id concerned. */
  id?: number;
  /** File path, when known. */
  path?: string;
  /** Extra detail, put in parentheses at the end of the message. */
  detail?: string;
  /** The underlying error, when this one wraps another. */
  cause?: unknown;
}

const CODE_TEXT: Record<TokenizerErrorCode, string> = {
  unsupported_model: "unsupported tokenizer",
  unsupported_pre: "unsupported pre-tokenizer",
  missing_key: "missing metadata",
  bad_value: "bad metadata value",
  bad_token: "token id out of range",
  too_large: "vocabulary too large",
};

/**
 * An error building or using a tokenizer.
 *
 * The message is `Tokenizer <path>: <what> at kv["<key>"] (token <id>) (<detail>)`; the parts
 * are also kept as fields for programs.
 */
export class TokenizerError extends Error {
  /** Machine-readable reason. */
  readonly code: TokenizerErrorCode;
  /** Metadata key concerned, if any. */
  readonly key: string | undefined;
  /** Token id concerned, if any. */
  readonly id: number | undefined;
  /** File path, if known. */
  readonly path: string | undefined;
  /** The detail given at construction, if any. */
  readonly detail: string | undefined;

  /**
   * Create an error.
   * @param code machine-readable reason
   * @param options location and detail
   */
  constructor(code: TokenizerErrorCode, options: TokenizerErrorOptions = {}) {
    super(
      formatMessage(code, options),
      options.cause !== undefined ? { cause: options.cause } : {},
    );
    this.name = "TokenizerError";
    this.code = code;
    this.key = options.key;
    this.id = options.id;
    this.path = options.path;
    this.detail = options.detail;
  }
}

function formatMessage(code: TokenizerErrorCode, o: TokenizerErrorOptions): string {
  let msg = o.path !== undefined ? `Tokenizer ${o.path}: ` : "Tokenizer: ";
  msg += CODE_TEXT[code];
  if (o.key !== undefined) msg += ` at kv["${o.key}"]`;
  if (o.id !== undefined) msg += ` (token ${o.id})`;
  if (o.detail !== undefined) msg += ` (${o.detail})`;
  return msg;
}
