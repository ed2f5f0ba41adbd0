/**
 * The standalone C tests in kernels/test/*.c (each has its own main and exits non-zero on
 * failure), run two ways:
 *  - natively against the host library (AVX2 vs REF on x86-64);
 *  - for NEON: the library cross-built for linux-arm64 with aarch64-linux-gnu-gcc
 *    (kernels/dist/linux-arm64/) and every test run under `qemu-aarch64 -L
 *    /usr/aarch64-linux-gnu`, twice: on qemu's default CPU, which has the dot-product
 *    extension (the SDOT kernels run), and with `-cpu cortex-a53` (armv8.0, no SDOT: the
 *    library must detect that and run its baseline kernels; an SDOT there would be SIGILL).
 *    The C tests print the detected features, which each leg checks. Skipped, with the
 *    reason, where the cross compiler or qemu is missing (CI: apt-get install
 *    gcc-aarch64-linux-gnu qemu-user).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { buildKernels, hostTarget, libPath, type Target } from "../../kernels/build.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const testDir = join(root, "kernels", "test");
const cTests = existsSync(testDir)
  ? readdirSync(testDir).filter((f) => f.endsWith(".c")).sort()
  : [];

function has(cmd: string, args: string[] = ["--version"]): boolean {
  try {
    return spawnSync(cmd, args, { stdio: "ignore" }).status === 0;
  } catch {
    return false;
  }
}

const CROSS_CC = "aarch64-linux-gnu-gcc";
const QEMU = "qemu-aarch64";
const QEMU_SYSROOT = "/usr/aarch64-linux-gnu";
const missing = [
  has(CROSS_CC) ? "" : CROSS_CC,
  has(QEMU) ? "" : QEMU,
  existsSync(QEMU_SYSROOT) ? "" : QEMU_SYSROOT,
].filter(Boolean);
const crossReady = missing.length === 0 && process.arch !== "arm64";
if (!crossReady && process.arch !== "arm64") {
  console.warn(
    `neon_test: skipping the NEON leg, missing ${missing.join(", ")} ` +
      "(apt-get install gcc-aarch64-linux-gnu qemu-user)",
  );
}

/** Compile one C test against the library at `lib`; returns the executable's path. */
function compileTest(cc: string, src: string, lib: string, outDir: string): string {
  const exe = join(outDir, basename(src, ".c"));
  const libDir = dirname(lib);
  const r = spawnSync(cc, [
    "-std=c11",
    "-O2",
    "-Wall",
    "-Wextra",
    "-D_GNU_SOURCE",
    `-I${join(root, "kernels", "include")}`,
    `-I${join(root, "kernels", "cpu")}`,
    src,
    `-L${libDir}`,
    "-lspool",
    `-Wl,-rpath,${libDir}`,
    "-pthread",
    "-lm",
    "-o",
    exe,
  ], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cc} ${basename(src)} failed:\n${r.stderr}`);
  return exe;
}

const CPU_DOTPROD = 16; // SPOOL_CPU_DOTPROD in spool.h

/**
 * Build the library for `target`, then compile and run every C test as a step. With
 * `dotprod` set, a test that prints its "cpu features 0x.." must report that bit so.
 */
async function runTests(
  t: Deno.TestContext,
  target: Target,
  cc: string,
  runner: string[],
  dotprod?: boolean,
) {
  const lib = buildKernels({ target, quiet: true });
  const outDir = join(dirname(lib), "test");
  mkdirSync(outDir, { recursive: true });
  for (const file of cTests) {
    await t.step(file, () => {
      const exe = compileTest(cc, join(testDir, file), lib, outDir);
      const [cmd, ...pre] = runner.length ? runner : [exe];
      const args = runner.length ? [...pre, exe] : [];
      const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 300_000 });
      if (r.status !== 0) {
        console.error(r.stdout, r.stderr);
      }
      assertEquals(
        r.status,
        0,
        `${file} exited with ${r.status ?? r.signal}:\n${
          (r.stdout ?? "").split("\n").filter((l) => !l.startsWith("ok")).join("\n")
        }`,
      );
      const feat = /cpu features 0x([0-9a-f]+)/.exec(r.stdout ?? "");
      if (dotprod !== undefined && feat) {
        assertEquals((parseInt(feat[1], 16) & CPU_DOTPROD) !== 0, dotprod, `${file}: ${feat[0]}`);
      }
    });
  }
}

Deno.test({
  name: "kernels/test/*.c natively against the host library (SIMD vs REF)",
  ignore: cTests.length === 0 || !has("cc"),
  async fn(t) {
    await runTests(t, hostTarget(), "cc", []);
    assertEquals(existsSync(libPath(hostTarget())), true);
  },
});

Deno.test({
  name: "kernels/test/*.c under qemu-aarch64 against the linux-arm64 library (NEON+SDOT vs REF)",
  ignore: !crossReady || cTests.length === 0,
  async fn(t) {
    await runTests(t, "linux-arm64", CROSS_CC, [QEMU, "-L", QEMU_SYSROOT], true);
  },
});

Deno.test({
  name: "kernels/test/*.c under qemu-aarch64 -cpu cortex-a53 (armv8.0, no SDOT: NEON vs REF)",
  ignore: !crossReady || cTests.length === 0,
  async fn(t) {
    await runTests(
      t,
      "linux-arm64",
      CROSS_CC,
      [QEMU, "-cpu", "cortex-a53", "-L", QEMU_SYSROOT],
      false,
    );
  },
});
