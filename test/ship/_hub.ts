/**
 * A local stand-in for the Hugging Face hub, for pull tests: the hub API (`/api/models/...`),
 * `resolve` URLs answered with a 302 carrying `X-Linked-Etag` (sha256) and `X-Linked-Size`,
 * and a CDN on another origin that serves the bytes with a strong ETag, `Range` and
 * `If-Range`. Faults on demand: cut the connection after N bytes, serve a wrong checksum,
 * require a token.
 */
import { createHash } from "node:crypto";

/** A request as the servers saw it. */
export interface SeenRequest {
  server: "hub" | "cdn";
  method: string;
  path: string;
  range: string | null;
  ifRange: string | null;
  authorization: string | null;
}

/** Knobs a test turns. */
export interface HubFaults {
  /** Cut the next CDN body after this many bytes (once). */
  cutAt?: number;
  /** Announce a sha256 that does not match the bytes. */
  wrongSha?: boolean;
  /** Require `Authorization: Bearer <token>` on the hub. */
  token?: string;
}

/** A running fake hub. */
export interface FakeHub {
  baseUrl: string;
  seen: SeenRequest[];
  faults: HubFaults;
  close(): Promise<void>;
}

/** Start a fake hub serving `repos` (repo → file name → bytes). */
export function startHub(repos: Record<string, Record<string, Uint8Array>>): FakeHub {
  const seen: SeenRequest[] = [];
  const faults: HubFaults = {};
  const sha = new Map<Uint8Array, string>();
  const shaOf = (b: Uint8Array) => {
    let h = sha.get(b);
    if (!h) sha.set(b, h = createHash("sha256").update(b).digest("hex"));
    return faults.wrongSha ? "0".repeat(64) : h;
  };
  const record = (server: "hub" | "cdn", req: Request) =>
    seen.push({
      server,
      method: req.method,
      path: new URL(req.url).pathname,
      range: req.headers.get("range"),
      ifRange: req.headers.get("if-range"),
      authorization: req.headers.get("authorization"),
    });
  const find = (repo: string, file: string) => repos[repo]?.[file];

  const cdn = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    record("cdn", req);
    const m = /^\/files\/([^/]+\/[^/]+)\/(.+)$/.exec(new URL(req.url).pathname);
    const bytes = m && find(m[1], decodeURIComponent(m[2]));
    if (!bytes) return new Response("not found", { status: 404 });
    const etag = `"cdn-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}"`;
    const len = bytes.length;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const ifRange = req.headers.get("if-range");
    if (range && (ifRange === null || ifRange === etag)) {
      start = Number(range[1]);
      if (start >= len) {
        return new Response(null, { status: 416, headers: { "content-range": `bytes */${len}` } });
      }
    }
    const headers: Record<string, string> = {
      etag,
      "content-length": String(len - start),
      "accept-ranges": "bytes",
    };
    if (start > 0) headers["content-range"] = `bytes ${start}-${len - 1}/${len}`;
    const status = start > 0 ? 206 : 200;
    if (req.method === "HEAD") return new Response(null, { status, headers });
    const cut = faults.cutAt;
    faults.cutAt = undefined;
    const body = bytes.subarray(start);
    if (cut === undefined || cut >= body.length) {
      return new Response(body.slice(), { status, headers });
    }
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (!sent) {
          sent = true;
          c.enqueue(body.slice(0, cut));
          return;
        }
        await new Promise((r) => setTimeout(r, 20));
        c.error(new Error("connection cut by the test"));
      },
    });
    return new Response(stream, { status, headers });
  });
  const cdnBase = `http://127.0.0.1:${cdn.addr.port}`;

  const hub = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    record("hub", req);
    if (faults.token && req.headers.get("authorization") !== `Bearer ${faults.token}`) {
      return new Response("unauthorized", { status: 401 });
    }
    const path = new URL(req.url).pathname;
    const api = /^\/api\/models\/([^/]+\/[^/]+)$/.exec(path);
    if (api) {
      const files = repos[api[1]];
      if (!files) return Response.json({ error: "Repository not found" }, { status: 404 });
      const siblings = Object.keys(files).map((rfilename) => ({ rfilename }));
      return Response.json({ id: api[1], siblings: [...siblings, { rfilename: "README.md" }] });
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const file = m && decodeURIComponent(m[3]);
    const bytes = m && find(m[1], file!);
    if (!m || !bytes) return new Response("Entry not found", { status: 404 });
    return new Response(null, {
      status: 302,
      headers: {
        location: `${cdnBase}/files/${m[1]}/${encodeURIComponent(file!)}`,
        "x-linked-etag": `"${shaOf(bytes)}"`,
        "x-linked-size": String(bytes.length),
        etag: `"${shaOf(bytes)}"`,
      },
    });
  });
  return {
    baseUrl: `http://127.0.0.1:${hub.addr.port}`,
    seen,
    faults,
    async close() {
      await hub.shutdown();
      await cdn.shutdown();
    },
  };
}
