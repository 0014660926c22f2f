/*
 * The exact combine, shared by every CPU path (the uniform one is inline in
 * bp_activations.h). Compiled, like the whole
 * library, with -ffp-contract=off: fmaf is the only fused operation.
 */
#include "bp_activations.h"

#include <math.h>
#include <string.h>

float bp__combine(const float *c, const int64_t *d, size_t stride, int n, float s) {
    /* (float)D_p * s_x first, as for uniform matrices: huge coefficients
     * cannot overflow an intermediate while y is finite. */
    float acc = 0.0f;
    for (int p = 0; p < n; p++)
        acc = fmaf(c[p], (float)d[(size_t)p * stride] * s, acc);
    return acc;
}

/* (float)d through an exact double, for |d| < 2^51: adding d to the bits of
 * 1.5 * 2^52 gives the double 1.5 * 2^52 + d, and subtracting 1.5 * 2^52 is
 * exact, so the conversion to float rounds d once, as (float)d does. Unlike
 * the int64 -> float conversion (scalar below AVX-512DQ), every step
 * vectorizes on baseline x86-64 (SSE2) and AArch64. */
static inline float small_i64_to_float(int64_t d) {
    uint64_t u = (uint64_t)d + 0x4338000000000000u;
    double f;
    memcpy(&f, &u, sizeof f);
    return (float)(f - 0x1.8p52);
}

/* Bit pattern test, so the flag accumulates without a branch. */
static inline uint32_t not_finite(float v) {
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return (b & 0x7f800000u) == 0x7f800000u;
}

static inline __attribute__((always_inline)) bool
combine_uniform_rows(const float *alpha, size_t stride, const int64_t *d, float s,
                     const float *bias, bool relu, float *y, size_t rows) {
    /* The fast conversion first, noting whether some |D| >= 2^51 (it does
     * not occur below K * 2^act_bits * 2^planes = 2^51); then, if one did,
     * the rows again with the plain conversion. Always inlined with bias
     * and relu as constants, so each loop is branch-free. */
    uint64_t big = 0;
    uint32_t bad = 0;
    for (size_t r = 0; r < rows; r++) {
        big |= ((uint64_t)d[r] + ((uint64_t)1 << 51)) >> 52;
        float v = alpha[r * stride] * (small_i64_to_float(d[r]) * s);
        v = bias ? v + bias[r] : v;
        bad |= not_finite(v);
        y[r] = relu ? bp__relu(v) : v;
    }
    if (big) {
        bad = 0;
        for (size_t r = 0; r < rows; r++) {
            float v = bp__combine_uniform(alpha[r * stride], d[r], s);
            v = bias ? v + bias[r] : v;
            bad |= not_finite(v);
            y[r] = relu ? bp__relu(v) : v;
        }
    }
    return !bad;
}

/* One inlined copy per (stride known, bias, relu): the loops above then
 * carry no branch. */
static inline __attribute__((always_inline)) bool
combine_uniform_rows_by(const float *alpha, size_t stride, const int64_t *d, float s,
                        const float *bias, bool relu, float *y, size_t rows) {
    if (bias)
        return relu ? combine_uniform_rows(alpha, stride, d, s, bias, true, y, rows)
                    : combine_uniform_rows(alpha, stride, d, s, bias, false, y, rows);
    return relu ? combine_uniform_rows(alpha, stride, d, s, NULL, true, y, rows)
                : combine_uniform_rows(alpha, stride, d, s, NULL, false, y, rows);
}

bool bp__combine_uniform_rows(const float *alpha, size_t stride, const int64_t *d, float s,
                              const float *bias, bool relu, float *y, size_t rows) {
    /* Contiguous alpha (stride 1): in AVX-512 where the CPU has it, else in
     * its own copy of the loops, which GCC vectorizes (not the strided ones);
     * the same operations per row, so the same bits. */
    if (stride == 1) {
#if defined(BP_ARCH_X86_64)
        if (bp__cpu_has_avx512dq())
            return bp__combine_uniform_rows_avx512(alpha, d, s, bias, relu, y, rows);
#endif
        return combine_uniform_rows_by(alpha, 1, d, s, bias, relu, y, rows);
    }
    return combine_uniform_rows_by(alpha, stride, d, s, bias, relu, y, rows);
}
