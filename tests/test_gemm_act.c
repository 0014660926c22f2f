/*
 * bp_gemm_act: y must equal bp_gemm's y with the activation applied, bit
 * for bit, on every backend and kernel path present (the CPU applies it in
 * its combine, other backends after the product), for both quantizers, per
 * row plane counts, zero columns, with and without a bias, on 1 and 2
 * threads and at batches that reach the batched kernels. Bad arguments and
 * non-finite inputs fail before any work; an overflow is reported even
 * when the ReLU turned its -Inf into 0.
 */
#include "test_util.h"

#include "tu_criterion.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gemm_act, .fini = tu_suite_fini);

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static tu_target kAllPaths[] = {TU_ALL_TARGETS};

static float relu(float v) {
    return v > 0.0f ? v : 0.0f;
}

static bp_matrix *random_matrix(bp_context *ctx, tu_rng *rng, size_t rows, size_t cols) {
    float *w = tu_xmalloc(rows * cols * sizeof *w);
    tu_fill_gauss(rng, w, rows * cols, 0.1f);
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.bits = tu_range(rng, 0, 3) ? 8 : (int)tu_range(rng, 2, 6);
    q.method = tu_range(rng, 0, 3) ? BP_QUANT_UNIFORM : BP_QUANT_RESIDUAL;
    if (tu_range(rng, 0, 1)) {
        q.group_size = BP_GROUP_PER_ROW;
        q.rotation = BP_ROTATION_NONE;
    }
    uint8_t *counts = NULL;
    if (tu_range(rng, 0, 3) == 0) { /* per-row plane counts */
        counts = tu_xmalloc(rows);
        for (size_t r = 0; r < rows; r++)
            counts[r] = (uint8_t)tu_range(rng, 1, (uint64_t)q.bits);
        q.row_planes = counts;
    }
    bp_matrix *m = tu_quantize_opts(ctx, w, rows, cols, cols, &q);
    free(counts);
    free(w);
    return m;
}

ParameterizedTestParameters(gemm_act, relu_is_gemm_then_relu) {
    return cr_make_param_array(tu_target, kAllPaths, NELEM(kAllPaths));
}

ParameterizedTest(tu_target *target, gemm_act, relu_is_gemm_then_relu, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const char *path = tu_target_name(target);
    static const size_t shapes[][2] = {{10, 128}, {256, 64}, {7, 31}, {300, 100}, {16, 513}};
    static const size_t batches[] = {1, 3, 17, 70};
    size_t negative = 0; /* outputs the ReLU clipped: the test must see some */
    for (int threads = 1; threads <= 2; threads++) {
        bp_context *ctx = tu_target_context(target, threads);
        for (size_t s = 0; s < NELEM(shapes); s++) {
            const size_t rows = shapes[s][0], cols = shapes[s][1];
            bp_matrix *m = random_matrix(ctx, &rng, rows, cols);
            const size_t batch = batches[tu_range(&rng, 0, NELEM(batches) - 1)];
            const size_t ldx = cols + tu_range(&rng, 0, 2), ldy = rows + tu_range(&rng, 0, 2);
            float *x = tu_xmalloc(batch * ldx * sizeof *x);
            float *bias = tu_xmalloc(rows * sizeof *bias);
            float *y_plain = tu_xmalloc(batch * ldy * sizeof *y_plain);
            float *y = tu_xmalloc(batch * ldy * sizeof *y);
            tu_fill_gauss(&rng, x, batch * ldx, 1.0f);
            for (size_t j = 0; j < cols && batch > 1; j++) /* a zero column: the bias alone */
                x[(batch / 2) * ldx + j] = 0.0f;
            tu_fill_gauss(&rng, bias, rows, 0.5f);
            const int planes = (int)tu_range(&rng, 0, (uint64_t)bp_matrix_bits(m));
            bp_run_options o = tu_run(planes, tu_range(&rng, 0, 1) ? 8 : 4);
            o.bias = tu_range(&rng, 0, 2) ? bias : NULL;
            for (int act = BP_ACTIVATION_NONE; act <= BP_ACTIVATION_RELU; act++) {
                tu_fill_sentinel(y_plain, batch * ldy);
                tu_fill_sentinel(y, batch * ldy);
                bp_status st = bp_gemm(ctx, m, x, batch, ldx, y_plain, ldy, &o);
                cr_assert(st == BP_OK, "%s: bp_gemm: %s; seed=%llu", path, bp_last_error(), seed);
                st = bp_gemm_act(ctx, m, x, batch, ldx, y, ldy, &o, (bp_activation)act);
                cr_assert(st == BP_OK, "%s: bp_gemm_act: %s; seed=%llu", path, bp_last_error(),
                          seed);
                for (size_t b = 0; b < batch; b++) {
                    for (size_t r = 0; r < rows; r++) {
                        const float v = y_plain[b * ldy + r];
                        const float e = act == BP_ACTIVATION_RELU ? relu(v) : v;
                        negative += v < 0.0f;
                        cr_assert(tu_bits(y[b * ldy + r]) == tu_bits(e),
                                  "%s, %d threads, activation %d, %zu x %zu, batch %zu: y[%zu] "
                                  "of column %zu is %a, expected %a; seed=%llu",
                                  path, threads, act, rows, cols, batch, r, b,
                                  (double)y[b * ldy + r], (double)e, seed);
                    }
                    cr_assert(tu_find_non_sentinel(y + b * ldy + rows, ldy - rows) < 0,
                              "%s: wrote into the ldy gap; seed=%llu", path, seed);
                }
            }
            free(x);
            free(bias);
            free(y_plain);
            free(y);
            bp_matrix_destroy(m);
        }
        bp_context_destroy(ctx);
    }
    cr_assert(negative > 0, "%s: no negative output to clip; seed=%llu", path, seed);
}

/* An unknown activation, NULL arguments and non-finite inputs fail before
 * any work: status, message, y untouched. */
Test(gemm_act, bad_arguments_leave_y_untouched) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    enum { ROWS = 20, COLS = 40, BATCH = 5 };
    float w[ROWS * COLS], x[BATCH * COLS], y[BATCH * ROWS];
    tu_fill_gauss(&rng, w, ROWS * COLS, 0.1f);
    tu_fill_gauss(&rng, x, BATCH * COLS, 1.0f);
    bp_matrix *m = tu_quantize(ctx, w, ROWS, COLS, COLS, 8, BP_QUANT_UNIFORM, 0.0f);
    bp_run_options o = tu_run(4, 8);

    tu_fill_sentinel(y, BATCH * ROWS);
    bp_status st = bp_gemm_act(ctx, m, x, BATCH, COLS, y, ROWS, &o, (bp_activation)7);
    cr_assert_eq(st, BP_ERR_INVALID_ARGUMENT);
    cr_assert(strstr(bp_last_error(), "activation must be") && strstr(bp_last_error(), "got 7"),
              "message: %s", bp_last_error());
    cr_assert_eq(tu_find_non_sentinel(y, BATCH * ROWS), -1, "y was written");

    st = bp_gemm_act(NULL, m, x, BATCH, COLS, y, ROWS, &o, BP_ACTIVATION_RELU);
    cr_assert_eq(st, BP_ERR_INVALID_ARGUMENT);
    cr_assert(strstr(bp_last_error(), "bp_gemm_act: ctx must not be NULL"), "message: %s",
              bp_last_error());

    x[3 * COLS + 11] = NAN;
    st = bp_gemm_act(ctx, m, x, BATCH, COLS, y, ROWS, &o, BP_ACTIVATION_RELU);
    cr_assert_eq(st, BP_ERR_NON_FINITE);
    cr_assert(strstr(bp_last_error(), "x: column 3, element 11 is NaN"), "message: %s",
              bp_last_error());
    cr_assert_eq(tu_find_non_sentinel(y, BATCH * ROWS), -1, "y was written");
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
}

/* A product that overflows to -Inf is 0 after the ReLU, and still reported;
 * one that overflows to +Inf keeps its Inf and its row. */
Test(gemm_act, overflow_under_relu_is_reported) {
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    enum { ROWS = 2, COLS = 64 };
    float w[ROWS * COLS], x[COLS], y[ROWS];
    for (size_t j = 0; j < COLS; j++) {
        w[j] = -1e20f;       /* row 0: W x = -Inf */
        w[COLS + j] = 1e-3f; /* row 1: finite */
        x[j] = 1e20f;
    }
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.group_size = BP_GROUP_PER_ROW;
    q.rotation = BP_ROTATION_NONE;
    bp_matrix *m = tu_quantize_opts(ctx, w, ROWS, COLS, COLS, &q);
    bp_run_options o = tu_run(0, 8);
    bp_status st = bp_gemm(ctx, m, x, 1, COLS, y, ROWS, &o);
    cr_assert_eq(st, BP_ERR_NON_FINITE, "bp_gemm: %s", bp_last_error());
    cr_assert(isinf(y[0]) && y[0] < 0, "bp_gemm y[0] = %g", (double)y[0]);
    st = bp_gemm_act(ctx, m, x, 1, COLS, y, ROWS, &o, BP_ACTIVATION_RELU);
    cr_assert_eq(st, BP_ERR_NON_FINITE, "bp_gemm_act: %s", bp_last_error());
    cr_assert(
        strstr(bp_last_error(), "column 0 overflowed the float range to -Inf before the ReLU"),
        "message: %s", bp_last_error());
    cr_assert(tu_bits(y[0]) == 0 && isfinite(y[1]), "y = %g %g", (double)y[0], (double)y[1]);
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
}
