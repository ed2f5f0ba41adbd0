/**
 * Batch invariance of the kernels a forward step runs: a token's (a row's) result must be the
 * same bits whether it is computed alone or together with other tokens, at any place among
 * them, with or without a pool of 1 or 2 threads, under REF and the SIMD implementation.
 * This is what makes batched greedy answers independent of which requests share a step
 * (continuous batching, a batch job resumed after a kill): one step runs the rows of every
 * sequence through the same products, and attention per sequence in chunks that depend on
 * the scheduling.
 *
 * - spool_matmul: every weight type (F32, F16, BF16, Q4_0, Q4_1, Q8_0, MXFP4, Q4_K, Q5_K,
 *   Q6_K), both activation modes, a small matrix and one whose activations span several
 *   token tiles (the tile kernels and the single-row path both occur), 2..33 tokens.
 * - spool_moe_ffn: token t alone against t among 2..33 tokens routed anywhere, including
 *   float experts of an FFN width that is not a multiple of the SIMD width.
 * - spool_attention: a sequence's queries in chunks of 1..40 from any position (plain and
 *   ggml modes, sliding window) against one query at a time.
 * - Row ops over n rows against each row alone: rmsnorm, silu, swiglu, f32 -> f16, rope,
 *   top-k routing. silu and swiglu used to finish the last width % 8 values of the whole
 *   array with libm's expf instead of the vector exp: a row's last values then depended on
 *   how many rows were in the call (this test failed for widths 36 and 100, and for the
 *   F32 MoE of width 36, before that was fixed).
 */
import { equal } from "node:assert/strict";
import { check, Impl, native, type Ptr, Status } from "../../ffi/mod.ts";
import { quantize, QuantType as T } from "../../runtime/gguf/quantize.ts";
import { normal, rng } from "./_ops_ref.ts";

const nat = native();
const S = nat.sym;
const P = (a: ArrayBufferView) => nat.ptr(a);
const ACT_F32 = 0, ACT_Q8 = 1;
const SWIGLU = 16, SWIGLU_OAI = 17;

const simd = [Impl.AVX2, Impl.NEON].find((i) => {
  const ok = S.spool_set_impl(i) === Status.OK;
  S.spool_set_impl(Impl.AUTO);
  return ok;
});
const IMPLS: [string, number][] = [["ref", Impl.REF]];
if (simd !== undefined) IMPLS.push([simd === Impl.AVX2 ? "avx2" : "neon", simd]);

function withImpl<R>(impl: number, f: () => R): R {
  equal(S.spool_set_impl(impl), Status.OK);
  try {
    return f();
  } finally {
    S.spool_set_impl(Impl.AUTO);
  }
}

/** Tokens in the tests; batches are windows of these. */
const NT = 33;
const SIZES = [2, 3, 4, 5, 8, 17, 33];
/** A window of b tokens (b <= NT) whose place depends on b, so tokens sit anywhere. */
const start = (b: number) => (b * 5) % (NT - b + 1);

/** Pools: none (the caller alone), one thread, two threads. */
function withPools(f: (pool: Ptr | null, name: string) => void): void {
  const p1 = S.spool_pool_create(1), p2 = S.spool_pool_create(2);
  try {
    f(null, "no pool");
    f(p1, "1 thread");
    f(p2, "2 threads");
  } finally {
    S.spool_pool_destroy(p1);
    S.spool_pool_destroy(p2);
  }
}

function randn(r: () => number, n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = normal(r) * scale;
  return a;
}

/** `got` has the bits of the start of `want` (its byte length); else an error naming `what`. */
function sameBits(got: ArrayBufferView, want: ArrayBufferView, what: string): void {
  const g = new Uint8Array(got.buffer, got.byteOffset, got.byteLength);
  const w = new Uint8Array(want.buffer, want.byteOffset, got.byteLength);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) throw new Error(`${what}: byte ${i} differs from the token alone`);
  }
}

const TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q8_0, T.MXFP4, T.Q4_K, T.Q5_K, T.Q6_K];
const tname = (t: number) => Object.entries(T).find(([, v]) => v === t)![0];
const isFloat = (t: number) => t === T.F32 || t === T.F16 || t === T.BF16;

function matmul(
  pool: Ptr | null,
  type: number,
  w: Uint8Array,
  rows: number,
  cols: number,
  x: Float32Array,
  n: number,
  act: number,
): Float32Array {
  const y = new Float32Array(n * rows);
  const need = S.spool_matmul_scratch_bytes(type, cols, n, act);
  const scratch = new Uint8Array(Math.max(64, need));
  check(
    S.spool_matmul(pool as never, type, P(w), rows, cols, P(x), n, P(y), act, P(scratch)),
    "spool_matmul",
  );
  return y;
}

Deno.test("spool_matmul: a token's row is the same bits alone or among 2..33 tokens", () => {
  const r = rng(11);
  // 64 x 2048: a Q8_0/Q8_K activation row is over 2 KiB, so 17 and 33 tokens span several
  // L1 token tiles of the tile kernels, and the f32 path's 33 tokens two L2 tiles
  for (const [rows, cols] of [[37, 256], [64, 2048]]) {
    const x = randn(r, NT * cols, 1);
    for (const type of TYPES) {
      const w = quantize(type, randn(r, rows * cols, 1 / Math.sqrt(cols)), rows, cols);
      for (const act of isFloat(type) ? [ACT_F32] : [ACT_Q8, ACT_F32]) {
        for (const [iname, impl] of IMPLS) {
          withImpl(impl, () => {
            const alone = new Float32Array(NT * rows);
            for (let t = 0; t < NT; t++) {
              const xt = x.subarray(t * cols, (t + 1) * cols);
              alone.set(matmul(null, type, w, rows, cols, xt, 1, act), t * rows);
            }
            withPools((pool, pname) => {
              for (const b of SIZES) {
                const s = start(b);
                const xb = x.subarray(s * cols, (s + b) * cols);
                sameBits(
                  matmul(pool, type, w, rows, cols, xb, b, act),
                  alone.subarray(s * rows),
                  `${tname(type)} ${rows}x${cols} act ${act} ${iname} ${pname}: ${b} tokens`,
                );
              }
            });
          });
        }
      }
    }
  }
});

/** nExpert matrices of rows x cols, back to back, and their address table. */
function experts(r: () => number, type: number, nExpert: number, rows: number, cols: number) {
  const bytes = quantize(
    type,
    randn(r, nExpert * rows * cols, 1 / Math.sqrt(cols)),
    nExpert * rows,
    cols,
  );
  const per = bytes.length / nExpert;
  const base = BigInt(nat.address(P(bytes)));
  const table = BigUint64Array.from({ length: nExpert }, (_, e) => base + BigInt(e * per));
  return { type, bytes, table };
}

interface MoeCase {
  types: [number, number, number];
  nEmbd: number;
  nFf: number;
  nExpert: number;
  k: number;
  act: number;
}

function moeCase(c: MoeCase, seed: number) {
  const r = rng(seed);
  const ids = new Int32Array(NT * c.k), wts = new Float32Array(NT * c.k);
  for (let t = 0; t < NT; t++) {
    const order = Array.from({ length: c.nExpert }, (_, i) => i);
    for (let i = c.nExpert - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let j = 0; j < c.k; j++) {
      ids[t * c.k + j] = order[j];
      wts[t * c.k + j] = 0.05 + r();
    }
  }
  return {
    x: randn(r, NT * c.nEmbd, 1),
    ids,
    wts,
    gate: experts(r, c.types[0], c.nExpert, c.nFf, c.nEmbd),
    up: experts(r, c.types[1], c.nExpert, c.nFf, c.nEmbd),
    down: experts(r, c.types[2], c.nExpert, c.nEmbd, c.nFf),
  };
}

/** spool_moe_ffn over tokens [s, s + n) of case `m`. */
function moe(pool: Ptr | null, c: MoeCase, m: ReturnType<typeof moeCase>, s: number, n: number) {
  const { nEmbd: E, nFf: F, nExpert: X, k: K } = c;
  const y = new Float32Array(n * E);
  const need = S.spool_moe_scratch_bytes(c.types[0], c.types[1], c.types[2], E, F, X, n, K);
  const scratch = new Uint8Array(need);
  check(
    S.spool_moe_ffn(
      pool as never,
      P(m.x.subarray(s * E, (s + n) * E)),
      n,
      E,
      F,
      X,
      K,
      P(m.ids.subarray(s * K, (s + n) * K)),
      P(m.wts.subarray(s * K, (s + n) * K)),
      P(m.gate.table),
      c.types[0],
      P(m.up.table),
      c.types[1],
      P(m.down.table),
      c.types[2],
      null,
      null,
      null,
      c.act,
      P(y),
      P(scratch),
    ),
    "spool_moe_ffn",
  );
  return y;
}

Deno.test("spool_moe_ffn: a token's output is the same bits alone or among 2..33 tokens", () => {
  const cases: MoeCase[] = [
    { types: [T.Q8_0, T.Q8_0, T.Q8_0], nEmbd: 256, nFf: 256, nExpert: 4, k: 2, act: SWIGLU },
    { types: [T.Q4_K, T.Q4_K, T.Q6_K], nEmbd: 256, nFf: 512, nExpert: 8, k: 4, act: SWIGLU },
    { types: [T.Q5_K, T.Q5_K, T.Q8_0], nEmbd: 256, nFf: 256, nExpert: 16, k: 8, act: SWIGLU },
    { types: [T.Q4_0, T.Q4_1, T.Q4_0], nEmbd: 128, nFf: 96, nExpert: 8, k: 2, act: SWIGLU },
    { types: [T.MXFP4, T.MXFP4, T.MXFP4], nEmbd: 128, nFf: 64, nExpert: 8, k: 4, act: SWIGLU_OAI },
    // float experts of a width that is not a multiple of 8 (nor 4): the activation's tail
    { types: [T.F32, T.F32, T.F32], nEmbd: 64, nFf: 36, nExpert: 4, k: 2, act: SWIGLU },
    { types: [T.BF16, T.F16, T.F32], nEmbd: 64, nFf: 100, nExpert: 6, k: 3, act: SWIGLU },
  ];
  for (const [ci, c] of cases.entries()) {
    const m = moeCase(c, 100 + ci);
    const what = `${c.types.map(tname).join("/")} ${c.nEmbd}x${c.nFf} k ${c.k}/${c.nExpert}`;
    for (const [iname, impl] of IMPLS) {
      withImpl(impl, () => {
        const alone = new Float32Array(NT * c.nEmbd);
        for (let t = 0; t < NT; t++) alone.set(moe(null, c, m, t, 1), t * c.nEmbd);
        withPools((pool, pname) => {
          for (const b of SIZES) {
            const s = start(b);
            sameBits(
              moe(pool, c, m, s, b),
              alone.subarray(s * c.nEmbd),
              `${what} ${iname} ${pname}: ${b} tokens`,
            );
          }
        });
      });
    }
  }
});

Deno.test("spool_attention: a query's output is the same bits in any chunk of its sequence", () => {
  const r = rng(23);
  const L = 40;
  for (const [nHead, nKv, hd, window] of [[4, 2, 64, 0], [4, 2, 64, 16], [8, 1, 128, 0]]) {
    const q = randn(r, L * nHead * hd, 1);
    const k = new Uint16Array(L * nKv * hd), v = new Uint16Array(L * nKv * hd);
    check(S.spool_f32_to_f16(P(randn(r, k.length, 1)), P(k), k.length), "f16");
    check(S.spool_f32_to_f16(P(randn(r, v.length, 1)), P(v), v.length), "f16");
    const row = nHead * hd;
    const attend = (pool: Ptr | null, s: number, n: number, flags: number) => {
      const out = new Float32Array(n * row);
      check(
        S.spool_attention(
          pool as never,
          P(q.subarray(s * row, (s + n) * row)),
          P(k),
          P(v),
          P(out),
          n,
          nHead,
          nKv,
          hd,
          s + n,
          s,
          1 / Math.sqrt(hd),
          window,
          null,
          flags,
        ),
        "spool_attention",
      );
      return out;
    };
    for (const flags of [0, 1]) {
      for (const [iname, impl] of IMPLS) {
        withImpl(impl, () => {
          const alone = new Float32Array(L * row);
          for (let t = 0; t < L; t++) alone.set(attend(null, t, 1, flags), t * row);
          withPools((pool, pname) => {
            for (const n of [2, 3, 5, 16, 17, 40]) {
              for (const s of [0, 7, L - n].filter((s) => s >= 0 && s + n <= L)) {
                sameBits(
                  attend(pool, s, n, flags),
                  alone.subarray(s * row),
                  `${nHead}/${nKv} heads of ${hd}, window ${window}, flags ${flags} ${iname} ` +
                    `${pname}: ${n} queries from ${s}`,
                );
              }
            }
          });
        });
      }
    }
  }
});

/** `op` over rows [s, s + n) at once equals `op` row by row. */
function rowsTogether<A extends Float32Array | Uint16Array | Int32Array>(
  width: number,
  alloc: (n: number) => A,
  op: (s: number, n: number, out: A) => void,
  what: string,
): void {
  const alone = alloc(NT * width);
  for (let t = 0; t < NT; t++) op(t, 1, alone.subarray(t * width, (t + 1) * width) as A);
  for (const b of SIZES) {
    const s = start(b);
    const got = alloc(b * width);
    op(s, b, got);
    sameBits(got, alone.subarray(s * width), `${what}: ${b} rows`);
  }
}

Deno.test("row ops: rmsnorm, silu, swiglu, f16, rope, routing over n rows equal each row alone", () => {
  const r = rng(31);
  const f32 = (n: number) => new Float32Array(n);
  for (const [iname, impl] of IMPLS) {
    withImpl(impl, () => {
      // widths not a multiple of 8 put a row's end anywhere in a SIMD vector
      for (const w of [36, 64, 100, 256]) {
        const x = randn(r, NT * w, 2), u = randn(r, NT * w, 1), g = randn(r, w, 1);
        const at = (a: Float32Array, s: number, n: number) => a.subarray(s * w, (s + n) * w);
        rowsTogether(w, f32, (s, n, y) => {
          check(S.spool_rmsnorm(P(at(x, s, n)), P(g), P(y), n, w, 1e-6), "rmsnorm");
        }, `rmsnorm ${w} ${iname}`);
        rowsTogether(w, f32, (s, n, y) => {
          check(S.spool_silu(P(at(x, s, n)), P(y), n * w), "silu");
        }, `silu ${w} ${iname}`);
        rowsTogether(w, f32, (s, n, y) => {
          check(S.spool_swiglu(P(at(x, s, n)), P(at(u, s, n)), P(y), n * w), "swiglu");
        }, `swiglu ${w} ${iname}`);
        rowsTogether(w, (n) => new Uint16Array(n), (s, n, y) => {
          check(S.spool_f32_to_f16(P(at(x, s, n)), P(y), n * w), "f32_to_f16");
        }, `f32 -> f16 ${w} ${iname}`);
      }
      for (const mode of [0, 2]) {
        const nHead = 4, hd = 64, w = nHead * hd;
        const x = randn(r, NT * w, 1);
        const pos = Int32Array.from({ length: NT }, (_, t) => 3 + 7 * t);
        rowsTogether(w, f32, (s, n, y) => {
          y.set(x.subarray(s * w, (s + n) * w));
          const p = P(pos.subarray(s, s + n));
          check(
            S.spool_rope(P(y), p, n, nHead, hd, hd, mode, 1e6, 1, 0, 1, 32, 1, 4096, null),
            "rope",
          );
        }, `rope mode ${mode} ${iname}`);
      }
      for (const [nExp, k] of [[4, 2], [16, 4], [128, 8]]) {
        const logits = randn(r, NT * nExp, 1);
        const lg = (s: number, n: number) => P(logits.subarray(s * nExp, (s + n) * nExp));
        const weights = new Float32Array(NT * k);
        rowsTogether(k, (n) => new Int32Array(n), (s, n, ids) => {
          check(
            S.spool_topk_route(lg(s, n), null, n, nExp, k, 0, 1, 1, P(ids), P(weights)),
            "route",
          );
        }, `route ids ${nExp}/${k} ${iname}`);
        rowsTogether(k, f32, (s, n, wts) => {
          const ids = new Int32Array(n * k);
          check(S.spool_topk_route(lg(s, n), null, n, nExp, k, 0, 1, 1, P(ids), P(wts)), "route");
        }, `route weights ${nExp}/${k} ${iname}`);
      }
    });
  }
});
