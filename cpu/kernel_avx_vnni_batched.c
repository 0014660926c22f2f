/*
 * AVX-VNNI batched code kernel (the shared body and its proofs are in
 * cpu/kernel_avx2_codes.h): 8-bit codes and VEX VPDPBUSD on YMM, which adds
 * the four u8 x s8 products of each dword into the row's int32 lane without
 * saturation, so a uniform code takes up to 8 planes per pass.
 */
#include "cpu_kernel.h"

#include <immintrin.h>

#define AC_BITS       8
#define AC_NAME       "avx-vnni-batched"
#define AC_DESC       bp__kernel_avx_vnni_batched
#define AC_SHORT_BITS 8
#define AC_CG         4

static bool ac_runnable(void) {
    const bp_cpu_features *f = bp__cpu_features();
    return f->avx2 && f->avx_vnni;
}

static inline __attribute__((always_inline)) __m256i ac_dot(__m256i acc, __m256i u, __m256i q) {
    return _mm256_dpbusd_avx_epi32(acc, u, q);
}

#include "kernel_avx2_codes.h"
