/*
 * Activation quantization behaviour, on every CPU path:
 *  - a fixed act_scale saturates out-of-range inputs and never wraps;
 *  - an all-zero column gives exactly the bias (zero without bias);
 *  - act_bits 0 means 8, and fixed-scale results follow the documented rule;
 *  - subnormal columns (L / max|x| overflows to +Inf) stay finite;
 *  - tiny columns (max|x| < L / FLT_MAX) keep their resolution;
 *  - the AVX-512 forms of the quantizer's and the rotation's loops equal
 *    the scalar forms bit for bit (special values, ties, every tail length);
 *  - the byte-code kernels' columns built straight from x (prepare_x) hold
 *    the bytes and word sums the int32 quantizer's q gives, and bp_gemm on
 *    that path equals the reference (act_bits 1..8, signed and unsigned, K
 *    off the word size, rotation, groups, threads, batch 1..360, NaN/Inf).
 */
#if defined(__x86_64__) && !defined(BP_ARCH_X86_64)
#define BP_ARCH_X86_64 1 /* the library builds its x86-64 forms on this target */
#endif
#include "test_util.h"
#include "bp_activations.h"
#include "bp_finite.h"
#include "bp_rotation.h"

#include "tu_criterion.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(activations, .fini = tu_suite_fini);

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static bp_cpu_kernel kAllPaths[] = {
    BP_CPU_KERNEL_REFERENCE,  BP_CPU_KERNEL_AUTO,        BP_CPU_KERNEL_PORTABLE,
    BP_CPU_KERNEL_AVX2,       BP_CPU_KERNEL_AVX2_LUT,    BP_CPU_KERNEL_AVX512,
    BP_CPU_KERNEL_AVX512_LUT, BP_CPU_KERNEL_AVX512_VNNI, BP_CPU_KERNEL_AVX512_VNNI_BATCHED};

static void gemm_ok(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch, float *y,
                    const bp_run_options *o) {
    bp_status st = bp_gemm(ctx, m, x, batch, bp_matrix_cols(m), y, bp_matrix_rows(m), o);
    cr_assert(st == BP_OK, "bp_gemm: %s (%s)", bp_status_string(st), bp_last_error());
}

static void assert_same_bits(const float *a, const float *b, size_t rows, const char *what,
                             const char *path, int act_bits, unsigned long long seed) {
    size_t r = 0;
    long idx = tu_first_mismatch(a, b, rows, 1, rows, &r, NULL);
    cr_assert(idx < 0, "path %s act_bits %d: %s: row %zu: %a (0x%08x) vs %a (0x%08x); seed=%llu",
              path, act_bits, what, r, (double)a[r], tu_bits(a[r]), (double)b[r], tu_bits(b[r]),
              seed);
}

ParameterizedTestParameters(activations, fixed_scale_saturates) {
    return cr_make_param_array(bp_cpu_kernel, kAllPaths, NELEM(kAllPaths));
}

ParameterizedTest(bp_cpu_kernel *kernel, activations, fixed_scale_saturates) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(*kernel, 2);
    const char *path = tu_kernel_name(*kernel);
    size_t M = 37, K = 515;
    float *w = tu_xmalloc(M * K * sizeof *w);
    /* Positive weights: the quantized levels are all positive (uniform). */
    tu_fill_uniform(&rng, w, M * K, 0.01f, 1.0f);
    bp_matrix *pos = tu_quantize(ctx, w, M, K, K, 8, BP_QUANT_UNIFORM, 1.0f);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    bp_matrix *gen = tu_quantize(ctx, w, M, K, K, 8, BP_QUANT_UNIFORM, 0.0f);
    float *x = tu_xmalloc(K * sizeof *x), *xs = tu_xmalloc(K * sizeof *xs);
    float *y = tu_xmalloc(M * sizeof *y), *ys = tu_xmalloc(M * sizeof *ys);
    float *e = tu_xmalloc(M * sizeof *e);
    static const int act_list[] = {2, 4, 8, 12, 16};
    for (size_t a = 0; a < NELEM(act_list); a++) {
        int ab = act_list[a];
        float s = (float)(0.25 * (1.0 + tu_uniform(&rng)));
        float Lu = (float)((1u << ab) - 1), Ls = (float)((1u << (ab - 1)) - 1);
        bp_run_options o = tu_run(0, ab);
        o.act_scale = s;

        /* Unsigned: huge positive inputs equal the top level exactly. */
        for (size_t j = 0; j < K; j++) {
            x[j] = j % 3 == 0 ? 1e30f : (j % 3 == 1 ? FLT_MAX : 3e9f * s);
            xs[j] = Lu * s;
        }
        tu_fill_sentinel(y, M);
        gemm_ok(ctx, pos, x, 1, y, &o);
        for (size_t r = 0; r < M; r++)
            cr_assert(y[r] > 0.0f && isfinite(y[r]),
                      "path %s act_bits %d: huge positive inputs with positive weights gave "
                      "y[%zu] = %g: the activations wrapped; seed=%llu",
                      path, ab, r, (double)y[r], seed);
        gemm_ok(ctx, pos, xs, 1, ys, &o);
        assert_same_bits(ys, y, M, "unsigned saturation != top level", path, ab, seed);
        tu_exact_column(pos, x, 8, ab, s, NULL, e);
        assert_same_bits(e, y, M, "unsigned saturation != documented rule", path, ab, seed);

        /* Signed: +-huge equal +-L*s; in-range values are unaffected. */
        for (size_t j = 0; j < K; j++) {
            float v = (float)(tu_gauss(&rng) * s * Ls * 0.3);
            int kind = (int)(j % 5);
            x[j] = kind == 0 ? 1e30f : kind == 1 ? -1e30f : kind == 2 ? -FLT_MAX : v;
            xs[j] = kind == 0 ? Ls * s : kind <= 2 ? -Ls * s : v;
        }
        gemm_ok(ctx, gen, x, 1, y, &o);
        gemm_ok(ctx, gen, xs, 1, ys, &o);
        assert_same_bits(ys, y, M, "signed saturation != +-top level", path, ab, seed);
        tu_exact_column(gen, x, 8, ab, s, NULL, e);
        assert_same_bits(e, y, M, "signed saturation != documented rule", path, ab, seed);

        /* Huge positive inputs into the positive matrix, signed column. */
        for (size_t j = 0; j < K; j++)
            x[j] = j == 0 ? -1.0f : 1e30f;
        gemm_ok(ctx, pos, x, 1, y, &o);
        for (size_t r = 0; r < M; r++)
            cr_assert(y[r] > 0.0f, "path %s act_bits %d: signed saturation wrapped: y[%zu]=%g",
                      path, ab, r, (double)y[r]);

        /* A fixed scale on in-range random inputs follows the rule exactly. */
        tu_fill_gauss(&rng, x, K, 1.0f);
        o.act_scale = (float)(3.0 / Ls);
        gemm_ok(ctx, gen, x, 1, y, &o);
        tu_exact_column(gen, x, 8, ab, o.act_scale, NULL, e);
        assert_same_bits(e, y, M, "fixed scale != documented rule", path, ab, seed);
    }
    bp_matrix_destroy(pos);
    bp_matrix_destroy(gen);
    free(w);
    free(x);
    free(xs);
    free(y);
    free(ys);
    free(e);
    bp_context_destroy(ctx);
}

ParameterizedTestParameters(activations, zero_column_gives_bias) {
    return cr_make_param_array(bp_cpu_kernel, kAllPaths, NELEM(kAllPaths));
}

ParameterizedTest(bp_cpu_kernel *kernel, activations, zero_column_gives_bias) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(*kernel, 2);
    const char *path = tu_kernel_name(*kernel);
    size_t M = 45, K = 600, B = 7;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    float *x = tu_xmalloc(B * K * sizeof *x);
    float *y = tu_xmalloc(B * M * sizeof *y);
    float *bias = tu_xmalloc(M * sizeof *bias);
    static const int act_list[] = {1, 2, 8, 16};
    for (int method = 0; method < 2; method++) {
        bp_matrix *m = tu_quantize(ctx, w, M, K, K, 8, (bp_quant_method)method, 0.0f);
        for (size_t a = 0; a < NELEM(act_list); a++)
            for (int fixed = 0; fixed < 2; fixed++)
                for (int negzero = 0; negzero < 2; negzero++) {
                    tu_fill_gauss(&rng, x, B * K, 1.0f);
                    size_t zc = tu_range(&rng, 0, B - 1), zc2 = (zc + 3) % B;
                    for (size_t j = 0; j < K; j++)
                        x[zc * K + j] = x[zc2 * K + j] = negzero ? -0.0f : 0.0f;
                    tu_fill_gauss(&rng, bias, M, 1.0f);
                    bp_run_options o = tu_run((int)tu_range(&rng, 1, 8), act_list[a]);
                    o.act_scale = fixed ? 0.01f : 0.0f;
                    for (int with_bias = 0; with_bias < 2; with_bias++) {
                        o.bias = with_bias ? bias : NULL;
                        tu_fill_sentinel(y, B * M);
                        gemm_ok(ctx, m, x, B, y, &o);
                        const size_t zcs[2] = {zc, zc2};
                        for (int z = 0; z < 2; z++)
                            for (size_t r = 0; r < M; r++) {
                                float v = y[zcs[z] * M + r];
                                if (with_bias)
                                    cr_assert(tu_bits(v) == tu_bits(bias[r]),
                                              "path %s act_bits %d fixed %d %s: zero column %zu "
                                              "row %zu gives %a, expected the bias %a; seed=%llu",
                                              path, act_list[a], fixed, negzero ? "-0" : "+0",
                                              zcs[z], r, (double)v, (double)bias[r], seed);
                                else
                                    cr_assert(v == 0.0f,
                                              "path %s act_bits %d fixed %d: zero column %zu row "
                                              "%zu gives %a without bias, expected 0; seed=%llu",
                                              path, act_list[a], fixed, zcs[z], r, (double)v, seed);
                            }
                        for (size_t i = 0; i < B * M; i++)
                            cr_assert(isfinite(y[i]), "y[%zu] = %g", i, (double)y[i]);
                    }
                }
        bp_matrix_destroy(m);
    }
    free(w);
    free(x);
    free(y);
    free(bias);
    bp_context_destroy(ctx);
}

/* max|x| subnormal: L / max|x| overflows to +Inf. Results must stay finite,
 * follow the rule, and agree across paths. */
Test(activations, subnormal_column_is_finite) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t M = 20, K = 100;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    tu_path paths[TU_MAX_PATHS];
    size_t np = tu_cpu_paths(paths, NULL, 0);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    bp_matrix *m = tu_quantize(ref, w, M, K, K, 8, BP_QUANT_UNIFORM, 0.0f);
    float x[100], y[20], y0[20], e[20];
    for (int ab = 2; ab <= 16; ab += 7) {
        for (size_t j = 0; j < K; j++)
            x[j] = j % 4 == 0 ? 0.0f : (float)(tu_gauss(&rng) * 1e-41);
        for (size_t p = 0; p < np; p++) {
            bp_context *ctx = tu_context(paths[p].kernel, 1);
            bp_run_options o = tu_run(0, ab);
            gemm_ok(ctx, m, x, 1, p == 0 ? y0 : y, &o);
            for (size_t r = 0; r < M; r++)
                cr_assert(isfinite(p == 0 ? y0[r] : y[r]),
                          "path %s act_bits %d: subnormal input gave non-finite y[%zu]",
                          paths[p].name, ab, r);
            if (p > 0)
                assert_same_bits(y0, y, M, "subnormal column differs from reference", paths[p].name,
                                 ab, seed);
            bp_context_destroy(ctx);
        }
        tu_exact_column(m, x, 8, ab, 0.0f, NULL, e);
        assert_same_bits(e, y0, M, "subnormal column != documented rule", "reference", ab, seed);
    }
    bp_matrix_destroy(m);
    bp_context_destroy(ref);
    free(w);
}

/*
 * Tiny columns: max|x| below L / FLT_MAX (about 1e-34 at act_bits 16) made
 * L / max|x| overflow, and every nonzero input saturated to +-L (relative
 * output error 0.36 at x ~ 1e-35). The rule scales such columns by 2^64
 * first; scaling x by an exact power of two must then give exactly the same
 * integers q, and y scaled by the same power within the precision left in
 * the subnormal s_x = max|x| / L (about 5e-6 here).
 */
Test(activations, tiny_columns_keep_their_resolution) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const size_t M = 64, K = 300, kpad = bp__padded_cols(K);
    const float tiny = 0x1p-116f; /* x ~ 1e-35 */
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    bp_matrix *m = tu_quantize(ref, w, M, K, K, 8, BP_QUANT_UNIFORM, 0.0f);
    tu_path paths[TU_MAX_PATHS];
    size_t np = tu_cpu_paths(paths, NULL, 0);
    float *x = tu_xmalloc(K * sizeof *x), *xt = tu_xmalloc(K * sizeof *xt);
    float y[64], yt[64], yp[64], e[64];
    int32_t *q = bp__aligned_alloc(bp__act_q_words(kpad) * sizeof *q),
            *qt = bp__aligned_alloc(bp__act_q_words(kpad) * sizeof *qt);
    cr_assert(q && qt);
    static const int act_bits[] = {2, 8, 16};
    for (int sign = 0; sign < 2; sign++)
        for (size_t i = 0; i < NELEM(act_bits); i++) {
            const int ab = act_bits[i];
            tu_fill_gauss(&rng, x, K, 1.0f);
            for (size_t j = 0; j < K; j++) {
                x[j] = sign ? fabsf(x[j]) : x[j];
                xt[j] = x[j] * tiny;
            }
            bp_act_column c, ct;
            bp__quantize_activations(x, K, kpad, ab, 0.0f, q, &c);
            bp__quantize_activations(xt, K, kpad, ab, 0.0f, qt, &ct);
            cr_assert(c.is_signed == ct.is_signed && !ct.is_zero);
            for (size_t j = 0; j < K; j++)
                cr_assert_eq(qt[j], q[j],
                             "act_bits %d: q[%zu] of the tiny column is %d, of the same column "
                             "times 2^116 %d; seed=%llu",
                             ab, j, qt[j], q[j], seed);

            bp_run_options o = tu_run(0, ab);
            gemm_ok(ref, m, x, 1, y, &o);
            gemm_ok(ref, m, xt, 1, yt, &o);
            for (size_t r = 0; r < M; r++)
                e[r] = y[r] * tiny;
            double err = tu_rel_err_f(e, yt, M, 1, M);
            cr_assert(err < 1e-4,
                      "act_bits %d %s: y of x*2^-116 differs from y(x)*2^-116 by %g (relative); "
                      "seed=%llu",
                      ab, sign ? "unsigned" : "signed", err, seed);
            /* The documented rule, independently, and every CPU path. */
            tu_exact_column(m, xt, 8, ab, 0.0f, NULL, e);
            assert_same_bits(e, yt, M, "tiny column != documented rule", "reference", ab, seed);
            for (size_t p = 1; p < np; p++) {
                bp_context *ctx = tu_context(paths[p].kernel, 1);
                gemm_ok(ctx, m, xt, 1, yp, &o);
                assert_same_bits(yt, yp, M, "tiny column differs from reference", paths[p].name, ab,
                                 seed);
                bp_context_destroy(ctx);
            }
        }
    bp__aligned_free(q);
    bp__aligned_free(qt);
    free(x);
    free(xt);
    free(w);
    bp_matrix_destroy(m);
    bp_context_destroy(ref);
}

/* act_bits 0 is 8; planes 0 is all; options NULL is the defaults. */
Test(activations, defaults) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    size_t M = 30, K = 200;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    bp_matrix *m = tu_quantize(ctx, w, M, K, K, 6, BP_QUANT_UNIFORM, 0.0f);
    float x[200], y0[30], y1[30], y2[30];
    tu_fill_gauss(&rng, x, K, 1.0f);
    bp_run_options o = tu_run(0, 0);
    gemm_ok(ctx, m, x, 1, y0, &o);
    o = tu_run(6, 8);
    gemm_ok(ctx, m, x, 1, y1, &o);
    gemm_ok(ctx, m, x, 1, y2, NULL);
    assert_same_bits(y1, y0, M, "planes 0/act_bits 0 != planes bits/act_bits 8", "auto", 8, seed);
    assert_same_bits(y1, y2, M, "NULL options != defaults", "auto", 8, seed);
    bp_matrix_destroy(m);
    free(w);
    bp_context_destroy(ctx);
}

/* Exact ties of x * inv round half to even, and a column with exact zeros
 * and positives is unsigned (every x >= 0). Values are chosen so that inv is
 * exactly 1 (max|x| = L) and the products are exact halves. */
ParameterizedTestParameters(activations, ties_and_mode) {
    return cr_make_param_array(bp_cpu_kernel, kAllPaths, NELEM(kAllPaths));
}

ParameterizedTest(bp_cpu_kernel *kernel, activations, ties_and_mode) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(*kernel, 1);
    const char *path = tu_kernel_name(*kernel);
    size_t M = 24, K = 300;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    bp_matrix *m = tu_quantize(ctx, w, M, K, K, 8, BP_QUANT_UNIFORM, 0.0f);
    float *x = tu_xmalloc(K * sizeof *x), *y = tu_xmalloc(M * sizeof *y),
          *e = tu_xmalloc(M * sizeof *e);
    for (int ab = 2; ab <= 16; ab++)
        for (int sign = 0; sign < 2; sign++) {
            float L = sign ? (float)((1u << (ab - 1)) - 1) : (float)((1u << ab) - 1);
            for (size_t j = 0; j < K; j++) {
                /* k + 0.5 for k in [0, L), exact zeros, and L itself */
                float v = (float)tu_range(&rng, 0, (size_t)L - 1) + 0.5f;
                if (j % 7 == 3)
                    v = 0.0f;
                if (sign && j % 2)
                    v = -v;
                x[j] = v;
            }
            x[0] = L; /* max|x| = L, so inv = 1 exactly */
            bp_run_options o = tu_run(0, ab);
            gemm_ok(ctx, m, x, 1, y, &o);
            tu_exact_column(m, x, 8, ab, 0.0f, NULL, e);
            char what[96];
            snprintf(what, sizeof what, "%s ties (round half to even) / zero-containing column",
                     sign ? "signed" : "unsigned");
            assert_same_bits(e, y, M, what, path, ab, seed);
        }
    bp_matrix_destroy(m);
    free(w);
    free(x);
    free(y);
    free(e);
    bp_context_destroy(ctx);
}

/* bp__quantize_activations against the documented rule (tu_quantize_act) on
 * columns of every length around the quantizer's 16-lane blocks, with the
 * largest |x| and the only negative value at random positions (any lane or
 * the tail), signed zeros, dynamic and fixed scales. */
Test(activations, quantizer_follows_rule_at_every_position) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    float x[97];
    int32_t q[97], qr[97];
    int32_t *qa = bp__aligned_alloc(bp__act_q_words(128) * sizeof *qa);
    cr_assert(qa);
    for (size_t cols = 1; cols <= NELEM(x); cols++)
        for (int round = 0; round < 12; round++) {
            const int ab = 2 + (int)tu_range(&rng, 0, 14);
            for (size_t j = 0; j < cols; j++)
                x[j] = (float)tu_uniform(&rng) * (round % 3 ? 1.0f : 0x1p-70f);
            x[tu_range(&rng, 0, cols - 1)] *= 3.0f; /* the maximum, usually */
            if (round % 2)
                x[tu_range(&rng, 0, cols - 1)] = -(float)tu_uniform(&rng);
            if (round % 4 == 3)
                x[tu_range(&rng, 0, cols - 1)] = -0.0f;
            const float scale = round % 5 == 4 ? 0.01f : 0.0f;
            bp_act_column c;
            tu_act r;
            bp__quantize_activations(x, cols, 128, ab, scale, qa, &c);
            tu_quantize_act(x, cols, ab, scale, qr, &r);
            memcpy(q, qa, cols * sizeof *q);
            cr_assert(c.is_signed == r.is_signed && tu_bits(c.scale) == tu_bits(r.scale),
                      "cols %zu act_bits %d: signed %d / %d, scale %a / %a; seed=%llu", cols, ab,
                      c.is_signed, r.is_signed, (double)c.scale, (double)r.scale, seed);
            cr_assert(memcmp(q, qr, cols * sizeof *q) == 0,
                      "cols %zu act_bits %d: q differs from the documented rule; seed=%llu", cols,
                      ab, seed);
        }
    bp__aligned_free(qa);
}

/* The vectorized uniform combine gives bp__combine_uniform's bits for every
 * D (below, at and above the 2^51 bound of its fast conversion, up to 2^62), with
 * and without a bias and a ReLU, and reports non-finite results (before the
 * ReLU, so an overflow to -Inf still counts); alpha contiguous (the AVX-512
 * form where the CPU has it) and strided. */
Test(activations, uniform_combine_rows_matches_scalar) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    enum { ROWS = 67, STRIDE_MAX = 3 };
    int64_t d[ROWS];
    float alpha[ROWS * STRIDE_MAX], bias[ROWS], y[ROWS], e[ROWS];
    for (int round = 0; round < 800; round++) {
        const size_t STRIDE = round % 8 < 4 ? 1 : STRIDE_MAX;
        static const int max_bits_of_round[4] = {62, 51, 52, 30};
        const int max_bits = max_bits_of_round[round % 4];
        for (size_t r = 0; r < ROWS; r++) {
            int64_t v = (int64_t)(tu_next(&rng) >> (64 - max_bits));
            /* Round 2 positive only: below 2^52, so some D in [2^51, 2^52). */
            d[r] = round % 4 != 2 && tu_next(&rng) & 1 ? -v : v;
            if (round % 4 == 1 && r % 7 == 0) /* the bound itself, either side */
                d[r] = (r % 2 ? -1 : 1) * (((int64_t)1 << 51) + (int64_t)(r % 3) - 1);
            bias[r] = (float)(tu_uniform(&rng) - 0.5);
        }
        for (size_t i = 0; i < ROWS * STRIDE; i++)
            alpha[i] = (float)tu_uniform(&rng) * 1e-3f;
        if (round % 10 == 9)
            alpha[STRIDE * (round % ROWS)] = FLT_MAX; /* overflows unless D is tiny */
        const float s = (float)tu_uniform(&rng) * 1e-2f;
        const float *b = round % 2 ? bias : NULL;
        const bool relu = round % 3 == 0;
        if (relu && round % 9 == 0) { /* -0 before the ReLU (without a bias) */
            d[round % ROWS] = 0;
            alpha[STRIDE * (round % ROWS)] = -0.5f;
        }
        bool finite = true;
        for (size_t r = 0; r < ROWS; r++) {
            e[r] = bp__combine_uniform(alpha[r * STRIDE], d[r], s);
            e[r] = b ? e[r] + b[r] : e[r];
            finite &= isfinite(e[r]) != 0;
            e[r] = relu ? (e[r] > 0.0f ? e[r] : 0.0f) : e[r];
        }
        bool got = bp__combine_uniform_rows(alpha, STRIDE, d, s, b, relu, y, ROWS);
        cr_assert(got == finite, "round %d: finite %d, expected %d; seed=%llu", round, got, finite,
                  seed);
        for (size_t r = 0; r < ROWS; r++)
            cr_assert(tu_bits(y[r]) == tu_bits(e[r]),
                      "round %d row %zu: D %lld: %a, expected %a; seed=%llu", round, r,
                      (long long)d[r], (double)y[r], (double)e[r], seed);
    }
}
/* bp_gemm on the batched code kernel (its columns built from x, act_bits
 * >= 2) against the reference, sampled over act_bits 1..8, signed and
 * non-negative inputs, K off multiples of 32 and 64, rotation on and off,
 * groups of 32 / 64 and per row, 1 and 2 threads, batch 1..360, a fixed
 * scale, tiny and all-zero columns; NaN and Inf inputs fail as on the
 * reference, with the same message and y untouched. */
Test(activations, code_kernel_columns_equal_reference, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctxs[2] = {tu_context_try(BP_CPU_KERNEL_AVX512_VNNI_BATCHED, 1),
                           tu_context_try(BP_CPU_KERNEL_AVX512_VNNI_BATCHED, 2)};
    if (!ctxs[0])
        cr_skip_test("avx512-vnni-batched is not available here");
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    static const size_t ks[] = {1, 31, 33, 64, 100, 130, 257};
    static const size_t ms[] = {10, 40, 128};
    static const size_t batches[] = {1, 2, 7, 33, 129, 360};
    static const int groups[] = {0, 64, BP_GROUP_PER_ROW};
    for (int act_bits = 1; act_bits <= 8; act_bits++)
        for (int nonneg = 0; nonneg < 2; nonneg++)
            for (int rotate = 0; rotate < 2; rotate++) {
                const size_t M = ms[tu_next(&rng) % NELEM(ms)];
                const size_t K = ks[tu_next(&rng) % NELEM(ks)];
                const size_t B = batches[tu_next(&rng) % NELEM(batches)];
                float *w = tu_xmalloc(M * K * sizeof *w);
                tu_fill_gauss(&rng, w, M * K, 1.0f);
                bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
                qo.bits = 4;
                qo.nonnegative_inputs = nonneg;
                qo.rotation = rotate ? 16 : BP_ROTATION_NONE;
                qo.group_size = groups[tu_next(&rng) % NELEM(groups)];
                bp_matrix *m = tu_quantize_opts(ref, w, M, K, K, &qo);
                free(w);
                float *x = tu_xmalloc(B * K * sizeof *x);
                float *y_ref = tu_xmalloc(B * M * sizeof *y_ref),
                      *y = tu_xmalloc(B * M * sizeof *y);
                tu_fill_gauss(&rng, x, B * K, 2.0f);
                for (size_t i = 0; nonneg && i < B * K; i++)
                    x[i] = fabsf(x[i]);
                /* Column 1 tiny (pre-scaled by the quantizer), column 2 zero. */
                for (size_t j = 0; B > 1 && j < K; j++)
                    x[K + j] *= 0x1p-80f;
                if (B > 2)
                    memset(x + 2 * K, 0, K * sizeof *x);
                for (int fixed = 0; fixed < 2; fixed++) {
                    bp_run_options o = tu_run(1 + (int)(tu_next(&rng) % 4), act_bits);
                    o.act_scale = fixed ? 0.02f : 0.0f;
                    gemm_ok(ref, m, x, B, y_ref, &o);
                    for (int t = 0; t < 2; t++) {
                        memset(y, 0xff, B * M * sizeof *y);
                        gemm_ok(ctxs[t] ? ctxs[t] : ctxs[0], m, x, B, y, &o);
                        size_t r = 0, c = 0;
                        /* act_bits 1 is exact on the CPU paths too. */
                        cr_assert(tu_first_mismatch(y_ref, y, M, B, M, &r, &c) < 0,
                                  "%zux%zu act_bits %d nonneg %d rotate %d group %d planes %d "
                                  "batch %zu fixed %d threads %d: y differs at row %zu col %zu; "
                                  "seed=%llu",
                                  M, K, act_bits, nonneg, rotate, qo.group_size, o.planes, B, fixed,
                                  t + 1, r, c, seed);
                    }
                }
                /* A NaN or an Inf (and a later one): the error names the
                 * first, as bp_gemm's check always has, y kept; also with
                 * a non-finite bias beside it (the x error first), and
                 * the bias alone. */
                const size_t bc = tu_next(&rng) % B, bj = tu_next(&rng) % K;
                const bool is_nan = tu_next(&rng) % 2;
                x[bc * K + bj] = is_nan ? NAN : -INFINITY;
                if (bc + 1 < B)
                    x[(B - 1) * K + tu_next(&rng) % K] = INFINITY;
                float *bias = tu_xmalloc(M * sizeof *bias);
                tu_fill_gauss(&rng, bias, M, 1.0f);
                char want[160];
                snprintf(want, sizeof want, "x: column %zu, element %zu is %s", bc, bj,
                         is_nan ? "NaN" : "Inf");
                for (int with_bias = 0; with_bias < 3; with_bias++) {
                    bp_run_options o = tu_run(4, act_bits);
                    o.bias = with_bias ? bias : NULL;
                    if (with_bias == 2)
                        bias[M / 2] = NAN;
                    for (int t = 0; t < 3; t++) {
                        bp_context *ctx = t == 2 ? ref : (ctxs[t] ? ctxs[t] : ctxs[0]);
                        memset(y, 0x7f, B * M * sizeof *y);
                        bp_status st = bp_gemm(ctx, m, x, B, K, y, M, &o);
                        cr_assert(st == BP_ERR_NON_FINITE && strcmp(want, bp_last_error()) == 0,
                                  "act_bits %d rotate %d bias %d path %d: %s: %s, want %s; "
                                  "seed=%llu",
                                  act_bits, rotate, with_bias, t, bp_status_string(st),
                                  bp_last_error(), want, seed);
                        for (size_t i = 0; i < B * M; i++)
                            cr_assert(tu_bits(y[i]) == 0x7f7f7f7fu, "y[%zu] written; seed=%llu", i,
                                      seed);
                    }
                }
                /* x finite again: the bias error alone. */
                for (size_t i = 0; i < B * K; i++)
                    x[i] = isfinite(x[i]) ? x[i] : 1.0f;
                bp_run_options o = tu_run(4, act_bits);
                o.bias = bias;
                bp_status st = bp_gemm(ctxs[0], m, x, B, K, y, M, &o);
                snprintf(want, sizeof want, "bias: column 0, element %zu is NaN", M / 2);
                cr_assert(st == BP_ERR_NON_FINITE && strcmp(want, bp_last_error()) == 0,
                          "bias: %s, want %s; seed=%llu", bp_last_error(), want, seed);
                free(bias);
                free(x);
                free(y_ref);
                free(y);
                bp_matrix_destroy(m);
            }
    for (int t = 0; t < 2; t++)
        if (ctxs[t])
            bp_context_destroy(ctxs[t]);
    bp_context_destroy(ref);
}

#if defined(BP_ARCH_X86_64)
/* Gaussian values with NaN, +-0, ties (k + 0.5), huge and subnormal values
 * mixed in; nonneg keeps every value >= 0 (no NaN then). */
static void fill_special(tu_rng *rng, float *x, size_t n, bool nonneg) {
    tu_fill_gauss(rng, x, n, 3.0f);
    for (size_t j = 0; j < n; j++) {
        switch (tu_next(rng) % 10) {
        case 0:
            x[j] = -0.0f;
            break;
        case 1:
            x[j] = (float)(int)(tu_next(rng) % 9) - 4.5f;
            break;
        case 2:
            x[j] = ldexpf(x[j], (int)(tu_next(rng) % 200) - 100);
            break;
        case 3:
            x[j] = nonneg ? x[j] : NAN;
            break;
        default:
            break;
        }
        if (nonneg)
            x[j] = fabsf(x[j]);
    }
}

/* The scalar reference for the rotation of the blocks of 16 columns and
 * more that start a column of cols (block rot_block, split as
 * bp__rotation_block_at does): signs, stages, scale, each block's scan
 * merged into *r. Returns where the blocks below 16 columns start. */
static size_t rotate_blocks_reference(const uint32_t *signs, const float *x, float *out,
                                      size_t cols, size_t rot_block, bp_act_range *r) {
    size_t s = 0;
    while (s < cols) {
        size_t b = rot_block;
        if (cols - s < b)
            for (b = 1; b * 4 <= cols - s; b *= 4) {
            }
        if (b < 16)
            break;
        int l = 0;
        while (((size_t)1 << l) < b)
            l++;
        bp__rotate_signs_scalar(signs, x, s, b, out);
        bp__rotate_block_scalar(out + s, b, ldexpf(1.0f, -(l / 2)));
        bp_act_range br;
        bp__act_scan_scalar(out + s, b, &br.amax, &br.nonneg);
        r->amax = br.amax > r->amax ? br.amax : r->amax;
        r->nonneg &= br.nonneg;
        s += b;
    }
    return s;
}

Test(activations, avx512_forms_equal_scalar) {
    if (!bp__cpu_has_avx512bw())
        return; /* nothing to compare on this CPU */
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    enum { KMAX = 4096 + 64 };
    float *x = tu_xmalloc(KMAX * sizeof *x), *a = tu_xmalloc(KMAX * sizeof *a),
          *b = tu_xmalloc(KMAX * sizeof *b);
    int32_t *qa = tu_xmalloc(KMAX * sizeof *qa), *qb = tu_xmalloc(KMAX * sizeof *qb);
    int32_t *sa = tu_xmalloc(KMAX / 32 * sizeof *sa), *sb = tu_xmalloc(KMAX / 32 * sizeof *sb);
    for (size_t n = 1; n <= 300; n += (n < 40 ? 1 : 37)) {
        for (int nonneg = 0; nonneg < 2; nonneg++) {
            fill_special(&rng, x, n, nonneg);
            float ma, mb;
            bool na, nb;
            bp__act_scan_scalar(x, n, &ma, &na);
            bp__act_scan_avx512(x, n, &mb, &nb);
            cr_assert(tu_bits(ma) == tu_bits(mb) && na == nb,
                      "scan n=%zu: %a/%d vs %a/%d; seed=%llu", n, (double)ma, na, (double)mb, nb,
                      seed);
            /* The dynamic rule, a tiny column's pre-scale, a fixed scale and
             * an infinite inverse; padding to the next word and one more. */
            const float L = nonneg ? 255.0f : 127.0f, lo = nonneg ? 0.0f : -L;
            const float pres[4] = {1.0f, 0x1p64f, 1.0f, 1.0f};
            const float invs[4] = {ma > 0 ? L / ma : 1.0f, 0x1p-60f, 1.0f, INFINITY};
            const size_t kpad = (n + 31) / 32 * 32 + 32;
            for (int i = 0; i < 4; i++) {
                memset(qa, 0, kpad * sizeof *qa);
                bp__act_round_scalar(x, n, pres[i], invs[i], L, lo, qa);
                /* The sums wrap as the vector adds do: a NaN gives q = INT32_MIN
                 * (the cast's result on x86-64), whose sums overflow. */
                for (size_t w = 0; w < kpad / 32; w++) {
                    uint32_t sum = 0;
                    for (size_t j = 0; j < 32; j++)
                        sum += (uint32_t)qa[32 * w + j];
                    sa[w] = (int32_t)sum;
                }
                bp__act_round_sums_avx512(x, n, kpad, pres[i], invs[i], isfinite(invs[i]), L, lo,
                                          qb, sb);
                for (size_t j = 0; j < kpad; j++)
                    cr_assert(qa[j] == qb[j],
                              "round n=%zu pre=%a inv=%a x[%zu]=%a: %d vs %d; seed=%llu", n,
                              (double)pres[i], (double)invs[i], j, j < n ? (double)x[j] : 0.0,
                              qa[j], qb[j], seed);
                cr_assert(memcmp(sa, sb, kpad / 32 * sizeof *sa) == 0,
                          "word sums n=%zu inv=%a; seed=%llu", n, (double)invs[i], seed);
            }
        }
    }

    /* Rotation: every block size 16..4096, columns made of whole blocks,
     * of descending smaller ones (so blocks start at both halves of a sign
     * word) and with a tail below 16; Gaussian values and the special ones
     * (NaN compared as NaN: its sign is not specified), scale and scan
     * included. */
    uint32_t signs[KMAX / 32];
    for (size_t w = 0; w < KMAX / 32; w++)
        signs[w] = (uint32_t)tu_next(&rng);
    const size_t lens[] = {16, 20, 64, 80, 96, 100, 128, 256, 336, 1024, 1104, 4096, 4096 + 64};
    for (size_t blk = 16; blk <= 4096; blk *= 4)
        for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
            for (int special = 0; special < 2; special++) {
                const size_t cols = lens[li];
                if (special)
                    fill_special(&rng, x, cols, false);
                else
                    tu_fill_gauss(&rng, x, cols, 1000.0f);
                bp_act_range ra = {0.0f, true}, rb = {0.0f, true};
                const size_t sa = rotate_blocks_reference(signs, x, a, cols, blk, &ra);
                bool finite;
                const size_t sb = bp__rotate_blocks_avx512(signs, x, b, cols, blk, &rb, &finite);
                cr_assert(finite == (bp__first_non_finite_scalar(x, sb) == sb),
                          "block %zu, %zu columns: finite %d; seed=%llu", blk, cols, finite, seed);
                cr_assert(sa == sb, "block %zu, %zu columns: vectors up to %zu, not %zu; seed=%llu",
                          blk, cols, sb, sa, seed);
                for (size_t j = 0; j < sa; j++)
                    cr_assert(tu_bits(a[j]) == tu_bits(b[j]) || (isnan(a[j]) && isnan(b[j])),
                              "block %zu, %zu columns: element %zu: %a vs %a; seed=%llu", blk, cols,
                              j, (double)a[j], (double)b[j], seed);
                cr_assert(tu_bits(ra.amax) == tu_bits(rb.amax) && ra.nonneg == rb.nonneg,
                          "block %zu, %zu columns: range %a/%d vs %a/%d; seed=%llu", blk, cols,
                          (double)ra.amax, ra.nonneg, (double)rb.amax, rb.nonneg, seed);
            }
    free(x);
    free(a);
    free(b);
    free(qa);
    free(qb);
    free(sa);
    free(sb);
}
/* The byte-code column from x (bp__act_column_rounding, then
 * bp__act_round_codes_avx512) against the int32 quantizer and the packing
 * vb_prepare does from it: q8 = low byte of q - off, qw = word_base - 32 off
 * (wrapping, as a NaN's q = INT32_MIN makes the sums wrap); the column's
 * fields the same. act_bits 2..8, both modes, dynamic, fixed and tiny
 * scales, a range given (as the rotation gives it) or scanned. */
Test(activations, code_columns_from_x_equal_int32_path) {
    if (!bp__cpu_has_avx512bw())
        return;
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    enum { KMAX = 1024 + 64 };
    float *x = tu_xmalloc(KMAX * sizeof *x);
    int32_t *q = tu_xmalloc(bp__act_q_words(KMAX) * sizeof *q);
    int8_t *q8 = tu_xmalloc(KMAX);
    int32_t *qw = tu_xmalloc(KMAX / 32 * sizeof *qw);
    for (size_t n = 1; n <= 1024; n += (n < 70 ? 1 : 61))
        for (int act_bits = 2; act_bits <= 8; act_bits++)
            for (int nonneg = 0; nonneg < 2; nonneg++)
                for (int mode = 0; mode < 4; mode++) {
                    /* mode 0 dynamic, 1 tiny (pre-scaled), 2 fixed scale,
                     * 3 dynamic with the range given. */
                    fill_special(&rng, x, n, nonneg);
                    if (mode == 1) {
                        /* max|x| into [2^-70, 2^-69): below the tiny bound. */
                        float amax;
                        bool nn;
                        bp__act_scan_scalar(x, n, &amax, &nn);
                        const int e = amax > 0.0f ? ilogbf(amax) : 0;
                        for (size_t j = 0; j < n; j++)
                            x[j] = ldexpf(x[j], -70 - e);
                    }
                    const float act_scale = mode == 2 ? 0.01f : 0.0f;
                    bp_act_range range, *given = NULL;
                    if (mode == 3) {
                        bp__act_scan_scalar(x, n, &range.amax, &range.nonneg);
                        given = &range;
                    }
                    const size_t kpad = (n + 31) / 32 * 32 + 32 * (tu_next(&rng) % 2);
                    bp_act_column ca = {0}, cb = {0};
                    bp__quantize_activations_in(x, n, kpad, act_bits, act_scale, given, q, &ca);
                    bp_act_rounding rd;
                    bp__act_column_rounding(x, n, act_bits, act_scale, given, &cb, &rd);
                    cr_assert(ca.is_signed == cb.is_signed && ca.is_zero == cb.is_zero &&
                                  tu_bits(ca.scale) == tu_bits(cb.scale) &&
                                  ca.act_bits == cb.act_bits && cb.q == NULL &&
                                  cb.word_base == NULL,
                              "n=%zu act_bits=%d mode=%d: column fields differ; seed=%llu", n,
                              act_bits, mode, seed);
                    if (ca.is_zero)
                        continue;
                    const int off = (!ca.is_signed && act_bits == 8) ? 128 : 0;
                    bp__act_round_codes_avx512(x, n, kpad, &rd, off, q8, qw);
                    for (size_t j = 0; j < kpad; j++)
                        cr_assert(q8[j] == (int8_t)(uint8_t)((uint32_t)q[j] - (uint32_t)off),
                                  "n=%zu act_bits=%d mode=%d off=%d: q8[%zu] %d, q %d; seed=%llu",
                                  n, act_bits, mode, off, j, q8[j], q[j], seed);
                    for (size_t w = 0; w < kpad / 32; w++)
                        cr_assert(qw[w] ==
                                      (int32_t)((uint32_t)ca.word_base[w] - 32u * (uint32_t)off),
                                  "n=%zu act_bits=%d mode=%d: qw[%zu] %d, word sum %d; seed=%llu",
                                  n, act_bits, mode, w, qw[w], ca.word_base[w], seed);
                }
    free(x);
    free(q);
    free(q8);
    free(qw);
}
/* The finite check's AVX-512 form finds the same first NaN / Inf as the
 * plain loop, at every position and length around its 16- and 64-float
 * steps. */
Test(activations, avx512_finite_check_equals_scalar) {
    if (!bp__cpu_has_avx512bw())
        return;
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    enum { NMAX = 300 };
    float v[NMAX];
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (size_t n = 0; n <= NMAX; n += (n < 140 ? 1 : 23)) {
        tu_fill_gauss(&rng, v, n, 1e30f);
        cr_assert(bp__first_non_finite_avx512(v, n) == n, "n=%zu all finite; seed=%llu", n, seed);
        for (size_t at = 0; at < n; at += 1 + at / 8) {
            const float keep = v[at];
            v[at] = bad[(at + n) % 3];
            if (at + 5 < n)
                v[at + 5] = bad[n % 3]; /* a later one must not win */
            const size_t want = bp__first_non_finite_scalar(v, n);
            cr_assert(want == at, "scalar n=%zu at=%zu: %zu; seed=%llu", n, at, want, seed);
            cr_assert(bp__first_non_finite_avx512(v, n) == at, "n=%zu at=%zu: %zu; seed=%llu", n,
                      at, bp__first_non_finite_avx512(v, n), seed);
            v[at] = keep;
            if (at + 5 < n)
                tu_fill_gauss(&rng, v + at + 5, 1, 1e30f);
        }
    }
}
#endif
