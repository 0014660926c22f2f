/*
 * Loading accelerator backends: a missing plugin, a library that is not a
 * backend, a plugin built for another release, and a working stand-in
 * (tests/fake_plugin.c) whose device copies go through the matrix cache:
 * made once however many threads ask at once, freed with the matrix.
 */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"
#include "bp_error.h"
#include "bp_abi.h"

#include "tu_criterion.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

TestSuite(plugin, .fini = tu_suite_fini);

static bp_status create_with_dir(const char *dir, bp_backend backend, bp_context **ctx) {
    cr_assert_eq(setenv("BP_PLUGIN_DIR", dir, 1), 0);
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = backend;
    o.threads = 1;
    *ctx = (bp_context *)(uintptr_t)1;
    bp__clear_error();
    return bp_context_create(&o, ctx);
}

Test(plugin, missing_backend_is_unsupported_with_the_paths_tried) {
    static const struct {
        bp_backend backend;
        const char *file;
    } cases[] = {{BP_BACKEND_CUDA, "libbitplane_cuda.so.0"},
                 {BP_BACKEND_OPENCL, "libbitplane_opencl.so.0"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* The empty directory comes first; the fallbacks (the library's own
         * directory and the loader path) hold no plugin in this build tree
         * for a statically linked test, unless one was built there. */
        bp_context *ctx;
        bp_status st = create_with_dir(FAKE_DIR_EMPTY, cases[i].backend, &ctx);
        if (st == BP_OK) {
            bp_context_destroy(ctx);
            cr_skip_test("a %s plugin is installed on the loader path", cases[i].file);
        }
        cr_expect_eq(st, BP_ERR_UNSUPPORTED, "got %s: %s", bp_status_string(st), bp_last_error());
        cr_expect(ctx == NULL, "failing create must set *out to NULL");
        cr_expect(strstr(bp_last_error(), FAKE_DIR_EMPTY "/") != NULL,
                  "message must name the BP_PLUGIN_DIR path tried: %s", bp_last_error());
        cr_expect(strstr(bp_last_error(), cases[i].file) != NULL, "message must name %s: %s",
                  cases[i].file, bp_last_error());
    }
}

Test(plugin, library_without_entry_is_rejected) {
    bp_context *ctx;
    bp_status st = create_with_dir(FAKE_DIR_NOSYM, BP_BACKEND_CUDA, &ctx);
    cr_expect_eq(st, BP_ERR_UNSUPPORTED, "got %s: %s", bp_status_string(st), bp_last_error());
    cr_expect(ctx == NULL);
    cr_expect(strstr(bp_last_error(), "no symbol bp_plugin_cuda_entry") != NULL, "%s",
              bp_last_error());
}

Test(plugin, plugin_from_another_release_is_rejected) {
    bp_context *ctx;
    bp_status st = create_with_dir(FAKE_DIR_ABI, BP_BACKEND_CUDA, &ctx);
    cr_expect_eq(st, BP_ERR_UNSUPPORTED, "got %s: %s", bp_status_string(st), bp_last_error());
    cr_expect(ctx == NULL);
    cr_expect(strstr(bp_last_error(), "different libbitplane") != NULL, "%s", bp_last_error());
}

typedef struct call_job {
    bp_context *ctx;
    const bp_matrix *m;
    const float *x;
    size_t K;
    int planes;
    float y[64];
    bp_status st;
} call_job;

static void *call_thread(void *arg) {
    call_job *j = arg;
    bp_run_options o = tu_run(j->planes, 8);
    j->st = bp_gemm(j->ctx, j->m, j->x, 1, j->K, j->y, 64, &o);
    return NULL;
}

Test(plugin, working_plugin_caches_one_device_copy_per_matrix) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx;
    bp_status st = create_with_dir(FAKE_DIR_OK, BP_BACKEND_CUDA, &ctx);
    cr_assert_eq(st, BP_OK, "%s", bp_last_error());
    cr_expect_eq(bp_context_backend(ctx), BP_BACKEND_CUDA);
    /* Plugin options reach the plugin: it knows only device 0. */
    bp_context *bad;
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = BP_BACKEND_CUDA;
    o.device = 3;
    cr_expect_eq(bp_context_create(&o, &bad), BP_ERR_UNSUPPORTED);
    cr_expect(strstr(bp_last_error(), "no device 3") != NULL, "%s", bp_last_error());

    void *lib = dlopen(FAKE_DIR_OK "/libbitplane_cuda.so.0", RTLD_NOW | RTLD_NOLOAD);
    cr_assert(lib != NULL, "the plugin must stay loaded");
    int (*made)(void), (*freed)(void);
    *(void **)&made = dlsym(lib, "bp_fake_copies_made");
    *(void **)&freed = dlsym(lib, "bp_fake_copies_freed");
    cr_assert(made && freed);
    int made0 = made(), freed0 = freed();

    size_t M = 64, K = 700;
    bp_context *cpu = tu_context(BP_CPU_KERNEL_AUTO, 1);
    float *w = malloc(M * K * sizeof *w), *x = malloc(K * sizeof *x);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    tu_fill_gauss(&rng, x, K, 1.0f);
    bp_matrix *m = tu_quantize(cpu, w, M, K, K, 4, BP_QUANT_UNIFORM, 0.0f);

    enum { T = 8 };
    call_job jobs[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (call_job){.ctx = ctx, .m = m, .x = x, .K = K, .planes = 1 + t % 4};
        cr_assert_eq(pthread_create(&th[t], NULL, call_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    cr_expect_eq(made() - made0, 1, "8 concurrent first calls must make one copy, made %d",
                 made() - made0);
    for (int t = 0; t < T; t++) {
        cr_assert_eq(jobs[t].st, BP_OK, "%s", bp_last_error());
        for (size_t r = 0; r < M; r++) {
            unsigned count = 0;
            for (int p = 0; p < jobs[t].planes; p++)
                for (size_t c = 0; c < K; c++)
                    count += (unsigned)bp__plane_bit(m, p, r, c);
            cr_assert_eq(jobs[t].y[r], (float)count,
                         "row %zu planes %d: the copy must hold the matrix's planes (seed %llu)", r,
                         jobs[t].planes, seed);
        }
    }
    /* A second context of the same backend shares the copy. */
    bp_context *ctx2;
    cr_assert_eq(create_with_dir(FAKE_DIR_OK, BP_BACKEND_CUDA, &ctx2), BP_OK);
    call_job again = {.ctx = ctx2, .m = m, .x = x, .K = K, .planes = 2};
    call_thread(&again);
    cr_expect_eq(again.st, BP_OK);
    cr_expect_eq(made() - made0, 1);

    cr_expect_eq(freed() - freed0, 0);
    bp_matrix_destroy(m);
    cr_expect_eq(freed() - freed0, 1, "destroying the matrix must free its device copy");
    bp_context_destroy(ctx2);
    bp_context_destroy(ctx);
    bp_context_destroy(cpu);
    free(w);
    free(x);
}
