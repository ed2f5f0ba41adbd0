/**
 * The prefetch controller decides from what it measures: alternating windows, the faster
 * arm wins (off unless on is faster by the margin), prefill steps are not measured, and it
 * measures again after `retrial` steps.
 */
import { deepStrictEqual, equal } from "node:assert/strict";
import { PrefetchController } from "./prefetch.ts";

/** Feed decode steps whose time depends on whether prefetch was active. */
function drive(c: PrefetchController, steps: number, onSec: number, offSec: number): boolean[] {
  const seen: boolean[] = [];
  for (let i = 0; i < steps; i++) {
    const a = c.active;
    seen.push(a);
    c.record(1, a ? onSec : offSec, true);
  }
  return seen;
}

Deno.test("prefetch controller: fixed modes never change", () => {
  const on = new PrefetchController("on"), off = new PrefetchController("off");
  equal(drive(on, 100, 1, 0.1).every((x) => x), true);
  equal(drive(off, 100, 0.1, 1).every((x) => !x), true);
  equal(on.state().decided, null);
});

Deno.test("prefetch controller: auto alternates windows, then keeps the faster", () => {
  const c = new PrefetchController("auto", { window: 2, rounds: 3, retrial: 10 });
  const trial = drive(c, 12, 0.05, 0.1);
  deepStrictEqual(trial, [
    true,
    true,
    false,
    false,
    true,
    true,
    false,
    false,
    true,
    true,
    false,
    false,
  ]);
  const s = c.state();
  equal(s.decided, "on");
  equal(s.trials, 1);
  equal(Math.abs(s.onSecondsPerToken - 0.05) < 1e-12, true);
  equal(Math.abs(s.offSecondsPerToken - 0.1) < 1e-12, true);
  equal(drive(c, 9, 0.05, 0.1).every((x) => x), true);
  // prefill steps are not measured: they neither count toward a window nor a retrial
  for (let i = 0; i < 50; i++) c.record(64, 1, false);
  equal(c.active, true);
  // after `retrial` decode steps it measures again; now off is faster
  drive(c, 1, 0.05, 0.1);
  const again = drive(c, 12, 0.2, 0.1);
  equal(again[0], true);
  equal(c.state().decided, "off");
  equal(c.state().trials, 2);
  equal(c.active, false);
});

Deno.test("prefetch controller: a tie (within the margin) is off", () => {
  const c = new PrefetchController("auto", { window: 4, rounds: 2, margin: 0.05 });
  drive(c, 16, 0.098, 0.1);
  equal(c.state().decided, "off");
});
