/*
 * The portable reference kernel and the ground truth for D: it computes
 * D[row][p] = sum_j t_p[row][j] * q[j] straight from the definition, without
 * the popcount identity, so the fast kernels are checked against an
 * independent formulation.
 */
#include "bp_internal.h"

static bool reference_runnable(void) {
    return true;
}

static bool reference_supports(int act_bits, size_t kpad) {
    (void)act_bits;
    (void)kpad;
    return true;
}

static size_t reference_column_bytes(int act_bits, size_t kpad) {
    (void)act_bits;
    (void)kpad;
    return 0;
}

static void reference_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    (void)col;
    (void)kpad;
    (void)scratch;
}

static int64_t row_dot(const bp_matrix *m, const uint32_t *slab, size_t row, const int32_t *q) {
    int64_t d = 0;
    for (size_t j = 0; j < m->cols; j++) {
        uint32_t word = slab[bp__word_index(m, row, j / 32)];
        d += ((word >> (j % 32)) & 1u) ? (int64_t)q[j] : -(int64_t)q[j];
    }
    return d;
}

static void reference_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    size_t r0 = call->g0 * BP_ROW_GROUP;
    size_t r1 = call->g1 * BP_ROW_GROUP < m->rows ? call->g1 * BP_ROW_GROUP : m->rows;
    for (size_t c = 0; c < call->ncols; c++) {
        const bp_act_column *col = call->cols[c];
        for (int p = 0; p < col->planes; p++) {
            int64_t *d = call->d + c * call->ld_col + (size_t)p * call->ld_plane;
            for (size_t r = r0; r < r1; r++)
                d[r - r0] = row_dot(m, bp__slab(m, p), r, col->q);
        }
    }
}

const bp_cpu_kernel_desc bp__kernel_reference = {
    .name = "reference",
    .runnable = reference_runnable,
    .supports = reference_supports,
    .column_bytes = reference_column_bytes,
    .prepare = reference_prepare,
    .compute = reference_compute,
};
