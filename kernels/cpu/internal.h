/*
 * internal.h — shared by the kernel sources; not part of the ABI.
 * Holds the block layouts of the quantized types (identical to ggml's, so bytes written by
 * one are read by the other), fp16/bf16 conversions, the run-time implementation switch,
 * and the thread-pool task interface.
 */
#ifndef SPOOL_INTERNAL_H
#define SPOOL_INTERNAL_H

#include "../include/spool.h"
#include <math.h>
#include <string.h>

/* ---- implementation switch (set by spool_set_impl, read by every op) ---- */
extern int32_t spool_impl_current; /* SPOOL_IMPL_REF / AVX2 / NEON, never AUTO */
#define SPOOL_USE_AVX2() (spool_impl_current == SPOOL_IMPL_AVX2)
#define SPOOL_USE_NEON() (spool_impl_current == SPOOL_IMPL_NEON)
/* spool_cpu_features(), detected once when the library loads (dispatch.c) */
extern int32_t spool_cpu_flags;

/* ---- thread pool tasks ----
 * fn(ctx, task, n_tasks) runs once for each task in [0, n_tasks), spread over the pool's
 * threads (the caller participates). Returns when all tasks are done. pool == NULL or a
 * pool of one thread runs the tasks serially on the caller. */
typedef void (*spool_task_fn)(void *ctx, int32_t task, int32_t n_tasks);
void spool_pool_run(spool_pool *pool, spool_task_fn fn, void *ctx, int32_t n_tasks);

/* errno of the last failed system call, per thread */
void spool_set_errno(int32_t e);

/* ---- fp16 / bf16 ---- */
static inline float spool_f16_to_f32_1(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do { e++; man <<= 1; } while ((man & 0x400) == 0);
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* round to nearest even, as ggml's GGML_FP32_TO_FP16 (which uses F16C / the same rounding) */
static inline uint16_t spool_f32_to_f16_1(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) { /* inf or nan */
    return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
  }
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow to inf */
  if (ax < 0x38800000u) { /* subnormal or zero in f16 */
    if (ax < 0x33000000u) return (uint16_t)sign; /* rounds to zero */
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffff) | 0x800000;
    /* value = m * 2^(e-150); f16 subnormal units are 2^-24, so shift right by 126 - e */
    uint32_t rem_bits = 126 - e; /* 14..24 */
    uint32_t halfway = 1u << (rem_bits - 1);
    uint32_t rem = m & ((1u << rem_bits) - 1);
    uint32_t res = m >> rem_bits;
    if (rem > halfway || (rem == halfway && (res & 1))) res++;
    return (uint16_t)(sign | res);
  }
  uint32_t e = (ax >> 23) - 127 + 15;
  uint32_t m = ax & 0x7fffff;
  uint32_t res = (e << 10) | (m >> 13);
  uint32_t rem = m & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (res & 1))) res++; /* may carry into exponent: ok */
  return (uint16_t)(sign | res);
}

static inline float spool_bf16_to_f32_1(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* as ggml_compute_fp32_to_bf16: round to nearest even, NaN kept quiet */
static inline uint16_t spool_f32_to_bf16_1(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 64);
  return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

/* ---- block layouts (ggml-compatible) ---- */
#define QK4_0 32
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;          /* 18 bytes */
#define QK4_1 32
typedef struct { uint16_t d; uint16_t m; uint8_t qs[QK4_1 / 2]; } block_q4_1; /* 20 bytes */
#define QK8_0 32
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;               /* 34 bytes */
#define QK8_1 32
typedef struct { uint16_t d; uint16_t s; int8_t qs[QK8_1]; } block_q8_1;   /* 36 bytes */
#define QK_K 256
#define K_SCALE_SIZE 12
typedef struct { uint16_t d; uint16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K; /* 144 */
typedef struct { uint16_t d; uint16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K; /* 176 */
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K; /* 210 */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K; /* 292 */
#define QK_MXFP4 32
typedef struct { uint8_t e; uint8_t qs[QK_MXFP4 / 2]; } block_mxfp4;        /* 17 bytes */

_Static_assert(sizeof(block_q4_0) == 18, "q4_0");
_Static_assert(sizeof(block_q8_0) == 34, "q8_0");
_Static_assert(sizeof(block_q4_1) == 20, "q4_1");
_Static_assert(sizeof(block_q8_1) == 36, "q8_1");
_Static_assert(sizeof(block_q4_K) == 144, "q4_K");
_Static_assert(sizeof(block_q5_K) == 176, "q5_K");
_Static_assert(sizeof(block_q6_K) == 210, "q6_K");
_Static_assert(sizeof(block_q8_K) == 292, "q8_K");
_Static_assert(sizeof(block_mxfp4) == 17, "mxfp4");

#endif
