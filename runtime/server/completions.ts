/**
 * OpenAI's legacy `POST /v1/completions`: a prompt (a string, token ids, or an array of
 * either), `n` samples of each, echo, legacy logprobs, streaming. Runs go through the shared
 * run loop of run.ts ({@link ChatRun} with a plain-text parser), as chat does. Choice
 * `i * n + j` is sample j of prompt i (OpenAI's order); the n samples of one prompt form a
 * fork group when they fit the slots (the prompt evaluated once). Not streamed, every run
 * starts at once; streamed, the prompts run one after another (the samples of one together),
 * each choice's chunks carrying its index.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { EngineLogprob, EngineRequest } from "../engine/engine.ts";
import type { SeqUsage } from "../engine/scheduler.ts";
import { readBody } from "./body.ts";
import { badRequest, errorBody, toApiError } from "./errors.ts";
import { affinityOf, openaiSampling, openaiUsage, priorityOf } from "./openai.ts";
import { ChatRun, type ChatStep, plainText, startAll } from "./run.ts";
import type { CompletionRequest } from "./schemas.ts";
import { checkQueue, heartbeat, newId, type ServerContext } from "./sse.ts";

/** Most samples per prompt. */
const MAX_N = 16;

/** Legacy logprobs of one choice. */
function legacyLp() {
  return {
    tokens: [] as string[],
    token_logprobs: [] as number[],
    top_logprobs: [] as Record<string, number>[],
    text_offset: [] as number[],
  };
}

type LegacyLp = ReturnType<typeof legacyLp>;

function addLp(
  lp: LegacyLp,
  e: { chosen: EngineLogprob; top: EngineLogprob[] } | undefined,
  offset: number,
): void {
  if (!e) return;
  lp.tokens.push(e.chosen.token);
  lp.token_logprobs.push(e.chosen.logprob);
  lp.top_logprobs.push(Object.fromEntries(e.top.map((t) => [t.token, t.logprob])));
  lp.text_offset.push(offset);
}

/** The text of a step (plain-text parser: content events only). */
function stepText(step: ChatStep): string {
  let s = "";
  for (const e of step.events) if (e.type === "content") s += e.text;
  return s;
}

/** Usage of all choices: each prompt once, every sample's completion. */
function sumUsage(us: SeqUsage[], n: number): SeqUsage {
  return us.reduce((a, u, i) => ({
    ...a,
    promptTokens: a.promptTokens + (i % n === 0 ? u.promptTokens : 0),
    completionTokens: a.completionTokens + u.completionTokens,
    cachedTokens: a.cachedTokens + (i % n === 0 ? u.cachedTokens : 0),
  }), { ...us[0], promptTokens: 0, completionTokens: 0, cachedTokens: 0 });
}

/** The prompts of a request as token ids (each checked against the vocabulary and context). */
async function promptsOf(ctx: ServerContext, raw: CompletionRequest["prompt"]) {
  const { fe } = ctx;
  const list: (string | number[])[] = typeof raw === "string"
    ? [raw]
    : raw.every((p) => typeof p === "number")
    ? [raw as number[]]
    : raw as (string | number[])[];
  return await Promise.all(list.map(async (p, i) => {
    const ids = typeof p === "string" ? await fe.tokenizeAsync(p) : p;
    const param = list.length > 1 ? `prompt.${i}` : "prompt";
    for (const t of ids) {
      if (t >= fe.info.nVocab) throw badRequest(`token id ${t} is outside the vocabulary`, param);
    }
    if (ids.length === 0) throw badRequest("The prompt is empty", param);
    fe.checkFits(ids.length, param);
    return ids;
  }));
}

/** A parsed request: its prompts, samples per prompt, and the engine parameters of each. */
interface Job {
  body: CompletionRequest;
  prompts: number[][];
  n: number;
  topN: number | undefined;
  /** Parameters of sample j of prompt i. */
  paramsFor(i: number, j: number): EngineRequest["params"];
}

async function jobOf(c: Context, ctx: ServerContext): Promise<Job> {
  const body = await readBody(c, "CompletionRequest");
  const prompts = await promptsOf(ctx, body.prompt);
  if (body.max_tokens === 0) throw badRequest("max_tokens must be at least 1", "max_tokens");
  const n = body.n ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_N) {
    throw badRequest(`n must be an integer from 1 to ${MAX_N}`, "n", "unsupported_value");
  }
  const topN = body.logprobs ?? undefined;
  const params: EngineRequest["params"] = {
    ...openaiSampling(body),
    affinity: affinityOf(c),
    priority: priorityOf(c),
    ...(topN !== undefined ? { wantLogprobs: true, logprobs: topN } : {}),
  };
  const forks = n > 1 && n <= ctx.engine.info.parallel;
  const group = newId("fork-");
  return {
    body,
    prompts,
    n,
    topN,
    paramsFor: (i, j) =>
      n === 1 ? params : {
        ...params,
        // sample j with seed + j (when seeded); the n samples of a prompt share its prefill
        ...(params.seed !== undefined ? { seed: Number(params.seed) + j } : {}),
        ...(forks ? { fork: { group: `${group}-${i}`, size: n } } : {}),
      },
  };
}

/** Registers POST /v1/completions on `app`. */
export function completionRoutes(app: Hono, ctx: ServerContext): void {
  const { fe } = ctx;
  app.post("/v1/completions", async (c) => {
    const job = await jobOf(c, ctx);
    const { body, prompts, n, topN } = job;
    const id = newId("cmpl-");
    const created = Math.floor(Date.now() / 1000);
    const base = { id, object: "text_completion", created, model: fe.name };
    const echoOf = (p: number[]) => body.echo ? fe.tokenizer.decode(p) : "";
    const start = (i: number, j: number, signal?: AbortSignal) =>
      ChatRun.start(
        ctx,
        { prompt: prompts[i], params: job.paramsFor(i, j), parser: plainText() },
        newId("cmpl-"),
        signal,
      );
    const runs = (i: number, signal?: AbortSignal) =>
      startAll(Array.from({ length: n }, (_, j) => () => start(i, j, signal)));

    if (!body.stream) {
      const all = await startAll(
        prompts.flatMap((_, i) =>
          Array.from({ length: n }, (_, j) => () => start(i, j, c.req.raw.signal))
        ),
      );
      const choices = [];
      for (const [index, run] of all.entries()) {
        let text = echoOf(prompts[Math.floor(index / n)]);
        const lp = legacyLp();
        for await (const step of run.steps()) {
          addLp(lp, step.lp, text.length);
          text += stepText(step);
        }
        if (!run.done) throw new Error("generation ended without a result");
        choices.push({
          text,
          index,
          logprobs: topN !== undefined ? lp : null,
          finish_reason: run.finish(),
        });
      }
      return c.json({
        ...base,
        choices,
        usage: openaiUsage(sumUsage(all.map((r) => r.done!.usage), n)),
      });
    }

    checkQueue(ctx);
    const includeUsage = body.stream_options?.include_usage === true;
    return streamSSE(c, async (stream) => {
      const live: ChatRun[] = [];
      let aborted = false;
      stream.onAbort(() => {
        aborted = true;
        for (const r of live) r.cancel();
      });
      heartbeat(stream, () => stream.write(": keep-alive\n\n"), ctx.heartbeatMs);
      const send = (x: unknown) => stream.writeSSE({ data: JSON.stringify(x) });
      const chunk = (index: number, text: string, finish: string | null, lp: unknown = null) => ({
        ...base,
        choices: [{ text, index, logprobs: lp, finish_reason: finish }],
      });
      // one choice's chunks; its usage, or null when aborted
      const follow = async (run: ChatRun, index: number, echo: string) => {
        let offset = 0;
        if (echo) {
          await send(chunk(index, echo, null));
          offset = echo.length;
        }
        for await (const step of run.steps()) {
          const text = stepText(step);
          const lp = legacyLp();
          addLp(lp, step.lp, offset);
          offset += text.length;
          if (text || step.lp) await send(chunk(index, text, null, step.lp ? lp : null));
        }
        if (!run.done || run.done.finishReason === "abort") return null;
        await send(chunk(index, "", run.finish()));
        return run.done.usage;
      };
      const usages: SeqUsage[] = [];
      for (const [i, prompt] of prompts.entries()) {
        if (aborted) return;
        let got: (SeqUsage | null)[];
        try {
          const rs = await runs(i);
          live.splice(0, live.length, ...rs);
          if (aborted) { for (const r of rs) r.cancel(); }
          got = await Promise.all(rs.map((r, j) => follow(r, i * n + j, echoOf(prompt))));
        } catch (e) {
          for (const r of live) r.cancel();
          await send(errorBody(toApiError(e), "openai"));
          return;
        }
        if (got.some((u) => u === null)) return;
        usages.push(...got as SeqUsage[]);
      }
      if (includeUsage) {
        await send({ ...base, choices: [], usage: openaiUsage(sumUsage(usages, n)) });
      }
      await stream.writeSSE({ data: "[DONE]" });
    });
  });
}
