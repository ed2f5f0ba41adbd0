/**
 * One side of bench/batch.ts, in its own process (inside a memory cgroup, or not for the
 * compute bound). Prints one JSON line. Not a public entry point.
 *
 *   spool MODEL B PROMPT_LEN DECODE THREADS [mapped|cache] [PREFETCH (default off)]
 *   llama MODEL B PROMPT_LEN DECODE THREADS
 *
 * spool: B sessions; their prompts (different for each sequence) go through
 * Session.evalMany together, then DECODE greedy steps of all B sequences at once (each step
 * reads every routed expert once for all of them). "mapped" loads with the expert cache
 * off and warms the page cache first: the compute bound of a B-row step.
 * llama: node-llama-cpp with B sequences in one context, decoding them concurrently (its
 * batching puts them in one llama_decode per step).
 */
import process from "node:process";
import { benchPrompt } from "../runtime/engine/bench.ts";

const [side, path, ...rest] = process.argv.slice(2);
const [B, promptLen, decode, threads] = rest.slice(0, 4).map(Number);

function argmax(l: Float32Array): number {
  let b = 0;
  for (let j = 1; j < l.length; j++) if (l[j] > l[b]) b = j;
  return b;
}

if (side === "spool") {
  const mapped = rest[4] === "mapped";
  // prefetch off: every byte read is one a step needed (the SSD bound counts those)
  const prefetch = (rest[5] ?? "off") as "auto" | "on" | "off";
  const { Model } = await import("../runtime/engine/model.ts");
  const { Session } = await import("../runtime/engine/session.ts");
  const model = Model.load(path, { threads, prefetch, ...(mapped ? { expertCache: 0 } : {}) });
  const sessions = Array.from(
    { length: B },
    () => new Session(model, { nCtx: promptLen + decode + 8, batch: Math.max(64, B) }),
  );
  const prompts = sessions.map((_, i) => benchPrompt(promptLen, model.config.nVocab, 500 + i));
  if (mapped) {
    // warm: every expert's pages resident, so the step is compute- and RAM-bound
    const warm = sessions.slice(0, Math.min(B, 8)).map((s, i) => ({
      session: s,
      tokens: prompts[i],
    }));
    Session.evalMany(warm);
    for (const s of sessions) s.truncate(0);
  }
  const cache = model.expertCache;
  const t0 = performance.now();
  let logits = Session.evalMany(sessions.map((s, i) => ({ session: s, tokens: prompts[i] })));
  const t1 = performance.now();
  const c0 = cache?.stats();
  for (let d = 0; d < decode; d++) {
    logits = Session.evalMany(
      sessions.map((s, i) => ({ session: s, tokens: [argmax(logits[i])] })),
    );
  }
  const t2 = performance.now();
  const c1 = cache?.stats();
  const steps = decode;
  const out: Record<string, number | string | boolean> = {
    prefillTokS: (B * promptLen) / ((t1 - t0) / 1000),
    decodeTokS: (B * decode) / ((t2 - t1) / 1000),
    stepSeconds: (t2 - t1) / 1000 / steps,
    mode: cache ? "cache" : "mapped",
  };
  if (c0 && c1) {
    const hits = c1.hits - c0.hits, misses = c1.misses - c0.misses;
    out.hitRate = hits / Math.max(1, hits + misses);
    out.lookupsPerStep = (hits + misses) / steps;
    out.bytesPerStep = (c1.bytesRead - c0.bytesRead) / steps;
    out.readGBps = (c1.bytesRead - c0.bytesRead) / Math.max(1e-9, c1.readSeconds - c0.readSeconds) /
      1e9;
    out.stallPerStep = (c1.stallSeconds - c0.stallSeconds) / steps;
    out.slots = cache!.slots;
    out.predicted = (c1.predicted - c0.predicted) / steps;
    out.precision = c1.predicted > c0.predicted
      ? (c1.predictedCorrect - c0.predictedCorrect) / (c1.predicted - c0.predicted)
      : 0;
  }
  console.log(JSON.stringify(out));
  for (const s of sessions) s.close();
  model.close();
} else if (side === "llama") {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: path });
  const ctx = await model.createContext({
    contextSize: B * (promptLen + decode + 16),
    sequences: B,
    batchSize: Math.max(B, promptLen),
    threads,
    flashAttention: false,
  });
  const seqs = Array.from({ length: B }, () => ctx.getSequence());
  // deno-lint-ignore no-explicit-any
  const prompts = seqs.map((_, i) => benchPrompt(promptLen, 30000, 500 + i) as any[]);
  const t0 = performance.now();
  await Promise.all(seqs.map((s, i) => s.evaluateWithoutGeneratingNewTokens(prompts[i])));
  const t1 = performance.now();
  // deno-lint-ignore no-explicit-any
  const last = prompts.map((p) => p[p.length - 1] as any);
  for (let d = 0; d < decode; d++) {
    const outs = await Promise.all(
      seqs.map((s, i) => s.controlledEvaluate([[last[i], { generateNext: { token: true } }]])),
    );
    outs.forEach((o, i) => (last[i] = o[0]?.next?.token ?? last[i]));
  }
  const t2 = performance.now();
  console.log(JSON.stringify({
    prefillTokS: (B * promptLen) / ((t1 - t0) / 1000),
    decodeTokS: (B * decode) / ((t2 - t1) / 1000),
  }));
  process.exit(0);
} else {
  console.error("usage: _batch_worker.ts spool|llama MODEL B PROMPT_LEN DECODE THREADS");
  process.exit(2);
}
