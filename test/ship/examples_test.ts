/**
 * examples/compiled_binary.sh runs: it builds the binary for this machine and uses it with
 * nothing else on PATH.
 */
import { equal, match } from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("examples/compiled_binary.sh builds the binary and generates with it", async () => {
  const r = await new Deno.Command("bash", {
    args: ["examples/compiled_binary.sh"],
    cwd: ROOT,
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  const err = new TextDecoder().decode(r.stderr);
  equal(r.code, 0, `${out}\n${err}`);
  match(out, /dist\/spool-linux-(x64|arm64): [\d.]+ MiB .* embedded/);
  match(out, /^spool 0\.1\.0$/m);
  match(out, /spool demo: .*RANDOM weights/);
  match(out, /tokens: (\d+ ){31}\d+\n/);
  match(out, /^Once upon a time/m);
  match(err, /generated 16 at [\d.]+ tok\/s, finish: length/);
  match(out, /kernels extracted to:\n.*\/kernels\/[0-9a-f]{32}\/libspool\.so\n/);
});
