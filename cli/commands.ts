/**
 * Subcommands beyond `inspect`: quantize, synth and demo.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { cacheDir } from "../ffi/mod.ts";
import { readGGUF } from "../runtime/gguf/reader.ts";
import { QUANTIZE_TARGETS, requantizeFile } from "../runtime/gguf/requantize.ts";
import { formatBytes, formatReport, inspectGGUF } from "../runtime/inspect.ts";
import { synthMain, writeSyntheticModel } from "../runtime/models/synth.ts";
import { loadModel } from "../runtime/api.ts";
import type { Command } from "./main.ts";
import { generateCommands } from "./generate_commands.ts";
import { tokenizeMain } from "../runtime/tokenizer/cli.ts";

const isTTY = () => Boolean(process.stderr.isTTY) && !process.env.CI;

function quantizeCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { quiet: { type: "boolean", default: false } },
  });
  if (positionals.length !== 3) {
    throw Object.assign(new Error("quantize takes IN OUT TYPE"), { name: "UsageError" });
  }
  const [input, output, type] = positionals;
  const t0 = performance.now();
  const tty = isTTY() && !values.quiet;
  const n = requantizeFile(input, output, type, {
    onTensor: (t, _type, i, total) => {
      if (tty) process.stderr.write(`\r  ${i + 1}/${total} ${t.name.padEnd(40)}`);
    },
  });
  if (tty) process.stderr.write("\n");
  const g = readGGUF(output);
  const s = (performance.now() - t0) / 1000;
  console.log(
    `${output}: ${n} tensors quantized to ${type.toUpperCase()}, ${formatBytes(g.fileSize)} ` +
      `in ${s.toFixed(1)} s`,
  );
  return 0;
}

/** Where the demo model lives. */
export function demoModelPath(): string {
  return join(cacheDir(), "demo", "spool-demo-qwen3moe-q4k.gguf");
}

async function demoCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { out: { type: "string" }, json: { type: "boolean", default: false } },
  });
  const path = values.out ?? demoModelPath();
  mkdirSync(join(path, ".."), { recursive: true });
  const tty = isTTY();
  console.log(
    "spool demo: a small qwen3moe-shaped model with RANDOM weights (not a trained model)",
  );
  const r = writeSyntheticModel(path, {
    arch: "qwen3moe",
    preset: "small",
    types: "Q4_K",
    seed: 42,
    fill: "fast",
    name: "spool-demo (random weights)",
    onProgress: tty
      ? (done, total) =>
        process.stderr.write(`\r  writing ${formatBytes(done)} / ${formatBytes(total)}   `)
      : undefined,
  });
  if (tty) process.stderr.write("\n");
  console.log(`wrote ${path} (${formatBytes(r.bytes)}) in ${r.seconds.toFixed(1)} s\n`);
  const report = inspectGGUF(readGGUF(path), path);
  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  console.log(formatReport(report));
  const prompt = "Once upon a time";
  const gen = async (m: ReturnType<typeof loadModel>) => {
    const it = m.generate(prompt, { maxTokens: 32, temperature: 0 });
    const ids: number[] = [];
    let text = "";
    let r = await it.next();
    while (!r.done) {
      if (r.value.token >= 0) ids.push(r.value.token);
      text += r.value.text;
      r = await it.next();
    }
    return { ids, text, res: r.value };
  };
  const speed = (
    res: {
      promptTokens: number;
      prefillSeconds: number;
      completionTokens: number;
      decodeSeconds: number;
    },
  ) =>
    `prefill ${(res.promptTokens / res.prefillSeconds).toFixed(1)} tok/s, decode ` +
    `${(res.completionTokens / res.decodeSeconds).toFixed(1)} tok/s`;
  let ids: number[] = [];
  const m = loadModel(path, { expertCache: 0 });
  try {
    console.log(`\n1. every expert mapped: 32 tokens (greedy) from ${JSON.stringify(prompt)}`);
    const g = await gen(m);
    ids = g.ids;
    console.log(`tokens: ${g.ids.join(" ")}`);
    console.log(`text:   ${JSON.stringify(g.text)}  (random weights: not language)`);
    console.log(
      `speed:  ${speed(g.res)} on ${m.model.threads} threads; each token reads ` +
        formatBytes(report.bytesPerToken),
    );
  } finally {
    m.close();
  }
  // spool's main job: the experts do not fit, so they are read from disk into a cache
  const budget = Math.floor(report.expertBytes / 3);
  const c = loadModel(path, { expertCache: budget });
  try {
    console.log(
      `\n2. experts paged from disk into a ${formatBytes(budget)} cache (a third of the ` +
        `${formatBytes(report.expertBytes)} of experts), same prompt`,
    );
    const g = await gen(c);
    const s = c.expertStats()!;
    console.log(
      `tokens: ${
        g.ids.join(" ") === ids.join(" ") ? "identical to the mapped run" : g.ids.join(" ")
      }`,
    );
    console.log(`speed:  ${speed(g.res)}`);
    console.log(
      `cache:  ${s.slots} slots, hit rate ${(s.hitRate * 100).toFixed(1)}%, ` +
        `${formatBytes(s.bytesRead)} read at ${s.readGBps.toFixed(2)} GB/s, ` +
        `stall ${(s.perToken.stallSeconds * 1000).toFixed(2)} ms/token, ` +
        `next-layer predictor precision ${(s.precision * 100).toFixed(0)}%`,
    );
  } finally {
    c.close();
  }
  return 0;
}

/** Subcommands registered by name. */
export const commands: Record<string, Command> = {
  ...generateCommands,
  tokenize: {
    usage: "spool tokenize MODEL [TEXT] [--file FILE] [--json]",
    summary: "token ids of a text (works on vocab-only GGUF files)",
    run: tokenizeMain,
  },
  demo: {
    usage: "spool demo [--out FILE] [--json]",
    summary: "make the demo model (random weights), show what it holds, generate from it",
    run: demoCommand,
  },
  quantize: {
    usage: `spool quantize IN OUT TYPE`,
    summary: `requantize weights to ${QUANTIZE_TARGETS.join(", ")}`,
    run: quantizeCommand,
  },
  synth: {
    usage: "spool synth --arch ARCH --out FILE [--preset P] [--type T] ...",
    summary: "write a random-weight MoE model of any size (see --help)",
    run: synthMain,
  },
};
