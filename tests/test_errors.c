/*
 * Every bad input gets a clear status and a non-empty bp_last_error(), never
 * a crash; failing calls write nothing (output handles NULL, y untouched).
 */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"
#include "bp_error.h"

#include "tu_criterion.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

TestSuite(errors, .fini = tu_suite_fini);

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Expect `call` to fail with exactly `expected` and a message. */
#define EXPECT_STATUS(expected, call)                                                              \
    do {                                                                                           \
        bp__clear_error();                                                                         \
        bp_status st_ = (call);                                                                    \
        cr_expect(st_ == (expected), "%s: expected %s, got %s (%s)", #call,                        \
                  bp_status_string(expected), bp_status_string(st_), bp_last_error());             \
        cr_expect(st_ == BP_OK || bp_last_error()[0] != '\0',                                      \
                  "%s failed with %s but bp_last_error() is empty", #call, bp_status_string(st_)); \
    } while (0)

/* A matrix and buffers shared by the gemm cases. */
typedef struct fixture {
    bp_context *ctx;
    bp_matrix *m;
    size_t M, K;
    float *x, *y, *bias;
} fixture;

static fixture make_fixture(void) {
    fixture f;
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    f.ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    f.M = 20;
    f.K = 70;
    float *w = tu_xmalloc(f.M * f.K * sizeof *w);
    tu_fill_gauss(&rng, w, f.M * f.K, 1.0f);
    f.m = tu_quantize(f.ctx, w, f.M, f.K, f.K, 6, BP_QUANT_UNIFORM, 0.0f);
    free(w);
    f.x = tu_xmalloc(4 * f.K * sizeof *f.x);
    f.y = tu_xmalloc(4 * f.M * sizeof *f.y);
    f.bias = tu_xmalloc(f.M * sizeof *f.bias);
    tu_fill_gauss(&rng, f.x, 4 * f.K, 1.0f);
    tu_fill_gauss(&rng, f.bias, f.M, 1.0f);
    tu_fill_sentinel(f.y, 4 * f.M);
    return f;
}

static void free_fixture(fixture *f) {
    bp_matrix_destroy(f->m);
    bp_context_destroy(f->ctx);
    free(f->x);
    free(f->y);
    free(f->bias);
}

static void expect_y_untouched(const fixture *f, const char *what) {
    long i = tu_find_non_sentinel(f->y, 4 * f->M);
    cr_expect(i < 0, "%s: failing bp_gemm wrote y[%ld]", what, i);
}

Test(errors, status_strings) {
    const char *seen[16] = {0};
    int codes[] = {
#define BP_X_(name, value, text) name,
        BP_STATUS_LIST(BP_X_)
#undef BP_X_
    };
    const char *texts[] = {
#define BP_X_(name, value, text) text,
        BP_STATUS_LIST(BP_X_)
#undef BP_X_
    };
    cr_assert_eq(NELEM(codes), 12);
    for (size_t i = 0; i < NELEM(codes); i++) {
        const char *s = bp_status_string((bp_status)codes[i]);
        cr_assert(s != NULL && s[0] != '\0', "bp_status_string(%d) is empty", codes[i]);
        cr_expect_str_eq(s, texts[i]);
        for (size_t j = 0; j < i; j++)
            cr_expect(strcmp(seen[j], s) != 0, "status %d and %zu share the string '%s'", codes[i],
                      j, s);
        seen[i] = s;
    }
    cr_expect_str_eq(bp_status_string(BP_OK), "ok");
    cr_assert(bp_status_string((bp_status)999) != NULL);
    cr_assert(bp_status_string((bp_status)-1) != NULL);
}

Test(errors, last_error_without_context) {
    /* Fresh process: no call has failed yet on this thread. */
    cr_assert(bp_last_error() != NULL);
    cr_expect_str_eq(bp_last_error(), "", "bp_last_error() must be \"\" before any failure");
    bp_matrix *m = (bp_matrix *)(uintptr_t)1;
    bp_status st = bp_matrix_load(NULL, "/nonexistent-dir/bitplane-none.bpm", &m);
    cr_assert_eq(st, BP_ERR_IO, "load of a missing file: %s", bp_status_string(st));
    cr_assert(m == NULL, "failing load must set *out to NULL");
    cr_assert(strlen(bp_last_error()) > 0, "no message after a failure with no context");
    char saved[512];
    snprintf(saved, sizeof saved, "%s", bp_last_error());
    /* Successful calls leave it alone. */
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    cr_assert(bp_context_threads(ctx) == 1);
    cr_expect_str_eq(bp_last_error(), saved, "a successful call changed bp_last_error()");
    bp_context_destroy(ctx);
    /* A later failure replaces it with its own message. */
    st = bp_context_create(NULL, NULL);
    cr_assert_eq(st, BP_ERR_INVALID_ARGUMENT);
    cr_expect(strcmp(bp_last_error(), saved) != 0, "message not replaced: %s", bp_last_error());
}

Test(errors, context_create) {
    bp_context *ctx = (bp_context *)(uintptr_t)1;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(NULL, NULL));

    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.size = 0;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(&o, &ctx));
    cr_expect(ctx == NULL, "failing create must set *out to NULL");

    o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = (bp_backend)99;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(&o, &ctx));
    o.backend = (bp_backend)-1;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(&o, &ctx));
    /* Missing accelerator backends: tests/test_plugin.c. */
    o = BP_CONTEXT_OPTIONS_INIT;
    o.device = -1;
    ctx = (bp_context *)(uintptr_t)1;
    EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_context_create(&o, &ctx));
    cr_expect(ctx == NULL);
    o.device = 0;
    o.platform = -2;
    EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_context_create(&o, &ctx));
    o = BP_CONTEXT_OPTIONS_INIT;
    o.gpu_kernel = (bp_gpu_kernel)7;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(&o, &ctx));

    o = BP_CONTEXT_OPTIONS_INIT;
    o.threads = -1;
    EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_context_create(&o, &ctx));
    o.threads = 1025;
    EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_context_create(&o, &ctx));
    o.threads = 0;
    o.cpu_kernel = (bp_cpu_kernel)99;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(&o, &ctx));
    o.cpu_kernel = (bp_cpu_kernel)-1;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(&o, &ctx));
    cr_expect(ctx == NULL);

    /* A newer caller's larger struct: nonzero tail rejected, zero tail fine. */
    struct {
        bp_context_options o;
        unsigned char extra[24];
    } big;
    memset(&big, 0, sizeof big);
    big.o.size = sizeof big;
    big.o.threads = 1;
    big.extra[7] = 1;
    EXPECT_STATUS(BP_ERR_UNSUPPORTED, bp_context_create(&big.o, &ctx));
    big.extra[7] = 0;
    bp_status st = bp_context_create(&big.o, &ctx);
    cr_assert_eq(st, BP_OK, "zero tail must be accepted: %s", bp_last_error());
    cr_expect_eq(bp_context_threads(ctx), 1);
    bp_context_destroy(ctx);
    /* An implausible size is rejected without reading past the struct. */
    o = BP_CONTEXT_OPTIONS_INIT;
    o.size = SIZE_MAX;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(&o, &ctx));
    /* An older caller's smaller struct: missing fields default. */
    o = BP_CONTEXT_OPTIONS_INIT;
    o.size = offsetof(bp_context_options, threads);
    o.threads = -5; /* beyond size: must be ignored */
    st = bp_context_create(&o, &ctx);
    cr_assert_eq(st, BP_OK, "older (smaller) options struct rejected: %s", bp_last_error());
    cr_expect(bp_context_threads(ctx) >= 1);
    bp_context_destroy(ctx);
    bp_context_destroy(NULL); /* no-op */
}

Test(errors, env_override) {
    bp_context *ctx = NULL;
    setenv("BP_CPU", "bogus-kernel", 1);
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_context_create(NULL, &ctx));
    /* The message names the variable, the value and every path (the
     * library's name table, copied before the error is set). */
    cr_expect(strstr(bp_last_error(), "BP_CPU='bogus-kernel' is not one of auto, reference") !=
                  NULL,
              "%s", bp_last_error());
    cr_expect(strstr(bp_last_error(), "neon-dotprod") != NULL, "%s", bp_last_error());
    cr_expect(ctx == NULL);
    /* An explicit option wins over the environment. */
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.cpu_kernel = BP_CPU_KERNEL_REFERENCE;
    cr_assert_eq(bp_context_create(&o, &ctx), BP_OK, "explicit kernel must override BP_CPU: %s",
                 bp_last_error());
    cr_expect_str_eq(bp_context_cpu_kernel_name(ctx, 8, 100, 1), "reference");
    bp_context_destroy(ctx);
    setenv("BP_CPU", "reference", 1);
    cr_assert_eq(bp_context_create(NULL, &ctx), BP_OK);
    for (int a = 1; a <= 16; a++)
        cr_expect_str_eq(bp_context_cpu_kernel_name(ctx, a, 1000, 1), "reference",
                         "BP_CPU=reference not honoured at act_bits %d", a);
    bp_context_destroy(ctx);
    unsetenv("BP_CPU");
}

Test(errors, cpu_kernel_name) {
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    bp__clear_error();
    cr_expect(bp_context_cpu_kernel_name(NULL, 8, 10, 1) == NULL);
    cr_expect(bp_last_error()[0] != '\0');
    bp__clear_error();
    cr_expect(bp_context_cpu_kernel_name(ctx, 17, 10, 1) == NULL);
    cr_expect(bp_last_error()[0] != '\0');
    bp__clear_error();
    cr_expect(bp_context_cpu_kernel_name(ctx, -1, 10, 1) == NULL);
    cr_expect(bp_last_error()[0] != '\0');
    bp__clear_error();
    cr_expect(bp_context_cpu_kernel_name(ctx, 8, 0, 1) == NULL);
    cr_expect(bp_last_error()[0] != '\0');
    bp__clear_error();
    cr_expect(bp_context_cpu_kernel_name(ctx, 8, SIZE_MAX, 1) == NULL);
    cr_expect(bp_last_error()[0] != '\0');
    bp__clear_error();
    cr_expect(bp_context_cpu_kernel_name(ctx, 8, 10, 0) == NULL);
    cr_expect(bp_last_error()[0] != '\0');
    const char *n = bp_context_cpu_kernel_name(ctx, 0, 10, 1);
    cr_assert(n != NULL);
    cr_expect(strcmp(n, "reference") == 0 || strcmp(n, "avx512") == 0 ||
                  strcmp(n, "avx512-lut") == 0,
              "unexpected kernel name '%s'", n);
    bp_context_destroy(ctx);
}

Test(errors, quantize) {
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    float w[64];
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    tu_fill_gauss(&rng, w, 64, 1.0f);
    bp_matrix *m = (bp_matrix *)(uintptr_t)1;
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
#define CHECK_NULL_OUT() cr_expect(m == NULL, "failing quantize must set *out to NULL")
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, w, 8, 8, 8, &q, NULL));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(NULL, w, 8, 8, 8, &q, &m));
    CHECK_NULL_OUT();
    m = (bp_matrix *)(uintptr_t)1;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, NULL, 8, 8, 8, &q, &m));
    CHECK_NULL_OUT();
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, w, 0, 8, 8, &q, &m));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, w, 8, 0, 8, &q, &m));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, w, 8, 8, 7, &q, &m));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW, bp_matrix_quantize(ctx, w, BP_MAX_DIM + 1, 1, 1, &q, &m));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW,
                  bp_matrix_quantize(ctx, w, 1, BP_MAX_DIM + 1, BP_MAX_DIM + 1, &q, &m));
    /* Huge sizes must fail fast, without allocating or touching w. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW,
                  bp_matrix_quantize(ctx, w, SIZE_MAX / 2, SIZE_MAX / 2, SIZE_MAX / 2, &q, &m));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW, bp_matrix_quantize(ctx, w, SIZE_MAX, 8, 8, &q, &m));
    /* rows x ld overflows size_t even though each is modest or ld only. */
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW, bp_matrix_quantize(ctx, w, 3, 4, SIZE_MAX / 4, &q, &m));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW,
                  bp_matrix_quantize(ctx, w, 1u << 20, 4, SIZE_MAX / (1u << 19), &q, &m));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_expect(secs < 1.0, "size-overflow rejections took %.2f s", secs);
    CHECK_NULL_OUT();

    int bad_bits[] = {-1, 17, 100, -100};
    for (size_t i = 0; i < NELEM(bad_bits); i++) {
        q = BP_QUANT_OPTIONS_INIT;
        q.bits = bad_bits[i];
        EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_matrix_quantize(ctx, w, 8, 8, 8, &q, &m));
        CHECK_NULL_OUT();
    }
    q = BP_QUANT_OPTIONS_INIT;
    q.method = (bp_quant_method)2;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, w, 8, 8, 8, &q, &m));
    q.method = (bp_quant_method)-1;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, w, 8, 8, 8, &q, &m));
    float bad_clip[] = {-0.5f, 1.5f, 1.0000001f, NAN, INFINITY, -INFINITY, -1e-30f};
    for (size_t i = 0; i < NELEM(bad_clip); i++) {
        q = BP_QUANT_OPTIONS_INIT;
        q.clip = bad_clip[i];
        EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_matrix_quantize(ctx, w, 8, 8, 8, &q, &m));
        CHECK_NULL_OUT();
    }
    q = BP_QUANT_OPTIONS_INIT;
    q.method = BP_QUANT_RESIDUAL;
    q.clip = 0.5f;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, w, 8, 8, 8, &q, &m));
    q = BP_QUANT_OPTIONS_INIT;
    q.size = 0;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_quantize(ctx, w, 8, 8, 8, &q, &m));
    struct {
        bp_quant_options o;
        unsigned char extra[8];
    } big;
    memset(&big, 0, sizeof big);
    big.o.size = sizeof big;
    big.extra[3] = 0xff;
    EXPECT_STATUS(BP_ERR_UNSUPPORTED, bp_matrix_quantize(ctx, w, 8, 8, 8, &big.o, &m));
    CHECK_NULL_OUT();

    /* Non-finite weights, anywhere, both quantizers. */
    float specials[] = {NAN, INFINITY, -INFINITY, -NAN};
    size_t where[] = {0, 9, 63};
    for (int method = 0; method < 2; method++)
        for (size_t s = 0; s < NELEM(specials); s++)
            for (size_t i = 0; i < NELEM(where); i++) {
                float w2[64];
                memcpy(w2, w, sizeof w2);
                w2[where[i]] = specials[s];
                q = BP_QUANT_OPTIONS_INIT;
                q.method = (bp_quant_method)method;
                m = (bp_matrix *)(uintptr_t)1;
                EXPECT_STATUS(BP_ERR_NON_FINITE, bp_matrix_quantize(ctx, w2, 8, 8, 8, &q, &m));
                CHECK_NULL_OUT();
            }
    /* NaN outside the rows x cols window (in the ld gap) is not read. */
    float w3[8 * 9];
    tu_fill_gauss(&rng, w3, 72, 1.0f);
    for (size_t r = 0; r < 8; r++)
        w3[r * 9 + 8] = NAN;
    q = BP_QUANT_OPTIONS_INIT;
    cr_assert_eq(bp_matrix_quantize(ctx, w3, 8, 8, 9, &q, &m), BP_OK,
                 "NaN in the ld gap must be ignored: %s", bp_last_error());
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
#undef CHECK_NULL_OUT
}

Test(errors, gemm_arguments) {
    fixture f = make_fixture();
    bp_run_options o = BP_RUN_OPTIONS_INIT;
    size_t M = f.M, K = f.K;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(NULL, f.m, f.x, 1, K, f.y, M, &o));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, NULL, f.x, 1, K, f.y, M, &o));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, NULL, 1, K, f.y, M, &o));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, f.x, 1, K, NULL, M, &o));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, f.x, 0, K, f.y, M, &o));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, f.x, 1, K - 1, f.y, M, &o));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, f.x, 1, K, f.y, M - 1, &o));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW, bp_gemm(f.ctx, f.m, f.x, BP_MAX_DIM + 1, K, f.y, M, &o));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW, bp_gemm(f.ctx, f.m, f.x, SIZE_MAX / 2, K, f.y, M, &o));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW, bp_gemm(f.ctx, f.m, f.x, 3, SIZE_MAX / 4, f.y, M, &o));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW, bp_gemm(f.ctx, f.m, f.x, 3, K, f.y, SIZE_MAX / 4, &o));
    expect_y_untouched(&f, "bad sizes");

    int bad_planes[] = {-1, 7, 17, 1000, -1000};
    for (size_t i = 0; i < NELEM(bad_planes); i++) {
        o = tu_run(bad_planes[i], 8);
        EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_gemm(f.ctx, f.m, f.x, 2, K, f.y, M, &o));
    }
    int bad_act[] = {-1, 17, 32, -8};
    for (size_t i = 0; i < NELEM(bad_act); i++) {
        o = tu_run(0, bad_act[i]);
        EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_gemm(f.ctx, f.m, f.x, 2, K, f.y, M, &o));
    }
    float bad_scale[] = {-1.0f, NAN, INFINITY, -INFINITY, -1e-38f};
    for (size_t i = 0; i < NELEM(bad_scale); i++) {
        o = tu_run(0, 8);
        o.act_scale = bad_scale[i];
        EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_gemm(f.ctx, f.m, f.x, 2, K, f.y, M, &o));
    }
    int cp_bad[][3] = {{1, 2, -1}, {7, 1, 1}, {1, 17, 1}, {INT32_MIN, 0, 0}};
    for (size_t i = 0; i < NELEM(cp_bad); i++) {
        o = tu_run(0, 8);
        o.column_planes = cp_bad[i];
        EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_gemm(f.ctx, f.m, f.x, 3, K, f.y, M, &o));
    }
    o = BP_RUN_OPTIONS_INIT;
    o.size = 0;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, f.x, 1, K, f.y, M, &o));
    o.size = 3;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, f.x, 1, K, f.y, M, &o));
    struct {
        bp_run_options o;
        unsigned char extra[16];
    } big;
    memset(&big, 0, sizeof big);
    big.o.size = sizeof big;
    big.extra[15] = 2;
    EXPECT_STATUS(BP_ERR_UNSUPPORTED, bp_gemm(f.ctx, f.m, f.x, 1, K, f.y, M, &big.o));
    expect_y_untouched(&f, "bad options");
    big.extra[15] = 0;
    cr_expect_eq(bp_gemm(f.ctx, f.m, f.x, 1, K, f.y, M, &big.o), BP_OK,
                 "larger options with a zero tail must work: %s", bp_last_error());
    /* An older, smaller struct (size covers planes only) uses defaults after. */
    float y1[20], y2[20];
    o = tu_run(3, 4);
    o.size = offsetof(bp_run_options, act_bits);
    cr_assert_eq(bp_gemm(f.ctx, f.m, f.x, 1, K, y1, M, &o), BP_OK, "%s", bp_last_error());
    o = tu_run(3, 0);
    cr_assert_eq(bp_gemm(f.ctx, f.m, f.x, 1, K, y2, M, &o), BP_OK);
    cr_expect(tu_first_mismatch(y1, y2, M, 1, M, NULL, NULL) < 0,
              "a smaller options struct must ignore fields past its size");
    free_fixture(&f);
}

Test(errors, gemm_non_finite_inputs) {
    fixture f = make_fixture();
    size_t M = f.M, K = f.K;
    float specials[] = {NAN, INFINITY, -INFINITY};
    size_t where[] = {0, 5, 69, 70 + 33, 3 * 70 + 69};
    for (size_t s = 0; s < NELEM(specials); s++)
        for (size_t i = 0; i < NELEM(where); i++)
            for (int act = 1; act <= 16; act += 7) {
                float saved = f.x[where[i]];
                f.x[where[i]] = specials[s];
                bp_run_options o = tu_run(0, act);
                EXPECT_STATUS(BP_ERR_NON_FINITE, bp_gemm(f.ctx, f.m, f.x, 4, K, f.y, M, &o));
                o.act_scale = 0.5f;
                EXPECT_STATUS(BP_ERR_NON_FINITE, bp_gemm(f.ctx, f.m, f.x, 4, K, f.y, M, &o));
                expect_y_untouched(&f, "non-finite x");
                f.x[where[i]] = saved;
            }
    for (size_t s = 0; s < NELEM(specials); s++) {
        float saved = f.bias[7];
        f.bias[7] = specials[s];
        bp_run_options o = tu_run(0, 8);
        o.bias = f.bias;
        EXPECT_STATUS(BP_ERR_NON_FINITE, bp_gemm(f.ctx, f.m, f.x, 4, K, f.y, M, &o));
        expect_y_untouched(&f, "non-finite bias");
        f.bias[7] = saved;
    }
    /* Non-finite values in the ldx gap are not part of the input. */
    float *x = tu_xmalloc(3 * (K + 2) * sizeof *x);
    for (size_t b = 0; b < 3; b++) {
        memcpy(x + b * (K + 2), f.x, K * sizeof *x);
        x[b * (K + 2) + K] = NAN;
        x[b * (K + 2) + K + 1] = INFINITY;
    }
    cr_expect_eq(bp_gemm(f.ctx, f.m, x, 3, K + 2, f.y, M, NULL), BP_OK,
                 "NaN in the ldx gap must be ignored: %s", bp_last_error());
    free(x);
    free_fixture(&f);
}

Test(errors, gemm_overlap) {
    fixture f = make_fixture();
    size_t M = f.M, K = f.K;
    float *buf = tu_xmalloc(1000 * sizeof *buf);
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    tu_fill_gauss(&rng, buf, 1000, 1.0f);
    float copy[1000];
    memcpy(copy, buf, sizeof copy);
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, buf, 1, K, buf, M, NULL));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, buf, 1, K, buf + K - 1, M, NULL));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_gemm(f.ctx, f.m, buf + M - 1, 1, K, buf, M, NULL));
    /* Overlap only through the batch extent. */
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT,
                  bp_gemm(f.ctx, f.m, buf, 3, K, buf + 2 * K + 5, M, NULL));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT,
                  bp_gemm(f.ctx, f.m, buf + 3 * M, 2, K, buf, M + 50, NULL));
    cr_expect(memcmp(copy, buf, sizeof copy) == 0, "a rejected overlapping call modified memory");
    /* Adjacent but disjoint is fine. */
    cr_expect_eq(bp_gemm(f.ctx, f.m, buf, 2, K, buf + 2 * K, M, NULL), BP_OK, "%s",
                 bp_last_error());
    cr_expect_eq(bp_gemm(f.ctx, f.m, buf + 2 * M, 2, K, buf, M, NULL), BP_OK, "%s",
                 bp_last_error());
    free(buf);
    free_fixture(&f);
}

Test(errors, dequantize_and_accessors) {
    fixture f = make_fixture();
    size_t M = f.M, K = f.K;
    float *out = tu_xmalloc(M * (K + 1) * sizeof *out);
    tu_fill_sentinel(out, M * (K + 1));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_dequantize(NULL, NULL, 0, out, K));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_dequantize(NULL, f.m, 0, NULL, K));
    EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_matrix_dequantize(NULL, f.m, -1, out, K));
    EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_matrix_dequantize(NULL, f.m, 7, out, K));
    EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_matrix_dequantize(NULL, f.m, 17, out, K));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_dequantize(NULL, f.m, 0, out, K - 1));
    EXPECT_STATUS(BP_ERR_SIZE_OVERFLOW, bp_matrix_dequantize(NULL, f.m, 0, out, SIZE_MAX / 2));
    cr_expect(tu_find_non_sentinel(out, M * (K + 1)) < 0, "failing dequantize wrote output");
    cr_expect_eq(bp_matrix_dequantize(f.ctx, f.m, 0, out, K + 1), BP_OK);

    bp__clear_error();
    cr_expect(bp_matrix_prefix_error(NULL, 1) < 0);
    cr_expect(bp_last_error()[0] != '\0');
    int bad_n[] = {0, -1, 7, 17};
    for (size_t i = 0; i < NELEM(bad_n); i++) {
        bp__clear_error();
        cr_expect(bp_matrix_prefix_error(f.m, bad_n[i]) < 0, "prefix_error(%d)", bad_n[i]);
        cr_expect(bp_last_error()[0] != '\0');
    }
    cr_expect_eq(bp_matrix_rows(NULL), 0);
    cr_expect_eq(bp_matrix_cols(NULL), 0);
    cr_expect_eq(bp_matrix_bits(NULL), 0);
    cr_expect_eq(bp_context_threads(NULL), 0);
    cr_expect_eq(bp_context_backend(NULL), BP_BACKEND_AUTO);
    bp_matrix_destroy(NULL);
    free(out);
    free_fixture(&f);
}

Test(errors, files) {
    fixture f = make_fixture();
    size_t need = 0;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_serialize(NULL, NULL, 0, &need));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_serialize(f.m, NULL, 0, NULL));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_serialize(f.m, NULL, 10, &need));
    cr_assert_eq(bp_matrix_serialize(f.m, NULL, 0, &need), BP_OK);
    cr_assert(need > 64);
    unsigned char *buf = tu_xmalloc(need);
    memset(buf, 0xa5, need);
    size_t need2 = 0;
    EXPECT_STATUS(BP_ERR_OUT_OF_RANGE, bp_matrix_serialize(f.m, buf, need - 1, &need2));
    cr_expect_eq(need2, need, "a short buffer must still report the full size");
    for (size_t i = 0; i < need; i++)
        cr_assert(buf[i] == 0xa5, "a failing serialize wrote byte %zu", i);

    bp_matrix *m = (bp_matrix *)(uintptr_t)1;
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_deserialize(NULL, buf, need, NULL));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_deserialize(NULL, NULL, need, &m));
    cr_expect(m == NULL);
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_save(NULL, "/tmp/x.bpm"));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_save(f.m, NULL));
    EXPECT_STATUS(BP_ERR_IO, bp_matrix_save(f.m, "/nonexistent-dir/sub/x.bpm"));
    m = (bp_matrix *)(uintptr_t)1;
    EXPECT_STATUS(BP_ERR_IO, bp_matrix_load(NULL, "/nonexistent-dir/x.bpm", &m));
    cr_expect(m == NULL);
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_load(NULL, NULL, &m));
    EXPECT_STATUS(BP_ERR_INVALID_ARGUMENT, bp_matrix_load(NULL, "/tmp/x.bpm", NULL));
    free(buf);
    free_fixture(&f);
}

/* A directory is not a regular file: an I/O error, never an attempt to read
 * it (test_file_io.c covers FIFOs, devices and oversized files). */
Test(errors, load_directory) {
    bp_matrix *m = (bp_matrix *)(uintptr_t)1;
    EXPECT_STATUS(BP_ERR_IO, bp_matrix_load(NULL, "/tmp", &m));
    cr_expect(m == NULL);
    /* An empty file is corrupt, never a matrix. */
    char path[] = "/tmp/bp_test_empty_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *fp = fdopen(fd, "wb");
    fclose(fp);
    EXPECT_STATUS(BP_ERR_CORRUPT, bp_matrix_load(NULL, path, &m));
    cr_expect(m == NULL);
    remove(path);
}
