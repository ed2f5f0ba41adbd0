/**
 * Test data from llama.cpp's own source, as node-llama-cpp ships it
 * (`node_modules/node-llama-cpp/llama/gitRelease.bundle`): its vocab-only GGUF files with
 * their test vectors (`models/ggml-vocab-*`) and its chat templates (`models/templates/`).
 * The bundle is cloned once (without a checkout) into `test/fixtures/llama.cpp/`, which is
 * git-ignored, and the files a test asks for are checked out on demand. A plain clone of
 * spool has everything this needs: nothing is read from beside the repository.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DIR = `${ROOT}test/fixtures/llama.cpp`;
const BUNDLE = `${ROOT}node_modules/node-llama-cpp/llama/gitRelease.bundle`;

/** Why llama.cpp's source cannot be had (no bundle, no git), or null when it can. */
export function llamaSourceMissing(): string | null {
  if (existsSync(`${DIR}/.git`)) return null;
  if (!existsSync(BUNDLE)) return `node-llama-cpp's source bundle is missing (${BUNDLE})`;
  try {
    execFileSync("git", ["--version"], { stdio: "ignore" });
  } catch {
    return "git is not installed";
  }
  return null;
}

function ensureClone(): void {
  if (existsSync(`${DIR}/.git`)) return;
  const why = llamaSourceMissing();
  if (why) throw new Error(`Cannot read llama.cpp's source: ${why}`);
  mkdirSync(`${ROOT}test/fixtures`, { recursive: true });
  const tmp = `${DIR}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  execFileSync("git", ["clone", "-q", "--no-checkout", BUNDLE, tmp], { stdio: "ignore" });
  try {
    renameSync(tmp, DIR);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process won the race
  }
}

/** Path of `rel` (e.g. "models/templates/Qwen-Qwen3-0.6B.jinja") in llama.cpp's source. */
export function llamaFile(rel: string): string {
  const path = `${DIR}/${rel}`;
  if (existsSync(path)) return path;
  ensureClone();
  execFileSync("git", ["-C", DIR, "checkout", "-q", "HEAD", "--", rel], { stdio: "ignore" });
  return path;
}

/** Path of llama.cpp's chat template `name` (e.g. "Qwen-Qwen3-0.6B.jinja"). */
export function llamaTemplate(name: string): string {
  return llamaFile(`models/templates/${name}`);
}

/** Path of llama.cpp's vocab-only `ggml-vocab-NAME.gguf` (e.g. "qwen2"). */
export function llamaVocab(name: string): string {
  return llamaFile(`models/ggml-vocab-${name}.gguf`);
}

/** Checks out every vocab file and template (for runners that point env vars at them). */
export function prepareLlamaSource(): { vocabDir: string; templateDir: string } {
  ensureClone();
  execFileSync("git", [
    "-C",
    DIR,
    "checkout",
    "-q",
    "HEAD",
    "--",
    "models/ggml-vocab-*",
    "models/templates",
  ], { stdio: "ignore" });
  return { vocabDir: `${DIR}/models`, templateDir: `${DIR}/models/templates` };
}

if (import.meta.main) {
  // `deno run -A test/_llama_source.ts`: prints the two folders as shell assignments
  const d = prepareLlamaSource();
  console.log(`SPOOL_VOCAB_DIR=${d.vocabDir}\nSPOOL_TEMPLATE_DIR=${d.templateDir}`);
}
