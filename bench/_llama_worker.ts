/**
 * llama.cpp side of bench/generate.ts, in its own process: loads a GGUF with node-llama-cpp
 * (prebuilt llama.cpp, CPU, 2 threads) and, for each line "run" on stdin, evaluates a prompt
 * of `prefill` tokens, then generates `decode` tokens greedily, printing one JSON line of
 * timings. Run by bench/generate.ts; not a public entry point.
 */
import { getLlama, LlamaLogLevel, type Token } from "node-llama-cpp";
import process from "node:process";
import { createInterface } from "node:readline";

const [path, prefillArg, decodeArg, threadsArg, promptArg] = process.argv.slice(2);
const prefill = Number(prefillArg), decode = Number(decodeArg), threads = Number(threadsArg);
const prompt = JSON.parse(promptArg) as number[];
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const t0 = performance.now();
const model = await llama.loadModel({ modelPath: path });
const ctx = await model.createContext({
  contextSize: prefill + decode + 16,
  batchSize: Math.max(prefill, 1),
  threads,
  flashAttention: false,
});
console.log(JSON.stringify({ ready: true, loadSeconds: (performance.now() - t0) / 1000 }));
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (line.trim() !== "run") break;
  const seq = ctx.getSequence();
  const a = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, prefill) as Token[]);
  const b = performance.now();
  let n = 0;
  // one decode step per call, greedy next token from llama.cpp's sampler; the first step
  // feeds the last prompt token again, as spool's bench feeds its first sampled token
  let last = prompt[prefill - 1] as Token;
  for (let i = 0; i < decode; i++) {
    const out = await seq.controlledEvaluate([[last, { generateNext: { token: true } }]]);
    last = (out[0]?.next?.token ?? last) as Token;
    n++;
  }
  const c = performance.now();
  seq.dispose();
  console.log(JSON.stringify({
    prefillTokS: prefill / ((b - a) / 1000),
    decodeTokS: n / ((c - b) / 1000),
  }));
}
await ctx.dispose();
await model.dispose();
process.exit(0);
