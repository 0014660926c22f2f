/*
 * bitplane-bench-row-planes: does the time of a product follow the bytes it
 * reads when rows have their own plane counts (docs/row-planes.md)?
 *
 *   bitplane-bench-row-planes [--m 16384] [--k 4096] [--hi 8] [--lo 2]
 *       [--rounds 21] [--threads 1] [--seed 42]
 *
 * One m x k matrix (Gaussian, the default quantizer: groups of 64, rotation
 * 256) quantized twice: "mixed", half the rows (every other one, so the
 * stored order really permutes them) at --hi planes and half at --lo; and
 * plain, run at uniform (hi + lo) / 2 planes (the same bytes when hi + lo is
 * even), at uniform hi and at uniform lo; and "halves", the same counts on
 * the first and second half of the rows (no permutation). Each round times one pass over every copy
 * of each (copies rotate so consecutive calls read at least 512 MiB, more than this machine's
 * last-level cache, and the figures are memory-bound) and one pass of the stream probe's fastest
 * read form, interleaved, so every median is taken under the same load. Prints per case the median
 * time per call, the bytes a call reads (bp_matrix_bytes_read), GB/s, the fraction of the stream
 * ceiling and the time relative to uniform (hi + lo) / 2.
 */
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_probes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROTATION_BYTES ((size_t)512 << 20)
#define MAX_ROUNDS     1001

typedef struct bench_case {
    const char *name;
    bp_matrix **mats;
    size_t copies;
    int planes;
    double t[MAX_ROUNDS];
    size_t bytes;
} bench_case;

static int parse(int argc, char **argv, size_t *m, size_t *k, int *hi, int *lo, int *rounds,
                 int *threads, unsigned long long *seed) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return bench_fail("%s needs a value", a);
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (*end || !*v)
            return bench_fail("%s: not a number: '%s'", a, v);
        if (!strcmp(a, "--m"))
            *m = n;
        else if (!strcmp(a, "--k"))
            *k = n;
        else if (!strcmp(a, "--hi"))
            *hi = (int)n;
        else if (!strcmp(a, "--lo"))
            *lo = (int)n;
        else if (!strcmp(a, "--rounds"))
            *rounds = (int)n;
        else if (!strcmp(a, "--threads"))
            *threads = (int)n;
        else if (!strcmp(a, "--seed"))
            *seed = n;
        else
            return bench_fail("unknown option %s (--m --k --hi --lo --rounds --threads --seed)", a);
        i++;
    }
    if (*m < 32 || *k < 1 || *lo < 1 || *hi <= *lo || *hi > 8 || *rounds < 1 ||
        *rounds > MAX_ROUNDS || *threads < 1)
        return bench_fail("need m >= 32, k >= 1, 1 <= lo < hi <= 8, rounds 1..%d, threads >= 1",
                          MAX_ROUNDS);
    return 0;
}

static int make_copies(bp_context *ctx, bp_matrix *src, size_t read_bytes, bench_case *c) {
    size_t n = (ROTATION_BYTES + read_bytes - 1) / read_bytes;
    n = n < 1 ? 1 : (n > BENCH_MAX_COPIES ? BENCH_MAX_COPIES : n);
    c->mats = calloc(n, sizeof *c->mats);
    if (!c->mats)
        return bench_fail("out of memory");
    c->copies = n;
    return bench_matrix_copies(ctx, src, n, c->mats);
}

int main(int argc, char **argv) {
    size_t m = 16384, k = 4096;
    int hi = 8, lo = 2, rounds = 21, threads = 1;
    unsigned long long seed = 42;
    if (parse(argc, argv, &m, &k, &hi, &lo, &rounds, &threads, &seed))
        return 2;
    const int mid = (hi + lo) / 2;
    bench_stream_ceiling *s = calloc(1, sizeof *s);
    float *w = bench_alloc(m * k, sizeof(float), "weights");
    float *x = bench_alloc(k, sizeof(float), "x");
    float *y = bench_alloc(m, sizeof(float), "y");
    uint8_t *counts = malloc(m);
    if (!s || !w || !x || !y || !counts)
        return bench_fail("out of memory");
    /* The probe first, before any pool exists (as bitplane-bench does). */
    int rc = bench_stream_probe(bench_stream_default_bytes(), threads, rounds, s);
    if (rc)
        return rc;
    bench_rng rng;
    bench_rng_seed(&rng, seed);
    bench_fill_gaussian(&rng, w, m * k);
    bench_fill_gaussian(&rng, x, k);
    for (size_t r = 0; r < m; r++)
        counts[r] = (uint8_t)(r % 2 ? lo : hi);

    bp_context_options co = BP_CONTEXT_OPTIONS_INIT;
    co.backend = BP_BACKEND_CPU;
    co.threads = threads;
    bp_context *ctx = NULL;
    bp_status st = bp_context_create(&co, &ctx);
    if (st)
        return bench_bp_fail(st, "bp_context_create");
    /* Quantization is not timed: every core. */
    bp_context_options qo = BP_CONTEXT_OPTIONS_INIT;
    qo.backend = BP_BACKEND_CPU;
    bp_context *qctx = NULL;
    if ((st = bp_context_create(&qo, &qctx)))
        return bench_bp_fail(st, "bp_context_create");
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.bits = hi;
    bp_matrix *plain = NULL, *mixed = NULL, *halves = NULL;
    if ((st = bp_matrix_quantize(qctx, w, m, k, k, &q, &plain)))
        return bench_bp_fail(st, "quantize (plain)");
    q.row_planes = counts;
    if ((st = bp_matrix_quantize(qctx, w, m, k, k, &q, &mixed)))
        return bench_bp_fail(st, "quantize (mixed)");
    /* The same counts on contiguous halves: no permutation. */
    for (size_t r = 0; r < m; r++)
        counts[r] = (uint8_t)(r < m / 2 ? hi : lo);
    if ((st = bp_matrix_quantize(qctx, w, m, k, k, &q, &halves)))
        return bench_bp_fail(st, "quantize (halves)");
    bp_context_destroy(qctx);
    free(w);

    char mixed_name[64], halves_name[64], mid_name[64], hi_name[64], lo_name[64];
    snprintf(mixed_name, sizeof mixed_name, "mixed %d/%d", hi, lo);
    snprintf(halves_name, sizeof halves_name, "halves %d/%d", hi, lo);
    snprintf(mid_name, sizeof mid_name, "uniform %d", mid);
    snprintf(hi_name, sizeof hi_name, "uniform %d", hi);
    snprintf(lo_name, sizeof lo_name, "uniform %d", lo);
    enum { NCASES = 5 };
    bench_case cases[NCASES] = {{.name = mixed_name, .planes = hi},
                                {.name = mid_name, .planes = mid},
                                {.name = hi_name, .planes = hi},
                                {.name = lo_name, .planes = lo},
                                {.name = halves_name, .planes = hi}};
    cases[0].bytes = bp_matrix_bytes_read(mixed, hi);
    cases[1].bytes = bp_matrix_bytes_read(plain, mid);
    cases[2].bytes = bp_matrix_bytes_read(plain, hi);
    cases[3].bytes = bp_matrix_bytes_read(plain, lo);
    cases[4].bytes = bp_matrix_bytes_read(halves, hi);
    rc = make_copies(ctx, mixed, cases[0].bytes, &cases[0]);
    if (!rc)
        rc = make_copies(ctx, halves, cases[4].bytes, &cases[4]);
    if (!rc) {
        /* The uniform cases rotate through the same copies of plain. */
        rc = make_copies(ctx, plain, cases[1].bytes, &cases[1]);
        for (int c = 2; c <= 3; c++) {
            cases[c].mats = cases[1].mats;
            cases[c].copies = cases[1].copies;
        }
    }
    bench_stream_replay replay;
    if (!rc)
        rc = bench_stream_replay_open(s, &replay);
    double *stream_t = calloc((size_t)rounds * NCASES, sizeof *stream_t);
    if (!stream_t)
        return bench_fail("out of memory");
    bp_run_options ro = BP_RUN_OPTIONS_INIT;
    for (int round = -1; round < rounds && !rc; round++) {
        for (int i = 0; i < NCASES && !rc; i++) {
            /* Each round starts at another case, so no case always runs
             * first or after the same one. */
            const int c = (i + round + NCASES) % NCASES;
            /* A stream pass before every case: it reads more than the
             * last-level cache, so no case finds another's weights there
             * (the uniform cases share copies). */
            double t;
            rc = bench_stream_replay_pass(&replay, &t);
            if (round >= 0)
                stream_t[(size_t)round * NCASES + (size_t)i] = t;
            ro.planes = cases[c].planes;
            double t0 = bench_now();
            for (size_t i = 0; i < cases[c].copies && !rc; i++)
                if ((st = bp_gemm(ctx, cases[c].mats[i], x, 1, k, y, m, &ro)))
                    rc = bench_bp_fail(st, "bp_gemm");
            if (round >= 0)
                cases[c].t[round] = (bench_now() - t0) / (double)cases[c].copies;
        }
    }
    if (rc)
        return rc;
    bench_stream_replay_close(&replay);
    const double stream_gbps =
        (double)s->bytes_read / bench_median(stream_t, (size_t)rounds * NCASES) / 1e9;
    double med[NCASES];
    for (int c = 0; c < NCASES; c++)
        med[c] = bench_median(cases[c].t, (size_t)rounds);
    printf("bitplane-bench-row-planes: %zu x %zu, default quantizer, 1 column, act_bits 8, %d "
           "thread(s), kernel %s, %d interleaved rounds (medians)\n",
           m, k, threads, bp_matrix_cpu_kernel_name(ctx, plain, mid, 8, 1), rounds);
    printf("stream ceiling (same rounds, form %s): %.2f GB/s\n", s->isa, stream_gbps);
    printf("%-14s %10s %12s %8s %10s %14s\n", "case", "ms/call", "bytes/call", "GB/s", "of stream",
           "time vs mid");
    for (int c = 0; c < NCASES; c++)
        printf("%-14s %10.3f %12zu %8.2f %10.3f %14.3f\n", cases[c].name, med[c] * 1e3,
               cases[c].bytes, (double)cases[c].bytes / med[c] / 1e9,
               (double)cases[c].bytes / med[c] / 1e9 / stream_gbps, med[c] / med[1]);
    for (int c = 0; c < NCASES; c++) {
        if (c == 2 || c == 3)
            continue; /* plain's copies, freed with case 1 */
        for (size_t i = 1; i < cases[c].copies; i++)
            bp_matrix_destroy(cases[c].mats[i]);
        free(cases[c].mats);
    }
    bp_matrix_destroy(plain);
    bp_matrix_destroy(mixed);
    bp_matrix_destroy(halves);
    bp_context_destroy(ctx);
    free(stream_t);
    free(counts);
    free(x);
    free(y);
    free(s);
    return 0;
}
