/**
 * spool_matmul_batched (spool.h ABI 4): n_batch products with their own matrices over
 * strided activations into strided outputs, as MLA's per-head wk_b (q_nope 128 -> latent
 * 512) and wv_b (latent 512 -> v head 128) need.
 *  - every value equals spool_matmul on the batch's matrix and its gathered rows, bit for bit,
 *    on every implementation, with and without a pool, for F32 / F16 / Q8_0 / Q4_K weights
 *    in both activation modes;
 *  - F32 weights with f32 activations against a float64 product, NMSE <= 1e-12;
 *  - values outside the strided outputs are left alone; statuses.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Impl, native, Status } from "../../ffi/mod.ts";
import { nmse, Rng } from "./_ops_ref.ts";

const n = native();
const S = n.sym;
const P = (a: ArrayBufferView) => n.ptr(a);
const simd = [Impl.AVX2, Impl.NEON].find((i) => {
  const ok = S.spool_set_impl(i) === Status.OK;
  S.spool_set_impl(Impl.AUTO);
  return ok;
});
const impls = simd === undefined ? [Impl.REF] : [Impl.REF, simd];
const T = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12 } as const;
const ACT_F32 = 0, ACT_Q8 = 1;

function withImpl<T>(impl: number, fn: () => T): T {
  assertEquals(S.spool_set_impl(impl), Status.OK);
  try {
    return fn();
  } finally {
    S.spool_set_impl(Impl.AUTO);
  }
}

/** n_batch matrices of (rows, cols) in `type`, back to back. */
function weights(rng: Rng, type: number, nBatch: number, rows: number, cols: number) {
  const f = rng.f32(nBatch * rows * cols, 1 / Math.sqrt(cols));
  if (type === T.F32) return { bytes: new Uint8Array(f.buffer), f };
  const rowBytes = (cols / S.spool_type_block_size(type)) * S.spool_type_block_bytes(type);
  const bytes = new Uint8Array(nBatch * rows * rowBytes);
  assertEquals(S.spool_quantize(null, type, P(f), P(bytes), nBatch * rows, cols), 0);
  return { bytes, f };
}

interface Layout {
  rows: number;
  cols: number;
  nBatch: number;
  nTok: number;
  xTok: number;
  xBatch: number;
  yTok: number;
  yBatch: number;
}

function batched(
  pool: Deno.PointerValue | null,
  type: number,
  w: Uint8Array,
  L: Layout,
  x: Float32Array,
  y: Float32Array,
  act: number,
): number {
  const need = S.spool_matmul_scratch_bytes(type, L.cols, L.nBatch * L.nTok, act);
  const scratch = need > 0 ? new Uint8Array(need) : null;
  return S.spool_matmul_batched(
    pool as never,
    type,
    P(w),
    L.rows,
    L.cols,
    w.length / L.nBatch,
    L.nBatch,
    P(x),
    L.xTok,
    L.xBatch,
    L.nTok,
    P(y),
    L.yTok,
    L.yBatch,
    act,
    scratch ? P(scratch) : null,
  );
}

/** spool_matmul per batch on gathered rows, scattered back into y's layout. */
function perBatch(
  type: number,
  w: Uint8Array,
  L: Layout,
  x: Float32Array,
  y: Float32Array,
  act: number,
) {
  const wb = w.length / L.nBatch;
  for (let b = 0; b < L.nBatch; b++) {
    const xb = new Float32Array(L.nTok * L.cols), yb = new Float32Array(L.nTok * L.rows);
    for (let t = 0; t < L.nTok; t++) {
      const o = b * L.xBatch + t * L.xTok;
      xb.set(x.subarray(o, o + L.cols), t * L.cols);
    }
    const need = S.spool_matmul_scratch_bytes(type, L.cols, L.nTok, act);
    const scratch = need > 0 ? new Uint8Array(need) : null;
    const wv = w.subarray(b * wb, (b + 1) * wb);
    const st = S.spool_matmul(
      null,
      type,
      P(wv),
      L.rows,
      L.cols,
      P(xb),
      L.nTok,
      P(yb),
      act,
      scratch ? P(scratch) : null,
    );
    assertEquals(st, 0);
    for (let t = 0; t < L.nTok; t++) {
      y.set(yb.subarray(t * L.rows, (t + 1) * L.rows), b * L.yBatch + t * L.yTok);
    }
  }
}

// MLA-shaped layouts for 4 heads: absorb (wk_b: x = q_nope, the first 128 of each head's 192
// q values; y = the first 512 of each head's 576-value query row) and decompress (wv_b: x =
// the attention's 512-value latent per head; y = (n_tok, n_head · 128))
const H = 4;
const absorb = (nTok: number): Layout => ({
  rows: 512,
  cols: 128,
  nBatch: H,
  nTok,
  xTok: H * 192,
  xBatch: 192,
  yTok: H * 576,
  yBatch: 576,
});
const decompress = (nTok: number): Layout => ({
  rows: 128,
  cols: 512,
  nBatch: H,
  nTok,
  xTok: H * 512,
  xBatch: 512,
  yTok: H * 128,
  yBatch: 128,
});

Deno.test("matmul_batched: equals spool_matmul per batch, bit for bit (types, acts, pool)", () => {
  const rng = new Rng(31);
  const pool = S.spool_pool_create(2);
  try {
    for (const [name, mk] of [["absorb", absorb], ["decompress", decompress]] as const) {
      for (const nTok of [1, 5]) {
        const L = mk(nTok);
        const x = rng.f32(L.nBatch * L.xBatch + L.nTok * L.xTok);
        for (const type of [T.F32, T.F16, T.Q8_0, T.Q4_K]) {
          if (L.cols % S.spool_type_block_size(type) !== 0) continue; // Q4_K needs 256
          const { bytes } = weights(rng, type, L.nBatch, L.rows, L.cols);
          for (const act of [ACT_F32, ACT_Q8]) {
            for (const impl of impls) {
              const size = L.nBatch * L.yBatch + L.nTok * L.yTok;
              const want = new Float32Array(size).fill(7), got = want.slice(), gotP = want.slice();
              withImpl(impl, () => {
                perBatch(type, bytes, L, x, want, act);
                assertEquals(batched(null, type, bytes, L, x, got, act), 0);
                assertEquals(batched(pool as never, type, bytes, L, x, gotP, act), 0);
              });
              const what = `${name} t${nTok} type ${type} act ${act} impl ${impl}`;
              assertEquals(got, want, what);
              assertEquals(gotP, want, `${what} pooled`);
            }
          }
        }
      }
    }
  } finally {
    S.spool_pool_destroy(pool);
  }
});

Deno.test("matmul_batched: F32 weights vs float64; untouched gaps keep their values", () => {
  const rng = new Rng(32);
  const L = absorb(3);
  const x = rng.f32(L.nBatch * L.xBatch + L.nTok * L.xTok);
  const { bytes, f } = weights(rng, T.F32, L.nBatch, L.rows, L.cols);
  for (const impl of impls) {
    const y = new Float32Array(L.nTok * L.yTok).fill(-3);
    withImpl(impl, () => assertEquals(batched(null, T.F32, bytes, L, x, y, ACT_F32), 0));
    const got: number[] = [], want: number[] = [];
    for (let t = 0; t < L.nTok; t++) {
      for (let b = 0; b < L.nBatch; b++) {
        for (let r = 0; r < L.rows; r++) {
          let s = 0;
          for (let c = 0; c < L.cols; c++) {
            s += f[(b * L.rows + r) * L.cols + c] * x[b * L.xBatch + t * L.xTok + c];
          }
          want.push(s);
          got.push(y[b * L.yBatch + t * L.yTok + r]);
        }
        // the roped tail of each 576-value query row (512..575) is not written
        const o = t * L.yTok + b * L.yBatch;
        for (let r = L.rows; r < 576; r++) assertEquals(y[o + r], -3);
      }
    }
    const e = nmse(got, want);
    assert(e <= 1e-12, `impl ${impl}: NMSE ${e}`);
  }
});

Deno.test("matmul_batched: a shared matrix (w_batch_bytes 0) and statuses", () => {
  const rng = new Rng(33);
  const [rows, cols, nBatch] = [8, 64, 3];
  const { bytes } = weights(rng, T.Q8_0, 1, rows, cols);
  const x = rng.f32(nBatch * cols), y = new Float32Array(nBatch * rows);
  const scratch = new Uint8Array(S.spool_matmul_scratch_bytes(T.Q8_0, cols, nBatch, ACT_Q8));
  const run = (o: Partial<Record<string, number>> = {}, sc: Uint8Array | null = scratch) =>
    S.spool_matmul_batched(
      null,
      o.type ?? T.Q8_0,
      P(bytes),
      o.rows ?? rows,
      o.cols ?? cols,
      o.wb ?? 0,
      o.nBatch ?? nBatch,
      P(x),
      o.xTok ?? cols,
      o.xBatch ?? cols,
      1,
      P(y),
      rows,
      rows,
      o.act ?? ACT_Q8,
      sc ? P(sc) : null,
    );
  assertEquals(run(), 0);
  // one matrix for all three batches: the same as one spool_matmul over 3 tokens
  const want = new Float32Array(nBatch * rows);
  assertEquals(
    S.spool_matmul(null, T.Q8_0, P(bytes), rows, cols, P(x), nBatch, P(want), ACT_Q8, P(scratch)),
    0,
  );
  assertEquals(y, want);
  assertEquals(run({}, null), Status.INVALID); // Q8 activations need the scratch
  assertEquals(run({ cols: 48 }), Status.INVALID); // not a multiple of 32
  assertEquals(run({ xTok: -1 }), Status.INVALID);
  assertEquals(run({ wb: 0.5 }), Status.INVALID);
  assertEquals(run({ act: 7 }), Status.INVALID);
  assertEquals(run({ type: 5 }), Status.TYPE);
  assertEquals(run({ nBatch: 0 }), Status.OK);
  assertEquals(run({ act: ACT_F32 }, null), Status.OK); // f32 activations need none
});
