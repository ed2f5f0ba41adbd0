/**
 * The scheduler yields to the event loop once per step through a MessageChannel: under Deno
 * a port left open keeps native memory for good, so a server leaked about 5 kB per step (the
 * soak benchmark's growth). 20,000 steps' yields must not grow anonymous memory by more than
 * a fraction of what they leaked (about 95 MB).
 */
import { ok } from "node:assert/strict";
import { readFileSync } from "node:fs";
import { nextMacrotask } from "./scheduler.ts";

function anonMb(): number {
  const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return Number(m![1]) / 1024;
}

Deno.test({
  name: "scheduler: 20,000 step yields leave no native memory behind",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    for (let i = 0; i < 2000; i++) await nextMacrotask();
    const before = anonMb();
    for (let i = 0; i < 20_000; i++) await nextMacrotask();
    const grown = anonMb() - before;
    ok(grown < 30, `anonymous memory grew ${grown.toFixed(1)} MB over 20,000 yields`);
  },
});
