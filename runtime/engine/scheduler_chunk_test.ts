/**
 * Prompt steps of the scheduler: a prompt alone takes `chunkAlone` tokens a step, a prompt
 * beside a decoding sequence `chunk` (so the other's tokens keep coming), and the answers do
 * not depend on the step sizes.
 */
import { deepStrictEqual, equal } from "node:assert/strict";
import { loadModel, type SpoolModel } from "../api.ts";
import { schedulerFixture } from "./_scheduler_fixture.ts";
import { Scheduler, type SeqEvent } from "./scheduler.ts";

/**
 * Runs `reqs` through the scheduler's own loop; a request with `after` is submitted when that
 * request has its second token. Returns tokens per id and the steps each prompt took (from
 * admission to the step that sampled its first token).
 */
async function run(
  m: SpoolModel,
  reqs: { id: string; prompt: number[]; max: number; after?: string }[],
  opts: { chunk: number; chunkAlone?: number },
) {
  const tokens = new Map<string, number[]>(reqs.map((r) => [r.id, []]));
  const promptSteps = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const done = new Set<string>();
  let finished!: () => void, failed!: (e: Error) => void;
  const end = new Promise<void>((res, rej) => (finished = res, failed = rej));
  const submit = (r: (typeof reqs)[number]) =>
    s.submit({
      id: r.id,
      prompt: r.prompt,
      params: { maxTokens: r.max, ignoreEos: true, temperature: 0 },
    });
  const s: Scheduler = new Scheduler(
    { createSession: (o) => m.createSession(o), tokenizer: m.tokenizer },
    {
      parallel: 2,
      nCtx: 160,
      chunk: opts.chunk,
      chunkAlone: opts.chunkAlone,
      onEvent: (e: SeqEvent) => {
        if (e.type === "started") startedAt.set(e.id, s.stats().steps);
        if (e.type === "token" && e.token >= 0) {
          const t = tokens.get(e.id)!;
          t.push(e.token);
          if (t.length === 1) promptSteps.set(e.id, s.stats().steps - startedAt.get(e.id)!);
          if (t.length === 2) { for (const r of reqs) if (r.after === e.id) submit(r); }
        }
        if (e.type === "done" && (done.add(e.id), done.size === reqs.length)) finished();
        if (e.type === "error") failed(new Error(`${e.id}: ${e.message}`));
      },
    },
  );
  try {
    for (const r of reqs) if (!r.after) submit(r);
    await end;
    return { tokens, promptSteps };
  } finally {
    s.close();
  }
}

Deno.test({
  name: "scheduler: a prompt alone takes chunkAlone tokens a step, beside a decoder chunk",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const m = loadModel(
      schedulerFixture(),
      { threads: 2, nCtx: 160 },
    );
    try {
      const nVocab = m.config.nVocab;
      const long = Array.from({ length: 100 }, (_, i) => 4 + ((i * 37) % (nVocab - 8)));
      const short = [5, 9, 13, 17];
      // alone: 100 tokens in steps of 64 = 2 steps (the last one samples the first token)
      const big = await run(m, [{ id: "a", prompt: long, max: 4 }], { chunk: 16, chunkAlone: 64 });
      equal(big.promptSteps.get("a"), 2);
      const small = await run(m, [{ id: "a", prompt: long, max: 4 }], { chunk: 16 });
      equal(small.promptSteps.get("a"), 7);
      deepStrictEqual(big.tokens.get("a"), small.tokens.get("a"));
      // beside a sequence that is decoding: steps of 16 (ceil(100 / 16) = 7)
      const mixed = await run(m, [
        { id: "d", prompt: short, max: 40 },
        { id: "a", prompt: long, max: 4, after: "d" },
      ], { chunk: 16, chunkAlone: 64 });
      equal(mixed.promptSteps.get("a"), 7);
      deepStrictEqual(mixed.tokens.get("a"), small.tokens.get("a"));
      const dAlone = await run(m, [{ id: "d", prompt: short, max: 40 }], { chunk: 16 });
      deepStrictEqual(mixed.tokens.get("d"), dAlone.tokens.get("d"));
    } finally {
      m.close();
    }
  },
});
