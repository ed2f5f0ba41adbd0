/*
 * ops_ref.h — row-level building blocks of the elementwise, normalization, RoPE and
 * attention ops, one set per implementation (ref = scalar reference, avx2, neon). Not part
 * of the ABI: kernels/cpu/ops.c validates arguments, picks the set from
 * spool_impl_current and loops over rows / tokens / heads.
 *
 * Shared layouts:
 *  - a RoPE "cache" for one position is two arrays of n_rot/2 floats, cos[i] and sin[i]
 *    (already multiplied by mscale), built once per token by spool_rope_cache (scalar, all
 *    implementations: it is libm work per token, not per head);
 *  - attention_heads handles nh query heads that share one kv head: q holds the nh heads
 *    back to back (hdk f32 each), out likewise (hdv f32 each), sinks (or NULL) their nh sink
 *    logits; key j in [j0, j1] is at k + j*k_stride (f16, hdk values), value j at
 *    v + j*v_stride (f16, hdv values; v may point into the key rows, as MLA's does); flags is
 *    spool_attention's (0 or SPOOL_ATTN_GGML). Each head's arithmetic does not depend on nh,
 *    so any split of a group gives the same bits.
 */
#ifndef SPOOL_OPS_REF_H
#define SPOOL_OPS_REF_H

#include "../internal.h"

/* Largest head_dim attention accepts (its accumulator lives on the stack) and largest n_rot
 * RoPE accepts (its cos/sin cache lives on the stack). */
#define SPOOL_ATTN_MAX_HEAD_DIM 1024
#define SPOOL_ROPE_MAX_ROT 1024
/* Keys scored per online-softmax block in attention. */
#define SPOOL_ATTN_BLOCK 64
/* Accumulator floats one attention task keeps on the stack (nh * head_dim <= this). */
#define SPOOL_ATTN_MAX_ACC 8192
/* SPOOL_ATTN_GGML: scores one task keeps on the stack (128 KiB). As many heads as fit keep
 * their scores from the one q·k pass; a head whose key range (rounded out to 16 keys)
 * does not fit recomputes q·k in each of the three passes, in blocks of SPOOL_ATTN_BLOCK (the
 * same bits either way, at about twice the cost). */
#define SPOOL_ATTN_GGML_SCORES 32768

/* ggml_rope_yarn_corr_dims: [start, end] pair-dimension range of the YaRN ramp. */
void spool_rope_corr_dims(int32_t n_rot, int32_t n_ctx_orig, float freq_base, float beta_fast,
                          float beta_slow, float dims[2]);
/* cos/sin of every pair for one position, exactly as ggml_rope_cache_init (forward). */
void spool_rope_cache(int32_t pos, int32_t n_rot, float freq_base, float freq_scale,
                      float ext_factor, float attn_factor, const float corr_dims[2],
                      const float *freq_factors, float *cos_out, float *sin_out);

#define SPOOL_DECLARE_OPS(P)                                                                  \
  void P##_rmsnorm_row(const float *x, const float *w, float *y, int32_t n, float eps);       \
  void P##_softmax_row(float *x, int32_t n);                                                  \
  void P##_silu(const float *x, float *y, int32_t n);                                         \
  void P##_swiglu(const float *gate, const float *up, float *y, int32_t n);                   \
  void P##_f32_to_f16(const float *src, uint16_t *dst, int32_t n);                            \
  void P##_f16_to_f32(const uint16_t *src, float *dst, int32_t n);                            \
  void P##_rope_head(float *x, int32_t n_rot, int32_t mode, const float *cs, const float *sn); \
  void P##_attn_heads(const float *q, int32_t nh, const uint16_t *k, const uint16_t *v,       \
                      size_t k_stride, size_t v_stride, int32_t hdk, int32_t hdv, int32_t j0,  \
                      int32_t j1, float scale, const float *sinks, int32_t flags, float *out);

SPOOL_DECLARE_OPS(spool_ref)
#if defined(SPOOL_HAVE_AVX2)
SPOOL_DECLARE_OPS(spool_avx2)
#endif
#if defined(SPOOL_HAVE_NEON)
SPOOL_DECLARE_OPS(spool_neon)
#endif

/* Most expert groups spool_topk_route_groups takes (their scores live on the stack). */
#define SPOOL_ROUTE_MAX_GROUPS 1024

/* One token of spool_topk_route / spool_topk_route_groups (scalar on every implementation:
 * n_expert·k compares). n_group <= 1: no group limit. */
void spool_ref_topk_route_token(const float *logits, const float *bias, int32_t n_expert,
                                int32_t k, int32_t gating, int32_t norm, float scale,
                                int32_t n_group, int32_t n_group_used, int32_t *ids,
                                float *weights);

#endif
