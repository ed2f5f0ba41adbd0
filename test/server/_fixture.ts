/**
 * Fixtures of the server tests: a tiny random-weight qwen3moe with the real Qwen vocabulary
 * and Qwen3's own chat template (generated once into test/fixtures/server/), the same model
 * with a plain ChatML template (no tool-call syntax), and a server started on a free loopback
 * port. Vocab and templates come from llama.cpp's source in node-llama-cpp's bundle.
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { writeSyntheticModel } from "../../runtime/models/synth.ts";
import { createServer, type ServerOptions, type SpoolServer } from "../../runtime/server/serve.ts";
import { llamaTemplate, llamaVocab } from "../_llama_source.ts";

const DIR = fileURLToPath(new URL("../fixtures/server/", import.meta.url));

/** Path of llama.cpp's chat template `name` (from node-llama-cpp's source bundle). */
export function sharedTemplate(name: string): string {
  return llamaTemplate(name);
}

/** A plain ChatML template: no tools, no tool-call syntax. */
export const CHATML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + " +
  "'\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** The fixture model's path (written on first use); `chatml` for the plain ChatML one. */
export function serverModel(template: "qwen3" | "chatml" = "qwen3"): string {
  const path = `${DIR}qwen3moe-tiny-q8-${template === "qwen3" ? "qwen3tpl" : "chatml"}.gguf`;
  if (!existsSync(path)) {
    mkdirSync(DIR, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeSyntheticModel(tmp, {
      arch: "qwen3moe",
      preset: "tiny",
      types: "Q8_0",
      seed: 11,
      vocab: llamaVocab("qwen2"),
      chatTemplate: template === "qwen3"
        ? readFileSync(llamaTemplate("Qwen-Qwen3-0.6B.jinja"), "utf8")
        : CHATML,
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
