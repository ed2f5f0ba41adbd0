/**
 * Config file: lookup order, zod validation with errors naming the key and value, path
 * expansion, and the API key file (whose contents never reach a message).
 */
import { deepEqual, equal, ok, throws } from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  configSizes,
  defaultConfigPath,
  loadConfig,
  parseConfig,
  readApiKey,
} from "./config.ts";

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "spool-config-"));
}

Deno.test("loadConfig: no file anywhere means an empty config", () => {
  const home = tmp();
  try {
    const r = loadConfig({ env: { HOME: home } });
    deepEqual(r, { config: {} });
    equal(defaultConfigPath({ HOME: home }), join(home, ".config", "spool", "config.json"));
    equal(defaultConfigPath({ HOME: home, XDG_CONFIG_HOME: "/x" }), "/x/spool/config.json");
  } finally {
    rmSync(home, { recursive: true });
  }
});

Deno.test("loadConfig: reads the default file, expands ~ and relative paths", () => {
  const home = tmp();
  try {
    const dir = join(home, ".config", "spool");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({
        modelsDir: "~/models",
        apiKeyFile: "key.txt",
        threads: 4,
        ctx: 4096,
        ramBudget: "6G",
        expertCache: "auto",
        host: "0.0.0.0",
        port: 9000,
      }),
    );
    const r = loadConfig({ env: { HOME: home } });
    equal(r.path, join(dir, "config.json"));
    equal(r.config.modelsDir, join(home, "models"));
    equal(r.config.apiKeyFile, join(dir, "key.txt"));
    equal(r.config.threads, 4);
    equal(r.config.port, 9000);
    deepEqual(configSizes(r.config), { ramBudget: 6 * 1024 ** 3, expertCache: "auto" });
  } finally {
    rmSync(home, { recursive: true });
  }
});

Deno.test("loadConfig: explicit path and SPOOL_CONFIG win and must exist", () => {
  const d = tmp();
  try {
    const a = join(d, "a.json");
    const b = join(d, "b.json");
    writeFileSync(a, `{"port": 1}`);
    writeFileSync(b, `{"port": 2}`);
    equal(loadConfig({ path: a, env: { SPOOL_CONFIG: b, HOME: d } }).config.port, 1);
    equal(loadConfig({ env: { SPOOL_CONFIG: b, HOME: d } }).config.port, 2);
    throws(
      () => loadConfig({ path: join(d, "nope.json"), env: { HOME: d } }),
      (e: Error) =>
        e instanceof ConfigError && /nope\.json \(from --config\) does not exist/.test(e.message),
    );
    throws(
      () => loadConfig({ env: { SPOOL_CONFIG: join(d, "x.json"), HOME: d } }),
      /from SPOOL_CONFIG/,
    );
  } finally {
    rmSync(d, { recursive: true });
  }
});

Deno.test("parseConfig: errors name the key, the value and what was expected", () => {
  const cases: [unknown, RegExp, string | undefined][] = [
    [{ port: 70000 }, /"port" is 70000: .*65535/, "port"],
    [{ port: "8080" }, /"port" is "8080": .*number/, "port"],
    [{ threads: 1.5 }, /"threads" is 1.5: .*int/, "threads"],
    [{ threads: 0 }, /"threads" is 0/, "threads"],
    [{ ramBudget: "lots" }, /"ramBudget" is "lots": expected a size/, "ramBudget"],
    [{ expertCache: -1 }, /"expertCache" is -1: expected a size/, "expertCache"],
    [{ modelsDir: "" }, /"modelsDir" is "": expected a non-empty path/, "modelsDir"],
    [{ modelDir: "/x" }, /unknown key modelDir/, "modelDir"],
    [[1, 2], /expected a JSON object/, undefined],
  ];
  for (const [value, re, key] of cases) {
    throws(() => parseConfig(value, "/etc/c.json"), (e: Error) => {
      ok(e instanceof ConfigError, String(e));
      ok(re.test(e.message), e.message);
      ok(e.message.startsWith("/etc/c.json: "), e.message);
      equal(e.key, key);
      ok(/fix or remove \/etc\/c\.json/.test(e.hint));
      return true;
    });
  }
});

Deno.test("loadConfig: bad JSON is a ConfigError with the file name", () => {
  const d = tmp();
  try {
    const f = join(d, "c.json");
    writeFileSync(f, `{"port": 80,}`);
    throws(() => loadConfig({ path: f }), (e: Error) => {
      ok(e instanceof ConfigError);
      ok(e.message.includes(`${f} is not valid JSON`), e.message);
      return true;
    });
  } finally {
    rmSync(d, { recursive: true });
  }
});

Deno.test("readApiKey: first line trimmed; errors never show the key", () => {
  const d = tmp();
  try {
    const f = join(d, "key");
    writeFileSync(f, "sk-secret-123\nignored\n");
    equal(readApiKey({ apiKeyFile: f }), "sk-secret-123");
    equal(readApiKey({}), undefined);
    writeFileSync(f, "  \n");
    throws(() => readApiKey({ apiKeyFile: f }), /is empty/);
    throws(() => readApiKey({ apiKeyFile: join(d, "missing") }), (e: Error) => {
      ok(e instanceof ConfigError && /cannot be read \(ENOENT\)/.test(e.message), e.message);
      return true;
    });
  } finally {
    rmSync(d, { recursive: true });
  }
});
