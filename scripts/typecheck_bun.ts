/**
 * Type-checks the Bun-only code with bun-types: `tsc -p tsconfig.bun.json` (TypeScript and
 * bun-types from npm, pinned in package.json). `deno check` covers everything else.
 *
 *   deno run -A scripts/typecheck_bun.ts
 *
 * The Bun program covers ffi/bun.ts (and test/bun/_ffi_types.ts, which holds its interface
 * against bun:ffi's real types), the server's `Bun.serve` leg (runtime/server/serve.ts) and
 * test/bun/*.ts. Those import modules shared with Deno (ffi/mod.ts imports the Deno adapter),
 * so the program needs Deno's namespace too: it is taken from `deno types` of the pinned Deno
 * (the section that declares `namespace Deno`, without its lib references, which would clash
 * with bun-types' globals) and written to node_modules/.cache/spool/deno_ns.d.ts.
 *
 * @module
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const BIN = join(ROOT, "node_modules", ".bin");

/** The generated Deno namespace declarations (the path tsconfig.bun.json lists). */
export const DENO_NS = join(ROOT, "node_modules", ".cache", "spool", "deno_ns.d.ts");

/** Deno's `Deno` namespace declarations, from `deno types`, for a program with bun-types. */
export function denoNamespaceTypes(deno = join(BIN, "deno")): string {
  const all = execFileSync(deno, ["types"], { encoding: "utf8", maxBuffer: 64 << 20 });
  const sections = all.split(/^(?=\/\/\/ <reference no-default-lib="true" \/>)/m);
  const ns = sections.find((s) => /^declare namespace Deno \{/m.test(s));
  if (!ns) throw new Error("`deno types` has no section declaring `namespace Deno`");
  return ns.split("\n").filter((l) => !l.startsWith("/// <reference")).join("\n");
}

if (import.meta.main) {
  const tsc = join(BIN, "tsc");
  if (!existsSync(tsc) || !existsSync(join(ROOT, "node_modules", "bun-types"))) {
    console.error("typecheck:bun: typescript or bun-types is not installed (npm install)");
    process.exit(1);
  }
  mkdirSync(dirname(DENO_NS), { recursive: true });
  writeFileSync(DENO_NS, denoNamespaceTypes());
  const r = spawnSync(tsc, ["-p", join(ROOT, "tsconfig.bun.json")], {
    cwd: ROOT,
    stdio: "inherit",
  });
  if (r.status === 0) console.error("typecheck:bun: ok (tsc -p tsconfig.bun.json)");
  process.exit(r.status ?? 1);
}
