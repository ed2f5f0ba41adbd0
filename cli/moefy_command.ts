/**
 * `spool moefy DENSE.gguf OUT.gguf --experts N [--top-k K --seed S]`: rewrite a dense llama
 * model as a Mixtral-form MoE that spool can run (runtime/gguf/moefy.ts). Without --top-k the
 * result computes exactly what the dense model computes; with K < N it is a sparse variant
 * with a seeded random router.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { MoefyError, moefyFile } from "../runtime/gguf/moefy.ts";
import { formatBytes } from "../runtime/inspect.ts";
import type { Command } from "./main.ts";

const USAGE = "spool moefy DENSE.gguf OUT.gguf --experts N [--top-k K --seed S]";

function intOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) {
    throw Object.assign(new Error(`--${name} ${v}: expected a whole number`), {
      name: "UsageError",
    });
  }
  return Number(v);
}

function moefyCommand(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      experts: { type: "string", short: "n" },
      "top-k": { type: "string", short: "k" },
      seed: { type: "string" },
      quiet: { type: "boolean", default: false },
    },
  });
  if (positionals.length !== 2) {
    throw Object.assign(new Error("moefy takes DENSE.gguf OUT.gguf"), { name: "UsageError" });
  }
  const experts = intOption("experts", values.experts);
  if (experts === undefined) {
    throw Object.assign(new Error("--experts N is required"), { name: "UsageError" });
  }
  const [input, output] = positionals;
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI && !values.quiet;
  const t0 = performance.now();
  try {
    const r = moefyFile(input, output, {
      experts,
      topK: intOption("top-k", values["top-k"]),
      seed: intOption("seed", values.seed),
      onLayer: tty ? (i, n) => process.stderr.write(`\r  layer ${i + 1}/${n}`) : undefined,
    });
    if (tty) process.stderr.write("\n");
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      `${output}: ${r.nLayer} layers x ${r.experts} experts of FFN ${r.nFfExp} ` +
        `(dense FFN ${r.nFf}), ${r.topK} used per token, ${formatBytes(r.fileSize)} in ${s} s`,
    );
    console.log(
      r.exact
        ? `  exact: router zero, all ${r.experts} experts used, down (${
          r.downTypes.join(", ")
        }) scales x${r.experts}: computes what the dense model computes`
        : `  sparse: seeded random router (not equal to the dense model)`,
    );
    return 0;
  } catch (e) {
    if (e instanceof MoefyError) {
      const hint = e.code === "not_dense_llama"
        ? "moefy takes a dense llama-architecture GGUF (spool inspect FILE shows it)"
        : e.code === "inexact"
        ? "choose one of the valid --experts values named above"
        : undefined;
      throw Object.assign(e, { hint });
    }
    throw e;
  }
}

/** The `moefy` command. */
export const moefyCommands: Record<string, Command> = {
  moefy: {
    usage: USAGE,
    summary: "rewrite a dense llama GGUF as an exact Mixtral-form MoE (real weights for spool)",
    run: moefyCommand,
  },
};
