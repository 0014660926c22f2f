/*
 * The popcount GEMM: one work-item per (row, column) accumulates every used
 * weight plane against every activation plane and applies the exact combine
 * of docs/numerics.md.
 *
 *   per group g of the row (one group when the matrix is per row):
 *     D_g[p] = sum_b w_b (2 popcount(t_p & a_b) - popcount(a_b)), w_b = +-2^b
 *     (act_bits 1: D_g[p] = valid_g - 2 popcount(t_p ^ s), the XNOR form)
 *   D[p] = sum_g m[row][g] D_g[p]
 *   uniform:  D_u = sum_p 2^(n-1-p) D[p] (Horner, exact);
 *             y = alpha * ((float)D_u * s_x), alpha = c[n][row][n-1]
 *   residual: acc = 0; for p: acc = fma(c[n][row][p], (float)D[p] * s_x, acc);
 *             y = acc
 *   y = y + bias[row]
 * With per-row plane counts (rowinfo, docs/row-planes.md) stored row r uses
 * n = min(n, count_r) planes and its output and bias are at perm[r].
 *
 * D is a 64-bit integer (|D| <= K 2^(a-1) exceeds int32 for large K at high
 * act_bits); the per-plane popcount sums fit int32 (<= K). The float of D is
 * round-to-nearest (convert_float_rte), like the C cast on the host.
 *
 * Weights keep the CPU layout (bp_abi.h): slab p, row group g = row/16,
 * word w of row r at slab[(g * kwords + w) * 16 + r % 16], so 16 neighbouring
 * work-items read one contiguous 64-byte line per word. Multipliers are
 * mult[((row / 16) * ngroups + g) * 16 + row % 16].
 * The activation width is a compile-time constant per kernel
 * (bp_gemm_popcount_a1 .. _a16) so the per-plane counters live in registers.
 */

/* D_g of one plane over words [w0, w1) of the row. */
static inline long bp_group_dot(__global const uint *restrict wp, __global const uint *restrict av,
                                uint kwords, uint cols, uint w0, uint w1, int grouped,
                                __global const int *restrict ci, int is_signed, const int A) {
    if (A == 1) {
        int cnt = 0;
        for (uint w = w0; w < w1; w++)
            cnt += (int)popcount(wp[(ulong)w * BP_ROW_GROUP] ^ av[w]);
        const long lo = min((long)cols, (long)w0 * 32), hi = min((long)cols, (long)w1 * 32);
        return (hi - lo) - 2 * (long)cnt;
    }
    int cnt[BP_MAX_ACT_BITS], pc[BP_MAX_ACT_BITS];
#pragma unroll
    for (int k = 0; k < A; k++)
        cnt[k] = pc[k] = 0;
    for (uint w = w0; w < w1; w++) {
        const uint wv = wp[(ulong)w * BP_ROW_GROUP];
#pragma unroll
        for (int k = 0; k < A; k++) {
            const uint a = av[(ulong)k * kwords + w];
            cnt[k] += (int)popcount(wv & a);
            if (grouped)
                pc[k] += (int)popcount(a);
        }
    }
    long d = 0;
#pragma unroll
    for (int k = 0; k < A; k++) {
        long wk = (long)1 << k;
        if (is_signed && k == A - 1)
            wk = -wk;
        d += wk * (2 * (long)cnt[k] - (long)(grouped ? pc[k] : ci[BP_CI_POPCOUNT + k]));
    }
    return d;
}

static inline void bp_gemm_body(__global const uint *restrict planes, ulong plane_words,
                                uint kwords, uint rows, uint cols, __global const float *restrict coef,
                                __global const uchar *restrict mult, uint group_words,
                                uint ngroups, int grouped, int uniform,
                                __global const uint *restrict act,
                                __global const int *restrict colinfo,
                                __global const int *restrict column_planes, ulong cp_off, int planes_n,
                                __global float *restrict y, ulong y_off, ulong ldy,
                                __global const float *restrict bias, ulong bias_off,
                                __global int *restrict status,
                                __global const uint *restrict rowinfo, const int A) {
    const uint row = get_global_id(0);
    const ulong col = get_global_id(1);
    if (row >= rows)
        return;
    /* Per-row plane counts: stored row `row` is the caller's row orow and
     * uses at most `cap` planes (0: no cap). */
    const uint orow = rowinfo ? rowinfo[2 * (ulong)row] : row;
    const int cap = rowinfo ? (int)rowinfo[2 * (ulong)row + 1] : 0;
    __global const int *ci = colinfo + col * BP_CI_STRIDE;
    const int flags = ci[BP_CI_FLAGS];
    const float b = bias ? bias[bias_off + orow] : 0.0f;
    if (bias && !isfinite(b))
        atomic_or(status, BP_ST_BIAS_NONFINITE);
    float out;
    if (flags & BP_CF_NONFINITE) {
        out = NAN;
    } else if (flags & BP_CF_ZERO) {
        out = b;
    } else {
        int n = planes_n;
        if (column_planes) {
            int cp = column_planes[cp_off + col];
            n = cp ? cp : n;
        }
        n = cap ? min(n, cap) : n;
        const float s = as_float(ci[BP_CI_SCALE]);
        const int is_signed = (flags & BP_CF_SIGNED) != 0;
        __global const uint *wrow =
            planes + (ulong)(row / BP_ROW_GROUP) * kwords * BP_ROW_GROUP + row % BP_ROW_GROUP;
        __global const uchar *mrow =
            mult + (ulong)(row / BP_ROW_GROUP) * ngroups * BP_ROW_GROUP + row % BP_ROW_GROUP;
        __global const uint *av = act + col * (ulong)A * kwords;
        __global const float *c = coef + (ulong)rows * (ulong)((n - 1) * n / 2) + (ulong)row * n;
        float acc = 0.0f;
        long du = 0;
        for (int p = 0; p < n; p++) {
            __global const uint *wp = wrow + (ulong)p * plane_words;
            long d = 0;
            for (uint g = 0; g < ngroups; g++) {
                const uint w0 = g * group_words, w1 = min(kwords, w0 + group_words);
                const long dg = bp_group_dot(wp, av, kwords, cols, w0, w1, grouped, ci, is_signed, A);
                d += grouped ? (long)mrow[(ulong)g * BP_ROW_GROUP] * dg : dg;
            }
            if (uniform)
                du = 2 * du + d;
            else
                acc = fma(c[p], convert_float_rte(d) * s, acc);
        }
        if (uniform) {
            const float prod = convert_float_rte(du) * s;
            out = c[n - 1] * prod;
        } else {
            out = acc;
        }
        if (bias)
            out = out + b;
        if (!isfinite(out) && isfinite(b))
            atomic_or(status, BP_ST_Y_OVERFLOW);
    }
    y[y_off + col * ldy + orow] = out;
}

#define BP_GEMM_KERNEL(A)                                                                          \
    __kernel void bp_gemm_popcount_a##A(                                                           \
        __global const uint *restrict planes, ulong plane_words, uint kwords, uint rows,           \
        uint cols, __global const float *restrict coef, __global const uchar *restrict mult,       \
        uint group_words, uint ngroups, int grouped, int uniform, __global const uint *restrict act, \
        __global const int *restrict colinfo, __global const int *restrict column_planes,          \
        ulong cp_off, int planes_n, __global float *restrict y, ulong y_off, ulong ldy,            \
        __global const float *restrict bias, ulong bias_off, __global int *restrict status,       \
        __global const uint *restrict rowinfo) {                                                   \
        bp_gemm_body(planes, plane_words, kwords, rows, cols, coef, mult, group_words, ngroups,    \
                     grouped, uniform, act, colinfo, column_planes,                                \
                     cp_off, planes_n, y, y_off, ldy, bias, bias_off, status, rowinfo, A);         \
    }

BP_GEMM_KERNEL(1)
BP_GEMM_KERNEL(2)
BP_GEMM_KERNEL(3)
BP_GEMM_KERNEL(4)
BP_GEMM_KERNEL(5)
BP_GEMM_KERNEL(6)
BP_GEMM_KERNEL(7)
BP_GEMM_KERNEL(8)
BP_GEMM_KERNEL(9)
BP_GEMM_KERNEL(10)
BP_GEMM_KERNEL(11)
BP_GEMM_KERNEL(12)
BP_GEMM_KERNEL(13)
BP_GEMM_KERNEL(14)
BP_GEMM_KERNEL(15)
BP_GEMM_KERNEL(16)
