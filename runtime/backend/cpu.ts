/**
 * The CPU backend: the C kernels of `kernels/cpu` over FFI (scalar, AVX2 or NEON, chosen by
 * the library at load), on one thread pool. The small elementwise ops (residual adds, bias
 * rows, the shared expert's sigmoid gate) run in JS on views of the same memory: f32
 * element adds in JS round exactly like the C ones.
 *
 * @module
 */
import { check, isNull, KernelError, native, Status } from "../../ffi/mod.ts";
import type { Ptr } from "../../ffi/mod.ts";
import { NativeBuffer } from "../../ffi/memory.ts";
import { GGMLType } from "../gguf/types.ts";
import type {
  AttentionParams,
  Backend,
  Buf,
  GatedDeltaNetArgs,
  Matrix,
  MoEFfnArgs,
  RopeParams,
  Vector,
} from "./backend.ts";

const ACT_F32 = 0;
const ACT_Q8 = 1;
/** SPOOL_ATTN_GGML: llama.cpp's f16 roundings of q and the probabilities. */
const ATTN_GGML = 1;

/** SPOOL_CONV_SILU, SPOOL_GDN_L2NORM, SPOOL_GDN_TILED. */
const CONV_SILU = 1;
const GDN_L2NORM = 1;
const GDN_TILED = 2;

/** f32-family weights keep f32 activations; quantized ones quantize them to 8 bits. */
function actFor(type: number): number {
  return type === GGMLType.F32 || type === GGMLType.F16 || type === GGMLType.BF16
    ? ACT_F32
    : ACT_Q8;
}

/** {@link Backend} on the CPU kernels. */
export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly threads: number;
  /** The kernel thread pool (spool_pool). */
  readonly pool: Ptr;
  #closed = false;

  /** A backend with a pool of `threads` workers. */
  constructor(threads: number) {
    const pool = native().sym.spool_pool_create(threads);
    if (isNull(pool)) throw new KernelError("spool_pool_create", Status.NOMEM);
    this.pool = pool;
    this.threads = threads;
  }

  alloc(bytes: number, align = 64): Buf {
    return new NativeBuffer(bytes, { align });
  }

  matmulScratchBytes(w: { type: number; cols: number }, n: number): number {
    return native().sym.spool_matmul_scratch_bytes(w.type, w.cols, n, ACT_Q8);
  }

  matmul(w: Matrix, x: Ptr, n: number, y: Ptr, scratch: Ptr): void {
    const st = native().sym.spool_matmul(
      this.pool,
      w.type,
      w.ptr,
      w.rows,
      w.cols,
      x,
      n,
      y,
      actFor(w.type),
      scratch,
    );
    if (st !== 0) check(st, "spool_matmul", w.name);
  }

  moeScratchBytes(
    gateType: number,
    upType: number,
    downType: number,
    nEmbd: number,
    nFf: number,
    nExpert: number,
    n: number,
    k: number,
  ): number {
    return native().sym.spool_moe_scratch_bytes(
      gateType,
      upType,
      downType,
      nEmbd,
      nFf,
      nExpert,
      n,
      k,
    );
  }

  moeFfn(a: MoEFfnArgs): void {
    const st = native().sym.spool_moe_ffn_phase(
      this.pool,
      a.x,
      a.n,
      a.nEmbd,
      a.nFf,
      a.nExpert,
      a.k,
      a.ids,
      a.weights,
      a.gate,
      a.gateType,
      a.up,
      a.upType,
      a.down,
      a.downType,
      a.gateBias,
      a.upBias,
      a.downBias,
      a.act,
      a.y,
      a.scratch,
      a.phase ?? 0,
    );
    if (st !== 0) check(st, "spool_moe_ffn_phase");
  }

  getRows(table: Matrix, tokens: ArrayLike<number>, x: Buf): void {
    const n = native();
    const E = table.cols;
    for (let i = 0; i < tokens.length; i++) {
      const st = n.sym.spool_dequantize_row(
        table.type,
        n.offset(table.ptr, tokens[i] * table.rowBytes),
        x.ptrAt(i * E * 4),
        E,
      );
      if (st !== 0) check(st, "spool_dequantize_row", table.name);
    }
  }

  rmsnorm(x: Ptr, w: Ptr, y: Ptr, rows: number, n: number, eps: number): void {
    const st = native().sym.spool_rmsnorm(x, w, y, rows, n, eps);
    if (st !== 0) check(st, "spool_rmsnorm");
  }

  rope(x: Ptr, pos: Ptr, n: number, nHead: number, headDim: number, p: RopeParams): void {
    const st = native().sym.spool_rope(
      x,
      pos,
      n,
      nHead,
      headDim,
      p.nRot,
      p.mode,
      p.freqBase,
      p.freqScale,
      p.extFactor,
      p.attnFactor,
      p.betaFast,
      p.betaSlow,
      p.nCtxOrig,
      null,
    );
    if (st !== 0) check(st, "spool_rope");
  }

  matmulBatched(
    w: Matrix,
    wBatchBytes: number,
    nBatch: number,
    x: Ptr,
    xTokStride: number,
    xBatchStride: number,
    n: number,
    y: Ptr,
    yTokStride: number,
    yBatchStride: number,
    scratch: Ptr,
  ): void {
    const st = native().sym.spool_matmul_batched(
      this.pool,
      w.type,
      w.ptr,
      w.rows,
      w.cols,
      wBatchBytes,
      nBatch,
      x,
      xTokStride,
      xBatchStride,
      n,
      y,
      yTokStride,
      yBatchStride,
      actFor(w.type),
      scratch,
    );
    if (st !== 0) check(st, "spool_matmul_batched", w.name);
  }

  route(
    logits: Ptr,
    bias: Ptr,
    n: number,
    nExpert: number,
    k: number,
    gating: number,
    normalize: boolean,
    scale: number,
    ids: Ptr,
    weights: Ptr,
    groups = 1,
    groupsUsed = 1,
  ): void {
    if (groups > 1) {
      const st = native().sym.spool_topk_route_groups(
        logits,
        bias,
        n,
        nExpert,
        k,
        gating,
        normalize ? 1 : 0,
        scale,
        groups,
        groupsUsed,
        ids,
        weights,
      );
      if (st !== 0) check(st, "spool_topk_route_groups");
      return;
    }
    const st = native().sym.spool_topk_route(
      logits,
      bias,
      n,
      nExpert,
      k,
      gating,
      normalize ? 1 : 0,
      scale,
      ids,
      weights,
    );
    if (st !== 0) check(st, "spool_topk_route");
  }

  attention(
    q: Ptr,
    k: Ptr,
    v: Ptr,
    out: Ptr,
    n: number,
    nKv: number,
    pos0: number,
    a: AttentionParams,
  ): void {
    const kvRow = a.nHeadKv * a.headDim;
    const hdv = a.headDimV ?? a.headDim;
    const ks = a.kRowStride ?? kvRow, vs = a.vRowStride ?? a.nHeadKv * hdv;
    if (hdv !== a.headDim || ks !== kvRow || vs !== kvRow) {
      const st = native().sym.spool_attention_ex(
        this.pool,
        q,
        k,
        v,
        out,
        n,
        a.nHead,
        a.nHeadKv,
        a.headDim,
        hdv,
        ks,
        vs,
        nKv,
        pos0,
        a.scale,
        a.window,
        a.sinks,
        ATTN_GGML,
      );
      if (st !== 0) check(st, "spool_attention_ex");
      return;
    }
    const st = native().sym.spool_attention(
      this.pool,
      q,
      k,
      v,
      out,
      n,
      a.nHead,
      a.nHeadKv,
      a.headDim,
      nKv,
      pos0,
      a.scale,
      a.window,
      a.sinks,
      ATTN_GGML,
    );
    if (st !== 0) check(st, "spool_attention");
  }

  swiglu(g: Ptr, u: Ptr, y: Ptr, n: number): void {
    const st = native().sym.spool_swiglu(g, u, y, n);
    if (st !== 0) check(st, "spool_swiglu");
  }

  toF16(src: Ptr, dst: Ptr, n: number): void {
    const st = native().sym.spool_f32_to_f16(src, dst, n);
    if (st !== 0) check(st, "spool_f32_to_f16");
  }

  add(x: Buf, y: Buf, n: number): void {
    const a = x.f32, b = y.f32;
    for (let i = 0; i < n; i++) a[i] += b[i];
  }

  addBias(x: Buf, bias: Vector, m: number): void {
    const a = x.f32, b = bias.data;
    const n = b.length;
    for (let r = 0; r < m; r++) {
      const o = r * n;
      for (let i = 0; i < n; i++) a[o + i] += b[i];
    }
  }

  addSigmoidGated(out: Buf, h: Buf, gate: Vector, d: Buf, m: number, n: number): void {
    const o = out.f32, hv = h.f32, dv = d.f32, gi = gate.data;
    for (let t = 0; t < m; t++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += gi[i] * hv[t * n + i];
      const g = 1 / (1 + Math.exp(-dot));
      for (let i = 0; i < n; i++) o[t * n + i] += g * dv[t * n + i];
    }
  }

  ssmConv(
    x: Ptr,
    w: Ptr,
    state: Ptr,
    y: Ptr,
    n: number,
    channels: number,
    kernel: number,
    silu: boolean,
  ): void {
    const st = native().sym.spool_ssm_conv(
      this.pool,
      x,
      w,
      state,
      y,
      n,
      channels,
      kernel,
      silu ? CONV_SILU : 0,
    );
    if (st !== 0) check(st, "spool_ssm_conv");
  }

  gdnGates(
    alpha: Ptr,
    b: Ptr,
    dtBias: Ptr,
    a: Ptr,
    g: Ptr,
    beta: Ptr,
    n: number,
    nHead: number,
  ): void {
    const st = native().sym.spool_gdn_gates(alpha, b, dtBias, a, g, beta, n, nHead);
    if (st !== 0) check(st, "spool_gdn_gates");
  }

  gatedDeltaNet(a: GatedDeltaNetArgs): void {
    const st = native().sym.spool_gated_delta_net(
      this.pool,
      a.q,
      a.k,
      a.v,
      a.g,
      a.beta,
      a.state,
      a.out,
      a.n,
      a.nKHead,
      a.nVHead,
      a.headDimK,
      a.headDimV,
      a.qStride,
      a.kStride,
      a.vStride,
      a.scale,
      a.eps,
      (a.l2norm ? GDN_L2NORM : 0) | (a.tiledHeads ? GDN_TILED : 0),
    );
    if (st !== 0) check(st, "spool_gated_delta_net");
  }

  gatedRmsnorm(x: Ptr, w: Ptr, z: Ptr, y: Ptr, rows: number, n: number, eps: number): void {
    const st = native().sym.spool_gated_rmsnorm(x, w, z, y, rows, n, eps);
    if (st !== 0) check(st, "spool_gated_rmsnorm");
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    native().sym.spool_pool_destroy(this.pool);
  }
}
