/*
 * ab-bench: the same bp_gemm calls through two builds of libbitplane in one
 * process, interleaved, for before/after tables on a loaded machine.
 *
 *   ab-bench LIB_A LIB_B [--shape 4096x4096] [--batch 4,8,16] [--planes 1,2,3,4,8]
 *            [--kernel avx512-vnni-batched] [--kernel-b NAME] [--rounds 15] [--min-ms 20]
 *
 * Both libraries are dlopen'ed by path with RTLD_LOCAL | RTLD_DEEPBIND, so
 * each resolves its own symbols. Each quantizes the same matrix (same
 * weights, default options, 8 planes) on a 1-thread context with the given
 * kernel (or "auto"; --kernel-b gives B another, to compare two kernels of
 * one build: LIB_A and LIB_B may be the same path). Every round times A then B, or B then A on odd
 * rounds: a sample is enough back-to-back calls to last --min-ms of process
 * CPU time, divided by their number (CPU time, not wall time, so that other
 * processes' load does not count). Printed per batch and plane count: the
 * median ms per call of each, the median of the per-round ratios B / A, and
 * whether the two outputs were bit-identical.
 */
#define _GNU_SOURCE
#include "bench_median.h"
#include "bitplane.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct lib {
    void *h;
    bp_status (*context_create)(const bp_context_options *, bp_context **);
    bp_status (*kernel_from_name)(const char *, bp_cpu_kernel *);
    bp_status (*quantize)(bp_context *, const float *, size_t, size_t, size_t,
                          const bp_quant_options *, bp_matrix **);
    bp_status (*gemm)(bp_context *, const bp_matrix *, const float *, size_t, size_t, float *,
                      size_t, const bp_run_options *);
    const char *(*last_error)(void);
    bp_context *ctx;
    bp_matrix *m;
} lib;

static void *sym(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "ab-bench: %s\n", dlerror());
        exit(1);
    }
    return p;
}

static void lib_open(lib *l, const char *path, const char *kernel, const float *w, size_t rows,
                     size_t cols) {
    l->h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!l->h) {
        fprintf(stderr, "ab-bench: %s\n", dlerror());
        exit(1);
    }
    *(void **)&l->context_create = sym(l->h, "bp_context_create");
    *(void **)&l->kernel_from_name = sym(l->h, "bp_cpu_kernel_from_name");
    *(void **)&l->quantize = sym(l->h, "bp_matrix_quantize");
    *(void **)&l->gemm = sym(l->h, "bp_gemm");
    *(void **)&l->last_error = sym(l->h, "bp_last_error");
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.threads = 1;
    if (l->kernel_from_name(kernel, &o.cpu_kernel) != BP_OK || l->context_create(&o, &l->ctx) ||
        l->quantize(l->ctx, w, rows, cols, cols, &BP_QUANT_OPTIONS_INIT, &l->m)) {
        fprintf(stderr, "ab-bench: %s: %s\n", path, l->last_error());
        exit(1);
    }
}

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds per call: enough calls to last min_s of CPU time. */
static double sample(lib *l, const float *x, size_t batch, float *y, int planes, double min_s,
                     size_t rows, size_t cols) {
    bp_run_options r = BP_RUN_OPTIONS_INIT;
    r.planes = planes;
    int calls = 0;
    const double t0 = cpu_s();
    double t;
    do {
        if (l->gemm(l->ctx, l->m, x, batch, cols, y, rows, &r) != BP_OK) {
            fprintf(stderr, "ab-bench: bp_gemm: %s\n", l->last_error());
            exit(1);
        }
        calls++;
    } while ((t = cpu_s() - t0) < min_s);
    return t / calls;
}

static double median(double *v, int n) {
    return bench_median_sorting(v, (size_t)n);
}

static int parse_list(const char *s, long *out, int max) {
    int n = 0;
    for (char *end; *s && n < max; s = *end == ',' ? end + 1 : end) {
        out[n++] = strtol(s, &end, 10);
        if (end == s)
            return -1;
    }
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ab-bench LIB_A LIB_B [--shape MxK] [--batch 4,8] [--planes 1,8] "
                        "[--kernel NAME] [--kernel-b NAME] [--rounds N] [--min-ms MS]\n");
        return 2;
    }
    size_t rows = 4096, cols = 4096;
    long batches[16] = {4, 8, 16}, planes[16] = {1, 2, 3, 4, 8};
    int nb = 3, np = 5, rounds = 15;
    double min_s = 0.02;
    const char *kernel = "avx512-vnni-batched", *kernel_b = NULL;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--shape"))
            sscanf(argv[i + 1], "%zux%zu", &rows, &cols);
        else if (!strcmp(argv[i], "--batch"))
            nb = parse_list(argv[i + 1], batches, 16);
        else if (!strcmp(argv[i], "--planes"))
            np = parse_list(argv[i + 1], planes, 16);
        else if (!strcmp(argv[i], "--kernel"))
            kernel = argv[i + 1];
        else if (!strcmp(argv[i], "--kernel-b"))
            kernel_b = argv[i + 1];
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--min-ms"))
            min_s = atof(argv[i + 1]) / 1000.0;
        else {
            fprintf(stderr, "ab-bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nb <= 0 || np <= 0 || rounds < 1 || rounds > 1000 || !rows || !cols) {
        fprintf(stderr, "ab-bench: bad arguments\n");
        return 2;
    }
    size_t maxb = 0;
    for (int i = 0; i < nb; i++)
        maxb = (size_t)batches[i] > maxb ? (size_t)batches[i] : maxb;
    float *w = malloc(rows * cols * sizeof *w), *x = malloc(maxb * cols * sizeof *x);
    float *ya = malloc(maxb * rows * sizeof *ya), *yb = malloc(maxb * rows * sizeof *yb);
    double *ta = malloc((size_t)rounds * sizeof *ta), *tb = malloc((size_t)rounds * sizeof *tb);
    double *ratio = malloc((size_t)rounds * sizeof *ratio);
    if (!w || !x || !ya || !yb || !ta || !tb || !ratio)
        return 1;
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < rows * cols; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    for (size_t i = 0; i < maxb * cols; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    lib a, b;
    lib_open(&a, argv[1], kernel, w, rows, cols);
    lib_open(&b, argv[2], kernel_b ? kernel_b : kernel, w, rows, cols);
    printf("| M x K | batch | planes | A ms | B ms | B / A (median of rounds) | y identical |\n");
    printf("|---|---:|---:|---:|---:|---:|---|\n");
    for (int bi = 0; bi < nb; bi++)
        for (int pi = 0; pi < np; pi++) {
            const size_t batch = (size_t)batches[bi];
            const int n = (int)planes[pi];
            sample(&a, x, batch, ya, n, min_s / 4, rows, cols); /* warm-up */
            sample(&b, x, batch, yb, n, min_s / 4, rows, cols);
            for (int r = 0; r < rounds; r++) {
                if (r % 2) {
                    tb[r] = sample(&b, x, batch, yb, n, min_s, rows, cols);
                    ta[r] = sample(&a, x, batch, ya, n, min_s, rows, cols);
                } else {
                    ta[r] = sample(&a, x, batch, ya, n, min_s, rows, cols);
                    tb[r] = sample(&b, x, batch, yb, n, min_s, rows, cols);
                }
                ratio[r] = tb[r] / ta[r];
            }
            const bool same = !memcmp(ya, yb, batch * rows * sizeof *ya);
            printf("| %zux%zu | %zu | %d | %.3f | %.3f | %.3f | %s |\n", rows, cols, batch, n,
                   1e3 * median(ta, rounds), 1e3 * median(tb, rounds), median(ratio, rounds),
                   same ? "yes" : "NO");
            fflush(stdout);
        }
    return 0;
}
