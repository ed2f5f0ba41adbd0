/**
 * The op suite every {@link Backend} must pass: each op of the backend seam against a
 * float64 reference written here (test/kernels/_ops_ref.ts), with stated NMSE bounds.
 * A new backend (CUDA, Metal) registers this suite with its own constructor.
 */
import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { Gating, RopeMode } from "../../runtime/backend/backend.ts";
import type { Backend, Buf, Matrix, Vector } from "../../runtime/backend/backend.ts";
import { GGMLType } from "../../runtime/gguf/types.ts";
import {
  attentionRef,
  nmse,
  normal,
  rmsnormRef,
  rng,
  ropeRef,
  routeRef,
  siluRef,
  toF16,
} from "../kernels/_ops_ref.ts";
import { deltaNetRef, gatedRmsnormRef, gdnGatesRef, ssmConvRef } from "../kernels/_deltanet_ref.ts";
import { KernelError } from "../../ffi/mod.ts";

/** f32 products and norms: f32 rounding of long sums only. */
const F32_BOUND = 1e-10;

function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => normal(r) * scale);
}

/** Register the suite for backend `name`, made by `make` (closed after each test). */
export function backendOpSuite(name: string, make: () => Backend): void {
  const test = (what: string, fn: (be: Backend, keep: (b: Buf) => Buf) => void) =>
    Deno.test(`backend ${name}: ${what}`, () => {
      const be = make();
      const bufs: Buf[] = [];
      try {
        fn(be, (b) => (bufs.push(b), b));
      } finally {
        for (const b of bufs) b.free();
        be.close();
      }
    });
  const put = (be: Backend, keep: (b: Buf) => Buf, data: Float32Array | Int32Array): Buf => {
    const b = keep(be.alloc(data.byteLength));
    if (data instanceof Int32Array) b.i32.set(data);
    else b.f32.set(data);
    return b;
  };
  const vector = (buf: Buf, data: Float32Array, name = "v"): Vector => ({
    name,
    ptr: buf.ptr,
    data,
  });

  test("matmul (F32 weights) equals the f64 product", (be, keep) => {
    const rows = 48, cols = 64, n = 5;
    const w = rand(rows * cols, 1), x = rand(n * cols, 2);
    const wb = put(be, keep, w), xb = put(be, keep, x);
    const y = keep(be.alloc(n * rows * 4));
    const mat: Matrix = {
      name: "w",
      type: GGMLType.F32,
      rows,
      cols,
      ptr: wb.ptr,
      rowBytes: cols * 4,
    };
    const scratch = keep(be.alloc(Math.max(64, be.matmulScratchBytes(mat, n))));
    be.matmul(mat, xb.ptr, n, y.ptr, scratch.ptr);
    const ref = new Float64Array(n * rows);
    for (let t = 0; t < n; t++) {
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let i = 0; i < cols; i++) s += w[r * cols + i] * x[t * cols + i];
        ref[t * rows + r] = s;
      }
    }
    ok(nmse(y.f32.subarray(0, n * rows), ref) < F32_BOUND);
  });

  test("getRows dequantizes the rows of the tokens", (be, keep) => {
    const rows = 10, cols = 32;
    const w = rand(rows * cols, 3);
    const wb = put(be, keep, w);
    const mat: Matrix = {
      name: "e",
      type: GGMLType.F32,
      rows,
      cols,
      ptr: wb.ptr,
      rowBytes: cols * 4,
    };
    const x = keep(be.alloc(3 * cols * 4));
    be.getRows(mat, [7, 0, 7], x);
    deepStrictEqual(
      Array.from(x.f32.subarray(0, cols)),
      Array.from(w.subarray(7 * cols, 8 * cols)),
    );
    deepStrictEqual(Array.from(x.f32.subarray(cols, 2 * cols)), Array.from(w.subarray(0, cols)));
  });

  test("rmsnorm with and without weights", (be, keep) => {
    const rows = 4, n = 96;
    const x = rand(rows * n, 4), w = rand(n, 5);
    const xb = put(be, keep, x), wb = put(be, keep, w), y = keep(be.alloc(rows * n * 4));
    be.rmsnorm(xb.ptr, wb.ptr, y.ptr, rows, n, 1e-6);
    ok(nmse(y.f32.subarray(0, rows * n), rmsnormRef(x, w, rows, n, 1e-6)) < F32_BOUND);
    be.rmsnorm(xb.ptr, null, y.ptr, rows, n, 1e-6);
    ok(nmse(y.f32.subarray(0, rows * n), rmsnormRef(x, null, rows, n, 1e-6)) < F32_BOUND);
  });

  test("rope, partial NEOX and NORMAL", (be, keep) => {
    for (const mode of [RopeMode.NEOX, RopeMode.NORMAL]) {
      const nTok = 3, nHead = 2, headDim = 16, nRot = 8;
      const x = rand(nTok * nHead * headDim, 6);
      const pos = Int32Array.from([0, 5, 300]);
      const xb = put(be, keep, x), pb = put(be, keep, pos);
      const p = {
        nRot,
        mode,
        freqBase: 10000,
        freqScale: 1,
        extFactor: 0,
        attnFactor: 1,
        betaFast: 32,
        betaSlow: 1,
        nCtxOrig: 4096,
      };
      be.rope(xb.ptr, pb.ptr, nTok, nHead, headDim, p);
      const ref = ropeRef(x, pos, { ...p, nTok, nHead, headDim, freqFactors: null });
      ok(nmse(xb.f32.subarray(0, x.length), ref) < 1e-9, `mode ${mode}`);
    }
  });

  test("route: softmax, sigmoid with bias and scale, top-k softmax", (be, keep) => {
    const n = 6, nE = 16, k = 4;
    const logits = rand(n * nE, 7), bias = rand(nE, 8, 0.1);
    const cases = [
      { g: Gating.SOFTMAX, bias: null, norm: true, scale: 1 },
      { g: Gating.SIGMOID, bias, norm: true, scale: 2.5 },
      { g: Gating.SOFTMAX_TOPK, bias: null, norm: false, scale: 1 },
    ];
    for (const c of cases) {
      const lb = put(be, keep, logits);
      const bb = c.bias ? put(be, keep, c.bias) : null;
      const ids = keep(be.alloc(n * k * 4)), wts = keep(be.alloc(n * k * 4));
      be.route(lb.ptr, bb ? bb.ptr : null, n, nE, k, c.g, c.norm, c.scale, ids.ptr, wts.ptr);
      for (let t = 0; t < n; t++) {
        const ref = routeRef(
          logits.subarray(t * nE, (t + 1) * nE),
          c.bias,
          k,
          c.g,
          c.norm,
          c.scale,
        );
        deepStrictEqual(Array.from(ids.i32.subarray(t * k, (t + 1) * k)), ref.ids);
        ok(nmse(wts.f32.subarray(t * k, (t + 1) * k), ref.weights) < 1e-12, `gating ${c.g}`);
      }
    }
  });

  test("attention over an f16 KV block (ggml roundings), GQA and a window", (be, keep) => {
    const nHead = 4, nHeadKv = 2, headDim = 32, nKv = 9, nTok = 3, pos0 = 6;
    const q = rand(nTok * nHead * headDim, 9);
    const k16 = toF16(rand(nKv * nHeadKv * headDim, 10));
    const v16 = toF16(rand(nKv * nHeadKv * headDim, 11));
    for (const window of [0, 4]) {
      const qb = put(be, keep, q);
      const kb = keep(be.alloc(k16.byteLength)), vb = keep(be.alloc(v16.byteLength));
      new Uint16Array(kb.f32.buffer, kb.f32.byteOffset, k16.length).set(k16);
      new Uint16Array(vb.f32.buffer, vb.f32.byteOffset, v16.length).set(v16);
      const out = keep(be.alloc(q.byteLength));
      const scale = 1 / Math.sqrt(headDim);
      be.attention(qb.ptr, kb.ptr, vb.ptr, out.ptr, nTok, nKv, pos0, {
        nHead,
        nHeadKv,
        headDim,
        scale,
        window,
        sinks: null,
      });
      const ref = attentionRef(q, k16, v16, {
        nTok,
        nHead,
        nHeadKv,
        headDim,
        nKv,
        pos0,
        scale,
        window,
        sinks: null,
      }, true);
      ok(nmse(out.f32.subarray(0, q.length), ref) < 1e-9, `window ${window}`);
    }
  });

  test("swiglu, toF16 and the elementwise adds", (be, keep) => {
    const n = 40;
    const g = rand(n, 12), u = rand(n, 13);
    const gb = put(be, keep, g), ub = put(be, keep, u), y = keep(be.alloc(n * 4));
    be.swiglu(gb.ptr, ub.ptr, y.ptr, n);
    ok(nmse(y.f32.subarray(0, n), Array.from(g, (v, i) => siluRef(v) * u[i])) < 1e-12);
    const h16 = keep(be.alloc(n * 2));
    be.toF16(gb.ptr, h16.ptr, n);
    deepStrictEqual(
      Array.from(new Uint16Array(h16.f32.buffer, h16.f32.byteOffset, n)),
      Array.from(toF16(g)),
    );
    const m = 4, w = 10;
    const x = rand(m * w, 14), b = rand(w, 15), d = rand(m * w, 16), gate = rand(w, 17);
    const xb = put(be, keep, x), db = put(be, keep, d), hb = put(be, keep, x);
    be.add(xb, db, m * w);
    deepStrictEqual(
      Array.from(xb.f32.subarray(0, m * w)),
      Array.from(x, (v, i) => Math.fround(v + d[i])),
    );
    const bb = put(be, keep, b);
    be.addBias(xb, vector(bb, b), m);
    const gb2 = put(be, keep, gate);
    const before = Float64Array.from(xb.f32.subarray(0, m * w));
    be.addSigmoidGated(xb, hb, vector(gb2, gate), db, m, w);
    for (let t = 0; t < m; t++) {
      let dot = 0;
      for (let i = 0; i < w; i++) dot += gate[i] * x[t * w + i];
      const s = 1 / (1 + Math.exp(-dot));
      for (let i = 0; i < w; i++) {
        const want = before[t * w + i] + s * d[t * w + i];
        ok(Math.abs(xb.f32[t * w + i] - want) <= 1e-6 * Math.max(1, Math.abs(want)));
      }
    }
  });

  test("ssmConv (silu) and gdnGates: float64 references, state carried", (be, keep) => {
    const ch = 72, k = 4, n = 7;
    const x = rand(n * ch, 20), w = rand(ch * k, 21, 0.5), st = rand((k - 1) * ch, 22);
    const xb = put(be, keep, x), wb = put(be, keep, w), sb = put(be, keep, st);
    const y = keep(be.alloc(n * ch * 4));
    be.ssmConv(xb.ptr, wb.ptr, sb.ptr, y.ptr, 3, ch, k, true); // 3 tokens, then 4
    be.ssmConv(xb.ptrAt(3 * ch * 4), wb.ptr, sb.ptr, y.ptrAt(3 * ch * 4), n - 3, ch, k, true);
    const ref = ssmConvRef(x, w, st, n, ch, k, true);
    ok(nmse(y.f32.subarray(0, n * ch), ref.y) < 1e-12);
    deepStrictEqual(Array.from(sb.f32.subarray(0, (k - 1) * ch)), Array.from(ref.state));
    const nH = 8;
    const al = rand(n * nH, 23, 2), b = rand(n * nH, 24, 2), dt = rand(nH, 25);
    const a = Float32Array.from(rand(nH, 26), (v) => -Math.exp(v));
    const alb = put(be, keep, al), bb = put(be, keep, b), dtb = put(be, keep, dt);
    const ab = put(be, keep, a);
    const g = keep(be.alloc(n * nH * 4)), beta = keep(be.alloc(n * nH * 4));
    be.gdnGates(alb.ptr, bb.ptr, dtb.ptr, ab.ptr, g.ptr, beta.ptr, n, nH);
    const gr = gdnGatesRef(al, b, dt, a, n, nH);
    ok(nmse(g.f32.subarray(0, n * nH), gr.g) < 1e-12);
    ok(nmse(beta.f32.subarray(0, n * nH), gr.beta) < 1e-12);
  });

  test("gatedDeltaNet over two calls (state carried) and gatedRmsnorm", (be, keep) => {
    const n = 11, nK = 2, nV = 4, dk = 64, dv = 32, row = 2 * nK * dk + nV * dv;
    const conv = rand(n * row, 27);
    const r = rng(28);
    const g = Float32Array.from({ length: n * nV }, () => -Math.exp(normal(r) - 2));
    const beta = Float32Array.from({ length: n * nV }, () => 1 / (1 + Math.exp(-normal(r))));
    const st0 = rand(nV * dv * dk, 29, 0.1);
    const cb = put(be, keep, conv), gb = put(be, keep, g), bb = put(be, keep, beta);
    const sb = put(be, keep, st0), out = keep(be.alloc(n * nV * dv * 4));
    const args = (t0: number, m: number) => ({
      q: cb.ptrAt(t0 * row * 4),
      k: cb.ptrAt((t0 * row + nK * dk) * 4),
      v: cb.ptrAt((t0 * row + 2 * nK * dk) * 4),
      g: gb.ptrAt(t0 * nV * 4),
      beta: bb.ptrAt(t0 * nV * 4),
      state: sb.ptr,
      out: out.ptrAt(t0 * nV * dv * 4),
      n: m,
      nKHead: nK,
      nVHead: nV,
      headDimK: dk,
      headDimV: dv,
      qStride: row,
      kStride: row,
      vStride: row,
      scale: 1 / Math.sqrt(dk),
      eps: 1e-6,
      l2norm: true,
      tiledHeads: true,
    });
    be.gatedDeltaNet(args(0, 5));
    be.gatedDeltaNet(args(5, n - 5));
    const ref = deltaNetRef(
      conv,
      conv.subarray(nK * dk),
      conv.subarray(2 * nK * dk),
      g,
      beta,
      st0,
      {
        nTok: n,
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
      },
    );
    ok(nmse(out.f32.subarray(0, n * nV * dv), ref.out) < 1e-12);
    ok(nmse(sb.f32.subarray(0, nV * dv * dk), ref.state) < 1e-12);
    const z = rand(n * nV * dv, 30), w = rand(dv, 31, 0.5);
    const zb = put(be, keep, z), wb = put(be, keep, w), y = keep(be.alloc(n * nV * dv * 4));
    const x = Float32Array.from(out.f32.subarray(0, n * nV * dv));
    be.gatedRmsnorm(out.ptr, wb.ptr, zb.ptr, y.ptr, n * nV, dv, 1e-6);
    ok(nmse(y.f32.subarray(0, n * nV * dv), gatedRmsnormRef(x, w, z, n * nV, dv, 1e-6)) < 1e-12);
    throws(() => be.gatedDeltaNet({ ...args(0, 1), nVHead: 3 }), KernelError);
  });
}
