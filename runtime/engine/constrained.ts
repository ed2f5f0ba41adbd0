/**
 * Sampling under a token constraint (JSON schema, tool-call syntax: `grammar/mod.ts`).
 *
 * ## Method
 *
 * Rejection first: sample normally; if the constraint accepts the token (the common case
 * when the model agrees with the grammar) that is the answer, at the cost of one `accepts`
 * call. If not, the token's logit is set to -Infinity on a copy of the logits and the chain
 * runs again, with a fresh draw. Removing a rejected token and redrawing is exactly sampling
 * from the renormalized distribution over the tokens not yet rejected, so the result is a
 * draw from the masked distribution. After {@link MAX_REJECTIONS} rejections in one step the
 * whole vocabulary is masked at once (`fillMask` of the constraints built by
 * `grammar/mod.ts`, else one `accepts` per token) and the chain runs a last time.
 *
 * With top-k, top-p or min-p on, truncation is applied to the logits with only the rejected
 * tokens masked (the first draws) or with every invalid token masked (after the full mask):
 * llama.cpp does the same (sample, check the grammar, and resample with the grammar applied
 * only on rejection). With the OpenAI defaults (no truncation) both are exact.
 *
 * ## Logprobs
 *
 * Reported logprobs are those of the **model's distribution, unmasked**: the same definition
 * as {@link Sampler.sample} (log-softmax over the whole vocabulary after logit bias and
 * penalties, temperature 1), for the chosen token and for the `top` list, which may
 * therefore list tokens the grammar forbade. They say how much the model wanted its output;
 * they do not change with the constraint and cost nothing extra when the first draw is
 * accepted.
 *
 * @module
 */

import type { MaskingConstraint, TokenConstraint } from "../grammar/mod.ts";
import { GrammarError } from "../grammar/errors.ts";
import { penalizedLogit, type Sampler, type SampleResult, SamplingError } from "./sampling.ts";

/** Rejections in one step before the whole vocabulary is masked at once. */
export const MAX_REJECTIONS = 3;

/**
 * Samples the next token from `logits` (not modified) under `constraint` (null = none). The
 * constraint is not advanced: call `constraint.advance(result.token)` after.
 * Throws {@link GrammarError} `dead_end` when the constraint rejects every token that has a
 * finite logit.
 */
export function sampleConstrained(
  sampler: Sampler,
  logits: Float32Array,
  history: ArrayLike<number>,
  constraint: TokenConstraint | null,
): SampleResult {
  const first = sampler.sample(logits, history);
  if (constraint === null || constraint.accepts(first.token)) return first;
  const work = scratchCopy(logits);
  work[first.token] = -Infinity;
  let r: SampleResult | null = null;
  for (let i = 1; i < MAX_REJECTIONS; i++) {
    r = trySample(sampler, work, history);
    if (r === null) break;
    if (constraint.accepts(r.token)) return rawLogprobs(sampler, logits, history, first, r);
    work[r.token] = -Infinity;
    r = null;
  }
  // many rejections: mask everything the constraint rejects, then draw once more
  let live = 0;
  if (typeof (constraint as MaskingConstraint).fillMask === "function") {
    live = (constraint as MaskingConstraint).fillMask(work);
  } else {
    for (let id = 0; id < work.length; id++) {
      if (!(work[id] > -Infinity)) continue;
      if (constraint.accepts(id)) live++;
      else work[id] = -Infinity;
    }
  }
  r = live > 0 ? trySample(sampler, work, history) : null;
  if (r === null || !constraint.accepts(r.token)) {
    throw new GrammarError(
      "dead_end",
      "Cannot sample: the constraint rejects every token the model can produce here",
    );
  }
  return rawLogprobs(sampler, logits, history, first, r);
}

let scratch = new Float32Array(0);

/** `logits` copied into a buffer reused across calls (a step samples one sequence at a time). */
function scratchCopy(logits: Float32Array): Float32Array {
  if (scratch.length !== logits.length) scratch = new Float32Array(logits.length);
  scratch.set(logits);
  return scratch;
}

function trySample(
  sampler: Sampler,
  work: Float32Array,
  history: ArrayLike<number>,
): SampleResult | null {
  try {
    return sampler.sample(work, history);
  } catch (e) {
    if (e instanceof SamplingError && e.code === "no_candidates") return null;
    throw e;
  }
}

/** `chosen` with its logprob under the unmasked distribution, and the unmasked top list. */
function rawLogprobs(
  sampler: Sampler,
  logits: Float32Array,
  history: ArrayLike<number>,
  first: SampleResult,
  chosen: SampleResult,
): SampleResult {
  // log Z of the unmasked distribution, from the first draw: logprob = l[t] - logZ
  const pen = (id: number) => penalizedLogit(logits, history, sampler.params, id);
  const logZ = pen(first.token) - first.logprob;
  const out: SampleResult = { token: chosen.token, logprob: pen(chosen.token) - logZ };
  if (first.top) out.top = first.top;
  return out;
}
