/*
 * ops_neon.c — AArch64 NEON versions of the row kernels declared in ref/ops_ref.h.
 *
 * The algorithms mirror x86/ops_avx2.c with 4-wide vectors (same data layout as the
 * reference: contiguous f32 rows, f16 KV rows):
 *  - exp: Cody-Waite reduction, cephes' polynomial, 2^n applied as two exponent-field
 *    multiplies (gradual underflow and +inf overflow without blends), NaN propagates.
 *  - rmsnorm: ggml's sum of squares (x*x rounded to f32, summed in double lanes); softmax:
 *    4-wide partial sums reduced in double, the max subtracted.
 *  - f32 <-> f16: FCVTN / FCVTL (round to nearest even under the default FPCR); NaN lanes
 *    canonicalised (f32 -> f16) or patched back to the unquieted pattern (f16 -> f32) so
 *    results equal the scalar helpers of internal.h bit for bit.
 *  - RoPE: NEOX rotates 4 (x[i], x[i+n/2]) pairs per step; NORMAL de-interleaves 4 pairs
 *    with vld2q/vst2q.
 *  - attention: K rows of hdk and V rows of hdv f16 values with their own strides (V may
 *    alias K: MLA); either size not a multiple of 4 uses the reference.
 *  - attention (flags 0): blocks of SPOOL_ATTN_BLOCK keys, each block applied to every query
 *    head of the GQA group in turn (K/V rows fetched once per group): FMA dot products against
 *    f16 rows, one max-rescale per block (online softmax), vector exp, V accumulated 16 dims
 *    at a time in registers. head_dim not a multiple of 4 uses the reference.
 *  - attention (SPOOL_ATTN_GGML): the three passes of the AVX2 version, bit for bit the
 *    reference (llama.cpp's AVX-512 batch path, not its aarch64 one), each 16-lane vector
 *    held as four float32x4 (lanes 0-3 ... 12-15) and reduced in _mm512_reduce_add_ps's
 *    tree; exp is ggml_v_expf's AVX-512 algorithm with FMLA/FMLS. head_dim_k not a multiple
 *    of 16 uses the reference.
 */
#include <arm_neon.h>
#include "../ref/ops_ref.h"

static inline float32x4_t v_exp(float32x4_t x) {
  x = vminq_f32(x, vdupq_n_f32(89.0f)); /* FMIN propagates NaN */
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

void spool_neon_rmsnorm_row(const float *x, const float *w, float *y, int32_t n, float eps) {
  /* ggml: each x*x rounded to f32, summed in double (2 double lanes x 2 here: the same sum
   * wherever the double partial sums are exact, i.e. but for a 2^-53-relative rounding) */
  float64x2_t a0 = vdupq_n_f64(0.0), a1 = a0;
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t x0 = vld1q_f32(x + i);
    const float32x4_t sq = vmulq_f32(x0, x0);
    a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(sq)));
    a1 = vaddq_f64(a1, vcvt_high_f64_f32(sq));
  }
  const float64x2_t a = vaddq_f64(a0, a1);
  double sum = vgetq_lane_f64(a, 0) + vgetq_lane_f64(a, 1);
  for (; i < n; i++) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / n);
  const float scale = 1.0f / sqrtf(mean + eps);
  i = 0;
  if (w) {
    for (; i + 4 <= n; i += 4)
      vst1q_f32(y + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), scale), vld1q_f32(w + i)));
    for (; i < n; i++) y[i] = (x[i] * scale) * w[i];
  } else {
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_n_f32(vld1q_f32(x + i), scale));
    for (; i < n; i++) y[i] = x[i] * scale;
  }
}

void spool_neon_softmax_row(float *x, int32_t n) {
  float32x4_t vm = vdupq_n_f32(-INFINITY);
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) vm = vmaxq_f32(vm, vld1q_f32(x + i));
  float max = vmaxvq_f32(vm);
  for (; i < n; i++) max = x[i] > max ? x[i] : max;
  const float32x4_t bm = vdupq_n_f32(max);
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (i = 0; i + 4 <= n; i += 4) {
    const float32x4_t e = v_exp(vsubq_f32(vld1q_f32(x + i), bm));
    vst1q_f32(x + i, e);
    acc = vaddq_f32(acc, e);
  }
  double sum = vaddvq_f32(acc);
  for (; i < n; i++) {
    const float e = expf(x[i] - max);
    x[i] = e;
    sum += e;
  }
  const float inv = (float)(1.0 / sum);
  for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
  for (; i < n; i++) x[i] *= inv;
}

static inline float32x4_t v_silu(float32x4_t x) {
  const float32x4_t e = v_exp(vnegq_f32(x));
  return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), e));
}

/* silu and swiglu: the last n % 4 values go through the same vector code (copied into a
 * zeroed 4-lane buffer), so every value gets the same bits wherever it sits: the engine
 * calls these over rows × width values, and a scalar libm tail made a row's last values
 * depend on how many rows were computed together (see the AVX2 version). */
void spool_neon_silu(const float *x, float *y, int32_t n) {
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, v_silu(vld1q_f32(x + i)));
  if (i < n) {
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
    vst1q_f32(t, v_silu(vld1q_f32(t)));
    memcpy(y + i, t, (size_t)(n - i) * sizeof(float));
  }
}

void spool_neon_swiglu(const float *gate, const float *up, float *y, int32_t n) {
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(v_silu(vld1q_f32(gate + i)), vld1q_f32(up + i)));
  if (i < n) {
    float g[4] = {0.0f, 0.0f, 0.0f, 0.0f}, u[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
    memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
    vst1q_f32(g, vmulq_f32(v_silu(vld1q_f32(g)), vld1q_f32(u)));
    memcpy(y + i, g, (size_t)(n - i) * sizeof(float));
  }
}

void spool_neon_f32_to_f16(const float *src, uint16_t *dst, int32_t n) {
  const uint32x4_t sign = vdupq_n_u32(0x80000000u), qnan = vdupq_n_u32(0x7fc00000u);
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t x = vld1q_f32(src + i);
    const uint32x4_t ok = vceqq_f32(x, x); /* false for NaN */
    const uint32x4_t canon = vorrq_u32(vandq_u32(vreinterpretq_u32_f32(x), sign), qnan);
    x = vbslq_f32(ok, x, vreinterpretq_f32_u32(canon));
    vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(x)));
  }
  for (; i < n; i++) dst[i] = spool_f32_to_f16_1(src[i]);
}

static inline float32x4_t f16x4_to_f32(const uint16_t *p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

void spool_neon_f16_to_f32(const uint16_t *src, float *dst, int32_t n) {
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const uint16x4_t h = vld1_u16(src + i);
    float32x4_t f = vcvt_f32_f16(vreinterpret_f16_u16(h));
    const uint32x4_t w = vmovl_u16(h);
    const uint32x4_t isnan = vcgtq_u32(vandq_u32(w, vdupq_n_u32(0x7fff)), vdupq_n_u32(0x7c00));
    if (vmaxvq_u32(isnan)) {
      const uint32x4_t bits =
          vorrq_u32(vorrq_u32(vshlq_n_u32(vandq_u32(w, vdupq_n_u32(0x8000)), 16), vdupq_n_u32(0x7f800000u)),
                    vshlq_n_u32(vandq_u32(w, vdupq_n_u32(0x3ff)), 13));
      f = vbslq_f32(isnan, vreinterpretq_f32_u32(bits), f);
    }
    vst1q_f32(dst + i, f);
  }
  for (; i < n; i++) dst[i] = spool_f16_to_f32_1(src[i]);
}

void spool_neon_rope_head(float *x, int32_t n_rot, int32_t mode, const float *cs,
                          const float *sn) {
  const int32_t half = n_rot / 2;
  int32_t i = 0;
  if (mode == SPOOL_ROPE_NEOX) {
    for (; i + 4 <= half; i += 4) {
      const float32x4_t lo = vld1q_f32(x + i), hi = vld1q_f32(x + half + i);
      const float32x4_t c = vld1q_f32(cs + i), s = vld1q_f32(sn + i);
      vst1q_f32(x + i, vfmsq_f32(vmulq_f32(lo, c), hi, s));
      vst1q_f32(x + half + i, vfmaq_f32(vmulq_f32(hi, c), lo, s));
    }
    for (; i < half; i++) {
      const float x0 = x[i], x1 = x[i + half];
      x[i] = x0 * cs[i] - x1 * sn[i];
      x[i + half] = x0 * sn[i] + x1 * cs[i];
    }
  } else {
    for (; i + 4 <= half; i += 4) {
      float32x4x2_t p = vld2q_f32(x + 2 * i); /* val[0] = even, val[1] = odd */
      const float32x4_t c = vld1q_f32(cs + i), s = vld1q_f32(sn + i);
      const float32x4_t x0 = p.val[0], x1 = p.val[1];
      p.val[0] = vfmsq_f32(vmulq_f32(x0, c), x1, s);
      p.val[1] = vfmaq_f32(vmulq_f32(x1, c), x0, s);
      vst2q_f32(x + 2 * i, p);
    }
    for (; i < half; i++) {
      const float x0 = x[2 * i], x1 = x[2 * i + 1];
      x[2 * i] = x0 * cs[i] - x1 * sn[i];
      x[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
    }
  }
}

static inline float dot_f16(const float *q, const uint16_t *k, int32_t hd) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
  int32_t d = 0;
  for (; d + 8 <= hd; d += 8) {
    a0 = vfmaq_f32(a0, vld1q_f32(q + d), f16x4_to_f32(k + d));
    a1 = vfmaq_f32(a1, vld1q_f32(q + d + 4), f16x4_to_f32(k + d + 4));
  }
  for (; d < hd; d += 4) a0 = vfmaq_f32(a0, vld1q_f32(q + d), f16x4_to_f32(k + d));
  return vaddvq_f32(vaddq_f32(a0, a1));
}

static inline void scale_acc(float *acc, int32_t hd, float c) {
  for (int32_t d = 0; d < hd; d += 4) vst1q_f32(acc + d, vmulq_n_f32(vld1q_f32(acc + d), c));
}

/* acc[0..hd) += Σ_i p[i] · v row i, for nb rows from vb: 16 dims at a time in registers, the
 * rows in order (one FMA per row and dim). */
static inline void accum_v(float *acc, const uint16_t *vb, size_t kv_stride, int32_t hd,
                           int32_t nb, const float *p) {
  int32_t d = 0;
  for (; d + 16 <= hd; d += 16) {
    float32x4_t o0 = vld1q_f32(acc + d), o1 = vld1q_f32(acc + d + 4);
    float32x4_t o2 = vld1q_f32(acc + d + 8), o3 = vld1q_f32(acc + d + 12);
    for (int32_t i = 0; i < nb; i++) {
      const float pi = p[i];
      const uint16_t *vr = vb + (size_t)i * kv_stride + d;
      o0 = vfmaq_n_f32(o0, f16x4_to_f32(vr), pi);
      o1 = vfmaq_n_f32(o1, f16x4_to_f32(vr + 4), pi);
      o2 = vfmaq_n_f32(o2, f16x4_to_f32(vr + 8), pi);
      o3 = vfmaq_n_f32(o3, f16x4_to_f32(vr + 12), pi);
    }
    vst1q_f32(acc + d, o0);
    vst1q_f32(acc + d + 4, o1);
    vst1q_f32(acc + d + 8, o2);
    vst1q_f32(acc + d + 12, o3);
  }
  for (; d < hd; d += 4) {
    float32x4_t o0 = vld1q_f32(acc + d);
    for (int32_t i = 0; i < nb; i++) o0 = vfmaq_n_f32(o0, f16x4_to_f32(vb + (size_t)i * kv_stride + d), p[i]);
    vst1q_f32(acc + d, o0);
  }
}

/* One block of nb keys for one query head: scores, one max-rescale, exp, V accumulation. */
static inline void attn_block(const float *q, const uint16_t *kb, const uint16_t *vb,
                              size_t k_stride, size_t v_stride, int32_t hdk, int32_t hdv,
                              int32_t nb, float scale, float *m_io, float *l_io, float *acc,
                              float *s) {
  float m = *m_io, l = *l_io;
  float bm = -INFINITY;
  for (int32_t i = 0; i < nb; i++) {
    const float si = dot_f16(q, kb + (size_t)i * k_stride, hdk) * scale;
    s[i] = si;
    bm = si > bm ? si : bm;
  }
  const int32_t nb4 = (nb + 3) & ~3;
  for (int32_t i = nb; i < nb4; i++) s[i] = -INFINITY;
  if (bm > m) {
    const float c = expf(m - bm);
    scale_acc(acc, hdv, c);
    l *= c;
    m = bm;
  }
  const float32x4_t vm = vdupq_n_f32(m);
  float32x4_t vl = vdupq_n_f32(0.0f);
  for (int32_t i = 0; i < nb4; i += 4) {
    const float32x4_t p = v_exp(vsubq_f32(vld1q_f32(s + i), vm));
    vst1q_f32(s + i, p);
    vl = vaddq_f32(vl, p);
  }
  l += vaddvq_f32(vl);
  accum_v(acc, vb, v_stride, hdv, nb, s);
  *m_io = m;
  *l_io = l;
}

/* ---- SPOOL_ATTN_GGML: 16 lanes as llama.cpp's AVX-512 build, held as 4 vectors ---- */

/* x rounded to f16 and back (FCVTN / FCVTL, round to nearest even; finite values only here). */
static inline float32x4_t round_f16x4(float32x4_t x) {
  return vcvt_f32_f16(vcvt_f16_f32(x));
}

/* _mm512_reduce_add_ps of lanes a0 (0..3), a1 (4..7), a2 (8..11), a3 (12..15): lane i + i+8,
 * then + i+4, then (0 + 2) + (1 + 3). */
static inline float sum16(float32x4_t a0, float32x4_t a1, float32x4_t a2, float32x4_t a3) {
  const float32x4_t t = vaddq_f32(vaddq_f32(a3, a1), vaddq_f32(a2, a0));
  const float32x2_t u = vadd_f32(vget_low_f32(t), vget_high_f32(t));
  return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
}

/* ggml_v_expf's AVX-512 algorithm, bit for bit the reference's exp_ggml (see x86). */
static inline float32x4_t v_exp_ggml(float32x4_t x) {
  const float32x4_t r = vdupq_n_f32(0x1.8p23f);
  const float32x4_t z = vfmaq_f32(r, x, vdupq_n_f32(0x1.715476p+0f));
  const float32x4_t n = vsubq_f32(z, r);
  const float32x4_t b = vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n,
                                  vdupq_n_f32(0x1.7f7d1cp-20f));
  const float32x4_t u = vmulq_f32(b, b);
  const float32x4_t j = vfmaq_f32(
      vfmaq_f32(vdupq_n_f32(1.0f), vdupq_n_f32(0x1.ffffecp-1f), b),
      vfmaq_f32(vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), b),
                vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), b), u),
      u);
  const int32x4_t ni = vcvtq_s32_f32(n);
  const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
  const int32x4_t bias = vdupq_n_s32(127);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
  const float32x4_t res = vmulq_f32(vmulq_f32(j, s1), s2);
  const uint32x4_t big = vcagtq_f32(n, vdupq_n_f32(192.0f));
  const float32x4_t alt = vreinterpretq_f32_u32(
      vbicq_u32(vreinterpretq_u32_f32(vdupq_n_f32(INFINITY)), vclezq_f32(n)));
  return vbslq_f32(big, alt, res);
}

/* tinyBLAS's f16 dot (hd a multiple of 16): dimension i accumulates into lane i % 16. */
static inline float dot16_f16(const float *q, const uint16_t *k, int32_t hd) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
  for (int32_t d = 0; d < hd; d += 16) {
    a0 = vfmaq_f32(a0, f16x4_to_f32(k + d), vld1q_f32(q + d));
    a1 = vfmaq_f32(a1, f16x4_to_f32(k + d + 4), vld1q_f32(q + d + 4));
    a2 = vfmaq_f32(a2, f16x4_to_f32(k + d + 8), vld1q_f32(q + d + 8));
    a3 = vfmaq_f32(a3, f16x4_to_f32(k + d + 12), vld1q_f32(q + d + 12));
  }
  return sum16(a0, a1, a2, a3);
}

/* s[i] = score of key jb + i for i < n16 (a multiple of 16), -inf outside [j0, j1] (ggml's
 * mask); returns their max. score = dot16(q16, k) * scale, as ggml scales kq before the max. */
static inline float ggml_scores(const float *q16, const uint16_t *k, size_t kv_stride,
                                int32_t hd, int32_t jb, int32_t n16, int32_t j0, int32_t j1,
                                float scale, float *s) {
  float m = -INFINITY;
  for (int32_t i = 0; i < n16; i++) {
    const int32_t j = jb + i;
    float si = -INFINITY;
    if (j >= j0 && j <= j1) si = dot16_f16(q16, k + (size_t)j * kv_stride, hd) * scale;
    s[i] = si;
    m = si > m ? si : m;
  }
  return m;
}

/* s[i] = exp_ggml(s[i] - m) for n16 scores (0 where s is -inf), and *sum += one 16-lane
 * reduction per 16 keys, in double (ggml_vec_soft_max_f32 on AVX-512). */
static inline void ggml_exp(float *s, int32_t n16, float m, double *sum) {
  const float32x4_t vm = vdupq_n_f32(m);
  double acc = *sum;
  for (int32_t i = 0; i < n16; i += 16) {
    float32x4_t e[4];
    for (int32_t t = 0; t < 4; t++) {
      e[t] = v_exp_ggml(vsubq_f32(vld1q_f32(s + i + 4 * t), vm));
      vst1q_f32(s + i + 4 * t, e[t]);
    }
    acc += (double)sum16(e[0], e[1], e[2], e[3]);
  }
  *sum = acc;
}

/* s[i] = f16(s[i] * inv): ggml scales by 1/sum in f32, then its f16 matmul rounds. */
static inline void ggml_probs(float *s, int32_t n16, float inv) {
  for (int32_t i = 0; i < n16; i += 4)
    vst1q_f32(s + i, round_f16x4(vmulq_n_f32(vld1q_f32(s + i), inv)));
}

/* acc16[(j % 16) * hd + d] += v_j[d] · p_j (FMA) for the keys j of the block of n16 from jb
 * inside [j0, j1], in order: tinyBLAS's lanes of the p·v dot over the keys. */
static inline void ggml_accum16(float *acc16, const uint16_t *v, size_t kv_stride, int32_t hd,
                                int32_t jb, int32_t n16, int32_t j0, int32_t j1,
                                const float *p) {
  const int32_t i0 = j0 > jb ? j0 - jb : 0;
  const int32_t i1 = j1 - jb + 1 < n16 ? j1 - jb + 1 : n16;
  for (int32_t i = i0; i < i1; i++) {
    const int32_t j = jb + i;
    const float32x4_t pj = vdupq_n_f32(p[i]);
    const uint16_t *vr = v + (size_t)j * kv_stride;
    float *a = acc16 + (size_t)(j & 15) * hd;
    for (int32_t d = 0; d < hd; d += 4)
      vst1q_f32(a + d, vfmaq_f32(vld1q_f32(a + d), f16x4_to_f32(vr + d), pj));
  }
}

/* out[d] = the 16 lanes acc16[l * hd + d] reduced in _mm512_reduce_add_ps's tree. */
static inline void ggml_combine16(const float *acc16, int32_t hd, float *out) {
  for (int32_t d = 0; d < hd; d += 4) {
    float32x4_t t8[8], t4[4];
    for (int32_t l = 0; l < 8; l++)
      t8[l] = vaddq_f32(vld1q_f32(acc16 + (size_t)(l + 8) * hd + d),
                        vld1q_f32(acc16 + (size_t)l * hd + d));
    for (int32_t l = 0; l < 4; l++) t4[l] = vaddq_f32(t8[l + 4], t8[l]);
    vst1q_f32(out + d, vaddq_f32(vaddq_f32(t4[0], t4[2]), vaddq_f32(t4[1], t4[3])));
  }
}

static inline void round_q16(const float *q, float *q16, int32_t n) {
  for (int32_t i = 0; i < n; i += 4) vst1q_f32(q16 + i, round_f16x4(vld1q_f32(q + i)));
}

#define ATTN_ALIGN 16
#include "../_attn_ggml_driver.h"

void spool_neon_attn_heads(const float *q, int32_t nh, const uint16_t *k, const uint16_t *v,
                           size_t k_stride, size_t v_stride, int32_t hdk, int32_t hdv, int32_t j0,
                           int32_t j1, float scale, const float *sinks, int32_t flags, float *out) {
  if (hdk % 4 != 0 || hdv % 4 != 0) {
    spool_ref_attn_heads(q, nh, k, v, k_stride, v_stride, hdk, hdv, j0, j1, scale, sinks, flags,
                         out);
    return;
  }
  if (flags & SPOOL_ATTN_GGML) {
    if (hdk % 16 != 0) { /* the 16-lane dot needs whole groups: the reference's bits */
      spool_ref_attn_heads(q, nh, k, v, k_stride, v_stride, hdk, hdv, j0, j1, scale, sinks,
                           flags, out);
      return;
    }
    attn_heads_ggml(q, nh, k, v, k_stride, v_stride, hdk, hdv, j0, j1, scale, sinks, out);
    return;
  }
  float acc[SPOOL_ATTN_MAX_ACC] __attribute__((aligned(16)));
  float mh[SPOOL_ATTN_MAX_ACC / 4], lh[SPOOL_ATTN_MAX_ACC / 4];
  float s[SPOOL_ATTN_BLOCK] __attribute__((aligned(16)));
  for (int32_t d = 0; d < nh * hdv; d++) acc[d] = 0.0f;
  for (int32_t h = 0; h < nh; h++) {
    mh[h] = -INFINITY;
    lh[h] = 0.0f;
  }
  /* block outer, heads inner: the block's K and V rows are read from memory once and
   * stay in L1 for every head of the group */
  for (int32_t jb = j0; jb <= j1; jb += SPOOL_ATTN_BLOCK) {
    const int32_t nb = j1 - jb + 1 < SPOOL_ATTN_BLOCK ? j1 - jb + 1 : SPOOL_ATTN_BLOCK;
    const uint16_t *kb = k + (size_t)jb * k_stride, *vb = v + (size_t)jb * v_stride;
    for (int32_t h = 0; h < nh; h++)
      attn_block(q + (size_t)h * hdk, kb, vb, k_stride, v_stride, hdk, hdv, nb, scale, &mh[h],
                 &lh[h], acc + (size_t)h * hdv, s);
  }
  for (int32_t h = 0; h < nh; h++) {
    float *ah = acc + (size_t)h * hdv;
    float m = mh[h], l = lh[h];
    if (sinks) {
      const float sk = sinks[h];
      if (sk > m) {
        const float c = expf(m - sk);
        scale_acc(ah, hdv, c);
        l *= c;
        m = sk;
      }
      l += expf(sk - m);
    }
    const float inv = 1.0f / l;
    float *oh = out + (size_t)h * hdv;
    for (int32_t d = 0; d < hdv; d += 4) vst1q_f32(oh + d, vmulq_n_f32(vld1q_f32(ah + d), inv));
  }
}
