/*
 * quant_parity.c — standalone parity check of the SIMD quantization kernels (AVX2 on x86-64,
 * NEON on arm64) against the scalar reference, through the public ABI only.
 *
 * For every weight type (F32, F16, BF16, Q4_0, Q8_0, MXFP4, Q4_K, Q5_K, Q6_K) it quantizes
 * random weights with spool_quantize, then compares, between spool_set_impl(REF) and
 * spool_set_impl(AUTO):
 *  - spool_quantize bytes (must be identical: both use the ggml-identical quantizer);
 *  - spool_dequantize_row (bit-identical);
 *  - spool_matmul for act F32 and act Q8 at several shapes (n_tok 1, 3, 17, 64; rows not a
 *    multiple of the task chunk), with and without a pool: NMSE <= 1e-10 (the activation
 *    quantizers are bit-identical and integer sums exact; only f32 summation order differs);
 *  - Q8 activations against F32 activations on the SIMD path: NMSE <= 1e-3;
 *  - spool_matmul_batched in MLA's strided per-head layouts: bit-identical to spool_matmul per
 *    head on gathered rows (pool or not), REF vs SIMD NMSE <= 1e-10.
 * It prints one line per check and exits non-zero if any fails. Run natively on x86 and under
 * qemu-aarch64 for NEON (test/kernels/neon_test.ts).
 *
 *   cc -O2 -Ikernels/include kernels/test/quant_parity.c -Lkernels/dist/linux-x64 -lspool \
 *      -Wl,-rpath,kernels/dist/linux-x64 -lm -o /tmp/quant_parity && /tmp/quant_parity
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spool.h"
#define PARITY_SEED 0x2545f4914f6cdd1dull
#include "parity.h"


static const struct { int32_t type; const char *name; } TYPES[] = {
    {SPOOL_TYPE_F32, "F32"},   {SPOOL_TYPE_F16, "F16"},   {SPOOL_TYPE_BF16, "BF16"},
    {SPOOL_TYPE_Q4_0, "Q4_0"}, {SPOOL_TYPE_Q8_0, "Q8_0"}, {SPOOL_TYPE_MXFP4, "MXFP4"},
    {SPOOL_TYPE_Q4_K, "Q4_K"}, {SPOOL_TYPE_Q5_K, "Q5_K"}, {SPOOL_TYPE_Q6_K, "Q6_K"},
};
static const int SHAPES[][3] = {{37, 512, 1}, {130, 768, 3}, {67, 256, 17}, {40, 2048, 64}};

static float *matmul(spool_pool *pool, int32_t impl, int32_t type, const void *w, int rows,
                     int cols, const float *x, int n_tok, int32_t act, int use_scratch) {
  spool_set_impl(impl);
  float *y = (float *)calloc((size_t)rows * n_tok, sizeof(float));
  const double need = spool_matmul_scratch_bytes(type, cols, n_tok, act);
  void *scratch = (use_scratch || need > 65536) && need > 0 ? malloc((size_t)need) : NULL;
  const spool_status st = spool_matmul(pool, type, w, rows, cols, x, n_tok, y, act, scratch);
  free(scratch);
  spool_set_impl(SPOOL_IMPL_AUTO);
  if (st != SPOOL_OK) {
    printf("FAIL spool_matmul returned %d\n", st);
    failures++;
  }
  return y;
}

/* spool_matmul_batched with MLA's strided per-head layout (4 heads: x rows of x_batch values
 * per head, y rows of y_batch): the SIMD result equals spool_matmul per head on gathered rows
 * bit for bit (pool or not), and the REF result within NMSE 1e-10. */
static void test_matmul_batched(spool_pool *pool, int32_t type, const char *name, int rows,
                                int cols, int x_batch, int y_batch, int n_tok) {
  const int H = 4;
  const int32_t blk = spool_type_block_size(type), bb = spool_type_block_bytes(type);
  const size_t row_bytes = (size_t)(cols / blk) * bb, wn = (size_t)H * rows * cols;
  float *wf = (float *)malloc(wn * sizeof(float));
  for (size_t i = 0; i < wn; i++) wf[i] = rnd_normal() / sqrtf((float)cols);
  unsigned char *w = (unsigned char *)malloc((size_t)H * rows * row_bytes);
  spool_quantize(NULL, type, wf, w, H * rows, cols);
  const size_t xn = (size_t)n_tok * H * x_batch, yn = (size_t)n_tok * H * y_batch;
  float *x = (float *)malloc(xn * sizeof(float));
  for (size_t i = 0; i < xn; i++) x[i] = rnd_normal();
  float *ya = (float *)calloc(yn, 4), *yb = (float *)calloc(yn, 4), *yr = (float *)calloc(yn, 4);
  float *yg = (float *)calloc(yn, 4);
  for (int32_t act = 0; act <= 1; act++) {
    const double need = spool_matmul_scratch_bytes(type, cols, H * n_tok, act);
    void *scratch = need > 0 ? malloc((size_t)need) : NULL;
    int ok = 1;
    spool_set_impl(SPOOL_IMPL_REF);
    ok &= spool_matmul_batched(NULL, type, w, rows, cols, (double)(rows * row_bytes), H, x,
                               H * x_batch, x_batch, n_tok, yr, H * y_batch, y_batch, act,
                               scratch) == SPOOL_OK;
    spool_set_impl(SPOOL_IMPL_AUTO);
    ok &= spool_matmul_batched(NULL, type, w, rows, cols, (double)(rows * row_bytes), H, x,
                               H * x_batch, x_batch, n_tok, ya, H * y_batch, y_batch, act,
                               scratch) == SPOOL_OK;
    ok &= spool_matmul_batched(pool, type, w, rows, cols, (double)(rows * row_bytes), H, x,
                               H * x_batch, x_batch, n_tok, yb, H * y_batch, y_batch, act,
                               scratch) == SPOOL_OK;
    float *xg = (float *)malloc((size_t)n_tok * cols * 4), *yh = (float *)malloc((size_t)n_tok * rows * 4);
    for (int h = 0; h < H; h++) { /* per head: gather, spool_matmul, scatter */
      for (int t = 0; t < n_tok; t++) memcpy(xg + (size_t)t * cols, x + (size_t)t * H * x_batch + (size_t)h * x_batch, (size_t)cols * 4);
      ok &= spool_matmul(NULL, type, w + (size_t)h * rows * row_bytes, rows, cols, xg, n_tok, yh, act,
                         scratch) == SPOOL_OK;
      for (int t = 0; t < n_tok; t++) memcpy(yg + (size_t)t * H * y_batch + (size_t)h * y_batch, yh + (size_t)t * rows, (size_t)rows * 4);
    }
    char what[128];
    snprintf(what, sizeof what, "%s matmul_batched %dx%d x4 n_tok=%d act=%s", name, rows, cols,
             n_tok, act ? "q8" : "f32");
    report(what, ok ? nmse(ya, yr, yn) : 1.0, 1e-10);
    snprintf(what, sizeof what, "%s   batched == spool_matmul per head, pool or not", name);
    report(what, memcmp(ya, yg, yn * 4) == 0 && memcmp(yb, yg, yn * 4) == 0 ? 0.0 : 1.0, 0.0);
    free(xg); free(yh); free(scratch);
  }
  free(wf); free(w); free(x); free(ya); free(yb); free(yr); free(yg);
}

int main(void) {
  spool_set_impl(SPOOL_IMPL_AUTO);
  const int32_t simd = spool_get_impl();
  printf("# quant_parity: SIMD impl %d (1 = REF only, 2 = AVX2, 3 = NEON), cpu features 0x%x\n",
         simd, spool_cpu_features());
  spool_pool *pool = spool_pool_create(2);
  char what[128];
  for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
    const int32_t type = TYPES[ti].type;
    const int32_t blk = spool_type_block_size(type), bb = spool_type_block_bytes(type);
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
      const int rows = SHAPES[si][0], cols = SHAPES[si][1], n_tok = SHAPES[si][2];
      const size_t n = (size_t)rows * cols, row_bytes = (size_t)(cols / blk) * bb;
      float *wf = (float *)malloc(n * sizeof(float));
      for (size_t i = 0; i < n; i++) wf[i] = rnd_normal() / sqrtf((float)cols);
      float *x = (float *)malloc((size_t)n_tok * cols * sizeof(float));
      for (size_t i = 0; i < (size_t)n_tok * cols; i++) x[i] = rnd_normal();
      unsigned char *w_ref = (unsigned char *)malloc(rows * row_bytes);
      unsigned char *w_simd = (unsigned char *)malloc(rows * row_bytes);
      spool_set_impl(SPOOL_IMPL_REF);
      spool_quantize(pool, type, wf, w_ref, rows, cols);
      spool_set_impl(SPOOL_IMPL_AUTO);
      spool_quantize(NULL, type, wf, w_simd, rows, cols);
      if (si == 0) {
        snprintf(what, sizeof what, "%s quantize bytes REF == AUTO", TYPES[ti].name);
        report(what, memcmp(w_ref, w_simd, rows * row_bytes) == 0 ? 0.0 : 1.0, 0.0);
        float *d_ref = (float *)malloc(n * sizeof(float)), *d_simd = (float *)malloc(n * sizeof(float));
        spool_set_impl(SPOOL_IMPL_REF);
        spool_dequantize_row(type, w_ref, d_ref, (int32_t)n);
        spool_set_impl(SPOOL_IMPL_AUTO);
        spool_dequantize_row(type, w_ref, d_simd, (int32_t)n);
        snprintf(what, sizeof what, "%s dequantize bit-identical", TYPES[ti].name);
        report(what, memcmp(d_ref, d_simd, n * sizeof(float)) == 0 ? 0.0 : nmse(d_simd, d_ref, n) + 1e-300, 0.0);
        free(d_ref);
        free(d_simd);
      }
      for (int32_t act = 0; act <= 1; act++) {
        float *yr = matmul(pool, SPOOL_IMPL_REF, type, w_ref, rows, cols, x, n_tok, act, 1);
        float *ys = matmul(pool, SPOOL_IMPL_AUTO, type, w_ref, rows, cols, x, n_tok, act, 1);
        float *y1 = matmul(NULL, SPOOL_IMPL_AUTO, type, w_ref, rows, cols, x, n_tok, act, 0);
        snprintf(what, sizeof what, "%s matmul %dx%d n_tok=%d act=%s", TYPES[ti].name, rows, cols,
                 n_tok, act ? "q8" : "f32");
        report(what, nmse(ys, yr, (size_t)rows * n_tok), 1e-10);
        snprintf(what, sizeof what, "%s   1 thread/no scratch == pool", TYPES[ti].name);
        report(what, memcmp(ys, y1, (size_t)rows * n_tok * sizeof(float)) == 0 ? 0.0 : 1.0, 0.0);
        free(yr);
        free(y1);
        if (act == 1) {
          float *yf = matmul(pool, SPOOL_IMPL_AUTO, type, w_ref, rows, cols, x, n_tok, 0, 1);
          snprintf(what, sizeof what, "%s   q8 act vs f32 act", TYPES[ti].name);
          report(what, nmse(ys, yf, (size_t)rows * n_tok), 1e-3);
          free(yf);
        }
        free(ys);
      }
      free(wf);
      free(x);
      free(w_ref);
      free(w_simd);
    }
  }
  /* MLA: wk_b absorb (512 x 128, q_nope inside 192-value heads, into 576-value rows) and
   * wv_b decompress (128 x 512) */
  test_matmul_batched(pool, SPOOL_TYPE_Q8_0, "Q8_0", 512, 128, 192, 576, 1);
  test_matmul_batched(pool, SPOOL_TYPE_F16, "F16", 512, 128, 192, 576, 3);
  test_matmul_batched(pool, SPOOL_TYPE_Q4_K, "Q4_K", 128, 512, 512, 128, 1);
  test_matmul_batched(pool, SPOOL_TYPE_Q6_K, "Q6_K", 128, 512, 512, 128, 5);
  spool_pool_destroy(pool);
  printf("# quant_parity: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}
