/*
 * Uniform nested mid-rise quantizer with group multipliers.
 *
 * A row w (rotated first when the matrix has a rotation) splits into groups
 * of columns (one group per row without group scales). Group g gets an
 * integer multiplier m_g = ceil(255 max|w_g| / max|w|) in 1..255 (1 per
 * row), and is rounded to the nearest odd multiple of its step
 * delta_g = m_g * delta, delta = clip * max|w| / (255 (2^k - 1)) (per row:
 * clip * max|w| / (2^k - 1)), so the step follows the stored multiplier and
 * the group's range covers clip * max|w_g|. Ties and zeros go up. The odd
 * level u = 2V - (2^k - 1) with V in [0, 2^k) gives the planes: plane p is
 * bit k-1-p of V (1 = +1). Dropping low planes shifts V right, which is
 * round-to-nearest on the coarser odd grid, so every prefix is a proper
 * quantizer with all 2^n levels and no zero. Each prefix n then gets its own
 * least-squares scale alpha_n for the code P_n(j) = m_g(j) u_n(j), with
 * c[n][row][p] = alpha_n * 2^(n-1-p) (docs/numerics.md).
 */
#include "bp_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Nearest odd level for w / delta, as V in [0, 2^k): the level is
 * u = 2V - (2^k - 1) = 2 floor(w / (2 delta)) + 1, so ties and zero go up.
 * inv_delta == 0 (an all-zero row) gives the level +1. */
static inline uint32_t uniform_level(double w, double inv_delta, int k) {
    const double half = (double)(1u << (k - 1));
    double z = w * inv_delta * 0.5;
    z = z > half ? half : (z < -half ? -half : z); /* keeps the int cast in range */
    int64_t f = (int64_t)z;
    f -= (double)f > z; /* floor */
    int64_t v = f + (int64_t)(1u << (k - 1));
    return (uint32_t)(v < 0 ? 0 : (v > (int64_t)((1u << k) - 1) ? (int64_t)((1u << k) - 1) : v));
}

double bp__group_multipliers(const bp_matrix *m, const double *w, uint8_t *mult, size_t *gcols,
                             size_t *ngroups) {
    const size_t gc = bp__grouped(m) ? m->group_size : m->cols;
    const size_t ng = (m->cols + gc - 1) / gc;
    double amax = 0;
    for (size_t j = 0; j < m->cols; j++)
        amax = fmax(amax, fabs(w[j]));
    for (size_t g = 0; g < ng; g++) {
        if (!bp__grouped(m) || amax == 0) {
            mult[g] = 1;
            continue;
        }
        double gmax = 0;
        size_t j1 = (g + 1) * gc < m->cols ? (g + 1) * gc : m->cols;
        for (size_t j = g * gc; j < j1; j++)
            gmax = fmax(gmax, fabs(w[j]));
        double v = ceil(BP_MULT_MAX * gmax / amax);
        mult[g] = (uint8_t)(v < 1 ? 1 : (v > BP_MULT_MAX ? BP_MULT_MAX : v));
    }
    *gcols = gc;
    *ngroups = ng;
    return amax;
}

/* Inverse of the base step for a clip: group g's inverse step is this / m_g. */
static double base_inverse_step(const bp_matrix *m, double amax, double clip, int k) {
    double delta = clip * amax / ((bp__grouped(m) ? BP_MULT_MAX : 1.0) * (double)((1u << k) - 1));
    return delta > 0 ? 1.0 / delta : 0.0;
}

/*
 * Mean over n = AUTO_CLIP_N0..min(k, AUTO_CLIP_N1) of log(squared relative
 * error) of a candidate clip, with the optimal scale per prefix in closed
 * form: err^2 = ww - <w,P>^2 / <P,P>. One plane does not depend on the clip
 * and the last planes are already tiny: both would pull the clip away from
 * the plane counts that are worth running. Rows longer than
 * AUTO_CLIP_SAMPLES are sampled with a stride; levels are binned on their
 * top AUTO_CLIP_HIST_BITS bits.
 */
#define AUTO_CLIP_HIST_BITS 10
#define AUTO_CLIP_SAMPLES   8192
#define AUTO_CLIP_N0        2
#define AUTO_CLIP_N1        6

static double clip_objective(const bp_matrix *m, const double *w, const uint8_t *mult, size_t gcols,
                             size_t stride, double amax, int k, double clip) {
    double hist_w[1u << AUTO_CLIP_HIST_BITS], hist_m2[1u << AUTO_CLIP_HIST_BITS];
    const double inv = base_inverse_step(m, amax, clip, k);
    const int hk = k < AUTO_CLIP_HIST_BITS ? k : AUTO_CLIP_HIST_BITS;
    const uint32_t levels = 1u << hk;
    double wp[BP_MAX_BITS] = {0}, pp[BP_MAX_BITS] = {0}, ww = 0;
    memset(hist_w, 0, levels * sizeof hist_w[0]);
    memset(hist_m2, 0, levels * sizeof hist_m2[0]);
    for (size_t j = 0; j < m->cols; j += stride) {
        const double x = w[j], mg = mult[j / gcols];
        uint32_t v = uniform_level(x, inv / mg, k) >> (k - hk);
        hist_w[v] += mg * x;
        hist_m2[v] += mg * mg;
        ww += x * x;
    }
    if (ww == 0)
        return 0;
    const int n0 = AUTO_CLIP_N0 <= hk ? AUTO_CLIP_N0 : 1;
    const int n1 = hk < AUTO_CLIP_N1 ? hk : AUTO_CLIP_N1;
    for (uint32_t v = 0; v < levels; v++) {
        if (hist_m2[v] == 0)
            continue;
        for (int n = n0; n <= n1; n++) {
            double un = 2.0 * (double)(v >> (hk - n)) - (double)((1u << n) - 1);
            wp[n - 1] += hist_w[v] * un;
            pp[n - 1] += hist_m2[v] * un * un;
        }
    }
    double obj = 0;
    for (int n = n0; n <= n1; n++) {
        double e = ww - wp[n - 1] * wp[n - 1] / pp[n - 1];
        obj += log(fmax(e / ww, 1e-30));
    }
    return obj / (n1 - n0 + 1);
}

/* Golden-section search of the clip in [AUTO_CLIP_LO, 1] after a coarse
 * grid: the objective is smooth at this resolution and this keeps a
 * 65536 x 4096 matrix quantizing in seconds. */
#define AUTO_CLIP_LO 0.7

static double auto_clip(const bp_matrix *m, const double *w, const uint8_t *mult, size_t gcols,
                        double amax, int k) {
    if (amax == 0 || k == 1)
        return 1.0;
    size_t stride = m->cols > AUTO_CLIP_SAMPLES ? m->cols / AUTO_CLIP_SAMPLES : 1;
    double best = 1.0, best_obj = clip_objective(m, w, mult, gcols, stride, amax, k, 1.0);
    for (double c = AUTO_CLIP_LO; c < 0.999; c += 0.05) {
        double o = clip_objective(m, w, mult, gcols, stride, amax, k, c);
        if (o < best_obj) {
            best_obj = o;
            best = c;
        }
    }
    double lo = fmax(AUTO_CLIP_LO, best - 0.05), hi = fmin(1.0, best + 0.05);
    const double g = 0.6180339887498949;
    double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
    double fa = clip_objective(m, w, mult, gcols, stride, amax, k, a);
    double fb = clip_objective(m, w, mult, gcols, stride, amax, k, b);
    for (int it = 0; it < 5; it++) {
        if (fa < fb) {
            hi = b, b = a, fb = fa;
            a = hi - g * (hi - lo);
            fa = clip_objective(m, w, mult, gcols, stride, amax, k, a);
        } else {
            lo = a, a = b, fa = fb;
            b = lo + g * (hi - lo);
            fb = clip_objective(m, w, mult, gcols, stride, amax, k, b);
        }
    }
    double c = fa < fb ? a : b, oc = fa < fb ? fa : fb;
    return oc < best_obj ? c : best;
}

float bp__uniform_auto_clip(const float *row, size_t cols, int bits) {
    /* A per-row, unrotated view for tests: one group, multiplier 1. */
    bp_matrix view = {.cols = cols, .bits = bits};
    double *w = malloc(cols * sizeof *w);
    if (!w)
        return 1.0f;
    double amax = 0;
    for (size_t j = 0; j < cols; j++) {
        w[j] = row[j];
        amax = fmax(amax, fabs(w[j]));
    }
    uint8_t one = 1;
    float c = (float)auto_clip(&view, w, &one, cols, amax, bits);
    free(w);
    return c;
}

/* Prefix statistics are binned by level up to this many planes. */
#define STATS_HIST_BITS 10

/*
 * GPTQ-style error feedback on the nested grid (docs/numerics.md): columns in
 * order, each rounded on the grid of the target prefix t (which is the top t
 * bits of its k-bit level, by the nested property), its error scaled by
 * 1/U[j][j] fed into the later columns through row j of U. The digits below
 * the target round the original weight clamped into the target cell, so
 * longer prefixes move back toward w; shorter ones truncate the target code.
 * wq is clobbered.
 */
static void feedback_levels(const bp_matrix *m, const double *u, int t, const double *w, double *wq,
                            const uint8_t *mult, size_t gcols, double inv, int k, uint32_t *v) {
    const size_t n = m->cols;
    const int s = k - t;
    const uint32_t low = (1u << s) - 1u;
    for (size_t j = 0; j < n; j++) {
        const double mg = mult[j / gcols], ginv = inv / mg;
        /* Target cell from the compensated weight; the digits below it
         * round the original weight, clamped into that cell. */
        const uint32_t top = uniform_level(wq[j], ginv, k) & ~low;
        const uint32_t own = uniform_level(w[j], ginv, k);
        v[j] = own < top ? top : (own > (top | low) ? (top | low) : own);
        /* The target prefix's value: odd level times its step. */
        const double ut = 2.0 * (double)(v[j] >> s) - (double)((1u << t) - 1);
        const double q = ginv > 0 ? ut * ldexp(1.0 / ginv, s) : 0.0;
        const double e = (wq[j] - q) / u[j * n + j];
        const double *uj = u + j * n;
        for (size_t i = j + 1; i < n; i++)
            wq[i] -= e * uj[i];
    }
}

void bp__quantize_rows_uniform(bp_matrix *m, const float *w, size_t ld, const bp_quant_params *qp,
                               size_t r0, size_t r1, double *sq_err, double *ww, void *scratch) {
    const float clip = qp->clip;
    const int k = m->bits;
    const size_t kw = m->kwords, cols = m->cols;
    bp_quant_scratch s = bp__quant_scratch(m, scratch);
    double hist_w[1u << STATS_HIST_BITS], hist_m2[1u << STATS_HIST_BITS];
    for (size_t r = r0; r < r1; r++) {
        bp__load_row(m, w + r * ld, s.row);
        size_t gcols, ngroups;
        double amax = bp__group_multipliers(m, s.row, s.mult, &gcols, &ngroups);
        /* With group scales each group's range already follows its own
         * max|w|: the search changes the error by < 0.5% (Gaussian rows,
         * groups of 64) for 3.5x the time, so automatic means 1 there. */
        double c = clip > 0         ? clip
                   : bp__grouped(m) ? 1.0
                                    : auto_clip(m, s.row, s.mult, gcols, amax, k);
        double inv = base_inverse_step(m, amax, c, k);
        uint32_t *fixed = NULL; /* calibrated levels, in column order */
        if (qp->cal_u) {
            memcpy(s.aux, s.row, cols * sizeof *s.aux);
            fixed = (uint32_t *)s.aux2;
            feedback_levels(m, qp->cal_u, qp->cal_planes, s.row, s.aux, s.mult, gcols, inv, k,
                            fixed);
        }
        memset(s.rowbits, 0, (size_t)k * kw * sizeof *s.rowbits);
        double wp[BP_MAX_BITS] = {0}, pp[BP_MAX_BITS] = {0}, sum_ww = 0;
        /* <w, P_n> and <P_n, P_n> for every prefix: binned by level (sum of
         * m x and of m^2 per level) when the levels are few, which is exact
         * and k times cheaper than per element. */
        const bool binned = k <= STATS_HIST_BITS;
        if (binned) {
            memset(hist_w, 0, ((size_t)1 << k) * sizeof hist_w[0]);
            memset(hist_m2, 0, ((size_t)1 << k) * sizeof hist_m2[0]);
        }
        for (size_t j0 = 0; j0 < cols; j0 += 32) {
            size_t len = cols - j0 < 32 ? cols - j0 : 32;
            const double mg = s.mult[j0 / gcols], ginv = inv / mg;
            uint32_t v[32];
            for (size_t j = 0; j < len; j++) {
                const double x = s.row[j0 + j];
                v[j] = fixed ? fixed[j0 + j] : uniform_level(x, ginv, k);
                sum_ww += x * x;
                if (binned) {
                    hist_w[v[j]] += mg * x;
                    hist_m2[v[j]] += mg * mg;
                    continue;
                }
                for (int n = 1; n <= k; n++) {
                    double un = 2.0 * (double)(v[j] >> (k - n)) - (double)((1u << n) - 1);
                    wp[n - 1] += mg * un * x;
                    pp[n - 1] += mg * mg * un * un;
                }
            }
            for (int p = 0; p < k; p++) {
                uint32_t word = 0;
                for (size_t j = 0; j < len; j++)
                    word |= ((v[j] >> (k - 1 - p)) & 1u) << j;
                s.rowbits[(size_t)p * kw + j0 / 32] = word;
            }
        }
        if (binned)
            for (uint32_t v = 0; v < (1u << k); v++) {
                if (hist_m2[v] == 0)
                    continue;
                for (int n = 1; n <= k; n++) {
                    double un = 2.0 * (double)(v >> (k - n)) - (double)((1u << n) - 1);
                    wp[n - 1] += hist_w[v] * un;
                    pp[n - 1] += hist_m2[v] * un * un;
                }
            }
        bp__store_row(m, r, s.rowbits);
        bp__store_row_mult(m, r, s.mult, ngroups);
        ww[r] = sum_ww;
        for (int n = 1; n <= k; n++) {
            float alpha = pp[n - 1] > 0 ? (float)(wp[n - 1] / pp[n - 1]) : 0.0f;
            float *cn = bp__coef(m, n, r);
            for (int p = 0; p < n; p++)
                cn[p] = ldexpf(alpha, n - 1 - p);
            double a = alpha;
            double e = sum_ww - 2.0 * a * wp[n - 1] + a * a * pp[n - 1];
            sq_err[r * (size_t)k + (size_t)(n - 1)] = e > 0 ? e : 0;
        }
    }
}
