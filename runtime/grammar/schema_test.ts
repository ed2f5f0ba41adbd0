/**
 * JSON Schema keywords the grammar enforces (pattern, formats, numeric bounds, lengths,
 * items, enum, const), the keywords it refuses by name, and hostile schemas: $ref cycles,
 * left recursion, mutual $defs, unsatisfiable schemas, size and nesting limits. Byte by byte
 * against a byte vocabulary, so every accepted and rejected text is exact.
 */
import assert from "node:assert/strict";
import {
  compileConstraint,
  type ConstraintSpec,
  type ConstraintVocab,
  GrammarError,
} from "./mod.ts";
import { jsonDepth } from "./schema.ts";

const BYTES: ConstraintVocab = {
  nVocab: 257,
  piece: (id) => (id < 256 ? Uint8Array.of(id) : new Uint8Array(0)),
  isEog: (id) => id === 256,
};

function matches(s: unknown, text: string): boolean {
  const c = compileConstraint({ kind: "json_schema", schema: s } as ConstraintSpec, BYTES);
  for (const b of new TextEncoder().encode(text)) {
    if (!c.accepts(b)) return false;
    c.advance(b);
  }
  return c.accepts(256);
}

function check(s: unknown, good: string[], bad: string[]): void {
  for (const g of good) assert.ok(matches(s, g), `should match: ${g}`);
  for (const b of bad) assert.ok(!matches(s, b), `should not match: ${b}`);
}

function refused(s: unknown, code: string, re: RegExp): void {
  assert.throws(
    () => compileConstraint({ kind: "json_schema", schema: s } as ConstraintSpec, BYTES),
    (e: unknown) => {
      assert.ok(e instanceof GrammarError, String(e));
      assert.equal(e.code, code, e.message);
      assert.match(e.message, re);
      return true;
    },
  );
}

Deno.test("pattern: compiled into the grammar, anchored or searched, on decoded characters", () => {
  check(
    { type: "string", pattern: "^[A-Z]{2}-\\d{3}$" },
    ['"AB-123"', '"ZZ-000"'],
    ['"AB-12"', '"ab-123"', '"AB-1234"', '"AB_123"', '""'],
  );
  // unanchored: a search (JSON Schema semantics)
  check({ type: "string", pattern: "ab+c" }, ['"abc"', '"xxabbbcyy"'], ['"ac"', '"abx"']);
  check({ type: "string", pattern: "^(foo|ba[rz])$" }, ['"foo"', '"baz"'], ['"bax"', '"fo"']);
  // escapes count as the character they stand for
  check({ type: "string", pattern: "^a\\nb$" }, ['"a\\nb"', '"a\\u000ab"'], ['"anb"']);
  check({ type: "string", pattern: '^"$' }, ['"\\""', '"\\u0022"'], ['"x"']);
  check({ type: "string", pattern: "^é+$" }, ['"éé"', '"\\u00e9"'], ['"e"']);
  // an overlong UTF-8 form of "-" (E0 80 AD) is no "-": only well-formed UTF-8 is accepted
  const c = compileConstraint(
    { kind: "json_schema", schema: { type: "string", pattern: "^-$" } },
    BYTES,
  );
  c.advance(0x22);
  assert.ok(!c.accepts(0xe0) && !c.accepts(0xf0) && c.accepts(0x2d));
  const plain = compileConstraint({ kind: "json_schema", schema: { type: "string" } }, BYTES);
  plain.advance(0x22);
  plain.advance(0xe0);
  assert.ok(!plain.accepts(0x80) && plain.accepts(0xa0)); // E0 80 would be overlong
  // with lengths
  check(
    { type: "string", pattern: "^[a-z]+$", minLength: 2, maxLength: 3 },
    ['"ab"', '"abc"'],
    ['"a"', '"abcd"', '"A1"'],
  );
  refused({ type: "string", pattern: "(?=a)b" }, "unsupported_schema", /lookaround/);
  refused({ type: "string", pattern: "(a)\\1" }, "unsupported_schema", /escape \\1/);
  refused({ type: "string", pattern: "^[^\\s\\S]$" }, "unsatisfiable", /unsatisfiable/);
  refused({ type: "string", pattern: "^(a{1000}){1000}$" }, "too_large", /states/);
});

Deno.test("format: date, time, date-time, uuid (and a few more) as patterns", () => {
  check({ type: "string", format: "date" }, ['"2024-02-29"'], ['"2024-13-01"', '"24-01-01"']);
  check(
    { type: "string", format: "time" },
    ['"23:59:59Z"', '"08:00:00.123+02:00"'],
    ['"24:00:00Z"', '"08:00:00"'],
  );
  check(
    { type: "string", format: "date-time" },
    ['"2024-01-02T03:04:05Z"', '"2024-01-02T03:04:05.5-07:30"'],
    ['"2024-01-02 03:04:05Z"', '"2024-01-02T03:04Z"'],
  );
  check(
    { type: "string", format: "uuid" },
    ['"123e4567-e89b-12d3-a456-426614174000"'],
    ['"123e4567e89b12d3a456426614174000"', '"123e4567-e89b-12d3-a456-42661417400g"'],
  );
  check({ type: "string", format: "email" }, ['"a.b@example.org"'], ['"a@b"', '"ab.org"']);
  refused({ type: "string", format: "color" }, "unsupported_schema", /"format": "color"/);
});

Deno.test("numbers: minimum, maximum and their exclusive forms, for integers and numbers", () => {
  check(
    { type: "integer", minimum: 10, maximum: 250 },
    ["10", "99", "250", "123"],
    ["9", "251", "0", "-10", "1000", "10.5", "1e2"],
  );
  check(
    { type: "integer", exclusiveMinimum: -3, exclusiveMaximum: 3 },
    ["-2", "0", "2"],
    ["-3", "3", "-10"],
  );
  check(
    { type: "number", minimum: 0.5, exclusiveMaximum: 1 },
    ["0.5", "0.75", "0.999"],
    ["0.49", "1", "1.0", "-0.6", "2"],
  );
  check({ type: "number", maximum: -1 }, ["-1", "-1.5", "-200"], ["0", "-0.5", "1"]);
  // int32 bounds
  check({ type: "integer", format: "int32" }, ["2147483647"], ["2147483648"]);
  refused({ type: "integer", minimum: 5, maximum: 4 }, "unsatisfiable", /unsatisfiable/);
  refused({ type: "integer", minimum: 1.2, maximum: 1.8 }, "unsatisfiable", /unsatisfiable/);
});

Deno.test("lengths, items, enum and const", () => {
  check({ type: "string", minLength: 2, maxLength: 2 }, ['"ab"', '"日本"'], ['"a"', '"abc"']);
  check(
    { type: "array", items: { type: "integer" }, minItems: 1, maxItems: 2 },
    ["[1]", "[1, 2]"],
    ["[]", "[1, 2, 3]", '["a"]'],
  );
  check({ enum: ["a", 1, null] }, ['"a"', "1", "null"], ['"b"', "2"]);
  check({ const: { k: [true] } }, ['{"k":[true]}'], ['{"k":[false]}']);
});

Deno.test("unsupported keywords are refused by name, with their path", () => {
  refused(
    { type: "object", properties: { a: { type: "array", uniqueItems: true } } },
    "unsupported_schema",
    /"uniqueItems" at \/properties\/a/,
  );
  refused({ not: { type: "string" } }, "unsupported_schema", /"not"/);
  refused({ type: "number", multipleOf: 3 }, "unsupported_schema", /"multipleOf"/);
  refused(
    { type: "object", patternProperties: { "^x": {} }, if: {}, then: {} },
    "unsupported_schema",
    /"patternProperties", "if", "then"/,
  );
  refused({ type: "array", prefixItems: [{}] }, "unsupported_schema", /"prefixItems"/);
  // annotations and no-op values are fine
  assert.ok(matches({ type: "array", uniqueItems: false, title: "t", examples: [[]] }, "[]"));
});

Deno.test("hostile $refs: cycles are 400s or bounded, never a stack overflow", () => {
  refused({ $ref: "#" }, "unsatisfiable", /unsatisfiable/);
  refused(
    { $defs: { a: { $ref: "#/$defs/b" }, b: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" },
    "unsatisfiable",
    /unsatisfiable/,
  );
  // a required property that recurses forever
  refused(
    { type: "object", properties: { a: { $ref: "#" } }, required: ["a"] },
    "unsatisfiable",
    /unsatisfiable/,
  );
  refused({ enum: [] }, "unsatisfiable", /unsatisfiable/);
  refused(false, "unsatisfiable", /unsatisfiable/);
  refused({ type: "object", properties: { a: false }, required: ["a"] }, "unsatisfiable", /./);
  // left recursion through anyOf: the recursive branch is cut, the rest works
  check({ anyOf: [{ $ref: "#" }, { type: "string" }] }, ['"x"'], ["1"]);
  check(
    { anyOf: [{ $ref: "#" }, { $ref: "#" }, { type: "array", items: { $ref: "#" } }] },
    ["[]", "[[], [[]]]"],
    ['"x"'],
  );
  // a satisfiable recursive schema, with an unsatisfiable optional branch pruned
  const tree = {
    $defs: {
      node: {
        type: "object",
        properties: {
          v: { type: "integer" },
          kids: { type: "array", items: { $ref: "#/$defs/node" } },
          never: { $ref: "#/$defs/never" },
        },
        required: ["v"],
        additionalProperties: false,
      },
      never: { type: "object", properties: { x: { $ref: "#/$defs/never" } }, required: ["x"] },
    },
    $ref: "#/$defs/node",
  };
  check(
    tree,
    ['{"v": 1}', '{"v": 1, "kids": [{"v": 2, "kids": []}]}'],
    ['{"v": 1, "never": {}}', '{"kids": []}'],
  );
  // bounded depth: 32 levels of nesting at most
  const deep = (n: number) => '{"v": 0, "kids": ['.repeat(n) + '{"v": 0}' + "]}".repeat(n);
  assert.ok(matches(tree, deep(15)));
  assert.ok(!matches(tree, deep(20)));
});

Deno.test("limits: deep nesting and huge schemas are too_large, quickly", () => {
  let s: Record<string, unknown> = { type: "string" };
  for (let i = 0; i < 3000; i++) s = { type: "object", properties: { a: s } };
  refused(s, "too_large", /nested too deeply/);
  assert.equal(jsonDepth(s, 100), 101);
  const wide: Record<string, unknown> = {};
  for (let i = 0; i < 30000; i++) wide[`p${i}`] = { type: "integer" };
  refused({ type: "object", properties: wide }, "too_large", /grammar nodes/);
  refused({ enum: ["x".repeat(1 << 20)] }, "too_large", /1 MiB/);
});

Deno.test("zod-style strings: a pattern beside a format; a lookahead pattern falls back", () => {
  // what zod writes for z.string().email(): an ECMA pattern with lookaheads beside the format
  const email = {
    type: "string",
    format: "email",
    pattern:
      "^(?!\\.)(?!.*\\.\\.)([A-Za-z0-9_'+\\-\\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$",
  };
  check(email, ['"a.b@example.org"'], ['"nope"']);
  // an unknown format with a pattern that compiles (zod's cuid) is the pattern
  check({ type: "string", format: "cuid", pattern: "^[cC][^\\s-]{8,}$" }, ['"c12345678"'], [
    '"x12345678"',
  ]);
  // a pattern that compiles wins over the format
  check({ type: "string", format: "uuid", pattern: "^x+$" }, ['"xx"'], ['"y"']);
  // z.record(z.string(), ...): propertyNames {type: "string"} says nothing
  check(
    { type: "object", propertyNames: { type: "string" }, additionalProperties: { type: "number" } },
    ['{"a": 1}'],
    ['{"a": "x"}'],
  );
  refused(
    { type: "object", propertyNames: { pattern: "^x" } },
    "unsupported_schema",
    /"propertyNames"/,
  );
  // safe-integer bounds (zod's z.number().int()) still generate
  check(
    { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
    ["0", "-12", "123456789012345"],
    ["1e3", "1.5"],
  );
});
