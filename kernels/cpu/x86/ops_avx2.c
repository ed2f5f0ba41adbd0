/*
 * ops_avx2.c — AVX2/FMA/F16C versions of the row kernels declared in ref/ops_ref.h.
 *
 * Algorithms (same data layout as the reference: contiguous f32 rows, f16 KV rows):
 *  - exp: Cody-Waite range reduction x = n·ln2 + r (|r| <= ln2/2), cephes' degree-7
 *    polynomial for e^r, then 2^n applied as two exponent-field multiplies (2^(n/2)·2^(n-n/2))
 *    so that gradual underflow and overflow to +inf come out right without blends; NaN
 *    propagates. About 1-2 ulp, so results differ from libm's expf in the last bits.
 *  - rmsnorm: ggml's sum of squares — each x*x rounded to f32, summed in double (in 8 double
 *    lanes); softmax: 8-wide f32 partial sums reduced in double, the row max subtracted
 *    before exp.
 *  - silu / swiglu: the vector exp on every value, the last n % 8 through masked loads and
 *    stores, so a value's bits do not depend on its position (rows batched together).
 *  - f32 -> f16: VCVTPS2PH with round to nearest even; NaN lanes are first replaced by the
 *    canonical quiet NaN with the same sign so the result matches spool_f32_to_f16_1
 *    bit for bit (F16C would keep payload bits). f16 -> f32: VCVTPH2PS, with signalling
 *    NaN lanes patched back to the reference's (unquieted) bit pattern.
 *  - RoPE: NORMAL pairs are rotated 4 pairs per vector with fmaddsub on (x, swapped x);
 *    NEOX rotates 8 (x[i], x[i+n/2]) pairs per step.
 *  - attention: K rows of hdk and V rows of hdv f16 values with their own strides (V may
 *    alias K: MLA); either size not a multiple of 8 uses the reference.
 *  - attention (flags 0): keys in blocks of SPOOL_ATTN_BLOCK; for each block, every query
 *    head of the GQA group in turn (so the block's f16 K/V rows come from memory once and from
 *    L1 after): scores by FMA dot products against rows converted with F16C, one max-rescale
 *    per block (flash-style online softmax), vector exp, then V accumulated 32 dims at a time
 *    in registers over the block's rows. head_dim not a multiple of 8 uses the reference.
 *  - attention (SPOOL_ATTN_GGML): the reference's arithmetic bit for bit (llama.cpp's AVX-512
 *    batch path), each 16-lane vector held as two __m256 (lanes 0-7, 8-15): q rounded to f16
 *    (VCVTPS2PH); pass 1 stores the scores (16-lane FMA dot, reduced as
 *    _mm512_reduce_add_ps does: hi + lo, then hsum's tree) times scale and their max, blocks
 *    outer and heads inner; pass 2 per head: the sink joins the max, ggml_v_expf's AVX-512
 *    algorithm on s - m, one 16-lane reduction per 16 keys (from a multiple of 16) into a
 *    double, p = f16(e * (float)(1/sum)); pass 3: key j's p·v (FMA over 8 dims at a time) into
 *    lane row j % 16 of the head's 16 x head_dim accumulator, blocks outer and heads inner
 *    over as many heads as 256 KiB of accumulators hold, the rows reduced in the same tree,
 *    stored undivided. Beyond SPOOL_ATTN_GGML_SCORES keys the passes recompute the
 *    scores block by block instead (same bits). head_dim_k not a multiple of 16 uses the
 *    reference.
 */
#include <immintrin.h>
#include "../ref/ops_ref.h"

static inline __m256 v_exp(__m256 x) {
  const __m256 hi = _mm256_set1_ps(89.0f), lo = _mm256_set1_ps(-104.0f);
  x = _mm256_min_ps(hi, x); /* operand order keeps NaN */
  x = _mm256_max_ps(lo, x);
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

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

void spool_avx2_rmsnorm_row(const float *x, const float *w, float *y, int32_t n, float eps) {
  /* ggml: each x*x rounded to f32, summed in double (4 double lanes x 2 here: the same sum
   * wherever the double partial sums are exact, i.e. but for a 2^-53-relative rounding) */
  __m256d a0 = _mm256_setzero_pd(), a1 = a0;
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x0 = _mm256_loadu_ps(x + i);
    const __m256 sq = _mm256_mul_ps(x0, x0);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(sq)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(sq, 1)));
  }
  double lanes[4];
  _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
  double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; i++) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / n);
  const float scale = 1.0f / sqrtf(mean + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  i = 0;
  if (w) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
                                            _mm256_loadu_ps(w + i)));
    for (; i < n; i++) y[i] = (x[i] * scale) * w[i];
  } else {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    for (; i < n; i++) y[i] = x[i] * scale;
  }
}

void spool_avx2_softmax_row(float *x, int32_t n) {
  __m256 vm = _mm256_set1_ps(-INFINITY);
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
  float max = hmax(vm);
  for (; i < n; i++) max = x[i] > max ? x[i] : max;
  const __m256 bm = _mm256_set1_ps(max);
  __m256 acc = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = v_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), bm));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  double sum = hsum(acc);
  for (; i < n; i++) {
    const float e = expf(x[i] - max);
    x[i] = e;
    sum += e;
  }
  const float inv = (float)(1.0 / sum);
  const __m256 vi = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
  for (; i < n; i++) x[i] *= inv;
}

static inline __m256 v_silu(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = v_exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(one, e));
}

/* Lanes [0, r) of a masked load/store (0 < r < 8). */
static inline __m256i tail_mask(int32_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* silu and swiglu: the last n % 8 values go through the same vector code (masked load and
 * store, the other lanes zero), so every value gets the same bits wherever it sits. The
 * engine calls these over rows × width values (a step's rows, an expert group's rows): with
 * a scalar libm tail, a row's last width % 8 values came out differently depending on how
 * many rows were computed together, so one sequence's results depended on the others in
 * its step. */
void spool_avx2_silu(const float *x, float *y, int32_t n) {
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, v_silu(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, v_silu(_mm256_maskload_ps(x + i, m)));
  }
}

void spool_avx2_swiglu(const float *gate, const float *up, float *y, int32_t n) {
  int32_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_mul_ps(v_silu(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  if (i < n) {
    const __m256i m = tail_mask(n - i);
    const __m256 g = v_silu(_mm256_maskload_ps(gate + i, m));
    _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(g, _mm256_maskload_ps(up + i, m)));
  }
}

void spool_avx2_f32_to_f16(const float *src, uint16_t *dst, int32_t n) {
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
  const __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(src + i);
    const __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    x = _mm256_blendv_ps(x, _mm256_or_ps(_mm256_and_ps(x, sign), qnan), isnan);
    _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; i++) dst[i] = spool_f32_to_f16_1(src[i]);
}

static inline __m256 f16x8_to_f32(__m128i h) {
  return _mm256_cvtph_ps(h);
}

void spool_avx2_f16_to_f32(const uint16_t *src, float *dst, int32_t n) {
  const __m256i m7fff = _mm256_set1_epi32(0x7fff), m7c00 = _mm256_set1_epi32(0x7c00);
  const __m256i m8000 = _mm256_set1_epi32(0x8000), m03ff = _mm256_set1_epi32(0x3ff);
  const __m256i inf = _mm256_set1_epi32(0x7f800000);
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
    __m256 f = _mm256_cvtph_ps(h);
    const __m256i w = _mm256_cvtepu16_epi32(h);
    const __m256i isnan = _mm256_cmpgt_epi32(_mm256_and_si256(w, m7fff), m7c00);
    if (!_mm256_testz_si256(isnan, isnan)) {
      const __m256i bits = _mm256_or_si256(
          _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(w, m8000), 16), inf),
          _mm256_slli_epi32(_mm256_and_si256(w, m03ff), 13));
      f = _mm256_blendv_ps(f, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(isnan));
    }
    _mm256_storeu_ps(dst + i, f);
  }
  for (; i < n; i++) dst[i] = spool_f16_to_f32_1(src[i]);
}

void spool_avx2_rope_head(float *x, int32_t n_rot, int32_t mode, const float *cs,
                          const float *sn) {
  const int32_t half = n_rot / 2;
  int32_t i = 0;
  if (mode == SPOOL_ROPE_NEOX) {
    for (; i + 8 <= half; i += 8) {
      const __m256 lo = _mm256_loadu_ps(x + i), hi = _mm256_loadu_ps(x + half + i);
      const __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
      _mm256_storeu_ps(x + i, _mm256_fmsub_ps(lo, c, _mm256_mul_ps(hi, s)));
      _mm256_storeu_ps(x + half + i, _mm256_fmadd_ps(lo, s, _mm256_mul_ps(hi, c)));
    }
    for (; i < half; i++) {
      const float x0 = x[i], x1 = x[i + half];
      x[i] = x0 * cs[i] - x1 * sn[i];
      x[i + half] = x0 * sn[i] + x1 * cs[i];
    }
  } else {
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    for (; i + 4 <= half; i += 4) {
      const __m256 xv = _mm256_loadu_ps(x + 2 * i);
      const __m256 c = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(cs + i)), dup);
      const __m256 s = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(sn + i)), dup);
      const __m256 xs = _mm256_permute_ps(xv, 0xB1); /* (x1, x0, x3, x2, ...) */
      _mm256_storeu_ps(x + 2 * i, _mm256_fmaddsub_ps(xv, c, _mm256_mul_ps(xs, s)));
    }
    for (; i < half; i++) {
      const float x0 = x[2 * i], x1 = x[2 * i + 1];
      x[2 * i] = x0 * cs[i] - x1 * sn[i];
      x[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
    }
  }
}

static inline float dot_f16(const float *q, const uint16_t *k, int32_t hd) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int32_t d = 0;
  for (; d + 16 <= hd; d += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), f16x8_to_f32(_mm_loadu_si128((const __m128i *)(k + d))), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8),
                         f16x8_to_f32(_mm_loadu_si128((const __m128i *)(k + d + 8))), a1);
  }
  for (; d < hd; d += 8)
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), f16x8_to_f32(_mm_loadu_si128((const __m128i *)(k + d))), a0);
  return hsum(_mm256_add_ps(a0, a1));
}

static inline void scale_acc(float *acc, int32_t hd, float c) {
  const __m256 vc = _mm256_set1_ps(c);
  for (int32_t d = 0; d < hd; d += 8) _mm256_storeu_ps(acc + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), vc));
}

/* acc[0..hd) += Σ_i p[i] · v row i, for nb rows from vb: 32 dims at a time in registers, the
 * rows in order (one FMA per row and dim). */
static inline void accum_v(float *acc, const uint16_t *vb, size_t kv_stride, int32_t hd,
                           int32_t nb, const float *p) {
  int32_t d = 0;
  for (; d + 32 <= hd; d += 32) {
    __m256 o0 = _mm256_loadu_ps(acc + d), o1 = _mm256_loadu_ps(acc + d + 8);
    __m256 o2 = _mm256_loadu_ps(acc + d + 16), o3 = _mm256_loadu_ps(acc + d + 24);
    for (int32_t i = 0; i < nb; i++) {
      const __m256 pi = _mm256_set1_ps(p[i]);
      const uint16_t *vr = vb + (size_t)i * kv_stride + d;
      o0 = _mm256_fmadd_ps(pi, f16x8_to_f32(_mm_loadu_si128((const __m128i *)vr)), o0);
      o1 = _mm256_fmadd_ps(pi, f16x8_to_f32(_mm_loadu_si128((const __m128i *)(vr + 8))), o1);
      o2 = _mm256_fmadd_ps(pi, f16x8_to_f32(_mm_loadu_si128((const __m128i *)(vr + 16))), o2);
      o3 = _mm256_fmadd_ps(pi, f16x8_to_f32(_mm_loadu_si128((const __m128i *)(vr + 24))), o3);
    }
    _mm256_storeu_ps(acc + d, o0);
    _mm256_storeu_ps(acc + d + 8, o1);
    _mm256_storeu_ps(acc + d + 16, o2);
    _mm256_storeu_ps(acc + d + 24, o3);
  }
  for (; d < hd; d += 8) {
    __m256 o0 = _mm256_loadu_ps(acc + d);
    for (int32_t i = 0; i < nb; i++) {
      const uint16_t *vr = vb + (size_t)i * kv_stride + d;
      o0 = _mm256_fmadd_ps(_mm256_set1_ps(p[i]), f16x8_to_f32(_mm_loadu_si128((const __m128i *)vr)), o0);
    }
    _mm256_storeu_ps(acc + d, o0);
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
  const int32_t nb8 = (nb + 7) & ~7;
  for (int32_t i = nb; i < nb8; i++) s[i] = -INFINITY;
  if (bm > m) {
    const float c = expf(m - bm);
    scale_acc(acc, hdv, c);
    l *= c;
    m = bm;
  }
  const __m256 vm = _mm256_set1_ps(m);
  __m256 vl = _mm256_setzero_ps();
  for (int32_t i = 0; i < nb8; i += 8) {
    const __m256 p = v_exp(_mm256_sub_ps(_mm256_load_ps(s + i), vm));
    _mm256_store_ps(s + i, p);
    vl = _mm256_add_ps(vl, p);
  }
  l += hsum(vl);
  accum_v(acc, vb, v_stride, hdv, nb, s);
  *m_io = m;
  *l_io = l;
}

/* ---- SPOOL_ATTN_GGML: 16 lanes as llama.cpp's AVX-512 build, held as (lo, hi) pairs ---- */

/* x rounded to f16 and back (VCVTPS2PH, round to nearest even; finite values only here). */
static inline __m256 round_f16x8(__m256 x) {
  return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

/* _mm512_reduce_add_ps of the 16 lanes (lo = lanes 0..7, hi = 8..15): hsum's tree on hi + lo. */
static inline float sum16(__m256 lo, __m256 hi) { return hsum(_mm256_add_ps(hi, lo)); }

/* ggml_v_expf's AVX-512 algorithm: n = round(x/ln2), b = x - n·ln2 (two FNMAs), degree-5
 * polynomial, scalef(j, n) done as two exact-or-once-rounded power-of-two multiplies;
 * |n| > 192 gives 0 (n <= 0, also for -inf) or +inf. Bit for bit the reference's exp_ggml. */
static inline __m256 v_exp_ggml(__m256 x) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
                                      _mm256_set1_ps(0x1.573e2ep-5f)),
                      u,
                      _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
                                      _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  const __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, s1), s2);
  const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
  const __m256 big = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
  const __m256 alt = _mm256_andnot_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ),
                                      _mm256_set1_ps(INFINITY));
  return _mm256_blendv_ps(res, alt, big);
}

/* tinyBLAS's f16 dot (hd a multiple of 16): dimension i accumulates into lane i % 16. */
static inline float dot16_f16(const float *q, const uint16_t *k, int32_t hd) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int32_t d = 0; d < hd; d += 16) {
    lo = _mm256_fmadd_ps(f16x8_to_f32(_mm_loadu_si128((const __m128i *)(k + d))),
                         _mm256_loadu_ps(q + d), lo);
    hi = _mm256_fmadd_ps(f16x8_to_f32(_mm_loadu_si128((const __m128i *)(k + d + 8))),
                         _mm256_loadu_ps(q + d + 8), hi);
  }
  return sum16(lo, hi);
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

/* s[i] = exp_ggml(s[i] - m) for n16 scores (0 where s is -inf), and *sum += their sum the way
 * ggml_vec_soft_max_f32 forms it on AVX-512: one 16-lane reduction per 16 keys, in double. */
static inline void ggml_exp(float *s, int32_t n16, float m, double *sum) {
  const __m256 vm = _mm256_set1_ps(m);
  double acc = *sum;
  for (int32_t i = 0; i < n16; i += 16) {
    const __m256 lo = v_exp_ggml(_mm256_sub_ps(_mm256_load_ps(s + i), vm));
    const __m256 hi = v_exp_ggml(_mm256_sub_ps(_mm256_load_ps(s + i + 8), vm));
    _mm256_store_ps(s + i, lo);
    _mm256_store_ps(s + i + 8, hi);
    acc += (double)sum16(lo, hi);
  }
  *sum = acc;
}

/* s[i] = f16(s[i] * inv): ggml scales by 1/sum in f32, then its f16 matmul rounds. */
static inline void ggml_probs(float *s, int32_t n16, float inv) {
  const __m256 vi = _mm256_set1_ps(inv);
  for (int32_t i = 0; i < n16; i += 8)
    _mm256_store_ps(s + i, round_f16x8(_mm256_mul_ps(_mm256_load_ps(s + i), vi)));
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
    const __m256 pj = _mm256_set1_ps(p[i]);
    const uint16_t *vr = v + (size_t)j * kv_stride;
    float *a = acc16 + (size_t)(j & 15) * hd;
    for (int32_t d = 0; d < hd; d += 8)
      _mm256_store_ps(a + d, _mm256_fmadd_ps(f16x8_to_f32(_mm_loadu_si128((const __m128i *)(vr + d))),
                                             pj, _mm256_load_ps(a + d)));
  }
}

/* out[d] = the 16 lanes acc16[l * hd + d] reduced in _mm512_reduce_add_ps's tree. */
static inline void ggml_combine16(const float *acc16, int32_t hd, float *out) {
  for (int32_t d = 0; d < hd; d += 8) {
    __m256 t8[8], t4[4];
    for (int32_t l = 0; l < 8; l++)
      t8[l] = _mm256_add_ps(_mm256_load_ps(acc16 + (size_t)(l + 8) * hd + d),
                            _mm256_load_ps(acc16 + (size_t)l * hd + d));
    for (int32_t l = 0; l < 4; l++) t4[l] = _mm256_add_ps(t8[l + 4], t8[l]);
    _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_add_ps(t4[0], t4[2]),
                                            _mm256_add_ps(t4[1], t4[3])));
  }
}

static inline void round_q16(const float *q, float *q16, int32_t n) {
  for (int32_t i = 0; i < n; i += 8) _mm256_storeu_ps(q16 + i, round_f16x8(_mm256_loadu_ps(q + i)));
}

#define ATTN_ALIGN 32
#include "../_attn_ggml_driver.h"

void spool_avx2_attn_heads(const float *q, int32_t nh, const uint16_t *k, const uint16_t *v,
                           size_t k_stride, size_t v_stride, int32_t hdk, int32_t hdv, int32_t j0,
                           int32_t j1, float scale, const float *sinks, int32_t flags, float *out) {
  if (hdk % 8 != 0 || hdv % 8 != 0) {
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
  float acc[SPOOL_ATTN_MAX_ACC] __attribute__((aligned(32)));
  float mh[SPOOL_ATTN_MAX_ACC / 8], lh[SPOOL_ATTN_MAX_ACC / 8];
  float s[SPOOL_ATTN_BLOCK] __attribute__((aligned(32)));
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
    const __m256 inv = _mm256_set1_ps(1.0f / l);
    float *oh = out + (size_t)h * hdv;
    for (int32_t d = 0; d < hdv; d += 8) _mm256_storeu_ps(oh + d, _mm256_mul_ps(_mm256_loadu_ps(ah + d), inv));
  }
}
