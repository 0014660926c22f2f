/*
 * Plain AVX2 batched code kernel (the shared body and its proofs are in
 * cpu/kernel_avx2_codes.h): 7-bit codes, so VPMADDUBSW's int16 pair sums
 * never saturate (2 * 127 * 128 = 32512), then VPMADDWD against ones adds the
 * pairs into the row's int32 lane. Uniform codes of 8 planes run as 7 + 1;
 * tiles of at most 4 planes take 4-bit codes and sum a word's pairs in int16.
 */
#include "cpu_kernel.h"

#include <immintrin.h>

#define AC_BITS 7
#define AC_NAME "avx2-batched"
#define AC_DESC bp__kernel_avx2_batched
/* 3 columns: 6 accumulators, the codes, the activations, the ones and the
 * two products fit the 16 YMM registers (4 columns spilled accumulators). */
#define AC_C  3
#define AC_CG 3

static bool ac_runnable(void) {
    return bp__cpu_features()->avx2;
}

/* acc + u0 q0 + u1 q1 + u2 q2 + u3 q3 per dword, u < 128 (see above). The
 * empty asm pins the sum to acc: without it GCC 12 reassociates the
 * unrolled adds into a tree and spills the products (objdump: 141 stack
 * accesses in the 3-column tile, none with it). */
static inline __attribute__((always_inline)) __m256i ac_dot(__m256i acc, __m256i u, __m256i q) {
    const __m256i pairs = _mm256_maddubs_epi16(u, q);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    __asm__("" : "+x"(acc));
    return acc;
}

/* Tiles of at most 4 planes hold 4-bit codes, and a word's pair sums add up
 * in int16 before one VPMADDWD (see cpu/kernel_avx2_codes.h). */
#define AC_SHORT_BITS 4

static inline __attribute__((always_inline)) __m256i ac_pairs(__m256i acc16, __m256i u, __m256i q) {
    acc16 = _mm256_add_epi16(acc16, _mm256_maddubs_epi16(u, q));
    __asm__("" : "+x"(acc16));
    return acc16;
}

static inline __attribute__((always_inline)) __m256i ac_widen(__m256i acc, __m256i acc16) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(acc16, _mm256_set1_epi16(1)));
}

/* The grouped tiles' doubled form (see cpu/kernel_avx2_codes.h): VPMADDWD
 * against each row's 2m (f: both int16 halves of the row's dword) instead of
 * 1s weights the products by the row's multiplier at no cost, so the
 * accumulator sums 2 m S' over a K block with no per-segment VPMULLD. */
#define AC_GROUP_DOUBLED 1

static inline __attribute__((always_inline)) __m256i ac_dot2(__m256i acc, __m256i u, __m256i q,
                                                             __m256i f) {
    const __m256i pairs = _mm256_maddubs_epi16(u, q);
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, f));
    __asm__("" : "+x"(acc));
    return acc;
}

static inline __attribute__((always_inline)) __m256i ac_widen2(__m256i acc, __m256i acc16,
                                                               __m256i f) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(acc16, f));
}

#include "kernel_avx2_codes.h"
