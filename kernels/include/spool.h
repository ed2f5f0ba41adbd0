/*
 * spool.h — the one C ABI of spool's native kernels.
 *
 * Rules (see DESIGN.md §3 and §8):
 *  - Only scalars and pointers cross the boundary (bun:ffi has no struct by value).
 *  - Element counts are int32. File offsets and byte sizes that may pass 2 GiB are
 *    double (exact up to 2^53), so JS passes plain numbers, never BigInt.
 *  - Every op returns a spool_status (0 = OK). Kernels never exit, never print and never
 *    allocate behind the caller's back (the thread pool and aligned buffers are explicit).
 *  - Every op has a scalar reference in cpu/ref. spool_set_impl() selects the reference or
 *    the SIMD path at run time so tests can compare the two in one process.
 *  - Tensor layout follows ggml: a 2-D weight W of shape (rows, cols) is stored row-major,
 *    each row a sequence of quantized blocks along cols; y = W x means y[r] = dot(W[r,:], x).
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SPOOL_API __declspec(dllexport)
#else
#define SPOOL_API __attribute__((visibility("default")))
#endif

#define SPOOL_ABI_VERSION 7

/* ---- status codes ---------------------------------------------------------------- */
typedef int32_t spool_status;
#define SPOOL_OK 0
#define SPOOL_E_INVALID -1     /* bad argument: NULL pointer, negative or mismatched size */
#define SPOOL_E_TYPE -2        /* unsupported ggml type for this op */
#define SPOOL_E_NOMEM -3       /* allocation failed (only in explicit allocators) */
#define SPOOL_E_IO -4          /* system call failed; spool_last_errno() has errno */
#define SPOOL_E_ALIGN -5       /* misaligned buffer, offset or length (O_DIRECT, blocks) */
#define SPOOL_E_RANGE -6       /* value outside the supported range (e.g. k > n_expert) */
#define SPOOL_E_SHORT_READ -7  /* file ended before the requested range */

/* ---- ggml type ids (same numbers as ggml, as stored in GGUF tensor infos) ---------- */
#define SPOOL_TYPE_F32 0
#define SPOOL_TYPE_F16 1
#define SPOOL_TYPE_Q4_0 2
#define SPOOL_TYPE_Q4_1 3
#define SPOOL_TYPE_Q8_0 8
#define SPOOL_TYPE_Q8_1 9    /* activations only (Q4_1 products): 32 int8, f16 d, f16 d*sum */
#define SPOOL_TYPE_Q4_K 12
#define SPOOL_TYPE_Q5_K 13
#define SPOOL_TYPE_Q6_K 14
#define SPOOL_TYPE_Q8_K 15   /* activations only: 256 int8 + f32 scale + 16 int16 sums */
#define SPOOL_TYPE_BF16 30
#define SPOOL_TYPE_MXFP4 39

/* ---- implementation selection --------------------------------------------------------- */
#define SPOOL_IMPL_AUTO 0    /* best available (AVX2 on x86 with AVX2+FMA, NEON on arm64) */
#define SPOOL_IMPL_REF 1     /* scalar reference */
#define SPOOL_IMPL_AVX2 2
#define SPOOL_IMPL_NEON 3

#define SPOOL_CPU_AVX2 1     /* bits of spool_cpu_features() */
#define SPOOL_CPU_FMA 2
#define SPOOL_CPU_F16C 4
#define SPOOL_CPU_NEON 8
#define SPOOL_CPU_DOTPROD 16

/** ABI version of the loaded library; the JS side refuses a mismatch. */
SPOOL_API int32_t spool_abi_version(void);
/** Bit set of SPOOL_CPU_* found at run time. */
SPOOL_API int32_t spool_cpu_features(void);
/** Select the implementation used by all ops. Returns SPOOL_E_RANGE if not available. */
SPOOL_API spool_status spool_set_impl(int32_t impl);
/** The implementation in use after AUTO is resolved (SPOOL_IMPL_REF/AVX2/NEON). */
SPOOL_API int32_t spool_get_impl(void);
/** errno of the last failed system call on this thread (0 if none). */
SPOOL_API int32_t spool_last_errno(void);

/* ---- thread pool ---------------------------------------------------------------------
 * A fixed set of worker threads. Ops that take a pool split their work over it; pool may
 * be NULL for single-threaded execution. One op runs on a pool at a time (the engine owns
 * its pool). spool_pool_destroy joins all workers before returning (quiesce first, then
 * close the library). */
typedef struct spool_pool spool_pool;
SPOOL_API spool_pool *spool_pool_create(int32_t n_threads);
SPOOL_API void spool_pool_destroy(spool_pool *pool);
SPOOL_API int32_t spool_pool_size(const spool_pool *pool);

/* ---- files and memory ----------------------------------------------------------------- */
#define SPOOL_OPEN_READ 0
#define SPOOL_OPEN_DIRECT 1      /* O_DIRECT (F_NOCACHE on macOS); offsets/lengths/buffers 4096-aligned */

#define SPOOL_MADV_NORMAL 0
#define SPOOL_MADV_RANDOM 1
#define SPOOL_MADV_SEQUENTIAL 2
#define SPOOL_MADV_WILLNEED 3
#define SPOOL_MADV_DONTNEED 4

/** Open a file read-only. Returns fd >= 0, or a negative status (errno via spool_last_errno). */
SPOOL_API int32_t spool_file_open(const char *path, int32_t flags);
SPOOL_API spool_status spool_file_close(int32_t fd);
/** File size in bytes, or a negative status. */
SPOOL_API double spool_file_size(int32_t fd);
/** Map [0, size) of fd read-only (MAP_SHARED). Returns NULL on failure. */
SPOOL_API void *spool_mmap(int32_t fd, double size);
SPOOL_API spool_status spool_munmap(void *addr, double size);
/** madvise on [addr+offset, addr+offset+len), page-rounded outward. */
SPOOL_API spool_status spool_madvise(void *addr, double offset, double len, int32_t advice);
/** Read exactly len bytes at offset into dst (loops over short reads). Returns bytes read
 * (== len) or a negative status (SPOOL_E_SHORT_READ at end of file). */
SPOOL_API double spool_pread(int32_t fd, void *dst, double len, double offset);
/** Read [offset, offset+len) through an O_DIRECT fd: reads the 4096-aligned superset into
 * dst (which must be 4096-aligned and hold spool_direct_span(offset,len) bytes) and
 * returns the position of the first requested byte inside dst, or a negative status.
 * A superset that runs past end of file is read up to end of file. */
SPOOL_API double spool_pread_direct(int32_t fd, void *dst, double len, double offset);
/** Bytes spool_pread_direct needs in its buffer for this range. */
SPOOL_API double spool_direct_span(double offset, double len);
/** Aligned allocation (align a power of two >= sizeof(void*)), zero-filled. NULL on failure. */
SPOOL_API void *spool_alloc(double size, int32_t align);
SPOOL_API void spool_free(void *ptr);
/** Copy n bytes (for moving data between native buffers without a JS view). */
SPOOL_API void spool_memcpy(void *dst, const void *src, double n);

/* ---- quantization --------------------------------------------------------------------- */
/** Elements per block and bytes per block of a type (0 if unknown). */
SPOOL_API int32_t spool_type_block_size(int32_t type);
SPOOL_API int32_t spool_type_block_bytes(int32_t type);
/** Dequantize n elements (a multiple of the block size) from src to f32. */
SPOOL_API spool_status spool_dequantize_row(int32_t type, const void *src, float *dst, int32_t n);
/** Quantize n_rows rows of n_cols f32 values into type, using llama.cpp's reference
 * quantizers (byte-identical output). Rows are split over the pool. */
SPOOL_API spool_status spool_quantize(spool_pool *pool, int32_t type, const float *src, void *dst,
                                      int32_t n_rows, int32_t n_cols);

/* ---- products --------------------------------------------------------------------------
 * y (n_tok, rows) = x (n_tok, cols) · Wᵀ, W of shape (rows, cols) in `type`, rows contiguous
 * (row stride = row bytes). x and y are f32, row-major.
 * act: SPOOL_ACT_F32 keeps activations in f32 (W dequantized on the fly);
 *      SPOOL_ACT_Q8 quantizes x to 8 bits first (Q8_0 for Q4_0/Q8_0/MXFP4, Q8_1 for Q4_1, Q8_K for the
 *      k-quants, as ggml does) and uses integer dot products.
 * scratch: NULL, or a buffer of spool_matmul_scratch_bytes(...) bytes for the quantized
 * activations (avoids allocation on the hot path; NULL makes the op use a stack/arena
 * fallback up to 64 KiB and fail with SPOOL_E_NOMEM above it). n_tok == 1 is the matvec. */
#define SPOOL_ACT_F32 0
#define SPOOL_ACT_Q8 1
SPOOL_API double spool_matmul_scratch_bytes(int32_t type, int32_t cols, int32_t n_tok, int32_t act);
SPOOL_API spool_status spool_matmul(spool_pool *pool, int32_t type, const void *w, int32_t rows,
                                    int32_t cols, const float *x, int32_t n_tok, float *y,
                                    int32_t act, void *scratch);

/* Batched products: n_batch independent products, each with its own (rows, cols) matrix,
 * over strided activations into strided outputs (MLA's per-head wk_b and wv_b):
 *   y[b·y_batch_stride + t·y_tok_stride + r] = W_b[r,:] · x[b·x_batch_stride + t·x_tok_stride ..]
 * W_b = w + b·w_batch_bytes (rows contiguous as for spool_matmul; w_batch_bytes 0 shares one
 * matrix); strides in elements (f32), >= 0; outputs must not overlap. act as spool_matmul;
 * every value is the bits spool_matmul gives for W_b and x_b gathered into contiguous rows,
 * whatever the pool. scratch: spool_matmul_scratch_bytes(type, cols, n_batch·n_tok, act)
 * bytes, 4-byte aligned, required when that is > 0 (NULL: SPOOL_E_INVALID). Work is one pool
 * dispatch of (batch, chunk of rows) tasks, after one that quantizes the activations.
 * Statuses: SPOOL_E_TYPE, SPOOL_E_INVALID (NULL, negative size or stride, cols not a multiple
 * of the block, w_batch_bytes not a whole number), SPOOL_E_ALIGN, SPOOL_E_RANGE
 * (n_batch·n_tok beyond int32). */
SPOOL_API spool_status spool_matmul_batched(spool_pool *pool, int32_t type, const void *w,
                                            int32_t rows, int32_t cols, double w_batch_bytes,
                                            int32_t n_batch, const float *x, int32_t x_tok_stride,
                                            int32_t x_batch_stride, int32_t n_tok, float *y,
                                            int32_t y_tok_stride, int32_t y_batch_stride,
                                            int32_t act, void *scratch);

/** Benchmark helper: read [p, p+bytes) reps times with a SIMD sum, split over the pool, and
 * return the achieved read bandwidth in bytes per second (negative status on bad args). */
SPOOL_API double spool_bench_read_bandwidth(const void *p, double bytes, int32_t reps,
                                            spool_pool *pool);

/* ---- mixture-of-experts FFN ------------------------------------------------------------
 * y (n_tok, n_embd) = Σ_j w[t,j] · (down_e(act(gate_e(x_t) + gate_b_e, up_e(x_t) + up_b_e))
 *                                    + down_b_e),   e = ids[t,j], j = 0..k-1
 * x: (n_tok, n_embd) f32; ids, weights: (n_tok, k) as spool_topk_route writes them.
 * gate, up: arrays of n_expert pointers to (n_ff, n_embd) matrices; down: n_expert pointers
 * to (n_embd, n_ff) matrices (from JS: an array of 64-bit addresses). A NULL pointer is an
 * expert that is not resident: SPOOL_E_INVALID if a token routes to it. gate_type, up_type,
 * down_type: ggml types of the three tensors.
 * gate_b, up_b: NULL or (n_expert, n_ff) f32 biases; down_b: NULL or (n_expert, n_embd).
 * act: SPOOL_ACT_SWIGLU: silu(g) * u; SPOOL_ACT_SWIGLU_OAI (gpt-oss): g' = min(g, 7),
 *      u' = clamp(u, -7, 7), g' * sigmoid(1.702 g') * (u' + 1), every step rounded to f32.
 * Products are those of spool_matmul with SPOOL_ACT_Q8 for quantized weights and
 * SPOOL_ACT_F32 for F32/F16/BF16 (the same kernels, so the same bits); SWIGLU is
 * spool_swiglu's arithmetic; bias adds, the weight products and the slot sum (in slot order
 * j = 0..k-1, ggml's order) are f32. The result equals that composition bit for bit and does
 * not depend on the pool. Each expert matrix routed to is read once per call; the work of
 * all experts is shared by the pool in two dispatches (gate+up, then down+sum).
 * scratch: spool_moe_scratch_bytes(...) bytes, any alignment (required).
 * Statuses: SPOOL_E_TYPE (unknown type), SPOOL_E_RANGE (k > n_expert, id out of range),
 * SPOOL_E_INVALID (NULL argument, bad size, n_embd or n_ff not a multiple of the block). */
#define SPOOL_ACT_SWIGLU 16
#define SPOOL_ACT_SWIGLU_OAI 17
SPOOL_API double spool_moe_scratch_bytes(int32_t gate_type, int32_t up_type, int32_t down_type,
                                         int32_t n_embd, int32_t n_ff, int32_t n_expert,
                                         int32_t n_tok, int32_t k);
SPOOL_API spool_status spool_moe_ffn(spool_pool *pool, const float *x, int32_t n_tok,
                                     int32_t n_embd, int32_t n_ff, int32_t n_expert, int32_t k,
                                     const int32_t *ids, const float *weights,
                                     const void *const *gate, int32_t gate_type,
                                     const void *const *up, int32_t up_type,
                                     const void *const *down, int32_t down_type,
                                     const float *gate_b, const float *up_b, const float *down_b,
                                     int32_t act, float *y, void *scratch);
/** spool_moe_ffn in several calls, so that experts still being read can be waited for while
 * the resident ones compute. phase SPOOL_MOE_ALL: exactly spool_moe_ffn. SPOOL_MOE_BEGIN:
 * computes the routed experts whose gate, up and down pointers are all non-NULL (NULL ones are
 * skipped, not an error) and keeps the partial results in scratch; y is not written.
 * SPOOL_MOE_MORE (any number of times after BEGIN, with the same x, ids, weights, shapes,
 * types and scratch): computes the experts that have become resident since and are not yet
 * computed; y is not written. SPOOL_MOE_FINISH: with the same arguments and every routed
 * expert's pointers now non-NULL, computes the rest and writes y. BEGIN + MORE... + FINISH
 * gives the same bits as ALL. MORE or FINISH without a BEGIN of the same shape:
 * SPOOL_E_INVALID. */
#define SPOOL_MOE_ALL 0
#define SPOOL_MOE_BEGIN 1
#define SPOOL_MOE_FINISH 2
#define SPOOL_MOE_MORE 3
SPOOL_API spool_status spool_moe_ffn_phase(spool_pool *pool, const float *x, int32_t n_tok,
                                           int32_t n_embd, int32_t n_ff, int32_t n_expert,
                                           int32_t k, const int32_t *ids, const float *weights,
                                           const void *const *gate, int32_t gate_type,
                                           const void *const *up, int32_t up_type,
                                           const void *const *down, int32_t down_type,
                                           const float *gate_b, const float *up_b,
                                           const float *down_b, int32_t act, float *y,
                                           void *scratch, int32_t phase);

/* ---- elementwise and normalization ---------------------------------------------------- */
/** y[r,:] = x[r,:] / sqrt(mean(x[r,:]^2) + eps) * w  (w may be NULL: no scale). In place ok.
 * As ggml: each x*x rounded to f32 and summed in double, the mean rounded to f32,
 * scale = 1/sqrtf(mean + eps), y = (x * scale) * w. */
SPOOL_API spool_status spool_rmsnorm(const float *x, const float *w, float *y, int32_t n_rows,
                                     int32_t n, float eps);
/** In-place softmax over each of n_rows rows of n. */
SPOOL_API spool_status spool_softmax(float *x, int32_t n_rows, int32_t n);
/** y = x * sigmoid(x). */
SPOOL_API spool_status spool_silu(const float *x, float *y, int32_t n);
/** y = silu(gate) * up. In place (y == gate or y == up) ok. */
SPOOL_API spool_status spool_swiglu(const float *gate, const float *up, float *y, int32_t n);
/** f32 <-> f16 conversion (round to nearest even), for the KV cache. */
SPOOL_API spool_status spool_f32_to_f16(const float *src, uint16_t *dst, int32_t n);
SPOOL_API spool_status spool_f16_to_f32(const uint16_t *src, float *dst, int32_t n);

/* ---- RoPE -----------------------------------------------------------------------------
 * x: (n_tok, n_head, head_dim) f32, rotated in place; pos: n_tok int32 positions.
 * Rotates the first n_rot dims of each head. mode: SPOOL_ROPE_NORMAL rotates adjacent
 * pairs (x[2i], x[2i+1]); SPOOL_ROPE_NEOX rotates (x[i], x[i+n_rot/2]).
 * theta_i = pos * freq_base^(-2i/n_rot), then YaRN as in ggml: freq_scale is the linear
 * factor (1/scale), ext_factor > 0 enables YaRN ramp mixing between interpolation and
 * extrapolation using beta_fast/beta_slow over n_ctx_orig, attn_factor scales cos/sin
 * (YaRN's mscale). freq_factors: NULL or n_rot/2 per-dimension divisors (Llama 3 style). */
#define SPOOL_ROPE_NORMAL 0
#define SPOOL_ROPE_NEOX 2
SPOOL_API spool_status spool_rope(float *x, const int32_t *pos, int32_t n_tok, int32_t n_head,
                                  int32_t head_dim, int32_t n_rot, int32_t mode, float freq_base,
                                  float freq_scale, float ext_factor, float attn_factor,
                                  float beta_fast, float beta_slow, int32_t n_ctx_orig,
                                  const float *freq_factors);

/* ---- expert routing -------------------------------------------------------------------
 * logits: (n_tok, n_expert) router outputs. For each token select k experts and weights:
 *  SPOOL_GATE_SOFTMAX: p = softmax(logits); pick top-k of p (+bias if given);
 *  SPOOL_GATE_SIGMOID: p = sigmoid(logits); pick top-k of p (+bias if given);
 *  SPOOL_GATE_SOFTMAX_TOPK: pick top-k of logits, weights = softmax over the k (gpt-oss).
 * bias: NULL or n_expert selection biases (added for choosing only, not to the weights).
 * norm != 0 renormalizes the k weights as llama.cpp's build_moe_ffn does: sum = f32 of their
 * double sum, clamped to >= 2^-14 (6.103515625e-5), weights /= sum; then, if scale != 1,
 * weights *= scale (llama.cpp skips expert_weights_scale when it is 0 or 1: pass 1 when the
 * GGUF has none). Probabilities as ggml: sigmoid = 1/(1 + expf(-x)); softmax = expf(x - max)
 * times the f32 of 1/(double sum); the bias is an f32 add (exp_probs_b).
 * ids: (n_tok, k) int32 descending by score; weights: (n_tok, k) f32. Ties pick the lower id. */
#define SPOOL_GATE_SOFTMAX 0
#define SPOOL_GATE_SIGMOID 1
#define SPOOL_GATE_SOFTMAX_TOPK 2
SPOOL_API spool_status spool_topk_route(const float *logits, const float *bias, int32_t n_tok,
                                        int32_t n_expert, int32_t k, int32_t gating, int32_t norm,
                                        float scale, int32_t *ids, float *weights);
/** Group-limited top-k (DeepSeek-V3 / Kimi K2: `expert_group_count` = n_group,
 * `expert_group_used_count` = n_group_used), as llama.cpp's build_moe_ffn when
 * n_expert_groups > 1. The experts form n_group groups of n_expert / n_group consecutive ids.
 * Per token: selection scores s_e = p_e (+ bias_e) as spool_topk_route; each group's score is
 * the f32 sum of its two highest s_e; the n_group_used groups with the highest scores are kept
 * (ties: lower group), the others' experts are excluded (llama.cpp sets them to -inf); then
 * top-k of s_e over the kept experts, weights from the unbiased p_e, norm and scale exactly as
 * spool_topk_route. n_group == 1 (n_group_used == 1) is spool_topk_route.
 * Statuses: SPOOL_E_INVALID (NULL, a size < 1, n_expert not a multiple of n_group, fewer than
 * two experts per group, unknown gating), SPOOL_E_RANGE (n_group_used > n_group, n_group >
 * 1024, k > n_group_used · n_expert / n_group). */
SPOOL_API spool_status spool_topk_route_groups(const float *logits, const float *bias,
                                               int32_t n_tok, int32_t n_expert, int32_t k,
                                               int32_t gating, int32_t norm, float scale,
                                               int32_t n_group, int32_t n_group_used,
                                               int32_t *ids, float *weights);

/* ---- attention ------------------------------------------------------------------------
 * Grouped-query attention over an f16 KV cache, causal.
 * q:   (n_tok, n_head, head_dim) f32;  out: (n_tok, n_head, head_dim) f32.
 * k,v: (n_kv, n_head_kv, head_dim) f16, position-major (row j holds position j); n_head is
 *      a multiple of n_head_kv and query head h reads kv head h / (n_head / n_head_kv).
 * Query token t sits at position pos0 + t and attends to kv rows j with j <= pos0 + t and,
 * if window > 0, j > pos0 + t - window. scores = q·k * scale.
 * sinks: NULL or n_head f32 logits that join each head's softmax denominator only (gpt-oss).
 * flags: 0 or SPOOL_ATTN_GGML (other bits: SPOOL_E_INVALID).
 *  0: q and the probabilities stay f32; one pass of online (flash-style) softmax.
 *  SPOOL_ATTN_GGML: the arithmetic of ggml's non-flash CPU attention (llama.cpp without
 *   flash attention) as its x86 AVX-512 build evaluates a batch of two or more tokens, bit
 *   for bit on every implementation (REF, AVX2, NEON): q is rounded to f16 before q·k
 *   (ggml converts the right-hand operand of its f16 matmuls); scores s = dot16(q16, k) *
 *   scale, where dot16 is tinyBLAS's: element i accumulates by FMA into lane i % 16 and the
 *   16 lanes are reduced in _mm512_reduce_add_ps's tree; m = max(s, sink); e = exp(s - m)
 *   by ggml_v_expf's AVX-512 algorithm; sum = Σ over blocks of 16 keys (counted from key 0)
 *   of the block's 16-lane reduction, in double, + expf(sink - m); each probability
 *   p = f16(e * (float)(1/sum)); out[d] = dot16 over the keys of p and v[d] (key j in lane
 *   j % 16, in key order) with no final division. llama.cpp's AVX2-only and aarch64 builds,
 *   and its one-token path (ggml_vec_dot_f16), sum in other orders: against them the results
 *   agree to the last bits only. Scores are kept on the stack while a head attends
 *   to at most 32768 keys; beyond that q·k is recomputed for the max, the sum and p·v.
 * Work is split over the pool by (token, kv head): one task runs every query head that
 * shares a kv head, so each K/V row is read once per group. Results do not depend on the
 * pool size. */
#define SPOOL_ATTN_GGML 1
SPOOL_API spool_status spool_attention(spool_pool *pool, const float *q, const uint16_t *k,
                                       const uint16_t *v, float *out, int32_t n_tok,
                                       int32_t n_head, int32_t n_head_kv, int32_t head_dim,
                                       int32_t n_kv, int32_t pos0, float scale, int32_t window,
                                       const float *sinks, int32_t flags);

/* Attention with different K and V head sizes and strided KV rows: everything as
 * spool_attention (causality, window, sinks, flags and their roundings, pool split, results
 * independent of the pool size) except the layout:
 * q:   (n_tok, n_head, head_dim_k) f32;  out: (n_tok, n_head, head_dim_v) f32.
 * k:   kv head h of position j is head_dim_k f16 at k + j*k_row_stride + h*head_dim_k;
 * v:   kv head h of position j is head_dim_v f16 at v + j*v_row_stride + h*head_dim_v.
 * Strides are in elements (uint16), k_row_stride >= n_head_kv*head_dim_k, v_row_stride >=
 * n_head_kv*head_dim_v. v may alias k (read only).
 * MLA in absorbed form (llama.cpp deepseek2 with wk_b/wv_b): one f16 cache row per position
 * of kv_lora_rank + n_rot values (latent first, then the roped part; 512 + 64 for
 * DeepSeek-V3), n_head_kv = 1, head_dim_k = k_row_stride = v_row_stride = kv_lora_rank +
 * n_rot, head_dim_v = kv_lora_rank, v = k (the latent prefix of the same rows); q holds per
 * head wk_b·q_nope then the roped q_pe; out is the per-head latent output before wv_b.
 * SPOOL_ATTN_GGML then reproduces llama.cpp's plain CPU path for it as spool_attention's
 * (kq = k·q with q rounded to f16; soft_max_ext with kq_scale; kqv = v·kq with the
 * probabilities rounded to f16 and v the f16 latent, both products in tinyBLAS's 16 lanes).
 * Head sizes up to 1024 each (SPOOL_E_RANGE beyond). Statuses as spool_attention, plus
 * SPOOL_E_INVALID for a row stride below the row's heads. */
SPOOL_API spool_status spool_attention_ex(spool_pool *pool, const float *q, const uint16_t *k,
                                          const uint16_t *v, float *out, int32_t n_tok,
                                          int32_t n_head, int32_t n_head_kv, int32_t head_dim_k,
                                          int32_t head_dim_v, int32_t k_row_stride,
                                          int32_t v_row_stride, int32_t n_kv, int32_t pos0,
                                          float scale, int32_t window, const float *sinks,
                                          int32_t flags);

/* ---- gated DeltaNet (Qwen3.5 / Qwen3-Next linear attention) -----------------------------
 * The ops of one linear-attention layer for n_tok tokens of ONE sequence (call once per
 * sequence, as attention), with the sequence's fixed-size states updated in place, so that
 * consecutive calls continue the sequence: a prompt in one call, in chunks, or token by token
 * gives the same bits. Layer order (llama.cpp's qwen35moe / qwen3next graph):
 *   qkv = in_proj(x) (n_tok, 2·n_k_head·dk + n_v_head·dv) → spool_ssm_conv(..SILU) →
 *   q | k | v slices of each row → spool_gated_delta_net(..L2NORM) → spool_gated_rmsnorm
 *   with z → out_proj; g, beta from spool_gdn_gates on the alpha/beta projections.
 *
 * spool_ssm_conv: causal depthwise conv1d with a rolling state (ggml_ssm_conv).
 * x: (n_tok, channels) f32; w: (channels, k) f32 — GGUF `ssm_conv1d` ({k, channels} in ggml
 * order: the k taps of a channel contiguous, oldest tap first); state: (k-1, channels) f32,
 * the previous k-1 inputs of the sequence, oldest row first (zeros for a new sequence; NULL
 * only when k == 1). With win = [state rows; x rows]:
 *   y[t][c] = Σ_{i<k} win[t+i][c] · w[c][i]   (f32, tap 0 first, each product rounded then
 *                                               added: ggml's order, the same bits on every
 *                                               implementation)
 * then, with SPOOL_CONV_SILU, y = y·sigmoid(y) (llama.cpp applies silu after ssm_conv).
 * Afterwards state holds the last k-1 rows of win. y (n_tok, channels) may be x (in place);
 * nothing else may overlap. Split over the pool by blocks of 64 channels; results do not
 * depend on the pool. n_tok == 0 leaves everything unchanged.
 * Statuses: SPOOL_E_INVALID (NULL, size < 1, unknown flag), SPOOL_E_RANGE (k > 16). */
#define SPOOL_CONV_SILU 1
SPOOL_API spool_status spool_ssm_conv(spool_pool *pool, const float *x, const float *w,
                                      float *state, float *y, int32_t n_tok, int32_t channels,
                                      int32_t k, int32_t flags);

/* spool_gdn_gates: the per-head decay and write strength of the delta rule, as llama.cpp's
 * graph computes them. alpha, b: (n_tok, n_head) outputs of `ssm_alpha` and `ssm_beta`;
 * dt_bias: n_head (`ssm_dt.bias`); a: n_head (`ssm_a`, which the GGUF stores as
 * -exp(A_log)). For each token t and head h:
 *   g[t][h]    = softplus(alpha[t][h] + dt_bias[h]) · a[h]   (the log of the decay, <= 0)
 *   beta[t][h] = 1 / (1 + expf(-b[t][h]))
 * with ggml's softplus (x > 20 ? x : logf(1 + expf(x))) in f32. Scalar libm arithmetic on
 * every implementation (n_tok·n_head values: ggml's bits). g may be alpha, beta may be b.
 * Statuses: SPOOL_E_INVALID (NULL, n_head < 1, n_tok < 0). */
SPOOL_API spool_status spool_gdn_gates(const float *alpha, const float *b, const float *dt_bias,
                                       const float *a, float *g, float *beta, int32_t n_tok,
                                       int32_t n_head);

/* spool_gated_delta_net: the gated delta rule with its recurrent state (ggml_gated_delta_net,
 * the fused op llama.cpp's CPU backend runs for decode AND prefill).
 * q, k: token t, key head kh at q + t·q_stride + kh·dk (k likewise with k_stride), f32;
 * v: token t, value head h at v + t·v_stride + h·dv; strides in floats (in the conv output
 * the three are slices of one row: q_stride = k_stride = v_stride = conv channels).
 * g, beta: (n_tok, n_v_head) from spool_gdn_gates. out: (n_tok, n_v_head, dv) contiguous.
 * state: (n_v_head, dv, dk) f32 — head h's matrix S (dk × dv, key × value) stored
 * transposed, row j = S[:, j] (llama.cpp's layout: s[h][j·dk + i] = S[i][j]); zeros for a
 * new sequence; updated in place.
 * Value head h reads key head kh = h / (n_v_head / n_k_head) (grouped: Qwen3-Next, whose
 * graph repeat-interleaves q and k), or with SPOOL_GDN_TILED kh = h % n_k_head (Qwen3.5 /
 * qwen35moe: the fused op broadcasts q and k that way, and the GGUF orders v heads to match).
 * With SPOOL_GDN_L2NORM, q and k are L2-normalized per head inside the op as llama.cpp's
 * build_gdn_l2_norm does: y = (x · (1/sqrtf(mean(x²) + eps/dk))) · (1/sqrtf(dk)), the sum of
 * squares in double (eps: the model's rms_norm_eps); without it q and k are used as given.
 * For each token t in order and each value head h, with e = expf(g[t][h]), b = beta[t][h]:
 *   S ← S · e;  d = (v_t − Sᵀk_t) · b;  S ← S + k_t ⊗ d;  out_t = (Sᵀq_t) · scale
 * (scale: llama.cpp uses 1/sqrt(dk)). The reference sums the dot products in double (ggml's
 * scalar form); AVX2/NEON use f32 FMA accumulators.
 * Prefill form: the rows of S (value dims) evolve independently, so the work is split over
 * the pool by (value head, block of 32 rows), and each task runs its rows through all
 * n_tok tokens in chunks of 16 (the chunk's normalized q and k on its stack, each row in L1
 * across the chunk). Every row sees the same arithmetic whatever the split, so results do
 * not depend on the pool, and one call of n tokens equals n calls of one token bit for bit.
 * Statuses: SPOOL_E_INVALID (NULL, size < 1, n_v_head not a multiple of n_k_head, a stride
 * below its row of heads, unknown flag, eps < 0 or NaN), SPOOL_E_RANGE (dk or dv > 512). */
#define SPOOL_GDN_L2NORM 1
#define SPOOL_GDN_TILED 2
SPOOL_API spool_status spool_gated_delta_net(spool_pool *pool, const float *q, const float *k,
                                             const float *v, const float *g, const float *beta,
                                             float *state, float *out, int32_t n_tok,
                                             int32_t n_k_head, int32_t n_v_head,
                                             int32_t head_dim_k, int32_t head_dim_v,
                                             int32_t q_stride, int32_t k_stride,
                                             int32_t v_stride, float scale, float eps,
                                             int32_t flags);

/* spool_gated_rmsnorm: the output norm of a DeltaNet layer (Qwen3.5's build_norm_gated:
 * norm first, then the gate). x, z, y: (n_rows, n) f32, one row per (token, value head);
 * w: n (`ssm_norm`) or NULL. y = (rmsnorm(x) · w) · silu(z), with spool_rmsnorm's and
 * spool_swiglu's arithmetic (silu(z) · that). y may be x, not z.
 * Statuses: SPOOL_E_INVALID (NULL x, z or y, n < 1, n_rows < 0). */
SPOOL_API spool_status spool_gated_rmsnorm(const float *x, const float *w, const float *z,
                                           float *y, int32_t n_rows, int32_t n, float eps);

/* ---- expert pager ----------------------------------------------------------------------
 * Explicit reads from SSD, many in flight (DESIGN.md §4; algorithm in cpu/pager.c).
 * A pager keeps n_threads reads in flight (the queue depth) with one of two backends:
 * io_uring (Linux: one thread keeps the reads on a ring) where it works, else n_threads
 * pread workers; both sleep when idle and behave the same in everything below.
 * spool_pager_create picks io_uring and falls back to threads when io_uring_setup fails
 * (or SPOOL_PAGER=threads is set); spool_pager_create_backend chooses explicitly.
 *
 * Requests: reqs holds n requests of SPOOL_PAGER_REQ_DOUBLES doubles each:
 *   { fd, dst address, len, file offset, need }
 * dst is the destination's numeric address (exact as a double: user addresses are below
 * 2^53). The first `need` bytes (need <= len; usually need == len) must arrive; end of
 * file after them ends the request quietly (the aligned superset of a range near end of
 * file), end of file before them is SPOOL_E_SHORT_READ. With an O_DIRECT fd, dst, len and
 * offset must be multiples of 4096, else submit fails with SPOOL_E_ALIGN and queues
 * nothing. Large requests are split into pieces (128 KiB..4 MiB) read by several workers.
 * The pager copies the requests; reqs may be reused as soon as submit returns. dst must
 * stay valid until the ticket is waited (or the pager destroyed).
 *
 * Tickets: submit returns a ticket > 0, or SPOOL_E_INVALID (bad request), SPOOL_E_ALIGN,
 * or SPOOL_E_RANGE when SPOOL_PAGER_MAX_TICKETS tickets are live. A ticket is live until
 * wait returns or poll reports it finished; every ticket must be waited or polled to the
 * end. Its outcome stays readable (wait, poll, error) until its slot is reused, at the
 * earliest after SPOOL_PAGER_MAX_TICKETS - 1 further submits. Unknown tickets give
 * SPOOL_E_INVALID.
 * wait blocks until every read of the ticket finished and returns SPOOL_OK or the first
 * failure: SPOOL_E_IO (errno via spool_pager_error), SPOOL_E_SHORT_READ. The remaining
 * reads of a failed ticket are skipped. poll: 0 pending, 1 done ok, < 0 the failure.
 * destroy drops queued reads no worker started, waits for the reads in flight and joins
 * the threads (quiesce before closing the library). Thread-safe; the workers (or the ring
 * thread and the kernel's io_uring workers) are the only other threads. */
#define SPOOL_PAGER_REQ_DOUBLES 5
#define SPOOL_PAGER_MAX_TICKETS 1024
/* `what` of spool_pager_error: details of the ticket's first failure */
#define SPOOL_PAGER_ERR_ERRNO 0    /* errno of SPOOL_E_IO (0 otherwise) */
#define SPOOL_PAGER_ERR_OFFSET 1   /* file offset of the failed request */
#define SPOOL_PAGER_ERR_LENGTH 2   /* length of the failed request */
#define SPOOL_PAGER_ERR_FD 3       /* fd of the failed request */
#define SPOOL_PAGER_ERR_AT 4       /* file position where the failing read stopped */
/* `what` of spool_pager_stat */
#define SPOOL_PAGER_STAT_BYTES 0     /* bytes delivered by successful reads (cumulative) */
#define SPOOL_PAGER_STAT_READS 1     /* pieces read successfully (cumulative) */
#define SPOOL_PAGER_STAT_BUSY_NS 2   /* ns reads were in flight, summed over reads (>= wall) */
#define SPOOL_PAGER_STAT_WALL_NS 3   /* nanoseconds with at least one read in flight */
#define SPOOL_PAGER_STAT_QUEUED 4    /* requests waiting in the queue now */
#define SPOOL_PAGER_STAT_IN_FLIGHT 5 /* reads in flight now */
#define SPOOL_PAGER_STAT_BACKEND 6   /* the backend reading: SPOOL_PAGER_BACKEND_* */
#define SPOOL_PAGER_STAT_FIXED_READS 7 /* pieces read into registered buffers (cumulative) */
/* backends of spool_pager_create_backend */
#define SPOOL_PAGER_BACKEND_AUTO 0    /* SPOOL_PAGER=threads|uring, else io_uring or threads */
#define SPOOL_PAGER_BACKEND_THREADS 1 /* n_threads pread workers (the reference) */
#define SPOOL_PAGER_BACKEND_URING 2   /* io_uring only: NULL (ENOSYS, EPERM..) where it fails */
typedef struct spool_pager spool_pager;
/** A pager of queue depth n_threads (clamped to 1..256), backend AUTO. NULL on failure
 * (errno kept). */
SPOOL_API spool_pager *spool_pager_create(int32_t n_threads);
/** A pager with the given backend (SPOOL_PAGER_BACKEND_*). NULL on failure: EINVAL for an
 * unknown backend, the reason io_uring is unavailable for BACKEND_URING (errno kept). */
SPOOL_API spool_pager *spool_pager_create_backend(int32_t n_threads, int32_t backend);
/** Drop queued reads, wait for the ones in flight, join the workers, free. NULL is ok. */
SPOOL_API void spool_pager_destroy(spool_pager *pager);
/** Queue depth: worker threads running, or reads kept in flight on the ring. */
SPOOL_API int32_t spool_pager_threads(const spool_pager *pager);
/** Queue n requests (layout above) under one ticket. Returns the ticket (> 0) or a status. */
SPOOL_API int32_t spool_pager_submit(spool_pager *pager, const double *reqs, int32_t n);
/** Block until the ticket's reads finished; SPOOL_OK or its first failure. */
SPOOL_API spool_status spool_pager_wait(spool_pager *pager, int32_t ticket);
/** Non-blocking: 0 pending, 1 done ok, < 0 the first failure. */
SPOOL_API int32_t spool_pager_poll(spool_pager *pager, int32_t ticket);
/** A detail (SPOOL_PAGER_ERR_*) of the ticket's first failure; SPOOL_E_INVALID if unknown. */
SPOOL_API double spool_pager_error(spool_pager *pager, int32_t ticket, int32_t what);
/** A statistic (SPOOL_PAGER_STAT_*); SPOOL_E_INVALID if unknown. */
SPOOL_API double spool_pager_stat(spool_pager *pager, int32_t what);
/** Register [buf, buf + len) (e.g. the expert cache) with an io_uring pager: its pages are
 * pinned once here, and reads into it skip the per-read pinning (IORING_OP_READ_FIXED,
 * about half the kernel's CPU time of an O_DIRECT read). Returns 1 when registered, 0 when
 * there is nothing to gain (threads backend, kernel before 5.19, or refused, e.g. over
 * RLIMIT_MEMLOCK: errno via spool_last_errno; reads work as before), SPOOL_E_RANGE when
 * the pager's 64 slots of <= 1 GiB are taken, SPOOL_E_INVALID for bad arguments. The
 * whole range is faulted in and pinned (resident, never reclaimed) until
 * spool_pager_unregister or destroy, and must stay allocated until then. */
SPOOL_API int32_t spool_pager_register(spool_pager *pager, void *buf, double len);
/** Drop a registration made at buf. SPOOL_OK, or SPOOL_E_INVALID if buf is not registered. */
SPOOL_API int32_t spool_pager_unregister(spool_pager *pager, void *buf);

#ifdef __cplusplus
}
#endif
#endif /* SPOOL_H */
