/**
 * The server's view of tool-call parsing (runtime/tools) and constrained decoding
 * (runtime/grammar), loaded when this build has them. Without them, output is plain content
 * and constraints are refused with a 400 (never silently unenforced).
 */

/** Tool-call conventions per model family. */
export type ToolFormat = "qwen3" | "qwen3_coder" | "harmony" | "mistral" | "deepseek" | "none";

/** A tool offered to the model. */
export interface ToolDef {
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters: Record<string, unknown>;
}

/** What the output parser makes of generated text. */
export type OutputEvent =
  | { type: "content"; text: string }
  | { type: "reasoning"; text: string }
  | { type: "tool_call_start"; index: number; id: string; name: string }
  | { type: "tool_call_args"; index: number; text: string }
  | { type: "tool_call_end"; index: number; arguments: string };

/** Incremental parser of one response. */
export interface OutputParser {
  push(text: string): OutputEvent[];
  end(): OutputEvent[];
}

/** A constraint specification, compiled in the engine worker. */
export type ConstraintSpec =
  | { kind: "json_object" }
  | { kind: "json_schema"; schema: Record<string, unknown> }
  | {
    kind: "tools";
    format: ToolFormat;
    tools: ToolDef[];
    choice: "required" | { name: string } | "auto";
    parallel: boolean;
    /** The chat template (picks a family's syntax variant). */
    chatTemplate?: string;
    /** A free reasoning block may precede the call. */
    thinking?: boolean;
  };

/** The tool-call functions the server uses. */
export interface ToolsModule {
  /** Whether the real module was found. */
  available: boolean;
  detectToolFormat(chatTemplate: string | undefined, arch: string): ToolFormat;
  createOutputParser(
    format: ToolFormat,
    opts: { tools: ToolDef[]; thinking: boolean },
  ): OutputParser;
}

/** Passes all text through as content. */
class PlainParser implements OutputParser {
  push(text: string): OutputEvent[] {
    return text ? [{ type: "content", text }] : [];
  }
  end(): OutputEvent[] {
    return [];
  }
}

/** Loads runtime/tools/mod.ts, or a plain-content stand-in when it is missing. */
export async function loadTools(): Promise<ToolsModule> {
  try {
    const path = "../tools/mod.ts";
    const m = await import(path);
    return {
      available: true,
      detectToolFormat: m.detectToolFormat,
      createOutputParser: m.createOutputParser,
    };
  } catch {
    return {
      available: false,
      detectToolFormat: () => "none",
      createOutputParser: () => new PlainParser(),
    };
  }
}
