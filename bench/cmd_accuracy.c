/*
 * `accuracy`: how far y = W_n x from the library is from the exact product
 * of the unquantized weights and activations, for every quantizer, prefix
 * n and act_bits. Errors are relative over the whole output (never per
 * element: outputs can cancel to about zero). A second figure compares
 * against the dequantized weights W_n in fp64, isolating what activation
 * quantization and the float combine add on top of the weight error.
 */
#include "bench_cmds.h"
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_report.h"

#include <math.h>
#include <stdlib.h>

/* y[b*m + r] = sum_j W[r*k + j] * X[b*k + j] in double. */
static void product64(const float *w, const float *x, size_t m, size_t k, size_t batch, double *y) {
    for (size_t b = 0; b < batch; b++)
        for (size_t r = 0; r < m; r++) {
            const float *wr = w + r * k, *xb = x + b * k;
            double s = 0;
            for (size_t j = 0; j < k; j++)
                s += (double)wr[j] * (double)xb[j];
            y[b * m + r] = s;
        }
}

static double rel_error(const float *y, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)y[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

typedef struct acc_data {
    const float *w, *x;
    float *wq, *y;
    double *y64, *yq64;
} acc_data;

/* All prefixes and act_bits for one quantizer configuration. */
static int run_config(const bench_opts *o, bp_context *ctx, const acc_data *d,
                      bp_quant_method method, float clip, bench_report *rep) {
    const size_t m = o->m, k = o->k, batch = o->batch;
    bp_matrix *mat = NULL;
    int rc =
        bench_quantize(ctx, d->w, m, k, o->bits, method, clip, o->group_size, o->rotation, &mat);
    for (int p = 0; rc == 0 && p < o->n_planes; p++) {
        int n = o->planes[p];
        double werr = bp_matrix_prefix_error(mat, n);
        if (werr < 0) {
            rc = bench_fail("bp_matrix_prefix_error(%d) failed: %s", n, bp_last_error());
            break;
        }
        bp_status st = bp_matrix_dequantize(ctx, mat, n, d->wq, k);
        if (st != BP_OK) {
            rc = bench_bp_fail(st, "bp_matrix_dequantize");
            break;
        }
        product64(d->wq, d->x, m, k, batch, d->yq64);
        for (int a = 0; rc == 0 && a < o->n_act_bits; a++) {
            bp_run_options ro = BP_RUN_OPTIONS_INIT;
            ro.planes = n;
            ro.act_bits = o->act_bits[a];
            const char *kernel;
            rc = bench_kernel_name(ctx, mat, n, ro.act_bits, batch, &kernel);
            if (rc)
                break;
            st = bp_gemm(ctx, mat, d->x, batch, k, d->y, m, &ro);
            if (st != BP_OK) {
                rc = bench_bp_fail(st, "bp_gemm");
                break;
            }
            bench_record *rec = bench_report_add(rep, "accuracy");
            if (!rec) {
                rc = 1;
                break;
            }
            bench_put_str(rec, "backend", bench_backend_name(ctx));
            bench_put_str(rec, "kernel", kernel);
            bench_put_str(rec, "method", method == BP_QUANT_UNIFORM ? "uniform" : "residual");
            if (method == BP_QUANT_UNIFORM)
                bench_put_float(rec, "clip", clip);
            else
                bench_put_null(rec, "clip");
            bench_put_int(rec, "bits", o->bits);
            bench_put_int(rec, "m", (long long)m);
            bench_put_int(rec, "k", (long long)k);
            bench_put_int(rec, "batch", (long long)batch);
            bench_put_int(rec, "planes", n);
            bench_put_int(rec, "act_bits", ro.act_bits);
            bench_put_int(rec, "threads", o->threads);
            bench_put_real(rec, "weight_rel_err", werr);
            bench_put_real(rec, "out_rel_err", rel_error(d->y, d->y64, m * batch));
            bench_put_real(rec, "out_rel_err_vs_wq", rel_error(d->y, d->yq64, m * batch));
        }
    }
    bp_matrix_destroy(mat);
    return rc;
}

int bench_cmd_accuracy(const bench_opts *o) {
    const size_t m = o->m, k = o->k, batch = o->batch;
    int rc = 1;
    bp_context *ctx = NULL;
    bench_report rep = {0};
    float *w = bench_alloc(m * k, sizeof(float), "weights");
    float *wq = bench_alloc(m * k, sizeof(float), "dequantized weights");
    float *x = bench_alloc(batch * k, sizeof(float), "activations");
    float *y = bench_alloc(batch * m, sizeof(float), "outputs");
    double *y64 = bench_alloc(batch * m, sizeof(double), "fp64 reference");
    double *yq64 = bench_alloc(batch * m, sizeof(double), "fp64 dequantized reference");
    if (!w || !wq || !x || !y || !y64 || !yq64)
        goto done;
    bench_rng rng;
    bench_rng_seed(&rng, o->seed);
    bench_fill_gaussian(&rng, w, m * k);
    bench_fill_gaussian(&rng, x, batch * k);
    product64(w, x, m, k, batch, y64);
    if (bench_context(o, &ctx))
        goto done;
    acc_data d = {w, x, wq, y, y64, yq64};
    if (o->methods & BENCH_METHOD_UNIFORM)
        for (int c = 0; c < o->n_clip; c++)
            if (run_config(o, ctx, &d, BP_QUANT_UNIFORM, o->clip[c], &rep))
                goto done;
    if (o->methods & BENCH_METHOD_RESIDUAL)
        if (run_config(o, ctx, &d, BP_QUANT_RESIDUAL, 0.0f, &rep))
            goto done;
    rc = bench_report_emit(&rep, o->json);
done:
    bp_context_destroy(ctx);
    free(w);
    free(wq);
    free(x);
    free(y);
    free(y64);
    free(yq64);
    bench_report_free(&rep);
    return rc;
}
