/**
 * One side of bench/offload.ts, in its own process (started inside a memory cgroup by the
 * parent). Prints one JSON line of results. Not a public entry point.
 *
 *   spool  MODEL DECODE PROMPTS PROMPT_LEN THREADS PREFETCH(on|off)
 *   llama  MODEL DECODE PROMPT_LEN THREADS
 *
 * spool: loads with the default budget ("auto": the cgroup limit is detected), then for each
 * of PROMPTS different prompts (fresh session) evaluates PROMPT_LEN tokens and decodes
 * DECODE tokens sampled at temperature 1 (seed = the prompt's index + 1; never a replayed
 * greedy chain, whose repetitions would flatter the cache). Reports time to the first token from process start (cold start),
 * decode tok/s over all prompts, and the decode-only expert-cache figures.
 * llama: node-llama-cpp (prebuilt llama.cpp, CPU) with its defaults (mmap), one prompt.
 */
import process from "node:process";
import { benchPrompt, sampleToken } from "../runtime/engine/bench.ts";
import { SplitMix64 } from "../runtime/engine/sampling.ts";

const [side, path, ...rest] = process.argv.slice(2);

if (side === "spool") {
  const [decode, prompts, promptLen, threads] = rest.slice(0, 4).map(Number);
  const prefetch = (rest[4] ?? "auto") as "auto" | "on" | "off";
  const { Model } = await import("../runtime/engine/model.ts");
  const { Session } = await import("../runtime/engine/session.ts");
  const model = Model.load(path, { threads, prefetch });
  const loadSeconds = performance.now() / 1000;
  const cache = model.expertCache;
  let ttft = 0, decodeSecs = 0, nDecoded = 0;
  const totals = { hits: 0, misses: 0, bytes: 0, readSecs: 0, stall: 0, pred: 0, act: 0, ok: 0 };
  // SPOOL_BENCH_SKIP_FIRST: the first prompt only warms (page cache), it is not measured
  const skip = process.env.SPOOL_BENCH_SKIP_FIRST ? 1 : 0;
  for (let p = 0; p < prompts; p++) {
    const prompt = benchPrompt(promptLen, model.config.nVocab, 1000 + p);
    const s = new Session(model, { nCtx: promptLen + decode + 8, batch: 64 });
    const rng = new SplitMix64(p + 1);
    let logits = s.eval(prompt, "last");
    let tok = sampleToken(logits, rng);
    if (p === 0) ttft = performance.now() / 1000;
    const c0 = cache?.stats();
    let stepMs = 0; // the forward steps, not the sampler (as runtime/engine/bench.ts)
    for (let i = 0; i < decode; i++) {
      const t0 = performance.now();
      logits = s.eval([tok], "last");
      stepMs += performance.now() - t0;
      tok = sampleToken(logits, rng);
    }
    if (p >= skip) {
      decodeSecs += stepMs / 1000;
      nDecoded += decode;
    }
    if (cache && c0) {
      const c1 = cache.stats();
      totals.hits += c1.hits - c0.hits;
      totals.misses += c1.misses - c0.misses;
      totals.bytes += c1.bytesRead - c0.bytesRead;
      totals.readSecs += c1.readSeconds - c0.readSeconds;
      totals.stall += c1.stallSeconds - c0.stallSeconds;
      totals.pred += c1.predicted - c0.predicted;
      totals.act += c1.actual - c0.actual;
      totals.ok += c1.predictedCorrect - c0.predictedCorrect;
    }
    s.close();
  }
  const snap = cache?.snapshot();
  console.log(JSON.stringify({
    loadSeconds,
    ttftSeconds: ttft,
    decodeTokS: nDecoded / decodeSecs,
    mode: cache ? "cache" : "mapped",
    cacheBytes: snap?.capacityBytes ?? 0,
    slots: snap?.slots ?? 0,
    hitRate: totals.hits / Math.max(1, totals.hits + totals.misses),
    bytesPerToken: totals.bytes / Math.max(1, nDecoded),
    readGBps: totals.readSecs > 0 ? totals.bytes / totals.readSecs / 1e9 : 0,
    stallPerToken: totals.stall / Math.max(1, nDecoded),
    precision: totals.pred > 0 ? totals.ok / totals.pred : 0,
    recall: totals.act > 0 ? totals.ok / totals.act : 0,
    prefetch,
    decided: model.expertCacheStats()?.prefetch.decided ?? "-",
  }));
  model.close();
} else if (side === "llama") {
  const [decode, promptLen, threads] = rest.map(Number);
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path });
  const ctx = await model.createContext({
    contextSize: promptLen + decode + 16,
    batchSize: promptLen,
    threads,
    flashAttention: false,
  });
  const loadSeconds = performance.now() / 1000;
  const seq = ctx.getSequence();
  // deno-lint-ignore no-explicit-any
  const prompt = benchPrompt(promptLen, 30000, 1000) as any;
  await seq.evaluateWithoutGeneratingNewTokens(prompt);
  // deno-lint-ignore no-explicit-any
  let last = prompt[promptLen - 1] as any;
  const first = await seq.controlledEvaluate([[last, { generateNext: { token: true } }]]);
  last = first[0]?.next?.token ?? last;
  const ttft = performance.now() / 1000;
  const t0 = performance.now();
  for (let i = 0; i < decode; i++) {
    const out = await seq.controlledEvaluate([[last, { generateNext: { token: true } }]]);
    last = out[0]?.next?.token ?? last;
  }
  const decodeTokS = decode / ((performance.now() - t0) / 1000);
  console.log(JSON.stringify({ loadSeconds, ttftSeconds: ttft, decodeTokS }));
  process.exit(0);
} else {
  console.error("usage: _offload_worker.ts spool|llama MODEL ...");
  process.exit(2);
}
