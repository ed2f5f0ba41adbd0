/**
 * One job split across real `spool batch run` processes on a throwaway PostgreSQL cluster
 * (skipped with a message when PostgreSQL is not installed), greedy, on the crash test's
 * small synthetic qwen3moe:
 * - three workers, each with its own output path (as on three machines); one is killed
 *   with SIGKILL mid-run, one is stopped (SIGSTOP) past its lease and then resumed, and the
 *   database connections of all of them are cut once with pg_terminate_backend, and then
 *   PostgreSQL is restarted. The job
 *   ends with exactly one output file (written by the worker that finalized it), one line
 *   per custom_id in input order, each answer equal to an uninterrupted single-worker
 *   run's; `spool batch results --store` writes the same file; saved counts never go down;
 *   `spool batch status --store` shows the three workers and their shares.
 * - a worker with another model file is refused with a clear error.
 * - `spool batch cancel --store` stops two running workers within a second or two.
 */
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureSyntheticModel, sharedVocab } from "../../runtime/models/synth.ts";
import { PgBatchStore } from "../../runtime/batch/pg_store.ts";
import { reportSkip, startPostgres } from "./_pg.ts";

const DIR = fileURLToPath(new URL("../fixtures/batch/", import.meta.url));
const MAIN = fileURLToPath(new URL("../../cli/main.ts", import.meta.url));
const dec = new TextDecoder();

function model(seed = 31): string {
  // seed 31 is the crash test's model (the same file)
  return ensureSyntheticModel(`${DIR}qwen3moe-q8-qwenvocab${seed === 31 ? "" : `-s${seed}`}.gguf`, {
    arch: "qwen3moe",
    preset: "tiny",
    types: "Q8_0",
    seed,
    vocab: sharedVocab("ggml-vocab-qwen2.gguf"),
  });
}

function input(n: number, maxTokens: number, tag = ""): string {
  const words = ["river", "stone", "copper", "lantern", "orbit", "maple", "signal", "harbor"];
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `job-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: {
        model: "m",
        messages: [{
          role: "user",
          content: `${tag}Tell me of the ${words[i % 8]} ${i}, and ${words[(i * 5) % 8]}.`,
        }],
        max_tokens: maxTokens,
        temperature: 0,
      },
    })).join("\n") + "\n";
}

function batchId(text: string): string {
  return "batch_run_" + createHash("sha256").update(text).digest("hex").slice(0, 24);
}

function spool(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { CI: "1" },
  }).spawn();
}

function worker(inFile: string, out: string, store: string | null, m = model()) {
  return spool([
    "batch",
    "run",
    inFile,
    "--model",
    m,
    "--out",
    out,
    ...(store ? ["--store", store, "--lease", "3"] : []),
    "--parallel",
    "2",
    "--threads",
    "1",
  ]);
}

/** The parts of a result line that must not depend on who ran it. */
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function finish(p: Deno.ChildProcess): Promise<{ code: number; err: string }> {
  const o = await p.output();
  return { code: o.code, err: dec.decode(o.stderr) };
}

Deno.test({
  name: "batch fleet: three workers on PostgreSQL, kill -9, a hang past the lease, cut links",
  ignore: reportSkip("batch fleet"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const pg = await startPostgres();
    if (typeof pg === "string") throw new Error(pg);
    const dir = mkdtempSync(join(tmpdir(), "spool-fleet-"));
    const admin = await PgBatchStore.connect(pg.url);
    try {
      const N = 24;
      const text = input(N, 32);
      const inFile = join(dir, "in.jsonl");
      writeFileSync(inFile, text);
      const id = batchId(text);

      await t.step("split one job; kill -9, SIGSTOP past the lease, lost connections", async () => {
        const ref = await finish(worker(inFile, join(dir, "ref.jsonl"), null));
        equal(ref.code, 0, ref.err);
        const want = readFileSync(join(dir, "ref.jsonl"), "utf8").trim().split("\n");
        equal(want.length, N);

        const outs = [0, 1, 2].map((k) => join(dir, `out${k}.jsonl`));
        const ws = outs.map((o) => worker(inFile, o, pg.url));
        const saved: number[] = [];
        const count = async () => {
          try {
            const b = await admin.getBatch(id);
            const n = b ? b.request_counts.completed + b.request_counts.failed : 0;
            saved.push(n);
            return n;
          } catch {
            return saved.at(-1) ?? 0; // the server is restarting
          }
        };
        while ((await count()) < 3) await sleep(100);
        ws[0].kill("SIGKILL");
        ws[1].kill("SIGSTOP");
        await sleep(500);
        const cut = await admin.sql`SELECT count(pg_terminate_backend(pid))::int AS n
          FROM pg_stat_activity WHERE application_name = 'spool batch run'`;
        ok(Number(cut[0].n) >= 1, "connections were cut");
        await sleep(4000); // the stopped worker's 3 s lease runs out; it resumes with work left
        const left = N - (await count());
        ws[1].kill("SIGCONT");
        console.log(`  the stopped worker resumed with ${left} requests left`);
        await sleep(1000);
        await pg.restart(); // PostgreSQL itself, mid-job
        const ends = await Promise.all(ws.map(finish));
        equal(ends[1].code, 0, ends[1].err);
        equal(ends[2].code, 0, ends[2].err);
        await count();
        for (let i = 1; i < saved.length; i++) ok(saved[i] >= saved[i - 1], `saved ${saved}`);
        ok(saved.some((n) => n > 0 && n < N), `kills landed mid-run: ${saved}`);

        const written = outs.filter((o) => existsSync(o));
        equal(written.length, 1, "only the worker that finalized writes OUT");
        const got = readFileSync(written[0], "utf8").trim().split("\n");
        equal(got.length, N);
        deepStrictEqual(
          got.map((l) => JSON.parse(l).custom_id),
          Array.from({ length: N }, (_, i) => `job-${i}`),
        );
        deepStrictEqual(got.map(answer), want.map(answer));

        const res = await finish(
          spool(["batch", "results", id, "--store", pg.url, "--out", join(dir, "any.jsonl")]),
        );
        equal(res.code, 0, res.err);
        equal(readFileSync(join(dir, "any.jsonl"), "utf8"), readFileSync(written[0], "utf8"));

        const st = spool(["batch", "status", id, "--store", pg.url, "--json"]);
        const so = await st.output();
        equal(so.code, 0, dec.decode(so.stderr));
        const s = JSON.parse(dec.decode(so.stdout));
        equal(s.batch.status, "completed");
        equal(s.workers.length, 3);
        equal(s.workers.reduce((a: number, w: { done: number }) => a + w.done, 0), N);
        ok(s.workers.every((w: { heartbeatAt: number }) => w.heartbeatAt > 0));
        console.log(
          `  saved counts ${[...new Set(saved)].join(",")}; done per worker ${
            s.workers.map((w: { done: number }) => w.done).join("/")
          }; finalized by ${s.batch.finalized_by}`,
        );
        console.log(
          `  stopped worker's warnings: ${
            ends[1].err.split("\n").filter((l) => /lease|unreachable|released/.test(l)).join(
              " | ",
            )
          }`,
        );
        const human = dec.decode(
          (await spool(["batch", "status", id, "--store", pg.url])
            .output()).stdout,
        );
        ok(/completed/.test(human) && /tok\/s/.test(human) && /last heartbeat/.test(human));
      });

      await t.step("a worker with another model is refused", async () => {
        const r = await finish(worker(inFile, join(dir, "x.jsonl"), pg.url, model(32)));
        equal(r.code, 1, r.err);
        ok(/same model file/.test(r.err), r.err);
        ok(!existsSync(join(dir, "x.jsonl")));
      });

      await t.step("cancel stops every worker", async () => {
        const text2 = input(40, 40, "Again: ");
        const in2 = join(dir, "in2.jsonl");
        writeFileSync(in2, text2);
        const id2 = batchId(text2);
        const ws = [0, 1].map((k) => worker(in2, join(dir, `c${k}.jsonl`), pg.url));
        for (let i = 0; i < 600; i++) {
          const b = await admin.getBatch(id2);
          if (b && b.request_counts.completed >= 2) break;
          await sleep(100);
        }
        const t0 = Date.now();
        const c = await finish(spool(["batch", "cancel", id2, "--store", pg.url]));
        equal(c.code, 0, c.err);
        const ends = await Promise.all(ws.map(finish));
        const dt = Date.now() - t0;
        for (const e of ends) equal(e.code, 0, e.err);
        ok(dt < 6000, `both workers ended ${dt} ms after the cancel (incl. process exit)`);
        const b = (await admin.getBatch(id2))!;
        equal(b.status, "cancelled");
        ok(b.request_counts.cancelled > 0);
        equal((await admin.results(id2)).length, 40, "a line per custom_id");
        console.log(`  cancel: both workers gone ${dt} ms after \`spool batch cancel\``);
      });
    } finally {
      await admin.close();
      pg.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
