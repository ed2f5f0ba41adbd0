/*
 * deltanet_ggml.c — spool's gated DeltaNet ops against ggml's own CPU ops, the ones
 * llama.cpp's qwen35moe / qwen3next graphs run (built by test/kernels/deltanet_ggml_test.ts
 * against the prebuilt libggml that node-llama-cpp ships and the ggml headers of the
 * llama.cpp source it bundles; nothing of llama.cpp is compiled here but this file):
 *  - ggml_ssm_conv on [state; x] followed by ggml_silu  vs  spool_ssm_conv(SPOOL_CONV_SILU);
 *  - ggml_softplus(alpha + dt_bias) · ssm_a and ggml_sigmoid(b)  vs  spool_gdn_gates;
 *  - build_gdn_l2_norm (ggml_rms_norm(x, eps/n) then ggml_scale(1/sqrt(n))) on q and k, then
 *    ggml_gated_delta_net (the fused op llama.cpp's CPU backend runs for decode and prefill)
 *    vs spool_gated_delta_net(SPOOL_GDN_L2NORM | SPOOL_GDN_TILED); and, for Qwen3-Next's
 *    layout, q and k repeat-interleaved over the value heads before the ggml op vs spool's
 *    grouped mapping; outputs and final states;
 *  - ggml_rms_norm · w · ggml_silu(z)  vs  spool_gated_rmsnorm.
 * Every spool op runs on REF and on the best SIMD path. Prints one line per comparison with
 * its NMSE and exits non-zero if a bound fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
#include "ggml-cpu.h"
#include "spool.h"
#define PARITY_SEED 0x1f83d9abfb41bd6bull
#include "parity.h"

static struct ggml_context *ctx;

static struct ggml_tensor *tensor(const float *data, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
  struct ggml_tensor *t = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, n0, n1, n2, n3);
  memcpy(t->data, data, ggml_nbytes(t));
  return t;
}

static void compute(struct ggml_tensor *out) {
  struct ggml_cgraph *gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, out);
  ggml_graph_compute_with_ctx(ctx, gf, 2);
}

static const int32_t impls[2] = {SPOOL_IMPL_REF, SPOOL_IMPL_AUTO};
static const char *impl_name(int32_t i) { return i == SPOOL_IMPL_REF ? "ref " : "simd"; }

static void cmp(const char *what, int32_t impl, const float *got, const float *want, size_t n,
                double bound) {
  char line[128];
  size_t same = 0;
  for (size_t i = 0; i < n; i++) same += memcmp(got + i, want + i, 4) == 0;
  snprintf(line, sizeof line, "%s %s (%.1f%% bits equal)", what, impl_name(impl), 100.0 * same / n);
  report(line, nmse(got, want, n), bound);
}

static void test_conv(int32_t ch, int32_t k, int32_t n, int32_t silu) {
  float *x = rnd_vec((size_t)n * ch, 1.0f), *w = rnd_vec((size_t)ch * k, 0.5f);
  float *st = rnd_vec((size_t)(k - 1) * ch, 1.0f);
  const int32_t L = k - 1 + n;
  float *sx = malloc(sizeof(float) * (size_t)L * ch); /* ggml {k-1+n, ch}: channel-major */
  for (int32_t c = 0; c < ch; c++)
    for (int32_t j = 0; j < L; j++)
      sx[(size_t)c * L + j] = j < k - 1 ? st[(size_t)j * ch + c] : x[(size_t)(j - k + 1) * ch + c];
  struct ggml_tensor *y = ggml_ssm_conv(ctx, tensor(sx, L, ch, 1, 1), tensor(w, k, ch, 1, 1));
  if (silu) y = ggml_silu(ctx, y);
  compute(y);
  for (int i = 0; i < 2; i++) {
    spool_set_impl(impls[i]);
    float *s = dup(st, (size_t)(k - 1) * ch), *o = malloc(sizeof(float) * (size_t)n * ch);
    if (spool_ssm_conv(NULL, x, w, s, o, n, ch, k, silu ? SPOOL_CONV_SILU : 0) != SPOOL_OK) failures++;
    cmp(silu ? "ssm_conv + silu" : "ssm_conv", impls[i], o, (const float *)y->data, (size_t)n * ch, 1e-12);
    free(s); free(o);
  }
  free(x); free(w); free(st); free(sx);
}

static void test_gates(int32_t h, int32_t n) {
  float *al = rnd_vec((size_t)n * h, 3.0f), *b = rnd_vec((size_t)n * h, 3.0f);
  float *dt = rnd_vec(h, 1.0f), *a = rnd_vec(h, 1.0f);
  for (int32_t i = 0; i < h; i++) a[i] = -expf(a[i]);
  al[0] = 25.0f;
  struct ggml_tensor *g = ggml_mul(ctx, ggml_softplus(ctx, ggml_add(ctx, tensor(al, h, n, 1, 1), tensor(dt, h, 1, 1, 1))), tensor(a, h, 1, 1, 1));
  struct ggml_tensor *be = ggml_sigmoid(ctx, tensor(b, h, n, 1, 1));
  compute(g);
  compute(be);
  float *go = malloc(sizeof(float) * (size_t)n * h), *bo = malloc(sizeof(float) * (size_t)n * h);
  if (spool_gdn_gates(al, b, dt, a, go, bo, n, h) != SPOOL_OK) failures++;
  cmp("gdn_gates g", SPOOL_IMPL_REF, go, (const float *)g->data, (size_t)n * h, 1e-13);
  cmp("gdn_gates beta", SPOOL_IMPL_REF, bo, (const float *)be->data, (size_t)n * h, 1e-13);
  free(al); free(b); free(dt); free(a); free(go); free(bo);
}

static struct ggml_tensor *l2(struct ggml_tensor *x, float eps) {
  const float n = (float)x->ne[0];
  return ggml_scale(ctx, ggml_rms_norm(ctx, x, eps / n), 1.0f / sqrtf(n));
}

/* grouped = 0: qwen35 (ggml broadcasts q/k tiled); 1: qwen3next (q/k repeat-interleaved) */
static void test_gdn(int32_t n, int32_t nk, int32_t nv, int32_t d, int grouped) {
  const float eps = 1e-6f;
  float *q = rnd_vec((size_t)n * nk * d, 1.0f), *k = rnd_vec((size_t)n * nk * d, 1.0f);
  float *v = rnd_vec((size_t)n * nv * d, 1.0f), *g = rnd_vec((size_t)n * nv, 1.0f);
  float *beta = rnd_vec((size_t)n * nv, 1.0f), *s0 = rnd_vec((size_t)nv * d * d, 0.1f);
  for (int32_t i = 0; i < n * nv; i++) {
    g[i] = -expf(g[i] - 2.0f);
    beta[i] = 1.0f / (1.0f + expf(-beta[i]));
  }
  int32_t gk = nk;
  float *qg = q, *kg = k;
  if (grouped) { /* what qwen3next's graph feeds the op: q, k repeated per value head */
    gk = nv;
    qg = malloc(sizeof(float) * (size_t)n * nv * d);
    kg = malloc(sizeof(float) * (size_t)n * nv * d);
    for (int32_t t = 0; t < n; t++)
      for (int32_t h = 0; h < nv; h++) {
        const size_t dst = ((size_t)t * nv + h) * d, src = ((size_t)t * nk + h / (nv / nk)) * d;
        memcpy(qg + dst, q + src, sizeof(float) * d);
        memcpy(kg + dst, k + src, sizeof(float) * d);
      }
  }
  struct ggml_tensor *r = ggml_gated_delta_net(
      ctx, l2(tensor(qg, d, gk, n, 1), eps), l2(tensor(kg, d, gk, n, 1), eps), tensor(v, d, nv, n, 1),
      tensor(g, 1, nv, n, 1), tensor(beta, 1, nv, n, 1), tensor(s0, d, d, nv, 1), 1);
  compute(r);
  const float *ro = (const float *)r->data, *rs = ro + (size_t)n * nv * d;
  char what[96];
  for (int i = 0; i < 2; i++) {
    spool_set_impl(impls[i]);
    float *s = dup(s0, (size_t)nv * d * d), *o = malloc(sizeof(float) * (size_t)n * nv * d);
    if (spool_gated_delta_net(NULL, q, k, v, g, beta, s, o, n, nk, nv, d, d, nk * d, nk * d, nv * d,
                              1.0f / sqrtf((float)d), eps,
                              SPOOL_GDN_L2NORM | (grouped ? 0 : SPOOL_GDN_TILED)) != SPOOL_OK)
      failures++;
    snprintf(what, sizeof what, "gdn n %d heads %d/%d d %d %s out", n, nk, nv, d, grouped ? "grouped" : "tiled");
    cmp(what, impls[i], o, ro, (size_t)n * nv * d, 1e-12);
    snprintf(what, sizeof what, "gdn n %d heads %d/%d d %d %s state", n, nk, nv, d, grouped ? "grouped" : "tiled");
    cmp(what, impls[i], s, rs, (size_t)nv * d * d, 1e-12);
    free(s); free(o);
  }
  if (grouped) { free(qg); free(kg); }
  free(q); free(k); free(v); free(g); free(beta); free(s0);
}

static void test_gated_norm(int32_t rows, int32_t d) {
  float *x = rnd_vec((size_t)rows * d, 2.0f), *z = rnd_vec((size_t)rows * d, 2.0f), *w = rnd_vec(d, 0.5f);
  struct ggml_tensor *y = ggml_mul(ctx, ggml_mul(ctx, ggml_rms_norm(ctx, tensor(x, d, rows, 1, 1), 1e-6f), tensor(w, d, 1, 1, 1)),
                                   ggml_silu(ctx, tensor(z, d, rows, 1, 1)));
  compute(y);
  for (int i = 0; i < 2; i++) {
    spool_set_impl(impls[i]);
    float *o = malloc(sizeof(float) * (size_t)rows * d);
    if (spool_gated_rmsnorm(x, w, z, o, rows, d, 1e-6f) != SPOOL_OK) failures++;
    cmp("gated_rmsnorm", impls[i], o, (const float *)y->data, (size_t)rows * d, 1e-12);
    free(o);
  }
  free(x); free(z); free(w);
}

int main(void) {
  struct ggml_init_params ip = {256u << 20, NULL, false};
  ctx = ggml_init(ip);
  for (int32_t silu = 0; silu <= 1; silu++) {
    test_conv(4 * 128 + 2 * 2 * 128, 4, 37, silu); /* a narrow Qwen3.5 conv: 2 k, 4 v heads */
    test_conv(96, 4, 1, silu);
  }
  test_gates(32, 9);
  test_gdn(64, 2, 4, 128, 0);
  test_gdn(64, 2, 4, 128, 1);
  test_gdn(1, 16, 32, 128, 0); /* one decode step, Qwen3.5-35B-A3B's heads */
  test_gdn(300, 1, 2, 128, 0);
  test_gated_norm(64 * 4, 128);
  ggml_free(ctx);
  printf("deltanet_ggml: %s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
