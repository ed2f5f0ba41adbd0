/**
 * Where llama.cpp's vocab-only GGUF files and chat templates are read from (tests, parity
 * fixtures, `spool synth` presets with a real vocabulary): `SPOOL_VOCAB_DIR` and
 * `SPOOL_TEMPLATE_DIR` (`./spool test` sets them from the llama.cpp source node-llama-cpp
 * ships when a plain clone has nothing beside it), else the project's `../shared` folder
 * beside the repository. The one place that names that folder.
 *
 * @module
 */
import process from "node:process";
import { fileURLToPath } from "node:url";

function dir(env: string, sub: string): string {
  const d = process.env[env] ?? fileURLToPath(new URL(`../../shared/${sub}/`, import.meta.url));
  return d.replace(/\/?$/, "/");
}

/** The folder of vocab-only GGUF files, ending in "/". */
export function vocabDir(): string {
  return dir("SPOOL_VOCAB_DIR", "vocab");
}

/** The folder of chat templates (.jinja), ending in "/". */
export function templateDir(): string {
  return dir("SPOOL_TEMPLATE_DIR", "templates");
}
