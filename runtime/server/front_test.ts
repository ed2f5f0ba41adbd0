import { deepEqual, equal, throws } from "node:assert/strict";
import { FramingError, RequestFramer } from "./front.ts";

const enc = new TextEncoder();

/** Feeds `text` one byte at a time (the worst split) and collects the events. */
function byteWise(f: RequestFramer, text: string): string[] {
  return [...enc.encode(text)].flatMap((b) => f.feed(new Uint8Array([b])));
}

Deno.test("RequestFramer: pipelined length, chunked (with trailers) and bodiless requests", () => {
  const chunked = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5;ext=1\r\nhello\r\na\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
  const length = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
  const get = "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
  const all = chunked + length + get;
  const want = ["head-start", "head-end", "body-end"];
  const f = new RequestFramer();
  deepEqual(byteWise(f, all), [...want, ...want, ...want]);
  equal(f.requests, 3);
  equal(f.state, "idle");
  const whole = new RequestFramer();
  deepEqual(whole.feed(enc.encode(all)), [...want, ...want, ...want]);
  // half a head leaves it inside the head
  const half = new RequestFramer();
  deepEqual(half.feed(enc.encode("GET / HTTP/1.1\r\nHo")), ["head-start"]);
  equal(half.state, "head");
});

Deno.test("RequestFramer: oversized heads and bad framing are typed errors", () => {
  const f = new RequestFramer(100);
  throws(() => f.feed(enc.encode(`GET / HTTP/1.1\r\nX: ${"a".repeat(200)}`)), (e) => {
    return e instanceof FramingError && e.status === 431;
  });
  throws(
    () => new RequestFramer().feed(enc.encode("POST / HTTP/1.1\r\nContent-Length: x1\r\n\r\n")),
    (e) => e instanceof FramingError && e.status === 400 && /Content-Length/.test(e.message),
  );
  throws(
    () =>
      new RequestFramer().feed(
        enc.encode("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
      ),
    (e) => e instanceof FramingError && /chunk size/.test(e.message),
  );
});
