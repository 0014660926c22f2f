/*
 * The portable reference kernel and the ground truth for the kernel output
 * (docs/numerics.md). It works straight from the definition, without the
 * popcount identity or any per-plane split for uniform matrices:
 *   uniform:  D_u = sum_j m[row][group(j)] * u_n[row][j] * q[j], where
 *             u_n = sum_{p<n} 2^(n-1-p) t_p is the odd n-digit code;
 *   residual: D_p = sum_j m[row][group(j)] * t_p[row][j] * q[j];
 * with t = +-1 the plane digits. The fast kernels are checked against this
 * independent formulation.
 */
#include "cpu_kernel.h"

static bool reference_runnable(void) {
    return true;
}

static bool reference_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)act_bits;
    (void)kpad;
    (void)mult_bound;
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

/* sum_j m(j) * digit(j) * q[j], digit(j) = sum_{p in [p0, p1)} 2^(p1-1-p) t_p. */
static int64_t row_dot(const bp_matrix *m, int p0, int p1, size_t row, const int32_t *q) {
    int64_t d = 0;
    for (size_t j = 0; j < m->cols; j++) {
        int64_t digit = 0;
        for (int p = p0; p < p1; p++)
            digit = 2 * digit + (bp__plane_bit(m, p, row, j) ? 1 : -1);
        d += (int64_t)bp__mult(m, row, j / 32 / m->group_words) * digit * (int64_t)q[j];
    }
    return d;
}

static void reference_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    size_t r0 = call->g0 * BP_ROW_GROUP;
    size_t r1 = call->g1 * BP_ROW_GROUP < m->rows ? call->g1 * BP_ROW_GROUP : m->rows;
    for (size_t c = 0; c < call->ncols; c++) {
        const bp_act_column *col = call->cols[c];
        int64_t *dc = call->d + c * call->ld_col;
        if (m->method == BP_QUANT_UNIFORM) {
            for (size_t r = r0; r < r1; r++)
                dc[r - r0] = row_dot(m, 0, col->planes, r, col->q);
            continue;
        }
        for (int p = 0; p < col->planes; p++) {
            int64_t *d = dc + (size_t)p * call->ld_plane;
            for (size_t r = r0; r < r1; r++)
                d[r - r0] = row_dot(m, p, p + 1, r, col->q);
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
