/**
 * Errors of the grammar compiler and of constrained sampling.
 *
 * @module
 */

/** Machine-readable reason of a {@link GrammarError}. */
export type GrammarErrorCode =
  /** The schema uses something the compiler cannot express (a remote $ref, an unknown type). */
  | "unsupported_schema"
  /** The schema (or pattern) is over a size or nesting limit. */
  | "too_large"
  /** No value satisfies the schema (`enum: []`, `false`, a required property that never ends). */
  | "unsatisfiable"
  /** The constraint spec is invalid (no tools, an unknown tool name, format "none"). */
  | "bad_spec"
  /** Every token is rejected by the constraint: sampling cannot continue. */
  | "dead_end"
  /** A bug: a state the automaton should never reach. */
  | "internal";

/** An error of the grammar layer, with a code and a message that says what and where. */
export class GrammarError extends Error {
  /** Why it failed. */
  readonly code: GrammarErrorCode;
  /** Builds the error. */
  constructor(code: GrammarErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GrammarError";
    this.code = code;
  }
}
