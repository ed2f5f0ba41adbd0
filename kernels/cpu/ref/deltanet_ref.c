/*
 * deltanet_ref.c — scalar reference of the gated DeltaNet block kernels (layouts and
 * algorithm in deltanet_ref.h and spool.h).
 *
 * Follows ggml's CPU ops so that spool and llama.cpp agree closely:
 *  - conv: ggml_compute_forward_ssm_conv_f32 — an f32 sum over the taps, oldest first,
 *    each product rounded then added (no FMA); silu x / (1 + expf(-x)) as ggml_silu_f32.
 *  - delta rule: ggml_compute_forward_gated_delta_net_one_chunk — the state scaled by
 *    exp(g), then the dot with k, delta = (v - dot) * beta, the rank-1 update row += k * d,
 *    then out = (row · q) * scale. Dots are f32 products summed in double and rounded to f32
 *    (ggml_vec_dot_f32's scalar form); the update is one rounded product and one rounded add
 *    per element (ggml_vec_mad_f32's scalar form).
 */
#include "deltanet_ref.h"

void spool_ref_conv_block(const float *x, const float *state, const float *wt, float *y,
                          int32_t n_tok, int32_t ld, int32_t nc, int32_t k, int32_t silu) {
  for (int32_t t = n_tok - 1; t >= 0; t--) {
    float *yt = y + (size_t)t * (size_t)ld;
    for (int32_t c = 0; c < nc; c++) {
      float s = 0.0f;
      for (int32_t i = 0; i < k; i++) {
        const float p = spool_conv_win(x, state, ld, k, t + i)[c] * wt[(size_t)i * nc + c];
        s = s + p;
      }
      yt[c] = silu ? s / (1.0f + expf(-s)) : s;
    }
  }
}

static float dot_ref(const float *a, const float *b, int32_t n) {
  double s = 0.0;
  for (int32_t i = 0; i < n; i++) {
    const float p = a[i] * b[i];
    s += (double)p;
  }
  return (float)s;
}

void spool_ref_gdn_rows(float *S, int32_t nr, int32_t dk, const float *kn, const float *qn,
                        const float *v, size_t v_stride, const float *e, const float *b,
                        float scale, float *out, size_t out_stride, int32_t nt) {
  for (int32_t t = 0; t < nt; t++) {
    const float *kt = kn + (size_t)t * (size_t)dk, *qt = qn + (size_t)t * (size_t)dk;
    const float *vt = v + (size_t)t * v_stride;
    float *ot = out + (size_t)t * out_stride;
    for (int32_t r = 0; r < nr; r++) {
      float *row = S + (size_t)r * (size_t)dk;
      for (int32_t i = 0; i < dk; i++) row[i] *= e[t];
      const float d = (vt[r] - dot_ref(row, kt, dk)) * b[t];
      for (int32_t i = 0; i < dk; i++) {
        const float p = kt[i] * d;
        row[i] = row[i] + p;
      }
      ot[r] = dot_ref(row, qt, dk) * scale;
    }
  }
}
