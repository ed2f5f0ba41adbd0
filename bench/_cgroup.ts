/**
 * Memory-capped child processes for the benchmarks (DESIGN.md §7): a cgroup v1 memory
 * group under this process's own, a page-cache drop before each run (so every run starts
 * cold), and the outcome of the child: its last JSON line, or how it died, with the group's
 * peak usage. Needs root.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

function cgroupDir(): string {
  const line = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) =>
    /:memory:/.test(l)
  );
  if (!line) throw new Error("no cgroup v1 memory controller (see DESIGN.md §7)");
  const dir = `/sys/fs/cgroup/memory${line.split(":")[2]}/spoolbench`.replace(/\/+/g, "/");
  mkdirSync(dir, { recursive: true });
  return dir;
}

let CG: string | null = null;
const cg = (f: string) => `${CG ??= cgroupDir()}/${f}`;

/** Write back dirty pages and drop the page cache. */
export function dropCaches(): void {
  new Deno.Command("sync").outputSync();
  writeFileSync("/proc/sys/vm/drop_caches", "3\n");
}

/** What a capped child did. */
export interface Outcome {
  ok: boolean;
  /** Its last stdout line, parsed, when it printed JSON and exited 0. */
  result?: Record<string, number | string | boolean>;
  /** How it failed otherwise. */
  error?: string;
  /** The cgroup's peak usage (process memory and page cache), bytes. */
  peakBytes: number;
  /** Times the cgroup's usage hit its limit (memory.failcnt; -1 where unreadable). */
  failcnt: number;
  /** Killed for memory (or by the timeout). */
  oomKilled: boolean;
}

/** Run `argv` inside the cgroup capped at `cap` bytes, cold. */
export async function runCapped(cap: number, argv: string[], timeoutS = 900): Promise<Outcome> {
  writeFileSync(cg("memory.limit_in_bytes"), String(cap));
  for (const f of ["memory.max_usage_in_bytes", "memory.failcnt"]) {
    try {
      writeFileSync(cg(f), "0");
    } catch { /* older kernels */ }
  }
  dropCaches();
  const quoted = argv.map((s) => `'${s.replace(/'/g, `'\\''`)}'`).join(" ");
  const child = new Deno.Command("sh", {
    args: ["-c", `echo $$ > ${cg("cgroup.procs")}; exec ${quoted}`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutS * 1000);
  const out = await child.output();
  clearTimeout(timer);
  const peak = Number(readFileSync(cg("memory.max_usage_in_bytes"), "utf8"));
  let failcnt = -1;
  try {
    failcnt = Number(readFileSync(cg("memory.failcnt"), "utf8"));
  } catch { /* not there */ }
  const oom = readFileSync(cg("memory.oom_control"), "utf8");
  const killed = out.signal === "SIGKILL" || /oom_kill [1-9]/.test(oom) && !out.success;
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (out.success && text.startsWith("{")) {
    return { ok: true, result: JSON.parse(text), peakBytes: peak, failcnt, oomKilled: false };
  }
  const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
  return {
    ok: false,
    error: out.signal
      ? `killed by ${out.signal}${killed ? " (out of memory or timeout)" : ""}`
      : `exit ${out.code}: ${err}`,
    peakBytes: peak,
    failcnt,
    oomKilled: killed,
  };
}

/** The cgroup's peak of a run and its failcnt, for reports: "3.18 GiB, failcnt 0". */
export function peakText(o: Outcome): string {
  return `${(o.peakBytes / 2 ** 30).toFixed(2)} GiB, failcnt ${o.failcnt}`;
}
