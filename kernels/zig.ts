/**
 * zig as the C cross-compiler for the macOS kernels (aarch64-macos), from a registry.
 *
 *   deno run -A kernels/zig.ts [--install]   # prints the zig path, or why there is none
 *
 * Linux has no macOS SDK or Mach-O linker, but `zig cc` carries both: macOS libc headers
 * and a `libSystem.tbd` to link against, and it signs arm64 Mach-O output ad hoc, as macOS
 * requires. zig comes from PyPI's `ziglang` wheel (a recent zig for linux x86-64 and
 * aarch64; the npm packages for zig are older or download at install time from
 * ziglang.org). The version is pinned ({@link ZIG_VERSION}); the wheel is fetched once with
 * `pip download` and unpacked (write, then rename) into `<cache>/toolchains/` (the cache
 * folder of ffi/mod.ts: `SPOOL_CACHE_DIR`, else `$XDG_CACHE_HOME/spool`, else
 * `~/.cache/spool`). `ZIG` names another zig binary instead. Where neither works (no pip,
 * PyPI unreachable), {@link ensureZig} says why and callers skip the macOS build.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { cacheDir } from "../ffi/mod.ts";

/** The pinned zig (PyPI `ziglang`) version. */
export const ZIG_VERSION = "0.17.1";

/** The zig target of the macOS kernels: arm64, macOS 11 (the first on Apple silicon). */
export const ZIG_MACOS_TARGET = "aarch64-macos.11.0";

/** Where the pinned zig is unpacked. */
export function zigHome(dir = cacheDir()): string {
  return join(dir, "toolchains", `ziglang-${ZIG_VERSION}`);
}

/** A usable zig, or why there is none. */
export type ZigResult = { zig: string; version: string } | { why: string };

function zigVersion(zig: string): string | undefined {
  const r = spawnSync(zig, ["version"], { encoding: "utf8", timeout: 30_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function python(): string | undefined {
  for (const p of ["python3", "python"]) {
    const r = spawnSync(p, ["-m", "pip", "--version"], { stdio: "ignore", timeout: 30_000 });
    if (r.status === 0) return p;
  }
  return undefined;
}

/**
 * Fetch `ziglang==ZIG_VERSION` with pip into `home` (a temporary folder renamed into place,
 * so a concurrent or interrupted install never leaves half a toolchain there).
 */
function install(home: string): string | undefined {
  if (process.platform !== "linux" || !["x64", "arm64"].includes(process.arch)) {
    return `no ziglang wheel is fetched on ${process.platform}-${process.arch} (linux x64 and ` +
      "arm64 only); set ZIG to a zig binary";
  }
  const py = python();
  if (!py) return "pip is not installed (python3 -m pip); set ZIG to a zig binary";
  const tmp = `${home}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const dl = spawnSync(py, [
      "-m",
      "pip",
      "download",
      "--no-deps",
      "--only-binary=:all:",
      "--disable-pip-version-check",
      "-q",
      "-d",
      tmp,
      `ziglang==${ZIG_VERSION}`,
    ], { encoding: "utf8", timeout: 600_000 });
    const wheel = readdirSync(tmp).find((f) => f.endsWith(".whl"));
    if (dl.status !== 0 || !wheel) {
      const out = `${dl.stdout ?? ""}${dl.stderr ?? ""}${dl.error?.message ?? ""}`.trim();
      return `pip download ziglang==${ZIG_VERSION} failed (PyPI unreachable?): ${
        out.split("\n").slice(-3).join(" ")
      }`;
    }
    const unzip = spawnSync(py, ["-m", "zipfile", "-e", join(tmp, wheel), tmp], {
      encoding: "utf8",
      timeout: 600_000,
    });
    if (unzip.status !== 0) return `unpacking ${wheel} failed: ${unzip.stderr}`;
    rmSync(join(tmp, wheel));
    chmodSync(join(tmp, "ziglang", "zig"), 0o755); // zip entries lose the mode bit
    try {
      renameSync(tmp, home);
    } catch (e) {
      // another process put it there first: use theirs (never remove a zig in use)
      if (!existsSync(join(home, "ziglang", "zig"))) throw e;
    }
    return undefined;
  } catch (e) {
    return `installing zig ${ZIG_VERSION} into ${home} failed: ${(e as Error).message}`;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The zig to cross-compile with: `ZIG` if set; else the pinned one in the cache, fetched
 * first when `fetch` is true and it is not there yet.
 */
export function ensureZig(fetch = true): ZigResult {
  const env = process.env.ZIG;
  if (env) {
    const v = zigVersion(env);
    return v ? { zig: env, version: v } : { why: `ZIG=${env} does not run (\`${env} version\`)` };
  }
  const home = zigHome();
  const zig = join(home, "ziglang", "zig");
  if (!existsSync(zig)) {
    if (!fetch) return { why: `zig ${ZIG_VERSION} is not installed (${home})` };
    const why = install(home);
    if (why) return { why };
  }
  const v = zigVersion(zig);
  return v ? { zig, version: v } : { why: `${zig} does not run` };
}

/** The C compiler command for the macOS kernels: `zig cc -target aarch64-macos.11.0`. */
export function zigCC(zig: string): string[] {
  return [zig, "cc", "-target", ZIG_MACOS_TARGET];
}

if (import.meta.main) {
  const r = ensureZig(process.argv.includes("--install"));
  if ("why" in r) {
    console.error(`zig: ${r.why}`);
    process.exitCode = 1;
  } else console.log(`${r.zig} (zig ${r.version})`);
}
