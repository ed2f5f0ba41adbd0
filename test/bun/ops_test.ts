/**
 * Bun leg of the kernel and native-memory tests: a representative subset of
 * test/kernels/ops_test.ts and ffi/memory_test.ts through bun:ffi (pointers are numbers
 * there), including mmap through MappedFile.
 *
 *   ./node_modules/.bin/bun test test/bun/ops_test.ts
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ABI_VERSION, Impl, native, Status } from "../../ffi/mod.ts";
import {
  DirectReader,
  IOError,
  MappedFile,
  NativeBuffer,
  openFile,
  readAt,
} from "../../ffi/memory.ts";
import {
  attentionExRef,
  attentionRef,
  type AttnExParams,
  type AttnParams,
  f16ToF32Bits,
  nmse,
  rmsnormRef,
  Rng,
  type RopeParams,
  ropeRef,
  routeRef,
  softmaxRef,
  toF16,
} from "../kernels/_ops_ref.ts";

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

test("runtime is bun and the library loads", () => {
  expect(n.runtime).toBe("bun");
  expect(S.spool_abi_version()).toBe(ABI_VERSION);
});

test("rmsnorm and softmax vs f64 on every implementation", () => {
  const rng = new Rng(11);
  const x = rng.f32(3 * 1000, 2), w = rng.f32(1000, 0.3).map((v) => v + 1);
  for (const impl of impls) {
    const y = new Float32Array(3000);
    withImpl(impl, () => expect(S.spool_rmsnorm(P(x), P(w), P(y), 3, 1000, 1e-5)).toBe(0));
    expect(nmse(y, rmsnormRef(x, w, 3, 1000, 1e-5))).toBeLessThan(1e-12);
    const s = x.slice();
    withImpl(impl, () => expect(S.spool_softmax(P(s), 3, 1000)).toBe(0));
    expect(nmse(s, softmaxRef(x, 3, 1000))).toBeLessThan(1e-12);
  }
});

test("f16 -> f32 for all 65536 values is bit-exact", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const want = Uint32Array.from(all, f16ToF32Bits);
  for (const impl of impls) {
    const f = new Float32Array(65536);
    withImpl(impl, () => S.spool_f16_to_f32(P(all), P(f), 65536));
    expect(new Uint32Array(f.buffer)).toEqual(want);
  }
});

test("rope neox with YaRN and normal with freq_factors vs f64", () => {
  const rng = new Rng(12);
  const base: RopeParams = {
    nTok: 3,
    nHead: 2,
    headDim: 64,
    nRot: 64,
    mode: 2,
    freqBase: 10000,
    freqScale: 0.25,
    extFactor: 1,
    attnFactor: 1,
    betaFast: 32,
    betaSlow: 1,
    nCtxOrig: 4096,
    freqFactors: null,
  };
  const pos = Int32Array.from([0, 7, 9000]);
  const ff = Float32Array.from({ length: 32 }, (_, i) => 1 + i / 4);
  for (const p of [base, { ...base, mode: 0, extFactor: 0, freqScale: 1, freqFactors: ff }]) {
    const x = rng.f32(p.nTok * p.nHead * p.headDim);
    const want = ropeRef(x, pos, p);
    for (const impl of impls) {
      const y = x.slice();
      const st = withImpl(impl, () =>
        S.spool_rope(
          P(y),
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
        ));
      expect(st).toBe(0);
      expect(nmse(y, want)).toBeLessThan(1e-11);
    }
  }
});

test("topk_route softmax top-8 of 64 with renormalization", () => {
  const rng = new Rng(13);
  const logits = rng.f32(4 * 64, 2);
  const ids = new Int32Array(32), w = new Float32Array(32);
  expect(S.spool_topk_route(P(logits), null, 4, 64, 8, 0, 1, 1, P(ids), P(w))).toBe(0);
  for (let t = 0; t < 4; t++) {
    const r = routeRef(logits.subarray(t * 64, t * 64 + 64), null, 8, 0, true, 1);
    expect(Array.from(ids.subarray(t * 8, t * 8 + 8))).toEqual(r.ids);
    for (let i = 0; i < 8; i++) expect(Math.abs(w[t * 8 + i] - r.weights[i])).toBeLessThan(1e-6);
  }
  expect(S.spool_topk_route(P(logits), null, 1, 4, 5, 0, 0, 1, P(ids), P(w))).toBe(Status.RANGE);
});

test("attention GQA 4, sinks, window, f32 and ggml modes: pooled == 1 thread, vs f64", () => {
  const rng = new Rng(14);
  const p: AttnParams = {
    nTok: 3,
    nHead: 8,
    nHeadKv: 2,
    headDim: 64,
    nKv: 90,
    pos0: 80,
    scale: 0.125,
    window: 32,
    sinks: rng.f32(8, 1),
  };
  const q = rng.f32(p.nTok * p.nHead * p.headDim);
  const k = toF16(rng.f32(p.nKv * p.nHeadKv * p.headDim));
  const v = toF16(rng.f32(p.nKv * p.nHeadKv * p.headDim));
  const pool = S.spool_pool_create(2);
  try {
    // flags 0 (f32, online softmax) and SPOOL_ATTN_GGML (f16-rounded q and probabilities)
    for (const [flags, bound] of [[0, 1e-11], [1, 1e-8]]) {
      const want = attentionRef(q, k, v, p, flags === 1);
      for (const impl of impls) {
        const outs = [null, pool].map((pl) => {
          const out = new Float32Array(q.length);
          const st = withImpl(impl, () =>
            S.spool_attention(
              pl,
              P(q),
              P(k),
              P(v),
              P(out),
              p.nTok,
              p.nHead,
              p.nHeadKv,
              p.headDim,
              p.nKv,
              p.pos0,
              p.scale,
              p.window,
              P(p.sinks!),
              flags,
            ));
          expect(st).toBe(0);
          return out;
        });
        expect(nmse(outs[0], want)).toBeLessThan(bound);
        expect(outs[1]).toEqual(outs[0]);
      }
    }
  } finally {
    S.spool_pool_destroy(pool);
  }
});

test("attention_ex: MLA rows (576, v = the 512-value latent prefix), both modes, vs f64", () => {
  const rng = new Rng(15);
  const p: AttnExParams = {
    nTok: 3,
    nHead: 16,
    nHeadKv: 1,
    hdk: 576,
    hdv: 512,
    kStride: 576,
    vStride: 576,
    nKv: 70,
    pos0: 67,
    scale: 1 / Math.sqrt(192),
    window: 0,
    sinks: null,
  };
  const q = rng.f32(p.nTok * p.nHead * p.hdk, 0.5);
  const kv = toF16(rng.f32(p.nKv * p.kStride));
  const pool = S.spool_pool_create(2);
  try {
    for (const [flags, bound] of [[0, 1e-11], [1, 1e-8]]) {
      const want = attentionExRef(q, kv, kv, p, flags === 1);
      for (const impl of impls) {
        const outs = [null, pool].map((pl) => {
          const out = new Float32Array(p.nTok * p.nHead * p.hdv);
          const st = withImpl(impl, () =>
            S.spool_attention_ex(
              pl,
              P(q),
              P(kv),
              P(kv),
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
              null,
              flags,
            ));
          expect(st).toBe(0);
          return out;
        });
        expect(nmse(outs[0], want)).toBeLessThan(bound);
        expect(outs[1]).toEqual(outs[0]);
      }
    }
  } finally {
    S.spool_pool_destroy(pool);
  }
});

test("topk_route_groups: DeepSeek-V3 routing (256 experts, 8 groups, 4 kept, top-8) vs f64", () => {
  const rng = new Rng(16);
  const nTok = 8, nExp = 256, k = 8;
  const logits = rng.f32(nTok * nExp, 2), bias = rng.f32(nExp, 0.5);
  const ids = new Int32Array(nTok * k), w = new Float32Array(nTok * k);
  const st = S.spool_topk_route_groups(
    P(logits),
    P(bias),
    nTok,
    nExp,
    k,
    1,
    1,
    2.5,
    8,
    4,
    P(ids),
    P(w),
  );
  expect(st).toBe(0);
  for (let t = 0; t < nTok; t++) {
    const want = routeRef(logits.subarray(t * nExp, (t + 1) * nExp), bias, k, 1, true, 2.5, 8, 4);
    expect(Array.from(ids.subarray(t * k, (t + 1) * k))).toEqual(want.ids);
    for (let i = 0; i < k; i++) expect(Math.abs(w[t * k + i] - want.weights[i])).toBeLessThan(3e-6);
  }
});

test("matmul_batched: 4 strided Q8_0 heads equal spool_matmul per head, bit for bit", () => {
  const rng = new Rng(17);
  const [H, rows, cols, nTok] = [4, 64, 128, 2];
  const wf = rng.f32(H * rows * cols, 0.1), rowBytes = (cols / 32) * 34;
  const w = new Uint8Array(H * rows * rowBytes);
  expect(S.spool_quantize(null, 8, P(wf), P(w), H * rows, cols)).toBe(0);
  const x = rng.f32(nTok * H * 192); // q_nope: the first 128 of 192 values per head
  const need = S.spool_matmul_scratch_bytes(8, cols, H * nTok, 1);
  const scratch = new Uint8Array(need);
  const y = new Float32Array(nTok * H * rows);
  const st = S.spool_matmul_batched(
    null,
    8,
    P(w),
    rows,
    cols,
    rows * rowBytes,
    H,
    P(x),
    H * 192,
    192,
    nTok,
    P(y),
    H * rows,
    rows,
    1,
    P(scratch),
  );
  expect(st).toBe(0);
  for (let h = 0; h < H; h++) {
    const xh = new Float32Array(nTok * cols), yh = new Float32Array(nTok * rows);
    for (let t = 0; t < nTok; t++) {
      xh.set(x.subarray(t * H * 192 + h * 192, t * H * 192 + h * 192 + cols), t * cols);
    }
    const wh = w.subarray(h * rows * rowBytes, (h + 1) * rows * rowBytes);
    expect(S.spool_matmul(null, 8, P(wh), rows, cols, P(xh), nTok, P(yh), 1, P(scratch))).toBe(0);
    for (let t = 0; t < nTok; t++) {
      expect(y.subarray(t * H * rows + h * rows, t * H * rows + (h + 1) * rows)).toEqual(
        yh.subarray(t * rows, (t + 1) * rows),
      );
    }
  }
});

test("MappedFile, readAt, DirectReader and IOError under bun", () => {
  const dir = mkdtempSync(join(tmpdir(), "spool_bun_"));
  const path = join(dir, "data.bin");
  const data = new Uint8Array(70_000).map((_, i) => (i * 2654435761) >>> 24);
  writeFileSync(path, data);
  try {
    const m = MappedFile.open(path);
    expect(m.size).toBe(70_000);
    expect(m.bytes(12_345, 1000)).toEqual(data.subarray(12_345, 13_345));
    expect(m.bytes(69_999, 1)).toEqual(data.subarray(69_999));
    const nb = new NativeBuffer(4096, { align: 4096 });
    S.spool_memcpy(nb.ptr, m.ptrAt(4097), 100);
    expect(nb.u8.subarray(0, 100)).toEqual(data.subarray(4097, 4197));
    m.close();
    m.close();

    const fd = openFile(path);
    expect(readAt(fd, nb, 3000, 65_000, path)).toBe(3000);
    expect(nb.u8.subarray(0, 3000)).toEqual(data.subarray(65_000, 68_000));
    let err: unknown;
    try {
      readAt(fd, nb, 4096, 69_000, path);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IOError);
    expect((err as IOError).message).toBe(
      `Cannot read 4096 bytes at offset 69000 of ${path}: short read`,
    );
    S.spool_file_close(fd);
    nb.free();
    nb.free();

    const r = DirectReader.open(path);
    expect(r.readBytes(5001, 20_000)).toEqual(data.subarray(5001, 25_001));
    r.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
