/*
 * ops.c — public entry points of the elementwise, normalization, RoPE, routing and
 * attention ops (spool.h). Each entry point validates its arguments (SPOOL_E_INVALID for
 * NULL pointers, negative or inconsistent sizes and unknown flags, SPOOL_E_RANGE for values
 * beyond what the kernels support), then picks the row kernels of the implementation
 * selected by spool_impl_current (ref/ops_ref.c, x86/ops_avx2.c, arm/ops_neon.c) and loops
 * over rows, tokens and heads. Layouts are those of spool.h: row-major, contiguous.
 *
 * Attention (spool_attention, and spool_attention_ex with K and V head sizes and row strides
 * of their own: MLA's latent rows) is split over the pool by (token, kv head, chunk of the
 * query heads that share that kv head), so a GQA group reads its K/V rows once per chunk;
 * a chunk holds as many heads as fit the stack accumulators (8192 floats of q and of out:
 * 14 heads of MLA's 576/512). Routing (spool_topk_route, spool_topk_route_groups) is scalar
 * on every implementation. No op allocates or prints.
 */
#include "ref/ops_ref.h"

#if defined(SPOOL_HAVE_AVX2)
#define PICK(name) (SPOOL_USE_AVX2() ? spool_avx2_##name : spool_ref_##name)
#elif defined(SPOOL_HAVE_NEON)
#define PICK(name) (SPOOL_USE_NEON() ? spool_neon_##name : spool_ref_##name)
#else
#define PICK(name) spool_ref_##name
#endif

SPOOL_API spool_status spool_rmsnorm(const float *x, const float *w, float *y, int32_t n_rows,
                                     int32_t n, float eps) {
  if (n_rows < 0 || n < 1) return SPOOL_E_INVALID;
  if (n_rows == 0) return SPOOL_OK;
  if (!x || !y) return SPOOL_E_INVALID;
  void (*fn)(const float *, const float *, float *, int32_t, float) = PICK(rmsnorm_row);
  for (int32_t r = 0; r < n_rows; r++) {
    const size_t o = (size_t)r * (size_t)n;
    fn(x + o, w, y + o, n, eps);
  }
  return SPOOL_OK;
}

SPOOL_API spool_status spool_softmax(float *x, int32_t n_rows, int32_t n) {
  if (n_rows < 0 || n < 1) return SPOOL_E_INVALID;
  if (n_rows == 0) return SPOOL_OK;
  if (!x) return SPOOL_E_INVALID;
  void (*fn)(float *, int32_t) = PICK(softmax_row);
  for (int32_t r = 0; r < n_rows; r++) fn(x + (size_t)r * (size_t)n, n);
  return SPOOL_OK;
}

SPOOL_API spool_status spool_silu(const float *x, float *y, int32_t n) {
  if (n < 0) return SPOOL_E_INVALID;
  if (n == 0) return SPOOL_OK;
  if (!x || !y) return SPOOL_E_INVALID;
  PICK(silu)(x, y, n);
  return SPOOL_OK;
}

SPOOL_API spool_status spool_swiglu(const float *gate, const float *up, float *y, int32_t n) {
  if (n < 0) return SPOOL_E_INVALID;
  if (n == 0) return SPOOL_OK;
  if (!gate || !up || !y) return SPOOL_E_INVALID;
  PICK(swiglu)(gate, up, y, n);
  return SPOOL_OK;
}

SPOOL_API spool_status spool_f32_to_f16(const float *src, uint16_t *dst, int32_t n) {
  if (n < 0) return SPOOL_E_INVALID;
  if (n == 0) return SPOOL_OK;
  if (!src || !dst) return SPOOL_E_INVALID;
  PICK(f32_to_f16)(src, dst, n);
  return SPOOL_OK;
}

SPOOL_API spool_status spool_f16_to_f32(const uint16_t *src, float *dst, int32_t n) {
  if (n < 0) return SPOOL_E_INVALID;
  if (n == 0) return SPOOL_OK;
  if (!src || !dst) return SPOOL_E_INVALID;
  PICK(f16_to_f32)(src, dst, n);
  return SPOOL_OK;
}

SPOOL_API spool_status spool_rope(float *x, const int32_t *pos, int32_t n_tok, int32_t n_head,
                                  int32_t head_dim, int32_t n_rot, int32_t mode, float freq_base,
                                  float freq_scale, float ext_factor, float attn_factor,
                                  float beta_fast, float beta_slow, int32_t n_ctx_orig,
                                  const float *freq_factors) {
  if (n_tok < 0 || n_head < 1 || head_dim < 1 || n_rot < 2 || (n_rot & 1) || n_rot > head_dim)
    return SPOOL_E_INVALID;
  if (mode != SPOOL_ROPE_NORMAL && mode != SPOOL_ROPE_NEOX) return SPOOL_E_INVALID;
  if (!(freq_base > 0.0f) || !(freq_scale > 0.0f)) return SPOOL_E_INVALID;
  if (ext_factor != 0.0f && n_ctx_orig < 1) return SPOOL_E_INVALID;
  if (n_rot > SPOOL_ROPE_MAX_ROT) return SPOOL_E_RANGE;
  if (n_tok == 0) return SPOOL_OK;
  if (!x || !pos) return SPOOL_E_INVALID;
  float corr[2] = {0.0f, 0.0f};
  if (ext_factor != 0.0f)
    spool_rope_corr_dims(n_rot, n_ctx_orig, freq_base, beta_fast, beta_slow, corr);
  void (*fn)(float *, int32_t, int32_t, const float *, const float *) = PICK(rope_head);
  float cs[SPOOL_ROPE_MAX_ROT / 2], sn[SPOOL_ROPE_MAX_ROT / 2];
  for (int32_t t = 0; t < n_tok; t++) {
    spool_rope_cache(pos[t], n_rot, freq_base, freq_scale, ext_factor, attn_factor, corr,
                     freq_factors, cs, sn);
    float *xt = x + (size_t)t * (size_t)n_head * (size_t)head_dim;
    for (int32_t h = 0; h < n_head; h++) fn(xt + (size_t)h * (size_t)head_dim, n_rot, mode, cs, sn);
  }
  return SPOOL_OK;
}

SPOOL_API spool_status spool_topk_route(const float *logits, const float *bias, int32_t n_tok,
                                        int32_t n_expert, int32_t k, int32_t gating, int32_t norm,
                                        float scale, int32_t *ids, float *weights) {
  if (n_tok < 0 || n_expert < 1 || k < 1) return SPOOL_E_INVALID;
  if (gating != SPOOL_GATE_SOFTMAX && gating != SPOOL_GATE_SIGMOID &&
      gating != SPOOL_GATE_SOFTMAX_TOPK)
    return SPOOL_E_INVALID;
  if (k > n_expert) return SPOOL_E_RANGE;
  if (n_tok == 0) return SPOOL_OK;
  if (!logits || !ids || !weights) return SPOOL_E_INVALID;
  for (int32_t t = 0; t < n_tok; t++) {
    spool_ref_topk_route_token(logits + (size_t)t * (size_t)n_expert, bias, n_expert, k, gating,
                               norm, scale, 1, 1, ids + (size_t)t * (size_t)k,
                               weights + (size_t)t * (size_t)k);
  }
  return SPOOL_OK;
}

SPOOL_API spool_status spool_topk_route_groups(const float *logits, const float *bias,
                                               int32_t n_tok, int32_t n_expert, int32_t k,
                                               int32_t gating, int32_t norm, float scale,
                                               int32_t n_group, int32_t n_group_used,
                                               int32_t *ids, float *weights) {
  if (n_tok < 0 || n_expert < 1 || k < 1 || n_group < 1 || n_group_used < 1)
    return SPOOL_E_INVALID;
  if (gating != SPOOL_GATE_SOFTMAX && gating != SPOOL_GATE_SIGMOID &&
      gating != SPOOL_GATE_SOFTMAX_TOPK)
    return SPOOL_E_INVALID;
  if (n_expert % n_group != 0) return SPOOL_E_INVALID;
  if (n_group > 1 && n_expert / n_group < 2) return SPOOL_E_INVALID; /* top-2 per group */
  if (n_group_used > n_group || n_group > SPOOL_ROUTE_MAX_GROUPS) return SPOOL_E_RANGE;
  if ((int64_t)k > (int64_t)n_group_used * (n_expert / n_group)) return SPOOL_E_RANGE;
  if (n_tok == 0) return SPOOL_OK;
  if (!logits || !ids || !weights) return SPOOL_E_INVALID;
  for (int32_t t = 0; t < n_tok; t++) {
    spool_ref_topk_route_token(logits + (size_t)t * (size_t)n_expert, bias, n_expert, k, gating,
                               norm, scale, n_group, n_group_used, ids + (size_t)t * (size_t)k,
                               weights + (size_t)t * (size_t)k);
  }
  return SPOOL_OK;
}

typedef void (*attn_heads_fn)(const float *, int32_t, const uint16_t *, const uint16_t *, size_t,
                              size_t, int32_t, int32_t, int32_t, int32_t, float, const float *,
                              int32_t, float *);

typedef struct {
  attn_heads_fn fn;
  const float *q;
  const uint16_t *k, *v;
  float *out;
  const float *sinks;
  size_t k_stride, v_stride;
  int32_t n_head, n_head_kv, group, chunk, n_chunks, hdk, hdv, pos0, window, flags;
  float scale;
} attn_ctx;

/* task = (token, kv head, chunk of that kv head's query heads) */
static void attn_task(void *p, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const attn_ctx *c = (const attn_ctx *)p;
  const int32_t per_tok = c->n_head_kv * c->n_chunks;
  const int32_t t = task / per_tok, r = task % per_tok;
  const int32_t kvh = r / c->n_chunks, ch = r % c->n_chunks;
  const int32_t h0 = kvh * c->group + ch * c->chunk;
  const int32_t rest = (kvh + 1) * c->group - h0;
  const int32_t nh = rest < c->chunk ? rest : c->chunk;
  const int32_t pos = c->pos0 + t;
  int32_t j0 = 0;
  if (c->window > 0 && pos - c->window + 1 > 0) j0 = pos - c->window + 1;
  const size_t th = (size_t)t * (size_t)c->n_head + (size_t)h0;
  c->fn(c->q + th * (size_t)c->hdk, nh, c->k + (size_t)kvh * (size_t)c->hdk,
        c->v + (size_t)kvh * (size_t)c->hdv, c->k_stride, c->v_stride, c->hdk, c->hdv, j0, pos,
        c->scale, c->sinks ? c->sinks + h0 : NULL, c->flags, c->out + th * (size_t)c->hdv);
}

/* Validated arguments of spool_attention / spool_attention_ex, strides in elements. */
static spool_status attention_run(spool_pool *pool, const float *q, const uint16_t *k,
                                  const uint16_t *v, float *out, int32_t n_tok, int32_t n_head,
                                  int32_t n_head_kv, int32_t hdk, int32_t hdv, size_t k_stride,
                                  size_t v_stride, int32_t pos0, float scale, int32_t window,
                                  const float *sinks, int32_t flags) {
  attn_ctx c;
  c.fn = PICK(attn_heads);
  c.q = q;
  c.k = k;
  c.v = v;
  c.out = out;
  c.sinks = sinks;
  c.k_stride = k_stride;
  c.v_stride = v_stride;
  c.n_head = n_head;
  c.n_head_kv = n_head_kv;
  c.group = n_head / n_head_kv;
  c.hdk = hdk;
  c.hdv = hdv;
  c.pos0 = pos0;
  c.window = window;
  c.scale = scale;
  c.flags = flags;
  /* Query heads of one kv head go together (each K/V block is read once for all of them),
   * up to the stack accumulator's size (q and out of the chunk: nh * max(hdk, hdv) floats
   * each); smaller chunks only when there would otherwise be fewer than two tasks per
   * thread. Per-head results do not depend on the chunking. */
  int32_t chunk = SPOOL_ATTN_MAX_ACC / (hdk > hdv ? hdk : hdv);
  if (chunk > c.group) chunk = c.group;
  const int64_t want = 2 * (int64_t)spool_pool_size(pool);
  while (chunk > 1 &&
         (int64_t)n_tok * n_head_kv * ((c.group + chunk - 1) / chunk) < want)
    chunk = (chunk + 1) / 2;
  c.chunk = chunk;
  c.n_chunks = (c.group + chunk - 1) / chunk;
  spool_pool_run(pool, attn_task, &c, n_tok * n_head_kv * c.n_chunks);
  return SPOOL_OK;
}

SPOOL_API spool_status spool_attention(spool_pool *pool, const float *q, const uint16_t *k,
                                       const uint16_t *v, float *out, int32_t n_tok,
                                       int32_t n_head, int32_t n_head_kv, int32_t head_dim,
                                       int32_t n_kv, int32_t pos0, float scale, int32_t window,
                                       const float *sinks, int32_t flags) {
  if (n_tok < 0 || n_head < 1 || n_head_kv < 1 || n_head % n_head_kv != 0 || head_dim < 1 ||
      n_kv < 0 || pos0 < 0 || window < 0 || (flags & ~SPOOL_ATTN_GGML) != 0)
    return SPOOL_E_INVALID;
  if (head_dim > SPOOL_ATTN_MAX_HEAD_DIM) return SPOOL_E_RANGE;
  if ((int64_t)pos0 + (int64_t)n_tok > (int64_t)n_kv) return SPOOL_E_RANGE;
  if ((int64_t)n_tok * (int64_t)n_head > INT32_MAX) return SPOOL_E_RANGE;
  if (n_tok == 0) return SPOOL_OK;
  if (!q || !k || !v || !out) return SPOOL_E_INVALID;
  const size_t stride = (size_t)n_head_kv * (size_t)head_dim;
  return attention_run(pool, q, k, v, out, n_tok, n_head, n_head_kv, head_dim, head_dim, stride,
                       stride, pos0, scale, window, sinks, flags);
}

SPOOL_API spool_status spool_attention_ex(spool_pool *pool, const float *q, const uint16_t *k,
                                          const uint16_t *v, float *out, int32_t n_tok,
                                          int32_t n_head, int32_t n_head_kv, int32_t head_dim_k,
                                          int32_t head_dim_v, int32_t k_row_stride,
                                          int32_t v_row_stride, int32_t n_kv, int32_t pos0,
                                          float scale, int32_t window, const float *sinks,
                                          int32_t flags) {
  if (n_tok < 0 || n_head < 1 || n_head_kv < 1 || n_head % n_head_kv != 0 || head_dim_k < 1 ||
      head_dim_v < 1 || n_kv < 0 || pos0 < 0 || window < 0 || (flags & ~SPOOL_ATTN_GGML) != 0)
    return SPOOL_E_INVALID;
  if ((int64_t)k_row_stride < (int64_t)n_head_kv * head_dim_k ||
      (int64_t)v_row_stride < (int64_t)n_head_kv * head_dim_v)
    return SPOOL_E_INVALID;
  if (head_dim_k > SPOOL_ATTN_MAX_HEAD_DIM || head_dim_v > SPOOL_ATTN_MAX_HEAD_DIM)
    return SPOOL_E_RANGE;
  if ((int64_t)pos0 + (int64_t)n_tok > (int64_t)n_kv) return SPOOL_E_RANGE;
  if ((int64_t)n_tok * (int64_t)n_head > INT32_MAX) return SPOOL_E_RANGE;
  if (n_tok == 0) return SPOOL_OK;
  if (!q || !k || !v || !out) return SPOOL_E_INVALID;
  return attention_run(pool, q, k, v, out, n_tok, n_head, n_head_kv, head_dim_k, head_dim_v,
                       (size_t)k_row_stride, (size_t)v_row_stride, pos0, scale, window, sinks,
                       flags);
}
