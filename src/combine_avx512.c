/*
 * AVX-512 form of the uniform combine for contiguous alpha (src/combine.c),
 * for small layers at large batch, where the combine is as much work per
 * output as the kernel (256 x 64 at batch 360: a third of the product in the
 * SSE2 loop). Each lane performs the scalar code's operations in the same
 * order, so y and the flags are identical bit for bit
 * (tests/test_activations.c compares them):
 *  - (float)D by VCVTQQ2PS (AVX-512DQ): one rounding of the int64, to
 *    nearest even, as the scalar conversion, for every D (the SSE2 loop's
 *    exact-double trick needs |D| < 2^51 and a second pass otherwise);
 *  - alpha * (f * s), then + bias: VMULPS, VMULPS, VADDPS;
 *  - the ReLU, when asked, as VMAXPS(v, +0), which gives +0 for -0 and
 *    NaN as bp__relu does; the finiteness flag is taken before it.
 * Built with AVX-512F/DQ flags only on x86-64, called where
 * bp__cpu_has_avx512dq() says the CPU and OS run it.
 */
#include "bp_activations.h"

#include <immintrin.h>

static __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

bool bp__combine_uniform_rows_avx512(const float *alpha, const int64_t *d, float s,
                                     const float *bias, bool relu, float *y, size_t rows) {
    const __m512 sv = _mm512_set1_ps(s);
    const __m512i exp_bits = _mm512_set1_epi32(0x7f800000);
    __mmask16 bad = 0;
    for (size_t r = 0; r < rows; r += 16) {
        const __mmask16 k = tail_mask(rows - r);
        const __m256 f0 = _mm512_cvtepi64_ps(_mm512_maskz_loadu_epi64((__mmask8)k, d + r));
        const __m256 f1 =
            _mm512_cvtepi64_ps(_mm512_maskz_loadu_epi64((__mmask8)(k >> 8), d + r + 8));
        const __m512 f = _mm512_castpd_ps(_mm512_insertf64x4(
            _mm512_castpd256_pd512(_mm256_castps_pd(f0)), _mm256_castps_pd(f1), 1));
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, alpha + r), _mm512_mul_ps(f, sv));
        if (bias)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + r));
        bad |= _mm512_mask_cmpeq_epi32_mask(k, _mm512_and_si512(_mm512_castps_si512(v), exp_bits),
                                            exp_bits);
        if (relu)
            v = _mm512_max_ps(v, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + r, k, v);
    }
    return bad == 0;
}
