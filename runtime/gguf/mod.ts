/**
 * The GGUF format layer: the ggml type table, a validating header reader and a streaming
 * writer. Pure TypeScript over `node:fs`; runs in Deno and Bun.
 *
 * @module
 */

export * from "./errors.ts";
export * from "./types.ts";
export * from "./reader.ts";
export * from "./writer.ts";
