/**
 * Child process of the capped test: load MODEL (with an expert cache of BYTES when > 0),
 * generate N greedy tokens after PROMPT, and print one JSON line with the tokens and the
 * cache statistics. Usage: deno run -A _greedy_child.ts MODEL BYTES N PROMPT
 */
import process from "node:process";
import { loadModel } from "../../runtime/api.ts";
import { Session } from "../../runtime/engine/session.ts";

const [path, bytes, n, prompt] = process.argv.slice(2);
const cache = Number(bytes);
const sm = loadModel(path, { threads: 2, ...(cache > 0 ? { expertCache: cache } : {}) });
const s = new Session(sm.model, { nCtx: 256, batch: 16 });
let logits = s.eval(sm.tokenize(prompt));
const tokens: number[] = [];
for (let i = 0; i < Number(n); i++) {
  let best = 0;
  for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
  tokens.push(best);
  logits = s.eval([best]);
}
const st = sm.model.expertCache?.snapshot();
s.close();
sm.close();
console.log(JSON.stringify({ tokens, hits: st?.hits ?? 0, misses: st?.misses ?? 0 }));
