/**
 * End to end: load a fixture model, generate through the library and the CLI, and check the
 * behaviour users rely on — greedy output equals the argmax chain of the raw logits, seeds
 * reproduce, stop strings and max tokens end generation, prompts reuse the cached prefix, a
 * prompt longer than the context is an error, and `spool run` / `spool eval` print the same.
 */
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadModel } from "../../runtime/api.ts";
import { ContextOverflowError, Session } from "../../runtime/engine/session.ts";
import type { GeneratedToken, GenerationResult } from "../../runtime/engine/generate.ts";
import { ensureSyntheticModel, sharedVocab } from "../../runtime/models/synth.ts";

const DIR = fileURLToPath(new URL("../fixtures/e2e/", import.meta.url));
const MODEL = `${DIR}qwen3moe-q8-qwenvocab.gguf`;

function fixture(): string {
  return ensureSyntheticModel(MODEL, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 5,
    vocab: sharedVocab("ggml-vocab-qwen2.gguf"),
  });
}

async function collect(
  it: AsyncGenerator<GeneratedToken, GenerationResult>,
): Promise<{ tokens: number[]; text: string; result: GenerationResult }> {
  const tokens: number[] = [];
  let text = "";
  while (true) {
    const r = await it.next();
    if (r.done) return { tokens, text, result: r.value };
    if (r.value.token >= 0) tokens.push(r.value.token);
    text += r.value.text;
  }
}

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name: "generate: greedy equals the argmax chain of Session.eval, text equals decode",
  ...opts,
  async fn() {
    const m = loadModel(fixture(), { threads: 2, nCtx: 128 });
    try {
      const prompt = m.tokenize("The quick brown fox");
      const g = await collect(m.generate("The quick brown fox", { temperature: 0, maxTokens: 12 }));
      const s = new Session(m.model, { nCtx: 128 });
      let logits = s.eval(prompt);
      const chain: number[] = [];
      for (let i = 0; i < 12; i++) {
        let best = 0;
        for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
        chain.push(best);
        if (m.tokenizer.isEog(best)) break;
        logits = s.eval([best]);
      }
      s.close();
      deepStrictEqual(g.tokens, chain);
      equal(g.text, m.detokenize(g.tokens));
      equal(g.result.completionTokens, g.tokens.length);
    } finally {
      m.close();
    }
  },
});

Deno.test({
  name: "generate: same seed, same tokens; other seed, other tokens; prefix cache reused",
  ...opts,
  async fn() {
    const m = loadModel(fixture(), { threads: 2, nCtx: 128 });
    try {
      const o = { temperature: 1, topK: 0, topP: 1, minP: 0, maxTokens: 16 };
      const a = await collect(m.generate("Once upon a time", { ...o, seed: 7 }));
      const b = await collect(m.generate("Once upon a time", { ...o, seed: 7 }));
      const c = await collect(m.generate("Once upon a time", { ...o, seed: 8 }));
      deepStrictEqual(a.tokens, b.tokens);
      ok(a.tokens.join() !== c.tokens.join(), "a different seed should change the sample");
      const n = m.tokenize("Once upon a time").length;
      // the default session still holds the previous prompt: all but the last token reused
      equal(b.result.cachedTokens, n - 1);
      equal(a.result.promptTokens, n);
    } finally {
      m.close();
    }
  },
});

Deno.test({
  name: "generate: stop strings end the output before the match; maxTokens gives 'length'",
  ...opts,
  async fn() {
    const m = loadModel(fixture(), { threads: 2, nCtx: 128 });
    try {
      const full = await collect(m.generate("Hello", { temperature: 0, maxTokens: 20 }));
      equal(full.result.finishReason, "length");
      equal(full.tokens.length, 20);
      // pick a stop string from the middle of the greedy output
      const text = full.text;
      const at = Math.floor(text.length / 2);
      const stop = text.slice(at, at + 2);
      ok(stop.length === 2, "greedy output too short for the test");
      const cut = await collect(
        m.generate("Hello", { temperature: 0, maxTokens: 20, stop: [stop] }),
      );
      equal(cut.result.finishReason, "stop");
      equal(cut.result.stop, stop);
      equal(cut.text, text.slice(0, text.indexOf(stop)));
    } finally {
      m.close();
    }
  },
});

Deno.test({
  name: "session: a prompt longer than the context is a ContextOverflowError, nothing evaluated",
  ...opts,
  fn() {
    const m = loadModel(fixture(), { threads: 2 });
    try {
      const s = m.createSession({ nCtx: 8 });
      throws(() => s.eval([1, 2, 3, 4, 5, 6, 7, 8, 9]), ContextOverflowError);
      equal(s.position, 0);
      s.eval([1, 2, 3]);
      throws(
        () => s.eval([1, 2, 3, 4, 5, 6]),
        /Context overflow: 9 tokens do not fit the context of 8/,
      );
      equal(s.position, 3);
      throws(() => s.eval([m.config.nVocab]), RangeError);
      s.close();
    } finally {
      m.close();
    }
  },
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const main = fileURLToPath(new URL("../../cli/main.ts", import.meta.url));
  const r = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", main, ...args] })
    .output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout),
    err: new TextDecoder().decode(r.stderr),
  };
}

Deno.test({
  name: "cli: spool run prints the library's greedy text; spool eval matches Session logits",
  ...opts,
  async fn() {
    const path = fixture();
    const m = loadModel(path, { threads: 2, nCtx: 128 });
    let expected: string, top: number[];
    try {
      expected = (await collect(m.generate("Hi there", { temperature: 0, maxTokens: 8 }))).text;
      const s = m.createSession();
      const logits = s.eval(m.tokenize("Hi there"), "last");
      s.close();
      top = [...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, 3);
    } finally {
      m.close();
    }
    const run = await cli(["run", path, "-p", "Hi there", "-n", "8", "--temp", "0"]);
    equal(run.code, 0, run.err);
    equal(run.out, "Hi there" + expected + "\n");
    ok(/generated 8 at [\d.]+ tok\/s, finish: length/.test(run.err), run.err);
    const ev = await cli(["eval", path, "--prompt", "Hi there", "--top", "3", "--json"]);
    equal(ev.code, 0, ev.err);
    const j = JSON.parse(ev.out) as { tokens: number[]; positions: { top: number[][] }[] };
    deepStrictEqual(j.positions.at(-1)!.top.map(([id]) => id), top);
    equal(j.positions.length, j.tokens.length);
    // a budget below what the dense weights need: a clear error stating the minimum
    const tight = await cli(["run", path, "-p", "Hi there", "-n", "8", "--ram-budget", "1K"]);
    equal(tight.code, 1);
    ok(/--ram-budget 1024 B is below .* the minimum is [\d.]+ MiB/.test(tight.err), tight.err);
    ok(/hint: give a larger --ram-budget/.test(tight.err), tight.err);
    // "auto" maps a model that fits, with the same output
    const auto = await cli([
      "run",
      path,
      "-p",
      "Hi there",
      "-n",
      "8",
      "--temp",
      "0",
      "--ram-budget",
      "auto",
    ]);
    equal(auto.code, 0, auto.err);
    equal(auto.out, run.out);
    const bad = await cli(["run", "/nonexistent.gguf", "-p", "x"]);
    equal(bad.code, 1);
    ok(/hint:/.test(bad.err) && !/\n\s+at /.test(bad.err), bad.err);
  },
});
