/**
 * One batch job on a shared PostgreSQL store, run by one worker and then by two (issue
 * "batch jobs across machines"): each worker is a real `spool batch run --store
 * postgres://…` process in its own cgroups — one core (cpuset) and half the memory (memory
 * cgroup, DESIGN.md §7) — standing in for one machine. The store is a throwaway PostgreSQL
 * cluster (the fleet test's helper), each scenario in a fresh database; the model is a
 * small synthetic qwen3moe (bench/out/, regenerated when missing).
 *
 *   deno run -A bench/batch_fleet.ts [--requests 256] [--max-tokens 32] [--parallel 8]
 *                                    [--reps 1] [--experts 32] [--control]
 *
 * Reported per scenario (median over reps, alternating 1 and 2 workers; the spread is
 * min–max): aggregate tok/s (completion tokens of all workers / the wall time from the
 * first worker's start to the last one's end, model load included, and / the slowest
 * worker's own run time, load excluded), expert-cache lookups per step and layer (each
 * lookup is one distinct routed expert a step needs: expert-major, so it is read once for
 * all B sequences; compare B·k one sequence at a time), and the database's share of a
 * step: milliseconds inside store calls (the runner's timed store, `--stats`) over the
 * engine's milliseconds in forward steps. Targets: two workers ≥ 1.8× one; database ≤ 2%.
 * Beside it, "DB server ms": the time PostgreSQL itself spent on those statements (from its
 * log, `log_min_duration_statement = 0`), so the share can be split into the database's work
 * and the rest of a call's wall time (the round trip, and waiting for the worker's one core,
 * which its engine thread keeps busy).
 *
 * `--control` adds, in each rep, the same job on SQLite by one worker and split in halves
 * over two workers with their own stores (nothing shared but the machine): the two-core
 * ceiling of the ratio on this machine.
 *
 * Needs root (cgroups, and PostgreSQL runs as the `postgres` user) and Debian's postgresql.
 * Run it on a quiet machine: the workers have one core each and nothing else may compete.
 *
 * @module
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureSyntheticModel } from "../runtime/models/synth.ts";
import { startPostgres } from "../test/batch/_pg.ts";

const { values: v } = parseArgs({
  options: {
    requests: { type: "string", default: "256" },
    "max-tokens": { type: "string", default: "32" },
    parallel: { type: "string", default: "8" },
    reps: { type: "string", default: "1" },
    experts: { type: "string", default: "32" },
    control: { type: "boolean", default: false },
  },
});
const N = Number(v.requests), MAXT = Number(v["max-tokens"]), B = Number(v.parallel);
const REPS = Math.max(1, Number(v.reps)), NEXP = Number(v.experts);
const K = 4, LAYERS = 4;

const OUT = fileURLToPath(new URL("./out/", import.meta.url));
const MAIN = fileURLToPath(new URL("../cli/main.ts", import.meta.url));

function model(): string {
  return ensureSyntheticModel(join(OUT, `fleet-qwen3moe-e${NEXP}.gguf`), {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed: 17,
    dims: { nLayer: LAYERS, nExpert: NEXP, nExpertUsed: K, nFfExp: 512 },
  });
}

function input(): string {
  const words = ["river", "stone", "copper", "lantern", "orbit", "maple", "signal", "harbor"];
  return Array.from({ length: N }, (_, i) =>
    JSON.stringify({
      custom_id: `req-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "m",
        messages: [{
          role: "user",
          content: `Describe the ${words[i % 8]} ${i} and the ${words[(i * 5 + 3) % 8]} ${i * 7}.`,
        }],
        max_tokens: MAXT,
        temperature: 0,
      },
    })).join("\n") + "\n";
}

// ---- cgroups (v1): one core and half the memory per worker ----

function memoryRoot(): string {
  const line = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) =>
    /:memory:/.test(l)
  );
  if (!line) throw new Error("no cgroup v1 memory controller (see DESIGN.md §7)");
  return `/sys/fs/cgroup/memory${line.split(":")[2]}`.replace(/\/+$/, "");
}

/** Make worker k's groups; returns the shell prefix that moves a process into them. */
function workerGroups(k: number): string {
  const cores = availableParallelism();
  const cpu = `/sys/fs/cgroup/cpuset/spoolfleet_w${k}`;
  mkdirSync(cpu, { recursive: true });
  writeFileSync(`${cpu}/cpuset.cpus`, String(k % cores));
  writeFileSync(`${cpu}/cpuset.mems`, readFileSync("/sys/fs/cgroup/cpuset/cpuset.mems", "utf8"));
  const mem = `${memoryRoot()}/spoolfleet_w${k}`;
  mkdirSync(mem, { recursive: true });
  writeFileSync(`${mem}/memory.limit_in_bytes`, String(Math.floor(totalmem() / 2)));
  return `echo $$ > ${cpu}/tasks; echo $$ > ${mem}/cgroup.procs; `;
}

// ---- one scenario ----

interface WorkerStats {
  workerId: string;
  B: number;
  completionTokens: number;
  wallMs: number;
  store: { calls: number; ms: number; byMethod: Record<string, { calls: number; ms: number }> };
  engine: {
    scheduler: {
      steps: number;
      stepMs: number;
      stepSequences: number;
      tokensGenerated: number;
      promptTokensEvaluated: number;
      admitted: number;
    };
    expertCache: { hits: number; misses: number; bytesRead: number } | null;
  };
}

interface Scenario {
  workers: number;
  wallS: number;
  tokens: number;
  tokPerSec: number;
  /** tokens / the slowest worker's own run time (model load excluded) */
  runTokPerSec: number;
  steps: number;
  meanB: number;
  lookupsPerStepLayer: number;
  readsPerStepLayer: number;
  storeCalls: number;
  storeMs: number;
  stepMs: number;
  dbShare: number;
  perWorkerTokens: number[];
  /** Store milliseconds and calls per method, all workers. */
  byMethod: Record<string, { calls: number; ms: number }>;
  /** Rows (tokens evaluated) per step: prompt chunks and decode tokens. */
  rowsPerStep: number;
  /** Milliseconds PostgreSQL logged for this scenario's statements (all workers). */
  serverMs: number;
}

/** Statement durations PostgreSQL logged for database `db` (log_line_prefix '%d '). */
function serverMs(log: string, db: string): number {
  let ms = 0;
  for (const l of readFileSync(log, "utf8").split("\n")) {
    const m = l.startsWith(db + " ") ? /duration: ([\d.]+) ms/.exec(l) : null;
    if (m) ms += Number(m[1]);
  }
  return ms;
}

/** Have the cluster log every statement's duration, prefixed by its database. */
function logDurations(pg: { psql(sql: string): string }): string {
  const data = pg.psql("SHOW data_directory").trim();
  appendFileSync(
    join(data, "postgresql.conf"),
    "\nlog_min_duration_statement = 0\nlog_line_prefix = '%d '\n",
  );
  pg.psql("SELECT pg_reload_conf()");
  return join(data, "..", "log"); // where test/batch/_pg.ts has pg_ctl write it
}

/**
 * `workers` workers on `url`, all on the whole input; or, with `own`, worker k on its own
 * store `own.urls[k]` and input `own.inputs[k]` (the control: no shared database).
 */
async function scenario(
  workers: number,
  url: string,
  dir: string,
  path: string,
  own?: { urls: string[]; inputs: string[] },
) {
  const tag = `w${workers}_${Math.random().toString(36).slice(2, 8)}`;
  const prefixes = Array.from({ length: workers }, (_, k) => workerGroups(k));
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const t0 = performance.now();
  const procs = prefixes.map((pre, k) => {
    const argv = [
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "batch",
      "run",
      own ? own.inputs[k] : join(dir, "in.jsonl"),
      "--model",
      path,
      "--out",
      join(dir, `${tag}_out${k}.jsonl`),
      "--store",
      own ? own.urls[k] : url,
      "--parallel",
      String(B),
      "--threads",
      "1",
      "--expert-cache",
      "256M",
      "--stats",
      join(dir, `${tag}_stats${k}.json`),
      "--quiet",
    ];
    return new Deno.Command("sh", {
      args: ["-c", pre + "exec " + argv.map(q).join(" ")],
      stdout: "null",
      stderr: "piped",
      env: { CI: "1" },
    }).spawn();
  });
  const outs = await Promise.all(procs.map((p) => p.output()));
  const wallS = (performance.now() - t0) / 1000;
  for (const [k, o] of outs.entries()) {
    if (!o.success) {
      throw new Error(`worker ${k} failed (${o.code}): ${new TextDecoder().decode(o.stderr)}`);
    }
  }
  const st: WorkerStats[] = outs.map((_, k) =>
    JSON.parse(readFileSync(join(dir, `${tag}_stats${k}.json`), "utf8"))
  );
  const sum = (f: (s: WorkerStats) => number) => st.reduce((a, s) => a + f(s), 0);
  const tokens = sum((s) => s.completionTokens);
  const steps = sum((s) => s.engine.scheduler.steps);
  const lookups = sum((s) =>
    (s.engine.expertCache?.hits ?? 0) + (s.engine.expertCache?.misses ?? 0)
  );
  const reads = sum((s) => s.engine.expertCache?.misses ?? 0);
  const storeMs = sum((s) => s.store.ms), stepMs = sum((s) => s.engine.scheduler.stepMs);
  const r: Scenario = {
    workers,
    wallS,
    tokens,
    tokPerSec: tokens / wallS,
    runTokPerSec: tokens / (Math.max(...st.map((s) => s.wallMs)) / 1000),
    steps,
    meanB: sum((s) => s.engine.scheduler.stepSequences) / Math.max(1, steps),
    lookupsPerStepLayer: lookups / Math.max(1, steps) / LAYERS,
    readsPerStepLayer: reads / Math.max(1, steps) / LAYERS,
    storeCalls: sum((s) => s.store.calls),
    storeMs,
    stepMs,
    dbShare: storeMs / Math.max(1e-9, stepMs),
    perWorkerTokens: st.map((s) => s.completionTokens),
    byMethod: {},
    serverMs: 0,
    rowsPerStep:
      sum((s) =>
        s.engine.scheduler.promptTokensEvaluated + s.engine.scheduler.tokensGenerated -
        s.engine.scheduler.admitted
      ) / Math.max(1, steps),
  };
  for (const s of st) {
    for (const [m, t] of Object.entries(s.store.byMethod)) {
      const a = r.byMethod[m] ??= { calls: 0, ms: 0 };
      a.calls += t.calls;
      a.ms += t.ms;
    }
  }
  return r;
}

// ---- report ----

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (x: number, d = 1) => x.toFixed(d);
const spread = (xs: number[], d = 1) =>
  xs.length > 1 ? ` (${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)})` : "";

function table(runs: Scenario[][]): void {
  const rows = [1, 2].map((w) => runs.map((r) => r.find((s) => s.workers === w)!));
  console.log(
    `\n${N} requests × ${MAXT} tokens, B = ${B} per worker, qwen3moe synthetic ` +
      `(${LAYERS} layers, ${NEXP} experts, top-${K}), 1 thread and 1 core per worker, ` +
      `${REPS} rep(s), median (min–max)\n`,
  );
  console.log(
    "| workers | tok/s (wall) | tok/s (run) | steps | mean B | rows/step | experts/step/layer " +
      "(rows·k) | SSD reads/step/layer | store calls | store ms | DB server ms | step ms | " +
      "DB share |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const rs of rows) {
    const g = (f: (s: Scenario) => number) => rs.map(f);
    console.log(
      `| ${rs[0].workers} | ${fmt(median(g((s) => s.tokPerSec)))}${
        spread(g((s) => s.tokPerSec))
      } | ${fmt(median(g((s) => s.runTokPerSec)))}${spread(g((s) => s.runTokPerSec))} | ${
        median(g((s) => s.steps))
      } | ${fmt(median(g((s) => s.meanB)), 2)} | ${fmt(median(g((s) => s.rowsPerStep)), 2)} | ${
        fmt(median(g((s) => s.lookupsPerStepLayer)), 2)
      } (${fmt(median(g((s) => s.rowsPerStep)) * K, 1)}) | ${
        fmt(median(g((s) => s.readsPerStepLayer)), 3)
      } | ${median(g((s) => s.storeCalls))} | ${fmt(median(g((s) => s.storeMs)), 0)} | ${
        fmt(median(g((s) => s.serverMs)), 0)
      } | ${fmt(median(g((s) => s.stepMs)), 0)} | ${fmt(median(g((s) => s.dbShare)) * 100, 2)}%${
        spread(g((s) => s.dbShare * 100), 2)
      } |`,
    );
  }
  const ratio = runs.map((r) =>
    r.find((s) => s.workers === 2)!.tokPerSec / r.find((s) => s.workers === 1)!.tokPerSec
  );
  const ratioRun = runs.map((r) =>
    r.find((s) => s.workers === 2)!.runTokPerSec / r.find((s) => s.workers === 1)!.runTokPerSec
  );
  const share = Math.max(...runs.flat().map((s) => s.dbShare));
  console.log(
    `\ntwo workers / one: ${fmt(median(ratio), 2)}×${spread(ratio, 2)} (wall), ` +
      `${fmt(median(ratioRun), 2)}×${spread(ratioRun, 2)} (run, load excluded); ` +
      `target ≥ 1.8×: ${median(ratio) >= 1.8 ? "met" : "NOT met"} (wall)`,
  );
  console.log(
    `database share of step time, worst scenario: ${fmt(share * 100, 2)}%; target ≤ 2%: ${
      share <= 0.02 ? "met" : "NOT met"
    }`,
  );
  const server = Math.max(...runs.flat().map((s) => s.serverMs / Math.max(1e-9, s.stepMs)));
  console.log(
    `of which PostgreSQL's own work (DB server ms / step ms), worst scenario: ${
      fmt(server * 100, 2)
    }%`,
  );
  for (const r of runs) {
    for (const s of r) {
      const parts = Object.entries(s.byMethod).sort((a, b) => b[1].ms - a[1].ms)
        .map(([m, t]) => `${m} ${t.calls}× ${fmt(t.ms / t.calls, 1)} ms`);
      console.log(`  ${s.workers} worker(s), store calls: ${parts.join(", ")}`);
    }
    const two = r.find((s) => s.workers === 2)!;
    console.log(`  two workers' shares of the tokens: ${two.perWorkerTokens.join(" + ")}`);
  }
}

/**
 * The control: the same job on SQLite, by one worker, and split in two halves run at once by
 * two workers on their own stores (one core each, nothing shared but the machine). Their
 * ratio is what two cores of this machine give two independent workers (the shared L3 cache
 * and memory bandwidth included), the ceiling of the PostgreSQL fleet's scaling here.
 * Returns [one worker tok/s, two workers tok/s].
 */
async function controlPair(rep: number, dir: string, path: string): Promise<number[]> {
  const lines = readFileSync(join(dir, "in.jsonl"), "utf8").trim().split("\n");
  const halves = [lines.filter((_, i) => i % 2 === 0), lines.filter((_, i) => i % 2 === 1)];
  const inputs = halves.map((h, k) => {
    const f = join(dir, `ctl${rep}_half${k}.jsonl`);
    writeFileSync(f, h.join("\n") + "\n");
    return f;
  });
  const one = await scenario(1, "", dir, path, {
    urls: [join(dir, `ctl${rep}_one.sqlite`)],
    inputs: [join(dir, "in.jsonl")],
  });
  const two = await scenario(2, "", dir, path, {
    urls: [0, 1].map((k) => join(dir, `ctl${rep}_own${k}.sqlite`)),
    inputs,
  });
  console.error(
    `rep ${rep + 1}, control (SQLite, nothing shared): 1 worker ${fmt(one.tokPerSec)} tok/s, ` +
      `2 workers on halves ${fmt(two.tokPerSec)} tok/s`,
  );
  return [one.tokPerSec, two.tokPerSec];
}

function controlTable(control: number[][]): void {
  const ratio = control.map(([one, two]) => two / one);
  console.log(
    `
control, SQLite, two workers on halves with their own stores / one worker: ` +
      `${fmt(median(ratio), 2)}×${spread(ratio, 2)} (1 worker ${
        fmt(median(control.map((c) => c[0])))
      } tok/s, 2 workers ${fmt(median(control.map((c) => c[1])))} tok/s): ` +
      `the two-core ceiling of this machine for the fleet's ratio`,
  );
}

async function main(): Promise<void> {
  if (Deno.uid?.() !== 0) throw new Error("bench/batch_fleet.ts needs root (cgroups)");
  mkdirSync(OUT, { recursive: true });
  const path = model();
  const pg = await startPostgres();
  if (typeof pg === "string") throw new Error(`PostgreSQL: ${pg}`);
  const pgLog = logDurations(pg);
  const dir = join(OUT, `fleet-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, "in.jsonl"), input());
    const runs: Scenario[][] = [];
    const control: number[][] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const pair: Scenario[] = [];
      // alternate which scenario goes first
      for (const w of rep % 2 ? [2, 1] : [1, 2]) {
        const db = `fleet_${rep}_${w}`;
        pg.psql(`CREATE DATABASE ${db}`);
        const s = await scenario(w, pg.url.replace(/\/postgres$/, `/${db}`), dir, path);
        s.serverMs = serverMs(pgLog, db);
        console.error(
          `rep ${rep + 1}, ${w} worker(s): ${s.tokens} tokens in ${fmt(s.wallS)} s, ` +
            `${fmt(s.tokPerSec)} tok/s, DB ${fmt(s.dbShare * 100, 2)}% of step time ` +
            `(server ${fmt(s.serverMs / s.stepMs * 100, 2)}%)`,
        );
        pair.push(s);
      }
      runs.push(pair);
      if (v.control) control.push(await controlPair(rep, dir, path));
    }
    table(runs);
    if (v.control) controlTable(control);
  } finally {
    pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
