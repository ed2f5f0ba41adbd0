/**
 * Agent loop on a hybrid model (issue 12): a conversation of `--turns` turns through
 * `spool serve`, each adding about `--grow` prompt tokens, so the prompt reaches about
 * turns × grow tokens. Time to first token of each turn (a 1-token answer, so the time is the
 * prefill), with prefix reuse through recurrent-state checkpoints on (the default) and off
 * (`checkpoints: 0`: every turn reads the whole conversation), and the tokens reused.
 *
 *   deno run -A bench/agent_loop.ts [--model FILE | --preset qwen3.5-35b-a3b] [--turns 6]
 *                                   [--grow 1000] [--threads 2]
 */
import { parseArgs } from "node:util";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createServer } from "../runtime/server/serve.ts";

const { values: a } = parseArgs({
  options: {
    model: { type: "string" },
    preset: { type: "string", default: "qwen3.5-35b-a3b" },
    turns: { type: "string", default: "6" },
    grow: { type: "string", default: "1000" },
    threads: { type: "string", default: "2" },
  },
});
const OUT = fileURLToPath(new URL("./out/", import.meta.url));
const path = a.model ?? `${OUT}${a.preset}.gguf`;
if (!existsSync(path)) {
  mkdirSync(OUT, { recursive: true });
  console.log(`making ${path} (random weights, qwen35moe ${a.preset})...`);
  const { writeSyntheticModel } = await import("../runtime/models/synth.ts");
  writeSyntheticModel(path, {
    arch: "qwen35moe",
    preset: a.preset as never,
    fill: "fast",
    seed: 1,
  });
}
const turns = Number(a.turns), grow = Number(a.grow);
const WORDS = "ship sea harbour wind sail rope deck mast wave tide storm anchor light".split(" ");

/** A user message of about `n` tokens of varied words (deterministic per turn). */
function message(turn: number, n: number): string {
  let x = 7 + turn * 1000003;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(WORDS[x % WORDS.length] + (x % 7 === 0 ? "." : ""));
  }
  return out.join(" ");
}

async function loop(checkpoints: number | undefined) {
  const server = await createServer({
    path,
    port: 0,
    nCtx: Math.ceil(turns * grow * 1.5) + 512, // a word is 1 to 2 tokens
    threads: Number(a.threads),
    parallel: 1,
    alias: "m",
    ...(checkpoints === undefined ? {} : { checkpoints }),
  });
  const rows: { prompt: number; cached: number; seconds: number }[] = [];
  try {
    const messages: { role: string; content: string }[] = [];
    for (let t = 0; t < turns; t++) {
      messages.push({ role: "user", content: message(t, grow) });
      const t0 = performance.now();
      const r = await fetch(`http://127.0.0.1:${server.port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages, max_tokens: 1, temperature: 0 }),
      });
      const body = await r.json();
      const seconds = (performance.now() - t0) / 1000;
      if (!r.ok) throw new Error(JSON.stringify(body));
      messages.push({ role: "assistant", content: body.choices[0].message.content ?? "" });
      rows.push({
        prompt: body.usage.prompt_tokens,
        cached: body.usage.prompt_tokens_details?.cached_tokens ?? 0,
        seconds,
      });
    }
  } finally {
    await server.close();
  }
  return rows;
}

console.log(`${path}: ${turns} turns of ~${grow} new tokens, threads ${a.threads}`);
const on = await loop(undefined);
const off = await loop(0);
console.log("turn | prompt tokens | reuse on: cached, TTFT s | reuse off: TTFT s | speed-up");
for (let t = 0; t < turns; t++) {
  console.log(
    `${t + 1} | ${on[t].prompt} | ${on[t].cached}, ${on[t].seconds.toFixed(2)} | ` +
      `${off[t].seconds.toFixed(2)} | ${(off[t].seconds / on[t].seconds).toFixed(1)}×`,
  );
}
