/**
 * Tool-call grammars of the GLM-4.5/4.6/4.7, MiniMax-M2 and Kimi K2 families, exactly as their
 * chat templates render calls (see `runtime/tools/glm.ts`, `minimax.ts`, `kimi.ts`):
 *
 * - GLM-4.5/4.6: `<tool_call>NAME\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>\n...
 *   </tool_call>`, calls joined by "\n"; GLM-4.7 (its template writes
 *   `</arg_key><arg_value>`): the same without newlines;
 * - MiniMax-M2: `<minimax:tool_call>\n<invoke name="NAME">\n<parameter name="K">V</parameter>\n
 *   ...</invoke>\n...</minimax:tool_call>`;
 * - Kimi K2: `<|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX
 *   <|tool_call_argument_begin|>ARGS<|tool_call_end|>...<|tool_calls_section_end|>`.
 *
 * In the tagged formats a string parameter is raw text up to the closing tag and any other
 * parameter is JSON of its schema; each parameter comes at most once, in any order, and the
 * call closes only once the required ones are there. The tags are special (they are control
 * tokens in these vocabularies).
 *
 * @module
 */

import type { ToolDef, ToolFormat } from "../tools/mod.ts";
import { glmCompact } from "../tools/glm.ts";
import { KIMI } from "../tools/kimi.ts";
import { alt, chars, type GNode, lit, rep, seq, type XmlStyle } from "./automaton.ts";
import { compileSchema, xmlParams } from "./schema.ts";
import type { ToolGrammar } from "./mod.ts";

/** GLM-4.5/4.6's argument tags (a newline after each value). */
const GLM_XML: XmlStyle = {
  open: (k) => `<arg_key>${k}</arg_key>\n<arg_value>`,
  close: "</arg_value>\n",
  end: "</tool_call>",
  special: true,
};

/** GLM-4.7's argument tags (no newlines). */
const GLM_COMPACT_XML: XmlStyle = {
  open: (k) => `<arg_key>${k}</arg_key><arg_value>`,
  close: "</arg_value>",
  end: "</tool_call>",
  special: true,
};

/** MiniMax-M2's parameter tags. */
const MINIMAX_XML: XmlStyle = {
  open: (k) => `<parameter name="${k}">`,
  close: "</parameter>\n",
  end: "</invoke>\n",
  special: true,
};

/** The grammar of `format` if it is one of these families, else null. */
export function familyToolGrammar(
  format: ToolFormat,
  tools: readonly ToolDef[],
  max: number,
  chatTemplate?: string,
): ToolGrammar | null {
  switch (format) {
    case "glm":
      return glmGrammar(tools, max, glmCompact(chatTemplate));
    case "minimax":
      return minimaxGrammar(tools, max);
    case "kimi":
      return kimiGrammar(tools, max);
    default:
      return null;
  }
}

function glmGrammar(tools: readonly ToolDef[], max: number, compact: boolean): ToolGrammar {
  const style = compact ? GLM_COMPACT_XML : GLM_XML;
  const nl = compact ? "" : "\n";
  const body = (t: ToolDef) => seq([lit([`${t.name}${nl}`], true), xmlParams(t.parameters, style)]);
  const one = alt(tools.map((t) => seq([lit(["<tool_call>"], true), body(t)])));
  return {
    calls: rep(one, compact ? null : lit(["\n"]), 1, max),
    trigger: "<tool_call>",
    afterTrigger: alt(tools.map(body)),
    thinkEnd: "</think>",
  };
}

function minimaxGrammar(tools: readonly ToolDef[], max: number): ToolGrammar {
  const invoke = alt(
    tools.map((t) =>
      seq([lit([`<invoke name="${t.name}">\n`], true), xmlParams(t.parameters, MINIMAX_XML)])
    ),
  );
  const list = seq([lit(["\n"]), rep(invoke, null, 1, max), lit(["</minimax:tool_call>"], true)]);
  const block = seq([lit(["<minimax:tool_call>"], true), list]);
  return {
    // the template writes "\n" before the block (after "</think>\n\n": three newlines)
    calls: alt([seq([lit(["\n"]), block]), block]),
    trigger: "<minimax:tool_call>",
    afterTrigger: list,
    thinkEnd: "</think>",
  };
}

function kimiGrammar(tools: readonly ToolDef[], max: number): ToolGrammar {
  const call = (t: ToolDef): GNode =>
    seq([
      lit([`${KIMI.callBegin}functions.${t.name}:`], true),
      chars("0123456789", 1, 4),
      lit([KIMI.argsBegin], true),
      compileSchema(t.parameters ?? {}),
      lit([KIMI.callEnd], true),
    ]);
  const list = seq([rep(alt(tools.map(call)), null, 1, max), lit([KIMI.sectionEnd], true)]);
  return {
    calls: seq([lit([KIMI.sectionBegin], true), list]),
    trigger: KIMI.sectionBegin,
    afterTrigger: list,
    thinkEnd: "</think>",
  };
}
