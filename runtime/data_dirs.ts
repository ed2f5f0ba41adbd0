/**
 * Where llama.cpp's vocab-only GGUF files and chat templates are read from (tests, parity
 * fixtures, `spool synth` presets with a real vocabulary): `SPOOL_VOCAB_DIR` and
 * `SPOOL_TEMPLATE_DIR`, else the checkout of the llama.cpp source node-llama-cpp ships that
 * `./spool test` prepares (`test/fixtures/llama.cpp/models/`; `deno run -A
 * test/_llama_source.ts` makes it and prints the two variables). Nothing is read from beside
 * the repository.
 *
 * @module
 */
import process from "node:process";
import { fileURLToPath } from "node:url";

function dir(env: string, sub: string): string {
  const d = process.env[env] ??
    fileURLToPath(new URL(`../test/fixtures/llama.cpp/models/${sub}`, import.meta.url));
  return d.replace(/\/?$/, "/");
}

/** The folder of vocab-only GGUF files, ending in "/". */
export function vocabDir(): string {
  return dir("SPOOL_VOCAB_DIR", "");
}

/** The folder of chat templates (.jinja), ending in "/". */
export function templateDir(): string {
  return dir("SPOOL_TEMPLATE_DIR", "templates");
}
