/*
 * bitplane-bench-ggml: batch-1 GEMV y = W x against ggml's low-bit CPU
 * formats, in one process and one run with bitplane, OpenBLAS sgemv and the
 * stream-read ceiling.
 *
 *   bitplane-bench-ggml [--m 65536] [--k 4096] [--threads 1,2] [--reps 9]
 *       [--seed 42] [--stream-mib N] [--json] [--markdown FILE]
 *
 * Methods, each on the same Gaussian W (m x k) and x:
 *   - OpenBLAS sgemv on fp32 W;
 *   - ggml q4_K, q2_K and tq2_0: W quantized with ggml_quantize_chunk (no
 *     importance matrix), y = ggml_mul_mat(W, x) through a ggml graph, which
 *     quantizes x to each type's dot-product format (q8_K) as ggml does;
 *   - bitplane at 1, 2, 4 and 8 planes, act_bits 8, three times: with the
 *     library defaults (groups of 32, rotation 256), with groups of 64
 *     (rotation 256) and with one scale per row (no rotation, clip 1). Each
 *     plane count is its own n-bit matrix, so no call finds another call's
 *     planes in cache.
 * Per thread count: the stream probe (bench_stream.c; its buffer is
 * max(1 GiB, 4 x LLC) unless --stream-mib says otherwise) first, then one
 * warm-up round and --reps timed rounds in which the probe's fastest form
 * and every method run once in turn (round-robin: load from other processes
 * hits all methods alike, and each matrix is read again only after every
 * other one, about 4 GB later). Medians are reported with x_floor = median /
 * (weight bytes / the fastest form's rate in those rounds) and vs_sgemv =
 * sgemv median / median. rel_err = ||y - W x|| / ||W x|| against fp64 with
 * the unquantized W checks that every method really computed the product.
 * Weight bytes: ggml_nbytes for ggml, bp_matrix_bytes_read for bitplane
 * (planes, per-plane coefficients and group multipliers: everything the
 * product reads from the matrix, as ggml's count includes its scales),
 * 4 m k for sgemv.
 */
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_probes.h"
#include "bench_report.h"

#include "ggml-cpu.h"
#include "ggml.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads); /* see bench_openblas.c */

#define MAX_REPS    64
#define MAX_THREADS 8
#define N_PLANES    4
static const int plane_counts[N_PLANES] = {1, 2, 4, 8};
static const enum ggml_type ggml_types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q2_K, GGML_TYPE_TQ2_0};
#define N_GGML (sizeof ggml_types / sizeof ggml_types[0])

typedef enum method_kind { M_SGEMV, M_GGML, M_BITPLANE } method_kind;

/* How bitplane quantizes W: the scale structure and the rotation. */
typedef struct structure {
    const char *name;
    int group_size, rotation;
    float clip;
} structure;
static const structure structures[] = {
    {"defaults", 0, 0, 0.0f},
    {"groups-64", 64, 0, 0.0f},
    {"per-row", BP_GROUP_PER_ROW, BP_ROTATION_NONE, 1.0f},
};
#define N_STRUCTURES (sizeof structures / sizeof structures[0])

typedef struct method {
    method_kind kind;
    char name[48];    /* "ggml q4_K", "bitplane per-row 4" */
    const char *impl; /* ggml type name or bitplane kernel */
    int planes;       /* bitplane only */
    const char *structure;
    size_t bytes;
    /* ggml */
    struct ggml_context *gctx;
    struct ggml_cgraph *graph;
    struct ggml_tensor *gx, *gy;
    struct ggml_cplan plan;
    void *work;
    /* bitplane */
    bp_matrix *mat;
    double t[MAX_REPS];
    double rel_err;
} method;

typedef struct run {
    size_t m, k;
    int threads[MAX_THREADS], n_threads, reps;
    unsigned long long seed;
    int json;
    size_t stream_bytes;
    const char *markdown;
    float *w, *x, *y;
    double *y_ref;
    bp_context *ctx;
    bench_stream_replay stream;
    double stream_t[MAX_REPS];
    method methods[1 + N_GGML + N_STRUCTURES * N_PLANES];
    int n_methods;
} run;

static int usage(void) {
    fputs("usage: bitplane-bench-ggml [--m 65536] [--k 4096, a multiple of 256] [--threads 1,2] "
          "[--reps 9] "
          "[--seed 42] [--stream-mib N] [--json] [--markdown FILE]\n",
          stderr);
    return 2;
}

static int parse_size(const char *v, size_t lo, size_t hi, size_t *out) {
    char *end;
    unsigned long long n = strtoull(v ? v : "", &end, 10);
    if (!v || *v == '\0' || *end != '\0' || *v == '-' || n < lo || n > hi)
        return 1;
    *out = (size_t)n;
    return 0;
}

static int parse_args(int argc, char **argv, run *r) {
    r->m = 65536;
    r->k = 4096;
    r->threads[0] = 1;
    r->threads[1] = 2;
    r->n_threads = 2;
    r->reps = 9;
    r->seed = 42;
    r->stream_bytes = bench_stream_default_bytes();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        if (strcmp(a, "--json") == 0) {
            r->json = 1;
            continue;
        }
        i++;
        if (strcmp(a, "--m") == 0 && !parse_size(v, 1, (size_t)1 << 20, &n)) {
            r->m = n;
        } else if (strcmp(a, "--k") == 0 && !parse_size(v, 256, (size_t)1 << 20, &n) &&
                   n % 256 == 0) {
            r->k = n; /* ggml's K-quant blocks hold 256 weights */
        } else if (strcmp(a, "--reps") == 0 && !parse_size(v, 1, MAX_REPS, &n)) {
            r->reps = (int)n;
        } else if (strcmp(a, "--seed") == 0 && !parse_size(v, 0, ~(size_t)0, &n)) {
            r->seed = n;
        } else if (strcmp(a, "--stream-mib") == 0 && !parse_size(v, 1, 1 << 16, &n)) {
            r->stream_bytes = n << 20;
        } else if (strcmp(a, "--markdown") == 0 && v) {
            r->markdown = v;
        } else if (strcmp(a, "--threads") == 0 && v) {
            r->n_threads = 0;
            char buf[64], *save = NULL;
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (r->n_threads == MAX_THREADS || parse_size(t, 1, 64, &n))
                    return usage();
                r->threads[r->n_threads++] = (int)n;
            }
            if (r->n_threads == 0)
                return usage();
        } else {
            fprintf(stderr, "bitplane-bench-ggml: bad option or value: %s %s\n", a, v ? v : "");
            return usage();
        }
    }
    return 0;
}

/* fp64 y = W x with the unquantized W: the accuracy reference. */
static void reference(run *r) {
    for (size_t i = 0; i < r->m; i++) {
        double s = 0;
        const float *row = r->w + i * r->k;
        for (size_t j = 0; j < r->k; j++)
            s += (double)row[j] * r->x[j];
        r->y_ref[i] = s;
    }
}

static double rel_err(const run *r, const float *y) {
    double num = 0, den = 0;
    for (size_t i = 0; i < r->m; i++) {
        double d = y[i] - r->y_ref[i];
        num += d * d;
        den += r->y_ref[i] * r->y_ref[i];
    }
    return sqrt(num / den);
}

/* A ggml context holding W quantized to `type`, x, y = W x and its graph. */
static int ggml_method(run *r, enum ggml_type type, method *me) {
    size_t wbytes = ggml_row_size(type, (int64_t)r->k) * r->m;
    struct ggml_init_params ip = {
        .mem_size = wbytes + (r->k + r->m) * sizeof(float) + ggml_graph_overhead() +
                    16 * ggml_tensor_overhead() + ((size_t)1 << 20),
        .mem_buffer = NULL,
        .no_alloc = false,
    };
    me->gctx = ggml_init(ip);
    if (!me->gctx)
        return bench_fail("ggml_init failed for %zu MiB", ip.mem_size >> 20);
    struct ggml_tensor *gw = ggml_new_tensor_2d(me->gctx, type, (int64_t)r->k, (int64_t)r->m);
    me->gx = ggml_new_tensor_1d(me->gctx, GGML_TYPE_F32, (int64_t)r->k);
    size_t got = ggml_quantize_chunk(type, r->w, gw->data, 0, (int64_t)r->m, (int64_t)r->k, NULL);
    if (got != ggml_nbytes(gw))
        return bench_fail("ggml_quantize_chunk(%s) wrote %zu bytes, expected %zu",
                          ggml_type_name(type), got, ggml_nbytes(gw));
    memcpy(me->gx->data, r->x, r->k * sizeof(float));
    me->gy = ggml_mul_mat(me->gctx, gw, me->gx);
    me->graph = ggml_new_graph(me->gctx);
    ggml_build_forward_expand(me->graph, me->gy);
    me->kind = M_GGML;
    snprintf(me->name, sizeof me->name, "ggml %s", ggml_type_name(type));
    me->impl = ggml_type_name(type);
    me->structure = "-";
    me->bytes = ggml_nbytes(gw);
    return 0;
}

/* The work buffer ggml's CPU graph needs at this thread count. */
static int ggml_plan(method *me, int threads) {
    free(me->work);
    me->plan = ggml_graph_plan(me->graph, threads, NULL);
    me->work = me->plan.work_size ? bench_alloc(me->plan.work_size, 1, "ggml work buffer") : NULL;
    if (me->plan.work_size && !me->work)
        return 1;
    me->plan.work_data = me->work;
    return 0;
}

static int bitplane_method(run *r, int planes, const structure *st, method *me) {
    me->kind = M_BITPLANE;
    me->planes = planes;
    me->structure = st->name;
    snprintf(me->name, sizeof me->name, "bitplane %s %d", me->structure, planes);
    if (bench_quantize(r->ctx, r->w, r->m, r->k, planes, BP_QUANT_UNIFORM, st->clip,
                       st->group_size, st->rotation, &me->mat))
        return 1;
    me->bytes = bp_matrix_bytes_read(me->mat, planes);
    return me->bytes ? 0 : bench_bp_fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_bytes_read");
}

static int call(run *r, method *me) {
    switch (me->kind) {
    case M_SGEMV:
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)r->m, (int)r->k, 1.0f, r->w, (int)r->k, r->x,
                    1, 0.0f, r->y, 1);
        return 0;
    case M_GGML: {
        enum ggml_status st = ggml_graph_compute(me->graph, &me->plan);
        return st == GGML_STATUS_SUCCESS
                   ? 0
                   : bench_fail("ggml_graph_compute(%s) failed: %d", me->name, (int)st);
    }
    case M_BITPLANE: {
        bp_run_options ro = BP_RUN_OPTIONS_INIT;
        ro.planes = me->planes;
        ro.act_bits = 8;
        bp_status st = bp_gemm(r->ctx, me->mat, r->x, 1, r->k, r->y, r->m, &ro);
        return st == BP_OK ? 0 : bench_bp_fail(st, "bp_gemm");
    }
    }
    return 1;
}

/* Output of the call just made, for the accuracy check. */
static const float *output(run *r, const method *me) {
    return me->kind == M_GGML ? (const float *)me->gy->data : r->y;
}

static int setup(run *r) {
    bench_rng rng;
    bench_rng_seed(&rng, r->seed);
    r->w = bench_alloc(r->m * r->k, sizeof *r->w, "weights");
    r->x = bench_alloc(r->k, sizeof *r->x, "activations");
    r->y = bench_alloc(r->m, sizeof *r->y, "outputs");
    r->y_ref = bench_alloc(r->m, sizeof *r->y_ref, "reference outputs");
    if (!r->w || !r->x || !r->y || !r->y_ref)
        return 1;
    bench_fill_gaussian(&rng, r->w, r->m * r->k);
    bench_fill_gaussian(&rng, r->x, r->k);
    fprintf(stderr,
            "bitplane-bench-ggml: %zu x %zu: fp64 reference, then quantizing (ggml 3 types, "
            "bitplane 12 matrices)...\n",
            r->m, r->k);
    reference(r);
    ggml_cpu_init();

    /* A context for quantizing only: matrices are not tied to it. */
    bench_opts qo = {0};
    qo.threads = r->threads[r->n_threads - 1];
    if (bench_context(&qo, &r->ctx))
        return 1;
    method *me = r->methods;
    me->kind = M_SGEMV;
    snprintf(me->name, sizeof me->name, "openblas sgemv");
    me->impl = "openblas";
    me->structure = "-";
    me->bytes = 4 * r->m * r->k;
    me++;
    for (size_t i = 0; i < N_GGML; i++)
        if (ggml_method(r, ggml_types[i], me++))
            return 1;
    for (size_t i = 0; i < N_STRUCTURES; i++)
        for (int p = 0; p < N_PLANES; p++)
            if (bitplane_method(r, plane_counts[p], &structures[i], me++))
                return 1;
    r->n_methods = (int)(me - r->methods);
    bp_context_destroy(r->ctx);
    r->ctx = NULL;
    return 0;
}

static void add_method_record(bench_report *rep, const run *r, const method *me, int threads,
                              double stream_gbps, double sgemv_s) {
    double med = bench_median((double *)me->t, (size_t)r->reps);
    bench_record *rec = bench_report_add(rep, me->kind == M_SGEMV  ? "openblas_sgemv"
                                              : me->kind == M_GGML ? "ggml"
                                                                   : "bitplane");
    if (!rec)
        return;
    bench_put_str(rec, "method", me->name);
    bench_put_str(rec, "kernel", me->impl);
    bench_put_str(rec, "structure", me->structure);
    bench_put_int(rec, "m", (long long)r->m);
    bench_put_int(rec, "k", (long long)r->k);
    if (me->kind == M_BITPLANE) {
        bench_put_int(rec, "planes", me->planes);
        bench_put_int(rec, "act_bits", 8);
    } else {
        bench_put_null(rec, "planes");
        bench_put_null(rec, "act_bits");
    }
    bench_put_int(rec, "threads", threads);
    bench_put_real(rec, "median_s", med);
    bench_put_int(rec, "bytes", (long long)me->bytes);
    bench_put_real(rec, "bits_per_weight", 8.0 * (double)me->bytes / ((double)r->m * r->k));
    bench_put_real(rec, "gbps", (double)me->bytes / med / 1e9);
    bench_put_real(rec, "x_floor", med / ((double)me->bytes / (stream_gbps * 1e9)));
    bench_put_real(rec, "vs_sgemv", sgemv_s / med);
    bench_put_real(rec, "rel_err", me->rel_err);
    bench_put_int(rec, "reps", r->reps);
}

static double method_median(const run *r, const char *name) {
    for (int i = 0; i < r->n_methods; i++)
        if (strcmp(r->methods[i].name, name) == 0)
            return bench_median((double *)r->methods[i].t, (size_t)r->reps);
    return NAN;
}

static void markdown(FILE *f, const run *r, int threads, const bench_stream_ceiling *s,
                     double gbps) {
    double sgemv = method_median(r, "openblas sgemv");
    fprintf(f, "\n### %d thread%s\n\n", threads, threads == 1 ? "" : "s");
    fprintf(f,
            "Stream ceiling: %.2f GB/s, the median of the probe's fastest form (`%s`, %s pages, "
            "fastest of %d forms at %.2f GB/s in the probe) run once per round beside the "
            "methods.\n\n",
            gbps, s->isa, s->huge ? "2 MiB" : "4 KiB", s->nforms, bench_stream_gbps(s));
    fprintf(f, "| method | bits/w | ms | x floor | vs sgemv | rel. error |\n");
    fprintf(f, "|---|---|---|---|---|---|\n");
    fprintf(f, "| stream-read | 32 | %.2f | 1.00 | - | - |\n",
            4.0 * r->m * r->k / (gbps * 1e9) * 1e3);
    for (int i = 0; i < r->n_methods; i++) {
        const method *me = &r->methods[i];
        double med = bench_median((double *)me->t, (size_t)r->reps);
        fprintf(f, "| %s%s%s%s | %.2f | %.2f | %.2f | %.1fx | %.3f |\n", me->name,
                me->kind == M_BITPLANE ? " (" : "", me->kind == M_BITPLANE ? me->impl : "",
                me->kind == M_BITPLANE ? ")" : "", 8.0 * (double)me->bytes / ((double)r->m * r->k),
                med * 1e3, med / ((double)me->bytes / (gbps * 1e9)), sgemv / med, me->rel_err);
    }
    static const struct {
        const char *bp, *ggml;
    } pairs[] = {{"bitplane defaults 4", "ggml q4_K"},  {"bitplane groups-64 4", "ggml q4_K"},
                 {"bitplane per-row 4", "ggml q4_K"},   {"bitplane defaults 2", "ggml q2_K"},
                 {"bitplane groups-64 2", "ggml q2_K"}, {"bitplane per-row 2", "ggml q2_K"},
                 {"bitplane defaults 1", "ggml tq2_0"}, {"bitplane groups-64 1", "ggml tq2_0"},
                 {"bitplane per-row 1", "ggml tq2_0"}};
    fprintf(f, "\nSpeed-ups (ggml time / bitplane time, > 1: bitplane faster):");
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        fprintf(f, "%s %s vs %s %.2fx", i ? ";" : "", pairs[i].bp + 9, pairs[i].ggml + 5,
                method_median(r, pairs[i].ggml) / method_median(r, pairs[i].bp));
    fprintf(f, ".\n");
}

/* One thread count: the probe, then warm-up and timed round-robin rounds. */
static int run_threads(run *r, int threads, bench_report *rep, FILE *md) {
    bench_stream_ceiling *s = malloc(sizeof *s);
    if (!s)
        return bench_fail("out of memory for the stream results");
    fprintf(stderr,
            "bitplane-bench-ggml: %d thread(s): stream probe over %zu MiB, then %d rounds...\n",
            threads, r->stream_bytes >> 20, r->reps + 1);
    int rc = bench_stream_probe(r->stream_bytes, threads, r->reps, s);
    bench_opts co = {0};
    co.threads = threads;
    if (rc == 0)
        rc = bench_context(&co, &r->ctx);
    openblas_set_num_threads(threads);
    for (int i = 0; i < r->n_methods && rc == 0; i++) {
        method *me = &r->methods[i];
        if (me->kind == M_GGML)
            rc = ggml_plan(me, threads);
        if (me->kind == M_BITPLANE && rc == 0) {
            me->impl = bp_matrix_cpu_kernel_name(r->ctx, me->mat, me->planes, 8, 1);
            if (!me->impl)
                rc = bench_fail("bp_matrix_cpu_kernel_name: %s", bp_last_error());
        }
    }
    if (rc == 0)
        rc = bench_stream_replay_open(s, &r->stream);
    for (int round = -1; round < r->reps && rc == 0; round++) {
        double st;
        rc = bench_stream_replay_pass(&r->stream, &st);
        if (round >= 0)
            r->stream_t[round] = st;
        for (int i = 0; i < r->n_methods && rc == 0; i++) {
            method *me = &r->methods[i];
            double t0 = bench_now();
            rc = call(r, me);
            double dt = bench_now() - t0;
            if (round < 0)
                me->rel_err = rel_err(r, output(r, me)); /* untimed warm-up round */
            else
                me->t[round] = dt;
        }
    }
    bp_context_destroy(r->ctx);
    r->ctx = NULL;
    bench_stream_replay_close(&r->stream);
    if (rc == 0) {
        double sgemv = method_median(r, "openblas sgemv");
        double ceiling = (double)s->bytes_read / bench_median(r->stream_t, (size_t)r->reps) / 1e9;
        rc = bench_report_stream(rep, s, r->m, r->k, 1);
        bench_record *rec = rc == 0 ? bench_report_add(rep, "stream_read_rounds") : NULL;
        if (!rec)
            rc = 1;
        else {
            bench_put_str(rec, "kernel", s->isa);
            bench_put_int(rec, "threads", threads);
            bench_put_real(rec, "median_s", bench_median(r->stream_t, (size_t)r->reps));
            bench_put_int(rec, "bytes", (long long)s->bytes_read);
            bench_put_real(rec, "gbps", ceiling);
            bench_put_int(rec, "reps", r->reps);
        }
        for (int i = 0; i < r->n_methods && rc == 0; i++)
            add_method_record(rep, r, &r->methods[i], threads, ceiling, sgemv);
        if (md && rc == 0)
            markdown(md, r, threads, s, ceiling);
    }
    free(s);
    return rc;
}

int main(int argc, char **argv) {
    run *r = calloc(1, sizeof *r);
    if (!r)
        return bench_fail("out of memory");
    int rc = parse_args(argc, argv, r);
    FILE *md = NULL;
    bench_report rep = {0};
    if (rc == 0 && r->markdown && !(md = fopen(r->markdown, "a")))
        rc = bench_fail("cannot open %s for appending", r->markdown);
    if (rc == 0)
        rc = setup(r);
    for (int t = 0; t < r->n_threads && rc == 0; t++)
        rc = run_threads(r, r->threads[t], &rep, md);
    if (rc == 0)
        rc = bench_report_emit(&rep, r->json);
    if (md && fclose(md) != 0 && rc == 0)
        rc = bench_fail("writing %s failed", r->markdown);
    for (int i = 0; i < r->n_methods; i++) {
        if (r->methods[i].gctx)
            ggml_free(r->methods[i].gctx);
        free(r->methods[i].work);
        bp_matrix_destroy(r->methods[i].mat);
    }
    bp_context_destroy(r->ctx);
    free(r->w);
    free(r->x);
    free(r->y);
    free(r->y_ref);
    bench_report_free(&rep);
    free(r);
    return rc;
}
