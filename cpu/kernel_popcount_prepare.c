/*
 * Activation bit planes for the popcount kernels. For act_bits >= 2, plane b
 * holds bit b of each q in two's complement (signed columns give plane a-1
 * the weight -2^(a-1)), so q = sum_b w_b a_b and
 *   t . q = sum_b w_b (2 popcount(t & a_b) - popcount(a_b)).
 * For act_bits == 1 there is one plane of sign bits (1 = +1) and kernels use
 *   t . s = K - 2 popcount(t XOR s).
 * Padding columns stay 0 in every plane, so they add nothing in either form.
 */
#include "cpu_kernel.h"

#include <string.h>

size_t bp__popcount_column_bytes(int act_bits, size_t kpad) {
    return (size_t)act_bits * (kpad / 32) * sizeof(uint32_t);
}

void bp__popcount_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    const size_t kwords = kpad / 32;
    const int nb = col->act_bits;
    uint32_t *bits = scratch;
    memset(bits, 0, (size_t)nb * kwords * sizeof *bits);
    memset(col->plane_popcount, 0, sizeof col->plane_popcount);
    for (size_t w = 0; w < kwords; w++) {
        const int32_t *q = col->q + w * 32;
        for (int b = 0; b < nb; b++) {
            uint32_t word = 0;
            for (int j = 0; j < 32; j++) {
                /* Binary: +1 -> 1, -1 -> 0, padding 0 -> 0. */
                uint32_t bit = nb == 1 ? (uint32_t)(q[j] > 0) : ((uint32_t)q[j] >> b) & 1u;
                word |= bit << j;
            }
            bits[(size_t)b * kwords + w] = word;
            col->plane_popcount[b] += __builtin_popcount(word);
        }
    }
    col->bits = bits;
}

void bp__kernel_fold_code(const bp_kernel_call *call) {
    if (call->m->method != BP_QUANT_UNIFORM)
        return;
    size_t r0 = call->g0 * BP_ROW_GROUP;
    size_t r1 = call->g1 * BP_ROW_GROUP < call->m->rows ? call->g1 * BP_ROW_GROUP : call->m->rows;
    for (size_t c = 0; c < call->ncols; c++) {
        int64_t *d = call->d + c * call->ld_col;
        const int n = call->cols[c]->planes;
        /* Horner in plane order, plane slot 0 holding the running value: exact,
         * |D_u| < 2^63 (docs/numerics.md). Planes outer, rows inner, so the row
         * loop is contiguous and vectorizes. */
        for (int p = 1; p < n; p++) {
            const int64_t *dp = d + (size_t)p * call->ld_plane;
            for (size_t r = 0; r < r1 - r0; r++)
                d[r] = 2 * d[r] + dp[r];
        }
    }
}
