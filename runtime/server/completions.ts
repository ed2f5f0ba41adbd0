/**
 * OpenAI's legacy `POST /v1/completions`: a prompt (a string, token ids, or an array of
 * either: one choice per prompt, `index` in order), echo, legacy logprobs, streaming.
 * Several prompts run at once when not streamed (each its own engine request); streamed,
 * they run one after another, each choice's chunks carrying its index.
 *
 * @module
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { EngineEvent, EngineRequest } from "../engine/engine.ts";
import type { SeqUsage } from "../engine/scheduler.ts";
import { badRequest, engineError, errorBody, toApiError } from "./errors.ts";
import { affinityOf, openaiSampling, openaiUsage, priorityOf } from "./openai.ts";
import { readBody } from "./body.ts";
import { checkQueue, heartbeat, newId, type ServerContext, startRun } from "./sse.ts";

type Token = Extract<EngineEvent, { type: "token" }>;
type Done = Extract<EngineEvent, { type: "done" }>;

/** Legacy logprobs of one choice. */
function legacyLp() {
  return {
    tokens: [] as string[],
    token_logprobs: [] as number[],
    top_logprobs: [] as Record<string, number>[],
    text_offset: [] as number[],
  };
}

function addLp(lp: ReturnType<typeof legacyLp>, e: Token, offset: number): void {
  if (!e.lp) return;
  lp.tokens.push(e.lp.chosen.token);
  lp.token_logprobs.push(e.lp.chosen.logprob);
  lp.top_logprobs.push(Object.fromEntries(e.lp.top.map((t) => [t.token, t.logprob])));
  lp.text_offset.push(offset);
}

function finishOf(d: Done): string {
  return d.finishReason === "length" ? "length" : "stop";
}

function sumUsage(us: SeqUsage[]): SeqUsage {
  return us.reduce((a, u) => ({
    ...a,
    promptTokens: a.promptTokens + u.promptTokens,
    completionTokens: a.completionTokens + u.completionTokens,
    cachedTokens: a.cachedTokens + u.cachedTokens,
  }));
}

/** Registers POST /v1/completions on `app`. */
export function completionRoutes(app: Hono, ctx: ServerContext): void {
  const { fe } = ctx;
  app.post("/v1/completions", async (c) => {
    const body = await readBody(c, "CompletionRequest");
    const raw = body.prompt;
    const list: (string | number[])[] = typeof raw === "string"
      ? [raw]
      : raw.every((p) => typeof p === "number")
      ? [raw as number[]]
      : raw as (string | number[])[];
    const prompts = await Promise.all(list.map(async (p, i) => {
      const ids = typeof p === "string" ? await fe.tokenizeAsync(p) : p;
      const param = list.length > 1 ? `prompt.${i}` : "prompt";
      for (const t of ids) {
        if (t >= fe.info.nVocab) throw badRequest(`token id ${t} is outside the vocabulary`, param);
      }
      if (ids.length === 0) throw badRequest("The prompt is empty", param);
      fe.checkFits(ids.length, param);
      return ids;
    }));
    if (body.max_tokens === 0) throw badRequest("max_tokens must be at least 1", "max_tokens");
    if (body.n !== undefined && body.n !== null && body.n !== 1) {
      throw badRequest("Only n=1 is supported here; send several prompts instead", "n");
    }
    const topN = body.logprobs ?? undefined;
    const params: EngineRequest["params"] = {
      ...openaiSampling(body),
      affinity: affinityOf(c),
      priority: priorityOf(c),
      ...(topN !== undefined ? { wantLogprobs: true, logprobs: topN } : {}),
    };
    const id = newId("cmpl-");
    const created = Math.floor(Date.now() / 1000);
    const model = fe.name;
    const echoOf = (p: number[]) => body.echo ? fe.tokenizer.decode(p) : "";

    if (!body.stream) {
      const one = async (prompt: number[], index: number) => {
        const run = await startRun(
          ctx,
          { id: newId("cmpl-"), prompt, params },
          c.req.raw.signal,
        );
        let text = echoOf(prompt);
        const lp = legacyLp();
        let done: Done | undefined;
        try {
          for await (const e of run.events) {
            if (e.type === "token") {
              addLp(lp, e, text.length);
              text += e.text;
            } else if (e.type === "done") done = e;
            else if (e.type === "error") throw engineError(e.code, e.message);
          }
        } finally {
          run.release();
        }
        if (!done) throw new Error("generation ended without a result");
        ctx.metrics.usage(done.usage);
        return {
          choice: {
            text,
            index,
            logprobs: topN !== undefined ? lp : null,
            finish_reason: finishOf(done),
          },
          usage: done.usage,
        };
      };
      const results = await Promise.all(prompts.map(one));
      return c.json({
        id,
        object: "text_completion",
        created,
        model,
        choices: results.map((r) => r.choice),
        usage: openaiUsage(sumUsage(results.map((r) => r.usage))),
      });
    }

    checkQueue(ctx);
    const includeUsage = body.stream_options?.include_usage === true;
    return streamSSE(c, async (stream) => {
      let cancel: (() => void) | null = null;
      let aborted = false;
      stream.onAbort(() => {
        aborted = true;
        cancel?.();
      });
      heartbeat(stream, () => stream.write(": keep-alive\n\n"), ctx.heartbeatMs);
      const send = (x: unknown) => stream.writeSSE({ data: JSON.stringify(x) });
      const base = { id, object: "text_completion", created, model };
      const chunk = (index: number, text: string, finish: string | null, lp: unknown = null) => ({
        ...base,
        choices: [{ text, index, logprobs: lp, finish_reason: finish }],
      });
      const usages: SeqUsage[] = [];
      for (const [index, prompt] of prompts.entries()) {
        if (aborted) return;
        let done: Done | undefined;
        try {
          const run = await startRun(ctx, { id: newId("cmpl-"), prompt, params });
          cancel = run.cancel;
          if (aborted) run.cancel();
          const echo = echoOf(prompt);
          let offset = 0;
          if (echo) {
            await send(chunk(index, echo, null));
            offset = echo.length;
          }
          try {
            for await (const e of run.events) {
              if (e.type === "token") {
                const lp = legacyLp();
                addLp(lp, e, offset);
                offset += e.text.length;
                if (e.text || e.lp) await send(chunk(index, e.text, null, e.lp ? lp : null));
              } else if (e.type === "done") done = e;
              else if (e.type === "error") throw engineError(e.code, e.message);
            }
          } finally {
            if (!done) run.cancel();
          }
        } catch (e) {
          await send(errorBody(toApiError(e), "openai"));
          return;
        }
        if (!done || done.finishReason === "abort") return;
        ctx.metrics.usage(done.usage);
        usages.push(done.usage);
        await send(chunk(index, "", finishOf(done)));
      }
      if (includeUsage) await send({ ...base, choices: [], usage: openaiUsage(sumUsage(usages)) });
      await stream.writeSSE({ data: "[DONE]" });
    });
  });
}
