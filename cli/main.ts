/**
 * The `spool` command line.
 *
 *   spool demo                      make the demo model (random weights) and show it
 *   spool inspect FILE [--json]     what a GGUF file holds and what a token costs
 *   spool quantize IN OUT TYPE      requantize a GGUF file (F16, BF16, Q8_0, Q4_0, Q4_K, ...)
 *   spool synth --arch A ...        write a random-weight MoE model of any size
 *   spool moefy DENSE OUT --experts N  a dense llama as an exact MoE (real weights)
 *
 * Errors print a one-line message and a hint, not a stack trace (SPOOL_DEBUG=1 shows it).
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { readGGUF } from "../runtime/gguf/reader.ts";
import { formatReport, inspectGGUF } from "../runtime/inspect.ts";
import { commands as extraCommands } from "./commands.ts";
import { serveCommands } from "./serve_command.ts";
import { shipCommands } from "./ship_commands.ts";
import { batchCommands } from "./batch_commands.ts";
import { moefyCommands } from "./moefy_command.ts";

/** Version of this build. */
export const VERSION = "0.1.0";

/** A subcommand: its one-line usage and its implementation. */
export interface Command {
  usage: string;
  summary: string;
  run(args: string[]): Promise<number> | number;
}

/** Raised for bad command-line usage; printed with the command's usage line. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function inspectCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false } },
  });
  if (positionals.length !== 1) throw new UsageError("inspect takes exactly one FILE");
  const file = positionals[0];
  const report = inspectGGUF(readGGUF(file), file);
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else console.log(formatReport(report));
  return 0;
}

/** Every subcommand, by name. */
export const COMMANDS: Record<string, Command> = {
  inspect: {
    usage: "spool inspect FILE [--json]",
    summary:
      "architecture, hyperparameters, tokenizer, tensor bytes by type, dense vs expert bytes",
    run: inspectCommand,
  },
  ...extraCommands,
  ...serveCommands,
  ...shipCommands,
  ...batchCommands,
  ...moefyCommands,
};

function help(): string {
  const lines = [
    `spool ${VERSION} — local inference for Mixture-of-Experts models`,
    "",
    "Commands:",
  ];
  for (const c of Object.values(COMMANDS)) lines.push(`  ${c.usage.padEnd(48)} ${c.summary}`);
  lines.push("", "Run `spool COMMAND --help` for a command's options.");
  return lines.join("\n");
}

/** Run the CLI with `argv` (without the runtime and script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    console.log(help());
    return 0;
  }
  if (name === "--version" || name === "version") {
    console.log(`spool ${VERSION}`);
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`spool: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  if ((rest.includes("--help") || rest.includes("-h")) && name !== "synth") {
    console.log(`usage: ${cmd.usage}\n  ${cmd.summary}`);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    const err = e as Error;
    if (
      err instanceof UsageError || err.name === "UsageError" ||
      (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      console.error(`spool ${name}: ${err.message}\nusage: ${cmd.usage}`);
      return 2;
    }
    if (process.env.SPOOL_DEBUG) console.error(err);
    else console.error(`spool ${name}: ${err.message}`);
    const hint = hintFor(err);
    if (hint) console.error(`hint: ${hint}`);
    return 1;
  }
}

function hintFor(e: Error): string | undefined {
  const own = (e as { hint?: unknown }).hint; // errors that carry their own hint
  if (typeof own === "string") return own;
  switch (e.name) {
    case "GGUFError":
      return (e as { code?: string }).code === "io"
        ? "check the path and its permissions"
        : "the file is not a valid GGUF file (truncated download? wrong file?)";
    case "KernelLoadError":
      return "build the native kernels with `deno task build:kernels` (or ./spool, which does it)";
    case "KernelError":
      return "a native kernel rejected its input; SPOOL_DEBUG=1 shows where";
    case "BudgetError":
      return "give a larger --ram-budget or --expert-cache, or leave both out to map the model";
  }
  if ((e as { code?: string }).code === "ENOENT") return "check the path";
  return undefined;
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
