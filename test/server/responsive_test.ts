/**
 * Nothing freezes the server: while one client sends a multi-megabyte prompt (rendered and
 * tokenized off the main thread, then refused as too long), /health keeps answering fast;
 * and the oversized prompt still gets its 400. A body sent too slowly is a 408.
 */
import { equal, ok } from "node:assert/strict";
import process from "node:process";
import { startServer } from "./_fixture.ts";

Deno.test({
  name: "responsive: /health stays fast while a huge prompt is tokenized",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startServer({ nCtx: 512 });
    const url = server.url;
    try {
      const content = "lorem ipsum dolor sit amet, ".repeat(80_000); // 2.2 MB
      const lat: number[] = [];
      let busy = true;
      const probe = (async () => {
        while (busy) {
          const t = performance.now();
          const r = await fetch(`${url}/health`);
          await r.text();
          lat.push(performance.now() - t);
          await new Promise((res) => setTimeout(res, 10));
        }
      })();
      const t0 = performance.now();
      const big = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content }], max_tokens: 4 }),
      });
      const body = await big.json();
      const ms = performance.now() - t0;
      busy = false;
      await probe;
      equal(big.status, 400);
      equal(body.error.code, "context_length_exceeded");
      lat.sort((a, b) => a - b);
      const p99 = lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))];
      console.log(
        `huge prompt answered in ${ms.toFixed(0)} ms; ${lat.length} /health probes, ` +
          `median ${lat[lat.length >> 1].toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, ` +
          `max ${lat[lat.length - 1].toFixed(1)} ms`,
      );
      ok(lat.length >= 10, `only ${lat.length} probes`);
      ok(p99 < 250, `p99 ${p99.toFixed(1)} ms`);

      // a client that sends its body too slowly gets a 408 (SPOOL_BODY_TIMEOUT_MS, read per
      // request; `--body-timeout` sets it)
      process.env.SPOOL_BODY_TIMEOUT_MS = "800";
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        await conn.write(
          new TextEncoder().encode(
            `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\n` +
              'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"messages"',
          ),
        );
        const t1 = performance.now();
        const buf = new Uint8Array(2048);
        const n = await conn.read(buf);
        const waited = performance.now() - t1;
        conn.close();
        const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
        ok(head.startsWith("HTTP/1.1 408"), head.slice(0, 200));
        ok(waited > 500 && waited < 5000, `408 after ${waited.toFixed(0)} ms`);
      } finally {
        delete process.env.SPOOL_BODY_TIMEOUT_MS;
      }
    } finally {
      await server.close();
    }
  },
});
