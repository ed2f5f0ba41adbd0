/*
 * deltanet_ref.h — block kernels of the gated DeltaNet ops (spool_ssm_conv,
 * spool_gated_delta_net), one set per implementation (ref = scalar reference, avx2, neon).
 * Not part of the ABI: kernels/cpu/deltanet.c validates arguments, splits the work over the
 * pool, prepares the per-token scalars and picks the set from spool_impl_current.
 *
 *  - conv_block: nc channels of the causal depthwise conv over n_tok tokens. x and y are
 *    (n_tok, ld) rows (pointers already at the block's first channel), state (k-1, ld) rows
 *    (oldest first), wt the block's kernel transposed to (k, nc) rows (tap i of channel c at
 *    wt[i*nc + c]). y[t][c] = Σ_{i<k} win(t+i)[c] · wt[i][c], win = [state rows; x rows],
 *    the products and the sum in f32, tap 0 first, one rounding per step (no FMA: every
 *    implementation gives the reference's bits). Tokens run from last to first so that y
 *    may be x. The state is not touched here; silu != 0 applies y = y·sigmoid(y) after.
 *  - gdn_rows: nr rows of one head's state, each row (value dim j) dk floats at
 *    S + r*dk, over nt tokens: per token with decay e = exp(g), beta b, normalized key kn
 *    and query qn (nt rows of dk), value v[t][j] (v + t*v_stride + r):
 *      row *= e;  d = (v - row·kn) · b;  row += kn · d;  out = (row·qn) · scale
 *    written to out + t*out_stride + r. Rows do not interact, so any split of a head's rows
 *    gives the same bits.
 */
#ifndef SPOOL_DELTANET_REF_H
#define SPOOL_DELTANET_REF_H

#include "../internal.h"

/* Largest conv kernel (taps) spool_ssm_conv takes: the transposed kernel block lives on
 * the stack. */
#define SPOOL_CONV_MAX_K 16
/* Channels per conv task. */
#define SPOOL_CONV_BLOCK 64
/* Largest head size (key and value) of spool_gated_delta_net. */
#define SPOOL_GDN_MAX_HEAD_DIM 512
/* Tokens whose normalized q and k one task keeps on the stack at a time. */
#define SPOOL_GDN_CHUNK 16
/* State rows (value dims) per task. */
#define SPOOL_GDN_ROWS 32

#define SPOOL_DECLARE_GDN(P)                                                                  \
  void P##_conv_block(const float *x, const float *state, const float *wt, float *y,          \
                      int32_t n_tok, int32_t ld, int32_t nc, int32_t k, int32_t silu);        \
  void P##_gdn_rows(float *S, int32_t nr, int32_t dk, const float *kn, const float *qn,       \
                    const float *v, size_t v_stride, const float *e, const float *b,          \
                    float scale, float *out, size_t out_stride, int32_t nt);

SPOOL_DECLARE_GDN(spool_ref)
#if defined(SPOOL_HAVE_AVX2)
SPOOL_DECLARE_GDN(spool_avx2)
#endif
#if defined(SPOOL_HAVE_NEON)
SPOOL_DECLARE_GDN(spool_neon)
#endif

/* win(j)[c] of conv_block: state row j for j < k-1, else x row j-(k-1). */
static inline const float *spool_conv_win(const float *x, const float *state, int32_t ld,
                                          int32_t k, int32_t j) {
  return j < k - 1 ? state + (size_t)j * (size_t)ld : x + (size_t)(j - (k - 1)) * (size_t)ld;
}

#endif
