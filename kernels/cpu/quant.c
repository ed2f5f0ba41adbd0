/*
 * quant.c — public entry points of quantization and quantized products: the type table,
 * dequantize/quantize over rows, and the matmul driver that picks a kernel per
 * implementation (REF / AVX2 / NEON) and splits the work over the thread pool.
 *
 * matmul: y (n_tok, rows) = x (n_tok, cols) · Wᵀ, W row-major, each row cols/blk blocks.
 *  - ACT_Q8: x rows are quantized once, before the split, into the scratch buffer (Q8_0 for
 *    Q4_0/Q8_0/MXFP4, Q8_1 for Q4_1, Q8_K for Q4_K/Q5_K/Q6_K, as ggml does), then every output is an integer
 *    dot of a weight row with a quantized x row. F32/F16/BF16 weights have no 8-bit kernel
 *    and take the ACT_F32 path in both modes.
 *  - ACT_F32: float weights use a direct f32 dot; quantized weights are dequantized in
 *    chunks of DQ_CHUNK values into a stack buffer (in L1), which is then dotted with the
 *    x rows of every token of the tile.
 *  - Work split: rows are cut into tasks of rows_per_task contiguous rows, claimed
 *    dynamically by the pool's threads (MV_TASKS_PER_THREAD per thread for the matvec, 8 for
 *    the rest; a multiple of TILE_ROWS rows each).
 *  - Tile kernels (tile_q8; AVX2 Q4_K/Q6_K/Q8_0/MXFP4): one call computes nr rows x nt
 *    tokens. Matvec (n_tok == 1): TILE_ROWS rows per call share every activation block and
 *    run independent accumulator chains, and the kernel prefetches the next tile's rows.
 *    Prefill: each weight block is decoded once for TILE_TOKS tokens; tokens are tiled so a
 *    tile's quantized activations stay in L1 (L1_TILE_BYTES) while the task's rows, capped
 *    to L2_TASK_BYTES so they stay in L2, pass over them once per token tile. Each (row,
 *    token) result is computed by the same operations whatever the tiling, so outputs do
 *    not depend on the thread count.
 *  - Other kernels: tokens are tiled so that a tile's activations stay in L2 (TILE_BYTES);
 *    for each weight row the dot runs against every token of the tile while the row sits in
 *    L1, so each weight byte comes from memory once per token tile.
 *    n_tok == 1 (decode) is the plain matvec: one pass over W, bandwidth-bound.
 *  - scratch == NULL with ACT_Q8: a 64 KiB stack buffer is used when the quantized
 *    activations fit, else SPOOL_E_NOMEM. Nothing is ever allocated on the heap.
 */
#include "ref/quant_ref.h"
#include <time.h>

#define STACK_SCRATCH (64 * 1024)
#define MV_TASKS_PER_THREAD 4     /* matvec tasks per thread (fewer stream restarts and claims) */

/* ---- type table ---- */
typedef struct {
  int32_t blck, bytes;
  spool_quant_fn quant;        /* reference (ggml-identical) quantizer */
  int32_t act;                 /* activation type of the Q8 mode, or -1 (f32 path) */
} type_info;

static int type_lookup(int32_t type, type_info *ti) {
  switch (type) {
    case SPOOL_TYPE_F32: *ti = (type_info){1, 4, spool_ref_quant_f32, -1}; return 1;
    case SPOOL_TYPE_F16: *ti = (type_info){1, 2, spool_ref_quant_f16, -1}; return 1;
    case SPOOL_TYPE_BF16: *ti = (type_info){1, 2, spool_ref_quant_bf16, -1}; return 1;
    case SPOOL_TYPE_Q4_0: *ti = (type_info){QK4_0, sizeof(block_q4_0), spool_ref_quant_q4_0, SPOOL_TYPE_Q8_0}; return 1;
    case SPOOL_TYPE_Q8_0: *ti = (type_info){QK8_0, sizeof(block_q8_0), spool_ref_quant_q8_0, SPOOL_TYPE_Q8_0}; return 1;
    case SPOOL_TYPE_Q4_1: *ti = (type_info){QK4_1, sizeof(block_q4_1), spool_ref_quant_q4_1, SPOOL_TYPE_Q8_1}; return 1;
    case SPOOL_TYPE_Q8_1: *ti = (type_info){QK8_1, sizeof(block_q8_1), spool_ref_quant_q8_1, -2}; return 1;
    case SPOOL_TYPE_MXFP4: *ti = (type_info){QK_MXFP4, sizeof(block_mxfp4), spool_ref_quant_mxfp4, SPOOL_TYPE_Q8_0}; return 1;
    case SPOOL_TYPE_Q4_K: *ti = (type_info){QK_K, sizeof(block_q4_K), spool_ref_quant_q4_K, SPOOL_TYPE_Q8_K}; return 1;
    case SPOOL_TYPE_Q5_K: *ti = (type_info){QK_K, sizeof(block_q5_K), spool_ref_quant_q5_K, SPOOL_TYPE_Q8_K}; return 1;
    case SPOOL_TYPE_Q6_K: *ti = (type_info){QK_K, sizeof(block_q6_K), spool_ref_quant_q6_K, SPOOL_TYPE_Q8_K}; return 1;
    case SPOOL_TYPE_Q8_K: *ti = (type_info){QK_K, sizeof(block_q8_K), spool_ref_quant_q8_K, -2}; return 1;
    default: return 0;
  }
}

SPOOL_API int32_t spool_type_block_size(int32_t type) {
  type_info ti;
  return type_lookup(type, &ti) ? ti.blck : 0;
}

SPOOL_API int32_t spool_type_block_bytes(int32_t type) {
  type_info ti;
  return type_lookup(type, &ti) ? ti.bytes : 0;
}

/* ---- kernel selection per implementation ---- */
typedef spool_kernels kernels;

int spool_type_traits(int32_t type, int32_t *blck, int32_t *bytes, int32_t *act) {
  type_info ti;
  if (!type_lookup(type, &ti)) return 0;
  *blck = ti.blck;
  *bytes = ti.bytes;
  *act = ti.act;
  return 1;
}

static spool_dequant_fn ref_dequant(int32_t type) {
  switch (type) {
    case SPOOL_TYPE_F32: return spool_ref_dequant_f32;
    case SPOOL_TYPE_F16: return spool_ref_dequant_f16;
    case SPOOL_TYPE_BF16: return spool_ref_dequant_bf16;
    case SPOOL_TYPE_Q4_0: return spool_ref_dequant_q4_0;
    case SPOOL_TYPE_Q8_0: return spool_ref_dequant_q8_0;
    case SPOOL_TYPE_Q4_1: return spool_ref_dequant_q4_1;
    case SPOOL_TYPE_Q8_1: return spool_ref_dequant_q8_1;
    case SPOOL_TYPE_MXFP4: return spool_ref_dequant_mxfp4;
    case SPOOL_TYPE_Q4_K: return spool_ref_dequant_q4_K;
    case SPOOL_TYPE_Q5_K: return spool_ref_dequant_q5_K;
    case SPOOL_TYPE_Q6_K: return spool_ref_dequant_q6_K;
    case SPOOL_TYPE_Q8_K: return spool_ref_dequant_q8_K;
    default: return NULL;
  }
}

static void select_ref(int32_t type, kernels *k) {
  k->tile_q8 = NULL;
  k->dequant = ref_dequant(type);
  k->dot_ff = spool_ref_dot_f32_f32;
  k->dot_f32 = type == SPOOL_TYPE_F32 ? spool_ref_dot_f32_f32
             : type == SPOOL_TYPE_F16 ? spool_ref_dot_f16_f32
             : type == SPOOL_TYPE_BF16 ? spool_ref_dot_bf16_f32 : NULL;
  switch (type) {
    case SPOOL_TYPE_Q4_0: k->dot_q8 = spool_ref_dot_q4_0_q8_0; break;
    case SPOOL_TYPE_Q8_0: k->dot_q8 = spool_ref_dot_q8_0_q8_0; break;
    case SPOOL_TYPE_Q4_1: k->dot_q8 = spool_ref_dot_q4_1_q8_1; break;
    case SPOOL_TYPE_MXFP4: k->dot_q8 = spool_ref_dot_mxfp4_q8_0; break;
    case SPOOL_TYPE_Q4_K: k->dot_q8 = spool_ref_dot_q4_K_q8_K; break;
    case SPOOL_TYPE_Q5_K: k->dot_q8 = spool_ref_dot_q5_K_q8_K; break;
    case SPOOL_TYPE_Q6_K: k->dot_q8 = spool_ref_dot_q6_K_q8_K; break;
    default: k->dot_q8 = NULL;
  }
  k->quant_act = (type == SPOOL_TYPE_Q4_K || type == SPOOL_TYPE_Q5_K || type == SPOOL_TYPE_Q6_K)
                     ? spool_ref_quant_q8_K
                 : type == SPOOL_TYPE_Q4_1 ? spool_ref_quant_q8_1 : spool_ref_quant_q8_0;
}

#if defined(SPOOL_HAVE_AVX2)
static void select_avx2(int32_t type, kernels *k) {
  select_ref(type, k);
  k->dot_ff = spool_avx2_dot_f32_f32;
  switch (type) {
    case SPOOL_TYPE_F32: k->dot_f32 = spool_avx2_dot_f32_f32; break;
    case SPOOL_TYPE_F16: k->dot_f32 = spool_avx2_dot_f16_f32; k->dequant = spool_avx2_dequant_f16; break;
    case SPOOL_TYPE_BF16: k->dot_f32 = spool_avx2_dot_bf16_f32; k->dequant = spool_avx2_dequant_bf16; break;
    case SPOOL_TYPE_Q4_0: k->dot_q8 = spool_avx2_dot_q4_0_q8_0; k->dequant = spool_avx2_dequant_q4_0; break;
    case SPOOL_TYPE_Q4_1: k->dot_q8 = spool_avx2_dot_q4_1_q8_1; break; /* REF dequant */
    case SPOOL_TYPE_Q8_0:
      k->dot_q8 = spool_avx2_dot_q8_0_q8_0; k->tile_q8 = spool_avx2_tile_q8_0_q8_0;
      k->dequant = spool_avx2_dequant_q8_0; break;
    case SPOOL_TYPE_MXFP4:
      k->dot_q8 = spool_avx2_dot_mxfp4_q8_0; k->tile_q8 = spool_avx2_tile_mxfp4_q8_0;
      k->dequant = spool_avx2_dequant_mxfp4; break;
    case SPOOL_TYPE_Q4_K:
      k->dot_q8 = spool_avx2_dot_q4_K_q8_K; k->tile_q8 = spool_avx2_tile_q4_K_q8_K;
      k->dequant = spool_avx2_dequant_q4_K; break;
    case SPOOL_TYPE_Q5_K: k->dot_q8 = spool_avx2_dot_q5_K_q8_K; k->dequant = spool_avx2_dequant_q5_K; break;
    case SPOOL_TYPE_Q6_K:
      k->dot_q8 = spool_avx2_dot_q6_K_q8_K; k->tile_q8 = spool_avx2_tile_q6_K_q8_K;
      k->dequant = spool_avx2_dequant_q6_K; break;
    default: break;
  }
  /* Q8_1 (Q4_1's activations) keeps the REF quantizer */
  if (k->quant_act != spool_ref_quant_q8_1) {
    k->quant_act = k->quant_act == spool_ref_quant_q8_K ? spool_avx2_quant_act_q8_K
                                                        : spool_avx2_quant_act_q8_0;
  }
}
#endif

#if defined(SPOOL_HAVE_NEON)
static void select_neon(int32_t type, kernels *k) {
  select_ref(type, k);
  k->dot_ff = spool_neon_dot_f32_f32;
  switch (type) {
    case SPOOL_TYPE_F32: k->dot_f32 = spool_neon_dot_f32_f32; break;
    case SPOOL_TYPE_F16: k->dot_f32 = spool_neon_dot_f16_f32; k->dequant = spool_neon_dequant_f16; break;
    case SPOOL_TYPE_BF16: k->dot_f32 = spool_neon_dot_bf16_f32; k->dequant = spool_neon_dequant_bf16; break;
    case SPOOL_TYPE_Q4_0: k->dot_q8 = spool_neon_dot_q4_0_q8_0; k->dequant = spool_neon_dequant_q4_0; break;
    case SPOOL_TYPE_Q8_0: k->dot_q8 = spool_neon_dot_q8_0_q8_0; k->dequant = spool_neon_dequant_q8_0; break;
    case SPOOL_TYPE_MXFP4: k->dot_q8 = spool_neon_dot_mxfp4_q8_0; k->dequant = spool_neon_dequant_mxfp4; break;
    case SPOOL_TYPE_Q4_K: k->dot_q8 = spool_neon_dot_q4_K_q8_K; k->dequant = spool_neon_dequant_q4_K; break;
    case SPOOL_TYPE_Q5_K: k->dot_q8 = spool_neon_dot_q5_K_q8_K; k->dequant = spool_neon_dequant_q5_K; break;
    case SPOOL_TYPE_Q6_K: k->dot_q8 = spool_neon_dot_q6_K_q8_K; k->dequant = spool_neon_dequant_q6_K; break;
    default: break;
  }
  /* Q4_1 keeps REF's dot and Q8_1 quantizer on NEON */
  if (k->quant_act != spool_ref_quant_q8_1) {
    k->quant_act = k->quant_act == spool_ref_quant_q8_K ? spool_neon_quant_act_q8_K
                                                        : spool_neon_quant_act_q8_0;
  }
  if (spool_cpu_flags & SPOOL_CPU_DOTPROD) { /* SDOT builds of the same dots */
    switch (type) {
      case SPOOL_TYPE_Q4_0: k->dot_q8 = spool_neondp_dot_q4_0_q8_0; break;
      case SPOOL_TYPE_Q8_0: k->dot_q8 = spool_neondp_dot_q8_0_q8_0; break;
      case SPOOL_TYPE_MXFP4: k->dot_q8 = spool_neondp_dot_mxfp4_q8_0; break;
      case SPOOL_TYPE_Q4_K: k->dot_q8 = spool_neondp_dot_q4_K_q8_K; break;
      case SPOOL_TYPE_Q5_K: k->dot_q8 = spool_neondp_dot_q5_K_q8_K; break;
      case SPOOL_TYPE_Q6_K: k->dot_q8 = spool_neondp_dot_q6_K_q8_K; break;
      default: break;
    }
  }
}
#endif

void spool_select_kernels(int32_t type, kernels *k) {
#if defined(SPOOL_HAVE_AVX2)
  if (SPOOL_USE_AVX2()) { select_avx2(type, k); return; }
#endif
#if defined(SPOOL_HAVE_NEON)
  if (SPOOL_USE_NEON()) { select_neon(type, k); return; }
#endif
  select_ref(type, k);
}

/* ---- dequantize / quantize ---- */

SPOOL_API spool_status spool_dequantize_row(int32_t type, const void *src, float *dst, int32_t n) {
  type_info ti;
  if (!type_lookup(type, &ti)) return SPOOL_E_TYPE;
  if (!src || !dst || n < 0 || n % ti.blck) return SPOOL_E_INVALID;
  kernels k;
  spool_select_kernels(type, &k);
  k.dequant(src, dst, n);
  return SPOOL_OK;
}

typedef struct {
  spool_quant_fn fn;
  const float *src;
  uint8_t *dst;
  int32_t n_rows, n_cols, rows_per_task;
  size_t row_bytes;
} quant_ctx;

static void quant_task(void *vctx, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const quant_ctx *c = (const quant_ctx *)vctx;
  int32_t r0 = task * c->rows_per_task;
  int32_t r1 = r0 + c->rows_per_task < c->n_rows ? r0 + c->rows_per_task : c->n_rows;
  for (int32_t r = r0; r < r1; r++) {
    c->fn(c->src + (size_t)r * c->n_cols, c->dst + (size_t)r * c->row_bytes, c->n_cols);
  }
}

SPOOL_API spool_status spool_quantize(spool_pool *pool, int32_t type, const float *src, void *dst,
                                      int32_t n_rows, int32_t n_cols) {
  type_info ti;
  if (!type_lookup(type, &ti)) return SPOOL_E_TYPE;
  if (!src || !dst || n_rows < 0 || n_cols < 0 || n_cols % ti.blck) return SPOOL_E_INVALID;
  if (n_rows == 0 || n_cols == 0) return SPOOL_OK;
  quant_ctx c = {ti.quant, src, (uint8_t *)dst, n_rows, n_cols, 1,
                 (size_t)(n_cols / ti.blck) * (size_t)ti.bytes};
  int32_t n_tasks = spool_pool_size(pool) * 8;
  if (n_tasks > n_rows) n_tasks = n_rows;
  c.rows_per_task = (n_rows + n_tasks - 1) / n_tasks;
  n_tasks = (n_rows + c.rows_per_task - 1) / c.rows_per_task;
  spool_pool_run(pool, quant_task, &c, n_tasks);
  return SPOOL_OK;
}

/* ---- matmul ---- */

size_t spool_act_row_bytes(int32_t act_type, int32_t cols) {
  if (act_type == SPOOL_TYPE_Q8_0) return (size_t)(cols / QK8_0) * sizeof(block_q8_0);
  if (act_type == SPOOL_TYPE_Q8_1) return (size_t)(cols / QK8_1) * sizeof(block_q8_1);
  if (act_type == SPOOL_TYPE_Q8_K) return (size_t)(cols / QK_K) * sizeof(block_q8_K);
  return 0;
}

SPOOL_API double spool_matmul_scratch_bytes(int32_t type, int32_t cols, int32_t n_tok, int32_t act) {
  type_info ti;
  if (!type_lookup(type, &ti) || cols < 0 || n_tok < 0 || cols % ti.blck) return 0;
  if (act != SPOOL_ACT_Q8 || ti.act < 0) return 0;
  return (double)spool_act_row_bytes(ti.act, cols) * (double)n_tok;
}

typedef struct {
  kernels k;
  const uint8_t *w;
  size_t row_bytes;
  int32_t rows, cols, n_tok, blck, wbytes;
  const float *x;
  float *y;
  const uint8_t *xq; /* quantized activations, or NULL (f32 path) */
  size_t xq_row;
  int32_t rows_per_task, tok_tile;
} mm_ctx;

void spool_rows_product(const spool_kernels *k, const uint8_t *w, size_t row_bytes, int32_t cols,
                        int32_t blck, int32_t wbytes, int32_t r0, int32_t r1, const uint8_t *xq,
                        size_t xq_row, const float *x, size_t x_row, int32_t n_tok,
                        int32_t tok_tile, float *y, size_t ys) {
  if (xq && k->tile_q8) {
    const spool_tile_fn tile = k->tile_q8;
    if (n_tok == 1) { /* matvec: TILE_ROWS rows share each activation block */
      for (int32_t r = r0; r < r1; r += TILE_ROWS) {
        const int32_t nr = r1 - r < TILE_ROWS ? r1 - r : TILE_ROWS;
        tile(cols, w + (size_t)r * row_bytes, row_bytes, nr, xq, xq_row, 1, y + r, ys);
      }
      return;
    }
    /* prefill: a token tile's activations stay in L1 while the task's rows (in L2) pass over
     * them; each weight block is decoded once per TILE_TOKS tokens */
    for (int32_t t0 = 0; t0 < n_tok; t0 += tok_tile) {
      const int32_t t1 = t0 + tok_tile < n_tok ? t0 + tok_tile : n_tok;
      for (int32_t r = r0; r < r1; r++) {
        const uint8_t *wr = w + (size_t)r * row_bytes;
        for (int32_t t = t0; t < t1; t += TILE_TOKS) {
          const int32_t nt = t1 - t < TILE_TOKS ? t1 - t : TILE_TOKS;
          tile(cols, wr, row_bytes, 1, xq + (size_t)t * xq_row, xq_row, nt, y + (size_t)t * ys + r,
               ys);
        }
      }
    }
    return;
  }
  for (int32_t t0 = 0; t0 < n_tok; t0 += tok_tile) {
    const int32_t t1 = t0 + tok_tile < n_tok ? t0 + tok_tile : n_tok;
    if (xq) {
      const spool_dot_fn dot = k->dot_q8;
      for (int32_t r = r0; r < r1; r++) {
        const uint8_t *wr = w + (size_t)r * row_bytes;
        for (int32_t t = t0; t < t1; t++) y[(size_t)t * ys + r] = dot(cols, wr, xq + (size_t)t * xq_row);
      }
    } else if (k->dot_f32) {
      const spool_dot_fn dot = k->dot_f32;
      for (int32_t r = r0; r < r1; r++) {
        const uint8_t *wr = w + (size_t)r * row_bytes;
        for (int32_t t = t0; t < t1; t++) y[(size_t)t * ys + r] = dot(cols, wr, x + (size_t)t * x_row);
      }
    } else {
      float buf[DQ_CHUNK] __attribute__((aligned(64)));
      const int32_t chunk = DQ_CHUNK - DQ_CHUNK % blck; /* blck divides 2048 for all types */
      for (int32_t r = r0; r < r1; r++) {
        const uint8_t *wr = w + (size_t)r * row_bytes;
        for (int32_t c0 = 0; c0 < cols; c0 += chunk) {
          const int32_t len = c0 + chunk < cols ? chunk : cols - c0;
          k->dequant(wr + (size_t)(c0 / blck) * wbytes, buf, len);
          for (int32_t t = t0; t < t1; t++) {
            const float s = k->dot_ff(len, buf, x + (size_t)t * x_row + c0);
            float *yp = y + (size_t)t * ys + r;
            *yp = c0 == 0 ? s : *yp + s;
          }
        }
      }
    }
  }
}

int32_t spool_tok_tile(int use_tile, size_t tok_bytes, int32_t n_tok) {
  int32_t tile = (int32_t)((use_tile ? L1_TILE_BYTES : TILE_BYTES) / (tok_bytes ? tok_bytes : 1));
  if (use_tile) tile -= tile % TILE_TOKS;
  if (tile < (use_tile ? TILE_TOKS : 1)) tile = use_tile ? TILE_TOKS : 1;
  if (tile > n_tok) tile = n_tok;
  return tile;
}

static void mm_task(void *vctx, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const mm_ctx *c = (const mm_ctx *)vctx;
  const int32_t r0 = task * c->rows_per_task;
  const int32_t r1 = r0 + c->rows_per_task < c->rows ? r0 + c->rows_per_task : c->rows;
  spool_rows_product(&c->k, c->w, c->row_bytes, c->cols, c->blck, c->wbytes, r0, r1, c->xq,
                     c->xq_row, c->x, (size_t)c->cols, c->n_tok, c->tok_tile, c->y,
                     (size_t)c->rows);
}

typedef struct {
  spool_quant_fn fn;
  const float *x;
  uint8_t *xq;
  int32_t cols, n_tok, per_task;
  size_t xq_row;
} act_ctx;

static void act_task(void *vctx, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  const act_ctx *c = (const act_ctx *)vctx;
  int32_t t0 = task * c->per_task;
  int32_t t1 = t0 + c->per_task < c->n_tok ? t0 + c->per_task : c->n_tok;
  for (int32_t t = t0; t < t1; t++) {
    c->fn(c->x + (size_t)t * c->cols, c->xq + (size_t)t * c->xq_row, c->cols);
  }
}

static spool_status matmul_impl(spool_pool *pool, int32_t type, const void *w, int32_t rows,
                                int32_t cols, const float *x, int32_t n_tok, float *y, int32_t act,
                                void *scratch);

/* keeps the 64 KiB stack buffer out of the frame of the common path */
__attribute__((noinline)) static spool_status matmul_stack(spool_pool *pool, int32_t type,
                                                           const void *w, int32_t rows, int32_t cols,
                                                           const float *x, int32_t n_tok, float *y,
                                                           int32_t act) {
  uint8_t stack[STACK_SCRATCH] __attribute__((aligned(64)));
  return matmul_impl(pool, type, w, rows, cols, x, n_tok, y, act, stack);
}

SPOOL_API spool_status spool_matmul(spool_pool *pool, int32_t type, const void *w, int32_t rows,
                                    int32_t cols, const float *x, int32_t n_tok, float *y,
                                    int32_t act, void *scratch) {
  type_info ti;
  if (!type_lookup(type, &ti) || ti.act == -2) return SPOOL_E_TYPE;
  if (!w || !x || !y || rows < 0 || cols < 0 || n_tok < 0 || cols % ti.blck) return SPOOL_E_INVALID;
  if (act != SPOOL_ACT_F32 && act != SPOOL_ACT_Q8) return SPOOL_E_INVALID;
  if (rows == 0 || n_tok == 0) return SPOOL_OK;
  const double need = spool_matmul_scratch_bytes(type, cols, n_tok, act);
  if (need > 0 && !scratch) {
    if (need > STACK_SCRATCH) return SPOOL_E_NOMEM;
    return matmul_stack(pool, type, w, rows, cols, x, n_tok, y, act);
  }
  if (need > 0 && ((uintptr_t)scratch & 3)) return SPOOL_E_ALIGN;
  return matmul_impl(pool, type, w, rows, cols, x, n_tok, y, act, scratch);
}

static spool_status matmul_impl(spool_pool *pool, int32_t type, const void *w, int32_t rows,
                                int32_t cols, const float *x, int32_t n_tok, float *y, int32_t act,
                                void *scratch) {
  type_info ti;
  if (!type_lookup(type, &ti)) return SPOOL_E_TYPE;
  mm_ctx c;
  memset(&c, 0, sizeof c);
  spool_select_kernels(type, &c.k);
  c.w = (const uint8_t *)w;
  c.row_bytes = (size_t)(cols / ti.blck) * (size_t)ti.bytes;
  c.rows = rows;
  c.cols = cols;
  c.n_tok = n_tok;
  c.blck = ti.blck;
  c.wbytes = ti.bytes;
  c.x = x;
  c.y = y;
  const int32_t n_threads = spool_pool_size(pool);
  size_t tok_bytes = (size_t)cols * 4;
  if (act == SPOOL_ACT_Q8 && ti.act >= 0 && c.k.dot_q8) {
    c.xq = (const uint8_t *)scratch;
    c.xq_row = spool_act_row_bytes(ti.act, cols);
    tok_bytes = c.xq_row;
    act_ctx a = {c.k.quant_act, x, (uint8_t *)scratch, cols, n_tok, 1, c.xq_row};
    int32_t n_act = n_tok >= 4 ? n_threads : 1;
    a.per_task = (n_tok + n_act - 1) / n_act;
    n_act = (n_tok + a.per_task - 1) / a.per_task;
    spool_pool_run(pool, act_task, &a, n_act);
  }
  if (cols == 0) {
    for (size_t i = 0; i < (size_t)rows * (size_t)n_tok; i++) y[i] = 0;
    return SPOOL_OK;
  }
  const int use_tile = c.xq && c.k.tile_q8;
  const int32_t tile = spool_tok_tile(use_tile, tok_bytes, n_tok);
  c.tok_tile = tile;
  /* several tasks per thread for dynamic balance, at least 4 rows each (a multiple of
   * TILE_ROWS); with several token tiles, a task's rows must stay in L2 across them */
  int32_t n_tasks = n_threads == 1 ? 1 : n_threads * (n_tok == 1 ? MV_TASKS_PER_THREAD : 8);
  int32_t per = (rows + n_tasks - 1) / n_tasks;
  if (use_tile && tile < n_tok) {
    const int32_t cap = (int32_t)(L2_TASK_BYTES / c.row_bytes);
    if (per > cap) per = cap;
  }
  if (per < 4) per = 4;
  per += (TILE_ROWS - per % TILE_ROWS) % TILE_ROWS;
  c.rows_per_task = per;
  n_tasks = (rows + per - 1) / per;
  spool_pool_run(pool, mm_task, &c, n_tasks);
  return SPOOL_OK;
}

/* ---- bandwidth probe (benchmarks) ---- */

typedef struct {
  const uint8_t *p;
  size_t bytes, per_task;
  float sums[256];
} bw_ctx;

static float sum_bytes(const void *p, size_t bytes) {
#if defined(SPOOL_HAVE_AVX2)
  if (SPOOL_USE_AVX2()) return spool_avx2_sum_bytes(p, bytes);
#endif
#if defined(SPOOL_HAVE_NEON)
  if (SPOOL_USE_NEON()) return spool_neon_sum_bytes(p, bytes);
#endif
  const uint64_t *q = (const uint64_t *)p;
  uint64_t a = 0, b = 0, c2 = 0, d = 0;
  size_t n = bytes / 8, i = 0;
  for (; i + 4 <= n; i += 4) { a += q[i]; b += q[i + 1]; c2 += q[i + 2]; d += q[i + 3]; }
  for (; i < n; i++) a += q[i];
  return (float)(a ^ b ^ c2 ^ d);
}

static void bw_task(void *vctx, int32_t task, int32_t n_tasks) {
  (void)n_tasks;
  bw_ctx *c = (bw_ctx *)vctx;
  size_t o = (size_t)task * c->per_task;
  if (o >= c->bytes) return;
  size_t len = c->bytes - o < c->per_task ? c->bytes - o : c->per_task;
  c->sums[task & 255] += sum_bytes(c->p + o, len);
}

SPOOL_API double spool_bench_read_bandwidth(const void *p, double bytes, int32_t reps,
                                            spool_pool *pool) {
  if (!p || bytes < 4096 || reps < 1) return (double)SPOOL_E_INVALID;
  bw_ctx c;
  memset(&c, 0, sizeof c);
  c.p = (const uint8_t *)p;
  c.bytes = (size_t)bytes & ~(size_t)255;
  int32_t n_tasks = spool_pool_size(pool) * 8;
  if (n_tasks > 256) n_tasks = 256;
  c.per_task = ((c.bytes / (size_t)n_tasks) + 255) & ~(size_t)255;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int32_t r = 0; r < reps; r++) spool_pool_run(pool, bw_task, &c, n_tasks);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
  volatile float sink = c.sums[0];
  (void)sink;
  return s > 0 ? (double)c.bytes * reps / s : 0;
}
