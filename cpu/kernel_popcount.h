/*
 * The popcount kernels' shared driver (portable, avx2, neon). They differ only
 * in how they count: each supplies a count function for lines [w0, w1) of a
 * row group, and this driver turns the counts of every multiplier group into
 * D_p (docs/numerics.md). Inline, so each kernel file compiles it with its
 * own ISA flags and the compiler calls its count function directly.
 */
#ifndef BP_KERNEL_POPCOUNT_H
#define BP_KERNEL_POPCOUNT_H

#include "cpu_kernel.h"

/* cnt[b][r] = popcount over lines [w0, w1) of row r AND activation plane b
 * (act_bits 1: XOR with the sign plane), for b < col->act_bits. */
typedef void (*bp_popcount_count_fn)(const uint32_t *group, size_t kw, size_t w0, size_t w1,
                                     const bp_act_column *col, int32_t (*cnt)[BP_ROW_GROUP]);

/* D_p of one row group for one column and one plane (16 int64), group by
 * group: each group's sum_{j in g} t q per row times the row's multiplier. */
static inline void bp__popcount_row_group(const bp_matrix *m, size_t rg, const uint32_t *group,
                                          const bp_act_column *col, int64_t *d,
                                          bp_popcount_count_fn count) {
    const size_t kw = m->kwords, gw = m->group_words;
    const int A = col->act_bits;
    const bool grouped = bp__grouped(m);
    for (int r = 0; r < BP_ROW_GROUP; r++)
        d[r] = 0;
    for (size_t g = 0, w0 = 0; w0 < kw; g++, w0 += gw) {
        size_t w1 = w0 + gw < kw ? w0 + gw : kw;
        int32_t cnt[BP_MAX_ACT_BITS][BP_ROW_GROUP];
        count(group, kw, w0, w1, col, cnt);
        int64_t base = 0; /* sum of q (binary: valid columns) over the group */
        for (size_t w = w0; w < w1; w++)
            base += col->word_base[w];
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

/* A whole kernel call: D_p for every column, plane and row group, then the
 * uniform fold into the code product. */
static inline void bp__popcount_compute(const bp_kernel_call *call, bp_popcount_count_fn count) {
    const bp_matrix *m = call->m;
    for (size_t c = 0; c < call->ncols; c++) {
        const bp_act_column *col = call->cols[c];
        for (int p = 0; p < col->planes; p++) {
            const uint32_t *slab = bp__slab(m, p);
            for (size_t g = call->g0; g < call->g1; g++)
                bp__popcount_row_group(m, g, slab + g * m->kwords * BP_ROW_GROUP, col,
                                       call->d + c * call->ld_col + (size_t)p * call->ld_plane +
                                           (g - call->g0) * BP_ROW_GROUP,
                                       count);
        }
    }
    bp__kernel_fold_code(call);
}

#endif /* BP_KERNEL_POPCOUNT_H */
