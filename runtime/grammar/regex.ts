/**
 * Regular expressions (JSON Schema `pattern`, and the `format`s spool enforces) compiled to a
 * small NFA over Unicode code points, run inside a JSON string by the automaton's string
 * frame (on the decoded characters: `\n`, `\"` and `\u00e9` count as the character they
 * stand for).
 *
 * Supported (ECMA-262 syntax, the subset JSON Schema recommends): literals, `.`, classes
 * `[a-z]` `[^...]`, escapes `\d \D \w \W \s \S \t \n \r \f \v \xHH \uHHHH` and escaped
 * punctuation, groups `( )` and `(?: )`, alternation `|`, quantifiers `* + ? {n} {n,} {n,m}`
 * (a lazy `?` suffix changes nothing here), `^` at the start and `$` at the end. A pattern
 * is a search, as JSON Schema says: without `^` any text may come first, without `$` any
 * text may follow. Backreferences, lookaround, `\b`, `\p{..}` and anchors elsewhere are a
 * {@link GrammarError} `unsupported_schema`; more than {@link MAX_REGEX_STATES} states is
 * `too_large`.
 *
 * @module
 */
import { GrammarError } from "./errors.ts";

/** Most NFA states of one pattern (bounded repetitions are expanded). */
export const MAX_REGEX_STATES = 4000;

/** A set of code points: sorted, disjoint inclusive ranges [lo0, hi0, lo1, hi1, ...]. */
type Ranges = number[];

type Ast =
  | { t: "set"; r: Ranges }
  | { t: "cat"; items: Ast[] }
  | { t: "alt"; alts: Ast[] }
  | { t: "rep"; item: Ast; min: number; max: number };

const MAX_CP = 0x10ffff;
const DIGIT: Ranges = [0x30, 0x39];
const WORD: Ranges = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
const SPACE: Ranges = [
  0x09,
  0x0d,
  0x20,
  0x20,
  0xa0,
  0xa0,
  0x1680,
  0x1680,
  0x2000,
  0x200a,
  0x2028,
  0x2029,
  0x202f,
  0x202f,
  0x205f,
  0x205f,
  0x3000,
  0x3000,
  0xfeff,
  0xfeff,
];
const DOT: Ranges = [0, 0x09, 0x0b, 0x0c, 0x0e, 0x2027, 0x202a, MAX_CP];
const ANYCHAR: Ranges = [0, MAX_CP];

function normalize(r: Ranges): Ranges {
  const pairs: [number, number][] = [];
  for (let i = 0; i < r.length; i += 2) pairs.push([r[i], r[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  for (const [lo, hi] of pairs) {
    const n = out.length;
    if (n > 0 && lo <= out[n - 1] + 1) out[n - 1] = Math.max(out[n - 1], hi);
    else out.push(lo, hi);
  }
  return out;
}

function negate(r: Ranges): Ranges {
  const n = normalize(r);
  const out: Ranges = [];
  let next = 0;
  for (let i = 0; i < n.length; i += 2) {
    if (n[i] > next) out.push(next, n[i] - 1);
    next = n[i + 1] + 1;
  }
  if (next <= MAX_CP) out.push(next, MAX_CP);
  return out;
}

class Parser {
  i = 0;
  constructor(readonly src: string) {}

  fail(what: string): never {
    throw new GrammarError(
      "unsupported_schema",
      `Unsupported pattern ${JSON.stringify(this.src)}: ${what} at offset ${this.i}`,
    );
  }
  peek(): string | undefined {
    return this.src[this.i];
  }
  parseAlt(): Ast {
    const alts = [this.parseCat()];
    while (this.peek() === "|") {
      this.i++;
      alts.push(this.parseCat());
    }
    return alts.length === 1 ? alts[0] : { t: "alt", alts };
  }
  parseCat(): Ast {
    const items: Ast[] = [];
    while (this.i < this.src.length && this.peek() !== "|" && this.peek() !== ")") {
      items.push(this.parseQuant());
    }
    return { t: "cat", items };
  }
  parseQuant(): Ast {
    let a = this.parseAtom();
    while (true) {
      const c = this.peek();
      let min: number, max: number;
      if (c === "*") [min, max] = [0, Infinity];
      else if (c === "+") [min, max] = [1, Infinity];
      else if (c === "?") [min, max] = [0, 1];
      else if (c === "{") {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
        if (!m) return a; // a literal "{" (ECMA's annex B)
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
        if (max < min) this.fail("a quantifier {n,m} with m < n");
        if (min > 1000 || (max !== Infinity && max > 1000)) this.fail("a quantifier over 1000");
        this.i += m[0].length - 1;
      } else return a;
      this.i++;
      if (this.peek() === "?") this.i++;
      a = { t: "rep", item: a, min, max };
    }
  }
  parseAtom(): Ast {
    const c = this.src[this.i++];
    switch (c) {
      case "(": {
        if (this.src.startsWith("?:", this.i)) this.i += 2;
        else if (this.peek() === "?") this.fail("a lookaround or named group");
        const a = this.parseAlt();
        if (this.src[this.i++] !== ")") this.fail("an unclosed group");
        return a;
      }
      case ")":
        return this.fail("an unmatched )");
      case "[":
        return { t: "set", r: this.parseClass() };
      case ".":
        return { t: "set", r: DOT };
      case "^":
      case "$":
        return this.fail(`"${c}" away from the ends of the pattern`);
      case "*":
      case "+":
      case "?":
        return this.fail("a quantifier with nothing to repeat");
      case "\\":
        return { t: "set", r: this.parseEscape(false) };
      default: {
        const cp = this.src.codePointAt(this.i - 1)!;
        if (cp > 0xffff) this.i++;
        return { t: "set", r: [cp, cp] };
      }
    }
  }
  parseEscape(inClass: boolean): Ranges {
    const c = this.src[this.i++];
    if (c === undefined) this.fail("a trailing backslash");
    const one = (cp: number): Ranges => [cp, cp];
    switch (c) {
      case "d":
        return DIGIT;
      case "D":
        return negate(DIGIT);
      case "w":
        return WORD;
      case "W":
        return negate(WORD);
      case "s":
        return SPACE;
      case "S":
        return negate(SPACE);
      case "t":
        return one(9);
      case "n":
        return one(10);
      case "r":
        return one(13);
      case "f":
        return one(12);
      case "v":
        return one(11);
      case "0":
        return one(0);
      case "b":
        if (inClass) return one(8);
        return this.fail("\\b");
      case "x":
      case "u": {
        const n = c === "x" ? 2 : 4;
        const hex = this.src.slice(this.i, this.i + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) this.fail(`a bad \\${c} escape`);
        this.i += n;
        return one(parseInt(hex, 16));
      }
      default:
        if (/[A-Za-z0-9]/.test(c)) this.fail(`the escape \\${c}`);
        return one(c.codePointAt(0)!);
    }
  }
  parseClass(): Ranges {
    let neg = false;
    if (this.peek() === "^") {
      neg = true;
      this.i++;
    }
    const r: Ranges = [];
    let first = true;
    while (true) {
      const c = this.peek();
      if (c === undefined) this.fail("an unclosed [");
      if (c === "]" && !first) {
        this.i++;
        break;
      }
      first = false;
      const lo = this.classAtom();
      if (this.peek() === "-" && this.src[this.i + 1] !== "]" && this.src[this.i + 1]) {
        this.i++;
        const hi = this.classAtom();
        if (lo.length !== 2 || hi.length !== 2 || lo[0] !== lo[1] || hi[0] !== hi[1]) {
          this.fail("a range between classes");
        }
        if (hi[0] < lo[0]) this.fail("a range out of order");
        r.push(lo[0], hi[0]);
      } else r.push(...lo);
    }
    const n = normalize(r);
    return neg ? negate(n) : n;
  }
  classAtom(): Ranges {
    const c = this.src[this.i++];
    if (c === "\\") return this.parseEscape(true);
    const cp = this.src.codePointAt(this.i - 1)!;
    if (cp > 0xffff) this.i++;
    return [cp, cp];
  }
}

/** A compiled pattern: an NFA over code points with epsilon closures precomputed. */
export class Regex {
  /** Per state: outgoing edges (code point ranges, target). */
  readonly edges: { r: Ranges; to: number }[][] = [];
  /** Per state: epsilon targets. */
  readonly eps: number[][] = [];
  /** The accepting state. */
  accept = -1;
  /** The start set (epsilon-closed, sorted). */
  start: readonly number[] = [];
  /** The source. */
  readonly source: string;
  #closure: number[][] = [];

  /** Compiles `pattern` (see the module doc). */
  constructor(pattern: string) {
    this.source = pattern;
    let body = pattern;
    const anchoredStart = body.startsWith("^");
    if (anchoredStart) body = body.slice(1);
    const anchoredEnd = body.endsWith("$") && !body.endsWith("\\$");
    if (anchoredEnd) body = body.slice(0, -1);
    const p = new Parser(body);
    let ast = p.parseAlt();
    if (p.i !== body.length) p.fail("an unmatched )");
    const any: Ast = { t: "rep", item: { t: "set", r: ANYCHAR }, min: 0, max: Infinity };
    const items: Ast[] = [];
    if (!anchoredStart) items.push(any);
    items.push(ast);
    if (!anchoredEnd) items.push(any);
    ast = { t: "cat", items };
    const s = this.#state();
    const e = this.#build(ast, s);
    this.accept = e;
    for (let i = 0; i < this.eps.length; i++) this.#closure[i] = this.#close([i]);
    this.start = this.#closure[s];
  }

  #state(): number {
    if (this.edges.length >= MAX_REGEX_STATES) {
      throw new GrammarError(
        "too_large",
        `The pattern ${JSON.stringify(this.source)} needs more than ${MAX_REGEX_STATES} states`,
      );
    }
    this.edges.push([]);
    this.eps.push([]);
    return this.edges.length - 1;
  }

  /** Builds `a` from state `s`; returns its end state. */
  #build(a: Ast, s: number): number {
    switch (a.t) {
      case "set": {
        const e = this.#state();
        this.edges[s].push({ r: a.r, to: e });
        return e;
      }
      case "cat": {
        let cur = s;
        for (const it of a.items) cur = this.#build(it, cur);
        return cur;
      }
      case "alt": {
        const e = this.#state();
        for (const x of a.alts) {
          const b = this.#state();
          this.eps[s].push(b);
          this.eps[this.#build(x, b)].push(e);
        }
        return e;
      }
      case "rep": {
        let cur = s;
        for (let k = 0; k < a.min; k++) cur = this.#build(a.item, cur);
        if (a.max === Infinity) {
          const loop = this.#state();
          this.eps[cur].push(loop);
          const end = this.#build(a.item, loop);
          this.eps[end].push(loop);
          return loop;
        }
        const e = this.#state();
        this.eps[cur].push(e);
        for (let k = a.min; k < a.max; k++) {
          cur = this.#build(a.item, cur);
          this.eps[cur].push(e);
        }
        return e;
      }
    }
  }

  #close(from: number[]): number[] {
    const seen = new Set(from);
    const pending = [...from];
    while (pending.length > 0) {
      for (const t of this.eps[pending.pop()!]) {
        if (!seen.has(t)) {
          seen.add(t);
          pending.push(t);
        }
      }
    }
    return [...seen].sort((a, b) => a - b);
  }

  /** The states after code point `cp` from `states` (empty: rejected). */
  step(states: readonly number[], cp: number): number[] {
    const out = new Set<number>();
    for (const s of states) {
      for (const { r, to } of this.edges[s]) {
        for (let i = 0; i < r.length; i += 2) {
          if (cp >= r[i] && cp <= r[i + 1]) {
            for (const c of this.#closure[to]) out.add(c);
            break;
          }
        }
      }
    }
    return [...out].sort((a, b) => a - b);
  }

  /** Whether some code point in [lo, hi] can be taken from `states`. */
  takesAny(states: readonly number[], lo: number, hi: number): boolean {
    for (const s of states) {
      for (const { r } of this.edges[s]) {
        for (let i = 0; i < r.length; i += 2) if (r[i] <= hi && r[i + 1] >= lo) return true;
      }
    }
    return false;
  }

  /** Whether `states` includes the accepting state. */
  accepts(states: readonly number[]): boolean {
    return states.includes(this.accept);
  }

  /** Whether any string matches (the accepting state is reachable). */
  satisfiable(): boolean {
    const seen = new Set<number>(this.start);
    const pending = [...this.start];
    while (pending.length > 0) {
      const s = pending.pop()!;
      if (s === this.accept) return true;
      for (const { r, to } of this.edges[s]) {
        if (r.length === 0) continue;
        for (const c of this.#closure[to]) {
          if (!seen.has(c)) {
            seen.add(c);
            pending.push(c);
          }
        }
      }
    }
    return false;
  }
}

/** The patterns of the string formats spool enforces. */
export const FORMAT_PATTERNS: Readonly<Record<string, string>> = (() => {
  const date = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
  const time = "([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,9})?" +
    "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
  const octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  const label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
  const hex = (n: number) => `[0-9a-fA-F]{${n}}`;
  return {
    date: `^${date}$`,
    time: `^${time}$`,
    "date-time": `^${date}[Tt]${time}$`,
    uuid: `^${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}$`,
    email: "^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$",
    ipv4: `^(${octet}\\.){3}${octet}$`,
    hostname: `^${label}(\\.${label})*$`,
    uri: "^[A-Za-z][A-Za-z0-9+.-]*:[^\\s]+$",
  };
})();
