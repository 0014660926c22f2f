/*
 * Conformance: one table of (shape x planes x act_bits x batch x quantizer)
 * runs on every backend and kernel path present (CPU kernels, CUDA popcount
 * and MMA, OpenCL; absent ones skip with the reason), and y must equal the REFERENCE
 * path bit for bit (act_bits >= 2) or within float tolerance (act_bits 1).
 * The REFERENCE path itself is checked bit for bit against an independent
 * implementation of the documented rule (tests/test_util.c).
 * Per-column plane counts must equal single calls bit for bit. Half the
 * matrices carry random group multipliers.
 *
 * The cartesian product is sampled: every act_bits x planes combination on a
 * few shapes, and every shape with a few knob settings.
 */
#include "test_util.h"
#include "bp_abi.h"

#include "tu_criterion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(conformance, .fini = tu_suite_fini);

static const size_t kM[] = {1, 7, 16, 33, 100};
static const size_t kK[] = {1, 3, 31, 64, 100, 511, 513, 1000, 4097};
static const int kActBits[] = {1, 2, 4, 8, 12, 16};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct gemm_case {
    size_t rows, cols, ldw;
    int bits;
    bp_quant_method method;
    int planes;
    int act_bits;
    size_t batch, ldx, ldy;
    int use_bias;
    float act_scale;
} gemm_case;

static const char *method_name(bp_quant_method m) {
    return m == BP_QUANT_UNIFORM ? "uniform" : "residual";
}

#define CASE_FMT                                                                                   \
    "M=%zu K=%zu bits=%d %s planes=%d act_bits=%d batch=%zu ldx=%zu ldy=%zu bias=%d act_scale=%g"
#define CASE_ARGS(c)                                                                               \
    (c)->rows, (c)->cols, (c)->bits, method_name((c)->method), (c)->planes, (c)->act_bits,         \
        (c)->batch, (c)->ldx, (c)->ldy, (c)->use_bias, (double)(c)->act_scale

/* Inputs mixing distributions per column: Gaussian (signed mode), ReLU
 * (unsigned mode), heavy tails, a wide dynamic range, tiny columns (max|x|
 * about 1e-35, below L / FLT_MAX) and subnormal ones (about 1e-39).
 * Never zero. */
static void fill_inputs(tu_rng *rng, float *x, size_t cols, size_t batch, size_t ldx) {
    for (size_t b = 0; b < batch; b++) {
        float *col = x + b * ldx;
        int kind = (int)tu_range(rng, 0, 5);
        tu_fill_gauss(rng, col, cols, 1.0f);
        for (size_t j = 0; j < cols; j++) {
            if (kind == 1)
                col[j] = fabsf(col[j]);
            else if (kind == 2)
                col[j] = col[j] * col[j] * col[j];
            else if (kind == 3)
                col[j] *= (float)pow(10.0, 4.0 * tu_uniform(rng) - 2.0);
            else if (kind == 4)
                col[j] *= 0x1p-116f;
            else if (kind == 5)
                col[j] = fabsf(col[j]) * 0x1p-130f;
        }
        for (size_t j = cols; j < ldx && b + 1 < batch; j++)
            col[j] = NAN; /* gaps between columns must never be read */
    }
}

static void run_ok(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch, size_t ldx,
                   float *y, size_t ldy, const bp_run_options *o, const char *path,
                   const gemm_case *c, unsigned long long seed) {
    bp_status st = bp_gemm(ctx, m, x, batch, ldx, y, ldy, o);
    cr_assert(st == BP_OK, "path %s: bp_gemm failed: %s (%s); " CASE_FMT " seed=%llu", path,
              bp_status_string(st), bp_last_error(), CASE_ARGS(c), seed);
}

/* Every backend's paths; absent ones skip with the reason. */
static tu_target kAllPaths[] = {TU_ALL_TARGETS};

static void gemm_ok_ext(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch,
                        size_t ldx, float *y, size_t ldy, const bp_run_options *o, const char *path,
                        unsigned long long seed) {
    bp_status st = bp_gemm(ctx, m, x, batch, ldx, y, ldy, o);
    cr_assert(st == BP_OK, "path %s: bp_gemm failed: %s (%s); seed=%llu", path,
              bp_status_string(st), bp_last_error(), seed);
}

/* Run one case on ref_ctx and ctx and compare. x/bias drawn here. */
static void check_case(bp_context *ref_ctx, bp_context *ctx, const char *path, const bp_matrix *m,
                       const gemm_case *c, tu_rng *rng, unsigned long long seed) {
    size_t xlen = (c->batch - 1) * c->ldx + c->cols;
    size_t ylen = c->batch * c->ldy;
    float *x = tu_xmalloc(xlen * sizeof *x);
    float *bias = tu_xmalloc(c->rows * sizeof *bias);
    float *y_ref = tu_xmalloc(ylen * sizeof *y_ref);
    float *y = tu_xmalloc(ylen * sizeof *y);
    fill_inputs(rng, x, c->cols, c->batch, c->ldx);
    tu_fill_gauss(rng, bias, c->rows, 0.5f);
    tu_fill_sentinel(y_ref, ylen);
    tu_fill_sentinel(y, ylen);

    bp_run_options o = tu_run(c->planes, c->act_bits);
    o.bias = c->use_bias ? bias : NULL;
    o.act_scale = c->act_scale;
    run_ok(ref_ctx, m, x, c->batch, c->ldx, y_ref, c->ldy, &o, "reference", c, seed);
    run_ok(ctx, m, x, c->batch, c->ldx, y, c->ldy, &o, path, c, seed);

    for (size_t b = 0; b < c->batch; b++) {
        long bad = tu_find_sentinel(y + b * c->ldy, c->rows);
        cr_assert(bad < 0, "path %s: y[%ld] of column %zu not written; " CASE_FMT " seed=%llu",
                  path, bad, b, CASE_ARGS(c), seed);
        bad = tu_find_non_sentinel(y + b * c->ldy + c->rows, c->ldy - c->rows);
        cr_assert(bad < 0,
                  "path %s: wrote into the ldy gap after column %zu; " CASE_FMT " seed=%llu", path,
                  b, CASE_ARGS(c), seed);
    }
    if (c->act_bits >= 2) {
        size_t r = 0, col = 0;
        long idx = tu_first_mismatch(y_ref, y, c->rows, c->batch, c->ldy, &r, &col);
        cr_assert(idx < 0,
                  "path %s differs from reference: first mismatch at row %zu col %zu: ref %a "
                  "(0x%08x) vs %a (0x%08x); " CASE_FMT " seed=%llu",
                  path, r, col, (double)y_ref[idx < 0 ? 0 : idx], tu_bits(y_ref[idx < 0 ? 0 : idx]),
                  (double)y[idx < 0 ? 0 : idx], tu_bits(y[idx < 0 ? 0 : idx]), CASE_ARGS(c), seed);
    } else {
        for (size_t b = 0; b < c->batch; b++) {
            double e = tu_rel_err_f(y_ref + b * c->ldy, y + b * c->ldy, c->rows, 1, c->ldy);
            cr_assert(e <= 1e-5,
                      "path %s: binary act column %zu rel err %g vs reference; " CASE_FMT
                      " seed=%llu",
                      path, b, e, CASE_ARGS(c), seed);
        }
    }
    free(x);
    free(bias);
    free(y_ref);
    free(y);
}

static bp_matrix *make_matrix(bp_context *ctx, tu_rng *rng, gemm_case *c) {
    float *w = tu_xmalloc(c->rows * c->ldw * sizeof *w);
    tu_fill_gauss_ld(rng, w, c->rows, c->cols, c->ldw, 0.1f, NAN);
    /* Every structure of docs/numerics.md: the defaults (groups of 32 and a
     * rotation), one scale per row, random group and rotation sizes, and
     * random multipliers on any of them. */
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.bits = c->bits;
    q.method = c->method;
    switch (tu_range(rng, 0, 2)) {
    case 0:
        break;
    case 1:
        q.group_size = BP_GROUP_PER_ROW;
        q.rotation = BP_ROTATION_NONE;
        break;
    default:
        q.group_size = tu_range(rng, 0, 3) ? 32 << tu_range(rng, 0, 5) : BP_GROUP_PER_ROW;
        q.rotation = tu_range(rng, 0, 3) ? 4 << 2 * tu_range(rng, 0, 5) : BP_ROTATION_NONE;
        q.rotation_seed = tu_next(rng);
    }
    bp_matrix *m = tu_quantize_opts(ctx, w, c->rows, c->cols, c->ldw, &q);
    free(w);
    if (tu_range(rng, 0, 2) == 0)
        tu_set_groups(m, (size_t)32 << tu_range(rng, 0, 4), rng);
    return m;
}

static void random_layout(tu_rng *rng, gemm_case *c) {
    c->batch = tu_range(rng, 1, 17);
    c->ldx = c->cols + (tu_range(rng, 0, 2) == 0 ? tu_range(rng, 1, 5) : 0);
    c->ldy = c->rows + (tu_range(rng, 0, 2) == 0 ? tu_range(rng, 1, 3) : 0);
    c->use_bias = (int)tu_range(rng, 0, 1);
    /* Mostly dynamic scale; sometimes a fixed scale that clips some inputs. */
    c->act_scale = tu_range(rng, 0, 4) == 0 ? (float)(0.2 * tu_uniform(rng) + 0.01) : 0.0f;
}

/* The paths compared against REFERENCE (all but REFERENCE itself). */
static tu_target *const kPathParams = kAllPaths + 1;
#define N_PATH_PARAMS (NELEM(kAllPaths) - 1)

/* Every act_bits x planes on a few shapes, both quantizers. */
ParameterizedTestParameters(conformance, knobs) {
    return cr_make_param_array(tu_target, kPathParams, N_PATH_PARAMS);
}

ParameterizedTest(tu_target *target, conformance, knobs, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_target_context(target, 2);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 2);
    const char *path = tu_target_name(target);

    static const struct {
        size_t rows, cols;
        int bits;
    } shapes[] = {{7, 31, 8}, {33, 513, 8}, {16, 64, 3}, {100, 1000, 16}};
    for (size_t s = 0; s < NELEM(shapes); s++)
        for (int method = 0; method < 2; method++) {
            if (shapes[s].bits == 16 && method == BP_QUANT_RESIDUAL)
                continue; /* keep the runtime modest */
            gemm_case c = {0};
            c.rows = shapes[s].rows;
            c.cols = shapes[s].cols;
            c.ldw = c.cols + (s % 2);
            c.bits = shapes[s].bits;
            c.method = (bp_quant_method)method;
            bp_matrix *m = make_matrix(ref, &rng, &c);
            for (int planes = 0; planes <= c.bits; planes++)
                for (size_t a = 0; a < NELEM(kActBits); a++) {
                    c.planes = planes;
                    c.act_bits = kActBits[a];
                    random_layout(&rng, &c);
                    if (c.rows * c.cols >= 100000)
                        c.batch = tu_range(&rng, 1, 5);
                    check_case(ref, ctx, path, m, &c, &rng, seed);
                }
            bp_matrix_destroy(m);
        }
    bp_context_destroy(ref);
    bp_context_destroy(ctx);
}

/* Every shape (odd M and K) with a few knob settings each. */
ParameterizedTestParameters(conformance, shapes) {
    return cr_make_param_array(tu_target, kPathParams, N_PATH_PARAMS);
}

ParameterizedTest(tu_target *target, conformance, shapes, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_target_context(target, 2);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 2);
    const char *path = tu_target_name(target);
    static const int bits_cycle[] = {1, 2, 5, 8, 16, 8, 4};
    size_t n = 0;
    for (size_t i = 0; i < NELEM(kM); i++)
        for (size_t k = 0; k < NELEM(kK); k++, n++) {
            gemm_case c = {0};
            c.rows = kM[i];
            c.cols = kK[k];
            c.ldw = c.cols + (n % 3 == 0 ? 3 : 0);
            c.bits = bits_cycle[n % NELEM(bits_cycle)];
            c.method = (bp_quant_method)(n % 2);
            bp_matrix *m = make_matrix(ref, &rng, &c);
            for (int rep = 0; rep < 3; rep++) {
                c.planes = (int)tu_range(&rng, 1, (size_t)c.bits);
                c.act_bits = rep == 0 ? 8 : kActBits[tu_range(&rng, 0, NELEM(kActBits) - 1)];
                random_layout(&rng, &c);
                check_case(ref, ctx, path, m, &c, &rng, seed);
            }
            bp_matrix_destroy(m);
        }
    bp_context_destroy(ref);
    bp_context_destroy(ctx);
}

/* K is padded to 64 bits only, so every kernel meets rows of any even number
 * of words: K around and between the 64-bit steps, with both quantizers, the
 * defaults (groups of 32, rotation) and random structures, at act_bits 8 and
 * one other each time. */
ParameterizedTestParameters(conformance, small_k) {
    return cr_make_param_array(tu_target, kPathParams, N_PATH_PARAMS);
}

ParameterizedTest(tu_target *target, conformance, small_k, .timeout = 300) {
    static const size_t Ks[] = {1, 31, 64, 65, 96, 128, 200, 256, 511, 513, 4096};
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_target_context(target, 2);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 2);
    const char *path = tu_target_name(target);
    for (size_t k = 0; k < NELEM(Ks); k++)
        for (int method = 0; method < 2; method++) {
            gemm_case c = {0};
            c.rows = tu_range(&rng, 1, 40);
            c.cols = Ks[k];
            c.ldw = c.cols + (k % 2);
            c.bits = method == BP_QUANT_UNIFORM ? 8 : 4;
            c.method = (bp_quant_method)method;
            bp_matrix *m = make_matrix(ref, &rng, &c);
            for (int rep = 0; rep < 2; rep++) {
                c.planes = (int)tu_range(&rng, 1, (size_t)c.bits);
                c.act_bits = rep == 0 ? 8 : kActBits[tu_range(&rng, 0, NELEM(kActBits) - 1)];
                random_layout(&rng, &c);
                check_case(ref, ctx, path, m, &c, &rng, seed);
            }
            bp_matrix_destroy(m);
        }
    bp_context_destroy(ref);
    bp_context_destroy(ctx);
}

/* The reference path equals an independent implementation of the documented
 * rule (activation quantization, exact D, fma combine) bit for bit. */
Test(conformance, reference_matches_spec, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    static const struct {
        size_t rows, cols;
        int bits;
    } shapes[] = {{1, 1, 8}, {7, 3, 4}, {16, 64, 8}, {33, 513, 8}, {5, 1000, 16}, {17, 100, 1}};
    for (size_t s = 0; s < NELEM(shapes); s++)
        for (int method = 0; method < 2; method++) {
            gemm_case c = {0};
            c.rows = shapes[s].rows;
            c.cols = shapes[s].cols;
            c.ldw = c.cols;
            c.bits = shapes[s].bits;
            c.method = (bp_quant_method)method;
            bp_matrix *m = make_matrix(ref, &rng, &c);
            for (size_t a = 0; a < NELEM(kActBits); a++) {
                int act_bits = kActBits[a];
                int planes = (int)tu_range(&rng, 1, (size_t)c.bits);
                size_t batch = tu_range(&rng, 1, 6);
                float *x = tu_xmalloc(batch * c.cols * sizeof *x);
                float *bias = tu_xmalloc(c.rows * sizeof *bias);
                float *y = tu_xmalloc(batch * c.rows * sizeof *y);
                float *e = tu_xmalloc(c.rows * sizeof *e);
                fill_inputs(&rng, x, c.cols, batch, c.cols);
                tu_fill_gauss(&rng, bias, c.rows, 1.0f);
                int use_bias = (int)tu_range(&rng, 0, 1);
                bp_run_options o = tu_run(planes, act_bits);
                o.bias = use_bias ? bias : NULL;
                bp_status st = bp_gemm(ref, m, x, batch, c.cols, y, c.rows, &o);
                cr_assert(st == BP_OK, "bp_gemm: %s (%s) seed=%llu", bp_status_string(st),
                          bp_last_error(), seed);
                for (size_t b = 0; b < batch; b++) {
                    tu_exact_column(m, x + b * c.cols, planes, act_bits, 0.0f,
                                    use_bias ? bias : NULL, e);
                    if (act_bits >= 2) {
                        size_t r = 0;
                        long idx =
                            tu_first_mismatch(e, y + b * c.rows, c.rows, 1, c.rows, &r, NULL);
                        cr_assert(idx < 0,
                                  "reference path differs from the documented rule at row %zu "
                                  "col %zu: spec %a (0x%08x) vs %a (0x%08x); M=%zu K=%zu bits=%d "
                                  "%s planes=%d act_bits=%d bias=%d seed=%llu",
                                  r, b, (double)e[idx < 0 ? 0 : idx], tu_bits(e[idx < 0 ? 0 : idx]),
                                  (double)y[b * c.rows + r], tu_bits(y[b * c.rows + r]), c.rows,
                                  c.cols, c.bits, method_name(c.method), planes, act_bits, use_bias,
                                  seed);
                    } else {
                        double err = tu_rel_err_f(e, y + b * c.rows, c.rows, 1, c.rows);
                        cr_assert(err <= 1e-5,
                                  "binary activations: rel err %g vs the documented rule; M=%zu "
                                  "K=%zu planes=%d seed=%llu",
                                  err, c.rows, c.cols, planes, seed);
                    }
                }
                free(x);
                free(bias);
                free(y);
                free(e);
            }
            bp_matrix_destroy(m);
        }
    bp_context_destroy(ref);
}

/* Per-column plane counts equal single calls bit for bit, on every path. */

ParameterizedTestParameters(conformance, column_planes) {
    return cr_make_param_array(tu_target, kAllPaths, NELEM(kAllPaths));
}

ParameterizedTest(tu_target *target, conformance, column_planes, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_target_context(target, 2);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    const char *path = tu_target_name(target);
    static const struct {
        size_t rows, cols;
        int bits;
    } shapes[] = {{7, 31, 8}, {33, 513, 8}, {16, 1000, 16}, {100, 64, 4}, {1, 3, 2}};
    for (size_t s = 0; s < NELEM(shapes); s++)
        for (int method = 0; method < 2; method++) {
            gemm_case c = {0};
            c.rows = shapes[s].rows;
            c.cols = shapes[s].cols;
            c.ldw = c.cols;
            c.bits = shapes[s].bits;
            c.method = (bp_quant_method)method;
            bp_matrix *m = make_matrix(ref, &rng, &c);
            for (size_t a = 0; a < NELEM(kActBits); a++) {
                int act_bits = kActBits[a];
                size_t batch = tu_range(&rng, 1, 17);
                int base_planes = (int)tu_range(&rng, 0, (size_t)c.bits);
                int *cp = tu_xmalloc(batch * sizeof *cp);
                for (size_t b = 0; b < batch; b++)
                    cp[b] = (int)tu_range(&rng, 0, (size_t)c.bits); /* 0 = base_planes */
                float *x = tu_xmalloc(batch * c.cols * sizeof *x);
                float *bias = tu_xmalloc(c.rows * sizeof *bias);
                float *y = tu_xmalloc(batch * c.rows * sizeof *y);
                float *y_ref = tu_xmalloc(batch * c.rows * sizeof *y);
                float *y1 = tu_xmalloc(c.rows * sizeof *y1);
                fill_inputs(&rng, x, c.cols, batch, c.cols);
                tu_fill_gauss(&rng, bias, c.rows, 1.0f);
                bp_run_options o = tu_run(base_planes, act_bits);
                o.column_planes = cp;
                o.bias = (a % 2) ? bias : NULL;
                bp_status st = bp_gemm(ctx, m, x, batch, c.cols, y, c.rows, &o);
                cr_assert(st == BP_OK, "path %s: bp_gemm with column_planes: %s (%s) seed=%llu",
                          path, bp_status_string(st), bp_last_error(), seed);
                st = bp_gemm(ref, m, x, batch, c.cols, y_ref, c.rows, &o);
                cr_assert(st == BP_OK);
                for (size_t b = 0; b < batch; b++) {
                    int planes = cp[b] ? cp[b] : base_planes;
                    bp_run_options o1 = o;
                    o1.column_planes = NULL;
                    o1.planes = planes;
                    tu_fill_sentinel(y1, c.rows);
                    st = bp_gemm(ctx, m, x + b * c.cols, 1, c.cols, y1, c.rows, &o1);
                    cr_assert(st == BP_OK);
                    if (act_bits >= 2) {
                        size_t r = 0;
                        long idx =
                            tu_first_mismatch(y1, y + b * c.rows, c.rows, 1, c.rows, &r, NULL);
                        cr_assert(idx < 0,
                                  "path %s: column %zu with column_planes=%d (base %d) differs "
                                  "from a single call with planes=%d at row %zu: %a vs %a; M=%zu "
                                  "K=%zu bits=%d %s act_bits=%d batch=%zu seed=%llu",
                                  path, b, cp[b], base_planes, planes, r, (double)y[b * c.rows + r],
                                  (double)y1[r], c.rows, c.cols, c.bits, method_name(c.method),
                                  act_bits, batch, seed);
                    } else {
                        double e = tu_rel_err_f(y1, y + b * c.rows, c.rows, 1, c.rows);
                        cr_assert(e <= 1e-5, "path %s: binary column %zu rel err %g seed=%llu",
                                  path, b, e, seed);
                    }
                }
                if (act_bits >= 2) {
                    size_t r = 0, col = 0;
                    long idx = tu_first_mismatch(y_ref, y, c.rows, batch, c.rows, &r, &col);
                    cr_assert(idx < 0,
                              "path %s: column_planes batch differs from reference at row %zu "
                              "col %zu; act_bits=%d seed=%llu",
                              path, r, col, act_bits, seed);
                }
                free(cp);
                free(x);
                free(bias);
                free(y);
                free(y_ref);
                free(y1);
            }
            bp_matrix_destroy(m);
        }
    bp_context_destroy(ref);
    bp_context_destroy(ctx);
}

/*
 * Extreme integers: constant-sign weight rows (every plane bit equal) times
 * constant inputs at the top level drive every accumulator to its bound
 * (|D| = K * L), which random data never reaches. K = 40000 makes
 * K * 2^15 > 2^31 at act_bits 16. Each path must equal the reference, and
 * the reference the documented rule, bit for bit.
 */
ParameterizedTestParameters(conformance, extremes) {
    return cr_make_param_array(tu_target, kAllPaths, NELEM(kAllPaths));
}

ParameterizedTest(tu_target *target, conformance, extremes, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_target_context(target, 2);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 2);
    const char *path = tu_target_name(target);
    static const size_t Ks[] = {4097, 40000};
    for (size_t ki = 0; ki < NELEM(Ks); ki++) {
        size_t K = Ks[ki], M = 20, B = 4;
        float *w = tu_xmalloc(M * K * sizeof *w);
        for (size_t r = 0; r < M; r++)
            for (size_t j = 0; j < K; j++) {
                float v;
                switch (r % 5) {
                case 0:
                    v = 0.5f; /* every bit 1 */
                    break;
                case 1:
                    v = -0.5f; /* every bit 0 */
                    break;
                case 2:
                    v = j % 2 ? 0.5f : -0.5f;
                    break;
                case 3:
                    v = j < K / 2 ? 0.5f : -0.5f;
                    break;
                default:
                    v = (float)tu_gauss(&rng);
                }
                w[r * K + j] = v;
            }
        bp_matrix *m = tu_quantize(ref, w, M, K, K, 8, BP_QUANT_UNIFORM, 1.0f);
        float *x = tu_xmalloc(B * K * sizeof *x);
        float *y = tu_xmalloc(B * M * sizeof *y), *y_ref = tu_xmalloc(B * M * sizeof *y);
        float *e = tu_xmalloc(M * sizeof *e);
        for (size_t j = 0; j < K; j++) {
            x[0 * K + j] = 3.0f;                     /* unsigned, all q = L */
            x[1 * K + j] = -3.0f;                    /* signed, all q = -L */
            x[2 * K + j] = j % 2 ? 3.0f : -3.0f;     /* alternating +-L */
            x[3 * K + j] = j < K / 2 ? 3.0f : -3.0f; /* half and half */
        }
        for (int ab = 1; ab <= 16; ab++)
            for (int planes = 1; planes <= 8; planes += 7) {
                bp_run_options o = tu_run(planes, ab);
                gemm_ok_ext(ref, m, x, B, K, y_ref, M, &o, "reference", seed);
                gemm_ok_ext(ctx, m, x, B, K, y, M, &o, path, seed);
                for (size_t b = 0; b < B; b++) {
                    size_t r = 0;
                    tu_exact_column(m, x + b * K, planes, ab, 0.0f, NULL, e);
                    if (ab >= 2) {
                        long idx = tu_first_mismatch(e, y_ref + b * M, M, 1, M, &r, NULL);
                        cr_assert(idx < 0,
                                  "extremes K=%zu act_bits %d planes %d col %zu: reference "
                                  "differs from the rule at row %zu: %a vs %a; seed=%llu",
                                  K, ab, planes, b, r, (double)e[r], (double)y_ref[b * M + r],
                                  seed);
                        idx = tu_first_mismatch(y_ref + b * M, y + b * M, M, 1, M, &r, NULL);
                        cr_assert(idx < 0,
                                  "extremes K=%zu act_bits %d planes %d col %zu: path %s differs "
                                  "from reference at row %zu: %a vs %a; seed=%llu",
                                  K, ab, planes, b, path, r, (double)y_ref[b * M + r],
                                  (double)y[b * M + r], seed);
                    } else {
                        double err = tu_rel_err_f(e, y + b * M, M, 1, M);
                        cr_assert(err <= 1e-5,
                                  "extremes K=%zu binary col %zu: path %s rel err %g; seed=%llu", K,
                                  b, path, err, seed);
                    }
                }
            }
        free(w);
        free(x);
        free(y);
        free(y_ref);
        free(e);
        bp_matrix_destroy(m);
    }
    bp_context_destroy(ref);
    bp_context_destroy(ctx);
}
