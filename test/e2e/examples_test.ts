/**
 * Every example runs: examples/generate.ts under Deno and under Bun, on a fixture model,
 * and the two runtimes stream the same text for the same seed.
 */
import { equal, ok } from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { writeSyntheticModel } from "../../runtime/models/synth.ts";

const DIR = fileURLToPath(new URL("../fixtures/e2e/", import.meta.url));
const MODEL = `${DIR}example-olmoe-q8.gguf`;
const EXAMPLE = fileURLToPath(new URL("../../examples/generate.ts", import.meta.url));
const BUN = fileURLToPath(new URL("../../node_modules/.bin/bun", import.meta.url));

async function run(cmd: string, args: string[]) {
  const r = await new Deno.Command(cmd, { args }).output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout),
    err: new TextDecoder().decode(r.stderr),
  };
}

Deno.test("examples/generate.ts streams a reply under Deno and Bun, identically", async () => {
  if (!existsSync(MODEL)) {
    mkdirSync(DIR, { recursive: true });
    writeSyntheticModel(MODEL, { arch: "olmoe", preset: "tiny", types: "Q8_0", seed: 3 });
  }
  const deno = await run(Deno.execPath(), ["run", "-A", EXAMPLE, MODEL, "Hello"]);
  equal(deno.code, 0, deno.err);
  ok(/olmoe: 2 layers/.test(deno.err), deno.err);
  ok(/\[\d+ tokens, [\d.]+ tok\/s, finish: (length|stop)\]/.test(deno.err), deno.err);
  const bun = await run(BUN, [EXAMPLE, MODEL, "Hello"]);
  equal(bun.code, 0, bun.err);
  equal(bun.out, deno.out);
});
