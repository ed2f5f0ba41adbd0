/*
 * matmul_batched.c — spool_matmul_batched: n_batch independent products, each with its own
 * weight matrix, over strided activations into strided outputs, in one or two pool
 * dispatches. MLA's absorbed attention needs one small product per head on each side of the
 * attention (wk_b: q_nope (128) -> latent (512); wv_b: latent (512) -> v head (128)), 128
 * heads per layer for DeepSeek-V3: one call per side instead of one spool_matmul per head.
 *
 *   y_b[t, r] = W_b[r, :] · x_b[t, :],  b < n_batch, t < n_tok, r < rows
 *   W_b = w + b·w_batch_bytes; x_b[t, :] = x + b·x_batch + t·x_tok (cols f32);
 *   y_b[t, r] = y[b·y_batch + t·y_tok + r]  (strides in elements)
 *
 * Steps: (1) with SPOOL_ACT_Q8 and a quantized type, every (b, t) activation row is quantized
 * into the scratch, batch-major (row b·n_tok + t), split over the pool when there are at least
 * four rows; (2) one dispatch of tasks (batch, chunk of rows), each running the matmul inner
 * loop (spool_rows_product) on its batch's matrix. Every (b, t, r) result is the bits
 * spool_matmul gives for W_b and the gathered x_b, whatever the pool and the chunking.
 */
#include "ref/quant_ref.h"

#define BMM_TASKS_PER_THREAD 8 /* tasks per thread (balance vs. stream restarts) */
#define BMM_MIN_ROWS 16        /* fewest rows in a task */

typedef struct {
  spool_kernels k;
  const uint8_t *w;
  size_t w_batch, row_bytes, x_tok, x_batch, y_tok, y_batch, xq_row;
  int32_t rows, cols, blck, wbytes, n_tok, tok_tile, chunks, per;
  const float *x;
  float *y;
  uint8_t *xq; /* quantized activations, batch-major, or NULL (f32 path) */
} bmm_ctx;

static void bmm_task(void *p, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const bmm_ctx *c = (const bmm_ctx *)p;
  const int32_t b = task / c->chunks, ch = task % c->chunks;
  const int32_t r0 = ch * c->per;
  const int32_t r1 = r0 + c->per < c->rows ? r0 + c->per : c->rows;
  if (r0 >= r1) return;
  const uint8_t *xq = c->xq ? c->xq + (size_t)b * (size_t)c->n_tok * c->xq_row : NULL;
  spool_rows_product(&c->k, c->w + (size_t)b * c->w_batch, c->row_bytes, c->cols, c->blck,
                     c->wbytes, r0, r1, xq, c->xq_row, c->x + (size_t)b * c->x_batch, c->x_tok,
                     c->n_tok, c->tok_tile, c->y + (size_t)b * c->y_batch, c->y_tok);
}

typedef struct {
  const bmm_ctx *c;
  int32_t n_rows, per_task;
} bmm_act_ctx;

static void bmm_act_task(void *p, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const bmm_act_ctx *a = (const bmm_act_ctx *)p;
  const bmm_ctx *c = a->c;
  const int32_t i0 = task * a->per_task;
  const int32_t i1 = i0 + a->per_task < a->n_rows ? i0 + a->per_task : a->n_rows;
  for (int32_t i = i0; i < i1; i++) {
    const int32_t b = i / c->n_tok, t = i % c->n_tok;
    c->k.quant_act(c->x + (size_t)b * c->x_batch + (size_t)t * c->x_tok,
                   c->xq + (size_t)i * c->xq_row, c->cols);
  }
}

/* Rows per task and chunks per batch: about BMM_TASKS_PER_THREAD tasks per thread over all
 * batches, at least BMM_MIN_ROWS rows (a multiple of TILE_ROWS); with several token tiles a
 * task's rows stay within L2_TASK_BYTES (they are re-read once per tile). */
static void bmm_split(bmm_ctx *c, int32_t n_batch, int32_t n_threads, int use_tile) {
  int32_t per = c->rows;
  if (n_threads > 1) {
    const int64_t want = (int64_t)n_threads * BMM_TASKS_PER_THREAD;
    const int64_t chunks = (want + n_batch - 1) / n_batch;
    per = (int32_t)((c->rows + chunks - 1) / chunks);
    if (per < BMM_MIN_ROWS) per = BMM_MIN_ROWS;
  }
  if (use_tile && c->tok_tile < c->n_tok) {
    const int32_t cap = (int32_t)(L2_TASK_BYTES / c->row_bytes);
    if (per > cap) per = cap;
  }
  if (per < TILE_ROWS) per = TILE_ROWS;
  per += (TILE_ROWS - per % TILE_ROWS) % TILE_ROWS;
  c->per = per;
  c->chunks = (c->rows + per - 1) / per;
}

SPOOL_API spool_status spool_matmul_batched(spool_pool *pool, int32_t type, const void *w,
                                            int32_t rows, int32_t cols, double w_batch_bytes,
                                            int32_t n_batch, const float *x, int32_t x_tok_stride,
                                            int32_t x_batch_stride, int32_t n_tok, float *y,
                                            int32_t y_tok_stride, int32_t y_batch_stride,
                                            int32_t act, void *scratch) {
  int32_t blck, bytes, act_type;
  if (!spool_type_traits(type, &blck, &bytes, &act_type) || act_type == -2) return SPOOL_E_TYPE;
  if (rows < 0 || cols < 0 || n_batch < 0 || n_tok < 0 || cols % blck) return SPOOL_E_INVALID;
  if (x_tok_stride < 0 || x_batch_stride < 0 || y_tok_stride < 0 || y_batch_stride < 0)
    return SPOOL_E_INVALID;
  if (!(w_batch_bytes >= 0.0) || w_batch_bytes != (double)(size_t)w_batch_bytes)
    return SPOOL_E_INVALID;
  if (act != SPOOL_ACT_F32 && act != SPOOL_ACT_Q8) return SPOOL_E_INVALID;
  if (rows == 0 || n_tok == 0 || n_batch == 0) return SPOOL_OK;
  if (!w || !x || !y) return SPOOL_E_INVALID;
  if ((int64_t)n_batch * (int64_t)n_tok > INT32_MAX) return SPOOL_E_RANGE;
  bmm_ctx c;
  memset(&c, 0, sizeof c);
  spool_select_kernels(type, &c.k);
  c.w = (const uint8_t *)w;
  c.w_batch = (size_t)w_batch_bytes;
  c.row_bytes = (size_t)(cols / blck) * (size_t)bytes;
  c.rows = rows;
  c.cols = cols;
  c.blck = blck;
  c.wbytes = bytes;
  c.n_tok = n_tok;
  c.x = x;
  c.x_tok = (size_t)x_tok_stride;
  c.x_batch = (size_t)x_batch_stride;
  c.y = y;
  c.y_tok = (size_t)y_tok_stride;
  c.y_batch = (size_t)y_batch_stride;
  if (cols == 0) {
    for (int32_t b = 0; b < n_batch; b++)
      for (int32_t t = 0; t < n_tok; t++)
        memset(y + (size_t)b * c.y_batch + (size_t)t * c.y_tok, 0, (size_t)rows * 4);
    return SPOOL_OK;
  }
  const int32_t n_threads = spool_pool_size(pool);
  size_t tok_bytes = (size_t)cols * 4;
  if (act == SPOOL_ACT_Q8 && act_type >= 0 && c.k.dot_q8) {
    if (!scratch) return SPOOL_E_INVALID;
    if ((uintptr_t)scratch & 3) return SPOOL_E_ALIGN;
    c.xq = (uint8_t *)scratch;
    c.xq_row = spool_act_row_bytes(act_type, cols);
    tok_bytes = c.xq_row;
    bmm_act_ctx a = {&c, n_batch * n_tok, 1};
    int32_t n_act = a.n_rows >= 4 ? n_threads : 1;
    a.per_task = (a.n_rows + n_act - 1) / n_act;
    n_act = (a.n_rows + a.per_task - 1) / a.per_task;
    spool_pool_run(pool, bmm_act_task, &a, n_act);
  }
  const int use_tile = c.xq && c.k.tile_q8;
  c.tok_tile = spool_tok_tile(use_tile, tok_bytes, n_tok);
  bmm_split(&c, n_batch, n_threads, use_tile);
  if ((int64_t)n_batch * (int64_t)c.chunks > INT32_MAX) return SPOOL_E_RANGE;
  spool_pool_run(pool, bmm_task, &c, n_batch * c.chunks);
  return SPOOL_OK;
}
