/**
 * JSON Schema → grammar nodes (see `mod.ts` for what is enforced), with the checks that keep
 * hostile schemas from crashing or hanging anything:
 *
 * - Keywords: every validation keyword spool cannot enforce (`not`, `if`, `patternProperties`,
 *   `uniqueItems: true`, `multipleOf`, ...) is an `unsupported_schema` error naming it and its
 *   path; annotations (`title`, `description`, `default`, `examples`, `$comment`, `x-*`, ...)
 *   are ignored.
 * - Limits: nesting deeper than {@link MAX_SCHEMA_DEPTH}, more than {@link MAX_SCHEMA_NODES}
 *   nodes, or more than {@link MAX_LITERAL_BYTES} bytes of `enum`/`const` text is `too_large`.
 * - `$ref` cycles: refs are memoized, so a cycle is a cycle in the graph, never unbounded
 *   recursion here. A least-fixpoint pass finds the nodes that can produce a finished value;
 *   a root that cannot (`{"$ref":"#"}`, `enum: []`, `false`, mutual refs, a required property
 *   that recurses forever) is `unsatisfiable`, and branches that cannot (an anyOf alternative,
 *   an optional property, array items) are pruned, so generation never enters a branch it
 *   cannot finish. Left recursion (`anyOf: [{"$ref": "#"}, ...]`) is cut when the automaton
 *   enters a node (automaton.ts).
 *
 * @module
 */
import { ANY, CODER_XML, type GNode, lit, newNodeId, text, type XmlStyle } from "./automaton.ts";
import { GrammarError } from "./errors.ts";
import { FORMAT_PATTERNS, Regex } from "./regex.ts";

/** Deepest nesting of schema objects compiled (a 400 beyond). */
export const MAX_SCHEMA_DEPTH = 64;
/** Most grammar nodes of one schema. */
export const MAX_SCHEMA_NODES = 20000;
/** Most bytes of enum/const literals of one schema. */
export const MAX_LITERAL_BYTES = 1 << 20;

type Schema = Record<string, unknown>;

function isObj(v: unknown): v is Schema {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Keywords that are enforced, or structural (subschema containers). */
const HANDLED = new Set([
  "type",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "minItems",
  "maxItems",
  "enum",
  "const",
  "anyOf",
  "oneOf",
  "allOf",
  "$ref",
  "$defs",
  "definitions",
  "minLength",
  "maxLength",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "nullable",
]);

/** Annotations: no effect on what validates. */
const ANNOTATIONS = new Set([
  "$schema",
  "$id",
  "$anchor",
  "$comment",
  "$vocabulary",
  "title",
  "description",
  "default",
  "examples",
  "example",
  "deprecated",
  "readOnly",
  "writeOnly",
  "contentMediaType",
  "contentEncoding",
  "strict",
  "propertyOrdering",
  "discriminator",
  "markdownDescription",
  "errorMessage",
]);

/** Validation keywords of JSON Schema (2020-12 and draft 7) that spool does not enforce. */
const UNSUPPORTED = new Set([
  "not",
  "if",
  "then",
  "else",
  "patternProperties",
  "propertyNames",
  "dependentRequired",
  "dependentSchemas",
  "dependencies",
  "uniqueItems",
  "contains",
  "minContains",
  "maxContains",
  "multipleOf",
  "minProperties",
  "maxProperties",
  "unevaluatedProperties",
  "unevaluatedItems",
  "prefixItems",
  "additionalItems",
  "$dynamicRef",
  "$dynamicAnchor",
  "$recursiveRef",
  "$recursiveAnchor",
  "contentSchema",
]);

/** Keyword values that are no constraint at all (allowed despite being "unsupported"). */
function isNoop(key: string, v: unknown): boolean {
  // zod's z.record(z.string(), ...) writes propertyNames: {type: "string"}: every key is one
  if (key === "propertyNames") {
    return v === true || (isObj(v) &&
      Object.entries(v).every(([k, x]) => (k === "type" && x === "string") || ANNOTATIONS.has(k)));
  }
  return (key === "uniqueItems" && v === false) ||
    ((key === "unevaluatedProperties" || key === "unevaluatedItems") && v === true) ||
    ((key === "minProperties" || key === "minContains") && v === 0);
}

/** Numeric `format`s: bounds (int32, int64) or nothing (float, double). */
const NUMBER_FORMATS: Record<string, [number, number] | null> = {
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [-(2 ** 63), 2 ** 63 - 1],
  uint32: [0, 2 ** 32 - 1],
  uint64: [0, 2 ** 64 - 1],
  float: null,
  double: null,
  number: null,
  integer: null,
};

/** Rejects keywords spool cannot enforce (names them, with the schema path). */
function checkKeywords(s: Schema, path: string): void {
  const bad = Object.keys(s).filter((k) => UNSUPPORTED.has(k) && !isNoop(k, s[k]));
  if (bad.length > 0) {
    throw new GrammarError(
      "unsupported_schema",
      `Unsupported JSON Schema keyword${bad.length > 1 ? "s" : ""} ${
        bad.map((k) => `"${k}"`).join(", ")
      } at ${path || "#"}: spool cannot enforce ${bad.length > 1 ? "them" : "it"}`,
    );
  }
  if (Array.isArray(s.items)) {
    throw new GrammarError(
      "unsupported_schema",
      `Unsupported JSON Schema keyword "items" as an array (tuple) at ${path || "#"}`,
    );
  }
  if (typeof s.$ref === "string") {
    const extra = Object.keys(s).filter((k) =>
      k !== "$ref" && !ANNOTATIONS.has(k) && k !== "$defs" && k !== "definitions" &&
      (HANDLED.has(k) || UNSUPPORTED.has(k))
    );
    if (extra.length > 0) {
      throw new GrammarError(
        "unsupported_schema",
        `Unsupported: "$ref" with sibling keywords ${extra.map((k) => `"${k}"`).join(", ")} at ${
          path || "#"
        }`,
      );
    }
  }
}

/**
 * Depth of a JSON value, measured without recursion; stops counting at `limit + 1`. The
 * server checks request schemas with it before anything recursive touches them.
 */
export function jsonDepth(v: unknown, limit: number): number {
  let max = 0;
  const pending: [unknown, number][] = [[v, 1]];
  while (pending.length > 0) {
    const [x, d] = pending.pop()!;
    if (typeof x !== "object" || x === null) continue;
    if (d > max) max = d;
    if (max > limit) return max;
    for (const c of Array.isArray(x) ? x : Object.values(x)) {
      if (typeof c === "object" && c !== null) pending.push([c, d + 1]);
    }
  }
  return max;
}

/** Latin1 string of the UTF-8 bytes of a JSON-escaped property name (without quotes). */
function rawName(name: string): string {
  const b = new TextEncoder().encode(JSON.stringify(name).slice(1, -1));
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return s;
}

type Num = Extract<GNode, { k: "num" }>;

/** A number node with bounds (integers: rounded inward, inclusive). */
function numberNode(s: Schema, int: boolean, path: string): Num {
  let lo = -Infinity, hi = Infinity, loEx = false, hiEx = false;
  const n = (k: string) => {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new GrammarError("unsupported_schema", `"${k}" at ${path || "#"} is not a number`);
    }
    return v;
  };
  const min = n("minimum"), max = n("maximum");
  const xmin = s.exclusiveMinimum, xmax = s.exclusiveMaximum;
  if (min !== undefined) lo = min;
  if (max !== undefined) hi = max;
  // draft 2020-12: numbers; draft 4: booleans modifying minimum/maximum
  if (typeof xmin === "number" && xmin >= lo) [lo, loEx] = [xmin, true];
  else if (xmin === true) loEx = true;
  if (typeof xmax === "number" && xmax <= hi) [hi, hiEx] = [xmax, true];
  else if (xmax === true) hiEx = true;
  if (typeof s.format === "string") {
    if (!(s.format in NUMBER_FORMATS)) {
      throw new GrammarError(
        "unsupported_schema",
        `Unsupported "format": "${s.format}" for a number at ${path || "#"}`,
      );
    }
    const b = NUMBER_FORMATS[s.format];
    if (b) {
      if (b[0] > lo) [lo, loEx] = [b[0], false];
      if (b[1] < hi) [hi, hiEx] = [b[1], false];
    }
  }
  if (int) {
    if (Number.isFinite(lo)) [lo, loEx] = [loEx ? Math.floor(lo) + 1 : Math.ceil(lo), false];
    if (Number.isFinite(hi)) [hi, hiEx] = [hiEx ? Math.ceil(hi) - 1 : Math.floor(hi), false];
  }
  const nonneg = lo >= 0;
  return { k: "num", id: newNodeId(), int, nonneg, lo, hi, loEx, hiEx };
}

/**
 * A string node with length bounds, `pattern` and `format`. With both (zod writes a pattern
 * beside `format: "email"` or `"cuid"`), the pattern is used when it compiles, else the
 * format's own; a format spool does not know is accepted only with a pattern that compiles.
 */
function stringNode(s: Schema, path: string): GNode {
  const min = typeof s.minLength === "number" ? s.minLength : 0;
  const max = typeof s.maxLength === "number" ? s.maxLength : Infinity;
  const fmt = s.format === undefined ? undefined : FORMAT_PATTERNS[String(s.format)];
  const unknownFormat = () =>
    new GrammarError(
      "unsupported_schema",
      `Unsupported "format": ${JSON.stringify(s.format)} at ${path || "#"} (spool enforces ${
        Object.keys(FORMAT_PATTERNS).join(", ")
      })`,
    );
  let re: Regex | null = null;
  if (s.pattern !== undefined) {
    if (typeof s.pattern !== "string") {
      throw new GrammarError("unsupported_schema", `"pattern" at ${path || "#"} is not a string`);
    }
    try {
      re = new Regex(s.pattern);
    } catch (e) {
      if (!(e instanceof GrammarError) || e.code !== "unsupported_schema") throw e;
      if (s.format === undefined) throw e;
      if (fmt === undefined) throw unknownFormat();
    }
  } else if (s.format !== undefined && fmt === undefined) throw unknownFormat();
  if (re === null && fmt !== undefined) re = new Regex(fmt);
  return { k: "str", id: newNodeId(), min, max, re };
}

/**
 * Compiles a JSON Schema (2020-12 subset; see `mod.ts`) into a grammar node. `$ref`s are
 * resolved against `root` (`#`, `#/$defs/...`, `#/definitions/...`, any JSON pointer into the
 * root); recursion works (see the module doc). Throws {@link GrammarError}.
 */
export function compileSchema(schema: unknown, root: unknown = schema): GNode {
  const refs = new Map<string, Extract<GNode, { k: "ref" }>>();
  const targets = new Map<Extract<GNode, { k: "ref" }>, GNode>();
  let count = 0, literalBytes = 0;
  const made = <T extends GNode>(n: T): T => {
    if (++count > MAX_SCHEMA_NODES) {
      throw new GrammarError(
        "too_large",
        `The schema is too large: more than ${MAX_SCHEMA_NODES} grammar nodes`,
      );
    }
    return n;
  };
  const literal = (values: unknown[]): GNode => {
    const alts = values.map((v) => JSON.stringify(v));
    for (const a of alts) literalBytes += a.length;
    if (literalBytes > MAX_LITERAL_BYTES) {
      throw new GrammarError("too_large", `The schema's enum/const values are over 1 MiB`);
    }
    return made(lit(alts));
  };
  const resolve = (ref: string, depth: number): GNode => {
    const node = refs.get(ref);
    if (node) return node;
    if (!ref.startsWith("#")) {
      throw new GrammarError("unsupported_schema", `Cannot resolve $ref "${ref}": only local refs`);
    }
    let target: unknown = root;
    for (const part of ref.slice(1).split("/").filter((p) => p !== "")) {
      const key = decodeURIComponent(part).replaceAll("~1", "/").replaceAll("~0", "~");
      if (!isObj(target) && !Array.isArray(target)) target = undefined;
      else target = (target as Record<string, unknown>)[key];
      if (target === undefined) {
        throw new GrammarError("unsupported_schema", `Cannot resolve $ref "${ref}": not found`);
      }
    }
    const r: Extract<GNode, { k: "ref" }> = made({
      k: "ref",
      id: newNodeId(),
      get: () => targets.get(r)!,
    });
    refs.set(ref, r);
    targets.set(r, build(target, depth + 1, ref));
    return r;
  };

  const build = (s: unknown, depth: number, path: string): GNode => {
    if (depth > MAX_SCHEMA_DEPTH) {
      throw new GrammarError(
        "too_large",
        `The schema is nested too deeply (over ${MAX_SCHEMA_DEPTH} levels) at ${path}`,
      );
    }
    if (s === true || s === undefined) return ANY;
    if (s === false) return made({ k: "alt", id: newNodeId(), alts: [] });
    if (!isObj(s)) throw new GrammarError("unsupported_schema", `Invalid schema at ${path || "#"}`);
    checkKeywords(s, path);
    const d = depth + 1;
    if (typeof s.$ref === "string") return resolve(s.$ref, depth);
    if (s.nullable === true) {
      const rest = { ...s };
      delete rest.nullable;
      return made({ k: "alt", id: newNodeId(), alts: [build(rest, d, path), lit(["null"])] });
    }
    if ("const" in s) return literal([s.const]);
    if (Array.isArray(s.enum)) return literal(s.enum);
    const union = (Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : null) as
      | unknown[]
      | null;
    if (union) {
      const rest = { ...s };
      delete rest.anyOf;
      delete rest.oneOf;
      const key = Array.isArray(s.anyOf) ? "anyOf" : "oneOf";
      const alts = union.map((a, i) =>
        build(isObj(a) ? mergeSchemas(rest, a) : a, d, `${path}/${key}/${i}`)
      );
      return made({ k: "alt", id: newNodeId(), alts });
    }
    if (Array.isArray(s.allOf)) {
      const rest = { ...s };
      delete rest.allOf;
      let m: Schema = rest;
      for (const a of s.allOf) {
        if (a === false) return made({ k: "alt", id: newNodeId(), alts: [] });
        if (isObj(a)) {
          if (typeof a.$ref === "string") {
            throw new GrammarError("unsupported_schema", `Unsupported: "$ref" inside "allOf"`);
          }
          m = mergeSchemas(m, a);
        }
      }
      return build(m, d, path);
    }
    let type = s.type;
    if (Array.isArray(type)) {
      if (type.length === 0) return made({ k: "alt", id: newNodeId(), alts: [] });
      if (type.length === 1) type = type[0];
      else {
        return made({
          k: "alt",
          id: newNodeId(),
          alts: type.map((t) => build({ ...s, type: t }, d, path)),
        });
      }
    }
    if (type === undefined) {
      if (isObj(s.properties) || s.additionalProperties !== undefined || s.required) {
        type = "object";
      } else if (s.items !== undefined) type = "array";
      else if (s.minLength !== undefined || s.maxLength !== undefined || s.pattern !== undefined) {
        type = "string";
      } else if (s.minimum !== undefined || s.maximum !== undefined) type = "number";
      else if (s.format !== undefined) type = "string";
      else return ANY;
    }
    switch (type) {
      case "object":
        return made(objectNode(s, d, path, build));
      case "array": {
        const items = s.items === undefined || s.items === true
          ? ANY
          : build(s.items, d, `${path}/items`);
        const min = typeof s.minItems === "number" ? s.minItems : 0;
        const max = typeof s.maxItems === "number" ? s.maxItems : Infinity;
        return made({ k: "arr", id: newNodeId(), items, min, max });
      }
      case "string":
        return made(stringNode(s, path));
      case "integer":
      case "number":
        return made(numberNode(s, type === "integer", path));
      case "boolean":
        return made(lit(["true", "false"]));
      case "null":
        return made(lit(["null"]));
      default:
        throw new GrammarError(
          "unsupported_schema",
          `Unsupported schema type "${String(type)}" at ${path || "#"}`,
        );
    }
  };
  const out = build(schema, 0, "");
  prune(out);
  return out;
}

type Build = (s: unknown, depth: number, path: string) => GNode;

function objectNode(s: Schema, d: number, path: string, build: Build): GNode {
  const propsIn = isObj(s.properties) ? s.properties : {};
  const props = new Map<string, GNode | (() => GNode)>();
  const names: { name: string; raw: string }[] = [];
  for (const [name, sub] of Object.entries(propsIn)) {
    props.set(name, build(sub, d, `${path}/properties/${name}`));
    names.push({ name, raw: rawName(name) });
  }
  const required: string[] = [];
  if (Array.isArray(s.required)) {
    for (const r of s.required) {
      if (typeof r !== "string") continue;
      if (!props.has(r)) {
        // a required key that is not declared: it must come as an additional property
        if (s.additionalProperties === false) {
          throw new GrammarError(
            "unsatisfiable",
            `The schema is unsatisfiable: "${r}" is required at ${
              path || "#"
            } but additionalProperties is false`,
          );
        }
        const sub = isObj(s.additionalProperties) ? s.additionalProperties : true;
        props.set(r, build(sub, d, `${path}/additionalProperties`));
        names.push({ name: r, raw: rawName(r) });
      }
      if (!required.includes(r)) required.push(r);
    }
  }
  // additionalProperties: false -> none; a schema -> that; true -> any; absent -> any key only
  // when the schema has no `properties` keyword at all: `properties: {}` is how tools say "no
  // arguments" (documented in mod.ts).
  const ap = s.additionalProperties;
  const additional = ap === false
    ? null
    : isObj(ap)
    ? build(ap, d, `${path}/additionalProperties`)
    : ap === true || !isObj(s.properties)
    ? ANY
    : null;
  return { k: "obj", id: newNodeId(), props, names, required, additional };
}

/** Children of a node (for the productivity pass). */
function children(n: GNode): GNode[] {
  switch (n.k) {
    case "obj": {
      const out: GNode[] = [];
      for (const p of n.props.values()) out.push(typeof p === "function" ? p() : p);
      if (n.additional) out.push(n.additional);
      return out;
    }
    case "arr":
      return [n.items];
    case "alt":
      return n.alts;
    case "seq":
      return n.items;
    case "rep":
      return n.sep ? [n.item, n.sep] : [n.item];
    case "ref":
      return [n.get()];
    case "xml":
      return [...n.props.values()];
    default:
      return [];
  }
}

/** Whether a number node admits any value. */
function numSatisfiable(n: Num): boolean {
  if (n.lo > n.hi) return false;
  if (n.lo === n.hi) return !n.loEx && !n.hiEx;
  return true;
}

/**
 * Marks the nodes that can produce a finished value (least fixpoint), throws
 * `unsatisfiable` when the root cannot, and prunes the branches that cannot.
 */
function prune(root: GNode): void {
  const all: GNode[] = [];
  const seen = new Set<GNode>();
  const pending = [root];
  while (pending.length > 0) {
    const n = pending.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    all.push(n);
    for (const c of children(n)) if (!seen.has(c)) pending.push(c);
  }
  const ok = new Set<GNode>();
  const val = (p: GNode | (() => GNode)) => typeof p === "function" ? p() : p;
  const productive = (n: GNode): boolean => {
    switch (n.k) {
      case "obj":
        return n.required.every((r) => ok.has(val(n.props.get(r)!)));
      case "arr":
        return n.min <= n.max && (n.min === 0 || ok.has(n.items));
      case "str":
        return n.min <= n.max && (n.re === null || n.re.satisfiable());
      case "num":
        return numSatisfiable(n);
      case "lit":
        return n.alts.length > 0;
      case "alt":
        return n.alts.some((a) => ok.has(a));
      case "seq":
        return n.items.every((a) => ok.has(a));
      case "rep":
        return ok.has(n.item) && (n.min <= 1 || n.sep === null || ok.has(n.sep));
      case "ref":
        return ok.has(n.get());
      case "xml":
        return n.required.every((r) => ok.has(n.props.get(r)!));
      default:
        return true;
    }
  };
  for (let changed = true; changed;) {
    changed = false;
    for (const n of all) {
      if (!ok.has(n) && productive(n)) {
        ok.add(n);
        changed = true;
      }
    }
  }
  if (!ok.has(root)) {
    throw new GrammarError(
      "unsatisfiable",
      "The schema is unsatisfiable: no JSON value can match it (an empty enum, `false`, " +
        "a $ref cycle, or a required property that can never end)",
    );
  }
  for (const n of all) {
    if (n.k === "alt") n.alts = n.alts.filter((a) => ok.has(a));
    else if (n.k === "obj") {
      for (const [name, p] of [...n.props]) {
        if (!ok.has(val(p))) {
          n.props.delete(name);
          n.names = n.names.filter((x) => x.name !== name);
        }
      }
      if (n.additional && !ok.has(n.additional)) n.additional = null;
    } else if (n.k === "arr" && !ok.has(n.items)) n.max = 0;
  }
}

/** Shallow merge for anyOf/allOf siblings: `required` lists are concatenated, props merged. */
export function mergeSchemas(a: Schema, b: Schema): Schema {
  const out: Schema = { ...a, ...b };
  if (isObj(a.properties) && isObj(b.properties)) {
    out.properties = { ...a.properties, ...b.properties };
  }
  if (Array.isArray(a.required) && Array.isArray(b.required)) {
    out.required = [...a.required, ...b.required];
  }
  return out;
}

/**
 * The schema of a tag-per-parameter list (Qwen3-Coder by default, or another `style`: GLM,
 * MiniMax-M2): the tool's object schema as an XML node. String parameters are raw text,
 * others JSON; each parameter at most once, in any order; the end tag only once the required
 * ones are there.
 */
export function xmlParams(schema: unknown, style: XmlStyle = CODER_XML): GNode {
  const s = isObj(schema) ? schema : {};
  const propsIn = isObj(s.properties) ? s.properties : {};
  const props = new Map<string, GNode>();
  const { close, special } = style;
  for (const [name, sub] of Object.entries(propsIn)) {
    props.set(
      name,
      rawString(sub, close, special) ?? {
        k: "seq",
        id: newNodeId(),
        items: [compileSchema(sub, s), lit([close], special)],
      },
    );
  }
  const required = Array.isArray(s.required)
    ? (s.required as unknown[]).filter((r): r is string => typeof r === "string" && props.has(r))
    : [];
  return {
    k: "xml",
    id: newNodeId(),
    props,
    names: [...props.keys()],
    required,
    style,
    tags: new Map(),
  };
}

/**
 * A string parameter as the templates write it (`v if v is string else v | tojson`): raw text,
 * or one of its `enum`/`const` strings, unquoted; then the closing tag. Null: not a string.
 */
function rawString(sub: unknown, close: string, special: boolean): GNode | null {
  if (!isObj(sub)) return null;
  // a value that may be a string (`["string", "null"]`) is raw text too, as llama.cpp takes it:
  // the template writes strings raw and the rest as JSON, which the parser tells apart
  if (Array.isArray(sub.type) && sub.type.includes("string") && sub.enum === undefined) {
    return text(close, special, true, maxLength(sub));
  }
  if (sub.type !== "string") return null;
  const vals = typeof sub.const === "string" ? [sub.const] : sub.enum;
  if (vals === undefined) return text(close, special, true, maxLength(sub));
  const strs = Array.isArray(vals) ? vals.filter((v): v is string => typeof v === "string") : [];
  return strs.length > 0
    ? { k: "seq", id: newNodeId(), items: [lit(strs), lit([close], special)] }
    : null;
}

/** A string schema's `maxLength` (Infinity when absent). */
function maxLength(s: unknown): number {
  const m = isObj(s) ? s.maxLength : undefined;
  return typeof m === "number" && m >= 0 ? Math.floor(m) : Infinity;
}

/** Whether a (sub)schema is a plain string (rendered raw in Qwen3-Coder's XML). */
export function isStringSchema(s: unknown): boolean {
  if (!isObj(s)) return false;
  if (s.type === "string") return !("enum" in s) && !("const" in s);
  return false;
}
