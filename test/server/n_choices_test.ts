/**
 * OpenAI's `n` through the official SDK: n samples of one prompt share its prefill (a fork
 * group: the prompt is evaluated once and its KV copied into the other slots), each choice
 * with its own index and sampler; usage counts the prompt once; streaming carries
 * per-choice deltas; greedy choices are identical to a single greedy answer (the copied KV
 * is the leader's).
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import OpenAI from "openai";
import { startServer } from "./_fixture.ts";

Deno.test({
  name: "n choices: one prefill shared by the samples, through the openai SDK",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = await startServer({ parallel: 3 });
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0 });
    const evaluated = async () => (await server.engine.stats()).scheduler.promptTokensEvaluated;
    try {
      const messages: OpenAI.ChatCompletionMessageParam[] = [
        { role: "system", content: "You write short poems about the sea and its colours." },
        { role: "user", content: "Write one about a lighthouse at night, please." },
      ];
      await t.step("n=3 sampled with a seed: 3 choices, the prompt evaluated once", async () => {
        const before = await evaluated();
        const r = await client.chat.completions.create({
          model: "spool-test",
          messages,
          n: 3,
          temperature: 1,
          seed: 7,
          max_tokens: 8,
        });
        const after = await evaluated();
        deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
        const P = r.usage!.prompt_tokens;
        ok(P > 20, `prompt of ${P} tokens`);
        equal(after - before, P, `prompt tokens evaluated for 3 samples of a ${P}-token prompt`);
        equal(r.usage!.completion_tokens, 24);
        const texts = new Set(r.choices.map((c) => c.message.content));
        ok(texts.size >= 2, `the 3 samples are all the same: ${[...texts]}`);
        // the same seed gives the same 3 samples
        const again = await client.chat.completions.create({
          model: "spool-test",
          messages,
          n: 3,
          temperature: 1,
          seed: 7,
          max_tokens: 8,
        });
        deepEqual(
          again.choices.map((c) => c.message.content),
          r.choices.map((c) => c.message.content),
        );
      });

      const other: OpenAI.ChatCompletionMessageParam[] = [
        { role: "user", content: "Name three colours of the evening sky over the harbour." },
      ];
      let single = "";
      await t.step("greedy n=2: identical choices, equal to one greedy answer", async () => {
        const before = await evaluated();
        const r = await client.chat.completions.create({
          model: "spool-test",
          messages: other,
          n: 2,
          temperature: 0,
          max_tokens: 10,
        });
        // the prompt less what the leader's slot had cached (the template's first tokens)
        const cached = r.usage!.prompt_tokens_details?.cached_tokens ?? 0;
        equal(await evaluated() - before, r.usage!.prompt_tokens - cached);
        equal(r.choices.length, 2);
        equal(r.choices[0].message.content, r.choices[1].message.content);
        // one greedy answer of a fresh prefill (a new slot state: other prompt first)
        const one = await client.chat.completions.create({
          model: "spool-test",
          messages: other,
          temperature: 0,
          max_tokens: 10,
        });
        single = one.choices[0].message.content ?? "";
        equal(r.choices[0].message.content, single);
      });

      await t.step("streaming n=2: per-choice deltas, usage with the prompt once", async () => {
        const stream = await client.chat.completions.create({
          model: "spool-test",
          messages: other,
          n: 2,
          temperature: 0,
          max_tokens: 10,
          stream: true,
          stream_options: { include_usage: true },
        });
        const text = ["", ""];
        const finish: (string | null)[] = [null, null];
        let usage: OpenAI.CompletionUsage | undefined;
        for await (const chunk of stream) {
          for (const c of chunk.choices) {
            text[c.index] += c.delta.content ?? "";
            if (c.finish_reason) finish[c.index] = c.finish_reason;
          }
          if (chunk.usage) usage = chunk.usage;
        }
        deepEqual(text, [single, single]);
        deepEqual(finish, ["length", "length"]);
        equal(usage!.completion_tokens, 20);
        ok(usage!.prompt_tokens > 5);
      });

      await t.step("n above the slots: every choice still answered (no fork)", async () => {
        const r = await client.chat.completions.create({
          model: "spool-test",
          messages: other,
          n: 4,
          temperature: 0,
          max_tokens: 10,
        });
        deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
        for (const c of r.choices) equal(c.message.content, single);
      });

      await t.step(
        "legacy completions: n samples of each prompt, through the run loop",
        async () => {
          const prompts = ["The lighthouse keeper climbed", "Across the bay the ferry"];
          const before = await evaluated();
          const r = await client.completions.create({
            model: "spool-test",
            prompt: prompts,
            n: 2,
            temperature: 0,
            max_tokens: 6,
            logprobs: 2,
            echo: true,
          });
          const delta = await evaluated() - before;
          deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
          // choice i * n + j is sample j of prompt i; greedy samples of one prompt agree
          equal(r.choices[0].text, r.choices[1].text);
          equal(r.choices[2].text, r.choices[3].text);
          ok(r.choices[0].text.startsWith(prompts[0]));
          ok(r.choices[2].text.startsWith(prompts[1]));
          equal(r.choices[0].logprobs!.tokens!.length, 6);
          equal(r.usage!.completion_tokens, 24);
          // each prompt evaluated once (less the cached part) for its two samples
          const cached = r.usage!.prompt_tokens_details?.cached_tokens ?? 0;
          equal(delta, r.usage!.prompt_tokens - cached);

          const stream = await client.completions.create({
            model: "spool-test",
            prompt: prompts,
            n: 2,
            temperature: 0,
            max_tokens: 6,
            stream: true,
            stream_options: { include_usage: true },
          });
          const text = ["", "", "", ""];
          let usage: OpenAI.CompletionUsage | undefined;
          for await (const ch of stream) {
            for (const c of ch.choices) text[c.index] += c.text;
            if (ch.usage) usage = ch.usage;
          }
          deepEqual(text, r.choices.map((c, i) => c.text.slice(prompts[i >> 1].length)));
          equal(usage!.completion_tokens, 24);
        },
      );
    } finally {
      await server.close();
    }
  },
});
