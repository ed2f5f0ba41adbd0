/*
 * ops_parity.c — standalone parity check of the SIMD ops (AVX2 on x86-64, NEON on arm64)
 * against the scalar reference, through the public ABI only.
 *
 * For every op it runs the same inputs with spool_set_impl(SPOOL_IMPL_REF) and
 * spool_set_impl(SPOOL_IMPL_AUTO), and compares: NMSE bounds for the float ops (rmsnorm,
 * softmax, silu, swiglu, rope, attention and MLA attention_ex with flags 0 and SPOOL_ATTN_GGML),
 * bit equality for the f16 conversions (all 65536
 * f16 values and random f32 bit patterns), for routing ids, and for silu / swiglu over several
 * rows against each row alone (on the SIMD path). It prints one line per
 * check and exits non-zero if any fails. Run natively on x86 (AVX2 vs REF) and under
 * qemu-aarch64 for NEON (test/kernels/neon_test.ts).
 *
 *   cc -O2 -Ikernels/include kernels/test/ops_parity.c -Lkernels/dist/linux-x64 -lspool \
 *      -Wl,-rpath,kernels/dist/linux-x64 -lm -o /tmp/ops_parity && /tmp/ops_parity
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spool.h"
#define PARITY_SEED 0x9e3779b97f4a7c15ull
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

static void test_rmsnorm(void) {
  const int32_t rows = 3, n = 4099;
  float *x = rnd_vec((size_t)rows * n, 2.0f), *w = rnd_vec(n, 0.5f);
  float *a = (float *)malloc(sizeof(float) * rows * n), *b = (float *)malloc(sizeof(float) * rows * n);
  set_impl(SPOOL_IMPL_REF);
  int ok = spool_rmsnorm(x, w, a, rows, n, 1e-6f) == SPOOL_OK;
  set_impl(SPOOL_IMPL_AUTO);
  ok &= spool_rmsnorm(x, w, b, rows, n, 1e-6f) == SPOOL_OK;
  check("rmsnorm status", ok);
  report("rmsnorm 3x4099", nmse(b, a, (size_t)rows * n), 1e-12);
  free(x); free(w); free(a); free(b);
}

static void test_softmax(void) {
  const int32_t rows = 4, n = 1001;
  float *x = rnd_vec((size_t)rows * n, 6.0f);
  for (int32_t i = 0; i < n; i++) x[i] += 500.0f;
  float *a = dup(x, (size_t)rows * n), *b = dup(x, (size_t)rows * n);
  set_impl(SPOOL_IMPL_REF);
  spool_softmax(a, rows, n);
  set_impl(SPOOL_IMPL_AUTO);
  spool_softmax(b, rows, n);
  report("softmax 4x1001", nmse(b, a, (size_t)rows * n), 1e-12);
  free(x); free(a); free(b);
}

static void test_silu(void) {
  const int32_t n = 5003;
  float *g = rnd_vec(n, 5.0f), *u = rnd_vec(n, 1.0f);
  g[0] = -200.0f; g[1] = 200.0f; g[2] = -88.5f; g[3] = 0.0f;
  float *a = (float *)malloc(sizeof(float) * n), *b = (float *)malloc(sizeof(float) * n);
  set_impl(SPOOL_IMPL_REF);
  spool_silu(g, a, n);
  set_impl(SPOOL_IMPL_AUTO);
  spool_silu(g, b, n);
  report("silu 5003", nmse(b, a, n), 1e-12);
  set_impl(SPOOL_IMPL_REF);
  spool_swiglu(g, u, a, n);
  set_impl(SPOOL_IMPL_AUTO);
  spool_swiglu(g, u, b, n);
  report("swiglu 5003", nmse(b, a, n), 1e-12);
  free(g); free(u); free(a); free(b);
}

/* silu and swiglu over rows x width values give each row the bits it gets alone, for widths
 * that end inside a SIMD vector (the engine calls them over a step's rows: a row's bits must
 * not depend on how many rows share the call). */
static void test_silu_rows(void) {
  const int32_t widths[] = {36, 100, 7};
  for (int32_t wi = 0; wi < 3; wi++) {
    const int32_t w = widths[wi], rows = 9, n = rows * w;
    float *g = rnd_vec(n, 5.0f), *u = rnd_vec(n, 1.0f);
    float *all = (float *)malloc(sizeof(float) * n), *one = (float *)malloc(sizeof(float) * n);
    int ok_silu = 1, ok_swiglu = 1;
    spool_silu(g, all, n);
    for (int32_t r = 0; r < rows; r++) spool_silu(g + r * w, one + r * w, w);
    ok_silu = memcmp(all, one, sizeof(float) * n) == 0;
    spool_swiglu(g, u, all, n);
    for (int32_t r = 0; r < rows; r++) spool_swiglu(g + r * w, u + r * w, one + r * w, w);
    ok_swiglu = memcmp(all, one, sizeof(float) * n) == 0;
    char what[96];
    snprintf(what, sizeof what, "silu / swiglu: %d rows of %d at once = each row alone", rows, w);
    check(what, ok_silu && ok_swiglu);
    free(g); free(u); free(all); free(one);
  }
}

static void test_f16(void) {
  uint16_t *h = (uint16_t *)malloc(65536 * sizeof(uint16_t));
  float *fa = (float *)malloc(65536 * sizeof(float)), *fb = (float *)malloc(65536 * sizeof(float));
  for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
  set_impl(SPOOL_IMPL_REF);
  spool_f16_to_f32(h, fa, 65536);
  set_impl(SPOOL_IMPL_AUTO);
  spool_f16_to_f32(h, fb, 65536);
  check("f16 -> f32, all 65536 values bit-exact", memcmp(fa, fb, 65536 * sizeof(float)) == 0);
  free(h); free(fa); free(fb);

  const int32_t n = 1 << 20;
  uint32_t *bits = (uint32_t *)malloc(n * sizeof(uint32_t));
  for (int32_t i = 0; i < n; i++) bits[i] = rnd_u32();
  for (int32_t i = 0; i < 65536; i++) { /* dense around f16's range, halfway cases included */
    const uint32_t e = 100 + (uint32_t)(i % 50), m = (i % 3) ? (rnd_u32() & 0x7fffff) : ((rnd_u32() & 0x7fe000) | 0x1000);
    bits[i] = ((uint32_t)(i & 1) << 31) | (e << 23) | m;
  }
  uint16_t *ha = (uint16_t *)malloc(n * sizeof(uint16_t)), *hb = (uint16_t *)malloc(n * sizeof(uint16_t));
  set_impl(SPOOL_IMPL_REF);
  spool_f32_to_f16((const float *)bits, ha, n);
  set_impl(SPOOL_IMPL_AUTO);
  spool_f32_to_f16((const float *)bits, hb, n);
  check("f32 -> f16, 2^20 random bit patterns bit-exact", memcmp(ha, hb, n * sizeof(uint16_t)) == 0);
  free(bits); free(ha); free(hb);
}

static void test_rope(int32_t mode, float ext, float fscale, int with_ff, const char *label) {
  const int32_t n_tok = 6, n_head = 4, head_dim = 128, n_rot = 96;
  const int32_t pos[6] = {0, 1, 5, 333, 4095, 20000};
  const size_t len = (size_t)n_tok * n_head * head_dim;
  float *x = rnd_vec(len, 1.0f);
  float ff[64];
  for (int i = 0; i < 64; i++) ff[i] = 1.0f + (float)i / 8.0f;
  float *a = dup(x, len), *b = dup(x, len);
  set_impl(SPOOL_IMPL_REF);
  int ok = spool_rope(a, pos, n_tok, n_head, head_dim, n_rot, mode, 10000.0f, fscale, ext, 1.0f,
                      32.0f, 1.0f, 4096, with_ff ? ff : NULL) == SPOOL_OK;
  set_impl(SPOOL_IMPL_AUTO);
  ok &= spool_rope(b, pos, n_tok, n_head, head_dim, n_rot, mode, 10000.0f, fscale, ext, 1.0f,
                   32.0f, 1.0f, 4096, with_ff ? ff : NULL) == SPOOL_OK;
  char what[96];
  snprintf(what, sizeof what, "rope %s status", label);
  check(what, ok);
  snprintf(what, sizeof what, "rope %s", label);
  report(what, nmse(b, a, len), 1e-12);
  free(x); free(a); free(b);
}

static void test_route(void) {
  const int32_t n_tok = 16, n_exp = 128, k = 8;
  float *logits = rnd_vec((size_t)n_tok * n_exp, 2.0f), *bias = rnd_vec(n_exp, 0.3f);
  int32_t ia[16 * 8], ib[16 * 8];
  float wa[16 * 8], wb[16 * 8];
  for (int32_t gating = 0; gating < 3; gating++) {
    set_impl(SPOOL_IMPL_REF);
    spool_topk_route(logits, gating == 1 ? bias : NULL, n_tok, n_exp, k, gating, 1, 2.0f, ia, wa);
    set_impl(SPOOL_IMPL_AUTO);
    spool_topk_route(logits, gating == 1 ? bias : NULL, n_tok, n_exp, k, gating, 1, 2.0f, ib, wb);
    char what[64];
    snprintf(what, sizeof what, "topk_route gating %d ids and weights equal", gating);
    check(what, memcmp(ia, ib, sizeof ia) == 0 && memcmp(wa, wb, sizeof wa) == 0);
  }
  check("topk_route k > n_expert -> SPOOL_E_RANGE",
        spool_topk_route(logits, NULL, 1, 4, 5, 0, 0, 1.0f, ia, wa) == SPOOL_E_RANGE);
  free(logits); free(bias);
}

/* flags 0: SIMD vs REF <= 1e-11 (1e-10 beyond 10,000 keys: f32 sums of that many rows).
 * SPOOL_ATTN_GGML: bit for bit (every implementation performs ggml's AVX-512 operations in
 * ggml's order: the 16-lane dots and reductions, exp, the f16 roundings). */
static void test_attention(int32_t n_tok, int32_t n_head, int32_t n_head_kv, int32_t head_dim,
                           int32_t n_kv, int32_t pos0, int32_t window, int sinks, int32_t flags,
                           spool_pool *pool) {
  const size_t qn = (size_t)n_tok * n_head * head_dim, kvn = (size_t)n_kv * n_head_kv * head_dim;
  float *q = rnd_vec(qn, 1.0f), *kf = rnd_vec(kvn, 1.0f), *vf = rnd_vec(kvn, 1.0f);
  float *sk = sinks ? rnd_vec((size_t)n_head, 1.5f) : NULL;
  uint16_t *k = (uint16_t *)malloc(kvn * 2), *v = (uint16_t *)malloc(kvn * 2);
  set_impl(SPOOL_IMPL_REF);
  spool_f32_to_f16(kf, k, (int32_t)kvn);
  spool_f32_to_f16(vf, v, (int32_t)kvn);
  float *a = (float *)malloc(qn * 4), *b = (float *)malloc(qn * 4), *c = (float *)malloc(qn * 4);
  const float scale = 1.0f / sqrtf((float)head_dim);
  int ok = spool_attention(NULL, q, k, v, a, n_tok, n_head, n_head_kv, head_dim, n_kv, pos0, scale,
                           window, sk, flags) == SPOOL_OK;
  set_impl(SPOOL_IMPL_AUTO);
  ok &= spool_attention(NULL, q, k, v, b, n_tok, n_head, n_head_kv, head_dim, n_kv, pos0, scale,
                        window, sk, flags) == SPOOL_OK;
  ok &= spool_attention(pool, q, k, v, c, n_tok, n_head, n_head_kv, head_dim, n_kv, pos0, scale,
                        window, sk, flags) == SPOOL_OK;
  char what[128];
  snprintf(what, sizeof what, "attention%s t%d h%d/%d d%d kv%d p%d w%d s%d",
           flags ? " ggml" : "", n_tok, n_head, n_head_kv, head_dim, n_kv, pos0, window, sinks);
  check(what, ok);
  report(what, nmse(b, a, qn), flags ? 1e-8 : n_kv > 10000 ? 1e-10 : 1e-11);
  if (flags) {
    snprintf(what, sizeof what, "attention ggml SIMD == REF bits (d%d kv%d p%d w%d)", head_dim,
             n_kv, pos0, window);
    check(what, memcmp(a, b, qn * 4) == 0);
  }
  snprintf(what, sizeof what, "attention%s pool == single thread (d%d kv%d)", flags ? " ggml" : "",
           head_dim, n_kv);
  check(what, memcmp(b, c, qn * 4) == 0);
  free(q); free(kf); free(vf); free(sk); free(k); free(v); free(a); free(b); free(c);
}

/* MLA in absorbed form (spool_attention_ex): rows of 576 (512 latent + 64 rope) f16 values,
 * one kv head, V = the first 512 values of the same rows. Bounds as test_attention (flags 0
 * over 32800 keys measured 7.8e-12 on NEON: the REF's sequential f32 sum). */
static void test_attention_mla(int32_t n_tok, int32_t n_head, int32_t n_kv, int32_t pos0,
                               int32_t flags, spool_pool *pool) {
  const int32_t hdk = 576, hdv = 512;
  const size_t qn = (size_t)n_tok * n_head * hdk, on = (size_t)n_tok * n_head * hdv;
  const size_t kvn = (size_t)n_kv * hdk;
  float *q = rnd_vec(qn, 0.5f), *kf = rnd_vec(kvn, 1.0f);
  uint16_t *kv = (uint16_t *)malloc(kvn * 2);
  set_impl(SPOOL_IMPL_REF);
  spool_f32_to_f16(kf, kv, (int32_t)kvn);
  float *a = (float *)malloc(on * 4), *b = (float *)malloc(on * 4), *c = (float *)malloc(on * 4);
  const float scale = 1.0f / sqrtf(192.0f);
  int ok = spool_attention_ex(NULL, q, kv, kv, a, n_tok, n_head, 1, hdk, hdv, hdk, hdk, n_kv,
                              pos0, scale, 0, NULL, flags) == SPOOL_OK;
  set_impl(SPOOL_IMPL_AUTO);
  ok &= spool_attention_ex(NULL, q, kv, kv, b, n_tok, n_head, 1, hdk, hdv, hdk, hdk, n_kv, pos0,
                           scale, 0, NULL, flags) == SPOOL_OK;
  ok &= spool_attention_ex(pool, q, kv, kv, c, n_tok, n_head, 1, hdk, hdv, hdk, hdk, n_kv, pos0,
                           scale, 0, NULL, flags) == SPOOL_OK;
  char what[128];
  snprintf(what, sizeof what, "attention_ex mla%s t%d h%d kv%d p%d", flags ? " ggml" : "",
           n_tok, n_head, n_kv, pos0);
  check(what, ok);
  report(what, nmse(b, a, on), flags ? 1e-8 : n_kv > 10000 ? 1e-10 : 1e-11);
  if (flags) {
    snprintf(what, sizeof what, "attention_ex mla ggml SIMD == REF bits (h%d kv%d)", n_head, n_kv);
    check(what, memcmp(a, b, on * 4) == 0);
  }
  snprintf(what, sizeof what, "attention_ex mla%s pool == single thread (kv%d)",
           flags ? " ggml" : "", n_kv);
  check(what, memcmp(b, c, on * 4) == 0);
  free(q); free(kf); free(kv); free(a); free(b); free(c);
}

/* DeepSeek-V3 routing: 256 experts in 8 groups, 4 kept, top-8, sigmoid + bias, norm, scale */
static void test_route_groups(void) {
  const int32_t n_tok = 16, n_exp = 256, k = 8;
  float *logits = rnd_vec((size_t)n_tok * n_exp, 2.0f), *bias = rnd_vec(n_exp, 0.3f);
  int32_t ia[16 * 8], ib[16 * 8];
  float wa[16 * 8], wb[16 * 8];
  set_impl(SPOOL_IMPL_REF);
  int ok = spool_topk_route_groups(logits, bias, n_tok, n_exp, k, SPOOL_GATE_SIGMOID, 1, 2.5f, 8,
                                   4, ia, wa) == SPOOL_OK;
  set_impl(SPOOL_IMPL_AUTO);
  ok &= spool_topk_route_groups(logits, bias, n_tok, n_exp, k, SPOOL_GATE_SIGMOID, 1, 2.5f, 8, 4,
                                ib, wb) == SPOOL_OK;
  check("topk_route_groups 256/8/4 ids and weights equal",
        ok && memcmp(ia, ib, sizeof ia) == 0 && memcmp(wa, wb, sizeof wa) == 0);
  int in_groups = 1;
  for (int32_t t = 0; t < n_tok; t++) {
    int32_t used = 0, seen[8] = {0};
    for (int32_t i = 0; i < k; i++) {
      const int32_t g = ia[t * k + i] / 32;
      if (!seen[g]) { seen[g] = 1; used++; }
    }
    in_groups &= used <= 4;
  }
  check("topk_route_groups chooses from at most 4 groups", in_groups);
  check("topk_route_groups n_group_used > n_group -> SPOOL_E_RANGE",
        spool_topk_route_groups(logits, NULL, 1, n_exp, k, 1, 1, 1.0f, 8, 9, ia, wa) ==
            SPOOL_E_RANGE);
  free(logits); free(bias);
}

int main(void) {
  set_impl(SPOOL_IMPL_AUTO);
  const int32_t impl = spool_get_impl();
  const char *name = impl == SPOOL_IMPL_AVX2 ? "AVX2" : impl == SPOOL_IMPL_NEON ? "NEON" : "REF";
  printf("ops_parity: %s vs REF (cpu features 0x%x)\n", name, spool_cpu_features());
  if (impl == SPOOL_IMPL_REF) printf("note: no SIMD implementation here; comparing REF with itself\n");
  spool_pool *pool = spool_pool_create(3);
  test_rmsnorm();
  test_softmax();
  test_silu();
  test_silu_rows();
  test_f16();
  test_rope(SPOOL_ROPE_NORMAL, 0.0f, 1.0f, 0, "normal");
  test_rope(SPOOL_ROPE_NEOX, 0.0f, 1.0f, 0, "neox");
  test_rope(SPOOL_ROPE_NORMAL, 1.0f, 0.25f, 0, "normal yarn");
  test_rope(SPOOL_ROPE_NEOX, 1.0f, 0.25f, 1, "neox yarn + freq_factors");
  test_route();
  for (int32_t flags = 0; flags <= SPOOL_ATTN_GGML; flags++) {
    test_attention(1, 8, 8, 64, 300, 299, 0, 0, flags, pool);
    test_attention(1, 16, 4, 128, 517, 516, 0, 0, flags, pool);
    test_attention(7, 16, 2, 64, 200, 150, 0, 1, flags, pool);
    test_attention(5, 8, 1, 128, 400, 300, 64, 1, flags, pool);
    test_attention(3, 4, 2, 36, 50, 10, 0, 0, flags, pool);
    test_attention(4, 6, 3, 48, 90, 70, 21, 0, flags, pool); /* 16 | d, not 32 | d; window */
    test_attention(1, 8, 2, 64, 12000, 11999, 0, 1, flags, pool); /* ggml: 2 heads at a time */
    test_attention(2, 4, 1, 64, 33000, 32998, 0, 1, flags, pool); /* > SPOOL_ATTN_GGML_SCORES */
  }
  test_route_groups();
  for (int32_t flags = 0; flags <= SPOOL_ATTN_GGML; flags++) {
    test_attention_mla(1, 16, 300, 299, flags, pool);
    test_attention_mla(5, 128, 120, 100, flags, pool); /* 128 heads: the group is chunked */
    test_attention_mla(1, 1, 32800, 32799, flags, pool); /* > SPOOL_ATTN_GGML_SCORES */
  }
  spool_pool_destroy(pool);
  printf("ops_parity: %s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
