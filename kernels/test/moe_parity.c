/*
 * moe_parity.c — standalone check of spool_moe_ffn through the public ABI, on every
 * implementation the library has (REF and AVX2 on x86-64; REF and NEON, with and without
 * SDOT, under qemu-aarch64: test/kernels/neon_test.ts).
 *
 *  - bit identity, per implementation, with the composition it replaces: group the slots by
 *    expert, spool_matmul gate and up (8-bit activations for quantized weights, f32 for F32),
 *    biases and the activation (spool_swiglu, or gpt-oss's clamped SwiGLU in f32 steps),
 *    spool_matmul down, then (d + down_b) * w and the f32 sum in slot order;
 *  - bit identity with and without a pool;
 *  - SIMD against REF: NMSE <= 1e-6.
 * Types Q4_K/Q6_K, Q8_0, MXFP4, F32; n_tok 1 and 9; k 1, 2 and 8; with and without biases.
 * Prints one line per check and exits non-zero if any fails.
 *
 *   cc -O2 -Ikernels/include kernels/test/moe_parity.c -Lkernels/dist/linux-x64 -lspool \
 *      -Wl,-rpath,kernels/dist/linux-x64 -lm -o /tmp/moe_parity && /tmp/moe_parity
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "spool.h"
#define PARITY_SEED 0x2545f4914f6cdd1dull
#include "parity.h"


typedef struct {
  int32_t type, rows, cols;
  size_t expert_bytes;
  unsigned char *bytes;
  const void **ptrs;
} experts;

static experts make_experts(int32_t type, int32_t n_expert, int32_t rows, int32_t cols) {
  experts x = {type, rows, cols, 0, NULL, NULL};
  const size_t row_bytes =
      (size_t)(cols / spool_type_block_size(type)) * (size_t)spool_type_block_bytes(type);
  x.expert_bytes = row_bytes * (size_t)rows;
  float *f = rnd_vec((size_t)n_expert * rows * cols, 1.0f / sqrtf((float)cols));
  x.bytes = (unsigned char *)malloc(x.expert_bytes * (size_t)n_expert);
  spool_set_impl(SPOOL_IMPL_REF);
  spool_quantize(NULL, type, f, x.bytes, n_expert * rows, cols);
  free(f);
  x.ptrs = (const void **)malloc(sizeof(void *) * (size_t)n_expert);
  for (int32_t e = 0; e < n_expert; e++) x.ptrs[e] = x.bytes + (size_t)e * x.expert_bytes;
  return x;
}

static int32_t act_for(int32_t type) {
  return type == SPOOL_TYPE_F32 || type == SPOOL_TYPE_F16 || type == SPOOL_TYPE_BF16
             ? SPOOL_ACT_F32 : SPOOL_ACT_Q8;
}

static void mm(spool_pool *pool, const experts *w, int32_t e, const float *x, int32_t n, float *y) {
  const double need = spool_matmul_scratch_bytes(w->type, w->cols, n, SPOOL_ACT_Q8);
  void *scratch = malloc(need > 64 ? (size_t)need : 64);
  if (spool_matmul(pool, w->type, w->ptrs[e], w->rows, w->cols, x, n, y, act_for(w->type),
                   scratch) != SPOOL_OK) {
    printf("FAIL spool_matmul\n");
    exit(2);
  }
  free(scratch);
}

/* the composition spool_moe_ffn replaces (the engine's former JS path) */
static void composed(spool_pool *pool, int32_t n_tok, int32_t E, int32_t ff, int32_t n_expert,
                     int32_t k, const float *x, const int32_t *ids, const float *wts,
                     const experts *gate, const experts *up, const experts *down,
                     const float *gb, const float *ub, const float *db, int32_t act, float *y) {
  const int32_t P = n_tok * k;
  float *so = (float *)malloc(sizeof(float) * (size_t)P * E);
  float *eh = (float *)malloc(sizeof(float) * (size_t)P * E);
  float *g = (float *)malloc(sizeof(float) * (size_t)P * ff);
  float *u = (float *)malloc(sizeof(float) * (size_t)P * ff);
  float *d = (float *)malloc(sizeof(float) * (size_t)P * E);
  int32_t *slots = (int32_t *)malloc(sizeof(int32_t) * (size_t)P);
  for (int32_t e = 0; e < n_expert; e++) {
    int32_t n = 0;
    for (int32_t s = 0; s < P; s++) if (ids[s] == e) slots[n++] = s;
    if (!n) continue;
    for (int32_t r = 0; r < n; r++) memcpy(eh + (size_t)r * E, x + (size_t)(slots[r] / k) * E, sizeof(float) * E);
    mm(pool, gate, e, eh, n, g);
    mm(pool, up, e, eh, n, u);
    const float *gbe = gb ? gb + (size_t)e * ff : NULL, *ube = ub ? ub + (size_t)e * ff : NULL;
    if (act == SPOOL_ACT_SWIGLU) {
      for (int32_t r = 0; r < n; r++) {
        for (int32_t i = 0; i < ff; i++) {
          if (gbe) g[(size_t)r * ff + i] += gbe[i];
          if (ube) u[(size_t)r * ff + i] += ube[i];
        }
      }
      spool_swiglu(g, u, g, n * ff);
    } else {
      for (int32_t r = 0; r < n; r++) {
        for (int32_t i = 0; i < ff; i++) {
          const size_t o = (size_t)r * ff + i;
          float xv = gbe ? g[o] + gbe[i] : g[o];
          float yv = ube ? u[o] + ube[i] : u[o];
          xv = xv > 7.0f ? 7.0f : xv;
          yv = yv > 7.0f ? 7.0f : yv;
          yv = yv < -7.0f ? -7.0f : yv;
          const float ex = (float)exp((double)(1.702f * -xv));
          const float glu = xv / (1.0f + ex);
          g[o] = glu * (yv + 1.0f);
        }
      }
    }
    mm(pool, down, e, g, n, d);
    const float *dbe = db ? db + (size_t)e * E : NULL;
    for (int32_t r = 0; r < n; r++) {
      const float w = wts[slots[r]];
      for (int32_t i = 0; i < E; i++) {
        float v = d[(size_t)r * E + i];
        if (dbe) v = v + dbe[i];
        so[(size_t)slots[r] * E + i] = v * w;
      }
    }
  }
  for (int32_t t = 0; t < n_tok; t++) {
    for (int32_t i = 0; i < E; i++) {
      float acc = so[(size_t)t * k * E + i];
      for (int32_t j = 1; j < k; j++) acc = acc + so[((size_t)t * k + j) * E + i];
      y[(size_t)t * E + i] = acc;
    }
  }
  free(so);
  free(eh);
  free(g);
  free(u);
  free(d);
  free(slots);
}

typedef struct { const char *name; int32_t gate, up, down, E, ff; } spec;

int main(void) {
  spool_set_impl(SPOOL_IMPL_AUTO);
  const int32_t simd = spool_get_impl();
  printf("# moe_parity: SIMD impl %d (1 = REF only, 2 = AVX2, 3 = NEON), cpu features 0x%x\n",
         simd, spool_cpu_features());
  spool_pool *pool = spool_pool_create(2);
  const spec SPECS[] = {
      {"Q4_K/Q4_K/Q6_K", SPOOL_TYPE_Q4_K, SPOOL_TYPE_Q4_K, SPOOL_TYPE_Q6_K, 256, 512},
      {"Q8_0", SPOOL_TYPE_Q8_0, SPOOL_TYPE_Q8_0, SPOOL_TYPE_Q8_0, 256, 96},
      {"MXFP4", SPOOL_TYPE_MXFP4, SPOOL_TYPE_MXFP4, SPOOL_TYPE_MXFP4, 128, 160},
      {"F32", SPOOL_TYPE_F32, SPOOL_TYPE_F32, SPOOL_TYPE_F32, 64, 44},
  };
  const int32_t SHAPES[][3] = {{1, 8, 16}, {1, 1, 4}, {9, 2, 5}, {9, 8, 12}}; /* n_tok k n_expert */
  char what[160];
  for (size_t si = 0; si < sizeof SPECS / sizeof SPECS[0]; si++) {
    const spec *sp = &SPECS[si];
    for (size_t hi = 0; hi < sizeof SHAPES / sizeof SHAPES[0]; hi++) {
      const int32_t n_tok = SHAPES[hi][0], k = SHAPES[hi][1], n_expert = SHAPES[hi][2];
      const int32_t E = sp->E, ff = sp->ff, P = n_tok * k;
      experts gate = make_experts(sp->gate, n_expert, ff, E);
      experts up = make_experts(sp->up, n_expert, ff, E);
      experts down = make_experts(sp->down, n_expert, E, ff);
      float *x = rnd_vec((size_t)n_tok * E, 1.0f);
      int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)P);
      float *wts = (float *)malloc(sizeof(float) * (size_t)P);
      for (int32_t t = 0; t < n_tok; t++) { /* k distinct experts per token */
        for (int32_t j = 0; j < k; j++) {
          int32_t e, dupl;
          do {
            e = (int32_t)(rnd_u32() % (uint32_t)n_expert);
            dupl = 0;
            for (int32_t i = 0; i < j; i++) dupl |= ids[t * k + i] == e;
          } while (dupl);
          ids[t * k + j] = e;
          wts[t * k + j] = 0.05f + (float)(rnd_u32() % 1000) / 1000.0f;
        }
      }
      float *gb = rnd_vec((size_t)n_expert * ff, 0.5f), *ub = rnd_vec((size_t)n_expert * ff, 0.5f);
      float *db = rnd_vec((size_t)n_expert * E, 0.5f);
      const double need = spool_moe_scratch_bytes(sp->gate, sp->up, sp->down, E, ff, n_expert, n_tok, k);
      void *scratch = malloc((size_t)need);
      float *want = (float *)malloc(sizeof(float) * (size_t)n_tok * E);
      float *got = (float *)malloc(sizeof(float) * (size_t)n_tok * E);
      float *ref = (float *)malloc(sizeof(float) * (size_t)n_tok * E);
      for (int32_t act = SPOOL_ACT_SWIGLU; act <= SPOOL_ACT_SWIGLU_OAI; act++) {
        for (int bias = 0; bias <= 1; bias++) {
          const float *g_b = bias ? gb : NULL, *u_b = bias ? ub : NULL, *d_b = bias ? db : NULL;
          const int32_t impls[2] = {SPOOL_IMPL_REF, simd};
          for (int ii = 0; ii < (simd == SPOOL_IMPL_REF ? 1 : 2); ii++) {
            spool_set_impl(impls[ii]);
            composed(pool, n_tok, E, ff, n_expert, k, x, ids, wts, &gate, &up, &down, g_b, u_b,
                     d_b, act, want);
            for (int use_pool = 0; use_pool <= 1; use_pool++) {
              memset(got, 0xff, sizeof(float) * (size_t)n_tok * E);
              const spool_status st = spool_moe_ffn(
                  use_pool ? pool : NULL, x, n_tok, E, ff, n_expert, k, ids, wts, gate.ptrs,
                  sp->gate, up.ptrs, sp->up, down.ptrs, sp->down, g_b, u_b, d_b, act, got, scratch);
              snprintf(what, sizeof what, "%s n_tok=%d k=%d %s bias=%d impl=%d pool=%d", sp->name,
                       n_tok, k, act == SPOOL_ACT_SWIGLU ? "swiglu" : "oai", bias, impls[ii],
                       use_pool);
              const int same = st == SPOOL_OK &&
                               memcmp(got, want, sizeof(float) * (size_t)n_tok * E) == 0;
              report(what, same ? 0.0 : (st ? 1.0 : nmse(got, want, (size_t)n_tok * E) + 1e-300), 0.0);
              /* BEGIN with some experts absent (as if still being read), then FINISH: the
               * same bits as one call, for each residency pattern */
              for (int pat = 0; pat < 3; pat++) {
                const void **gp = (const void **)malloc(sizeof(void *) * (size_t)n_expert);
                const void **upp = (const void **)malloc(sizeof(void *) * (size_t)n_expert);
                const void **dp = (const void **)malloc(sizeof(void *) * (size_t)n_expert);
                for (int32_t e = 0; e < n_expert; e++) {
                  /* pattern 0: every other expert absent; 1: all absent; 2: only down absent
                   * for a third of them */
                  const int absent = pat == 0 ? e % 2 : pat == 1 ? 1 : 0;
                  gp[e] = absent ? NULL : gate.ptrs[e];
                  upp[e] = absent ? NULL : up.ptrs[e];
                  dp[e] = absent || (pat == 2 && e % 3 == 0) ? NULL : down.ptrs[e];
                }
                memset(got, 0xff, sizeof(float) * (size_t)n_tok * E);
                spool_status s1 = spool_moe_ffn_phase(
                    use_pool ? pool : NULL, x, n_tok, E, ff, n_expert, k, ids, wts, gp,
                    sp->gate, upp, sp->up, dp, sp->down, g_b, u_b, d_b, act, got, scratch,
                    SPOOL_MOE_BEGIN);
                spool_status s2 = s1 ? s1 : spool_moe_ffn_phase(
                    use_pool ? pool : NULL, x, n_tok, E, ff, n_expert, k, ids, wts, gate.ptrs,
                    sp->gate, up.ptrs, sp->up, down.ptrs, sp->down, g_b, u_b, d_b, act, got,
                    scratch, SPOOL_MOE_FINISH);
                snprintf(what, sizeof what, "%s n_tok=%d k=%d act=%d bias=%d impl=%d pool=%d "
                         "BEGIN+FINISH pattern %d", sp->name, n_tok, k, act, bias, impls[ii],
                         use_pool, pat);
                const int same2 = s2 == SPOOL_OK &&
                                  memcmp(got, want, sizeof(float) * (size_t)n_tok * E) == 0;
                report(what, same2 ? 0.0 : (s2 ? 1.0 : nmse(got, want, (size_t)n_tok * E) + 1e-300),
                       0.0);
                /* a second FINISH has no BEGIN before it */
                const spool_status s3 = spool_moe_ffn_phase(
                    use_pool ? pool : NULL, x, n_tok, E, ff, n_expert, k, ids, wts, gate.ptrs,
                    sp->gate, up.ptrs, sp->up, down.ptrs, sp->down, g_b, u_b, d_b, act, got,
                    scratch, SPOOL_MOE_FINISH);
                snprintf(what, sizeof what, "%s FINISH without BEGIN is SPOOL_E_INVALID",
                         sp->name);
                report(what, s3 == SPOOL_E_INVALID ? 0.0 : 1.0, 0.0);
                free(gp); free(upp); free(dp);
              }
            }
            if (impls[ii] == SPOOL_IMPL_REF) memcpy(ref, got, sizeof(float) * (size_t)n_tok * E);
          }
          if (simd != SPOOL_IMPL_REF) {
            snprintf(what, sizeof what, "%s n_tok=%d k=%d act=%d bias=%d SIMD vs REF", sp->name,
                     n_tok, k, act, bias);
            report(what, nmse(got, ref, (size_t)n_tok * E), 1e-6);
          }
        }
      }
      spool_set_impl(SPOOL_IMPL_AUTO);
      free(gate.bytes); free(gate.ptrs); free(up.bytes); free(up.ptrs);
      free(down.bytes); free(down.ptrs);
      free(x); free(ids); free(wts); free(gb); free(ub); free(db);
      free(scratch); free(want); free(got); free(ref);
    }
  }
  spool_pool_destroy(pool);
  printf("%s: %d failure(s)\n", failures ? "FAIL" : "ok", failures);
  return failures ? 1 : 0;
}
