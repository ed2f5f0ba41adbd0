/**
 * Every example runs: examples/generate.ts under Deno and under Bun, on a fixture model (the
 * two runtimes stream the same text for the same seed); examples/server_opencode.sh
 * (server, OpenCode config, a streamed reply); examples/batch.sh (a batch job to the end).
 * examples/compiled_binary.sh is run by test/ship/examples_test.ts.
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

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("examples/server_opencode.sh serves, writes the OpenCode config, streams a reply", async () => {
  const { serverModel } = await import("../server/_fixture.ts");
  const dir = Deno.makeTempDirSync({ prefix: "spool-oc-" });
  const port = String(20000 + Math.floor(Math.random() * 20000));
  try {
    const r = await new Deno.Command("bash", {
      args: ["examples/server_opencode.sh", serverModel(), port],
      cwd: ROOT,
      env: { OPENCODE_DIR: dir },
    }).output();
    const out = new TextDecoder().decode(r.stdout);
    equal(r.code, 0, out + new TextDecoder().decode(r.stderr));
    ok(/"status":"ok"/.test(out), out);
    ok(/^data: \{.*"chat\.completion\.chunk"/m.test(out), out);
    ok(/"usage":\{"prompt_tokens":\d+/.test(out), out);
    ok(out.includes("data: [DONE]"), out);
    const cfg = JSON.parse(Deno.readTextFileSync(`${dir}/opencode.json`));
    equal(cfg.provider.spool.options.baseURL, `http://127.0.0.1:${port}/v1`);
    equal(cfg.model, "spool/local-model");
    equal(cfg.provider.spool.npm, "@ai-sdk/openai-compatible");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("examples/batch.sh runs the batch file to completion, one answer per request", async () => {
  const { serverModel } = await import("../server/_fixture.ts");
  const dir = Deno.makeTempDirSync({ prefix: "spool-batch-ex-" });
  try {
    const out = `${dir}/results.jsonl`;
    const r = await new Deno.Command("bash", {
      args: ["examples/batch.sh", serverModel(), out],
      cwd: ROOT,
      env: { CI: "1" },
    }).output();
    const text = new TextDecoder().decode(r.stdout);
    const err = new TextDecoder().decode(r.stderr);
    equal(r.code, 0, text + err);
    ok(/batch size B = 4/.test(err), err);
    const lines = Deno.readTextFileSync(out).trim().split("\n").map((l) => JSON.parse(l));
    equal(lines.length, 4);
    equal(lines.map((l) => l.custom_id).join(","), "greet-1,greet-2,greet-3,greet-4");
    for (const l of lines) equal(l.response.status_code, 200);
    for (const id of ["greet-1", "greet-2", "greet-3", "greet-4"]) {
      ok(text.includes(`${id}: "`), text);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
