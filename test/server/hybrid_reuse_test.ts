/**
 * Prefix reuse for a hybrid model (Qwen3.5-style Gated DeltaNet + attention) through the
 * real `openai` client: the second turn of a conversation resumes from the recurrent-state
 * checkpoint the first left (cached_tokens reports it) and answers exactly what a fresh
 * server answers with no cache, and what the same server answers with `cache_prompt: false`.
 */
import { equal, ok } from "node:assert/strict";
import { existsSync, mkdirSync, renameSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { writeSyntheticModel } from "../../runtime/models/synth.ts";
import { createServer } from "../../runtime/server/serve.ts";
import { llamaVocab } from "../_llama_source.ts";
import { CHATML } from "./_fixture.ts";

const DIR = fileURLToPath(new URL("../fixtures/server/", import.meta.url));

function model(): string {
  const path = `${DIR}qwen35moe-tiny-q8-chatml.gguf`;
  if (!existsSync(path)) {
    mkdirSync(DIR, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeSyntheticModel(tmp, {
      arch: "qwen35moe",
      preset: "tiny",
      types: "Q8_0",
      seed: 3,
      vocab: llamaVocab("qwen35"),
      chatTemplate: CHATML,
      name: "spool-hybrid",
    });
    renameSync(tmp, path);
  }
  return path;
}

async function chat(
  base: string,
  messages: OpenAI.ChatCompletionMessageParam[],
  extra: Record<string, unknown> = {},
) {
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "none" });
  return await client.chat.completions.create({
    model: "spool-hybrid",
    messages,
    max_tokens: 8,
    temperature: 0,
    ...extra,
  });
}

Deno.test({
  name: "hybrid model: a second turn resumes from a checkpoint, cached_tokens says so",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const opts = { path: model(), port: 0, nCtx: 256, threads: 2, alias: "spool-hybrid" };
    const first: OpenAI.ChatCompletionMessageParam[] = [
      { role: "user", content: "Tell me about the sea and the ships on it, please." },
    ];
    const server = await createServer({ ...opts, parallel: 1 });
    let second: OpenAI.ChatCompletionMessageParam[];
    let reused: OpenAI.ChatCompletion;
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const a = await chat(base, first);
      equal(a.usage?.prompt_tokens_details?.cached_tokens ?? 0, 0);
      second = [
        ...first,
        { role: "assistant", content: a.choices[0].message.content ?? "" },
        { role: "user", content: "And the harbours?" },
      ];
      reused = await chat(base, second);
      const cached = reused.usage?.prompt_tokens_details?.cached_tokens ?? 0;
      ok(
        cached >= a.usage!.prompt_tokens,
        `cached ${cached} of ${reused.usage?.prompt_tokens}; the first prompt had ${
          a.usage!.prompt_tokens
        }`,
      );
      ok(cached < reused.usage!.prompt_tokens);
      // cache_prompt: false (llama.cpp's field) evaluates the whole prompt again
      const before = (await server.engine.stats()).scheduler.promptTokensEvaluated;
      const full = await chat(base, second, { cache_prompt: false });
      const after = (await server.engine.stats()).scheduler.promptTokensEvaluated;
      equal(full.usage?.prompt_tokens_details?.cached_tokens ?? 0, 0);
      equal(after - before, full.usage!.prompt_tokens);
      equal(full.choices[0].message.content, reused.choices[0].message.content);
    } finally {
      await server.close();
    }
    const fresh = await createServer({ ...opts, parallel: 1 });
    try {
      const b = await chat(`http://127.0.0.1:${fresh.port}`, second);
      equal(b.usage?.prompt_tokens_details?.cached_tokens ?? 0, 0);
      equal(b.choices[0].message.content, reused.choices[0].message.content);
    } finally {
      await fresh.close();
    }
  },
});

Deno.test({
  name: "hybrid model: n=2 forks the recurrent state; greedy choices equal a single answer",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await createServer({
      path: model(),
      port: 0,
      nCtx: 256,
      threads: 2,
      alias: "spool-hybrid",
      parallel: 2,
    });
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
      const messages: OpenAI.ChatCompletionMessageParam[] = [
        { role: "user", content: "Tell me about the lighthouses on the northern coast." },
      ];
      const before = (await server.engine.stats()).scheduler.promptTokensEvaluated;
      const two = await client.chat.completions.create({
        model: "spool-hybrid",
        messages,
        n: 2,
        max_tokens: 8,
        temperature: 0,
      });
      const after = (await server.engine.stats()).scheduler.promptTokensEvaluated;
      equal(after - before, two.usage!.prompt_tokens);
      const one = await chat(server.url, messages);
      equal(two.choices[0].message.content, one.choices[0].message.content);
      equal(two.choices[1].message.content, one.choices[0].message.content);
    } finally {
      await server.close();
    }
  },
});
