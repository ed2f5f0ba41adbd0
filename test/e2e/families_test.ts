/**
 * The newer families (glm4moe, minimax-m2, deepseek2) through the rest of the engine: the
 * expert cache at a third of the experts (prefetch forced on, so the next-MoE-layer
 * predictor runs past dense layers), batched steps (evalMany) and a hot-expert profile give
 * exactly the mapped single-sequence results, bit for bit.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Model } from "../../runtime/engine/model.ts";
import { Session } from "../../runtime/engine/session.ts";
import { ExpertCache } from "../../runtime/experts/cache.ts";
import { loadProfile } from "../../runtime/experts/profile.ts";
import { identityOfGGUF } from "../../runtime/experts/profile.ts";
import { ensureSyntheticModel } from "../../runtime/models/synth.ts";

const DIR = fileURLToPath(new URL("../fixtures/e2e/", import.meta.url));
const PROMPT = [3, 17, 5, 99, 42, 7, 250, 11, 64, 8];

/** Logits of the prompt (every position) and of 6 fed-back greedy steps. */
function run(m: Model): Float32Array[] {
  const s = new Session(m, { nCtx: 64, batch: 4 }); // batch 4: the prompt runs in 3 chunks
  try {
    const out = [s.eval(PROMPT, "all")];
    let next = 1;
    for (let i = 0; i < 6; i++) {
      const l = s.eval([next], "last");
      out.push(l);
      let b = 0;
      for (let j = 1; j < l.length; j++) if (l[j] > l[b]) b = j;
      next = b;
    }
    return out;
  } finally {
    s.close();
  }
}

for (const arch of ["glm4moe", "minimax-m2", "deepseek2"]) {
  Deno.test(`${arch}: expert cache, evalMany and a profile give the mapped logits bit for bit`, () => {
    const path = ensureSyntheticModel(`${DIR}${arch}-q8-16x4.gguf`, {
      arch,
      preset: "tiny",
      types: "Q8_0",
      seed: 5,
      dims: { nLayer: 4, nExpert: 16, nExpertUsed: 4 },
    });
    const mapped = Model.load(path, { threads: 2 });
    const want = run(mapped);
    const moe = mapped.expertLayers.filter((l) => l !== null).length;
    ok(
      moe >= 2 && moe < mapped.config.nLayer || arch === "minimax-m2",
      `${arch}: ${moe} MoE layers`,
    );
    const slot = ExpertCache.forLayers(mapped.expertLayers, 16, { slots: 1 }, { arena: false })
      .slotBytes;
    // batched: two sequences in one step equal each alone
    const a = new Session(mapped, { nCtx: 64 }), b = new Session(mapped, { nCtx: 64 });
    const [la, lb] = Session.evalMany([
      { session: a, tokens: PROMPT },
      { session: b, tokens: PROMPT.slice(0, 4) },
    ]);
    deepStrictEqual(la, want[0].slice((PROMPT.length - 1) * la.length));
    deepStrictEqual(lb, want[0].slice(3 * lb.length, 4 * lb.length));
    a.close();
    b.close();
    mapped.close();
    const dir = Deno.makeTempDirSync();
    try {
      const profile = `${dir}/p.bin`;
      const cached = Model.load(path, {
        threads: 2,
        expertCache: Math.ceil((moe * 16) / 3) * slot,
        prefetch: "on",
        expertProfile: profile,
      });
      deepStrictEqual(run(cached), want);
      const st = cached.expertCacheStats()!;
      ok(st.misses > 0 && st.hits > 0, `${arch}: hits ${st.hits}, misses ${st.misses}`);
      ok(st.prefetch.mode === "on");
      cached.close();
      const p = loadProfile(profile, identityOfGGUF(cached.gguf));
      const counts = p.counts.flat().reduce((s, c) => s + c, 0);
      // every routed token of every MoE layer: prompt + 6 steps, k = 4 each
      deepStrictEqual(counts, (PROMPT.length + 6) * 4 * moe);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
