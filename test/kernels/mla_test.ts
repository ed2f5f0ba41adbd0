/**
 * The kernels the deepseek2 / glm4moe / minimax-m2 families add (spool.h ABI 4):
 *  - spool_attention_ex: K and V head sizes and row strides apart, V aliasing K (MLA's
 *    absorbed latent cache: 576-value rows, V = the first 512 of the same row, one kv head).
 *    REF and SIMD against an independent float64 softmax(q·kᵀ·scale)·v
 *    (test/kernels/_ops_ref.ts), SIMD against REF, pooled against one thread, and
 *    spool_attention's bits where the layouts coincide;
 *  - spool_topk_route_groups: group-limited top-k against the float64 reference, against
 *    hand-made cases (two best per group, not the max), and spool_topk_route's norm clamp.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Impl, native, Status } from "../../ffi/mod.ts";
import { attentionExRef, type AttnExParams, nmse, Rng, routeRef, toF16 } from "./_ops_ref.ts";

const n = native();
const S = n.sym;
const P = (a: ArrayBufferView) => n.ptr(a);
/** SPOOL_TEST_VERBOSE=1 prints every measured NMSE. */
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

/** SPOOL_ATTN_GGML in spool.h. */
const ATTN_GGML = 1;

function runEx(
  pool: Deno.PointerValue | null,
  q: Float32Array,
  k: Uint16Array,
  v: Uint16Array,
  out: Float32Array,
  p: AttnExParams,
  flags: number,
): number {
  return S.spool_attention_ex(
    pool as never,
    P(q),
    P(k),
    P(v),
    P(out),
    p.nTok,
    p.nHead,
    p.nHeadKv,
    p.hdk,
    p.hdv,
    p.kStride,
    p.vStride,
    p.nKv,
    p.pos0,
    p.scale,
    p.window,
    p.sinks ? P(p.sinks) : null,
    flags,
  );
}

/** MLA as DeepSeek-V3 lays it out: rows of 512 latent + 64 rope values, V = the latent. */
function mla(over: Partial<AttnExParams>): AttnExParams {
  const p: AttnExParams = {
    nTok: 1,
    nHead: 16,
    nHeadKv: 1,
    hdk: 576,
    hdv: 512,
    kStride: 576,
    vStride: 576,
    nKv: 1,
    pos0: 0,
    scale: 0,
    window: 0,
    sinks: null,
    ...over,
  };
  if (!p.scale) p.scale = 1 / Math.sqrt(192); // deepseek2: 1/sqrt(n_embd_head_k), 128 + 64
  return p;
}

// Bounds. flags 0: REF and SIMD vs f64 <= 1e-11 (f32 dot products over 576 values and f32
// sums). SPOOL_ATTN_GGML vs the f64 reference with the same two f16 roundings <= 1e-8 (a
// probability whose f16 rounding flips on a last-bit difference moves by 2^-11 relative),
// SIMD vs REF <= 1e-8; vs the unrounded f64 attention <= 1e-5 and > 1e-8 (the roundings are
// really there). Pooled == one thread bit for bit.
Deno.test("attention_ex: MLA (576/512, v = the latent prefix of k) vs f64, simd vs ref, threads", () => {
  const rng = new Rng(21);
  const cases: [string, Partial<AttnExParams>][] = [
    ["decode", { nKv: 150, pos0: 149 }],
    ["prefill from 0", { nTok: 6, nKv: 6 }],
    ["prefill pos0>0, cache longer", { nTok: 4, nHead: 8, nKv: 120, pos0: 60 }],
    ["128 heads (chunked group)", { nHead: 128, nKv: 40, pos0: 39 }],
    ["window", { nTok: 3, nHead: 4, nKv: 90, pos0: 80, window: 32 }],
    ["sinks", { nTok: 2, nHead: 4, nKv: 70, pos0: 65 }],
  ];
  const pool = S.spool_pool_create(2);
  try {
    for (const [label, over] of cases) {
      const p = mla(over);
      if (label === "sinks") p.sinks = rng.f32(p.nHead, 2);
      const q = rng.f32(p.nTok * p.nHead * p.hdk, 0.5);
      const kv = toF16(rng.f32(p.nKv * p.kStride));
      const plain = attentionExRef(q, kv, kv, p);
      for (const flags of [0, ATTN_GGML]) {
        const mode = flags ? "ggml" : "f32";
        const want = flags ? attentionExRef(q, kv, kv, p, true) : plain;
        const bound = flags ? 1e-8 : 1e-11;
        const outs: Float32Array[] = [];
        for (const [name, impl] of impls) {
          const out = new Float32Array(p.nTok * p.nHead * p.hdv);
          withImpl(impl, () => assertEquals(runEx(null, q, kv, kv, out, p, flags), 0));
          assertNmse(out, want, bound, `mla ${label} ${mode} ${name} vs f64`);
          if (flags) {
            const e = nmse(out, plain);
            if (verbose) console.log(`mla ${label} ggml ${name} vs unrounded: ${e}`);
            assert(e > 1e-8 && e < 1e-5, `mla ${label} ggml ${name}: ${e} vs unrounded f64`);
          }
          const outT = new Float32Array(out.length);
          withImpl(impl, () => assertEquals(runEx(pool as never, q, kv, kv, outT, p, flags), 0));
          assertEquals(outT, out, `mla ${label} ${mode} ${name}: 2 threads == 1 thread`);
          outs.push(out);
        }
        if (outs.length > 1) {
          assertNmse(outs[1], outs[0], bound, `mla ${label} ${mode} simd vs ref`);
        }
      }
    }
  } finally {
    S.spool_pool_destroy(pool);
  }
});

Deno.test("attention_ex: v aliasing k equals a separate copy of the latent prefix", () => {
  const rng = new Rng(22);
  const p = mla({ nTok: 3, nHead: 8, nKv: 50, pos0: 47 });
  const q = rng.f32(p.nTok * p.nHead * p.hdk, 0.5);
  const kv = toF16(rng.f32(p.nKv * p.kStride));
  const v = new Uint16Array(p.nKv * p.hdv);
  for (let j = 0; j < p.nKv; j++) v.set(kv.subarray(j * 576, j * 576 + 512), j * 512);
  for (const [, impl] of impls) {
    for (const flags of [0, ATTN_GGML]) {
      const a = new Float32Array(p.nTok * p.nHead * p.hdv), b = a.slice();
      withImpl(impl, () => {
        assertEquals(runEx(null, q, kv, kv, a, p, flags), 0);
        assertEquals(runEx(null, q, kv, v, b, { ...p, vStride: 512 }, flags), 0);
      });
      assertEquals(a, b);
    }
  }
});

Deno.test("attention_ex: GQA with padded rows and a separate V of another size vs f64", () => {
  const rng = new Rng(23);
  // DeepSeek-V2-style MHA without absorption (k 192, v 128 per head), and a GQA layout whose
  // rows carry padding; odd head sizes take the reference path inside the SIMD build
  const cases: [string, Partial<AttnExParams>][] = [
    ["mha 192/128", { nTok: 3, nHead: 4, nHeadKv: 4, hdk: 192, hdv: 128, nKv: 80, pos0: 77 }],
    ["gqa padded", { nTok: 2, nHead: 8, nHeadKv: 2, hdk: 64, hdv: 32, nKv: 60, pos0: 58 }],
    ["odd sizes", { nTok: 2, nHead: 4, nHeadKv: 2, hdk: 36, hdv: 20, nKv: 30, pos0: 28 }],
  ];
  for (const [label, over] of cases) {
    const base = mla(over);
    const pad = label === "gqa padded" ? 24 : 0;
    const p = {
      ...base,
      kStride: base.nHeadKv * base.hdk + pad,
      vStride: base.nHeadKv * base.hdv + pad,
      scale: 1 / Math.sqrt(base.hdk),
    };
    const q = rng.f32(p.nTok * p.nHead * p.hdk, 0.5);
    const k = toF16(rng.f32(p.nKv * p.kStride)), v = toF16(rng.f32(p.nKv * p.vStride));
    for (const flags of [0, ATTN_GGML]) {
      const want = attentionExRef(q, k, v, p, flags === ATTN_GGML);
      for (const [name, impl] of impls) {
        const out = new Float32Array(p.nTok * p.nHead * p.hdv);
        withImpl(impl, () => assertEquals(runEx(null, q, k, v, out, p, flags), 0));
        assertNmse(out, want, flags ? 1e-8 : 1e-11, `${label} flags ${flags} ${name} vs f64`);
      }
    }
  }
});

Deno.test("attention_ex: the same bits as spool_attention where the layouts coincide", () => {
  const rng = new Rng(24);
  const [nTok, nHead, nHeadKv, hd, nKv, pos0] = [4, 8, 2, 64, 100, 96];
  const q = rng.f32(nTok * nHead * hd);
  const k = toF16(rng.f32(nKv * nHeadKv * hd)), v = toF16(rng.f32(nKv * nHeadKv * hd));
  const sinks = rng.f32(nHead);
  for (const [, impl] of impls) {
    for (const flags of [0, ATTN_GGML]) {
      const a = new Float32Array(nTok * nHead * hd), b = a.slice();
      withImpl(impl, () => {
        assertEquals(
          S.spool_attention(
            null,
            P(q),
            P(k),
            P(v),
            P(a),
            nTok,
            nHead,
            nHeadKv,
            hd,
            nKv,
            pos0,
            0.125,
            16,
            P(sinks),
            flags,
          ),
          0,
        );
        const p: AttnExParams = {
          nTok,
          nHead,
          nHeadKv,
          hdk: hd,
          hdv: hd,
          kStride: nHeadKv * hd,
          vStride: nHeadKv * hd,
          nKv,
          pos0,
          scale: 0.125,
          window: 16,
          sinks,
        };
        assertEquals(runEx(null, q, k, v, b, p, flags), 0);
      });
      assertEquals(b, a);
    }
  }
});

Deno.test("attention_ex: MLA past SPOOL_ATTN_GGML_SCORES keys (scores recomputed) vs f64", () => {
  const rng = new Rng(25);
  const p = mla({ nTok: 1, nHead: 2, nKv: 33000, pos0: 32999 });
  const q = rng.f32(p.nHead * p.hdk, 0.2);
  // 19 M cache values: tiles of 4099 random f16 values, cheaper than 19 M normal draws
  const tile = toF16(rng.f32(4099));
  const kv = new Uint16Array(p.nKv * p.kStride);
  for (let i = 0; i < kv.length; i += tile.length) kv.set(tile.subarray(0, kv.length - i), i);
  const want = attentionExRef(q, kv, kv, p, true);
  for (const [name, impl] of impls) {
    const out = new Float32Array(p.nHead * p.hdv);
    withImpl(impl, () => assertEquals(runEx(null, q, kv, kv, out, p, ATTN_GGML), 0));
    assertNmse(out, want, 1e-8, `mla 33000 keys ggml ${name} vs f64`);
  }
});

Deno.test("attention_ex: statuses", () => {
  const q = new Float32Array(4096), out = new Float32Array(4096), kv = new Uint16Array(4096);
  const run = (o: Partial<AttnExParams>, flags = 0) =>
    runEx(null, q, kv, kv, out, mla({ nHead: 2, nKv: 4, pos0: 3, ...o }), flags);
  assertEquals(run({}), Status.OK);
  assertEquals(run({}, ATTN_GGML), Status.OK);
  assertEquals(run({}, 2), Status.INVALID);
  assertEquals(run({ kStride: 575 }), Status.INVALID); // below one key row
  assertEquals(run({ vStride: 511 }), Status.INVALID);
  assertEquals(run({ hdv: 0 }), Status.INVALID);
  assertEquals(run({ nHead: 3, nHeadKv: 2, kStride: 1152, vStride: 1152 }), Status.INVALID);
  assertEquals(run({ hdk: 1025, kStride: 1025 }), Status.RANGE);
  assertEquals(run({ pos0: 4 }), Status.RANGE); // pos0 + n_tok > n_kv
  assertEquals(run({ nTok: 0 }), Status.OK);
  assertEquals(
    S.spool_attention_ex(
      null,
      null,
      P(kv),
      P(kv),
      P(out),
      1,
      1,
      1,
      8,
      8,
      8,
      8,
      1,
      0,
      1,
      0,
      null,
      0,
    ),
    Status.INVALID,
  );
});

Deno.test("rope inside MLA rows: a pointer offset to the roped part, head_dim the row size", () => {
  // deepseek2 ropes q_pe (the last 64 of each head's 192 q values) and k_pe (the last 64 of
  // each 576-value latent row) with NORMAL pairs: spool_rope on the address of the first
  // roped value with head_dim = the full row rotates exactly those 64 values per head
  const rng = new Rng(27);
  const [nTok, nHead] = [3, 4];
  const pos = Int32Array.from([0, 5, 900]);
  const rope = (x: Float32Array, nh: number, hd: number) =>
    S.spool_rope(P(x), P(pos), nTok, nh, hd, 64, 0, 10000, 0.25, 1, 1.2, 32, 1, 4096, null);
  for (const [nh, hd, off] of [[nHead, 192, 128], [1, 576, 512]]) {
    const row = rng.f32(nTok * nh * hd);
    const pe = new Float32Array(nTok * nh * 64);
    for (let i = 0; i < nTok * nh; i++) {
      pe.set(row.subarray(i * hd + off, i * hd + off + 64), i * 64);
    }
    const inPlace = row.slice();
    assertEquals(rope(inPlace.subarray(off), nh, hd), 0);
    assertEquals(rope(pe, nh, 64), 0);
    for (let i = 0; i < nTok * nh; i++) {
      assertEquals(
        inPlace.subarray(i * hd + off, i * hd + off + 64),
        pe.subarray(i * 64, i * 64 + 64),
      );
      assertEquals(inPlace.subarray(i * hd, i * hd + off), row.subarray(i * hd, i * hd + off));
    }
  }
});

// ---- group-limited routing --------------------------------------------------------------

function runGroups(
  logits: Float32Array,
  bias: Float32Array | null,
  nTok: number,
  nExp: number,
  k: number,
  gating: number,
  norm: boolean,
  scale: number,
  nGroup: number,
  nGroupUsed: number,
) {
  const ids = new Int32Array(nTok * k), w = new Float32Array(nTok * k);
  const st = S.spool_topk_route_groups(
    P(logits),
    bias ? P(bias) : null,
    nTok,
    nExp,
    k,
    gating,
    norm ? 1 : 0,
    scale,
    nGroup,
    nGroupUsed,
    P(ids),
    P(w),
  );
  return { st, ids, w };
}

Deno.test("topk_route_groups: DeepSeek-V3 / V2 shapes vs f64; ids in kept groups; groups matter", () => {
  const rng = new Rng(26);
  const nTok = 24;
  // [n_expert, k, n_group, n_group_used, gating, norm, scale, bias]
  const shapes: [number, number, number, number, number, boolean, number, boolean][] = [
    [256, 8, 8, 4, 1, true, 2.5, true], // DeepSeek-V3: sigmoid + bias, norm, routed scale
    [160, 6, 8, 3, 0, false, 16, false], // DeepSeek-V2: softmax, no norm
    [64, 6, 8, 3, 1, true, 1, true],
    [64, 4, 4, 1, 2, false, 1, false], // softmax over the k, one group kept
    [48, 8, 4, 4, 1, true, 1.5, true], // every group kept: plain top-k
  ];
  for (const [nExp, k, nGroup, nUsed, gating, norm, scale, useBias] of shapes) {
    const logits = rng.f32(nTok * nExp, 2);
    const bias = useBias ? rng.f32(nExp, 0.5) : null;
    const r = runGroups(logits, bias, nTok, nExp, k, gating, norm, scale, nGroup, nUsed);
    assertEquals(r.st, 0);
    const plain = new Int32Array(nTok * k), pw = new Float32Array(nTok * k);
    assertEquals(
      S.spool_topk_route(
        P(logits),
        bias ? P(bias) : null,
        nTok,
        nExp,
        k,
        gating,
        norm ? 1 : 0,
        scale,
        P(plain),
        P(pw),
      ),
      0,
    );
    const per = nExp / nGroup;
    let differs = 0;
    for (let t = 0; t < nTok; t++) {
      const row = logits.subarray(t * nExp, (t + 1) * nExp);
      const want = routeRef(row, bias, k, gating, norm, scale, nGroup, nUsed);
      const got = Array.from(r.ids.subarray(t * k, (t + 1) * k));
      assertEquals(got, want.ids, `shape ${nExp}/${nGroup}/${nUsed} token ${t}`);
      for (let i = 0; i < k; i++) {
        const d = Math.abs(r.w[t * k + i] - want.weights[i]);
        assert(d <= 1e-6 * Math.max(1, scale), `weight ${r.w[t * k + i]} vs ${want.weights[i]}`);
      }
      assert(new Set(got.map((e) => Math.floor(e / per))).size <= nUsed);
      if (got.join() !== Array.from(plain.subarray(t * k, (t + 1) * k)).join()) differs++;
    }
    if (nUsed === nGroup) {
      assertEquals(r.ids, plain); // nothing masked: the plain top-k, bit for bit
      assertEquals(r.w, pw);
    } else {
      assert(differs > 0, `shape ${nExp}/${nGroup}/${nUsed}: the group limit never mattered`);
    }
  }
});

Deno.test("topk_route_groups: groups rank by their two best scores, not their best", () => {
  // 4 groups of 4 (sigmoid of the logits; no bias). Group 0 holds the single best expert
  // (logit 6) but nothing else; group 2 has two good ones (3, 3): top-2 sums 0.997+0.018 vs
  // 0.953+0.953, so one kept group means group 2, and expert 0 is not chosen.
  const logits = new Float32Array([6, -4, -4, -4, 0, 0, -5, -5, 3, 3, -6, -6, 1, -3, -3, -3]);
  const one = runGroups(logits, null, 1, 16, 2, 1, false, 1, 4, 1);
  assertEquals(one.st, 0);
  assertEquals(Array.from(one.ids), [8, 9]);
  // two kept groups: 2 (1.905) and 1 (1.0); group 0 (1.015) beats group 1 -> groups 2 and 0
  const two = runGroups(logits, null, 1, 16, 3, 1, false, 1, 4, 2);
  assertEquals(Array.from(two.ids), [0, 8, 9]);
  // a selection bias counts in the group score (and the choice) but not in the weights
  const bias = new Float32Array(16);
  bias[12] = 2;
  const b = runGroups(logits, bias, 1, 16, 1, 1, false, 1, 4, 1);
  assertEquals(Array.from(b.ids), [12]);
  assert(Math.abs(b.w[0] - 1 / (1 + Math.exp(-1))) < 1e-7);
});

Deno.test("topk_route: norm divides by the f32 sum clamped to 2^-14, as llama.cpp", () => {
  // sigmoid(-14) ≈ 8.3e-7: two of them sum far below 6.1e-5, so the weights stay tiny
  const logits = new Float32Array([-14, -14.5, -20, -30]);
  const ids = new Int32Array(2), w = new Float32Array(2);
  for (const grouped of [false, true]) {
    const st = grouped
      ? S.spool_topk_route_groups(P(logits), null, 1, 4, 2, 1, 1, 1, 2, 1, P(ids), P(w))
      : S.spool_topk_route(P(logits), null, 1, 4, 2, 1, 1, 1, P(ids), P(w));
    assertEquals(st, 0);
    assertEquals(Array.from(ids), [0, 1]);
    const s0 = 1 / (1 + Math.exp(14)), s1 = 1 / (1 + Math.exp(14.5));
    assert(Math.abs(w[0] - s0 / 6.103515625e-5) < 1e-6, `w0 ${w[0]}`);
    assert(Math.abs(w[1] - s1 / 6.103515625e-5) < 1e-6, `w1 ${w[1]}`);
  }
});

Deno.test("topk_route_groups: statuses", () => {
  const x = new Float32Array(64), ids = new Int32Array(64), w = new Float32Array(64);
  const run = (nExp: number, k: number, nGroup: number, nUsed: number, gating = 1) =>
    S.spool_topk_route_groups(P(x), null, 1, nExp, k, gating, 1, 1, nGroup, nUsed, P(ids), P(w));
  assertEquals(run(64, 8, 8, 4), Status.OK);
  assertEquals(run(64, 8, 1, 1), Status.OK);
  assertEquals(run(64, 8, 8, 9), Status.RANGE); // more groups used than exist
  assertEquals(run(64, 33, 8, 4), Status.RANGE); // k beyond the kept experts (32)
  assertEquals(run(64, 8, 7, 4), Status.INVALID); // 64 experts do not split into 7 groups
  assertEquals(run(8, 2, 8, 4), Status.INVALID); // one expert per group: no top-2
  assertEquals(run(64, 8, 0, 0), Status.INVALID);
  assertEquals(run(64, 8, 8, 4, 3), Status.INVALID);
  assertEquals(
    S.spool_topk_route_groups(null, null, 1, 64, 8, 1, 1, 1, 8, 4, P(ids), P(w)),
    Status.INVALID,
  );
});
