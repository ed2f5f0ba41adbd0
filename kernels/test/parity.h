/*
 * parity.h — helpers shared by the standalone kernel parity programs in kernels/test/: a
 * seeded xorshift generator, normal samples, NMSE, and a pass/fail reporter. Define
 * PARITY_SEED before including to choose the stream.
 */
#ifndef SPOOL_PARITY_H
#define SPOOL_PARITY_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PARITY_SEED
#define PARITY_SEED 0x2545f4914f6cdd1dull
#endif

static int failures = 0;
static uint64_t rng_state = PARITY_SEED;

static uint32_t rnd_u32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

static float rnd_normal(void) {
  const double u = (rnd_u32() + 1.0) / 4294967297.0, v = rnd_u32() / 4294967296.0;
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* n normal samples × scale, malloc'ed */
static __attribute__((unused)) float *rnd_vec(size_t n, float scale) {
  float *a = (float *)malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) a[i] = rnd_normal() * scale;
  return a;
}

/* malloc'ed copy */
static __attribute__((unused)) float *dup(const float *a, size_t n) {
  float *b = (float *)malloc(n * sizeof(float));
  memcpy(b, a, n * sizeof(float));
  return b;
}

/* Σ(got−want)² / Σwant² (or the plain sum when want is all zero) */
static double nmse(const float *got, const float *want, size_t n) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double d = (double)got[i] - (double)want[i];
    num += d * d;
    den += (double)want[i] * (double)want[i];
  }
  return den > 0.0 ? num / den : num;
}

/* print one result; NaN fails */
static void report(const char *what, double err, double bound) {
  const int ok = err <= bound;
  printf("%-4s %-52s nmse %.2e (bound %.0e)\n", ok ? "ok" : "FAIL", what, err, bound);
  if (!ok) failures++;
}

#endif
