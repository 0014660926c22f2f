/*
 * Quantizer properties (README "Numerics"; docs/design.md for the layout):
 *  - uniform prefixes are round-to-nearest on their step grid, ties up;
 *  - zero is never a level;
 *  - every one of the 2^n levels is reachable at every n;
 *  - recorded prefix errors are correct, shrink (uniform) or do not grow
 *    (residual) with n;
 *  - the residual quantizer is well defined when K < planes;
 *  - all-zero weights are handled (error 0, output = bias).
 * Planes are read through the internal layout (bp_abi.h).
 */
#include "test_util.h"
#include "bp_abi.h"

#include "tu_criterion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(quantizer, .fini = tu_suite_fini);

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* u_n = sum_{p<n} t_p 2^(n-1-p) */
static long prefix_int(const bp_matrix *m, size_t row, size_t col, int n) {
    long u = 0;
    for (int p = 0; p < n; p++)
        u = 2 * u + tu_plane_sign(m, p, row, col);
    return u;
}

/*
 * Check the uniform round-to-nearest property for every row, element and n.
 * f = w/Delta in fine units; near a grid boundary (within tol fine units,
 * allowing for float rounding of Delta in the library) both neighbours are
 * accepted. tol = 0 demands the exact rule, ties up.
 */
static void check_uniform_rtn(const bp_matrix *m, const float *w, size_t ld, float clip, double tol,
                              const char *what, unsigned long long seed) {
    int k = m->bits;
    double levels = ldexp(1.0, k) - 1.0;
    for (size_t r = 0; r < m->rows; r++) {
        double mx = 0;
        for (size_t j = 0; j < m->cols; j++)
            mx = fmax(mx, fabs((double)w[r * ld + j]));
        if (mx == 0)
            continue;
        double delta = (double)clip * mx / levels;
        for (size_t j = 0; j < m->cols; j++) {
            double f = (double)w[r * ld + j] / delta;
            for (int n = 1; n <= k; n++) {
                double unit = ldexp(1.0, k - n); /* coarse step in fine units / 2 */
                double v = f / unit;
                double lim = ldexp(1.0, n) - 1.0;
                double o = 2.0 * floor(v / 2.0) + 1.0; /* nearest odd, ties up */
                o = fmin(fmax(o, -lim), lim);
                long u = prefix_int(m, r, j, n);
                if ((double)u == o)
                    continue;
                /* Near a boundary (an even integer of v) accept either side. */
                double e = 2.0 * round(v / 2.0);
                bool near = fabs(v - e) * unit <= tol;
                double a1 = fmin(fmax(e - 1, -lim), lim), a2 = fmin(fmax(e + 1, -lim), lim);
                cr_assert(near && ((double)u == a1 || (double)u == a2),
                          "%s: uniform prefix is not round-to-nearest: row %zu col %zu n=%d k=%d "
                          "w=%a w/Delta=%.9g, expected odd %g on the step-Delta*2^(k-n) grid, "
                          "planes give %ld; seed=%llu",
                          what, r, j, n, k, (double)w[r * ld + j], f, o, u, seed);
            }
        }
    }
}

Test(quantizer, uniform_prefixes_round_to_nearest) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    static const struct {
        size_t rows, cols;
        int bits;
        float clip;
    } cases[] = {{9, 200, 8, 1.0f},  {5, 1000, 12, 1.0f}, {17, 33, 3, 1.0f},
                 {4, 500, 16, 1.0f}, {6, 300, 8, 0.5f},   {3, 64, 1, 1.0f}};
    for (size_t i = 0; i < NELEM(cases); i++) {
        size_t M = cases[i].rows, K = cases[i].cols, ld = K + 1;
        float *w = tu_xmalloc(M * ld * sizeof *w);
        tu_fill_gauss_ld(&rng, w, M, K, ld, 1.0f, NAN);
        /* One row spread uniformly, one with a wide dynamic range. */
        tu_fill_uniform(&rng, w + ld, K, -2.0f, 2.0f);
        for (size_t j = 0; j < K; j++)
            w[2 * ld + j] = (float)(tu_gauss(&rng) * pow(10.0, 3.0 * tu_uniform(&rng) - 3.0));
        bp_matrix *m =
            tu_quantize(NULL, w, M, K, ld, cases[i].bits, BP_QUANT_UNIFORM, cases[i].clip);
        cr_assert_eq(bp_matrix_bits(m), cases[i].bits);
        char what[64];
        snprintf(what, sizeof what, "%zux%zu bits %d clip %g", M, K, cases[i].bits,
                 (double)cases[i].clip);
        /* A few float ulps of w/Delta, scaled to the fine grid's magnitude. */
        double tol = 8.0 * ldexp(1.0, cases[i].bits) * 0x1p-24 + 1e-6;
        check_uniform_rtn(m, w, ld, cases[i].clip, tol, what, seed);
        bp_matrix_destroy(m);
        free(w);
    }
}

/* Integer weights with max 2^k - 1 and clip 1 make Delta exactly 1, so exact
 * ties (even w/Delta, including 0) are tested with zero tolerance: ties up. */
Test(quantizer, uniform_ties_and_zero_go_up) {
    for (int k = 2; k <= 6; k++) {
        long top = (1L << k) - 1;
        size_t K = (size_t)(2 * top + 1);
        float *w = tu_xmalloc(K * sizeof *w);
        for (size_t j = 0; j < K; j++)
            w[j] = (float)((long)j - top); /* -top .. top, every integer, 0 included */
        bp_matrix *m = tu_quantize(NULL, w, 1, K, K, k, BP_QUANT_UNIFORM, 1.0f);
        char what[64];
        snprintf(what, sizeof what, "integer row, bits %d", k);
        check_uniform_rtn(m, w, K, 1.0f, 0.0, what, 0);
        /* w = 0 must be +1 at full precision, w = -2 must be -1 (up). */
        cr_assert_eq(prefix_int(m, 0, (size_t)top, k), 1, "zero weight must round up to +1");
        cr_assert_eq(prefix_int(m, 0, (size_t)(top - 2), k), -1, "w=-2 must round up to -1");
        cr_assert_eq(prefix_int(m, 0, (size_t)(top + 2), k), 3, "w=+2 must round up to 3");
        bp_matrix_destroy(m);
        free(w);
    }
}

Test(quantizer, zero_is_never_a_level) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t M = 16, K = 300;
    float *w = tu_xmalloc(M * K * sizeof *w);
    float *deq = tu_xmalloc(M * K * sizeof *deq);
    for (int variant = 0; variant < 4; variant++) {
        bp_quant_method method = variant == 3 ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
        float clip = variant == 0 ? 1.0f : variant == 2 ? 0.7f : 0.0f;
        int bits = variant == 2 ? 16 : 8;
        tu_fill_gauss(&rng, w, M * K, 1.0f);
        if (method == BP_QUANT_UNIFORM) /* sparse rows: zero weights still get a level */
            for (size_t r = 0; r < M; r += 3)
                for (size_t j = 0; j < K; j += 2)
                    w[r * K + j] = 0.0f;
        bp_matrix *m = tu_quantize(NULL, w, M, K, K, bits, method, clip);
        for (int n = 1; n <= bits; n++) {
            bp_status st = bp_matrix_dequantize(NULL, m, n, deq, K);
            cr_assert(st == BP_OK);
            for (size_t i = 0; i < M * K; i++)
                cr_assert(deq[i] != 0.0f && isfinite(deq[i]),
                          "variant %d (method %d clip %g bits %d): dequantized weight (%zu,%zu) "
                          "at n=%d is %g (w=%g); zero must not be a level; seed=%llu",
                          variant, (int)method, (double)clip, bits, i / K, i % K, n, (double)deq[i],
                          (double)w[i], seed);
        }
        bp_matrix_destroy(m);
    }
    free(w);
    free(deq);
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}
static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

Test(quantizer, every_level_reachable) {
    size_t K = 4096, M = 3;
    int bits = 8;
    float *w = tu_xmalloc(M * K * sizeof *w);
    for (size_t r = 0; r < M; r++) {
        double range = r == 0 ? 1.0 : r == 1 ? 37.5 : 1e-3;
        for (size_t j = 0; j < K; j++)
            w[r * K + j] = (float)(range * (-1.0 + 2.0 * ((double)j + 0.5) / (double)K));
    }
    long *u = tu_xmalloc(K * sizeof *u);
    float *deq = tu_xmalloc(M * K * sizeof *deq);
    for (int method = 0; method < 2; method++) {
        bp_matrix *m = tu_quantize(NULL, w, M, K, K, bits, (bp_quant_method)method,
                                   method == BP_QUANT_UNIFORM ? 1.0f : 0.0f);
        for (int n = 1; n <= bits; n++) {
            cr_assert(bp_matrix_dequantize(NULL, m, n, deq, K) == BP_OK);
            for (size_t r = 0; r < M; r++) {
                for (size_t j = 0; j < K; j++)
                    u[j] = prefix_int(m, r, j, n);
                qsort(u, K, sizeof *u, cmp_long);
                size_t distinct = 1;
                for (size_t j = 1; j < K; j++)
                    distinct += u[j] != u[j - 1];
                cr_assert_eq(distinct, (size_t)1 << n,
                             "method %d row %zu: %zu distinct %d-plane codes on an evenly spread "
                             "row, expected all %zu levels",
                             method, r, distinct, n, (size_t)1 << n);
                if (method == BP_QUANT_UNIFORM) {
                    float *d = deq + r * K;
                    qsort(d, K, sizeof *d, cmp_float);
                    size_t dv = 1;
                    for (size_t j = 1; j < K; j++)
                        dv += d[j] != d[j - 1];
                    cr_assert_eq(dv, (size_t)1 << n,
                                 "uniform row %zu: %zu distinct dequantized values at n=%d, "
                                 "expected %zu",
                                 r, dv, n, (size_t)1 << n);
                }
            }
        }
        bp_matrix_destroy(m);
    }
    free(w);
    free(u);
    free(deq);
}

/* Recorded prefix errors equal ||W - W_n|| / ||W|| measured from dequantize,
 * shrink with n for uniform and never grow for residual. */
Test(quantizer, prefix_errors) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t M = 32, K = 777;
    float *w = tu_xmalloc(M * K * sizeof *w);
    float *deq = tu_xmalloc(M * K * sizeof *deq);
    static const struct {
        bp_quant_method method;
        float clip;
        int bits;
    } cases[] = {{BP_QUANT_UNIFORM, 1.0f, 8},  {BP_QUANT_UNIFORM, 0.0f, 8},
                 {BP_QUANT_UNIFORM, 0.8f, 12}, {BP_QUANT_UNIFORM, 0.0f, 16},
                 {BP_QUANT_RESIDUAL, 0.0f, 8}, {BP_QUANT_RESIDUAL, 0.0f, 16}};
    for (size_t i = 0; i < NELEM(cases); i++) {
        tu_fill_gauss(&rng, w, M * K, 0.3f);
        bp_matrix *m = tu_quantize(NULL, w, M, K, K, cases[i].bits, cases[i].method, cases[i].clip);
        cr_assert_eq(bp_matrix_method(m), cases[i].method);
        double prev = INFINITY;
        for (int n = 1; n <= cases[i].bits; n++) {
            double e = bp_matrix_prefix_error(m, n);
            cr_assert(isfinite(e) && e >= 0, "prefix_error(%d) = %g", n, e);
            cr_assert(bp_matrix_dequantize(NULL, m, n, deq, K) == BP_OK);
            double num = 0, den = 0;
            for (size_t j = 0; j < M * K; j++) {
                double d = (double)w[j] - deq[j];
                num += d * d;
                den += (double)w[j] * w[j];
            }
            double meas = sqrt(num / den);
            cr_assert(fabs(meas - e) <= 1e-3 * meas + 1e-7,
                      "case %zu: recorded prefix_error(%d) = %.9g but dequantize gives %.9g; "
                      "seed=%llu",
                      i, n, e, meas, seed);
            if (cases[i].method == BP_QUANT_UNIFORM)
                cr_assert(e < prev,
                          "uniform case %zu (clip %g): error did not shrink at n=%d: %g -> %g "
                          "seed=%llu",
                          i, (double)cases[i].clip, n, prev, e, seed);
            else
                cr_assert(e <= prev * (1 + 1e-6),
                          "residual: error grew at n=%d: %g -> %g seed=%llu", n, prev, e, seed);
            prev = e;
        }
        /* Loose sanity bounds for Gaussian rows. */
        cr_assert(bp_matrix_prefix_error(m, 1) < 0.7, "1-plane error %g",
                  bp_matrix_prefix_error(m, 1));
        if (cases[i].method == BP_QUANT_UNIFORM && cases[i].clip == 1.0f)
            cr_assert(bp_matrix_prefix_error(m, 8) < 0.02, "8-plane uniform error %g",
                      bp_matrix_prefix_error(m, 8));
        bp_matrix_destroy(m);
    }
    free(w);
    free(deq);
}

/* Residual (and uniform) with K < planes: finite coefficients, no NaN, and
 * full precision reproduces w. */
Test(quantizer, small_k_well_defined) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    for (size_t K = 1; K <= 3; K++)
        for (int bits = 8; bits <= 16; bits += 8)
            for (int method = 0; method < 2; method++) {
                size_t M = 5;
                float *w = tu_xmalloc(M * K * sizeof *w);
                float *deq = tu_xmalloc(M * K * sizeof *deq);
                tu_fill_gauss(&rng, w, M * K, 1.0f);
                if (K >= 2) {
                    w[K] = w[K + 1]; /* a row with repeated values */
                    w[2 * K] = -w[2 * K + 1];
                }
                bp_matrix *m = tu_quantize(NULL, w, M, K, K, bits, (bp_quant_method)method, 0.0f);
                for (int n = 1; n <= bits; n++) {
                    for (size_t r = 0; r < M; r++) {
                        const float *c = bp__coef(m, n, r);
                        for (int p = 0; p < n; p++)
                            cr_assert(isfinite(c[p]),
                                      "K=%zu bits=%d method=%d: coef[n=%d][row %zu][%d] = %g", K,
                                      bits, method, n, r, p, (double)c[p]);
                    }
                    double e = bp_matrix_prefix_error(m, n);
                    cr_assert(isfinite(e) && e >= 0, "K=%zu method=%d prefix_error(%d)=%g", K,
                              method, n, e);
                    cr_assert(bp_matrix_dequantize(NULL, m, n, deq, K) == BP_OK);
                    for (size_t i = 0; i < M * K; i++)
                        cr_assert(isfinite(deq[i]), "K=%zu method=%d n=%d: deq[%zu]=%g", K, method,
                                  n, i, (double)deq[i]);
                }
                double num = 0, den = 0;
                for (size_t i = 0; i < M * K; i++) {
                    num += ((double)deq[i] - w[i]) * ((double)deq[i] - w[i]);
                    den += (double)w[i] * w[i];
                }
                /* Residual: the greedy digits of a 3-column row can repeat a sign
                 * pattern, so its 8 planes need not span R^K and the refit is
                 * not exact; 2e-4 was the worst of 300 random rows, whatever the
                 * group and rotation structure. */
                double tol = method == BP_QUANT_RESIDUAL ? 1e-3 : 1e-2;
                cr_assert(sqrt(num / den) <= tol,
                          "K=%zu bits=%d method=%d: full-precision error %g (tol %g); seed=%llu", K,
                          bits, method, sqrt(num / den), tol, seed);
                /* gemm on it works and is finite. */
                float x[3] = {0.5f, -1.0f, 2.0f}, y[5];
                bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
                bp_status st = bp_gemm(ctx, m, x, 1, K, y, M, NULL);
                bp_context_destroy(ctx);
                cr_assert(st == BP_OK, "bp_gemm: %s (%s)", bp_status_string(st), bp_last_error());
                for (size_t r = 0; r < M; r++)
                    cr_assert(isfinite(y[r]));
                bp_matrix_destroy(m);
                free(w);
                free(deq);
            }
}

/* All-zero weights: error 0, dequantize 0, output exactly the bias. */
Test(quantizer, zero_weights) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    size_t M = 9, K = 70;
    float *w = tu_xcalloc(M * K, sizeof *w);
    float *deq = tu_xmalloc(M * K * sizeof *deq);
    float x[70], y[9], bias[9];
    tu_fill_gauss(&rng, x, K, 1.0f);
    tu_fill_gauss(&rng, bias, M, 1.0f);
    for (int method = 0; method < 2; method++) {
        /* The whole matrix is zero. */
        bp_matrix *m = tu_quantize(ctx, w, M, K, K, 8, (bp_quant_method)method, 0.0f);
        for (int n = 1; n <= 8; n++) {
            cr_assert_eq(bp_matrix_prefix_error(m, n), 0.0, "all-zero W: prefix_error(%d)=%g", n,
                         bp_matrix_prefix_error(m, n));
            cr_assert(bp_matrix_dequantize(ctx, m, n, deq, K) == BP_OK);
            for (size_t i = 0; i < M * K; i++)
                cr_assert(deq[i] == 0.0f, "all-zero W dequantizes to %g at %zu", (double)deq[i], i);
            bp_run_options o = tu_run(n, 8);
            o.bias = bias;
            cr_assert(bp_gemm(ctx, m, x, 1, K, y, M, &o) == BP_OK);
            for (size_t r = 0; r < M; r++)
                cr_assert(tu_bits(y[r]) == tu_bits(bias[r]),
                          "all-zero W: y[%zu]=%a, expected bias %a", r, (double)y[r],
                          (double)bias[r]);
        }
        bp_matrix_destroy(m);
        /* A zero row among nonzero rows gives exactly its bias. */
        tu_fill_gauss(&rng, w, M * K, 1.0f);
        for (size_t j = 0; j < K; j++)
            w[4 * K + j] = 0.0f;
        m = tu_quantize(ctx, w, M, K, K, 8, (bp_quant_method)method, 0.0f);
        bp_run_options o = tu_run(0, 8);
        o.bias = bias;
        cr_assert(bp_gemm(ctx, m, x, 1, K, y, M, &o) == BP_OK);
        cr_assert(tu_bits(y[4]) == tu_bits(bias[4]), "zero row: y=%a, expected bias %a",
                  (double)y[4], (double)bias[4]);
        bp_matrix_destroy(m);
        memset(w, 0, M * K * sizeof *w);
    }
    free(w);
    free(deq);
    bp_context_destroy(ctx);
}

/*
 * Weight error bounds on Gaussian rows of 4096 at the default structure
 * (groups of 32 + rotation 256); measured values in README "Numerics". The
 * residual bounds fail for plain greedy coding (.156 at 4 planes, .074 at 8)
 * and the uniform ones for per-row scales (.111 / .0099 at 4 / 8 planes) and
 * for groups of 64 (.096 / .0060).
 */
Test(quantizer, gaussian_error_bounds) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const size_t M = 128, K = 4096;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 0.02f);
    static const struct {
        bp_quant_method method;
        double max_err[8];
    } cases[] = {
        /* 1024 rows gave .609 .349 .178 .089 .044 .022 .011 .0054 and
         * .609 .336 .182 .101 .054 .029 .015 .0076; the largest of 12
         * seeds of 128 rows .610 .350 .178 .0888 .0440 .0217 .0107 .0055
         * and .610 .337 .183 .102 .055 .029 .015 .0076; the margins
         * cover that spread. */
        {BP_QUANT_UNIFORM, {0.63, 0.36, 0.185, 0.093, 0.0465, 0.0229, 0.0114, 0.0058}},
        {BP_QUANT_RESIDUAL, {0.63, 0.35, 0.19, 0.108, 0.059, 0.032, 0.0165, 0.0084}},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        bp_quant_options q = BP_QUANT_OPTIONS_INIT;
        q.method = cases[i].method;
        bp_matrix *m = tu_quantize_opts(NULL, w, M, K, K, &q);
        for (int n = 1; n <= 8; n++) {
            double e = bp_matrix_prefix_error(m, n);
            cr_assert(e < cases[i].max_err[n - 1],
                      "%s, %d planes: weight error %.4f, bound %.4f; seed=%llu",
                      i ? "residual" : "uniform", n, e, cases[i].max_err[n - 1], seed);
        }
        bp_matrix_destroy(m);
    }
    free(w);
}

/* Non-negative inputs keep the unsigned activation mode: the default
 * rotation is none when the caller says so or every calibration sample is
 * >= 0; an explicit block still rotates, and signed samples keep the
 * default. */
Test(quantizer, nonnegative_inputs_skip_default_rotation) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const size_t M = 16, K = 256, S = 8;
    float *w = tu_xmalloc(M * K * sizeof *w), *x = tu_xmalloc(S * K * sizeof *x);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    tu_fill_gauss(&rng, x, S * K, 1.0f);
    for (size_t i = 0; i < S * K; i++)
        x[i] = fabsf(x[i]);
    struct {
        int nonneg, rotation;
        bool calibrate, signed_sample;
        int expect;
    } cases[] = {
        {0, 0, false, false, BP_DEFAULT_ROTATION},
        {1, 0, false, false, 0},
        {1, 64, false, false, 64},
        {0, 0, true, false, 0},
        {0, 0, true, true, BP_DEFAULT_ROTATION},
        {0, 16, true, false, 16},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        bp_quant_options q = BP_QUANT_OPTIONS_INIT;
        q.nonnegative_inputs = cases[i].nonneg;
        q.rotation = cases[i].rotation;
        x[S * K - 1] = cases[i].signed_sample ? -0.5f : 0.5f;
        if (cases[i].calibrate) {
            q.calibration = x;
            q.calibration_count = S;
            q.calibration_ld = K;
        }
        bp_matrix *m = tu_quantize_opts(NULL, w, M, K, K, &q);
        cr_assert_eq(bp_matrix_rotation(m), cases[i].expect,
                     "case %zu: rotation %d, expected %d; seed=%llu", i, bp_matrix_rotation(m),
                     cases[i].expect, seed);
        if (!cases[i].expect) {
            /* Unrotated: the non-negative column is quantized unsigned
             * (L = 15 at act_bits 4; signed would be L = 7), so y is the
             * dequantized weights times q s_x with that rule. */
            bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
            float *y = tu_xmalloc(M * sizeof *y), *deq = tu_xmalloc(M * K * sizeof *deq);
            const float *xin = x;
            bp_run_options run = BP_RUN_OPTIONS_INIT;
            run.act_bits = 4;
            cr_assert(bp_gemm(ctx, m, xin, 1, K, y, M, &run) == BP_OK, "%s", bp_last_error());
            cr_assert(bp_matrix_dequantize(NULL, m, 0, deq, K) == BP_OK);
            float mx = 0;
            for (size_t j = 0; j < K; j++)
                mx = fmaxf(mx, xin[j]);
            const float inv = 15.0f / mx;
            for (size_t r = 0; r < M; r++) {
                double ref = 0, mag = 0;
                for (size_t j = 0; j < K; j++) {
                    double xq = (double)rintf(xin[j] * inv) * ((double)mx / 15.0);
                    ref += (double)deq[r * K + j] * xq;
                    mag += fabs((double)deq[r * K + j] * xin[j]);
                }
                cr_assert(fabs(y[r] - ref) <= 1e-5 * mag,
                          "case %zu row %zu: y %g but the unsigned 4-bit rule gives %g; "
                          "seed=%llu",
                          i, r, (double)y[r], ref, seed);
            }
            free(y);
            free(deq);
            bp_context_destroy(ctx);
        }
        bp_matrix_destroy(m);
    }
    free(w);
    free(x);
}
