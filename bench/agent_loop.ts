/**
 * Agent loop on a hybrid model (issue 12): a conversation of `--turns` turns through
 * `spool serve`, each adding about `--grow` prompt tokens, so the prompt reaches about
 * first + (turns − 1) × grow tokens, where `--first` (default: grow) is the first turn's
 * size: a coding agent's first request carries its system prompt and tool list (several
 * thousand tokens), the later ones a tool result or a short instruction. Reuse can at best
 * speed a turn up by (its prompt ÷ its new tokens), which the table prints as "bound". Time to the first streamed token of each turn (8-token answers, which
 * the next turn carries back in its history), with prefix reuse through recurrent-state
 * checkpoints on (the default) and off (each request sends `cache_prompt: false`, llama.cpp's
 * field, so the whole prompt is evaluated again: `checkpoints: 0` alone is not that, since a
 * turn that extends the slot's live tokens continues from the live state without a
 * checkpoint), and the tokens reused.
 *
 *   deno run -A bench/agent_loop.ts [--model FILE | --preset qwen3.5-35b-a3b] [--turns 6]
 *                                   [--first 1000] [--grow 1000] [--threads 2]
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
    first: { type: "string" },
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
const turns = Number(a.turns), grow = Number(a.grow), first = Number(a.first ?? a.grow);
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

async function loop(cache: boolean) {
  const server = await createServer({
    path,
    port: 0,
    nCtx: Math.ceil((first + (turns - 1) * grow) * 1.5) + 512, // a word is 1 to 2 tokens
    threads: Number(a.threads),
    parallel: 1,
    alias: "m",
  });
  const rows: { prompt: number; cached: number; seconds: number }[] = [];
  try {
    const messages: { role: string; content: string }[] = [];
    for (let t = 0; t < turns; t++) {
      messages.push({ role: "user", content: message(t, t === 0 ? first : grow) });
      const t0 = performance.now();
      const r = await fetch(`http://127.0.0.1:${server.port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "m",
          messages,
          max_tokens: 8,
          temperature: 0,
          stream: true,
          stream_options: { include_usage: true },
          ...(cache ? {} : { cache_prompt: false }),
        }),
      });
      if (!r.ok) throw new Error(await r.text());
      // time to the first generated text; the answer and the usage from the stream
      let ttft = 0, answer = "", usage: Record<string, unknown> = {}, buf = "";
      const dec = new TextDecoder();
      for await (const chunk of r.body!) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (!line.startsWith("data:") || line === "data: [DONE]") continue;
          const ev = JSON.parse(line.slice(5));
          const d = ev.choices?.[0]?.delta ?? {};
          const text = (d.content ?? "") + (d.reasoning_content ?? "");
          if (text && ttft === 0) ttft = (performance.now() - t0) / 1000;
          answer += d.content ?? "";
          if (ev.usage) usage = ev.usage;
        }
      }
      const seconds = ttft || (performance.now() - t0) / 1000;
      const body = {
        usage: usage as {
          prompt_tokens: number;
          prompt_tokens_details?: { cached_tokens?: number };
        },
      };
      messages.push({ role: "assistant", content: answer });
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

console.log(
  `${path}: ${turns} turns, ~${first} words then ~${grow} new words a turn, threads ${a.threads}`,
);
const on = await loop(true);
const off = await loop(false);
const last = off[turns - 1];
console.log(
  "turn | prompt tokens | reuse on: cached, TTFT s | reuse off: TTFT s | speed-up (bound) | " +
    `full re-prefill of turn ${turns} (${last.prompt} tokens) ÷ TTFT`,
);
for (let t = 0; t < turns; t++) {
  const bound = on[t].prompt / Math.max(1, on[t].prompt - on[t].cached);
  console.log(
    `${t + 1} | ${on[t].prompt} | ${on[t].cached}, ${on[t].seconds.toFixed(2)} | ` +
      `${off[t].seconds.toFixed(2)} | ${(off[t].seconds / on[t].seconds).toFixed(1)}× ` +
      `(${bound.toFixed(1)}×) | ${(last.seconds / on[t].seconds).toFixed(1)}×`,
  );
}
