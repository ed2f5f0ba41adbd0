import { deepEqual } from "node:assert/strict";
import { packLarge, SPLIT_ITEMS, unpackLarge } from "./pack.ts";

Deno.test("packLarge/unpackLarge: the value round-trips, marks and big arrays included", async () => {
  const long = "ünïcödé 🙂 ".repeat(40);
  const value = {
    s: "short",
    long,
    marked: ["\u0000 not a mark", "\u00013,4"],
    n: [1, 2.5, -3, null, true, false],
    tokens: Array.from({ length: SPLIT_ITEMS * 3 + 7 }, (_, i) => i * 7),
    messages: Array.from({ length: SPLIT_ITEMS + 1 }, (_, i) => ({
      role: i % 2 ? "user" : "assistant",
      content: i % 3 ? long + i : `m${i}`,
      nested: Array.from({ length: i === 5 ? SPLIT_ITEMS * 2 : 2 }, (_, j) => [j, `${j}`]),
    })),
    empty: [],
    obj: {},
  };
  const p = packLarge(value);
  // what crosses is a small skeleton and one buffer
  deepEqual(p.json.length < 20_000, true);
  deepEqual(await unpackLarge(p), value);
  deepEqual(await unpackLarge(packLarge("x".repeat(100))), "x".repeat(100));
  deepEqual(await unpackLarge(packLarge(null)), null);
});
