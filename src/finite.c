/* bp__first_non_finite (bp_finite.h): the AVX-512 form
 * (src/finite_avx512.c) where the CPU runs it, else this loop. */
#include "bp_finite.h"
#include "bp_error.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The exponent field of a float: all ones for Inf and NaN. */
#define FLOAT_EXP_BITS 0x7f800000u
#define BLOCK          256

size_t bp__first_non_finite(const float *v, size_t n) {
#if defined(BP_ARCH_X86_64)
    if (bp__cpu_has_avx512bw())
        return bp__first_non_finite_avx512(v, n);
#endif
    return bp__first_non_finite_scalar(v, n);
}

bp_status bp__check_finite_column(const float *v, size_t n, size_t col, const char *name) {
    const size_t j = bp__first_non_finite(v, n);
    if (j == n)
        return BP_OK;
    return bp__fail(BP_ERR_NON_FINITE, "%s: column %zu, element %zu is %s", name, col, j,
                    isnan(v[j]) ? "NaN" : "Inf");
}

bp_status bp__check_finite_columns(const float *v, size_t count, size_t ld, size_t n,
                                   const char *name) {
    bp_status st = BP_OK;
    for (size_t i = 0; i < count && !st; i++)
        st = bp__check_finite_column(v + i * ld, n, i, name);
    return st;
}

size_t bp__first_non_finite_scalar(const float *v, size_t n) {
    /* Blocks tested on the bits without a branch per element, so the loop
     * vectorizes (an early-exit isfinite loop does not: it was 2-3 % of an
     * LSTM step at H 256 and 6.7 % of a 128 x 256 product at batch 360);
     * the element is located only in a block that has one. */
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t i1 = n - i0 < BLOCK ? n : i0 + BLOCK;
        /* An OR of all-ones compare masks (AND, compare, OR per vector on
         * SSE2); an unsigned maximum took about 10 SSE2 operations per 4
         * elements (no PMAXUD before SSE4.1): 13-15 % of a 10 x 128 or
         * 128 x 256 product at batch 360. */
        uint32_t any = 0;
        for (size_t i = i0; i < i1; i++) {
            uint32_t b;
            memcpy(&b, &v[i], sizeof b);
            any |= 0u - (uint32_t)((b & FLOAT_EXP_BITS) == FLOAT_EXP_BITS);
        }
        if (!any)
            continue;
        for (size_t i = i0; i < i1; i++)
            if (!isfinite(v[i]))
                return i;
    }
    return n;
}
