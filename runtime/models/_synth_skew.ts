/**
 * Router skew of synthetic models (synth.ts `routerSkew`, `spool synth --router-skew S`): a
 * heavy-tailed expert popularity per layer, so that a synthetic model's expert-cache hit-rate
 * curve can be set near the ones reported for real models.
 *
 * A random router routes about uniformly: every expert of a layer is picked about as often,
 * and a per-layer LRU cache of C of E experts hits about C/E of the time. Real routers do not:
 * a few experts of each layer take a large share of the tokens. The skew scales row e of each
 * layer's router matrix (`ffn_gate_inp`, the logits of expert e) by
 * `s_e = exp(S·z_e) / rms(exp(S·z))`, z_e standard normal, drawn per layer (seeded by the
 * model seed and the tensor name, so each layer has its own popular experts). An expert with a
 * large scale has logits of a large spread and lands in the top-k whenever its logit is well
 * positive; one with a small scale almost never does. The scales are log-normal, a
 * heavy-tailed law, and divided by their RMS so the router's overall logit spread (and the
 * margins the parity tests rely on) stays that of the unskewed router.
 *
 * It works through the router matrix alone, so it serves every routing family synth writes:
 * softmax routers without bias (qwen3moe, mixtral, olmoe, qwen35moe, qwen3next), sigmoid
 * routers with a selection bias `exp_probs_b` (glm4moe, minimax-m2, deepseek2: sigmoid is
 * monotone, so a larger logit spread still means more selections) and gpt-oss's router with a
 * bias (small beside the logits). S = 0 writes no scales: files are byte-identical to the
 * ones written before the option existed.
 *
 * @module
 */

import { hashSeed, Rng } from "./_synth_fill.ts";

/**
 * The skew whose sampled-decode hit-rate curve is nearest the one reported for real
 * 128-expert, top-8 models (Qwen3-30B-A3B/235B-A22B: a per-layer LRU of 64 experts hits
 * ≈ 67%; the 81% reported for 128 experts is matched by the 256-expert analogue, 128 of 256
 * cached). Measured with `deno run -A runtime/experts/hit_curve.ts MODEL --tokens 256
 * --prompts 4` (4 × 255 sampled tokens, temperature 1, seeds 1..4, warm-up 32 tokens):
 *
 * | model (qwen3moe, 128 experts, top 8)            | S    | LRU 16 | 32  | 64  | 96  |
 * |-------------------------------------------------|------|--------|-----|-----|-----|
 * | qwen3-30b-a3b shape, 4 layers, Qwen2 vocabulary | 0    | 13%    | 29% | 57% | 81% |
 * |                                                 | 0.2  | 16%    | 36% | 66% | 88% |
 * | 2 layers × 128, byte vocabulary (512 tokens)    | 0    | 12%    | 26% | 54% | 80% |
 * |                                                 | 0.22 | 16%    | 36% | 68% | 90% |
 * | same with 256 experts (LRU 32, 64, 128, 192)    | 0.22 | 23%    | 44% | 77% | 95% |
 *
 * A random model's routing also concentrates with depth by itself, whatever the router (its
 * hidden states keep a growing common part): at S = 0 the 24-layer qwen3-30b-a3b preset hits
 * 54% at 64 in its first layer, 91% by layer 7 and 98% in its last (88.7% over all layers;
 * 90.9% at S = 0.22). The skew only adds popularity, so for such deep models the real-model
 * curve is already exceeded at S = 0; this value is real-model-like for shallow slices (up to
 * about 4 layers), and `hit_curve.ts --per-layer` shows where a model stands.
 */
export const REAL_ROUTER_SKEW = 0.22;

/** The named skews `--router-skew` takes besides a number. */
export const ROUTER_SKEW_PRESETS: Readonly<Record<string, number>> = Object.freeze({
  uniform: 0,
  real: REAL_ROUTER_SKEW,
});

/** A router skew that is neither a number >= 0 nor a preset name. */
export class RouterSkewError extends Error {
  /** The value given. */
  readonly value: unknown;
  constructor(value: unknown, options?: ErrorOptions) {
    super(
      `router skew must be a number >= 0 or one of ${
        Object.keys(ROUTER_SKEW_PRESETS).join(", ")
      }, got ${JSON.stringify(value)}`,
      options,
    );
    this.name = "RouterSkewError";
    this.value = value;
  }
}

/**
 * The numeric skew of an option or flag value: a finite number >= 0 (a numeric string is
 * parsed), "uniform" (0) or "real" ({@link REAL_ROUTER_SKEW}); undefined is 0.
 * @throws RouterSkewError for anything else
 */
export function resolveRouterSkew(v: number | string | undefined): number {
  if (v === undefined) return 0;
  if (typeof v === "string") {
    const preset = ROUTER_SKEW_PRESETS[v.trim().toLowerCase()];
    if (preset !== undefined) return preset;
    if (v.trim() === "") throw new RouterSkewError(v);
  }
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new RouterSkewError(v);
  return n;
}

/** A standard normal draw (Box-Muller on two 32-bit uniforms). */
function normal(rng: Rng): number {
  const u1 = (rng.nextU32() + 1) / 4294967297; // in (0, 1): log never sees 0
  const u2 = rng.nextU32() / 4294967296;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/**
 * The scale of each row (expert) of the router tensor `name` under skew `skew`:
 * log-normal with log-std `skew`, divided by its RMS. Null for `skew` 0 (no scaling at all,
 * so the router keeps its exact bytes).
 */
export function routerRowScales(
  seed: number,
  name: string,
  nExpert: number,
  skew: number,
): Float64Array | null {
  if (skew === 0) return null;
  const rng = new Rng(hashSeed(seed, `router-skew:${name}`, 0));
  const s = new Float64Array(nExpert);
  let sq = 0;
  for (let e = 0; e < nExpert; e++) {
    s[e] = Math.exp(skew * normal(rng));
    sq += s[e] * s[e];
  }
  const rms = Math.sqrt(sq / nExpert);
  for (let e = 0; e < nExpert; e++) s[e] /= rms;
  return s;
}
