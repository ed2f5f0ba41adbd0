/*
 * quant_avx2.c — AVX2/FMA/F16C kernels for quantized products (compiled with -mavx2 -mfma
 * -mf16c, used when spool_impl_current == SPOOL_IMPL_AVX2).
 *
 * Layout: ggml's blocks, see ref/quant_ref.c. The integer dots follow ggml's scheme:
 *  - Q8_0 / Q4_0 / MXFP4 against Q8_0: 32 signed bytes per block on each side; the signed
 *    product uses maddubs(|w|, sign(x, w)) and madd with ones to get 8 int32, converted to f32
 *    and FMA'd with the block's scale product. Q4_0 unpacks nibbles and subtracts 8; MXFP4 maps
 *    nibbles through its 16-entry table with pshufb.
 *  - Q4_K / Q5_K / Q6_K against Q8_K: unsigned weight codes times signed activations with
 *    maddubs (pairs fit int16: 63*127*2 < 32767), then madd with the sub-block scales gives
 *    int32 per 64 values; the mins (Q4_K/Q5_K) and Q6_K's -32 offset are applied once per
 *    super-block through the activation block sums (bsums), so the inner loop never touches
 *    them. Integer sums are exact; only their f32 combination differs from REF in order.
 *    Q4_K's packed 6-bit scales/mins are unpacked with pshufb and masks (no scalar work) and
 *    scale j is spread to 16-bit lanes by pshufb; its mins term is madd(bsums, mins) per
 *    super-block, subtracted in f32.
 *  - Q8_0 / MXFP4 / Q4_K / Q6_K also have tile kernels (spool_avx2_tile_*, see "tiles"
 *    below): nr rows x nt tokens per call. The matvec uses 4 rows x 1 token (shared
 *    activation loads, 4 independent accumulator chains, software prefetch of the next 4
 *    rows); prefill uses 1 row x 4 tokens (each weight block decoded once for 4 tokens).
 *    Their dot_* entry points are the 1 x 1 tile, so every (row, token) result is the same
 *    bits whichever tile shape computed it. MXFP4 broadcasts its 16 code bytes to both
 *    lanes and shifts the high lane by 4 (vpsrlvq) to get low | high nibbles.
 *  - Activation quantizers reproduce REF bit for bit (roundf / round-to-even as ggml's
 *    reference), so Q8 results differ from REF only by f32 summation order.
 *  - Dequantizers reproduce REF bit for bit (same multiplies, no FMA contraction).
 */
#include "../ref/quant_ref.h"
#include <immintrin.h>

/* f16 -> f32 through a general register (a vpinsrw from memory costs more load slots) */
static inline float h2f(uint16_t h) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h))); }

static inline float hsum_ps(__m256 v) {
  __m128 r = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  r = _mm_add_ps(r, _mm_movehl_ps(r, r));
  r = _mm_add_ss(r, _mm_movehdup_ps(r));
  return _mm_cvtss_f32(r);
}

static inline int32_t hsum_epi32(__m256i v) {
  __m128i r = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
  r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
  return _mm_cvtsi128_si32(r);
}

/* 8 int32 sums of products of signed bytes x*y (x may be -128) */
static inline __m256i mul_sum_i8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

/* 16 packed nibbles -> 32 bytes: low nibbles in bytes 0..15, high nibbles in 16..31 */
static inline __m256i nibbles32(const uint8_t *qs) {
  const __m128i t = _mm_loadu_si128((const __m128i *)qs);
  const __m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* ================================ activation quantizers ================================ */

void spool_avx2_quant_act_q8_0(const float *x, void *vy, int32_t n) {
  block_q8_0 *y = (block_q8_0 *)vy;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 half = _mm256_set1_ps(0.49999997f); /* nextafterf(0.5f, 0) */
  for (int32_t i = 0; i < n / QK8_0; i++, x += QK8_0) {
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = spool_f32_to_f16_1(d);
    const __m256 vid = _mm256_set1_ps(id);
    __m256 s[4] = {_mm256_mul_ps(v0, vid), _mm256_mul_ps(v1, vid), _mm256_mul_ps(v2, vid),
                   _mm256_mul_ps(v3, vid)};
    __m256i q[4];
    for (int k = 0; k < 4; k++) { /* roundf: trunc(v + copysign(0.5-ulp, v)) */
      __m256 h = _mm256_or_ps(half, _mm256_and_ps(sign, s[k]));
      q[k] = _mm256_cvttps_epi32(_mm256_add_ps(s[k], h));
    }
    __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
    __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)y[i].qs, p);
  }
}

void spool_avx2_quant_act_q8_K(const float *x, void *vy, int32_t n) {
  block_q8_K *y = (block_q8_K *)vy;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int32_t i = 0; i < n / QK_K; i++, x += QK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    if (!amax) {
      memset(&y[i], 0, sizeof(block_q8_K));
      continue;
    }
    /* the first value whose |x| == amax carries the sign (as the scalar scan) */
    float max = 0;
    const __m256 va = _mm256_set1_ps(amax);
    for (int j = 0; j < QK_K; j += 8) {
      int mask = _mm256_movemask_ps(
          _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), va, _CMP_EQ_OQ));
      if (mask) { max = x[j + __builtin_ctz((unsigned)mask)]; break; }
    }
    const float iscale = -127.f / max;
    const __m256 vis = _mm256_set1_ps(iscale);
    const __m256i lim = _mm256_set1_epi32(127);
    for (int j = 0; j < QK_K; j += 32) {
      __m256i q[4];
      for (int k = 0; k < 4; k++) {
        q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + j + 8 * k)));
        q[k] = _mm256_min_epi32(q[k], lim);
      }
      __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256((__m256i *)(y[i].qs + j), p);
      /* bsums of the two 16-value groups: byte pairs -> int16, then int16 sums */
      __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), p);
      __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1)); /* 8 sums of 4 bytes */
      __m128i lo = _mm256_castsi256_si128(s32), hi = _mm256_extracti128_si256(s32, 1);
      lo = _mm_hadd_epi32(lo, hi); /* [b0-7, b8-15, b16-23, b24-31] */
      lo = _mm_hadd_epi32(lo, lo); /* [b0-15, b16-31, ...] */
      y[i].bsums[j / 16] = (int16_t)_mm_cvtsi128_si32(lo);
      y[i].bsums[j / 16 + 1] = (int16_t)_mm_extract_epi32(lo, 1);
    }
    y[i].d = 1 / iscale;
  }
}

/* ================================ dequantizers ================================ */

void spool_avx2_dequant_f16(const void *vx, float *y, int32_t n) {
  const uint16_t *x = (const uint16_t *)vx;
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
  for (; i < n; i++) y[i] = spool_f16_to_f32_1(x[i]);
}

void spool_avx2_dequant_bf16(const void *vx, float *y, int32_t n) {
  const uint16_t *x = (const uint16_t *)vx;
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
    _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
  }
  for (; i < n; i++) y[i] = spool_bf16_to_f32_1(x[i]);
}

static inline void store_i8x32_scaled(float *y, __m256i q, __m256 d) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  _mm256_storeu_ps(y + 0, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
  _mm256_storeu_ps(y + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
  _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
  _mm256_storeu_ps(y + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
}

void spool_avx2_dequant_q8_0(const void *vx, float *y, int32_t n) {
  const block_q8_0 *x = (const block_q8_0 *)vx;
  for (int32_t i = 0; i < n / QK8_0; i++) {
    store_i8x32_scaled(y + i * QK8_0, _mm256_loadu_si256((const __m256i *)x[i].qs), _mm256_set1_ps(h2f(x[i].d)));
  }
}

void spool_avx2_dequant_q4_0(const void *vx, float *y, int32_t n) {
  const block_q4_0 *x = (const block_q4_0 *)vx;
  for (int32_t i = 0; i < n / QK4_0; i++) {
    __m256i q = _mm256_sub_epi8(nibbles32(x[i].qs), _mm256_set1_epi8(8));
    store_i8x32_scaled(y + i * QK4_0, q, _mm256_set1_ps(h2f(x[i].d)));
  }
}

void spool_avx2_dequant_mxfp4(const void *vx, float *y, int32_t n) {
  const block_mxfp4 *x = (const block_mxfp4 *)vx;
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)spool_kvalues_mxfp4));
  for (int32_t i = 0; i < n / QK_MXFP4; i++) {
    __m256i q = _mm256_shuffle_epi8(table, nibbles32(x[i].qs));
    store_i8x32_scaled(y + i * QK_MXFP4, q, _mm256_set1_ps(spool_e8m0_half(x[i].e)));
  }
}

/* 32 unsigned byte codes -> y = d*q - m (separate multiply and subtract, as REF) */
static inline void store_u8x32_affine(float *y, __m256i q, __m256 d, __m256 m) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int k = 0; k < 4; k++) {
    __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
    _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d, f), m));
  }
}

static inline void k4_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

void spool_avx2_dequant_q4_K(const void *vx, float *y, int32_t n) {
  const block_q4_K *x = (const block_q4_K *)vx;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int32_t i = 0; i < n / QK_K; i++) {
    const float d = h2f(x[i].d), min = h2f(x[i].dmin);
    for (int j = 0; j < 4; j++) {
      uint8_t sc, m;
      const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
      k4_scale_min(2 * j, x[i].scales, &sc, &m);
      store_u8x32_affine(y, _mm256_and_si256(q, m4), _mm256_set1_ps(d * sc), _mm256_set1_ps(min * m));
      k4_scale_min(2 * j + 1, x[i].scales, &sc, &m);
      store_u8x32_affine(y + 32, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), _mm256_set1_ps(d * sc),
                         _mm256_set1_ps(min * m));
      y += 64;
    }
  }
}

void spool_avx2_dequant_q5_K(const void *vx, float *y, int32_t n) {
  const block_q5_K *x = (const block_q5_K *)vx;
  const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  for (int32_t i = 0; i < n / QK_K; i++) {
    const float d = h2f(x[i].d), min = h2f(x[i].dmin);
    __m256i hb = _mm256_loadu_si256((const __m256i *)x[i].qh);
    for (int j = 0; j < 4; j++) {
      uint8_t sc, m;
      const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
      const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(hb, one), 4);
      const __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4);
      hb = _mm256_srli_epi16(hb, 2);
      k4_scale_min(2 * j, x[i].scales, &sc, &m);
      store_u8x32_affine(y, _mm256_or_si256(_mm256_and_si256(q, m4), hl), _mm256_set1_ps(d * sc),
                         _mm256_set1_ps(min * m));
      k4_scale_min(2 * j + 1, x[i].scales, &sc, &m);
      store_u8x32_affine(y + 32, _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), hh),
                         _mm256_set1_ps(d * sc), _mm256_set1_ps(min * m));
      y += 64;
    }
  }
}

/* 32 signed codes, two 16-value groups with their own scale: y = (d*sc)*q as REF */
static inline void store_q6(float *y, __m256i q, float ds0, float ds1) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m256 a = _mm256_set1_ps(ds0), b = _mm256_set1_ps(ds1);
  _mm256_storeu_ps(y + 0, _mm256_mul_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
  _mm256_storeu_ps(y + 8, _mm256_mul_ps(a, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
  _mm256_storeu_ps(y + 16, _mm256_mul_ps(b, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
  _mm256_storeu_ps(y + 24, _mm256_mul_ps(b, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

/* unpack 128 Q6_K codes (one half block) into 4 x 32 signed bytes (q - 32) */
static inline void q6_unpack(const uint8_t *ql, const uint8_t *qh, __m256i out[4], int sub32) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
  const __m256i l1 = _mm256_loadu_si256((const __m256i *)ql);
  const __m256i l2 = _mm256_loadu_si256((const __m256i *)(ql + 32));
  const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
  out[0] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(h, m3), 4));
  out[1] = _mm256_or_si256(_mm256_and_si256(l2, m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m3), 4));
  out[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m3), 4));
  out[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l2, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m3), 4));
  if (sub32) {
    const __m256i c32 = _mm256_set1_epi8(32);
    for (int k = 0; k < 4; k++) out[k] = _mm256_sub_epi8(out[k], c32);
  }
}

void spool_avx2_dequant_q6_K(const void *vx, float *y, int32_t n) {
  const block_q6_K *x = (const block_q6_K *)vx;
  for (int32_t i = 0; i < n / QK_K; i++) {
    const float d = h2f(x[i].d);
    for (int h = 0; h < 2; h++) {
      __m256i q[4];
      q6_unpack(x[i].ql + 64 * h, x[i].qh + 32 * h, q, 1);
      const int8_t *sc = x[i].scales + 8 * h;
      for (int k = 0; k < 4; k++) store_q6(y + 32 * k, q[k], d * sc[2 * k], d * sc[2 * k + 1]);
      y += 128;
    }
  }
}

/* ================================ float dots ================================ */

float spool_avx2_dot_f32_f32(int32_t n, const void *vw, const void *vx) {
  const float *w = (const float *)vw, *x = (const float *)vx;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int32_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
  float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; i++) s += w[i] * x[i];
  return s;
}

float spool_avx2_dot_f16_f32(int32_t n, const void *vw, const void *vx) {
  const uint16_t *w = (const uint16_t *)vw;
  const float *x = (const float *)vx;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int32_t i = 0;
#define F16(o) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + (o))))
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(F16(0), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(F16(8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(F16(16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(F16(24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(F16(0), _mm256_loadu_ps(x + i), a0);
#undef F16
  float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; i++) s += spool_f16_to_f32_1(w[i]) * x[i];
  return s;
}

float spool_avx2_dot_bf16_f32(int32_t n, const void *vw, const void *vx) {
  const uint16_t *w = (const uint16_t *)vw;
  const float *x = (const float *)vx;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int32_t i = 0;
#define BF16(o) _mm256_castsi256_ps(_mm256_slli_epi32( \
    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i + (o)))), 16))
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_fmadd_ps(BF16(0), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(BF16(8), _mm256_loadu_ps(x + i + 8), a1);
  }
  for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(BF16(0), _mm256_loadu_ps(x + i), a0);
#undef BF16
  float s = hsum_ps(_mm256_add_ps(a0, a1));
  for (; i < n; i++) s += spool_bf16_to_f32_1(w[i]) * x[i];
  return s;
}

/* ================================ 32-block dots against Q8_0 ================================ */

float spool_avx2_dot_q4_0_q8_0(int32_t n, const void *vw, const void *vx) {
  const block_q4_0 *w = (const block_q4_0 *)vw;
  const block_q8_0 *x = (const block_q8_0 *)vx;
  const int32_t nb = n / QK8_0;
  const __m256i off = _mm256_set1_epi8(8);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  int32_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m256i p0 = mul_sum_i8(_mm256_sub_epi8(nibbles32(w[i].qs), off),
                                  _mm256_loadu_si256((const __m256i *)x[i].qs));
    const __m256i p1 = mul_sum_i8(_mm256_sub_epi8(nibbles32(w[i + 1].qs), off),
                                  _mm256_loadu_si256((const __m256i *)x[i + 1].qs));
    a0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d)), _mm256_cvtepi32_ps(p0), a0);
    a1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i + 1].d) * h2f(x[i + 1].d)), _mm256_cvtepi32_ps(p1), a1);
  }
  for (; i < nb; i++) {
    const __m256i p0 = mul_sum_i8(_mm256_sub_epi8(nibbles32(w[i].qs), off),
                                  _mm256_loadu_si256((const __m256i *)x[i].qs));
    a0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d)), _mm256_cvtepi32_ps(p0), a0);
  }
  return hsum_ps(_mm256_add_ps(a0, a1));
}

/* Q4_1 against Q8_1: unsigned nibbles times signed bytes with one maddubs (15*127*2 fits
 * int16), the scale product FMA'd per block, the min term m_w * s_x summed in f32 */
float spool_avx2_dot_q4_1_q8_1(int32_t n, const void *vw, const void *vx) {
  const block_q4_1 *w = (const block_q4_1 *)vw;
  const block_q8_1 *x = (const block_q8_1 *)vx;
  const int32_t nb = n / QK8_1;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int32_t i = 0; i < nb; i++) {
    const __m256i p = _mm256_madd_epi16(
        _mm256_maddubs_epi16(nibbles32(w[i].qs), _mm256_loadu_si256((const __m256i *)x[i].qs)), ones);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * h2f(x[i].d)), _mm256_cvtepi32_ps(p), acc);
    mins += h2f(w[i].m) * h2f(x[i].s);
  }
  return hsum_ps(acc) + mins;
}

/* ================================ k-quant dots against Q8_K ================================ */

/* unpack Q4_K/Q5_K 12-byte scales: bytes 0..7 of out = 6-bit scales, 8..15 = mins */
static inline void k4_unpack_scales(const uint8_t *s12, uint32_t utmp[4]) {
  const uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
  memcpy(utmp, s12, 12);
  utmp[3] = ((utmp[2] >> 4) & kmask2) | (((utmp[1] >> 6) & kmask3) << 4);
  const uint32_t uaux = utmp[1] & kmask1;
  utmp[1] = (utmp[2] & kmask2) | (((utmp[0] >> 6) & kmask3) << 4);
  utmp[2] = uaux;
  utmp[0] &= kmask1;
}

/* sum over sub-blocks of min_j * (bsum_2j + bsum_2j+1) */
static inline int32_t k4_mins_dot(const uint32_t utmp[4], const int16_t *bsums) {
  const __m128i mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, (int)utmp[3], (int)utmp[2]));
  const __m256i bs = _mm256_loadu_si256((const __m256i *)bsums);
  const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));
  __m128i p = _mm_madd_epi16(mins, pairs);
  p = _mm_add_epi32(p, _mm_unpackhi_epi64(p, p));
  p = _mm_add_epi32(p, _mm_shuffle_epi32(p, 1));
  return _mm_cvtsi128_si32(p);
}

float spool_avx2_dot_q5_K_q8_K(int32_t n, const void *vw, const void *vx) {
  const block_q5_K *w = (const block_q5_K *)vw;
  const block_q8_K *x = (const block_q8_K *)vx;
  const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  float summ = 0;
  for (int32_t i = 0; i < n / QK_K; i++) {
    uint32_t utmp[4];
    k4_unpack_scales(w[i].scales, utmp);
    const uint8_t *sc = (const uint8_t *)utmp;
    const float dx = x[i].d;
    summ += h2f(w[i].dmin) * dx * (float)k4_mins_dot(utmp, x[i].bsums);
    const uint8_t *q5 = w[i].qs;
    const int8_t *q8 = x[i].qs;
    __m256i hb = _mm256_loadu_si256((const __m256i *)w[i].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i qb = _mm256_loadu_si256((const __m256i *)(q5 + 32 * j));
      const __m256i hl = _mm256_slli_epi16(_mm256_and_si256(hb, one), 4);
      const __m256i hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 1), one), 4);
      hb = _mm256_srli_epi16(hb, 2);
      const __m256i ql = _mm256_or_si256(_mm256_and_si256(qb, m4), hl);
      const __m256i qh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m4), hh);
      __m256i pl = _mm256_maddubs_epi16(ql, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));
      __m256i ph = _mm256_maddubs_epi16(qh, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32)));
      pl = _mm256_madd_epi16(pl, _mm256_set1_epi16(sc[2 * j]));
      ph = _mm256_madd_epi16(ph, _mm256_set1_epi16(sc[2 * j + 1]));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[i].d) * dx), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum_ps(acc) - summ;
}

/* pshufb controls: for 32-value chunk c, int8 scale 2c to bytes 0..7, 2c+1 to bytes 8..15 */
static const uint8_t k_q6_shuf[8][16] __attribute__((aligned(16))) = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
    {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5},
    {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7},
    {8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9},
    {10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11},
    {12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13},
    {14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15},
};

/* ================================ tiles: nr rows x nt tokens ================================
 * y[t*ys + r] = dot(row r of W, token t of x) for r < nr, t < nt (nr*nt <= 4, nr == 1 or
 * nt == 1). The weight block of a row is decoded once and applied to the nt tokens (prefill);
 * the activation block of a token is loaded once for the nr rows (matvec: shared q8 loads,
 * block sums and scales, and nr independent accumulator chains). Every (row, token) pair
 * runs the same sequence of operations whatever the tile shape, so a result never depends on
 * how rows and tokens were grouped (thread count, tails). Each instantiation is specialized
 * at compile time (NR, NT constants; loops over them fully unrolled into registers). */

#define AI static inline __attribute__((always_inline))

AI const void *row_at(const void *base, size_t stride, int k) {
  return (const uint8_t *)base + (size_t)k * stride;
}

/* An empty asm that takes the running integer sum as an in/out register operand. Integer adds
 * reassociate freely, and without it GCC -O3 turns a tile's running sums into a tree: every
 * madd result of a super-block is stored to the stack and summed at its end (16 spills and
 * reloads per super-block in the 1 x 4 Q4_K tile). With it the sums are updated in place:
 * measured here (one thread, 64 rows x 7168, 8 tokens) 52.4 -> 60.5 GMAC/s, the same bits. */
AI void keep_in_register(__m256i *v) { __asm__("" : "+x"(*v)); }

/* matvec (NT == 1): prefetch `lines` cache lines of the same block NR rows further down (the
 * rows of the next tile call, pfd = NR * ws bytes ahead). Measured here: without it the
 * interleaved row streams of a tile reached 0.3-0.6 of the read-probe bandwidth, with it
 * 0.7-0.85; prefetching 8 or 16 KiB ahead was no better. A prefetch past the end of the
 * matrix is harmless (it never faults). */
AI void pf_next(const void *b, size_t pfd, const int NT, const int lines) {
  if (NT == 1)
    for (int l = 0; l < lines; l++) _mm_prefetch((const char *)b + pfd + 64 * l, _MM_HINT_T0);
}

/* ---- Q8_0 weights x Q8_0 activations ---- */
AI void tile_q8_0(int32_t n, const void *w, size_t ws, const void *x, size_t xs, float *y,
                  size_t ys, const int NR, const int NT) {
  const int32_t nb = n / QK8_0;
  const size_t pfd = (size_t)NR * ws;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[4]; /* [r * NT + t]; NR * NT <= 4 (small arrays stay in registers) */
  for (int k = 0; k < NR * NT; k++) acc[k] = _mm256_setzero_ps();
  for (int32_t i = 0; i < nb; i++) {
    float dx[4];
    for (int t = 0; t < NT; t++) dx[t] = h2f(((const block_q8_0 *)row_at(x, xs, t))[i].d);
    for (int r = 0; r < NR; r++) {
      const block_q8_0 *b = (const block_q8_0 *)row_at(w, ws, r) + i;
      if ((i & 1) == 0) pf_next(b, pfd, NT, 1);
      const __m256i wv = _mm256_loadu_si256((const __m256i *)b->qs);
      const __m256i aw = _mm256_sign_epi8(wv, wv);
      const float dw = h2f(b->d);
      for (int t = 0; t < NT; t++) {
        const __m256i xv = _mm256_loadu_si256((const __m256i *)((const block_q8_0 *)row_at(x, xs, t))[i].qs);
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones);
        acc[r * NT + t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[t]), _mm256_cvtepi32_ps(p), acc[r * NT + t]);
      }
    }
  }
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < NT; t++) y[(size_t)t * ys + r] = hsum_ps(acc[r * NT + t]);
}

/* ---- MXFP4 weights x Q8_0 activations ---- */
AI void tile_mxfp4(int32_t n, const void *w, size_t ws, const void *x, size_t xs, float *y,
                   size_t ys, const int NR, const int NT) {
  const int32_t nb = n / QK_MXFP4;
  const size_t pfd = (size_t)NR * ws;
  const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0F);
  const __m256i sh4 = _mm256_setr_epi64x(0, 0, 4, 4);
  const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)spool_kvalues_mxfp4));
  __m256 acc[4]; /* [r * NT + t]; NR * NT <= 4 (small arrays stay in registers) */
  for (int k = 0; k < NR * NT; k++) acc[k] = _mm256_setzero_ps();
  for (int32_t i = 0; i < nb; i++) {
    float dx[4];
    for (int t = 0; t < NT; t++) dx[t] = h2f(((const block_q8_0 *)row_at(x, xs, t))[i].d);
    for (int r = 0; r < NR; r++) {
      const block_mxfp4 *b = (const block_mxfp4 *)row_at(w, ws, r) + i;
      if ((i & 3) == 0) pf_next(b, pfd, NT, 1);
      /* 16 bytes into both lanes, high lane shifted by 4: low nibbles | high nibbles */
      const __m256i raw = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)b->qs));
      const __m256i wv = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srlv_epi64(raw, sh4), m4));
      const __m256i aw = _mm256_sign_epi8(wv, wv);
      const float dw = spool_e8m0_half(b->e);
      for (int t = 0; t < NT; t++) {
        const __m256i xv = _mm256_loadu_si256((const __m256i *)((const block_q8_0 *)row_at(x, xs, t))[i].qs);
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones);
        acc[r * NT + t] = _mm256_fmadd_ps(_mm256_set1_ps(dx[t] * dw), _mm256_cvtepi32_ps(p), acc[r * NT + t]);
      }
    }
  }
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < NT; t++) y[(size_t)t * ys + r] = hsum_ps(acc[r * NT + t]);
}

/* ---- Q4_K weights x Q8_K activations ----
 * Per super-block: the 12 packed scale bytes are unpacked with two pshufb and masks into 8
 * scales and 8 mins (bytes); scale j is spread to 16-bit lanes by pshufb (no scalar work).
 * mins: madd(bsums, each min twice) gives min_j * (bsum_2j + bsum_2j+1) in 8 int32 lanes,
 * subtracted in f32 with dmin*dx; scales: maddubs(nibbles, q8) then madd with scale j. */
static const uint8_t k_q4k_unpack[3][16] __attribute__((aligned(16))) = {
    {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11},                   /* a c b c */
    {128, 128, 128, 128, 0, 1, 2, 3, 128, 128, 128, 128, 4, 5, 6, 7},       /* 0 a 0 b */
    {63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15},       /* low masks */
};
/* scale j (byte j of the unpacked vector) -> 16 x int16 */
static const uint8_t k_q4k_sc[8][32] __attribute__((aligned(32))) = {
#define S(j) {j, 128, j, 128, j, 128, j, 128, j, 128, j, 128, j, 128, j, 128, \
              j, 128, j, 128, j, 128, j, 128, j, 128, j, 128, j, 128, j, 128}
    S(0), S(1), S(2), S(3), S(4), S(5), S(6), S(7)
#undef S
};
/* mins (bytes 8..15) -> 16 x int16, each min twice (it multiplies two 16-value bsums) */
static const uint8_t k_q4k_min[32] __attribute__((aligned(32))) = {
    8,  128, 8,  128, 9,  128, 9,  128, 10, 128, 10, 128, 11, 128, 11, 128,
    12, 128, 12, 128, 13, 128, 13, 128, 14, 128, 14, 128, 15, 128, 15, 128};

/* 12 scale bytes -> bytes 0..7 = 6-bit scales, 8..15 = 6-bit mins (as get_scale_min_k4) */
AI __m128i q4k_scales(const uint8_t *s12) {
  const __m128i s = _mm_loadu_si128((const __m128i *)s12); /* 4 bytes past: still in the block */
  const __m128i v1 = _mm_shuffle_epi8(s, _mm_load_si128((const __m128i *)k_q4k_unpack[0]));
  const __m128i v2 = _mm_shuffle_epi8(s, _mm_load_si128((const __m128i *)k_q4k_unpack[1]));
  const __m128i lo = _mm_and_si128(_mm_srlv_epi32(v1, _mm_setr_epi32(0, 0, 0, 4)),
                                   _mm_load_si128((const __m128i *)k_q4k_unpack[2]));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v2, 2), _mm_set1_epi8(0x30));
  return _mm_or_si128(lo, hi);
}

AI void tile_q4_K(int32_t n, const void *w, size_t ws, const void *x, size_t xs, float *y,
                  size_t ys, const int NR, const int NT) {
  const int32_t nb = n / QK_K;
  const size_t pfd = (size_t)NR * ws;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[4]; /* [r * NT + t]; NR * NT <= 4 (small arrays stay in registers) */
  for (int k = 0; k < NR * NT; k++) acc[k] = _mm256_setzero_ps();
  for (int32_t i = 0; i < nb; i++) {
    for (int r = 0; r < NR; r++) {
      const block_q4_K *b = (const block_q4_K *)row_at(w, ws, r) + i;
      pf_next(b, pfd, NT, 3);
      const __m256i sm2 = _mm256_broadcastsi128_si256(q4k_scales(b->scales));
      __m256i sumi[4];
      for (int t = 0; t < NT; t++) sumi[t] = _mm256_setzero_si256();
      for (int j = 0; j < 4; j++) {
        const __m256i q4b = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * j));
        const __m256i ql = _mm256_and_si256(q4b, m4);
        const __m256i qh = _mm256_and_si256(_mm256_srli_epi16(q4b, 4), m4);
        const __m256i sl = _mm256_shuffle_epi8(sm2, _mm256_load_si256((const __m256i *)k_q4k_sc[2 * j]));
        const __m256i sh = _mm256_shuffle_epi8(sm2, _mm256_load_si256((const __m256i *)k_q4k_sc[2 * j + 1]));
        for (int t = 0; t < NT; t++) {
          const int8_t *q8 = ((const block_q8_K *)row_at(x, xs, t))[i].qs + 64 * j;
          const __m256i dl = _mm256_madd_epi16(_mm256_maddubs_epi16(ql, _mm256_loadu_si256((const __m256i *)q8)), sl);
          const __m256i dh = _mm256_madd_epi16(_mm256_maddubs_epi16(qh, _mm256_loadu_si256((const __m256i *)(q8 + 32))), sh);
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(dl, dh));
          keep_in_register(&sumi[t]);
        }
      }
      const __m256i mins = _mm256_shuffle_epi8(sm2, _mm256_load_si256((const __m256i *)k_q4k_min));
      const float dw = h2f(b->d), dmw = h2f(b->dmin);
      for (int t = 0; t < NT; t++) {
        const block_q8_K *xb = (const block_q8_K *)row_at(x, xs, t) + i;
        const __m256i pm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)xb->bsums), mins);
        acc[r * NT + t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(sumi[t]), acc[r * NT + t]);
        acc[r * NT + t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmw * xb->d), _mm256_cvtepi32_ps(pm), acc[r * NT + t]);
      }
    }
  }
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < NT; t++) y[(size_t)t * ys + r] = hsum_ps(acc[r * NT + t]);
}

/* ---- Q6_K weights x Q8_K activations ----
 * Codes are used unsigned (0..63) with maddubs; the -32 offset is sum_j sc_j*32*bsum_j,
 * taken from the activation block sums once per super-block. */
AI void tile_q6_K(int32_t n, const void *w, size_t ws, const void *x, size_t xs, float *y,
                  size_t ys, const int NR, const int NT) {
  const int32_t nb = n / QK_K;
  const size_t pfd = (size_t)NR * ws;
  __m256 acc[4]; /* [r * NT + t]; NR * NT <= 4 (small arrays stay in registers) */
  for (int k = 0; k < NR * NT; k++) acc[k] = _mm256_setzero_ps();
  for (int32_t i = 0; i < nb; i++) {
    for (int r = 0; r < NR; r++) {
      const block_q6_K *b = (const block_q6_K *)row_at(w, ws, r) + i;
      pf_next(b, pfd, NT, 4);
      const __m128i sc8 = _mm_loadu_si128((const __m128i *)b->scales);
      const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
      const float dw = h2f(b->d);
      __m256i sumi[4];
      for (int t = 0; t < NT; t++) {
        const block_q8_K *xb = (const block_q8_K *)row_at(x, xs, t) + i;
        const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)xb->bsums), sc16);
        sumi[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
      }
      for (int h = 0; h < 2; h++) {
        __m256i q[4];
        q6_unpack(b->ql + 64 * h, b->qh + 32 * h, q, 0);
        for (int k = 0; k < 4; k++) {
          const __m256i s = _mm256_cvtepi8_epi16(
              _mm_shuffle_epi8(sc8, _mm_load_si128((const __m128i *)k_q6_shuf[4 * h + k])));
          for (int t = 0; t < NT; t++) {
            const int8_t *q8 = ((const block_q8_K *)row_at(x, xs, t))[i].qs + 128 * h + 32 * k;
            const __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)q8));
            sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p, s));
            keep_in_register(&sumi[t]);
          }
        }
      }
      for (int t = 0; t < NT; t++) {
        const float dx = ((const block_q8_K *)row_at(x, xs, t))[i].d;
        acc[r * NT + t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), _mm256_cvtepi32_ps(sumi[t]), acc[r * NT + t]);
      }
    }
  }
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < NT; t++) y[(size_t)t * ys + r] = hsum_ps(acc[r * NT + t]);
}

/* one exported entry per type: dispatch (nr, nt) to a specialized instantiation */
#define TILE_ENTRY(NAME, BODY)                                                                 \
  void spool_avx2_tile_##NAME(int32_t n, const void *w, size_t ws, int32_t nr, const void *x,  \
                              size_t xs, int32_t nt, float *y, size_t ys) {                    \
    switch (nr * 8 + nt) {                                                                     \
      case 8 + 1: BODY(n, w, ws, x, xs, y, ys, 1, 1); return;                                  \
      case 8 + 2: BODY(n, w, ws, x, xs, y, ys, 1, 2); return;                                  \
      case 8 + 3: BODY(n, w, ws, x, xs, y, ys, 1, 3); return;                                  \
      case 8 + 4: BODY(n, w, ws, x, xs, y, ys, 1, 4); return;                                  \
      case 16 + 1: BODY(n, w, ws, x, xs, y, ys, 2, 1); return;                                 \
      case 24 + 1: BODY(n, w, ws, x, xs, y, ys, 3, 1); return;                                 \
      case 32 + 1: BODY(n, w, ws, x, xs, y, ys, 4, 1); return;                                 \
      default: /* other shapes: row by row */                                                  \
        for (int32_t r = 0; r < nr; r++)                                                       \
          for (int32_t t = 0; t < nt; t += 4)                                                  \
            spool_avx2_tile_##NAME(n, row_at(w, ws, r), ws, 1, row_at(x, xs, t), xs,          \
                                   nt - t < 4 ? nt - t : 4, y + (size_t)t * ys + r, ys);      \
    }                                                                                          \
  }                                                                                            \
  float spool_avx2_dot_##NAME(int32_t n, const void *w, const void *x) {                       \
    float y;                                                                                   \
    BODY(n, w, 0, x, 0, &y, 0, 1, 1);                                                          \
    return y;                                                                                  \
  }

TILE_ENTRY(q8_0_q8_0, tile_q8_0)
TILE_ENTRY(mxfp4_q8_0, tile_mxfp4)
TILE_ENTRY(q4_K_q8_K, tile_q4_K)
TILE_ENTRY(q6_K_q8_K, tile_q6_K)

/* ================================ bandwidth probe ================================ */

float spool_avx2_sum_bytes(const void *p, size_t bytes) {
  const __m256i *v = (const __m256i *)p;
  size_t n = bytes / 32, i = 0;
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (; i + 4 <= n; i += 4) {
    a = _mm256_add_epi64(a, _mm256_loadu_si256(v + i));
    b = _mm256_add_epi64(b, _mm256_loadu_si256(v + i + 1));
    c = _mm256_add_epi64(c, _mm256_loadu_si256(v + i + 2));
    d = _mm256_add_epi64(d, _mm256_loadu_si256(v + i + 3));
  }
  for (; i < n; i++) a = _mm256_add_epi64(a, _mm256_loadu_si256(v + i));
  a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
  return (float)hsum_epi32(a);
}
