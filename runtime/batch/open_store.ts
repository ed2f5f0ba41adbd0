/**
 * Open a batch store by location: a `postgres://` or `postgresql://` connection string opens
 * the shared PostgreSQL queue ({@link PgBatchStore}), anything else is a SQLite file path
 * ({@link BatchStore}, the embedded default).
 *
 * @module
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { BatchStore } from "./store.ts";
import { PgBatchStore } from "./pg_store.ts";
import { type BatchQueue, StoreConfigError } from "./store_types.ts";

/** Whether `location` names a PostgreSQL database. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** Open the store at `location` (creating a SQLite file's folder if needed). */
export async function openBatchStore(
  location: string,
  o: { appName?: string } = {},
): Promise<BatchQueue> {
  if (isPostgresUrl(location)) return await PgBatchStore.connect(location, o);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(location);
  if (scheme) {
    throw new StoreConfigError(
      `Unsupported batch store "${scheme[1]}://…": give a SQLite file path or a postgres:// URL`,
    );
  }
  if (location !== ":memory:") mkdirSync(dirname(location), { recursive: true });
  return BatchStore.open(location);
}

/**
 * sha256 (hex) of a file's bytes: a model's identity for fleets (workers of one batch must
 * load the same file). Reads 8 MiB at a time without blocking the event loop.
 */
export async function fileSha256(path: string): Promise<string> {
  const h = createHash("sha256");
  const f = await open(path, "r");
  try {
    const buf = new Uint8Array(8 << 20);
    while (true) {
      const { bytesRead } = await f.read(buf, 0, buf.length, null);
      if (bytesRead <= 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await f.close();
  }
  return h.digest("hex");
}
