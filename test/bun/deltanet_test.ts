/**
 * Bun leg of test/kernels/deltanet_test.ts: the gated DeltaNet ops through bun:ffi (pointers
 * are numbers there) against the float64 references, and the delta rule's state carried
 * across calls bit for bit.
 *
 *   ./node_modules/.bin/bun test test/bun/deltanet_test.ts
 */
import { expect, test } from "bun:test";
import { Impl, native, Status } from "../../ffi/mod.ts";
import { nmse, Rng } from "../kernels/_ops_ref.ts";
import {
  type DeltaNetParams,
  deltaNetRef,
  gatedRmsnormRef,
  gdnGatesRef,
  ssmConvRef,
} from "../kernels/_deltanet_ref.ts";

const n = native();
const S = n.sym;
const P = (a: ArrayBufferView) => n.ptr(a);
const simd = [Impl.AVX2, Impl.NEON].find((i) => {
  const ok = S.spool_set_impl(i) === 0;
  S.spool_set_impl(Impl.AUTO);
  return ok;
});
const impls = simd === undefined ? [Impl.REF] : [Impl.REF, simd];

function withImpl<T>(impl: number, fn: () => T): T {
  expect(S.spool_set_impl(impl)).toBe(0);
  try {
    return fn();
  } finally {
    S.spool_set_impl(Impl.AUTO);
  }
}

test("ssm_conv with silu and gdn_gates against float64", () => {
  const r = new Rng(1);
  const ch = 100, k = 4, nTok = 6;
  const x = r.f32(nTok * ch), w = r.f32(ch * k, 0.5), st = r.f32((k - 1) * ch);
  const ref = ssmConvRef(x, w, st, nTok, ch, k, true);
  for (const impl of impls) {
    const y = new Float32Array(nTok * ch), s = st.slice();
    withImpl(impl, () => {
      expect(S.spool_ssm_conv(null, P(x), P(w), P(s), P(y), nTok, ch, k, 1)).toBe(Status.OK);
    });
    expect(nmse(y, ref.y)).toBeLessThan(1e-13);
    expect(Array.from(s)).toEqual(Array.from(Float32Array.from(ref.state)));
  }
  const nH = 6;
  const al = r.f32(nTok * nH, 2), b = r.f32(nTok * nH, 2), dt = r.f32(nH);
  const a = Float32Array.from(r.f32(nH), (v) => -Math.exp(v));
  const g = new Float32Array(nTok * nH), beta = new Float32Array(nTok * nH);
  expect(S.spool_gdn_gates(P(al), P(b), P(dt), P(a), P(g), P(beta), nTok, nH)).toBe(0);
  const gr = gdnGatesRef(al, b, dt, a, nTok, nH);
  expect(nmse(g, gr.g)).toBeLessThan(1e-13);
  expect(nmse(beta, gr.beta)).toBeLessThan(1e-13);
});

test("gated_delta_net: float64 reference, two calls = one call, gated_rmsnorm", () => {
  const r = new Rng(2);
  const nTok = 15, nK = 2, nV = 4, dk = 128, dv = 64, row = 2 * nK * dk + nV * dv;
  const conv = r.f32(nTok * row);
  const g = Float32Array.from({ length: nTok * nV }, () => -Math.exp(r.normal() - 2));
  const beta = Float32Array.from({ length: nTok * nV }, () => 1 / (1 + Math.exp(-r.normal())));
  const st0 = r.f32(nV * dv * dk, 0.1);
  const p: DeltaNetParams = {
    nTok,
    nKHead: nK,
    nVHead: nV,
    dk,
    dv,
    qStride: row,
    kStride: row,
    vStride: row,
    scale: 1 / Math.sqrt(dk),
    eps: 1e-6,
    l2norm: true,
    tiled: true,
  };
  const ref = deltaNetRef(
    conv,
    conv.subarray(nK * dk),
    conv.subarray(2 * nK * dk),
    g,
    beta,
    st0,
    p,
  );
  const call = (t0: number, t1: number, st: Float32Array, out: Float32Array) =>
    S.spool_gated_delta_net(
      null,
      P(conv.subarray(t0 * row)),
      P(conv.subarray(t0 * row + nK * dk)),
      P(conv.subarray(t0 * row + 2 * nK * dk)),
      P(g.subarray(t0 * nV)),
      P(beta.subarray(t0 * nV)),
      P(st),
      P(out.subarray(t0 * nV * dv)),
      t1 - t0,
      nK,
      nV,
      dk,
      dv,
      row,
      row,
      row,
      p.scale,
      p.eps,
      3,
    );
  for (const impl of impls) {
    withImpl(impl, () => {
      const out = new Float32Array(nTok * nV * dv), st = st0.slice();
      expect(call(0, nTok, st, out)).toBe(Status.OK);
      expect(nmse(out, ref.out)).toBeLessThan(1e-12);
      expect(nmse(st, ref.state)).toBeLessThan(1e-12);
      const out2 = new Float32Array(nTok * nV * dv), st2 = st0.slice();
      expect(call(0, 6, st2, out2)).toBe(Status.OK);
      expect(call(6, nTok, st2, out2)).toBe(Status.OK);
      expect(Array.from(out2)).toEqual(Array.from(out));
      expect(Array.from(st2)).toEqual(Array.from(st));
      const z = r.f32(nTok * nV * dv), w = r.f32(dv, 0.5), y = new Float32Array(z.length);
      expect(S.spool_gated_rmsnorm(P(out), P(w), P(z), P(y), nTok * nV, dv, 1e-6)).toBe(0);
      expect(nmse(y, gatedRmsnormRef(out, w, z, nTok * nV, dv, 1e-6))).toBeLessThan(1e-12);
    });
  }
});
