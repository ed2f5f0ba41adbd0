/**
 * The expert-cache hit-rate curve of a model's sampled decode: record which experts each
 * layer's router picks while the engine decodes sampled tokens (temperature 1, no
 * truncation, fixed seeds, several prompts: never a replayed greedy chain, whose repetitions
 * flatter a cache), then replay each layer's choices through an LRU cache of C experts per
 * layer. This is how synthetic models' router skew (`spool synth --router-skew`) is set
 * against the curves reported for real models.
 *
 * The trace comes from the engine itself ({@link loadModel}, its sessions and sampler):
 * the model is loaded with a hot-expert profile, whose {@link ProfileRecorder.onObserve}
 * tap sees every routing result; only the decode steps (one token each, after each
 * prompt's prefill) are kept.
 *
 * CLI: `deno run -A runtime/experts/hit_curve.ts MODEL.gguf [--tokens N] [--prompts N]
 * [--seed N] [--warmup N] [--slots 16,32,64,96,128] [--threads N] [--json] [--per-layer]`
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { loadModel } from "../api.ts";

/** Prompts the decode traces start from (different topics, lengths and shapes). */
export const TRACE_PROMPTS: readonly string[] = [
  "The history of the printing press begins in",
  "def fibonacci(n):\n    if n < 2:\n        return n\n",
  "Dear team, thank you for the quick turnaround on the quarterly report. A few notes:",
  "Q: What is the capital of Australia, and why was it chosen?\nA:",
  "| city | population | country |\n|---|---|---|\n| Tokyo |",
  "Once upon a time, in a village at the edge of a great forest, there lived",
  "SELECT name, COUNT(*) FROM orders JOIN customers ON",
  "Les premiers jours du printemps apportent",
];

/** Options of {@link recordDecodeTrace}. */
export interface DecodeTraceOptions {
  /** Sampled tokens decoded after each prompt (default 256). */
  tokens?: number;
  /** How many of {@link TRACE_PROMPTS} to decode from, in order (default 4, at most 8). */
  prompts?: number;
  /** Sampler seed of the first prompt; prompt i uses seed + i (default 1). */
  seed?: number;
  /** Kernel threads (default: the engine's). */
  threads?: number;
}

/** Routing choices of a model's decode, per layer, in order. */
export interface DecodeTrace {
  /** MoE layers (the trunk). */
  nLayer: number;
  /** Experts per layer. */
  nExpert: number;
  /** Experts per token. */
  k: number;
  /** Decode tokens traced (over all prompts). */
  tokens: number;
  /** perLayer[l]: the experts layer l picked, k per token, token after token. */
  perLayer: Int32Array[];
}

/**
 * Decode `tokens` sampled tokens (temperature 1, top-k/top-p/min-p off, seeded) after each
 * of the first `prompts` prompts, each in a fresh session of the engine, and record every
 * layer's routing choices of the decode steps (the prompts' prefill is not kept).
 */
export async function recordDecodeTrace(
  path: string,
  opts: DecodeTraceOptions = {},
): Promise<DecodeTrace> {
  const tokens = opts.tokens ?? 256, nPrompts = opts.prompts ?? 4, seed = opts.seed ?? 1;
  if (!(Number.isInteger(tokens) && tokens > 0)) {
    throw new RangeError(`tokens must be a positive integer, got ${tokens}`);
  }
  if (!(Number.isInteger(nPrompts) && nPrompts > 0 && nPrompts <= TRACE_PROMPTS.length)) {
    throw new RangeError(`prompts must be 1..${TRACE_PROMPTS.length}, got ${nPrompts}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "spool-trace-"));
  const m = loadModel(path, {
    threads: opts.threads,
    expertProfile: join(dir, "profile.json"),
    nCtx: tokens + 128,
  });
  try {
    const { nLayer, nExpert, nExpertUsed: k } = m.config;
    const rec = m.model.profileRecorder;
    if (!rec || nExpert <= 0) throw new Error(`${path} has no routed experts to trace`);
    const chunks: number[][] = Array.from({ length: nLayer }, () => []);
    let armed = false;
    rec.onObserve = (layer, ids, n, kk) => {
      if (!armed || n !== kk) return; // prefill, or a batched step: not a decode token
      const c = chunks[layer];
      for (let i = 0; i < n; i++) c.push(ids[i]);
    };
    let traced = 0;
    for (let p = 0; p < nPrompts; p++) {
      const session = m.createSession();
      try {
        armed = false;
        const it = m.generate(TRACE_PROMPTS[p], {
          session,
          maxTokens: tokens,
          ignoreEos: true,
          temperature: 1,
          topK: 0,
          topP: 1,
          minP: 0,
          seed: seed + p,
        });
        // the first token is sampled from the prefill's logits; each later one is a decode step
        for await (const _ of it) armed = true;
        traced += tokens - 1;
      } finally {
        session.close();
      }
    }
    return { nLayer, nExpert, k, tokens: traced, perLayer: chunks.map((c) => Int32Array.from(c)) };
  } finally {
    m.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Hit rate of a per-layer LRU cache of `slots` experts (each layer its own cache) on a
 * trace: hits over look-ups, counting only after the first `warmup` tokens (cold misses of
 * a cache that is still filling are not the steady state a long run sees).
 */
export function perLayerLruHitRate(trace: DecodeTrace, slots: number, warmup = 0): number {
  let hits = 0, looks = 0;
  for (const h of layerLruHits(trace, slots, warmup)) {
    hits += h.hits;
    looks += h.looks;
  }
  return looks > 0 ? hits / looks : 0;
}

/** Hits and look-ups (after `warmup` tokens) of each layer's LRU cache of `slots` experts. */
export function layerLruHits(
  trace: DecodeTrace,
  slots: number,
  warmup = 0,
): { hits: number; looks: number }[] {
  const skip = warmup * trace.k;
  return trace.perLayer.map((ids) => {
    let hits = 0, looks = 0;
    const lru = new Map<number, true>();
    for (let i = 0; i < ids.length; i++) {
      const e = ids[i];
      const hit = lru.has(e);
      if (hit) lru.delete(e);
      else if (lru.size >= slots) lru.delete(lru.keys().next().value!);
      lru.set(e, true);
      if (i >= skip) {
        looks++;
        if (hit) hits++;
      }
    }
    return { hits, looks };
  });
}

/**
 * Share of the routings that go to each layer's `fraction` most-picked experts (averaged
 * over layers): 0.1 for a uniform router with fraction 0.1, more for a skewed one.
 */
export function topShare(trace: DecodeTrace, fraction: number): number {
  const top = Math.max(1, Math.round(trace.nExpert * fraction));
  let sum = 0;
  for (const ids of trace.perLayer) {
    const counts = new Float64Array(trace.nExpert);
    for (const e of ids) counts[e]++;
    const sorted = Array.from(counts).sort((a, b) => b - a);
    let s = 0;
    for (let i = 0; i < top; i++) s += sorted[i];
    sum += ids.length > 0 ? s / ids.length : 0;
  }
  return sum / trace.nLayer;
}

/** One point of a hit-rate curve. */
export interface CurvePoint {
  /** Experts cached per layer. */
  slots: number;
  /** Per-layer LRU hit rate. */
  hitRate: number;
}

/** {@link perLayerLruHitRate} at each cache size in `slots`. */
export function hitCurve(trace: DecodeTrace, slots: readonly number[], warmup = 0): CurvePoint[] {
  return slots.map((s) => ({ slots: s, hitRate: perLayerLruHitRate(trace, s, warmup) }));
}

function main(args: string[]): Promise<number> | number {
  const str = { type: "string" } as const;
  const usage = "Usage: hit_curve.ts MODEL.gguf [--tokens N] [--prompts N] [--seed N] " +
    "[--warmup N] [--slots 16,32,64,96,128] [--threads N] [--json] [--per-layer]";
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        tokens: str,
        prompts: str,
        seed: str,
        warmup: str,
        slots: str,
        threads: str,
        json: { type: "boolean" },
        "per-layer": { type: "boolean" },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n${usage}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  const int = (s: string | undefined, d: number) => (s === undefined ? d : Number(s));
  const slots = (v.slots ?? "16,32,64,96,128").split(",").map(Number);
  const nums = [int(v.tokens, 256), int(v.prompts, 4), int(v.seed, 1), int(v.warmup, 32)];
  if (
    positionals.length !== 1 || ![...nums, ...slots].every((x) => Number.isInteger(x) && x >= 0)
  ) {
    console.error(usage);
    return 2;
  }
  const [tokens, prompts, seed, warmup] = nums;
  const threads = v.threads !== undefined ? Number(v.threads) : undefined;
  return recordDecodeTrace(positionals[0], { tokens, prompts, seed, threads }).then((t) => {
    const curve = hitCurve(t, slots, warmup);
    const top10 = topShare(t, 0.1);
    if (v.json) {
      console.log(JSON.stringify({ model: positionals[0], tokens: t.tokens, top10, curve }));
      return 0;
    }
    console.log(
      `${positionals[0]}: ${t.nLayer} layers × ${t.nExpert} experts (top ${t.k}), ` +
        `${t.tokens} sampled decode tokens from ${prompts} prompts (seed ${seed}), ` +
        `warm-up ${warmup} tokens; top 10% of experts take ${(100 * top10).toFixed(1)}%`,
    );
    for (const p of curve) {
      const layers = v["per-layer"]
        ? ` (by layer: ${
          layerLruHits(t, p.slots, warmup).map((h) => (100 * h.hits / h.looks).toFixed(0))
            .join(" ")
        })`
        : "";
      console.log(`  LRU ${p.slots} experts/layer: ${(100 * p.hitRate).toFixed(1)}% hits${layers}`);
    }
    return 0;
  });
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
