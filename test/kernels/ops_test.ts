/**
 * Elementwise, normalization, RoPE, routing and attention kernels:
 *  - the scalar reference (spool_set_impl(REF)) against independent float64 JS references
 *    (test/kernels/_ops_ref.ts), with NMSE bounds stated per op;
 *  - the SIMD implementation of this machine (AVX2 or NEON, when available) against the
 *    reference, with NMSE bounds;
 *  - f16 conversions bit-exact on every implementation; error statuses.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Impl, native, Status } from "../../ffi/mod.ts";
import {
  attentionRef,
  type AttnParams,
  f16ToF32Bits,
  f32BitsToF16,
  nmse,
  rmsnormRef,
  Rng,
  type RopeParams,
  ropeRef,
  roundF16,
  routeRef,
  siluRef,
  softmaxRef,
  toF16,
} from "./_ops_ref.ts";

const n = native();
const S = n.sym;
const P = (a: ArrayBufferView) => n.ptr(a);
/** SPOOL_TEST_VERBOSE=1 prints every measured NMSE. */
const verbose = !!Deno.env.get("SPOOL_TEST_VERBOSE");

/** The SIMD implementation available here, if any. */
const simd = [Impl.AVX2, Impl.NEON].find((i) => {
  const ok = S.spool_set_impl(i) === Status.OK;
  S.spool_set_impl(Impl.AUTO);
  return ok;
});
const impls: [string, number][] = [["ref", Impl.REF]];
if (simd !== undefined) impls.push([simd === Impl.AVX2 ? "avx2" : "neon", simd]);

/** Run `fn` with implementation `impl`, restoring AUTO afterwards. */
function withImpl<T>(impl: number, fn: () => T): T {
  assertEquals(S.spool_set_impl(impl), Status.OK);
  try {
    return fn();
  } finally {
    S.spool_set_impl(Impl.AUTO);
  }
}

function assertNmse(got: ArrayLike<number>, want: ArrayLike<number>, bound: number, what: string) {
  const e = nmse(got, want);
  if (verbose) console.log(`${what}: NMSE ${e.toExponential(2)} (bound ${bound.toExponential(0)})`);
  assert(e <= bound, `${what}: NMSE ${e.toExponential(2)} > ${bound.toExponential(0)}`);
}

// ---- rmsnorm: REF vs f64 <= 1e-12; SIMD vs REF <= 1e-12 ------------------------------

Deno.test("rmsnorm: ref vs f64 and simd vs ref, with and without weights, in place", () => {
  const rng = new Rng(1);
  for (const [rows, cols] of [[1, 4096], [3, 2048], [5, 77], [2, 8]]) {
    const x = rng.f32(rows * cols, 3), w = rng.f32(cols, 0.5).map((v) => v + 1.5);
    for (const weight of [w, null]) {
      const want = rmsnormRef(x, weight, rows, cols, 1e-6);
      const outs: Float32Array[] = [];
      for (const [name, impl] of impls) {
        const y = new Float32Array(rows * cols);
        withImpl(impl, () =>
          assertEquals(
            S.spool_rmsnorm(P(x), weight ? P(weight) : null, P(y), rows, cols, 1e-6),
            0,
          ));
        assertNmse(y, want, 1e-12, `rmsnorm ${name} ${rows}x${cols} vs f64`);
        outs.push(y);
        // in place gives the same bits
        const z = x.slice();
        withImpl(
          impl,
          () => S.spool_rmsnorm(P(z), weight ? P(weight) : null, P(z), rows, cols, 1e-6),
        );
        assertEquals(z, y);
      }
      if (outs.length > 1) assertNmse(outs[1], outs[0], 1e-12, "rmsnorm simd vs ref");
    }
  }
});

// ---- softmax: REF vs f64 <= 1e-12; SIMD vs REF <= 1e-12 --------------------------------

Deno.test("softmax: stable for large logits; ref vs f64 and simd vs ref", () => {
  const rng = new Rng(2);
  for (const [rows, cols] of [[4, 151], [2, 4096], [1, 3], [3, 64]]) {
    const x = rng.f32(rows * cols, 8);
    for (let i = 0; i < cols; i++) x[i] += 1000; // row 0 overflows without max subtraction
    const want = softmaxRef(x, rows, cols);
    const outs: Float32Array[] = [];
    for (const [name, impl] of impls) {
      const y = x.slice();
      withImpl(impl, () => assertEquals(S.spool_softmax(P(y), rows, cols), 0));
      assertNmse(y, want, 1e-12, `softmax ${name} ${rows}x${cols} vs f64`);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let i = 0; i < cols; i++) s += y[r * cols + i];
        assert(Math.abs(s - 1) < 1e-5, `row ${r} sums to ${s}`);
      }
      outs.push(y);
    }
    if (outs.length > 1) assertNmse(outs[1], outs[0], 1e-12, "softmax simd vs ref");
  }
  // -inf entries (masks) give exact zeros
  for (const [, impl] of impls) {
    const y = new Float32Array([0, -Infinity, 1, -Infinity, 2, 3, 4, 5, -Infinity]);
    withImpl(impl, () => S.spool_softmax(P(y), 1, y.length));
    assertEquals([y[1], y[3], y[8]], [0, 0, 0]);
  }
});

// ---- silu / swiglu: REF vs f64 <= 1e-12; SIMD vs REF <= 1e-12 ---------------------------

Deno.test("silu and swiglu: ref vs f64 and simd vs ref, extremes, in place", () => {
  const rng = new Rng(3);
  const len = 1003;
  const g = rng.f32(len, 4), u = rng.f32(len, 2);
  g.set([-200, -100, -88, -30, 0, 30, 88, 100, 200], 0);
  const wantSilu = Float64Array.from(g, siluRef);
  const wantSwi = Float64Array.from(g, (v, i) => siluRef(v) * u[i]);
  const outs: Float32Array[][] = [];
  for (const [name, impl] of impls) {
    const y = new Float32Array(len), z = new Float32Array(len);
    withImpl(impl, () => {
      assertEquals(S.spool_silu(P(g), P(y), len), 0);
      assertEquals(S.spool_swiglu(P(g), P(u), P(z), len), 0);
    });
    assertNmse(y, wantSilu, 1e-12, `silu ${name}`);
    assertNmse(z, wantSwi, 1e-12, `swiglu ${name}`);
    assert(y.every(Number.isFinite), `silu ${name} finite at extremes`);
    assertEquals(y[8], 200);
    // in place on gate and on up
    const g2 = g.slice(), u2 = u.slice();
    withImpl(impl, () => {
      S.spool_swiglu(P(g2), P(u), P(g2), len);
      S.spool_swiglu(P(g), P(u2), P(u2), len);
    });
    assertEquals(g2, z);
    assertEquals(u2, z);
    outs.push([y, z]);
  }
  if (outs.length > 1) {
    assertNmse(outs[1][0], outs[0][0], 1e-12, "silu simd vs ref");
    assertNmse(outs[1][1], outs[0][1], 1e-12, "swiglu simd vs ref");
  }
});

// ---- f16: bit-exact on every implementation ----------------------------------------------

Deno.test("f16 -> f32: all 65536 values bit-exact; f32 -> f16 round-trips them", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const want = Uint32Array.from(all, f16ToF32Bits);
  for (const [name, impl] of impls) {
    const f = new Float32Array(65536);
    withImpl(impl, () => assertEquals(S.spool_f16_to_f32(P(all), P(f), 65536), 0));
    const bits = new Uint32Array(f.buffer);
    for (let i = 0; i < 65536; i++) {
      if (bits[i] !== want[i]) {
        throw new Error(
          `${name}: f16 ${i.toString(16)} -> ${bits[i].toString(16)}, want ${want[i].toString(16)}`,
        );
      }
      // f16 values are exact f32 values: Math.fround leaves them alone
      if (!Number.isNaN(f[i])) assertEquals(Math.fround(f[i]), f[i]);
    }
    const back = new Uint16Array(65536);
    withImpl(impl, () => assertEquals(S.spool_f32_to_f16(P(f), P(back), 65536), 0));
    for (let i = 0; i < 65536; i++) {
      const isNaN = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      const expect = isNaN ? (i & 0x8000) | 0x7e00 : i; // NaNs come back canonical
      if (back[i] !== expect) {
        throw new Error(`${name}: round trip ${i.toString(16)} -> ${back[i].toString(16)}`);
      }
    }
  }
});

Deno.test("f32 -> f16: random, halfway, subnormal, overflow and NaN inputs bit-exact", () => {
  const rng = new Rng(4);
  const count = 1 << 18;
  const bits = new Uint32Array(count + 4096);
  for (let i = 0; i < count; i++) bits[i] = rng.u32();
  // values around f16's range: exponents 100..150, random mantissas and exact halfway cases
  for (let i = 0; i < 4096; i++) {
    const e = 100 + (i % 50), sign = (i & 1) << 31;
    const m = i % 3 === 0 ? (rng.u32() & 0x7fe000) | 0x1000 : rng.u32() & 0x7fffff;
    bits[count + i] = (sign | (e << 23) | m) >>> 0;
  }
  bits.set([0x477fefff, 0x477ff000, 0x7f800001, 0xffc12345, 0x33000000, 0x33000001], count);
  const src = new Float32Array(bits.buffer);
  const want = Uint16Array.from(bits, f32BitsToF16);
  for (const [name, impl] of impls) {
    const got = new Uint16Array(bits.length);
    withImpl(impl, () => assertEquals(S.spool_f32_to_f16(P(src), P(got), bits.length), 0));
    for (let i = 0; i < bits.length; i++) {
      if (got[i] !== want[i]) {
        throw new Error(
          `${name}: f32 ${bits[i].toString(16)} -> ${got[i].toString(16)}, want ${
            want[i].toString(16)
          }`,
        );
      }
    }
    // odd lengths exercise the scalar tails
    const tail = new Uint16Array(13);
    withImpl(impl, () => S.spool_f32_to_f16(P(src), P(tail), 13));
    assertEquals(tail, want.slice(0, 13));
  }
});

// ---- RoPE: REF vs f64 <= 1e-11 (angles in f32 as ggml); SIMD vs REF <= 1e-12 ------------

const ropeBase: RopeParams = {
  nTok: 5,
  nHead: 3,
  headDim: 128,
  nRot: 128,
  mode: 0,
  freqBase: 10000,
  freqScale: 1,
  extFactor: 0,
  attnFactor: 1,
  betaFast: 32,
  betaSlow: 1,
  nCtxOrig: 4096,
  freqFactors: null,
};

function runRope(x: Float32Array, pos: Int32Array, p: RopeParams): number {
  return S.spool_rope(
    P(x),
    P(pos),
    p.nTok,
    p.nHead,
    p.headDim,
    p.nRot,
    p.mode,
    p.freqBase,
    p.freqScale,
    p.extFactor,
    p.attnFactor,
    p.betaFast,
    p.betaSlow,
    p.nCtxOrig,
    p.freqFactors ? P(p.freqFactors) : null,
  );
}

Deno.test("rope: normal/neox, partial rotation, YaRN, freq_factors: ref vs f64, simd vs ref", () => {
  const rng = new Rng(5);
  const ff = Float32Array.from({ length: 64 }, (_, i) => (i < 20 ? 1 : i < 40 ? 2.5 : 8));
  const cases: [string, Partial<RopeParams>][] = [
    ["normal", {}],
    ["neox", { mode: 2 }],
    ["neox partial n_rot=64, head_dim=80", { mode: 2, headDim: 80, nRot: 64, freqBase: 1e6 }],
    ["normal partial n_rot=32, head_dim=64", { headDim: 64, nRot: 32 }],
    ["normal yarn", { extFactor: 1, freqScale: 0.25, nCtxOrig: 4096 }],
    ["neox yarn", { mode: 2, extFactor: 1, freqScale: 0.25, nCtxOrig: 4096, freqBase: 150000 }],
    ["neox yarn attn_factor", { mode: 2, extFactor: 1, freqScale: 0.25, attnFactor: 0.7 }],
    ["normal freq_factors", { freqFactors: ff, freqBase: 500000 }],
    ["neox freq_factors", { mode: 2, freqFactors: ff, freqBase: 500000 }],
    ["neox linear scale", { mode: 2, freqScale: 0.5 }],
  ];
  const pos = Int32Array.from([0, 1, 17, 1000, 16383]);
  for (const [label, over] of cases) {
    const p = { ...ropeBase, ...over };
    const x = rng.f32(p.nTok * p.nHead * p.headDim);
    const want = ropeRef(x, pos, p);
    const outs: Float32Array[] = [];
    for (const [name, impl] of impls) {
      const y = x.slice();
      withImpl(impl, () => assertEquals(runRope(y, pos, p), 0));
      assertNmse(y, want, 1e-11, `rope ${label} ${name} vs f64`);
      // dims past n_rot untouched
      for (let t = 0; t < p.nTok * p.nHead; t++) {
        for (let d = p.nRot; d < p.headDim; d++) {
          assertEquals(y[t * p.headDim + d], x[t * p.headDim + d]);
        }
      }
      outs.push(y);
    }
    if (outs.length > 1) assertNmse(outs[1], outs[0], 1e-12, `rope ${label} simd vs ref`);
  }
});

Deno.test("rope: position 0 is the identity (times attn_factor); pos 1 rotates pair 0 by 1 rad", () => {
  for (const [, impl] of impls) {
    const x = Float32Array.from({ length: 8 }, (_, i) => i + 1);
    const y = x.slice();
    const p = { ...ropeBase, nTok: 1, nHead: 1, headDim: 8, nRot: 8 };
    withImpl(impl, () => runRope(y, Int32Array.of(0), p));
    assertEquals(y, x);
    const z = x.slice();
    withImpl(impl, () => runRope(z, Int32Array.of(1), p));
    assert(Math.abs(z[0] - (1 * Math.cos(1) - 2 * Math.sin(1))) < 1e-6);
    assert(Math.abs(z[1] - (1 * Math.sin(1) + 2 * Math.cos(1))) < 1e-6);
  }
});

// ---- routing: exact ids, weights within 1e-6 of f64 --------------------------------------

function runRoute(
  logits: Float32Array,
  bias: Float32Array | null,
  nTok: number,
  nExp: number,
  k: number,
  gating: number,
  norm: boolean,
  scale: number,
) {
  const ids = new Int32Array(nTok * k), w = new Float32Array(nTok * k);
  const st = S.spool_topk_route(
    P(logits),
    bias ? P(bias) : null,
    nTok,
    nExp,
    k,
    gating,
    norm ? 1 : 0,
    scale,
    P(ids),
    P(w),
  );
  return { st, ids, w };
}

Deno.test("topk_route: softmax / sigmoid / softmax-topk, bias, norm, scale vs f64", () => {
  const rng = new Rng(6);
  const nTok = 7;
  for (const nExp of [8, 64, 128]) {
    for (const k of [1, 2, 8]) {
      for (const gating of [0, 1, 2]) {
        for (const useBias of [false, true]) {
          for (const norm of [false, true]) {
            const logits = rng.f32(nTok * nExp, 2);
            const bias = useBias ? rng.f32(nExp, 0.5) : null;
            const scale = norm ? 2.5 : 1;
            const results = impls.map(([, impl]) =>
              withImpl(impl, () => runRoute(logits, bias, nTok, nExp, k, gating, norm, scale))
            );
            for (const r of results) {
              assertEquals(r.st, 0);
              for (let t = 0; t < nTok; t++) {
                const want = routeRef(
                  logits.subarray(t * nExp, (t + 1) * nExp),
                  bias,
                  k,
                  gating,
                  norm,
                  scale,
                );
                assertEquals(Array.from(r.ids.subarray(t * k, (t + 1) * k)), want.ids);
                for (let i = 0; i < k; i++) {
                  assert(
                    Math.abs(r.w[t * k + i] - want.weights[i]) <= 1e-6 * Math.max(1, scale),
                    `gating ${gating} weight ${r.w[t * k + i]} vs ${want.weights[i]}`,
                  );
                }
              }
            }
            if (results.length > 1) {
              assertEquals(results[1].ids, results[0].ids);
              assertEquals(results[1].w, results[0].w);
            }
          }
        }
      }
    }
  }
});

Deno.test("topk_route: ties pick the lower id; bias selects but does not weigh", () => {
  const logits = new Float32Array([1, 3, 3, 0, 3, 2]);
  const r = runRoute(logits, null, 1, 6, 3, 2, false, 1);
  assertEquals(Array.from(r.ids), [1, 2, 4]);
  for (const v of r.w) assert(Math.abs(v - 1 / 3) < 1e-7);
  // a bias on expert 3 wins selection; its weight is still the plain probability
  const bias = new Float32Array([0, 0, 0, 10, 0, 0]);
  const b = runRoute(logits, bias, 1, 6, 2, 1, false, 1);
  assertEquals(Array.from(b.ids), [3, 1]);
  assert(Math.abs(b.w[0] - 0.5) < 1e-7); // sigmoid(0)
  assert(Math.abs(b.w[1] - 1 / (1 + Math.exp(-3))) < 1e-7);
  // k == n_expert returns everything, sorted
  const all = runRoute(logits, null, 1, 6, 6, 0, true, 1);
  assertEquals(Array.from(all.ids), [1, 2, 4, 5, 0, 3]);
});

// ---- attention ----------------------------------------------------------------------------
// flags 0: REF vs f64 <= 1e-11, SIMD vs REF <= 1e-11 (1e-10 beyond 10,000 keys: the REF's
// sequential f32 sum over 33,000 rows measures 2e-11). SPOOL_ATTN_GGML: REF and SIMD vs the f64
// reference with the same two f16 roundings <= 1e-8, SIMD vs REF <= 1e-8 (measured <= 2e-13 up
// to 300 keys, <= 3e-10 beyond 10,000: a probability whose f16 rounding flips because exp or a
// dot product differs in its last f32 bit moves by 2^-11 relative), and farther than 1e-8
// from the unrounded f64 attention, so the roundings are really there (measured 3e-8 ..
// 1.2e-7). Threads bit-exact in both modes.

/** SPOOL_ATTN_GGML in spool.h. */
const ATTN_GGML = 1;

function makeAttn(rng: Rng, p: AttnParams) {
  const q = rng.f32(p.nTok * p.nHead * p.headDim);
  const k = toF16(rng.f32(p.nKv * p.nHeadKv * p.headDim));
  const v = toF16(rng.f32(p.nKv * p.nHeadKv * p.headDim));
  return { q, k, v };
}

function runAttn(
  pool: Deno.PointerValue | null,
  a: { q: Float32Array; k: Uint16Array; v: Uint16Array },
  p: AttnParams,
  out: Float32Array,
  flags = 0,
): number {
  return S.spool_attention(
    pool as never,
    P(a.q),
    P(a.k),
    P(a.v),
    P(out),
    p.nTok,
    p.nHead,
    p.nHeadKv,
    p.headDim,
    p.nKv,
    p.pos0,
    p.scale,
    p.window,
    p.sinks ? P(p.sinks) : null,
    flags,
  );
}

Deno.test("attention: GQA 1/4/8, window, sinks, prefill, long range, both modes, threads", () => {
  const rng = new Rng(7);
  const base: AttnParams = {
    nTok: 1,
    nHead: 8,
    nHeadKv: 8,
    headDim: 64,
    nKv: 1,
    pos0: 0,
    scale: 0,
    window: 0,
    sinks: null,
  };
  const cases: [string, Partial<AttnParams>][] = [
    ["decode gqa1", { nKv: 200, pos0: 199 }],
    ["decode gqa4 hd128", { nHead: 16, nHeadKv: 4, headDim: 128, nKv: 300, pos0: 299 }],
    ["decode gqa8", { nHead: 16, nHeadKv: 2, nKv: 130, pos0: 129 }],
    ["prefill from 0", { nTok: 9, nHead: 8, nHeadKv: 2, nKv: 9 }],
    ["prefill pos0>0, cache longer", { nTok: 5, nHead: 4, nHeadKv: 1, nKv: 200, pos0: 100 }],
    ["window 16", { nTok: 4, nKv: 150, pos0: 100, window: 16 }],
    ["window > pos", { nTok: 3, nKv: 10, pos0: 2, window: 64, headDim: 128 }],
    ["sinks", { nTok: 3, nHead: 8, nHeadKv: 2, nKv: 70, pos0: 60 }],
    ["sinks + window", { nTok: 2, nHead: 4, nHeadKv: 4, nKv: 300, pos0: 280, window: 128 }],
    ["single key", { nTok: 1, nKv: 1 }],
    ["head_dim 40 (odd tail)", { nHead: 2, nHeadKv: 1, headDim: 40, nKv: 70, pos0: 69 }],
    // ggml path: 2 heads' scores fit SPOOL_ATTN_GGML_SCORES, so the group of 4 goes in halves
    ["gqa4 12000 keys", { nHead: 4, nHeadKv: 1, nKv: 12000, pos0: 11999 }],
    // more keys than SPOOL_ATTN_GGML_SCORES: the ggml path recomputes the scores in each pass
    ["long range", { nTok: 2, nHead: 2, nHeadKv: 1, nKv: 33000, pos0: 32998 }],
    ["sinks long range", { nTok: 1, nHead: 2, nHeadKv: 1, nKv: 32800, pos0: 32799 }],
  ];
  const pool = S.spool_pool_create(2);
  try {
    for (const [label, over] of cases) {
      const p: AttnParams = { ...base, ...over };
      p.scale = 1 / Math.sqrt(p.headDim);
      if (label.startsWith("sinks")) p.sinks = rng.f32(p.nHead, 2);
      const a = makeAttn(rng, p);
      const plain = attentionRef(a.q, a.k, a.v, p);
      for (const flags of [0, ATTN_GGML]) {
        const mode = flags ? "ggml" : "f32";
        const want = flags ? attentionRef(a.q, a.k, a.v, p, true) : plain;
        const bound = flags ? 1e-8 : p.nKv > 10000 ? 1e-10 : 1e-11;
        const outs: Float32Array[] = [];
        for (const [name, impl] of impls) {
          const out = new Float32Array(p.nTok * p.nHead * p.headDim);
          withImpl(impl, () => assertEquals(runAttn(null, a, p, out, flags), 0));
          assertNmse(out, want, bound, `attention ${label} ${mode} ${name} vs f64`);
          if (flags && label !== "single key") { // one key, no sink: p = 1 exactly
            const e = nmse(out, plain);
            if (verbose) console.log(`attention ${label} ggml ${name} vs unrounded: ${e}`);
            assert(e > 1e-8, `attention ${label} ggml ${name}: NMSE ${e} vs unrounded f64`);
          }
          const outT = new Float32Array(out.length);
          withImpl(impl, () => assertEquals(runAttn(pool as never, a, p, outT, flags), 0));
          assertEquals(outT, out, `attention ${label} ${mode} ${name}: 2 threads == 1 thread`);
          outs.push(out);
        }
        if (outs.length > 1) {
          assertNmse(outs[1], outs[0], bound, `attention ${label} ${mode} simd vs ref`);
        }
      }
    }
  } finally {
    S.spool_pool_destroy(pool);
  }
});

Deno.test("attention: a query attends only to itself at pos 0; sinks shrink the output", () => {
  for (const [, impl] of impls) {
    const p: AttnParams = {
      nTok: 1,
      nHead: 1,
      nHeadKv: 1,
      headDim: 8,
      nKv: 4,
      pos0: 0,
      scale: 1,
      window: 0,
      sinks: null,
    };
    const q = new Float32Array(8).fill(1);
    const kv = new Float32Array(32);
    for (let i = 0; i < 32; i++) kv[i] = i < 8 ? 0.5 : 100; // rows 1..3 are "future"
    const a = { q, k: toF16(kv), v: toF16(kv) };
    const out = new Float32Array(8);
    withImpl(impl, () => runAttn(null, a, p, out));
    assertEquals(Array.from(out), new Array(8).fill(0.5));
    // sink logit 0 and one key with score 4: weight e^4 / (e^4 + 1)
    const ps = { ...p, sinks: new Float32Array([0]) };
    withImpl(impl, () => runAttn(null, a, ps, out));
    const w = Math.exp(4) / (Math.exp(4) + 1);
    for (const v of out) assert(Math.abs(v - 0.5 * w) < 1e-6);
    // ggml: the weight is rounded to f16 (0.98201 -> 0.98193), even at position 0
    withImpl(impl, () => runAttn(null, a, ps, out, ATTN_GGML));
    for (const v of out) {
      assert(Math.abs(v - 0.5 * roundF16(w)) < 1e-7, `ggml sink weight ${v}`);
      assert(Math.abs(v - 0.5 * w) > 1e-5);
    }
    // without sinks the ggml path is the identity too (p = 1 exactly)
    withImpl(impl, () => runAttn(null, a, p, out, ATTN_GGML));
    assertEquals(Array.from(out), new Array(8).fill(0.5));
  }
});

// ---- statuses -----------------------------------------------------------------------------

Deno.test("ops: invalid arguments give SPOOL_E_INVALID / SPOOL_E_RANGE", () => {
  const x = new Float32Array(64), y = new Float32Array(64), u16 = new Uint16Array(64);
  const pos = new Int32Array(1), ids = new Int32Array(8);
  assertEquals(S.spool_rmsnorm(P(x), null, P(y), 1, 0, 1e-6), Status.INVALID);
  assertEquals(S.spool_rmsnorm(null, null, P(y), 1, 8, 1e-6), Status.INVALID);
  assertEquals(S.spool_rmsnorm(P(x), null, P(y), 0, 8, 1e-6), Status.OK);
  assertEquals(S.spool_softmax(P(x), -1, 8), Status.INVALID);
  assertEquals(S.spool_silu(P(x), P(y), -1), Status.INVALID);
  assertEquals(S.spool_silu(null, null, 0), Status.OK);
  assertEquals(S.spool_swiglu(P(x), null, P(y), 4), Status.INVALID);
  assertEquals(S.spool_f32_to_f16(null, P(u16), 4), Status.INVALID);
  assertEquals(S.spool_f16_to_f32(P(u16), null, 4), Status.INVALID);
  const rope = (o: Partial<RopeParams>) => {
    const p = { ...ropeBase, nTok: 1, nHead: 1, headDim: 64, nRot: 64, ...o };
    return runRope(x, pos, p);
  };
  assertEquals(rope({}), Status.OK);
  assertEquals(rope({ nRot: 63 }), Status.INVALID);
  assertEquals(rope({ nRot: 66 }), Status.INVALID); // > head_dim
  assertEquals(rope({ mode: 1 }), Status.INVALID);
  assertEquals(rope({ freqBase: 0 }), Status.INVALID);
  assertEquals(rope({ extFactor: 1, nCtxOrig: 0 }), Status.INVALID);
  assertEquals(
    S.spool_rope(null, P(pos), 1, 1, 64, 64, 0, 1e4, 1, 0, 1, 32, 1, 4096, null),
    Status.INVALID,
  );
  const big = new Float32Array(2048);
  assertEquals(
    S.spool_rope(P(big), P(pos), 1, 1, 2048, 2048, 0, 1e4, 1, 0, 1, 32, 1, 4096, null),
    Status.RANGE,
  );
  const route = (nExp: number, k: number, gating: number) =>
    S.spool_topk_route(P(x), null, 1, nExp, k, gating, 0, 1, P(ids), P(y));
  assertEquals(route(4, 5, 0), Status.RANGE);
  assertEquals(route(4, 0, 0), Status.INVALID);
  assertEquals(route(4, 2, 3), Status.INVALID);
  assertEquals(route(4, 4, 2), Status.OK);
  const attn = (o: Partial<AttnParams>) => {
    const p: AttnParams = {
      nTok: 1,
      nHead: 2,
      nHeadKv: 1,
      headDim: 16,
      nKv: 2,
      pos0: 1,
      scale: 1,
      window: 0,
      sinks: null,
      ...o,
    };
    return runAttn(null, { q: x, k: u16, v: u16 }, p, y);
  };
  assertEquals(attn({}), Status.OK);
  assertEquals(attn({ nHead: 3, nHeadKv: 2 }), Status.INVALID);
  assertEquals(attn({ headDim: 1025 }), Status.RANGE); // SPOOL_ATTN_MAX_HEAD_DIM 1024
  assertEquals(attn({ pos0: 2 }), Status.RANGE); // pos0 + n_tok > n_kv
  assertEquals(attn({ window: -1 }), Status.INVALID);
  assertEquals(attn({ nHeadKv: 0 }), Status.INVALID);
  const attnFlags = (flags: number) =>
    S.spool_attention(null, P(x), P(u16), P(u16), P(y), 1, 2, 1, 16, 2, 1, 1, 0, null, flags);
  assertEquals(attnFlags(ATTN_GGML), Status.OK);
  assertEquals(attnFlags(2), Status.INVALID);
  assertEquals(attnFlags(-1), Status.INVALID);
});

Deno.test("impl switch: REF always available, AUTO resolves to the best", () => {
  assertEquals(S.spool_set_impl(Impl.REF), 0);
  assertEquals(S.spool_get_impl(), Impl.REF);
  assertEquals(S.spool_set_impl(Impl.AUTO), 0);
  assertEquals(S.spool_get_impl(), simd ?? Impl.REF);
  assertEquals(S.spool_set_impl(99), Status.RANGE);
});
