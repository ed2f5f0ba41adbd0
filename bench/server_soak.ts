/**
 * Soak test of `spool serve`: a mixed load (plain chats streamed and not, forced tool calls,
 * response_format json_schema, Anthropic messages with tools, count_tokens, a few bad
 * requests) against a real `spool serve` process on the server fixture model (or
 * `--model`), printing that process's memory after every `--every` requests, read from its
 * own `/metrics`: resident anonymous memory (what a leak grows), resident file pages (the
 * mapped model: page cache, bounded by the file), and the main and engine JavaScript heaps
 * (the server runs with `--expose-gc`, so `/metrics` reads them after a full collection).
 * Flat anonymous memory after warm-up means nothing is retained per request.
 *
 *   deno run -A bench/server_soak.ts [--requests 3000] [--every 500] [--clients 2]
 *     [--model F] [--json] [--wrap "heaptrack -o /tmp/serve"]
 *
 * `--wrap` runs the server under another program (an allocation profiler, for one), given
 * as a command line split at spaces, before deno.
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { serverModel } from "../test/server/_fixture.ts";

const { values: v } = parseArgs({
  options: {
    requests: { type: "string", default: "3000" },
    every: { type: "string", default: "500" },
    clients: { type: "string", default: "2" },
    model: { type: "string" },
    json: { type: "boolean", default: false },
    wrap: { type: "string" },
  },
});
const total = Number(v.requests), every = Number(v.every);
const MAIN = fileURLToPath(new URL("../cli/main.ts", import.meta.url));
// --expose-gc: /metrics then collects garbage before reading the heaps (retained memory only)
const args = [
  "run",
  "-A",
  "--v8-flags=--expose-gc",
  MAIN,
  "serve",
  v.model ?? serverModel(),
  "--port",
  "0",
];
args.push("--ctx", "1024", "--parallel", "2", "--threads", "2", "--batch-store", "off");
const wrap = v.wrap?.split(" ").filter((w) => w !== "") ?? [];
const proc = wrap.length > 0
  ? spawn(wrap[0], [...wrap.slice(1), Deno.execPath(), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    detached: true, // its own process group: the wrapper and the server end together
  })
  : spawn(Deno.execPath(), args, { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise<string>((resolve, reject) => {
  let buf = "";
  proc.stdout!.on("data", (d: Uint8Array) => {
    buf += new TextDecoder().decode(d);
    const m = buf.match(/^(http:\/\/\S+)\n/m);
    if (m) resolve(m[1]);
  });
  proc.on("exit", (code) => reject(new Error(`spool serve exited with ${code}`)));
});
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

interface Sample {
  requests: number;
  /** MB: resident anonymous memory, resident file pages, main and engine heaps in use. */
  anonMb: number;
  fileMb: number;
  mainHeapMb: number;
  engineHeapMb: number;
  /** MB the main and engine heaps hold (used or not). */
  heapsTotalMb: number;
  /** MB of array buffers outside the heaps (main + engine). */
  externalMb: number;
  /** Resident MB of anonymous mappings by kind (see {@link anonKinds}). */
  anonByKind: Record<string, number>;
}
/**
 * Resident MB of the server's anonymous mappings by kind (Linux): `brk` (the main malloc
 * heap), `arenas` (64 MiB-aligned mappings: glibc's per-thread malloc arenas), `other`
 * (V8's heap pages, large allocations, stacks).
 */
function anonKinds(pid: number): Record<string, number> {
  const out: Record<string, number> = { brk: 0, arenas: 0, other: 0 };
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/smaps`);
  } catch {
    return out;
  }
  let kind: string | null = null;
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (m) {
      const mb = (parseInt(m[2], 16) - parseInt(m[1], 16)) / 1048576;
      const name = m[4];
      kind = name === "[heap]" ? "brk" : name !== "" || m[3] !== "0"
        ? null // files and other named mappings
        : mb > 60 && mb <= 64
        ? "arenas"
        : "other";
    } else if (kind && line.startsWith("Rss:")) {
      out[kind] += Number(line.split(/\s+/)[1]) / 1024;
    }
  }
  return out;
}

async function sample(requests: number): Promise<Sample> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const mb = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN) / 1048576;
  return {
    requests,
    anonMb: mb(/process_resident_memory_bytes\{kind="anon"\} (\d+)/),
    fileMb: mb(/process_resident_memory_bytes\{kind="file"\} (\d+)/),
    mainHeapMb: mb(/spool_js_heap_bytes\{thread="main",kind="used"\} (\d+)/),
    engineHeapMb: mb(/spool_js_heap_bytes\{thread="engine",kind="used"\} (\d+)/),
    heapsTotalMb: mb(/spool_js_heap_bytes\{thread="main",kind="total"\} (\d+)/) +
      mb(/spool_js_heap_bytes\{thread="engine",kind="total"\} (\d+)/),
    externalMb: mb(/spool_js_heap_bytes\{thread="main",kind="external"\} (\d+)/) +
      mb(/spool_js_heap_bytes\{thread="engine",kind="external"\} (\d+)/),
    anonByKind: anonKinds(proc.pid!),
  };
}
const show = (s: Sample) =>
  `${s.requests} requests: anonymous ${s.anonMb.toFixed(1)} MB, file ${s.fileMb.toFixed(1)} MB, ` +
  `heaps main ${s.mainHeapMb.toFixed(1)} engine ${s.engineHeapMb.toFixed(1)} MB ` +
  `(holding ${s.heapsTotalMb.toFixed(1)}), ` +
  `array buffers ${s.externalMb.toFixed(1)} MB; anonymous by kind ` +
  Object.entries(s.anonByKind).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ");
const samples: Sample[] = [await sample(0)];
if (!v.json) console.log(show(samples[0]));
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
      const s = await sample(done);
      samples.push(s);
      if (!v.json) console.log(show(s));
    }
  }
}
await Promise.all(Array.from({ length: Number(v.clients) }, client));
const seconds = (performance.now() - t0) / 1000;
if (wrap.length > 0) process.kill(-proc.pid!, "SIGTERM");
else proc.kill("SIGTERM");
await new Promise((r) => proc.on("exit", r));
// growth from the first sample after warm-up to the last, per request
const warm = samples[Math.min(1, samples.length - 1)];
const last = samples[samples.length - 1];
const perRequestKb = samples.length > 2
  ? ((last.anonMb - warm.anonMb) * 1024) / (last.requests - warm.requests)
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
    `${done} requests in ${seconds.toFixed(1)} s, ${errors} unexpected errors; anonymous ` +
      `memory growth after the first ${every}: ${perRequestKb.toFixed(2)} kB/request`,
  );
}
