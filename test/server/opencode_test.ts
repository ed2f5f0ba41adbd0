/**
 * OpenCode itself (npm `opencode-ai`) against spool, offline and non-interactive, as DESIGN.md
 * §9 describes. Skipped unless the binary is installed: set OPENCODE_BIN, or install
 * `opencode-ai` so that node_modules/.bin/opencode exists.
 */
import { equal, ok } from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { startServer } from "./_fixture.ts";

const BIN = Deno.env.get("OPENCODE_BIN") ??
  fileURLToPath(new URL("../../node_modules/.bin/opencode", import.meta.url));

Deno.test({
  name: "opencode run against spool serve: one streamed turn with its 10 tools",
  ignore: !existsSync(BIN),
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startServer({ nCtx: 8192 });
    const home = mkdtempSync(`${tmpdir()}/spool-opencode-`);
    try {
      mkdirSync(`${home}/proj`);
      writeFileSync(
        `${home}/proj/opencode.json`,
        JSON.stringify({
          provider: {
            spool: {
              npm: "@ai-sdk/openai-compatible",
              name: "spool",
              options: { baseURL: `${server.url}/v1` },
              models: {
                "spool-test": { name: "spool-test", limit: { context: 8192, output: 32 } },
              },
            },
          },
          model: "spool/spool-test",
        }),
      );
      const r = await new Deno.Command(BIN, {
        args: ["run", "--title", "t", "--format", "json", "say", "hello"],
        cwd: `${home}/proj`,
        clearEnv: true,
        env: {
          HOME: home,
          XDG_CONFIG_HOME: `${home}/.config`,
          XDG_DATA_HOME: `${home}/.local/share`,
          XDG_CACHE_HOME: `${home}/.cache`,
          XDG_STATE_HOME: `${home}/.local/state`,
          OPENCODE_DISABLE_MODELS_FETCH: "1",
          OPENCODE_DISABLE_AUTOUPDATE: "1",
          npm_config_offline: "true",
          PATH: Deno.env.get("PATH") ?? "",
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(r.stdout);
      equal(r.code, 0, new TextDecoder().decode(r.stderr));
      const events = out.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
      const finish = events.find((e) => e.type === "step_finish");
      ok(finish, out);
      equal(finish.part.tokens.output, 32);
      ok(finish.part.tokens.input > 1000, "the agent's system prompt and tools were sent");
      ok(events.some((e) => e.type === "text" && e.part.text.length > 0));
    } finally {
      rmSync(home, { recursive: true, force: true });
      await server.close();
    }
  },
});
