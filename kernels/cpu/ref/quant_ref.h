/*
 * quant_ref.h — internal prototypes of the quantization kernels, shared by quant.c (the
 * public entry points and the matmul driver), ref/quant_ref.c (scalar reference),
 * x86/quant_avx2.c and arm/quant_neon.c. Not part of the ABI.
 *
 * Kernel shapes (n is always a multiple of the type's block size):
 *   dequant:  (src blocks, dst f32, n)               -> n floats
 *   quant:    (src f32, dst blocks, n)               -> n/blk blocks
 *   dot:      (n, w row blocks, x)                   -> float; x is f32 for the F32 act mode
 *                                                       and Q8_0 / Q8_K blocks for Q8 mode
 *   tile:     (n, w, w stride, nr, x, x stride, nt, y, y stride)
 *             y[t*ys + r] = dot(n, w + r*ws, x + t*xs) for r < nr, t < nt (Q8 mode); the
 *             driver passes nt == 1 with nr <= 4 (matvec) or nr == 1 with nt <= 4 (prefill).
 *             Each (r, t) result is bit-identical to the type's dot, whatever nr and nt.
 */
#ifndef SPOOL_QUANT_REF_H
#define SPOOL_QUANT_REF_H

#include "../internal.h"

typedef void (*spool_dequant_fn)(const void *src, float *dst, int32_t n);
typedef void (*spool_quant_fn)(const float *src, void *dst, int32_t n);
typedef float (*spool_dot_fn)(int32_t n, const void *w, const void *x);
typedef void (*spool_tile_fn)(int32_t n, const void *w, size_t ws, int32_t nr, const void *x,
                              size_t xs, int32_t nt, float *y, size_t ys);

/* ---- shared by the matmul driver (quant.c) and the MoE FFN (moe.c) ---- */
#define DQ_CHUNK 2048              /* f32 values dequantized at a time (8 KiB) */
#define TILE_BYTES (192 * 1024)    /* activation bytes of one token tile */
#define TILE_ROWS 4                /* matvec rows per tile call (tile_q8 kernels) */
#define TILE_TOKS 4                /* prefill tokens per tile call */
#define L1_TILE_BYTES (20 * 1024)  /* quantized activation bytes of a prefill token tile */
#define L2_TASK_BYTES (256 * 1024) /* weight bytes of one prefill task (re-read per token tile) */

/* The kernels of one weight type in the implementation selected by spool_impl_current
 * (REF / AVX2 / NEON, with the NEON SDOT variants where the CPU has them). */
typedef struct {
  spool_dequant_fn dequant; /* weight type -> f32 */
  spool_dot_fn dot_f32;     /* direct dot with f32 x (float weight types), or NULL */
  spool_dot_fn dot_q8;      /* integer dot with quantized x, or NULL */
  spool_quant_fn quant_act; /* x -> Q8_0 / Q8_K */
  spool_dot_fn dot_ff;      /* f32 · f32, for the dequantize-chunk path */
  spool_tile_fn tile_q8;    /* nr rows x nt tokens of dot_q8 at once, or NULL (row by row) */
} spool_kernels;
void spool_select_kernels(int32_t type, spool_kernels *k);
/* Block size, block bytes and activation type of the Q8 mode (SPOOL_TYPE_Q8_0 / Q8_K; -1:
 * float weights, f32 path; -2: Q8_K, not a weight type). Returns 0 for an unknown type. */
int spool_type_traits(int32_t type, int32_t *blck, int32_t *bytes, int32_t *act);
/* Bytes of one quantized activation row of cols values (act_type Q8_0 / Q8_K; else 0). */
size_t spool_act_row_bytes(int32_t act_type, int32_t cols);
/* Tokens per pass over a task's rows: activations of a tile stay in L1 (tile kernels) or L2. */
int32_t spool_tok_tile(int use_tile, size_t tok_bytes, int32_t n_tok);
/* The matmul inner loop: y[t*ys + r] = W[r,:] · x_t for r in [r0, r1), t in [0, n_tok).
 * xq != NULL: x_t is the quantized row xq + t*xq_row (tile_q8 kernel if there is one, else
 * dot_q8); xq == NULL: x_t is the f32 row x + t*x_row (dot_f32, or dequantize-chunk dots).
 * Every (r, t) result is the same bits whatever r0, r1, n_tok and tok_tile. */
void spool_rows_product(const spool_kernels *k, const uint8_t *w, size_t row_bytes, int32_t cols,
                        int32_t blck, int32_t wbytes, int32_t r0, int32_t r1, const uint8_t *xq,
                        size_t xq_row, const float *x, size_t x_row, int32_t n_tok,
                        int32_t tok_tile, float *y, size_t ys);

/* e8m0 exponent -> float, halved (ggml's GGML_E8M0_TO_FP32_HALF): the mxfp4 table holds
 * doubled E2M1 values, so the scale is 2^(e-128). */
static inline float spool_e8m0_half(uint8_t e) {
  uint32_t bits = e < 2 ? (0x00200000u << e) : ((uint32_t)(e - 1) << 23);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
extern const int8_t spool_kvalues_mxfp4[16];

/* ---- scalar reference (ref/quant_ref.c) ---- */
/* weight quantizers: byte-identical to ggml's quantize_row_*_ref */
void spool_ref_quant_f32(const float *x, void *y, int32_t n);
void spool_ref_quant_f16(const float *x, void *y, int32_t n);
void spool_ref_quant_bf16(const float *x, void *y, int32_t n);
void spool_ref_quant_q4_0(const float *x, void *y, int32_t n);
void spool_ref_quant_q8_0(const float *x, void *y, int32_t n);
void spool_ref_quant_q4_1(const float *x, void *y, int32_t n);
void spool_ref_quant_q8_1(const float *x, void *y, int32_t n);
void spool_ref_quant_q4_K(const float *x, void *y, int32_t n);
void spool_ref_quant_q5_K(const float *x, void *y, int32_t n);
void spool_ref_quant_q6_K(const float *x, void *y, int32_t n);
void spool_ref_quant_q8_K(const float *x, void *y, int32_t n);
void spool_ref_quant_mxfp4(const float *x, void *y, int32_t n);

/* dequantizers: bit-identical to ggml's dequantize_row_* */
void spool_ref_dequant_f32(const void *x, float *y, int32_t n);
void spool_ref_dequant_f16(const void *x, float *y, int32_t n);
void spool_ref_dequant_bf16(const void *x, float *y, int32_t n);
void spool_ref_dequant_q4_0(const void *x, float *y, int32_t n);
void spool_ref_dequant_q8_0(const void *x, float *y, int32_t n);
void spool_ref_dequant_q4_1(const void *x, float *y, int32_t n);
void spool_ref_dequant_q8_1(const void *x, float *y, int32_t n);
void spool_ref_dequant_q4_K(const void *x, float *y, int32_t n);
void spool_ref_dequant_q5_K(const void *x, float *y, int32_t n);
void spool_ref_dequant_q6_K(const void *x, float *y, int32_t n);
void spool_ref_dequant_q8_K(const void *x, float *y, int32_t n);
void spool_ref_dequant_mxfp4(const void *x, float *y, int32_t n);

/* f32 · f32 and float-weight · f32 dots */
float spool_ref_dot_f32_f32(int32_t n, const void *w, const void *x);
float spool_ref_dot_f16_f32(int32_t n, const void *w, const void *x);
float spool_ref_dot_bf16_f32(int32_t n, const void *w, const void *x);

/* integer dots against quantized activations (ggml's vec_dot_*_q8_0 / *_q8_K) */
float spool_ref_dot_q4_0_q8_0(int32_t n, const void *w, const void *x);
float spool_ref_dot_q8_0_q8_0(int32_t n, const void *w, const void *x);
float spool_ref_dot_q4_1_q8_1(int32_t n, const void *w, const void *x);
float spool_ref_dot_mxfp4_q8_0(int32_t n, const void *w, const void *x);
float spool_ref_dot_q4_K_q8_K(int32_t n, const void *w, const void *x);
float spool_ref_dot_q5_K_q8_K(int32_t n, const void *w, const void *x);
float spool_ref_dot_q6_K_q8_K(int32_t n, const void *w, const void *x);

/* ---- AVX2 (x86/quant_avx2.c, compiled only with SPOOL_HAVE_AVX2) ---- */
void spool_avx2_quant_act_q8_0(const float *x, void *y, int32_t n);
void spool_avx2_quant_act_q8_K(const float *x, void *y, int32_t n);
void spool_avx2_dequant_f16(const void *x, float *y, int32_t n);
void spool_avx2_dequant_bf16(const void *x, float *y, int32_t n);
void spool_avx2_dequant_q4_0(const void *x, float *y, int32_t n);
void spool_avx2_dequant_q8_0(const void *x, float *y, int32_t n);
void spool_avx2_dequant_q4_K(const void *x, float *y, int32_t n);
void spool_avx2_dequant_q5_K(const void *x, float *y, int32_t n);
void spool_avx2_dequant_q6_K(const void *x, float *y, int32_t n);
void spool_avx2_dequant_mxfp4(const void *x, float *y, int32_t n);
float spool_avx2_dot_f32_f32(int32_t n, const void *w, const void *x);
float spool_avx2_dot_f16_f32(int32_t n, const void *w, const void *x);
float spool_avx2_dot_bf16_f32(int32_t n, const void *w, const void *x);
float spool_avx2_dot_q4_0_q8_0(int32_t n, const void *w, const void *x);
float spool_avx2_dot_q4_1_q8_1(int32_t n, const void *w, const void *x);
float spool_avx2_dot_q8_0_q8_0(int32_t n, const void *w, const void *x);
float spool_avx2_dot_mxfp4_q8_0(int32_t n, const void *w, const void *x);
float spool_avx2_dot_q4_K_q8_K(int32_t n, const void *w, const void *x);
float spool_avx2_dot_q5_K_q8_K(int32_t n, const void *w, const void *x);
float spool_avx2_dot_q6_K_q8_K(int32_t n, const void *w, const void *x);
void spool_avx2_tile_q8_0_q8_0(int32_t n, const void *w, size_t ws, int32_t nr, const void *x,
                               size_t xs, int32_t nt, float *y, size_t ys);
void spool_avx2_tile_mxfp4_q8_0(int32_t n, const void *w, size_t ws, int32_t nr, const void *x,
                                size_t xs, int32_t nt, float *y, size_t ys);
void spool_avx2_tile_q4_K_q8_K(int32_t n, const void *w, size_t ws, int32_t nr, const void *x,
                               size_t xs, int32_t nt, float *y, size_t ys);
void spool_avx2_tile_q6_K_q8_K(int32_t n, const void *w, size_t ws, int32_t nr, const void *x,
                               size_t xs, int32_t nt, float *y, size_t ys);
/* read-only sweep for the bandwidth benchmark: returns a checksum */
float spool_avx2_sum_bytes(const void *p, size_t bytes);

/* ---- NEON (arm/quant_neon.c, compiled only with SPOOL_HAVE_NEON) ---- */
void spool_neon_quant_act_q8_0(const float *x, void *y, int32_t n);
void spool_neon_quant_act_q8_K(const float *x, void *y, int32_t n);
void spool_neon_dequant_f16(const void *x, float *y, int32_t n);
void spool_neon_dequant_bf16(const void *x, float *y, int32_t n);
void spool_neon_dequant_q4_0(const void *x, float *y, int32_t n);
void spool_neon_dequant_q8_0(const void *x, float *y, int32_t n);
void spool_neon_dequant_q4_K(const void *x, float *y, int32_t n);
void spool_neon_dequant_q5_K(const void *x, float *y, int32_t n);
void spool_neon_dequant_q6_K(const void *x, float *y, int32_t n);
void spool_neon_dequant_mxfp4(const void *x, float *y, int32_t n);
float spool_neon_dot_f32_f32(int32_t n, const void *w, const void *x);
float spool_neon_dot_f16_f32(int32_t n, const void *w, const void *x);
float spool_neon_dot_bf16_f32(int32_t n, const void *w, const void *x);
float spool_neon_dot_q4_0_q8_0(int32_t n, const void *w, const void *x);
float spool_neon_dot_q8_0_q8_0(int32_t n, const void *w, const void *x);
float spool_neon_dot_mxfp4_q8_0(int32_t n, const void *w, const void *x);
float spool_neon_dot_q4_K_q8_K(int32_t n, const void *w, const void *x);
float spool_neon_dot_q5_K_q8_K(int32_t n, const void *w, const void *x);
float spool_neon_dot_q6_K_q8_K(int32_t n, const void *w, const void *x);
float spool_neon_sum_bytes(const void *p, size_t bytes);
/* the integer dots again, built with +dotprod (arm/quant_neon_dotprod.c); only called when
 * spool_cpu_features() has SPOOL_CPU_DOTPROD */
float spool_neondp_dot_q4_0_q8_0(int32_t n, const void *w, const void *x);
float spool_neondp_dot_q8_0_q8_0(int32_t n, const void *w, const void *x);
float spool_neondp_dot_mxfp4_q8_0(int32_t n, const void *w, const void *x);
float spool_neondp_dot_q4_K_q8_K(int32_t n, const void *w, const void *x);
float spool_neondp_dot_q5_K_q8_K(int32_t n, const void *w, const void *x);
float spool_neondp_dot_q6_K_q8_K(int32_t n, const void *w, const void *x);

#endif
