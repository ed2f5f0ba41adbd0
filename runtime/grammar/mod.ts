/**
 * Constrained decoding: compile a response format or a tool-call requirement into a token
 * constraint that says, for the current state, whether a token may come next.
 *
 * ```ts
 * const vocab = constraintVocab(tokenizer); // once per model (caches the token bytes)
 * const c = compileConstraint({ kind: "json_schema", schema }, vocab);
 * const r = sampleConstrained(sampler, logits, history, c); // engine/constrained.ts
 * c.advance(r.token);
 * ```
 *
 * ## What is enforced
 *
 * - `json_object`: any JSON object. `json_schema`: a value of the schema, JSON Schema 2020-12
 *   as real tools write it: `type` (also arrays of types), `properties`, `required`,
 *   `additionalProperties` (false, true or a schema), `items`, `minItems`/`maxItems`, `enum`,
 *   `const`, `anyOf`/`oneOf` (as "any of"), `allOf` (shallow merge), `$ref` into `$defs`,
 *   `definitions` or any local JSON pointer (recursion works), strings with
 *   `minLength`/`maxLength` (in code points), numbers and integers, booleans, null, nesting.
 *   `$schema`, `description`, `title`, `format`, `default` and unknown keywords are ignored.
 * - Approximations, on purpose: `pattern` is a plain string; `minimum`/`maximum` are not
 *   enforced except that `minimum >= 0` forbids a minus sign; numbers have at most 15 integer
 *   and 15 fraction digits; `oneOf` does not check exclusivity; siblings of `$ref` are
 *   ignored; an object that declares `properties` but says nothing of `additionalProperties`
 *   takes only its declared keys (what a tool call wants; the spec default would allow any);
 *   object keys may come in any order, each at most once, and `}` is allowed only once every
 *   required key is present; free keys (additionalProperties) cannot contain escapes.
 * - Whitespace: at most one space or newline wherever JSON allows whitespace inside objects
 *   and arrays, none before or after the top-level value. This stops runaway whitespace.
 * - Control tokens (e.g. `[TOOL_CALLS]`, `<|channel|>`) can only appear as part of the call
 *   syntax, never inside JSON strings.
 * - `tools`: the family's call syntax (see {@link toolGrammar}) with each tool's arguments
 *   schema. `required` and `{name}` constrain from the first token (with `thinking: true`, a
 *   free `...</think>` block may come first); `auto` is lazy: unconstrained until the model
 *   writes the family's trigger (`<tool_call>`, `[TOOL_CALLS]`, `to=functions.`,
 *   `<｜tool▁calls▁begin｜>`, `<minimax:tool_call>`, `<|tool_calls_section_begin|>`), then
 *   constrained until the call closes. Without `parallel`,
 *   only an end-of-generation token may follow the first call.
 * - End-of-generation tokens are accepted only where the grammar is complete (or, in `auto`
 *   mode, outside a call).
 *
 * ## Cost
 *
 * `accepts` runs the token's bytes through the automaton, with results cached per automaton
 * state (the state key stays the same through the inside of a string, so long strings hit the
 * cache). {@link TokenConstraint} implementations from here also offer `fillMask`, which tests
 * the whole vocabulary at once by walking the tokens in sorted byte order and sharing the
 * automaton steps of common prefixes; `sampleConstrained` uses it when rejection sampling
 * keeps failing. Measured numbers are in the test output and the module doc of
 * `engine/constrained.ts`.
 *
 * @module
 */

import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { TokenAttr } from "../tokenizer/tokenizer.ts";
import type { ToolDef, ToolFormat } from "../tools/mod.ts";
import {
  alt,
  ANY_OBJECT,
  chars,
  END,
  type GNode,
  initialStacks,
  lit,
  rep,
  seq,
  type Stack,
  stackComplete,
  stackKey,
  stepAll,
  text,
  utf8,
} from "./automaton.ts";
import { compileSchema, xmlParams } from "./schema.ts";
import { GrammarError } from "./errors.ts";
import { familyToolGrammar } from "./_families.ts";

export { GrammarError, type GrammarErrorCode } from "./errors.ts";

/** What to constrain the output to. */
export type ConstraintSpec =
  | { kind: "json_object" }
  | { kind: "json_schema"; schema: Record<string, unknown> }
  | {
    kind: "tools";
    format: ToolFormat;
    tools: ToolDef[];
    choice: "required" | { name: string } | "auto";
    parallel: boolean;
    /**
     * Optional: the model's chat template, to pick the variant of a family's syntax
     * (Mistral: `[TOOL_CALLS][{...}]` vs `name[ARGS]` vs `name[CALL_ID]id[ARGS]`; DeepSeek:
     * V3.1 vs R1). Without it: Mistral `name[ARGS]`, DeepSeek V3.1.
     */
    chatTemplate?: string;
    /**
     * Optional: the model thinks first (Qwen3, DeepSeek R1, Magistral). With `required` or a
     * named choice, a free reasoning block ending in `</think>` (`[/THINK]`) may precede the
     * call. Default false: the call starts at the first token.
     */
    thinking?: boolean;
    /**
     * Optional, with `auto`: a response format for a text answer. The output is then either
     * a value of that format or the calls (constrained from the first token, not lazily).
     */
    response?: { kind: "json_object" } | { kind: "json_schema"; schema: Record<string, unknown> };
  };

/** The vocabulary as the constraint sees it: token bytes and end-of-generation ids. */
export interface ConstraintVocab {
  /** The bytes of token `id` as they appear in the output text (control tokens as text). */
  piece(id: number): Uint8Array;
  /** Whether `id` ends generation. */
  isEog(id: number): boolean;
  /** Vocabulary size. */
  nVocab: number;
  /** Whether `id` is a control token (allowed only inside the call syntax). Optional. */
  isControl?(id: number): boolean;
}

/** The state of constrained decoding for one sequence. */
export interface TokenConstraint {
  /** An independent copy (same compiled grammar, shared caches). */
  clone(): TokenConstraint;
  /** Whether token `tokenId` may come next. */
  accepts(tokenId: number): boolean;
  /** Consume token `tokenId` (throws {@link GrammarError} `dead_end` if it is not accepted). */
  advance(tokenId: number): void;
  /** Whether the output so far is a complete match (an end-of-generation token may come). */
  isComplete(): boolean;
}

/**
 * A {@link TokenConstraint} that can also test every token at once: sets the logit of every
 * rejected token to -Infinity in `logits` (in place) and returns how many tokens remain.
 */
export interface MaskingConstraint extends TokenConstraint {
  /** Masks rejected tokens in place; returns the number of accepted tokens. */
  fillMask(logits: Float32Array): number;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

interface VocabIndex {
  /** Token ids of non-control, non-EOG tokens with bytes, sorted by bytes. */
  order: Int32Array;
  /** Common prefix length with the previous token in `order`. */
  lcp: Int32Array;
  /** Control (non-EOG) tokens with bytes: tested one by one. */
  control: Int32Array;
  /** EOG tokens. */
  eog: Int32Array;
}

const INDEX = new WeakMap<ConstraintVocab, VocabIndex>();

function vocabIndex(v: ConstraintVocab): VocabIndex {
  let ix = INDEX.get(v);
  if (ix) return ix;
  const normal: number[] = [];
  const control: number[] = [];
  const eog: number[] = [];
  for (let id = 0; id < v.nVocab; id++) {
    if (v.isEog(id)) eog.push(id);
    else if (v.piece(id).length === 0) continue;
    else if (v.isControl?.(id)) control.push(id);
    else normal.push(id);
  }
  const cmp = (a: number, b: number) => {
    const x = v.piece(a), y = v.piece(b);
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  };
  normal.sort(cmp);
  const order = Int32Array.from(normal);
  const lcp = new Int32Array(order.length);
  for (let i = 1; i < order.length; i++) {
    const x = v.piece(order[i - 1]), y = v.piece(order[i]);
    let k = 0;
    while (k < x.length && k < y.length && x[k] === y[k]) k++;
    lcp[i] = k;
  }
  ix = { order, lcp, control: Int32Array.from(control), eog: Int32Array.from(eog) };
  INDEX.set(v, ix);
  return ix;
}

/**
 * A {@link ConstraintVocab} for spool's tokenizer: token bytes as rendered with special
 * tokens shown (`tokenPiece(id, true)`), computed once and cached, the tokenizer's EOG set,
 * and its control tokens; also sorts the vocabulary for `fillMask`. Build it once per model
 * (about 0.8 s for the 151,936-token Qwen vocabulary); it is shared by every request.
 */
export function constraintVocab(tokenizer: Tokenizer): ConstraintVocab {
  const n = tokenizer.nVocab;
  const pieces: Uint8Array[] = new Array(n);
  for (let i = 0; i < n; i++) pieces[i] = tokenizer.tokenPiece(i, true);
  const control = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (tokenizer.tokenAttr(i) & TokenAttr.CONTROL) control[i] = 1;
  }
  const eog = new Uint8Array(n);
  for (const id of tokenizer.eogIds) eog[id] = 1;
  const v: ConstraintVocab = {
    nVocab: n,
    piece: (id) => pieces[id],
    isEog: (id) => eog[id] === 1,
    isControl: (id) => control[id] === 1,
  };
  vocabIndex(v); // the sorted index for fillMask, built now rather than in a request
  return v;
}

// ---------------------------------------------------------------------------------------------
// Tool grammars

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** A family's grammar for tool calls: the full form, and the lazy trigger + rest. */
export interface ToolGrammar {
  /** One or more calls (as `parallel` allows), from the first byte of the call syntax. */
  calls: GNode;
  /** The text that starts a call in `auto` mode. */
  trigger: string;
  /** What must follow the trigger: one call (or, DeepSeek, the whole block). */
  afterTrigger: GNode;
  /** The text that ends a reasoning block, for `thinking`. */
  thinkEnd: string | null;
}

/**
 * The tool-call grammar of a family, exactly as its chat template renders calls:
 * - qwen3: `<tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>`, calls joined by
 *   "\n";
 * - qwen3_coder: `<tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n...
 *   </function>\n</tool_call>` (string parameters raw, others as JSON);
 * - harmony: `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>ARGS`
 *   (then the model's `<|call|>`, an end-of-generation token); one call;
 * - mistral: `[TOOL_CALLS]NAME[ARGS]ARGS` per call, or `[TOOL_CALLS]NAME[CALL_ID]ID[ARGS]ARGS`
 *   or `[TOOL_CALLS][{"name": "NAME", "arguments": ARGS, "id": "ID"}, ...]` when the template
 *   renders that form (ID = 9 alphanumerics);
 * - deepseek: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>
 *   ...<｜tool▁calls▁end｜>` (V3.1), or R1's `function<｜tool▁sep｜>NAME\n```json\nARGS\n```` form.
 * - glm, minimax, kimi: see `_families.ts`.
 */
export function toolGrammar(
  format: ToolFormat,
  tools: readonly ToolDef[],
  parallel: boolean,
  chatTemplate?: string,
): ToolGrammar {
  if (tools.length === 0) {
    throw new GrammarError("bad_spec", "Cannot constrain tool calls: no tools");
  }
  const max = parallel ? Infinity : 1;
  const args = (t: ToolDef) => compileSchema(t.parameters ?? {});
  const jname = (t: ToolDef) => JSON.stringify(t.name);
  switch (format) {
    case "qwen3": {
      const body = (t: ToolDef) =>
        seq([lit([`\n{"name": ${jname(t)}, "arguments": `]), args(t), lit(["}\n</tool_call>"])]);
      const one = alt(tools.map((t) => seq([lit(["<tool_call>"]), body(t)])));
      return {
        calls: rep(one, lit(["\n"]), 1, max),
        trigger: "<tool_call>",
        afterTrigger: alt(tools.map(body)),
        thinkEnd: "</think>",
      };
    }
    case "qwen3_coder": {
      const body = (t: ToolDef) =>
        seq([lit([`\n<function=${t.name}>\n`]), xmlParams(t.parameters), lit(["\n</tool_call>"])]);
      const one = alt(tools.map((t) => seq([lit(["<tool_call>"]), body(t)])));
      return {
        calls: rep(one, lit(["\n"]), 1, max),
        trigger: "<tool_call>",
        afterTrigger: alt(tools.map(body)),
        thinkEnd: "</think>",
      };
    }
    case "harmony": {
      const one = alt(tools.map((t) =>
        seq([
          lit([`<|channel|>commentary to=functions.${t.name} <|constrain|>json<|message|>`], true),
          args(t),
        ])
      ));
      const after = alt(
        tools.map((t) =>
          seq([lit([t.name]), chars(" <", 1, 1), text("<|message|>", true), args(t)])
        ),
      );
      return { calls: one, trigger: "to=functions.", afterTrigger: after, thinkEnd: null };
    }
    case "mistral": {
      const tpl = chatTemplate ?? "";
      if (tpl.includes("[TOOL_CALLS]") && !tpl.includes("[ARGS]")) {
        const obj = alt(tools.map((t) =>
          seq([
            lit([`{"name": ${jname(t)}, "arguments": `]),
            args(t),
            lit([`, "id": "`]),
            chars(ALNUM, 9, 9),
            lit([`"}`]),
          ])
        ));
        const list = seq([rep(obj, lit([", "]), 1, max), lit(["]"])]);
        return {
          calls: seq([lit(["[TOOL_CALLS]["], true), list]),
          trigger: "[TOOL_CALLS]",
          afterTrigger: seq([lit(["["]), list]),
          thinkEnd: "[/THINK]",
        };
      }
      const withId = tpl.includes("[CALL_ID]");
      const body = (t: ToolDef) =>
        withId
          ? seq([
            lit([`${t.name}[CALL_ID]`], true),
            chars(ALNUM, 9, 9),
            lit(["[ARGS]"], true),
            args(t),
          ])
          : seq([lit([`${t.name}[ARGS]`], true), args(t)]);
      const one = alt(tools.map((t) => seq([lit(["[TOOL_CALLS]"], true), body(t)])));
      return {
        calls: rep(one, null, 1, max),
        trigger: "[TOOL_CALLS]",
        afterTrigger: alt(tools.map(body)),
        thinkEnd: "[/THINK]",
      };
    }
    case "deepseek": {
      const r1 = (chatTemplate ?? "").includes("```json");
      const call = (t: ToolDef) =>
        r1
          ? seq([
            lit([`<｜tool▁call▁begin｜>function<｜tool▁sep｜>${t.name}\n\`\`\`json\n`], true),
            args(t),
            lit(["\n```<｜tool▁call▁end｜>"], true),
          ])
          : seq([
            lit([`<｜tool▁call▁begin｜>${t.name}<｜tool▁sep｜>`], true),
            args(t),
            lit(["<｜tool▁call▁end｜>"], true),
          ]);
      const list = seq([
        rep(alt(tools.map(call)), r1 ? lit(["\n"]) : null, 1, max),
        lit(["<｜tool▁calls▁end｜>"], true),
      ]);
      return {
        calls: seq([lit(["<｜tool▁calls▁begin｜>"], true), list]),
        trigger: "<｜tool▁calls▁begin｜>",
        afterTrigger: list,
        thinkEnd: "</think>",
      };
    }
    default: {
      const g = familyToolGrammar(format, tools, max, chatTemplate);
      if (g) return g;
      throw new GrammarError("bad_spec", `Cannot constrain tool calls of format "${format}"`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The constraint

/** Mode of a lazy constraint: free text, inside a call, or only EOG left. */
const FREE = 0, ACTIVE = 1, EOG_ONLY = 2;

interface Compiled {
  vocab: ConstraintVocab;
  root: GNode;
  /** Lazy (`auto`) mode: the trigger and what follows it. */
  lazy: { trigger: Uint8Array; node: GNode; after: typeof FREE | typeof EOG_ONLY } | null;
  /** Accept results per state key: 0 unknown, 1 yes, 2 no. */
  cache: Map<string, Int8Array>;
  /** State keys whose cached row is complete (filled by fillMask). */
  full: Set<string>;
}

interface State {
  mode: number;
  stacks: Stack[];
  /** FREE mode: the last bytes, for finding the trigger across tokens. */
  tail: Uint8Array;
}

const MAX_CACHED_STATES = 48;

class Constraint implements MaskingConstraint {
  #c: Compiled;
  #s: State;
  #key: string | null = null;

  constructor(c: Compiled, s: State) {
    this.#c = c;
    this.#s = s;
  }

  clone(): Constraint {
    return new Constraint(this.#c, { ...this.#s });
  }

  /** Key of the current state (cache key); null when not cacheable (free mode). */
  #stateKey(): string | null {
    if (this.#s.mode === FREE) return null;
    if (this.#key === null) {
      this.#key = this.#s.mode + ":" + this.#s.stacks.map(stackKey).join("|");
    }
    return this.#key;
  }

  #row(): Int8Array | null {
    const k = this.#stateKey();
    if (k === null) return null;
    const cache = this.#c.cache;
    let row = cache.get(k);
    if (row) {
      cache.delete(k); // LRU: move to the end
      cache.set(k, row);
      return row;
    }
    row = new Int8Array(this.#c.vocab.nVocab);
    cache.set(k, row);
    if (cache.size > MAX_CACHED_STATES) {
      const old = cache.keys().next().value!;
      cache.delete(old);
      this.#c.full.delete(old);
    }
    return row;
  }

  accepts(tokenId: number): boolean {
    const v = this.#c.vocab;
    if (!(tokenId >= 0 && tokenId < v.nVocab)) return false;
    if (v.isEog(tokenId)) return this.isComplete();
    const row = this.#row();
    if (row) {
      const r = row[tokenId];
      if (r !== 0) return r === 1;
      const ok = this.#feed(this.#s, v.piece(tokenId), !!v.isControl?.(tokenId)) !== null;
      row[tokenId] = ok ? 1 : 2;
      return ok;
    }
    return this.#feed(this.#s, v.piece(tokenId), !!v.isControl?.(tokenId)) !== null;
  }

  advance(tokenId: number): void {
    const v = this.#c.vocab;
    if (v.isEog(tokenId)) {
      if (!this.isComplete()) {
        throw new GrammarError(
          "dead_end",
          `Token ${tokenId} (end of generation) is not allowed here`,
        );
      }
      this.#s = { mode: EOG_ONLY, stacks: [END], tail: this.#s.tail };
      this.#key = null;
      return;
    }
    const next = this.#feed(this.#s, v.piece(tokenId), !!v.isControl?.(tokenId));
    if (next === null) {
      throw new GrammarError("dead_end", `Token ${tokenId} is not allowed by the constraint here`);
    }
    this.#s = next;
    this.#key = null;
  }

  isComplete(): boolean {
    const s = this.#s;
    if (s.mode === FREE || s.mode === EOG_ONLY) return true;
    return s.stacks.some(stackComplete);
  }

  /** The state after `bytes`, or null if they are rejected. */
  #feed(s0: State, bytes: Uint8Array, sp: boolean): State | null {
    if (bytes.length === 0) return null; // a token that writes nothing would stall decoding
    const lazy = this.#c.lazy;
    let mode = s0.mode;
    let stacks = s0.stacks;
    let tail = s0.tail;
    let i = 0;
    while (i < bytes.length) {
      if (mode === EOG_ONLY) return null;
      if (mode === FREE) {
        // find the trigger in tail + bytes[i..], ending inside bytes
        const trig = lazy!.trigger;
        const buf = new Uint8Array(tail.length + bytes.length - i);
        buf.set(tail);
        buf.set(bytes.subarray(i), tail.length);
        const at = indexOf(buf, trig, Math.max(0, tail.length - trig.length + 1));
        if (at < 0) {
          tail = buf.subarray(Math.max(0, buf.length - (trig.length - 1))).slice();
          return { mode, stacks, tail };
        }
        i += at + trig.length - tail.length;
        mode = ACTIVE;
        stacks = initialStacks(lazy!.node);
        tail = EMPTY;
        continue;
      }
      stacks = stepAll(stacks, bytes[i], sp);
      i++;
      if (stacks.length === 0) return null;
      if (lazy && stacks.some((st) => st === END)) {
        mode = lazy.after;
        stacks = [];
        tail = EMPTY;
      }
    }
    return { mode, stacks, tail };
  }

  fillMask(logits: Float32Array): number {
    const v = this.#c.vocab;
    const n = v.nVocab;
    const s = this.#s;
    const row = this.#row();
    let live = 0;
    const mark = (id: number, ok: boolean) => {
      if (row) row[id] = ok ? 1 : 2;
      if (ok) {
        if (logits[id] > -Infinity) live++;
      } else logits[id] = -Infinity;
    };
    const complete = this.isComplete();
    const key = this.#stateKey();
    if (row && key !== null && this.#c.full.has(key)) {
      for (let id = 0; id < n; id++) if (row[id] !== 1) logits[id] = -Infinity;
      for (let id = 0; id < n; id++) if (logits[id] > -Infinity) live++;
      return live;
    }
    const ix = vocabIndex(v);
    if (s.mode !== ACTIVE) {
      // free or EOG-only: per token (free mode only rejects tokens completing the trigger)
      for (let id = 0; id < n; id++) {
        if (!(logits[id] > -Infinity)) continue;
        mark(id, this.accepts(id));
      }
      return live;
    }
    for (const id of ix.eog) mark(id, complete);
    for (const id of ix.control) mark(id, this.#feed(s, v.piece(id), true) !== null);
    // Sorted walk: states[d] = the state after the first d bytes of the current token, so
    // tokens sharing a prefix share its steps, and a failing prefix rejects all its tokens.
    const order = ix.order, lcp = ix.lcp;
    const lazy = this.#c.lazy !== null;
    const states: (State | Stack[])[] = [lazy ? s : s.stacks];
    const one = new Uint8Array(1);
    let dead = Infinity; // byte index where the previous token's prefix failed
    for (let k = 0; k < order.length; k++) {
      const id = order[k];
      const l = lcp[k];
      if (l > dead) {
        mark(id, false);
        continue;
      }
      dead = Infinity;
      const p = v.piece(id);
      let d = l;
      if (lazy) {
        let st = states[l] as State;
        for (; d < p.length; d++) {
          one[0] = p[d];
          const nx = this.#feed(st, one, false);
          if (nx === null) break;
          states[d + 1] = st = nx;
        }
      } else {
        let st = states[l] as Stack[];
        for (; d < p.length; d++) {
          const nx = stepAll(st, p[d], false);
          if (nx.length === 0) break;
          states[d + 1] = st = nx;
        }
      }
      if (d < p.length) {
        dead = d;
        mark(id, false);
      } else mark(id, true);
    }
    if (row && key !== null) {
      // tokens left out of the index (empty pieces) are rejected
      for (let id = 0; id < n; id++) if (row[id] === 0) mark(id, false);
      this.#c.full.add(key);
    }
    return live;
  }
}

const EMPTY = new Uint8Array(0);

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** A compiled spec: its grammar, its mask-row cache, and whether it starts in free text. */
interface Prepared {
  compiled: Compiled;
  lazy: boolean;
}

/** Compiled specs kept per vocabulary, most recently used last. */
export const COMPILED_SPECS_KEPT = 4;
const preparedByVocab = new WeakMap<ConstraintVocab, Map<string, Prepared>>();

/**
 * Compiles a {@link ConstraintSpec} for a vocabulary and starts a constraint at its
 * beginning. Throws {@link GrammarError} (`bad_spec`, `unsupported_schema`) for what cannot
 * be expressed; the server maps that to a 400. `clone()` the result for `n > 1` choices.
 *
 * The last {@link COMPILED_SPECS_KEPT} specs compiled for a vocabulary are kept with their
 * cache of mask rows (one byte per token for each of at most 48 grammar states): an agent
 * sends the same tools every turn, so a repeated spec compiles nothing and allocates no new
 * rows (each row is a vocabulary-sized array: 152 kB on Qwen's vocabulary, up to 7 MB per
 * spec). The rows depend only on the grammar state, so constraints of one spec share them.
 */
export function compileConstraint(spec: ConstraintSpec, vocab: ConstraintVocab): TokenConstraint {
  let kept = preparedByVocab.get(vocab);
  if (!kept) preparedByVocab.set(vocab, kept = new Map());
  const key = JSON.stringify(spec);
  let p = kept.get(key);
  if (p) kept.delete(key); // most recently used: to the end
  else p = prepare(spec, vocab);
  kept.set(key, p);
  if (kept.size > COMPILED_SPECS_KEPT) kept.delete(kept.keys().next().value!);
  return new Constraint(
    p.compiled,
    p.lazy
      ? { mode: FREE, stacks: [], tail: EMPTY }
      : { mode: ACTIVE, stacks: initialStacks(p.compiled.root), tail: EMPTY },
  );
}

function prepare(spec: ConstraintSpec, vocab: ConstraintVocab): Prepared {
  const cache = new Map<string, Int8Array>();
  const full = new Set<string>();
  const active = (root: GNode): Prepared => ({
    compiled: { vocab, root, lazy: null, cache, full },
    lazy: false,
  });
  switch (spec.kind) {
    case "json_object":
      return active(ANY_OBJECT);
    case "json_schema":
      return active(compileSchema(spec.schema));
    case "tools": {
      let tools = spec.tools;
      if (typeof spec.choice === "object") {
        const name = spec.choice.name;
        tools = tools.filter((t) => t.name === name);
        if (tools.length === 0) {
          throw new GrammarError("bad_spec", `tool_choice names "${name}", which is not a tool`);
        }
      }
      const g = toolGrammar(spec.format, tools, spec.parallel, spec.chatTemplate);
      if (spec.choice === "auto" && spec.response) {
        const r = spec.response;
        const text = r.kind === "json_schema" ? compileSchema(r.schema) : ANY_OBJECT;
        const either = alt([text, g.calls]);
        return active(spec.thinking && g.thinkEnd ? thinkThen(g.thinkEnd, either) : either);
      }
      if (spec.choice === "auto") {
        const lazy = {
          trigger: utf8(g.trigger),
          node: g.afterTrigger,
          after: spec.parallel ? FREE : EOG_ONLY,
        } as Compiled["lazy"];
        return { compiled: { vocab, root: g.calls, lazy, cache, full }, lazy: true };
      }
      return active(spec.thinking && g.thinkEnd ? thinkThen(g.thinkEnd, g.calls) : g.calls);
    }
  }
}

/**
 * Checks that `spec` compiles (schemas, tool grammars) without a vocabulary: cheap, so a
 * server can refuse a bad schema with a 400 before it queues the request. Throws
 * {@link GrammarError} as {@link compileConstraint} would.
 */
export function validateConstraint(spec: ConstraintSpec): void {
  if (spec.kind === "json_schema") compileSchema(spec.schema);
  else if (spec.kind === "tools") {
    const tools = typeof spec.choice === "object"
      ? spec.tools.filter((t) => t.name === (spec.choice as { name: string }).name)
      : spec.tools;
    toolGrammar(spec.format, tools, spec.parallel, spec.chatTemplate);
    if (spec.response?.kind === "json_schema") compileSchema(spec.response.schema);
  }
}

/** `...</think>` then up to two newlines, then the calls. */
function thinkThen(end: string, calls: GNode): GNode {
  return seq([text(end), alt([seq([lit(["\n\n", "\n"]), calls]), calls])]);
}
