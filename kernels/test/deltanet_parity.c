/*
 * deltanet_parity.c — standalone check of the gated DeltaNet ops through the public ABI on
 * the SIMD implementation of this machine (AVX2 on x86-64; NEON under qemu-aarch64:
 * test/kernels/neon_test.ts) against the scalar reference:
 *  - spool_ssm_conv: bit identity with REF without silu (no FMA by design), NMSE <= 1e-12
 *    with silu, the same next state, in place = out of place;
 *  - spool_gated_delta_net: NMSE <= 1e-12 against REF on outputs and states (Qwen3.5 shape
 *    dk = dv = 128, tiled and grouped heads; a head size off the vector width), and, per
 *    implementation, one call = two calls = pooled, bit for bit;
 *  - spool_gated_rmsnorm: NMSE <= 1e-12 against REF.
 * Prints one line per check and exits non-zero if any fails.
 *
 *   cc -O2 -Ikernels/include kernels/test/deltanet_parity.c -Lkernels/dist/linux-x64 -lspool \
 *      -Wl,-rpath,kernels/dist/linux-x64 -lm -o /tmp/deltanet_parity && /tmp/deltanet_parity
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spool.h"
#define PARITY_SEED 0x51afd7ed558ccd1dull
#include "parity.h"

static void check(const char *what, int ok) {
  printf("%-4s %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) failures++;
}

static void set_impl(int32_t impl) {
  if (spool_set_impl(impl) != SPOOL_OK) {
    printf("FAIL spool_set_impl(%d)\n", impl);
    exit(2);
  }
}

static void test_conv(int32_t ch, int32_t k, int32_t n, int32_t flags, spool_pool *pool) {
  float *x = rnd_vec((size_t)n * ch, 1.0f), *w = rnd_vec((size_t)ch * k, 0.5f);
  float *st = rnd_vec((size_t)(k - 1) * ch + 1, 1.0f);
  float *sa = dup(st, (size_t)(k - 1) * ch + 1), *sb = dup(st, (size_t)(k - 1) * ch + 1);
  float *a = (float *)malloc(sizeof(float) * n * ch), *b = dup(x, (size_t)n * ch);
  set_impl(SPOOL_IMPL_REF);
  int ok = spool_ssm_conv(NULL, x, w, sa, a, n, ch, k, flags) == SPOOL_OK;
  set_impl(SPOOL_IMPL_AUTO);
  ok &= spool_ssm_conv(pool, b, w, sb, b, n, ch, k, flags) == SPOOL_OK; /* in place */
  char what[96];
  snprintf(what, sizeof what, "conv ch %d k %d n %d silu %d", ch, k, n, flags);
  check(what, ok && memcmp(sa, sb, sizeof(float) * (size_t)(k - 1) * ch) == 0);
  if (flags & SPOOL_CONV_SILU) report(what, nmse(b, a, (size_t)n * ch), 1e-12);
  else check("  bits equal REF", memcmp(a, b, sizeof(float) * (size_t)n * ch) == 0);
  free(x); free(w); free(st); free(sa); free(sb); free(a); free(b);
}

typedef struct {
  int32_t n, nk, nv, dk, dv, row, flags;
  float *conv, *g, *beta, *state;
} gdn_case;

static gdn_case make_case(int32_t n, int32_t nk, int32_t nv, int32_t dk, int32_t dv, int32_t flags) {
  gdn_case c = {n, nk, nv, dk, dv, 2 * nk * dk + nv * dv, flags, NULL, NULL, NULL, NULL};
  c.conv = rnd_vec((size_t)n * c.row, 1.0f);
  c.g = rnd_vec((size_t)n * nv, 1.0f);
  c.beta = rnd_vec((size_t)n * nv, 1.0f);
  for (int32_t i = 0; i < n * nv; i++) {
    c.g[i] = -expf(c.g[i] - 2.0f);
    c.beta[i] = 1.0f / (1.0f + expf(-c.beta[i]));
  }
  c.state = rnd_vec((size_t)nv * dv * dk, 0.1f);
  return c;
}

static int run_gdn(const gdn_case *c, spool_pool *pool, int32_t t0, int32_t t1, float *state, float *out) {
  const float *row = c->conv + (size_t)t0 * c->row;
  return spool_gated_delta_net(pool, row, row + c->nk * c->dk, row + 2 * c->nk * c->dk,
                               c->g + (size_t)t0 * c->nv, c->beta + (size_t)t0 * c->nv, state,
                               out + (size_t)t0 * c->nv * c->dv, t1 - t0, c->nk, c->nv, c->dk,
                               c->dv, c->row, c->row, c->row, 1.0f / sqrtf((float)c->dk), 1e-6f,
                               c->flags) == SPOOL_OK;
}

static void test_gdn(int32_t n, int32_t nk, int32_t nv, int32_t dk, int32_t dv, int32_t flags,
                     spool_pool *pool) {
  gdn_case c = make_case(n, nk, nv, dk, dv, flags);
  const size_t ns = (size_t)nv * dv * dk, no = (size_t)n * nv * dv;
  float *sa = dup(c.state, ns), *sb = dup(c.state, ns), *sc = dup(c.state, ns);
  float *a = (float *)calloc(no, sizeof(float)), *b = (float *)calloc(no, sizeof(float));
  float *d = (float *)calloc(no, sizeof(float));
  set_impl(SPOOL_IMPL_REF);
  int ok = run_gdn(&c, NULL, 0, n, sa, a);
  set_impl(SPOOL_IMPL_AUTO);
  ok &= run_gdn(&c, NULL, 0, n, sb, b);
  const int32_t half = n / 2 + 1;
  ok &= run_gdn(&c, pool, 0, half, sc, d) && run_gdn(&c, pool, half, n, sc, d);
  char what[96];
  snprintf(what, sizeof what, "gdn n %d heads %d/%d dk %d dv %d flags %d", n, nk, nv, dk, dv, flags);
  check(what, ok);
  report("  out vs REF", nmse(b, a, no), 1e-12);
  report("  state vs REF", nmse(sb, sa, ns), 1e-12);
  check("  two pooled calls = one call (bits)",
        memcmp(b, d, no * sizeof(float)) == 0 && memcmp(sb, sc, ns * sizeof(float)) == 0);
  free(c.conv); free(c.g); free(c.beta); free(c.state);
  free(sa); free(sb); free(sc); free(a); free(b); free(d);
}

static void test_gated_norm(void) {
  const int32_t rows = 9, n = 128;
  float *x = rnd_vec((size_t)rows * n, 2.0f), *z = rnd_vec((size_t)rows * n, 2.0f);
  float *w = rnd_vec(n, 0.5f);
  float *a = (float *)malloc(sizeof(float) * rows * n), *b = (float *)malloc(sizeof(float) * rows * n);
  set_impl(SPOOL_IMPL_REF);
  int ok = spool_gated_rmsnorm(x, w, z, a, rows, n, 1e-6f) == SPOOL_OK;
  set_impl(SPOOL_IMPL_AUTO);
  ok &= spool_gated_rmsnorm(x, w, z, b, rows, n, 1e-6f) == SPOOL_OK;
  check("gated_rmsnorm status", ok);
  report("gated_rmsnorm 9x128", nmse(b, a, (size_t)rows * n), 1e-12);
  free(x); free(z); free(w); free(a); free(b);
}

int main(void) {
  printf("cpu features 0x%x\n", (unsigned)spool_cpu_features());
  set_impl(SPOOL_IMPL_AUTO);
  const int32_t impl = spool_get_impl();
  printf("impl %d\n", impl);
  if (impl == SPOOL_IMPL_REF) printf("note: no SIMD implementation here; comparing REF with itself\n");
  spool_pool *pool = spool_pool_create(3);
  for (int32_t silu = 0; silu <= 1; silu++) {
    test_conv(200, 4, 9, silu, pool);
    test_conv(67, 3, 2, silu, pool);
    test_conv(8, 1, 5, silu, pool);
  }
  test_gdn(40, 2, 4, 128, 128, SPOOL_GDN_L2NORM | SPOOL_GDN_TILED, pool);
  test_gdn(40, 2, 4, 128, 128, SPOOL_GDN_L2NORM, pool);
  test_gdn(23, 1, 2, 40, 72, SPOOL_GDN_L2NORM, pool);
  test_gdn(9, 3, 3, 18, 20, SPOOL_GDN_L2NORM, pool);
  test_gated_norm();
  spool_pool_destroy(pool);
  printf("deltanet_parity: %s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
