/**
 * Anthropic-compatible endpoints: POST /v1/messages (streamed and not) and POST
 * /v1/messages/count_tokens.
 *
 * - System: a string or text blocks. Content blocks: text, tool_use, tool_result, thinking
 *   (redacted_thinking is dropped); image and document blocks are refused with a 400, since
 *   the served models are text-only. `cache_control` and other extra fields are ignored.
 * - Thinking: on when the request asks (`thinking.type` "enabled"/"adaptive"), else off
 *   (`enable_thinking: false` for templates that have a switch).
 * - Streaming follows the API's event sequence: message_start, then per content block
 *   content_block_start, deltas (text_delta, thinking_delta, input_json_delta),
 *   content_block_stop; a ping after the first block starts; message_delta (stop_reason,
 *   usage), message_stop.
 * - Usage: `input_tokens` counts the prompt tokens not read from the prefix cache;
 *   `cache_read_input_tokens` the ones that were.
 *
 * @module
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { EngineRequest } from "../engine/engine.ts";
import type { SeqUsage } from "../engine/scheduler.ts";
import type { ChatMessage } from "../tokenizer/chat_template.ts";
import type { ConstraintSpec, OutputEvent, ToolDef } from "./_tools.ts";
import { badRequest, errorBody, toApiError } from "./errors.ts";
import { affinityOf, priorityOf } from "./openai.ts";
import { readBody } from "./body.ts";
import { contentText, type ToolChoice } from "./prompt.ts";
import type { CountTokensRequest as CountBody, MessagesRequest } from "./schemas.ts";
import { type ChatFinish, ChatRun } from "./run.ts";
import { checkQueue, heartbeat, newId, type ServerContext } from "./sse.ts";

type Block = Record<string, unknown> & { type: string };

/** Anthropic messages (and system) as template messages. */
export function anthropicMessages(b: CountBody): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (b.system !== undefined) {
    const text = typeof b.system === "string" ? b.system : b.system.map((s) => s.text).join("\n");
    if (text) out.push({ role: "system", content: text });
  }
  b.messages.forEach((m, i) => {
    if (typeof m.content === "string") {
      out.push({ role: m.role, content: m.content });
      return;
    }
    const blocks = m.content as Block[];
    const texts: string[] = [];
    let reasoning = "";
    const calls: NonNullable<ChatMessage["tool_calls"]> = [];
    blocks.forEach((blk, j) => {
      switch (blk.type) {
        case "text":
          texts.push(String(blk.text ?? ""));
          break;
        case "thinking":
          reasoning += String(blk.thinking ?? "");
          break;
        case "redacted_thinking":
          break;
        case "tool_use":
          calls.push({
            id: String(blk.id ?? ""),
            type: "function",
            function: {
              name: String(blk.name ?? ""),
              arguments: JSON.stringify(blk.input ?? {}),
            },
          });
          break;
        case "tool_result": {
          const content = blk.content;
          let text = typeof content === "string" ? content : contentText(content);
          if (Array.isArray(content) && content.some((c) => c?.type === "image")) {
            throw badRequest(
              "Image content is not supported: this model is text-only",
              `messages.${i}.content.${j}.content`,
            );
          }
          if (blk.is_error) text = `Error: ${text}`;
          out.push({ role: "tool", tool_call_id: String(blk.tool_use_id ?? ""), content: text });
          break;
        }
        case "image":
        case "document":
          throw badRequest(
            `Content block type "${blk.type}" is not supported: this model is text-only`,
            `messages.${i}.content.${j}.type`,
          );
        default:
          throw badRequest(
            `Unknown content block type "${blk.type}"`,
            `messages.${i}.content.${j}.type`,
          );
      }
    });
    if (texts.length > 0 || calls.length > 0 || reasoning || m.role === "user") {
      if (m.role === "user" && texts.length === 0 && blocks.some((x) => x.type === "tool_result")) {
        return; // only tool results: already added as tool messages
      }
      const msg: ChatMessage = { role: m.role, content: texts.join("\n") };
      if (reasoning) msg.reasoning_content = reasoning;
      if (calls.length > 0) msg.tool_calls = calls;
      out.push(msg);
    }
  });
  return out;
}

function toolsOf(b: CountBody): ToolDef[] {
  return (b.tools ?? []).map((t) => ({
    name: t.name,
    ...(t.description ? { description: t.description } : {}),
    parameters: (t.input_schema as Record<string, unknown>) ?? { type: "object", properties: {} },
  }));
}

function toolChoiceOf(b: CountBody): ToolChoice {
  const c = b.tool_choice;
  if (!c) return "auto";
  switch (c.type) {
    case "any":
      return "required";
    case "tool":
      if (!c.name) throw badRequest("tool_choice.name is required for type tool", "tool_choice");
      return { name: c.name };
    default:
      return c.type;
  }
}

/** The structured output a request asks for (`output_config.format`, or `output_format`). */
function outputFormatOf(b: MessagesRequest): ConstraintSpec | undefined {
  const f = b.output_config?.format ?? b.output_format;
  if (!f) return undefined;
  if (f.type !== "json_schema") {
    throw badRequest(`Unsupported output format type "${f.type}"`, "output_config.format.type");
  }
  if (!f.schema) throw badRequest("output_config.format.schema is required", "output_config");
  return { kind: "json_schema", schema: f.schema };
}

/** Checks the body beyond its shape: the 400s Anthropic gives. */
function checkMessagesBody(b: MessagesRequest): void {
  b.messages.forEach((m, i) => {
    const last = i === b.messages.length - 1 && m.role === "assistant";
    const empty = typeof m.content === "string" ? m.content === "" : m.content.length === 0;
    if (empty && !last) {
      throw badRequest(
        `messages.${i}: all messages must have non-empty content except for the optional ` +
          "final assistant message",
        `messages.${i}.content`,
      );
    }
  });
  (b.tools ?? []).forEach((t, i) => {
    const typed = (t as { type?: unknown }).type;
    if (t.input_schema === undefined && (typed === undefined || typed === "custom")) {
      throw badRequest(`tools.${i}.input_schema: Field required`, `tools.${i}.input_schema`);
    }
  });
  const th = b.thinking;
  if (th && th.type === "enabled") {
    const budget = th.budget_tokens;
    if (typeof budget !== "number" || budget < 1024) {
      throw badRequest(
        "thinking.budget_tokens: must be at least 1024",
        "thinking.budget_tokens",
      );
    }
    if (budget >= b.max_tokens) {
      throw badRequest(
        "`max_tokens` must be greater than `thinking.budget_tokens`",
        "thinking.budget_tokens",
      );
    }
  }
}

function kwargsOf(b: CountBody): Record<string, unknown> {
  const on = b.thinking && b.thinking.type !== "disabled";
  return { enable_thinking: Boolean(on) };
}

function anthropicUsage(u: { promptTokens: number; cachedTokens: number }, output: number) {
  return {
    input_tokens: u.promptTokens - u.cachedTokens,
    output_tokens: output,
    cache_read_input_tokens: u.cachedTokens,
    cache_creation_input_tokens: 0,
  };
}

function stopReason(finish: ChatFinish, stop: string | undefined): string {
  if (finish === "length") return "max_tokens";
  if (finish === "tool_calls") return "tool_use";
  return stop !== undefined ? "stop_sequence" : "end_turn";
}

/** Registers the Anthropic routes on `app`. */
export function anthropicRoutes(app: Hono, ctx: ServerContext): void {
  const { fe } = ctx;

  app.post("/v1/messages/count_tokens", async (c) => {
    const body = await readBody(c, "CountTokensRequest");
    const choice = toolChoiceOf(body);
    const tools = choice === "none" ? [] : toolsOf(body);
    const n = (await fe.chatTokens(anthropicMessages(body), tools, kwargsOf(body))).length;
    return c.json({ input_tokens: n });
  });

  app.post("/v1/messages", async (c) => {
    const body = await readBody(c, "MessagesRequest");
    checkMessagesBody(body);
    const params: EngineRequest["params"] = {
      maxTokens: body.max_tokens,
      affinity: affinityOf(c),
      priority: priorityOf(c),
    };
    if (body.temperature !== undefined) params.temperature = body.temperature;
    if (body.top_p !== undefined) params.topP = body.top_p;
    if (body.top_k !== undefined) params.topK = body.top_k;
    if (body.stop_sequences) params.stop = body.stop_sequences;
    const plan = await fe.planChat({
      messages: anthropicMessages(body),
      tools: toolsOf(body),
      toolChoice: toolChoiceOf(body),
      parallelToolCalls: !(body.tool_choice?.disable_parallel_tool_use ?? false),
      responseFormat: outputFormatOf(body),
      templateKwargs: kwargsOf(body),
      params,
      flavor: "anthropic",
    });
    const id = newId("msg_");
    const model = body.model ?? fe.name;
    if (!body.stream) {
      const run = await ChatRun.start(ctx, plan, id, c.req.raw.signal);
      // content blocks in order of appearance
      const blocks: Block[] = [];
      for await (const step of run.steps()) {
        for (const e of step.events) {
          const last = blocks[blocks.length - 1];
          if (e.type === "content" && e.text) {
            if (last?.type === "text") last.text += e.text;
            else blocks.push({ type: "text", text: e.text });
          } else if (e.type === "reasoning" && e.text) {
            if (last?.type === "thinking") last.thinking += e.text;
            else blocks.push({ type: "thinking", thinking: e.text, signature: "" });
          } else if (e.type === "tool_call_end") {
            const call = run.acc.calls.get(e.index)!;
            blocks.push({
              type: "tool_use",
              id: toolUseId(call.id),
              name: call.name,
              input: JSON.parse(e.arguments),
            });
          }
        }
      }
      const done = run.done;
      if (!done) throw new Error("generation ended without a result");
      return c.json({
        id,
        type: "message",
        role: "assistant",
        model,
        content: blocks,
        stop_reason: stopReason(run.finish(), done.stop),
        stop_sequence: done.stop ?? null,
        usage: anthropicUsage(done.usage, done.usage.completionTokens),
      });
    }

    // a stream answers at once, pings included, while the request waits for a slot
    checkQueue(ctx);
    return streamSSE(c, async (stream) => {
      let run: ChatRun | null = null;
      let aborted = false;
      stream.onAbort(() => {
        aborted = true;
        run?.cancel();
      });
      const send = (event: string, data: Record<string, unknown>) =>
        stream.writeSSE({ event, data: JSON.stringify({ type: event, ...data }) });
      heartbeat(stream, () => send("ping", {}), ctx.heartbeatMs);
      await send("message_start", {
        message: {
          id,
          type: "message",
          role: "assistant",
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: anthropicUsage({ promptTokens: plan.prompt.length, cachedTokens: 0 }, 1),
        },
      });
      let index = -1;
      let open: "text" | "thinking" | "tool_use" | null = null;
      let pinged = false;
      const start = async (block: Record<string, unknown>) => {
        if (open) await send("content_block_stop", { index });
        index++;
        open = block.type as typeof open;
        await send("content_block_start", { index, content_block: block });
        if (!pinged) {
          pinged = true;
          await send("ping", {});
        }
      };
      const delta = (d: Record<string, unknown>) =>
        send("content_block_delta", { index, delta: d });
      const emit = async (events: OutputEvent[]) => {
        for (const e of events) {
          switch (e.type) {
            case "content":
              if (!e.text) break;
              if (open !== "text") await start({ type: "text", text: "" });
              await delta({ type: "text_delta", text: e.text });
              break;
            case "reasoning":
              if (!e.text) break;
              if (open !== "thinking") {
                await start({ type: "thinking", thinking: "", signature: "" });
              }
              await delta({ type: "thinking_delta", thinking: e.text });
              break;
            case "tool_call_start":
              await start({ type: "tool_use", id: toolUseId(e.id), name: e.name, input: {} });
              break;
            case "tool_call_args":
              // the gate releases a call whole: its arguments in one delta
              if (open === "tool_use" && e.text) {
                await delta({ type: "input_json_delta", partial_json: e.text });
              }
              break;
          }
        }
      };
      try {
        run = await ChatRun.start(ctx, plan, id);
        if (aborted) run.cancel();
        for await (const step of run.steps()) await emit(step.events);
      } catch (e) {
        await stream.writeSSE({
          event: "error",
          data: JSON.stringify(errorBody(toApiError(e), "anthropic")),
        });
        return;
      }
      const done = run?.done;
      if (!run || !done || done.finishReason === "abort") return;
      if (index < 0) await start({ type: "text", text: "" });
      await send("content_block_stop", { index });
      const u: SeqUsage = done.usage;
      await send("message_delta", {
        delta: {
          stop_reason: stopReason(run.finish(), done.stop),
          stop_sequence: done.stop ?? null,
        },
        usage: { ...anthropicUsage(u, u.completionTokens) },
      });
      await send("message_stop", {});
    });
  });
}

/** Anthropic's tool_use ids start with `toolu_`. */
function toolUseId(id: string): string {
  return id.startsWith("toolu_") ? id : `toolu_${id.replace(/^call_/, "")}`;
}
