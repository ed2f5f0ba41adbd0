/**
 * The server under Bun.serve: the engine worker, a streamed chat completion over a real
 * socket, and /health while it streams.
 */
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createServer } from "../../runtime/server/serve.ts";

const MODEL = fileURLToPath(
  new URL("../fixtures/server/qwen3moe-tiny-q8-qwen3tpl.gguf", import.meta.url),
);

test.skipIf(!existsSync(MODEL))("Bun.serve: streaming chat, health during generation", async () => {
  const server = await createServer({ path: MODEL, port: 0, nCtx: 256, threads: 2 });
  try {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 24,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    const h = await fetch(`${server.url}/health`);
    expect(h.status).toBe(200);
    expect((await h.json()).status).toBe("ok");
    let text = "";
    const dec = new TextDecoder();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    expect(text).toContain("data: [DONE]");
    // every chunk carries `usage` (null until the last, as OpenAI sends it)
    const usage = text.split("\n").filter((l) => l.includes('"usage"')).map((l) =>
      JSON.parse(l.slice(6)).usage
    ).filter((u) => u !== null);
    expect(usage[0].completion_tokens).toBe(24);
    const plain = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
    });
    const j = await plain.json();
    expect(j.usage.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
  } finally {
    await server.close();
  }
}, 60_000);

test.skipIf(!existsSync(MODEL))("Bun.serve: a half-sent request head is cut off", async () => {
  const server = await createServer({
    path: MODEL,
    port: 0,
    nCtx: 256,
    threads: 2,
    requestTimeoutMs: 1000,
  });
  try {
    const { connect } = await import("node:net");
    const sock = connect({ host: "127.0.0.1", port: server.port });
    await new Promise<void>((r) => sock.once("connect", () => r()));
    let text = "";
    sock.on("data", (d) => (text += d.toString()));
    const closed = new Promise<void>((r) => sock.once("close", () => r()));
    const t0 = performance.now();
    sock.write("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nCont");
    const h = await fetch(`${server.url}/health`);
    expect(h.status).toBe(200);
    await closed;
    const ms = performance.now() - t0;
    expect(text.startsWith("HTTP/1.1 408")).toBe(true);
    expect(ms).toBeGreaterThan(700);
    expect(ms).toBeLessThan(3000);
  } finally {
    await server.close();
  }
}, 60_000);
