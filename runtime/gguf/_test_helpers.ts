/**
 * Helpers shared by the GGUF tests (Deno and Bun): error assertions, a seeded PRNG, temp
 * files, and where the vocab fixtures live. Private to runtime/gguf.
 *
 * @module
 */

import { vocabDir } from "../data_dirs.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GGUFError, type GGUFErrorCode } from "./errors.ts";

/** Folder of llama.cpp's vocab-only GGUF files (`SPOOL_VOCAB_DIR` overrides). */
export const VOCAB_DIR: string = vocabDir();

/** What an expected {@link GGUFError} must have. */
export interface ExpectedError {
  /** Exact byte offset. */
  offset?: number;
  /** Exact field. */
  field?: string;
  /** Pattern the message must match. */
  message?: RegExp;
}

/**
 * Run `fn`, require a {@link GGUFError} with `code` (and the given offset, field, message),
 * and return it. Any other outcome throws an Error describing what happened instead.
 */
export function expectGGUFError(
  fn: () => unknown,
  code: GGUFErrorCode,
  expected: ExpectedError = {},
): GGUFError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (err === undefined) throw new Error(`expected GGUFError ${code}, but nothing was thrown`);
  if (!(err instanceof GGUFError)) {
    throw new Error(`expected GGUFError ${code}, got ${String(err)}`, { cause: err });
  }
  const fail = (what: string) => {
    throw new Error(
      `expected ${what}; got ${err.code} at ${err.offset} ${err.field}: ${err.message}`,
    );
  };
  if (err.code !== code) fail(`code ${code}`);
  if (expected.offset !== undefined && err.offset !== expected.offset) {
    fail(`offset ${expected.offset}`);
  }
  if (expected.field !== undefined && err.field !== expected.field) fail(`field ${expected.field}`);
  if (expected.message !== undefined && !expected.message.test(err.message)) {
    fail(`message matching ${expected.message}`);
  }
  return err;
}

/** Seeded PRNG (mulberry32): the same seed gives the same sequence everywhere. */
export class Rng {
  private s: number;
  /** Start a sequence from `seed`. */
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Next float in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** One element of `a`. */
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** Make a temp folder, pass it to `fn`, and remove it afterwards. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "spool-gguf-"));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
