/**
 * The gated DeltaNet kernels (spool.h ABI 5: spool_ssm_conv, spool_gdn_gates,
 * spool_gated_delta_net, spool_gated_rmsnorm), on every implementation this machine has:
 *  - REF and SIMD against the float64 references of test/kernels/_deltanet_ref.ts (written
 *    from the math), with NMSE bounds;
 *  - SIMD against REF (NMSE; the conv without silu bit for bit);
 *  - the delta rule's prefill form: one call over a prompt equals the same prompt in two
 *    calls and token by token, bit for bit (outputs and states), and a pool of 3 threads
 *    equals none;
 *  - both head mappings (grouped and SPOOL_GDN_TILED), q/k/v as strided slices of one conv
 *    row, head sizes that are and are not multiples of the SIMD width and of the row block;
 *  - the statuses of bad arguments.
 * SPOOL_TEST_VERBOSE=1 prints every measured NMSE.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Impl, native, Status } from "../../ffi/mod.ts";
import type { Ptr } from "../../ffi/mod.ts";
import { nmse, Rng } from "./_ops_ref.ts";
import {
  type DeltaNetParams,
  deltaNetRef,
  gatedRmsnormRef,
  gdnGatesRef,
  ssmConvRef,
} from "./_deltanet_ref.ts";

const n = native();
const S = n.sym;
const P = (a: ArrayBufferView) => n.ptr(a);
const verbose = !!Deno.env.get("SPOOL_TEST_VERBOSE");

const simd = [Impl.AVX2, Impl.NEON].find((i) => {
  const ok = S.spool_set_impl(i) === Status.OK;
  S.spool_set_impl(Impl.AUTO);
  return ok;
});
const impls: [string, number][] = [["ref", Impl.REF]];
if (simd !== undefined) impls.push([simd === Impl.AVX2 ? "avx2" : "neon", simd]);

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

const CONV_SILU = 1;
const GDN_L2NORM = 1, GDN_TILED = 2;

function conv(
  pool: Ptr,
  x: Float32Array,
  w: Float32Array,
  state: Float32Array,
  y: Float32Array,
  nTok: number,
  ch: number,
  k: number,
  flags: number,
): number {
  return S.spool_ssm_conv(pool, P(x), P(w), P(state), P(y), nTok, ch, k, flags);
}

Deno.test("ssm_conv: REF and SIMD against float64, SIMD bits = REF without silu, state", () => {
  const r = new Rng(1);
  for (const [ch, k, nTok] of [[200, 4, 9], [64, 4, 1], [37, 3, 2], [24, 1, 5]]) {
    const x = r.f32(nTok * ch), w = r.f32(ch * k, 0.5), st = r.f32((k - 1) * ch);
    for (const silu of [false, true]) {
      const ref = ssmConvRef(x, w, st, nTok, ch, k, silu);
      const outs: Float32Array[] = [];
      for (const [name, impl] of impls) {
        const y = new Float32Array(nTok * ch), s2 = st.slice();
        withImpl(impl, () => {
          assertEquals(conv(null, x, w, s2, y, nTok, ch, k, silu ? CONV_SILU : 0), Status.OK);
        });
        assertNmse(y, ref.y, 1e-13, `conv ${name} ch ${ch} k ${k} n ${nTok} silu ${silu}`);
        assertEquals(Array.from(s2), Array.from(Float32Array.from(ref.state)), "state");
        outs.push(y);
      }
      if (outs.length === 2) {
        if (!silu) assertEquals(Array.from(outs[1]), Array.from(outs[0]), `simd bits ch ${ch}`);
        else assertNmse(outs[1], outs[0], 1e-13, `conv simd vs ref ch ${ch} silu`);
      }
    }
  }
});

Deno.test("ssm_conv: in place, in pieces (state carried) and pooled give one call's bits", () => {
  const r = new Rng(2);
  const ch = 160, k = 4, nTok = 13;
  const x = r.f32(nTok * ch), w = r.f32(ch * k, 0.5), st = r.f32((k - 1) * ch);
  const pool = S.spool_pool_create(3);
  try {
    for (const [, impl] of impls) {
      withImpl(impl, () => {
        const y = new Float32Array(nTok * ch), s1 = st.slice();
        assertEquals(conv(null, x, w, s1, y, nTok, ch, k, CONV_SILU), Status.OK);
        const xi = x.slice(), s2 = st.slice();
        assertEquals(conv(pool, xi, w, s2, xi, nTok, ch, k, CONV_SILU), Status.OK);
        assertEquals(Array.from(xi), Array.from(y), "in place, pooled");
        assertEquals(Array.from(s2), Array.from(s1));
        const s3 = st.slice(), y3 = new Float32Array(nTok * ch);
        for (const [a, b] of [[0, 2], [2, 3], [3, 13]]) {
          const xs = x.subarray(a * ch, b * ch), ys = y3.subarray(a * ch, b * ch);
          assertEquals(conv(null, xs, w, s3, ys, b - a, ch, k, CONV_SILU), Status.OK);
        }
        assertEquals(Array.from(y3), Array.from(y), "pieces 2+1+10");
        assertEquals(Array.from(s3), Array.from(s1));
      });
    }
  } finally {
    S.spool_pool_destroy(pool);
  }
});

Deno.test("gdn_gates against float64", () => {
  const r = new Rng(3);
  const nTok = 7, nHead = 12;
  const alpha = r.f32(nTok * nHead, 3), b = r.f32(nTok * nHead, 3);
  alpha[0] = 30; // the softplus(x) = x branch
  const dt = r.f32(nHead), a = Float32Array.from(r.f32(nHead), (v) => -Math.exp(v));
  const g = new Float32Array(nTok * nHead), beta = new Float32Array(nTok * nHead);
  assertEquals(S.spool_gdn_gates(P(alpha), P(b), P(dt), P(a), P(g), P(beta), nTok, nHead), 0);
  const ref = gdnGatesRef(alpha, b, dt, a, nTok, nHead);
  assertNmse(g, ref.g, 1e-13, "gates g");
  assertNmse(beta, ref.beta, 1e-13, "gates beta");
  const ai = alpha.slice(), bi = b.slice(); // in place
  assertEquals(S.spool_gdn_gates(P(ai), P(bi), P(dt), P(a), P(ai), P(bi), nTok, nHead), 0);
  assertEquals(Array.from(ai), Array.from(g));
  assertEquals(Array.from(bi), Array.from(beta));
});

interface GdnCase {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  g: Float32Array;
  beta: Float32Array;
  state: Float32Array;
  p: DeltaNetParams;
  flags: number;
}

/** q, k, v as slices of conv rows (q | k | v per token), g in the range real models give. */
function gdnCase(seed: number, shape: Partial<DeltaNetParams>, flags: number): GdnCase {
  const r = new Rng(seed);
  const nTok = shape.nTok!, nKHead = shape.nKHead!, nVHead = shape.nVHead!;
  const dk = shape.dk!, dv = shape.dv!;
  const row = 2 * nKHead * dk + nVHead * dv;
  const conv = r.f32(nTok * row);
  const g = Float32Array.from({ length: nTok * nVHead }, () => -Math.exp(r.normal() - 2));
  const beta = Float32Array.from({ length: nTok * nVHead }, () => 1 / (1 + Math.exp(-r.normal())));
  const p: DeltaNetParams = {
    nTok,
    nKHead,
    nVHead,
    dk,
    dv,
    qStride: row,
    kStride: row,
    vStride: row,
    scale: 1 / Math.sqrt(dk),
    eps: 1e-6,
    l2norm: (flags & GDN_L2NORM) !== 0,
    tiled: (flags & GDN_TILED) !== 0,
  };
  const k = conv.subarray(nKHead * dk);
  if (!p.l2norm) { // unnormalized keys must still keep the recurrence bounded
    for (let t = 0; t < nTok; t++) {
      for (let h = 0; h < nKHead; h++) {
        const o = t * row + h * dk;
        let s = 0;
        for (let i = 0; i < dk; i++) s += k[o + i] ** 2;
        for (let i = 0; i < dk; i++) k[o + i] /= Math.sqrt(s);
      }
    }
  }
  return {
    q: conv,
    k,
    v: conv.subarray(2 * nKHead * dk),
    g,
    beta,
    state: r.f32(nVHead * dv * dk, 0.1),
    p,
    flags,
  };
}

function gdn(
  pool: Ptr,
  c: GdnCase,
  t0: number,
  t1: number,
  state: Float32Array,
  out: Float32Array,
): number {
  const p = c.p, rowQ = p.qStride, rowV = p.vStride, h = p.nVHead;
  return S.spool_gated_delta_net(
    pool,
    P(c.q.subarray(t0 * rowQ)),
    P(c.k.subarray(t0 * p.kStride)),
    P(c.v.subarray(t0 * rowV)),
    P(c.g.subarray(t0 * h)),
    P(c.beta.subarray(t0 * h)),
    P(state),
    P(out.subarray(t0 * h * p.dv)),
    t1 - t0,
    p.nKHead,
    p.nVHead,
    p.dk,
    p.dv,
    p.qStride,
    p.kStride,
    p.vStride,
    p.scale,
    p.eps,
    c.flags,
  );
}

const shapes: [Partial<DeltaNetParams>, number][] = [
  [{ nTok: 37, nKHead: 2, nVHead: 4, dk: 128, dv: 128 }, GDN_L2NORM | GDN_TILED],
  [{ nTok: 37, nKHead: 2, nVHead: 4, dk: 128, dv: 128 }, GDN_L2NORM],
  [{ nTok: 21, nKHead: 1, nVHead: 3, dk: 48, dv: 40 }, 0],
  [{ nTok: 19, nKHead: 3, nVHead: 3, dk: 20, dv: 36 }, GDN_L2NORM],
];

Deno.test("gated_delta_net: REF and SIMD against float64, SIMD against REF", () => {
  for (const [i, [shape, flags]] of shapes.entries()) {
    const c = gdnCase(10 + i, shape, flags);
    const ref = deltaNetRef(c.q, c.k, c.v, c.g, c.beta, c.state, c.p);
    const outs: Float32Array[] = [];
    const tag = `dk ${c.p.dk} dv ${c.p.dv} heads ${c.p.nKHead}/${c.p.nVHead} flags ${flags}`;
    for (const [name, impl] of impls) {
      const out = new Float32Array(c.p.nTok * c.p.nVHead * c.p.dv), st = c.state.slice();
      withImpl(impl, () => assertEquals(gdn(null, c, 0, c.p.nTok, st, out), Status.OK));
      assertNmse(out, ref.out, 1e-12, `gdn ${name} out, ${tag}`);
      assertNmse(st, ref.state, 1e-12, `gdn ${name} state, ${tag}`);
      outs.push(out);
    }
    if (outs.length === 2) assertNmse(outs[1], outs[0], 1e-12, `gdn simd vs ref, ${tag}`);
  }
});

Deno.test("gated_delta_net: a wrong head mapping or a missing normalization is caught", () => {
  const c = gdnCase(20, shapes[0][0], GDN_L2NORM | GDN_TILED);
  const out = new Float32Array(c.p.nTok * c.p.nVHead * c.p.dv), st = c.state.slice();
  assertEquals(gdn(null, c, 0, c.p.nTok, st, out), Status.OK);
  const grouped = deltaNetRef(c.q, c.k, c.v, c.g, c.beta, c.state, { ...c.p, tiled: false });
  assert(nmse(out, grouped.out) > 1e-3, "tiled and grouped differ");
  const raw = deltaNetRef(c.q, c.k, c.v, c.g, c.beta, c.state, { ...c.p, l2norm: false });
  assert(nmse(out, raw.out) > 1e-3, "normalized and raw differ");
});

Deno.test("gated_delta_net: one call = two calls = token by token = pooled, bit for bit", () => {
  const pool = S.spool_pool_create(3);
  try {
    for (const [shape, flags] of [shapes[0], shapes[3]]) {
      const c = gdnCase(30, shape, flags);
      const T = c.p.nTok, len = T * c.p.nVHead * c.p.dv;
      for (const [name, impl] of impls) {
        withImpl(impl, () => {
          const out1 = new Float32Array(len), st1 = c.state.slice();
          assertEquals(gdn(null, c, 0, T, st1, out1), Status.OK);
          const out2 = new Float32Array(len), st2 = c.state.slice();
          assertEquals(gdn(pool, c, 0, 17, st2, out2), Status.OK);
          assertEquals(gdn(pool, c, 17, T, st2, out2), Status.OK);
          assertEquals(Array.from(out2), Array.from(out1), `${name}: halves 17 + ${T - 17}`);
          assertEquals(Array.from(st2), Array.from(st1), `${name}: state after halves`);
          const out3 = new Float32Array(len), st3 = c.state.slice();
          for (let t = 0; t < T; t++) assertEquals(gdn(null, c, t, t + 1, st3, out3), Status.OK);
          assertEquals(Array.from(out3), Array.from(out1), `${name}: token by token`);
          assertEquals(Array.from(st3), Array.from(st1), `${name}: state token by token`);
        });
      }
    }
  } finally {
    S.spool_pool_destroy(pool);
  }
});

Deno.test("gated_delta_net: a 512-token prompt stays within bounds of float64", () => {
  const c = gdnCase(40, { nTok: 512, nKHead: 1, nVHead: 2, dk: 128, dv: 128 }, GDN_L2NORM);
  const ref = deltaNetRef(c.q, c.k, c.v, c.g, c.beta, c.state, c.p);
  for (const [name, impl] of impls) {
    const out = new Float32Array(512 * 2 * 128), st = c.state.slice();
    withImpl(impl, () => assertEquals(gdn(null, c, 0, 512, st, out), Status.OK));
    assertNmse(out, ref.out, 1e-12, `gdn ${name} 512 tokens out`);
    assertNmse(st, ref.state, 1e-12, `gdn ${name} 512 tokens state`);
  }
});

Deno.test("gated_rmsnorm against float64, in place, SIMD against REF", () => {
  const r = new Rng(5);
  const rows = 6, nn = 128;
  const x = r.f32(rows * nn, 2), z = r.f32(rows * nn, 2), w = r.f32(nn, 0.5);
  const ref = gatedRmsnormRef(x, w, z, rows, nn, 1e-6);
  const outs: Float32Array[] = [];
  for (const [name, impl] of impls) {
    const y = x.slice();
    withImpl(
      impl,
      () => assertEquals(S.spool_gated_rmsnorm(P(y), P(w), P(z), P(y), rows, nn, 1e-6), 0),
    );
    assertNmse(y, ref, 1e-12, `gated_rmsnorm ${name}`);
    outs.push(y);
  }
  if (outs.length === 2) assertNmse(outs[1], outs[0], 1e-12, "gated_rmsnorm simd vs ref");
  const noW = new Float32Array(rows * nn);
  assertEquals(S.spool_gated_rmsnorm(P(x), null, P(z), P(noW), rows, nn, 1e-6), 0);
  assertNmse(noW, gatedRmsnormRef(x, null, z, rows, nn, 1e-6), 1e-12, "gated_rmsnorm no w");
});

Deno.test("deltanet ops: statuses of bad arguments", () => {
  const f = new Float32Array(4096);
  const p = P(f);
  assertEquals(S.spool_ssm_conv(null, p, p, p, p, 2, 8, 17, 0), Status.RANGE);
  assertEquals(S.spool_ssm_conv(null, p, p, p, p, 2, 8, 4, 4), Status.INVALID);
  assertEquals(S.spool_ssm_conv(null, p, p, null, p, 2, 8, 4, 0), Status.INVALID);
  assertEquals(S.spool_ssm_conv(null, p, p, null, p, 2, 8, 1, 0), Status.OK);
  assertEquals(S.spool_ssm_conv(null, null, null, null, null, 0, 8, 4, 0), Status.OK);
  assertEquals(S.spool_gdn_gates(p, p, null, p, p, p, 1, 4), Status.INVALID);
  const gd = (nk: number, nv: number, dk: number, dv: number, qs: number, vs: number, fl = 0) =>
    S.spool_gated_delta_net(null, p, p, p, p, p, p, p, 1, nk, nv, dk, dv, qs, qs, vs, 1, 0, fl);
  assertEquals(gd(2, 3, 8, 8, 16, 24), Status.INVALID); // 3 v heads over 2 k heads
  assertEquals(gd(2, 4, 8, 8, 15, 32), Status.INVALID); // q stride below its heads
  assertEquals(gd(2, 4, 8, 8, 16, 31), Status.INVALID); // v stride below its heads
  assertEquals(gd(2, 4, 8, 8, 16, 32, 4), Status.INVALID); // unknown flag
  assertEquals(gd(1, 1, 513, 8, 513, 8), Status.RANGE);
  assertEquals(gd(2, 4, 8, 8, 16, 32), Status.OK);
  assertEquals(S.spool_gated_rmsnorm(p, null, null, p, 1, 8, 1e-6), Status.INVALID);
});
