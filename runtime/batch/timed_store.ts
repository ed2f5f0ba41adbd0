/**
 * Light timing counters around a batch store: how many calls a worker made into its
 * {@link BatchQueue} and how long they took (wall time from the call until its promise
 * settled), in total and per method. `spool batch run --stats FILE` reports them beside the
 * engine's step time, so a fleet benchmark can state the database's share of a step
 * (bench/batch_fleet.ts). The wrapper changes nothing else: every call, value and error
 * passes through as it was.
 *
 * @module
 */

/** Calls and milliseconds of one method, or of all of them. */
export interface CallTiming {
  /** Calls that have settled. */
  calls: number;
  /** Milliseconds spent inside them, summed. */
  ms: number;
}

/** The counters of a {@link timedStore}. */
export interface StoreTiming extends CallTiming {
  /** Per method name. */
  byMethod: Record<string, CallTiming>;
}

/** Long-lived calls that wait rather than work; they are passed through untimed. */
const UNTIMED = new Set(["watch", "close"]);

/**
 * Wrap `store` so that every method call is timed. Returns the wrapped store (same type)
 * and its live counters.
 */
export function timedStore<T extends object>(store: T): { store: T; timing: StoreTiming } {
  const timing: StoreTiming = { calls: 0, ms: 0, byMethod: {} };
  const note = (name: string, t0: number) => {
    const ms = performance.now() - t0;
    timing.calls++;
    timing.ms += ms;
    const m = timing.byMethod[name] ??= { calls: 0, ms: 0 };
    m.calls++;
    m.ms += ms;
  };
  const wrapped = new Proxy(store, {
    get(target, prop) {
      // the target as receiver: getters that read private fields keep working
      const v = Reflect.get(target, prop);
      if (typeof v !== "function" || typeof prop !== "string" || UNTIMED.has(prop)) {
        return typeof v === "function" ? v.bind(target) : v;
      }
      return (...args: unknown[]) => {
        const t0 = performance.now();
        let r: unknown;
        try {
          r = v.apply(target, args);
        } catch (e) {
          note(prop, t0);
          throw e;
        }
        if (r instanceof Promise) {
          return r.finally(() => note(prop, t0));
        }
        note(prop, t0);
        return r;
      };
    },
  });
  return { store: wrapped, timing };
}
