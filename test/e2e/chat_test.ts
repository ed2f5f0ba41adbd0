/**
 * `spool chat` as a person uses it: lines on standard input, replies streamed, history kept
 * across turns (the second turn's prompt holds the first exchange, so the reply differs
 * from a fresh conversation with the same line), /reset clears it; `spool bench` reports
 * numbers.
 */
import { equal, notEqual, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ensureSyntheticModel, sharedVocab } from "../../runtime/models/synth.ts";

const DIR = fileURLToPath(new URL("../fixtures/e2e/", import.meta.url));
const MODEL = `${DIR}qwen3moe-q8-qwenvocab.gguf`;
const MAIN = fileURLToPath(new URL("../../cli/main.ts", import.meta.url));

function fixture(): string {
  return ensureSyntheticModel(MODEL, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 5,
    vocab: sharedVocab("ggml-vocab-qwen2.gguf"),
  });
}

async function chat(lines: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "chat", fixture(), "--temp", "0", "-n", "6", "--ctx", "512"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(lines.join("\n") + "\n"));
  await w.close();
  const r = await child.output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout),
    err: new TextDecoder().decode(r.stderr),
  };
}

Deno.test("chat: replies per line, history carried between turns, /reset clears it", async () => {
  const a = await chat(["hello", "hello", "/exit"]);
  equal(a.code, 0, a.err);
  const replies = a.out.split("\n").filter((l) => l.length > 0);
  equal(replies.length, 2, a.out);
  // the second "hello" sees the first exchange, so greedy output differs
  notEqual(replies[0], replies[1]);
  equal((a.err.match(/generated \d+ at/g) ?? []).length, 2, a.err);
  // with /reset the second turn starts afresh and repeats the first reply exactly
  const b = await chat(["hello", "/reset", "hello"]);
  const rb = b.out.split("\n").filter((l) => l.length > 0);
  equal(rb.length, 2, b.out);
  equal(rb[0], replies[0]);
  equal(rb[1], rb[0]);
  ok(/history cleared/.test(b.err));
});

Deno.test("bench: prints prefill and decode tok/s as numbers", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "bench",
      fixture(),
      "--prefill",
      "16",
      "--decode",
      "8",
      "--reps",
      "2",
      "--json",
    ],
  }).output();
  equal(r.code, 0, new TextDecoder().decode(r.stderr));
  const j = JSON.parse(new TextDecoder().decode(r.stdout));
  equal(j.runs.length, 2);
  ok(j.prefillTokS > 0 && Number.isFinite(j.prefillTokS));
  ok(j.decodeTokS > 0 && Number.isFinite(j.decodeTokS));
});
