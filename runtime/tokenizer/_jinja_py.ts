/**
 * Jinja evaluation with Python's semantics, for chat templates: `@huggingface/jinja` lexes and
 * parses; the interpreter subclass here evaluates as jinja2 3.1 does under transformers
 * (printing, operators, sandboxed attribute access, filters and tests, loop and macro scopes).
 * Private to runtime/tokenizer/: chat_template.ts is the public API.
 *
 * @module
 */

import { Environment, Interpreter, parse, tokenize } from "@huggingface/jinja";
// ---------------------------------------------------------------------------------------------
// Runtime values of @huggingface/jinja (its classes are not exported: found once by example)
// ---------------------------------------------------------------------------------------------

/** A runtime value of the interpreter. */
export type RV = ReturnType<Environment["lookupVariable"]>;
/** A constructor of runtime values. */
type RVCtor = new (value?: unknown) => RV;
/** A parsed template. */
export type Program = ReturnType<typeof parse>;
/** An AST node, seen structurally. */
export interface Node {
  type: string;
  [key: string]: unknown;
}
/** The native function a FunctionValue wraps. */
type NativeFn = (args: RV[], env: Environment) => RV;

/** Errors that mirror Python's exception types (the oracle compares error vs no error). */
export class PyError extends Error {
  constructor(readonly pyType: string, message: string) {
    super(`${pyType}: ${message}`);
  }
}
/** `raise_exception(...)` from the template. */
export class RaisedError extends Error {}

export const C = (() => {
  const env = new Environment();
  let n = 0;
  const ctor = (v: unknown) => env.set(`__probe${n++}`, v).constructor as RVCtor;
  const Function = ctor(() => null);
  const interp = new Interpreter(env);
  const tupleNode = (parse(tokenize("{{ (1, 2) }}")) as unknown as { body: Node[] }).body[0];
  const tuple = (interp as unknown as Internals).evaluate(tupleNode, env);
  const ns = (env.lookupVariable("namespace").value as NativeFn)([], env);
  return {
    Integer: ctor(1),
    Float: ctor(1.5),
    String: ctor(""),
    Boolean: ctor(true),
    Null: ctor(null),
    Undefined: ctor(undefined),
    Array: ctor([]),
    Object: ctor({}),
    Function,
    Tuple: tuple.constructor as RVCtor,
    Namespace: ns.constructor as RVCtor,
  };
})();

export const mkInt = (n: number): RV => new C.Integer(n);
const mkFloat = (n: number): RV => new C.Float(n);
export const mkStr = (s: string): RV => new C.String(s);
export const mkBool = (b: boolean): RV => new C.Boolean(b);
export const mkNone = (): RV => new C.Null(null);
export const mkUndef = (): RV => new C.Undefined(undefined);
export const mkList = (items: RV[]): RV => new C.Array(items);
const mkTuple = (items: RV[]): RV => new C.Tuple(items);
export const mkDict = (map: Map<string, RV>): RV => new C.Object(map);
export const mkFn = (fn: NativeFn): RV => new C.Function(fn);

const T = {
  int: "IntegerValue",
  float: "FloatValue",
  str: "StringValue",
  bool: "BooleanValue",
  none: "NullValue",
  undef: "UndefinedValue",
  list: "ArrayValue",
  tuple: "TupleValue",
  dict: "ObjectValue",
  kwargs: "KeywordArgumentsValue",
  ns: "NamespaceValue",
  fn: "FunctionValue",
} as const;

const isStr = (v: RV): boolean => v.type === T.str;
const isNum = (v: RV): boolean => v.type === T.int || v.type === T.float;
const isNumLike = (v: RV): boolean => isNum(v) || v.type === T.bool;
const isSeq = (v: RV): boolean => v.type === T.list || v.type === T.tuple;
export const isDict = (v: RV): boolean => v.type === T.dict || v.type === T.kwargs;
const isUndef = (v: RV): boolean => v.type === T.undef;
export const strOf = (v: RV): string => v.value as string;
const numOf = (v: RV): number => (v.type === T.bool ? (v.value ? 1 : 0) : v.value as number);
const listOf = (v: RV): RV[] => v.value as RV[];
export const mapOf = (v: RV): Map<string, RV> => v.value as Map<string, RV>;

/** Converts a JS value (JSON-like) to a runtime value. `undefined` object fields are dropped. */
export function toRV(x: unknown): RV {
  if (x === undefined) return mkUndef();
  if (x === null) return mkNone();
  switch (typeof x) {
    case "boolean":
      return mkBool(x);
    case "number":
      return Number.isInteger(x) ? mkInt(x) : mkFloat(x);
    case "bigint":
      return mkInt(Number(x));
    case "string":
      return mkStr(x);
    case "function": {
      const f = x as (...a: unknown[]) => unknown;
      return mkFn((args) => toRV(f(...args.map(fromRV))));
    }
    case "object": {
      if (Array.isArray(x)) return mkList(x.map(toRV));
      if (x instanceof Date) return mkStr(x.toISOString());
      const map = new Map<string, RV>();
      for (const [k, v] of Object.entries(x as Record<string, unknown>)) {
        if (v !== undefined) map.set(k, toRV(v));
      }
      return mkDict(map);
    }
    default:
      throw new TypeError(`Cannot pass a ${typeof x} to a chat template`);
  }
}

/** Converts a runtime value back to a plain JS value. */
function fromRV(v: RV): unknown {
  switch (v.type) {
    case T.list:
    case T.tuple:
      return listOf(v).map(fromRV);
    case T.dict:
    case T.kwargs:
    case T.ns: {
      const out: Record<string, unknown> = {};
      for (const [k, x] of mapOf(v)) out[pyStr(decodeKey(k))] = fromRV(x);
      return out;
    }
    case T.undef:
      return undefined;
    default:
      return v.value;
  }
}

/**
 * Dict keys: the interpreter's dicts are `Map<string, RV>`; Python dicts also take int, float,
 * bool, None and tuple keys (`{0: 0, 512: 128}`), stored under an encoded string.
 */
const KEY_TAG = "\u0000";

/** The Map key of a Python dict key (`1`, `1.0` and `True` are the same key, as in Python). */
export function encodeKey(k: RV): string {
  switch (k.type) {
    case T.str:
      return strOf(k);
    case T.int:
    case T.bool:
      return `${KEY_TAG}i:${numOf(k)}`;
    case T.float:
      return Number.isInteger(k.value) ? `${KEY_TAG}i:${k.value}` : `${KEY_TAG}f:${k.value}`;
    case T.none:
      return `${KEY_TAG}n`;
    case T.undef:
      return `${KEY_TAG}u`; // hashable in jinja2, equal to no key
    case T.tuple:
      return `${KEY_TAG}t:${JSON.stringify(listOf(k).map(encodeKey))}`;
    default:
      throw new PyError("TypeError", `unhashable type: '${pyTypeName(k)}'`);
  }
}

function isHashable(k: RV): boolean {
  return k.type !== T.list && !isDict(k) && k.type !== T.ns &&
    (k.type !== T.tuple || listOf(k).every(isHashable));
}

/** The Python key a Map key stands for. */
function decodeKey(k: string): RV {
  if (!k.startsWith(KEY_TAG)) return mkStr(k);
  const tag = k[1];
  const rest = k.slice(3);
  if (tag === "i") return mkInt(Number(rest));
  if (tag === "f") return mkFloat(Number(rest));
  if (tag === "t") return mkTuple((JSON.parse(rest) as string[]).map(decodeKey));
  return mkNone();
}

/**
 * Lazily evaluated results (Python generators): `map`, `select`, `reject`, `selectattr`,
 * `rejectattr`, `unique`, `items`, `batch`, `slice` and `reverse` return them in jinja2. They
 * are always truthy, have no `len()`, are not JSON serializable, and are consumed by iteration.
 */
const GENERATORS = new WeakMap<RV, { pos: number }>();

/**
 * Markup strings (markupsafe): `|safe` and `|escape` mark a string; adding a plain string to a
 * marked one HTML-escapes the plain side (a template bug some templates rely on unknowingly).
 */
const MARKUP = new WeakSet<RV>();

function mkMarkup(s: string): RV {
  const v = mkStr(s);
  MARKUP.add(v);
  return v;
}

function htmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&#34;").replace(/'/g, "&#39;");
}

/** markupsafe.escape: marked strings pass, anything else is stringified and escaped. */
function escapeRV(v: RV): RV {
  return MARKUP.has(v) ? v : mkMarkup(htmlEscape(pyStr(v)));
}

function mkGen(items: RV[]): RV {
  const g = mkList(items);
  GENERATORS.set(g, { pos: 0 });
  return g;
}

// ---------------------------------------------------------------------------------------------
// Python semantics: str(), repr(), json.dumps, equality, ordering, whitespace
// ---------------------------------------------------------------------------------------------

/** Python's `repr(float)`. */
function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expStr] = x.toExponential().split("e");
  const exp = Number(expStr);
  if (exp >= -4 && exp < 16) {
    const s = x.toFixed(Math.max(0, mant.replace(/^-/, "").replace(".", "").length - 1 - exp));
    return s.includes(".") ? s : `${s}.0`;
  }
  const e = Math.abs(exp);
  return `${mant}e${exp < 0 ? "-" : "+"}${e < 10 ? "0" : ""}${e}`;
}

const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python's `repr(str)`. */
function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && NON_PRINTABLE.test(ch)) {
      const hex = c.toString(16);
      out += c < 0x100
        ? "\\x" + hex.padStart(2, "0")
        : c < 0x10000
        ? "\\u" + hex.padStart(4, "0")
        : "\\U" + hex.padStart(8, "0");
    } else out += ch;
  }
  return out + quote;
}

/** Python's `repr()` of a runtime value. */
function pyRepr(v: RV): string {
  switch (v.type) {
    case T.str:
      return pyStrRepr(strOf(v));
    case T.list:
      if (GENERATORS.has(v)) return "<generator object>";
      return `[${listOf(v).map(pyRepr).join(", ")}]`;
    case T.tuple: {
      const items = listOf(v);
      return items.length === 1 ? `(${pyRepr(items[0])},)` : `(${items.map(pyRepr).join(", ")})`;
    }
    case T.dict:
    case T.kwargs:
      return `{${
        [...mapOf(v)].map(([k, x]) => `${pyRepr(decodeKey(k))}: ${pyRepr(x)}`).join(", ")
      }}`;
    case T.ns:
      return `<Namespace {${
        [...mapOf(v)].map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`).join(", ")
      }}>`;
    case T.undef:
      return "Undefined";
    default:
      return pyStr(v);
  }
}

/** Python's `str()` of a runtime value (what `{{ x }}` prints). */
export function pyStr(v: RV): string {
  switch (v.type) {
    case T.str:
      return strOf(v);
    case T.int:
      return String(v.value);
    case T.float:
      return pyFloatRepr(v.value as number);
    case T.bool:
      return v.value ? "True" : "False";
    case T.none:
      return "None";
    case T.undef:
      return "";
    case T.fn:
      return "<function>";
    default:
      return pyRepr(v);
  }
}

/** JSON string literal as Python's json.dumps writes it. */
function jsonStr(s: string, ensureAscii: boolean): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const c = s.charCodeAt(i);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || (ensureAscii && c > 0x7e)) {
      out += "\\u" + c.toString(16).padStart(4, "0");
    } else out += ch;
  }
  return out + '"';
}

interface JsonOptions {
  ensureAscii: boolean;
  indent: string | null;
  itemSep: string;
  keySep: string;
  sortKeys: boolean;
}

/** Python's `json.dumps` of a runtime value. */
function pyJson(v: RV, o: JsonOptions, depth = 0): string {
  switch (v.type) {
    case T.none:
      return "null";
    case T.bool:
      return v.value ? "true" : "false";
    case T.int:
      return String(v.value);
    case T.float: {
      const x = v.value as number;
      if (Number.isNaN(x)) return "NaN";
      if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity";
      return pyFloatRepr(x);
    }
    case T.str:
      return jsonStr(strOf(v), o.ensureAscii);
    case T.list:
    case T.tuple:
    case T.dict:
    case T.kwargs: {
      if (GENERATORS.has(v)) {
        throw new PyError("TypeError", "Object of type generator is not JSON serializable");
      }
      const isList = isSeq(v);
      const parts: string[] = [];
      if (isList) {
        for (const x of listOf(v)) parts.push(pyJson(x, o, depth + 1));
      } else {
        let entries = [...mapOf(v)].map(([k, x]): [string, RV] => [jsonKey(decodeKey(k)), x]);
        if (o.sortKeys) entries = entries.sort(([a], [b]) => cmpCodePoints(a, b));
        for (const [k, x] of entries) {
          parts.push(jsonStr(k, o.ensureAscii) + o.keySep + pyJson(x, o, depth + 1));
        }
      }
      const [open, close] = isList ? ["[", "]"] : ["{", "}"];
      if (parts.length === 0) return open + close;
      if (o.indent === null) return open + parts.join(o.itemSep) + close;
      const inner = "\n" + o.indent.repeat(depth + 1);
      return open + inner + parts.join(o.itemSep + inner) + "\n" + o.indent.repeat(depth) + close;
    }
    default:
      throw new PyError(
        "TypeError",
        `Object of type ${pyTypeName(v)} is not JSON serializable`,
      );
  }
}

/** A dict key as json.dumps writes it. */
function jsonKey(k: RV): string {
  switch (k.type) {
    case T.str:
      return strOf(k);
    case T.none:
      return "null";
    case T.bool:
      return k.value ? "true" : "false";
    case T.int:
    case T.float:
      return pyStr(k);
    default:
      throw new PyError(
        "TypeError",
        `keys must be str, int, float, bool or None, not ${pyTypeName(k)}`,
      );
  }
}

function pyTypeName(v: RV): string {
  if (GENERATORS.has(v)) return "generator";
  const names: Record<string, string> = {
    [T.int]: "int",
    [T.float]: "float",
    [T.str]: "str",
    [T.bool]: "bool",
    [T.none]: "NoneType",
    [T.undef]: "Undefined",
    [T.list]: "list",
    [T.tuple]: "tuple",
    [T.dict]: "dict",
    [T.kwargs]: "dict",
    [T.ns]: "Namespace",
    [T.fn]: "function",
  };
  return names[v.type] ?? v.type;
}

/** Python `==`. */
function pyEq(a: RV, b: RV): boolean {
  if (isNumLike(a) && isNumLike(b)) return numOf(a) === numOf(b);
  if (GENERATORS.has(a) || GENERATORS.has(b)) return a === b;
  if (a.type !== b.type) {
    return isDict(a) && isDict(b) ? dictEq(a, b) : false;
  }
  switch (a.type) {
    case T.list:
    case T.tuple: {
      const x = listOf(a), y = listOf(b);
      return x.length === y.length && x.every((v, i) => pyEq(v, y[i]));
    }
    case T.dict:
    case T.kwargs:
      return dictEq(a, b);
    case T.none:
    case T.undef:
      return true;
    case T.str:
      return a.value === b.value;
    default:
      return a === b || a.value === b.value;
  }
}

function dictEq(a: RV, b: RV): boolean {
  const x = mapOf(a), y = mapOf(b);
  if (x.size !== y.size) return false;
  for (const [k, v] of x) {
    const w = y.get(k);
    if (w === undefined || !pyEq(v, w)) return false;
  }
  return true;
}

/** Python ordering (`<`), -1/0/1; throws TypeError for unorderable types. */
function pyCmp(a: RV, b: RV): number {
  if (isNumLike(a) && isNumLike(b)) {
    const x = numOf(a), y = numOf(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (isStr(a) && isStr(b)) return cmpCodePoints(strOf(a), strOf(b));
  if (isSeq(a) && a.type === b.type) {
    const x = listOf(a), y = listOf(b);
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      if (!pyEq(x[i], y[i])) return pyCmp(x[i], y[i]);
    }
    return x.length - y.length < 0 ? -1 : x.length > y.length ? 1 : 0;
  }
  throw new PyError(
    "TypeError",
    `'<' not supported between instances of '${pyTypeName(a)}' and '${pyTypeName(b)}'`,
  );
}

function cmpCodePoints(a: string, b: string): number {
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0)! < y[i].codePointAt(0)! ? -1 : 1;
  }
  return x.length < y.length ? -1 : x.length > y.length ? 1 : 0;
}

/** Python truthiness. */
function pyBool(v: RV): boolean {
  if (GENERATORS.has(v)) return true;
  switch (v.type) {
    case T.ns:
    case T.fn:
      return true;
    case T.undef:
    case T.none:
      return false;
    default:
      return (v as unknown as { __bool__(): RV }).__bool__().value as boolean;
  }
}

const PY_WS = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005" +
  "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";

/** Python `str.strip/lstrip/rstrip(chars)`. */
function pyStrip(s: string, chars: string | null, left: boolean, right: boolean): string {
  const set = new Set(chars === null ? PY_WS : chars);
  const cps = [...s];
  let i = 0, j = cps.length;
  if (left) { while (i < j && set.has(cps[i])) i++; }
  if (right) { while (j > i && set.has(cps[j - 1])) j--; }
  return cps.slice(i, j).join("");
}

/** Python `str.split(sep, maxsplit)`. */
function pySplit(s: string, sep: string | null, maxsplit: number): string[] {
  if (sep === null) {
    const out: string[] = [];
    let rest = pyStrip(s, null, true, false);
    while (rest.length > 0) {
      if (maxsplit >= 0 && out.length >= maxsplit) {
        out.push(rest);
        break;
      }
      let k = 0;
      const cps = [...rest];
      while (k < cps.length && !PY_WS.includes(cps[k])) k++;
      out.push(cps.slice(0, k).join(""));
      rest = pyStrip(cps.slice(k).join(""), null, true, false);
    }
    return out;
  }
  if (sep === "") throw new PyError("ValueError", "empty separator");
  const parts = s.split(sep);
  if (maxsplit >= 0 && parts.length > maxsplit + 1) {
    return [...parts.slice(0, maxsplit), parts.slice(maxsplit).join(sep)];
  }
  return parts;
}

/** Python `str.rsplit(sep, maxsplit)`. */
function pyRsplit(s: string, sep: string | null, maxsplit: number): string[] {
  if (maxsplit < 0) return pySplit(s, sep, -1);
  if (sep === null) {
    const all = pySplit(s, null, -1);
    if (all.length <= maxsplit + 1) return all;
    // Keep the head as in the source (whitespace inside it preserved).
    let head = pyStrip(s, null, false, true);
    const tail: string[] = [];
    for (let i = 0; i < maxsplit; i++) {
      const w = all[all.length - 1 - i];
      head = pyStrip(head.slice(0, head.length - w.length), null, false, true);
      tail.unshift(w);
    }
    return [head, ...tail];
  }
  if (sep === "") throw new PyError("ValueError", "empty separator");
  const parts = s.split(sep);
  if (parts.length > maxsplit + 1) {
    const cut = parts.length - maxsplit;
    return [parts.slice(0, cut).join(sep), ...parts.slice(cut)];
  }
  return parts;
}

/** Python's line boundaries for `str.splitlines`. */
const LINE_BREAKS = new Set([
  "\n",
  "\r",
  "\v",
  "\f",
  "\x1c",
  "\x1d",
  "\x1e",
  "\x85",
  "\u2028",
  "\u2029",
]);

/** Python `str.splitlines(keepends)`. */
function pySplitlines(s: string, keepends: boolean): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (!LINE_BREAKS.has(s[i])) continue;
    const end = s[i] === "\r" && s[i + 1] === "\n" ? i + 2 : i + 1;
    out.push(s.slice(start, keepends ? end : i));
    start = end;
    i = end - 1;
  }
  if (start < s.length) out.push(s.slice(start));
  return out;
}

function pyCapitalize(s: string): string {
  const cps = [...s];
  return cps.length === 0 ? "" : cps[0].toUpperCase() + cps.slice(1).join("").toLowerCase();
}

const isCased = (ch: string): boolean => ch.toLowerCase() !== ch.toUpperCase();

/** Python `str.title()`. */
function pyTitle(s: string): string {
  let out = "";
  let prevCased = false;
  for (const ch of s) {
    out += prevCased ? ch.toLowerCase() : ch.toUpperCase();
    prevCased = isCased(ch);
  }
  return out;
}

/** Python's `%` string formatting with `%s`, `%r`, `%d`, `%i`, `%f`, `%%` (flags/width ignored). */
function pyPercentFormat(fmt: string, arg: RV): string {
  const args = arg.type === T.tuple ? listOf(arg) : [arg];
  let i = 0;
  const out = fmt.replace(/%([-+ 0#]*)(\d*)(?:\.(\d+))?([srdifx%])/g, (_m, _fl, _w, prec, conv) => {
    if (conv === "%") return "%";
    if (i >= args.length) {
      throw new PyError("TypeError", "not enough arguments for format string");
    }
    const a = args[i++];
    switch (conv) {
      case "s":
        return pyStr(a);
      case "r":
        return pyRepr(a);
      case "d":
      case "i":
        return String(Math.trunc(numOf(a)));
      case "x":
        return Math.trunc(numOf(a)).toString(16);
      default:
        return numOf(a).toFixed(prec === undefined ? 6 : Number(prec));
    }
  });
  if (i < args.length && arg.type === T.tuple) {
    throw new PyError("TypeError", "not all arguments converted during string formatting");
  }
  return out;
}

/** Python `str.format(*args, **kwargs)` for `{}`, `{0}`, `{name}` and `{x.attr}`/`{x[k]}`. */
function pyStrFormat(fmt: string, args: RV[], kwargs: Map<string, RV>): string {
  let auto = 0;
  return fmt.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, field: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    const [ref, spec = ""] = field!.split(":");
    if (spec !== "") throw new PyError("ValueError", `format spec '${spec}' is not supported`);
    const [, head, rest] = /^([^.[]*)(.*)$/.exec(ref)!;
    let v = head === "" ? args[auto++] : /^\d+$/.test(head) ? args[Number(head)] : kwargs.get(head);
    if (v === undefined) throw new PyError("IndexError", `format field '${ref}' not found`);
    for (const [, attr, key] of rest.matchAll(/\.(\w+)|\[([^\]]+)\]/g)) {
      v = getItem(v, mkStr(attr ?? key));
    }
    return pyStr(v);
  });
}

// ---------------------------------------------------------------------------------------------
// Attribute and item access (jinja2's sandboxed getattr/getitem)
// ---------------------------------------------------------------------------------------------

/**
 * List methods that stay unsafe. The mutating ones that chat templates use (`append`, `pop`,
 * `insert`, `extend`, `remove`, `clear`, `reverse`) are allowed, unlike transformers' immutable
 * sandbox and like llama.cpp's engine: Kimi K2's templates queue tool-call ids with
 * `ns.ids.append(...)` and `ns.ids.pop(0)`, and cannot render a tool call otherwise. A template
 * that renders under the immutable sandbox renders the same here (those calls raised there).
 * The messages are a copy, so a template cannot change the caller's data.
 */
const UNSAFE_LIST = new Set(["sort"]);
const UNSAFE_DICT = new Set(["clear", "pop", "popitem", "setdefault", "update"]);

function unsafe(name: string, owner: string): RV {
  return mkFn(() => {
    throw new PyError(
      "SecurityError",
      `access to attribute '${name}' of '${owner}' object is unsafe.`,
    );
  });
}

function undefinedAttr(owner: RV, name: string): never {
  throw new PyError("UndefinedError", `'${pyTypeName(owner)} object' has no attribute '${name}'`);
}

/** Positional and keyword arguments of a native call. */
export function splitArgs(args: RV[]): [RV[], Map<string, RV>] {
  const last = args.at(-1);
  if (last && last.type === T.kwargs) return [args.slice(0, -1), mapOf(last)];
  return [args, new Map()];
}

/** Binds Python-style parameters: `[name, default]` pairs, default `undefined` = required. */
function bind(
  fname: string,
  args: RV[],
  kwargs: Map<string, RV>,
  params: [string, RV | undefined][],
): RV[] {
  if (args.length > params.length) {
    throw new PyError("TypeError", `${fname}() takes at most ${params.length} arguments`);
  }
  const out: RV[] = [];
  for (let i = 0; i < params.length; i++) {
    const [name, def] = params[i];
    let v: RV | undefined = args[i];
    if (kwargs.has(name)) {
      if (v !== undefined) {
        throw new PyError("TypeError", `${fname}() got multiple values for '${name}'`);
      }
      v = kwargs.get(name);
    }
    if (v === undefined) {
      if (def === undefined) {
        throw new PyError("TypeError", `${fname}() missing argument '${name}'`);
      }
      v = def;
    }
    out.push(v);
  }
  for (const k of kwargs.keys()) {
    if (!params.some(([n]) => n === k)) {
      throw new PyError("TypeError", `${fname}() got an unexpected keyword argument '${k}'`);
    }
  }
  return out;
}

export function needStr(v: RV, what: string): string {
  if (!isStr(v)) throw new PyError("TypeError", `${what} must be str, not ${pyTypeName(v)}`);
  return strOf(v);
}
function optStr(v: RV, what: string): string | null {
  return v.type === T.none ? null : needStr(v, what);
}
export function needInt(v: RV, what: string): number {
  if (v.type !== T.int && v.type !== T.bool) {
    throw new PyError("TypeError", `${what} must be int, not ${pyTypeName(v)}`);
  }
  return numOf(v);
}

/** Items of an iterable (Python `iter()`), for filters and loops. */
export function iterate(v: RV): RV[] {
  const gen = GENERATORS.get(v);
  if (gen) {
    const rest = listOf(v).slice(gen.pos);
    gen.pos = listOf(v).length;
    return rest;
  }
  switch (v.type) {
    case T.list:
    case T.tuple:
      return listOf(v);
    case T.str:
      return [...strOf(v)].map(mkStr);
    case T.dict:
    case T.kwargs:
      return [...mapOf(v).keys()].map(decodeKey);
    case T.undef:
      return [];
    default:
      throw new PyError("TypeError", `'${pyTypeName(v)}' object is not iterable`);
  }
}

function pyLen(v: RV): number {
  if (GENERATORS.has(v)) throw new PyError("TypeError", "object of type 'generator' has no len()");
  switch (v.type) {
    case T.str:
      return [...strOf(v)].length;
    case T.list:
    case T.tuple:
      return listOf(v).length;
    case T.dict:
    case T.kwargs:
      return mapOf(v).size;
    case T.undef:
      return 0;
    default:
      throw new PyError("TypeError", `object of type '${pyTypeName(v)}' has no len()`);
  }
}

function strMethod(s: string, name: string): RV | undefined {
  const m = (fn: (a: RV[], k: Map<string, RV>) => RV) =>
    mkFn((raw) => {
      const [a, k] = splitArgs(raw);
      return fn(a, k);
    });
  const NONE = mkNone();
  switch (name) {
    case "strip":
    case "lstrip":
    case "rstrip":
      return m((a, k) => {
        const [chars] = bind(name, a, k, [["chars", NONE]]);
        return mkStr(
          pyStrip(s, optStr(chars, "chars"), name !== "rstrip", name !== "lstrip"),
        );
      });
    case "split":
    case "rsplit":
      return m((a, k) => {
        const [sep, max] = bind(name, a, k, [["sep", NONE], ["maxsplit", mkInt(-1)]]);
        const f = name === "split" ? pySplit : pyRsplit;
        return mkList(f(s, optStr(sep, "sep"), needInt(max, "maxsplit")).map(mkStr));
      });
    case "splitlines":
      return m((a, k) => {
        const [keep] = bind(name, a, k, [["keepends", mkBool(false)]]);
        return mkList(pySplitlines(s, pyBool(keep)).map(mkStr));
      });
    case "startswith":
    case "endswith":
      return m((a, k) => {
        const [prefix] = bind(name, a, k, [["prefix", undefined]]);
        const options = prefix.type === T.tuple ? listOf(prefix) : [prefix];
        return mkBool(
          options.some((p) => {
            const t = needStr(p, `${name} arg`);
            return name === "startswith" ? s.startsWith(t) : s.endsWith(t);
          }),
        );
      });
    case "replace":
      return m((a, k) => {
        const [o, n, c] = bind(name, a, k, [["old", undefined], ["new", undefined], [
          "count",
          mkInt(-1),
        ]]);
        return mkStr(pyReplace(s, needStr(o, "old"), needStr(n, "new"), needInt(c, "count")));
      });
    case "upper":
      return m(() => mkStr(s.toUpperCase()));
    case "lower":
      return m(() => mkStr(s.toLowerCase()));
    case "casefold":
      return m(() => mkStr(s.toLowerCase()));
    case "title":
      return m(() => mkStr(pyTitle(s)));
    case "capitalize":
      return m(() => mkStr(pyCapitalize(s)));
    case "swapcase":
      return m(() =>
        mkStr(
          [...s].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join(""),
        )
      );
    case "find":
    case "rfind":
    case "index":
    case "rindex":
    case "count":
      return m((a) => {
        const sub = needStr(a[0] ?? mkUndef(), "sub");
        if (name === "count") {
          if (sub === "") return mkInt([...s].length + 1);
          return mkInt(s.split(sub).length - 1);
        }
        const i = name === "find" || name === "index" ? s.indexOf(sub) : s.lastIndexOf(sub);
        if (i < 0 && name.endsWith("index")) throw new PyError("ValueError", "substring not found");
        return mkInt(i < 0 ? -1 : [...s.slice(0, i)].length);
      });
    case "join":
      return m((a) =>
        mkStr(iterate(a[0] ?? mkUndef()).map((x) => needStr(x, "sequence item")).join(s))
      );
    case "format":
      return m((a, k) => mkStr(pyStrFormat(s, a, k)));
    case "isdigit":
    case "isnumeric":
    case "isdecimal":
      return m(() => mkBool(s.length > 0 && /^\p{Nd}+$/u.test(s)));
    case "isalpha":
      return m(() => mkBool(s.length > 0 && /^\p{L}+$/u.test(s)));
    case "isalnum":
      return m(() => mkBool(s.length > 0 && /^[\p{L}\p{Nd}]+$/u.test(s)));
    case "isspace":
      return m(() => mkBool(s.length > 0 && [...s].every((c) => PY_WS.includes(c))));
    case "isupper":
    case "islower": {
      return m(() => {
        const cased = [...s].filter(isCased);
        const want = name === "isupper"
          ? (c: string) => c === c.toUpperCase()
          : (c: string) => c === c.toLowerCase();
        return mkBool(cased.length > 0 && cased.every(want));
      });
    }
    case "removeprefix":
      return m((a) => {
        const p = needStr(a[0] ?? mkUndef(), "prefix");
        return mkStr(p !== "" && s.startsWith(p) ? s.slice(p.length) : s);
      });
    case "removesuffix":
      return m((a) => {
        const p = needStr(a[0] ?? mkUndef(), "suffix");
        return mkStr(p !== "" && s.endsWith(p) ? s.slice(0, s.length - p.length) : s);
      });
    case "partition":
    case "rpartition":
      return m((a) => {
        const sep = needStr(a[0] ?? mkUndef(), "sep");
        const i = name === "partition" ? s.indexOf(sep) : s.lastIndexOf(sep);
        if (i < 0) {
          return mkTuple(
            name === "partition"
              ? [mkStr(s), mkStr(""), mkStr("")]
              : [mkStr(""), mkStr(""), mkStr(s)],
          );
        }
        return mkTuple([mkStr(s.slice(0, i)), mkStr(sep), mkStr(s.slice(i + sep.length))]);
      });
    case "zfill":
      return m((a) => {
        const w = needInt(a[0] ?? mkUndef(), "width");
        const sign = /^[+-]/.test(s) ? s[0] : "";
        const body = sign ? s.slice(1) : s;
        return mkStr(sign + body.padStart(w - sign.length, "0"));
      });
    case "center":
    case "ljust":
    case "rjust":
      return m((a) => {
        const w = needInt(a[0] ?? mkUndef(), "width");
        const fill = a[1] ? needStr(a[1], "fillchar") : " ";
        const len = [...s].length;
        if (w <= len) return mkStr(s);
        const pad = w - len;
        if (name === "ljust") return mkStr(s + fill.repeat(pad));
        if (name === "rjust") return mkStr(fill.repeat(pad) + s);
        const left = Math.floor(pad / 2) + (pad & w & 1);
        return mkStr(fill.repeat(left) + s + fill.repeat(pad - left));
      });
    default:
      return undefined;
  }
}

function pyReplace(s: string, old: string, rep: string, count: number): string {
  if (count === 0) return s;
  if (old === "") {
    const cps = [...s];
    let out = "";
    let n = 0;
    for (let i = 0; i <= cps.length; i++) {
      if (count < 0 || n < count) {
        out += rep;
        n++;
      }
      if (i < cps.length) out += cps[i];
    }
    return out;
  }
  if (count < 0) return s.split(old).join(rep);
  let out = "";
  let rest = s;
  for (let n = 0; n < count; n++) {
    const i = rest.indexOf(old);
    if (i < 0) break;
    out += rest.slice(0, i) + rep;
    rest = rest.slice(i + old.length);
  }
  return out + rest;
}

function dictMethod(d: RV, name: string): RV | undefined {
  const map = mapOf(d);
  switch (name) {
    case "get":
      return mkFn((raw) => {
        const [a, k] = splitArgs(raw);
        const [key, def] = bind("get", a, k, [["key", undefined], ["default", mkNone()]]);
        return map.get(encodeKey(key)) ?? def;
      });
    case "items":
      return mkFn(() => mkList([...map].map(([k, v]) => mkTuple([decodeKey(k), v]))));
    case "keys":
      return mkFn(() => mkList([...map.keys()].map(decodeKey)));
    case "values":
      return mkFn(() => mkList([...map.values()]));
    case "copy":
      return mkFn(() => mkDict(new Map(map)));
    default:
      return UNSAFE_DICT.has(name) ? unsafe(name, "dict") : undefined;
  }
}

function listMethod(l: RV, name: string): RV | undefined {
  const items = listOf(l);
  switch (name) {
    case "index":
      return mkFn((a) => {
        const i = items.findIndex((x) => pyEq(x, a[0] ?? mkUndef()));
        if (i < 0) throw new PyError("ValueError", "value is not in list");
        return mkInt(i);
      });
    case "count":
      return mkFn((a) => mkInt(items.filter((x) => pyEq(x, a[0] ?? mkUndef())).length));
    case "copy":
      return mkFn(() => mkList(items.slice()));
    default:
      if (l.type !== T.list) return undefined;
      return UNSAFE_LIST.has(name) ? unsafe(name, "list") : listMutator(items, name);
  }
}

/** The mutating list methods that are allowed (see {@link UNSAFE_LIST}), with Python's errors. */
function listMutator(items: RV[], name: string): RV | undefined {
  const args = (raw: RV[], n: [string, RV | undefined][]) => {
    const [a, k] = splitArgs(raw);
    return bind(name, a, k, n);
  };
  const index = (i: RV, len: number) => {
    const n = needInt(i, "list index");
    return n < 0 ? n + len : n;
  };
  switch (name) {
    case "append":
      return mkFn((raw) => (items.push(args(raw, [["x", undefined]])[0]), mkNone()));
    case "extend":
      return mkFn((
        raw,
      ) => (items.push(...iterate(args(raw, [["iterable", undefined]])[0])), mkNone()));
    case "insert":
      return mkFn((raw) => {
        const [i, x] = args(raw, [["index", undefined], ["object", undefined]]);
        const at = Math.min(Math.max(index(i, items.length), 0), items.length);
        items.splice(at, 0, x);
        return mkNone();
      });
    case "pop":
      return mkFn((raw) => {
        const [i] = args(raw, [["index", mkInt(-1)]]);
        if (items.length === 0) throw new PyError("IndexError", "pop from empty list");
        const at = index(i, items.length);
        if (at < 0 || at >= items.length) throw new PyError("IndexError", "pop index out of range");
        return items.splice(at, 1)[0];
      });
    case "remove":
      return mkFn((raw) => {
        const [x] = args(raw, [["value", undefined]]);
        const at = items.findIndex((y) => pyEq(y, x));
        if (at < 0) throw new PyError("ValueError", "list.remove(x): x not in list");
        items.splice(at, 1);
        return mkNone();
      });
    case "clear":
      return mkFn((raw) => (args(raw, []), items.splice(0), mkNone()));
    case "reverse":
      return mkFn((raw) => (args(raw, []), items.reverse(), mkNone()));
    default:
      return undefined;
  }
}

/** Python attribute lookup for `obj.name` (attribute first, then item), as jinja2 does. */
function getAttr(obj: RV, name: string): RV {
  switch (obj.type) {
    case T.undef:
      return undefinedAttr(obj, name);
    case T.str:
      return strMethod(strOf(obj), name) ?? mkUndef();
    case T.dict:
    case T.kwargs:
      return dictMethod(obj, name) ?? mapOf(obj).get(name) ?? mkUndef();
    case T.list:
    case T.tuple:
      return listMethod(obj, name) ?? mkUndef();
    case T.ns:
      return mapOf(obj).get(name) ?? mkUndef();
    default:
      return mkUndef();
  }
}

/** Python item lookup for `obj[key]` (item first, then attribute), as jinja2 does. */
function getItem(obj: RV, key: RV): RV {
  switch (obj.type) {
    case T.undef:
      return undefinedAttr(obj, pyStr(key));
    case T.dict:
    case T.kwargs:
      return (isHashable(key) ? mapOf(obj).get(encodeKey(key)) : undefined) ??
        (isStr(key) ? dictMethod(obj, strOf(key)) : undefined) ?? mkUndef();
    case T.list:
    case T.tuple:
    case T.str: {
      if (GENERATORS.has(obj)) return mkUndef();
      if (key.type === T.int || key.type === T.bool) {
        const items = obj.type === T.str ? [...strOf(obj)] : listOf(obj);
        let i = numOf(key);
        if (i < 0) i += items.length;
        const v = items[i];
        if (v === undefined) return mkUndef();
        return typeof v === "string" ? mkStr(v) : v;
      }
      return isStr(key) ? getAttr(obj, strOf(key)) : mkUndef();
    }
    case T.ns:
      return isStr(key) ? mapOf(obj).get(strOf(key)) ?? mkUndef() : mkUndef();
    default:
      return mkUndef();
  }
}

// ---------------------------------------------------------------------------------------------
// Filters and tests
// ---------------------------------------------------------------------------------------------

/** A filter: operand, positional args, keyword args, the interpreter, the environment. */
type Filter = (
  v: RV,
  args: RV[],
  kwargs: Map<string, RV>,
  ctx: { interp: Internals; env: Environment },
) => RV;

/** A test: operand and its arguments. */
type Test = (v: RV, args: RV[]) => boolean;

export const TESTS: Record<string, Test> = {
  boolean: (v) => v.type === T.bool,
  callable: (v) => v.type === T.fn,
  defined: (v) => !isUndef(v),
  undefined: (v) => isUndef(v),
  divisibleby: (v, [n]) => numOf(v) % numOf(n) === 0,
  eq: (v, [x]) => pyEq(v, x),
  equalto: (v, [x]) => pyEq(v, x),
  "==": (v, [x]) => pyEq(v, x),
  ne: (v, [x]) => !pyEq(v, x),
  "!=": (v, [x]) => !pyEq(v, x),
  gt: (v, [x]) => pyCmp(v, x) > 0,
  ">": (v, [x]) => pyCmp(v, x) > 0,
  greaterthan: (v, [x]) => pyCmp(v, x) > 0,
  ge: (v, [x]) => pyCmp(v, x) >= 0,
  ">=": (v, [x]) => pyCmp(v, x) >= 0,
  lt: (v, [x]) => pyCmp(v, x) < 0,
  "<": (v, [x]) => pyCmp(v, x) < 0,
  lessthan: (v, [x]) => pyCmp(v, x) < 0,
  le: (v, [x]) => pyCmp(v, x) <= 0,
  "<=": (v, [x]) => pyCmp(v, x) <= 0,
  in: (v, [x]) => pyIn(v, x),
  even: (v) => numOf(v) % 2 === 0,
  odd: (v) => Math.abs(numOf(v) % 2) === 1,
  false: (v) => v.type === T.bool && v.value === false,
  true: (v) => v.type === T.bool && v.value === true,
  float: (v) => v.type === T.float,
  integer: (v) => v.type === T.int,
  number: (v) => isNumLike(v),
  iterable: (v) => [T.list, T.tuple, T.str, T.dict, T.kwargs, T.undef].includes(v.type as never),
  mapping: (v) => isDict(v),
  sequence: (v) =>
    !GENERATORS.has(v) &&
    [T.list, T.tuple, T.str, T.dict, T.kwargs, T.undef].includes(v.type as never),
  none: (v) => v.type === T.none,
  string: (v) => isStr(v),
  lower: (v) => isStr(v) && strOf(v) === strOf(v).toLowerCase(),
  upper: (v) => isStr(v) && strOf(v) === strOf(v).toUpperCase(),
  sameas: (v, [x]) =>
    v === x ||
    (v.type === x.type && [T.none, T.bool].includes(v.type as never) && v.value === x.value),
  escaped: () => false,
};

/** Jinja2 builtin filters this module does not implement: using one fails clearly. */
export const UNSUPPORTED_FILTERS = new Set([
  "filesizeformat",
  "groupby",
  "pprint",
  "random",
  "urlencode",
  "urlize",
  "wordwrap",
  "xmlattr",
]);

function pyIn(item: RV, container: RV): boolean {
  switch (container.type) {
    case T.str:
      return strOf(container).includes(needStr(item, "'in <string>' left operand"));
    case T.list:
    case T.tuple:
      return listOf(container).some((x) => pyEq(x, item));
    case T.dict:
    case T.kwargs:
      return mapOf(container).has(encodeKey(item));
    case T.undef:
      return false;
    default:
      throw new PyError("TypeError", `argument of type '${pyTypeName(container)}' is not iterable`);
  }
}

function attrGetter(path: RV, def?: RV): (x: RV) => RV {
  const parts = isStr(path) ? strOf(path).split(".") : [pyStr(path)];
  return (x) => {
    let v = x;
    for (const p of parts) {
      v = /^\d+$/.test(p) ? getItem(v, mkInt(Number(p))) : getItem(v, mkStr(p));
      if (isUndef(v)) return def ?? v;
    }
    return v;
  };
}

function sortKey(caseSensitive: boolean): (v: RV) => RV {
  return (v) => (!caseSensitive && isStr(v) ? mkStr(strOf(v).toLowerCase()) : v);
}

function applyTestByName(name: RV, v: RV, args: RV[]): boolean {
  const test = TESTS[needStr(name, "test name")];
  if (!test) throw new PyError("TemplateRuntimeError", `No test named '${strOf(name)}' found.`);
  return test(v, args);
}

export const FILTERS: Record<string, Filter> = {
  tojson: (v, a, k) => {
    // transformers' signature: tojson(x, ensure_ascii=False, indent=None, separators=None,
    // sort_keys=False)
    const [ea, ind, seps, sk] = bind("tojson", a, k, [
      ["ensure_ascii", mkBool(false)],
      ["indent", mkNone()],
      ["separators", mkNone()],
      ["sort_keys", mkBool(false)],
    ]);
    const indent = ind.type === T.none
      ? null
      : isStr(ind)
      ? strOf(ind)
      : " ".repeat(Math.max(0, numOf(ind)));
    let itemSep = indent === null ? ", " : ",", keySep = ": ";
    if (seps.type !== T.none) {
      const s = iterate(seps);
      itemSep = needStr(s[0], "separator");
      keySep = needStr(s[1], "separator");
    }
    return mkStr(
      pyJson(v, { ensureAscii: pyBool(ea), indent, itemSep, keySep, sortKeys: pyBool(sk) }),
    );
  },
  string: (v) => mkStr(pyStr(v)),
  safe: (v) => (MARKUP.has(v) ? v : mkMarkup(pyStr(v))),
  e: (v) => escapeRV(v),
  escape: (v) => escapeRV(v),
  forceescape: (v) => mkMarkup(htmlEscape(pyStr(v))),
  length: (v) => mkInt(pyLen(v)),
  count: (v) => mkInt(pyLen(v)),
  trim: (v, a, k) => {
    const [chars] = bind("trim", a, k, [["chars", mkNone()]]);
    return mkStr(pyStrip(pyStr(v), optStr(chars, "chars"), true, true));
  },
  upper: (v) => mkStr(pyStr(v).toUpperCase()),
  lower: (v) => mkStr(pyStr(v).toLowerCase()),
  capitalize: (v) => mkStr(pyCapitalize(pyStr(v))),
  title: (v) =>
    mkStr(
      pyStr(v).split(/([-\s({\[<]+)/u).filter((x) => x !== "").map((w) =>
        pyCapitalize(w.slice(0, 1)) + w.slice(1).toLowerCase()
      ).join(""),
    ),
  default: (v, a, k) => {
    const [def, boolean] = bind("default", a, k, [["default_value", mkStr("")], [
      "boolean",
      mkBool(false),
    ]]);
    return isUndef(v) || (pyBool(boolean) && !pyBool(v)) ? def : v;
  },
  d: (v, a, k, c) => FILTERS.default(v, a, k, c),
  join: (v, a, k) => {
    const [sep, attr] = bind("join", a, k, [["d", mkStr("")], ["attribute", mkNone()]]);
    let items = iterate(v);
    if (attr.type !== T.none) items = items.map(attrGetter(attr));
    return mkStr(items.map(pyStr).join(pyStr(sep)));
  },
  list: (v) => mkList(iterate(v)),
  first: (v) => {
    const gen = GENERATORS.get(v);
    if (gen) return listOf(v)[gen.pos++] ?? mkUndef();
    return iterate(v)[0] ?? mkUndef();
  },
  last: (v) => {
    const items = isSeq(v) || isStr(v) ? iterate(v) : [...iterate(v)];
    return items.at(-1) ?? mkUndef();
  },
  reverse: (
    v,
  ) => (isStr(v) ? mkStr([...strOf(v)].reverse().join("")) : mkGen(iterate(v).reverse())),
  items: (v) => {
    if (isUndef(v)) return mkGen([]);
    if (!isDict(v)) throw new PyError("TypeError", `Can only get item pairs from a mapping.`);
    return mkGen([...mapOf(v)].map(([k, x]) => mkTuple([decodeKey(k), x])));
  },
  dictsort: (v, a, k) => {
    const [cs, by, rev] = bind("dictsort", a, k, [
      ["case_sensitive", mkBool(false)],
      ["by", mkStr("key")],
      ["reverse", mkBool(false)],
    ]);
    const idx = strOf(by) === "value" ? 1 : 0;
    const key = sortKey(pyBool(cs));
    const pairs = [...mapOf(v)].map(([kk, x]) => [decodeKey(kk), x]);
    pairs.sort((p, q) => pyCmp(key(p[idx]), key(q[idx])) * (pyBool(rev) ? -1 : 1));
    return mkList(pairs.map((p) => mkTuple(p)));
  },
  sort: (v, a, k) => {
    const [rev, cs, attr] = bind("sort", a, k, [
      ["reverse", mkBool(false)],
      ["case_sensitive", mkBool(false)],
      ["attribute", mkNone()],
    ]);
    const get = attr.type === T.none ? (x: RV) => x : attrGetter(attr);
    const key = sortKey(pyBool(cs));
    const items = iterate(v).slice();
    items.sort((x, y) => pyCmp(key(get(x)), key(get(y))) * (pyBool(rev) ? -1 : 1));
    return mkList(items);
  },
  unique: (v, a, k) => {
    const [cs, attr] = bind("unique", a, k, [["case_sensitive", mkBool(false)], [
      "attribute",
      mkNone(),
    ]]);
    const get = attr.type === T.none ? (x: RV) => x : attrGetter(attr);
    const key = sortKey(pyBool(cs));
    const seen: RV[] = [];
    const out: RV[] = [];
    for (const x of iterate(v)) {
      const kx = key(get(x));
      if (!seen.some((s) => pyEq(s, kx))) {
        seen.push(kx);
        out.push(x);
      }
    }
    return mkGen(out);
  },
  min: (v, a, k) => minMax(v, a, k, -1),
  max: (v, a, k) => minMax(v, a, k, 1),
  sum: (v, a, k) => {
    const [attr, start] = bind("sum", a, k, [["attribute", mkNone()], ["start", mkInt(0)]]);
    let items = iterate(v);
    if (attr.type !== T.none) items = items.map(attrGetter(attr));
    let total = numOf(start);
    let float = start.type === T.float;
    for (const x of items) {
      total += numOf(x);
      float ||= x.type === T.float;
    }
    return float ? mkFloat(total) : mkInt(total);
  },
  int: (v, a, k) => {
    const [def] = bind("int", a, k, [["default", mkInt(0)], ["base", mkInt(10)]]);
    if (isNumLike(v)) return mkInt(Math.trunc(numOf(v)));
    if (isStr(v)) {
      const s = pyStrip(strOf(v), null, true, true).replace(/_/g, "");
      if (/^[+-]?\d+$/.test(s)) return mkInt(parseInt(s, 10));
      if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) return mkInt(Math.trunc(Number(s)));
    }
    return def;
  },
  float: (v, a, k) => {
    const [def] = bind("float", a, k, [["default", mkFloat(0)]]);
    if (isNumLike(v)) return mkFloat(numOf(v));
    if (isStr(v)) {
      const s = pyStrip(strOf(v), null, true, true);
      if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) return mkFloat(Number(s));
    }
    return def;
  },
  abs: (v) => (v.type === T.float ? mkFloat(Math.abs(numOf(v))) : mkInt(Math.abs(numOf(v)))),
  round: (v, a, k) => {
    const [prec, method] = bind("round", a, k, [["precision", mkInt(0)], [
      "method",
      mkStr("common"),
    ]]);
    const p = 10 ** numOf(prec);
    const x = numOf(v) * p;
    const m = strOf(method);
    // Python's round(): half to even.
    const half = Math.abs(x - Math.trunc(x)) === 0.5;
    const r = m === "ceil"
      ? Math.ceil(x)
      : m === "floor"
      ? Math.floor(x)
      : half
      ? 2 * Math.round(x / 2)
      : Math.round(x);
    return mkFloat(r / p);
  },
  replace: (v, a, k) => {
    const [o, n, c] = bind("replace", a, k, [["old", undefined], ["new", undefined], [
      "count",
      mkNone(),
    ]]);
    return mkStr(
      pyReplace(pyStr(v), pyStr(o), pyStr(n), c.type === T.none ? -1 : needInt(c, "count")),
    );
  },
  indent: (v, a, k) => {
    const [width, first, blank] = bind("indent", a, k, [
      ["width", mkInt(4)],
      ["first", mkBool(false)],
      ["blank", mkBool(false)],
    ]);
    const pad = isStr(width) ? strOf(width) : " ".repeat(numOf(width));
    const s = pyStr(v);
    // jinja2: splitlines() then "\n".join; a trailing newline is kept.
    const trailing = s.endsWith("\n") ? "\n" : "";
    const lines = trailing ? s.slice(0, -1).split("\n") : s.split("\n");
    const out = lines.map((line, i) => {
      if (i === 0) return pyBool(first) ? pad + line : line;
      return pyBool(blank) || line !== "" ? pad + line : line;
    });
    return mkStr(out.join("\n") + trailing);
  },
  center: (v, a, k) => {
    const [w] = bind("center", a, k, [["width", mkInt(80)]]);
    return (strMethod(pyStr(v), "center")!.value as NativeFn)([w], undefined as never);
  },
  wordcount: (v) => mkInt((pyStr(v).match(/\w+/gu) ?? []).length),
  format: (v, a, k) => {
    if (a.length > 0 && k.size > 0) {
      throw new PyError("FilterArgumentError", "can't handle positional and keyword arguments");
    }
    return mkStr(pyPercentFormat(pyStr(v), k.size > 0 ? mkDict(k) : mkTuple(a)));
  },
  striptags: (v) =>
    mkStr(pyStr(v).replace(/<!--.*?-->|<[^>]*>/gs, "").split(/\s+/).filter(Boolean).join(" ")),
  truncate: (v, a, k) => {
    const [len, killwords, end, leeway] = bind("truncate", a, k, [
      ["length", mkInt(255)],
      ["killwords", mkBool(false)],
      ["end", mkStr("...")],
      ["leeway", mkInt(5)],
    ]);
    const s = pyStr(v);
    const n = numOf(len), e = strOf(end);
    if (s.length <= n + numOf(leeway)) return mkStr(s);
    if (pyBool(killwords)) return mkStr(s.slice(0, n - e.length) + e);
    const cut = s.slice(0, n - e.length);
    const sp = cut.lastIndexOf(" ");
    return mkStr((sp >= 0 ? cut.slice(0, sp) : cut) + e);
  },
  batch: (v, a, k) => {
    const [size, fill] = bind("batch", a, k, [["linecount", undefined], ["fill_with", mkNone()]]);
    const n = numOf(size);
    const items = iterate(v);
    const out: RV[] = [];
    for (let i = 0; i < items.length; i += n) {
      const chunk = items.slice(i, i + n);
      if (chunk.length < n && fill.type !== T.none) {
        while (chunk.length < n) chunk.push(fill);
      }
      out.push(mkList(chunk));
    }
    return mkGen(out);
  },
  attr: (v, a) => getAttr(v, needStr(a[0] ?? mkUndef(), "attribute name")),
  map: (v, a, k, ctx) => {
    // jinja2 maps nothing over a falsy value (`if value:`), lazily.
    const items = pyBool(v) ? iterate(v) : [];
    if (a.length === 0 && k.has("attribute")) {
      const get = attrGetter(k.get("attribute")!, k.get("default"));
      return mkGen(items.map(get));
    }
    const name = needStr(a[0] ?? mkUndef(), "filter name");
    return mkGen(items.map((x) => callFilter(name, x, a.slice(1), k, ctx)));
  },
  select: (v, a) => mkGen(selectItems(v).filter((x) => selectTest(x, a))),
  reject: (v, a) => mkGen(selectItems(v).filter((x) => !selectTest(x, a))),
  selectattr: (v, a) => {
    const get = attrGetter(a[0] ?? mkUndef());
    return mkGen(selectItems(v).filter((x) => selectTest(get(x), a.slice(1))));
  },
  rejectattr: (v, a) => {
    const get = attrGetter(a[0] ?? mkUndef());
    return mkGen(selectItems(v).filter((x) => !selectTest(get(x), a.slice(1))));
  },
  slice: (v, a, k) => {
    const [slices, fill] = bind("slice", a, k, [["slices", undefined], ["fill_with", mkNone()]]);
    const seq = iterate(v);
    const n = numOf(slices);
    const per = Math.floor(seq.length / n), extra = seq.length % n;
    const out: RV[] = [];
    let offset = 0;
    for (let i = 0; i < n; i++) {
      const start = offset + i * per, end = offset + (i + 1) * per;
      const chunk = seq.slice(start, end + (i < extra ? 1 : 0));
      if (i < extra) offset++;
      if (i >= extra && extra > 0 && fill.type !== T.none) chunk.push(fill);
      out.push(mkList(chunk));
    }
    return mkGen(out);
  },
};

/** jinja2's select/reject iterate only a truthy value (`if value:`). */
function selectItems(v: RV): RV[] {
  return pyBool(v) ? iterate(v) : [];
}

function selectTest(x: RV, a: RV[]): boolean {
  if (a.length === 0) return pyBool(x);
  return applyTestByName(a[0], x, a.slice(1));
}

function minMax(v: RV, a: RV[], k: Map<string, RV>, sign: number): RV {
  const [cs, attr] = bind(sign < 0 ? "min" : "max", a, k, [["case_sensitive", mkBool(false)], [
    "attribute",
    mkNone(),
  ]]);
  const items = iterate(v);
  if (items.length === 0) return mkUndef();
  const get = attr.type === T.none ? (x: RV) => x : attrGetter(attr);
  const key = sortKey(pyBool(cs));
  let best = items[0];
  for (const x of items.slice(1)) {
    if (pyCmp(key(get(x)), key(get(best))) * sign > 0) best = x;
  }
  return best;
}

function callFilter(
  name: string,
  v: RV,
  args: RV[],
  kwargs: Map<string, RV>,
  ctx: { interp: Internals; env: Environment },
): RV {
  const f = FILTERS[name];
  if (!f) {
    if (UNSUPPORTED_FILTERS.has(name)) {
      throw new PyError("NotImplementedError", `filter '${name}' is not supported by spool`);
    }
    throw new PyError("TemplateRuntimeError", `No filter named '${name}' found.`);
  }
  return f(v, args, kwargs, ctx);
}

// ---------------------------------------------------------------------------------------------
// The interpreter with Python semantics
// ---------------------------------------------------------------------------------------------

/** The interpreter's internal hooks (private in its typings, plain methods at runtime). */
interface Internals {
  evaluate(node: Node | undefined, env: Environment): RV;
  evaluateBlock(nodes: Node[], env: Environment): RV;
  evaluateArguments(args: Node[], env: Environment): [RV[], Map<string, RV>];
  evaluateBinaryExpression(node: Node, env: Environment): RV;
  evaluateMemberExpression(node: Node, env: Environment): RV;
  evaluateTestExpression(node: Node, env: Environment): RV;
  evaluateFor(node: Node, env: Environment): RV;
  evaluateMacro(node: Node, env: Environment): RV;
  evaluateUnaryExpression(node: Node, env: Environment): RV;
  evaluateIf(node: Node, env: Environment): RV;
  evaluateTernaryExpression(node: Node, env: Environment): RV;
  evaluateSelectExpression(node: Node, env: Environment): RV;
  evaluateSet(node: Node, env: Environment): RV;
  applyFilter(operand: RV, filter: Node, env: Environment): RV;
  bindMacroArguments(
    name: string,
    params: Node[],
    special: Set<string>,
    args: RV[],
    scope: Environment,
  ): void;
}

export const base = Interpreter.prototype as unknown as Internals;

/** `@huggingface/jinja`'s interpreter, with jinja2 (Python) semantics installed below. */
export class PyInterpreter extends Interpreter {}
const proto = PyInterpreter.prototype as unknown as Internals;

const SILENT_STATEMENTS = new Set(["Set", "Macro", "Comment"]);

proto.evaluate = function (this: Internals, node: Node | undefined, env: Environment): RV {
  if (node?.type === "ObjectLiteral") {
    const map = new Map<string, RV>();
    for (const [k, v] of node.value as Map<Node, Node>) {
      map.set(encodeKey(this.evaluate(k, env)), this.evaluate(v, env));
    }
    return mkDict(map);
  }
  return base.evaluate.call(this, node, env);
};

proto.evaluateBlock = function (this: Internals, nodes: Node[], env: Environment): RV {
  let out = "";
  for (const node of nodes) {
    const v = this.evaluate(node, env);
    if (!SILENT_STATEMENTS.has(node.type)) out += pyStr(v);
  }
  return mkStr(out);
};

proto.evaluateBinaryExpression = function (this: Internals, node: Node, env: Environment): RV {
  const op = (node.operator as { value: string }).value;
  const left = this.evaluate(node.left as Node, env);
  if (op === "and") return pyBool(left) ? this.evaluate(node.right as Node, env) : left;
  if (op === "or") return pyBool(left) ? left : this.evaluate(node.right as Node, env);
  const right = this.evaluate(node.right as Node, env);
  switch (op) {
    case "==":
      return mkBool(pyEq(left, right));
    case "!=":
      return mkBool(!pyEq(left, right));
    case "in":
      return mkBool(pyIn(left, right));
    case "not in":
      return mkBool(!pyIn(left, right));
    case "~":
      return mkStr(pyStr(left) + pyStr(right));
    case "<":
      return mkBool(pyCmp(left, right) < 0);
    case ">":
      return mkBool(pyCmp(left, right) > 0);
    case "<=":
      return mkBool(pyCmp(left, right) <= 0);
    case ">=":
      return mkBool(pyCmp(left, right) >= 0);
  }
  return arithmetic(op, left, right);
};

function arithmetic(op: string, a: RV, b: RV): RV {
  if (isUndef(a) || isUndef(b)) {
    throw new PyError("UndefinedError", `undefined value in '${op}' operation`);
  }
  if (isNumLike(a) && isNumLike(b)) {
    const x = numOf(a), y = numOf(b);
    const float = a.type === T.float || b.type === T.float;
    const num = (r: number) => (float ? mkFloat(r) : mkInt(r));
    switch (op) {
      case "+":
        return num(x + y);
      case "-":
        return num(x - y);
      case "*":
        return num(x * y);
      case "/":
        if (y === 0) throw new PyError("ZeroDivisionError", "division by zero");
        return mkFloat(x / y);
      case "//":
        if (y === 0) throw new PyError("ZeroDivisionError", "integer division or modulo by zero");
        return num(Math.floor(x / y));
      case "%":
        if (y === 0) throw new PyError("ZeroDivisionError", "integer division or modulo by zero");
        return num(((x % y) + y) % y);
      case "**":
        return float || y < 0 ? mkFloat(x ** y) : mkInt(x ** y);
    }
  }
  if (op === "+") {
    if (isStr(a) && isStr(b)) {
      if (MARKUP.has(a) || MARKUP.has(b)) return mkMarkup(strOf(escapeRV(a)) + strOf(escapeRV(b)));
      return mkStr(strOf(a) + strOf(b));
    }
    if (isSeq(a) && a.type === b.type) {
      const items = [...listOf(a), ...listOf(b)];
      return a.type === T.tuple ? mkTuple(items) : mkList(items);
    }
  }
  if (op === "*") {
    const [s, n] = isNumLike(b) && !isNumLike(a) ? [a, b] : [b, a];
    if (n.type === T.int || n.type === T.bool) {
      const times = Math.max(0, numOf(n));
      if (isStr(s)) {
        return MARKUP.has(s) ? mkMarkup(strOf(s).repeat(times)) : mkStr(strOf(s).repeat(times));
      }
      if (isSeq(s)) {
        const items = Array.from({ length: times }, () => listOf(s)).flat();
        return s.type === T.tuple ? mkTuple(items) : mkList(items);
      }
    }
  }
  if (op === "%" && isStr(a)) {
    if (!MARKUP.has(a)) return mkStr(pyPercentFormat(strOf(a), b));
    const escaped = b.type === T.tuple ? mkTuple(listOf(b).map(escapeRV)) : escapeRV(b);
    return mkMarkup(pyPercentFormat(strOf(a), escaped));
  }
  throw new PyError(
    "TypeError",
    `unsupported operand type(s) for ${op}: '${pyTypeName(a)}' and '${pyTypeName(b)}'`,
  );
}

proto.evaluateIf = function (this: Internals, node: Node, env: Environment): RV {
  const taken = pyBool(this.evaluate(node.test as Node, env));
  return this.evaluateBlock((taken ? node.body : node.alternate) as Node[], env);
};

proto.evaluateTernaryExpression = function (this: Internals, node: Node, env: Environment): RV {
  const taken = pyBool(this.evaluate(node.condition as Node, env));
  return this.evaluate((taken ? node.trueExpr : node.falseExpr) as Node, env);
};

proto.evaluateSelectExpression = function (this: Internals, node: Node, env: Environment): RV {
  if (!pyBool(this.evaluate(node.test as Node, env))) return mkUndef();
  return this.evaluate(node.lhs as Node, env);
};

proto.evaluateUnaryExpression = function (this: Internals, node: Node, env: Environment): RV {
  const op = (node.operator as { value: string }).value;
  const v = this.evaluate(node.argument as Node, env);
  if (op === "not") return mkBool(!pyBool(v));
  if (!isNumLike(v)) {
    throw new PyError("TypeError", `bad operand type for unary ${op}: '${pyTypeName(v)}'`);
  }
  const r = op === "-" ? -numOf(v) : numOf(v);
  return v.type === T.float ? mkFloat(r) : mkInt(r);
};

proto.evaluateMemberExpression = function (this: Internals, node: Node, env: Environment): RV {
  const obj = this.evaluate(node.object as Node, env);
  const prop = node.property as Node;
  const target = node.object as Node;
  if (isUndef(obj) && target.type === "Identifier") {
    throw new PyError("UndefinedError", `'${target.value}' is undefined`);
  }
  if (!node.computed) {
    if (prop.type === "IntegerLiteral") return getItem(obj, mkInt(prop.value as number));
    return getAttr(obj, prop.value as string);
  }
  if (prop.type === "SliceExpression") {
    if (isUndef(obj)) undefinedAttr(obj, "slice");
    const idx = (n: unknown) => {
      const v = this.evaluate(n as Node | undefined, env);
      return isUndef(v) || v.type === T.none ? undefined : needInt(v, "slice index");
    };
    const start = idx(prop.start), stop = idx(prop.stop), step = idx(prop.step) ?? 1;
    if (step === 0) throw new PyError("ValueError", "slice step cannot be zero");
    const items: unknown[] = isStr(obj) ? [...strOf(obj)] : isSeq(obj) ? listOf(obj) : (() => {
      throw new PyError("TypeError", `'${pyTypeName(obj)}' object is not subscriptable`);
    })();
    const out = pySlice(items, start, stop, step);
    return isStr(obj)
      ? mkStr(out.join(""))
      : obj.type === T.tuple
      ? mkTuple(out as RV[])
      : mkList(out as RV[]);
  }
  return getItem(obj, this.evaluate(prop, env));
};

function pySlice<X>(
  items: X[],
  start: number | undefined,
  stop: number | undefined,
  step: number,
): X[] {
  const n = items.length;
  const norm = (i: number | undefined, def: number, lo: number, hi: number) => {
    if (i === undefined) return def;
    if (i < 0) i += n;
    return Math.min(Math.max(i, lo), hi);
  };
  const out: X[] = [];
  if (step > 0) {
    const a = norm(start, 0, 0, n), b = norm(stop, n, 0, n);
    for (let i = a; i < b; i += step) out.push(items[i]);
  } else {
    const a = norm(start, n - 1, -1, n - 1), b = norm(stop, -1, -1, n - 1);
    for (let i = a; i > b; i += step) out.push(items[i]);
  }
  return out;
}

proto.evaluateTestExpression = function (this: Internals, node: Node, env: Environment): RV {
  const v = this.evaluate(node.operand as Node, env);
  const name = (node.test as Node).value as string;
  const test = TESTS[name];
  if (!test) throw new PyError("TemplateRuntimeError", `No test named '${name}' found.`);
  const r = test(v, []);
  return mkBool(node.negate ? !r : r);
};

proto.applyFilter = function (this: Internals, operand: RV, filter: Node, env: Environment): RV {
  let name: string;
  let args: RV[] = [];
  let kwargs = new Map<string, RV>();
  if (filter.type === "Identifier") name = filter.value as string;
  else if (filter.type === "CallExpression" && (filter.callee as Node).type === "Identifier") {
    name = (filter.callee as Node).value as string;
    [args, kwargs] = this.evaluateArguments(filter.args as Node[], env);
  } else throw new PyError("TemplateSyntaxError", `bad filter: ${filter.type}`);
  return callFilter(name, operand, args, kwargs, { interp: this, env });
};

proto.evaluateFor = function (this: Internals, node: Node, env: Environment): RV {
  const scope = new Environment(env);
  let iterableNode = node.iterable as Node;
  let cond: Node | undefined;
  if (iterableNode.type === "SelectExpression") {
    cond = iterableNode.test as Node;
    iterableNode = iterableNode.lhs as Node;
  }
  const loopvar = node.loopvar as Node;
  const assign = (target: Environment, item: RV) => {
    if (loopvar.type === "Identifier") {
      target.setVariable(loopvar.value as string, item);
      return;
    }
    const names = loopvar.value as Node[];
    const parts = iterate(item);
    if (parts.length !== names.length) {
      throw new PyError(
        "ValueError",
        `${parts.length > names.length ? "too many" : "not enough"} values to unpack`,
      );
    }
    names.forEach((n, i) => target.setVariable(n.value as string, parts[i]));
  };
  let items = iterate(this.evaluate(iterableNode, scope));
  if (cond) {
    items = items.filter((item) => {
      const s = new Environment(scope);
      assign(s, item);
      return pyBool(this.evaluate(cond, s));
    });
  }
  let out = "";
  let iterated = false;
  let lastChanged: RV[] | undefined;
  for (let i = 0; i < items.length; i++) {
    const iter = new Environment(scope);
    const loop = new Map<string, RV>([
      ["index", mkInt(i + 1)],
      ["index0", mkInt(i)],
      ["revindex", mkInt(items.length - i)],
      ["revindex0", mkInt(items.length - i - 1)],
      ["first", mkBool(i === 0)],
      ["last", mkBool(i === items.length - 1)],
      ["length", mkInt(items.length)],
      ["depth", mkInt(1)],
      ["depth0", mkInt(0)],
      ["previtem", i > 0 ? items[i - 1] : mkUndef()],
      ["nextitem", i < items.length - 1 ? items[i + 1] : mkUndef()],
      ["cycle", mkFn((a) => a[i % a.length] ?? mkUndef())],
      [
        "changed",
        mkFn((a) => {
          const changed = lastChanged === undefined || !pyEq(mkList(lastChanged), mkList(a));
          lastChanged = a;
          return mkBool(changed);
        }),
      ],
    ]);
    iter.setVariable("loop", mkDict(loop));
    assign(iter, items[i]);
    try {
      out += strOf(this.evaluateBlock(node.body as Node[], iter));
    } catch (e) {
      if (isControl(e, "continue")) continue;
      if (isControl(e, "break")) break;
      throw e;
    }
    iterated = true;
  }
  if (!iterated) out += strOf(this.evaluateBlock(node.defaultBlock as Node[], scope));
  return mkStr(out);
};

/** Break/Continue are thrown by the base interpreter as private error classes. */
const CONTROL = (() => {
  const probe = new Interpreter(new Environment()) as unknown as Internals;
  const grab = (type: string) => {
    try {
      probe.evaluate({ type }, new Environment());
    } catch (e) {
      return (e as object).constructor;
    }
    throw new Error(`${type} did not throw`);
  };
  return { break: grab("Break"), continue: grab("Continue") };
})();

function isControl(e: unknown, kind: "break" | "continue"): boolean {
  return e instanceof (CONTROL[kind] as new () => unknown);
}

const SPECIALS = new WeakMap<Node, Set<string>>();

/** Which of `varargs`/`kwargs` a macro's body names (then it accepts extra arguments). */
function macroSpecials(macro: Node): Set<string> {
  let found = SPECIALS.get(macro);
  if (found) return found;
  found = new Set<string>();
  const visit = (x: unknown): void => {
    if (Array.isArray(x)) x.forEach(visit);
    else if (x instanceof Map) x.forEach((v, k) => (visit(k), visit(v)));
    else if (typeof x === "object" && x !== null) {
      const n = x as Node;
      if (n.type === "Identifier" && (n.value === "varargs" || n.value === "kwargs")) {
        found!.add(n.value);
      }
      for (const v of Object.values(n)) visit(v);
    }
  };
  visit(macro.body);
  SPECIALS.set(macro, found);
  return found;
}

proto.evaluateMacro = function (this: Internals, node: Node, env: Environment): RV {
  const name = (node.name as Node).value as string;
  const params = node.args as Node[];
  const body = node.body as Node[];
  const special = macroSpecials(node);
  // Lexical scope (jinja2): the macro sees the variables of where it was defined, plus
  // `caller` from a `{% call %}` site.
  env.setVariable(
    name,
    mkFn((args, callSite) => {
      const scope = new Environment(env);
      const caller = callSite?.lookupVariable("caller");
      if (caller && caller.type === T.fn && callSite !== env) scope.setVariable("caller", caller);
      this.bindMacroArguments(`'${name}'`, params, special, args, scope);
      const varargs = scope.variables.get("varargs");
      if (varargs?.type === T.list) scope.setVariable("varargs", mkTuple(listOf(varargs)));
      return this.evaluateBlock(body, scope);
    }),
  );
  return mkNone();
};

/** A JSON-like deep copy, dropping `undefined` fields. */
export function plain(x: unknown): unknown {
  if (x === undefined || x === null || typeof x !== "object") return x;
  if (Array.isArray(x)) return x.map(plain);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) if (v !== undefined) out[k] = plain(v);
  return out;
}
