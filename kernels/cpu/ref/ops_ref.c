/*
 * ops_ref.c — scalar reference of the elementwise, normalization, RoPE, routing and
 * attention ops. Every SIMD implementation is tested against these functions.
 *
 * Algorithms follow ggml's CPU backend so that spool and llama.cpp agree closely:
 *  - rmsnorm: ggml's sum of squares: each x*x rounded to f32, summed in double in order;
 *    mean rounded to f32, scale = 1/sqrtf(mean + eps), y = (x * scale) * w.
 *  - softmax: subtract the row max, e = expf(x - max), sum in double, multiply by 1/sum.
 *  - silu: x / (1 + expf(-x)); swiglu: silu(gate) * up.
 *  - f32 <-> f16: the exact helpers of internal.h (round to nearest even, NaN -> quiet NaN
 *    0x7e00 with the sign kept).
 *  - RoPE: ggml_rope_cache_init — theta starts at pos and is multiplied by
 *    theta_scale = freq_base^(-2/n_rot) once per pair in f32 (the same sequence of roundings
 *    as ggml), divided by freq_factors[i], then rope_yarn mixes interpolation
 *    (freq_scale * theta) and extrapolation (theta) over the ramp between the corr dims and
 *    scales cos/sin by mscale. NORMAL rotates (x[2i], x[2i+1]); NEOX rotates (x[i], x[i+n/2]).
 *  - attention: keys of hdk f16 values at k + j*k_stride, values of hdv at v + j*v_stride
 *    (v may point into the key rows: MLA's latent prefix); q heads of hdk, out heads of hdv.
 *  - attention (flags 0): one query head at a time, online softmax over the kv rows with a
 *    running max m, denominator l and f32 accumulator acc[head_dim] on the stack; the sink
 *    logit (if any) joins max and denominator at the end.
 *  - attention (SPOOL_ATTN_GGML): bit for bit llama.cpp's non-flash CPU path as its AVX-512
 *    build runs a batch (mul_mat f16 through llamafile's tinyBLAS · soft_max_ext · mul_mat
 *    f16 through tinyBLAS): q rounded to f16; pass 1: s_j = dot16(q16, k_j) * scale, where
 *    dot16 accumulates element i into lane i % 16 by FMA and reduces the 16 lanes with
 *    _mm512_reduce_add_ps's tree (sum16_ggml); m = max(s_j, sink); pass 2: e_j =
 *    exp_ggml(s_j - m) (ggml_v_expf's AVX-512 algorithm), sum = Σ over blocks of 16 keys
 *    counted from key 0 of sum16_ggml(block) in double, + expf(sink - m); pass 3:
 *    p_j = f16(e_j * (float)(1/sum)), out[d] = sum16_ggml of 16 lanes where lane l
 *    accumulates v_j[d]·p_j by FMA over the keys j = l (mod 16) in order; no final division.
 *    Scores live on the stack (SPOOL_ATTN_GGML_SCORES), or are recomputed in each pass when
 *    the range is longer.
 *  - routing: probabilities as ggml (softmax with a double sum, sigmoid 1/(1+expf(-x))), the
 *    selection bias added in f32, insertion top-k (ties: lower id); with groups, the group
 *    score is the f32 of the double sum of the group's two best selection scores, the best
 *    n_group_used groups are kept; norm divides by the f32 sum clamped to 2^-14.
 * Data layout: all tensors row-major and contiguous (attention rows strided), see spool.h.
 */
#include "ops_ref.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

void spool_ref_rmsnorm_row(const float *x, const float *w, float *y, int32_t n, float eps) {
  double sum = 0.0;
  for (int32_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / n);
  const float scale = 1.0f / sqrtf(mean + eps);
  if (w) {
    for (int32_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
  } else {
    for (int32_t i = 0; i < n; i++) y[i] = x[i] * scale;
  }
}

void spool_ref_softmax_row(float *x, int32_t n) {
  float max = -INFINITY;
  for (int32_t i = 0; i < n; i++) max = x[i] > max ? x[i] : max;
  double sum = 0.0;
  for (int32_t i = 0; i < n; i++) {
    const float e = expf(x[i] - max);
    x[i] = e;
    sum += e;
  }
  const float inv = (float)(1.0 / sum);
  for (int32_t i = 0; i < n; i++) x[i] *= inv;
}

void spool_ref_silu(const float *x, float *y, int32_t n) {
  for (int32_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

void spool_ref_swiglu(const float *gate, const float *up, float *y, int32_t n) {
  for (int32_t i = 0; i < n; i++) {
    const float g = gate[i];
    y[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

void spool_ref_f32_to_f16(const float *src, uint16_t *dst, int32_t n) {
  for (int32_t i = 0; i < n; i++) dst[i] = spool_f32_to_f16_1(src[i]);
}

void spool_ref_f16_to_f32(const uint16_t *src, float *dst, int32_t n) {
  for (int32_t i = 0; i < n; i++) dst[i] = spool_f16_to_f32_1(src[i]);
}

/* ---- RoPE ---- */

/* Solving n_rot = 2pi * x * base^((2 * max_pos) / n_dims) for x: the dimension whose
 * wavelength makes `rot` full turns over the original context. */
static float corr_dim(int32_t n_rot, int32_t n_ctx_orig, float rot, float base) {
  return (float)n_rot * logf((float)n_ctx_orig / (rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

void spool_rope_corr_dims(int32_t n_rot, int32_t n_ctx_orig, float freq_base, float beta_fast,
                          float beta_slow, float dims[2]) {
  const float start = floorf(corr_dim(n_rot, n_ctx_orig, beta_fast, freq_base));
  const float end = ceilf(corr_dim(n_rot, n_ctx_orig, beta_slow, freq_base));
  dims[0] = start > 0.0f ? start : 0.0f;
  dims[1] = end < (float)(n_rot - 1) ? end : (float)(n_rot - 1);
}

static float yarn_ramp(float low, float high, int32_t pair) {
  const float span = high - low > 0.001f ? high - low : 0.001f;
  float y = ((float)pair - low) / span;
  y = y < 0.0f ? 0.0f : (y > 1.0f ? 1.0f : y);
  return 1.0f - y;
}

void spool_rope_cache(int32_t pos, int32_t n_rot, float freq_base, float freq_scale,
                      float ext_factor, float attn_factor, const float corr_dims[2],
                      const float *freq_factors, float *cos_out, float *sin_out) {
  const float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
  float mscale = attn_factor;
  if (ext_factor != 0.0f) mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
  float theta_base = (float)pos;
  for (int32_t i = 0; i < n_rot / 2; i++) {
    const float ff = freq_factors ? freq_factors[i] : 1.0f;
    const float theta_extrap = theta_base / ff;
    const float theta_interp = freq_scale * theta_extrap;
    float theta = theta_interp;
    if (ext_factor != 0.0f) {
      const float mix = yarn_ramp(corr_dims[0], corr_dims[1], i) * ext_factor;
      theta = theta_interp * (1.0f - mix) + theta_extrap * mix;
    }
    cos_out[i] = cosf(theta) * mscale;
    sin_out[i] = sinf(theta) * mscale;
    theta_base *= theta_scale;
  }
}

void spool_ref_rope_head(float *x, int32_t n_rot, int32_t mode, const float *cs,
                         const float *sn) {
  const int32_t half = n_rot / 2;
  if (mode == SPOOL_ROPE_NEOX) {
    for (int32_t i = 0; i < half; i++) {
      const float x0 = x[i], x1 = x[i + half];
      x[i] = x0 * cs[i] - x1 * sn[i];
      x[i + half] = x0 * sn[i] + x1 * cs[i];
    }
  } else {
    for (int32_t i = 0; i < half; i++) {
      const float x0 = x[2 * i], x1 = x[2 * i + 1];
      x[2 * i] = x0 * cs[i] - x1 * sn[i];
      x[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
    }
  }
}

/* ---- attention ---- */

static void attn_head(const float *q, const uint16_t *k, const uint16_t *v, size_t k_stride,
                      size_t v_stride, int32_t hdk, int32_t hdv, int32_t j0, int32_t j1,
                      float scale, const float *sink, float *out) {
  float acc[SPOOL_ATTN_MAX_HEAD_DIM];
  for (int32_t d = 0; d < hdv; d++) acc[d] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int32_t j = j0; j <= j1; j++) {
    const uint16_t *kr = k + (size_t)j * k_stride;
    const uint16_t *vr = v + (size_t)j * v_stride;
    float s = 0.0f;
    for (int32_t d = 0; d < hdk; d++) s += q[d] * spool_f16_to_f32_1(kr[d]);
    s *= scale;
    if (s > m) { /* new max: rescale what was accumulated so far */
      const float c = expf(m - s); /* 0 when m was -inf */
      for (int32_t d = 0; d < hdv; d++) acc[d] *= c;
      l *= c;
      m = s;
    }
    const float p = expf(s - m);
    l += p;
    for (int32_t d = 0; d < hdv; d++) acc[d] += p * spool_f16_to_f32_1(vr[d]);
  }
  if (sink) {
    const float sk = *sink;
    if (sk > m) {
      const float c = expf(m - sk);
      for (int32_t d = 0; d < hdv; d++) acc[d] *= c;
      l *= c;
      m = sk;
    }
    l += expf(sk - m);
  }
  const float inv = 1.0f / l;
  for (int32_t d = 0; d < hdv; d++) out[d] = acc[d] * inv;
}

static inline float round_f16(float x) { return spool_f16_to_f32_1(spool_f32_to_f16_1(x)); }

/* _mm512_reduce_add_ps's tree over 16 lanes: (a[i] + a[i+8]), then + [i+4], + [i+2], + [i+1]. */
static inline float sum16_ggml(const float *a) {
  float t8[8], t4[4];
  for (int i = 0; i < 8; i++) t8[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; i++) t4[i] = t8[i + 4] + t8[i];
  return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}

/* ggml_v_expf's AVX-512 algorithm in scalar form: n = round(x/ln2) by the 1.5·2^23 trick,
 * b = x - n·ln2 in two FMAs, a degree-5 polynomial in b, then scalef(j, n) = j·2^n rounded
 * once; |n| > 192 gives 0 (n <= 0, also x = -inf) or +inf. */
static inline float spool_ref_exp_ggml(float x) {
  const float r = 0x1.8p23f;
  const float z = fmaf(x, 0x1.715476p+0f, r);
  const float n = z - r; /* round(x / ln2) */
  const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                            fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                       u, fmaf(0x1.ffffecp-1f, b, 1.0f));
  if (n != n) return n;
  if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY; /* -inf (masked) -> 0 */
  return ldexpf(j, (int)n);
}

/* tinyBLAS's f16 dot: lane i % 16 accumulates k_i·q_i by FMA in order of i, then the lanes are
 * reduced by sum16_ggml. hdk % 16 == 0. */
static inline float score_ggml(const float *q16, const uint16_t *kr, int32_t hdk, float scale) {
  float acc[16] = {0};
  for (int32_t d = 0; d < hdk; d++)
    acc[d & 15] = fmaf(spool_f16_to_f32_1(kr[d]), q16[d], acc[d & 15]);
  return sum16_ggml(acc) * scale;
}

/* e_j = exp_ggml(s_j - m) for the keys of [jb0, jend) (0 outside [j0, j1]), sc holding s_j
 * (at j - jb0) on entry and e_j on return when `keep`; returns the double sum of one
 * sum16_ggml per 16 keys counted from jb0 (a multiple of 16). */
static double exp_sum_ggml(float *sc, int keep, const float *q16, const uint16_t *k,
                           size_t k_stride, int32_t hdk, int32_t jb0, int32_t jend, int32_t j0,
                           int32_t j1, float scale, float m) {
  double sum = 0.0;
  for (int32_t jb = jb0; jb < jend; jb += 16) {
    float e[16];
    for (int32_t i = 0; i < 16; i++) {
      const int32_t j = jb + i;
      e[i] = 0.0f;
      if (j < j0 || j > j1) continue;
      const float s = keep ? sc[j - jb0] : score_ggml(q16, k + (size_t)j * k_stride, hdk, scale);
      e[i] = spool_ref_exp_ggml(s - m);
      if (keep) sc[j - jb0] = e[i];
    }
    sum += (double)sum16_ggml(e);
  }
  return sum;
}

static void attn_head_ggml(const float *q, const uint16_t *k, const uint16_t *v, size_t k_stride,
                           size_t v_stride, int32_t hdk, int32_t hdv, int32_t j0, int32_t j1,
                           float scale, const float *sink, float *out) {
  float q16[SPOOL_ATTN_MAX_HEAD_DIM];
  float sc[SPOOL_ATTN_GGML_SCORES];
  float acc[16 * SPOOL_ATTN_MAX_HEAD_DIM]; /* lane l of out[d] at acc[l * hdv + d] */
  for (int32_t d = 0; d < hdk; d++) q16[d] = round_f16(q[d]);
  const int32_t jb0 = j0 & ~15, jend = (j1 + 16) & ~15;
  const int keep = jend - jb0 <= SPOOL_ATTN_GGML_SCORES;
  float m = -INFINITY;
  for (int32_t j = j0; j <= j1; j++) {
    const float s = score_ggml(q16, k + (size_t)j * k_stride, hdk, scale);
    if (keep) sc[j - jb0] = s;
    m = s > m ? s : m;
  }
  if (sink) m = *sink > m ? *sink : m;
  double sum = exp_sum_ggml(sc, keep, q16, k, k_stride, hdk, jb0, jend, j0, j1, scale, m);
  if (sink) sum += (double)expf(*sink - m);
  const float inv = (float)(1.0 / sum);
  for (int32_t i = 0; i < 16 * hdv; i++) acc[i] = 0.0f;
  for (int32_t j = j0; j <= j1; j++) {
    const float e = keep ? sc[j - jb0]
                         : spool_ref_exp_ggml(score_ggml(q16, k + (size_t)j * k_stride, hdk,
                                                         scale) - m);
    const float p = round_f16(e * inv);
    const uint16_t *vr = v + (size_t)j * v_stride;
    float *a = acc + (size_t)(j & 15) * hdv;
    for (int32_t d = 0; d < hdv; d++) a[d] = fmaf(spool_f16_to_f32_1(vr[d]), p, a[d]);
  }
  for (int32_t d = 0; d < hdv; d++) {
    float lanes[16];
    for (int32_t l = 0; l < 16; l++) lanes[l] = acc[(size_t)l * hdv + d];
    out[d] = sum16_ggml(lanes);
  }
}

void spool_ref_attn_heads(const float *q, int32_t nh, const uint16_t *k, const uint16_t *v,
                          size_t k_stride, size_t v_stride, int32_t hdk, int32_t hdv, int32_t j0,
                          int32_t j1, float scale, const float *sinks, int32_t flags, float *out) {
  for (int32_t h = 0; h < nh; h++) {
    const float *qh = q + (size_t)h * (size_t)hdk;
    float *oh = out + (size_t)h * (size_t)hdv;
    const float *sk = sinks ? sinks + h : NULL;
    if (flags & SPOOL_ATTN_GGML)
      attn_head_ggml(qh, k, v, k_stride, v_stride, hdk, hdv, j0, j1, scale, sk, oh);
    else
      attn_head(qh, k, v, k_stride, v_stride, hdk, hdv, j0, j1, scale, sk, oh);
  }
}

/* ---- expert routing ---- */

/* Gate probability of expert e (before any selection bias). */
static inline float route_prob(const float *logits, int32_t e, int32_t gating, float max,
                               float inv_sum) {
  if (gating == SPOOL_GATE_SOFTMAX) return expf(logits[e] - max) * inv_sum;
  if (gating == SPOOL_GATE_SIGMOID) return 1.0f / (1.0f + expf(-logits[e]));
  return logits[e];
}

/* keep[g] = 1 for the n_group_used groups with the highest group score, the sum of the two
 * highest selection scores (probability + bias) in the group, as llama.cpp's build_moe_ffn
 * (argsort_top_k(·, 2), get_rows, sum_rows: a double sum rounded to f32); ties keep the
 * lower group. */
static void route_groups(const float *logits, const float *bias, int32_t n_expert,
                         int32_t gating, float max, float inv_sum, int32_t n_group,
                         int32_t n_group_used, uint8_t *keep) {
  float gs[SPOOL_ROUTE_MAX_GROUPS];
  const int32_t per = n_expert / n_group;
  for (int32_t g = 0; g < n_group; g++) {
    float t1 = -INFINITY, t2 = -INFINITY;
    for (int32_t e = g * per; e < (g + 1) * per; e++) {
      const float p = route_prob(logits, e, gating, max, inv_sum);
      const float s = bias ? p + bias[e] : p;
      if (s > t1) {
        t2 = t1;
        t1 = s;
      } else if (s > t2) {
        t2 = s;
      }
    }
    gs[g] = (float)((double)t1 + (double)t2);
    keep[g] = 0;
  }
  for (int32_t i = 0; i < n_group_used; i++) {
    int32_t best = -1;
    for (int32_t g = 0; g < n_group; g++)
      if (!keep[g] && (best < 0 || gs[g] > gs[best])) best = g;
    keep[best] = 1;
  }
}

void spool_ref_topk_route_token(const float *logits, const float *bias, int32_t n_expert,
                                int32_t k, int32_t gating, int32_t norm, float scale,
                                int32_t n_group, int32_t n_group_used, int32_t *ids,
                                float *weights) {
  float max = -INFINITY;
  for (int32_t e = 0; e < n_expert; e++) max = logits[e] > max ? logits[e] : max;
  float inv_sum = 1.0f;
  if (gating == SPOOL_GATE_SOFTMAX) {
    double sum = 0.0;
    for (int32_t e = 0; e < n_expert; e++) sum += expf(logits[e] - max);
    inv_sum = (float)(1.0 / sum);
  }
  uint8_t keep[SPOOL_ROUTE_MAX_GROUPS];
  const int grouped = n_group > 1;
  const int32_t per = grouped ? n_expert / n_group : n_expert;
  if (grouped)
    route_groups(logits, bias, n_expert, gating, max, inv_sum, n_group, n_group_used, keep);
  /* selection: insertion into the k best, `weights` holds the selection scores for now;
   * a strictly greater score moves ahead, so ties keep the lower id first. Experts of the
   * groups not kept are -inf in llama.cpp, so never chosen (k <= kept experts). */
  int32_t cnt = 0;
  for (int32_t e = 0; e < n_expert; e++) {
    if (grouped && !keep[e / per]) continue;
    const float p = route_prob(logits, e, gating, max, inv_sum);
    const float s = bias ? p + bias[e] : p;
    if (cnt == k && !(s > weights[k - 1])) continue;
    int32_t i = cnt < k ? cnt++ : k - 1;
    while (i > 0 && s > weights[i - 1]) {
      weights[i] = weights[i - 1];
      ids[i] = ids[i - 1];
      i--;
    }
    weights[i] = s;
    ids[i] = e;
  }
  /* weights of the chosen experts, without the bias */
  if (gating == SPOOL_GATE_SOFTMAX_TOPK) {
    float m = -INFINITY;
    for (int32_t i = 0; i < k; i++) m = logits[ids[i]] > m ? logits[ids[i]] : m;
    double sum = 0.0;
    for (int32_t i = 0; i < k; i++) {
      weights[i] = expf(logits[ids[i]] - m);
      sum += weights[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int32_t i = 0; i < k; i++) weights[i] *= inv;
  } else {
    for (int32_t i = 0; i < k; i++) weights[i] = route_prob(logits, ids[i], gating, max, inv_sum);
  }
  if (norm) { /* ggml: sum_rows (double, rounded to f32), clamp to >= 2^-14, div */
    double sum = 0.0;
    for (int32_t i = 0; i < k; i++) sum += weights[i];
    float den = (float)sum;
    if (!(den >= 6.103515625e-5f)) den = 6.103515625e-5f;
    for (int32_t i = 0; i < k; i++) weights[i] /= den;
  }
  if (scale != 1.0f) {
    for (int32_t i = 0; i < k; i++) weights[i] *= scale;
  }
}
