/**
 * The main thread's side of a model: tokenizer and chat template (read from the GGUF
 * metadata, no weights), and the planning of a request into prompt tokens, engine
 * parameters, a constraint and an output parser. Both APIs go through {@link planChat}.
 *
 * @module
 */
import type { EngineInfo, EngineRequest } from "../engine/engine.ts";
import { readGGUF } from "../gguf/reader.ts";
import { type ChatMessage, chatTemplateFromGGUF } from "../tokenizer/chat_template.ts";
import { type Tokenizer, tokenizerFromGGUF } from "../tokenizer/tokenizer.ts";
import {
  type ConstraintSpec,
  loadTools,
  type OutputParser,
  type ToolDef,
  type ToolFormat,
  type ToolsModule,
} from "./_tools.ts";
import { ApiError, type ApiFlavor, badRequest } from "./errors.ts";
import { jsonDepth, MAX_SCHEMA_DEPTH } from "../grammar/schema.ts";
import { GrammarError, validateConstraint } from "../grammar/mod.ts";
import { GenericParser, genericToolPrompt, genericToolSchema } from "../tools/generic.ts";
import {
  conversationChars,
  OFFLOAD_CHARS,
  PromptRenderer,
  type RenderedPrompt,
  RenderPool,
} from "./render.ts";

/** How the model may use tools in one request. */
export type ToolChoice = "none" | "auto" | "required" | { name: string };

/** What {@link planChat} needs, in API-neutral form. */
export interface ChatInput {
  /** OpenAI-shaped messages (tool calls, tool results, reasoning_content). */
  messages: ChatMessage[];
  /** Tools offered. */
  tools: ToolDef[];
  /** Tool choice (default auto). */
  toolChoice: ToolChoice;
  /** Several calls in one turn (default true). */
  parallelToolCalls: boolean;
  /** A JSON output constraint (response_format). */
  responseFormat?: ConstraintSpec;
  /** Extra template variables (chat_template_kwargs). */
  templateKwargs?: Record<string, unknown>;
  /** Sampling parameters, limits, stop strings, logprobs. */
  params: EngineRequest["params"];
  /** The API asking (error wording; Anthropic continues a trailing assistant message). */
  flavor?: ApiFlavor;
}

/** A planned chat request. */
export interface ChatPlan {
  /** Prompt token ids. */
  prompt: number[];
  /** Engine parameters (constraint included). */
  params: EngineRequest["params"];
  /** Parses the generated text into content, reasoning and tool calls. */
  parser: OutputParser;
  /** A fresh parser of the same kind (for more choices of one request). */
  newParser: () => OutputParser;
}

/** Tokenizer, template and tool conventions of the served model. */
export class ModelFrontend {
  /** The model's tokenizer. */
  readonly tokenizer: Tokenizer;
  /** The GGUF's chat template. */
  readonly template: string | undefined;
  /** Name reported as the model id. */
  readonly name: string;
  /** Engine info (context length etc.). */
  readonly info: EngineInfo;
  /** Tool-call conventions of the template. */
  readonly toolFormat: ToolFormat;
  /** The tool-call module (or its plain stand-in). */
  readonly tools: ToolsModule;
  /** The GGUF file (the render worker reads its tokenizer and template). */
  readonly path: string;
  readonly #renderer: PromptRenderer;
  #workers: RenderPool | null = null;

  private constructor(
    path: string,
    tokenizer: Tokenizer,
    template: string | undefined,
    name: string,
    info: EngineInfo,
    tools: ToolsModule,
  ) {
    this.path = path;
    this.tokenizer = tokenizer;
    this.template = template;
    this.name = name;
    this.info = info;
    this.tools = tools;
    this.toolFormat = tools.detectToolFormat(template, info.arch);
    this.#renderer = new PromptRenderer(tokenizer, template);
  }

  /** Reads the tokenizer and template of the GGUF at `path`. */
  static async open(path: string, name: string, info: EngineInfo): Promise<ModelFrontend> {
    const gguf = readGGUF(path);
    return new ModelFrontend(
      path,
      tokenizerFromGGUF(gguf),
      chatTemplateFromGGUF(gguf.kv) ?? undefined,
      name,
      info,
      await loadTools(),
    );
  }

  /**
   * Whether a free reasoning block may precede a forced tool call: only when the request asks
   * for thinking explicitly (`enable_thinking: true`), or the prompt opens the block itself.
   * By default `tool_choice: required` means the call starts at once.
   */
  thinkingBeforeCall(kwargs: Record<string, unknown> | undefined, forcedOpen: boolean): boolean {
    return forcedOpen || (kwargs?.enable_thinking === true && this.#hasThinking());
  }

  #hasThinking(): boolean {
    return Boolean(this.template?.includes("<think>")) || this.toolFormat === "harmony";
  }

  /** Token ids of `text` (special-token text parsed, BOS as the vocab asks). */
  tokenize(text: string, addSpecial = true, parseSpecial = true): number[] {
    return this.#renderer.tokenize(text, addSpecial, parseSpecial);
  }

  /**
   * Token ids of `text`, off the main thread when the text is large (see {@link RenderPool}),
   * so one huge prompt cannot stall the requests of others.
   */
  async tokenizeAsync(text: string, addSpecial = true, parseSpecial = true): Promise<number[]> {
    if (text.length < OFFLOAD_CHARS) return this.tokenize(text, addSpecial, parseSpecial);
    return await this.#pool().run({ op: "tokenize", text, addSpecial, parseSpecial }) as number[];
  }

  /** The rendered chat prompt (see {@link PromptRenderer.render}). */
  render(
    messages: ChatMessage[],
    tools: ToolDef[],
    kwargs?: Record<string, unknown>,
    prefill = false,
  ): string {
    return this.#renderer.render(messages, tools, kwargs, prefill);
  }

  /**
   * Prompt token ids of a conversation (control-token text in messages kept plain), rendered
   * and tokenized off the main thread when the conversation is large.
   */
  async prompt(
    messages: ChatMessage[],
    tools: ToolDef[],
    kwargs?: Record<string, unknown>,
    prefill = false,
  ): Promise<RenderedPrompt> {
    if (conversationChars(messages) < OFFLOAD_CHARS) {
      return this.#renderer.prompt(messages, tools, kwargs, prefill);
    }
    const job = { op: "prompt" as const, messages, tools, kwargs, prefill };
    return await this.#pool().run(job) as RenderedPrompt;
  }

  /** Prompt token ids of a conversation. */
  async chatTokens(
    messages: ChatMessage[],
    tools: ToolDef[],
    kwargs?: Record<string, unknown>,
  ): Promise<number[]> {
    return (await this.prompt(messages, tools, kwargs)).prompt;
  }

  #pool(): RenderPool {
    return this.#workers ??= new RenderPool(this.path);
  }

  /** Ends the render worker, if one started. */
  close(): void {
    this.#workers?.close();
    this.#workers = null;
  }

  /** Throws the context-overflow 400 when `n` prompt tokens do not fit. */
  checkFits(n: number, param = "messages", flavor: ApiFlavor = "openai"): void {
    const nCtx = this.info.nCtx;
    if (n > nCtx && flavor === "anthropic") {
      // Claude Code compacts the conversation on this exact wording
      throw new ApiError(
        400,
        "invalid_request_error",
        `prompt is too long: ${n} tokens > ${nCtx} maximum`,
        { param, code: "context_length_exceeded" },
      );
    }
    if (n > nCtx) {
      throw new ApiError(
        400,
        "invalid_request_error",
        `This model's maximum context length is ${nCtx} tokens. However, your request has ` +
          `${n} prompt tokens. Please reduce the length of the messages.`,
        { param, code: "context_length_exceeded" },
      );
    }
  }

  /** Plans a chat request: prompt, constraint, parser, limits. */
  async planChat(input: ChatInput): Promise<ChatPlan> {
    const choice = input.toolChoice;
    const useTools = choice !== "none" ? input.tools : [];
    if (typeof choice === "object" && !input.tools.some((t) => t.name === choice.name)) {
      throw badRequest(`tool_choice names "${choice.name}", which is not in tools`, "tool_choice");
    }
    if ((choice === "required" || typeof choice === "object") && input.tools.length === 0) {
      throw badRequest("tool_choice requires tools", "tool_choice");
    }
    checkSchemaDepths(input);
    const mustCall = choice === "required" || typeof choice === "object";
    const generic = useTools.length > 0 && this.toolFormat === "none";
    let messages = input.messages;
    if (generic) messages = genericMessages(messages, useTools, mustCall);
    const last = messages[messages.length - 1];
    const prefill = input.flavor === "anthropic" && last?.role === "assistant" &&
      !last.tool_calls?.length && String(last.content ?? "").trim() !== "";
    const { prompt, forcedOpen } = await this.prompt(
      messages,
      generic ? [] : useTools,
      input.templateKwargs,
      prefill,
    );
    this.checkFits(prompt.length, "messages", input.flavor);
    const thinking = this.thinkingBeforeCall(input.templateKwargs, forcedOpen);
    const constraint = this.#constraint(input, useTools, generic, thinking);
    if (constraint) {
      try {
        validateConstraint(constraint);
      } catch (e) {
        if (!(e instanceof GrammarError)) throw e;
        const param = input.responseFormat && constraint.kind !== "tools"
          ? (input.flavor === "anthropic" ? "output_config.format" : "response_format")
          : "tools";
        throw new ApiError(400, "invalid_request_error", e.message, {
          param,
          code: e.code,
          cause: e,
        });
      }
    }
    const newParser = () =>
      generic ? new GenericParser(useTools) : this.tools.createOutputParser(
        useTools.length > 0 ? this.toolFormat : "none",
        { tools: useTools, thinking: forcedOpen },
      );
    const params = { ...input.params };
    if (constraint) params.constraint = constraint;
    return { prompt, params, parser: newParser(), newParser };
  }

  #constraint(
    input: ChatInput,
    useTools: ToolDef[],
    generic: boolean,
    thinking: boolean,
  ): ConstraintSpec | undefined {
    const choice = input.toolChoice;
    const rf = input.responseFormat;
    if (!this.info.constrained) {
      if (useTools.length > 0 && choice !== "auto") {
        throw badRequest(
          `tool_choice ${JSON.stringify(choice)} cannot be enforced: this build has no ` +
            "constrained decoding",
          "tool_choice",
        );
      }
      if (rf) {
        throw badRequest(
          "response_format cannot be enforced: no constrained decoding",
          "response_format",
        );
      }
      return undefined;
    }
    if (generic) {
      const named = typeof choice === "object";
      const tools = named ? useTools.filter((t) => t.name === choice.name) : useTools;
      const response = choice === "auto"
        ? rf?.kind === "json_schema" ? rf.schema : rf ? { type: "object" } : { type: "string" }
        : null;
      const schema = genericToolSchema(tools, input.parallelToolCalls && !named, response);
      return { kind: "json_schema", schema };
    }
    if (useTools.length > 0) {
      return {
        kind: "tools",
        format: this.toolFormat,
        tools: useTools,
        choice: choice === "required"
          ? "required"
          : typeof choice === "object"
          ? { name: choice.name }
          : "auto",
        parallel: input.parallelToolCalls,
        chatTemplate: this.template,
        thinking,
        ...(rf && choice === "auto" ? { response: rf } : {}),
      } as ConstraintSpec;
    }
    return rf;
  }
}

/** Refuses schemas nested deeper than the grammar accepts, before anything recurses on them. */
function checkSchemaDepths(input: ChatInput): void {
  const max = MAX_SCHEMA_DEPTH * 2; // a schema level is often two JSON levels (properties)
  input.tools.forEach((t, i) => {
    if (jsonDepth(t.parameters, max) > max) {
      throw badRequest(
        `The parameters schema of tool "${t.name}" is nested too deeply (over ${max} levels)`,
        `tools.${i}`,
      );
    }
  });
  const rf = input.responseFormat;
  if (rf?.kind === "json_schema" && jsonDepth(rf.schema, max) > max) {
    throw badRequest(
      `The response schema is nested too deeply (over ${max} levels)`,
      "response_format",
    );
  }
}

/**
 * The conversation for the generic tool convention: a system message that describes the
 * tools (merged into the first system message), and earlier calls written as the JSON the
 * model is asked to produce.
 */
function genericMessages(
  messages: ChatMessage[],
  tools: ToolDef[],
  mustCall: boolean,
): ChatMessage[] {
  const prompt = genericToolPrompt(tools, mustCall);
  const out = messages.map((m): ChatMessage => {
    if (m.role !== "assistant" || !m.tool_calls?.length) return m;
    const calls = m.tool_calls.map((c) => {
      let args: unknown = c.function.arguments;
      if (typeof args === "string") {
        try {
          args = JSON.parse(args);
        } catch { /* keep the text */ }
      }
      return { name: c.function.name, arguments: args };
    });
    const copy: ChatMessage = { ...m, content: JSON.stringify({ tool_calls: calls }) };
    delete copy.tool_calls;
    return copy;
  });
  if (out[0]?.role === "system") {
    out[0] = { ...out[0], content: `${contentText(out[0].content)}\n\n${prompt}` };
  } else out.unshift({ role: "system", content: prompt });
  return out;
}

/** Text of OpenAI/Anthropic content (string, or text parts joined with "\n"). */
export function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .filter((p) => p && typeof p === "object" && p.type === "text")
      .map((p) => String(p.text ?? ""))
      .join("\n");
  }
  return "";
}
