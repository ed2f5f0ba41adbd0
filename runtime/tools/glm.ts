/**
 * GLM-4.5/4.6/4.7 tool calls (`glm4moe`), as their chat templates render them:
 *
 * - GLM-4.5/4.6: `<tool_call>NAME\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>\n...
 *   </tool_call>`, calls joined by "\n";
 * - GLM-4.7: the same without the newlines,
 *   `<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value></tool_call>`.
 *
 * A value is the raw text for a string parameter, JSON otherwise (the templates write
 * `v | tojson if v is not string else v`). Both layouts parse with the same parser (whitespace
 * between tags is skipped). Reasoning is `<think>...</think>`; GLM-4.7 opens `<think>` in the
 * generation prompt, GLM-4.5/4.6 write it themselves.
 *
 * @module
 */

import { TaggedCalls, type TaggedSpec } from "./_tagged.ts";
import type { ContentSink, Emitter } from "./mod.ts";

/** GLM's tags. */
export const GLM_SPEC: TaggedSpec = {
  block: null,
  callOpen: "<tool_call>",
  nameEnd: ["<", "\n"],
  consumeNameEnd: false,
  callClose: "</tool_call>",
  keyOpen: "<arg_key>",
  keyClose: "</arg_key>",
  valueOpen: "<arg_value>",
  valueClose: "</arg_value>",
};

/** Whether a GLM template writes the compact (GLM-4.7) layout, without newlines between tags. */
export function glmCompact(chatTemplate: string | undefined): boolean {
  return (chatTemplate ?? "").includes("</arg_key><arg_value>");
}

/**
 * The streaming parser of GLM tool calls. (A function, not a subclass: the modules of this
 * folder import each other, and a class that extends an import would need it at load time.)
 */
export function glmCalls(ev: Emitter): ContentSink {
  return new TaggedCalls(ev, GLM_SPEC);
}
