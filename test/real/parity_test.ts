/**
 * Real trained weights against llama.cpp: SmolLM2-135M-Instruct (Q4_1) written by `spool
 * moefy --experts 8` (router zero, all 8 experts used, down scales ×8) runs in spool and must
 * give what llama.cpp (node-llama-cpp, plain attention path, 2 threads) gives on the ORIGINAL
 * dense file, at every position of real prompts tokenized with the model's own tokenizer,
 * and the same 64 greedy tokens. Then the same through the expert cache at a third of the
 * experts, and spool's tokenizer against llama.cpp's on varied text. Skipped (with the
 * reason) when PyPI cannot be reached.
 *
 * The bound. The MoE form is exact up to the f32 order of one sum (Σ over experts instead of
 * one dot over n_ff), and spool's Q4_1 × Q8_1 products are ggml's: on the same MoE file,
 * spool's logits equal llama.cpp's bit for bit at the first positions. But this trained model
 * amplifies a 1-ulp difference: llama.cpp on the MoE file against llama.cpp on the dense file
 * (the same arithmetic but for that sum order) already differs by NMSE ~1e-3 per position
 * (median 4e-4..1.4e-3, worst position up to 1.2e-2 on these prompts): f16 roundings of q,
 * K, V and the probabilities turn a 1-ulp change into a flipped f16 value, and this model's
 * large activations make that visible. spool against dense llama.cpp is held to that floor:
 * median NMSE over positions ≤ {@link MEDIAN}, worst ≤ {@link WORST} (measured: median
 * 5e-4..1.4e-3, worst 2.1e-2), with llama.cpp's own MoE-vs-dense numbers printed beside.
 * Greedy: 64 steps, teacher-forced (llama.cpp evaluates the prompt plus spool's tokens); at
 * every step spool's token must be llama.cpp's argmax, except at most {@link MAX_TIES} near
 * ties (top two within {@link TIE}). llama.cpp's MoE form against its dense form disagrees
 * at 1 or 2 of the 64 steps of these prompts too, so "all 64 equal" is not a property of
 * the arithmetic here, only of luck.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { loadModel, type SpoolModel } from "../../runtime/api.ts";
import type { Model } from "../../runtime/engine/model.ts";
import { Session } from "../../runtime/engine/session.ts";
import { runLlamaOracle } from "../parity/llama_oracle.ts";
import { skipNote, smolLM2 } from "./_smollm2.ts";

const MEDIAN = 5e-3;
const WORST = 5e-2;
const STEPS = 64;
/** Logit margin under which llama.cpp's top two count as tied. */
const TIE = 0.25;
/**
 * Near-tie disagreements allowed per prompt over the 64 steps: at most 2 against an AVX-512
 * llama.cpp; an AVX2-only host's llama.cpp sums in other orders and gave 4 on the code prompt
 * (margins 0.039–0.16, every one inside {@link TIE}).
 */
const MAX_TIES = 4;

const real = smolLM2();
skipNote("test/real/parity_test.ts", real);
const opts = { ignore: !real.ok, sanitizeResources: false, sanitizeOps: false };

function argmax(a: ArrayLike<number>, from = 0, n = a.length): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (a[from + i] > a[from + best]) best = i;
  return best;
}

function nmse(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return num / den;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** The prompts: plain text, code, and one chat turn rendered with the model's own template. */
function prompts(sm: SpoolModel): { label: string; tokens: number[] }[] {
  return [
    { label: "prose", tokens: sm.tokenize("The capital of France is Paris. It is known for") },
    {
      label: "code",
      tokens: sm.tokenize('def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'),
    },
    {
      label: "chat",
      tokens: sm.promptTokens([{
        role: "user",
        content: "Explain in two sentences why the sky is blue.",
      }]),
    },
  ];
}

/** spool: logits at every prompt position, then STEPS greedy tokens (one at a time). */
function runSpool(m: Model, prompt: number[]): { logits: Float32Array; generated: number[] } {
  const s = new Session(m, { nCtx: 256, batch: 64 });
  try {
    const V = m.config.nVocab;
    const logits = s.eval(prompt, "all");
    const generated: number[] = [];
    let next = argmax(logits, (prompt.length - 1) * V, V);
    for (let i = 0; i < STEPS; i++) {
      generated.push(next);
      if (i + 1 < STEPS) next = argmax(s.eval([next], "last"));
    }
    return { logits, generated };
  } finally {
    s.close();
  }
}

Deno.test({
  name: "real weights: spool on SmolLM2 as 8 exact experts = llama.cpp on the dense original",
  ...opts,
  async fn(t) {
    if (!real.ok) return;
    const moe = real.moe(8);
    const sm = loadModel(moe, { threads: 2 });
    const model = sm.model;
    try {
      const V = model.config.nVocab;
      const cases = prompts(sm).map((p) => ({ ...p, spool: runSpool(model, p.tokens) }));
      const jobs = cases.flatMap((c) => {
        const tokens = [...c.tokens, ...c.spool.generated.slice(0, -1)];
        return [
          { path: real.dense, tokens, logits: "all" as const, contextSize: 256 },
          { path: moe, tokens, logits: "all" as const, contextSize: 256 },
        ];
      });
      const refs = await runLlamaOracle(jobs);
      for (const [ci, c] of cases.entries()) {
        await t.step(c.label, () => {
          const dense = refs[2 * ci], llamaMoe = refs[2 * ci + 1];
          ok(dense.ok, `llama.cpp on the dense file: ${dense.error}`);
          ok(llamaMoe.ok, `llama.cpp on the MoE file: ${llamaMoe.error}`);
          deepStrictEqual(dense.nVocab, V);
          const n = c.tokens.length;
          const errs: number[] = [], floor: number[] = [];
          for (let p = 0; p < n; p++) {
            const ours = c.spool.logits.subarray(p * V, (p + 1) * V);
            errs.push(nmse(ours, dense.logits![p]));
            floor.push(nmse(llamaMoe.logits![p], dense.logits![p]));
          }
          // greedy, teacher-forced: llama.cpp's argmax after prompt + generated[0..i) must be
          // spool's generated[i], except inside a near tie (TIE), at most MAX_TIES times
          const top = (row: number[]) => argmax(row);
          const ties: string[] = [];
          let floorTies = 0;
          for (let i = 0; i < STEPS; i++) {
            const row = dense.logits![n - 1 + i], ours = c.spool.generated[i];
            if (top(llamaMoe.logits![n - 1 + i]) !== top(row)) floorTies++;
            if (top(row) === ours) continue;
            const margin = row[top(row)] - row[ours];
            ok(
              margin <= TIE,
              `${c.label}: greedy token ${i}: spool ${ours}, llama.cpp ${top(row)} ahead by ` +
                `${margin.toFixed(3)} (> tie bound ${TIE})`,
            );
            ties.push(`step ${i} (margin ${margin.toFixed(3)})`);
          }
          ok(ties.length <= MAX_TIES, `${c.label}: near-tie disagreements ${ties.join(", ")}`);
          const med = median(errs), worst = Math.max(...errs);
          console.log(
            `${c.label}: ${n} positions, NMSE vs dense llama.cpp median ${med.toExponential(2)} ` +
              `worst ${worst.toExponential(2)} (llama.cpp MoE vs dense: median ` +
              `${median(floor).toExponential(2)} worst ${Math.max(...floor).toExponential(2)}); ` +
              `greedy: ${STEPS - ties.length}/${STEPS} steps equal${
                ties.length ? `, near ties at ${ties.join(", ")}` : ""
              } (llama.cpp MoE vs dense: ${floorTies} steps differ)`,
          );
          ok(med <= MEDIAN, `${c.label}: median NMSE ${med} > ${MEDIAN}`);
          ok(worst <= WORST, `${c.label}: worst NMSE ${worst} > ${WORST}`);
        });
      }
    } finally {
      sm.close();
    }
  },
});

Deno.test({
  name: "real weights: the same through the expert cache at a third of the experts",
  ...opts,
  fn() {
    if (!real.ok) return;
    const moe = real.moe(8);
    const mapped = loadModel(moe, { threads: 2 });
    const L = mapped.model.expertLayers[0]!;
    const perExpert = L.gateExps.expertBytes + L.upExps.expertBytes + L.downExps.expertBytes;
    const all = perExpert * mapped.config.nExpert * mapped.config.nLayer;
    const cached = loadModel(moe, { threads: 2, expertCache: Math.floor(all / 3) });
    try {
      for (const p of prompts(mapped)) {
        const a = runSpool(mapped.model, p.tokens), b = runSpool(cached.model, p.tokens);
        deepStrictEqual(b.generated, a.generated, `${p.label}: greedy tokens`);
        deepStrictEqual(new Uint32Array(b.logits.buffer), new Uint32Array(a.logits.buffer));
      }
      const s = cached.model.expertCache!.snapshot();
      ok(s.misses > 0 && s.hits > 0, `hits ${s.hits}, misses ${s.misses}`);
      ok(s.bytesRead >= s.misses * perExpert, "every miss is one expert read");
      console.log(
        `cache of ${(all / 3 / 2 ** 20).toFixed(1)} MiB (a third of ${
          (all / 2 ** 20).toFixed(1)
        } ` +
          `MiB of experts): ${s.hits} hits, ${s.misses} misses, ` +
          `${
            (s.bytesRead / 2 ** 20).toFixed(0)
          } MiB read; logits bit-identical to the mapped model`,
      );
    } finally {
      cached.close();
      mapped.close();
    }
  },
});

Deno.test({
  name: "real weights: spool's tokenizer gives llama.cpp's ids for SmolLM2 (GPT-2 BPE, smollm)",
  ...opts,
  async fn() {
    if (!real.ok) return;
    const texts = [
      "The capital of France is Paris. It is known for",
      'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
      "Numbers 1234567 and 3.14159, dates 2024-12-03; émigrés café naïve — «quotes» 日本語",
      "   leading spaces\ttabs\n\n\nnewlines   trailing   ",
      "I'm sure they've said it's fine: DON'T SHOUT!!! ¿Qué? 🙂 <html><body>x</body></html>",
    ];
    const sm = loadModel(real.moe(8), { threads: 1 });
    try {
      const refs = await runLlamaOracle(
        texts.map((text) => ({ path: real.dense, text, logits: "none" as const })),
      );
      for (const [i, text] of texts.entries()) {
        ok(refs[i].ok, refs[i].error);
        deepStrictEqual(sm.tokenize(text), refs[i].tokens, JSON.stringify(text));
        deepStrictEqual(sm.detokenize(refs[i].tokens!), text, "detokenize round trip");
      }
    } finally {
      sm.close();
    }
  },
});
