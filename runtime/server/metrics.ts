/**
 * Server metrics in the Prometheus text format (version 0.0.4): requests by endpoint and
 * status, prompt/cached/completion tokens, recent decode and prefill tok/s, requests in
 * flight, queue depth, scheduler steps, the expert cache's hits, misses and bytes read, and
 * the process's memory: resident bytes split into anonymous memory and mapped files (the
 * model's mapped pages are page cache, bounded by the file), and each JavaScript heap.
 *
 * @module
 */
import type { EngineStats } from "../engine/engine.ts";
import type { SeqUsage } from "../engine/scheduler.ts";
import process from "node:process";
import { readFileSync } from "node:fs";

/** Counters the app updates as requests come and go. */
export class Metrics {
  readonly #requests = new Map<string, number>();
  /** Prompt tokens of finished requests. */
  promptTokens = 0;
  /** Of which reused from the prefix cache. */
  cachedTokens = 0;
  /** Generated tokens. */
  completionTokens = 0;
  /** Requests being answered now. */
  inFlight = 0;
  /** Exponentially weighted decode tok/s of finished requests. */
  decodeTps = 0;
  /** Exponentially weighted prefill tok/s of finished requests. */
  prefillTps = 0;
  readonly started = Date.now();

  /** Count a request to `endpoint` answered with `status`. */
  request(endpoint: string, status: number): void {
    const k = `${endpoint}\u0000${status}`;
    this.#requests.set(k, (this.#requests.get(k) ?? 0) + 1);
  }

  /** Record a finished generation. */
  usage(u: SeqUsage): void {
    this.promptTokens += u.promptTokens;
    this.cachedTokens += u.cachedTokens;
    this.completionTokens += u.completionTokens;
    const a = 0.2;
    if (u.completionTokens > 1 && u.decodeMs > 0) {
      const tps = (u.completionTokens - 1) / (u.decodeMs / 1000);
      this.decodeTps = this.decodeTps === 0 ? tps : (1 - a) * this.decodeTps + a * tps;
    }
    const pre = u.promptTokens - u.cachedTokens;
    if (pre > 0 && u.prefillMs > 0) {
      const tps = pre / (u.prefillMs / 1000);
      this.prefillTps = this.prefillTps === 0 ? tps : (1 - a) * this.prefillTps + a * tps;
    }
  }

  /** The exposition text, with the engine's stats when given. */
  render(engine: EngineStats | null): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, lines: string[]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    const reqLines = [...this.#requests].map(([k, v]) => {
      const [endpoint, status] = k.split("\u0000");
      return `spool_requests_total{endpoint="${endpoint}",status="${status}"} ${v}`;
    });
    metric("spool_requests_total", "counter", "HTTP requests by endpoint and status.", reqLines);
    metric("spool_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", [
      `spool_prompt_tokens_total ${this.promptTokens}`,
    ]);
    metric("spool_cached_prompt_tokens_total", "counter", "Prompt tokens reused from cache.", [
      `spool_cached_prompt_tokens_total ${this.cachedTokens}`,
    ]);
    metric("spool_completion_tokens_total", "counter", "Generated tokens.", [
      `spool_completion_tokens_total ${this.completionTokens}`,
    ]);
    metric("spool_decode_tokens_per_second", "gauge", "Recent decode speed per sequence.", [
      `spool_decode_tokens_per_second ${round(this.decodeTps)}`,
    ]);
    metric("spool_prefill_tokens_per_second", "gauge", "Recent prefill speed.", [
      `spool_prefill_tokens_per_second ${round(this.prefillTps)}`,
    ]);
    metric("spool_requests_in_flight", "gauge", "Requests being answered.", [
      `spool_requests_in_flight ${this.inFlight}`,
    ]);
    const rss = residentBytes();
    metric("process_resident_memory_bytes", "gauge", "Resident memory by kind.", [
      ...Object.entries(rss).map(([k, v]) => `process_resident_memory_bytes{kind="${k}"} ${v}`),
    ]);
    // a full collection first when V8 exposes one (--v8-flags=--expose-gc: the soak benchmark)
    (globalThis as { gc?: () => void }).gc?.();
    const heap = process.memoryUsage();
    metric(
      "spool_js_heap_bytes",
      "gauge",
      "JavaScript heap in use, held, and array buffers outside it, per thread.",
      [
        `spool_js_heap_bytes{thread="main",kind="used"} ${heap.heapUsed}`,
        `spool_js_heap_bytes{thread="main",kind="total"} ${heap.heapTotal}`,
        `spool_js_heap_bytes{thread="main",kind="external"} ${heap.external}`,
        ...(engine?.heap
          ? [
            `spool_js_heap_bytes{thread="engine",kind="used"} ${engine.heap.used}`,
            `spool_js_heap_bytes{thread="engine",kind="total"} ${engine.heap.total}`,
            `spool_js_heap_bytes{thread="engine",kind="external"} ${engine.heap.external}`,
          ]
          : []),
      ],
    );
    if (engine) {
      const s = engine.scheduler;
      metric("spool_queue_depth", "gauge", "Requests waiting for a slot.", [
        `spool_queue_depth ${s.queued}`,
      ]);
      metric("spool_active_sequences", "gauge", "Sequences decoding now.", [
        `spool_active_sequences ${s.active}`,
      ]);
      metric("spool_steps_total", "counter", "Batched forward steps.", [
        `spool_steps_total ${s.steps}`,
      ]);
      metric("spool_step_sequences_total", "counter", "Sequences summed over steps.", [
        `spool_step_sequences_total ${s.stepSequences}`,
      ]);
      metric("spool_generated_tokens_per_second", "gauge", "Engine tokens per second of steps.", [
        `spool_generated_tokens_per_second ${
          round(s.stepMs > 0 ? s.tokensGenerated / (s.stepMs / 1000) : 0)
        }`,
      ]);
      const c = engine.expertCache;
      metric("spool_expert_cache_hits_total", "counter", "Expert cache hits.", [
        `spool_expert_cache_hits_total ${c?.hits ?? 0}`,
      ]);
      metric("spool_expert_cache_misses_total", "counter", "Expert cache misses.", [
        `spool_expert_cache_misses_total ${c?.misses ?? 0}`,
      ]);
      metric("spool_expert_cache_read_bytes_total", "counter", "Bytes read from disk.", [
        `spool_expert_cache_read_bytes_total ${c?.bytesRead ?? 0}`,
      ]);
      metric("spool_expert_cache_evictions_total", "counter", "Experts evicted.", [
        `spool_expert_cache_evictions_total ${c?.evictions ?? 0}`,
      ]);
      metric("spool_expert_cache_stall_seconds_total", "counter", "Compute waiting on reads.", [
        `spool_expert_cache_stall_seconds_total ${round(c?.stallSeconds ?? 0)}`,
      ]);
    }
    return out.join("\n") + "\n";
  }
}

/**
 * Resident bytes: on Linux anonymous memory and file mappings apart (`/proc/self/status`),
 * elsewhere the total only.
 */
export function residentBytes(): Record<string, number> {
  try {
    const status = readFileSync("/proc/self/status", "utf8");
    const kb = (key: string) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1]);
    const anon = kb("RssAnon"), file = kb("RssFile"), shmem = kb("RssShmem");
    if ([anon, file, shmem].every(Number.isFinite)) {
      return { anon: anon * 1024, file: file * 1024, shmem: shmem * 1024 };
    }
  } catch { /* not Linux */ }
  return { total: process.memoryUsage().rss };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
