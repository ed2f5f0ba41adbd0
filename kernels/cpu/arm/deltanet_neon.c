/*
 * deltanet_neon.c — NEON gated DeltaNet block kernels (layouts in ref/deltanet_ref.h).
 *  - conv: 4 channels per vector, each tap a separate multiply and add (vmulq, vaddq: no
 *    fused multiply-add), so the conv gives the reference's bits; silu with a vector exp
 *    (relative error ~1e-7), tail channels scalar.
 *  - delta rule: one state row at a time with 4 accumulators of 4 (dk a multiple of 16; one
 *    of 4 otherwise): pass 1 scales the row by exp(g), stores it and FMAs its dot with k;
 *    pass 2 FMAs k·d into the row, stores it and FMAs its dot with q. dk not a multiple of
 *    4 uses the reference.
 */
#include <arm_neon.h>
#include "../ref/deltanet_ref.h"

static inline float32x4_t v_exp(float32x4_t x) {
  x = vminq_f32(x, vdupq_n_f32(89.0f));
  x = vmaxq_f32(x, vdupq_n_f32(-104.0f));
  const float32x4_t fx = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
  float32x4_t r = vfmsq_f32(x, fx, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, fx, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
  const int32x4_t n = vcvtq_s32_f32(fx);
  const int32x4_t n1 = vshrq_n_s32(n, 1);
  const int32x4_t n2 = vsubq_s32(n, n1);
  const int32x4_t bias = vdupq_n_s32(127);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
  return vmulq_f32(vmulq_f32(p, s1), s2);
}

void spool_neon_conv_block(const float *x, const float *state, const float *wt, float *y,
                           int32_t n_tok, int32_t ld, int32_t nc, int32_t k, int32_t silu) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  for (int32_t t = n_tok - 1; t >= 0; t--) {
    float *yt = y + (size_t)t * (size_t)ld;
    int32_t c = 0;
    for (; c + 4 <= nc; c += 4) {
      float32x4_t s = vdupq_n_f32(0.0f);
      for (int32_t i = 0; i < k; i++) {
        const float32x4_t xv = vld1q_f32(spool_conv_win(x, state, ld, k, t + i) + c);
        s = vaddq_f32(s, vmulq_f32(xv, vld1q_f32(wt + (size_t)i * nc + c)));
      }
      if (silu) s = vdivq_f32(s, vaddq_f32(one, v_exp(vnegq_f32(s))));
      vst1q_f32(yt + c, s);
    }
    for (; c < nc; c++) {
      float s = 0.0f;
      for (int32_t i = 0; i < k; i++) {
        const float p = spool_conv_win(x, state, ld, k, t + i)[c] * wt[(size_t)i * nc + c];
        s = s + p;
      }
      yt[c] = silu ? s / (1.0f + expf(-s)) : s;
    }
  }
}

/* row *= e, returns row · k */
static inline float scale_dot(float *row, const float *k, int32_t dk, float e) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int32_t i = 0;
  for (; i + 16 <= dk; i += 16) {
    const float32x4_t r0 = vmulq_n_f32(vld1q_f32(row + i), e);
    const float32x4_t r1 = vmulq_n_f32(vld1q_f32(row + i + 4), e);
    const float32x4_t r2 = vmulq_n_f32(vld1q_f32(row + i + 8), e);
    const float32x4_t r3 = vmulq_n_f32(vld1q_f32(row + i + 12), e);
    vst1q_f32(row + i, r0);
    vst1q_f32(row + i + 4, r1);
    vst1q_f32(row + i + 8, r2);
    vst1q_f32(row + i + 12, r3);
    a0 = vfmaq_f32(a0, r0, vld1q_f32(k + i));
    a1 = vfmaq_f32(a1, r1, vld1q_f32(k + i + 4));
    a2 = vfmaq_f32(a2, r2, vld1q_f32(k + i + 8));
    a3 = vfmaq_f32(a3, r3, vld1q_f32(k + i + 12));
  }
  for (; i < dk; i += 4) {
    const float32x4_t r0 = vmulq_n_f32(vld1q_f32(row + i), e);
    vst1q_f32(row + i, r0);
    a0 = vfmaq_f32(a0, r0, vld1q_f32(k + i));
  }
  return vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
}

/* row += k * d, returns row · q */
static inline float mad_dot(float *row, const float *k, const float *q, int32_t dk, float d) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int32_t i = 0;
  for (; i + 16 <= dk; i += 16) {
    const float32x4_t r0 = vfmaq_n_f32(vld1q_f32(row + i), vld1q_f32(k + i), d);
    const float32x4_t r1 = vfmaq_n_f32(vld1q_f32(row + i + 4), vld1q_f32(k + i + 4), d);
    const float32x4_t r2 = vfmaq_n_f32(vld1q_f32(row + i + 8), vld1q_f32(k + i + 8), d);
    const float32x4_t r3 = vfmaq_n_f32(vld1q_f32(row + i + 12), vld1q_f32(k + i + 12), d);
    vst1q_f32(row + i, r0);
    vst1q_f32(row + i + 4, r1);
    vst1q_f32(row + i + 8, r2);
    vst1q_f32(row + i + 12, r3);
    a0 = vfmaq_f32(a0, r0, vld1q_f32(q + i));
    a1 = vfmaq_f32(a1, r1, vld1q_f32(q + i + 4));
    a2 = vfmaq_f32(a2, r2, vld1q_f32(q + i + 8));
    a3 = vfmaq_f32(a3, r3, vld1q_f32(q + i + 12));
  }
  for (; i < dk; i += 4) {
    const float32x4_t r0 = vfmaq_n_f32(vld1q_f32(row + i), vld1q_f32(k + i), d);
    vst1q_f32(row + i, r0);
    a0 = vfmaq_f32(a0, r0, vld1q_f32(q + i));
  }
  return vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
}

void spool_neon_gdn_rows(float *S, int32_t nr, int32_t dk, const float *kn, const float *qn,
                         const float *v, size_t v_stride, const float *e, const float *b,
                         float scale, float *out, size_t out_stride, int32_t nt) {
  if (dk % 4 != 0) {
    spool_ref_gdn_rows(S, nr, dk, kn, qn, v, v_stride, e, b, scale, out, out_stride, nt);
    return;
  }
  for (int32_t t = 0; t < nt; t++) {
    const float *kt = kn + (size_t)t * (size_t)dk, *qt = qn + (size_t)t * (size_t)dk;
    const float *vt = v + (size_t)t * v_stride;
    float *ot = out + (size_t)t * out_stride;
    for (int32_t r = 0; r < nr; r++) {
      float *row = S + (size_t)r * (size_t)dk;
      const float d = (vt[r] - scale_dot(row, kt, dk, e[t])) * b[t];
      ot[r] = mad_dot(row, kt, qt, dk, d) * scale;
    }
  }
}
