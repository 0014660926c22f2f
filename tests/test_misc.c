/*
 * Misc API behaviour: version, accessors, defaults (NULL options, zeroed
 * fields), dequantize at planes 0, kernel names per path, and matrices that
 * outlive the context that made them.
 */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"
#include "../cpu/cpu_kernel.h"

#include "tu_criterion.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(misc, .fini = tu_suite_fini);

/*
 * The version as the library reports it agrees with itself, with the header
 * this test was compiled against, and with the project version CMake parsed
 * from that header (BP_TEST_PROJECT_VERSION, which names the shared
 * library's files and the package config). MINOR and PATCH must stay below
 * 100, or the number encoding MAJOR*10000 + MINOR*100 + PATCH collides.
 */
Test(misc, version) {
    const char *v = bp_version();
    cr_assert(v != NULL);
    unsigned major, minor, patch;
    int used = 0;
    cr_assert(sscanf(v, "%u.%u.%u%n", &major, &minor, &patch, &used) == 3 && v[used] == '\0',
              "bp_version() is not MAJOR.MINOR.PATCH: '%s'", v);
    cr_assert(minor < 100 && patch < 100, "version %s does not fit the number encoding", v);
    cr_expect_eq(bp_version_number(), major * 10000 + minor * 100 + patch,
                 "bp_version_number() %u disagrees with bp_version() %s", bp_version_number(), v);
    cr_expect_eq(bp_version_number(), (unsigned)BP_VERSION_NUMBER,
                 "library %u and header %u differ", bp_version_number(),
                 (unsigned)BP_VERSION_NUMBER);
    cr_expect_str_eq(v, BP_TEST_PROJECT_VERSION, "library %s, CMake project %s", v,
                     BP_TEST_PROJECT_VERSION);
}

Test(misc, context_accessors) {
    bp_context *ctx = NULL;
    cr_assert_eq(bp_context_create(NULL, &ctx), BP_OK, "%s", bp_last_error());
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_eq(bp_context_threads(ctx), online < 1 ? 1 : (int)online,
                 "threads 0 must mean all online cores");
    cr_expect_eq(bp_context_backend(ctx), BP_BACKEND_CPU, "AUTO must resolve to CPU");
    bp_context_destroy(ctx);
    for (int t = 1; t <= 5; t += 2) {
        bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
        o.threads = t;
        o.backend = BP_BACKEND_CPU;
        cr_assert_eq(bp_context_create(&o, &ctx), BP_OK);
        cr_expect_eq(bp_context_threads(ctx), t);
        cr_expect_eq(bp_context_backend(ctx), BP_BACKEND_CPU);
        bp_context_destroy(ctx);
    }
    /* A zeroed struct with only size set is the defaults. */
    bp_context_options z;
    memset(&z, 0, sizeof z);
    z.size = sizeof z;
    cr_assert_eq(bp_context_create(&z, &ctx), BP_OK);
    cr_expect_eq(bp_context_threads(ctx), online < 1 ? 1 : (int)online);
    bp_context_destroy(ctx);
}

Test(misc, matrix_accessors_and_defaults) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    size_t M = 13, K = 77;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    bp_matrix *a = NULL, *b = NULL;
    cr_assert_eq(bp_matrix_quantize(ctx, w, M, K, K, NULL, &a), BP_OK, "%s", bp_last_error());
    cr_expect_eq(bp_matrix_rows(a), M);
    cr_expect_eq(bp_matrix_cols(a), K);
    cr_expect_eq(bp_matrix_bits(a), BP_DEFAULT_BITS);
    cr_expect_eq(bp_matrix_method(a), BP_QUANT_UNIFORM);
    bp_quant_options q;
    memset(&q, 0, sizeof q);
    q.size = sizeof q;
    cr_assert_eq(bp_matrix_quantize(ctx, w, M, K, K, &q, &b), BP_OK);
    size_t la, lb;
    cr_assert_eq(bp_matrix_serialize(a, NULL, 0, &la), BP_OK);
    cr_assert_eq(bp_matrix_serialize(b, NULL, 0, &lb), BP_OK);
    cr_assert_eq(la, lb);
    unsigned char *sa = tu_xmalloc(la), *sb = tu_xmalloc(lb);
    cr_assert_eq(bp_matrix_serialize(a, sa, la, &la), BP_OK);
    cr_assert_eq(bp_matrix_serialize(b, sb, lb, &lb), BP_OK);
    cr_expect(memcmp(sa, sb, la) == 0, "NULL quant options differ from zeroed options");
    free(sa);
    free(sb);
    bp_matrix_destroy(b);
    b = tu_quantize(ctx, w, M, K, K, 5, BP_QUANT_RESIDUAL, 0.0f);
    cr_expect_eq(bp_matrix_bits(b), 5);
    cr_expect_eq(bp_matrix_method(b), BP_QUANT_RESIDUAL);

    /* dequantize at planes 0 equals planes = bits, bit for bit. */
    bp_matrix *ms[2] = {a, b};
    float *d0 = tu_xmalloc(M * K * sizeof *d0), *dk = tu_xmalloc(M * K * sizeof *dk);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(bp_matrix_dequantize(NULL, ms[i], 0, d0, K), BP_OK);
        cr_assert_eq(bp_matrix_dequantize(ctx, ms[i], bp_matrix_bits(ms[i]), dk, K), BP_OK);
        cr_expect(memcmp(d0, dk, M * K * sizeof *d0) == 0, "dequantize(0) != dequantize(bits)");
    }
    free(d0);
    free(dk);
    bp_matrix_destroy(a);
    bp_matrix_destroy(b);
    free(w);
    bp_context_destroy(ctx);
}

Test(misc, kernel_names_per_path) {
    bp_context *ctx = tu_context_try(BP_CPU_KERNEL_REFERENCE, 1);
    cr_assert(ctx);
    for (int a = 0; a <= 16; a++)
        cr_expect_str_eq(bp_context_cpu_kernel_name(ctx, a, 100, 1), "reference");
    bp_context_destroy(ctx);
    ctx = tu_context_try(BP_CPU_KERNEL_AVX512, 1);
    if (ctx) {
        for (int a = 0; a <= 16; a++)
            cr_expect_str_eq(bp_context_cpu_kernel_name(ctx, a, 100, 1), "avx512");
        bp_context_destroy(ctx);
    }
    ctx = tu_context_try(BP_CPU_KERNEL_AVX512_LUT, 1);
    if (!ctx)
        cr_skip_test("avx512-lut path not available on this machine: %s", bp_last_error());
    /* LUT where its int16 tables are exact: act_bits 2..11 and K*2^a < 2^31;
     * elsewhere the best popcount kernel (VPOPCNTDQ, else AVX2). */
    const char *pop = bp__cpu_features()->avx512_vpopcntdq ? "avx512" : "avx2";
    for (int a = 1; a <= 16; a++) {
        const char *n = bp_context_cpu_kernel_name(ctx, a, 4096, 1);
        cr_assert(n);
        cr_expect_str_eq(n, (a >= 2 && a <= 11) ? "avx512-lut" : pop, "act_bits %d, K 4096: got %s",
                         a, n);
    }
    cr_expect_str_eq(bp_context_cpu_kernel_name(ctx, 8, (size_t)1 << 24, 1), pop,
                     "K*2^8 >= 2^31 must fall back to popcount");
    cr_expect_str_eq(bp_context_cpu_kernel_name(ctx, 2, (size_t)1 << 20, 1), "avx512-lut");
    bp_context_destroy(ctx);
}

/* AUTO by CPU: popcount streams one column faster with VPOPCNTDQ, lookup
 * tables win for batches and on CPUs without it; never the reference. */
Test(misc, kernel_names_auto) {
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    const bp_cpu_features *f = bp__cpu_features();
    const char *b1 = bp_context_cpu_kernel_name(ctx, 8, 4096, 1);
    const char *b8 = bp_context_cpu_kernel_name(ctx, 8, 4096, 8);
    const char *a16 = bp_context_cpu_kernel_name(ctx, 16, 4096, 8);
    const char *a1 = bp_context_cpu_kernel_name(ctx, 1, 4096, 8);
    cr_assert(b1 && b8 && a16 && a1);
    for (int a = 1; a <= 16; a++)
        for (size_t batch = 1; batch <= 8; batch *= 8)
            cr_expect_str_neq(bp_context_cpu_kernel_name(ctx, a, 4096, batch), "reference",
                              "AUTO must never fall back to the reference (act_bits %d)", a);
    if (f->avx512_vpopcntdq) {
        cr_expect_str_eq(b1, "avx512");
        cr_expect_str_eq(b8, "avx512-lut");
        cr_expect_str_eq(a16, "avx512");
        cr_expect_str_eq(a1, "avx512");
    } else if (f->avx512bw) {
        cr_expect_str_eq(b1, "avx512-lut");
        cr_expect_str_eq(b8, "avx512-lut");
        cr_expect_str_eq(a16, "avx2");
    } else if (f->avx2) {
        cr_expect_str_eq(b1, "avx2-lut");
        cr_expect_str_eq(a16, "avx2");
    } else if (f->neon) {
        /* AArch64 (docs/kernels.md): TBL tables from act_bits 6, CNT below. */
        cr_expect_str_eq(b1, "neon-lut");
        cr_expect_str_eq(b8, "neon-lut");
        cr_expect_str_eq(a16, "neon");
        cr_expect_str_eq(a1, "neon");
    } else {
        cr_expect_str_eq(b1, "portable");
    }
    bp_context_destroy(ctx);
}

/* The AVX2 paths: batched code kernels for uniform matrices in batches at
 * act_bits <= 8, the LUT where exact, popcount elsewhere. */
static void expect_avx2_path(bp_cpu_kernel path, const char *batched) {
    bp_context *ctx = tu_context_try(path, 1);
    if (!ctx)
        return;
    /* A large residual matrix (bp_context_cpu_kernel_name's case). */
    for (int a = 1; a <= 16; a++)
        cr_expect_str_eq(bp_context_cpu_kernel_name(ctx, a, 100, 8),
                         (a >= 2 && a <= 11) ? "avx2-lut" : "avx2", "act_bits %d", a);
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    float w[64 * 96];
    tu_fill_gauss(&rng, w, 64 * 96, 1.0f);
    bp_matrix *u = tu_quantize(ctx, w, 64, 96, 96, 8, BP_QUANT_UNIFORM, 0.0f);
    bp_matrix *r = tu_quantize(ctx, w, 64, 96, 96, 8, BP_QUANT_RESIDUAL, 0.0f);
    /* Uniform matrices at act_bits <= 8: every batch and plane count. */
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 4, 8, 8), batched);
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 2, 8, 1), batched);
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 8, 3, 2), batched);
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 1, 1, 1), batched);
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 1, 8, 3), batched);
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 4, 10, 32), "avx2-lut");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, r, 4, 8, 32), "avx2-lut");
    bp_matrix_destroy(u);
    bp_matrix_destroy(r);
    bp_context_destroy(ctx);
}

/* A forced AVX2 path reports its own kernels. */
Test(misc, kernel_names_avx2) {
    bp_context *ctx = tu_context_try(BP_CPU_KERNEL_AVX2, 1);
    if (!ctx)
        cr_skip_test("avx2 path not available here: %s", bp_last_error());
    bp_context_destroy(ctx);
    expect_avx2_path(BP_CPU_KERNEL_AVX2, "avx2-batched");
    expect_avx2_path(BP_CPU_KERNEL_AVX_VNNI, "avx-vnni-batched");
    ctx = tu_context_try(BP_CPU_KERNEL_AVX2_LUT, 1);
    cr_assert(ctx, "avx2-lut must run wherever avx2 does");
    for (int a = 1; a <= 16; a++)
        cr_expect_str_eq(bp_context_cpu_kernel_name(ctx, a, 4096, 1),
                         (a >= 2 && a <= 11) ? "avx2-lut" : "avx2", "act_bits %d", a);
    bp_context_destroy(ctx);
}

/* A matrix may be used with any context, and outlives the one that made it. */
Test(misc, matrix_outlives_context) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t M = 40, K = 90;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    bp_context *c1 = tu_context(BP_CPU_KERNEL_AUTO, 2);
    bp_matrix *m = tu_quantize(c1, w, M, K, K, 8, BP_QUANT_UNIFORM, 0.0f);
    float x[90], y1[40], y2[40];
    tu_fill_gauss(&rng, x, K, 1.0f);
    cr_assert_eq(bp_gemm(c1, m, x, 1, K, y1, M, NULL), BP_OK);
    bp_context_destroy(c1);
    bp_context *c2 = tu_context(BP_CPU_KERNEL_REFERENCE, 3);
    cr_assert_eq(bp_gemm(c2, m, x, 1, K, y2, M, NULL), BP_OK, "%s", bp_last_error());
    cr_expect(memcmp(y1, y2, sizeof y1) == 0, "result changed with another context");
    bp_context_destroy(c2);
    bp_matrix_destroy(m);
    free(w);
}

/* The probed features with zmm_halves cleared: the rules measured on CPUs
 * with full-width AVX-512 units, whatever this machine is (the zmm_halves
 * rules have their own test, auto_zmm_halves). */
static void use_full_width_avx512(void) {
    bp_cpu_features f = *bp__cpu_features();
    f.zmm_halves = false;
    bp__cpu_features_set(&f);
}

/* The per-matrix name reports the exact choice, code kernel included. */
Test(misc, matrix_kernel_names) {
    use_full_width_avx512();
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    float w[64 * 96];
    tu_fill_gauss(&rng, w, 64 * 96, 1.0f);
    bp_matrix *u = tu_quantize(ctx, w, 64, 96, 96, 8, BP_QUANT_UNIFORM, 1.0f);
    bp_matrix *r = tu_quantize(ctx, w, 64, 96, 96, 8, BP_QUANT_RESIDUAL, 0.0f);
    const bp_cpu_features *f = bp__cpu_features();
    const bool code = f->avx512_vnni && f->gfni && f->avx512_vbmi;
    /* A 64 x 96 uniform matrix is in cache: at batch 1 the code kernel's byte
     * tables at 1 plane, the LUT kernel at 2-4 planes (AVX-512BW), the code
     * kernel above. */
    const bool lut = f->avx512bw;
    for (int n = 1; n <= 8; n++) {
        const char *ku = bp_matrix_cpu_kernel_name(ctx, u, n, 8, 1);
        const char *kr = bp_matrix_cpu_kernel_name(ctx, r, n, 8, 1);
        cr_assert(ku && kr);
        cr_expect_str_eq(kr, bp_context_cpu_kernel_name(ctx, 8, 96, 1), "residual, %d planes", n);
        if (code && n == 1)
            cr_expect_str_eq(ku, "avx512-vnni", "uniform, %d planes", n);
        else if (lut && n <= 4)
            cr_expect_str_eq(ku, "avx512-lut", "uniform, %d planes", n);
        else if (code && n >= 2)
            cr_expect_str_eq(ku, "avx512-vnni", "uniform, %d planes", n);
        else
            cr_expect_str_eq(ku, kr, "uniform, %d planes", n);
        if (code)
            cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, n, 8, 2),
                             n == 1 ? "avx512-vnni" : "avx512-vnni-batched",
                             "uniform, %d planes, batch 2", n);
    }
    /* Per row at batch 2-3: the code kernel's byte tables at 1 plane, the
     * batched one from 2 planes. */
    if (code) {
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 1, 8, 2), "avx512-vnni");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 2, 8, 3), "avx512-vnni-batched");
    }
    /* Grouped matrices: the code kernel at 1 plane (byte tables) at every
     * size and batch below 16; from 2 planes at batch 1 once the used planes
     * leave L2 (2064 x 512 x 2 planes > 256 KiB; smaller ones run the LUT
     * kernel); from batch 2 at 2+ planes the batched code kernel. */
    bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
    qo.group_size = 64;
    qo.rotation = BP_ROTATION_NONE;
    bp_matrix *gm = tu_quantize_opts(ctx, w, 64, 96, 96, &qo);
    enum { BIG_M = 2064, BIG_K = 512 };
    float *wb = tu_xmalloc((size_t)BIG_M * BIG_K * sizeof *wb);
    tu_fill_gauss(&rng, wb, (size_t)BIG_M * BIG_K, 1.0f);
    qo.bits = 4;
    bp_matrix *big = tu_quantize_opts(ctx, wb, BIG_M, BIG_K, BIG_K, &qo);
    free(wb);
    if (code) {
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 1, 8, 1), "avx512-vnni");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, big, 1, 8, 1), "avx512-vnni");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 1, 8, 8), "avx512-vnni");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 2, 8, 1), "avx512-lut");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 4, 8, 1), "avx512-lut");
        cr_expect_str_neq(bp_matrix_cpu_kernel_name(ctx, gm, 4, 8, 8), "avx512-vnni");
        /* The batched code kernel: batch >= 2 from 2 planes, >= 16 at 1
         * plane, uniform matrices and act_bits <= 8 only. */
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 4, 8, 8), "avx512-vnni-batched");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 2, 8, 4), "avx512-vnni-batched");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 8, 8, 360), "avx512-vnni-batched");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 1, 8, 16), "avx512-vnni-batched");
        cr_expect_str_neq(bp_matrix_cpu_kernel_name(ctx, gm, 1, 8, 8), "avx512-vnni-batched");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 4, 8, 3), "avx512-vnni-batched");
        cr_expect_str_neq(bp_matrix_cpu_kernel_name(ctx, gm, 1, 8, 3), "avx512-vnni-batched");
        cr_expect_str_neq(bp_matrix_cpu_kernel_name(ctx, gm, 4, 12, 32), "avx512-vnni-batched");
        cr_expect_str_neq(bp_matrix_cpu_kernel_name(ctx, r, 4, 8, 32), "avx512-vnni-batched");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, big, 2, 8, 1), "avx512-vnni");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, big, 4, 8, 1), "avx512-vnni");
        cr_expect_str_neq(bp_matrix_cpu_kernel_name(ctx, big, 4, 8, 8), "avx512-vnni");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 2, 8, 2), "avx512-vnni-batched");
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, gm, 3, 8, 2), "avx512-vnni-batched");
    }
    bp_matrix_destroy(big);
    bp_matrix_destroy(gm);
    /* act_bits > 8: never the code kernel. */
    cr_expect_str_neq(bp_matrix_cpu_kernel_name(ctx, u, 4, 12, 1), "avx512-vnni");
    cr_expect(bp_matrix_cpu_kernel_name(ctx, NULL, 4, 8, 1) == NULL);
    cr_expect(strstr(bp_last_error(), "m must not be NULL") != NULL, "%s", bp_last_error());
    cr_expect(bp_matrix_cpu_kernel_name(ctx, u, 9, 8, 1) == NULL);
    cr_expect(strstr(bp_last_error(), "planes must be") != NULL, "%s", bp_last_error());
    bp_matrix_destroy(u);
    bp_matrix_destroy(r);
    bp_context_destroy(ctx);
    bp__cpu_features_set(NULL);
}

/* zmm_halves from CPUID: AMD family 0x19 with AVX-512 (Zen 4) only. Leaf 1
 * EAX as these CPUs report it; the family needs the extended family field
 * (base 0xF plus 0xA for 0x19, plus 0xB for 0x1A). */
Test(misc, zmm_halves_from_cpuid) {
    const unsigned zen4 = 0x00A10F11u, zen4_client = 0x00A60F12u, zen3 = 0x00A00F11u,
                   zen5 = 0x00B00F21u, zen2 = 0x00830F10u, sapphire_rapids = 0x000806F8u;
    cr_expect(bp__cpu_zmm_halves("AuthenticAMD", zen4, true));
    cr_expect(bp__cpu_zmm_halves("AuthenticAMD", zen4_client, true));
    cr_expect(!bp__cpu_zmm_halves("AuthenticAMD", zen4, false), "AVX-512 hidden or not enabled");
    cr_expect(!bp__cpu_zmm_halves("AuthenticAMD", zen3, false));
    cr_expect(!bp__cpu_zmm_halves("AuthenticAMD", zen5, true), "Zen 5 has full-width units");
    cr_expect(!bp__cpu_zmm_halves("AuthenticAMD", zen2, true));
    cr_expect(!bp__cpu_zmm_halves("GenuineIntel", sapphire_rapids, true));
    cr_expect(!bp__cpu_zmm_halves("GenuineIntel", zen4, true), "family 0x19, not AMD");
    cr_expect(!bp__cpu_zmm_halves("HygonGenuine", 0x00900F01u, true));
}

/* AUTO with and without zmm_halves, from features set for the test (AVX-512
 * with every extension the kernels use), so the table holds on any x86-64
 * machine: Zen 4's code-kernel rules where measured, everything else as on
 * the Xeon. Only names are asked for, no kernel runs. */
typedef struct zmm_case {
    size_t rows, kpad, batch;
    unsigned mult_bound;
    bp_quant_method method;
    int act_bits, min_planes, max_planes;
    const char *full_width, *halves;
} zmm_case;

static const char *auto_for(const bp_context *ctx, const zmm_case *c) {
    const bp_kernel_shape s = {.act_bits = c->act_bits,
                               .kpad = c->kpad,
                               .batch = c->batch,
                               .mult_bound = c->mult_bound,
                               .method = c->method,
                               .min_planes = c->min_planes,
                               .max_planes = c->max_planes,
                               .units = c->batch * (size_t)(c->min_planes + c->max_planes) / 2,
                               .rows = c->rows};
    return bp__select_kernel(ctx, &s)->name;
}

static void set_avx512_features(bool zmm_halves) {
    const bp_cpu_features f = {.avx2 = true,
                               .avx512bw = true,
                               .avx512dq = true,
                               .avx512_vpopcntdq = true,
                               .avx512_vnni = true,
                               .gfni = true,
                               .avx512_vbmi = true,
                               .zmm_halves = zmm_halves};
    bp__cpu_features_set(&f);
}

#define UNI BP_QUANT_UNIFORM
#define RES BP_QUANT_RESIDUAL
#define VN  "avx512-vnni"
#define VB  "avx512-vnni-batched"
#define LUT "avx512-lut"
Test(misc, auto_zmm_halves) {
    if (!bp__cpu_kernel_by_name(VN))
        cr_skip_test("the AVX-512 kernels are not built for this architecture");
    static const zmm_case cases[] = {
        /* Batch 2, every column at 2+ planes (grouped and per row). */
        {4096, 4096, 2, 255, UNI, 8, 2, 2, VB, VN},
        {4096, 4096, 2, 255, UNI, 8, 3, 3, VB, VN},
        {4096, 4096, 2, 255, UNI, 8, 4, 4, VB, VN},
        {4096, 4096, 2, 255, UNI, 8, 8, 8, VB, VN},
        {65536, 4096, 2, 255, UNI, 8, 2, 8, VB, VN},
        {1024, 256, 2, 1, UNI, 8, 2, 2, VB, VN},
        {4096, 4096, 2, 255, UNI, 4, 4, 4, VB, VN},
        /* Batch 4, every column at 2 planes; not at 3+ or mixed. */
        {4096, 4096, 4, 255, UNI, 8, 2, 2, VB, VN},
        {4096, 4096, 4, 1, UNI, 8, 2, 2, VB, VN},
        {4096, 4096, 4, 255, UNI, 8, 4, 4, VB, VB},
        {4096, 4096, 4, 255, UNI, 8, 8, 8, VB, VB},
        {4096, 4096, 4, 255, UNI, 8, 2, 4, VB, VB},
        /* Batch 1 small products at 2-4 planes; 1 plane and large ones
         * were the code kernel already. */
        {1024, 256, 1, 255, UNI, 8, 2, 2, LUT, VN},
        {1024, 256, 1, 255, UNI, 8, 4, 4, LUT, VN},
        {1024, 256, 1, 1, UNI, 8, 3, 3, LUT, VN},
        {64, 64, 1, 1, UNI, 8, 2, 4, LUT, VN},
        {1024, 256, 1, 255, UNI, 8, 1, 1, VN, VN},
        {4096, 4096, 1, 255, UNI, 8, 2, 2, VN, VN},
        {1024, 256, 1, 255, UNI, 8, 8, 8, VN, VN},
        /* Unchanged: a 1-plane column, batch 3 and 8+, more than 8 planes,
         * act_bits the code kernels do not run, residual matrices. */
        {4096, 4096, 2, 255, UNI, 8, 1, 1, VN, VN},
        {4096, 4096, 2, 255, UNI, 8, 1, 4, LUT, LUT},
        {4096, 4096, 3, 255, UNI, 8, 2, 2, VB, VB},
        {4096, 4096, 8, 255, UNI, 8, 2, 2, VB, VB},
        {4096, 4096, 16, 255, UNI, 8, 2, 2, VB, VB},
        {4096, 4096, 2, 255, UNI, 8, 12, 12, VB, VB},
        {1024, 256, 1, 255, UNI, 10, 2, 2, LUT, LUT},
        {4096, 4096, 2, 255, UNI, 10, 2, 2, LUT, LUT},
        {4096, 4096, 2, 1, RES, 8, 4, 4, LUT, LUT},
        {1024, 256, 1, 1, RES, 8, 2, 2, "avx512", "avx512"},
    };
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    for (int halves = 0; halves <= 1; halves++) {
        set_avx512_features(halves);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const zmm_case *c = &cases[i];
            cr_expect_str_eq(auto_for(ctx, c), halves ? c->halves : c->full_width,
                             "zmm_halves %d: %zu x %zu, batch %zu, planes %d-%d, act_bits %d, "
                             "mult_bound %u, %s",
                             halves, c->rows, c->kpad, c->batch, c->min_planes, c->max_planes,
                             c->act_bits, c->mult_bound, c->method == UNI ? "uniform" : "residual");
        }
    }
    bp_context_destroy(ctx);
    bp__cpu_features_set(NULL);
}

/* A forced path wins over zmm_halves: the context option and BP_CPU. */
Test(misc, zmm_halves_forced_path_wins) {
    if (!bp__cpu_kernel_by_name(VN))
        cr_skip_test("the AVX-512 kernels are not built for this architecture");
    set_avx512_features(true);
    const zmm_case batch2 = {4096, 4096, 2, 255, UNI, 8, 2, 2, VB, VN};
    const zmm_case small = {1024, 256, 1, 255, UNI, 8, 2, 2, LUT, VN};
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AVX512_VNNI_BATCHED, 1);
    cr_expect_str_eq(auto_for(ctx, &batch2), VB);
    bp_context_destroy(ctx);
    cr_assert_eq(setenv("BP_CPU", LUT, 1), 0);
    ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    cr_expect_str_eq(auto_for(ctx, &small), LUT);
    cr_expect_str_eq(auto_for(ctx, &batch2), LUT);
    bp_context_destroy(ctx);
    unsetenv("BP_CPU");
    bp__cpu_features_set(NULL);
}
#undef UNI
#undef RES
#undef VN
#undef VB
#undef LUT

/* AUTO for a mixed batch of 4-15 columns with a 1-plane column: the batched
 * code kernel once the mean plane count reaches 3 (the LUT kernel's time
 * follows the plane sum, the batched kernel's the columns), else the LUT
 * kernel; and the batch planes 1..8 equals single calls bit for bit. */
Test(misc, auto_mixed_batch) {
    const bp_cpu_features *f = bp__cpu_features();
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    if (f->avx512_vnni && f->gfni && f->avx512_vbmi) {
        bp_kernel_shape s = {.act_bits = 8,
                             .kpad = 1024,
                             .mult_bound = 1,
                             .method = BP_QUANT_UNIFORM,
                             .min_planes = 1,
                             .max_planes = 8,
                             .rows = 4096};
        static const struct {
            size_t batch, units;
            bool batched;
        } cases[] = {{8, 36, true},  {12, 36, true}, {12, 35, false}, {4, 12, true}, {4, 11, false},
                     {8, 15, false}, {8, 9, false},  {3, 24, false},  {16, 16, true}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            s.batch = cases[i].batch;
            s.units = cases[i].units;
            const char *name = bp__select_kernel(ctx, &s)->name;
            if (cases[i].batched)
                cr_expect_str_eq(name, "avx512-vnni-batched", "batch %zu, %zu units", s.batch,
                                 s.units);
            else
                cr_expect_str_neq(name, "avx512-vnni-batched", "batch %zu, %zu units", s.batch,
                                  s.units);
        }
    }
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    enum { M = 300, K = 700, B = 8 };
    float *w = tu_xmalloc((size_t)M * K * sizeof *w);
    float *x = tu_xmalloc((size_t)B * K * sizeof *x);
    float *y = tu_xmalloc((size_t)B * M * sizeof *y);
    float y1[M];
    tu_fill_gauss(&rng, w, (size_t)M * K, 1.0f);
    tu_fill_gauss(&rng, x, (size_t)B * K, 1.0f);
    bp_matrix *m = tu_quantize(ctx, w, M, K, K, 8, BP_QUANT_UNIFORM, 1.0f);
    int cp[B];
    for (int b = 0; b < B; b++)
        cp[b] = 1 + b; /* mean 4.5: the batched kernel where it runs */
    bp_run_options o = BP_RUN_OPTIONS_INIT;
    o.column_planes = cp;
    cr_assert(bp_gemm(ctx, m, x, B, K, y, M, &o) == BP_OK, "%s", bp_last_error());
    for (int b = 0; b < B; b++) {
        bp_run_options o1 = BP_RUN_OPTIONS_INIT;
        o1.planes = cp[b];
        cr_assert(bp_gemm(ctx, m, x + (size_t)b * K, 1, K, y1, M, &o1) == BP_OK);
        size_t r = 0;
        cr_expect(tu_first_mismatch(y1, y + (size_t)b * M, M, 1, M, &r, NULL) < 0,
                  "column %d at %d planes differs at row %zu: %a vs %a seed=%llu", b, cp[b], r,
                  (double)y[(size_t)b * M + r], (double)y1[r], seed);
    }
    bp_matrix_destroy(m);
    free(w);
    free(x);
    free(y);
    bp_context_destroy(ctx);
}

/* bp_cpu_kernel_from_name / _to_name: the one name table (BP_CPU, the tools,
 * the bindings) against the test suite's own list; unknown names refused. */
Test(misc, cpu_kernel_names_round_trip) {
    static const bp_cpu_kernel all[] = {
        BP_CPU_KERNEL_AUTO,        BP_CPU_KERNEL_REFERENCE,   BP_CPU_KERNEL_PORTABLE,
        BP_CPU_KERNEL_AVX2,        BP_CPU_KERNEL_AVX2_LUT,    BP_CPU_KERNEL_AVX512,
        BP_CPU_KERNEL_AVX512_LUT,  BP_CPU_KERNEL_AVX512_VNNI, BP_CPU_KERNEL_AVX512_VNNI_BATCHED,
        BP_CPU_KERNEL_AVX_VNNI,    BP_CPU_KERNEL_NEON,        BP_CPU_KERNEL_NEON_LUT,
        BP_CPU_KERNEL_NEON_DOTPROD};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *name = bp_cpu_kernel_to_name(all[i]);
        cr_assert(name != NULL, "kernel %d has no name", (int)all[i]);
        cr_expect_str_eq(name, tu_kernel_name(all[i]));
        bp_cpu_kernel k = (bp_cpu_kernel)-1;
        cr_expect_eq(bp_cpu_kernel_from_name(name, &k), BP_OK, "%s: %s", name, bp_last_error());
        cr_expect_eq(k, all[i], "%s", name);
    }
    cr_expect_null(bp_cpu_kernel_to_name((bp_cpu_kernel)99));
    bp_cpu_kernel k = BP_CPU_KERNEL_AUTO;
    cr_expect_eq(bp_cpu_kernel_from_name("avx513", &k), BP_ERR_INVALID_ARGUMENT);
    cr_expect(strstr(bp_last_error(), "'avx513' is not one of auto, reference") != NULL, "%s",
              bp_last_error());
    cr_expect(strstr(bp_last_error(), "neon-dotprod") != NULL, "%s", bp_last_error());
    cr_expect_eq(k, BP_CPU_KERNEL_AUTO, "a refused name leaves *out alone");
    cr_expect_eq(bp_cpu_kernel_from_name(NULL, &k), BP_ERR_INVALID_ARGUMENT);
    cr_expect_eq(bp_cpu_kernel_from_name("auto", NULL), BP_ERR_INVALID_ARGUMENT);
}
