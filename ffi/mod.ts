/**
 * Loads the native kernel library once per process and exposes it through one interface on
 * Deno and Bun.
 *
 * Lookup order:
 *  1. `SPOOL_KERNELS`: a path to the library file;
 *  2. the local build, `kernels/dist/<os>-<arch>/libspool.{so,dylib}`;
 *  3. an embedded copy (a compiled binary's virtual file system, or bytes registered with
 *     {@link setEmbeddedKernels}), extracted to `<cache>/kernels/<sha256>/` (write, then
 *     rename) and opened from there.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { openBun } from "./bun.ts";
import { openDeno } from "./deno.ts";
import { KernelError, KernelLoadError } from "./errors.ts";
import type { Native, Ptr } from "./types.ts";

export { KernelError, KernelLoadError, Status } from "./errors.ts";
export type { Native, NativeSymbols, Ptr } from "./types.ts";

/** ABI version this code speaks (SPOOL_ABI_VERSION in spool.h). */
export const ABI_VERSION = 7;

/** Implementation ids (SPOOL_IMPL_*). */
export const Impl = { AUTO: 0, REF: 1, AVX2: 2, NEON: 3 } as const;

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/** os-arch of this process, as used by kernels/dist. */
export function platformTarget(): string {
  const arch = process.arch === "arm64" ? "arm64" : "x64";
  const os = process.platform === "darwin" ? "darwin" : "linux";
  return `${os}-${arch}`;
}

/** Library file name on this platform. */
export function libFileName(): string {
  return process.platform === "darwin" ? "libspool.dylib" : "libspool.so";
}

/** Path of the local build for this platform. */
export function localLibPath(): string {
  return fileURLToPath(
    new URL(`../kernels/dist/${platformTarget()}/${libFileName()}`, import.meta.url),
  );
}

/** Directory for extracted libraries and other caches. */
export function cacheDir(): string {
  const env = process.env;
  if (env.SPOOL_CACHE_DIR) return env.SPOOL_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "spool");
}

let embedded: Uint8Array | undefined;

/** Register library bytes to extract when no file can be opened directly (compiled binaries). */
export function setEmbeddedKernels(bytes: Uint8Array): void {
  embedded = bytes;
}

/**
 * Write library bytes to `<cache>/kernels/<sha256>/<name>` unless already there, with a
 * write-then-rename so a concurrent process never opens a half-written file.
 */
export function extractLibrary(bytes: Uint8Array, dir = cacheDir()): string {
  const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 32);
  const d = join(dir, "kernels", hash);
  const out = join(d, libFileName());
  if (existsSync(out)) return out;
  mkdirSync(d, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes, { mode: 0o755 });
  renameSync(tmp, out);
  return out;
}

function open(path: string): Native {
  return isBun ? openBun(path) : openDeno(path);
}

function openChecked(path: string): Native {
  const n = open(path);
  const v = n.sym.spool_abi_version();
  if (v !== ABI_VERSION) {
    n.close();
    throw new KernelLoadError(
      `Kernel library ${path} has ABI version ${v}, expected ${ABI_VERSION}; rebuild it with ` +
        "`deno task build:kernels`",
    );
  }
  return n;
}

/** Find and open the library (see the module doc for the order). */
export function loadNative(): Native {
  const tried: string[] = [];
  const env = process.env.SPOOL_KERNELS;
  if (env) {
    try {
      return openChecked(env);
    } catch (e) {
      if (e instanceof KernelLoadError) throw e;
      throw new KernelLoadError(
        `SPOOL_KERNELS=${env} could not be opened: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  const local = localLibPath();
  let localErr: unknown;
  if (existsSync(local)) {
    try {
      return openChecked(local);
    } catch (e) {
      if (e instanceof KernelLoadError) throw e;
      const msg = (e as Error).message;
      if (/symbol/i.test(msg)) {
        throw new KernelLoadError(
          `Kernel library ${local} is stale (${msg}); rebuild it with \`deno task build:kernels\``,
          { cause: e },
        );
      }
      localErr = e; // e.g. inside a compiled binary's virtual file system: try extracting
    }
  }
  tried.push(local);
  let bytes = embedded;
  if (!bytes && localErr) {
    try {
      bytes = readFileSync(local);
    } catch { /* not readable either */ }
  }
  if (bytes) return openChecked(extractLibrary(bytes));
  throw new KernelLoadError(
    `spool's kernel library was not found (tried ${tried.join(", ")}). Build it with ` +
      "`deno task build:kernels`, or set SPOOL_KERNELS to its path.",
    localErr ? { cause: localErr } : undefined,
  );
}

let shared: Native | undefined;

/** The process-wide library, opened on first use. */
export function native(): Native {
  if (!shared) shared = loadNative();
  return shared;
}

/** Throw a {@link KernelError} unless `status` is OK. Returns the status otherwise. */
export function check(status: number, op: string, detail?: string): number {
  if (status < 0) {
    const errno = status === -4 ? native().sym.spool_last_errno() : 0;
    throw new KernelError(op, status, errno, detail);
  }
  return status;
}

/** True if `p` is the null pointer on either runtime. */
export function isNull(p: Ptr): boolean {
  return p === null || (p as unknown as number) === 0;
}
