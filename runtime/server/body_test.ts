import { deepEqual, equal, rejects } from "node:assert/strict";
import { OFFLOAD_BYTES, parseJsonBytes } from "./body.ts";
import { ApiError } from "./errors.ts";

const bytesOf = (text: string) => new TextEncoder().encode(text).buffer as ArrayBuffer;

/** A chat body of about `size` bytes: many short messages and one long one. */
function chatBody(size: number, extra: Record<string, unknown> = {}) {
  const n = Math.ceil(size / 2 / 60);
  return {
    messages: [
      { role: "user", content: "ü🙂 long text\n".repeat(Math.ceil(size / 2 / 16)) },
      ...Array.from({ length: n }, (_, i) => ({ role: "assistant", content: `turn ${i}` })),
    ],
    max_tokens: 5,
    ...extra,
  };
}

Deno.test("parseJsonBytes: a large body parsed and validated in a worker equals JSON.parse", async () => {
  const body = chatBody(3 * OFFLOAD_BYTES, { unknown_field: { nested: [1, "two", null] } });
  const text = JSON.stringify(body);
  const got = await parseJsonBytes(bytesOf(text), "ChatCompletionRequest");
  deepEqual(got, JSON.parse(text));
  // several at once (they take turns in at most two workers)
  const all = await Promise.all(
    [1, 2, 3, 4, 5].map((i) =>
      parseJsonBytes(bytesOf(JSON.stringify(chatBody(i * 300_000 + OFFLOAD_BYTES))))
    ),
  );
  equal(all.length, 5);
});

Deno.test("parseJsonBytes: bad JSON and schema failures of large bodies are 400s", async () => {
  const text = JSON.stringify(chatBody(2 * OFFLOAD_BYTES));
  await rejects(parseJsonBytes(bytesOf(text.slice(0, -3))), (e) => {
    return e instanceof ApiError && e.status === 400 && /not valid JSON/.test(e.message);
  });
  const bad = JSON.stringify(chatBody(2 * OFFLOAD_BYTES, { max_tokens: "five" }));
  await rejects(parseJsonBytes(bytesOf(bad), "ChatCompletionRequest"), (e) => {
    return e instanceof ApiError && e.status === 400 && e.param === "max_tokens";
  });
  // small bodies take the same checks in place
  await rejects(parseJsonBytes(bytesOf("{"), "ChatCompletionRequest"), ApiError);
});
