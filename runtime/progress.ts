/**
 * A one-line progress bar for long jobs (downloads, model loads, batch runs).
 *
 * It draws only on a terminal: when the stream is not a TTY, or `CI` is set, or `quiet` is
 * asked for, every call is a no-op and nothing is printed (logs stay clean). On a TTY it
 * redraws at most every 100 ms, with done/total, percent, rate and ETA:
 *
 * ```
 * pull model.gguf  [#########-----------]  45%  1.02 GiB / 2.27 GiB  88.1 MiB/s  ETA 14s
 * ```
 *
 * ```ts
 * const bar = createProgress({ label: "pull x.gguf", total: bytes, unit: "bytes" });
 * bar.update(done);   // absolute position
 * bar.add(n);         // or relative
 * bar.finish();       // final redraw and newline (only if anything was drawn)
 * ```
 *
 * @module
 */
import process from "node:process";

/** What the counted things are: bytes (shown as KiB/MiB/GiB) or plain items (tokens, requests). */
export type ProgressUnit = "bytes" | "items";

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  /** Text before the bar, e.g. `pull model.gguf`. */
  label: string;
  /** Total amount; 0 or undefined when unknown (then no bar, percent or ETA are shown). */
  total?: number;
  /** Unit of `done`/`total` (default "items"). */
  unit?: ProgressUnit;
  /** Where to draw (default `process.stderr`). */
  stream?: { isTTY?: boolean; columns?: number; write(s: string): unknown };
  /** Force drawing on or off; default: on only for a TTY outside CI. */
  enabled?: boolean;
  /** Amount already done when the bar starts (a resumed download); excluded from the rate. */
  start?: number;
}

/** A progress bar; every method is a no-op when it is disabled. */
export interface Progress {
  /** True when this bar draws anything. */
  readonly enabled: boolean;
  /** Set the absolute amount done. */
  update(done: number): void;
  /** Add to the amount done. */
  add(delta: number): void;
  /** Change the total (when it becomes known late). */
  setTotal(total: number): void;
  /** Text shown after the bar (e.g. `12.3 tok/s  hit 71%`); "" for none. */
  note(text: string): void;
  /** Draw the final state and end the line. Idempotent. */
  finish(): void;
}

/** Human-readable amount: `1.50 GiB`, `512 B`, `1234`. */
export function formatAmount(n: number, unit: ProgressUnit): string {
  if (unit === "items") return String(Math.round(n));
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${v.toFixed(v >= 100 ? 1 : 2)} ${units[i]}`;
}

/** Duration as `42s`, `3m05s`, `2h07m`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** The text of one progress line (exported for tests and for callers that log instead). */
export function renderProgress(
  label: string,
  done: number,
  total: number,
  rate: number,
  unit: ProgressUnit,
  width = 20,
): string {
  const parts = [label];
  const per = unit === "bytes" ? `${formatAmount(rate, unit)}/s` : `${rate.toFixed(1)}/s`;
  if (total > 0) {
    const f = Math.min(1, Math.max(0, done / total));
    const filled = Math.round(f * width);
    parts.push(`[${"#".repeat(filled)}${"-".repeat(width - filled)}]`);
    parts.push(`${(f * 100).toFixed(0).padStart(3)}%`);
    parts.push(`${formatAmount(done, unit)} / ${formatAmount(total, unit)}`);
    parts.push(per);
    if (rate > 0 && done < total) parts.push(`ETA ${formatDuration((total - done) / rate)}`);
  } else {
    parts.push(formatAmount(done, unit), per);
  }
  return parts.join("  ");
}

/** Whether a bar would draw on `stream` (a TTY, outside CI). */
export function progressEnabled(stream: { isTTY?: boolean } = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

/** Make a progress bar (see the module doc). */
export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const enabled = opts.enabled ?? progressEnabled(stream);
  const unit = opts.unit ?? "items";
  let total = opts.total ?? 0;
  const start = opts.start ?? 0;
  let done = start;
  const t0 = performance.now();
  let lastDraw = -Infinity;
  let drawn = false;
  let finished = false;
  let suffix = "";
  const draw = (force: boolean) => {
    if (!enabled || finished) return;
    const now = performance.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    const seconds = (now - t0) / 1000;
    const rate = seconds > 0 ? (done - start) / seconds : 0;
    let line = renderProgress(opts.label, done, total, rate, unit);
    if (suffix) line += `  ${suffix}`;
    const cols = stream.columns ?? 0;
    if (cols > 10 && line.length > cols - 1) line = line.slice(0, cols - 1);
    stream.write(`\r${line}\x1b[K`);
    drawn = true;
  };
  return {
    enabled,
    update(n: number) {
      done = n;
      draw(false);
    },
    add(delta: number) {
      done += delta;
      draw(false);
    },
    setTotal(t: number) {
      total = t;
    },
    note(text: string) {
      suffix = text;
    },
    finish() {
      if (finished) return;
      draw(true);
      if (drawn) stream.write("\n");
      finished = true;
    },
  };
}
