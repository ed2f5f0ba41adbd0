/**
 * The symbol table (ffi/symbols.ts) mirrors kernels/include/spool.h: every SPOOL_API
 * function is declared in both with the same parameter count and compatible types, and
 * symbols.ts has nothing the header lacks.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type NativeType, symbols } from "./symbols.ts";

const headerPath = fileURLToPath(new URL("../kernels/include/spool.h", import.meta.url));

/** One C declaration: name, result and parameter types mapped to FFI types. */
interface CDecl {
  name: string;
  result: NativeType;
  parameters: NativeType[];
}

/** Map a C type to its FFI type. Throws on types the ABI does not allow. */
function ffiType(cType: string): NativeType {
  const t = cType.replace(/\bconst\b/g, "").replace(/\s+/g, " ").trim();
  if (t.includes("*")) return "ptr";
  switch (t) {
    case "int32_t":
    case "spool_status":
      return "i32";
    case "uint32_t":
      return "u32";
    case "float":
      return "f32";
    case "double":
      return "f64";
    case "void":
      return "void";
  }
  throw new Error(
    `C type "${cType}" has no FFI mapping (the ABI allows only scalars and pointers)`,
  );
}

/** Every SPOOL_API function declaration of the header (comments stripped first). */
export function parseHeader(src: string): CDecl[] {
  const code = src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const out: CDecl[] = [];
  const re = /SPOOL_API\s+([^;()]+?)\s*\(([^)]*)\)\s*;/g;
  for (const m of code.matchAll(re)) {
    const head = m[1].trim(); // e.g. "spool_pool *spool_pool_create"
    const nm = /([A-Za-z_][A-Za-z0-9_]*)$/.exec(head);
    if (!nm) throw new Error(`cannot parse declaration "${head}"`);
    const name = nm[1];
    const result = ffiType(head.slice(0, head.length - name.length));
    const rawParams = m[2].trim();
    const parameters = rawParams === "void" || rawParams === ""
      ? []
      : rawParams.split(",").map((p) => {
        // drop the parameter name: the last identifier, unless the type is all there is
        const s = p.trim();
        const pm = /^(.*?[\s*])([A-Za-z_][A-Za-z0-9_]*)$/.exec(s);
        return ffiType(pm ? pm[1] : s);
      });
    out.push({ name, result, parameters });
  }
  return out;
}

const header = parseHeader(readFileSync(headerPath, "utf8"));

Deno.test("symbols: the header parses into a plausible set of functions", () => {
  assert(header.length >= 30, `only ${header.length} SPOOL_API functions found`);
  const names = header.map((d) => d.name);
  assertEquals(new Set(names).size, names.length, "duplicate declarations");
  const rope = header.find((d) => d.name === "spool_rope");
  assertEquals(rope?.parameters.length, 15);
  assertEquals(header.find((d) => d.name === "spool_pool_create")?.result, "ptr");
  assertEquals(header.find((d) => d.name === "spool_abi_version")?.parameters, []);
});

Deno.test("symbols: every SPOOL_API function is in symbols.ts with the same signature", () => {
  const table = symbols as Record<
    string,
    { parameters: readonly NativeType[]; result: NativeType }
  >;
  const problems: string[] = [];
  for (const d of header) {
    const s = table[d.name];
    if (!s) {
      problems.push(`${d.name}: missing from ffi/symbols.ts`);
      continue;
    }
    if (s.parameters.length !== d.parameters.length) {
      problems.push(
        `${d.name}: ${s.parameters.length} parameters in symbols.ts, ${d.parameters.length} in spool.h`,
      );
    } else {
      d.parameters.forEach((t, i) => {
        if (s.parameters[i] !== t) {
          problems.push(`${d.name}: parameter ${i} is ${s.parameters[i]}, header says ${t}`);
        }
      });
    }
    if (s.result !== d.result) {
      problems.push(`${d.name}: result ${s.result}, header says ${d.result}`);
    }
  }
  const declared = new Set(header.map((d) => d.name));
  for (const name of Object.keys(table)) {
    if (!declared.has(name)) problems.push(`${name}: in symbols.ts but not declared in spool.h`);
  }
  assertEquals(problems, []);
});

Deno.test("symbols: the parser maps C types as the ABI rules say", () => {
  const decls = parseHeader(`
    /** doc with SPOOL_API inside a comment: ignored ( ); */
    SPOOL_API double f(const void *p, double n, int32_t k,
                       float x, spool_pool *pool);
    SPOOL_API void g(void);
    SPOOL_API const char *h(uint32_t);
  `);
  assertEquals(decls, [
    { name: "f", result: "f64", parameters: ["ptr", "f64", "i32", "f32", "ptr"] },
    { name: "g", result: "void", parameters: [] },
    { name: "h", result: "ptr", parameters: ["u32"] },
  ]);
});
