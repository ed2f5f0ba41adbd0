/**
 * `spool batch`: overnight jobs.
 *
 *   spool batch run FILE.jsonl --model M --out results.jsonl   run to completion, no server
 *   spool batch submit FILE.jsonl [--server URL]              upload and start on a server
 *   spool batch status ID | results ID | cancel ID | list     against a server
 *
 * `run` keeps its state in a SQLite store beside the output (`OUT.db`): killed or
 * restarted, the same command resumes where it stopped, with no lost and no duplicated
 * results. With `--store postgres://…` the same command started on several machines splits
 * one job: each worker commits only its share, and the one that finalizes the batch writes
 * OUT (`spool batch results ID --store …` writes it anywhere). Input lines are OpenAI batch
 * lines (`{custom_id, method, url, body}`) or Anthropic ones (`{custom_id, params}`).
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { detectMemoryLimit, formatSize, parseSize } from "../runtime/experts/budget.ts";
import { readGGUF } from "../runtime/gguf/reader.ts";
import { inspectGGUF } from "../runtime/inspect.ts";
import { archOf } from "../runtime/models/registry.ts";
import { kvBytesPerToken } from "../runtime/models/config.ts";
import { tokenizerFromGGUF } from "../runtime/tokenizer/tokenizer.ts";
import { applyChatTemplate, chatTemplateFromGGUF } from "../runtime/tokenizer/chat_template.ts";
import { createProgress } from "../runtime/progress.ts";
import {
  type InputError,
  parseAnthropicRequests,
  type ParsedRequest,
  parseOpenAIBatchInput,
} from "../runtime/batch/formats.ts";
import { planBatch } from "../runtime/batch/plan.ts";
import { BatchRunner } from "../runtime/batch/runner.ts";
import {
  type BatchKind,
  type BatchQueue,
  type BatchRecord,
  ModelMismatchError,
  StoreFullError,
} from "../runtime/batch/store_types.ts";
import { fileSha256, openBatchStore } from "../runtime/batch/open_store.ts";
import {
  parseStoreArgs,
  storeCancel,
  storeResults,
  storeStatus,
  writeBatchOutput,
} from "./batch_store_commands.ts";
import { openLocalExecutor } from "../runtime/batch/local.ts";
import { type StoreTiming, timedStore } from "../runtime/batch/timed_store.ts";
import type { EngineStats } from "../runtime/engine/engine.ts";
import type { Command } from "./main.ts";
import { loadConfig } from "../runtime/config/config.ts";
import { modelsDir, resolveModelPath } from "../runtime/pull/models_dir.ts";

function usage(message: string): never {
  throw Object.assign(new Error(message), { name: "UsageError" });
}

/** The requests of a batch input file, OpenAI or Anthropic lines. */
export function parseBatchFile(text: string): {
  kind: BatchKind;
  endpoint: string;
  requests: ParsedRequest[];
  errors: InputError[];
} {
  const firstLine = text.split("\n").find((l) => l.trim() !== "") ?? "";
  let anthropic = false;
  try {
    const v = JSON.parse(firstLine);
    anthropic = v !== null && typeof v === "object" && "params" in v && !("url" in v);
  } catch { /* reported by the OpenAI parser */ }
  if (!anthropic) {
    const r = parseOpenAIBatchInput(text);
    return { kind: "openai", endpoint: r.url ?? "/v1/chat/completions", ...r };
  }
  const lines: unknown[] = [];
  const lineNo: number[] = [];
  const errors: InputError[] = [];
  text.split("\n").forEach((l, i) => {
    if (l.trim() === "") return;
    try {
      lines.push(JSON.parse(l));
      lineNo.push(i + 1);
    } catch (e) {
      errors.push({ line: i + 1, message: `not valid JSON: ${(e as Error).message}` });
    }
  });
  const r = parseAnthropicRequests(lines);
  for (const e of r.errors) errors.push({ line: lineNo[e.line] ?? e.line + 1, message: e.message });
  return { kind: "anthropic", endpoint: "/v1/messages", requests: r.requests, errors };
}

/** Longest rendered prompt (tokens) of up to `sample` requests, and the largest max_tokens. */
function measureRequests(
  path: string,
  kind: BatchKind,
  requests: ParsedRequest[],
  sample = 256,
): { maxPrompt: number; maxNew: number } {
  const g = readGGUF(path);
  const tok = tokenizerFromGGUF(g);
  const tpl = chatTemplateFromGGUF(g.kv);
  let maxPrompt = 1, maxNew = 0;
  const step = Math.max(1, Math.floor(requests.length / sample));
  for (let i = 0; i < requests.length; i++) {
    const b = requests[i].body;
    const mt = Number(b.max_tokens ?? b.max_completion_tokens ?? 0);
    if (mt > maxNew) maxNew = mt;
    if (i % step !== 0) continue;
    let text: string;
    if (typeof b.prompt === "string") text = b.prompt;
    else {
      const msgs = (b.messages as { role: string; content: unknown }[]).map((m) => ({
        role: m.role,
        content: typeof m.content === "string" ? m.content : JSON.stringify(m.content),
      }));
      if (kind === "anthropic" && b.system) {
        msgs.unshift({ role: "system", content: JSON.stringify(b.system) });
      }
      text = tpl
        ? applyChatTemplate(tpl, msgs, { addGenerationPrompt: true })
        : JSON.stringify(msgs);
    }
    const n = tok.encode(text, { addSpecial: true, parseSpecial: true }).length;
    if (n > maxPrompt) maxPrompt = n;
  }
  return { maxPrompt: Math.ceil(maxPrompt * 1.1) + 8, maxNew: maxNew || 512 };
}

/** What `spool batch run --stats FILE` writes (one JSON object) when its run ends. */
interface RunStats {
  workerId: string;
  /** Sequences per step this worker planned. */
  B: number;
  /** Completion tokens of the results this worker committed. */
  completionTokens: number;
  /** Milliseconds from the start of the run to its end. */
  wallMs: number;
  /** Calls into the batch store and the time inside them. */
  store: StoreTiming;
  /** The engine's scheduler counters (steps, step time) and expert cache snapshot. */
  engine: EngineStats;
}

function writeRunStats(path: string, s: RunStats): void {
  writeFileSync(path, JSON.stringify(s) + "\n", { mode: 0o600 });
}

function printInputErrors(file: string, errors: InputError[]): void {
  for (const e of errors) console.error(`${file}:${e.line}: ${e.message}`);
}

async function runCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: "string", short: "m" },
      out: { type: "string", short: "o" },
      store: { type: "string" },
      lease: { type: "string" },
      parallel: { type: "string" },
      threads: { type: "string", short: "t" },
      "ram-budget": { type: "string" },
      "expert-cache": { type: "string" },
      stats: { type: "string" },
      verbose: { type: "boolean", short: "v" },
      quiet: { type: "boolean", short: "q" },
    },
  });
  if (positionals.length !== 1) usage("batch run takes exactly one FILE.jsonl");
  if (!v.model) usage("batch run needs --model MODEL");
  if (!v.out) usage("batch run needs --out RESULTS.jsonl");
  const file = positionals[0];
  const cfg = loadConfig().config;
  const model = resolveModelPath(v.model, modelsDir(cfg));
  const text = readFileSync(file, "utf8");
  const input = parseBatchFile(text);
  if (input.errors.length > 0) {
    printInputErrors(file, input.errors);
    console.error(`spool batch run: ${input.errors.length} bad line(s); nothing was run`);
    return 1;
  }
  const lease = v.lease !== undefined ? Number(v.lease) : 60;
  if (!(lease > 0)) usage(`--lease must be a positive number of seconds, got "${v.lease}"`);
  const modelHash = await fileSha256(model);
  const opened = await openBatchStore(v.store ?? `${v.out}.db`, { appName: "spool batch run" });
  // --stats FILE: time the store calls and write them with the engine's step counters
  const timed = v.stats !== undefined ? timedStore(opened) : null;
  const store = timed ? timed.store : opened;
  const log = (s: string) => {
    if (!v.quiet) console.error(s);
  };
  try {
    const id = "batch_run_" + createHash("sha256").update(text).digest("hex").slice(0, 24);
    let batch = await store.getBatch(id) ?? await store.createBatch({
      id,
      kind: input.kind,
      endpoint: input.endpoint,
      requests: input.requests,
      completionWindow: "8760h",
      modelHash,
    });
    if (batch.model_hash && batch.model_hash !== modelHash) {
      throw new ModelMismatchError(id, batch.model_hash, modelHash);
    }
    if (batch.status === "failed") batch = await store.resumeBatch(id);
    log(`batch ${id} in ${store.path}`);
    const c0 = batch.request_counts;
    if (c0.completed + c0.failed > 0 && batch.status === "in_progress") {
      log(`resuming: ${c0.completed + c0.failed} of ${c0.total} results already saved`);
    }
    if (batch.status === "in_progress") {
      // B from the KV budget and the expert cache
      const g = readGGUF(model);
      const rep = inspectGGUF(g, model);
      const spec = archOf(g.kv);
      const mc = spec.config(g.kv);
      const budgetOpt = v["ram-budget"] !== undefined
        ? parseSize(v["ram-budget"], "--ram-budget")
        : "auto";
      const budget = budgetOpt === "auto" ? detectMemoryLimit().bytes : budgetOpt;
      const m = measureRequests(model, input.kind, input.requests);
      const plan = planBatch({
        requests: c0.pending,
        maxPromptTokens: m.maxPrompt,
        maxNewTokens: m.maxNew,
        nCtxTrain: mc.nCtxTrain,
        kvBytesPerToken: kvBytesPerToken(spec, mc),
        budgetBytes: budget,
        baseBytes: rep.denseBytes + (512 << 20),
        bytesPerExpert: rep.bytesPerExpert,
        nExpert: mc.nExpert,
        nExpertUsed: mc.nExpertUsed,
        max: v.parallel !== undefined ? Math.max(1, Number(v.parallel)) : 64,
      });
      if (v.verbose) {
        log(`batch size B = ${plan.B} (budget ${formatSize(budget)}):`);
        for (const r of plan.reasons) log(`  - ${r}`);
      }
      const ec = v["expert-cache"] !== undefined
        ? parseSize(v["expert-cache"], "--expert-cache")
        : undefined;
      const local = await openLocalExecutor({
        path: model,
        parallel: plan.B,
        nCtx: plan.nCtx,
        threads: v.threads !== undefined ? Number(v.threads) : cfg.threads,
        // the engine reserves the B slots' KV itself (kvTokens = B × context)
        ramBudget: ec === undefined ? budgetOpt : undefined,
        expertCache: ec,
      });
      const bar = createProgress({
        label: `batch ${input.requests.length} requests`,
        total: c0.total,
        unit: "items",
        enabled: v.quiet ? false : undefined,
        start: c0.completed + c0.failed,
      });
      const t0 = performance.now();
      let tokens = 0;
      let hit = "";
      const statTimer = setInterval(() => {
        local.engine.stats().then((s) => {
          const c = s.expertCache;
          hit = c ? `  expert hit ${(c.hitRate * 100).toFixed(0)}%` : "";
        }).catch(() => {});
      }, 2000);
      const runner = new BatchRunner(store, local.exec, {
        concurrency: plan.B,
        // the bar needs a few counts a second, not a count query after every commit
        progressMs: 250,
        leaseSeconds: lease,
        modelHash,
        onWarn: (m) => log(`spool batch run: ${m}`),
        // each report is a count query: none when no bar is drawn (--quiet, not a terminal)
        onProgress: bar.enabled
          ? (p) => {
            tokens = p.completionTokens;
            const secs = (performance.now() - t0) / 1000;
            bar.note(`${(tokens / Math.max(secs, 1e-3)).toFixed(1)} tok/s${hit}`);
            bar.update(p.done);
          }
          : undefined,
      });
      const onSignal = () => runner.stop();
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        batch = await runner.runBatch(id);
      } catch (e) {
        if (e instanceof StoreFullError) {
          bar.finish();
          const c = (await store.getBatch(id))?.request_counts;
          console.error(
            `spool batch run: ${e.message}\n${
              c ? c.completed + c.failed : "?"
            } results are saved in ${store.path}; free some space and run the same command to resume`,
          );
          return 1;
        }
        throw e;
      } finally {
        clearInterval(statTimer);
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        bar.finish();
        if (timed) {
          try {
            writeRunStats(v.stats!, {
              workerId: runner.workerId,
              B: plan.B,
              completionTokens: runner.completionTokens,
              wallMs: performance.now() - t0,
              store: timed.timing,
              engine: await local.engine.stats(),
            });
          } catch (e) {
            log(`spool batch run: --stats: ${(e as Error).message}`);
          }
        }
        await local.close();
      }
      const secs = (performance.now() - t0) / 1000;
      tokens = runner.completionTokens; // progress reports are coalesced: the exact count
      log(
        `${tokens} tokens generated in ${secs.toFixed(1)} s (${
          (tokens / secs).toFixed(2)
        } tok/s, B = ${plan.B})`,
      );
      const end = endOfRun(batch, runner.workerId, store, v.store);
      if (end !== null) {
        log(end.message);
        return end.code;
      }
    }
    // every line, in input order, written whole or not at all
    await writeBatchOutput(store, id, v.out);
    const c = (await store.getBatch(id))!.request_counts;
    log(
      `${v.out}: ${c.completed} succeeded, ${c.failed} failed${
        c.cancelled ? `, ${c.cancelled} cancelled` : ""
      }`,
    );
    return 0;
  } finally {
    await store.close();
  }
}

/**
 * After this worker's run: null when it is to write OUT (it finalized the batch), else the
 * exit code and what to say (stopped, failed, or ended by another worker).
 */
function endOfRun(
  b: BatchRecord,
  me: string,
  store: BatchQueue,
  location: string | undefined,
): { code: number; message: string } | null {
  if (b.status === "in_progress") {
    return {
      code: 130,
      message: `stopped: ${b.request_counts.pending} requests left; run the same command to resume`,
    };
  }
  if (b.status === "failed") {
    return {
      code: 1,
      message: `batch ${b.id} failed: ${b.errors.map((e) => e.message).join("; ")}`,
    };
  }
  if (b.finalized_by && b.finalized_by !== me) {
    return {
      code: 0,
      message: `batch ${b.id} ${b.status}; worker ${b.finalized_by} finalized it and wrote ` +
        `its output (this worker's share is committed). Any machine can write it with: ` +
        `spool batch results ${b.id} --store ${location ? store.path : "OUT.db"} --out OUT`,
    };
  }
  return null;
}

// ---- against a server

function server(v: { server?: string }): string {
  return (v.server ?? process.env.SPOOL_SERVER ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
}

function authHeaders(v: { "api-key"?: string }): Record<string, string> {
  const key = v["api-key"] ?? process.env.SPOOL_API_KEY;
  return key ? { authorization: `Bearer ${key}` } : {};
}

async function call(url: string, init: RequestInit): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new Error(`cannot reach ${url}: ${(e as Error).message} (is \`spool serve\` running?)`);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* JSONL or text */ }
  if (!res.ok) {
    const msg = (body as { error?: { message?: string } })?.error?.message ?? text;
    throw new Error(`${init.method ?? "GET"} ${url}: ${res.status} ${msg}`);
  }
  return body;
}

const SERVER_OPTS = {
  server: { type: "string" },
  "api-key": { type: "string" },
} as const;

async function submitCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...SERVER_OPTS, window: { type: "string", default: "24h" } },
  });
  if (positionals.length !== 1) usage("batch submit takes exactly one FILE.jsonl");
  const file = positionals[0];
  const text = readFileSync(file, "utf8");
  const input = parseBatchFile(text);
  if (input.errors.length > 0) {
    printInputErrors(file, input.errors);
    return 1;
  }
  const base = server(v);
  if (input.kind === "anthropic") {
    const b = await call(`${base}/v1/messages/batches`, {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders(v) },
      body: JSON.stringify({
        requests: input.requests.map((r) => ({ custom_id: r.customId, params: r.body })),
      }),
    }) as { id: string };
    console.log(b.id);
    return 0;
  }
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([text], { type: "application/jsonl" }), file.split("/").pop()!);
  const f = await call(`${base}/v1/files`, {
    method: "POST",
    headers: authHeaders(v),
    body: form,
  }) as { id: string };
  const b = await call(`${base}/v1/batches`, {
    method: "POST",
    headers: { "content-type": "application/json", ...authHeaders(v) },
    body: JSON.stringify({
      input_file_id: f.id,
      endpoint: input.endpoint,
      completion_window: v.window,
    }),
  }) as { id: string };
  console.log(b.id);
  return 0;
}

function batchPath(id: string): string {
  return id.startsWith("msgbatch_") ? `/v1/messages/batches/${id}` : `/v1/batches/${id}`;
}

async function statusCommand(args: string[]): Promise<number> {
  const st = parseStoreArgs(args);
  if (st) return await storeStatus(st.id, st.store, st.json);
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: SERVER_OPTS,
  });
  if (positionals.length !== 1) usage("batch status takes a batch ID");
  const b = await call(`${server(v)}${batchPath(positionals[0])}`, { headers: authHeaders(v) });
  console.log(JSON.stringify(b, null, 2));
  return 0;
}

async function resultsCommand(args: string[]): Promise<number> {
  const st = parseStoreArgs(args);
  if (st) return await storeResults(st.id, st.store, st.out);
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...SERVER_OPTS, out: { type: "string", short: "o" } },
  });
  if (positionals.length !== 1) usage("batch results takes a batch ID");
  const id = positionals[0];
  const base = server(v);
  let text: string;
  if (id.startsWith("msgbatch_")) {
    const r = await call(`${base}/v1/messages/batches/${id}/results`, { headers: authHeaders(v) });
    text = typeof r === "string" ? r : JSON.stringify(r) + "\n";
  } else {
    const b = await call(`${base}/v1/batches/${id}`, { headers: authHeaders(v) }) as {
      status: string;
      output_file_id: string | null;
      error_file_id: string | null;
    };
    if (!b.output_file_id && !b.error_file_id) {
      console.error(`batch ${id} is ${b.status}: no results yet`);
      return 1;
    }
    text = "";
    for (const fid of [b.output_file_id, b.error_file_id]) {
      if (!fid) continue;
      const c = await call(`${base}/v1/files/${fid}/content`, { headers: authHeaders(v) });
      text += typeof c === "string" ? c : JSON.stringify(c) + "\n";
    }
  }
  if (v.out) writeFileSync(v.out, text);
  else process.stdout.write(text);
  return 0;
}

async function cancelCommand(args: string[]): Promise<number> {
  const st = parseStoreArgs(args);
  if (st) return await storeCancel(st.id, st.store);
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: SERVER_OPTS,
  });
  if (positionals.length !== 1) usage("batch cancel takes a batch ID");
  const b = await call(`${server(v)}${batchPath(positionals[0])}/cancel`, {
    method: "POST",
    headers: authHeaders(v),
  }) as { status?: string; processing_status?: string };
  console.log(`${positionals[0]}: ${b.status ?? b.processing_status}`);
  return 0;
}

async function listCommand(args: string[]): Promise<number> {
  const { values: v } = parseArgs({ args, options: SERVER_OPTS });
  const base = server(v);
  for (const path of ["/v1/batches", "/v1/messages/batches"]) {
    const r = await call(`${base}${path}?limit=100`, { headers: authHeaders(v) }) as {
      data: Record<string, unknown>[];
    };
    for (const b of r.data) {
      const c = b.request_counts as Record<string, number>;
      console.log(
        [b.id, b.status ?? b.processing_status, JSON.stringify(c)].join("\t"),
      );
    }
  }
  return 0;
}

const SUB: Record<string, (a: string[]) => Promise<number>> = {
  run: runCommand,
  submit: submitCommand,
  status: statusCommand,
  results: resultsCommand,
  cancel: cancelCommand,
  list: listCommand,
};

/** The batch command. */
export const batchCommands: Record<string, Command> = {
  batch: {
    usage:
      "spool batch run FILE.jsonl --model M --out OUT [--store PATH|postgres://…] [--lease S] [--stats FILE] | " +
      "submit FILE | " +
      "status ID [--store S] | results ID [--store S] | cancel ID [--store S] | list",
    summary: "overnight batch jobs: run to completion locally (resumable), or on a server",
    run: (args) => {
      const [sub, ...rest] = args;
      const f = sub ? SUB[sub] : undefined;
      if (!f) usage(`batch needs a subcommand: ${Object.keys(SUB).join(", ")}`);
      return f(rest);
    },
  },
};
