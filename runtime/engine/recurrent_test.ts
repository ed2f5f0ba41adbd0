/** Recurrent state blocks and their checkpoints: layout, reset, save/restore by prefix, budget. */
import { deepStrictEqual, equal, throws } from "node:assert/strict";
import { native } from "../../ffi/mod.ts";
import { Checkpoints, RecurrentState } from "./recurrent.ts";

const LAYOUT = { layers: [true, true, false, true], convFloats: 6, stateFloats: 16 };

/** Layer li's conv and state values as JS arrays. */
function read(s: RecurrentState, li: number): number[] {
  const n = native();
  const conv = new Float32Array(n.buffer(s.conv(li), LAYOUT.convFloats * 4));
  const st = new Float32Array(n.buffer(s.state(li), LAYOUT.stateFloats * 4));
  return [...conv, ...st];
}

function fill(s: RecurrentState, li: number, v: number): void {
  const n = native();
  new Float32Array(n.buffer(s.conv(li), LAYOUT.convFloats * 4)).fill(v);
  new Float32Array(n.buffer(s.state(li), LAYOUT.stateFloats * 4)).fill(v + 0.5);
}

Deno.test("recurrent state: one block per recurrent layer, attention layers have none", () => {
  const s = new RecurrentState(LAYOUT);
  try {
    equal(s.byteLength, 3 * (6 + 16) * 4);
    throws(() => s.conv(2), RangeError);
    fill(s, 3, 7);
    deepStrictEqual(read(s, 0), new Array(22).fill(0));
    deepStrictEqual(read(s, 3), [...new Array(6).fill(7), ...new Array(16).fill(7.5)]);
    s.reset();
    deepStrictEqual(read(s, 3), new Array(22).fill(0));
  } finally {
    s.free();
  }
});

Deno.test("checkpoints: the latest copy inside the prefix, never one of another prefix", () => {
  const s = new RecurrentState(LAYOUT);
  const cp = new Checkpoints(2 * s.byteLength);
  try {
    fill(s, 0, 1);
    cp.save([1, 2, 3], s);
    fill(s, 0, 2);
    cp.save([1, 2, 3, 4, 5], s);
    fill(s, 0, 9);
    // extends [1,2,3,4,5]: resumes at 5 with that state
    equal(cp.restore([1, 2, 3, 4, 5, 6, 7], 6, s), 5);
    equal(read(s, 0)[0], 2);
    // a limit below 5 takes the copy at 3
    equal(cp.restore([1, 2, 3, 4, 5, 6], 4, s), 3);
    equal(read(s, 0)[0], 1);
    // another conversation: nothing matches, the state is reset
    equal(cp.restore([1, 9, 3, 4], 4, s), 0);
    equal(read(s, 0)[0], 0);
    // the budget holds two copies: a third evicts the least recently used ([1,2,3,4,5])
    fill(s, 0, 3);
    cp.save([1, 2, 3, 7], s);
    equal(cp.size, 2);
    equal(cp.restore([1, 2, 3, 4, 5, 6], 6, s), 3);
    equal(cp.restore([1, 2, 3, 7, 8], 5, s), 4);
    equal(read(s, 0)[0], 3);
  } finally {
    s.free();
  }
});
