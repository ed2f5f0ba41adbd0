import assert from "node:assert/strict";
import { StopMatcher, type StopResult } from "./stop.ts";

/** Feeds the pieces; returns everything emitted (flushed at the end unless stopped). */
function run(stops: string[], pieces: string[]): { out: string; stop?: string; steps: string[] } {
  const m = new StopMatcher(stops);
  const steps: string[] = [];
  let out = "";
  let stop: string | undefined;
  for (const p of pieces) {
    const r: StopResult = m.push(p);
    steps.push(r.text);
    out += r.text;
    if (r.stopped) {
      stop = r.stop;
      break;
    }
  }
  if (stop === undefined) out += m.flush();
  return { out, stop, steps };
}

Deno.test("a stop string inside one piece truncates before it", () => {
  assert.deepEqual(run(["END"], ["hello END world"]), {
    out: "hello ",
    stop: "END",
    steps: ["hello "],
  });
});

Deno.test("a stop string split across many pieces is held back, then dropped", () => {
  const r = run(["<|im_end|>"], ["Hi", " there<", "|im", "_", "end", "|>", "ignored"]);
  assert.deepEqual(r.steps, ["Hi", " there", "", "", "", ""]);
  assert.equal(r.out, "Hi there");
  assert.equal(r.stop, "<|im_end|>");
});

Deno.test("overlapping prefixes: stop 'ab' on 'aab', in one piece and char by char", () => {
  assert.deepEqual(run(["ab"], ["aab"]), { out: "a", stop: "ab", steps: ["a"] });
  assert.deepEqual(run(["ab"], ["a", "a", "b"]), { out: "a", stop: "ab", steps: ["", "a", ""] });
  // 'abac' on 'ababac': the held 'aba' must shift to 'ab' when the next char breaks it.
  const r = run(["abac"], [..."ababac"]);
  assert.equal(r.out, "ab");
  assert.equal(r.stop, "abac");
  assert.deepEqual(r.steps, ["", "", "", "ab", "", ""]);
});

Deno.test("a held prefix that does not complete is released, and flushed at the end", () => {
  const m = new StopMatcher(["\nUser:"]);
  assert.deepEqual(m.push("ok\nUs"), { text: "ok", stopped: false });
  assert.equal(m.held, "\nUs");
  assert.deepEqual(m.push("ually"), { text: "\nUsually", stopped: false });
  assert.equal(m.held, "");
  assert.deepEqual(m.push(" fine\n"), { text: " fine", stopped: false });
  // End of stream: the held "\n" can no longer become a stop string.
  assert.equal(m.flush(), "\n");
  assert.equal(m.flush(), "");
  assert.equal(m.stop, undefined);
});

Deno.test("no false hold-back: text that cannot start a stop string is emitted at once", () => {
  const m = new StopMatcher(["STOP", "###"]);
  assert.deepEqual(m.push("abc"), { text: "abc", stopped: false });
  assert.deepEqual(m.push("ST"), { text: "", stopped: false });
  assert.deepEqual(m.push("x#"), { text: "STx", stopped: false });
  assert.equal(m.flush(), "#");
});

Deno.test("several stop strings: the earliest match wins; at the same start, the longest", () => {
  assert.deepEqual(run(["world", "lo"], ["hello world"]).stop, "lo");
  assert.equal(run(["world", "lo"], ["hello world"]).out, "hel");
  assert.deepEqual(run(["ab", "abc"], ["xabcd"]), { out: "x", stop: "abc", steps: ["x"] });
  // A shorter stop string completing inside the held prefix of a longer one.
  const r = run(["abcd", "bc"], ["a", "b", "c", "d"]);
  assert.equal(r.out, "a");
  assert.equal(r.stop, "bc");
});

Deno.test("after a stop, pushes return nothing; empty and duplicate stops are ignored", () => {
  const m = new StopMatcher(["", "x", "x"]);
  assert.deepEqual(m.stops, ["x"]);
  assert.deepEqual(m.push("axb"), { text: "a", stopped: true, stop: "x" });
  assert.deepEqual(m.push("more"), { text: "", stopped: true, stop: "x" });
  assert.equal(m.flush(), "");
  assert.equal(m.stop, "x");
  // No stop strings: everything passes through.
  const n = new StopMatcher([]);
  assert.deepEqual(n.push("abc"), { text: "abc", stopped: false });
  assert.equal(n.flush(), "");
});

Deno.test("unicode: multi-unit stop strings, and no half surrogate pair is emitted", () => {
  assert.deepEqual(run(["。終"], ["答えは42", "。", "終わり"]), {
    out: "答えは42",
    stop: "。終",
    steps: ["答えは42", "", ""],
  });
  // 😀 = \ud83d\ude00; the stop is 😀!, the text has 😀 and then 😀!
  const r = run(["😀!"], ["a😀", "b😀", "!c"]);
  assert.equal(r.out, "a😀b");
  assert.equal(r.stop, "😀!");
  // A piece that ends between the halves of a pair (no stop strings involved).
  const m = new StopMatcher(["zz"]);
  assert.deepEqual(m.push("x\ud83d"), { text: "x", stopped: false });
  assert.deepEqual(m.push("\ude00y"), { text: "😀y", stopped: false });
  const n = new StopMatcher([]);
  assert.deepEqual(n.push("\ud83d"), { text: "", stopped: false });
  assert.deepEqual(n.push("\ude00"), { text: "😀", stopped: false });
  // At the end of the stream a lone half is released as it is.
  assert.deepEqual(n.push("\ud83d"), { text: "", stopped: false });
  assert.equal(n.flush(), "\ud83d");
});

Deno.test("streaming equals the one-shot result for every split of the text", () => {
  const stops = ["</s>", "\n\nUser", "ss"];
  const texts = ["a </s b </s> c", "x\n\nUse\n\nUser: y", "mis", "no stop here\n\n", "<</s>"];
  for (const text of texts) {
    const whole = run(stops, [text]);
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j++) {
        const split = run(stops, [text.slice(0, i), text.slice(i, j), text.slice(j)]);
        assert.equal(split.out, whole.out, `${JSON.stringify(text)} split at ${i}, ${j}`);
        assert.equal(split.stop, whole.stop);
      }
    }
  }
  assert.equal(run(stops, ["a </s b </s> c"]).out, "a </s b ");
  assert.equal(run(stops, ["mis"]).out, "mis"); // the held "s" is flushed
  assert.equal(run(stops, ["no stop here\n\n"]).out, "no stop here\n\n");
});
