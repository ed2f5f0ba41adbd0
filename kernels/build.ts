/**
 * Builds the native kernel library with the system C compiler.
 *
 *   deno run -A kernels/build.ts [--target linux-x64|linux-arm64|darwin-arm64] [--cc CC] [--force]
 *
 * Output: kernels/dist/<os>-<arch>/libspool.{so,dylib}. Sources: kernels/cpu/*.c and
 * cpu/ref/*.c always; cpu/x86/*.c (compiled with -mavx2 -mfma -mf16c, chosen at run time
 * by cpu features) for x86-64; cpu/arm/*.c for arm64 (baseline armv8-a, except *_dotprod.c,
 * compiled with -march=armv8.2-a+dotprod and chosen at run time by cpu features). The build
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

/** Options for {@link buildKernels}. */
export interface BuildOptions {
  target?: Target;
  cc?: string;
  force?: boolean;
  quiet?: boolean;
  /** Extra compiler flags (e.g. sanitizers). */
  extraFlags?: string[];
}

/** Compile the kernel library; returns the path of the shared library. */
export function buildKernels(opts: BuildOptions = {}): string {
  const target = opts.target ?? hostTarget();
  const cross = target !== hostTarget();
  const cc = opts.cc ?? process.env.CC ??
    (cross && target === "linux-arm64" ? "aarch64-linux-gnu-gcc" : "cc");
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
        flags: src.endsWith("_dotprod.c") ? ["-march=armv8.2-a+dotprod"] : [],
      });
    }
  }
  const outDir = join(here, "dist", target);
  const out = join(outDir, libName(target));
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ cc, common, target, simdDefine, units: units.map((u) => u.flags) }));
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
  const objs: string[] = [];
  for (const u of units) {
    const rel = u.src.slice(cpu.length + 1).replaceAll("/", "_");
    const obj = join(outDir, "obj", rel.replace(/\.c$/, ".o"));
    execFileSync(cc, [...common, simdDefine, ...u.flags, "-c", u.src, "-o", obj], {
      stdio: "inherit",
    });
    objs.push(obj);
  }
  const tmp = out + ".tmp";
  const linkFlags = target.startsWith("darwin")
    ? ["-dynamiclib"]
    : ["-shared", "-Wl,--no-undefined", "-pthread", "-lm"];
  execFileSync(cc, [...objs, ...linkFlags, "-o", tmp], { stdio: "inherit" });
  renameSync(tmp, out);
  writeFileSync(stampFile, stamp);
  if (!opts.quiet) console.error(`kernels: built ${out} (${units.length} units, ${cc})`);
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
