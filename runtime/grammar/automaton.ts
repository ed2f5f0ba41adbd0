/**
 * A byte-level pushdown automaton for JSON Schema and tool-call syntax.
 *
 * A grammar is a tree of {@link GNode}s (compiled once per request). The automaton state is a
 * small set of *stacks* (usually one); a stack is an immutable linked list of frames, each frame
 * an immutable object that knows how to consume one byte. Stepping never mutates: a step
 * returns new stacks, so a state can be kept, cloned and compared for free, and a depth-first
 * scan of the vocabulary can branch from any prefix (see `mod.ts`). Each frame has a `key` that
 * identifies its behaviour on all future input; the joined keys of a state identify the state,
 * which is what the per-state accept caches are keyed by.
 *
 * Nondeterminism (anyOf, enum literals sharing prefixes, the choice between tools) is handled
 * by carrying several stacks at once, like llama.cpp's grammar stacks; stacks that cannot take
 * the next byte are dropped.
 *
 * Bytes of control tokens (`sp` = true: e.g. Mistral's `[TOOL_CALLS]`, gpt-oss's
 * `<|channel|>`) are only accepted by literal frames that allow them (the call syntax) and by
 * free-text frames that say so, never inside JSON strings or numbers.
 *
 * @module
 */

import { GrammarError } from "./errors.ts";
import type { Regex } from "./regex.ts";

// ---------------------------------------------------------------------------------------------
// Grammar nodes

let nextNodeId = 1;

/** A fresh node id (ids key the automaton's state caches). */
export function newNodeId(): number {
  return nextNodeId++;
}

/** A grammar node: what a frame is started from. */
export type GNode =
  | { k: "any"; id: number }
  | {
    k: "obj";
    id: number;
    props: Map<string, GNode | (() => GNode)>;
    /** Property names with their JSON-escaped UTF-8 bytes (as a latin1 string). */
    names: { name: string; raw: string }[];
    required: string[];
    /** Schema of other keys; null = not allowed. */
    additional: GNode | null;
  }
  | { k: "arr"; id: number; items: GNode; min: number; max: number }
  | { k: "str"; id: number; min: number; max: number; re: Regex | null }
  | {
    k: "num";
    id: number;
    int: boolean;
    nonneg: boolean;
    /** Bounds (±Infinity when absent); integers' are inclusive. */
    lo: number;
    hi: number;
    loEx: boolean;
    hiEx: boolean;
  }
  | { k: "lit"; id: number; alts: Uint8Array[]; special: boolean }
  | { k: "alt"; id: number; alts: GNode[] }
  | { k: "seq"; id: number; items: GNode[] }
  | { k: "rep"; id: number; item: GNode; sep: GNode | null; min: number; max: number }
  | {
    k: "text";
    id: number;
    until: Uint8Array;
    special: boolean;
    /** With `special`: a control token only as (part of) `until` itself. */
    onlyUntil: boolean;
    /** At most this many code points before `until` (Infinity: no bound). */
    max: number;
    fail: Int32Array;
  }
  | { k: "chars"; id: number; cls: Uint8Array; min: number; max: number }
  | { k: "ref"; id: number; get: () => GNode }
  | {
    k: "xml";
    id: number;
    props: Map<string, GNode>;
    names: string[];
    required: string[];
    style: XmlStyle;
    /** The tag literals per set of names still allowed (built as needed). */
    tags: Map<string, Extract<GNode, { k: "lit" }>>;
  };

/** The tags of a tag-per-parameter call format (Qwen3-Coder, GLM, MiniMax-M2). */
export interface XmlStyle {
  /** What opens parameter `name`, up to its value. */
  open(name: string): string;
  /** What closes a value. */
  close: string;
  /** What ends the parameter list. */
  end: string;
  /** Whether the tags may be control tokens (and string values may hold them). */
  special: boolean;
}

/** Qwen3-Coder's: `<parameter=NAME>\nVALUE\n</parameter>\n...</function>`. */
export const CODER_XML: XmlStyle = {
  open: (n) => `<parameter=${n}>\n`,
  close: "\n</parameter>\n",
  end: "</function>",
  special: false,
};

const enc = new TextEncoder();

/** Bytes of `s` as UTF-8. */
export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

/** A literal node: one of the given strings exactly. */
export function lit(alts: readonly string[], special = false): GNode {
  return { k: "lit", id: nextNodeId++, alts: alts.map(utf8), special };
}

/** A sequence of nodes (non-empty). */
export function seq(items: GNode[]): GNode {
  if (items.length === 1) return items[0];
  return { k: "seq", id: nextNodeId++, items };
}

/** One of several nodes. */
export function alt(alts: GNode[]): GNode {
  if (alts.length === 1) return alts[0];
  return { k: "alt", id: nextNodeId++, alts };
}

/** `item (sep item)*`, between min (>= 1) and max items. */
export function rep(item: GNode, sep: GNode | null, min: number, max: number): GNode {
  if (min === 1 && max === 1) return item;
  return { k: "rep", id: nextNodeId++, item, sep, min: Math.max(1, min), max };
}

/**
 * Free text ended by (and including) `until`; `special` lets control tokens in (anywhere, or
 * with `onlyUntil` only where they continue `until`: a closing tag that is a control token).
 */
export function text(until: string, special = false, onlyUntil = false, max = Infinity): GNode {
  const u = utf8(until);
  // KMP failure function
  const fail = new Int32Array(u.length + 1);
  fail[0] = -1;
  for (let i = 1, k = -1; i <= u.length; i++) {
    while (k >= 0 && u[k] !== u[i - 1]) k = fail[k];
    fail[i] = ++k;
  }
  return { k: "text", id: nextNodeId++, until: u, special, onlyUntil, max, fail };
}

/** Between min and max bytes of a class (given as the list of allowed ASCII characters). */
export function chars(allowed: string, min: number, max: number): GNode {
  const cls = new Uint8Array(256);
  for (const b of utf8(allowed)) cls[b] = 1;
  return { k: "chars", id: nextNodeId++, cls, min, max };
}

/** Any JSON value. */
export const ANY: GNode = { k: "any", id: nextNodeId++ };

/** Any JSON object. */
export const ANY_OBJECT: GNode = {
  k: "obj",
  id: nextNodeId++,
  props: new Map(),
  names: [],
  required: [],
  additional: ANY,
};
const ANY_ARRAY: GNode = { k: "arr", id: nextNodeId++, items: ANY, min: 0, max: Infinity };
const ANY_STRING: GNode = { k: "str", id: nextNodeId++, min: 0, max: Infinity, re: null };
const ANY_NUMBER: GNode = {
  k: "num",
  id: nextNodeId++,
  int: false,
  nonneg: false,
  lo: -Infinity,
  hi: Infinity,
  loEx: false,
  hiEx: false,
};
const ANY_LITERAL: GNode = lit(["true", "false", "null"]);
const ANY_ALTS = [ANY_OBJECT, ANY_ARRAY, ANY_STRING, ANY_NUMBER, ANY_LITERAL];

// ---------------------------------------------------------------------------------------------
// Frames and stacks

/** One level of a stack. */
export interface Stack {
  readonly f: Frame;
  readonly up: Stack | null;
}

const DONE = Symbol("done");

/** A frame: immutable; `step` pushes the stacks reachable by consuming byte `b`. */
abstract class Frame {
  #key?: string;
  /** Identifies this frame's future behaviour. */
  get key(): string {
    return this.#key ??= this.makeKey();
  }
  protected abstract makeKey(): string;
  /** Consume `b` with this frame on top of `st`; push results to `out`. */
  abstract step(st: Stack, b: number, sp: boolean, out: Stack[]): void;
  /** May this frame end here without consuming more? */
  canEnd(): boolean {
    return false;
  }
  /** This frame after its child `child` completed; DONE = this frame completes too. */
  resume(_child: Frame): Frame | typeof DONE {
    return DONE;
  }
  /** Literal alternatives that matched (LitF only). */
  matched(): number {
    return -1;
  }
}

class EndF extends Frame {
  protected makeKey(): string {
    return "E";
  }
  step(): void {}
}

/** The stack of a finished grammar. */
export const END: Stack = { f: new EndF(), up: null };

/** Pops the completed `child` off into `up`, resuming parents; END when nothing is left. */
function popInto(up: Stack | null, child: Frame): Stack {
  let s = up;
  let c = child;
  while (s !== null) {
    const r = s.f.resume(c);
    if (r !== DONE) return { f: r, up: s.up };
    c = s.f;
    s = s.up;
  }
  return END;
}

/**
 * Starts `node` under `up` and feeds it byte `b`. `refs` holds the refs entered since the last
 * byte-consuming frame: entering one again is left recursion (`anyOf: [{"$ref": "#"}, ...]`),
 * which can never consume a byte, so that branch is dropped instead of recursing forever.
 */
function enter(
  node: GNode,
  up: Stack | null,
  b: number,
  sp: boolean,
  out: Stack[],
  refs: readonly GNode[] = NO_REFS,
): void {
  switch (node.k) {
    case "ref":
      if (refs.includes(node) || refs.length >= MAX_REF_CHAIN) return;
      return enter(node.get(), up, b, sp, out, [...refs, node]);
    case "alt":
      for (const a of node.alts) enter(a, up, b, sp, out, refs);
      return;
    case "any":
      for (const a of ANY_ALTS) enter(a, up, b, sp, out);
      return;
    case "seq": {
      const f = new SeqF(node, 0);
      return enter(node.items[0], { f, up }, b, sp, out, refs);
    }
    case "rep": {
      const f = new RepF(node, 0, 2);
      return enter(node.item, { f, up }, b, sp, out, refs);
    }
    default: {
      const f = startFrame(node);
      f.step({ f, up }, b, sp, out);
      if (f.canEnd()) stepStack(popInto(up, f), b, sp, out); // empty-matching frames
    }
  }
}

function startFrame(node: GNode): Frame {
  switch (node.k) {
    case "obj":
      return new ValueF(node);
    case "arr":
      return new ValueF(node);
    case "str":
      return new ValueF(node);
    case "num":
      return new NumF(node, 0, 0, "");
    case "lit":
      return new LitF(node, 0, null);
    case "text":
      return new TextF(node, 0);
    case "chars":
      return new CharsF(node, 0);
    case "xml":
      return new XmlF(node, 0, [], "");
    default:
      throw new GrammarError("internal", `No frame for node ${node.k}`);
  }
}

const NO_REFS: readonly GNode[] = [];
/** Most refs entered in a row without a byte consumed (a ref-to-ref chain). */
const MAX_REF_CHAIN = 256;

/** Deepest nesting of objects and arrays generated (recursive schemas stop opening more). */
export const MAX_JSON_DEPTH = 32;

/** Objects and arrays open in a stack. */
function jsonDepthOf(st: Stack | null): number {
  let n = 0;
  for (let p = st; p !== null; p = p.up) if (p.f instanceof ObjF || p.f instanceof ArrF) n++;
  return n;
}

/** Feeds byte `b` to one stack. */
export function stepStack(st: Stack, b: number, sp: boolean, out: Stack[]): void {
  const f = st.f;
  f.step(st, b, sp, out);
  if (f.canEnd()) stepStack(popInto(st.up, f), b, sp, out);
}

/** Feeds byte `b` to every stack of a state; deduplicates when there are several. */
export function stepAll(stacks: readonly Stack[], b: number, sp: boolean): Stack[] {
  const out: Stack[] = [];
  for (const s of stacks) stepStack(s, b, sp, out);
  if (out.length > 1) return dedupe(out);
  return out;
}

function dedupe(stacks: Stack[]): Stack[] {
  const seen = new Set<string>();
  const out: Stack[] = [];
  for (const s of stacks) {
    const k = stackKey(s);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(s);
    }
  }
  return out;
}

/** Key of one stack (joined frame keys). */
export function stackKey(s: Stack): string {
  let k = "";
  for (let p: Stack | null = s; p !== null; p = p.up) k += p.f.key + "/";
  return k;
}

/** Whether a stack can end here (the grammar is complete). */
export function stackComplete(s: Stack): boolean {
  let st = s;
  while (true) {
    if (st === END || st.f instanceof EndF) return true;
    if (!st.f.canEnd()) return false;
    st = popInto(st.up, st.f);
  }
}

/** Initial state of a grammar: a start frame that enters `node` on the first byte. */
export function initialStacks(node: GNode): Stack[] {
  return [{ f: new StartF(node), up: null }];
}

class StartF extends Frame {
  constructor(readonly node: GNode) {
    super();
  }
  protected makeKey(): string {
    return `S${this.node.id}`;
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    enter(this.node, st.up, b, sp, out);
  }
}

const isWs = (b: number) => b === 0x20 || b === 0x0a;

/** The first byte of an object, array or string value. */
class ValueF extends Frame {
  constructor(readonly node: GNode) {
    super();
  }
  protected makeKey(): string {
    return `V${this.node.id}`;
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (sp) return;
    const n = this.node;
    if ((b === 0x7b || b === 0x5b) && jsonDepthOf(st.up) >= MAX_JSON_DEPTH) return;
    if (n.k === "obj" && b === 0x7b) out.push({ f: new ObjF(n, 0, false, [], ""), up: st.up });
    else if (n.k === "arr" && b === 0x5b) out.push({ f: new ArrF(n, 0, false, 0), up: st.up });
    else if (n.k === "str" && b === 0x22) {
      out.push({ f: new StrF(n, 0, 0, 0, 0, n.re ? n.re.start : null), up: st.up });
    }
  }
}

// Object phases
const O_OPEN = 0, O_COLON = 1, O_VALUE = 2, O_AFTER = 3, O_COMMA = 4, O_KEY = 5, O_CHILD = 6;

class ObjF extends Frame {
  constructor(
    readonly node: Extract<GNode, { k: "obj" }>,
    readonly phase: number,
    readonly ws: boolean,
    readonly seen: readonly string[],
    readonly cur: string,
  ) {
    super();
  }
  protected makeKey(): string {
    return `O${this.node.id}:${this.phase}${this.ws ? "w" : ""}:${
      this.seen.join("\u0000")
    }:${this.cur}`;
  }
  #canClose(): boolean {
    for (const r of this.node.required) if (!this.seen.includes(r)) return false;
    return true;
  }
  #canAdd(): boolean {
    if (this.node.additional !== null) return true;
    return this.node.names.some((n) => !this.seen.includes(n.name));
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (sp) return;
    const p = this.phase;
    if (isWs(b) && !this.ws && p <= O_COMMA) {
      out.push({ f: new ObjF(this.node, p, true, this.seen, this.cur), up: st.up });
      return;
    }
    if ((p === O_OPEN || p === O_AFTER) && b === 0x7d) {
      if (this.#canClose()) out.push(popInto(st.up, this));
      return;
    }
    if ((p === O_OPEN || p === O_COMMA) && b === 0x22) {
      if (p === O_OPEN && !this.#canAdd()) return;
      const parent = { f: new ObjF(this.node, O_KEY, false, this.seen, ""), up: st.up };
      out.push({ f: new KeyF(this.node, this.seen, ""), up: parent });
      return;
    }
    if (p === O_COLON && b === 0x3a) {
      out.push({ f: new ObjF(this.node, O_VALUE, false, this.seen, this.cur), up: st.up });
      return;
    }
    if (p === O_AFTER && b === 0x2c) {
      if (this.#canAdd()) {
        out.push({ f: new ObjF(this.node, O_COMMA, false, this.seen, ""), up: st.up });
      }
      return;
    }
    if (p === O_VALUE) {
      const prop = this.node.props.get(this.cur);
      const sub = prop === undefined
        ? this.node.additional ?? ANY
        : typeof prop === "function"
        ? prop()
        : prop;
      const parent = { f: new ObjF(this.node, O_CHILD, false, this.seen, this.cur), up: st.up };
      enter(sub, parent, b, sp, out);
    }
  }
  override resume(child: Frame): Frame {
    if (this.phase === O_KEY) {
      const key = (child as KeyF).name();
      return new ObjF(this.node, O_COLON, false, [...this.seen, key].sort(), key);
    }
    return new ObjF(this.node, O_AFTER, false, this.seen, "");
  }
}

/** A property key (after the opening quote). Keys with escapes are accepted only if declared. */
class KeyF extends Frame {
  constructor(
    readonly node: Extract<GNode, { k: "obj" }>,
    readonly seen: readonly string[],
    readonly buf: string, // raw bytes as latin1
  ) {
    super();
  }
  protected makeKey(): string {
    return `K${this.node.id}:${this.buf}`;
  }
  name(): string {
    for (const n of this.node.names) if (n.raw === this.buf) return n.name;
    return new TextDecoder().decode(Uint8Array.from(this.buf, (c) => c.charCodeAt(0)));
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (sp || b < 0x20) return;
    const names = this.node.names;
    if (b === 0x22) {
      const declared = names.find((n) => n.raw === this.buf);
      if (declared) {
        if (!this.seen.includes(declared.name)) out.push(popInto(st.up, this));
        return;
      }
      if (this.node.additional !== null && this.buf.length > 0) {
        const name = this.name();
        if (!this.seen.includes(name)) out.push(popInto(st.up, this));
      }
      return;
    }
    const next = this.buf + String.fromCharCode(b);
    if (this.node.additional === null || b === 0x5c) {
      // must stay a prefix of an unseen declared name
      if (!names.some((n) => n.raw.startsWith(next) && !this.seen.includes(n.name))) return;
    }
    out.push({ f: new KeyF(this.node, this.seen, next), up: st.up });
  }
}

const A_OPEN = 0, A_AFTER = 1, A_COMMA = 2, A_CHILD = 3;

class ArrF extends Frame {
  constructor(
    readonly node: Extract<GNode, { k: "arr" }>,
    readonly phase: number,
    readonly ws: boolean,
    readonly n: number,
  ) {
    super();
  }
  protected makeKey(): string {
    const n = this.node;
    const count = Math.min(this.n, Math.max(n.min, n.max === Infinity ? 0 : n.max));
    return `A${n.id}:${this.phase}${this.ws ? "w" : ""}:${count}`;
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (sp) return;
    const p = this.phase;
    const node = this.node;
    if (isWs(b) && !this.ws && p !== A_CHILD) {
      out.push({ f: new ArrF(node, p, true, this.n), up: st.up });
      return;
    }
    if (b === 0x5d && (p === A_OPEN || p === A_AFTER)) {
      if (this.n >= node.min) out.push(popInto(st.up, this));
      return;
    }
    if (p === A_AFTER) {
      if (b === 0x2c && this.n < node.max) {
        out.push({ f: new ArrF(node, A_COMMA, false, this.n), up: st.up });
      }
      return;
    }
    if ((p === A_OPEN && node.max > 0) || p === A_COMMA) {
      enter(node.items, { f: new ArrF(node, A_CHILD, false, this.n), up: st.up }, b, sp, out);
    }
  }
  override resume(): Frame {
    return new ArrF(this.node, A_AFTER, false, this.n + 1);
  }
}

/** Inside a string (after the opening quote). */
class StrF extends Frame {
  constructor(
    readonly node: Extract<GNode, { k: "str" }>,
    readonly n: number, // characters so far
    readonly esc: number, // 0 none, 1 after '\', 2..5 = hex digits left + 1
    readonly cont: number, // UTF-8 continuation bytes left
    readonly cp: number, // the code point being read (UTF-8 or \uXXXX)
    readonly re: readonly number[] | null, // pattern states (null: no pattern)
  ) {
    super();
  }
  protected makeKey(): string {
    const { min, max } = this.node;
    const n = max === Infinity ? Math.min(this.n, min) : this.n;
    const re = this.re === null ? "" : `:${this.cp}:${this.re.join(",")}`;
    return `s${this.node.id}:${n}:${this.esc}:${this.cont}${re}`;
  }
  /** This frame after a character ends (the pattern steps on it); null if rejected. */
  #char(n: number, cp: number): StrF | null {
    if (this.re === null) return new StrF(this.node, n, 0, 0, 0, null);
    const next = this.node.re!.step(this.re, cp);
    return next.length === 0 ? null : new StrF(this.node, n, 0, 0, 0, next);
  }
  #push(f: StrF | null, st: Stack, out: Stack[]): void {
    if (f !== null) out.push({ f, up: st.up });
  }
  /** The code points a character still being read (UTF-8 or an escape) can turn out to be. */
  #range(): [number, number] {
    if (this.cont > 0) {
      const k = 6 * this.cont;
      // right after E0 or F0 the shortest forms start at U+0800 and U+10000
      const min = this.cp !== 0 ? 0 : this.cont === 2 ? 0x800 : this.cont === 3 ? 0x10000 : 0;
      return [Math.max(min, this.cp * 2 ** k), this.cp * 2 ** k + 2 ** k - 1];
    }
    if (this.esc === 1) return [0, 0xffff];
    const k = 4 * (this.esc - 1); // hex digits left
    return [this.cp * 2 ** k, this.cp * 2 ** k + 2 ** k - 1];
  }
  /** Pushes `f` (mid-character) only if the pattern can still take some character it may be. */
  #partial(f: StrF, st: Stack, out: Stack[]): void {
    if (f.re !== null) {
      const [lo, hi] = f.#range();
      if (!this.node.re!.takesAny(f.re, lo, hi)) return;
    }
    out.push({ f, up: st.up });
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (sp) return;
    const { node, n, re } = this;
    if (this.cont > 0) {
      if (b < 0x80 || b > 0xbf) return;
      // well-formed UTF-8 only: no overlong forms (E0 80, F0 80), no surrogates (ED A0), no
      // code points past U+10FFFF (F4 90)
      const c = this.cont, p = this.cp;
      if (c === 2 && p === 0 && b < 0xa0) return;
      if (c === 2 && p === 0xd && b > 0x9f) return;
      if (c === 3 && p === 0 && b < 0x90) return;
      if (c === 3 && p === 4 && b > 0x8f) return;
      const cp = (this.cp << 6) | (b & 0x3f);
      if (this.cont > 1) this.#partial(new StrF(node, n, 0, this.cont - 1, cp, re), st, out);
      else this.#push(this.#char(n, cp), st, out);
      return;
    }
    if (this.esc === 1) {
      if (b === 0x75) this.#partial(new StrF(node, n, 5, 0, 0, re), st, out);
      else if (ESCAPES.has(b)) this.#push(this.#char(n, ESCAPES.get(b)!), st, out);
      return;
    }
    if (this.esc > 1) {
      const h = b >= 0x30 && b <= 0x39
        ? b - 0x30
        : b >= 0x41 && b <= 0x46
        ? b - 0x37
        : b >= 0x61 && b <= 0x66
        ? b - 0x57
        : -1;
      if (h < 0) return;
      const cp = this.cp * 16 + h;
      if (this.esc === 2) this.#push(this.#char(n, cp), st, out);
      else this.#partial(new StrF(node, n, this.esc - 1, 0, cp, re), st, out);
      return;
    }
    if (b === 0x22) {
      if (n >= node.min && (re === null || node.re!.accepts(re))) out.push(popInto(st.up, this));
      return;
    }
    if (b < 0x20 || n >= node.max) return;
    if (b === 0x5c) this.#partial(new StrF(node, n + 1, 1, 0, 0, re), st, out);
    else if (b < 0x80) this.#push(this.#char(n + 1, b), st, out);
    else if (b >= 0xc2 && b <= 0xdf) {
      this.#partial(new StrF(node, n + 1, 0, 1, b & 0x1f, re), st, out);
    } else if (b >= 0xe0 && b <= 0xef) {
      this.#partial(new StrF(node, n + 1, 0, 2, b & 0x0f, re), st, out);
    } else if (b >= 0xf0 && b <= 0xf4) {
      this.#partial(new StrF(node, n + 1, 0, 3, b & 0x07, re), st, out);
    }
  }
}
/** JSON's one-character escapes and the characters they stand for. */
const ESCAPES = new Map([
  [0x22, 0x22],
  [0x5c, 0x5c],
  [0x2f, 0x2f],
  [0x62, 0x08],
  [0x66, 0x0c],
  [0x6e, 0x0a],
  [0x72, 0x0d],
  [0x74, 0x09],
]);

/** Most digits in the integer part, the fraction and the exponent (stops runaway numbers). */
export const MAX_INT_DIGITS = 15;
const MAX_FRAC_DIGITS = 15;
const MAX_EXP_DIGITS = 3;

type NumNode = Extract<GNode, { k: "num" }>;

/** Whether some value in [a, b] (ends closed or not) lies within the node's bounds. */
function overlaps(n: NumNode, a: number, b: number, aIn: boolean, bIn: boolean): boolean {
  let L = a, Lin = aIn, H = b, Hin = bIn;
  if (n.lo > L || (n.lo === L && n.loEx)) [L, Lin] = [n.lo, !n.loEx];
  if (n.hi < H || (n.hi === H && n.hiEx)) [H, Hin] = [n.hi, !n.hiEx];
  return L < H || (L === H && Lin && Hin);
}

/**
 * Whether the number text `t` (a prefix: sign, digits, maybe "." and digits; no exponent)
 * can still be completed to a value within the node's bounds, or, with `done`, is one.
 */
function numberFits(n: NumNode, t: string, done: boolean): boolean {
  if (done) {
    const v = Number(t);
    return overlaps(n, v, v, true, true);
  }
  const neg = t.startsWith("-");
  const body = neg ? t.slice(1) : t;
  const sign = (a: number, b: number, aIn: boolean, bIn: boolean) =>
    neg ? overlaps(n, -b, -a, bIn, aIn) : overlaps(n, a, b, aIn, bIn);
  if (body === "") return neg ? overlaps(n, -Infinity, 0, false, true) : true;
  const dot = body.indexOf(".");
  if (dot >= 0) {
    const a = Number(body.endsWith(".") ? body.slice(0, -1) : body);
    const frac = body.length - dot - 1;
    if (frac >= MAX_FRAC_DIGITS) return sign(a, a, true, true); // no digit can follow
    return sign(a, a + 10 ** -frac, true, false);
  }
  const v = Number(body);
  if (body === "0") return n.int ? sign(0, 0, true, true) : sign(0, 1, true, false);
  for (let j = 0; j + body.length <= MAX_INT_DIGITS; j++) {
    const a = v * 10 ** j, w = 10 ** j;
    if (n.int ? sign(a, a + w - 1, true, true) : sign(a, a + w, true, false)) return true;
  }
  return false;
}

// Number states: 0 start, 1 after '-', 2 after leading 0, 3 int digits, 4 after '.',
// 5 fraction digits, 6 after e/E, 7 after exponent sign, 8 exponent digits.
class NumF extends Frame {
  constructor(
    readonly node: NumNode,
    readonly s: number,
    readonly d: number,
    readonly t: string, // the text so far, when the node has bounds
  ) {
    super();
  }
  protected makeKey(): string {
    return `N${this.node.int ? "i" : "f"}${this.node.nonneg ? "+" : ""}:${this.s}:${this.d}:${
      this.t === "" ? "" : `${this.node.id}:${this.t}`
    }`;
  }
  #bounded(): boolean {
    return this.node.lo !== -Infinity || this.node.hi !== Infinity;
  }
  override canEnd(): boolean {
    const ends = this.s === 2 || this.s === 3 || this.s === 5 || this.s === 8;
    return ends && (!this.#bounded() || numberFits(this.node, this.t, true));
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (sp) return;
    const digit = b >= 0x30 && b <= 0x39;
    const bounded = this.#bounded();
    const go = (s: number, d: number): void => {
      if (!bounded) {
        out.push({ f: new NumF(this.node, s, d, ""), up: st.up });
        return;
      }
      if (s >= 6) return; // no exponents when there are bounds
      const t = this.t + String.fromCharCode(b);
      if (numberFits(this.node, t, false)) {
        out.push({ f: new NumF(this.node, s, d, t), up: st.up });
      }
    };
    switch (this.s) {
      case 0:
        if (b === 0x2d && !this.node.nonneg) go(1, 0);
        else if (b === 0x30) go(2, 1);
        else if (digit) go(3, 1);
        return;
      case 1:
        if (b === 0x30) go(2, 1);
        else if (digit) go(3, 1);
        return;
      case 2:
      case 3:
        if (this.s === 3 && digit && this.d < MAX_INT_DIGITS) go(3, this.d + 1);
        else if (!this.node.int && b === 0x2e) go(4, 0);
        else if (!this.node.int && (b === 0x65 || b === 0x45)) go(6, 0);
        return;
      case 4:
        if (digit) go(5, 1);
        return;
      case 5:
        if (digit && this.d < MAX_FRAC_DIGITS) go(5, this.d + 1);
        else if (b === 0x65 || b === 0x45) go(6, 0);
        return;
      case 6:
        if (b === 0x2b || b === 0x2d) go(7, 0);
        else if (digit) go(8, 1);
        return;
      case 7:
        if (digit) go(8, 1);
        return;
      case 8:
        if (digit && this.d < MAX_EXP_DIGITS) go(8, this.d + 1);
        return;
    }
  }
}

/** One of a set of exact byte strings. */
class LitF extends Frame {
  constructor(
    readonly node: Extract<GNode, { k: "lit" }>,
    readonly pos: number,
    readonly rem: number[] | null, // indices of alternatives still possible (null = all)
  ) {
    super();
  }
  protected makeKey(): string {
    return `L${this.node.id}:${this.pos}:${this.rem ? this.rem[0] : 0}`;
  }
  #alts(): number[] {
    return this.rem ?? this.node.alts.map((_, i) => i);
  }
  override canEnd(): boolean {
    return this.pos > 0 && this.#alts().some((i) => this.node.alts[i].length === this.pos);
  }
  override matched(): number {
    const a = this.#alts().find((i) => this.node.alts[i].length === this.pos);
    return a ?? -1;
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (sp && !this.node.special) return;
    const alts = this.node.alts;
    const pos = this.pos;
    const next: number[] = [];
    let longer = false;
    for (const i of this.#alts()) {
      const a = alts[i];
      if (a.length > pos && a[pos] === b) {
        next.push(i);
        if (a.length > pos + 1) longer = true;
      }
    }
    if (next.length === 0) return;
    const f = new LitF(this.node, pos + 1, next);
    if (!longer) out.push(popInto(st.up, f));
    else out.push({ f, up: st.up });
  }
}

/**
 * Free text up to and including a terminator (KMP), valid UTF-8 (a continuation byte only
 * inside a multi-byte character: a model cannot write stray bytes). With a bound (`max` code
 * points), `n` counts the code points so far (those of a partial terminator match too); past
 * the bound only the terminator may continue.
 */
class TextF extends Frame {
  constructor(
    readonly node: Extract<GNode, { k: "text" }>,
    readonly j: number,
    readonly n = 0,
    readonly cont = 0, // continuation bytes still due
  ) {
    super();
  }
  protected makeKey(): string {
    const n = this.node.max === Infinity ? "" : `:${this.n}`;
    return `T${this.node.id}:${this.j}${n}${this.cont ? `:c${this.cont}` : ""}`;
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    const { until, fail, special, onlyUntil, max } = this.node;
    if (sp && (!special || (onlyUntil && until[this.j] !== b))) return;
    const isCont = (b & 0xc0) === 0x80;
    if (isCont !== this.cont > 0 || b >= 0xf8) return;
    const cont = isCont ? this.cont - 1 : b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : 0;
    let j = this.j;
    while (j >= 0 && until[j] !== b) j = fail[j];
    j++;
    let n = this.n;
    if (max !== Infinity && !isCont) {
      // a new code point: within the bound, or (past it) only as part of the terminator
      if (n >= max + j && j <= this.j) return;
      n = Math.min(n + 1, max + until.length);
    }
    if (j === until.length) out.push(popInto(st.up, this));
    else out.push({ f: new TextF(this.node, j, n, cont), up: st.up });
  }
}

/** Bytes from a class, between min and max of them. */
class CharsF extends Frame {
  constructor(readonly node: Extract<GNode, { k: "chars" }>, readonly n: number) {
    super();
  }
  protected makeKey(): string {
    return `C${this.node.id}:${this.n}`;
  }
  override canEnd(): boolean {
    return this.n >= this.node.min && this.n > 0;
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (sp || !this.node.cls[b] || this.n >= this.node.max) return;
    const f = new CharsF(this.node, this.n + 1);
    if (this.n + 1 === this.node.max) out.push(popInto(st.up, f));
    else out.push({ f, up: st.up });
  }
}

class SeqF extends Frame {
  constructor(readonly node: Extract<GNode, { k: "seq" }>, readonly i: number) {
    super();
  }
  protected makeKey(): string {
    return `Q${this.node.id}:${this.i}`;
  }
  step(): void {} // never on top: it always has a child above it
  override resume(): Frame | typeof DONE {
    const i = this.i + 1;
    if (i === this.node.items.length) return DONE;
    return new SeqNext(this.node, i);
  }
}

/** A sequence between two items: enters item `i` on the next byte. */
class SeqNext extends Frame {
  constructor(readonly node: Extract<GNode, { k: "seq" }>, readonly i: number) {
    super();
  }
  protected makeKey(): string {
    return `q${this.node.id}:${this.i}`;
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    enter(this.node.items[this.i], { f: new SeqF(this.node, this.i), up: st.up }, b, sp, out);
  }
}

// Repetition phases: 0 after an item (may end), 1 inside a separator, 2 inside an item,
// 3 after a separator (the next byte starts an item).
class RepF extends Frame {
  constructor(
    readonly node: Extract<GNode, { k: "rep" }>,
    readonly n: number,
    readonly phase: number,
  ) {
    super();
  }
  protected makeKey(): string {
    const n = this.node;
    const c = Math.min(this.n, Math.max(n.min, n.max === Infinity ? 0 : n.max));
    return `R${n.id}:${c}:${this.phase}`;
  }
  override canEnd(): boolean {
    return this.phase === 0 && this.n >= this.node.min;
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    const node = this.node;
    if (this.phase === 0) {
      if (this.n >= node.max) return;
      if (node.sep) enter(node.sep, { f: new RepF(node, this.n, 1), up: st.up }, b, sp, out);
      else enter(node.item, { f: new RepF(node, this.n, 2), up: st.up }, b, sp, out);
    } else if (this.phase === 3) {
      enter(node.item, { f: new RepF(node, this.n, 2), up: st.up }, b, sp, out);
    }
  }
  override resume(): Frame {
    if (this.phase === 1) return new RepF(this.node, this.n, 3);
    return new RepF(this.node, this.n + 1, 0);
  }
}

/**
 * Qwen3-Coder parameters: `<parameter=NAME>\n` VALUE `\n</parameter>\n`, each declared name
 * at most once, then `</function>` once every required one is present.
 */
class XmlF extends Frame {
  constructor(
    readonly node: Extract<GNode, { k: "xml" }>,
    readonly phase: number, // 0 expecting a tag, 1 inside the tag literal, 2 inside a value
    readonly seen: readonly string[],
    readonly cur: string,
  ) {
    super();
  }
  protected makeKey(): string {
    return `X${this.node.id}:${this.phase}:${this.seen.join("\u0000")}:${this.cur}`;
  }
  #tags(): { node: Extract<GNode, { k: "lit" }>; names: string[] } {
    const names = this.node.names.filter((n) => !this.seen.includes(n));
    const { style } = this.node;
    const alts = names.map((n) => style.open(n));
    if (this.node.required.every((r) => this.seen.includes(r))) {
      alts.push(style.end);
      names.push("");
    }
    const key = (style.special ? "S" : "") + alts.join("\u0000");
    const cache = this.node.tags;
    let node = cache.get(key);
    if (!node) cache.set(key, node = lit(alts, style.special) as Extract<GNode, { k: "lit" }>);
    return { node, names };
  }
  step(st: Stack, b: number, sp: boolean, out: Stack[]): void {
    if (this.phase === 0) {
      const { node } = this.#tags();
      enter(node, { f: new XmlF(this.node, 1, this.seen, ""), up: st.up }, b, sp, out);
    } else if (this.phase === 2) {
      const v = this.node.props.get(this.cur)!;
      enter(v, { f: new XmlF(this.node, 3, this.seen, this.cur), up: st.up }, b, sp, out);
    }
  }
  override resume(child: Frame): Frame | typeof DONE {
    if (this.phase === 1) {
      const { names } = this.#tags();
      const name = names[child.matched()];
      if (name === "" || name === undefined) return DONE;
      return new XmlF(this.node, 2, [...this.seen, name].sort(), name);
    }
    return new XmlF(this.node, 0, this.seen, "");
  }
}
