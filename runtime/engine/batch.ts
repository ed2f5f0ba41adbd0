/**
 * One forward step over several sequences at once: the unit of continuous batching (the
 * server's `--parallel N`) and of expert-major batch jobs. Each item is a session (its own
 * KV cache) and the tokens to append to it; the result is the logits of each item's last
 * token, in item order.
 */
import { Session } from "./session.ts";

/** One sequence's part of a batched step. */
export interface BatchItem {
  session: Session;
  /** Tokens to append (one for a decode step; a prompt chunk for prefill). */
  tokens: readonly number[];
}

/**
 * Evaluate every item's tokens and return the logits of each item's last token (length
 * nVocab each). All sessions must belong to the same model.
 * The rows of every item go through the layers together (each routed expert is read once
 * per step for all the sequences routed to it); see {@link Session.evalMany}. With `reuse`
 * each item's logits are its session's own buffer, overwritten by its next reusing step.
 * @throws ContextOverflowError if any item does not fit its session (nothing is evaluated)
 */
export function evalBatch(
  items: readonly BatchItem[],
  opts: { reuse?: boolean } = {},
): Float32Array[] {
  return Session.evalMany(items, undefined, opts);
}
