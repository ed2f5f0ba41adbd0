/*
 * _attn_ggml_driver.h — the ggml-rounding attention driver (SPOOL_ATTN_GGML), shared by the
 * AVX2 and NEON implementations, which differ only in the primitives. The arithmetic is the
 * reference's (ref/ops_ref.c) bit for bit: llama.cpp's non-flash CPU path as its AVX-512 build
 * runs a batch, whose sums run over 16 lanes (key or dimension i in lane i % 16).
 * Include after defining ATTN_ALIGN (bytes) and the static inline primitives round_q16,
 * ggml_scores, ggml_exp, ggml_probs, ggml_accum16 and ggml_combine16.
 *
 * Keys are hdk f16 values at k + j*ks, values hdv f16 values at v + j*vs (v may point into
 * the key rows: MLA's latent cache). For each head of the group: q is rounded to f16; pass 1
 * computes the scores of the whole range (keys counted from j0 rounded down to 16, so the
 * soft-max sums group as ggml's do over its full masked row) and the max (sink included);
 * pass 2 exponentiates, sums in double and turns the scores into f16 probabilities; pass 3
 * accumulates p·v into 16 lanes per output value (lane j % 16 for key j) and reduces them,
 * blocks outer and heads inner over as many heads as GGML_ACC16 holds.
 * While a head's range fits SPOOL_ATTN_GGML_SCORES the scores are kept; longer ranges
 * recompute each block's scores in every pass. Each head's arithmetic is the same however
 * the heads are grouped.
 */
#define GGML_LANES 16
/* Floats of 16-lane p·v accumulators one task keeps on the stack (256 KiB): pass 3 runs as
 * many heads together as fit, blocks outer and heads inner, so a block's V rows are read
 * once per such chunk. */
#define GGML_ACC16 65536

/* Pass 3 of heads [h0, h0 + nh) from stored probabilities (head h's key jb0 at
 * p + (h - h0) * pstride): out_h = Σ p·v, in chunks of heads whose accumulators fit. */
static inline void ggml_pv_heads(float *acc16, const uint16_t *v, size_t vs, int32_t hdv,
                                 int32_t jb0, int32_t jend, int32_t j0, int32_t j1,
                                 const float *p, size_t pstride, int32_t nh, float *out) {
  const int32_t per = GGML_LANES * hdv, c = GGML_ACC16 / per;
  for (int32_t hc = 0; hc < nh; hc += c) {
    const int32_t n = nh - hc < c ? nh - hc : c;
    for (int32_t i = 0; i < n * per; i++) acc16[i] = 0.0f;
    for (int32_t jb = jb0; jb < jend; jb += SPOOL_ATTN_BLOCK) {
      const int32_t nb = jend - jb < SPOOL_ATTN_BLOCK ? jend - jb : SPOOL_ATTN_BLOCK;
      for (int32_t h = 0; h < n; h++)
        ggml_accum16(acc16 + (size_t)h * per, v, vs, hdv, jb, nb, j0, j1,
                     p + (size_t)(hc + h) * pstride + (jb - jb0));
    }
    for (int32_t h = 0; h < n; h++)
      ggml_combine16(acc16 + (size_t)h * per, hdv, out + (size_t)(hc + h) * hdv);
  }
}

static __attribute__((noinline)) void attn_heads_ggml(const float *q, int32_t nh,
                                                      const uint16_t *k, const uint16_t *v,
                                                      size_t ks, size_t vs, int32_t hdk,
                                                      int32_t hdv, int32_t j0, int32_t j1,
                                                      float scale, const float *sinks,
                                                      float *out) {
  float q16[SPOOL_ATTN_MAX_ACC] __attribute__((aligned(ATTN_ALIGN)));
  float sc[SPOOL_ATTN_GGML_SCORES] __attribute__((aligned(ATTN_ALIGN)));
  float acc16[GGML_ACC16] __attribute__((aligned(ATTN_ALIGN)));
  float mh[SPOOL_ATTN_MAX_ACC / 4];
  round_q16(q, q16, nh * hdk);
  const int32_t jb0 = j0 & ~(GGML_LANES - 1), jend = (j1 + GGML_LANES) & ~(GGML_LANES - 1);
  const int32_t nl = jend - jb0; /* keys from jb0, whole 16-key groups */
  if (nl <= SPOOL_ATTN_GGML_SCORES) {
    const int32_t g = SPOOL_ATTN_GGML_SCORES / nl;
    for (int32_t h0 = 0; h0 < nh; h0 += g) {
      const int32_t gh = nh - h0 < g ? nh - h0 : g;
      for (int32_t h = 0; h < gh; h++) mh[h] = -INFINITY;
      for (int32_t jb = jb0; jb < jend; jb += SPOOL_ATTN_BLOCK) {
        const int32_t nb = jend - jb < SPOOL_ATTN_BLOCK ? jend - jb : SPOOL_ATTN_BLOCK;
        for (int32_t h = 0; h < gh; h++) {
          const float bm = ggml_scores(q16 + (size_t)(h0 + h) * hdk, k, ks, hdk, jb, nb, j0, j1,
                                       scale, sc + (size_t)h * nl + (jb - jb0));
          mh[h] = bm > mh[h] ? bm : mh[h];
        }
      }
      for (int32_t h = 0; h < gh; h++) {
        float m = mh[h];
        if (sinks) m = sinks[h0 + h] > m ? sinks[h0 + h] : m;
        double sum = 0.0;
        ggml_exp(sc + (size_t)h * nl, nl, m, &sum);
        if (sinks) sum += (double)expf(sinks[h0 + h] - m);
        ggml_probs(sc + (size_t)h * nl, nl, (float)(1.0 / sum));
      }
      ggml_pv_heads(acc16, v, vs, hdv, jb0, jend, j0, j1, sc, (size_t)nl, gh,
                    out + (size_t)h0 * hdv);
    }
    return;
  }
  /* longer ranges: passes 1 and 2 blocks outer, heads inner; pass 3 per head; each pass
   * recomputes a block's scores into sc[0..SPOOL_ATTN_BLOCK) */
  double sums[SPOOL_ATTN_MAX_ACC / 4];
  for (int32_t h = 0; h < nh; h++) mh[h] = -INFINITY;
  for (int32_t jb = jb0; jb < jend; jb += SPOOL_ATTN_BLOCK) {
    const int32_t nb = jend - jb < SPOOL_ATTN_BLOCK ? jend - jb : SPOOL_ATTN_BLOCK;
    for (int32_t h = 0; h < nh; h++) {
      const float bm = ggml_scores(q16 + (size_t)h * hdk, k, ks, hdk, jb, nb, j0, j1, scale, sc);
      mh[h] = bm > mh[h] ? bm : mh[h];
    }
  }
  for (int32_t h = 0; h < nh; h++) {
    if (sinks) mh[h] = sinks[h] > mh[h] ? sinks[h] : mh[h];
    sums[h] = 0.0;
  }
  for (int32_t jb = jb0; jb < jend; jb += SPOOL_ATTN_BLOCK) {
    const int32_t nb = jend - jb < SPOOL_ATTN_BLOCK ? jend - jb : SPOOL_ATTN_BLOCK;
    for (int32_t h = 0; h < nh; h++) {
      ggml_scores(q16 + (size_t)h * hdk, k, ks, hdk, jb, nb, j0, j1, scale, sc);
      ggml_exp(sc, nb, mh[h], &sums[h]);
    }
  }
  for (int32_t h = 0; h < nh; h++) {
    if (sinks) sums[h] += (double)expf(sinks[h] - mh[h]);
    const float inv = (float)(1.0 / sums[h]);
    for (int32_t i = 0; i < GGML_LANES * hdv; i++) acc16[i] = 0.0f;
    for (int32_t jb = jb0; jb < jend; jb += SPOOL_ATTN_BLOCK) {
      const int32_t nb = jend - jb < SPOOL_ATTN_BLOCK ? jend - jb : SPOOL_ATTN_BLOCK;
      double unused = 0.0;
      ggml_scores(q16 + (size_t)h * hdk, k, ks, hdk, jb, nb, j0, j1, scale, sc);
      ggml_exp(sc, nb, mh[h], &unused);
      ggml_probs(sc, nb, inv);
      ggml_accum16(acc16, v, vs, hdv, jb, nb, j0, j1, sc);
    }
    ggml_combine16(acc16, hdv, out + (size_t)h * hdv);
  }
}
