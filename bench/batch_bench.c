/*
 * bitplane-batch-bench: batched products (bp_gemm with batch > 1) against
 * OpenBLAS sgemm on the same shape and thread count, interleaved so that
 * load from other processes hits every method alike.
 *
 *   bitplane-batch-bench [--shapes 4096x4096,256x64] [--batch 8,32,360]
 *       [--planes 1,2,4,8,mix] [--kernels auto,avx512-vnni-batched]
 *       [--threads 1] [--rounds 15] [--min-ms 2] [--act-bits 8]
 *       [--group 0|row|32..4096] [--method uniform|residual]
 *       [--inputs gauss|relu]
 *
 * For each shape and batch, every round times each method once (a sample is
 * enough back-to-back calls to last --min-ms, divided by their number), in a
 * rotating order. Reported per method: the median time per call, and the
 * speedup over sgemm as the median of the per-round ratios (sgemm time of
 * that round over the method's), and the fastest sample (less sensitive to
 * preemption on a loaded machine). Weights stay in cache between calls, as a
 * model's layers do when they fit; the 4096 x 4096 fp32 matrix (64 MiB) does
 * not. One JSON object per line on stdout; a Markdown table on stderr.
 * Planes "mix" gives batch column c planes 1 + c % 8 (at most the matrix's
 * bits) through column_planes, as a server's mixed-precision batch does;
 * its JSON "planes" is -1 and its chosen kernel that of a 1-plane call (what
 * AUTO picks for the mix from batch 16; below, it may differ).
 * Inputs "relu" are the Gaussian inputs through a ReLU, with the weights
 * quantized without a rotation of K, as the served layers after a ReLU are
 * (so the columns stay nonnegative: unsigned 8-bit, offset terms).
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

typedef struct opts {
    size_t m[MAX_LIST], k[MAX_LIST], nshapes;
    size_t batch[MAX_LIST], nbatch;
    int planes[MAX_LIST], nplanes;
    char kernels[MAX_LIST][32];
    int nkernels;
    int threads, rounds, act_bits;
    double min_ms;
    int group; /* 0 = default, -1 = per row */
    bp_quant_method method;
    bool relu; /* inputs through a ReLU */
} opts;

static int parse_sizes(const char *s, size_t *out, size_t *n) {
    *n = 0;
    while (*s && *n < MAX_LIST) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || v == 0)
            return -1;
        out[(*n)++] = (size_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return *n ? 0 : -1;
}

static int parse_args(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->m[0] = o->k[0] = 4096;
    o->nshapes = 1;
    o->batch[0] = 8, o->batch[1] = 32, o->batch[2] = 360, o->nbatch = 3;
    o->planes[0] = 1, o->planes[1] = 2, o->planes[2] = 4, o->planes[3] = 8, o->nplanes = 4;
    strcpy(o->kernels[0], "auto");
    o->nkernels = 1;
    o->threads = 1, o->rounds = 15, o->act_bits = 8, o->min_ms = 2.0;
    o->method = BP_QUANT_UNIFORM;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return fprintf(stderr, "%s needs a value\n", a), -1;
        i++;
        if (!strcmp(a, "--shapes")) {
            o->nshapes = 0;
            for (const char *s = v; *s && o->nshapes < MAX_LIST;) {
                unsigned long long m, k;
                int used;
                if (sscanf(s, "%llux%llu%n", &m, &k, &used) != 2 || !m || !k)
                    return fprintf(stderr, "--shapes: expected MxK[,MxK...], got '%s'\n", v), -1;
                o->m[o->nshapes] = (size_t)m, o->k[o->nshapes++] = (size_t)k;
                s += used;
                s += *s == ',';
            }
        } else if (!strcmp(a, "--batch")) {
            if (parse_sizes(v, o->batch, &o->nbatch))
                return fprintf(stderr, "--batch: expected B[,B...], got '%s'\n", v), -1;
        } else if (!strcmp(a, "--planes")) {
            /* Plane counts, or "mix" (planes -1: 1 + c % 8 per column). */
            char buf[512];
            snprintf(buf, sizeof buf, "%s", v);
            o->nplanes = 0;
            for (char *t = strtok(buf, ","); t && o->nplanes < MAX_LIST; t = strtok(NULL, ",")) {
                char *end;
                long n = strtol(t, &end, 10);
                if (!strcmp(t, "mix"))
                    n = -1;
                else if (*end || n < 1)
                    return fprintf(stderr, "--planes: expected N|mix[,...], got '%s'\n", v), -1;
                o->planes[o->nplanes++] = (int)n;
            }
            if (!o->nplanes)
                return fprintf(stderr, "--planes: expected N|mix[,...], got '%s'\n", v), -1;
        } else if (!strcmp(a, "--kernels")) {
            o->nkernels = 0;
            char buf[512];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t && o->nkernels < MAX_LIST; t = strtok(NULL, ","))
                snprintf(o->kernels[o->nkernels++], sizeof o->kernels[0], "%s", t);
        } else if (!strcmp(a, "--threads")) {
            o->threads = atoi(v);
        } else if (!strcmp(a, "--rounds")) {
            o->rounds = atoi(v);
        } else if (!strcmp(a, "--act-bits")) {
            o->act_bits = atoi(v);
        } else if (!strcmp(a, "--min-ms")) {
            o->min_ms = atof(v);
        } else if (!strcmp(a, "--group")) {
            o->group = !strcmp(v, "row") ? -1 : atoi(v);
        } else if (!strcmp(a, "--method")) {
            o->method = !strcmp(v, "residual") ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
        } else if (!strcmp(a, "--inputs")) {
            if (strcmp(v, "gauss") && strcmp(v, "relu"))
                return fprintf(stderr, "--inputs: expected gauss|relu, got '%s'\n", v), -1;
            o->relu = !strcmp(v, "relu");
        } else {
            return fprintf(stderr, "unknown option %s\n", a), -1;
        }
    }
    if (o->threads < 1 || o->rounds < 3 || o->act_bits < 1 || o->act_bits > 16)
        return fprintf(stderr, "--threads >= 1, --rounds >= 3, --act-bits 1..16\n"), -1;
    return 0;
}

/* A method: sgemm (ctx NULL) or one kernel path at one plane count. */
typedef struct method {
    bp_context *ctx;
    const char *kernel; /* requested path */
    const char *chosen; /* what the library runs */
    int planes;
    double *t, *ratio;
} method;

typedef struct shape_run {
    const opts *o;
    size_t m, k, batch;
    const float *w, *x;
    float *y;
    bp_matrix *mat;
    const int *mix; /* column planes for "mix" */
} shape_run;

static int call_once(const shape_run *s, const method *me) {
    if (!me->ctx) {
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)s->m, (int)s->batch, (int)s->k,
                    1.0f, s->w, (int)s->k, s->x, (int)s->k, 0.0f, s->y, (int)s->m);
        return 0;
    }
    bp_run_options r = BP_RUN_OPTIONS_INIT;
    r.planes = me->planes < 0 ? 0 : me->planes;
    r.column_planes = me->planes < 0 ? s->mix : NULL;
    r.act_bits = s->o->act_bits;
    if (bp_gemm(me->ctx, s->mat, s->x, s->batch, s->k, s->y, s->m, &r) != BP_OK)
        return fprintf(stderr, "bp_gemm: %s\n", bp_last_error()), -1;
    return 0;
}

/* Seconds per call over a sample of at least min_ms. */
static double sample(const shape_run *s, const method *me, int calls) {
    double t0 = bench_now();
    for (int i = 0; i < calls; i++)
        if (call_once(s, me))
            exit(1);
    return (bench_now() - t0) / calls;
}

int main(int argc, char **argv) {
    opts o;
    if (parse_args(argc, argv, &o))
        return 2;
    openblas_set_num_threads(o.threads);
    fprintf(
        stderr,
        "| m x k | batch | method | planes | chosen kernel | median ms | min ms | speedup vs sgemm "
        "|\n|---|---|---|---|---|---|---|---|\n");
    for (size_t si = 0; si < o.nshapes; si++) {
        const size_t m = o.m[si], k = o.k[si];
        float *w = malloc(m * k * sizeof *w);
        size_t bmax = 0;
        for (size_t b = 0; b < o.nbatch; b++)
            bmax = o.batch[b] > bmax ? o.batch[b] : bmax;
        float *x = malloc(bmax * k * sizeof *x), *y = malloc(bmax * m * sizeof *y);
        if (!w || !x || !y)
            return fprintf(stderr, "out of memory\n"), 1;
        bench_rng rng;
        bench_rng_seed(&rng, 42);
        bench_fill_gaussian(&rng, w, m * k);
        bench_fill_gaussian(&rng, x, bmax * k);
        for (size_t i = 0; o.relu && i < bmax * k; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        int nm = 1 + o.nkernels * o.nplanes;
        method *me = calloc((size_t)nm, sizeof *me);
        for (int i = 0; i < nm; i++) {
            me[i].t = calloc((size_t)o.rounds, sizeof(double));
            me[i].ratio = calloc((size_t)o.rounds, sizeof(double));
        }
        me[0].kernel = me[0].chosen = "openblas-sgemm";
        for (int ki = 0; ki < o.nkernels; ki++) {
            bp_context_options co = BP_CONTEXT_OPTIONS_INIT;
            co.backend = BP_BACKEND_CPU;
            co.threads = o.threads;
            bp_context *ctx;
            if (bp_cpu_kernel_from_name(o.kernels[ki], &co.cpu_kernel) != BP_OK ||
                bp_context_create(&co, &ctx) != BP_OK)
                return fprintf(stderr, "kernel %s: %s\n", o.kernels[ki], bp_last_error()), 1;
            for (int pi = 0; pi < o.nplanes; pi++) {
                method *mm = &me[1 + ki * o.nplanes + pi];
                mm->ctx = ctx;
                mm->kernel = o.kernels[ki];
                mm->planes = o.planes[pi];
            }
        }
        bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
        qo.method = o.method;
        if (o.group)
            qo.group_size = o.group < 0 ? BP_GROUP_PER_ROW : o.group;
        if (o.relu)
            qo.rotation = BP_ROTATION_NONE;
        bp_matrix *mat;
        if (bp_matrix_quantize(me[1].ctx, w, m, k, k, &qo, &mat) != BP_OK)
            return fprintf(stderr, "quantize: %s\n", bp_last_error()), 1;
        int *mix = malloc(bmax * sizeof *mix);
        int bits = bp_matrix_bits(mat);
        if (!mix)
            return fprintf(stderr, "out of memory\n"), 1;
        for (size_t c = 0; c < bmax; c++)
            mix[c] = 1 + (int)(c % 8) < bits ? 1 + (int)(c % 8) : bits;
        for (size_t bi = 0; bi < o.nbatch; bi++) {
            const size_t batch = o.batch[bi];
            shape_run s = {&o, m, k, batch, w, x, y, mat, mix};
            int calls[64];
            for (int i = 0; i < nm; i++) {
                if (me[i].ctx)
                    me[i].chosen = bp_matrix_cpu_kernel_name(
                        me[i].ctx, mat, me[i].planes < 0 ? 1 : me[i].planes, o.act_bits, batch);
                double t = sample(&s, &me[i], 1); /* warm-up and calibration */
                t = sample(&s, &me[i], 1);
                int c = (int)(o.min_ms * 1e-3 / t) + 1;
                calls[i] = c > 10000 ? 10000 : c;
            }
            for (int r = 0; r < o.rounds; r++)
                for (int j = 0; j < nm; j++) {
                    int i = (j + r) % nm; /* rotate the order */
                    me[i].t[r] = sample(&s, &me[i], calls[i]);
                }
            /* All ratios first: bench_median() sorts the times in place. */
            for (int i = 0; i < nm; i++)
                for (int r = 0; r < o.rounds; r++)
                    me[i].ratio[r] = me[0].t[r] / me[i].t[r];
            for (int i = 0; i < nm; i++) {
                double med_t = bench_median(me[i].t, (size_t)o.rounds),
                       med_r = bench_median(me[i].ratio, (size_t)o.rounds);
                const double min_t = me[i].t[0]; /* sorted by bench_median() */
                printf("{\"m\":%zu,\"k\":%zu,\"batch\":%zu,\"method\":\"%s\",\"planes\":%d,"
                       "\"chosen\":\"%s\",\"act_bits\":%d,\"threads\":%d,\"quant\":\"%s\","
                       "\"group\":%d,\"median_ms\":%.5f,\"min_ms\":%.5f,\"speedup_vs_sgemm\":%.4f,"
                       "\"rounds\":%d}\n",
                       m, k, batch, me[i].kernel, me[i].ctx ? me[i].planes : 0, me[i].chosen,
                       o.act_bits, o.threads, o.method == BP_QUANT_UNIFORM ? "uniform" : "residual",
                       o.group, med_t * 1e3, min_t * 1e3, med_r, o.rounds);
                char planes[16] = "-";
                if (me[i].ctx && me[i].planes < 0)
                    snprintf(planes, sizeof planes, "mix");
                else if (me[i].ctx)
                    snprintf(planes, sizeof planes, "%d", me[i].planes);
                fprintf(stderr, "| %zux%zu | %zu | %s | %s | %s | %.4f | %.4f | %.2fx |\n", m, k,
                        batch, me[i].kernel, planes, me[i].chosen, med_t * 1e3, min_t * 1e3, med_r);
            }
            fflush(stdout);
        }
        bp_matrix_destroy(mat);
        free(mix);
        for (int ki = 0; ki < o.nkernels; ki++)
            bp_context_destroy(me[1 + ki * o.nplanes].ctx);
        for (int i = 0; i < nm; i++)
            free(me[i].t), free(me[i].ratio);
        free(me);
        free(w), free(x), free(y);
    }
    return 0;
}
