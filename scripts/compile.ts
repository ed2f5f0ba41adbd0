/**
 * Builds spool as one executable file with the native kernel library inside.
 *
 *   deno run -A scripts/compile.ts bun  [--target linux-x64,linux-arm64,darwin-arm64|all] [--outdir dist]
 *   deno run -A scripts/compile.ts deno [--target linux-x64|linux-arm64|darwin-arm64] [--output FILE]
 *
 * (`deno task compile:bun`, `deno task compile`.)
 *
 * **bun**: `bun build --compile` (Bun's runtimes for other targets come from the npm
 * registry, `@oven/bun-<os>-<arch>`). For each target it builds the kernels for that target
 * (kernels/build.ts; linux-arm64 with aarch64-linux-gnu-gcc, darwin-arm64 off a Mac with
 * `zig cc -target aarch64-macos.11.0`, zig fetched once from PyPI by kernels/zig.ts), writes
 * an entry file under
 * `dist/.build/` that embeds the library (`with { type: "file" }`) and calls
 * cli/compiled_entry.ts, and compiles `dist/spool-<target>`. At start-up the binary extracts
 * the library to `~/.cache/spool/kernels/<sha256>/` and dlopens it. A target whose kernels
 * cannot be built here (no aarch64-linux-gnu-gcc; no zig: no pip, or PyPI unreachable) gets
 * a binary without them, which says so when a command needs them; the script reports it and
 * does not fail for that reason.
 *
 * **deno**: `deno compile -A --include kernels/dist/<target>/libspool.* --output dist/spool
 * cli/main.ts` (ffi/mod.ts extracts the included library the same way). `deno compile` needs
 * its runtime, `denort`, from dl.deno.land; unless `DENORT_BIN` is set or denort is in
 * Deno's cache, the script probes that host for a few seconds first and fails at once with
 * a clear message when it is unreachable.
 *
 * @module
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  buildKernels,
  hostTarget,
  type Target,
  ToolchainUnavailableError,
} from "../kernels/build.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** Targets the compile script knows. */
export const TARGETS = ["linux-x64", "linux-arm64", "darwin-arm64"] as const;

/** Raised when a binary cannot be built; the message says why and what to do. */
export class CompileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CompileError";
  }
}

function bunTarget(t: Target): string {
  return `bun-${t.replace("arm64", "aarch64")}`;
}

function denoTriple(t: Target): string {
  return {
    "linux-x64": "x86_64-unknown-linux-gnu",
    "linux-arm64": "aarch64-unknown-linux-gnu",
    "darwin-arm64": "aarch64-apple-darwin",
    "darwin-x64": "x86_64-apple-darwin",
  }[t];
}

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** Build the kernels for `t`, or say why they cannot be built on this machine. */
export function kernelsFor(t: Target, quiet = true): { path?: string; why?: string } {
  const host = hostTarget();
  if (t !== host) {
    if (t === "linux-arm64" && !process.env.CC && !has("aarch64-linux-gnu-gcc")) {
      return {
        why: "aarch64-linux-gnu-gcc is not installed (apt-get install gcc-aarch64-linux-gnu)",
      };
    }
  }
  try {
    return { path: buildKernels({ target: t, quiet }) };
  } catch (e) {
    if (e instanceof ToolchainUnavailableError) return { why: e.message };
    return { why: `the kernel build for ${t} failed: ${(e as Error).message}` };
  }
}

function bunBin(): string {
  if (process.env.BUN_BIN) return process.env.BUN_BIN;
  const local = join(ROOT, "node_modules", ".bin", "bun");
  return existsSync(local) ? local : "bun";
}

/**
 * Worker entry files (`new Worker(new URL("./x.ts", import.meta.url))` under runtime/ and
 * cli/): `bun build --compile` must get them as extra entry points, and with `--root` set to
 * their folder, so that the URL computed at run time (`/$bunfs/root/x.ts`) finds them.
 */
export function workerEntries(): { files: string[]; root?: string } {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        const re = /new Worker\(\s*new URL\(\s*["']\.\/([\w.-]+)["']/g;
        for (const m of readFileSync(p, "utf8").matchAll(re)) files.push(join(dir, m[1]));
      }
    }
  };
  for (const d of ["runtime", "cli"]) walk(join(ROOT, d));
  const unique = [...new Set(files)].sort();
  const roots = new Set(unique.map((f) => dirname(f)));
  if (roots.size > 1) {
    throw new CompileError(
      `worker files live in several folders (${[...roots].join(", ")}); a compiled binary ` +
        "finds them only when they share one folder",
    );
  }
  return { files: unique, root: [...roots][0] };
}

/** One built binary. */
export interface BuiltBinary {
  target: Target;
  path: string;
  bytes: number;
  seconds: number;
  /** Embedded kernel library, or undefined (then `missingKernels` says why). */
  kernels?: string;
  missingKernels?: string;
}

/** Build `dist/spool-<target>` with `bun build --compile`. */
export function compileBun(t: Target, outdir = join(ROOT, "dist")): BuiltBinary {
  const t0 = performance.now();
  const k = kernelsFor(t);
  const buildDir = join(outdir, ".build");
  mkdirSync(buildDir, { recursive: true });
  const entry = join(buildDir, `entry-${t}.ts`);
  const rel = (p: string) => {
    const r = relative(buildDir, p).split("\\").join("/");
    return r.startsWith(".") ? r : `./${r}`;
  };
  const lines = [
    "// Generated by scripts/compile.ts: the entry of a compiled spool binary.",
    `import { runCompiled } from ${JSON.stringify(rel(join(ROOT, "cli", "compiled_entry.ts")))};`,
  ];
  if (k.path) {
    lines.push(`import kernels from ${JSON.stringify(rel(k.path))} with { type: "file" };`);
    lines.push(`await runCompiled({ target: ${JSON.stringify(t)}, kernels });`);
  } else {
    lines.push(
      `await runCompiled({ target: ${JSON.stringify(t)}, missingKernels: ${
        JSON.stringify(k.why)
      } });`,
    );
  }
  writeFileSync(entry, lines.join("\n") + "\n");
  const out = join(outdir, `spool-${t}`);
  const workers = workerEntries();
  const r = spawnSync(
    bunBin(),
    [
      "build",
      "--compile",
      `--target=${bunTarget(t)}`,
      entry,
      ...workers.files,
      ...(workers.root ? ["--root", workers.root] : []),
      "--outfile",
      out,
    ],
    { cwd: ROOT, encoding: "utf8" },
  );
  if (r.status !== 0) {
    const text = `${r.stdout ?? ""}${r.stderr ?? ""}${r.error?.message ?? ""}`.trim();
    const offline = /download|fetch|connect|ENOTFOUND|resolve/i.test(text);
    throw new CompileError(
      `bun build --compile --target=${bunTarget(t)} failed:\n${
        text.split("\n").slice(-8).join("\n")
      }` +
        (offline
          ? `\n(bun fetches the ${bunTarget(t)} runtime from the npm registry; is it reachable?)`
          : ""),
    );
  }
  return {
    target: t,
    path: out,
    bytes: statSync(out).size,
    seconds: (performance.now() - t0) / 1000,
    kernels: k.path,
    missingKernels: k.why,
  };
}

function denoBin(): string {
  return process.execPath.endsWith("deno")
    ? process.execPath
    : join(ROOT, "node_modules", ".bin", "deno");
}

/** `DENORT_BIN` as an absolute path (deno compile runs from the repository root), if set. */
export function denortBin(): string | undefined {
  const v = process.env.DENORT_BIN;
  return v ? resolve(v) : undefined;
}

/** Why `deno compile` cannot get its runtime, or undefined when it can (or may). */
export async function denortUnavailable(t: Target, probeMs = 5000): Promise<string | undefined> {
  const local = denortBin();
  if (local) {
    return existsSync(local) && statSync(local).isFile()
      ? undefined
      : `DENORT_BIN=${process.env.DENORT_BIN} is not a file`;
  }
  const deno = denoBin();
  let version = "";
  let denoDir = "";
  try {
    version = execFileSync(deno, ["--version"], { encoding: "utf8" }).split(/\s+/)[1];
    denoDir = JSON.parse(execFileSync(deno, ["info", "--json"], { encoding: "utf8" })).denoDir;
  } catch { /* probe below */ }
  const zip = `denort-${denoTriple(t)}.zip`;
  if (denoDir && existsSync(join(denoDir, "dl", "release", `v${version}`, zip))) return undefined;
  const url = `https://dl.deno.land/release/v${version}/${zip}`;
  try {
    const res = await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(probeMs) });
    await res.body?.cancel();
    if (res.ok) return undefined;
    return `${url} answered HTTP ${res.status}`;
  } catch (e) {
    const why = (e as Error).name === "TimeoutError"
      ? `no answer in ${probeMs / 1000} s`
      : [(e as Error).message, ((e as Error).cause as Error | undefined)?.message]
        .filter(Boolean).join(": ");
    return `${url} is unreachable (${why})`;
  }
}

/**
 * Top-level node_modules entries that are not runtime dependencies (package.json
 * `dependencies`): `deno compile` would otherwise embed all of node_modules (the deno and
 * bun executables, node-llama-cpp's builds: about 1 GB).
 */
export function devOnlyModules(): string[] {
  const nm = join(ROOT, "node_modules");
  if (!existsSync(nm)) return [];
  const deps = Object.keys(
    JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).dependencies ?? {},
  );
  const keep = new Set(deps);
  const out: string[] = [];
  for (const e of readdirSync(nm)) {
    if (e.startsWith("@") && statSync(join(nm, e)).isDirectory()) {
      const inside = readdirSync(join(nm, e)).map((x) => `${e}/${x}`);
      if (inside.some((x) => keep.has(x))) {
        for (const x of inside) if (!keep.has(x)) out.push(`node_modules/${x}`);
        continue;
      }
    }
    if (!keep.has(e)) out.push(`node_modules/${e}`);
  }
  return out.sort();
}

/** The `deno compile` command line and environment (DENORT_BIN passed on, absolute). */
export function denoCompileCommand(
  t: Target,
  output: string,
  kernels: string,
): { cmd: string; args: string[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  const local = denortBin();
  if (local) env.DENORT_BIN = local;
  const args = [
    "compile",
    "-A",
    "--include",
    relative(ROOT, kernels),
    ...devOnlyModules().flatMap((m) => ["--exclude", m]),
    "--output",
    output,
    ...(t === hostTarget() ? [] : ["--target", denoTriple(t)]),
    "cli/main.ts",
  ];
  return { cmd: denoBin(), args, env };
}

/** Build `dist/spool` (or `--output`) with `deno compile`. */
export async function compileDeno(
  t: Target = hostTarget(),
  output = join(ROOT, "dist", t === hostTarget() ? "spool" : `spool-deno-${t}`),
): Promise<BuiltBinary> {
  const why = await denortUnavailable(t);
  if (why) {
    throw new CompileError(
      `deno compile needs its runtime (denort ${denoTriple(t)}), downloaded from dl.deno.land: ` +
        `${why}.\nUse \`deno task compile:bun\` for a single binary built with Bun, or set ` +
        "DENORT_BIN to a denort binary of the same Deno version.",
    );
  }
  const t0 = performance.now();
  const k = kernelsFor(t, false);
  if (!k.path) throw new CompileError(`no kernels for ${t}: ${k.why}`);
  output = resolve(output);
  mkdirSync(dirname(output), { recursive: true });
  const c = denoCompileCommand(t, output, k.path);
  const r = spawnSync(c.cmd, c.args, { cwd: ROOT, env: c.env, stdio: "inherit", timeout: 600_000 });
  if (r.status !== 0) {
    throw new CompileError(
      `deno ${c.args.slice(0, 4).join(" ")} ... failed (exit ${r.status ?? r.signal})` +
        (c.env.DENORT_BIN ? ` with DENORT_BIN=${c.env.DENORT_BIN}` : ""),
    );
  }
  return {
    target: t,
    path: output,
    bytes: statSync(output).size,
    seconds: (performance.now() - t0) / 1000,
    kernels: k.path,
  };
}

function parseTargets(s: string | undefined): Target[] {
  if (!s) return [hostTarget()];
  const list = s === "all" ? [...TARGETS] : s.split(",").map((x) => x.trim());
  for (const t of list) {
    if (!(TARGETS as readonly string[]).includes(t)) {
      throw new CompileError(`unknown target "${t}" (${TARGETS.join(", ")}, all)`);
    }
  }
  return list as Target[];
}

function mib(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}

async function cli(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      target: { type: "string" },
      outdir: { type: "string" },
      output: { type: "string" },
    },
  });
  const mode = positionals[0];
  if (mode === "bun") {
    let failed = 0;
    for (const t of parseTargets(v.target)) {
      try {
        const b = compileBun(t, v.outdir);
        const kern = b.kernels
          ? `kernels ${relative(ROOT, b.kernels)} embedded`
          : `NO kernels: ${b.missingKernels}`;
        console.log(
          `${relative(ROOT, b.path)}: ${mib(b.bytes)} in ${b.seconds.toFixed(1)} s; ${kern}`,
        );
      } catch (e) {
        failed++;
        console.error(`compile ${t}: ${(e as Error).message}`);
      }
    }
    return failed ? 1 : 0;
  }
  if (mode === "deno") {
    const [t] = parseTargets(v.target);
    const b = await compileDeno(t, v.output);
    console.log(`${relative(ROOT, b.path)}: ${mib(b.bytes)} in ${b.seconds.toFixed(1)} s`);
    return 0;
  }
  console.error("usage: scripts/compile.ts bun|deno [--target T[,T...]|all] [--outdir DIR]");
  return 2;
}

if (import.meta.main) {
  try {
    process.exitCode = await cli(process.argv.slice(2));
  } catch (e) {
    console.error(`compile: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
