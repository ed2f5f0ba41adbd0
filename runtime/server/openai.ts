/**
 * OpenAI-compatible endpoints: POST /v1/chat/completions (streamed and not, tools, tool
 * choice, response_format, logprobs, usage with cached tokens, reasoning_content), POST
 * /v1/completions, GET /v1/models.
 *
 * Images and audio parts are refused with a 400: the served models are text-only.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { EngineLogprob, EngineRequest } from "../engine/engine.ts";
import type { SeqUsage } from "../engine/scheduler.ts";
import type { ChatMessage } from "../tokenizer/chat_template.ts";
import type { ConstraintSpec, OutputEvent, ToolDef } from "./_tools.ts";
import { badRequest, errorBody, toApiError } from "./errors.ts";
import { readBody } from "./body.ts";
import type { ToolChoice } from "./prompt.ts";
import type { ChatCompletionRequest as ChatBody } from "./schemas.ts";
import { ChatRun, startAll } from "./run.ts";
import type { ChatPlan } from "./prompt.ts";
import {
  argumentsTail,
  checkQueue,
  heartbeat,
  newId,
  type OutputAccumulator,
  type ServerContext,
} from "./sse.ts";

/**
 * The scheduling priority a request asks for with `x-spool-priority` (batch jobs send -1).
 * Only values below 0 are taken: a client may step back, not push ahead.
 */
export function priorityOf(c: Context): number | undefined {
  const v = Number(c.req.header("x-spool-priority"));
  return Number.isFinite(v) && v < 0 ? v : undefined;
}

/** The prefix-cache affinity key of a request (x-session-affinity or x-session-id). */
export function affinityOf(c: Context): string | undefined {
  return c.req.header("x-session-affinity") ?? c.req.header("x-session-id") ?? undefined;
}

type Sampling = Omit<EngineRequest["params"], "constraint">;

/** Engine parameters from the OpenAI sampling fields. */
export function openaiSampling(
  b: {
    temperature?: number | null;
    top_p?: number | null;
    top_k?: number | null;
    min_p?: number | null;
    seed?: number | null;
    presence_penalty?: number | null;
    frequency_penalty?: number | null;
    repeat_penalty?: number | null;
    stop?: string | string[] | null;
    logit_bias?: Record<string, number> | null;
    max_tokens?: number | null;
    max_completion_tokens?: number | null;
    n?: number | null;
    cache_prompt?: boolean | null;
  },
): Sampling {
  const p: Sampling = {};
  const set = <K extends keyof Sampling>(k: K, v: Sampling[K] | null | undefined) => {
    if (v !== undefined && v !== null) p[k] = v;
  };
  set("temperature", b.temperature);
  set("topP", b.top_p);
  set("topK", b.top_k);
  set("minP", b.min_p);
  set("seed", b.seed);
  set("presencePenalty", b.presence_penalty);
  set("frequencyPenalty", b.frequency_penalty);
  set("repeatPenalty", b.repeat_penalty);
  set("maxTokens", b.max_completion_tokens ?? b.max_tokens);
  set("cachePrompt", b.cache_prompt);
  if (b.stop !== undefined && b.stop !== null) {
    p.stop = typeof b.stop === "string" ? [b.stop] : b.stop;
  }
  if (b.logit_bias) {
    const m = new Map<number, number>();
    for (const [k, v] of Object.entries(b.logit_bias)) {
      const id = Number(k);
      if (!Number.isInteger(id) || id < 0) throw badRequest(`logit_bias key "${k}"`, "logit_bias");
      m.set(id, Math.max(-100, Math.min(100, v)) === -100 ? -Infinity : v);
    }
    p.logitBias = m;
  }
  return p;
}

const NON_TEXT = new Set(["image_url", "image", "input_image", "input_audio", "audio", "file"]);

/** OpenAI messages as template messages (tool results, tool calls, reasoning). */
export function openaiMessages(messages: ChatBody["messages"]): ChatMessage[] {
  return messages.map((m, i) => {
    if (Array.isArray(m.content)) {
      for (const [j, part] of m.content.entries()) {
        if (NON_TEXT.has(part.type)) {
          throw badRequest(
            `Content part type "${part.type}" is not supported: this model is text-only`,
            `messages.${i}.content.${j}.type`,
            "unsupported_content",
          );
        }
      }
    }
    const out: ChatMessage = { role: m.role === "function" ? "tool" : m.role };
    out.content = m.content ?? "";
    if (m.name) out.name = m.name;
    if (m.tool_call_id) out.tool_call_id = m.tool_call_id;
    const reasoning = m.reasoning_content ?? m.reasoning;
    if (reasoning) out.reasoning_content = reasoning;
    if (m.tool_calls && m.tool_calls.length > 0) {
      out.tool_calls = m.tool_calls.map((tc) => ({
        id: tc.id,
        type: "function" as const,
        function: { name: tc.function.name, arguments: tc.function.arguments ?? "{}" },
      }));
    }
    return out;
  });
}

function toolsOf(b: ChatBody): ToolDef[] {
  return (b.tools ?? []).map((t) => ({
    name: t.function.name,
    ...(t.function.description ? { description: t.function.description } : {}),
    parameters: (t.function.parameters as Record<string, unknown> | undefined) ??
      { type: "object", properties: {} },
  }));
}

/** Most choices per request. */
const MAX_N = 8;

/** Checks the chat body beyond its shape: the 400s OpenAI gives. */
function checkChatBody(b: ChatBody): void {
  if (b.n !== undefined && b.n !== null && b.n > MAX_N) {
    throw badRequest(`n must be at most ${MAX_N}`, "n", "unsupported_value");
  }
  for (const k of ["max_tokens", "max_completion_tokens"] as const) {
    if (b[k] === 0) throw badRequest(`${k} must be at least 1`, k, "invalid_value");
  }
  if (b.top_logprobs !== undefined && b.top_logprobs !== null && !b.logprobs) {
    throw badRequest("top_logprobs requires logprobs to be true", "top_logprobs");
  }
  b.messages.forEach((m, i) => {
    if (m.role === "tool" && !m.tool_call_id) {
      throw badRequest(
        "A message with role 'tool' must have a tool_call_id",
        `messages.${i}.tool_call_id`,
      );
    }
  });
}

function toolChoiceOf(b: ChatBody): ToolChoice {
  const c = b.tool_choice;
  if (c === undefined || c === null) return "auto";
  if (typeof c === "string") return c;
  return { name: c.function.name };
}

function responseFormatOf(b: ChatBody): ConstraintSpec | undefined {
  const f = b.response_format;
  if (!f || f.type === "text") return undefined;
  if (f.type === "json_object") return { kind: "json_object" };
  const schema = (f as { json_schema: { schema?: Record<string, unknown> } }).json_schema.schema;
  return schema ? { kind: "json_schema", schema } : { kind: "json_object" };
}

/** OpenAI's logprob entry of one token. */
function lpEntry(l: { chosen: EngineLogprob; top: EngineLogprob[] }) {
  return {
    token: l.chosen.token,
    logprob: l.chosen.logprob,
    bytes: l.chosen.bytes,
    top_logprobs: l.top.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes })),
  };
}

/** OpenAI usage object. */
export function openaiUsage(u: SeqUsage) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
  };
}

/** A chat delta from parser events (content, reasoning_content, tool_calls). */
function deltaOf(events: OutputEvent[], acc: OutputAccumulator): Record<string, unknown> | null {
  const d: Record<string, unknown> = {};
  const calls: Record<string, unknown>[] = [];
  for (const e of events) {
    switch (e.type) {
      case "content":
        if (e.text) d.content = ((d.content as string) ?? "") + e.text;
        break;
      case "reasoning":
        if (e.text) {
          // both names: reasoning_content (DeepSeek, llama-server) and reasoning (OpenRouter,
          // the AI SDK's openai-compatible provider)
          d.reasoning_content = ((d.reasoning_content as string) ?? "") + e.text;
          d.reasoning = d.reasoning_content;
        }
        break;
      case "tool_call_start":
        calls.push({
          index: e.index,
          id: e.id,
          type: "function",
          function: { name: e.name, arguments: "" },
        });
        break;
      case "tool_call_args":
        if (e.text) calls.push({ index: e.index, function: { arguments: e.text } });
        break;
      case "tool_call_end": {
        const tail = argumentsTail(acc.calls.get(e.index), e.arguments);
        if (tail) calls.push({ index: e.index, function: { arguments: tail } });
        break;
      }
    }
  }
  if (calls.length > 0) d.tool_calls = calls;
  return Object.keys(d).length > 0 ? d : null;
}

/** Registers the OpenAI routes on `app`. */
export function openaiRoutes(app: Hono, ctx: ServerContext): void {
  const { fe } = ctx;

  // with `anthropic-version` (the Anthropic SDKs send it), Anthropic's shape
  app.get("/v1/models", (c) => {
    if (c.req.header("anthropic-version")) {
      const m = anthropicModel(ctx);
      return c.json({ data: [m], has_more: false, first_id: m.id, last_id: m.id });
    }
    return c.json({ object: "list", data: [modelCard(ctx)] });
  });
  app.get(
    "/v1/models/:id{.+}",
    (c) => c.json(c.req.header("anthropic-version") ? anthropicModel(ctx) : modelCard(ctx)),
  );

  app.post("/v1/chat/completions", async (c) => {
    const body = await readBody(c, "ChatCompletionRequest");
    checkChatBody(body);
    const tools = toolsOf(body);
    const topN = body.top_logprobs ?? 0;
    const params: EngineRequest["params"] = {
      ...openaiSampling(body),
      affinity: affinityOf(c),
      priority: priorityOf(c),
      ...(body.logprobs ? { wantLogprobs: true, logprobs: topN } : {}),
    };
    const plan = await fe.planChat({
      messages: openaiMessages(body.messages),
      tools,
      toolChoice: toolChoiceOf(body),
      parallelToolCalls: body.parallel_tool_calls ?? true,
      responseFormat: responseFormatOf(body),
      templateKwargs: body.chat_template_kwargs ?? undefined,
      params,
    });
    const id = newId("chatcmpl-");
    const created = Math.floor(Date.now() / 1000);
    const model = fe.name;
    const n = body.n ?? 1;
    // choice i samples with seed + i (when seeded), each with its own parser; the n choices
    // form a fork group (the prompt evaluated once, its KV copied) when they fit the slots
    const fork = n > 1 && n <= ctx.engine.info.parallel ? { group: id, size: n } : undefined;
    const planFor = (i: number): ChatPlan =>
      n === 1 ? plan : {
        ...plan,
        params: {
          ...plan.params,
          ...(plan.params.seed !== undefined ? { seed: Number(plan.params.seed) + i } : {}),
          ...(fork ? { fork } : {}),
        },
        parser: i === 0 ? plan.parser : plan.newParser(),
      };

    if (!body.stream) {
      const runs = await startAll(
        Array.from(
          { length: n },
          (_, i) => () => ChatRun.start(ctx, planFor(i), newId("chatcmpl-"), c.req.raw.signal),
        ),
      );
      const choices = [];
      for (const [index, run] of runs.entries()) {
        const logprobs: unknown[] = [];
        for await (const step of run.steps()) if (step.lp) logprobs.push(lpEntry(step.lp));
        if (!run.done) throw new Error("generation ended without a result");
        choices.push({
          index,
          message: chatMessage(run),
          logprobs: body.logprobs ? { content: logprobs, refusal: null } : null,
          finish_reason: run.finish(),
        });
      }
      return c.json({
        id,
        object: "chat.completion",
        created,
        model,
        system_fingerprint: "spool",
        choices,
        usage: openaiUsage(choicesUsage(runs.map((r) => r.done!.usage))),
      });
    }

    // a stream answers at once, keep-alives included, while the request waits for a slot
    checkQueue(ctx);
    const includeUsage = body.stream_options?.include_usage === true;
    const base = {
      id,
      object: "chat.completion.chunk",
      created,
      model,
      system_fingerprint: "spool",
    };
    return streamSSE(c, async (stream) => {
      const runs: ChatRun[] = [];
      let aborted = false;
      stream.onAbort(() => {
        aborted = true;
        for (const r of runs) r.cancel();
      });
      heartbeat(stream, () => stream.write(": keep-alive\n\n"), ctx.heartbeatMs);
      const send = (x: unknown) => stream.writeSSE({ data: JSON.stringify(x) });
      const chunk = (
        index: number,
        delta: unknown,
        finish: string | null = null,
        logprobs: unknown[] = [],
      ) => ({
        ...base,
        choices: [{
          index,
          delta,
          logprobs: body.logprobs && logprobs.length > 0
            ? { content: logprobs, refusal: null }
            : null,
          finish_reason: finish,
        }],
        ...(includeUsage ? { usage: null } : {}),
      });
      const choice = async (index: number): Promise<SeqUsage | null> => {
        await send(chunk(index, { role: "assistant", content: "", refusal: null }));
        const run = await ChatRun.start(ctx, planFor(index), newId("chatcmpl-"));
        runs.push(run);
        if (aborted) run.cancel();
        let pendingLp: unknown[] = [];
        for await (const step of run.steps()) {
          if (step.lp) pendingLp.push(lpEntry(step.lp));
          const delta = deltaOf(step.events, run.acc);
          if (delta || pendingLp.length > 0) {
            await send(chunk(index, delta ?? {}, null, pendingLp));
            pendingLp = [];
          }
        }
        const done = run.done;
        if (!done || done.finishReason === "abort") return null;
        await send(chunk(index, {}, run.finish()));
        return done.usage;
      };
      let usages: (SeqUsage | null)[];
      try {
        usages = await Promise.all(Array.from({ length: n }, (_, i) => choice(i)));
      } catch (e) {
        for (const r of runs) r.cancel();
        await send(errorBody(toApiError(e), "openai"));
        return;
      }
      if (usages.some((u) => u === null)) return;
      if (includeUsage) {
        await send({
          ...base,
          choices: [],
          usage: openaiUsage(choicesUsage(usages as SeqUsage[])),
        });
      }
      await stream.writeSSE({ data: "[DONE]" });
    });
  });
}

/** The assistant message of a finished chat run. */
function chatMessage(run: ChatRun): Record<string, unknown> {
  const { acc } = run;
  const calls = acc.toolCalls();
  const message: Record<string, unknown> = {
    role: "assistant",
    content: calls.length === 0 || acc.content.trim() !== "" ? acc.content : null,
    refusal: null,
  };
  if (acc.reasoning) message.reasoning_content = message.reasoning = acc.reasoning;
  if (calls.length > 0) {
    message.tool_calls = calls.map((t) => ({
      id: t.id,
      type: "function",
      function: { name: t.name, arguments: t.arguments },
    }));
  }
  return message;
}

/** Usage of n choices of one prompt: the prompt once, every choice's completion. */
function choicesUsage(us: SeqUsage[]): SeqUsage {
  return {
    ...us[0],
    completionTokens: us.reduce((a, u) => a + u.completionTokens, 0),
  };
}

function anthropicModel(ctx: ServerContext) {
  return {
    type: "model",
    id: ctx.fe.name,
    display_name: ctx.fe.name,
    created_at: new Date(ctx.metrics.started).toISOString(),
  };
}

function modelCard(ctx: ServerContext) {
  const i = ctx.fe.info;
  return {
    id: ctx.fe.name,
    object: "model",
    created: Math.floor(ctx.metrics.started / 1000),
    owned_by: "spool",
    context_length: i.nCtx,
    max_model_len: i.nCtx,
    meta: { arch: i.arch, n_ctx: i.nCtx, n_ctx_train: i.nCtxTrain, n_vocab: i.nVocab },
  };
}
