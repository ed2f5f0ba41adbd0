/*
 * quant_ref.c — scalar reference of spool's quantization: weight quantizers, dequantizers,
 * activation quantizers and dot products.
 *
 * Data layout: ggml's blocks (internal.h). A row of n values is n/blk consecutive blocks.
 *  - Q8_0 / Q4_0 / MXFP4: 32 values a block, one scale (f16, f16, e8m0). Q4_0 and MXFP4 pack
 *    value j in the low nibble of qs[j] and value j+16 in the high nibble.
 *  - Q4_K / Q5_K: 256 values, 8 sub-blocks of 32 with 6-bit scales and mins packed in 12
 *    bytes, super-block f16 d and dmin; value = d*sc*q - dmin*m. qs holds, per 64 values,
 *    32 bytes: low nibbles are values 0..31, high nibbles 32..63. Q5_K adds qh: bit 2k of
 *    qh[l] is the 5th bit of value 64k+l, bit 2k+1 that of value 64k+32+l.
 *  - Q6_K: 256 values, 16 sub-blocks of 16 with int8 scales, f16 d; value = d*sc*(q-32).
 *  - Q8_K (activations only): f32 d, 256 int8, and 16 int16 sums of each 16 values (bsums),
 *    which let the k-quant dots subtract the mins / the -32 offset without touching x again.
 *
 * Algorithms: the quantizers are ports of ggml's reference quantizers (quantize_row_*_ref in
 * ggml-quants.c: the plain absmax scale for Q4_0/Q8_0, make_qkx2_quants' weighted min/scale
 * search for Q4_K/Q5_K, make_qx_quants' rmse search for Q6_K, e8m0 scale plus nearest table
 * entry for MXFP4) with the same float operations in the same order, so their bytes are
 * identical to llama.cpp's. This file must be compiled without FP contraction (the build
 * uses -std=c11, which turns it off in GCC and Clang), or the float rounding would differ.
 * The dots compute exact integer sums per (sub-)block and combine them in f32, as ggml's
 * generic kernels do.
 */
#include "quant_ref.h"
#include <float.h>
#include <stdbool.h>

#define QMAX(a, b) ((a) > (b) ? (a) : (b))
#define QMIN(a, b) ((a) < (b) ? (a) : (b))
#define GROUP_MAX_EPS 1e-15f

const int8_t spool_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* round to nearest, ties to even, for |f| <= 2^22 (ggml's nearest_int) */
static inline int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int i;
  memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

/* ================================ float types ================================ */

void spool_ref_quant_f32(const float *x, void *y, int32_t n) { memcpy(y, x, (size_t)n * 4); }

void spool_ref_quant_f16(const float *x, void *vy, int32_t n) {
  uint16_t *y = (uint16_t *)vy;
  for (int32_t i = 0; i < n; i++) y[i] = spool_f32_to_f16_1(x[i]);
}

void spool_ref_quant_bf16(const float *x, void *vy, int32_t n) {
  uint16_t *y = (uint16_t *)vy;
  for (int32_t i = 0; i < n; i++) y[i] = spool_f32_to_bf16_1(x[i]);
}

void spool_ref_dequant_f32(const void *x, float *y, int32_t n) { memcpy(y, x, (size_t)n * 4); }

void spool_ref_dequant_f16(const void *vx, float *y, int32_t n) {
  const uint16_t *x = (const uint16_t *)vx;
  for (int32_t i = 0; i < n; i++) y[i] = spool_f16_to_f32_1(x[i]);
}

void spool_ref_dequant_bf16(const void *vx, float *y, int32_t n) {
  const uint16_t *x = (const uint16_t *)vx;
  for (int32_t i = 0; i < n; i++) y[i] = spool_bf16_to_f32_1(x[i]);
}

/* ================================ Q4_0 / Q8_0 / MXFP4 ================================ */

void spool_ref_quant_q4_0(const float *x, void *vy, int32_t n) {
  block_q4_0 *y = (block_q4_0 *)vy;
  const int nb = n / QK4_0;
  for (int i = 0; i < nb; i++) {
    const float *xb = x + i * QK4_0;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK4_0; j++) {
      if (amax < fabsf(xb[j])) { amax = fabsf(xb[j]); max = xb[j]; }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = spool_f32_to_f16_1(d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      const float x0 = xb[j] * id;
      const float x1 = xb[QK4_0 / 2 + j] * id;
      int v0 = (int8_t)(int)(x0 + 8.5f), v1 = (int8_t)(int)(x1 + 8.5f);
      uint8_t q0 = (uint8_t)QMIN(15, v0), q1 = (uint8_t)QMIN(15, v1);
      y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

void spool_ref_dequant_q4_0(const void *vx, float *y, int32_t n) {
  const block_q4_0 *x = (const block_q4_0 *)vx;
  const int nb = n / QK4_0;
  for (int i = 0; i < nb; i++) {
    const float d = spool_f16_to_f32_1(x[i].d);
    for (int j = 0; j < QK4_0 / 2; j++) {
      const int x0 = (x[i].qs[j] & 0x0F) - 8;
      const int x1 = (x[i].qs[j] >> 4) - 8;
      y[i * QK4_0 + j] = x0 * d;
      y[i * QK4_0 + j + QK4_0 / 2] = x1 * d;
    }
  }
}

void spool_ref_quant_q8_0(const float *x, void *vy, int32_t n) {
  block_q8_0 *y = (block_q8_0 *)vy;
  const int nb = n / QK8_0;
  for (int i = 0; i < nb; i++) {
    const float *xb = x + i * QK8_0;
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) amax = QMAX(amax, fabsf(xb[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = spool_f32_to_f16_1(d);
    for (int j = 0; j < QK8_0; j++) y[i].qs[j] = (int8_t)roundf(xb[j] * id);
  }
}

void spool_ref_dequant_q8_0(const void *vx, float *y, int32_t n) {
  const block_q8_0 *x = (const block_q8_0 *)vx;
  const int nb = n / QK8_0;
  for (int i = 0; i < nb; i++) {
    const float d = spool_f16_to_f32_1(x[i].d);
    for (int j = 0; j < QK8_0; j++) y[i * QK8_0 + j] = x[i].qs[j] * d;
  }
}

/* Q4_1: value = q * d + m, q in 0..15 (low nibbles hold values 0..15 of the block, high
 * nibbles 16..31), d = (max - min) / 15, m = min. */
void spool_ref_quant_q4_1(const float *x, void *vy, int32_t n) {
  block_q4_1 *y = (block_q4_1 *)vy;
  const int nb = n / QK4_1;
  for (int i = 0; i < nb; i++) {
    const float *xb = x + i * QK4_1;
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK4_1; j++) {
      if (xb[j] < min) min = xb[j];
      if (xb[j] > max) max = xb[j];
    }
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = spool_f32_to_f16_1(d);
    y[i].m = spool_f32_to_f16_1(min);
    for (int j = 0; j < QK4_1 / 2; j++) {
      const float x0 = (xb[j] - min) * id;
      const float x1 = (xb[QK4_1 / 2 + j] - min) * id;
      const uint8_t q0 = (uint8_t)QMIN(15, (int8_t)(x0 + 0.5f));
      const uint8_t q1 = (uint8_t)QMIN(15, (int8_t)(x1 + 0.5f));
      y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

void spool_ref_dequant_q4_1(const void *vx, float *y, int32_t n) {
  const block_q4_1 *x = (const block_q4_1 *)vx;
  const int nb = n / QK4_1;
  for (int i = 0; i < nb; i++) {
    const float d = spool_f16_to_f32_1(x[i].d);
    const float m = spool_f16_to_f32_1(x[i].m);
    for (int j = 0; j < QK4_1 / 2; j++) {
      const int x0 = x[i].qs[j] & 0x0F;
      const int x1 = x[i].qs[j] >> 4;
      y[i * QK4_1 + j] = x0 * d + m;
      y[i * QK4_1 + j + QK4_1 / 2] = x1 * d + m;
    }
  }
}

/* Q8_1 (activations of Q4_1 products): Q8_0 plus s = d * sum(q), so that the min term of a
 * Q4_1 block is m * s (ggml's quantize_row_q8_1_ref). */
void spool_ref_quant_q8_1(const float *x, void *vy, int32_t n) {
  block_q8_1 *y = (block_q8_1 *)vy;
  const int nb = n / QK8_1;
  for (int i = 0; i < nb; i++) {
    const float *xb = x + i * QK8_1;
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; j++) amax = QMAX(amax, fabsf(xb[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = spool_f32_to_f16_1(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; j++) {
      y[i].qs[j] = (int8_t)roundf(xb[j] * id);
      sum += y[i].qs[j];
    }
    y[i].s = spool_f32_to_f16_1(sum * d);
  }
}

void spool_ref_dequant_q8_1(const void *vx, float *y, int32_t n) {
  const block_q8_1 *x = (const block_q8_1 *)vx;
  const int nb = n / QK8_1;
  for (int i = 0; i < nb; i++) {
    const float d = spool_f16_to_f32_1(x[i].d);
    for (int j = 0; j < QK8_1; j++) y[i * QK8_1 + j] = x[i].qs[j] * d;
  }
}

static inline int best_index_mxfp4(float x, float e) {
  int best = 0;
  float best_err = fabsf(spool_kvalues_mxfp4[0] * e - x);
  for (int i = 1; i < 16; i++) {
    float err = fabsf(spool_kvalues_mxfp4[i] * e - x);
    if (err < best_err) { best = i; best_err = err; }
  }
  return best;
}

void spool_ref_quant_mxfp4(const float *x, void *vy, int32_t n) {
  block_mxfp4 *y = (block_mxfp4 *)vy;
  const int nb = n / QK_MXFP4;
  for (int i = 0; i < nb; i++) {
    const float *xb = x + i * QK_MXFP4;
    float amax = 0.0f;
    for (int j = 0; j < QK_MXFP4; j++) {
      if (amax < fabsf(xb[j])) amax = fabsf(xb[j]);
    }
    const uint8_t e = amax > 0.0f ? (uint8_t)(int)(floorf(log2f(amax)) - 2 + 127) : 0;
    const float d = spool_e8m0_half(e);
    y[i].e = e;
    for (int j = 0; j < QK_MXFP4 / 2; j++) {
      const uint8_t x0 = (uint8_t)best_index_mxfp4(xb[j], d);
      const uint8_t x1 = (uint8_t)best_index_mxfp4(xb[QK_MXFP4 / 2 + j], d);
      y[i].qs[j] = (uint8_t)(x0 | (x1 << 4));
    }
  }
}

void spool_ref_dequant_mxfp4(const void *vx, float *y, int32_t n) {
  const block_mxfp4 *x = (const block_mxfp4 *)vx;
  const int nb = n / QK_MXFP4;
  for (int i = 0; i < nb; i++) {
    const float d = spool_e8m0_half(x[i].e);
    for (int j = 0; j < QK_MXFP4 / 2; j++) {
      const int8_t x0 = spool_kvalues_mxfp4[x[i].qs[j] & 0x0F];
      const int8_t x1 = spool_kvalues_mxfp4[x[i].qs[j] >> 4];
      y[i * QK_MXFP4 + j] = x0 * d;
      y[i * QK_MXFP4 + j + QK_MXFP4 / 2] = x1 * d;
    }
  }
}

/* ================================ k-quant helpers ================================ */

/* ggml's make_qx_quants: symmetric scale search minimizing the weighted squared error
 * (rmse_type 1: weights x^2) over 19 candidate scales; L gets q + nmax. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type,
                            const float *qw) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    float ax = fabsf(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  if (amax < GROUP_MAX_EPS) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      L[i] = (int8_t)(nmax + QMAX(-nmax, QMIN(nmax - 1, l)));
    }
    return 1 / iscale;
  }
  bool return_early = false;
  if (rmse_type < 0) { rmse_type = -rmse_type; return_early = true; }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = QMAX(-nmax, QMIN(nmax - 1, l));
    L[i] = (int8_t)(l + nmax);
    float w = qw ? qw[i] : rmse_type == 1 ? x[i] * x[i] : rmse_type == 2 ? 1 : rmse_type == 3 ? fabsf(x[i]) : sqrtf(fabsf(x[i]));
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = QMAX(-nmax, QMIN(nmax - 1, l));
      float w = qw ? qw[i] : rmse_type == 1 ? x[i] * x[i] : rmse_type == 2 ? 1 : rmse_type == 3 ? fabsf(x[i]) : sqrtf(fabsf(x[i]));
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + QMAX(-nmax, QMIN(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

/* ggml's make_qkx2_quants: asymmetric (scale, min) fit by weighted least squares over
 * nstep+1 candidate scales; returns the scale, *the_min gets -min (>= 0). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                              bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * (x[i] - min));
    L[i] = (uint8_t)QMAX(0, QMIN(nmax, l));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? fabsf(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = QMAX(0, QMIN(nmax, l));
      Laux[i] = (uint8_t)l;
      float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

/* unpack the 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block */
static inline void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

/* shared by Q4_K (nmax 15) and Q5_K (nmax 31): per sub-block fit, 6-bit scale coding,
 * then requantize every value with the coded scales. Returns L (0..nmax) for 256 values. */
static void quant_k4_scales(const float *x, uint8_t *scales12, uint16_t *d16, uint16_t *dmin16,
                            uint8_t *L, int nmax, float rmin, float rdelta, int nstep) {
  uint8_t Laux[32];
  float weights[32], mins[QK_K / 32], scales[QK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < QK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    float av_x = sqrtf(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin,
                                 rdelta, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  memset(scales12, 0, K_SCALE_SIZE);
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
    uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
    ls = QMIN(63, ls);
    lm = QMIN(63, lm);
    if (j < 4) {
      scales12[j] = ls;
      scales12[j + 4] = lm;
    } else {
      scales12[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
      scales12[j - 4] |= (uint8_t)((ls >> 4) << 6);
      scales12[j - 0] |= (uint8_t)((lm >> 4) << 6);
    }
  }
  *d16 = spool_f32_to_f16_1(max_scale / 63.f);
  *dmin16 = spool_f32_to_f16_1(max_min / 63.f);
  uint8_t sc, m;
  for (int j = 0; j < QK_K / 32; ++j) {
    get_scale_min_k4(j, scales12, &sc, &m);
    const float d = spool_f16_to_f32_1(*d16) * sc;
    if (!d) continue;
    const float dm = spool_f16_to_f32_1(*dmin16) * m;
    for (int ii = 0; ii < 32; ++ii) {
      int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = (uint8_t)QMAX(0, QMIN(nmax, l));
    }
  }
}

/* ================================ Q4_K ================================ */

void spool_ref_quant_q4_K(const float *x, void *vy, int32_t n) {
  block_q4_K *y = (block_q4_K *)vy;
  const int nb = n / QK_K;
  uint8_t L[QK_K];
  for (int i = 0; i < nb; i++, x += QK_K) {
    quant_k4_scales(x, y[i].scales, &y[i].d, &y[i].dmin, L, 15, -1.f, 0.1f, 20);
    uint8_t *q = y[i].qs;
    for (int j = 0; j < QK_K; j += 64) {
      for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
      q += 32;
    }
  }
}

void spool_ref_dequant_q4_K(const void *vx, float *y, int32_t n) {
  const block_q4_K *x = (const block_q4_K *)vx;
  const int nb = n / QK_K;
  for (int i = 0; i < nb; i++) {
    const uint8_t *q = x[i].qs;
    const float d = spool_f16_to_f32_1(x[i].d);
    const float min = spool_f16_to_f32_1(x[i].dmin);
    int is = 0;
    uint8_t sc, m;
    for (int j = 0; j < QK_K; j += 64) {
      get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

/* ================================ Q5_K ================================ */

void spool_ref_quant_q5_K(const float *x, void *vy, int32_t n) {
  block_q5_K *y = (block_q5_K *)vy;
  const int nb = n / QK_K;
  uint8_t L[QK_K];
  for (int i = 0; i < nb; i++, x += QK_K) {
    quant_k4_scales(x, y[i].scales, &y[i].d, &y[i].dmin, L, 31, -0.5f, 0.1f, 15);
    uint8_t *qh = y[i].qh, *ql = y[i].qs;
    memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int nn = 0; nn < QK_K; nn += 64) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[nn + j];
        if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
        int l2 = L[nn + j + 32];
        if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
        ql[j] = (uint8_t)(l1 | (l2 << 4));
      }
      m1 <<= 2;
      m2 <<= 2;
      ql += 32;
    }
  }
}

void spool_ref_dequant_q5_K(const void *vx, float *y, int32_t n) {
  const block_q5_K *x = (const block_q5_K *)vx;
  const int nb = n / QK_K;
  for (int i = 0; i < nb; i++) {
    const uint8_t *ql = x[i].qs, *qh = x[i].qh;
    const float d = spool_f16_to_f32_1(x[i].d);
    const float min = spool_f16_to_f32_1(x[i].dmin);
    int is = 0;
    uint8_t sc, m, u1 = 1, u2 = 2;
    for (int j = 0; j < QK_K; j += 64) {
      get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = min * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      ql += 32;
      is += 2;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

/* ================================ Q6_K ================================ */

void spool_ref_quant_q6_K(const float *x, void *vy, int32_t n) {
  block_q6_K *y = (block_q6_K *)vy;
  const int nb = n / QK_K;
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int i = 0; i < nb; i++, x += QK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, NULL);
      scales[ib] = scale;
      const float abs_scale = fabsf(scale);
      if (abs_scale > max_abs_scale) { max_abs_scale = abs_scale; max_scale = scale; }
    }
    if (max_abs_scale < GROUP_MAX_EPS) {
      memset(&y[i], 0, sizeof(block_q6_K));
      y[i].d = spool_f32_to_f16_1(0.f);
      continue;
    }
    float iscale = -128.f / max_scale;
    y[i].d = spool_f32_to_f16_1(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      y[i].scales[ib] = (int8_t)QMIN(127, nearest_int(iscale * scales[ib]));
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      float d = spool_f16_to_f32_1(y[i].d) * y[i].scales[j];
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        int l = nearest_int(x[16 * j + ii] / d);
        l = QMAX(-32, QMIN(31, l));
        L[16 * j + ii] = (int8_t)(l + 32);
      }
    }
    uint8_t *ql = y[i].ql, *qh = y[i].qh;
    for (int j = 0; j < QK_K; j += 128) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l + 0] & 0xF;
        const uint8_t q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF;
        const uint8_t q4 = L[j + l + 96] & 0xF;
        ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
        ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
        qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                          ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
      }
      ql += 64;
      qh += 32;
    }
  }
}

void spool_ref_dequant_q6_K(const void *vx, float *y, int32_t n) {
  const block_q6_K *x = (const block_q6_K *)vx;
  const int nb = n / QK_K;
  for (int i = 0; i < nb; i++) {
    const float d = spool_f16_to_f32_1(x[i].d);
    const uint8_t *ql = x[i].ql, *qh = x[i].qh;
    const int8_t *sc = x[i].scales;
    for (int nn = 0; nn < QK_K; nn += 128) {
      for (int l = 0; l < 32; ++l) {
        int is = l / 16;
        const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

/* ================================ Q8_K (activations) ================================ */

void spool_ref_quant_q8_K(const float *x, void *vy, int32_t n) {
  block_q8_K *y = (block_q8_K *)vy;
  const int nb = n / QK_K;
  for (int i = 0; i < nb; i++, x += QK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < QK_K; ++j) {
      float ax = fabsf(x[j]);
      if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (!amax) {
      /* ggml leaves bsums untouched here; we zero them so the block is deterministic */
      memset(&y[i], 0, sizeof(block_q8_K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j) {
      int v = nearest_int(iscale * x[j]);
      y[i].qs[j] = (int8_t)QMIN(127, v);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
      y[i].bsums[j] = (int16_t)sum;
    }
    y[i].d = 1 / iscale;
  }
}

void spool_ref_dequant_q8_K(const void *vx, float *y, int32_t n) {
  const block_q8_K *x = (const block_q8_K *)vx;
  const int nb = n / QK_K;
  for (int i = 0; i < nb; i++) {
    for (int j = 0; j < QK_K; ++j) *y++ = x[i].d * x[i].qs[j];
  }
}

/* ================================ dots: float weights ================================ */

float spool_ref_dot_f32_f32(int32_t n, const void *vw, const void *vx) {
  const float *w = (const float *)vw, *x = (const float *)vx;
  float s = 0;
  for (int32_t i = 0; i < n; i++) s += w[i] * x[i];
  return s;
}

float spool_ref_dot_f16_f32(int32_t n, const void *vw, const void *vx) {
  const uint16_t *w = (const uint16_t *)vw;
  const float *x = (const float *)vx;
  float s = 0;
  for (int32_t i = 0; i < n; i++) s += spool_f16_to_f32_1(w[i]) * x[i];
  return s;
}

float spool_ref_dot_bf16_f32(int32_t n, const void *vw, const void *vx) {
  const uint16_t *w = (const uint16_t *)vw;
  const float *x = (const float *)vx;
  float s = 0;
  for (int32_t i = 0; i < n; i++) s += spool_bf16_to_f32_1(w[i]) * x[i];
  return s;
}

/* ================================ dots: quantized activations ================================ */

float spool_ref_dot_q4_0_q8_0(int32_t n, const void *vw, const void *vx) {
  const block_q4_0 *w = (const block_q4_0 *)vw;
  const block_q8_0 *x = (const block_q8_0 *)vx;
  float s = 0;
  for (int i = 0; i < n / QK8_0; i++) {
    int sumi = 0;
    for (int j = 0; j < QK4_0 / 2; j++) {
      sumi += ((w[i].qs[j] & 0x0F) - 8) * x[i].qs[j];
      sumi += ((w[i].qs[j] >> 4) - 8) * x[i].qs[j + QK4_0 / 2];
    }
    s += sumi * spool_f16_to_f32_1(w[i].d) * spool_f16_to_f32_1(x[i].d);
  }
  return s;
}

float spool_ref_dot_q8_0_q8_0(int32_t n, const void *vw, const void *vx) {
  const block_q8_0 *w = (const block_q8_0 *)vw;
  const block_q8_0 *x = (const block_q8_0 *)vx;
  float s = 0;
  for (int i = 0; i < n / QK8_0; i++) {
    int sumi = 0;
    for (int j = 0; j < QK8_0; j++) sumi += w[i].qs[j] * x[i].qs[j];
    s += sumi * (spool_f16_to_f32_1(w[i].d) * spool_f16_to_f32_1(x[i].d));
  }
  return s;
}

/* Σ (d_w q_w + m_w)(d_x q_x) = d_w d_x Σ q_w q_x + m_w s_x, per block (ggml's order) */
float spool_ref_dot_q4_1_q8_1(int32_t n, const void *vw, const void *vx) {
  const block_q4_1 *w = (const block_q4_1 *)vw;
  const block_q8_1 *x = (const block_q8_1 *)vx;
  float s = 0;
  for (int i = 0; i < n / QK8_1; i++) {
    int sumi = 0;
    for (int j = 0; j < QK4_1 / 2; j++) {
      sumi += (w[i].qs[j] & 0x0F) * x[i].qs[j];
      sumi += (w[i].qs[j] >> 4) * x[i].qs[j + QK4_1 / 2];
    }
    s += (spool_f16_to_f32_1(w[i].d) * spool_f16_to_f32_1(x[i].d)) * sumi +
         spool_f16_to_f32_1(w[i].m) * spool_f16_to_f32_1(x[i].s);
  }
  return s;
}

float spool_ref_dot_mxfp4_q8_0(int32_t n, const void *vw, const void *vx) {
  const block_mxfp4 *w = (const block_mxfp4 *)vw;
  const block_q8_0 *x = (const block_q8_0 *)vx;
  float s = 0;
  for (int i = 0; i < n / QK8_0; i++) {
    const float d = spool_f16_to_f32_1(x[i].d) * spool_e8m0_half(w[i].e);
    int sumi = 0;
    for (int j = 0; j < QK_MXFP4 / 2; j++) {
      sumi += spool_kvalues_mxfp4[w[i].qs[j] & 0xF] * x[i].qs[j];
      sumi += spool_kvalues_mxfp4[w[i].qs[j] >> 4] * x[i].qs[j + QK_MXFP4 / 2];
    }
    s += d * sumi;
  }
  return s;
}

float spool_ref_dot_q4_K_q8_K(int32_t n, const void *vw, const void *vx) {
  const block_q4_K *w = (const block_q4_K *)vw;
  const block_q8_K *x = (const block_q8_K *)vx;
  float s = 0;
  for (int i = 0; i < n / QK_K; i++) {
    const uint8_t *q4 = w[i].qs;
    const int8_t *q8 = x[i].qs;
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < QK_K / 32; j++) {
      uint8_t sc, m;
      get_scale_min_k4(j, w[i].scales, &sc, &m);
      const uint8_t *q = q4 + (j / 2) * 32;
      const int shift = (j & 1) * 4;
      int32_t t = 0;
      for (int l = 0; l < 32; l++) t += ((q[l] >> shift) & 0xF) * q8[32 * j + l];
      sumi += sc * t;
      summ += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
    }
    const float d = spool_f16_to_f32_1(w[i].d) * x[i].d;
    const float dmin = spool_f16_to_f32_1(w[i].dmin) * x[i].d;
    s += d * sumi - dmin * summ;
  }
  return s;
}

float spool_ref_dot_q5_K_q8_K(int32_t n, const void *vw, const void *vx) {
  const block_q5_K *w = (const block_q5_K *)vw;
  const block_q8_K *x = (const block_q8_K *)vx;
  float s = 0;
  for (int i = 0; i < n / QK_K; i++) {
    const int8_t *q8 = x[i].qs;
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < QK_K / 32; j++) {
      uint8_t sc, m;
      get_scale_min_k4(j, w[i].scales, &sc, &m);
      const uint8_t *q = w[i].qs + (j / 2) * 32;
      const int shift = (j & 1) * 4;
      int32_t t = 0;
      for (int l = 0; l < 32; l++) {
        int v = ((q[l] >> shift) & 0xF) | (((w[i].qh[l] >> j) & 1) << 4);
        t += v * q8[32 * j + l];
      }
      sumi += sc * t;
      summ += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
    }
    const float d = spool_f16_to_f32_1(w[i].d) * x[i].d;
    const float dmin = spool_f16_to_f32_1(w[i].dmin) * x[i].d;
    s += d * sumi - dmin * summ;
  }
  return s;
}

float spool_ref_dot_q6_K_q8_K(int32_t n, const void *vw, const void *vx) {
  const block_q6_K *w = (const block_q6_K *)vw;
  const block_q8_K *x = (const block_q8_K *)vx;
  float s = 0;
  for (int i = 0; i < n / QK_K; i++) {
    int8_t q[QK_K];
    const uint8_t *ql = w[i].ql, *qh = w[i].qh;
    for (int h = 0; h < 2; h++) {
      int8_t *qq = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        qq[l + 0] = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        qq[l + 32] = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        qq[l + 64] = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        qq[l + 96] = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      }
      ql += 64;
      qh += 32;
    }
    int32_t sumi = 0;
    for (int j = 0; j < QK_K / 16; j++) {
      int32_t t = 0;
      for (int l = 0; l < 16; l++) t += q[16 * j + l] * x[i].qs[16 * j + l];
      sumi += w[i].scales[j] * t;
    }
    s += spool_f16_to_f32_1(w[i].d) * x[i].d * sumi;
  }
  return s;
}
