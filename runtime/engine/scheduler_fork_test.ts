/**
 * Fork groups in the scheduler: n requests of one prompt evaluate it once (the followers get
 * a copy of the leader's KV) and answer exactly as independent runs would (greedy and
 * seeded); a group with a cancelled member, a leader cancelled mid-prefill, and a group
 * larger than the slots all still answer every member.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { loadModel, type SpoolModel } from "../api.ts";
import { schedulerFixture } from "./_scheduler_fixture.ts";
import { Scheduler, type SeqEvent, type SeqParams } from "./scheduler.ts";

interface Req {
  id: string;
  params: SeqParams;
}

/** Runs `reqs` on one prompt through a scheduler; returns tokens per id, events, stats. */
function run(
  m: SpoolModel,
  prompt: number[],
  reqs: Req[],
  opts: { parallel: number; chunk?: number; cancelAfter?: { id: string; steps: number } },
) {
  const events: SeqEvent[] = [];
  const s = new Scheduler({ createSession: (o) => m.createSession(o), tokenizer: m.tokenizer }, {
    parallel: opts.parallel,
    nCtx: 64,
    chunk: opts.chunk,
    onEvent: (e) => events.push(e),
  });
  const tokens = new Map<string, number[]>(reqs.map((r) => [r.id, []]));
  const started = new Map<string, number>();
  const finish = new Map<string, string>();
  try {
    for (const r of reqs) s.submit({ id: r.id, prompt, params: r.params });
    for (let step = 0; finish.size < reqs.length; step++) {
      if (step > 500) throw new Error("the scheduler made no progress");
      if (opts.cancelAfter && step === opts.cancelAfter.steps) s.cancel(opts.cancelAfter.id);
      s.step();
      for (const e of events.splice(0)) {
        if (e.type === "started") started.set(e.id, e.cachedTokens);
        if (e.type === "token" && e.token >= 0) tokens.get(e.id)!.push(e.token);
        if (e.type === "done") finish.set(e.id, e.finishReason);
        if (e.type === "error") throw new Error(`${e.id}: ${e.message}`);
      }
    }
    return { tokens, started, finish, stats: s.stats() };
  } finally {
    s.close();
  }
}

Deno.test({
  name: "scheduler forks: one prefill, answers equal to independent runs, edge cases",
  sanitizeResources: false,
  sanitizeOps: false,
  fn() {
    const m = loadModel(
      schedulerFixture(),
      { threads: 2, nCtx: 64 },
    );
    try {
      const nVocab = m.config.nVocab;
      const prompt = Array.from({ length: 21 }, (_, i) => 4 + ((i * 37) % (nVocab - 8)));
      const base = { maxTokens: 6, ignoreEos: true };
      const params = (seed: number): SeqParams => ({ ...base, temperature: 1, seed });
      const group = (size: number) => ({ group: "g", size });
      // references: each request alone on a fresh scheduler
      const alone = (p: SeqParams) => run(m, prompt, [{ id: "x", params: p }], { parallel: 1 });
      const greedy = alone({ ...base, temperature: 0 }).tokens.get("x")!;
      const seeded = [5, 6, 7].map((s) => alone(params(s)).tokens.get("x")!);

      // a group of 3: the prompt evaluated once, followers start with it all cached
      const g = run(
        m,
        prompt,
        [5, 6, 7].map((s, i) => ({
          id: `s${i}`,
          params: { ...params(s), fork: group(3) },
        })),
        { parallel: 3 },
      );
      equal(g.stats.promptTokensEvaluated, prompt.length);
      deepStrictEqual([...g.started.values()], [0, prompt.length, prompt.length]);
      for (let i = 0; i < 3; i++) deepStrictEqual(g.tokens.get(`s${i}`), seeded[i], `sample ${i}`);
      const gg = run(
        m,
        prompt,
        ["a", "b"].map((id) => ({
          id,
          params: { ...base, temperature: 0, fork: group(2) },
        })),
        { parallel: 2 },
      );
      deepStrictEqual(gg.tokens.get("a"), greedy);
      deepStrictEqual(gg.tokens.get("b"), greedy);

      // the leader cancelled mid-prefill: the followers evaluate the prompt themselves
      const lc = run(
        m,
        prompt,
        ["a", "b", "c"].map((id) => ({
          id,
          params: { ...base, temperature: 0, fork: group(3) },
        })),
        { parallel: 3, chunk: 4, cancelAfter: { id: "a", steps: 2 } },
      );
      equal(lc.finish.get("a"), "abort");
      deepStrictEqual(lc.tokens.get("b"), greedy);
      deepStrictEqual(lc.tokens.get("c"), greedy);

      // a member cancelled while queued (the group never completes): the others run alone
      const s = new Scheduler({
        createSession: (o) => m.createSession(o),
        tokenizer: m.tokenizer,
      }, { parallel: 3, nCtx: 64, onEvent: (e) => events.push(e) });
      const events: SeqEvent[] = [];
      try {
        const fork = group(3);
        s.submit({ id: "p", prompt, params: { ...base, temperature: 0, fork } });
        s.submit({ id: "q", prompt, params: { ...base, temperature: 0, fork } });
        s.cancel("q");
        const got: number[] = [];
        let done = false;
        for (let step = 0; !done && step < 100; step++) {
          s.step();
          for (const e of events.splice(0)) {
            if (e.type === "token" && e.id === "p" && e.token >= 0) got.push(e.token);
            if (e.type === "done" && e.id === "p") done = true;
          }
        }
        ok(done, "the group's other member never ran");
        deepStrictEqual(got, greedy);
      } finally {
        s.close();
      }

      // a group larger than the slots runs as independent requests
      const big = run(
        m,
        prompt,
        ["a", "b", "c"].map((id) => ({
          id,
          params: { ...base, temperature: 0, fork: group(3) },
        })),
        { parallel: 2 },
      );
      for (const id of ["a", "b", "c"]) deepStrictEqual(big.tokens.get(id), greedy, id);
    } finally {
      m.close();
    }
  },
});
