/**
 * spool's gated DeltaNet ops against ggml's own CPU ops (the oracle llama.cpp runs for
 * qwen35moe / qwen3next): test/kernels/deltanet_ggml.c, compiled at test time against the
 * prebuilt libggml-base and libggml-cpu that node-llama-cpp ships (the AVX2 variant llama.cpp
 * would load here, or the baseline one) and the ggml headers of the llama.cpp source it
 * bundles (checked out of node_modules/node-llama-cpp/llama/gitRelease.bundle into a temp
 * directory). Nothing of llama.cpp is built. Skipped, with the reason, off linux-x64 or where
 * cc, git or those files are missing.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { buildKernels } from "../../kernels/build.ts";
import { native } from "../../ffi/mod.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bins = join(root, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");
const bundle = join(root, "node_modules/node-llama-cpp/llama/gitRelease.bundle");
const AVX2_FMA_F16C = 1 | 2 | 4; // SPOOL_CPU_AVX2 | FMA | F16C

function has(cmd: string): boolean {
  try {
    return spawnSync(cmd, ["--version"], { stdio: "ignore" }).status === 0;
  } catch {
    return false;
  }
}

const missing = [
  process.platform === "linux" && process.arch === "x64" ? "" : "linux-x64",
  has("cc") ? "" : "cc",
  has("git") ? "" : "git",
  existsSync(join(bins, "libggml-base.so")) ? "" : bins,
  existsSync(bundle) ? "" : bundle,
].filter(Boolean);
if (missing.length) console.warn(`deltanet_ggml_test: skipped, missing ${missing.join(", ")}`);

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

Deno.test({
  name: "deltanet ops against ggml's ssm_conv, gated_delta_net, l2 and gated norm, gates",
  ignore: missing.length > 0,
  fn() {
    const lib = buildKernels({ quiet: true });
    const tmp = mkdtempSync(join(tmpdir(), "spool-ggml-"));
    try {
      const src = join(tmp, "llama");
      run("git", ["clone", "-q", "--no-checkout", bundle, src]);
      run("git", ["-C", src, "checkout", "-q", "HEAD", "--", "ggml/include"]);
      const simd = (native().sym.spool_cpu_features() & AVX2_FMA_F16C) === AVX2_FMA_F16C;
      const cpu = join(bins, simd ? "libggml-cpu-haswell.so" : "libggml-cpu-x64.so");
      const exe = join(tmp, "deltanet_ggml");
      run("cc", [
        "-std=c11",
        "-O2",
        "-D_GNU_SOURCE",
        `-I${join(src, "ggml/include")}`,
        `-I${join(root, "kernels/include")}`,
        `-I${join(root, "kernels/test")}`,
        join(root, "test/kernels/deltanet_ggml.c"),
        `-L${dirname(lib)}`,
        "-lspool",
        `-Wl,-rpath,${dirname(lib)}`,
        cpu,
        join(bins, "libggml-base.so"),
        `-Wl,-rpath,${bins}`,
        "-lm",
        "-pthread",
        "-o",
        exe,
      ]);
      const r = spawnSync(exe, [], { encoding: "utf8", timeout: 120_000 });
      if (Deno.env.get("SPOOL_TEST_VERBOSE")) console.log(r.stdout);
      const lines = (r.stdout ?? "").split("\n").filter((l) => /^(ok|FAIL) /.test(l));
      assertEquals(
        r.status,
        0,
        `deltanet_ggml exited ${r.status ?? r.signal}:\n${r.stdout}${r.stderr}`,
      );
      assert(lines.length >= 24, `expected every comparison, got ${lines.length}`);
      assert(lines.every((l) => l.startsWith("ok")), lines.join("\n"));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
});
