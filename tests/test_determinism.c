/*
 * Determinism and batch invariance: a column's output is bit-identical
 * whether computed alone or inside a batch (at several positions), with
 * threads 1..4 and on every CPU path; repeated calls give identical results;
 * quantization does not depend on the thread count; a NaN / Inf in x is
 * reported for its first column on every path and thread count.
 * The matrix has enough rows (> 256 per task) that several tasks really run
 * in parallel.
 */
#include "test_util.h"

#include "tu_criterion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

TestSuite(determinism, .fini = tu_suite_fini);

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void gemm_ok(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch, float *y,
                    const bp_run_options *o) {
    bp_status st = bp_gemm(ctx, m, x, batch, bp_matrix_cols(m), y, bp_matrix_rows(m), o);
    cr_assert(st == BP_OK, "bp_gemm: %s (%s)", bp_status_string(st), bp_last_error());
}

Test(determinism, batch_position_threads_paths, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    char missing[2048]; /* every path not built or not runnable here, with its reason */
    tu_path paths[TU_MAX_PATHS];
    size_t np = tu_cpu_paths(paths, missing, sizeof missing);
    size_t M = 700, K = 333, B = 9; /* 44 row groups: 3 tasks of 16 */
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    bp_matrix *m = tu_quantize(ref, w, M, K, K, 8, BP_QUANT_UNIFORM, 0.0f);
    free(w);
    float *x = tu_xmalloc(B * K * sizeof *x);
    float *xb = tu_xmalloc(B * K * sizeof *xb);
    float *y_ref = tu_xmalloc(B * M * sizeof *y_ref);
    float *y = tu_xmalloc(B * M * sizeof *y);
    float *y1 = tu_xmalloc(M * sizeof *y1);
    float *bias = tu_xmalloc(M * sizeof *bias);
    tu_fill_gauss(&rng, bias, M, 1.0f);
    static const int act_list[] = {1, 2, 8, 16};
    for (size_t a = 0; a < NELEM(act_list); a++) {
        int ab = act_list[a];
        tu_fill_gauss(&rng, x, B * K, 1.0f);
        for (size_t j = 0; j < K; j++) /* one post-ReLU column */
            x[3 * K + j] = fabsf(x[3 * K + j]);
        bp_run_options o = tu_run((int)tu_range(&rng, 1, 8), ab);
        o.bias = a % 2 ? bias : NULL;
        gemm_ok(ref, m, x, B, y_ref, &o);
        for (size_t p = 0; p < np; p++)
            for (int threads = 1; threads <= 4; threads++) {
                bp_context *ctx = tu_context(paths[p].kernel, threads);
                /* The whole batch, twice: identical to the reference (a >= 2) and
                 * to itself (every a). */
                gemm_ok(ctx, m, x, B, y, &o);
                if (ab >= 2) {
                    size_t r = 0, c = 0;
                    long idx = tu_first_mismatch(y_ref, y, M, B, M, &r, &c);
                    cr_assert(idx < 0,
                              "path %s threads %d act_bits %d: batch differs from reference "
                              "threads 1 at row %zu col %zu; seed=%llu",
                              paths[p].name, threads, ab, r, c, seed);
                }
                float *again = tu_xmalloc(B * M * sizeof *again);
                gemm_ok(ctx, m, x, B, again, &o);
                cr_assert(memcmp(again, y, B * M * sizeof *y) == 0,
                          "path %s threads %d act_bits %d: repeated call differs; seed=%llu",
                          paths[p].name, threads, ab, seed);
                free(again);
                /* Each of a few columns alone, and moved to other positions
                 * among different neighbours. */
                static const size_t cols[] = {0, 3, 8};
                for (size_t ci = 0; ci < NELEM(cols); ci++) {
                    size_t c = cols[ci];
                    gemm_ok(ctx, m, x + c * K, 1, y1, &o);
                    cr_assert(memcmp(y1, y + c * M, M * sizeof *y1) == 0,
                              "path %s threads %d act_bits %d: column %zu alone differs from "
                              "inside the batch; seed=%llu",
                              paths[p].name, threads, ab, c, seed);
                    static const size_t pos[] = {0, 4, 8};
                    for (size_t pi = 0; pi < NELEM(pos); pi++) {
                        tu_fill_gauss(&rng, xb, B * K, 3.0f);
                        memcpy(xb + pos[pi] * K, x + c * K, K * sizeof *x);
                        size_t nb = pos[pi] + 1 + tu_range(&rng, 0, B - 1 - pos[pi]);
                        gemm_ok(ctx, m, xb, nb, y, &o);
                        cr_assert(memcmp(y1, y + pos[pi] * M, M * sizeof *y1) == 0,
                                  "path %s threads %d act_bits %d: column %zu at batch position "
                                  "%zu of %zu differs from alone; seed=%llu",
                                  paths[p].name, threads, ab, c, pos[pi], nb, seed);
                    }
                    gemm_ok(ctx, m, x, B, y, &o); /* restore y for the next column */
                }
                bp_context_destroy(ctx);
            }
    }
    free(x);
    free(xb);
    free(y_ref);
    free(y);
    free(y1);
    free(bias);
    bp_matrix_destroy(m);
    bp_context_destroy(ref);
    if (np < 3)
        cr_log_warn("determinism ran on %zu CPU path(s); missing: %s", np, missing);
}

/*
 * The bundled models' small layers at large batch, where the batched path
 * splits the columns into blocks (fewer or more than the workers, uneven
 * tails) and a layer of one row group takes the single-group register
 * tiles: AUTO at 1-3 threads and every other path at 2 (the AVX2 and
 * AVX-VNNI paths run their batched kernels here) give the reference path's
 * y bit for bit, for rotated signed inputs and for
 * non-negative ones (unsigned activations), with bias and the fused ReLU.
 */
Test(determinism, small_layers_large_batch_threads, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    static const size_t shapes[][2] = {{10, 128}, {128, 256}, {256, 64}, {40, 100}};
    static const size_t batches[] = {360, 200, 41};
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    /* (path, threads) pairs: AUTO at 1..3, the other paths at 2. */
    tu_path paths[TU_MAX_PATHS];
    char missing[2048];
    const size_t np = tu_cpu_paths(paths, missing, sizeof missing);
    bp_cpu_kernel runs[3 + TU_MAX_PATHS];
    int run_threads[3 + TU_MAX_PATHS];
    size_t nruns = 0;
    for (int t = 1; t <= 3; t++, nruns++) {
        runs[nruns] = BP_CPU_KERNEL_AUTO;
        run_threads[nruns] = t;
    }
    for (size_t p = 0; p < np; p++)
        if (paths[p].kernel != BP_CPU_KERNEL_REFERENCE) {
            runs[nruns] = paths[p].kernel;
            run_threads[nruns++] = 2;
        }
    for (size_t si = 0; si < NELEM(shapes); si++)
        for (int nonneg = 0; nonneg < 2; nonneg++) {
            const size_t M = shapes[si][0], K = shapes[si][1];
            const size_t B = batches[(si + (size_t)nonneg) % NELEM(batches)];
            float *w = tu_xmalloc(M * K * sizeof *w);
            tu_fill_gauss(&rng, w, M * K, 1.0f);
            bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
            qo.nonnegative_inputs = nonneg;
            bp_matrix *m = tu_quantize_opts(ref, w, M, K, K, &qo);
            free(w);
            float *x = tu_xmalloc(B * K * sizeof *x), *bias = tu_xmalloc(M * sizeof *bias);
            float *y_ref = tu_xmalloc(B * M * sizeof *y_ref), *y = tu_xmalloc(B * M * sizeof *y);
            tu_fill_gauss(&rng, x, B * K, 1.0f);
            tu_fill_gauss(&rng, bias, M, 1.0f);
            for (size_t i = 0; nonneg && i < B * K; i++)
                x[i] = fabsf(x[i]);
            bp_run_options o = tu_run(4, 8);
            o.bias = bias;
            for (int relu = 0; relu < 2; relu++) {
                const bp_activation act = relu ? BP_ACTIVATION_RELU : BP_ACTIVATION_NONE;
                bp_status st = bp_gemm_act(ref, m, x, B, K, y_ref, M, &o, act);
                cr_assert(st == BP_OK, "bp_gemm_act: %s", bp_last_error());
                for (size_t ri = 0; ri < nruns; ri++) {
                    const int threads = run_threads[ri];
                    bp_context *ctx = tu_context(runs[ri], threads);
                    memset(y, 0xff, B * M * sizeof *y);
                    st = bp_gemm_act(ctx, m, x, B, K, y, M, &o, act);
                    cr_assert(st == BP_OK, "bp_gemm_act: %s", bp_last_error());
                    size_t r = 0, c = 0;
                    cr_assert(tu_first_mismatch(y_ref, y, M, B, M, &r, &c) < 0,
                              "%zux%zu%s batch %zu relu %d threads %d (%s): y differs from the "
                              "reference at row %zu col %zu; seed=%llu",
                              M, K, nonneg ? " (non-negative inputs)" : "", B, relu, threads,
                              bp_matrix_cpu_kernel_name(ctx, m, 4, 8, B), r, c, seed);
                    bp_context_destroy(ctx);
                }
            }
            /* NaN / Inf in two columns: every path and thread count names
             * the first (the CPU backend checks x in its per-column scan or
             * rotation, spread over the workers), y untouched. */
            const size_t c1 = tu_next(&rng) % (B / 2), c2 = B / 2 + tu_next(&rng) % (B / 2);
            const size_t j1 = tu_next(&rng) % K;
            x[c2 * K + tu_next(&rng) % K] = NAN;
            x[c1 * K + j1] = -INFINITY;
            char want[128];
            snprintf(want, sizeof want, "x: column %zu, element %zu is Inf", c1, j1);
            for (size_t ri = 0; ri < nruns; ri++) {
                bp_context *ctx = tu_context(runs[ri], run_threads[ri]);
                memset(y, 0x7f, B * M * sizeof *y);
                bp_status st = bp_gemm(ctx, m, x, B, K, y, M, &o);
                cr_assert(st == BP_ERR_NON_FINITE && strcmp(bp_last_error(), want) == 0,
                          "%zux%zu threads %d: %s, want %s; seed=%llu", M, K, run_threads[ri],
                          bp_last_error(), want, seed);
                for (size_t i = 0; i < B * M; i++)
                    cr_assert(tu_bits(y[i]) == 0x7f7f7f7fu, "y[%zu] written; seed=%llu", i, seed);
                bp_context_destroy(ctx);
            }
            free(x);
            free(bias);
            free(y_ref);
            free(y);
            bp_matrix_destroy(m);
        }
    bp_context_destroy(ref);
}

/*
 * The CPU paths offered here are exactly those this CPU and OS can run, as
 * judged independently by the compiler's own CPUID/XCR0 probe
 * (__builtin_cpu_supports on x86, the auxiliary vector's HWCAP on AArch64):
 * a capable machine must not lose a path (the
 * suites above would then silently test fewer), an incapable one must get
 * BP_ERR_UNSUPPORTED with the reason rather than a crash. Each missing path
 * is named in the report the suites print.
 */
Test(determinism, offered_paths_match_the_cpu) {
    char missing[2048]; /* every path not built or not runnable here, with its reason */
    tu_path paths[TU_MAX_PATHS];
    size_t np = tu_cpu_paths(paths, missing, sizeof missing);
    /* Which paths this CPU can run, by the compiler's probe, in the order
     * tu_cpu_paths lists them. */
    bool can[12] = {true,  true,  false, false, false, false,
                    false, false, false, false, false, false};
#if defined(__x86_64__)
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2");
    const bool avx512bw = avx2 && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    can[2] = can[3] = avx2;
    can[4] = avx512bw && __builtin_cpu_supports("avx512vpopcntdq");
    can[5] = avx512bw;
    can[6] = can[7] =
        avx512bw && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("gfni");
    can[11] = avx2 && __builtin_cpu_supports("avxvnni");
#elif defined(__aarch64__) && defined(__linux__)
    const unsigned long hw = getauxval(AT_HWCAP);
    can[8] = can[9] = (hw & HWCAP_ASIMD) != 0;
    can[10] = can[8] && (hw & HWCAP_ASIMDDP) != 0;
#endif
    const bp_cpu_kernel all[12] = {BP_CPU_KERNEL_REFERENCE,    BP_CPU_KERNEL_PORTABLE,
                                   BP_CPU_KERNEL_AVX2,         BP_CPU_KERNEL_AVX2_LUT,
                                   BP_CPU_KERNEL_AVX512,       BP_CPU_KERNEL_AVX512_LUT,
                                   BP_CPU_KERNEL_AVX512_VNNI,  BP_CPU_KERNEL_AVX512_VNNI_BATCHED,
                                   BP_CPU_KERNEL_NEON,         BP_CPU_KERNEL_NEON_LUT,
                                   BP_CPU_KERNEL_NEON_DOTPROD, BP_CPU_KERNEL_AVX_VNNI};
    size_t nwant = 0;
    for (size_t i = 0; i < 12; i++) {
        bool offered = false;
        for (size_t j = 0; j < np; j++)
            offered |= paths[j].kernel == all[i];
        const char *name = tu_kernel_name(all[i]);
        cr_expect_eq(offered, can[i], "path %s: offered %d, this CPU can run it: %d (missing: %s)",
                     name, offered, can[i], missing);
        if (!can[i])
            cr_expect(strstr(missing, name) != NULL,
                      "missing path %s is not reported with its reason: '%s'", name, missing);
        nwant += can[i];
    }
    cr_assert_eq(np, nwant, "%zu CPU paths offered, this CPU can run %zu; missing: %s", np, nwant,
                 missing);
}

Test(determinism, quantize_independent_of_threads, .timeout = 120) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t M = 300, K = 250;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    for (int method = 0; method < 2; method++) {
        unsigned char *first = NULL;
        size_t first_len = 0;
        for (int threads = 1; threads <= 4; threads++) {
            bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, threads);
            bp_matrix *m = tu_quantize(ctx, w, M, K, K, 8, (bp_quant_method)method, 0.0f);
            size_t len = 0;
            cr_assert_eq(bp_matrix_serialize(m, NULL, 0, &len), BP_OK);
            unsigned char *buf = tu_xmalloc(len);
            cr_assert_eq(bp_matrix_serialize(m, buf, len, &len), BP_OK);
            if (!first) {
                first = buf;
                first_len = len;
            } else {
                cr_assert(len == first_len && memcmp(buf, first, len) == 0,
                          "method %d: quantizing with %d threads gives a different matrix than "
                          "with 1; seed=%llu",
                          method, threads, seed);
                free(buf);
            }
            bp_matrix_destroy(m);
            bp_context_destroy(ctx);
        }
        free(first);
    }
    free(w);
}
