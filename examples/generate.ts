/**
 * Library use: load a GGUF model, chat with it, stream the reply.
 *
 *   deno run -A examples/generate.ts MODEL.gguf ["your question"]
 *   bun examples/generate.ts MODEL.gguf ["your question"]
 *
 * With no MODEL, it makes the small random-weight demo model first (its text is noise).
 */
import process from "node:process";
import { existsSync } from "node:fs";
import { loadModel, writeSyntheticModel } from "../mod.ts";

let path = process.argv[2];
if (!path) {
  path = "/tmp/spool-example-demo.gguf";
  if (!existsSync(path)) {
    writeSyntheticModel(path, { arch: "qwen3moe", preset: "tiny", types: "Q4_K", seed: 1 });
  }
}
const question = process.argv[3] ?? "Why do Mixture-of-Experts models run well from an SSD?";

const model = loadModel(path, { nCtx: 2048 });
console.error(
  `${model.config.arch}: ${model.config.nLayer} layers, ${model.config.nExpert} experts`,
);
const reply = model.generate(
  [{ role: "user", content: question }],
  { maxTokens: 48, temperature: 0.7, seed: 42 },
);
while (true) {
  const r = await reply.next();
  if (r.done) {
    const s = r.value;
    console.error(
      `\n[${s.completionTokens} tokens, ${(s.completionTokens / s.decodeSeconds).toFixed(1)} ` +
        `tok/s, finish: ${s.finishReason}]`,
    );
    break;
  }
  process.stdout.write(r.value.text);
}
model.close();
