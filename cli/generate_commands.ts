/**
 * Generation commands: run, chat, eval, bench.
 */
import process from "node:process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { loadModel, type SpoolModel } from "../runtime/api.ts";
import { benchModel } from "../runtime/engine/bench.ts";
import { formatSize, parseSize } from "../runtime/experts/budget.ts";
import type { PrefetchMode } from "../runtime/experts/prefetch.ts";
import type { GenerateOptions, GenerationResult } from "../runtime/engine/generate.ts";
import { Session } from "../runtime/engine/session.ts";
import type { ChatMessage } from "../runtime/tokenizer/chat_template.ts";
import type { Command } from "./main.ts";
import { configSizes, loadConfig } from "../runtime/config/config.ts";
import { modelsDir, resolveModelPath } from "../runtime/pull/models_dir.ts";

const str = { type: "string" } as const;
const bool = { type: "boolean" } as const;

/** Sampling and model options shared by run and chat. */
const GEN_OPTIONS = {
  "n-predict": { type: "string", short: "n" },
  temp: str,
  "top-k": str,
  "top-p": str,
  "min-p": str,
  "repeat-penalty": str,
  "presence-penalty": str,
  "frequency-penalty": str,
  seed: str,
  stop: { type: "string", multiple: true },
  ctx: str,
  threads: { type: "string", short: "t" },
  "expert-cache": str,
  "ram-budget": str,
  prefetch: str,
  "expert-profile": str,
  quiet: bool,
} as const;

function usage(message: string): never {
  throw Object.assign(new Error(message), { name: "UsageError" });
}

function num(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) usage(`--${name} must be a number, got "${v}"`);
  return n;
}

function genOptions(v: Record<string, unknown>): GenerateOptions {
  const o: GenerateOptions = {
    maxTokens: num(v["n-predict"], "n-predict"),
    temperature: num(v.temp, "temp"),
    topK: num(v["top-k"], "top-k"),
    topP: num(v["top-p"], "top-p"),
    minP: num(v["min-p"], "min-p"),
    repeatPenalty: num(v["repeat-penalty"], "repeat-penalty"),
    presencePenalty: num(v["presence-penalty"], "presence-penalty"),
    frequencyPenalty: num(v["frequency-penalty"], "frequency-penalty"),
    seed: num(v.seed, "seed"),
    stop: v.stop as string[] | undefined,
  };
  for (const k of Object.keys(o) as (keyof GenerateOptions)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/**
 * `--expert-cache` / `--ram-budget`: a size ("3G", "512MiB", ...), "auto", or "off" (0: no
 * cache, every expert mapped); undefined when absent.
 */
function sizeOption(v: Record<string, unknown>, name: string): number | "auto" | undefined {
  const text = v[name];
  if (text === undefined) return undefined;
  if (String(text).trim().toLowerCase() === "off") return 0;
  try {
    return parseSize(String(text), `--${name}`);
  } catch (e) {
    usage((e as Error).message);
  }
}

function memoryOptions(v: Record<string, unknown>) {
  let prefetch: PrefetchMode | undefined;
  if (v.prefetch !== undefined) {
    const t = String(v.prefetch).toLowerCase();
    if (t !== "on" && t !== "off" && t !== "auto") {
      usage(`--prefetch takes auto, on or off, got "${v.prefetch}"`);
    }
    prefetch = t as PrefetchMode;
  }
  return {
    expertCache: sizeOption(v, "expert-cache"),
    ramBudget: sizeOption(v, "ram-budget"),
    prefetch,
    expertProfile: v["expert-profile"] === undefined ? undefined : String(v["expert-profile"]),
  };
}

/** A model path, or a name from the models directory (`spool list`). */
function modelPath(nameOrPath: string): string {
  return resolveModelPath(nameOrPath, modelsDir(loadConfig().config));
}

function open(path: string, v: Record<string, unknown>): SpoolModel {
  // loading: a line on a terminal (quiet in pipes and CI), then what the budget decided
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI && !v.quiet;
  const t0 = performance.now();
  if (tty) process.stderr.write(`loading ${path} ...`);
  const m = openModel(path, v);
  if (tty) {
    const st = m.expertStats();
    process.stderr.write(
      `\rloaded ${path} in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
        (st
          ? `: experts paged through a ${formatSize(st.capacityBytes)} cache (${st.slots} slots)`
          : ": every weight mapped") +
        "\x1b[K\n",
    );
  }
  return m;
}

function openModel(path: string, v: Record<string, unknown>): SpoolModel {
  const cfg = loadConfig().config; // flags win over the config file
  const mem = memoryOptions(v);
  const sizes = configSizes(cfg);
  return loadModel(modelPath(path), {
    threads: num(v.threads, "threads") ?? cfg.threads,
    nCtx: num(v.ctx, "ctx") ?? cfg.ctx,
    expertCache: mem.expertCache ?? sizes.expertCache,
    ramBudget: mem.ramBudget ?? sizes.ramBudget,
    prefetch: mem.prefetch,
    expertProfile: mem.expertProfile,
  });
}

/** Stream a generation to stdout; returns its result. */
async function stream(
  it: AsyncGenerator<{ text: string }, GenerationResult>,
): Promise<{ text: string; result: GenerationResult }> {
  let text = "";
  while (true) {
    const r = await it.next();
    if (r.done) return { text, result: r.value };
    text += r.value.text;
    process.stdout.write(r.value.text);
  }
}

function stats(r: GenerationResult): string {
  const pre = r.promptTokens - r.cachedTokens;
  return `prompt ${r.promptTokens} tokens (${r.cachedTokens} cached) at ` +
    `${(pre / Math.max(r.prefillSeconds, 1e-9)).toFixed(1)} tok/s, generated ` +
    `${r.completionTokens} at ${
      (r.completionTokens / Math.max(r.decodeSeconds, 1e-9)).toFixed(1)
    } ` +
    `tok/s, finish: ${r.finishReason}`;
}

async function runCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...GEN_OPTIONS, prompt: { type: "string", short: "p" }, chat: bool, system: str },
  });
  if (positionals.length !== 1) usage("run takes exactly one MODEL");
  if (v.prompt === undefined) usage("run needs -p TEXT");
  const m = open(positionals[0], v);
  try {
    const input: string | ChatMessage[] = v.chat
      ? [
        ...(v.system ? [{ role: "system", content: v.system }] : []),
        { role: "user", content: v.prompt },
      ]
      : v.prompt;
    if (!v.chat) process.stdout.write(v.prompt);
    const { result } = await stream(m.generate(input, genOptions(v)));
    process.stdout.write("\n");
    if (!v.quiet) console.error(stats(result));
    return 0;
  } finally {
    m.close();
  }
}

async function chatCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...GEN_OPTIONS, system: str },
  });
  if (positionals.length !== 1) usage("chat takes exactly one MODEL");
  const m = open(positionals[0], v);
  const history: ChatMessage[] = v.system ? [{ role: "system", content: v.system }] : [];
  const rl = createInterface({ input: process.stdin, terminal: false });
  const tty = Boolean(process.stdin.isTTY);
  const prompt = () => tty && process.stdout.write("> ");
  console.error(
    `spool chat: ${m.model.config.arch}, context ${m.nCtx}. /reset clears the history, ` +
      `/exit quits.`,
  );
  prompt();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === "/exit" || text === "/quit") break;
      if (text === "/reset") {
        history.length = v.system ? 1 : 0;
        console.error("(history cleared)");
        prompt();
        continue;
      }
      if (!text) {
        prompt();
        continue;
      }
      history.push({ role: "user", content: text });
      const { text: reply, result } = await stream(m.generate(history, genOptions(v)));
      process.stdout.write("\n");
      history.push({ role: "assistant", content: reply });
      if (!v.quiet) console.error(`[${stats(result)}]`);
      prompt();
    }
    return 0;
  } finally {
    rl.close();
    m.close();
  }
}

function evalCommand(args: string[]): number {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      prompt: str,
      tokens: str,
      top: { type: "string", default: "5" },
      json: bool,
      threads: { type: "string", short: "t" },
    },
  });
  if (positionals.length !== 1) usage("eval takes exactly one MODEL");
  if ((v.prompt === undefined) === (v.tokens === undefined)) {
    usage("eval needs --prompt TEXT or --tokens ID,ID,...");
  }
  const k = num(v.top, "top") ?? 5;
  const m = loadModel(modelPath(positionals[0]), { threads: num(v.threads, "threads") });
  try {
    const tokens = v.tokens !== undefined
      ? v.tokens.split(",").map((t) => Number(t.trim()))
      : m.tokenize(v.prompt!);
    const s = new Session(m.model, { nCtx: Math.max(tokens.length, 1) });
    const V = m.config.nVocab;
    const logits = s.eval(tokens, "all");
    s.close();
    const positions = tokens.map((token, p) => {
      const row = logits.subarray(p * V, p * V + V);
      const idx: number[] = [];
      for (let i = 0; i < V; i++) {
        if (idx.length < k) idx.push(i);
        else if (row[i] > row[idx[k - 1]]) idx[k - 1] = i;
        else continue;
        idx.sort((a, b) => row[b] - row[a] || a - b);
      }
      return { token, top: idx.map((i) => [i, row[i]]) };
    });
    if (v.json) console.log(JSON.stringify({ tokens, positions }));
    else {
      for (const [p, pos] of positions.entries()) {
        const top = pos.top.map(([i, l]) =>
          `${i}(${JSON.stringify(m.tokenizer.tokenText(i))}) ${l.toFixed(3)}`
        );
        console.log(`${p}\t${pos.token}\t${top.join("  ")}`);
      }
    }
    return 0;
  } finally {
    m.close();
  }
}

function benchCommand(args: string[]): number {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      prefill: { type: "string", default: "64" },
      decode: { type: "string", default: "32" },
      reps: { type: "string", default: "5" },
      threads: { type: "string", short: "t" },
      "expert-cache": str,
      "ram-budget": str,
      prefetch: str,
      "expert-profile": str,
      json: bool,
    },
  });
  if (positionals.length !== 1) usage("bench takes exactly one MODEL");
  const r = benchModel(modelPath(positionals[0]), {
    prefill: num(v.prefill, "prefill"),
    decode: num(v.decode, "decode"),
    reps: num(v.reps, "reps"),
    threads: num(v.threads, "threads"),
    ...memoryOptions(v),
  });
  if (v.json) console.log(JSON.stringify(r));
  else {
    console.log(
      `${positionals[0]}: prefill ${v.prefill} tokens ${r.prefillTokS.toFixed(1)} tok/s, ` +
        `decode ${v.decode} tokens ${r.decodeTokS.toFixed(1)} tok/s ` +
        `(median of ${v.reps}; load ${r.loadSeconds.toFixed(2)} s)`,
    );
    const c = r.cache;
    if (c) {
      const d = r.decodeCache!;
      console.log(
        `expert cache: ${c.slots} slots of ${formatSize(c.slotBytes)} ` +
          `(${formatSize(c.capacityBytes)}), all runs: hit rate ` +
          `${(c.hitRate * 100).toFixed(1)}%, read ${formatSize(c.bytesRead)} at ` +
          `${c.readGBps.toFixed(2)} GB/s, ${c.evictions} evictions`,
      );
      console.log(
        `expert cache, decode only: hit rate ${(d.hitRate * 100).toFixed(1)}%, ` +
          `${formatSize(d.bytesPerToken)} read per token at ${d.readGBps.toFixed(2)} GB/s, ` +
          `stall ${(d.stallSecondsPerToken * 1000).toFixed(2)} ms per token`,
      );
      const pf = r.prefetch;
      console.log(
        `next-layer prefetch: ${pf?.mode ?? "?"}` +
          (pf?.decided
            ? ` (measured: ${pf.decided}; ` +
              `${(pf.onSecondsPerToken * 1000).toFixed(1)} ms/token with, ` +
              `${(pf.offSecondsPerToken * 1000).toFixed(1)} ms/token without)`
            : "") +
          (c.predicted > 0
            ? `; precision ${(c.precision * 100).toFixed(1)}%, recall ` +
              `${(c.recall * 100).toFixed(1)}% (${c.predicted} experts predicted)`
            : ""),
      );
      if (c.pinned > 0) console.log(`pinned from the profile: ${c.pinned} experts`);
    }
  }
  return 0;
}

/** The generation subcommands. */
export const generateCommands: Record<string, Command> = {
  run: {
    usage:
      "spool run MODEL -p TEXT [--chat] [-n N] [--temp T] [--seed S] [--expert-cache SIZE] ...",
    summary: "generate text from a prompt, streamed",
    run: runCommand,
  },
  chat: {
    usage: "spool chat MODEL [--system TEXT] [--temp T] [--expert-cache SIZE] ...",
    summary: "interactive chat with history",
    run: chatCommand,
  },
  eval: {
    usage: "spool eval MODEL --prompt TEXT [--top K] [--json]",
    summary: "top-K logits at every prompt position (parity checks)",
    run: evalCommand,
  },
  bench: {
    usage:
      "spool bench MODEL [--prefill 64] [--decode 32] [--reps 5] [--threads N] [--expert-cache SIZE]",
    summary: "prefill and decode tok/s",
    run: benchCommand,
  },
};
