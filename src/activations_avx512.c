/*
 * AVX-512 forms of the activation quantizer's loops (src/activations.c), for
 * the per-column cost of small layers at large batch. Each lane performs the
 * scalar code's operations in the same order, so q, the scale and the flags
 * are identical bit for bit (tests/test_activations.c compares both forms):
 *  - max|x|: VMAXPS(|x|, m) returns m when |x| is NaN, as the scalar
 *    `a > amax ? a : amax` does; max is exact, so the lane order is free;
 *  - q = rint((x * pre) * inv) under round-half-even (VRNDSCALEPS with
 *    imm 0 is rint for every float), 0 where x == 0, clamped by compares
 *    (a NaN stays NaN as in the scalar ternaries) and truncated to int32
 *    (VCVTTPS2DQ, the scalar cast's CVTTSS2SI: 0x80000000 for NaN).
 * Built with AVX-512 flags only on x86-64; src/activations.c calls it where
 * bp__cpu_has_avx512bw() says the CPU and OS run it.
 */
#include "bp_activations.h"

#include <immintrin.h>

static __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

void bp__act_scan_avx512(const float *x, size_t cols, float *amax, bool *nonneg) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
    const __m512 zero = _mm512_setzero_ps();
    __m512 m = zero;
    bool all_nonneg = true;
    for (size_t j = 0; j < cols; j += 16) {
        const __mmask16 k = tail_mask(cols - j);
        const __m512 v = _mm512_maskz_loadu_ps(k, x + j);
        const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
        m = _mm512_max_ps(a, m);
        all_nonneg &= _mm512_mask_cmp_ps_mask(k, v, zero, _CMP_GE_OQ) == k;
    }
    *amax = _mm512_reduce_max_ps(m);
    *nonneg = all_nonneg;
}

void bp__act_round_avx512(const float *x, size_t cols, float pre, float inv, float L, float lo,
                          int32_t *q) {
    const __m512 vpre = _mm512_set1_ps(pre), vinv = _mm512_set1_ps(inv);
    const __m512 vL = _mm512_set1_ps(L), vlo = _mm512_set1_ps(lo);
    const __m512 zero = _mm512_setzero_ps();
    for (size_t j = 0; j < cols; j += 16) {
        const __mmask16 k = tail_mask(cols - j);
        const __m512 v = _mm512_maskz_loadu_ps(k, x + j);
        const __m512 prod = _mm512_mul_ps(_mm512_mul_ps(v, vpre), vinv);
        __m512 r = _mm512_roundscale_ps(prod, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(v, zero, _CMP_EQ_OQ), zero);
        const __mmask16 above = _mm512_cmp_ps_mask(r, vL, _CMP_GT_OQ);
        const __mmask16 below = _mm512_cmp_ps_mask(r, vlo, _CMP_LT_OQ);
        r = _mm512_mask_mov_ps(_mm512_mask_mov_ps(r, below, vlo), above, vL);
        _mm512_mask_storeu_epi32(q + j, k, _mm512_cvttps_epi32(r));
    }
}

void bp__act_word_sums_avx512(const int32_t *q, size_t kwords, int32_t *base) {
    for (size_t w = 0; w < kwords; w++) {
        const __m512i s =
            _mm512_add_epi32(_mm512_loadu_si512(q + 32 * w), _mm512_loadu_si512(q + 32 * w + 16));
        base[w] = _mm512_reduce_add_epi32(s);
    }
}
