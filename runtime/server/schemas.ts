/**
 * Request schemas (zod) of the OpenAI and Anthropic endpoints. Objects are loose: unknown
 * parameters are accepted and ignored, as both APIs' clients send extras (Claude Code's
 * `metadata`, `cache_control`; OpenAI's `user`, `store`...). {@link parseBody} turns a zod
 * failure into a 400 whose `param` is the path of the first issue.
 *
 * @module
 */
import { z } from "zod";
import { ApiError } from "./errors.ts";

const num = z.number();
const record = z.record(z.string(), z.unknown());

/** A content part (text, image_url, ...); only text parts are rendered. */
const ContentPart = z.looseObject({ type: z.string(), text: z.string().optional() });

/** OpenAI message content: a string, parts, or null. */
const OpenAIContent = z.union([z.string(), z.array(ContentPart), z.null()]).optional();

/** An assistant tool call in the history. */
const OpenAIToolCall = z.looseObject({
  id: z.string().optional(),
  type: z.string().optional(),
  function: z.looseObject({
    name: z.string(),
    arguments: z.union([z.string(), record]).optional(),
  }),
});

/** An OpenAI chat message. */
export const OpenAIMessage = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant", "tool", "function"]),
  content: OpenAIContent,
  name: z.string().nullish(),
  tool_calls: z.array(OpenAIToolCall).nullish(),
  tool_call_id: z.string().nullish(),
  reasoning_content: z.string().nullish(),
  reasoning: z.string().nullish(),
});

/** An OpenAI tool (function) definition. */
export const OpenAITool = z.looseObject({
  type: z.literal("function"),
  function: z.looseObject({
    name: z.string().min(1),
    description: z.string().nullish(),
    parameters: record.nullish(),
    strict: z.boolean().nullish(),
  }),
});

const ToolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  z.looseObject({ type: z.literal("function"), function: z.looseObject({ name: z.string() }) }),
]);

const ResponseFormat = z.discriminatedUnion("type", [
  z.looseObject({ type: z.literal("text") }),
  z.looseObject({ type: z.literal("json_object") }),
  z.looseObject({
    type: z.literal("json_schema"),
    json_schema: z.looseObject({
      name: z.string().optional(),
      schema: record.optional(),
      strict: z.boolean().nullish(),
    }),
  }),
]);

/** Sampling parameters common to chat and completions. */
const samplingFields = {
  model: z.string().optional(),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: z.number().int().min(0).nullish(),
  max_completion_tokens: z.number().int().min(0).nullish(),
  temperature: num.min(0).max(2).nullish(),
  top_p: num.min(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  min_p: num.min(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  presence_penalty: num.min(-2).max(2).nullish(),
  frequency_penalty: num.min(-2).max(2).nullish(),
  repeat_penalty: num.min(0).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).nullish(),
  logit_bias: z.record(z.string(), num).nullish(),
  n: z.number().int().min(1).nullish(),
  /** llama.cpp's extension: false evaluates the prompt from the start (no prefix reuse). */
  cache_prompt: z.boolean().nullish(),
};

/** POST /v1/chat/completions. */
export const ChatCompletionRequest = z.looseObject({
  ...samplingFields,
  messages: z.array(OpenAIMessage).min(1),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(OpenAITool).nullish(),
  tool_choice: ToolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: ResponseFormat.nullish(),
  chat_template_kwargs: record.nullish(),
});
/** Parsed body of /v1/chat/completions. */
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

/** POST /v1/completions. */
export const CompletionRequest = z.looseObject({
  ...samplingFields,
  prompt: z.union([
    z.string(),
    z.array(z.number().int().min(0)).min(1),
    z.array(z.union([z.string(), z.array(z.number().int().min(0)).min(1)])).min(1).max(16),
  ]),
  logprobs: z.number().int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
});
/** Parsed body of /v1/completions. */
export type CompletionRequest = z.infer<typeof CompletionRequest>;

/** An Anthropic content block (text, image, tool_use, tool_result, thinking, ...). */
const AnthropicBlock = z.looseObject({ type: z.string() });

/** An Anthropic message. */
export const AnthropicMessage = z.looseObject({
  role: z.enum(["user", "assistant"]),
  content: z.union([z.string(), z.array(AnthropicBlock)]),
});

const anthropicFields = {
  model: z.string().optional(),
  messages: z.array(AnthropicMessage).min(1),
  system: z.union([z.string(), z.array(z.looseObject({ type: z.string(), text: z.string() }))])
    .optional(),
  tools: z.array(
    z.looseObject({
      name: z.string().min(1),
      description: z.string().optional(),
      input_schema: record.optional(),
    }),
  ).optional(),
  tool_choice: z.looseObject({
    type: z.enum(["auto", "any", "tool", "none"]),
    name: z.string().optional(),
    disable_parallel_tool_use: z.boolean().optional(),
  }).optional(),
  thinking: z.looseObject({ type: z.string(), budget_tokens: z.number().optional() }).optional(),
};

/** Anthropic structured output: `{type: "json_schema", schema}`. */
const OutputFormat = z.looseObject({ type: z.string(), schema: record.optional() });

/** POST /v1/messages. */
export const MessagesRequest = z.looseObject({
  ...anthropicFields,
  output_format: OutputFormat.nullish(),
  output_config: z.looseObject({ format: OutputFormat.nullish() }).nullish(),
  max_tokens: z.number().int().min(1),
  stop_sequences: z.array(z.string()).optional(),
  temperature: num.min(0).max(1).optional(),
  top_p: num.min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  stream: z.boolean().optional(),
});
/** Parsed body of /v1/messages. */
export type MessagesRequest = z.infer<typeof MessagesRequest>;

/** POST /v1/messages/count_tokens. */
export const CountTokensRequest = z.looseObject(anthropicFields);
/** Parsed body of /v1/messages/count_tokens. */
export type CountTokensRequest = z.infer<typeof CountTokensRequest>;

/** POST /tokenize (llama-server shape). */
export const TokenizeRequest = z.looseObject({
  content: z.string(),
  add_special: z.boolean().optional(),
  parse_special: z.boolean().optional(),
  with_pieces: z.boolean().optional(),
});

/** POST /detokenize (llama-server shape). */
export const DetokenizeRequest = z.looseObject({ tokens: z.array(z.number().int().min(0)) });

/** Parses `body` with `schema`; throws a 400 {@link ApiError} naming the first bad field. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const param = issue.path.join(".");
  throw new ApiError(
    400,
    "invalid_request_error",
    `Invalid request: ${param ? `${param}: ` : ""}${issue.message}`,
    { param: param || null, code: "invalid_value" },
  );
}

/** The request schemas by name, for validating a large body in the body worker (body.ts). */
export const BODY_SCHEMAS = {
  ChatCompletionRequest,
  CompletionRequest,
  MessagesRequest,
  CountTokensRequest,
  TokenizeRequest,
  DetokenizeRequest,
};

/** The name of a request schema in {@link BODY_SCHEMAS}. */
export type BodySchemaName = keyof typeof BODY_SCHEMAS;
