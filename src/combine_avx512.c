/*
 * AVX-512 form of the uniform combine for contiguous alpha (src/combine.c),
 * for small layers at large batch, where the combine is as much work per
 * output as the kernel (256 x 64 at batch 360: a third of the product in the
 * SSE2 loop). Each lane performs the scalar code's operations in the same
 * order, so y and the flags are identical bit for bit
 * (tests/test_activations.c compares them):
 *  - (float)D through an exact double, as small_i64_to_float: VPADDQ of the
 *    bits of 1.5 * 2^52, VSUBPD, VCVTPD2PS (one rounding, to nearest even);
 *    valid for |D| < 2^51, which the caller's plain path covers otherwise;
 *  - alpha * (f * s), then + bias: VMULPS, VMULPS, VADDPS.
 * AVX-512F only; built with AVX-512 flags only on x86-64, called where
 * bp__cpu_has_avx512bw() says the CPU and OS run it.
 */
#include "bp_activations.h"

#include <immintrin.h>

static __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* 8 int64 D (|D| < 2^51) to 8 floats, as small_i64_to_float. */
static __m256 small_i64x8_to_float(__m512i d) {
    const __m512i magic_bits = _mm512_set1_epi64(0x4338000000000000ll);
    const __m512d magic = _mm512_set1_pd(0x1.8p52);
    const __m512d f = _mm512_castsi512_pd(_mm512_add_epi64(d, magic_bits));
    return _mm512_cvtpd_ps(_mm512_sub_pd(f, magic));
}

bool bp__combine_uniform_rows_avx512(const float *alpha, const int64_t *d, float s,
                                     const float *bias, float *y, size_t rows, bool *finite) {
    const __m512 sv = _mm512_set1_ps(s);
    const __m512i exp_bits = _mm512_set1_epi32(0x7f800000);
    const __m512i bound = _mm512_set1_epi64((long long)1 << 51);
    __m512i big = _mm512_setzero_si512();
    __mmask16 bad = 0;
    for (size_t r = 0; r < rows; r += 16) {
        const __mmask16 k = tail_mask(rows - r);
        const __m512i d0 = _mm512_maskz_loadu_epi64((__mmask8)k, d + r);
        const __m512i d1 = _mm512_maskz_loadu_epi64((__mmask8)(k >> 8), d + r + 8);
        /* ((uint64_t)d + 2^51) >> 52 != 0 where |d| >= 2^51 (as the scalar
         * loop tests it). */
        big = _mm512_or_si512(big, _mm512_srli_epi64(_mm512_add_epi64(d0, bound), 52));
        big = _mm512_or_si512(big, _mm512_srli_epi64(_mm512_add_epi64(d1, bound), 52));
        const __m512 f = _mm512_castpd_ps(
            _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(small_i64x8_to_float(d0))),
                               _mm256_castps_pd(small_i64x8_to_float(d1)), 1));
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, alpha + r), _mm512_mul_ps(f, sv));
        if (bias)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + r));
        _mm512_mask_storeu_ps(y + r, k, v);
        bad |= _mm512_mask_cmpeq_epi32_mask(k, _mm512_and_si512(_mm512_castps_si512(v), exp_bits),
                                            exp_bits);
    }
    *finite = bad == 0;
    return _mm512_test_epi64_mask(big, big) == 0;
}
