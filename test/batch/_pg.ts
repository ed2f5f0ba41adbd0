/**
 * A throwaway PostgreSQL cluster for tests: `initdb` into a temporary folder, `pg_ctl start`
 * on a free 127.0.0.1 port (trust authentication, the unix socket in the same folder). As
 * root it runs the server as the `postgres` user (`runuser`), since PostgreSQL refuses root.
 * {@link startPostgres} returns null, with the reason, when the binaries are absent: the
 * tests then skip with that message and never fail for it.
 *
 * @module
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** A running cluster. */
export interface PgCluster {
  /** postgres://spool@127.0.0.1:PORT/postgres */
  url: string;
  port: number;
  /** Stop and start it again (`pg_ctl restart -m fast`), without blocking the event loop. */
  restart(): Promise<void>;
  /** Run SQL through psql as the superuser; stdout. */
  psql(sql: string): string;
  /** Stop it and delete its folder. */
  stop(): void;
  /**
   * A tablespace `name` on a tmpfs of `bytes` (a small disk that fills up), or the reason it
   * cannot be made here (it needs root and mount). `release()` unmounts it.
   */
  smallTablespace(name: string, bytes: number): { path: string; release(): void } | string;
}

function findBin(): string | null {
  const only = process.env.SPOOL_PG_BINDIR; // this folder only ("none": as if not installed)
  if (only !== undefined) {
    return existsSync(join(only, "initdb")) && existsSync(join(only, "pg_ctl")) ? only : null;
  }
  const cands: string[] = [];
  try {
    const d = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    cands.push(d);
  } catch { /* no pg_config */ }
  if (existsSync("/usr/lib/postgresql")) {
    for (const v of readdirSync("/usr/lib/postgresql").sort().reverse()) {
      cands.push(`/usr/lib/postgresql/${v}/bin`);
    }
  }
  for (const p of (process.env.PATH ?? "").split(":")) cands.push(p);
  for (const d of cands) {
    if (d && existsSync(join(d, "initdb")) && existsSync(join(d, "pg_ctl"))) return d;
  }
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Null when PostgreSQL can run here, else why not (for a skip message). */
export function postgresMissing(): string | null {
  if (!findBin()) {
    return "PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's `postgresql` package";
  }
  if (process.getuid?.() === 0 && spawnSync("id", ["-u", "postgres"]).status !== 0) {
    return "running as root and there is no `postgres` user to run PostgreSQL";
  }
  return null;
}

/** Print the skip message once per test file. */
export function reportSkip(what: string): boolean {
  const why = postgresMissing();
  if (why) console.log(`SKIP ${what}: ${why}`);
  return why !== null;
}

/** Start a cluster, or return the reason it cannot run here. */
export async function startPostgres(): Promise<PgCluster | string> {
  const bin = findBin();
  if (!bin) {
    return "PostgreSQL binaries (initdb, pg_ctl) not found; install Debian's `postgresql` package";
  }
  const root = process.getuid?.() === 0;
  let uid = -1, gid = -1;
  if (root) {
    const r = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
    const g = spawnSync("id", ["-g", "postgres"], { encoding: "utf8" });
    if (r.status !== 0) return "running as root and there is no `postgres` user to run PostgreSQL";
    uid = Number(r.stdout.trim());
    gid = Number(g.stdout.trim());
  }
  const dir = mkdtempSync(join(tmpdir(), "spool-pg-"));
  chmodSync(dir, 0o700);
  if (root) chownSync(dir, uid, gid);
  const wrapCmd = (cmd: string, args: string[]) =>
    root ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] as const : [cmd, args] as const;
  const run = (cmd: string, args: string[]) => {
    const full = wrapCmd(cmd, args);
    const r = spawnSync(full[0], [...full[1]], { encoding: "utf8", cwd: dir });
    if (r.status !== 0) {
      throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr || r.stdout}`);
    }
    return r.stdout;
  };
  const data = join(dir, "data");
  const port = await freePort();
  run(join(bin, "initdb"), ["-D", data, "-U", "spool", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const opts =
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
  const ctl = (...a: string[]) =>
    run(join(bin, "pg_ctl"), ["-D", data, "-l", join(dir, "log"), ...a]);
  ctl("-o", opts, "-w", "start");
  const psqlBin = existsSync(join(bin, "psql")) ? join(bin, "psql") : "psql";
  return {
    url: `postgres://spool@127.0.0.1:${port}/postgres`,
    port,
    restart: () =>
      new Promise<void>((resolve, reject) => {
        const [c, a] = wrapCmd(join(bin, "pg_ctl"), [
          "-D",
          data,
          "-l",
          join(dir, "log"),
          "-o",
          opts,
          "-m",
          "fast",
          "-w",
          "restart",
        ]);
        execFile(c, [...a], { cwd: dir }, (e) => (e ? reject(e) : resolve()));
      }),
    psql: (sql: string) =>
      execFileSync(psqlBin, [
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "spool",
        "-d",
        "postgres",
        "-XAtqc",
        sql,
      ], {
        encoding: "utf8",
      }),
    stop: () => {
      try {
        ctl("-m", "immediate", "stop");
      } catch { /* already down */ }
      rmSync(dir, { recursive: true, force: true });
    },
    smallTablespace: (name, bytes) => {
      if (!root) return "a small disk needs root (mount -t tmpfs)";
      const mnt = join(dir, `ts-${name}`);
      mkdirSync(mnt);
      const m = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", mnt], {
        encoding: "utf8",
      });
      if (m.status !== 0) return `mount -t tmpfs failed: ${m.stderr.trim()}`;
      chownSync(mnt, uid, gid);
      return { path: mnt, release: () => void spawnSync("umount", ["-l", mnt]) };
    },
  };
}
