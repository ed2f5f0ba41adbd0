/**
 * Batched greedy answers do not depend on which requests shared a step. The scheduler runs
 * the same requests (prompts with a common prefix, so slots reuse each other's KV entries)
 * under different compositions, and every request's greedy tokens must equal those of a
 * one-at-a-time run:
 * - 4 slots, everything queued at once;
 * - 4 slots, each new request submitted 0–3 steps after a completion (as a batch worker's
 *   lease and commit round trips delay it), for several seeds;
 * - a resumed job after a kill at several points: a fresh scheduler (empty slots) given only
 *   the requests not yet done, some in another order;
 * - 3 slots (a smaller B, as a resumed run plans when fewer requests are left).
 * This is the in-process form of test/batch/crash_test.ts's question (kill and resume at
 * --parallel 4), with the admission schedule under the test's control.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadModel, type SpoolModel } from "../../runtime/api.ts";
import { Scheduler, type SeqEvent } from "../../runtime/engine/scheduler.ts";
import { ensureSyntheticModel } from "../../runtime/models/synth.ts";

const DIR = fileURLToPath(new URL("../fixtures/batch/", import.meta.url));

function fixture(): string {
  return ensureSyntheticModel(`${DIR}qwen3moe-q8-composition.gguf`, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 41,
    dims: { nLayer: 3, nExpert: 16, nExpertUsed: 4 },
  });
}

const N = 16;
const NEW = 10;

/** Prompts sharing a 12-token prefix, then 3 to 14 tokens of their own. */
function prompts(nVocab: number): number[][] {
  let x = 99;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % (nVocab - 8) + 4;
  const prefix = Array.from({ length: 12 }, rnd);
  return Array.from({ length: N }, (_, i) => [
    ...prefix,
    ...Array.from({ length: 3 + (i * 5) % 12 }, rnd),
  ]);
}

/**
 * Run `ids` through a scheduler of `parallel` slots, keeping `parallel` requests submitted;
 * after each completion the next request is submitted `delay()` steps later. Returns each
 * request's greedy tokens.
 */
function run(
  m: SpoolModel,
  ps: number[][],
  ids: number[],
  parallel: number,
  delay: () => number,
): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const events: SeqEvent[] = [];
  const s = new Scheduler({ createSession: (o) => m.createSession(o), tokenizer: m.tokenizer }, {
    parallel,
    nCtx: 64,
    onEvent: (e) => events.push(e),
  });
  const todo = [...ids];
  const timers: number[] = [];
  for (let i = 0; i < Math.min(parallel, todo.length); i++) timers.push(delay());
  let done = 0;
  try {
    for (let guard = 0; done < ids.length; guard++) {
      if (guard > 10_000) throw new Error("the scheduler made no progress");
      for (let i = timers.length - 1; i >= 0; i--) {
        if (timers[i]-- > 0) continue;
        timers.splice(i, 1);
        const id = todo.shift()!;
        out.set(id, []);
        s.submit({
          id: String(id),
          prompt: ps[id],
          params: { temperature: 0, maxTokens: NEW, ignoreEos: true },
        });
      }
      s.step();
      for (const e of events.splice(0)) {
        if (e.type === "token" && e.token >= 0) out.get(Number(e.id))!.push(e.token);
        if (e.type === "error") throw new Error(`request ${e.id}: ${e.message}`);
        if (e.type === "done") {
          done++;
          if (todo.length > timers.length) timers.push(delay());
        }
      }
    }
    last = s.stats();
  } finally {
    s.close();
  }
  return out;
}

/** The scheduler counters of the latest {@link run}. */
let last: ReturnType<Scheduler["stats"]> | null = null;

Deno.test({
  name: "scheduler: greedy answers equal one-at-a-time whatever shares a step (4 slots, resumes)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn() {
    const m = loadModel(fixture(), { threads: 2, nCtx: 64 });
    try {
      const ps = prompts(m.config.nVocab);
      const all = Array.from({ length: N }, (_, i) => i);
      const ref = run(m, ps, all, 1, () => 0);
      for (const i of all) equal(ref.get(i)!.length, NEW);
      const check = (what: string, got: Map<number, number[]>, ids: number[]) => {
        for (const i of ids) deepStrictEqual(got.get(i), ref.get(i), `${what}: request ${i}`);
      };
      check("4 slots, all queued", run(m, ps, all, 4, () => 0), all);
      // the compositions are real: several sequences per step, prefixes reused across slots
      ok(last!.stepSequences / last!.steps > 3, `mean batch ${last!.stepSequences / last!.steps}`);
      ok(last!.promptTokensCached > 0);
      for (const seed of [1, 2, 3]) {
        let x = seed;
        const d = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % 4;
        check(`4 slots, delays seed ${seed}`, run(m, ps, all, 4, d), all);
      }
      for (const k of [3, 7, 11]) {
        const rest = all.slice(k);
        check(`resumed after ${k}`, run(m, ps, rest, 4, () => 0), rest);
        const rev = [...rest].reverse();
        check(`resumed after ${k}, reversed`, run(m, ps, rev, 4, () => 1), rev);
      }
      check("3 slots", run(m, ps, all, 3, () => 0), all);
    } finally {
      m.close();
    }
  },
});
