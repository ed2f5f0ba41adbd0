/**
 * `spool tokenize MODEL [TEXT] [--file FILE] [--json] [--add-special] [--no-parse-special]`:
 * print the token ids of a text, with the tokenizer of a GGUF file (vocab-only files work).
 *
 * - TEXT: ids printed space-separated on one line (or a JSON array with `--json`); with no
 *   TEXT and no `--file`, the text is read from standard input.
 * - `--file FILE`: FILE holds a JSON array of strings; prints a JSON array of id arrays.
 * - Like llama.cpp's `llama-tokenize`, the text of special tokens (e.g. `<|im_start|>`) becomes
 *   those tokens (`--no-parse-special` leaves it as text, as `test-tokenizer-0` does); no
 *   BOS/EOS unless `--add-special` (then as the vocabulary asks). User-defined tokens are
 *   always split out, as in llama.cpp.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { tokenizerFromGGUF } from "./tokenizer.ts";

const USAGE =
  "spool tokenize MODEL [TEXT] [--file FILE] [--json] [--add-special] [--no-parse-special]";

function usageError(message: string): Error {
  return Object.assign(new Error(message), { name: "UsageError" });
}

async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of process.stdin) {
    chunks.push(typeof c === "string" ? new TextEncoder().encode(c) : c);
  }
  let n = 0;
  for (const c of chunks) n += c.length;
  const all = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return new TextDecoder().decode(all);
}

/**
 * Run `spool tokenize` with `args` (after the subcommand name); prints to stdout and returns
 * the exit code. Bad usage throws an Error named "UsageError".
 */
export async function tokenizeMain(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      file: { type: "string" },
      json: { type: "boolean", default: false },
      "add-special": { type: "boolean", default: false },
      "no-parse-special": { type: "boolean", default: false },
    },
  });
  if (positionals.length < 1 || positionals.length > 2) {
    throw usageError(`tokenize takes MODEL and an optional TEXT\nusage: ${USAGE}`);
  }
  if (values.file !== undefined && positionals.length === 2) {
    throw usageError("give either TEXT or --file, not both");
  }
  const tok = tokenizerFromGGUF(positionals[0]);
  const opts = { addSpecial: values["add-special"], parseSpecial: !values["no-parse-special"] };
  if (values.file !== undefined) {
    let texts: unknown;
    try {
      texts = JSON.parse(readFileSync(values.file, "utf8"));
    } catch (e) {
      throw usageError(`--file ${values.file}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!Array.isArray(texts) || !texts.every((t) => typeof t === "string")) {
      throw usageError(`--file ${values.file}: expected a JSON array of strings`);
    }
    console.log(JSON.stringify(texts.map((t: string) => tok.encode(t, opts))));
    return 0;
  }
  const text = positionals.length === 2 ? positionals[1] : await readStdin();
  const ids = tok.encode(text, opts);
  console.log(values.json ? JSON.stringify(ids) : ids.join(" "));
  return 0;
}
