/**
 * One forward step over several sequences at once: the unit of continuous batching (the
 * server's `--parallel N`) and of expert-major batch jobs. Each item is a session (its own
 * KV cache) and the tokens to append to it; the result is the logits of each item's last
 * token, in item order.
 */
import type { Session } from "./session.ts";

/** One sequence's part of a batched step. */
export interface BatchItem {
  session: Session;
  /** Tokens to append (one for a decode step; a prompt chunk for prefill). */
  tokens: readonly number[];
}

/**
 * Evaluate every item's tokens and return the logits of each item's last token (length
 * nVocab each). All sessions must belong to the same model.
 * @throws ContextOverflowError from the first item that does not fit (nothing of that item
 * is evaluated)
 */
export function evalBatch(items: readonly BatchItem[]): Float32Array[] {
  if (items.length === 0) return [];
  const model = items[0].session.model;
  for (const it of items) {
    if (it.session.model !== model) throw new Error("evalBatch: sessions of different models");
    if (it.tokens.length === 0) throw new RangeError("evalBatch: an item has no tokens");
  }
  return items.map((it) => it.session.eval(it.tokens, "last"));
}
