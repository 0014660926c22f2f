/*
 * bitplane-small-bench: thread CPU time per batched call on small layers
 * (the bundled models' shapes), bp_gemm beside OpenBLAS sgemm in one
 * process, for same-run ratios on a loaded machine.
 *
 *   bitplane-small-bench [--shapes 128x256,256x64:u,...] [--batch 8,32,360]
 *       [--planes 4] [--act-bits 8] [--threads 1] [--samples 15]
 *       [--sample-us 4000] [--only bitplane|sgemm]
 *
 * A shape "MxK:u" quantizes with nonnegative_inputs and takes ReLU'd
 * Gaussian inputs (as the digits MLP's hidden layers do); plain shapes take
 * Gaussian inputs with the quantizer's defaults (uniform, groups of 32,
 * rotation). Per shape and batch, `samples` rounds each time bp_gemm and
 * sgemm back to back over enough calls to last about --sample-us of the
 * calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID: time lost to other
 * processes is not counted). One JSON line per shape and batch on stdout:
 * median microseconds per call of each, and a checksum of bitplane's y
 * (FNV-1a of its bytes) so that two builds can be compared bit for bit.
 * --only times one side (for callgrind).
 */
#include "bench_common.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

#define MAX_LIST 16

typedef struct shape {
    size_t m, k;
    bool nonneg;
} shape;

typedef struct opts {
    shape shapes[MAX_LIST];
    int nshapes;
    size_t batch[MAX_LIST];
    int nbatch;
    int planes, act_bits, threads, samples;
    double sample_s;
    const char *only;
} opts;

static int parse_args(int argc, char **argv, opts *o) {
    const char *shapes = "128x256,256x64,10x128,128x256:u,256x64:u,10x128:u", *batch = "8,32,360";
    *o = (opts){.planes = 4, .act_bits = 8, .threads = 1, .samples = 15, .sample_s = 4e-3};
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return fprintf(stderr, "%s needs a value\n", a), -1;
        if (!strcmp(a, "--shapes"))
            shapes = v;
        else if (!strcmp(a, "--batch"))
            batch = v;
        else if (!strcmp(a, "--planes"))
            o->planes = atoi(v);
        else if (!strcmp(a, "--act-bits"))
            o->act_bits = atoi(v);
        else if (!strcmp(a, "--threads"))
            o->threads = atoi(v);
        else if (!strcmp(a, "--samples"))
            o->samples = atoi(v);
        else if (!strcmp(a, "--sample-us"))
            o->sample_s = atof(v) * 1e-6;
        else if (!strcmp(a, "--only"))
            o->only = v;
        else
            return fprintf(stderr, "unknown option %s\n", a), -1;
    }
    for (const char *s = shapes; *s && o->nshapes < MAX_LIST;) {
        unsigned long long m, k;
        int used;
        if (sscanf(s, "%llux%llu%n", &m, &k, &used) != 2 || !m || !k)
            return fprintf(stderr, "--shapes: expected MxK[:u][,...], got '%s'\n", shapes), -1;
        s += used;
        const bool u = !strncmp(s, ":u", 2);
        s += u ? 2 : 0;
        o->shapes[o->nshapes++] = (shape){(size_t)m, (size_t)k, u};
        if (*s && *s != ',')
            return fprintf(stderr, "--shapes: expected MxK[:u][,...], got '%s'\n", shapes), -1;
        s += *s == ',';
    }
    for (const char *s = batch; *s && o->nbatch < MAX_LIST;) {
        char *end;
        unsigned long long b = strtoull(s, &end, 10);
        if (end == s || !b || (*end && *end != ','))
            return fprintf(stderr, "--batch: expected B[,B...], got '%s'\n", batch), -1;
        o->batch[o->nbatch++] = (size_t)b;
        s = *end ? end + 1 : end;
    }
    if (o->threads < 1 || o->samples < 1 || o->planes < 1 || o->sample_s <= 0 || !o->nshapes ||
        !o->nbatch || (o->only && strcmp(o->only, "bitplane") && strcmp(o->only, "sgemm")))
        return fprintf(stderr, "bad options\n"), -1;
    return 0;
}

typedef struct run {
    const opts *o;
    bp_context *ctx;
    bp_matrix *mat;
    size_t m, k, batch;
    const float *w, *x;
    float *y;
} run;

static void call_bp(const run *r) {
    bp_run_options ro = BP_RUN_OPTIONS_INIT;
    ro.planes = r->o->planes;
    ro.act_bits = r->o->act_bits;
    if (bp_gemm(r->ctx, r->mat, r->x, r->batch, r->k, r->y, r->m, &ro) != BP_OK) {
        fprintf(stderr, "bp_gemm: %s\n", bp_last_error());
        exit(1);
    }
}

static void call_sgemm(const run *r) {
    cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)r->m, (int)r->batch, (int)r->k, 1.0f,
                r->w, (int)r->k, r->x, (int)r->k, 0.0f, r->y, (int)r->m);
}

/* Thread CPU seconds per call over `calls` calls. */
static double sample(const run *r, void (*fn)(const run *), int calls) {
    const double t0 = bench_thread_cpu_s();
    for (int i = 0; i < calls; i++)
        fn(r);
    return (bench_thread_cpu_s() - t0) / calls;
}

static int calls_for(const run *r, void (*fn)(const run *)) {
    fn(r); /* warm-up */
    const double t = sample(r, fn, 3);
    const int c = (int)(r->o->sample_s / (t > 1e-9 ? t : 1e-9)) + 1;
    return c > 100000 ? 100000 : c;
}

static uint64_t fnv1a(const void *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    return h;
}

int main(int argc, char **argv) {
    opts o;
    if (parse_args(argc, argv, &o))
        return 2;
    openblas_set_num_threads(o.threads);
    bp_context_options co = BP_CONTEXT_OPTIONS_INIT;
    co.backend = BP_BACKEND_CPU;
    co.threads = o.threads;
    bp_context *ctx;
    if (bp_context_create(&co, &ctx) != BP_OK)
        return fprintf(stderr, "context: %s\n", bp_last_error()), 1;
    double *tb = calloc((size_t)o.samples, sizeof *tb), *ts = calloc((size_t)o.samples, sizeof *ts);
    if (!tb || !ts)
        return fprintf(stderr, "out of memory\n"), 1;
    for (int si = 0; si < o.nshapes; si++) {
        const shape sh = o.shapes[si];
        size_t bmax = 0;
        for (int b = 0; b < o.nbatch; b++)
            bmax = o.batch[b] > bmax ? o.batch[b] : bmax;
        float *w = malloc(sh.m * sh.k * sizeof *w), *x = malloc(bmax * sh.k * sizeof *x);
        float *y = malloc(bmax * sh.m * sizeof *y);
        if (!w || !x || !y)
            return fprintf(stderr, "out of memory\n"), 1;
        bench_rng rng;
        bench_rng_seed(&rng, 42);
        bench_fill_gaussian(&rng, w, sh.m * sh.k);
        bench_fill_gaussian(&rng, x, bmax * sh.k);
        for (size_t i = 0; sh.nonneg && i < bmax * sh.k; i++)
            x[i] = x[i] < 0 ? 0.0f : x[i];
        bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
        qo.nonnegative_inputs = sh.nonneg;
        bp_matrix *mat;
        if (bp_matrix_quantize(ctx, w, sh.m, sh.k, sh.k, &qo, &mat) != BP_OK)
            return fprintf(stderr, "quantize: %s\n", bp_last_error()), 1;
        for (int bi = 0; bi < o.nbatch; bi++) {
            run r = {&o, ctx, mat, sh.m, sh.k, o.batch[bi], w, x, y};
            const bool do_bp = !o.only || !strcmp(o.only, "bitplane");
            const bool do_sg = !o.only || !strcmp(o.only, "sgemm");
            uint64_t sum = 0;
            if (do_bp) {
                call_bp(&r);
                sum = fnv1a(y, r.batch * r.m * sizeof *y);
            }
            const int cb = do_bp ? calls_for(&r, call_bp) : 0;
            const int cs = do_sg ? calls_for(&r, call_sgemm) : 0;
            for (int s = 0; s < o.samples; s++) {
                /* Alternate which side goes first. */
                if (s % 2 == 0) {
                    tb[s] = do_bp ? sample(&r, call_bp, cb) : 0;
                    ts[s] = do_sg ? sample(&r, call_sgemm, cs) : 0;
                } else {
                    ts[s] = do_sg ? sample(&r, call_sgemm, cs) : 0;
                    tb[s] = do_bp ? sample(&r, call_bp, cb) : 0;
                }
            }
            printf("{\"m\":%zu,\"k\":%zu,\"u\":%d,\"batch\":%zu,\"planes\":%d,\"act_bits\":%d,"
                   "\"threads\":%d,\"kernel\":\"%s\",\"bitplane_us\":%.3f,\"sgemm_us\":%.3f,"
                   "\"y_fnv1a\":\"%016llx\"}\n",
                   sh.m, sh.k, sh.nonneg, r.batch, o.planes, o.act_bits, o.threads,
                   bp_matrix_cpu_kernel_name(ctx, mat, o.planes, o.act_bits, r.batch),
                   bench_median(tb, (size_t)o.samples) * 1e6,
                   bench_median(ts, (size_t)o.samples) * 1e6, (unsigned long long)sum);
            fflush(stdout);
        }
        bp_matrix_destroy(mat);
        free(w), free(x), free(y);
    }
    free(tb), free(ts);
    bp_context_destroy(ctx);
    return 0;
}
