/*
 * quant_neon.c — NEON kernels for quantized products on arm64 (used when
 * spool_impl_current == SPOOL_IMPL_NEON).
 *
 * Layout: ggml's blocks, see ref/quant_ref.c. Integer dots take 16 signed bytes per
 * operand and accumulate into int32x4 with widening multiplies (vmull_s8 + vpadalq_s16),
 * which every armv8-a CPU has. This file is also compiled a second time, by
 * quant_neon_dotprod.c with SPOOL_NEON_DOTPROD defined and -march=armv8.2-a+dotprod: that
 * build holds only the integer dots, named spool_neondp_*, and uses SDOT (vdotq_s32);
 * quant.c picks them at run time when the CPU reports the dot-product extension
 * (SPOOL_CPU_DOTPROD), so the library itself runs on any armv8-a core. Both forms compute
 * the same exact integer sums, so their results are bit-identical.
 * Weight codes are turned into signed bytes first:
 * Q4_0 nibbles - 8, MXFP4 nibbles through the 16-entry table (vqtbl1q_s8), Q4_K/Q5_K codes
 * as they are (0..31, with the mins applied per super-block through the activation bsums),
 * Q6_K codes - 32. Sub-block int32 sums are scaled in integers and combined in f32 per
 * block, as in REF, so only the f32 summation order differs from REF.
 * Activation quantizers are bit-identical to REF: vcvtaq (ties away, = roundf) for Q8_0 and
 * vcvtnq (ties to even, = ggml's nearest_int) for Q8_K. Dequantizers multiply exactly as
 * REF does (no fused multiply-add), so they are bit-identical too.
 */
#include "../ref/quant_ref.h"
#include <arm_neon.h>

#if defined(SPOOL_NEON_DOTPROD)
#define NEON_DOT(name) spool_neondp_##name /* integer dots only, built with +dotprod */
#else
#define NEON_DOT(name) spool_neon_##name
#endif

static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(SPOOL_NEON_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t hi = vmull_s8(vget_high_s8(a), vget_high_s8(b));
  return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

static inline float h2f(uint16_t h) { return spool_f16_to_f32_1(h); }

#if !defined(SPOOL_NEON_DOTPROD) /* quantizers, dequantizers and float dots: baseline only */

/* ================================ activation quantizers ================================ */

void spool_neon_quant_act_q8_0(const float *x, void *vy, int32_t n) {
  block_q8_0 *y = (block_q8_0 *)vy;
  for (int32_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0);
    for (int k = 0; k < 8; k++) {
      v[k] = vld1q_f32(x + 4 * k);
      m = vmaxq_f32(m, vabsq_f32(v[k]));
    }
    const float amax = vmaxvq_f32(m);
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = spool_f32_to_f16_1(d);
    for (int k = 0; k < 8; k += 2) {
      const int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(v[k], id));
      const int32x4_t b = vcvtaq_s32_f32(vmulq_n_f32(v[k + 1], id));
      const int16x8_t s = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
      vst1_s8(y[i].qs + 4 * k, vmovn_s16(s));
    }
  }
}

void spool_neon_quant_act_q8_K(const float *x, void *vy, int32_t n) {
  block_q8_K *y = (block_q8_K *)vy;
  for (int32_t i = 0; i < n / QK_K; i++, x += QK_K) {
    float32x4_t m = vdupq_n_f32(0);
    for (int j = 0; j < QK_K; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
    const float amax = vmaxvq_f32(m);
    if (!amax) {
      memset(&y[i], 0, sizeof(block_q8_K));
      continue;
    }
    float max = 0;
    for (int j = 0; j < QK_K; j++) {
      if (fabsf(x[j]) == amax) { max = x[j]; break; }
    }
    const float iscale = -127.f / max;
    const int32x4_t lim = vdupq_n_s32(127);
    for (int j = 0; j < QK_K; j += 16) {
      int32x4_t q[4];
      for (int k = 0; k < 4; k++) {
        q[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4 * k), iscale)), lim);
      }
      const int16x8_t a = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
      const int16x8_t b = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
      y[i].bsums[j / 16] = (int16_t)(vaddvq_s16(a) + vaddvq_s16(b));
      vst1q_s8(y[i].qs + j, vcombine_s8(vmovn_s16(a), vmovn_s16(b)));
    }
    y[i].d = 1 / iscale;
  }
}

/* ================================ dequantizers ================================ */

void spool_neon_dequant_f16(const void *vx, float *y, int32_t n) {
  const uint16_t *x = (const uint16_t *)vx;
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
  for (; i < n; i++) y[i] = spool_f16_to_f32_1(x[i]);
}

void spool_neon_dequant_bf16(const void *vx, float *y, int32_t n) {
  const uint16_t *x = (const uint16_t *)vx;
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(x + i), 16)));
  for (; i < n; i++) y[i] = spool_bf16_to_f32_1(x[i]);
}

/* 16 signed codes times d */
static inline void store_s8x16(float *y, int8x16_t q, float d) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_s8(vget_high_s8(q));
  vst1q_f32(y + 0, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
  vst1q_f32(y + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))), d));
  vst1q_f32(y + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
  vst1q_f32(y + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))), d));
}

/* 16 unsigned codes: y = d*q - m (separate multiply and subtract, as REF) */
static inline void store_u8x16_affine(float *y, uint8x16_t q, float d, float m) {
  const uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_u8(vget_high_u8(q));
  const float32x4_t vm = vdupq_n_f32(m);
  vst1q_f32(y + 0, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))), d), vm));
  vst1q_f32(y + 4, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_high_u16(lo))), d), vm));
  vst1q_f32(y + 8, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))), d), vm));
  vst1q_f32(y + 12, vsubq_f32(vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_high_u16(hi))), d), vm));
}

void spool_neon_dequant_q8_0(const void *vx, float *y, int32_t n) {
  const block_q8_0 *x = (const block_q8_0 *)vx;
  for (int32_t i = 0; i < n / QK8_0; i++) {
    const float d = h2f(x[i].d);
    store_s8x16(y + 32 * i, vld1q_s8(x[i].qs), d);
    store_s8x16(y + 32 * i + 16, vld1q_s8(x[i].qs + 16), d);
  }
}

void spool_neon_dequant_q4_0(const void *vx, float *y, int32_t n) {
  const block_q4_0 *x = (const block_q4_0 *)vx;
  const int8x16_t off = vdupq_n_s8(8);
  for (int32_t i = 0; i < n / QK4_0; i++) {
    const float d = h2f(x[i].d);
    const uint8x16_t q = vld1q_u8(x[i].qs);
    store_s8x16(y + 32 * i, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), off), d);
    store_s8x16(y + 32 * i + 16, vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), off), d);
  }
}

void spool_neon_dequant_mxfp4(const void *vx, float *y, int32_t n) {
  const block_mxfp4 *x = (const block_mxfp4 *)vx;
  const int8x16_t table = vld1q_s8(spool_kvalues_mxfp4);
  for (int32_t i = 0; i < n / QK_MXFP4; i++) {
    const float d = spool_e8m0_half(x[i].e);
    const uint8x16_t q = vld1q_u8(x[i].qs);
    store_s8x16(y + 32 * i, vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0F))), d);
    store_s8x16(y + 32 * i + 16, vqtbl1q_s8(table, vshrq_n_u8(q, 4)), d);
  }
}

#endif /* !SPOOL_NEON_DOTPROD */

static inline void k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

/* Q4_K (qh == NULL) and Q5_K */
#if !defined(SPOOL_NEON_DOTPROD)
static void dequant_k4(const uint8_t *scales, uint16_t d16, uint16_t dmin16, const uint8_t *qs,
                       const uint8_t *qh, float *y) {
  const float d = h2f(d16), min = h2f(dmin16);
  const uint8x16_t m4 = vdupq_n_u8(0x0F), one = vdupq_n_u8(1);
  uint8x16_t h0 = qh ? vld1q_u8(qh) : vdupq_n_u8(0), h1 = qh ? vld1q_u8(qh + 16) : vdupq_n_u8(0);
  for (int j = 0; j < 4; j++) {
    uint8_t sc1, m1, sc2, m2;
    k4_scale_min(2 * j, scales, &sc1, &m1);
    k4_scale_min(2 * j + 1, scales, &sc2, &m2);
    const uint8x16_t q0 = vld1q_u8(qs + 32 * j), q1 = vld1q_u8(qs + 32 * j + 16);
    const uint8x16_t l0 = vorrq_u8(vandq_u8(q0, m4), vshlq_n_u8(vandq_u8(h0, one), 4));
    const uint8x16_t l1 = vorrq_u8(vandq_u8(q1, m4), vshlq_n_u8(vandq_u8(h1, one), 4));
    const uint8x16_t u0 = vorrq_u8(vshrq_n_u8(q0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h0, 1), one), 4));
    const uint8x16_t u1 = vorrq_u8(vshrq_n_u8(q1, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h1, 1), one), 4));
    h0 = vshrq_n_u8(h0, 2);
    h1 = vshrq_n_u8(h1, 2);
    store_u8x16_affine(y, l0, d * sc1, min * m1);
    store_u8x16_affine(y + 16, l1, d * sc1, min * m1);
    store_u8x16_affine(y + 32, u0, d * sc2, min * m2);
    store_u8x16_affine(y + 48, u1, d * sc2, min * m2);
    y += 64;
  }
}

void spool_neon_dequant_q4_K(const void *vx, float *y, int32_t n) {
  const block_q4_K *x = (const block_q4_K *)vx;
  for (int32_t i = 0; i < n / QK_K; i++) dequant_k4(x[i].scales, x[i].d, x[i].dmin, x[i].qs, NULL, y + QK_K * i);
}

void spool_neon_dequant_q5_K(const void *vx, float *y, int32_t n) {
  const block_q5_K *x = (const block_q5_K *)vx;
  for (int32_t i = 0; i < n / QK_K; i++) dequant_k4(x[i].scales, x[i].d, x[i].dmin, x[i].qs, x[i].qh, y + QK_K * i);
}

/* 128 Q6_K codes of one half block as 8 x 16 signed bytes (q - 32), value order */
#endif /* !SPOOL_NEON_DOTPROD */

static inline void q6_unpack(const uint8_t *ql, const uint8_t *qh, int8x16_t out[8]) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
  const int8x16_t c32 = vdupq_n_s8(32);
  for (int h = 0; h < 2; h++) { /* h: values l in [16h, 16h+16) of each quarter */
    const uint8x16_t a = vld1q_u8(ql + 16 * h), b = vld1q_u8(ql + 32 + 16 * h);
    const uint8x16_t hb = vld1q_u8(qh + 16 * h);
    const uint8x16_t q1 = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
    const uint8x16_t q2 = vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
    const uint8x16_t q3 = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
    const uint8x16_t q4 = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
    out[0 + h] = vsubq_s8(vreinterpretq_s8_u8(q1), c32);
    out[2 + h] = vsubq_s8(vreinterpretq_s8_u8(q2), c32);
    out[4 + h] = vsubq_s8(vreinterpretq_s8_u8(q3), c32);
    out[6 + h] = vsubq_s8(vreinterpretq_s8_u8(q4), c32);
  }
}

#if !defined(SPOOL_NEON_DOTPROD)
void spool_neon_dequant_q6_K(const void *vx, float *y, int32_t n) {
  const block_q6_K *x = (const block_q6_K *)vx;
  for (int32_t i = 0; i < n / QK_K; i++) {
    const float d = h2f(x[i].d);
    for (int h = 0; h < 2; h++) {
      int8x16_t q[8];
      q6_unpack(x[i].ql + 64 * h, x[i].qh + 32 * h, q);
      const int8_t *sc = x[i].scales + 8 * h;
      for (int k = 0; k < 8; k++) store_s8x16(y + 16 * k, q[k], d * sc[k]);
      y += 128;
    }
  }
}

/* ================================ float dots ================================ */

float spool_neon_dot_f32_f32(int32_t n, const void *vw, const void *vx) {
  const float *w = (const float *)vw, *x = (const float *)vx;
  float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
  int32_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
    a1 = vfmaq_f32(a1, vld1q_f32(w + i + 4), vld1q_f32(x + i + 4));
    a2 = vfmaq_f32(a2, vld1q_f32(w + i + 8), vld1q_f32(x + i + 8));
    a3 = vfmaq_f32(a3, vld1q_f32(w + i + 12), vld1q_f32(x + i + 12));
  }
  for (; i + 4 <= n; i += 4) a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
  for (; i < n; i++) s += w[i] * x[i];
  return s;
}

float spool_neon_dot_f16_f32(int32_t n, const void *vw, const void *vx) {
  const uint16_t *w = (const uint16_t *)vw;
  const float *x = (const float *)vx;
  float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 = vfmaq_f32(a0, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w + i))), vld1q_f32(x + i));
    a1 = vfmaq_f32(a1, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w + i + 4))), vld1q_f32(x + i + 4));
  }
  float s = vaddvq_f32(vaddq_f32(a0, a1));
  for (; i < n; i++) s += spool_f16_to_f32_1(w[i]) * x[i];
  return s;
}

float spool_neon_dot_bf16_f32(int32_t n, const void *vw, const void *vx) {
  const uint16_t *w = (const uint16_t *)vw;
  const float *x = (const float *)vx;
  float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 = vfmaq_f32(a0, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(w + i), 16)), vld1q_f32(x + i));
    a1 = vfmaq_f32(a1, vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(w + i + 4), 16)), vld1q_f32(x + i + 4));
  }
  float s = vaddvq_f32(vaddq_f32(a0, a1));
  for (; i < n; i++) s += spool_bf16_to_f32_1(w[i]) * x[i];
  return s;
}

#endif /* !SPOOL_NEON_DOTPROD */

/* ================================ 32-block dots against Q8_0 ================================ */

float NEON_DOT(dot_q8_0_q8_0)(int32_t n, const void *vw, const void *vx) {
  const block_q8_0 *w = (const block_q8_0 *)vw;
  const block_q8_0 *x = (const block_q8_0 *)vx;
  float32x4_t acc = vdupq_n_f32(0);
  for (int32_t i = 0; i < n / QK8_0; i++) {
    int32x4_t p = dot16(vdupq_n_s32(0), vld1q_s8(w[i].qs), vld1q_s8(x[i].qs));
    p = dot16(p, vld1q_s8(w[i].qs + 16), vld1q_s8(x[i].qs + 16));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), h2f(w[i].d) * h2f(x[i].d));
  }
  return vaddvq_f32(acc);
}

float NEON_DOT(dot_q4_0_q8_0)(int32_t n, const void *vw, const void *vx) {
  const block_q4_0 *w = (const block_q4_0 *)vw;
  const block_q8_0 *x = (const block_q8_0 *)vx;
  const int8x16_t off = vdupq_n_s8(8);
  float32x4_t acc = vdupq_n_f32(0);
  for (int32_t i = 0; i < n / QK8_0; i++) {
    const uint8x16_t q = vld1q_u8(w[i].qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), off);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), off);
    int32x4_t p = dot16(vdupq_n_s32(0), lo, vld1q_s8(x[i].qs));
    p = dot16(p, hi, vld1q_s8(x[i].qs + 16));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), h2f(w[i].d) * h2f(x[i].d));
  }
  return vaddvq_f32(acc);
}

float NEON_DOT(dot_mxfp4_q8_0)(int32_t n, const void *vw, const void *vx) {
  const block_mxfp4 *w = (const block_mxfp4 *)vw;
  const block_q8_0 *x = (const block_q8_0 *)vx;
  const int8x16_t table = vld1q_s8(spool_kvalues_mxfp4);
  float32x4_t acc = vdupq_n_f32(0);
  for (int32_t i = 0; i < n / QK8_0; i++) {
    const uint8x16_t q = vld1q_u8(w[i].qs);
    int32x4_t p = dot16(vdupq_n_s32(0), vqtbl1q_s8(table, vandq_u8(q, vdupq_n_u8(0x0F))), vld1q_s8(x[i].qs));
    p = dot16(p, vqtbl1q_s8(table, vshrq_n_u8(q, 4)), vld1q_s8(x[i].qs + 16));
    acc = vmlaq_n_f32(acc, vcvtq_f32_s32(p), h2f(x[i].d) * spool_e8m0_half(w[i].e));
  }
  return vaddvq_f32(acc);
}

/* ================================ k-quant dots against Q8_K ================================ */

/* Q4_K (qh == NULL) and Q5_K super-block: returns d*sumi - dmin*summ */
static inline float dot_k4_block(const uint8_t *scales, uint16_t d16, uint16_t dmin16,
                                 const uint8_t *qs, const uint8_t *qh, const block_q8_K *x) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F), one = vdupq_n_u8(1);
  uint8x16_t h0 = qh ? vld1q_u8(qh) : vdupq_n_u8(0), h1 = qh ? vld1q_u8(qh + 16) : vdupq_n_u8(0);
  const int8_t *q8 = x->qs;
  int32_t sumi = 0, summ = 0;
  for (int j = 0; j < 4; j++) {
    uint8_t sc1, m1, sc2, m2;
    k4_scale_min(2 * j, scales, &sc1, &m1);
    k4_scale_min(2 * j + 1, scales, &sc2, &m2);
    const uint8x16_t q0 = vld1q_u8(qs + 32 * j), q1 = vld1q_u8(qs + 32 * j + 16);
    const int8x16_t l0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q0, m4), vshlq_n_u8(vandq_u8(h0, one), 4)));
    const int8x16_t l1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(q1, m4), vshlq_n_u8(vandq_u8(h1, one), 4)));
    const int8x16_t u0 = vreinterpretq_s8_u8(
        vorrq_u8(vshrq_n_u8(q0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h0, 1), one), 4)));
    const int8x16_t u1 = vreinterpretq_s8_u8(
        vorrq_u8(vshrq_n_u8(q1, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h1, 1), one), 4)));
    h0 = vshrq_n_u8(h0, 2);
    h1 = vshrq_n_u8(h1, 2);
    int32x4_t pl = dot16(vdupq_n_s32(0), l0, vld1q_s8(q8 + 64 * j));
    pl = dot16(pl, l1, vld1q_s8(q8 + 64 * j + 16));
    int32x4_t ph = dot16(vdupq_n_s32(0), u0, vld1q_s8(q8 + 64 * j + 32));
    ph = dot16(ph, u1, vld1q_s8(q8 + 64 * j + 48));
    sumi += sc1 * vaddvq_s32(pl) + sc2 * vaddvq_s32(ph);
    summ += m1 * (x->bsums[4 * j] + x->bsums[4 * j + 1]) + m2 * (x->bsums[4 * j + 2] + x->bsums[4 * j + 3]);
  }
  return h2f(d16) * x->d * sumi - h2f(dmin16) * x->d * summ;
}

float NEON_DOT(dot_q4_K_q8_K)(int32_t n, const void *vw, const void *vx) {
  const block_q4_K *w = (const block_q4_K *)vw;
  const block_q8_K *x = (const block_q8_K *)vx;
  float s = 0;
  for (int32_t i = 0; i < n / QK_K; i++) s += dot_k4_block(w[i].scales, w[i].d, w[i].dmin, w[i].qs, NULL, &x[i]);
  return s;
}

float NEON_DOT(dot_q5_K_q8_K)(int32_t n, const void *vw, const void *vx) {
  const block_q5_K *w = (const block_q5_K *)vw;
  const block_q8_K *x = (const block_q8_K *)vx;
  float s = 0;
  for (int32_t i = 0; i < n / QK_K; i++) s += dot_k4_block(w[i].scales, w[i].d, w[i].dmin, w[i].qs, w[i].qh, &x[i]);
  return s;
}

float NEON_DOT(dot_q6_K_q8_K)(int32_t n, const void *vw, const void *vx) {
  const block_q6_K *w = (const block_q6_K *)vw;
  const block_q8_K *x = (const block_q8_K *)vx;
  float s = 0;
  for (int32_t i = 0; i < n / QK_K; i++) {
    int32_t sumi = 0;
    for (int h = 0; h < 2; h++) {
      int8x16_t q[8];
      q6_unpack(w[i].ql + 64 * h, w[i].qh + 32 * h, q);
      const int8_t *q8 = x[i].qs + 128 * h;
      const int8_t *sc = w[i].scales + 8 * h;
      for (int k = 0; k < 8; k++) sumi += sc[k] * vaddvq_s32(dot16(vdupq_n_s32(0), q[k], vld1q_s8(q8 + 16 * k)));
    }
    s += h2f(w[i].d) * x[i].d * sumi;
  }
  return s;
}

#if !defined(SPOOL_NEON_DOTPROD)
/* ================================ bandwidth probe ================================ */

float spool_neon_sum_bytes(const void *p, size_t bytes) {
  const uint64_t *q = (const uint64_t *)p;
  uint64x2_t a = vdupq_n_u64(0), b = a, c = a, d = a;
  size_t n = bytes / 16, i = 0;
  for (; i + 4 <= n; i += 4) {
    a = vaddq_u64(a, vld1q_u64(q + 2 * i));
    b = vaddq_u64(b, vld1q_u64(q + 2 * i + 2));
    c = vaddq_u64(c, vld1q_u64(q + 2 * i + 4));
    d = vaddq_u64(d, vld1q_u64(q + 2 * i + 6));
  }
  for (; i < n; i++) a = vaddq_u64(a, vld1q_u64(q + 2 * i));
  a = vaddq_u64(vaddq_u64(a, b), vaddq_u64(c, d));
  return (float)(vgetq_lane_u64(a, 0) + vgetq_lane_u64(a, 1));
}
#endif /* !SPOOL_NEON_DOTPROD */
