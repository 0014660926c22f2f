/*
 * The portable popcount kernel: the same AND-popcount identity as the SIMD
 * kernels (see kernel_popcount_prepare.c), in plain C, so every CPU gets a
 * word-level path and the bit-by-bit reference stays the test oracle only.
 * The 16 row counters of a 64-byte line are independent, so compilers can
 * vectorize the row loop where the target has a vector popcount (AArch64
 * CNT, for example).
 */
#include "cpu_kernel.h"

static bool portable_runnable(void) {
    return true;
}

static bool portable_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)kpad;
    (void)mult_bound; /* counts stay int32: grouped matrices keep K <= BP_GROUP_MAX_K */
    return act_bits >= 1 && act_bits <= BP_MAX_ACT_BITS;
}

/* D_p of one row group and plane for one column, group by group: the counts
 * of a group give sum_{j in g} t q per row, which is weighted by the row's
 * multiplier (docs/numerics.md). */
static void portable_group(const bp_matrix *m, size_t rg, const uint32_t *group,
                           const bp_act_column *col, int64_t *d) {
    const size_t kw = m->kwords, gw = m->group_words;
    const int A = col->act_bits;
    const bool grouped = bp__grouped(m);
    for (int r = 0; r < BP_ROW_GROUP; r++)
        d[r] = 0;
    for (size_t g = 0, w0 = 0; w0 < kw; g++, w0 += gw) {
        size_t w1 = w0 + gw < kw ? w0 + gw : kw;
        int32_t cnt[BP_MAX_ACT_BITS][BP_ROW_GROUP] = {{0}};
        int64_t base = 0; /* sum of q (binary: valid columns) over the group */
        for (size_t w = w0; w < w1; w++) {
            const uint32_t *line = group + w * BP_ROW_GROUP;
            base += col->word_base[w];
            for (int b = 0; b < A; b++) {
                uint32_t a = col->bits[(size_t)b * kw + w];
                for (int r = 0; r < BP_ROW_GROUP; r++)
                    cnt[b][r] += __builtin_popcount(A == 1 ? line[r] ^ a : line[r] & a);
            }
        }
        const uint8_t *mult = grouped ? bp__mult_tile(m, rg, g) : NULL;
        for (int r = 0; r < BP_ROW_GROUP; r++) {
            int64_t dg;
            if (A == 1) {
                /* t.s = V - 2 popcount(t XOR s); padding is 0 in both. */
                dg = base - 2 * (int64_t)cnt[0][r];
            } else {
                dg = -base;
                for (int b = 0; b < A; b++)
                    dg += 2 * bp__act_plane_weight(col, b) * cnt[b][r];
            }
            d[r] += mult ? mult[r] * dg : dg;
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
                portable_group(m, g, slab + g * m->kwords * BP_ROW_GROUP, col,
                               call->d + c * call->ld_col + (size_t)p * call->ld_plane +
                                   (g - call->g0) * BP_ROW_GROUP);
        }
    }
    bp__kernel_fold_code(call);
}

const bp_cpu_kernel_desc bp__kernel_portable = {
    .name = "portable",
    .runnable = portable_runnable,
    .supports = portable_supports,
    .column_bytes = bp__popcount_column_bytes,
    .prepare = bp__popcount_prepare,
    .compute = portable_compute,
};
