/**
 * Soak test of `spool serve`: a mixed load (plain chats streamed and not, forced tool calls,
 * response_format json_schema, Anthropic messages with tools, count_tokens, a few bad
 * requests) against the server fixture model, in process, printing the RSS after every
 * `--every` requests (after a GC when `--expose-gc`-style `gc` is available). Flat RSS after
 * warm-up means nothing is retained per request.
 *
 *   deno run -A --v8-flags=--expose-gc bench/server_soak.ts [--requests 3000] [--every 500]
 *     [--clients 2] [--model F] [--json]
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { serverModel } from "../test/server/_fixture.ts";
import { createServer } from "../runtime/server/serve.ts";

const { values: v } = parseArgs({
  options: {
    requests: { type: "string", default: "3000" },
    every: { type: "string", default: "500" },
    clients: { type: "string", default: "2" },
    model: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const total = Number(v.requests), every = Number(v.every);
const server = await createServer({
  path: v.model ?? serverModel(),
  port: 0,
  nCtx: 1024,
  parallel: 2,
  threads: 2,
});
const url = server.url;
const WEATHER = {
  type: "object",
  properties: { city: { type: "string", maxLength: 12 }, days: { type: "integer" } },
  required: ["city"],
  additionalProperties: false,
};
const tools = [{
  type: "function",
  function: { name: "get_weather", description: "Weather", parameters: WEATHER },
}];

/** The i-th request of the mix: [path, body]. */
function request(i: number): [string, Record<string, unknown>] {
  const user = [{ role: "user", content: `request ${i}: ${"word ".repeat(i % 40)}weather?` }];
  switch (i % 7) {
    case 0:
      return ["/v1/chat/completions", { messages: user, max_tokens: 8 }];
    case 1:
      return ["/v1/chat/completions", { messages: user, max_tokens: 8, stream: true }];
    case 2:
      return ["/v1/chat/completions", {
        messages: user,
        tools,
        tool_choice: "required",
        max_tokens: 40,
      }];
    case 3:
      return ["/v1/chat/completions", {
        messages: user,
        max_tokens: 40,
        response_format: { type: "json_schema", json_schema: { name: "w", schema: WEATHER } },
      }];
    case 4:
      return ["/v1/messages", {
        messages: user,
        max_tokens: 40,
        tools: [{ name: "get_weather", input_schema: WEATHER }],
        tool_choice: { type: "any" },
        stream: i % 2 === 0,
      }];
    case 5:
      return ["/v1/messages/count_tokens", { messages: user }];
    default:
      // a bad request: unsupported keyword
      return ["/v1/chat/completions", {
        messages: user,
        response_format: {
          type: "json_schema",
          json_schema: { name: "x", schema: { type: "array", uniqueItems: true } },
        },
      }];
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
const rssMb = () => {
  gc?.();
  return process.memoryUsage().rss / 1048576;
};
const samples: { requests: number; rssMb: number }[] = [{ requests: 0, rssMb: rssMb() }];
let next = 0, done = 0, errors = 0;
const t0 = performance.now();
async function client(): Promise<void> {
  while (next < total) {
    const i = next++;
    const [path, body] = request(i);
    const r = await fetch(url + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    await r.text();
    if (r.status !== 200 && !(i % 7 === 6 && r.status === 400)) errors++;
    done++;
    if (done % every === 0) {
      const s = { requests: done, rssMb: rssMb() };
      samples.push(s);
      if (!v.json) console.log(`${s.requests} requests: RSS ${s.rssMb.toFixed(1)} MB`);
    }
  }
}
await Promise.all(Array.from({ length: Number(v.clients) }, client));
const seconds = (performance.now() - t0) / 1000;
await server.close();
const warm = samples[Math.min(1, samples.length - 1)].rssMb;
const last = samples[samples.length - 1].rssMb;
const perRequestKb = samples.length > 2
  ? ((last - warm) * 1024) / (samples[samples.length - 1].requests - samples[1].requests)
  : NaN;
const out = {
  requests: done,
  errors,
  seconds,
  samples,
  growthAfterWarmupKbPerRequest: perRequestKb,
};
if (v.json) console.log(JSON.stringify(out));
else {
  console.log(
    `${done} requests in ${seconds.toFixed(1)} s, ${errors} unexpected errors; RSS growth ` +
      `after the first ${every}: ${perRequestKb.toFixed(2)} kB/request`,
  );
}
