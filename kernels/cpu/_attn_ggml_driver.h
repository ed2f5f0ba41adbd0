/*
 * _attn_ggml_driver.h — the ggml-rounding attention driver (SPOOL_ATTN_GGML), shared by the
 * AVX2 and NEON implementations, which differ only in vector width and in the primitives.
 * Include after defining ATTN_LANES (floats per vector), ATTN_ALIGN (bytes) and the static
 * inline primitives round_q16, ggml_scores, ggml_exp, ggml_probs and ggml_accum.
 *
 * Keys are hdk f16 values at k + j*ks, values hdv f16 values at v + j*vs (v may point into
 * the key rows: MLA's latent cache). For each head of the group: q is rounded to f16; pass 1 computes the scores of the whole
 * range (keys counted from j0 rounded down to a vector, so sums group as ggml's do) and the
 * max (sink included); pass 2 exponentiates, sums in double and turns the scores into f16
 * probabilities; pass 3 accumulates p·v. While a head's range fits SPOOL_ATTN_GGML_SCORES the
 * scores are kept; longer ranges recompute each block's scores in every pass. Each head's
 * arithmetic is the same however the heads are grouped.
 */
static __attribute__((noinline)) void attn_heads_ggml(const float *q, int32_t nh,
                                                      const uint16_t *k, const uint16_t *v,
                                                      size_t ks, size_t vs, int32_t hdk,
                                                      int32_t hdv, int32_t j0, int32_t j1,
                                                      float scale, const float *sinks,
                                                      float *out) {
  float q16[SPOOL_ATTN_MAX_ACC] __attribute__((aligned(ATTN_ALIGN)));
  float sc[SPOOL_ATTN_GGML_SCORES] __attribute__((aligned(ATTN_ALIGN)));
  float mh[SPOOL_ATTN_MAX_ACC / ATTN_LANES];
  round_q16(q, q16, nh * hdk);
  for (int32_t i = 0; i < nh * hdv; i++) out[i] = 0.0f;
  const int32_t jb0 = j0 & ~(ATTN_LANES - 1), jend = (j1 + ATTN_LANES) & ~(ATTN_LANES - 1);
  const int32_t nl = jend - jb0; /* keys from jb0, whole vectors */
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
      for (int32_t jb = jb0; jb < jend; jb += SPOOL_ATTN_BLOCK) {
        const int32_t nb = jend - jb < SPOOL_ATTN_BLOCK ? jend - jb : SPOOL_ATTN_BLOCK;
        for (int32_t h = 0; h < gh; h++)
          ggml_accum(out + (size_t)(h0 + h) * hdv, v, vs, hdv, jb, nb, j0, j1,
                     sc + (size_t)h * nl + (jb - jb0));
      }
    }
    return;
  }
  /* longer ranges: blocks outer, heads inner in every pass; each pass recomputes a block's
   * scores into sc[0..SPOOL_ATTN_BLOCK) one head at a time */
  double sums[SPOOL_ATTN_MAX_ACC / ATTN_LANES];
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
    sums[h] = 1.0 / sums[h];
  }
  for (int32_t jb = jb0; jb < jend; jb += SPOOL_ATTN_BLOCK) {
    const int32_t nb = jend - jb < SPOOL_ATTN_BLOCK ? jend - jb : SPOOL_ATTN_BLOCK;
    for (int32_t h = 0; h < nh; h++) {
      double unused = 0.0;
      ggml_scores(q16 + (size_t)h * hdk, k, ks, hdk, jb, nb, j0, j1, scale, sc);
      ggml_exp(sc, nb, mh[h], &unused);
      ggml_probs(sc, nb, (float)sums[h]);
      ggml_accum(out + (size_t)h * hdv, v, vs, hdv, jb, nb, j0, j1, sc);
    }
  }
}

