/*
 * `gemv`: bitplane GEMV/GEMM time per (act_bits, planes), against the
 * streaming-read ceiling and OpenBLAS fp32 at the same shape and threads.
 *
 * Order matters on a small machine: the stream probe runs before the
 * bitplane context exists and OpenBLAS runs after it is destroyed, so no
 * idle pool (ours or OpenBLAS's spinning workers) shares the cores with a
 * timed section.
 */
#include "bench_cmds.h"
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_probes.h"
#include "bench_report.h"

#include <stdlib.h>
#include <string.h>

typedef struct gemv_job {
    bp_context *ctx;
    bp_matrix **mats;
    size_t rot; /* copies rotated through for this plane count */
    const float *x;
    float *y;
    size_t m, k, batch;
    bp_run_options ro;
} gemv_job;

static int gemv_call(void *arg, size_t call) {
    gemv_job *j = arg;
    bp_status st =
        bp_gemm(j->ctx, j->mats[call % j->rot], j->x, j->batch, j->k, j->y, j->m, &j->ro);
    return st == BP_OK ? 0 : bench_bp_fail(st, "bp_gemm");
}

/*
 * Copies needed so that consecutive calls with `planes` planes touch at
 * least BENCH_STREAM_MIN_BYTES of plane data between two uses of the same
 * copy. Without this, a matrix that fits in the last-level cache (a 32 MiB
 * plane-0 slab does on a 32 MiB L3) would report cache bandwidth, not the
 * memory-bound figure a model with many layers sees. Each call still reads
 * exactly one matrix's first `planes` slabs. Copies are capped at
 * BENCH_MAX_COPIES.
 */
static size_t rotation(size_t m, size_t k, int planes) {
    return bench_rotation(bench_plane_bytes(m, k, planes));
}

typedef struct bp_result {
    int planes, act_bits;
    const char *kernel;
    double median_s;
} bp_result;

int bench_cmd_gemv(const bench_opts *o) {
    if (o->backend == BP_BACKEND_CUDA)
        return bench_cmd_gemv_cuda(o); /* bench_cuda.c */
    if (o->backend == BP_BACKEND_OPENCL) {
#ifdef BENCH_HAVE_OPENCL
        return bench_cmd_gemv_opencl(o);
#else
        return bench_fail("gemv --backend opencl: this build has no OpenCL backend "
                          "(configure with -DBP_OPENCL=ON)");
#endif
    }
    const size_t m = o->m, k = o->k, batch = o->batch;
    const bp_quant_method method =
        o->methods == BENCH_METHOD_RESIDUAL ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
    int rc = 1;
    float *w = NULL, *x = NULL, *y = NULL;
    bp_context *ctx = NULL;
    bp_matrix *mat = NULL, **mats = NULL;
    bp_result res[BENCH_MAX_LIST * BENCH_MAX_LIST];
    int nres = 0;
    size_t ncopies = 1;
    const char *backend = "cpu";
    bench_report rep = {0};

    int pmin = o->planes[0], pmax = o->planes[0];
    for (int i = 1; i < o->n_planes; i++) {
        pmin = o->planes[i] < pmin ? o->planes[i] : pmin;
        pmax = o->planes[i] > pmax ? o->planes[i] : pmax;
    }

    /* 1. The bandwidth ceiling, over at least as many bytes as any call reads. */
    bench_stream_ceiling stream;
    if (bench_stream_for_gemv(o, m, k, pmax, &stream))
        goto done;

    /* 2. Data: Gaussian weights and activations from a fixed seed. */
    bench_rng rng;
    bench_rng_seed(&rng, o->seed);
    w = bench_alloc(m * k, sizeof *w, "weights");
    x = bench_alloc(batch * k, sizeof *x, "activations");
    y = bench_alloc(batch * m, sizeof *y, "outputs");
    if (!w || !x || !y)
        goto done;
    bench_fill_gaussian(&rng, w, m * k);
    bench_fill_gaussian(&rng, x, batch * k);

    /* 3. bitplane. */
    if (bench_context(o, &ctx))
        goto done;
    backend = bench_backend_name(ctx);
    if (bench_quantize(ctx, w, m, k, o->bits, method, o->clip[0], o->group_size, o->rotation, &mat))
        goto done;
    ncopies = rotation(m, k, pmin);
    mats = calloc(ncopies, sizeof *mats);
    if (!mats) {
        bench_fail("out of memory for %zu matrix copies", ncopies);
        goto done;
    }
    if (bench_matrix_copies(ctx, mat, ncopies, mats))
        goto done;
    for (int a = 0; a < o->n_act_bits; a++) {
        for (int p = 0; p < o->n_planes; p++) {
            bp_result *r = &res[nres];
            r->planes = o->planes[p];
            r->act_bits = o->act_bits[a];
            if (bench_kernel_name(ctx, mat, r->planes, r->act_bits, batch, &r->kernel))
                goto done;
            gemv_job j = {ctx, mats,  rotation(m, k, r->planes), x, y, m,
                          k,   batch, BP_RUN_OPTIONS_INIT};
            j.ro.planes = r->planes;
            j.ro.act_bits = r->act_bits;
            /* Warm up over the whole rotation so first touches and pool
             * start-up stay out of the timed calls. */
            int warm = (int)j.rot + 2;
            if (bench_time(gemv_call, &j, warm, o->reps, &r->median_s))
                goto done;
            nres++;
        }
    }
    bp_context_destroy(ctx); /* joins the pool before OpenBLAS runs */
    ctx = NULL;

    /* 4. OpenBLAS fp32 at the same shape and thread count. */
    double blas_s = 0;
    if (bench_openblas_gemm(w, x, m, k, batch, o->threads, o->reps, &blas_s))
        goto done;

    /* 5. Report: ceiling and baseline first, then the bitplane lines. */
    double stream_gbps = bench_stream_gbps(&stream);
    if (bench_report_stream(&rep, &stream, m, k, batch))
        goto done;

    size_t blas_bytes = 4 * m * k;
    bench_record *rec = bench_report_add(&rep, batch == 1 ? "openblas_sgemv" : "openblas_sgemm");
    if (!rec)
        goto done;
    bench_put_str(rec, "backend", "cpu");
    bench_put_str(rec, "kernel", "openblas");
    bench_put_int(rec, "m", (long long)m);
    bench_put_int(rec, "k", (long long)k);
    bench_put_int(rec, "batch", (long long)batch);
    bench_put_null(rec, "planes");
    bench_put_null(rec, "act_bits");
    bench_put_int(rec, "threads", o->threads);
    bench_put_real(rec, "median_s", blas_s);
    bench_put_int(rec, "bytes", (long long)blas_bytes);
    bench_put_real(rec, "gbps", (double)blas_bytes / blas_s / 1e9);
    bench_put_int(rec, "reps", o->reps);

    for (int i = 0; i < nres; i++) {
        const bp_result *r = &res[i];
        size_t bytes = bench_plane_bytes(m, k, r->planes);
        double gbps = (double)bytes / r->median_s / 1e9;
        rec = bench_report_add(&rep, "bitplane");
        if (!rec)
            goto done;
        bench_put_str(rec, "backend", backend);
        bench_put_str(rec, "kernel", r->kernel);
        bench_put_int(rec, "m", (long long)m);
        bench_put_int(rec, "k", (long long)k);
        bench_put_int(rec, "batch", (long long)batch);
        bench_put_int(rec, "planes", r->planes);
        bench_put_int(rec, "act_bits", r->act_bits);
        bench_put_int(rec, "threads", o->threads);
        bench_put_real(rec, "median_s", r->median_s);
        bench_put_int(rec, "bytes", (long long)bytes);
        bench_put_real(rec, "gbps", gbps);
        bench_put_int(rec, "reps", o->reps);
        bench_put_real(rec, "frac_of_stream", gbps / stream_gbps);
        bench_put_real(rec, "speedup_vs_fp32", blas_s / r->median_s);
        bench_put_str(rec, "method", method == BP_QUANT_UNIFORM ? "uniform" : "residual");
        bench_put_int(rec, "bits", o->bits);
    }
    rc = bench_report_emit(&rep, o->json);

done:
    if (mats)
        for (size_t i = 1; i < ncopies; i++)
            bp_matrix_destroy(mats[i]);
    free(mats);
    bp_matrix_destroy(mat);
    bp_context_destroy(ctx);
    free(w);
    free(x);
    free(y);
    bench_report_free(&rep);
    return rc;
}
