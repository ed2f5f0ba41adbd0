/**
 * Load test of `spool serve` on loopback: N concurrent streaming clients for D seconds
 * against the server fixture model, while a prober hits /health every 50 ms. Prints requests,
 * errors, tokens, tok/s and /health latency percentiles (JSON with --json).
 *
 *   deno run -A bench/server_load.ts [--clients 16] [--seconds 30] [--parallel 4] [--model F]
 */
import { parseArgs } from "node:util";
import { serverModel } from "../test/server/_fixture.ts";
import { createServer } from "../runtime/server/serve.ts";

const { values: v } = parseArgs({
  options: {
    clients: { type: "string", default: "16" },
    seconds: { type: "string", default: "30" },
    parallel: { type: "string", default: "4" },
    "max-tokens": { type: "string", default: "48" },
    model: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const clients = Number(v.clients), seconds = Number(v.seconds);
const server = await createServer({
  path: v.model ?? serverModel(),
  port: 0,
  nCtx: 1024,
  parallel: Number(v.parallel),
  threads: 2,
});
const end = performance.now() + seconds * 1000;
let requests = 0, errors = 0, tokens = 0;
const errorKinds = new Map<string, number>();
const fail = (k: string) => {
  errors++;
  errorKinds.set(k, (errorKinds.get(k) ?? 0) + 1);
};

async function client(i: number): Promise<void> {
  let turn = 0;
  while (performance.now() < end) {
    try {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-session-affinity": `c${i}` },
        body: JSON.stringify({
          messages: [{ role: "user", content: `client ${i} turn ${turn++}: tell me a story` }],
          max_tokens: Number(v["max-tokens"]),
          stream: true,
          stream_options: { include_usage: true },
        }),
      });
      if (res.status !== 200) {
        fail(`http ${res.status}`);
        await res.body?.cancel();
        continue;
      }
      const text = await res.text();
      if (!text.includes("data: [DONE]")) fail("no [DONE]");
      const u = /"completion_tokens":(\d+)/.exec(text);
      if (u) tokens += Number(u[1]);
      requests++;
    } catch (e) {
      fail((e as Error).name);
    }
  }
}

const health: number[] = [];
let healthErrors = 0;
async function prober(): Promise<void> {
  while (performance.now() < end) {
    const t0 = performance.now();
    try {
      const r = await fetch(`${server.url}/health`);
      if (r.status !== 200) healthErrors++;
      await r.body?.cancel();
    } catch {
      healthErrors++;
    }
    health.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const t0 = performance.now();
await Promise.all([...Array.from({ length: clients }, (_, i) => client(i)), prober()]);
const wall = (performance.now() - t0) / 1000;
const metrics = await (await fetch(`${server.url}/metrics`)).text();
await server.close();
health.sort((a, b) => a - b);
const pct = (p: number) => health[Math.min(health.length - 1, Math.floor(p * health.length))];
const steps = Number(/spool_steps_total (\d+)/.exec(metrics)?.[1] ?? 0);
const seqs = Number(/spool_step_sequences_total (\d+)/.exec(metrics)?.[1] ?? 0);
const report = {
  clients,
  seconds: Math.round(wall * 10) / 10,
  parallel: Number(v.parallel),
  requests,
  errors,
  errorKinds: Object.fromEntries(errorKinds),
  tokens,
  tokensPerSecond: Math.round(tokens / wall * 10) / 10,
  meanBatch: steps > 0 ? Math.round(seqs / steps * 100) / 100 : 0,
  health: {
    probes: health.length,
    errors: healthErrors,
    p50: Math.round(pct(0.5) * 10) / 10,
    p99: Math.round(pct(0.99) * 10) / 10,
    max: Math.round(health[health.length - 1] * 10) / 10,
  },
};
if (v.json) console.log(JSON.stringify(report));
else console.log(report);
