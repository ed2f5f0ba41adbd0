/*
 * dispatch.c — library identity, CPU feature detection and the run-time choice between
 * the scalar reference and the SIMD implementations. Ops read spool_impl_current; kernels
 * that exist in several builds (the arm64 SDOT dots) read spool_cpu_flags.
 * Features are read from the CPU, never assumed from compiler flags: x86 through cpuid and
 * xgetbv; arm64 always has NEON (armv8-a), and the dot-product extension is asked of the OS
 * (Linux: getauxval(AT_HWCAP) & HWCAP_ASIMDDP; macOS: sysctl hw.optional.arm.FEAT_DotProd).
 */
#include "internal.h"
#include <errno.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif
#if defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

int32_t spool_impl_current = SPOOL_IMPL_REF;
int32_t spool_cpu_flags = 0;
static _Thread_local int32_t last_errno_tls = 0;

void spool_set_errno(int32_t e) { last_errno_tls = e; }
SPOOL_API int32_t spool_last_errno(void) { return last_errno_tls; }

SPOOL_API int32_t spool_abi_version(void) { return SPOOL_ABI_VERSION; }

SPOOL_API int32_t spool_cpu_features(void) {
  int32_t f = 0;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    if (c & bit_FMA) f |= SPOOL_CPU_FMA;
    if (c & bit_F16C) f |= SPOOL_CPU_F16C;
    int osxsave = (c & bit_OSXSAVE) != 0;
    if (osxsave && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      if ((b & bit_AVX2) && (lo & 6) == 6) f |= SPOOL_CPU_AVX2;
    }
  }
#elif defined(__aarch64__)
  f |= SPOOL_CPU_NEON;
#if defined(__linux__)
  if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) f |= SPOOL_CPU_DOTPROD;
#elif defined(__APPLE__)
  int32_t dp = 0;
  size_t len = sizeof dp;
  if (sysctlbyname("hw.optional.arm.FEAT_DotProd", &dp, &len, NULL, 0) == 0 && dp) f |= SPOOL_CPU_DOTPROD;
#endif
#endif
  return f;
}

static int32_t best_impl(void) {
  int32_t f = spool_cpu_features();
#if defined(SPOOL_HAVE_AVX2)
  if ((f & SPOOL_CPU_AVX2) && (f & SPOOL_CPU_FMA) && (f & SPOOL_CPU_F16C)) return SPOOL_IMPL_AVX2;
#endif
#if defined(SPOOL_HAVE_NEON)
  if (f & SPOOL_CPU_NEON) return SPOOL_IMPL_NEON;
#endif
  (void)f;
  return SPOOL_IMPL_REF;
}

SPOOL_API spool_status spool_set_impl(int32_t impl) {
  if (impl == SPOOL_IMPL_AUTO) { spool_impl_current = best_impl(); return SPOOL_OK; }
  if (impl == SPOOL_IMPL_REF) { spool_impl_current = impl; return SPOOL_OK; }
  int32_t f = spool_cpu_features();
#if defined(SPOOL_HAVE_AVX2)
  if (impl == SPOOL_IMPL_AVX2 && (f & SPOOL_CPU_AVX2) && (f & SPOOL_CPU_FMA) && (f & SPOOL_CPU_F16C)) {
    spool_impl_current = impl; return SPOOL_OK;
  }
#endif
#if defined(SPOOL_HAVE_NEON)
  if (impl == SPOOL_IMPL_NEON && (f & SPOOL_CPU_NEON)) { spool_impl_current = impl; return SPOOL_OK; }
#endif
  (void)f;
  return SPOOL_E_RANGE;
}

SPOOL_API int32_t spool_get_impl(void) { return spool_impl_current; }

/* pick the best implementation when the library is loaded */
__attribute__((constructor)) static void spool_init(void) {
  spool_cpu_flags = spool_cpu_features();
  spool_impl_current = best_impl();
}
