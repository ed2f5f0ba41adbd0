/**
 * The socket front of `spool serve`: a small TCP relay (node:net, the same code on Deno and
 * Bun) that accepts clients on the public address and hands each connection's bytes to the
 * runtime's HTTP server listening on a private Unix socket, watching the requests as they
 * pass so that a slow client is cut off.
 *
 * Neither `Deno.serve` nor `Bun.serve` bounds the time a client may take to send a request
 * head: a client that sends half a request line and then nothing (or one byte every few
 * seconds) holds its connection forever. The front parses just enough HTTP/1.1 framing
 * ({@link RequestFramer}: the head up to its blank line, then a `Content-Length` or chunked
 * body) to know when each request head starts and ends. A head that is not complete within
 * `headTimeoutMs` of its first byte (of the connection's opening, for the first request) gets
 * a `408` (on the first request of the connection, where no response can be in flight) and
 * the connection is closed. A body that is not complete within `bodyTimeoutMs` after its head
 * closes the connection too (the JSON routes answer a 408 before that, see `readJson`). A
 * head over `maxHeadBytes` is a 431. Idle keep-alive connections between requests are left
 * open, as clients' pools expect.
 *
 * @module
 */
import net from "node:net";

/** Thrown by {@link RequestFramer.feed} for bytes that are not HTTP/1.1 request framing. */
export class FramingError extends Error {
  /** HTTP status to answer with (400 or 431). */
  readonly status: number;
  /** A framing error with its status and cause. */
  constructor(message: string, status = 400, options?: ErrorOptions) {
    super(message, options);
    this.name = "FramingError";
    this.status = status;
  }
}

/** Where a {@link RequestFramer} is in the request stream. */
export type FramerState = "idle" | "head" | "body";

const CR = 13, LF = 10;

/**
 * Follows HTTP/1.1 request framing over a byte stream (pipelined requests included): the
 * head until its empty line, then the body by `Content-Length` or chunked encoding. It only
 * observes; the bytes go on unchanged.
 */
export class RequestFramer {
  /** idle: between requests; head: inside a request head; body: inside its body. */
  state: FramerState = "idle";
  /** Requests whose head was complete. */
  requests = 0;
  readonly #maxHead: number;
  #head: number[] = [];
  #left = 0; // body bytes left (length body or current chunk's data)
  #chunked = false;
  // chunked sub-state: size line, data, the CRLF after data, trailers
  #chunk: "size" | "data" | "data-crlf" | "trailer" = "size";
  #line: number[] = [];

  /** A framer refusing heads over `maxHeadBytes`. */
  constructor(maxHeadBytes = 64 * 1024) {
    this.#maxHead = maxHeadBytes;
  }

  /** Observe `bytes`; returns events in order ("head-start", "head-end", "body-end"). */
  feed(bytes: Uint8Array): string[] {
    const ev: string[] = [];
    let i = 0;
    while (i < bytes.length) {
      if (this.state === "idle") {
        // stray CRLFs between requests are allowed (RFC 9112 §2.2)
        if (bytes[i] === CR || bytes[i] === LF) {
          i++;
          continue;
        }
        this.state = "head";
        this.#head = [];
        ev.push("head-start");
      }
      if (this.state === "head") {
        const b = bytes[i++];
        this.#head.push(b);
        if (this.#head.length > this.#maxHead) {
          throw new FramingError(`request head over ${this.#maxHead} bytes`, 431);
        }
        const h = this.#head, n = h.length;
        if (b === LF && n >= 2 && (h[n - 2] === LF || (h[n - 2] === CR && h[n - 3] === LF))) {
          this.#startBody();
          ev.push("head-end");
          this.requests++;
          if ((this.state as FramerState) === "idle") ev.push("body-end");
        }
        continue;
      }
      i = this.#chunked ? this.#chunkStep(bytes, i) : this.#lengthStep(bytes, i);
      if ((this.state as FramerState) === "idle") ev.push("body-end");
    }
    return ev;
  }

  #startBody(): void {
    const text = new TextDecoder("latin1").decode(new Uint8Array(this.#head));
    this.#head = [];
    let length: number | undefined;
    let chunked = false;
    for (const line of text.split(/\r?\n/).slice(1)) {
      const at = line.indexOf(":");
      if (at < 0) continue;
      const name = line.slice(0, at).trim().toLowerCase();
      const value = line.slice(at + 1).trim();
      if (name === "transfer-encoding") chunked = /(^|,)\s*chunked\s*$/i.test(value);
      else if (name === "content-length") {
        if (!/^\d+$/.test(value)) throw new FramingError(`bad Content-Length "${value}"`);
        length = Number(value);
      }
    }
    this.#chunked = chunked;
    this.#chunk = "size";
    this.#line = [];
    this.#left = chunked ? 0 : length ?? 0;
    this.state = chunked || this.#left > 0 ? "body" : "idle";
  }

  #lengthStep(bytes: Uint8Array, i: number): number {
    const take = Math.min(this.#left, bytes.length - i);
    this.#left -= take;
    if (this.#left === 0) this.state = "idle";
    return i + take;
  }

  #chunkStep(bytes: Uint8Array, i: number): number {
    if (this.#chunk === "data") {
      const take = Math.min(this.#left, bytes.length - i);
      this.#left -= take;
      if (this.#left === 0) this.#chunk = "data-crlf";
      return i + take;
    }
    const b = bytes[i++];
    if (b !== LF) {
      if (this.#line.length > 4096) throw new FramingError("chunk line over 4096 bytes");
      this.#line.push(b);
      return i;
    }
    const line = new TextDecoder("latin1").decode(new Uint8Array(this.#line)).replace(/\r$/, "");
    this.#line = [];
    if (this.#chunk === "data-crlf") {
      if (line !== "") throw new FramingError("chunk data not followed by CRLF");
      this.#chunk = "size";
    } else if (this.#chunk === "size") {
      const m = /^([0-9a-fA-F]+)(;.*)?$/.exec(line.trim());
      if (!m) throw new FramingError(`bad chunk size line "${line.slice(0, 40)}"`);
      this.#left = parseInt(m[1], 16);
      this.#chunk = this.#left === 0 ? "trailer" : "data";
    } else if (line === "") this.state = "idle"; // the empty line after the trailers
    return i;
  }
}

/** Options of {@link startFront}. */
export interface FrontOptions {
  /** Public address to bind. */
  host: string;
  /** Public port (0 picks a free one). */
  port: number;
  /** The Unix socket the HTTP server listens on. */
  backendPath: string;
  /** Milliseconds a client has to send a request head. */
  headTimeoutMs: number;
  /** Milliseconds a client has to send a body after its head. */
  bodyTimeoutMs: number;
  /** Largest request head in bytes (default 64 KiB). */
  maxHeadBytes?: number;
}

/** A listening front. */
export interface Front {
  /** The bound public port. */
  readonly port: number;
  /** Stop accepting and close every relayed connection. */
  close(): Promise<void>;
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
};

/** Relay one client connection to the backend, with the deadlines of {@link FrontOptions}. */
function relay(client: net.Socket, opts: FrontOptions, live: Set<net.Socket>): void {
  const backend = net.connect({ path: opts.backendPath });
  live.add(client);
  live.add(backend);
  const framer = new RequestFramer(opts.maxHeadBytes);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    client.destroy();
    backend.destroy();
    live.delete(client);
    live.delete(backend);
  };
  // refuse: answer only where no response of an earlier request can be in flight
  const refuse = (status: number) => {
    clearTimeout(timer);
    if (framer.requests === 0 && !closed) {
      client.end(
        `HTTP/1.1 ${status} ${
          STATUS_TEXT[status]
        }\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
      );
      backend.destroy();
      setTimeout(close, 1000).unref?.();
    } else close();
  };
  const arm = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => refuse(408), ms);
  };
  arm(opts.headTimeoutMs); // the first head is timed from the connection's opening
  client.on("data", (d: Uint8Array) => {
    let events: string[];
    try {
      events = framer.feed(d);
    } catch (e) {
      refuse(e instanceof FramingError ? e.status : 400);
      return;
    }
    for (const e of events) {
      if (e === "head-start" && framer.requests > 0) arm(opts.headTimeoutMs);
      else if (e === "head-end") arm(opts.bodyTimeoutMs);
      else if (e === "body-end") clearTimeout(timer);
    }
    if (!backend.write(d)) client.pause();
  });
  backend.on("drain", () => client.resume());
  backend.on("data", (d: Uint8Array) => {
    if (!client.write(d)) backend.pause();
  });
  client.on("drain", () => backend.resume());
  client.on("end", () => backend.end());
  backend.on("end", () => client.end());
  client.on("close", close);
  backend.on("close", close);
  client.on("error", close);
  backend.on("error", close);
}

/** Listen on the public address and relay to `opts.backendPath` (see the module doc). */
export function startFront(opts: FrontOptions): Promise<Front> {
  const live = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (c) => relay(c, opts, live));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const s of live) s.destroy();
            live.clear();
          }),
      });
    });
  });
}
