/*
 * `peak`: the compute-bound figure. A 4096 x 4096 matrix (2 MiB per plane)
 * is multiplied again and again so its planes stay in cache, and the rate
 * is given as weight-bit x activation-bit products per second, next to the
 * machine's VPOPCNTQ rate (512 bit-ops per instruction) measured in the
 * same process. Their ratio says how close the kernel is to the popcount
 * issue limit, independent of memory bandwidth.
 */
#include "bench_cmds.h"
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_probes.h"
#include "bench_report.h"

#include <math.h>
#include <stdlib.h>

/* ~134M popcounts per thread per rep: tens of milliseconds, long enough to
 * swamp thread start-up and short enough for 20 reps. */
#define PEAK_ITERS ((uint64_t)1 << 23)

typedef struct peak_gemv {
    bp_context *ctx;
    const bp_matrix *mat;
    const float *x;
    float *y;
    bp_run_options ro;
} peak_gemv;

static int peak_gemv_call(void *arg, size_t call) {
    (void)call;
    peak_gemv *j = arg;
    size_t m = bp_matrix_rows(j->mat), k = bp_matrix_cols(j->mat);
    bp_status st = bp_gemm(j->ctx, j->mat, j->x, 1, k, j->y, m, &j->ro);
    return st == BP_OK ? 0 : bench_bp_fail(st, "bp_gemm");
}

int bench_cmd_peak(const bench_opts *o) {
    const size_t m = o->m, k = o->k;
    int rc = 1;
    float *w = NULL, *x = NULL, *y = NULL;
    bp_context *ctx = NULL;
    bp_matrix *mat = NULL;
    bench_report rep = {0};
    bench_record *rec;

    /* 1. The VPOPCNTQ ceiling, before our pool exists so it runs alone. */
    const char *why = "";
    const int have_peak = bench_cpu_has_vpopcntdq(&why);
    const double popcnts = (double)o->threads * (double)PEAK_ITERS * BENCH_PEAK_CHAINS;
    double peak_s = NAN, peak_ops = NAN; /* NaN makes frac_of_peak null when skipped */
    if (have_peak) {
        if (bench_vpopcntq_probe(o->threads, PEAK_ITERS, o->reps, &peak_s))
            goto done;
        peak_ops = 512.0 * popcnts / peak_s;
    }

    /* 2. bitplane on an in-cache matrix. */
    bench_rng rng;
    bench_rng_seed(&rng, o->seed);
    w = bench_alloc(m * k, sizeof *w, "weights");
    x = bench_alloc(k, sizeof *x, "activations");
    y = bench_alloc(m, sizeof *y, "outputs");
    if (!w || !x || !y)
        goto done;
    bench_fill_gaussian(&rng, w, m * k);
    bench_fill_gaussian(&rng, x, k);
    if (bench_context(o, &ctx))
        goto done;
    const bp_quant_method method =
        o->methods == BENCH_METHOD_RESIDUAL ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
    if (bench_quantize(ctx, w, m, k, o->bits, method, o->clip[0], o->group_size, o->rotation, &mat))
        goto done;
    for (int a = 0; a < o->n_act_bits; a++) {
        for (int p = 0; p < o->n_planes; p++) {
            const char *kernel;
            if (bench_kernel_name(ctx, mat, o->planes[p], o->act_bits[a], 1, &kernel))
                goto done;
            peak_gemv j = {ctx, mat, x, y, BP_RUN_OPTIONS_INIT};
            j.ro.planes = o->planes[p];
            j.ro.act_bits = o->act_bits[a];
            double s = 0;
            if (bench_time(peak_gemv_call, &j, 3, o->reps, &s))
                goto done;
            double ops = (double)m * (double)k * o->planes[p] * o->act_bits[a] / s;
            rec = bench_report_add(&rep, "bitplane_peak");
            if (!rec)
                goto done;
            bench_put_str(rec, "backend", bench_backend_name(ctx));
            bench_put_str(rec, "kernel", kernel);
            bench_put_int(rec, "m", (long long)m);
            bench_put_int(rec, "k", (long long)k);
            bench_put_int(rec, "batch", 1);
            bench_put_int(rec, "planes", o->planes[p]);
            bench_put_int(rec, "act_bits", o->act_bits[a]);
            bench_put_int(rec, "threads", o->threads);
            bench_put_real(rec, "median_s", s);
            bench_put_real(rec, "bit_ops_per_s", ops);
            bench_put_real(rec, "frac_of_peak", ops / peak_ops);
            bench_put_int(rec, "reps", o->reps);
        }
    }
    /* Listed last so the table's columns follow the bitplane lines. */
    rec = bench_report_add(&rep, "vpopcntq_peak");
    if (!rec)
        goto done;
    bench_put_str(rec, "backend", "cpu");
    bench_put_str(rec, "kernel", "vpopcntq");
    bench_put_int(rec, "threads", o->threads);
    if (have_peak) {
        bench_put_real(rec, "median_s", peak_s);
        bench_put_int(rec, "popcnts", (long long)popcnts);
        bench_put_real(rec, "bit_ops_per_s", peak_ops);
        bench_put_int(rec, "reps", o->reps);
    } else {
        bench_skip(rec, why);
    }
    rc = bench_report_emit(&rep, o->json);

done:
    bp_matrix_destroy(mat);
    bp_context_destroy(ctx);
    free(w);
    free(x);
    free(y);
    bench_report_free(&rep);
    return rc;
}
