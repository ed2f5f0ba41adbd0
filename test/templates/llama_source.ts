/**
 * Files of the llama.cpp source that node-llama-cpp ships as a git bundle
 * (`node_modules/node-llama-cpp/llama/gitRelease.bundle`): its chat templates
 * (`models/templates/`) are the test data of the tool-call and template tests. The bundle is
 * fetched once into a bare repository under `test/fixtures/` (git-ignored; about 4 s), then
 * files are read with `git show`. Needs `git`.
 */

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BUNDLE = join(ROOT, "node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
const REPO = join(ROOT, "test", "fixtures", "llama-src.git");

function git(args: string[], cwd?: string): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", maxBuffer: 1 << 26 });
}

/** The bare repository holding the bundle's commit (fetched on first use). */
export function llamaSourceRepo(): string {
  if (existsSync(join(REPO, "HEAD")) && existsSync(join(REPO, "refs", "tags", "bundle"))) {
    return REPO;
  }
  if (!existsSync(BUNDLE)) {
    throw new Error(`llama.cpp source bundle not found at ${BUNDLE} (npm install first)`);
  }
  // fetched into a private folder, then renamed: a concurrent test run sees all or nothing
  const tmp = `${REPO}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(dirname(REPO), { recursive: true });
  git(["init", "-q", "--bare", tmp]);
  git(["fetch", "-q", BUNDLE, "HEAD"], tmp);
  git(["tag", "bundle", "FETCH_HEAD"], tmp);
  try {
    renameSync(tmp, REPO);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another run got there first
  }
  return REPO;
}

/** A file of the bundled llama.cpp source, e.g. `models/templates/GLM-4.6.jinja`. */
export function llamaSourceFile(path: string): string {
  return git(["show", `bundle:${path}`], llamaSourceRepo());
}

/** A chat template of llama.cpp's `models/templates/` by file name (`GLM-4.6.jinja`). */
export function llamaTemplate(name: string): string {
  return llamaSourceFile(`models/templates/${name}`);
}

/**
 * A file of the bundled llama.cpp source written out under `test/fixtures/llama-src/` (once),
 * for tests that need a path (vocab GGUFs such as `models/ggml-vocab-qwen2.gguf`).
 */
export function llamaSourceFilePath(path: string): string {
  const out = join(ROOT, "test", "fixtures", "llama-src", path);
  if (!existsSync(out)) {
    const data = execFileSync("git", ["show", `bundle:${path}`], {
      cwd: llamaSourceRepo(),
      maxBuffer: 1 << 28,
    });
    mkdirSync(dirname(out), { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, data);
    renameSync(tmp, out);
  }
  return out;
}
