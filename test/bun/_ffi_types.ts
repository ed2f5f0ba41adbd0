/**
 * Type-level check, run by `tsc -p tsconfig.bun.json` (scripts/typecheck_bun.ts): `bun:ffi`
 * as bun-types describes it must be usable where ffi/bun.ts expects its own `BunFFI` (the
 * adapter reaches bun:ffi through `import.meta.require`, so that Deno never resolves it, and
 * so cannot import its types itself). Not a test file: nothing here runs.
 *
 * @module
 */
import type * as bunFFI from "bun:ffi";
import type { BunFFI } from "../../ffi/bun.ts";

/** Compiles only while bun:ffi's real signatures fit the adapter's interface. */
export const adapterFitsBunFFI = (m: typeof bunFFI): BunFFI => m;
