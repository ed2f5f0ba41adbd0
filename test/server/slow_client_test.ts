/**
 * Slow clients are cut off: a client that sends half a request head and then nothing, or
 * one byte at a time, gets a 408 and its connection closed once the request timeout has
 * passed (`requestTimeoutMs`, `--request-timeout`), while other clients are served all the
 * while; a chunked body and keep-alive requests still pass through the front.
 */
import { equal, ok } from "node:assert/strict";
import { startServer } from "./_fixture.ts";

const enc = new TextEncoder();

/** Reads until the server closes; returns the text and the milliseconds it took. */
async function readToClose(conn: Deno.Conn, limitMs: number): Promise<[string, number]> {
  const t = performance.now();
  const buf = new Uint8Array(4096);
  let text = "";
  const guard = setTimeout(() => conn.close(), limitMs);
  try {
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } finally {
    clearTimeout(guard);
  }
  return [text, performance.now() - t];
}

Deno.test({
  name: "slow clients: half a head, or a byte at a time, is cut off after the timeout",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startServer({ requestTimeoutMs: 1000 });
    const { port } = server;
    try {
      // half a request line and headers, then nothing
      const half = await Deno.connect({ hostname: "127.0.0.1", port });
      await half.write(enc.encode(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nCon`));
      const halfDone = readToClose(half, 10_000);
      // a slowloris: one byte every 200 ms, never finishing
      const drip = await Deno.connect({ hostname: "127.0.0.1", port });
      let dripping = true;
      const dripper = (async () => {
        const head = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${"a".repeat(200)}`;
        for (const ch of head) {
          if (!dripping) break;
          if (await drip.write(enc.encode(ch)).catch(() => null) === null) break;
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      const dripDone = readToClose(drip, 10_000);
      // meanwhile other clients are served
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) {
        const r = await fetch(`${server.url}/health`);
        equal(r.status, 200);
        await r.body?.cancel();
      }
      const chat = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 3 }),
      });
      equal(chat.status, 200);
      equal((await chat.json()).usage.completion_tokens, 3);
      ok(performance.now() - t0 < 1000, "other clients waited on the slow ones");

      const [halfText, halfMs] = await halfDone;
      ok(halfText.startsWith("HTTP/1.1 408"), `half head got: ${halfText.slice(0, 80)}`);
      ok(halfMs > 700 && halfMs < 3000, `half head closed after ${halfMs.toFixed(0)} ms`);
      const [dripText, dripMs] = await dripDone;
      dripping = false;
      await dripper;
      ok(dripText.startsWith("HTTP/1.1 408"), `slowloris got: ${dripText.slice(0, 80)}`);
      ok(dripMs > 700 && dripMs < 3000, `slowloris closed after ${dripMs.toFixed(0)} ms`);
      drip.close();
      console.log(
        `half head closed after ${halfMs.toFixed(0)} ms, slowloris ${dripMs.toFixed(0)} ms`,
      );
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "slow clients: keep-alive, pipelined and chunked requests pass the front",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startServer({ requestTimeoutMs: 1000 });
    try {
      // a chunked body, sent in pieces slower than nothing but within the timeout
      const parts = [
        '{"content":',
        '"hello world"}',
      ];
      const body = new ReadableStream<Uint8Array>({
        async pull(ctl) {
          const p = parts.shift();
          if (p === undefined) return ctl.close();
          await new Promise((r) => setTimeout(r, 100));
          ctl.enqueue(enc.encode(p));
        },
      });
      const r = await fetch(`${server.url}/tokenize`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      equal(r.status, 200);
      ok((await r.json()).tokens.length > 0);

      // two pipelined requests on one connection, then a half head: both answered, then 408-less
      // close (a response was already sent on this connection)
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      const json = '{"content":"hi"}';
      const req =
        `POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${json.length}\r\n\r\n${json}`;
      await conn.write(enc.encode(req + req + "GET /health HTTP/1.1\r\nHo"));
      const [text, ms] = await readToClose(conn, 10_000);
      equal(text.match(/HTTP\/1\.1 200/g)?.length, 2, text.slice(0, 400));
      // a status line, not the digits anywhere (a date, an id or a length may hold "408")
      ok(!/HTTP\/1\.1 408/.test(text), `a 408 after responses on the same connection: ${text}`);
      ok(ms > 700 && ms < 3000, `closed after ${ms.toFixed(0)} ms`);
    } finally {
      await server.close();
    }
  },
});
