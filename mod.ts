/**
 * spool — a local inference runtime for Mixture-of-Experts language models.
 *
 * The public library API: load a GGUF model and generate from it, tokenize, render chat
 * templates; read, write and quantize GGUF files; inspect what a model costs per token; the
 * native kernels behind one C ABI.
 *
 * ```ts
 * import { loadModel } from "./mod.ts";
 * const m = loadModel("model.gguf", { threads: 2 });
 * for await (const t of m.generate([{ role: "user", content: "Hello" }], { maxTokens: 32 })) {
 *   console.log(t.text);
 * }
 * m.close();
 * ```
 *
 * @module
 */
export { loadModel, SpoolModel } from "./runtime/api.ts";
export type { LoadModelOptions, SpoolGenerateOptions } from "./runtime/api.ts";
export { generate, prefill } from "./runtime/engine/generate.ts";
export type {
  FinishReason,
  GeneratedToken,
  GenerateOptions,
  GenerationResult,
} from "./runtime/engine/generate.ts";
export { Model, ModelFileChangedError, ModelLoadError } from "./runtime/engine/model.ts";
export type { LoadOptions } from "./runtime/engine/model.ts";
export { evalBatch } from "./runtime/engine/batch.ts";
export type { BatchItem } from "./runtime/engine/batch.ts";
export { CacheFullError, cacheMetrics, ExpertCache } from "./runtime/experts/cache.ts";
export type { CacheSnapshot, CacheStats } from "./runtime/experts/cache.ts";
export { BudgetError, formatSize, parseSize, planBudget } from "./runtime/experts/budget.ts";
export type { BudgetPlan } from "./runtime/experts/budget.ts";
export { ProfileError } from "./runtime/experts/profile.ts";
export { ContextOverflowError, Session } from "./runtime/engine/session.ts";
export type { LogitsMode, SessionOptions } from "./runtime/engine/session.ts";
export { LLAMA_DEFAULTS, OPENAI_DEFAULTS, Sampler } from "./runtime/engine/sampling.ts";
export type { SamplingParams } from "./runtime/engine/sampling.ts";
export { StopMatcher } from "./runtime/engine/stop.ts";
export { Tokenizer, tokenizerFromGGUF } from "./runtime/tokenizer/tokenizer.ts";
export { TextStreamDecoder } from "./runtime/tokenizer/detokenize.ts";
export { applyChatTemplate, chatTemplateFromGGUF } from "./runtime/tokenizer/chat_template.ts";
export type { ChatMessage, ChatTool } from "./runtime/tokenizer/chat_template.ts";
export { ARCHS, getArch, supportedArchs, UnsupportedArchError } from "./runtime/models/registry.ts";
export type { ArchSpec, ModelConfig } from "./runtime/models/registry.ts";
export { writeSyntheticModel } from "./runtime/models/synth.ts";
export * from "./runtime/gguf/mod.ts";
export { formatBytes, formatReport, inspectGGUF } from "./runtime/inspect.ts";
export type { InspectReport, InspectSource, TypeTotal } from "./runtime/inspect.ts";
export { check, Impl, KernelError, KernelLoadError, native, Status } from "./ffi/mod.ts";
export type { Native, Ptr } from "./ffi/mod.ts";
export { createServer } from "./runtime/server/serve.ts";
export type { ServerOptions, SpoolServer } from "./runtime/server/serve.ts";
export { createApp } from "./runtime/server/app.ts";
export type { AppOptions } from "./runtime/server/app.ts";
export { Engine, EngineError } from "./runtime/engine/engine.ts";
export type { EngineInfo, EngineOptions } from "./runtime/engine/engine.ts";
