/**
 * The sparse real-weights variant (SmolLM2 as 16 experts, top-4, a seeded random router)
 * under a cgroup v1 memory cap (DESIGN.md §7): with an expert cache of a third of the
 * experts, in a memory group capped below what the mapped model costs, spool must not
 * crash, must stay under the cap, and must produce the same greedy tokens as the uncapped
 * mapped model. Loading it mapped under the same cap must fail with spool's clear
 * BudgetError (the planner sees the cgroup limit), not a crash. Skipped (with the reason) without PyPI, or where cgroups are not writable.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadModel } from "../../runtime/api.ts";
import { skipNote, smolLM2 } from "./_smollm2.ts";

const CHILD = fileURLToPath(new URL("./_greedy_child.ts", import.meta.url));
const PROMPT = "Once upon a time, in a small village by the sea,";
const N = 24;
/**
 * The cap. Measured cold here: the mapped model peaks at 160 MiB (runtime, weights and their
 * page cache); with the cache a run fits 96 MiB (13 s), and is killed at 80 MiB.
 */
const CAP = 112 * 2 ** 20;

/** A fresh cgroup v1 memory group under this process's own, or why there is none. */
function memoryGroup(): { dir: string } | { reason: string } {
  try {
    const line = readFileSync("/proc/self/cgroup", "utf8").split("\n")
      .find((l) => /:memory:/.test(l));
    if (!line) return { reason: "no cgroup v1 memory controller" };
    const dir = `/sys/fs/cgroup/memory${line.split(":")[2]}/spool-real-${Deno.pid}`
      .replace(/\/+/g, "/");
    mkdirSync(dir);
    writeFileSync(`${dir}/memory.limit_in_bytes`, String(CAP));
    return { dir };
  } catch (e) {
    return { reason: `cgroups not writable here: ${(e as Error).message}` };
  }
}

const real = smolLM2();
skipNote("test/real/capped_test.ts", real);
const group = real.ok ? memoryGroup() : { reason: "no model" };
if (real.ok && "reason" in group) {
  console.warn(`test/real/capped_test.ts: SKIPPED: ${group.reason}`);
}

/** Drop this file's pages from the page cache (only its own: other work keeps its cache). */
function evict(path: string): void {
  new Deno.Command("python3", {
    args: [
      "-c",
      "import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); " +
      "os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)",
      path,
    ],
  }).outputSync();
}

async function runChild(args: string[], dir?: string) {
  if (dir) {
    evict(args[0]);
    try {
      writeFileSync(`${dir}/memory.max_usage_in_bytes`, "0");
    } catch { /* reset not supported */ }
  }
  const argv = [Deno.execPath(), "run", "-A", CHILD, ...args]
    .map((s) => `'${s.replace(/'/g, `'\\''`)}'`).join(" ");
  const script = dir ? `echo $$ > ${dir}/cgroup.procs; exec ${argv}` : `exec ${argv}`;
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const stdout = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  const stderr = new TextDecoder().decode(out.stderr).slice(0, 2000);
  return { code: out.code, signal: out.signal, stdout, stderr };
}

Deno.test({
  name: "real weights: sparse 16-expert top-4 SmolLM2 under a memory cap, same tokens with a cache",
  ignore: !real.ok || "reason" in group,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    if (!real.ok || "reason" in group) return;
    const path = real.moe(16, 4, 7);
    const m = loadModel(path, { threads: 1 });
    const L = m.model.expertLayers[0]!;
    const perExpert = L.gateExps.expertBytes + L.upExps.expertBytes + L.downExps.expertBytes;
    const experts = perExpert * m.config.nExpert * m.config.nLayer;
    m.close();
    try {
      const free = await runChild([path, "0", String(N), PROMPT]);
      ok(free.code === 0, `uncapped mapped run failed: ${free.stderr}`);
      const want = JSON.parse(free.stdout);
      const capped = await runChild(
        [path, String(Math.floor(experts / 3)), String(N), PROMPT],
        group.dir,
      );
      const peak = Number(readFileSync(`${group.dir}/memory.max_usage_in_bytes`, "utf8"));
      const oom = readFileSync(`${group.dir}/memory.oom_control`, "utf8");
      ok(
        capped.code === 0,
        `capped run died (exit ${capped.code}, ${capped.signal}; ${oom.replace(/\n/g, " ")}): ` +
          capped.stderr,
      );
      const got = JSON.parse(capped.stdout);
      const mappedCapped = await runChild([path, "0", String(N), PROMPT], group.dir);
      ok(
        mappedCapped.code === 1 && /BudgetError: The memory available/.test(mappedCapped.stderr),
        `mapped under the cap: exit ${mappedCapped.code}: ${mappedCapped.stderr}`,
      );
      deepStrictEqual(got.tokens, want.tokens, "same greedy tokens with and without the cache");
      ok(got.misses > 0, "experts were paged");
      ok(peak <= CAP, `peak ${peak} over the cap`);
      console.log(
        `cap ${CAP / 2 ** 20} MiB, peak ${(peak / 2 ** 20).toFixed(1)} MiB (process and page ` +
          `cache), expert cache ${(experts / 3 / 2 ** 20).toFixed(1)} of ` +
          `${(experts / 2 ** 20).toFixed(1)} MiB of experts: ${got.hits} hits, ${got.misses} ` +
          `misses; ${N} greedy tokens equal the uncapped mapped run`,
      );
    } finally {
      try {
        rmdirSync(group.dir);
      } catch { /* still has a task; the kernel removes it later */ }
    }
  },
});
