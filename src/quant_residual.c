/*
 * Residual (binary coding) quantizer, nested: plane p is chosen with planes
 * 0..p-1 fixed, and every prefix n gets its own coefficients from a joint
 * least-squares fit min ||w - T_n c||. Plane n-1 starts as the sign of the
 * residual left by prefix n-1's fitted coefficients (zero counts as +), then
 * alternates: refit the n coefficients, re-choose the new plane's signs as
 * the best for those coefficients (sign of residual times its coefficient),
 * until no sign changes or RESIDUAL_REFINE_ITERS rounds. Each round can only
 * lower prefix n's error, and the earlier planes never change, so every
 * prefix stays a prefix. (Plain greedy coding with the mean |residual| as
 * the step stalled from 4 planes on: its steps ignore the refit, so later
 * planes coded a residual the fitted prefix no longer had.) When the system
 * is singular (K < n, or a plane repeats once the residual hits zero) the
 * minimum-norm solution keeps the coefficients finite and well-defined.
 *
 * With group scales the row is first divided by its group multipliers (as
 * for the uniform quantizer), the signs follow that normalized row, and the
 * fits weigh every column by its multiplier, as the combine does.
 */
#include "bp_quant.h"

#include <math.h>
#include <string.h>

/* Minimum-norm solution of G x = b for symmetric positive semi-definite G
 * (n x n, row stride ld), through a cyclic Jacobi eigen-decomposition. */
static void solve_min_norm(const double *G, int ld, const double *b, int n, double *x) {
    double A[BP_MAX_BITS][BP_MAX_BITS], V[BP_MAX_BITS][BP_MAX_BITS];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            A[i][j] = G[i * ld + j];
            V[i][j] = i == j;
        }
    for (int sweep = 0; sweep < 64; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < n; i++) {
            diag += A[i][i] * A[i][i];
            for (int j = i + 1; j < n; j++)
                off += A[i][j] * A[i][j];
        }
        if (off <= 1e-30 * diag || off == 0)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                if (A[p][q] == 0)
                    continue;
                double theta = (A[q][q] - A[p][p]) / (2 * A[p][q]);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) {
                    double akp = A[k][p], akq = A[k][q];
                    A[k][p] = c * akp - s * akq;
                    A[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = A[p][k], aqk = A[q][k];
                    A[p][k] = c * apk - s * aqk;
                    A[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = V[k][p], vkq = V[k][q];
                    V[k][p] = c * vkp - s * vkq;
                    V[k][q] = s * vkp + c * vkq;
                }
            }
    }
    double lmax = 0;
    for (int i = 0; i < n; i++)
        lmax = fmax(lmax, A[i][i]);
    double tol = lmax * n * 1e-10;
    for (int i = 0; i < n; i++)
        x[i] = 0;
    for (int e = 0; e < n; e++) {
        if (!(A[e][e] > tol))
            continue;
        double proj = 0;
        for (int i = 0; i < n; i++)
            proj += V[i][e] * b[i];
        proj /= A[e][e];
        for (int i = 0; i < n; i++)
            x[i] += proj * V[i][e];
    }
}

/* G x = b by Cholesky when G is clearly positive definite (the common case:
 * distinct planes, K >= n); false when a pivot is too small to trust. */
static bool solve_cholesky(const double *G, int ld, const double *b, int n, double *x) {
    double Lc[BP_MAX_BITS][BP_MAX_BITS], dmax = 0;
    for (int i = 0; i < n; i++)
        dmax = fmax(dmax, G[i * ld + i]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double v = G[i * ld + j];
            for (int k = 0; k < j; k++)
                v -= Lc[i][k] * Lc[j][k];
            if (i == j) {
                if (!(v > dmax * 1e-9))
                    return false;
                Lc[i][i] = sqrt(v);
            } else {
                Lc[i][j] = v / Lc[j][j];
            }
        }
    double z[BP_MAX_BITS];
    for (int i = 0; i < n; i++) {
        double v = b[i];
        for (int k = 0; k < i; k++)
            v -= Lc[i][k] * z[k];
        z[i] = v / Lc[i][i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double v = z[i];
        for (int k = i + 1; k < n; k++)
            v -= Lc[k][i] * x[k];
        x[i] = v / Lc[i][i];
    }
    return true;
}

/* Row p of G (G[p][q] = G[q][p] = sum_j m_j^2 t_p t_q, q <= p) and
 * wt[p] = sum_j m_j w_j t_p over the valid columns, with m_j the multiplier
 * of column j's group (whole 32-column words per group, so popcounts per word
 * do). */
static void plane_stats(const bp_matrix *m, const uint32_t *rowbits, const double *w,
                        const uint8_t *mult, size_t gcols, int p, double *G, double *wt) {
    const int k = m->bits;
    const size_t kw = m->kwords, cols = m->cols;
    double plus = 0, all = 0;
    for (size_t j = 0; j < cols; j++) {
        double v = (double)mult[j / gcols] * w[j];
        all += v;
        if ((rowbits[(size_t)p * kw + j / 32] >> (j % 32)) & 1u)
            plus += v;
    }
    wt[p] = 2.0 * plus - all;
    for (int q = 0; q <= p; q++) {
        double g = 0;
        for (size_t w0 = 0; w0 * 32 < cols; w0++) {
            const double mg = mult[w0 * 32 / gcols];
            const size_t valid = cols - w0 * 32 < 32 ? cols - w0 * 32 : 32;
            const int diff =
                __builtin_popcount(rowbits[(size_t)p * kw + w0] ^ rowbits[(size_t)q * kw + w0]);
            g += mg * mg * ((double)valid - 2.0 * diff);
        }
        G[p * k + q] = G[q * k + p] = g;
    }
}

static void solve_prefix(const double *G, int k, const double *wt, int n, double *x) {
    if (!solve_cholesky(G, k, wt, n, x))
        solve_min_norm(G, k, wt, n, x);
}

/* Sign rounds per plane after its first fit. Gaussian rows of 4096, groups
 * of 64: 3 rounds leave the 4-plane error at .121, 8 at .115, 32 at .115
 * (8 planes .0138 / .0137); stopping early once few signs change costs
 * more than it saves (every change counts). */
#define RESIDUAL_REFINE_ITERS 8

/*
 * Plane p (0-based) of the normalized row xn: with code[j] the p-bit code of
 * planes 0..p-1 at column j and base = sum_{q<p} c_q t_q, c the coefficients
 * of prefix p + 1 (those of prefix p for the first choice), the new plane's
 * signs are those of (xn - base) * cp (cp = c_p; 1 for the first choice).
 * base is looked up in two tables, one per half of the code (at most 2^8
 * entries each for p <= 16), so a column costs two loads whatever p is.
 * Returns how many signs changed.
 */
static size_t choose_plane(const bp_matrix *m, uint32_t *rowbits, const double *xn,
                           const uint32_t *code, const double *c, double cp, int p) {
    const size_t kw = m->kwords, cols = m->cols;
    const int lo_bits = p / 2, hi_bits = p - lo_bits;
    double hi[1u << ((BP_MAX_BITS + 1) / 2)], lo[1u << (BP_MAX_BITS / 2)];
    /* hi: planes 0..hi_bits-1 (the code's top bits); lo: the rest. */
    for (uint32_t v = 0; v < (1u << hi_bits); v++) {
        double b = 0;
        for (int q = 0; q < hi_bits; q++)
            b += ((v >> (hi_bits - 1 - q)) & 1u) ? c[q] : -c[q];
        hi[v] = b;
    }
    for (uint32_t v = 0; v < (1u << lo_bits); v++) {
        double b = 0;
        for (int q = 0; q < lo_bits; q++)
            b += ((v >> (lo_bits - 1 - q)) & 1u) ? c[hi_bits + q] : -c[hi_bits + q];
        lo[v] = b;
    }
    const uint32_t lo_mask = (1u << lo_bits) - 1u;
    size_t changed = 0;
    uint32_t *bits = rowbits + (size_t)p * kw;
    for (size_t j0 = 0; j0 < cols; j0 += 32) {
        size_t len = cols - j0 < 32 ? cols - j0 : 32;
        uint32_t word = 0;
        for (size_t j = 0; j < len; j++) {
            const uint32_t v = code[j0 + j];
            const double base = hi[v >> lo_bits] + lo[v & lo_mask];
            word |= (uint32_t) !((xn[j0 + j] - base) * cp < 0) << j;
        }
        changed += (size_t)__builtin_popcount(bits[j0 / 32] ^ word);
        bits[j0 / 32] = word;
    }
    return changed;
}

void bp__quantize_rows_residual(bp_matrix *m, const float *w, size_t ld, const bp_quant_params *qp,
                                size_t r0, size_t r1, double *sq_err, double *ww, void *scratch) {
    (void)qp;
    const int k = m->bits;
    const size_t kw = m->kwords, cols = m->cols;
    bp_quant_scratch s = bp__quant_scratch(m, scratch);
    double *xn = s.aux;
    uint32_t *code = (uint32_t *)s.aux2; /* planes so far, per column */
    double G[BP_MAX_BITS * BP_MAX_BITS], wt[BP_MAX_BITS], x[BP_MAX_BITS];
    for (size_t r = r0; r < r1; r++) {
        bp__load_row(m, w + r * ld, s.row);
        size_t gcols, ngroups;
        bp__group_multipliers(m, s.row, s.mult, &gcols, &ngroups);
        memset(s.rowbits, 0, (size_t)k * kw * sizeof *s.rowbits);
        double sum_ww = 0;
        /* The signs follow the row divided by its group multipliers, which
         * the combine multiplies back. */
        for (size_t j = 0; j < cols; j++) {
            xn[j] = s.row[j] / s.mult[j / gcols];
            sum_ww += s.row[j] * s.row[j];
            code[j] = 0;
        }
        for (int p = 0; p < k; p++) {
            /* x holds prefix p's coefficients here (nothing for p = 0). */
            choose_plane(m, s.rowbits, xn, code, x, 1.0, p);
            plane_stats(m, s.rowbits, s.row, s.mult, gcols, p, G, wt);
            solve_prefix(G, k, wt, p + 1, x);
            for (int it = 0; it < RESIDUAL_REFINE_ITERS && x[p] != 0; it++) {
                if (choose_plane(m, s.rowbits, xn, code, x, x[p], p) == 0)
                    break;
                plane_stats(m, s.rowbits, s.row, s.mult, gcols, p, G, wt);
                solve_prefix(G, k, wt, p + 1, x);
            }
            const uint32_t *bits = s.rowbits + (size_t)p * kw;
            for (size_t j = 0; j < cols; j++)
                code[j] = 2 * code[j] + ((bits[j / 32] >> (j % 32)) & 1u);
        }
        bp__store_row(m, r, s.rowbits);
        bp__store_row_mult(m, r, s.mult, ngroups);
        ww[r] = sum_ww;
        for (int n = 1; n <= k; n++) {
            solve_prefix(G, k, wt, n, x);
            float *cn = bp__coef(m, n, r);
            for (int p = 0; p < n; p++)
                cn[p] = (float)x[p];
            sq_err[r * (size_t)k + (size_t)(n - 1)] = bp__row_sq_error(G, k, wt, ww[r], cn, n);
        }
    }
}
