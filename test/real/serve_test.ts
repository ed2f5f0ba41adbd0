/**
 * A chat with real weights through `spool serve`: SmolLM2-135M-Instruct (moefy'd, exact, 8
 * experts) with its own chat template (ChatML, from the GGUF), asked through the official
 * `openai` and `@anthropic-ai/sdk` clients. The answer must be real English that names the
 * right thing and ends because the model emitted its end-of-turn token (`<|im_end|>`, id 2):
 * finish_reason "stop" / stop_reason "end_turn" well before max_tokens, with no template
 * tokens leaking into the text. Skipped (with the reason) when PyPI cannot be reached.
 */
import { equal, match, ok } from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { createServer } from "../../runtime/server/serve.ts";
import { skipNote, smolLM2 } from "./_smollm2.ts";

const real = smolLM2();
skipNote("test/real/serve_test.ts", real);

const QUESTION = "What is the capital of France? Answer in one sentence.";
const MAX = 64;

/** English words of a reply (letters only), lower-cased. */
function words(text: string): string[] {
  return text.toLowerCase().match(/[a-z]+/g) ?? [];
}

function checkReply(api: string, text: string): void {
  ok(!/<\|im_(start|end)\|>/.test(text), `${api}: template tokens leaked: ${JSON.stringify(text)}`);
  match(text, /Paris/, `${api}: ${JSON.stringify(text)}`);
  const w = words(text);
  ok(w.length >= 4, `${api}: a sentence, got ${JSON.stringify(text)}`);
  const common = new Set(["the", "of", "is", "france", "capital", "paris", "a", "and", "city"]);
  ok(w.filter((x) => common.has(x)).length >= 3, `${api}: English? ${JSON.stringify(text)}`);
}

Deno.test({
  name: "real weights: spool serve chats in English and stops at <|im_end|> (openai, anthropic)",
  ignore: !real.ok,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    if (!real.ok) return;
    const server = await createServer({
      path: real.moe(8),
      port: 0,
      nCtx: 512,
      threads: 2,
      alias: "smollm2",
    });
    try {
      await t.step("openai chat.completions", async () => {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
        const r = await client.chat.completions.create({
          model: "smollm2",
          messages: [{ role: "user", content: QUESTION }],
          temperature: 0,
          max_tokens: MAX,
        });
        const text = r.choices[0].message.content ?? "";
        console.log(`openai: ${JSON.stringify(text)} (${r.usage?.completion_tokens} tokens)`);
        equal(r.choices[0].finish_reason, "stop");
        ok(r.usage!.completion_tokens < MAX, "ended by the model, not by max_tokens");
        checkReply("openai", text);
      });
      await t.step("openai streaming", async () => {
        const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
        const stream = await client.chat.completions.create({
          model: "smollm2",
          messages: [{ role: "user", content: QUESTION }],
          temperature: 0,
          max_tokens: MAX,
          stream: true,
        });
        let text = "", finish: string | null = null;
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta?.content ?? "";
          finish = chunk.choices[0]?.finish_reason ?? finish;
        }
        equal(finish, "stop");
        checkReply("openai stream", text);
      });
      await t.step("anthropic messages", async () => {
        const client = new Anthropic({ baseURL: server.url, apiKey: "none", maxRetries: 0 });
        const m = await client.messages.create({
          model: "smollm2",
          max_tokens: MAX,
          ...({ temperature: 0 } as unknown as Record<string, never>),
          system: "You are a helpful assistant.",
          messages: [{ role: "user", content: QUESTION }],
        });
        const text = m.content.map((b) => b.type === "text" ? b.text : "").join("");
        console.log(`anthropic: ${JSON.stringify(text)} (${m.usage.output_tokens} tokens)`);
        equal(m.stop_reason, "end_turn");
        ok(m.usage.output_tokens < MAX);
        checkReply("anthropic", text);
      });
    } finally {
      await server.close();
    }
  },
});
