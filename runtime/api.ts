/**
 * The library API: a loaded model with its tokenizer and chat template, sessions, and
 * generation as an async iterator.
 *
 * ```ts
 * import { loadModel } from "./mod.ts";
 * const m = loadModel("qwen3-30b-a3b-q4_k_m.gguf", { threads: 4 });
 * for await (const t of m.generate([{ role: "user", content: "Hi!" }], { maxTokens: 64 })) {
 *   console.log(t.text);
 * }
 * m.close();
 * ```
 */
import {
  generate,
  type GeneratedToken,
  type GenerateOptions,
  type GenerationResult,
} from "./engine/generate.ts";
import { type LoadOptions, Model } from "./engine/model.ts";
import { Session, type SessionOptions } from "./engine/session.ts";
import type { ModelConfig } from "./models/config.ts";
import type { CacheSnapshot } from "./experts/cache.ts";
import {
  applyChatTemplate,
  type ApplyChatTemplateOptions,
  type ChatMessage,
  chatTemplateFromGGUF,
} from "./tokenizer/chat_template.ts";
import { type Tokenizer, tokenizerFromGGUF } from "./tokenizer/tokenizer.ts";

/** Options of {@link loadModel}. */
export interface LoadModelOptions extends LoadOptions {
  /** Default context length of new sessions. */
  nCtx?: number;
}

/** Options of {@link SpoolModel.generate}. */
export interface SpoolGenerateOptions extends GenerateOptions {
  /** Continue in this session (reusing its cached prefix); default: the model's own session. */
  session?: Session;
  /** Chat-template options when the input is a list of messages. */
  chat?: ApplyChatTemplateOptions;
}

/** A model ready to generate: weights, tokenizer, chat template. */
export class SpoolModel {
  readonly model: Model;
  readonly tokenizer: Tokenizer;
  /** The GGUF's `tokenizer.chat_template`, if it has one. */
  readonly chatTemplate: string | undefined;
  readonly nCtx: number;
  #session?: Session;

  constructor(model: Model, nCtx?: number) {
    this.model = model;
    this.tokenizer = tokenizerFromGGUF(model.gguf);
    this.chatTemplate = chatTemplateFromGGUF(model.gguf.kv) ?? undefined;
    this.nCtx = nCtx ?? Math.min(model.config.nCtxTrain || 4096, 4096);
  }

  /** Hyperparameters. */
  get config(): ModelConfig {
    return this.model.config;
  }

  /** Token ids of `text`; special-token text is parsed and BOS added as the vocab asks. */
  tokenize(text: string, opts: { addSpecial?: boolean; parseSpecial?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, {
      addSpecial: opts.addSpecial ?? true,
      parseSpecial: opts.parseSpecial ?? true,
    });
  }

  /** Text of token ids (control tokens omitted unless `special`). */
  detokenize(ids: ArrayLike<number>, opts: { special?: boolean } = {}): string {
    return this.tokenizer.decode(ids, { special: opts.special ?? false });
  }

  /** Render `messages` with the model's own chat template. */
  applyChatTemplate(messages: ChatMessage[], opts: ApplyChatTemplateOptions = {}): string {
    if (!this.chatTemplate) {
      throw new Error(`${this.model.path} has no tokenizer.chat_template; pass a raw prompt`);
    }
    const t = this.tokenizer;
    return applyChatTemplate(this.chatTemplate, messages, {
      addGenerationPrompt: true,
      bosToken: t.bosId !== undefined ? t.tokenText(t.bosId) : "",
      eosToken: t.eosId !== undefined ? t.tokenText(t.eosId) : "",
      ...opts,
    });
  }

  /** Prompt token ids for a raw prompt or a conversation. */
  promptTokens(input: string | ChatMessage[], chat: ApplyChatTemplateOptions = {}): number[] {
    if (typeof input === "string") return this.tokenize(input);
    // the template writes BOS itself when the model wants it
    return this.tokenize(this.applyChatTemplate(input, chat), { addSpecial: false });
  }

  /** A new session (its own KV cache). Close it when done. */
  createSession(opts: SessionOptions = {}): Session {
    return new Session(this.model, { nCtx: this.nCtx, ...opts });
  }

  /** The model's default session, created on first use. */
  get session(): Session {
    return this.#session ??= this.createSession();
  }

  /**
   * Generate from a raw prompt or a conversation; yields tokens with their text. The
   * iterator's return value has the finish reason and token counts.
   */
  generate(
    input: string | ChatMessage[],
    opts: SpoolGenerateOptions = {},
  ): AsyncGenerator<GeneratedToken, GenerationResult> {
    const prompt = this.promptTokens(input, opts.chat);
    return generate(opts.session ?? this.session, this.tokenizer, prompt, opts);
  }

  /**
   * Expert-cache statistics: hits, misses, hit rate, bytes read, read GB/s, stall time
   * (total and per token), predictor precision and recall, pinned and resident slots. Null
   * when every expert is mapped (the model fits its budget). `cacheMetrics(snapshot)` turns
   * it into Prometheus text.
   */
  expertStats(): CacheSnapshot | null {
    return this.model.expertCacheStats();
  }

  /** Free the default session and the model. */
  close(): void {
    this.#session?.close();
    this.model.close();
  }
}

/** Load a GGUF model for generation. */
export function loadModel(path: string, opts: LoadModelOptions = {}): SpoolModel {
  return new SpoolModel(Model.load(path, opts), opts.nCtx);
}
