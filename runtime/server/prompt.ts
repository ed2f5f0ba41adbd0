/**
 * The main thread's side of a model: tokenizer and chat template (read from the GGUF
 * metadata, no weights), and the planning of a request into prompt tokens, engine
 * parameters, a constraint and an output parser. Both APIs go through {@link planChat}.
 *
 * @module
 */
import type { EngineInfo, EngineRequest } from "../engine/engine.ts";
import { readGGUF } from "../gguf/reader.ts";
import {
  applyChatTemplate,
  type ChatMessage,
  chatTemplateFromGGUF,
  type ChatTool,
} from "../tokenizer/chat_template.ts";
import { type Tokenizer, tokenizerFromGGUF } from "../tokenizer/tokenizer.ts";
import {
  type ConstraintSpec,
  loadTools,
  type OutputParser,
  type ToolDef,
  type ToolFormat,
  type ToolsModule,
} from "./_tools.ts";
import { ApiError, badRequest } from "./errors.ts";

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
}

/** A planned chat request. */
export interface ChatPlan {
  /** Prompt token ids. */
  prompt: number[];
  /** Engine parameters (constraint included). */
  params: EngineRequest["params"];
  /** Parses the generated text into content, reasoning and tool calls. */
  parser: OutputParser;
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
  readonly #bos: string;
  readonly #eos: string;

  private constructor(
    tokenizer: Tokenizer,
    template: string | undefined,
    name: string,
    info: EngineInfo,
    tools: ToolsModule,
  ) {
    this.tokenizer = tokenizer;
    this.template = template;
    this.name = name;
    this.info = info;
    this.tools = tools;
    this.toolFormat = tools.detectToolFormat(template, info.arch);
    this.#bos = tokenizer.bosId !== undefined ? tokenizer.tokenText(tokenizer.bosId) : "";
    this.#eos = tokenizer.eosId !== undefined ? tokenizer.tokenText(tokenizer.eosId) : "";
  }

  /** Reads the tokenizer and template of the GGUF at `path`. */
  static async open(path: string, name: string, info: EngineInfo): Promise<ModelFrontend> {
    const gguf = readGGUF(path);
    return new ModelFrontend(
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
    return this.tokenizer.encode(text, { addSpecial, parseSpecial });
  }

  /** The rendered chat prompt. */
  render(messages: ChatMessage[], tools: ToolDef[], kwargs?: Record<string, unknown>): string {
    if (!this.template) {
      throw badRequest("This model has no chat template; use /v1/completions", "messages");
    }
    const chatTools: ChatTool[] = tools.map((t) => ({
      type: "function",
      function: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        parameters: t.parameters,
      },
    }));
    return applyChatTemplate(this.template, messages, {
      tools: chatTools.length > 0 ? chatTools : null,
      addGenerationPrompt: true,
      bosToken: this.#bos,
      eosToken: this.#eos,
      extra: kwargs,
    });
  }

  /** Prompt token ids of a conversation. */
  chatTokens(
    messages: ChatMessage[],
    tools: ToolDef[],
    kwargs?: Record<string, unknown>,
  ): number[] {
    return this.tokenize(this.render(messages, tools, kwargs), false, true);
  }

  /** Throws the context-overflow 400 when `n` prompt tokens do not fit. */
  checkFits(n: number, param = "messages"): void {
    const nCtx = this.info.nCtx;
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
  planChat(input: ChatInput): ChatPlan {
    const choice = input.toolChoice;
    const useTools = choice !== "none" ? input.tools : [];
    if (typeof choice === "object" && !input.tools.some((t) => t.name === choice.name)) {
      throw badRequest(`tool_choice names "${choice.name}", which is not in tools`, "tool_choice");
    }
    if ((choice === "required" || typeof choice === "object") && input.tools.length === 0) {
      throw badRequest("tool_choice requires tools", "tool_choice");
    }
    const text = this.render(input.messages, useTools, input.templateKwargs);
    const prompt = this.tokenize(text, false, true);
    this.checkFits(prompt.length);
    // the prompt opens a reasoning block itself (DeepSeek, Qwen3-2507 thinking templates)
    const forcedOpen = /<think>\s*$/.test(text);
    const thinking = this.thinkingBeforeCall(input.templateKwargs, forcedOpen);
    let constraint: ConstraintSpec | undefined;
    if (useTools.length > 0 && (choice === "required" || typeof choice === "object")) {
      if (this.toolFormat === "none" || !this.info.constrained) {
        throw badRequest(
          `tool_choice ${JSON.stringify(choice)} cannot be enforced: ${
            this.info.constrained
              ? "no tool-call format is known for this model's template"
              : "this build has no constrained decoding"
          }`,
          "tool_choice",
        );
      }
      constraint = {
        kind: "tools",
        format: this.toolFormat,
        tools: useTools,
        choice: choice === "required" ? "required" : { name: choice.name },
        parallel: input.parallelToolCalls,
        chatTemplate: this.template,
        thinking,
      };
    } else if (useTools.length > 0 && this.toolFormat !== "none" && this.info.constrained) {
      // auto: free text until the family's call trigger, then the call is constrained
      constraint = {
        kind: "tools",
        format: this.toolFormat,
        tools: useTools,
        choice: "auto",
        parallel: input.parallelToolCalls,
        chatTemplate: this.template,
        thinking,
      };
    } else if (input.responseFormat) {
      if (!this.info.constrained) {
        throw badRequest(
          "response_format cannot be enforced: no constrained decoding",
          "response_format",
        );
      }
      constraint = input.responseFormat;
    }
    const parser = this.tools.createOutputParser(useTools.length > 0 ? this.toolFormat : "none", {
      tools: useTools,
      thinking: forcedOpen,
    });
    const params = { ...input.params };
    if (constraint) params.constraint = constraint;
    return { prompt, params, parser };
  }
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
