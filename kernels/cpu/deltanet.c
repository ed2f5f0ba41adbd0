/*
 * deltanet.c — public entry points of the gated DeltaNet ops (spool.h): the causal
 * depthwise conv with its rolling state, the gates, the gated delta rule with its
 * recurrent state, and the gated RMS norm. Arguments are validated here (SPOOL_E_INVALID,
 * SPOOL_E_RANGE), then the work is split over the pool and the block kernels of the
 * selected implementation run (ref/deltanet_ref.c, x86/deltanet_avx2.c,
 * arm/deltanet_neon.c).
 *
 * Splits (results never depend on them: every output element is computed by the same
 * arithmetic in whichever task owns it):
 *  - conv: tasks of SPOOL_CONV_BLOCK channels. A task transposes its kernel block to
 *    (k, channels) on the stack, saves its part of the next state (the last k-1 rows of
 *    [state; x]) before y may overwrite x, runs the conv from the last token back, then
 *    writes the state.
 *  - delta rule: tasks of (value head, SPOOL_GDN_ROWS state rows). The state's rows (value
 *    dims) evolve independently, so a task runs its rows through all the tokens, chunk by
 *    chunk of SPOOL_GDN_CHUNK tokens: it L2-normalizes the chunk's q and k of its key head
 *    into stack buffers (the same scalar arithmetic in every implementation), computes
 *    exp(g), then the block kernel keeps each row in L1 across the chunk. This is the
 *    prefill form: one call per sequence runs a whole prompt, multithreaded over heads and
 *    row blocks, with the bits of n_tok calls of one token each.
 * The gates and the gated norm are per-element and per-row loops on the caller's thread.
 */
#include "ref/deltanet_ref.h"
#include "ref/ops_ref.h"

#if defined(SPOOL_HAVE_AVX2)
#define PICK(name) (SPOOL_USE_AVX2() ? spool_avx2_##name : spool_ref_##name)
#elif defined(SPOOL_HAVE_NEON)
#define PICK(name) (SPOOL_USE_NEON() ? spool_neon_##name : spool_ref_##name)
#else
#define PICK(name) spool_ref_##name
#endif

/* ---- conv ---- */

typedef void (*conv_block_fn)(const float *, const float *, const float *, float *, int32_t,
                              int32_t, int32_t, int32_t, int32_t);

typedef struct {
  conv_block_fn fn;
  const float *x, *w;
  float *state, *y;
  int32_t n_tok, channels, k, silu;
} conv_ctx;

static void conv_task(void *p, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const conv_ctx *c = (const conv_ctx *)p;
  const int32_t c0 = task * SPOOL_CONV_BLOCK;
  const int32_t nc = c->channels - c0 < SPOOL_CONV_BLOCK ? c->channels - c0 : SPOOL_CONV_BLOCK;
  const int32_t k = c->k, ld = c->channels;
  float wt[SPOOL_CONV_MAX_K * SPOOL_CONV_BLOCK];
  float next[(SPOOL_CONV_MAX_K - 1) * SPOOL_CONV_BLOCK];
  for (int32_t ch = 0; ch < nc; ch++) {
    for (int32_t i = 0; i < k; i++) wt[i * nc + ch] = c->w[(size_t)(c0 + ch) * (size_t)k + i];
  }
  const float *x = c->x + c0;
  float *state = c->state ? c->state + c0 : NULL;
  for (int32_t r = 0; r < k - 1; r++) {
    const float *src = spool_conv_win(x, state, ld, k, c->n_tok + r);
    memcpy(next + (size_t)r * nc, src, sizeof(float) * (size_t)nc);
  }
  c->fn(x, state, wt, c->y + c0, c->n_tok, ld, nc, k, c->silu);
  for (int32_t r = 0; r < k - 1; r++) {
    memcpy(state + (size_t)r * ld, next + (size_t)r * nc, sizeof(float) * (size_t)nc);
  }
}

SPOOL_API spool_status spool_ssm_conv(spool_pool *pool, const float *x, const float *w,
                                      float *state, float *y, int32_t n_tok, int32_t channels,
                                      int32_t k, int32_t flags) {
  if (n_tok < 0 || channels < 1 || k < 1 || (flags & ~SPOOL_CONV_SILU) != 0)
    return SPOOL_E_INVALID;
  if (k > SPOOL_CONV_MAX_K) return SPOOL_E_RANGE;
  if (n_tok == 0) return SPOOL_OK;
  if (!x || !w || !y || (k > 1 && !state)) return SPOOL_E_INVALID;
  conv_ctx c = {PICK(conv_block), x, w, state, y, n_tok, channels, k, flags & SPOOL_CONV_SILU};
  spool_pool_run(pool, conv_task, &c, (channels + SPOOL_CONV_BLOCK - 1) / SPOOL_CONV_BLOCK);
  return SPOOL_OK;
}

/* ---- gates ---- */

SPOOL_API spool_status spool_gdn_gates(const float *alpha, const float *b, const float *dt_bias,
                                       const float *a, float *g, float *beta, int32_t n_tok,
                                       int32_t n_head) {
  if (n_tok < 0 || n_head < 1) return SPOOL_E_INVALID;
  if (n_tok == 0) return SPOOL_OK;
  if (!alpha || !b || !dt_bias || !a || !g || !beta) return SPOOL_E_INVALID;
  for (int32_t t = 0; t < n_tok; t++) {
    const size_t o = (size_t)t * (size_t)n_head;
    for (int32_t h = 0; h < n_head; h++) {
      const float s = alpha[o + h] + dt_bias[h];
      const float sp = s > 20.0f ? s : logf(1.0f + expf(s));
      g[o + h] = sp * a[h];
      beta[o + h] = 1.0f / (1.0f + expf(-b[o + h]));
    }
  }
  return SPOOL_OK;
}

/* ---- delta rule ---- */

typedef void (*gdn_rows_fn)(float *, int32_t, int32_t, const float *, const float *,
                            const float *, size_t, const float *, const float *, float, float *,
                            size_t, int32_t);

typedef struct {
  gdn_rows_fn fn;
  const float *q, *k, *v, *g, *beta;
  float *state, *out;
  size_t q_stride, k_stride, v_stride;
  int32_t n_tok, n_k_head, n_v_head, dk, dv, n_blocks, flags;
  float scale, eps;
} gdn_ctx;

/* llama.cpp's build_gdn_l2_norm: ggml_rms_norm(x, eps/n) then ggml_scale(1/sqrt(n)) */
static void l2norm_ggml(const float *x, float *y, int32_t n, float eps) {
  double sum = 0.0;
  for (int32_t i = 0; i < n; i++) {
    const float p = x[i] * x[i];
    sum += (double)p;
  }
  const float mean = (float)(sum / n);
  const float scale = 1.0f / sqrtf(mean + eps / (float)n);
  const float s2 = 1.0f / sqrtf((float)n);
  for (int32_t i = 0; i < n; i++) {
    const float t = x[i] * scale;
    y[i] = t * s2;
  }
}

static void gdn_task(void *p, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const gdn_ctx *c = (const gdn_ctx *)p;
  const int32_t h = task / c->n_blocks, blk = task % c->n_blocks;
  const int32_t j0 = blk * SPOOL_GDN_ROWS;
  const int32_t nr = c->dv - j0 < SPOOL_GDN_ROWS ? c->dv - j0 : SPOOL_GDN_ROWS;
  const int32_t dk = c->dk;
  const int32_t kh = (c->flags & SPOOL_GDN_TILED) ? h % c->n_k_head
                                                  : h / (c->n_v_head / c->n_k_head);
  float kn[SPOOL_GDN_CHUNK * SPOOL_GDN_MAX_HEAD_DIM], qn[SPOOL_GDN_CHUNK * SPOOL_GDN_MAX_HEAD_DIM];
  float e[SPOOL_GDN_CHUNK], b[SPOOL_GDN_CHUNK];
  float *S = c->state + ((size_t)h * (size_t)c->dv + (size_t)j0) * (size_t)dk;
  const size_t out_stride = (size_t)c->n_v_head * (size_t)c->dv;
  for (int32_t t0 = 0; t0 < c->n_tok; t0 += SPOOL_GDN_CHUNK) {
    const int32_t nt = c->n_tok - t0 < SPOOL_GDN_CHUNK ? c->n_tok - t0 : SPOOL_GDN_CHUNK;
    for (int32_t i = 0; i < nt; i++) {
      const size_t t = (size_t)(t0 + i);
      const float *qs = c->q + t * c->q_stride + (size_t)kh * (size_t)dk;
      const float *ks = c->k + t * c->k_stride + (size_t)kh * (size_t)dk;
      if (c->flags & SPOOL_GDN_L2NORM) {
        l2norm_ggml(qs, qn + (size_t)i * dk, dk, c->eps);
        l2norm_ggml(ks, kn + (size_t)i * dk, dk, c->eps);
      } else {
        memcpy(qn + (size_t)i * dk, qs, sizeof(float) * (size_t)dk);
        memcpy(kn + (size_t)i * dk, ks, sizeof(float) * (size_t)dk);
      }
      e[i] = expf(c->g[t * (size_t)c->n_v_head + (size_t)h]);
      b[i] = c->beta[t * (size_t)c->n_v_head + (size_t)h];
    }
    const float *v = c->v + (size_t)t0 * c->v_stride + (size_t)h * (size_t)c->dv + (size_t)j0;
    float *out = c->out + (size_t)t0 * out_stride + (size_t)h * (size_t)c->dv + (size_t)j0;
    c->fn(S, nr, dk, kn, qn, v, c->v_stride, e, b, c->scale, out, out_stride, nt);
  }
}

SPOOL_API spool_status spool_gated_delta_net(spool_pool *pool, const float *q, const float *k,
                                             const float *v, const float *g, const float *beta,
                                             float *state, float *out, int32_t n_tok,
                                             int32_t n_k_head, int32_t n_v_head,
                                             int32_t head_dim_k, int32_t head_dim_v,
                                             int32_t q_stride, int32_t k_stride,
                                             int32_t v_stride, float scale, float eps,
                                             int32_t flags) {
  if (n_tok < 0 || n_k_head < 1 || n_v_head < 1 || n_v_head % n_k_head != 0 ||
      head_dim_k < 1 || head_dim_v < 1 ||
      (flags & ~(SPOOL_GDN_L2NORM | SPOOL_GDN_TILED)) != 0 || !(eps >= 0.0f))
    return SPOOL_E_INVALID;
  if ((int64_t)q_stride < (int64_t)n_k_head * head_dim_k ||
      (int64_t)k_stride < (int64_t)n_k_head * head_dim_k ||
      (int64_t)v_stride < (int64_t)n_v_head * head_dim_v)
    return SPOOL_E_INVALID;
  if (head_dim_k > SPOOL_GDN_MAX_HEAD_DIM || head_dim_v > SPOOL_GDN_MAX_HEAD_DIM)
    return SPOOL_E_RANGE;
  if (n_tok == 0) return SPOOL_OK;
  if (!q || !k || !v || !g || !beta || !state || !out) return SPOOL_E_INVALID;
  gdn_ctx c;
  c.fn = PICK(gdn_rows);
  c.q = q;
  c.k = k;
  c.v = v;
  c.g = g;
  c.beta = beta;
  c.state = state;
  c.out = out;
  c.q_stride = (size_t)q_stride;
  c.k_stride = (size_t)k_stride;
  c.v_stride = (size_t)v_stride;
  c.n_tok = n_tok;
  c.n_k_head = n_k_head;
  c.n_v_head = n_v_head;
  c.dk = head_dim_k;
  c.dv = head_dim_v;
  c.n_blocks = (head_dim_v + SPOOL_GDN_ROWS - 1) / SPOOL_GDN_ROWS;
  c.flags = flags;
  c.scale = scale;
  c.eps = eps;
  spool_pool_run(pool, gdn_task, &c, n_v_head * c.n_blocks);
  return SPOOL_OK;
}

/* ---- gated RMS norm ---- */

SPOOL_API spool_status spool_gated_rmsnorm(const float *x, const float *w, const float *z,
                                           float *y, int32_t n_rows, int32_t n, float eps) {
  if (n_rows < 0 || n < 1) return SPOOL_E_INVALID;
  if (n_rows == 0) return SPOOL_OK;
  if (!x || !z || !y) return SPOOL_E_INVALID;
  void (*norm)(const float *, const float *, float *, int32_t, float) = PICK(rmsnorm_row);
  void (*gate)(const float *, const float *, float *, int32_t) = PICK(swiglu);
  for (int32_t r = 0; r < n_rows; r++) {
    const size_t o = (size_t)r * (size_t)n;
    norm(x + o, w, y + o, n, eps);
    gate(z + o, y + o, y + o, n);
  }
  return SPOOL_OK;
}
