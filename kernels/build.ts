/**
 * Builds the native kernel library with the system C compiler.
 *
 *   deno run -A kernels/build.ts [--target linux-x64|linux-arm64|darwin-arm64] [--cc CC] [--force]
 *
 * Output: kernels/dist/<os>-<arch>/libspool.{so,dylib}. darwin-arm64 off a Mac is
 * cross-compiled with `zig cc -target aarch64-macos.11.0` (kernels/zig.ts fetches the pinned
 * zig from PyPI once; without it the build fails with {@link ToolchainUnavailableError}).
 * Sources: kernels/cpu/*.c and
 * cpu/ref/*.c always; cpu/x86/*.c (compiled with -mavx2 -mfma -mf16c, chosen at run time
 * by cpu features) for x86-64; cpu/arm/*.c for arm64 (baseline armv8-a, except *_dotprod.c,
 * compiled with -march=armv8.2-a+dotprod and chosen at run time by cpu features; on macOS the
 * baseline, Apple M1, has the dot product already). The build
 * is skipped when a stamp of the sources, flags and compiler matches the previous build.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { ensureZig, zigCC } from "./zig.ts";

/** A build target: os-arch as in kernels/dist/. */
export type Target = "linux-x64" | "linux-arm64" | "darwin-arm64" | "darwin-x64";

const here = dirname(fileURLToPath(import.meta.url));

/** The target of the machine running this script. */
export function hostTarget(): Target {
  const arch = process.arch === "arm64" ? "arm64" : "x64";
  const os = process.platform === "darwin" ? "darwin" : "linux";
  return `${os}-${arch}` as Target;
}

/** File name of the library on a target. */
export function libName(target: Target): string {
  return target.startsWith("darwin") ? "libspool.dylib" : "libspool.so";
}

/** Path of the built library for a target. */
export function libPath(target: Target = hostTarget()): string {
  return join(here, "dist", target, libName(target));
}

function listC(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith(".c")).sort().map((f) => join(dir, f));
}

/** Raised when no compiler for the target can be had here (callers may skip the target). */
export class ToolchainUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ToolchainUnavailableError";
  }
}

/**
 * The compiler command for `target`: `cc` if given; for darwin off a Mac, zig cc (`ZIG` or
 * the pinned one, see kernels/zig.ts); else `CC`, else aarch64-linux-gnu-gcc for linux-arm64
 * off arm64, and `cc` natively.
 */
export function compilerFor(target: Target, cc?: string | string[], fetchZig = true): string[] {
  if (cc) return typeof cc === "string" ? [cc] : cc;
  const host = hostTarget();
  const offMac = target.startsWith("darwin") && !host.startsWith("darwin");
  if (process.env.CC && !offMac) return [process.env.CC];
  if (target === host) return ["cc"];
  if (target === "linux-arm64") return ["aarch64-linux-gnu-gcc"];
  if (offMac) {
    if (target !== "darwin-arm64") {
      throw new ToolchainUnavailableError(`no cross-compiler is set up for ${target}`);
    }
    const z = ensureZig(fetchZig);
    if ("why" in z) {
      throw new ToolchainUnavailableError(
        `zig (the macOS cross-compiler) is unavailable: ${z.why}`,
      );
    }
    return zigCC(z.zig);
  }
  return ["cc"];
}

/** Options for {@link buildKernels}. */
export interface BuildOptions {
  target?: Target;
  /** The compiler: a command, or a command with its leading arguments (`zig cc -target ..`). */
  cc?: string | string[];
  force?: boolean;
  quiet?: boolean;
  /** Extra compiler flags (e.g. sanitizers). */
  extraFlags?: string[];
}

/** Compile the kernel library; returns the path of the shared library. */
export function buildKernels(opts: BuildOptions = {}): string {
  const target = opts.target ?? hostTarget();
  const [cc, ...ccArgs] = compilerFor(target, opts.cc);
  const darwin = target.startsWith("darwin");
  const isX86 = target.endsWith("x64");
  const cpu = join(here, "cpu");
  const common = [
    "-std=c11",
    "-O3",
    "-fPIC",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-fvisibility=hidden",
    "-D_GNU_SOURCE",
    `-I${join(here, "include")}`,
    ...(opts.extraFlags ?? []),
  ];
  const units: { src: string; flags: string[] }[] = [];
  for (const src of [...listC(cpu), ...listC(join(cpu, "ref"))]) units.push({ src, flags: [] });
  const simdDefine = isX86 ? "-DSPOOL_HAVE_AVX2" : "-DSPOOL_HAVE_NEON";
  if (isX86) {
    for (const src of listC(join(cpu, "x86"))) {
      units.push({ src, flags: ["-mavx2", "-mfma", "-mf16c"] });
    }
  } else {
    // Baseline armv8-a for the library, so it loads and runs on any arm64 core; only the
    // SDOT build of the integer dots gets the dot-product extension, and dispatch calls it
    // only when the CPU reports the feature.
    for (const src of listC(join(cpu, "arm"))) {
      units.push({
        src,
        flags: src.endsWith("_dotprod.c") && !darwin ? ["-march=armv8.2-a+dotprod"] : [],
      });
    }
  }
  const outDir = join(here, "dist", target);
  const out = join(outDir, libName(target));
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify({ cc, ccArgs, common, target, simdDefine, units: units.map((u) => u.flags) }),
  );
  for (const u of units) hash.update(u.src).update(readFileSync(u.src));
  if (existsSync(join(here, "include", "spool.h"))) {
    hash.update(readFileSync(join(here, "include", "spool.h")));
  }
  for (const d of ["", "ref", "x86", "arm"]) {
    const dir = join(cpu, d);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((f) => f.endsWith(".h")).sort()) {
      hash.update(readFileSync(join(dir, f)));
    }
  }
  hash.update(readFileSync(fileURLToPath(import.meta.url))); // this script: flags, link steps
  const stamp = hash.digest("hex");
  const stampFile = out + ".stamp";
  if (
    !opts.force && existsSync(out) && existsSync(stampFile) &&
    readFileSync(stampFile, "utf8") === stamp
  ) {
    if (!opts.quiet) console.error(`kernels: up to date (${out})`);
    return out;
  }
  mkdirSync(join(outDir, "obj"), { recursive: true });
  // linked under its own name in obj/ (a Mach-O's code signature records the file name)
  const tmp = join(outDir, "obj", libName(target));
  // macOS: the install name is the file name under @rpath, not this build's path.
  const linkFlags = darwin
    ? ["-dynamiclib", "-Wl,-install_name,@rpath/libspool.dylib"]
    : ["-shared", "-Wl,--no-undefined", "-pthread", "-lm"];
  if (cc.endsWith("zig") && units.every((u) => u.flags.length === 0)) {
    // zig cc: one call compiles every unit on zig's own thread pool and links (a call per
    // unit costs zig's start-up each time: 23 s of CPU against 10 s for one call, cold).
    const srcs = units.map((u) => u.src);
    execFileSync(cc, [...ccArgs, ...common, simdDefine, ...srcs, ...linkFlags, "-o", tmp], {
      stdio: "inherit",
    });
  } else {
    const objs: string[] = [];
    for (const u of units) {
      const rel = u.src.slice(cpu.length + 1).replaceAll("/", "_");
      const obj = join(outDir, "obj", rel.replace(/\.c$/, ".o"));
      execFileSync(cc, [...ccArgs, ...common, simdDefine, ...u.flags, "-c", u.src, "-o", obj], {
        stdio: "inherit",
      });
      objs.push(obj);
    }
    execFileSync(cc, [...ccArgs, ...objs, ...linkFlags, "-o", tmp], { stdio: "inherit" });
  }
  renameSync(tmp, out);
  writeFileSync(stampFile, stamp);
  if (!opts.quiet) {
    console.error(`kernels: built ${out} (${units.length} units, ${[cc, ...ccArgs].join(" ")})`);
  }
  return out;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  try {
    buildKernels({
      target: opt("--target") as Target | undefined,
      cc: opt("--cc"),
      force: args.includes("--force"),
      quiet: args.includes("--quiet"),
    });
  } catch (e) {
    console.error(`kernels: build failed: ${(e as Error).message}`);
    process.exit(1);
  }
}
