/*
 * `quantize`: how long quantizing one layer takes, and the weight error
 * every prefix n = 1..bits leaves, per quantizer and clip ratio.
 */
#include "bench_cmds.h"
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_report.h"

#include <stdlib.h>

typedef struct quant_job {
    bp_context *ctx;
    const float *w;
    size_t m, k;
    int bits;
    bp_quant_method method;
    float clip;
    int group_size, rotation;
    bp_matrix *last; /* kept to read the prefix errors afterwards */
} quant_job;

static int quant_call(void *arg, size_t call) {
    (void)call;
    quant_job *j = arg;
    bp_matrix_destroy(j->last);
    j->last = NULL;
    return bench_quantize(j->ctx, j->w, j->m, j->k, j->bits, j->method, j->clip, j->group_size,
                          j->rotation, &j->last);
}

/* Time one configuration and append its record. */
static int run_one(const bench_opts *o, bp_context *ctx, const float *w, bp_quant_method method,
                   float clip, bench_report *rep) {
    quant_job j = {ctx, w, o->m, o->k, o->bits, method, clip, o->group_size, o->rotation, NULL};
    double s = 0;
    /* No warm-up: a full-size quantization takes seconds, and its one-off
     * costs (page faults on the new planes) are part of what a user pays. */
    int rc = bench_time(quant_call, &j, 0, o->reps, &s);
    if (rc == 0) {
        double err[BP_MAX_BITS];
        for (int n = 1; n <= o->bits; n++) {
            err[n - 1] = bp_matrix_prefix_error(j.last, n);
            if (err[n - 1] < 0) {
                rc = bench_fail("bp_matrix_prefix_error(%d) failed: %s", n, bp_last_error());
                break;
            }
        }
        bench_record *rec = rc == 0 ? bench_report_add(rep, "quantize") : NULL;
        if (rec) {
            bench_put_str(rec, "backend", bench_backend_name(ctx));
            bench_put_str(rec, "method", method == BP_QUANT_UNIFORM ? "uniform" : "residual");
            if (method == BP_QUANT_UNIFORM)
                bench_put_float(rec, "clip", clip);
            else
                bench_put_null(rec, "clip");
            bench_put_int(rec, "bits", o->bits);
            bench_put_int(rec, "group_size", o->group_size);
            bench_put_int(rec, "rotation", o->rotation);
            bench_put_int(rec, "m", (long long)o->m);
            bench_put_int(rec, "k", (long long)o->k);
            bench_put_int(rec, "threads", o->threads);
            bench_put_real(rec, "median_s", s);
            bench_put_real(rec, "weights_per_s", (double)o->m * (double)o->k / s);
            bench_put_int(rec, "reps", o->reps);
            bench_put_array(rec, "prefix_error", err, o->bits);
        } else {
            rc = 1;
        }
    }
    bp_matrix_destroy(j.last);
    return rc;
}

int bench_cmd_quantize(const bench_opts *o) {
    int rc = 1;
    bp_context *ctx = NULL;
    bench_report rep = {0};
    float *w = bench_alloc(o->m * o->k, sizeof *w, "weights");
    if (!w)
        goto done;
    bench_rng rng;
    bench_rng_seed(&rng, o->seed);
    bench_fill_gaussian(&rng, w, o->m * o->k);
    if (bench_context(o, &ctx))
        goto done;
    if (o->methods & BENCH_METHOD_UNIFORM)
        for (int c = 0; c < o->n_clip; c++)
            if (run_one(o, ctx, w, BP_QUANT_UNIFORM, o->clip[c], &rep))
                goto done;
    if (o->methods & BENCH_METHOD_RESIDUAL)
        if (run_one(o, ctx, w, BP_QUANT_RESIDUAL, 0.0f, &rep))
            goto done;
    rc = bench_report_emit(&rep, o->json);
done:
    bp_context_destroy(ctx);
    free(w);
    bench_report_free(&rep);
    return rc;
}
