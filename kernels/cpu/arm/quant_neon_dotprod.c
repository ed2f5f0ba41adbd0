/*
 * quant_neon_dotprod.c — the integer dot kernels of quant_neon.c built for CPUs with the
 * armv8.2-a dot-product extension. build.ts compiles this one file with
 * -march=armv8.2-a+dotprod (everything else targets baseline armv8-a); with
 * SPOOL_NEON_DOTPROD set, quant_neon.c contributes only its Q4_0/Q8_0/MXFP4/Q4_K/Q5_K/Q6_K
 * dots, accumulating with SDOT (vdotq_s32) and named spool_neondp_*. quant.c selects them
 * only when spool_cpu_features() reports SPOOL_CPU_DOTPROD (Linux: AT_HWCAP & HWCAP_ASIMDDP;
 * macOS: hw.optional.arm.FEAT_DotProd), so no SDOT ever runs on a core without it.
 */
#define SPOOL_NEON_DOTPROD 1
#include "quant_neon.c"
