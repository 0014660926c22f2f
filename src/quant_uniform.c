/*
 * Uniform nested mid-rise quantizer. A row is clipped at r = clip*max|w| and
 * rounded to the nearest odd multiple of delta = r / (2^k - 1); ties and zeros
 * go up. The odd level u = 2V - (2^k - 1) with V in [0, 2^k) gives the planes:
 * plane p is bit k-1-p of V (1 = +1). Dropping low planes shifts V right,
 * which is round-to-nearest on the coarser odd grid, so every prefix is a
 * proper quantizer with all 2^n levels and no zero. Each prefix then gets its
 * own least-squares scale alpha_n, and c[n][row][p] = alpha_n * 2^(k-1-p).
 */
#include "bp_internal.h"

#include <math.h>
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

static double row_absmax(const float *w, size_t cols) {
    double a = 0;
    for (size_t j = 0; j < cols; j++)
        a = fmax(a, fabs((double)w[j]));
    return a;
}

static double inverse_step(double amax, float clip, int k) {
    double delta = (double)clip * amax / (double)((1u << k) - 1);
    return delta > 0 ? 1.0 / delta : 0.0;
}

/*
 * Mean over n of log(squared relative error) of a candidate clip. The optimal
 * scale per prefix is solved in closed form: err^2 = ww - <w,P>^2 / <P,P>.
 * Rows longer than AUTO_CLIP_SAMPLES are sampled with a stride; prefixes
 * beyond AUTO_CLIP_HIST_BITS planes (already tiny errors) are left out so the
 * level histogram stays small.
 */
#define AUTO_CLIP_HIST_BITS 10
#define AUTO_CLIP_SAMPLES   8192

static double clip_objective(const float *w, size_t cols, size_t stride, double amax, int k,
                             double clip) {
    double hist_w[1u << AUTO_CLIP_HIST_BITS];
    uint32_t hist_n[1u << AUTO_CLIP_HIST_BITS];
    double inv = inverse_step(amax, (float)clip, k);
    const int hk = k < AUTO_CLIP_HIST_BITS ? k : AUTO_CLIP_HIST_BITS;
    const uint32_t levels = 1u << hk;
    double wp[BP_MAX_BITS] = {0}, pp[BP_MAX_BITS] = {0}, ww = 0, pow2[BP_MAX_BITS + 1];
    for (int e = 0; e <= k; e++)
        pow2[e] = (double)(1u << e);
    /* Bin the row by level, then each prefix's sums come from the bins:
     * about 10x fewer operations than per element and per prefix. */
    memset(hist_w, 0, levels * sizeof *hist_w);
    memset(hist_n, 0, levels * sizeof *hist_n);
    for (size_t j = 0; j < cols; j += stride) {
        double x = w[j];
        /* Above AUTO_CLIP_HIST_BITS the low level bits are dropped: the bins
         * then hold the top hk bits and prefixes past hk are approximated. */
        uint32_t v = uniform_level(x, inv, k) >> (k - hk);
        hist_w[v] += x;
        hist_n[v]++;
        ww += x * x;
    }
    for (uint32_t v = 0; v < levels; v++) {
        if (!hist_n[v])
            continue;
        for (int n = 1; n <= hk; n++) {
            double un = 2.0 * (double)(v >> (hk - n)) - (pow2[n] - 1.0);
            double pn = un * pow2[k - n];
            wp[n - 1] += hist_w[v] * pn;
            pp[n - 1] += (double)hist_n[v] * pn * pn;
        }
    }
    double obj = 0;
    for (int n = 0; n < hk; n++) {
        double e = ww - wp[n] * wp[n] / pp[n];
        obj += log(fmax(e / ww, 1e-30));
    }
    return obj / hk;
}

float bp__uniform_auto_clip(const float *w, size_t cols, int k) {
    double amax = row_absmax(w, cols);
    if (amax == 0)
        return 1.0f;
    size_t stride = cols > AUTO_CLIP_SAMPLES ? cols / AUTO_CLIP_SAMPLES : 1;
    /* Coarse grid, then golden-section refinement around the best point: the
     * objective is smooth enough at this resolution and this keeps a
     * 65536 x 4096 matrix quantizing in seconds. */
    double best = 1.0, best_obj = clip_objective(w, cols, stride, amax, k, 1.0);
    for (double c = 0.30; c < 0.999; c += 0.1) {
        double o = clip_objective(w, cols, stride, amax, k, c);
        if (o < best_obj) {
            best_obj = o;
            best = c;
        }
    }
    double lo = fmax(0.05, best - 0.1), hi = fmin(1.0, best + 0.1);
    const double g = 0.6180339887498949;
    double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
    double fa = clip_objective(w, cols, stride, amax, k, a);
    double fb = clip_objective(w, cols, stride, amax, k, b);
    for (int it = 0; it < 6; it++) {
        if (fa < fb) {
            hi = b, b = a, fb = fa;
            a = hi - g * (hi - lo);
            fa = clip_objective(w, cols, stride, amax, k, a);
        } else {
            lo = a, a = b, fa = fb;
            b = lo + g * (hi - lo);
            fb = clip_objective(w, cols, stride, amax, k, b);
        }
    }
    double c = fa < fb ? a : b;
    double oc = fa < fb ? fa : fb;
    return (float)(oc < best_obj ? c : best);
}

void bp__quantize_rows_uniform(bp_matrix *m, const float *w, size_t ld, float clip, size_t r0,
                               size_t r1, double *sq_err, double *ww, void *scratch) {
    const int k = m->bits;
    const size_t kw = m->kwords;
    uint32_t *rowbits = scratch;
    double G[BP_MAX_BITS * BP_MAX_BITS], wt[BP_MAX_BITS];
    for (size_t r = r0; r < r1; r++) {
        const float *row = w + r * ld;
        float c = clip > 0 ? clip : bp__uniform_auto_clip(row, m->cols, k);
        double inv = inverse_step(row_absmax(row, m->cols), c, k);
        memset(rowbits, 0, (size_t)k * kw * sizeof *rowbits);
        for (size_t j0 = 0; j0 < m->cols; j0 += 32) {
            size_t len = m->cols - j0 < 32 ? m->cols - j0 : 32;
            uint32_t v[32];
            for (size_t j = 0; j < len; j++)
                v[j] = uniform_level(row[j0 + j], inv, k);
            for (int p = 0; p < k; p++) {
                uint32_t word = 0;
                for (size_t j = 0; j < len; j++)
                    word |= ((v[j] >> (k - 1 - p)) & 1u) << j;
                rowbits[(size_t)p * kw + j0 / 32] = word;
            }
        }
        bp__store_row(m, r, rowbits);
        bp__row_stats(rowbits, kw, k, row, m->cols, G, wt, &ww[r]);
        for (int n = 1; n <= k; n++) {
            /* P_n = sum_{p<n} 2^(k-1-p) t_p; alpha = <w,P_n> / <P_n,P_n>. */
            double wp = 0, pp = 0;
            for (int p = 0; p < n; p++) {
                wp += ldexp(wt[p], k - 1 - p);
                for (int q = 0; q < n; q++)
                    pp += ldexp(G[p * k + q], (k - 1 - p) + (k - 1 - q));
            }
            float alpha = (float)(wp / pp);
            float *cn = bp__coef(m, n, r);
            for (int p = 0; p < n; p++)
                cn[p] = ldexpf(alpha, k - 1 - p);
            sq_err[r * (size_t)k + (size_t)(n - 1)] = bp__row_sq_error(G, k, wt, ww[r], cn, n);
        }
    }
}
