/*
 * Accuracy against fp64 references (relative error over the whole output,
 * never per element):
 *  - y vs dequantize(n) times the quantized activations (q recomputed here by
 *    the documented rule, in double): within float rounding;
 *  - dequantize(n) vs the planes and coefficient table read directly;
 *  - y vs the unquantized product: the error shrinks as planes grow.
 */
#include "test_util.h"
#include "bp_abi.h"

#include "tu_criterion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(accuracy, .fini = tu_suite_fini);

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void fill_x(tu_rng *rng, float *x, size_t cols, size_t batch) {
    for (size_t b = 0; b < batch; b++) {
        tu_fill_gauss(rng, x + b * cols, cols, 1.0f);
        if (b % 3 == 1) /* post-ReLU column: unsigned mode */
            for (size_t j = 0; j < cols; j++)
                x[b * cols + j] = fabsf(x[b * cols + j]);
    }
}

Test(accuracy, vs_fp64_dequantized_times_quantized_acts, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    static const struct {
        size_t rows, cols;
        int bits;
    } shapes[] = {{7, 31, 8}, {33, 513, 8}, {64, 1000, 16}, {16, 4097, 8}, {100, 3, 4}};
    static const int act_bits_list[] = {1, 2, 4, 8, 12, 16};
    for (size_t s = 0; s < NELEM(shapes); s++)
        for (int method = 0; method < 2; method++) {
            size_t M = shapes[s].rows, K = shapes[s].cols, B = 5;
            int bits = shapes[s].bits;
            float *w = tu_xmalloc(M * K * sizeof *w);
            tu_fill_gauss(&rng, w, M * K, 0.05f);
            bp_matrix *m = tu_quantize(ctx, w, M, K, K, bits, (bp_quant_method)method, 0.0f);
            float *deq = tu_xmalloc(M * K * sizeof *deq);
            float *x = tu_xmalloc(B * K * sizeof *x);
            float *y = tu_xmalloc(B * M * sizeof *y);
            float *bias = tu_xmalloc(M * sizeof *bias);
            double *xq = tu_xmalloc(B * K * sizeof *xq);
            double *yr = tu_xmalloc(B * M * sizeof *yr);
            int32_t *q = tu_xmalloc(K * sizeof *q);
            for (int planes = 1; planes <= bits; planes++) {
                bp_status st = bp_matrix_dequantize(NULL, m, planes, deq, K);
                cr_assert(st == BP_OK, "dequantize: %s (%s)", bp_status_string(st),
                          bp_last_error());
                for (size_t a = 0; a < NELEM(act_bits_list); a++) {
                    int act_bits = act_bits_list[a];
                    fill_x(&rng, x, K, B);
                    tu_fill_gauss(&rng, bias, M, 0.1f);
                    int use_bias = (planes + (int)a) % 2;
                    for (size_t b = 0; b < B; b++) {
                        tu_act info;
                        tu_quantize_act(x + b * K, K, act_bits, 0.0f, q, &info);
                        double sc = act_bits == 1 ? info.scale_mean : (double)info.scale;
                        for (size_t j = 0; j < K; j++)
                            xq[b * K + j] = sc * (double)q[j];
                    }
                    tu_gemm_f64(deq, M, K, K, xq, B, K, yr, M);
                    if (use_bias)
                        for (size_t b = 0; b < B; b++)
                            for (size_t r = 0; r < M; r++)
                                yr[b * M + r] += bias[r];
                    bp_run_options o = tu_run(planes, act_bits);
                    o.bias = use_bias ? bias : NULL;
                    st = bp_gemm(ctx, m, x, B, K, y, M, &o);
                    cr_assert(st == BP_OK, "bp_gemm: %s (%s)", bp_status_string(st),
                              bp_last_error());
                    double e = tu_rel_err(yr, y, M, B, M);
                    cr_assert(e <= 4e-6,
                              "relative error %g vs fp64 dequantize(n) x quantized activations "
                              "exceeds float rounding; M=%zu K=%zu bits=%d method=%d planes=%d "
                              "act_bits=%d bias=%d seed=%llu",
                              e, M, K, bits, method, planes, act_bits, use_bias, seed);
                }
            }
            free(w);
            free(deq);
            free(x);
            free(y);
            free(bias);
            free(xq);
            free(yr);
            free(q);
            bp_matrix_destroy(m);
        }
    bp_context_destroy(ctx);
}

/* dequantize(n) equals sum_p c[n][row][p] t_p read from the internal layout. */
Test(accuracy, dequantize_matches_planes_and_coefficients) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    static const struct {
        size_t rows, cols;
        int bits;
    } shapes[] = {{7, 31, 8}, {17, 513, 16}, {1, 1, 3}, {40, 100, 1}};
    for (size_t s = 0; s < NELEM(shapes); s++)
        for (int method = 0; method < 2; method++) {
            size_t M = shapes[s].rows, K = shapes[s].cols, ld = K + 2;
            int bits = shapes[s].bits;
            float *w = tu_xmalloc(M * K * sizeof *w);
            tu_fill_gauss(&rng, w, M * K, 1.0f);
            bp_matrix *m = tu_quantize(NULL, w, M, K, K, bits, (bp_quant_method)method, 0.0f);
            float *deq = tu_xmalloc(M * ld * sizeof *deq);
            for (int n = 1; n <= bits; n++) {
                tu_fill_sentinel(deq, M * ld);
                bp_status st = bp_matrix_dequantize(NULL, m, n, deq, ld);
                cr_assert(st == BP_OK, "dequantize: %s (%s)", bp_status_string(st),
                          bp_last_error());
                double num = 0, den = 0;
                for (size_t r = 0; r < M; r++) {
                    const float *c = bp__coef(m, n, r);
                    for (size_t j = 0; j < K; j++) {
                        double v = 0;
                        for (int p = 0; p < n; p++)
                            v += (double)c[p] * tu_plane_sign(m, p, r, j);
                        double d = v - deq[r * ld + j];
                        num += d * d;
                        den += v * v;
                    }
                    for (size_t j = K; j < ld; j++)
                        cr_assert(tu_bits(deq[r * ld + j]) == TU_SENTINEL_BITS,
                                  "dequantize wrote into the ld gap at row %zu col %zu", r, j);
                }
                cr_assert(sqrt(num / den) <= 1e-6,
                          "dequantize(%d) differs from sum c*t by %g; M=%zu K=%zu bits=%d "
                          "method=%d seed=%llu",
                          n, sqrt(num / den), M, K, bits, method, seed);
            }
            free(w);
            free(deq);
            bp_matrix_destroy(m);
        }
}

/* Error vs the unquantized product shrinks as planes grow. */
Test(accuracy, error_vs_exact_product_shrinks_with_planes, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    size_t M = 256, K = 512, B = 8;
    float *w = tu_xmalloc(M * K * sizeof *w);
    float *x = tu_xmalloc(B * K * sizeof *x);
    double *xd = tu_xmalloc(B * K * sizeof *xd);
    double *yr = tu_xmalloc(B * M * sizeof *yr);
    float *y = tu_xmalloc(B * M * sizeof *y);
    /* uniform with automatic clip, uniform with clip 1, residual */
    for (int variant = 0; variant < 3; variant++) {
        bp_quant_method method = variant == 2 ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
        float clip = variant == 1 ? 1.0f : 0.0f;
        int bits = method == BP_QUANT_UNIFORM ? 10 : 8;
        tu_fill_gauss(&rng, w, M * K, 0.05f);
        fill_x(&rng, x, K, B);
        for (size_t i = 0; i < B * K; i++)
            xd[i] = x[i];
        tu_gemm_f64(w, M, K, K, xd, B, K, yr, M);
        bp_matrix *m = tu_quantize(ctx, w, M, K, K, bits, method, clip);
        double err[17];
        for (int n = 1; n <= bits; n++) {
            bp_run_options o = tu_run(n, 16);
            bp_status st = bp_gemm(ctx, m, x, B, K, y, M, &o);
            cr_assert(st == BP_OK, "bp_gemm: %s (%s)", bp_status_string(st), bp_last_error());
            err[n] = tu_rel_err(yr, y, M, B, M);
            cr_assert(isfinite(err[n]));
        }
        for (int n = 2; n <= bits; n++) {
            /* Clip 1: strictly shrinking. Automatic clip and residual plateau
             * (clipping / greedy coding error), so allow sampling noise. */
            double slack = variant == 1 ? 1.0 : variant == 0 ? 1.02 : 1.1;
            cr_assert(variant == 1 ? err[n] < err[n - 1] : err[n] <= err[n - 1] * slack,
                      "variant %d (method %d clip %g): output error did not shrink from %d to "
                      "%d planes: %g -> %g seed=%llu",
                      variant, (int)method, (double)clip, n - 1, n, err[n - 1], err[n], seed);
        }
        cr_assert(err[bits] < 0.5 * err[1],
                  "variant %d: error at %d planes (%g) not well below 1 plane (%g) seed=%llu",
                  variant, bits, err[bits], err[1], seed);
        if (variant == 1)
            cr_assert(err[bits] < 0.01, "uniform clip 1, 10 bits: output error %g seed=%llu",
                      err[bits], seed);
        if (variant == 0)
            cr_assert(err[4] < 0.2, "uniform auto clip, 4 bits: output error %g seed=%llu", err[4],
                      seed);
        bp_matrix_destroy(m);
    }
    free(w);
    free(x);
    free(xd);
    free(yr);
    free(y);
    bp_context_destroy(ctx);
}

/* Weights near FLT_MAX: every path and quantizer gives finite y or
 * BP_ERR_NON_FINITE with a reason, never a silent Inf with BP_OK. */
Test(accuracy, huge_weights_never_silent_inf) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    /* Batch 3 takes the per-call kernels, 17 the batched one. */
    enum { M = 9, K = 70, B = 17 };
    static const size_t batches[] = {3, B};
    float *w = tu_xmalloc(M * K * sizeof *w), x[K * B], y[M * B];
    for (size_t i = 0; i < M * K; i++)
        w[i] = (tu_range(&rng, 0, 1) ? 3e38f : -3e38f) * (float)(0.5 + 0.5 * tu_uniform(&rng));
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    for (int method = 0; method < 2; method++)
        for (int structure = 0; structure < 2; structure++) {
            bp_quant_options q = BP_QUANT_OPTIONS_INIT;
            q.bits = 8;
            q.method = (bp_quant_method)method;
            if (structure) {
                q.group_size = BP_GROUP_PER_ROW;
                q.rotation = BP_ROTATION_NONE;
            }
            bp_matrix *m = tu_quantize_opts(ctx, w, M, K, K, &q);
            for (int scale = 0; scale < 3; scale++) {
                /* Small inputs keep the true y finite; large ones do not. */
                tu_fill_gauss(&rng, x, K * B, scale == 0 ? 1e-6f : scale == 1 ? 1e-3f : 1.0f);
                for (int nb = 0; nb < 6; nb++) {
                    const int n = 1 + 3 * (nb / 2);
                    const size_t batch = batches[nb % 2];
                    bp_run_options o = tu_run(n, 8);
                    bp_status st = bp_gemm(ctx, m, x, batch, K, y, M, &o);
                    bool finite = true;
                    for (size_t i = 0; i < M * batch; i++)
                        finite &= isfinite(y[i]) != 0;
                    cr_assert(st == BP_ERR_NON_FINITE || (st == BP_OK && finite),
                              "method %d structure %d scale %d planes %d batch %zu: status %s "
                              "with %s y; seed=%llu",
                              method, structure, scale, n, batch, bp_status_string(st),
                              finite ? "finite" : "non-finite", seed);
                    if (st == BP_ERR_NON_FINITE)
                        cr_assert(strstr(bp_last_error(), "overflow") != NULL, "%s",
                                  bp_last_error());
                    if (scale == 0)
                        cr_assert(st == BP_OK,
                                  "method %d structure %d planes %d: |y| ~ 1e34 fits float: %s",
                                  method, structure, n, bp_last_error());
                }
            }
            bp_matrix_destroy(m);
        }
    bp_context_destroy(ctx);
    free(w);
}

/* ||(W - W_n) X|| / ||W X|| over the samples (vectors of K, ld K). */
static double output_error(const float *w, const float *wn, size_t M, size_t K, const float *x,
                           size_t count) {
    double num = 0, den = 0;
    for (size_t c = 0; c < count; c++)
        for (size_t r = 0; r < M; r++) {
            double t = 0, d = 0;
            for (size_t j = 0; j < K; j++) {
                t += (double)w[r * K + j] * x[c * K + j];
                d += ((double)w[r * K + j] - wn[r * K + j]) * x[c * K + j];
            }
            num += d * d;
            den += t * t;
        }
    return sqrt(num / den);
}

/* Calibration lowers the output error on correlated, unevenly scaled
 * activations at the target plane count (measured on held-out samples), for
 * per-row and grouped, rotated and plain matrices. */
Test(accuracy, calibration_lowers_output_error, .timeout = 120) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    enum { M = 48, K = 128, N = 512 };
    float *w = tu_xmalloc(M * K * sizeof *w), *x = tu_xmalloc(2 * N * K * sizeof *x);
    float *wn = tu_xmalloc(M * K * sizeof *wn);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    /* Activations: a few shared factors plus noise, channel scales 0.1..10. */
    float scale[K], mix[8][K];
    for (size_t j = 0; j < K; j++)
        scale[j] = (float)pow(10.0, 2.0 * tu_uniform(&rng) - 1.0);
    tu_fill_gauss(&rng, &mix[0][0], 8 * K, 1.0f);
    for (size_t c = 0; c < 2 * N; c++) {
        float f[8];
        tu_fill_gauss(&rng, f, 8, 1.0f);
        for (size_t j = 0; j < K; j++) {
            float v = 0.3f * (float)tu_gauss(&rng);
            for (int i = 0; i < 8; i++)
                v += f[i] * mix[i][j];
            x[c * K + j] = v * scale[j];
        }
    }
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    for (int structure = 0; structure < 2; structure++)
        for (int t = 3; t <= 4; t++) {
            bp_quant_options q = BP_QUANT_OPTIONS_INIT;
            q.bits = 8;
            if (structure == 0) {
                q.group_size = BP_GROUP_PER_ROW;
                q.rotation = BP_ROTATION_NONE;
            }
            bp_matrix *plain = tu_quantize_opts(ctx, w, M, K, K, &q);
            q.calibration = x;
            q.calibration_count = N;
            q.calibration_ld = K;
            q.calibration_planes = t;
            bp_matrix *cal = tu_quantize_opts(ctx, w, M, K, K, &q);
            /* Held-out samples: the second half. */
            cr_assert_eq(bp_matrix_dequantize(NULL, plain, t, wn, K), BP_OK);
            double e_plain = output_error(w, wn, M, K, x + N * K, N);
            cr_assert_eq(bp_matrix_dequantize(NULL, cal, t, wn, K), BP_OK);
            double e_cal = output_error(w, wn, M, K, x + N * K, N);
            cr_assert(e_cal < 0.9 * e_plain,
                      "structure %d, %d planes: calibrated output error %.4f vs %.4f; seed=%llu",
                      structure, t, e_cal, e_plain, seed);
            bp_matrix_destroy(plain);
            bp_matrix_destroy(cal);
        }
    bp_context_destroy(ctx);
    free(w);
    free(wn);
    free(x);
}
