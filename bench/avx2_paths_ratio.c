/*
 * The forced AVX2 paths against AUTO in one process: one matrix, one context
 * per path (auto, avx2, avx-vnni), the paths interleaved round by round, each
 * round the median thread CPU time of `calls` bp_gemm calls per path (time
 * the scheduler gives other jobs is not counted), and the median over rounds
 * of each forced path's time over AUTO's. y must be bit-identical across
 * the paths in every call, else exit status 1.
 *
 * usage: avx2_paths_ratio M K BATCH GROUP [ROUNDS [CALLS]]
 *   GROUP: 0 = the library default, -1 = per row, else the group size.
 * 4 planes, act_bits 8, 1 thread, default rotation.
 */
#include <bitplane.h>

#include "bench_median.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NPATHS    3
#define MAXROUNDS 64

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double median(double *v, int n) {
    return bench_median_sorting(v, (size_t)n);
}

/* Uniform in [-1, 1) from a 64-bit LCG (fresh, nonzero data). */
static float rnd(unsigned long long *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(*s >> 11) / 4503599627370496.0 - 1.0);
}

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if ((x) != BP_OK) {                                                                        \
            fprintf(stderr, "%s: %s\n", #x, bp_last_error());                                      \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s M K BATCH GROUP [ROUNDS [CALLS]]\n", argv[0]);
        return 2;
    }
    const size_t m = strtoul(argv[1], NULL, 10), k = strtoul(argv[2], NULL, 10),
                 batch = strtoul(argv[3], NULL, 10);
    const int group = atoi(argv[4]);
    const int rounds = argc > 5 ? atoi(argv[5]) : 9, calls = argc > 6 ? atoi(argv[6]) : 11;
    if (!m || !k || !batch || rounds < 1 || rounds > MAXROUNDS || calls < 1 || calls > 101) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    const char *names[NPATHS] = {"auto", "avx2", "avx-vnni"};
    bp_context *ctx[NPATHS];
    for (int p = 0; p < NPATHS; p++) {
        bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
        o.threads = 1;
        CHECK(bp_cpu_kernel_from_name(names[p], &o.cpu_kernel));
        CHECK(bp_context_create(&o, &ctx[p]));
    }
    float *w = malloc(m * k * sizeof *w), *x = malloc(k * batch * sizeof *x);
    float *y[NPATHS];
    unsigned long long seed = 12345;
    for (size_t i = 0; i < m * k; i++)
        w[i] = rnd(&seed);
    for (size_t i = 0; i < k * batch; i++)
        x[i] = rnd(&seed);
    bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
    qo.bits = 8;
    qo.group_size = group;
    bp_matrix *mat;
    CHECK(bp_matrix_quantize(ctx[0], w, m, k, k, &qo, &mat));
    bp_run_options ro = BP_RUN_OPTIONS_INIT;
    ro.planes = 4;
    ro.act_bits = 8;
    for (int p = 0; p < NPATHS; p++)
        y[p] = malloc(m * batch * sizeof *y[p]);
    double ratio[NPATHS][MAXROUNDS], ms[NPATHS][MAXROUNDS];
    for (int r = 0; r < rounds; r++) {
        double t[NPATHS];
        for (int p = 0; p < NPATHS; p++) {
            double v[101];
            for (int c = 0; c < calls; c++) {
                const double t0 = thread_seconds();
                CHECK(bp_gemm(ctx[p], mat, x, batch, k, y[p], m, &ro));
                v[c] = thread_seconds() - t0;
            }
            t[p] = median(v, calls);
            ms[p][r] = 1e3 * t[p];
            if (p && memcmp(y[p], y[0], m * batch * sizeof *y[p])) {
                fprintf(stderr, "y differs between %s and %s\n", names[p], names[0]);
                return 1;
            }
        }
        for (int p = 0; p < NPATHS; p++)
            ratio[p][r] = t[p] / t[0];
    }
    printf("%zux%zu batch %zu group %d:", m, k, batch, group);
    for (int p = 0; p < NPATHS; p++)
        printf(" %s %.3f ms", names[p], median(ms[p], rounds));
    for (int p = 1; p < NPATHS; p++)
        printf(" | %s/auto %.2fx", names[p], median(ratio[p], rounds));
    printf("\n");
    bp_matrix_destroy(mat);
    for (int p = 0; p < NPATHS; p++) {
        bp_context_destroy(ctx[p]);
        free(y[p]);
    }
    free(w);
    free(x);
    return 0;
}
