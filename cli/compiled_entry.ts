/**
 * Start-up of a compiled single binary (`bun build --compile`, see scripts/compile.ts).
 *
 * The build script generates a tiny entry file per target that embeds the target's kernel
 * library (`import lib from ".../libspool.so" with { type: "file" }`) and calls
 * {@link runCompiled} with the embedded file's path. The bytes are handed to ffi/mod.ts,
 * which, when the library is first needed, extracts them to
 * `<cache>/kernels/<sha256>/libspool.so` (write, then rename) and dlopens that file.
 * `SPOOL_KERNELS` still overrides the embedded copy. For commands that load a model the library
 * is extracted at start-up and `SPOOL_KERNELS` set to it, so that Worker threads (the
 * engine's) open the same file.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { extractLibrary, setEmbeddedKernels } from "../ffi/mod.ts";
import { main } from "./main.ts";

/** What the generated entry knows about its build. */
export interface CompiledBuild {
  /** os-arch the binary was built for, e.g. "linux-arm64". */
  target: string;
  /** Path of the embedded kernel library in the binary's file system; absent if none. */
  kernels?: string;
  /** Why no kernels are embedded (printed when they are needed and missing). */
  missingKernels?: string;
}

const NO_KERNELS_NEEDED = new Set([
  undefined,
  "help",
  "--help",
  "-h",
  "version",
  "--version",
  "pull",
  "list",
  "config",
  "inspect",
]);

/** Register the embedded kernels, then run the CLI; sets `process.exitCode`. */
export async function runCompiled(build: CompiledBuild): Promise<number> {
  const argv = process.argv.slice(2);
  if (build.kernels) {
    const bytes = new Uint8Array(readFileSync(build.kernels));
    setEmbeddedKernels(bytes);
    // Workers (the engine runs in one) are separate JS contexts that do not see the bytes
    // registered above: extract now and point them at the file through the environment.
    if (!process.env.SPOOL_KERNELS && !NO_KERNELS_NEEDED.has(argv[0])) {
      process.env.SPOOL_KERNELS = extractLibrary(bytes);
    }
  } else if (!process.env.SPOOL_KERNELS && !NO_KERNELS_NEEDED.has(argv[0])) {
    console.error(
      `spool: this ${build.target} binary carries no kernel library ` +
        `(${build.missingKernels ?? "it was not built"}). Build libspool for ${build.target} ` +
        "with `deno task build:kernels` on such a machine and set SPOOL_KERNELS to its path.",
    );
  }
  const code = await main(argv);
  process.exitCode = code;
  return code;
}
