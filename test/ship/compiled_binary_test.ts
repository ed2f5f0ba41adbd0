/**
 * The single binary: `bun build --compile` with the kernel library embedded.
 *
 * The linux-x64 binary runs with PATH holding nothing but itself (no deno, bun or node) and
 * HOME in a fresh folder, so the kernels are extracted to `~/.cache/spool/kernels/<sha256>/`:
 * it pulls a model from a local fake hub, lists it, and generates from it by name, then runs
 * `spool run` on the demo model, and serves a chat completion (its engine Worker included). The arm64 binary runs under qemu-aarch64 when installed;
 * the darwin-arm64 binary (kernels cross-compiled with zig cc) is read as Mach-O, with its
 * embedded dylib: see checkDarwinDylib (nothing runs on macOS here). `deno compile` must
 * either work or fail at once with a clear message, and use `DENORT_BIN` where it is set.
 */
import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeSyntheticModel } from "../../runtime/models/synth.ts";
import { compileBun } from "../../scripts/compile.ts";
import { symbols } from "../../ffi/symbols.ts";
import { fileOffset, parseMachO, verifyCodeSignature } from "./_macho.ts";
import { startHub } from "./_hub.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "spool-bin-"));
const outdir = join(work, "dist");
const dec = new TextDecoder();

/** Run `cmd` with exactly `env` (nothing inherited) in `cwd`. */
async function run(cmd: string, args: string[], env: Record<string, string>, cwd = work) {
  const r = await new Deno.Command(cmd, { args, env, clearEnv: true, cwd }).output();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

function sha32(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 32);
}

Deno.test("compiled binary (linux-x64): pull, list and run with nothing else on PATH", async () => {
  const b = compileBun("linux-x64", outdir);
  console.log(
    `built ${b.path}: ${(b.bytes / 2 ** 20).toFixed(1)} MiB in ${b.seconds.toFixed(1)} s`,
  );
  ok(b.kernels, b.missingKernels);
  const bin = join(work, "bin");
  mkdirSync(bin);
  copyFileSync(b.path, join(bin, "spool"));
  Deno.chmodSync(join(bin, "spool"), 0o755);
  const home = join(work, "home");
  mkdirSync(home);
  const env = { PATH: bin, HOME: home };
  deepEqual(readdirSync(bin), ["spool"]); // PATH holds nothing else: no deno, bun, node, sh
  const model = join(work, "tiny.gguf");
  writeSyntheticModel(model, { arch: "qwen3moe", preset: "tiny", types: "Q4_K", seed: 11 });
  const hub = startHub({ "acme/Tiny-GGUF": { "tiny-Q4_K_M.gguf": readFileSync(model) } });
  try {
    const pull = await run("spool", ["pull", "acme/Tiny-GGUF", "--base-url", hub.baseUrl], env);
    equal(pull.code, 0, pull.err);
    match(pull.out, /tiny-Q4_K_M\.gguf \(.*; sha256 [0-9a-f]{64} verified\)/);
  } finally {
    await hub.close();
  }
  const list = await run("spool", ["list"], env);
  equal(list.code, 0, list.err);
  match(list.out, /acme\/Tiny-GGUF\/tiny-Q4_K_M\.gguf +\S+ \S+ +qwen3moe +Q4_K_S/);

  const gen = await run(
    "spool",
    ["run", "tiny-Q4_K_M", "-p", "Hello", "-n", "6", "--temp", "0"],
    env,
  );
  equal(gen.code, 0, gen.err);
  match(gen.err, /generated 6 at [\d.]+ tok\/s, finish: length/);
  ok(gen.out.startsWith("Hello") && gen.out.length > "Hello\n".length, gen.out);

  // The library was extracted to the content-hash folder under the fresh HOME.
  const kdir = join(home, ".cache", "spool", "kernels");
  const dirs = readdirSync(kdir);
  equal(dirs.length, 1);
  equal(dirs[0], sha32(b.kernels!));
  ok(existsSync(join(kdir, dirs[0], "libspool.so")));
  equal(readdirSync(join(kdir, dirs[0])).length, 1); // no leftover .tmp

  // The demo model, made by the binary itself, then `spool run` on it.
  const demo = await run("spool", ["demo"], env);
  equal(demo.code, 0, demo.err);
  match(demo.out, /RANDOM weights/);
  match(demo.out, /tokens: (\d+ ){31}\d+\n/);
  const demoPath = join(home, ".cache", "spool", "demo", "spool-demo-qwen3moe-q4k.gguf");
  // greedy: sampled at the default temperature, random weights may pick an end token early
  const r2 = await run(
    "spool",
    ["run", demoPath, "-p", "Once upon a time", "-n", "8", "--temp", "0"],
    env,
  );
  equal(r2.code, 0, r2.err);
  match(r2.err, /generated 8 at [\d.]+ tok\/s/);

  // The server: its engine runs in a Worker, which must find its entry file and the kernels.
  const pulled = join(home, ".cache", "spool", "models", "acme", "Tiny-GGUF", "tiny-Q4_K_M.gguf");
  const server = new Deno.Command("spool", {
    args: ["serve", pulled, "--port", "0"],
    env,
    clearEnv: true,
    cwd: work,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let first = "";
    while (!first.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      first += value;
    }
    reader.releaseLock();
    match(first, /^http:\/\/127\.0\.0\.1:\d+/);
    const res = await fetch(`${first.trim()}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 5 }),
    });
    const body = await res.json();
    equal(res.status, 200, JSON.stringify(body));
    equal(body.usage.completion_tokens, 5);
    // constrained decoding runs in the Worker too: the grammar module is in the binary
    const js = await fetch(`${first.trim()}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages: [{ role: "user", content: "json" }],
        max_tokens: 12,
        response_format: { type: "json_object" },
      }),
    });
    const jb = await js.json();
    equal(js.status, 200, JSON.stringify(jb));
    match(jb.choices[0].message.content, /^\{/);
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await server.stdout.cancel().catch(() => {});
    await server.stderr.cancel().catch(() => {});
  }

  // A bad model name is a one-line error with a hint, not a stack trace.
  const bad = await run("spool", ["run", "no-such-model", "-p", "x"], env);
  equal(bad.code, 1);
  match(bad.err, /^spool run: No model "no-such-model".*\nhint: `spool list` shows/);
});

const QEMU_LIBS = "/usr/aarch64-linux-gnu";
const hasQemu = (() => {
  try {
    return new Deno.Command("qemu-aarch64", { args: ["--version"] }).outputSync().code === 0 &&
      existsSync(QEMU_LIBS);
  } catch {
    return false;
  }
})();

Deno.test({
  name: "compiled binary (linux-arm64, under qemu-aarch64): run on a tiny model",
  ignore: !hasQemu,
  async fn() {
    const b = compileBun("linux-arm64", outdir);
    ok(b.kernels, `no arm64 kernels: ${b.missingKernels}`);
    const model = join(work, "tiny-arm.gguf");
    writeSyntheticModel(model, { arch: "olmoe", preset: "tiny", types: "Q8_0", seed: 5 });
    const home = join(work, "home-arm");
    mkdirSync(home);
    const r = await run(
      "/usr/bin/qemu-aarch64",
      [b.path, "run", model, "-p", "Hi", "-n", "4", "--temp", "0"],
      { HOME: home, QEMU_LD_PREFIX: QEMU_LIBS, PATH: "/nonexistent" },
    );
    equal(r.code, 0, r.err);
    match(r.err, /generated 4 at [\d.]+ tok\/s/);
    equal(readdirSync(join(home, ".cache", "spool", "kernels"))[0], sha32(b.kernels!));
  },
});

const SPOOL_H = readFileSync(join(ROOT, "kernels", "include", "spool.h"), "utf8");
const ABI = Number(/#define SPOOL_ABI_VERSION (\d+)/.exec(SPOOL_H)![1]);

/**
 * Nothing here runs macOS: the library is read as a file. It must be an arm64 Mach-O dylib
 * for macOS 11+, signed ad hoc with every page's hash right (arm64 macOS runs no unsigned
 * code), linking libSystem alone, with
 * no Linux-only import, exporting (export trie, what dlsym reads) exactly the functions of
 * ffi/symbols.ts, and spool_abi_version must be `mov w0, #ABI; ret`.
 */
function checkDarwinDylib(bytes: Uint8Array): void {
  const m = parseMachO(bytes);
  equal(m.cputype, 0x0100000c); // CPU_TYPE_ARM64
  equal(m.filetype, 6); // MH_DYLIB
  equal(m.flags & 0x1, 0x1, "MH_NOUNDEFS"); // every import bound to a library
  equal(m.flags & 0x80, 0x80, "MH_TWOLEVEL");
  equal(m.installName, "@rpath/libspool.dylib");
  deepEqual(m.dylibs, ["/usr/lib/libSystem.B.dylib"]);
  deepEqual(m.build, { platform: 1, minos: "11.0" }); // PLATFORM_MACOS
  const sig = verifyCodeSignature(bytes, sha256);
  equal(sig.flags & 0x2, 0x2, "CS_ADHOC");
  equal(sig.ident, "libspool.dylib");
  const want = Object.keys(symbols).map((n) => `_${n}`).sort();
  const names = [...m.exports.keys()].sort();
  deepEqual(names.filter((n) => n.startsWith("_spool_")), want);
  // besides the ABI, only the two symbols zig's linker itself defines in every dylib
  deepEqual(names.filter((n) => !n.startsWith("_spool_")), ["___dso_handle", "__mh_dylib_header"]);
  for (const f of ["_fcntl", "_pread", "_mmap", "_madvise", "_pthread_create", "_sysctlbyname"]) {
    ok(m.imports.includes(f), `imports ${f}`);
  }
  for (const linuxOnly of ["_getauxval", "___errno_location", "_posix_fadvise", "_readahead"]) {
    ok(!m.imports.includes(linuxOnly), `imports the Linux-only ${linuxOnly}`);
  }
  const text = m.segments.find((s) => s.name === "__TEXT")!;
  const at = fileOffset(m, text.vmaddr + m.exports.get("_spool_abi_version")!);
  const code = new DataView(bytes.buffer, bytes.byteOffset + at, 8);
  equal(code.getUint32(0, true), (0x52800000 | (ABI << 5)) >>> 0, "mov w0, #ABI"); // MOVZ W0
  equal(code.getUint32(4, true), 0xd65f03c0, "ret");
  const patched = bytes.slice(); // as macOS would: one changed instruction breaks the signature
  patched[at] ^= 1;
  throws(() => verifyCodeSignature(patched, sha256), /page \d+ \(at \d+\) does not match/);
}

Deno.test("compiled binary (darwin-arm64): arm64 Mach-O embedding a macOS kernel dylib", () => {
  const b = compileBun("darwin-arm64", outdir);
  const bin = new Uint8Array(readFileSync(b.path));
  const head = parseMachO(bin);
  equal(head.cputype, 0x0100000c); // CPU_TYPE_ARM64
  equal(head.filetype, 2); // MH_EXECUTE
  verifyCodeSignature(bin, sha256); // Bun signs it ad hoc after adding spool to it
  if (!b.kernels) {
    // Only a missing cross-compiler (no pip, PyPI unreachable) may leave the kernels out.
    match(b.missingKernels!, /zig \(the macOS cross-compiler\) is unavailable/);
    console.warn(`darwin-arm64 kernels skipped: ${b.missingKernels}`);
    return;
  }
  match(b.kernels, /libspool\.dylib$/);
  const lib = new Uint8Array(readFileSync(b.kernels));
  checkDarwinDylib(lib);
  ok(Buffer.from(bin).indexOf(Buffer.from(lib)) > 0, "the dylib's bytes are in the binary");
  const entry = readFileSync(join(outdir, ".build", "entry-darwin-arm64.ts"), "utf8");
  match(entry, /import kernels from ".*libspool\.dylib" with \{ type: "file" \}/);
});

/** This process's environment without DENORT_BIN, plus `extra`. */
function envWith(extra: Record<string, string> = {}): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  return { ...env, ...extra };
}

async function compileDenoCli(env: Record<string, string>, output: string, cwd = ROOT) {
  const t0 = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "scripts", "compile.ts"), "deno", "--output", output],
    cwd,
    env,
    clearEnv: true,
    signal: AbortSignal.timeout(300_000),
  }).output();
  return {
    code: r.code,
    out: dec.decode(r.stdout),
    err: dec.decode(r.stderr),
    s: (performance.now() - t0) / 1000,
  };
}

Deno.test("deno task compile: builds, or fails at once with a clear message", async () => {
  const r = await compileDenoCli(envWith(), join(work, "spool-deno"));
  if (r.code === 0) {
    ok(existsSync(join(work, "spool-deno")));
    return;
  }
  match(r.err, /deno compile needs its runtime \(denort .*\), downloaded from dl\.deno\.land/);
  match(r.err, /deno task compile:bun/);
  match(r.err, /set DENORT_BIN to a denort binary/);
  ok(r.s < 30, `took ${r.s.toFixed(1)} s to fail`);
});

Deno.test("deno task compile: DENORT_BIN naming no file fails at once and says so", async () => {
  const r = await compileDenoCli(envWith({ DENORT_BIN: "/nonexistent/denort" }), join(work, "x"));
  equal(r.code, 1);
  match(r.err, /DENORT_BIN=\/nonexistent\/denort is not a file/);
  match(r.err, /deno task compile:bun/);
  ok(r.s < 30, `took ${r.s.toFixed(1)} s to fail`);
  ok(!existsSync(join(work, "x")));
});

Deno.test({
  name: "deno task compile: DENORT_BIN (relative to the caller) is the base deno compile uses",
  ignore: !existsSync("/bin/true"),
  async fn() {
    // No denort can be had here, so /bin/true stands in as the base executable: deno compile
    // appends spool to whatever DENORT_BIN names, and the result then runs as that program.
    // It proves the variable reached deno (a downloaded denort would run spool instead).
    const dir = join(work, "denort");
    mkdirSync(dir);
    copyFileSync("/bin/true", join(dir, "base"));
    const out = join(work, "spool-deno-base");
    const r = await compileDenoCli(envWith({ DENORT_BIN: "denort/base" }), out, work);
    equal(r.code, 0, r.err);
    match(r.out, /spool-deno-base: [\d.]+ MiB/);
    const size = Deno.statSync(out).size;
    ok(size < 64 * 2 ** 20, `${size} bytes: dev-only node_modules must stay out of the binary`);
    const run = await new Deno.Command(out, { args: ["--version"] }).output();
    match(dec.decode(run.stdout), /true \(GNU coreutils\)/);
  },
});

Deno.test("compiled binary: cleanup", () => rmSync(work, { recursive: true, force: true }));
