/**
 * llama.cpp as an oracle, through node-llama-cpp (prebuilt llama.cpp, CPU, offline).
 *
 * {@link runLlamaOracle} runs the jobs in ONE child process (`deno run -A` of this file), so
 * that a GGML_ASSERT abort inside llama.cpp fails the job (and names the file being loaded)
 * instead of killing the test runner. The child loads each model, tokenizes the text (or takes
 * the given tokens), evaluates them in one batch on the plain (non flash-attention) path with
 * `threads: 2`, and returns the full-vocabulary logits at the requested positions.
 *
 * Protocol: the jobs go as JSON on stdin; the child prints one JSON line per job, prefixed
 * with `@@oracle `, and `@@start <i>` before each, so a crash is attributed to its job.
 *
 * @module
 */

/** One model to load and evaluate. */
export interface OracleJob {
  /** GGUF path. */
  path: string;
  /** Text to tokenize (without special tokens) and evaluate; or give `tokens`. */
  text?: string;
  /** Token ids to evaluate instead of `text`. */
  tokens?: number[];
  /** Positions whose logits to return: "last" (default), "all", or none. */
  logits?: "last" | "all" | "none";
  /** Context size (default 128). */
  contextSize?: number;
}

/** What llama.cpp did with one {@link OracleJob}. */
export interface OracleResult {
  /** GGUF path. */
  path: string;
  /** Whether the model loaded and evaluated. */
  ok: boolean;
  /** Error message (or the crash's stderr tail) when not ok. */
  error?: string;
  /** Vocabulary size llama.cpp reports. */
  nVocab?: number;
  /** Token ids evaluated. */
  tokens?: number[];
  /** Logits at the requested positions, each of `nVocab` values in token order. */
  logits?: number[][];
  /** llama.cpp warnings and errors logged while loading and evaluating. */
  warnings?: string[];
  /** Load + evaluate wall time in ms. */
  ms?: number;
}

import type { ControlledEvaluateInputItem, Token } from "node-llama-cpp";

const PREFIX = "@@oracle ";
const START = "@@start ";

/**
 * Run jobs in one child process and return one result per job (a crash fails the job it
 * happened in and every job after it, with the child's stderr tail as the error).
 */
export async function runLlamaOracle(jobs: OracleJob[]): Promise<OracleResult[]> {
  const self = new URL(import.meta.url).pathname;
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", self],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(jobs)));
  await w.close();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  const results: OracleResult[] = [];
  let started = -1;
  for (const line of stdout.split("\n")) {
    if (line.startsWith(PREFIX)) results.push(JSON.parse(line.slice(PREFIX.length)));
    else if (line.startsWith(START)) started = Number(line.slice(START.length));
  }
  if (results.length < jobs.length) {
    const tail = stderr.split("\n").filter((l) => /assert|error|abort|fail/i.test(l)).slice(-5)
      .join("\n") || stderr.slice(-2000);
    for (let i = results.length; i < jobs.length; i++) {
      results.push({
        path: jobs[i].path,
        ok: false,
        error: i === started
          ? `llama.cpp crashed (exit ${out.code}) on this file: ${tail}`
          : `not run: the oracle process crashed on ${jobs[started]?.path ?? "startup"}`,
      });
    }
  }
  return results;
}

async function childMain(): Promise<void> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const input = await new Response(Deno.stdin.readable).text();
  const jobs = JSON.parse(input) as OracleJob[];
  const logs: string[] = [];
  const llama = await getLlama({
    gpu: false,
    build: "never",
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      if (level === LlamaLogLevel.warn || level === LlamaLogLevel.error) {
        logs.push(`${level}: ${message.trim()}`);
      }
    },
  });
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    console.log(`${START}${i}`);
    logs.length = 0;
    const t0 = performance.now();
    let res: OracleResult;
    try {
      const model = await llama.loadModel({ modelPath: job.path });
      const ctx = await model.createContext({
        contextSize: job.contextSize ?? 128,
        threads: 2,
        batchSize: job.contextSize ?? 128,
        flashAttention: false,
      });
      try {
        const tokens = job.tokens ?? [...model.tokenize(job.text ?? "Hello world")];
        const mode = job.logits ?? "last";
        const want = (p: number) => mode === "all" || (mode === "last" && p === tokens.length - 1);
        const seq = ctx.getSequence();
        const out = await seq.controlledEvaluate(
          tokens.map((t, p): ControlledEvaluateInputItem =>
            want(p) ? [t as Token, { generateNext: { logits: true } }] : t as Token
          ),
        );
        // node-llama-cpp returns a Map over the whole vocabulary; its size is n_vocab.
        let nVocab = 0;
        const logits: number[][] = [];
        for (let p = 0; p < tokens.length; p++) {
          if (!want(p)) continue;
          const m = out[p]?.next?.logits ?? new Map<number, number>();
          nVocab = Math.max(nVocab, m.size);
          const row = new Array<number>(m.size).fill(NaN);
          for (const [tok, v] of m) row[tok as number] = v;
          logits.push(row);
        }
        res = {
          path: job.path,
          ok: true,
          nVocab,
          tokens: tokens.map(Number),
          logits,
          warnings: logs.slice(),
          ms: performance.now() - t0,
        };
      } finally {
        await ctx.dispose();
        await model.dispose();
      }
    } catch (e) {
      res = {
        path: job.path,
        ok: false,
        error: String((e as Error).message),
        warnings: logs.slice(),
      };
    }
    console.log(PREFIX + JSON.stringify(res));
  }
  await llama.dispose();
}

if (import.meta.main) await childMain();
