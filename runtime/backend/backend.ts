/**
 * The op-level backend seam: every kernel the forward pass runs goes through a
 * {@link Backend}. The CPU backend (cpu.ts) calls the C ABI of `kernels/include/spool.h`
 * over FFI; a CUDA or Metal backend is one more file here plus its kernels folder, and must
 * pass the same op suite (op_suite.ts).
 *
 * Buffers are the backend's own ({@link Backend.alloc}): ops take {@link Buf}s and
 * byte offsets, never JS arrays, so a device backend can keep activations on the device.
 * Shapes are (rows, cols), row-major, f32 unless noted.
 *
 * @module
 */
import type { Ptr } from "../../ffi/mod.ts";

/** A buffer a backend allocated: where it lives and how to address into it. */
export interface Buf {
  /** Size in bytes. */
  readonly byteLength: number;
  /** Address of byte 0. */
  readonly ptr: Ptr;
  /** Address of byte `offset`. */
  ptrAt(offset: number): Ptr;
  /**
   * Host views of the contents (f32 and i32). The CPU backend's buffers are host memory; a
   * device backend returns views that are valid after the step synchronizes.
   */
  readonly f32: Float32Array;
  readonly i32: Int32Array;
  /** Release it (idempotent). */
  free(): void;
}

/** A 2-D weight in the model file: y = W x has `rows` outputs of `cols` inputs. */
export interface Matrix {
  /** GGUF tensor name, for errors. */
  readonly name: string;
  /** ggml type id. */
  readonly type: number;
  readonly rows: number;
  readonly cols: number;
  /** Address of row 0. */
  readonly ptr: Ptr;
  /** Bytes of one row. */
  readonly rowBytes: number;
  /**
   * Matrices stacked in a 3-D tensor (MLA's per-head `attn_k_b`/`attn_v_b`, used with
   * {@link Backend.matmulBatched}); absent = 1.
   */
  readonly batch?: number;
}

/** An F32 vector of the model (norm weight, bias, gate vector). */
export interface Vector {
  readonly name: string;
  readonly ptr: Ptr;
  readonly data: Float32Array;
}

/** Router gating ({@link Backend.route}). */
export const Gating = { SOFTMAX: 0, SIGMOID: 1, SOFTMAX_TOPK: 2 } as const;
/** FFN activations ({@link Backend.moeFfn}). */
export const Act = { SWIGLU: 16, SWIGLU_OAI: 17 } as const;
/**
 * Phases of {@link Backend.moeFfn}: ALL in one call, or BEGIN (the experts whose three table
 * entries are set; partial results kept in the scratch), any number of MORE (the experts set
 * since, not yet computed) and then FINISH (the rest, and the sum) with the same arguments,
 * which equals ALL bit for bit.
 */
export const MoEPhase = { ALL: 0, BEGIN: 1, FINISH: 2, MORE: 3 } as const;
/** Rotary layouts ({@link RopeParams.mode}). */
export const RopeMode = { NORMAL: 0, NEOX: 2 } as const;

/** Rotary embedding parameters of {@link Backend.rope}. */
export interface RopeParams {
  /** Dims rotated per head (from the start of each head). */
  readonly nRot: number;
  /** {@link RopeMode}. */
  readonly mode: number;
  readonly freqBase: number;
  /** 1 / (linear or YaRN factor). */
  readonly freqScale: number;
  /** YaRN ramp mixing on (1) or off (0). */
  readonly extFactor: number;
  /** Scales cos and sin (YaRN's mscale). */
  readonly attnFactor: number;
  readonly betaFast: number;
  readonly betaSlow: number;
  /** Original training context for YaRN. */
  readonly nCtxOrig: number;
}

/** Grouped-query attention over an f16 KV block ({@link Backend.attention}). */
export interface AttentionParams {
  readonly nHead: number;
  readonly nHeadKv: number;
  /** Head size of q and k. */
  readonly headDim: number;
  /**
   * Head size of v and the output (default headDim). With MLA's latent cache V is the first
   * `headDimV` values of each K row (pass the K block as v and kRowStride as vRowStride).
   */
  readonly headDimV?: number;
  /** f16 values from one K (V) row to the next (default nHeadKv × head size). */
  readonly kRowStride?: number;
  readonly vRowStride?: number;
  /** 1/sqrt(head_dim), or what the architecture sets. */
  readonly scale: number;
  /** Sliding window (0 = global). */
  readonly window: number;
  /** Per-head sink logits, or null. */
  readonly sinks: Ptr;
}

/** The routed-expert FFN of one layer over `n` tokens ({@link Backend.moeFfn}). */
export interface MoEFfnArgs {
  /** Input rows (n, nEmbd) at x. */
  readonly x: Ptr;
  readonly n: number;
  readonly nEmbd: number;
  readonly nFf: number;
  readonly nExpert: number;
  /** Experts per token. */
  readonly k: number;
  /** (n, k) expert ids and weights. */
  readonly ids: Ptr;
  readonly weights: Ptr;
  /** Tables of nExpert expert-matrix addresses (u64) and the matrices' ggml types. */
  readonly gate: Ptr;
  readonly gateType: number;
  readonly up: Ptr;
  readonly upType: number;
  readonly down: Ptr;
  readonly downType: number;
  /** Per-expert biases or null. */
  readonly gateBias: Ptr;
  readonly upBias: Ptr;
  readonly downBias: Ptr;
  /** {@link Act}. */
  readonly act: number;
  /** Output rows (n, nEmbd). */
  readonly y: Ptr;
  readonly scratch: Ptr;
  /** {@link MoEPhase} (default ALL). */
  readonly phase?: number;
}

/**
 * One gated delta rule call ({@link Backend.gatedDeltaNet}) over `n` tokens of ONE sequence;
 * see spool.h `spool_gated_delta_net` for the math and layouts.
 */
export interface GatedDeltaNetArgs {
  /** Token t, key head kh at q + (t·qStride + kh·headDimK)·4 bytes (k likewise). */
  readonly q: Ptr;
  readonly k: Ptr;
  /** Token t, value head h at v + (t·vStride + h·headDimV)·4 bytes. */
  readonly v: Ptr;
  /** (n, nVHead) log-decays and write strengths ({@link Backend.gdnGates}). */
  readonly g: Ptr;
  readonly beta: Ptr;
  /** (nVHead, headDimV, headDimK) f32 recurrent state, updated in place (llama.cpp's layout). */
  readonly state: Ptr;
  /** (n, nVHead, headDimV) output. */
  readonly out: Ptr;
  readonly n: number;
  readonly nKHead: number;
  readonly nVHead: number;
  readonly headDimK: number;
  readonly headDimV: number;
  /** Token strides in f32 elements (the conv row width when q, k, v are its slices). */
  readonly qStride: number;
  readonly kStride: number;
  readonly vStride: number;
  /** Output scale: 1/sqrt(headDimK) in llama.cpp. */
  readonly scale: number;
  /** The L2 norm's epsilon (the model's rms_norm_eps). */
  readonly eps: number;
  /** L2-normalize q and k per head inside the op (Qwen3.5 / Qwen3-Next do). */
  readonly l2norm: boolean;
  /**
   * Value head h reads key head h % nKHead (qwen35 / qwen35moe); false: h / (nVHead / nKHead)
   * (qwen3next).
   */
  readonly tiledHeads: boolean;
}

/**
 * The ops of the forward pass. All are synchronous and run to completion on the backend's
 * own worker threads. `scratch` arguments are buffers of at least the size the matching
 * `*ScratchBytes` reported.
 */
export interface Backend {
  /** "cpu", "cuda", ... */
  readonly name: string;
  /** Worker threads. */
  readonly threads: number;
  /** A zero-filled buffer of `bytes` (aligned to `align`, default 64). */
  alloc(bytes: number, align?: number): Buf;
  /** Scratch bytes {@link Backend.matmul} needs for `n` rows of `w`. */
  matmulScratchBytes(w: { type: number; cols: number }, n: number): number;
  /** y (n, rows) = x (n, cols) · Wᵀ. */
  matmul(w: Matrix, x: Ptr, n: number, y: Ptr, scratch: Ptr): void;
  /** Scratch bytes of {@link Backend.moeFfn}. */
  moeScratchBytes(
    gateType: number,
    upType: number,
    downType: number,
    nEmbd: number,
    nFf: number,
    nExpert: number,
    n: number,
    k: number,
  ): number;
  /** y = Σ_j w[t,j] · down(act(gate(x_t), up(x_t))) over each token's k experts. */
  moeFfn(a: MoEFfnArgs): void;
  /** Rows of a (possibly quantized) table to f32: x[i] = table[tokens[i]]. */
  getRows(table: Matrix, tokens: ArrayLike<number>, x: Buf): void;
  /** y[r] = x[r] / rms(x[r]) * w (w null: no scale), `rows` rows of `n`. In place ok. */
  rmsnorm(x: Ptr, w: Ptr, y: Ptr, rows: number, n: number, eps: number): void;
  /** Rotate (n, nHead, headDim) rows in place at positions pos (i32, n). */
  rope(x: Ptr, pos: Ptr, n: number, nHead: number, headDim: number, p: RopeParams): void;
  /**
   * `nBatch` products, each with its own matrix (`w` + b·wBatchBytes, same shape and type),
   * over strided rows: y[b, t] (rows) = W_b · x[b, t] (cols); strides in f32 elements. The
   * same bits as {@link Backend.matmul} per batch (MLA's per-head absorb and decompress).
   */
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
  ): void;
  /**
   * Per token: choose k of nExpert experts from router logits (n, nExpert) with a
   * {@link Gating}, an optional selection bias, renormalization and scale; with
   * `groups` > 1, only among the experts of the `groupsUsed` best groups (DeepSeek-V3).
   */
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
    groups?: number,
    groupsUsed?: number,
  ): void;
  /**
   * Causal attention of n query rows at positions pos0.. against nKv f16 KV rows; q
   * (n, nHead, headDim) f32 → out (n, nHead, headDim).
   */
  attention(
    q: Ptr,
    k: Ptr,
    v: Ptr,
    out: Ptr,
    n: number,
    nKv: number,
    pos0: number,
    a: AttentionParams,
  ): void;
  /** y = silu(g) * u over n values (in place ok). */
  swiglu(g: Ptr, u: Ptr, y: Ptr, n: number): void;
  /** f32 → f16, n values (the KV cache's storage). */
  toF16(src: Ptr, dst: Ptr, n: number): void;
  /** x[0..n) += y[0..n) (element offsets into the buffers). */
  add(x: Buf, y: Buf, n: number): void;
  /** Every one of m rows of x += bias. */
  addBias(x: Buf, bias: Vector, m: number): void;
  /**
   * The gated shared expert's sum: for each of m rows, out[t] += sigmoid(gate · h[t]) · d[t],
   * rows of `n`.
   */
  addSigmoidGated(out: Buf, h: Buf, gate: Vector, d: Buf, m: number, n: number): void;
  /**
   * Gated DeltaNet's causal depthwise conv over n tokens of one sequence: x (n, channels),
   * w (channels, kernel) as GGUF `ssm_conv1d`, state (kernel-1, channels) read and advanced
   * in place; y (n, channels) may be x; silu applied after when asked.
   */
  ssmConv(
    x: Ptr,
    w: Ptr,
    state: Ptr,
    y: Ptr,
    n: number,
    channels: number,
    kernel: number,
    silu: boolean,
  ): void;
  /**
   * Gated DeltaNet gates per (token, head) of (n, nHead) rows: g = softplus(alpha + dtBias) · a
   * (a = GGUF `ssm_a` = -exp(A_log)), beta = sigmoid(b). g may be alpha, beta may be b.
   */
  gdnGates(
    alpha: Ptr,
    b: Ptr,
    dtBias: Ptr,
    a: Ptr,
    g: Ptr,
    beta: Ptr,
    n: number,
    nHead: number,
  ): void;
  /** The gated delta rule with its recurrent state, over a whole prompt or one token. */
  gatedDeltaNet(a: GatedDeltaNetArgs): void;
  /**
   * y = rmsnorm(x) · w · silu(z) for `rows` rows of n (Gated DeltaNet's output norm, one row
   * per token and value head); w may be null; y may be x, not z.
   */
  gatedRmsnorm(x: Ptr, w: Ptr, z: Ptr, y: Ptr, rows: number, n: number, eps: number): void;
  /** Release the worker threads (the backend is unusable after). */
  close(): void;
}
