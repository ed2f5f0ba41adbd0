/**
 * The server's view of tool-call parsing (runtime/tools) and constrained decoding
 * (runtime/grammar): the types it uses and the two functions, behind one small interface.
 * Static imports, so bundlers (`bun build --compile`) include them.
 */
import { createOutputParser, detectToolFormat } from "../tools/mod.ts";
import type { OutputParser, ToolDef, ToolFormat } from "../tools/mod.ts";

export type { ConstraintSpec } from "../grammar/mod.ts";
export type { OutputEvent, OutputParser, ToolDef, ToolFormat } from "../tools/mod.ts";

/** The tool-call functions the server uses. */
export interface ToolsModule {
  /** Whether tool calls are parsed (always, in this build). */
  available: boolean;
  detectToolFormat(chatTemplate: string | undefined, arch: string): ToolFormat;
  createOutputParser(
    format: ToolFormat,
    opts: { tools: ToolDef[]; thinking: boolean },
  ): OutputParser;
}

/** The tool-call functions. */
export function loadTools(): Promise<ToolsModule> {
  return Promise.resolve({ available: true, detectToolFormat, createOutputParser });
}
