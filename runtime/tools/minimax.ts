/**
 * MiniMax-M2 tool calls (`minimax-m2`), as its chat template renders them:
 *
 * ```
 * <minimax:tool_call>
 * <invoke name="NAME">
 * <parameter name="K">V</parameter>
 * ...
 * </invoke>
 * ...
 * </minimax:tool_call>
 * ```
 *
 * One block holds all calls of a turn. A value is the raw text for a string parameter, JSON
 * otherwise (`v | tojson if v is not string else v`). Reasoning is `<think>...</think>`, opened
 * by the generation prompt.
 *
 * @module
 */

import { TaggedCalls, type TaggedSpec } from "./_tagged.ts";
import type { ContentSink, Emitter } from "./mod.ts";

/** MiniMax-M2's tags. */
export const MINIMAX_SPEC: TaggedSpec = {
  block: ["<minimax:tool_call>", "</minimax:tool_call>"],
  callOpen: '<invoke name="',
  nameEnd: ['">'],
  consumeNameEnd: true,
  callClose: "</invoke>",
  keyOpen: '<parameter name="',
  keyClose: '">',
  valueOpen: "",
  valueClose: "</parameter>",
};

/**
 * The streaming parser of MiniMax-M2 tool calls. (A function, not a subclass: the modules of this
 * folder import each other, and a class that extends an import would need it at load time.)
 */
export function minimaxCalls(ev: Emitter): ContentSink {
  return new TaggedCalls(ev, MINIMAX_SPEC);
}
