/*
 * moe.c — spool_moe_ffn: the routed-expert FFN of one layer in one call.
 *
 *   y[t] = Σ_j w[t,j] · (down_e(act(gate_e(x_t) + gate_b_e, up_e(x_t) + up_b_e)) + down_b_e),
 *   e = ids[t,j], j = 0..k-1 summed in that order.
 *
 * Every product is exactly what spool_matmul computes for the same rows (the same kernels,
 * through spool_rows_product: 8-bit activations for quantized weights, f32 for F32/F16/BF16,
 * tile kernels where the type has them), so the result is bit-identical to composing
 * spool_matmul + spool_swiglu + an f32 slot-order sum, and does not depend on the pool.
 *
 * Steps (P = n_tok·k slots):
 *  0. (caller thread) Group the slots by expert: a counting sort keeps each expert's slots
 *     in increasing slot order; group g holds slots at positions [gstart[g], gstart[g+1]).
 *     Each token's x is quantized once per activation type (Q8_0 / Q8_K; gate and up share
 *     it when their types agree) and copied to the positions of its slots, so a group's
 *     activation rows are contiguous (with one token every group has one slot and reads the
 *     token's row directly). n_tok >= 4 quantizes over the pool.
 *  1. One pool dispatch of tasks (group, row chunk of n_ff): gate then up for those rows of
 *     the group's expert against the group's rows, into G and U (position-major, n_ff
 *     each). A per-group atomic counter finds the task that completes a group; that task
 *     applies the activation to the whole group block (in place into G: spool_swiglu's
 *     kernel over the group's n_g·n_ff values, exactly as the JS path called it, or gpt-oss's
 *     clamped SwiGLU in f32 steps) and quantizes the group's rows for down.
 *  2. One pool dispatch of tasks (row chunk of n_embd): down for those rows of every group,
 *     into D (position-major, n_embd each), then, for the same rows, each token's slot sum
 *     y = ((d_0 + down_b) · w_0) + ((d_1 + down_b) · w_1) + ... in f32, in slot order.
 *
 * Decode (n_tok = 1, k = 8, n_ff 768, 2 threads) makes step 1 16 tasks of 384 rows of gate
 * and up each, and step 2 16 tasks of 128 rows of all 8 downs: each expert matrix streams
 * once, the threads share the whole layer's work, and there are two dispatches per layer
 * instead of 3·k matmuls. MOE_TASKS_PER_THREAD 8 measured best against 4 and 16 (Qwen3-30B
 * Q4_K_M, 2 threads: about 14 GB/s over the experts against 16-17 for one long matvec).
 *
 * Phases (spool_moe_ffn_phase), for overlapping expert reads with compute: BEGIN runs step 0
 * and steps 1 and 2 (down only) for the groups whose three matrices are present (non-NULL),
 * marks those groups computed and leaves everything in the scratch; MORE, with the same
 * arguments as more matrices arrive, redoes the grouping (the same: it depends on ids only)
 * and runs steps 1 and 2 (down only) for the present groups not yet computed; FINISH, once
 * every matrix is present, does that for the rest and then the slot sum over all of them.
 * Every group's G, U, Hq and D rows are the same bits whichever call computes them (token
 * tiles come from the largest group of the whole call, row chunks never change a row's
 * value), and the sum is the same slot-order f32 sum, so BEGIN + MORE... + FINISH equals
 * one ALL call bit for bit.
 *
 * Scratch (spool_moe_scratch_bytes; aligned internally to 64 bytes):
 *   ints:  gexp[P], gstart[P+1], pos[P] (slot -> position), sel[P] (this call's groups),
 *          computed[P] (per group), cnt[n_expert], stamp[4], done[P] (atomic)
 *   xg:    P gathered gate activation rows (quantized, or f32 for float gate weights)
 *   xu:    P up activation rows, only when up's activation type differs from gate's
 *   G, U:  P × n_ff f32;  Hq: P quantized rows of n_ff (quantized down weights only)
 *   D:     P × n_embd f32
 */
#include "ref/quant_ref.h"
#include "ref/ops_ref.h"
#include <stdatomic.h>

#define MOE_TASKS_PER_THREAD 8 /* tasks per thread and step (balance vs. stream restarts) */
#define MOE_MIN_ROWS 16         /* fewest rows in a task */

typedef struct {
  int32_t type, blck, bytes, act; /* act: SPOOL_TYPE_Q8_0 / Q8_K, or -1 (f32 path) */
  size_t row_bytes;               /* bytes of one weight row */
  size_t xrow;                    /* bytes of one activation row (quantized or f32) */
  spool_kernels k;
  const uint8_t *const *w;        /* n_expert matrices */
} moe_mat;

typedef struct {
  moe_mat gate, up, down;
  const float *x, *wts, *gate_b, *up_b, *down_b;
  const int32_t *ids;
  float *y;
  int32_t n_tok, n_embd, n_ff, k, act, n_groups;
  /* grouping */
  int32_t *gexp, *gstart, *pos;
  atomic_int *done;
  /* activations and intermediates */
  uint8_t *xg, *xu; /* xu == xg when gate and up share the activation type */
  size_t xs;        /* position stride of xg / xu in rows: 1, or 0 with one token */
  float *G, *U, *D;
  uint8_t *hq;      /* NULL when down takes f32 activations (then G is its input) */
  int32_t tile_g, tile_u, tile_d;
  int32_t per1, cpg, per2;
  int32_t tok_per_task; /* step 0 */
  /* phases: the groups this call computes (indices into gexp/gstart), and whether it sums */
  int32_t *sel, n_sel, sum;
  int32_t *computed; /* per group: 1 once its down rows are in D (kept across phases) */
} moe_ctx;

static int mat_init(moe_mat *m, int32_t type, int32_t cols, const void *const *w) {
  if (!spool_type_traits(type, &m->blck, &m->bytes, &m->act) || m->act == -2) return SPOOL_E_TYPE;
  if (cols % m->blck) return SPOOL_E_INVALID;
  m->type = type;
  m->row_bytes = (size_t)(cols / m->blck) * (size_t)m->bytes;
  m->xrow = m->act >= 0 ? spool_act_row_bytes(m->act, cols) : (size_t)cols * sizeof(float);
  m->w = (const uint8_t *const *)w;
  return SPOOL_OK;
}

static size_t al64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Bytes of each scratch region, in layout order. */
typedef struct { size_t ints, xg, xu, g, u, hq, d; } moe_sizes;

static int moe_sizes_of(const moe_mat *gate, const moe_mat *up, const moe_mat *down,
                        int32_t n_embd, int32_t n_ff, int32_t n_expert, int32_t n_tok, int32_t k,
                        moe_sizes *s) {
  const size_t P = (size_t)n_tok * (size_t)k;
  s->ints = al64(sizeof(int32_t) * (5 * P + 5 + (size_t)n_expert) + sizeof(atomic_int) * P);
  s->xg = al64(P * gate->xrow);
  s->xu = up->act == gate->act ? 0 : al64(P * up->xrow);
  s->g = al64(P * (size_t)n_ff * sizeof(float));
  s->u = s->g;
  s->hq = down->act >= 0 ? al64(P * down->xrow) : 0;
  s->d = al64(P * (size_t)n_embd * sizeof(float));
  return 1;
}

static double moe_total(const moe_sizes *s) {
  return (double)(64 + s->ints + s->xg + s->xu + s->g + s->u + s->hq + s->d);
}

SPOOL_API double spool_moe_scratch_bytes(int32_t gate_type, int32_t up_type, int32_t down_type,
                                         int32_t n_embd, int32_t n_ff, int32_t n_expert,
                                         int32_t n_tok, int32_t k) {
  if (n_embd < 1 || n_ff < 1 || n_expert < 1 || n_tok < 0 || k < 1) return 0;
  moe_mat g, u, d;
  if (mat_init(&g, gate_type, n_embd, NULL) || mat_init(&u, up_type, n_embd, NULL) ||
      mat_init(&d, down_type, n_ff, NULL))
    return 0;
  moe_sizes s;
  moe_sizes_of(&g, &u, &d, n_embd, n_ff, n_expert, n_tok, k, &s);
  return moe_total(&s);
}

/* ---- step 0: activations of x, gathered to slot positions ---- */

static void quant_row(const moe_mat *m, const float *x, uint8_t *dst, int32_t cols) {
  if (m->act >= 0) m->k.quant_act(x, dst, cols);
  else memcpy(dst, x, (size_t)cols * sizeof(float));
}

static void x_task(void *vctx, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const moe_ctx *c = (const moe_ctx *)vctx;
  const int32_t t0 = task * c->tok_per_task;
  const int32_t t1 = t0 + c->tok_per_task < c->n_tok ? t0 + c->tok_per_task : c->n_tok;
  for (int32_t t = t0; t < t1; t++) {
    const float *xt = c->x + (size_t)t * c->n_embd;
    const size_t p0 = (size_t)c->pos[(size_t)t * c->k];
    uint8_t *g0 = c->xg + p0 * c->gate.xrow;
    quant_row(&c->gate, xt, g0, c->n_embd);
    for (int32_t j = 1; j < c->k; j++) {
      memcpy(c->xg + (size_t)c->pos[(size_t)t * c->k + j] * c->gate.xrow, g0, c->gate.xrow);
    }
    if (c->xu != c->xg) {
      uint8_t *u0 = c->xu + p0 * c->up.xrow;
      quant_row(&c->up, xt, u0, c->n_embd);
      for (int32_t j = 1; j < c->k; j++) {
        memcpy(c->xu + (size_t)c->pos[(size_t)t * c->k + j] * c->up.xrow, u0, c->up.xrow);
      }
    }
  }
}

/* ---- step 1: gate and up, then the activation of each completed group ---- */

#if defined(SPOOL_HAVE_AVX2)
#define SWIGLU_FN (SPOOL_USE_AVX2() ? spool_avx2_swiglu : spool_ref_swiglu)
#elif defined(SPOOL_HAVE_NEON)
#define SWIGLU_FN (SPOOL_USE_NEON() ? spool_neon_swiglu : spool_ref_swiglu)
#else
#define SWIGLU_FN spool_ref_swiglu
#endif

/* Rows [r0, r1) of matrix m (expert e) for the n_g activation rows from position p0. */
static void product(const moe_mat *m, int32_t e, int32_t cols, int32_t r0, int32_t r1,
                    const uint8_t *xa, size_t xs, int32_t p0, int32_t n_g, int32_t tile,
                    float *y, size_t ys) {
  const uint8_t *xr = xa + (size_t)p0 * xs * m->xrow;
  spool_rows_product(&m->k, m->w[e], m->row_bytes, cols, m->blck, m->bytes, r0, r1,
                     m->act >= 0 ? xr : NULL, xs * m->xrow, (const float *)xr,
                     xs * m->xrow / sizeof(float), n_g, tile, y + (size_t)p0 * ys, ys);
}

static void act_group(const moe_ctx *c, int32_t g) {
  const int32_t e = c->gexp[g], p0 = c->gstart[g], n_g = c->gstart[g + 1] - p0;
  const int32_t ff = c->n_ff;
  float *G = c->G + (size_t)p0 * ff, *U = c->U + (size_t)p0 * ff;
  const float *gb = c->gate_b ? c->gate_b + (size_t)e * ff : NULL;
  const float *ub = c->up_b ? c->up_b + (size_t)e * ff : NULL;
  if (c->act == SPOOL_ACT_SWIGLU) {
    for (int32_t r = 0; r < n_g; r++) {
      float *gr = G + (size_t)r * ff, *ur = U + (size_t)r * ff;
      if (gb) for (int32_t i = 0; i < ff; i++) gr[i] = gr[i] + gb[i];
      if (ub) for (int32_t i = 0; i < ff; i++) ur[i] = ur[i] + ub[i];
    }
    SWIGLU_FN(G, U, G, n_g * ff); /* one call over the group block, as spool_swiglu was */
  } else { /* gpt-oss: every step rounded to f32 in ggml's order; exp in double, rounded */
    const float limit = 7.0f, alpha = 1.702f;
    for (int32_t r = 0; r < n_g; r++) {
      float *gr = G + (size_t)r * ff;
      const float *ur = U + (size_t)r * ff;
      for (int32_t i = 0; i < ff; i++) {
        float xg = gb ? gr[i] + gb[i] : gr[i];
        float yu = ub ? ur[i] + ub[i] : ur[i];
        const float xv = xg > limit ? limit : xg;
        float yv = yu > limit ? limit : yu;
        yv = yv < -limit ? -limit : yv;
        const float ex = (float)exp((double)(alpha * -xv));
        const float glu = xv / (1.0f + ex);
        gr[i] = glu * (yv + 1.0f);
      }
    }
  }
  if (c->hq) {
    for (int32_t r = 0; r < n_g; r++) {
      c->down.k.quant_act(G + (size_t)r * ff, c->hq + (size_t)(p0 + r) * c->down.xrow, ff);
    }
  }
}

static void up_task(void *vctx, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const moe_ctx *c = (const moe_ctx *)vctx;
  const int32_t g = c->sel[task / c->cpg], ch = task % c->cpg;
  const int32_t r0 = ch * c->per1;
  const int32_t r1 = r0 + c->per1 < c->n_ff ? r0 + c->per1 : c->n_ff;
  const int32_t e = c->gexp[g], p0 = c->gstart[g], n_g = c->gstart[g + 1] - p0;
  product(&c->gate, e, c->n_embd, r0, r1, c->xg, c->xs, p0, n_g, c->tile_g, c->G,
          (size_t)c->n_ff);
  product(&c->up, e, c->n_embd, r0, r1, c->xu, c->xs, p0, n_g, c->tile_u, c->U,
          (size_t)c->n_ff);
  /* the task that completes a group activates it (acq_rel: sees the others' G/U rows) */
  if (atomic_fetch_add_explicit(&c->done[g], 1, memory_order_acq_rel) + 1 == c->cpg) {
    act_group(c, g);
  }
}

/* ---- step 2: down for a row chunk of every group, then the slot-order sum ---- */

static void down_task(void *vctx, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const moe_ctx *c = (const moe_ctx *)vctx;
  const int32_t E = c->n_embd, K = c->k;
  const int32_t r0 = task * c->per2;
  const int32_t r1 = r0 + c->per2 < E ? r0 + c->per2 : E;
  const uint8_t *h = c->hq ? c->hq : (const uint8_t *)c->G;
  for (int32_t i = 0; i < c->n_sel; i++) {
    const int32_t g = c->sel[i], p0 = c->gstart[g];
    product(&c->down, c->gexp[g], c->n_ff, r0, r1, h, 1, p0, c->gstart[g + 1] - p0, c->tile_d,
            c->D, (size_t)E);
  }
  if (!c->sum) return;
  for (int32_t t = 0; t < c->n_tok; t++) {
    float *yt = c->y + (size_t)t * E;
    for (int32_t j = 0; j < K; j++) {
      const size_t s = (size_t)t * K + j;
      const float *d = c->D + (size_t)c->pos[s] * E;
      const float wt = c->wts[s];
      const float *db = c->down_b ? c->down_b + (size_t)c->ids[s] * E : NULL;
      if (j == 0) {
        if (db) for (int32_t i = r0; i < r1; i++) { const float v = d[i] + db[i]; yt[i] = v * wt; }
        else for (int32_t i = r0; i < r1; i++) yt[i] = d[i] * wt;
      } else {
        if (db) {
          for (int32_t i = r0; i < r1; i++) { const float v = d[i] + db[i]; yt[i] = yt[i] + v * wt; }
        } else {
          for (int32_t i = r0; i < r1; i++) yt[i] = yt[i] + d[i] * wt;
        }
      }
    }
  }
}

static int32_t round_rows(int32_t per) {
  if (per < MOE_MIN_ROWS) per = MOE_MIN_ROWS;
  return per + (TILE_ROWS - per % TILE_ROWS) % TILE_ROWS;
}

#define MOE_STAMP 0x4d4f4531 /* "MOE1": a BEGIN phase left its state in the scratch */

/* Run steps 1 and 2 (down; the sum when c->sum) over the c->n_sel groups in c->sel. */
static void moe_compute(spool_pool *pool, moe_ctx *c, int32_t max_g) {
  const int32_t n_threads = spool_pool_size(pool);
  const int32_t n_ff = c->n_ff, n_embd = c->n_embd;
  for (int32_t i = 0; i < c->n_sel; i++) atomic_init(&c->done[c->sel[i]], 0);
  int32_t per1 = n_ff;
  if (n_threads > 1) {
    const int64_t rows = (int64_t)(c->n_sel > 0 ? c->n_sel : 1) * n_ff;
    const int64_t want = (int64_t)n_threads * MOE_TASKS_PER_THREAD;
    per1 = round_rows((int32_t)((rows + want - 1) / want));
    if (c->tile_g < max_g || c->tile_u < max_g) { /* rows re-read per token tile: keep in L2 */
      const size_t rb = c->gate.row_bytes > c->up.row_bytes ? c->gate.row_bytes : c->up.row_bytes;
      const int32_t cap = round_rows((int32_t)(L2_TASK_BYTES / rb));
      if (per1 > cap) per1 = cap;
    }
    if (per1 > n_ff) per1 = n_ff;
  }
  c->per1 = per1;
  c->cpg = (n_ff + per1 - 1) / per1;
  if (c->n_sel > 0) spool_pool_run(pool, up_task, c, c->n_sel * c->cpg);

  int32_t per2 = n_embd;
  if (n_threads > 1) {
    const int32_t want = n_threads * MOE_TASKS_PER_THREAD;
    per2 = round_rows((n_embd + want - 1) / want);
    if (c->tile_d < max_g) {
      const int32_t cap = round_rows((int32_t)(L2_TASK_BYTES / c->down.row_bytes));
      if (per2 > cap) per2 = cap;
    }
    if (per2 > n_embd) per2 = n_embd;
  }
  c->per2 = per2;
  if (c->n_sel > 0 || c->sum) spool_pool_run(pool, down_task, c, (n_embd + per2 - 1) / per2);
  for (int32_t i = 0; i < c->n_sel; i++) c->computed[c->sel[i]] = 1;
}

static int resident(const moe_ctx *c, int32_t e) {
  return c->gate.w[e] && c->up.w[e] && c->down.w[e];
}

SPOOL_API spool_status spool_moe_ffn_phase(spool_pool *pool, const float *x, int32_t n_tok,
                                           int32_t n_embd, int32_t n_ff, int32_t n_expert,
                                           int32_t k, const int32_t *ids, const float *weights,
                                           const void *const *gate, int32_t gate_type,
                                           const void *const *up, int32_t up_type,
                                           const void *const *down, int32_t down_type,
                                           const float *gate_b, const float *up_b,
                                           const float *down_b, int32_t act, float *y,
                                           void *scratch, int32_t phase) {
  if (n_tok < 0 || n_embd < 1 || n_ff < 1 || n_expert < 1 || k < 1) return SPOOL_E_INVALID;
  if (k > n_expert) return SPOOL_E_RANGE;
  if (act != SPOOL_ACT_SWIGLU && act != SPOOL_ACT_SWIGLU_OAI) return SPOOL_E_INVALID;
  if (phase != SPOOL_MOE_ALL && phase != SPOOL_MOE_BEGIN && phase != SPOOL_MOE_FINISH &&
      phase != SPOOL_MOE_MORE)
    return SPOOL_E_INVALID;
  const int later = phase == SPOOL_MOE_FINISH || phase == SPOOL_MOE_MORE; /* after a BEGIN */
  moe_ctx c;
  memset(&c, 0, sizeof c);
  spool_status st;
  if ((st = mat_init(&c.gate, gate_type, n_embd, gate)) ||
      (st = mat_init(&c.up, up_type, n_embd, up)) ||
      (st = mat_init(&c.down, down_type, n_ff, down)))
    return st;
  if (n_tok == 0) return SPOOL_OK;
  if (!x || !ids || !weights || !gate || !up || !down || !y || !scratch) return SPOOL_E_INVALID;
  const size_t P = (size_t)n_tok * (size_t)k;
  if (P > (size_t)INT32_MAX / 2) return SPOOL_E_RANGE;
  for (size_t s = 0; s < P; s++) {
    const int32_t e = ids[s];
    if (e < 0 || e >= n_expert) return SPOOL_E_RANGE;
  }
  c.x = x;
  c.wts = weights;
  c.ids = ids;
  c.gate_b = gate_b;
  c.up_b = up_b;
  c.down_b = down_b;
  c.y = y;
  c.n_tok = n_tok;
  c.n_embd = n_embd;
  c.n_ff = n_ff;
  c.k = k;
  c.act = act;

  /* scratch layout */
  moe_sizes sz;
  moe_sizes_of(&c.gate, &c.up, &c.down, n_embd, n_ff, n_expert, n_tok, k, &sz);
  uint8_t *p = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  int32_t *ints = (int32_t *)p;
  c.gexp = ints;
  c.gstart = ints + P;
  c.pos = ints + 2 * P + 1;
  c.sel = ints + 3 * P + 1;
  c.computed = ints + 4 * P + 1;
  int32_t *cnt = ints + 5 * P + 1;
  int32_t *stamp = cnt + n_expert; /* 4 ints: a BEGIN's mark, checked by FINISH */
  c.done = (atomic_int *)(void *)(stamp + 4);
  p += sz.ints;
  c.xg = p;
  p += sz.xg;
  c.xu = sz.xu ? p : c.xg;
  p += sz.xu;
  c.G = (float *)(void *)p;
  p += sz.g;
  c.U = (float *)(void *)p;
  p += sz.u;
  c.hq = sz.hq ? p : NULL;
  p += sz.hq;
  c.D = (float *)(void *)p;

  if (later) {
    if (stamp[0] != MOE_STAMP || stamp[1] != (int32_t)P || stamp[2] != n_expert)
      return SPOOL_E_INVALID; /* no BEGIN of this shape before */
  }

  /* step 0: group the slots by expert (stable: slot order within a group) */
  for (int32_t e = 0; e < n_expert; e++) cnt[e] = 0;
  for (size_t s = 0; s < P; s++) cnt[ids[s]]++;
  int32_t ng = 0, at = 0;
  for (int32_t e = 0; e < n_expert; e++) {
    if (!cnt[e]) continue;
    c.gexp[ng] = e;
    c.gstart[ng] = at;
    const int32_t n = cnt[e];
    cnt[e] = at; /* next free position of expert e */
    at += n;
    ng++;
  }
  c.gstart[ng] = at;
  c.n_groups = ng;
  for (size_t s = 0; s < P; s++) c.pos[s] = cnt[ids[s]]++;

  /* the groups of this call */
  c.n_sel = 0;
  for (int32_t g = 0; g < ng; g++) {
    const int32_t e = c.gexp[g];
    if (later && c.computed[g]) continue;
    if (!resident(&c, e)) {
      if (phase == SPOOL_MOE_ALL || phase == SPOOL_MOE_FINISH) return SPOOL_E_INVALID;
      if (phase == SPOOL_MOE_BEGIN) c.computed[g] = 0;
      continue; /* MORE: still loading, computed stays 0 */
    }
    if (phase == SPOOL_MOE_BEGIN) c.computed[g] = 0;
    c.sel[c.n_sel++] = g;
  }
  c.sum = phase == SPOOL_MOE_ALL || phase == SPOOL_MOE_FINISH;

  spool_select_kernels(gate_type, &c.gate.k);
  spool_select_kernels(up_type, &c.up.k);
  spool_select_kernels(down_type, &c.down.k);

  const int32_t n_threads = spool_pool_size(pool);
  c.xs = n_tok == 1 ? 0 : 1; /* one token: every group reads its row, stride 0 */
  if (!later) { /* MORE and FINISH reuse BEGIN's activations */
    if (n_tok == 1) {
      c.tok_per_task = 1;
      quant_row(&c.gate, x, c.xg, n_embd);
      if (c.xu != c.xg) quant_row(&c.up, x, c.xu, n_embd);
    } else {
      int32_t n_x = n_tok >= 4 ? n_threads : 1;
      c.tok_per_task = (n_tok + n_x - 1) / n_x;
      n_x = (n_tok + c.tok_per_task - 1) / c.tok_per_task;
      spool_pool_run(pool, x_task, &c, n_x);
    }
  }

  /* token tiles from the largest group of the whole call (the same in every phase) */
  int32_t max_g = 0;
  for (int32_t g = 0; g < ng; g++) {
    const int32_t n = c.gstart[g + 1] - c.gstart[g];
    if (n > max_g) max_g = n;
  }
  const int tl_g = c.gate.act >= 0 && c.gate.k.tile_q8, tl_u = c.up.act >= 0 && c.up.k.tile_q8;
  const int tl_d = c.down.act >= 0 && c.down.k.tile_q8;
  c.tile_g = spool_tok_tile(tl_g, c.gate.xrow, max_g);
  c.tile_u = spool_tok_tile(tl_u, c.up.xrow, max_g);
  c.tile_d = spool_tok_tile(tl_d, c.down.xrow, max_g);
  moe_compute(pool, &c, max_g);

  if (phase == SPOOL_MOE_BEGIN || phase == SPOOL_MOE_MORE) {
    stamp[0] = MOE_STAMP;
    stamp[1] = (int32_t)P;
    stamp[2] = n_expert;
  } else {
    stamp[0] = 0;
  }
  return SPOOL_OK;
}

SPOOL_API spool_status spool_moe_ffn(spool_pool *pool, const float *x, int32_t n_tok,
                                     int32_t n_embd, int32_t n_ff, int32_t n_expert, int32_t k,
                                     const int32_t *ids, const float *weights,
                                     const void *const *gate, int32_t gate_type,
                                     const void *const *up, int32_t up_type,
                                     const void *const *down, int32_t down_type,
                                     const float *gate_b, const float *up_b, const float *down_b,
                                     int32_t act, float *y, void *scratch) {
  return spool_moe_ffn_phase(pool, x, n_tok, n_embd, n_ff, n_expert, k, ids, weights, gate,
                             gate_type, up, up_type, down, down_type, gate_b, up_b, down_b, act,
                             y, scratch, SPOOL_MOE_ALL);
}
