/** `spool tokenize`: reproduces the vocab test vectors from a JSON file; flags and usage. */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tokenizeMain } from "./cli.ts";
import { readVectors, vocabPath } from "./_test_helpers.ts";

async function run(args: string[]): Promise<{ rc: number; out: string }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => lines.push(a.map(String).join(" "));
  try {
    const rc = await tokenizeMain(args);
    return { rc, out: lines.join("\n") };
  } finally {
    console.log = orig;
  }
}

Deno.test("tokenize --file: a JSON array of texts gives the vectors' ids (qwen2, llama-spm)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "spool-tok-"));
  try {
    for (const name of ["qwen2", "llama-spm"]) {
      const vectors = readVectors(name);
      const file = join(dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(vectors.map((v) => v.text)));
      const { rc, out } = await run([vocabPath(name), "--file", file]);
      assert.equal(rc, 0);
      assert.deepEqual(JSON.parse(out), vectors.map((v) => v.ids));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("tokenize TEXT: ids on one line, --json, special tokens parsed, --add-special", async () => {
  const q = vocabPath("qwen2");
  assert.deepEqual(await run([q, "Hello world"]), { rc: 0, out: "9707 1879" });
  assert.deepEqual(await run([q, "Hello world", "--json"]), { rc: 0, out: "[9707,1879]" });
  const t = "<|im_start|>hi";
  assert.equal((await run([q, t])).out, "151644 6023");
  assert.notEqual((await run([q, t, "--no-parse-special"])).out.split(" ")[0], "151644");
  assert.equal((await run([vocabPath("llama-spm"), "Hello", "--add-special"])).out, "1 15043");
});

Deno.test("tokenize: bad usage is a UsageError", async () => {
  await assert.rejects(() => tokenizeMain([]), (e: Error) => e.name === "UsageError");
  await assert.rejects(
    () => tokenizeMain([vocabPath("qwen2"), "x", "--file", "y.json"]),
    (e: Error) => e.name === "UsageError",
  );
});
