/**
 * The macOS cross-compiler: the pinned zig when it can be had, and a clear reason (never a
 * failure of the caller) when it cannot.
 */
import { equal, match, ok, throws } from "node:assert/strict";
import process from "node:process";
import { compilerFor, hostTarget, ToolchainUnavailableError } from "./build.ts";
import { ensureZig, ZIG_MACOS_TARGET, ZIG_VERSION } from "./zig.ts";
import { kernelsFor } from "../scripts/compile.ts";

function withZig<T>(value: string, f: () => T): T {
  const old = process.env.ZIG;
  process.env.ZIG = value;
  try {
    return f();
  } finally {
    if (old === undefined) delete process.env.ZIG;
    else process.env.ZIG = old;
  }
}

Deno.test({
  name: "zig unavailable: the darwin build is skipped with the reason",
  ignore: hostTarget().startsWith("darwin"),
  fn() {
    withZig("/nonexistent/zig", () => {
      const r = ensureZig(false);
      ok("why" in r);
      match(r.why, /ZIG=\/nonexistent\/zig does not run/);
      throws(
        () => compilerFor("darwin-arm64"),
        (e) =>
          e instanceof ToolchainUnavailableError &&
          /zig \(the macOS cross-compiler\) is unavailable/.test(e.message),
      );
      const k = kernelsFor("darwin-arm64");
      equal(k.path, undefined);
      match(k.why!, /zig \(the macOS cross-compiler\) is unavailable: ZIG=/);
    });
  },
});

const installed = ensureZig(false);

Deno.test({
  name: `zig ${ZIG_VERSION} (installed): the compiler command targets ${ZIG_MACOS_TARGET}`,
  ignore: !("zig" in installed) || hostTarget().startsWith("darwin"),
  fn() {
    if (!("zig" in installed)) return;
    equal(installed.version, ZIG_VERSION);
    const cc = compilerFor("darwin-arm64");
    equal(cc[0], installed.zig);
    equal(cc.slice(1).join(" "), `cc -target ${ZIG_MACOS_TARGET}`);
  },
});
