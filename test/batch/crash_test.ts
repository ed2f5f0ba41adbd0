/**
 * `spool batch run` survives kill -9: a 50-request greedy batch is killed at random points
 * five times and restarted after each; the final output has exactly 50 lines, one per
 * custom_id, in input order, and every answer equals the one of an uninterrupted run.
 * Four sequences per step (--parallel 4), so each kill leaves a different set of requests in
 * flight and the resumed runs batch them differently from the uninterrupted run: greedy
 * answers must not depend on which requests shared a step.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureSyntheticModel, sharedVocab } from "../../runtime/models/synth.ts";
import { DatabaseSync } from "node:sqlite";
import { BatchStore } from "../../runtime/batch/store.ts";

const DIR = fileURLToPath(new URL("../fixtures/batch/", import.meta.url));
const MODEL = `${DIR}qwen3moe-q8-qwenvocab.gguf`;
const MAIN = fileURLToPath(new URL("../../cli/main.ts", import.meta.url));

function fixture(): string {
  return ensureSyntheticModel(MODEL, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 31,
    vocab: sharedVocab("ggml-vocab-qwen2.gguf"),
  });
}

const N = 50;

function input(): string {
  const words = ["river", "stone", "copper", "lantern", "orbit", "maple", "signal", "harbor"];
  return Array.from({ length: N }, (_, i) =>
    JSON.stringify({
      custom_id: `job-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "m",
        messages: [{
          role: "user",
          content: `Write about the ${words[i % 8]} number ${i}, ${words[(i * 3) % 8]} too.`,
        }],
        max_tokens: 20,
        temperature: 0,
      },
    })).join("\n") + "\n";
}

function spawn(inFile: string, out: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "batch",
      "run",
      inFile,
      "--model",
      fixture(),
      "--out",
      out,
      "--parallel",
      "4",
      "--threads",
      "2",
      "--quiet",
    ],
    stdout: "null",
    stderr: "piped",
    env: { CI: "1" },
  }).spawn();
}

/** Results saved in a store so far (read-only; the run may be writing). */
function savedNow(db: string): number {
  if (!existsSync(db)) return 0;
  try {
    const d = new DatabaseSync(db);
    try {
      const r = d.prepare("SELECT count(*) AS n FROM requests WHERE state = 'done'").get();
      return Number((r as { n: number }).n);
    } finally {
      d.close();
    }
  } catch {
    return 0; // not created yet
  }
}

/** The parts of a result line that must not depend on interruptions. */
function answer(line: string): unknown {
  const l = JSON.parse(line);
  const b = l.response.body;
  return {
    custom_id: l.custom_id,
    status: l.response.status_code,
    content: b.choices[0].message.content,
    finish: b.choices[0].finish_reason,
    usage: { p: b.usage.prompt_tokens, c: b.usage.completion_tokens },
  };
}

/**
 * Which answers differ from the uninterrupted run's, where their text parts, and whether a
 * differing answer is another request's (results attributed to the wrong custom_id) rather
 * than a numeric divergence of its own.
 */
function diverged(got: string[], want: string[]): string {
  const text = (l: string) => JSON.parse(l).response.body.choices[0].message.content as string;
  const wanted = want.map(text);
  const out: string[] = [];
  for (let i = 0; i < got.length; i++) {
    const g = text(got[i]), w = wanted[i];
    if (g === w) continue;
    let at = 0;
    while (at < g.length && g[at] === w[at]) at++;
    const other = wanted.findIndex((x, j) => j !== i && x === g);
    out.push(
      `job-${i}: differs from character ${at}` +
        (other >= 0 ? `; it is job-${other}'s answer` : ""),
    );
  }
  return `answers differ from the uninterrupted run's:\n${out.join("\n")}`;
}

Deno.test({
  name: "batch run: killed with SIGKILL five times, resumed, output complete and exact",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = mkdtempSync(join(tmpdir(), "spool-crash-"));
    try {
      const inFile = join(dir, "in.jsonl");
      writeFileSync(inFile, input());
      // the uninterrupted run
      const ref = await spawn(inFile, join(dir, "ref.jsonl")).output();
      equal(ref.code, 0, new TextDecoder().decode(ref.stderr));
      const want = readFileSync(join(dir, "ref.jsonl"), "utf8").trim().split("\n");
      equal(want.length, N);
      // five kills at pseudo-random points, each after the run has saved something
      const out = join(dir, "out.jsonl");
      let x = 12345;
      const saved: number[] = [];
      for (let k = 0; k < 5; k++) {
        x = (x * 1103515245 + 12345) >>> 0;
        const child = spawn(inFile, out);
        // once this run has saved something (start-up time depends on the machine's load),
        // at a pseudo-random point after that
        const before = saved.at(-1) ?? 0;
        for (let i = 0; i < 600 && savedNow(`${out}.db`) <= before; i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, x % 1500));
        try {
          child.kill("SIGKILL");
        } catch { /* already finished */ }
        await child.output();
        if (existsSync(`${out}.db`)) {
          const s = BatchStore.open(`${out}.db`);
          const b = s.listBatches("openai").data[0];
          saved.push(b ? b.request_counts.completed : 0);
          s.close();
        } else saved.push(0);
      }
      ok(saved.some((n) => n > 0 && n < N), `kills landed mid-run: saved ${saved.join(", ")}`);
      for (let i = 1; i < saved.length; i++) ok(saved[i] >= saved[i - 1], "nothing saved is lost");
      // the final run completes it
      const fin = await spawn(inFile, out).output();
      equal(fin.code, 0, new TextDecoder().decode(fin.stderr));
      const got = readFileSync(out, "utf8").trim().split("\n");
      equal(got.length, N);
      deepStrictEqual(
        got.map((l) => JSON.parse(l).custom_id),
        Array.from({ length: N }, (_, i) => `job-${i}`),
      );
      deepStrictEqual(got.map(answer), want.map(answer), diverged(got, want));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
