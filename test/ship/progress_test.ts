/**
 * runtime/progress.ts: what a line says, that it draws only when enabled, and throttling.
 */
import { deepEqual, equal, ok } from "node:assert/strict";
import {
  createProgress,
  formatAmount,
  formatDuration,
  renderProgress,
} from "../../runtime/progress.ts";

Deno.test("renderProgress: bar, percent, amounts, rate and ETA", () => {
  equal(
    renderProgress("pull x", 512 * 2 ** 20, 2 * 2 ** 30, 64 * 2 ** 20, "bytes", 10),
    "pull x  [###-------]   25%  512.0 MiB / 2.00 GiB  64.00 MiB/s  ETA 24s",
  );
  equal(renderProgress("batch", 30, 0, 2.5, "items"), "batch  30  2.5/s");
  equal(renderProgress("load", 10, 10, 1, "items", 4), "load  [####]  100%  10 / 10  1.0/s");
  deepEqual(
    [formatAmount(1023, "bytes"), formatAmount(1536, "bytes"), formatAmount(7.4, "items")],
    ["1023 B", "1.50 KiB", "7"],
  );
  deepEqual([formatDuration(59.4), formatDuration(185), formatDuration(7620)], [
    "59s",
    "3m05s",
    "2h07m",
  ]);
});

Deno.test("createProgress: silent when disabled; draws, throttles and ends the line when enabled", () => {
  const writes: string[] = [];
  const stream = { isTTY: false, write: (s: string) => writes.push(s) };
  const off = createProgress({ label: "x", total: 10, stream });
  equal(off.enabled, false); // not a TTY
  off.update(5);
  off.finish();
  equal(writes.length, 0);

  const on = createProgress({ label: "pull", total: 100, unit: "bytes", stream, enabled: true });
  on.update(10); // drawn
  on.update(20); // within 100 ms: skipped
  on.add(30);
  on.finish(); // forced final draw + newline
  on.finish(); // idempotent
  equal(writes.length, 3);
  ok(writes[0].startsWith("\rpull  [##------------------]   10%  10 B / 100 B"), writes[0]);
  ok(writes[1].startsWith("\rpull  [##########----------]   50%  50 B / 100 B"), writes[1]);
  ok(writes[0].endsWith("\x1b[K"));
  equal(writes[2], "\n");
});
