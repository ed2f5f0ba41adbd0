/**
 * spool_moe_ffn: the routed-expert FFN of a layer in one native call.
 *
 *  1. Bit identity with the composition it replaces (the engine's former JS path): group
 *     the (token, slot) pairs by expert, spool_matmul gate and up over each expert's rows
 *     (8-bit activations for quantized weights, f32 for float weights), spool_swiglu (or
 *     gpt-oss's clamped SwiGLU in f32 steps), spool_matmul down, then (d + down_b) · w per
 *     slot and the f32 sum in slot order. For Q4_K/Q6_K, Q8_0, MXFP4, F32 and mixed types,
 *     with and without biases, both activations, n_tok 1 / 17 / 20, k 1 / 2 / 8, under REF
 *     and SIMD, with and without a pool.
 *  2. SIMD vs REF: NMSE <= 1e-6 (the products agree to ~1e-13 for the same activations, but
 *     the SIMD SwiGLU's exp differs from libm's by an ulp or two, which can move a value of
 *     the 8-bit re-quantization for down by one step).
 *  3. Error statuses and scratch sizes.
 */
import nodeAssert from "node:assert/strict";
import { check, Impl, native } from "../../ffi/mod.ts";
import type { Ptr } from "../../ffi/mod.ts";
import { closeQuantizePool, quantize, QuantType as T } from "../../runtime/gguf/quantize.ts";
import { nmse, normal, rng } from "./_ops_ref.ts";

function assert(cond: unknown, msg?: string): asserts cond {
  nodeAssert.ok(cond, msg);
}
function assertEquals<V>(actual: V, expected: V, msg?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, msg);
}

const nat = native();
const sym = nat.sym;
const simdImpl = (sym.spool_cpu_features() & 8) ? Impl.NEON : Impl.AVX2;
const hasSimd = (() => {
  const ok = sym.spool_set_impl(simdImpl) === 0;
  sym.spool_set_impl(Impl.AUTO);
  return ok;
})();
const pool = sym.spool_pool_create(2);

const ACT_F32 = 0, ACT_Q8 = 1;
const SWIGLU = 16, SWIGLU_OAI = 17;
const E_INVALID = -1, E_TYPE = -2, E_RANGE = -6;

function withImpl<R>(impl: number, f: () => R): R {
  check(sym.spool_set_impl(impl), "spool_set_impl");
  try {
    return f();
  } finally {
    sym.spool_set_impl(Impl.AUTO);
  }
}

function randn(r: () => number, n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = normal(r) * scale;
  return a;
}
function bitsEqual(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (ua.length !== ub.length) return -2;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}
const isFloat = (t: number) => t === T.F32 || t === T.F16 || t === T.BF16;
const actFor = (t: number) => isFloat(t) ? ACT_F32 : ACT_Q8;
const tname = (t: number) => Object.entries(T).find(([, v]) => v === t)![0];

/** One expert tensor: nExpert matrices of rows × cols back to back, plus its address table. */
interface Experts {
  type: number;
  rows: number;
  cols: number;
  bytes: Uint8Array;
  expertBytes: number;
  table: BigUint64Array;
}

function makeExperts(
  r: () => number,
  type: number,
  nExpert: number,
  rows: number,
  cols: number,
): Experts {
  const f = randn(r, nExpert * rows * cols, 1 / Math.sqrt(cols));
  const bytes = quantize(type, f, nExpert * rows, cols);
  const expertBytes = bytes.length / nExpert;
  const base = BigInt(nat.address(nat.ptr(bytes)));
  const table = new BigUint64Array(nExpert);
  for (let e = 0; e < nExpert; e++) table[e] = base + BigInt(e * expertBytes);
  return { type, rows, cols, bytes, expertBytes, table };
}

interface Case {
  nTok: number;
  nEmbd: number;
  nFf: number;
  nExpert: number;
  k: number;
  x: Float32Array; // (nTok, nEmbd)
  ids: Int32Array; // (nTok, k)
  wts: Float32Array; // (nTok, k)
  gate: Experts;
  up: Experts;
  down: Experts;
  gateB?: Float32Array; // (nExpert, nFf)
  upB?: Float32Array;
  downB?: Float32Array; // (nExpert, nEmbd)
  act: number;
}

function makeCase(o: {
  types: [number, number, number];
  nTok: number;
  nEmbd: number;
  nFf: number;
  nExpert: number;
  k: number;
  bias: boolean;
  act: number;
  seed: number;
}): Case {
  const r = rng(o.seed);
  const { nTok, nEmbd, nFf, nExpert, k } = o;
  const ids = new Int32Array(nTok * k);
  const wts = new Float32Array(nTok * k);
  for (let t = 0; t < nTok; t++) {
    const order = Array.from({ length: nExpert }, (_, i) => i);
    for (let i = nExpert - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let j = 0; j < k; j++) {
      ids[t * k + j] = order[j];
      wts[t * k + j] = 0.05 + r();
    }
  }
  return {
    nTok,
    nEmbd,
    nFf,
    nExpert,
    k,
    x: randn(r, nTok * nEmbd, 1),
    ids,
    wts,
    gate: makeExperts(r, o.types[0], nExpert, nFf, nEmbd),
    up: makeExperts(r, o.types[1], nExpert, nFf, nEmbd),
    down: makeExperts(r, o.types[2], nExpert, nEmbd, nFf),
    gateB: o.bias ? randn(r, nExpert * nFf, 0.5) : undefined,
    upB: o.bias ? randn(r, nExpert * nFf, 0.5) : undefined,
    downB: o.bias ? randn(r, nExpert * nEmbd, 0.5) : undefined,
    act: o.act,
  };
}

function matmul(
  w: Experts,
  e: number,
  x: Float32Array,
  n: number,
  p: Ptr,
): Float32Array {
  const y = new Float32Array(n * w.rows);
  const need = sym.spool_matmul_scratch_bytes(w.type, w.cols, n, ACT_Q8);
  const scratch = new Uint8Array(Math.max(64, need));
  const view = w.bytes.subarray(e * w.expertBytes, (e + 1) * w.expertBytes);
  check(
    sym.spool_matmul(
      p,
      w.type,
      nat.ptr(view),
      w.rows,
      w.cols,
      nat.ptr(x),
      n,
      nat.ptr(y),
      actFor(w.type),
      nat.ptr(scratch),
    ),
    "spool_matmul",
  );
  return y;
}

/** gpt-oss's clamped SwiGLU in f32 steps, as the engine computed it in JS. */
function swigluOai(
  g: Float32Array,
  u: Float32Array,
  n: number,
  ff: number,
  gb?: Float32Array,
  ub?: Float32Array,
) {
  const f = Math.fround;
  const limit = 7, alpha = f(1.702);
  for (let r = 0; r < n; r++) {
    const o = r * ff;
    for (let i = 0; i < ff; i++) {
      const x = Math.min(gb ? f(g[o + i] + gb[i]) : g[o + i], limit);
      const y = Math.max(-limit, Math.min(ub ? f(u[o + i] + ub[i]) : u[o + i], limit));
      const glu = f(x / f(1 + f(Math.exp(f(alpha * -x)))));
      g[o + i] = glu * f(y + 1);
    }
  }
}

/** The composition spool_moe_ffn replaces (the engine's former JS path). */
function composed(c: Case, p: Ptr): Float32Array {
  const { nTok, nEmbd: E, nFf: ff, k: K } = c;
  const byExpert = new Map<number, number[]>();
  for (let s = 0; s < nTok * K; s++) {
    const e = c.ids[s];
    let l = byExpert.get(e);
    if (!l) byExpert.set(e, l = []);
    l.push(s);
  }
  const so = new Float32Array(nTok * K * E);
  for (const [e, slots] of byExpert) {
    const n = slots.length;
    const eh = new Float32Array(n * E);
    for (let r = 0; r < n; r++) {
      const t = (slots[r] / K) | 0;
      eh.set(c.x.subarray(t * E, t * E + E), r * E);
    }
    const g = matmul(c.gate, e, eh, n, p);
    const u = matmul(c.up, e, eh, n, p);
    const gb = c.gateB?.subarray(e * ff, e * ff + ff);
    const ub = c.upB?.subarray(e * ff, e * ff + ff);
    if (c.act === SWIGLU_OAI) {
      swigluOai(g, u, n, ff, gb, ub);
    } else {
      for (let r = 0; r < n; r++) {
        for (let i = 0; i < ff; i++) {
          if (gb) g[r * ff + i] += gb[i];
          if (ub) u[r * ff + i] += ub[i];
        }
      }
      check(sym.spool_swiglu(nat.ptr(g), nat.ptr(u), nat.ptr(g), n * ff), "spool_swiglu");
    }
    const d = matmul(c.down, e, g, n, p);
    const db = c.downB?.subarray(e * E, e * E + E);
    for (let r = 0; r < n; r++) {
      const slot = slots[r];
      const w = c.wts[slot];
      for (let i = 0; i < E; i++) {
        so[slot * E + i] = db ? Math.fround(d[r * E + i] + db[i]) * w : d[r * E + i] * w;
      }
    }
  }
  const out = new Float32Array(nTok * E);
  for (let t = 0; t < nTok; t++) {
    out.set(so.subarray(t * K * E, t * K * E + E), t * E);
    for (let j = 1; j < K; j++) {
      for (let i = 0; i < E; i++) out[t * E + i] += so[(t * K + j) * E + i];
    }
  }
  return out;
}

function scratchFor(c: Case): number {
  return sym.spool_moe_scratch_bytes(
    c.gate.type,
    c.up.type,
    c.down.type,
    c.nEmbd,
    c.nFf,
    c.nExpert,
    c.nTok,
    c.k,
  );
}

function moe(
  c: Case,
  p: Ptr,
  over: Partial<
    {
      table: BigUint64Array;
      k: number;
      nEmbd: number;
      act: number;
      scratch: boolean;
      gateType: number;
      ids: Int32Array;
    }
  > = {},
): { st: number; y: Float32Array } {
  const y = new Float32Array(c.nTok * c.nEmbd);
  const need = scratchFor(c);
  const scratch = new Uint8Array(need + 3).subarray(3); // deliberately misaligned
  const opt = (a?: Float32Array) => a ? nat.ptr(a) : null;
  const st = sym.spool_moe_ffn(
    p,
    nat.ptr(c.x),
    c.nTok,
    over.nEmbd ?? c.nEmbd,
    c.nFf,
    c.nExpert,
    over.k ?? c.k,
    nat.ptr(over.ids ?? c.ids),
    nat.ptr(c.wts),
    nat.ptr(over.table ?? c.gate.table),
    over.gateType ?? c.gate.type,
    nat.ptr(c.up.table),
    c.up.type,
    nat.ptr(c.down.table),
    c.down.type,
    opt(c.gateB),
    opt(c.upB),
    opt(c.downB),
    over.act ?? c.act,
    nat.ptr(y),
    over.scratch === false ? null : nat.ptr(scratch),
  );
  return { st, y };
}

interface Spec {
  types: [number, number, number];
  nEmbd: number;
  nFf: number;
}
const SPECS: Spec[] = [
  { types: [T.Q4_K, T.Q4_K, T.Q6_K], nEmbd: 256, nFf: 512 }, // Q4_K_M's experts
  { types: [T.Q6_K, T.Q6_K, T.Q6_K], nEmbd: 512, nFf: 256 },
  { types: [T.Q8_0, T.Q8_0, T.Q8_0], nEmbd: 256, nFf: 96 },
  { types: [T.MXFP4, T.MXFP4, T.MXFP4], nEmbd: 128, nFf: 160 },
  { types: [T.F32, T.F32, T.F32], nEmbd: 64, nFf: 44 }, // nFf % 8 != 0: SwiGLU's SIMD tail
  { types: [T.Q4_K, T.Q8_0, T.Q4_0], nEmbd: 256, nFf: 128 }, // gate and up differ in act type
  { types: [T.F16, T.BF16, T.Q5_K], nEmbd: 96, nFf: 256 },
];
const SHAPES: { nTok: number; k: number; nExpert: number }[] = [
  { nTok: 1, k: 8, nExpert: 16 },
  { nTok: 1, k: 1, nExpert: 4 },
  { nTok: 17, k: 2, nExpert: 6 },
  { nTok: 17, k: 8, nExpert: 16 },
];

Deno.test("moe_ffn is bit-identical to matmul + swiglu + slot-order sums", () => {
  let n = 0;
  for (const [si, spec] of SPECS.entries()) {
    for (const shape of SHAPES) {
      for (const act of [SWIGLU, SWIGLU_OAI]) {
        for (const bias of [false, true]) {
          const c = makeCase({
            ...spec,
            ...shape,
            bias,
            act,
            seed: 1000 * si + shape.nTok * 31 + shape.k + act + (bias ? 7 : 0),
          });
          const impls = hasSimd ? [Impl.REF, simdImpl] : [Impl.REF];
          for (const impl of impls) {
            withImpl(impl, () => {
              const want = composed(c, pool);
              const what = `${spec.types.map(tname)} nTok=${shape.nTok} k=${shape.k} ` +
                `act=${act} bias=${bias} impl=${impl}`;
              const a = moe(c, pool);
              assertEquals(a.st, 0, what);
              assertEquals(bitsEqual(a.y, want), -1, `${what}: pool`);
              const b = moe(c, null);
              assertEquals(b.st, 0, what);
              assertEquals(bitsEqual(b.y, want), -1, `${what}: no pool`);
              n++;
            });
          }
        }
      }
    }
  }
  assert(n >= 100, `${n} cases`);
});

Deno.test("moe_ffn: large groups (token tiles, L2-capped tasks) stay bit-identical", () => {
  // 40 tokens over 3 experts: groups of ~27 rows, several L1 token tiles of Q8_K rows of 2048
  for (
    const types of [[T.Q4_K, T.Q4_K, T.Q6_K], [T.Q8_0, T.Q8_0, T.MXFP4]] as [
      number,
      number,
      number,
    ][]
  ) {
    const c = makeCase({
      types,
      nTok: 40,
      nEmbd: 2048,
      nFf: 256,
      nExpert: 3,
      k: 2,
      bias: true,
      act: SWIGLU,
      seed: 77,
    });
    const want = composed(c, pool);
    const a = moe(c, pool);
    assertEquals(a.st, 0);
    assertEquals(bitsEqual(a.y, want), -1, `${types.map(tname)}`);
    assertEquals(bitsEqual(moe(c, null).y, want), -1, `${types.map(tname)} no pool`);
  }
});

Deno.test({
  name: "moe_ffn SIMD vs REF",
  ignore: !hasSimd,
  fn() {
    let worst = 0;
    for (const [si, spec] of SPECS.entries()) {
      for (const act of [SWIGLU, SWIGLU_OAI]) {
        const c = makeCase({
          ...spec,
          nTok: 17,
          k: 8,
          nExpert: 16,
          bias: true,
          act,
          seed: 500 + si,
        });
        const ref = withImpl(Impl.REF, () => moe(c, pool));
        const simd = withImpl(simdImpl, () => moe(c, pool));
        assertEquals([ref.st, simd.st], [0, 0]);
        const e = nmse(simd.y, ref.y);
        worst = Math.max(worst, e);
        assert(e <= 1e-6, `${spec.types.map(tname)} act ${act}: NMSE ${e}`);
      }
    }
    console.log(`worst SIMD-vs-REF NMSE: ${worst.toExponential(1)}`);
  },
});

Deno.test("moe_ffn statuses and scratch sizes", () => {
  const c = makeCase({
    types: [T.Q4_K, T.Q4_K, T.Q6_K],
    nTok: 3,
    nEmbd: 256,
    nFf: 256,
    nExpert: 4,
    k: 2,
    bias: false,
    act: SWIGLU,
    seed: 9,
  });
  assertEquals(moe(c, pool).st, 0);
  // a router pick of a non-resident expert (NULL pointer)
  const holes = c.gate.table.slice();
  holes[c.ids[3]] = 0n;
  assertEquals(moe(c, pool, { table: holes }).st, E_INVALID);
  // an expert nobody routes to may be missing
  const unused = [0, 1, 2, 3].find((e) => !c.ids.includes(e));
  if (unused !== undefined) {
    const t2 = c.gate.table.slice();
    t2[unused] = 0n;
    assertEquals(moe(c, pool, { table: t2 }).st, 0);
  }
  assertEquals(moe(c, pool, { k: 5 }).st, E_RANGE); // k > n_expert
  assertEquals(moe(c, pool, { k: 0 }).st, E_INVALID);
  const bad = c.ids.slice();
  bad[1] = 4;
  assertEquals(moe(c, pool, { ids: bad }).st, E_RANGE);
  bad[1] = -1;
  assertEquals(moe(c, pool, { ids: bad }).st, E_RANGE);
  assertEquals(moe(c, pool, { act: ACT_Q8 }).st, E_INVALID);
  assertEquals(moe(c, pool, { scratch: false }).st, E_INVALID);
  assertEquals(moe(c, pool, { gateType: 99 }).st, E_TYPE);
  assertEquals(moe(c, pool, { gateType: T.Q8_K }).st, E_TYPE);
  assertEquals(moe(c, pool, { nEmbd: 128 }).st, E_INVALID); // not a multiple of Q4_K's 256
  // scratch sizes: 0 for bad arguments, growing with tokens
  assertEquals(sym.spool_moe_scratch_bytes(99, T.Q4_K, T.Q6_K, 256, 256, 4, 1, 2), 0);
  assertEquals(sym.spool_moe_scratch_bytes(T.Q4_K, T.Q4_K, T.Q6_K, 100, 256, 4, 1, 2), 0);
  assertEquals(sym.spool_moe_scratch_bytes(T.Q4_K, T.Q4_K, T.Q6_K, 256, 256, 4, 1, 0), 0);
  const s1 = sym.spool_moe_scratch_bytes(T.Q4_K, T.Q4_K, T.Q6_K, 2048, 768, 128, 1, 8);
  const s64 = sym.spool_moe_scratch_bytes(T.Q4_K, T.Q4_K, T.Q6_K, 2048, 768, 128, 64, 8);
  assert(s1 > 8 * (2 * 768 + 2048) * 4 && s1 < 200_000, `decode scratch ${s1}`);
  assert(s64 > 60 * s1 && s64 < 66 * s1, `prefill scratch ${s64} vs ${s1}`);
  // n_tok == 0 is a no-op
  const z = { ...c, nTok: 0 };
  assertEquals(moe(z, pool).st, 0);
});

/** BEGIN with the experts `absent(e)` missing from all three tables (gate only for
 * `downOnly`); with `arrives`, MORE twice with those experts present (the second finds
 * nothing new); then FINISH with every table whole but for the experts MORE computed
 * (missing again: FINISH must not need them). */
function moePhased(
  c: ReturnType<typeof makeCase>,
  p: typeof pool | null,
  absent: (e: number) => boolean,
  downOnly = false,
  arrives?: (e: number) => boolean,
): { begin: number; more: number[]; finish: number; again: number; y: Float32Array } {
  const y = new Float32Array(c.nTok * c.nEmbd).fill(NaN);
  const scratch = new Uint8Array(scratchFor(c) + 5).subarray(5);
  const opt = (a?: Float32Array) => a ? nat.ptr(a) : null;
  const hole = (t: BigUint64Array, on: boolean, late = absent) =>
    t.map((v, e) => on && late(e) ? 0n : v);
  const call = (g: BigUint64Array, u: BigUint64Array, d: BigUint64Array, phase: number) =>
    sym.spool_moe_ffn_phase(
      p,
      nat.ptr(c.x),
      c.nTok,
      c.nEmbd,
      c.nFf,
      c.nExpert,
      c.k,
      nat.ptr(c.ids),
      nat.ptr(c.wts),
      nat.ptr(g),
      c.gate.type,
      nat.ptr(u),
      c.up.type,
      nat.ptr(d),
      c.down.type,
      opt(c.gateB),
      opt(c.upB),
      opt(c.downB),
      c.act,
      nat.ptr(y),
      nat.ptr(scratch),
      phase,
    );
  const begin = call(
    hole(c.gate.table, !downOnly),
    hole(c.up.table, !downOnly),
    hole(c.down.table, true),
    1,
  );
  const more: number[] = [];
  if (arrives) {
    const late = (e: number) => absent(e) && !arrives(e);
    for (let i = 0; i < 2; i++) {
      more.push(call(
        hole(c.gate.table, !downOnly, late),
        hole(c.up.table, !downOnly, late),
        hole(c.down.table, true, late),
        3,
      ));
    }
  }
  // the experts MORE computed may be gone again by FINISH: it never reads them
  const gone = (e: number) => absent(e) && arrives !== undefined && arrives(e);
  const finish = call(
    hole(c.gate.table, true, gone),
    hole(c.up.table, true, gone),
    hole(c.down.table, true, gone),
    2,
  );
  const y1 = y.slice();
  const again = call(c.gate.table, c.up.table, c.down.table, 2); // no BEGIN before it
  more.push(call(c.gate.table, c.up.table, c.down.table, 3)); // nor before this MORE
  return { begin, more, finish, again, y: y1 };
}

Deno.test("moe_ffn_phase: BEGIN with experts missing, MORE as some arrive, then FINISH, equals one call bit for bit", () => {
  let n = 0;
  const patterns: [string, (e: number) => boolean, boolean][] = [
    ["every other expert", (e) => e % 2 === 1, false],
    ["all experts", () => true, false],
    ["none", () => false, false],
    ["down of every third", (e) => e % 3 === 0, true],
  ];
  for (const [si, spec] of SPECS.entries()) {
    for (const shape of SHAPES) {
      const c = makeCase({
        ...spec,
        ...shape,
        bias: si % 2 === 0,
        act: si === 3 ? SWIGLU_OAI : SWIGLU,
        seed: 4000 + 100 * si + shape.nTok + shape.k,
      });
      const want = composed(c, pool);
      for (const [name, absent, downOnly] of patterns) {
        for (const p of [pool, null]) {
          for (const arrives of [undefined, (e: number) => e % 4 < 2]) {
            const what = `${spec.types.map(tname)} nTok=${shape.nTok} k=${shape.k} ${name} ` +
              (p ? "pool" : "no pool") + (arrives ? " with MORE" : "");
            const r = moePhased(c, p, absent, downOnly, arrives);
            assertEquals([r.begin, r.finish], [0, 0], what);
            assertEquals(r.more, arrives ? [0, 0, E_INVALID] : [E_INVALID], what);
            assertEquals(bitsEqual(r.y, want), -1, what);
            assertEquals(r.again, E_INVALID, `${what}: FINISH without BEGIN`);
            n++;
          }
        }
      }
    }
  }
  assert(n >= 400, `${n} cases`);
});

Deno.test({
  name: "moe_test teardown",
  sanitizeResources: false,
  fn() {
    sym.spool_pool_destroy(pool);
    closeQuantizePool();
  },
});
