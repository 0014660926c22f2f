/*
 * AVX-512 form of the input rotation (src/rotation.c) for blocks of 16
 * columns and more. Every element goes through the scalar code's operations
 * in the same order (sign flip, one add or subtract per butterfly stage,
 * one multiply by 2^-l), so x' is identical bit for bit
 * (tests/test_activations.c compares both forms). Stages h >= 16 pair whole
 * vectors; stages h = 1..8 pair lanes j and j ^ h of one vector, with the
 * partner from a lane permutation: lanes with bit h clear take a + c (the
 * partner is c), lanes with it set take a - c (the partner is a). Built with
 * AVX-512 flags only on x86-64; src/rotation.c calls it where
 * bp__cpu_has_avx512bw() holds.
 */
#include "bp_rotation.h"

#include <immintrin.h>

void bp__rotate_signs_avx512(const uint32_t *signs, const float *x, size_t cols, float *out) {
    const __m512i sign_bit = _mm512_set1_epi32((int)0x80000000u);
    for (size_t j = 0; j < cols; j += 16) {
        const size_t left = cols - j;
        const __mmask16 k = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        const __mmask16 neg = (__mmask16)(signs[j / 32] >> (j % 32)) & k;
        const __m512i v = _mm512_castps_si512(_mm512_maskz_loadu_ps(k, x + j));
        _mm512_mask_storeu_ps(out + j, k,
                              _mm512_castsi512_ps(_mm512_mask_xor_epi32(v, neg, v, sign_bit)));
    }
}

/* One in-register stage h (1, 2, 4 or 8) on 16 consecutive elements. */
static __m512 lane_stage(__m512 u, __m512i partner_idx, __mmask16 high) {
    const __m512 p = _mm512_permutexvar_ps(partner_idx, u);
    /* high lanes: partner - u (a - c); low lanes: u + partner (a + c). */
    return _mm512_mask_sub_ps(_mm512_add_ps(u, p), high, p, u);
}

void bp__rotate_block_avx512(float *v, size_t b, float scale) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* Stages h = 1, 2, 4, 8 stay inside each 16-element chunk, so running
     * them chunk by chunk gives every element the scalar operations in the
     * scalar order; then h = 16, 32, ... over whole vectors. */
    for (size_t i = 0; i < b; i += 16) {
        __m512 u = _mm512_loadu_ps(v + i);
        for (int h = 1; h < 16; h *= 2) {
            const __m512i partner = _mm512_xor_si512(lane, _mm512_set1_epi32(h));
            const __mmask16 high = _mm512_test_epi32_mask(lane, _mm512_set1_epi32(h));
            u = lane_stage(u, partner, high);
        }
        _mm512_storeu_ps(v + i, u);
    }
    for (size_t h = 16; h < b; h *= 2)
        for (size_t i = 0; i < b; i += 2 * h)
            for (size_t j = i; j < i + h; j += 16) {
                const __m512 a = _mm512_loadu_ps(v + j), c = _mm512_loadu_ps(v + j + h);
                _mm512_storeu_ps(v + j, _mm512_add_ps(a, c));
                _mm512_storeu_ps(v + j + h, _mm512_sub_ps(a, c));
            }
    const __m512 s = _mm512_set1_ps(scale);
    for (size_t j = 0; j < b; j += 16)
        _mm512_storeu_ps(v + j, _mm512_mul_ps(_mm512_loadu_ps(v + j), s));
}
