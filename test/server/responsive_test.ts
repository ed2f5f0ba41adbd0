/**
 * Nothing freezes the server: while one client sends a multi-megabyte prompt (rendered and
 * tokenized off the main thread, then refused as too long), /health keeps answering fast;
 * and the oversized prompt still gets its 400.
 */
import { equal, ok } from "node:assert/strict";
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
    } finally {
      await server.close();
    }
  },
});
