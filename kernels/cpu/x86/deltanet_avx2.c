/*
 * deltanet_avx2.c — AVX2 gated DeltaNet block kernels (layouts in ref/deltanet_ref.h).
 *  - conv: 8 channels per vector, each tap a separate multiply and add (no FMA), so the
 *    conv itself gives the reference's bits; silu uses the vector exp of ops_avx2.c's kind
 *    (relative error ~1e-7), the tail channels the scalar formula.
 *  - delta rule: one state row at a time with 4 accumulators of 8 (dk a multiple of 32;
 *    one of 8 otherwise): pass 1 scales the row by exp(g), stores it and FMAs its dot with
 *    k; pass 2 FMAs k·d into the row, stores it and FMAs its dot with q. dk not a multiple
 *    of 8 uses the reference. The row (dk floats) and the chunk of q/k stay in L1.
 */
#include <immintrin.h>
#include "../ref/deltanet_ref.h"

static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* exp for x in [-104, 89] (clamped), as the vector exp of ops_avx2.c */
static inline __m256 v_exp(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i n = _mm256_cvtps_epi32(fx);
  const __m256i n1 = _mm256_srai_epi32(n, 1);
  const __m256i n2 = _mm256_sub_epi32(n, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

void spool_avx2_conv_block(const float *x, const float *state, const float *wt, float *y,
                           int32_t n_tok, int32_t ld, int32_t nc, int32_t k, int32_t silu) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int32_t t = n_tok - 1; t >= 0; t--) {
    float *yt = y + (size_t)t * (size_t)ld;
    int32_t c = 0;
    for (; c + 8 <= nc; c += 8) {
      __m256 s = _mm256_setzero_ps();
      for (int32_t i = 0; i < k; i++) {
        const __m256 xv = _mm256_loadu_ps(spool_conv_win(x, state, ld, k, t + i) + c);
        s = _mm256_add_ps(s, _mm256_mul_ps(xv, _mm256_loadu_ps(wt + (size_t)i * nc + c)));
      }
      if (silu) {
        const __m256 e = v_exp(_mm256_sub_ps(_mm256_setzero_ps(), s));
        s = _mm256_div_ps(s, _mm256_add_ps(one, e));
      }
      _mm256_storeu_ps(yt + c, s);
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
  const __m256 ve = _mm256_set1_ps(e);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int32_t i = 0;
  for (; i + 32 <= dk; i += 32) {
    const __m256 r0 = _mm256_mul_ps(_mm256_loadu_ps(row + i), ve);
    const __m256 r1 = _mm256_mul_ps(_mm256_loadu_ps(row + i + 8), ve);
    const __m256 r2 = _mm256_mul_ps(_mm256_loadu_ps(row + i + 16), ve);
    const __m256 r3 = _mm256_mul_ps(_mm256_loadu_ps(row + i + 24), ve);
    _mm256_storeu_ps(row + i, r0);
    _mm256_storeu_ps(row + i + 8, r1);
    _mm256_storeu_ps(row + i + 16, r2);
    _mm256_storeu_ps(row + i + 24, r3);
    a0 = _mm256_fmadd_ps(r0, _mm256_loadu_ps(k + i), a0);
    a1 = _mm256_fmadd_ps(r1, _mm256_loadu_ps(k + i + 8), a1);
    a2 = _mm256_fmadd_ps(r2, _mm256_loadu_ps(k + i + 16), a2);
    a3 = _mm256_fmadd_ps(r3, _mm256_loadu_ps(k + i + 24), a3);
  }
  for (; i < dk; i += 8) {
    const __m256 r0 = _mm256_mul_ps(_mm256_loadu_ps(row + i), ve);
    _mm256_storeu_ps(row + i, r0);
    a0 = _mm256_fmadd_ps(r0, _mm256_loadu_ps(k + i), a0);
  }
  return hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

/* row += k * d, returns row · q */
static inline float mad_dot(float *row, const float *k, const float *q, int32_t dk, float d) {
  const __m256 vd = _mm256_set1_ps(d);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int32_t i = 0;
  for (; i + 32 <= dk; i += 32) {
    const __m256 r0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), vd, _mm256_loadu_ps(row + i));
    const __m256 r1 =
        _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 8), vd, _mm256_loadu_ps(row + i + 8));
    const __m256 r2 =
        _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 16), vd, _mm256_loadu_ps(row + i + 16));
    const __m256 r3 =
        _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 24), vd, _mm256_loadu_ps(row + i + 24));
    _mm256_storeu_ps(row + i, r0);
    _mm256_storeu_ps(row + i + 8, r1);
    _mm256_storeu_ps(row + i + 16, r2);
    _mm256_storeu_ps(row + i + 24, r3);
    a0 = _mm256_fmadd_ps(r0, _mm256_loadu_ps(q + i), a0);
    a1 = _mm256_fmadd_ps(r1, _mm256_loadu_ps(q + i + 8), a1);
    a2 = _mm256_fmadd_ps(r2, _mm256_loadu_ps(q + i + 16), a2);
    a3 = _mm256_fmadd_ps(r3, _mm256_loadu_ps(q + i + 24), a3);
  }
  for (; i < dk; i += 8) {
    const __m256 r0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), vd, _mm256_loadu_ps(row + i));
    _mm256_storeu_ps(row + i, r0);
    a0 = _mm256_fmadd_ps(r0, _mm256_loadu_ps(q + i), a0);
  }
  return hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

void spool_avx2_gdn_rows(float *S, int32_t nr, int32_t dk, const float *kn, const float *qn,
                         const float *v, size_t v_stride, const float *e, const float *b,
                         float scale, float *out, size_t out_stride, int32_t nt) {
  if (dk % 8 != 0) {
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
