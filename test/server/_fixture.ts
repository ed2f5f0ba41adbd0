/**
 * Fixtures of the server tests: a tiny random-weight qwen3moe with the real Qwen vocabulary
 * and Qwen3's own chat template (generated once into test/fixtures/server/), and a server
 * started on a free loopback port.
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { sharedVocab, writeSyntheticModel } from "../../runtime/models/synth.ts";
import { createServer, type ServerOptions, type SpoolServer } from "../../runtime/server/serve.ts";

const DIR = fileURLToPath(new URL("../fixtures/server/", import.meta.url));

/** `../shared/templates/NAME` next to the repository (SPOOL_TEMPLATE_DIR overrides). */
export function sharedTemplate(name: string): string {
  const dir = process.env.SPOOL_TEMPLATE_DIR ??
    fileURLToPath(new URL("../../../shared/templates/", import.meta.url));
  return `${dir.replace(/\/$/, "")}/${name}`;
}

/** The fixture model's path (written on first use). */
export function serverModel(): string {
  const path = `${DIR}qwen3moe-tiny-q8-qwen3tpl.gguf`;
  if (!existsSync(path)) {
    mkdirSync(DIR, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeSyntheticModel(tmp, {
      arch: "qwen3moe",
      preset: "tiny",
      types: "Q8_0",
      seed: 11,
      vocab: sharedVocab("ggml-vocab-qwen2.gguf"),
      chatTemplate: readFileSync(sharedTemplate("Qwen-Qwen3-0.6B.jinja"), "utf8"),
      name: "spool-test",
    });
    renameSync(tmp, path);
  }
  return path;
}

/** Start a server on the fixture (port 0, loopback). */
export function startServer(opts: Partial<ServerOptions> = {}): Promise<SpoolServer> {
  return createServer({
    path: serverModel(),
    port: 0,
    nCtx: 512,
    threads: 2,
    alias: "spool-test",
    ...opts,
  });
}

/** POST JSON; returns status, headers and parsed body. */
export async function postJSON(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { _text: text };
  }
  return { status: r.status, headers: r.headers, body: parsed };
}
