/**
 * How many sequences a batch job runs together (B), from the KV memory budget and the
 * expert cache, with the reasons in words (`spool batch run --verbose`).
 *
 * - Context per sequence C: the longest prompt seen (a sample of the requests, rendered with
 *   the chat template) plus the largest `max_tokens`, rounded up to 64, at most the model's
 *   training context.
 * - KV: B sequences hold B · C · (bytes of K and V per token). The KV share is at most
 *   {@link KV_SHARE} of what the budget leaves after the dense weights and the runtime; the
 *   rest stays for the expert cache, which is what makes each step cheap.
 * - Expert cache: one step of B sequences routes to about N·(1 − (1 − k/N)^B) distinct
 *   experts per layer (DESIGN.md §4); B is kept where that fits in half the cache's slots
 *   per layer group, so a layer's experts and the next layer's prefetch fit together.
 * - B is at most `max` (default 64) and at most the number of requests.
 *
 * @module
 */
import { formatSize } from "../experts/budget.ts";

/** Inputs of {@link planBatch}. */
export interface BatchPlanInput {
  requests: number;
  /** Longest prompt (tokens) among the sampled requests. */
  maxPromptTokens: number;
  /** Largest max_tokens asked for (or the context when unbounded). */
  maxNewTokens: number;
  nCtxTrain: number;
  /** Bytes of K and V of one token, all layers. */
  kvBytesPerToken: number;
  /** The memory budget, bytes. */
  budgetBytes: number;
  /** Dense weights + runtime overhead, bytes. */
  baseBytes: number;
  /** Bytes of one expert (gate + up + down). */
  bytesPerExpert: number;
  nExpert: number;
  nExpertUsed: number;
  /** Largest B (default 64). */
  max?: number;
}

/** The plan. */
export interface BatchPlan {
  /** Sequences together. */
  B: number;
  /** Context per sequence. */
  nCtx: number;
  /** KV bytes of all B sequences. */
  kvBytes: number;
  /** The budget left for the engine (dense, cache, runtime): budget − KV. */
  engineBudgetBytes: number;
  /** Distinct experts per layer a step of B sequences reads (uniform routing). */
  expertsPerLayer: number;
  /** One line per consideration. */
  reasons: string[];
}

/** Most of the post-dense budget the KV caches may take. */
export const KV_SHARE = 0.25;

/** Expected distinct experts per layer of B sequences with k of N each, uniform routing. */
export function distinctExperts(N: number, k: number, B: number): number {
  return N * (1 - Math.pow(1 - k / N, B));
}

/** Decide B (see the module doc). */
export function planBatch(i: BatchPlanInput): BatchPlan {
  const reasons: string[] = [];
  const nCtx = Math.min(
    i.nCtxTrain || 4096,
    Math.ceil((i.maxPromptTokens + i.maxNewTokens + 8) / 64) * 64,
  );
  reasons.push(
    `context per sequence ${nCtx} tokens (longest prompt ${i.maxPromptTokens} + up to ` +
      `${i.maxNewTokens} new)`,
  );
  const perSeq = nCtx * i.kvBytesPerToken;
  const room = Math.max(0, i.budgetBytes * 0.9 - i.baseBytes);
  const bKv = Math.max(1, Math.floor((room * KV_SHARE) / perSeq));
  reasons.push(
    `KV: ${formatSize(perSeq)} per sequence; ${KV_SHARE * 100}% of the ${formatSize(room)} ` +
      `left after dense weights and runtime allows ${bKv}`,
  );
  const max = i.max ?? 64;
  let B = Math.min(max, bKv, Math.max(1, i.requests));
  // the cache: what remains after KV, in experts
  const cacheExperts = Math.floor((room - B * perSeq) / Math.max(1, i.bytesPerExpert));
  while (B > 1 && distinctExperts(i.nExpert, i.nExpertUsed, B) * 2 > cacheExperts) B--;
  const per = distinctExperts(i.nExpert, i.nExpertUsed, B);
  reasons.push(
    `expert cache: about ${cacheExperts} experts fit; a step of ${B} sequences reads about ` +
      `${per.toFixed(0)} of ${i.nExpert} experts per layer (vs ${B * i.nExpertUsed} one at a ` +
      `time)`,
  );
  if (B === max) reasons.push(`B capped at ${max}`);
  if (B === i.requests) reasons.push(`B = the number of requests (${i.requests})`);
  const kvBytes = B * perSeq;
  return {
    B,
    nCtx,
    kvBytes,
    engineBudgetBytes: Math.max(0, i.budgetBytes - kvBytes),
    expertsPerLayer: per,
    reasons,
  };
}
