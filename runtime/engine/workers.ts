/**
 * Where the runtime's Worker entry files are started from. Every entry lives in this folder
 * and is started here with `new URL("./x.ts", import.meta.url)`: a Bun-compiled binary
 * bundles them at its root (scripts/compile.ts), where such a URL finds them.
 *
 * @module
 */

/** The server's render worker (templates and tokenization off the main thread). */
export function startRenderWorker(): Worker {
  return new Worker(new URL("./_render_worker.ts", import.meta.url).href, { type: "module" });
}

/** The server's body parser worker (one large JSON request body off the main thread). */
export function startJsonWorker(): Worker {
  return new Worker(new URL("./_json_worker.ts", import.meta.url).href, { type: "module" });
}
