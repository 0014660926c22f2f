/*
 * The portable popcount kernel: the same AND-popcount identity as the SIMD
 * kernels (see kernel_popcount_prepare.c), in plain C, so every CPU gets a
 * word-level path and the bit-by-bit reference stays the test oracle only.
 * The 16 row counters of a 64-byte line are independent, so compilers can
 * vectorize the row loop where the target has a vector popcount (AArch64
 * CNT, for example).
 */
#include "bp_internal.h"

static bool portable_runnable(void) {
    return true;
}

static bool portable_supports(int act_bits, size_t kpad) {
    (void)kpad;
    return act_bits >= 1 && act_bits <= BP_MAX_ACT_BITS;
}

static void portable_group(const bp_matrix *m, const uint32_t *group, const bp_act_column *col,
                           int64_t *d) {
    const size_t kw = m->kwords;
    const int A = col->act_bits;
    int32_t cnt[BP_MAX_ACT_BITS][BP_ROW_GROUP] = {{0}};
    for (size_t w = 0; w < kw; w++) {
        const uint32_t *line = group + w * BP_ROW_GROUP;
        for (int b = 0; b < A; b++) {
            uint32_t a = col->bits[(size_t)b * kw + w];
            for (int r = 0; r < BP_ROW_GROUP; r++)
                cnt[b][r] += __builtin_popcount(A == 1 ? line[r] ^ a : line[r] & a);
        }
    }
    for (int r = 0; r < BP_ROW_GROUP; r++) {
        if (A == 1) {
            /* t.s = K - 2 popcount(t XOR s); padding is 0 in both operands. */
            d[r] = (int64_t)m->cols - 2 * (int64_t)cnt[0][r];
        } else {
            d[r] = bp__act_combine_counts(col, &cnt[0][r], BP_ROW_GROUP);
        }
    }
}

static void portable_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    for (size_t c = 0; c < call->ncols; c++) {
        const bp_act_column *col = call->cols[c];
        for (int p = 0; p < col->planes; p++) {
            const uint32_t *slab = bp__slab(m, p);
            for (size_t g = call->g0; g < call->g1; g++)
                portable_group(m, slab + g * m->kwords * BP_ROW_GROUP, col,
                               call->d + c * call->ld_col + (size_t)p * call->ld_plane +
                                   (g - call->g0) * BP_ROW_GROUP);
        }
    }
}

const bp_cpu_kernel_desc bp__kernel_portable = {
    .name = "portable",
    .runnable = portable_runnable,
    .supports = portable_supports,
    .column_bytes = bp__popcount_column_bytes,
    .prepare = bp__popcount_prepare,
    .compute = portable_compute,
};
