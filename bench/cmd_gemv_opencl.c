/*
 * `gemv --backend opencl`: the OpenCL backend's GEMV/GEMM time per
 * (act_bits, planes), with the same JSON fields as the CPU `gemv`.
 *
 * Device time comes from OpenCL profiling events: each timed call is
 * preceded by a marker on the same in-order queue, and its time is
 * done.END - marker.END, which covers activation quantization and the GEMM
 * kernel but not the host's enqueue overhead (reported separately as
 * wall_median_s). Medians over --reps after a warm-up over the whole
 * rotation of weight copies, so weights cannot sit in a cache between uses.
 *
 * In the same run: the host stream-read probe (the limit for a CPU device
 * such as PoCL, whose buffers are host memory), a device copy probe
 * (clEnqueueCopyBuffer; the limit for a discrete GPU), the CPU backend's
 * AVX-512 popcount path (BP_CPU_KERNEL_AVX512, same threads) and OpenBLAS.
 * frac_of_stream uses the probe that matches the device type.
 */
#include "bench_cmds.h"
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_probes.h"
#include "bench_report.h"
#include "bitplane_opencl.h"

#include <stdlib.h>
#include <string.h>

#define MAX_RES (BENCH_MAX_LIST * BENCH_MAX_LIST)

typedef struct cpu_job {
    bp_context *ctx;
    bp_matrix **mats;
    size_t rot;
    const float *x;
    float *y;
    size_t m, k, batch;
    bp_run_options ro;
} cpu_job;

static int cpu_call(void *arg, size_t call) {
    cpu_job *j = arg;
    bp_status st =
        bp_gemm(j->ctx, j->mats[call % j->rot], j->x, j->batch, j->k, j->y, j->m, &j->ro);
    return st == BP_OK ? 0 : bench_bp_fail(st, "bp_gemm (cpu)");
}

typedef struct result {
    int planes, act_bits;
    double dev_s, wall_s, cpu_s;
    const char *cpu_kernel;
} result;

static double event_end(cl_event e, cl_int *err) {
    cl_ulong t = 0;
    *err |= clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof t, &t, NULL);
    return (double)t * 1e-9;
}

/* Device and wall medians of bp_opencl_gemm over rotated matrix copies. */
static int time_opencl(bp_context *ctx, bp_matrix **mats, size_t rot, cl_mem dx, cl_mem dy,
                       size_t m, size_t k, size_t batch, const bp_run_options *ro, int reps,
                       double *dev_s, double *wall_s) {
    cl_command_queue q;
    bp_opencl_context_handles(ctx, NULL, NULL, &q);
    double *dv = calloc((size_t)reps, sizeof *dv), *wv = calloc((size_t)reps, sizeof *wv);
    if (!dv || !wv) {
        free(dv);
        free(wv);
        return bench_fail("out of memory");
    }
    int warm = (int)rot + 2, rc = 0;
    for (int i = 0; i < warm + reps && rc == 0; i++) {
        cl_event start = NULL, done = NULL;
        cl_int err = clEnqueueMarkerWithWaitList(q, 0, NULL, &start);
        if (err != CL_SUCCESS) {
            rc = bench_fail("clEnqueueMarkerWithWaitList: %d", (int)err);
            break;
        }
        double t0 = bench_now();
        bp_status st = bp_opencl_gemm(ctx, mats[(size_t)i % rot], dx, 0, batch, k, dy, 0, m, NULL,
                                      0, ro, q, 0, NULL, &done);
        if (st == BP_OK)
            err = clWaitForEvents(1, &done);
        double t1 = bench_now();
        if (st != BP_OK)
            rc = bench_bp_fail(st, "bp_opencl_gemm");
        else if (err != CL_SUCCESS)
            rc = bench_fail("clWaitForEvents: %d", (int)err);
        else if (i >= warm) {
            err = CL_SUCCESS;
            double s = event_end(start, &err), e = event_end(done, &err);
            if (err != CL_SUCCESS)
                rc = bench_fail("clGetEventProfilingInfo: %d", (int)err);
            dv[i - warm] = e - s;
            wv[i - warm] = t1 - t0;
        }
        clReleaseEvent(start);
        if (done)
            clReleaseEvent(done);
    }
    bp_status st = bp_opencl_status(ctx);
    if (rc == 0 && st != BP_OK)
        rc = bench_bp_fail(st, "bp_opencl_status");
    if (rc == 0) {
        *dev_s = bench_median(dv, (size_t)reps);
        *wall_s = bench_median(wv, (size_t)reps);
    }
    free(dv);
    free(wv);
    return rc;
}

/* clEnqueueCopyBuffer of `bytes`, median device time. */
static int copy_probe(bp_context *ctx, size_t bytes, int reps, double *median_s) {
    cl_context cc;
    cl_command_queue q;
    bp_opencl_context_handles(ctx, &cc, NULL, &q);
    cl_int err;
    cl_mem a = clCreateBuffer(cc, CL_MEM_READ_WRITE, bytes, NULL, &err);
    cl_mem b = a ? clCreateBuffer(cc, CL_MEM_READ_WRITE, bytes, NULL, &err) : NULL;
    double *v = calloc((size_t)reps, sizeof *v);
    int rc = 0;
    if (!a || !b || !v)
        rc = bench_fail("device copy probe: cannot allocate 2 x %zu bytes (%d)", bytes, (int)err);
    unsigned char zero = 0;
    if (rc == 0 && (err = clEnqueueFillBuffer(q, a, &zero, 1, 0, bytes, 0, NULL, NULL)) != 0)
        rc = bench_fail("clEnqueueFillBuffer: %d", (int)err);
    for (int i = 0; i < reps + 2 && rc == 0; i++) {
        cl_event e;
        err = clEnqueueCopyBuffer(q, a, b, 0, 0, bytes, 0, NULL, &e);
        if (err == CL_SUCCESS)
            err = clWaitForEvents(1, &e);
        cl_ulong t0 = 0, t1 = 0;
        if (err == CL_SUCCESS)
            err = clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) |
                  clGetEventProfilingInfo(e, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
        if (err != CL_SUCCESS)
            rc = bench_fail("device copy probe: %d", (int)err);
        else if (i >= 2)
            v[i - 2] = (double)(t1 - t0) * 1e-9;
        clReleaseEvent(e);
    }
    if (rc == 0)
        *median_s = bench_median(v, (size_t)reps);
    free(v);
    if (a)
        clReleaseMemObject(a);
    if (b)
        clReleaseMemObject(b);
    return rc;
}

static void put_common(bench_record *rec, const char *backend, const char *kernel, size_t m,
                       size_t k, size_t batch, int threads, int reps) {
    bench_put_str(rec, "backend", backend);
    bench_put_str(rec, "kernel", kernel);
    bench_put_int(rec, "m", (long long)m);
    bench_put_int(rec, "k", (long long)k);
    bench_put_int(rec, "batch", (long long)batch);
    bench_put_int(rec, "threads", threads);
    bench_put_int(rec, "reps", reps);
}

int bench_cmd_gemv_opencl(const bench_opts *o) {
    const size_t m = o->m, k = o->k, batch = o->batch;
    const bp_quant_method method =
        o->methods == BENCH_METHOD_RESIDUAL ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
    int rc = 1, pmin = o->planes[0], pmax = o->planes[0];
    for (int i = 1; i < o->n_planes; i++) {
        pmin = o->planes[i] < pmin ? o->planes[i] : pmin;
        pmax = o->planes[i] > pmax ? o->planes[i] : pmax;
    }
    float *w = NULL, *x = NULL, *y = NULL;
    bp_context *cpu = NULL, *ocl = NULL;
    bp_matrix *mat = NULL, **mats = NULL;
    cl_mem dx = NULL, dy = NULL;
    result res[MAX_RES];
    int nres = 0;
    bench_report rep = {0};
    char device[256] = "";
    cl_device_type dtype = 0;
    double copy_s = 0, blas_s = 0;
    size_t copy_bytes = 0, ncopies = bench_rotation(bench_plane_bytes(m, k, pmin));

    /* 1. Host ceiling. */
    bench_stream_ceiling stream;
    if (bench_stream_for_gemv(o, m, k, pmax, &stream))
        goto done;

    /* 2. Data. */
    bench_rng rng;
    bench_rng_seed(&rng, o->seed);
    w = bench_alloc(m * k, sizeof *w, "weights");
    x = bench_alloc(batch * k, sizeof *x, "activations");
    y = bench_alloc(batch * m, sizeof *y, "outputs");
    mats = calloc(ncopies, sizeof *mats);
    if (!w || !x || !y || !mats)
        goto done;
    bench_fill_gaussian(&rng, w, m * k);
    bench_fill_gaussian(&rng, x, batch * k);

    /* 3. The CPU backend's AVX-512 popcount path, same matrices. */
    bench_opts co = *o;
    co.kernel = BP_CPU_KERNEL_AVX512;
    if (bench_context(&co, &cpu) ||
        bench_quantize(cpu, w, m, k, o->bits, method, o->clip[0], o->group_size, o->rotation,
                       &mat) ||
        bench_matrix_copies(cpu, mat, ncopies, mats))
        goto done;
    for (int a = 0; a < o->n_act_bits; a++)
        for (int p = 0; p < o->n_planes; p++) {
            result *r = &res[nres++];
            r->planes = o->planes[p];
            r->act_bits = o->act_bits[a];
            if (bench_kernel_name(cpu, mat, r->planes, r->act_bits, batch, &r->cpu_kernel))
                goto done;
            cpu_job j = {cpu, mats,  bench_rotation(bench_plane_bytes(m, k, r->planes)),
                         x,   y,     m,
                         k,   batch, BP_RUN_OPTIONS_INIT};
            j.ro.planes = r->planes;
            j.ro.act_bits = r->act_bits;
            if (bench_time(cpu_call, &j, (int)j.rot + 2, o->reps, &r->cpu_s))
                goto done;
        }
    bp_context_destroy(cpu);
    cpu = NULL;

    /* 4. OpenCL: upload every copy first, then time. */
    bp_context_options oo = BP_CONTEXT_OPTIONS_INIT;
    oo.backend = BP_BACKEND_OPENCL;
    oo.threads = 1; /* host pool unused by the device path */
    bp_status st = bp_context_create(&oo, &ocl);
    if (st != BP_OK) {
        bench_bp_fail(st, "bp_context_create (opencl)");
        goto done;
    }
    snprintf(device, sizeof device, "%s", bp_opencl_device_name(ocl));
    cl_context cc;
    cl_device_id dev;
    bp_opencl_context_handles(ocl, &cc, &dev, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof dtype, &dtype, NULL);
    for (size_t i = 0; i < ncopies; i++)
        if ((st = bp_opencl_matrix_prepare(ocl, mats[i])) != BP_OK) {
            bench_bp_fail(st, "bp_opencl_matrix_prepare");
            goto done;
        }
    cl_int err;
    dx =
        clCreateBuffer(cc, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, batch * k * sizeof *x, x, &err);
    dy = dx ? clCreateBuffer(cc, CL_MEM_WRITE_ONLY, batch * m * sizeof *y, NULL, &err) : NULL;
    if (!dx || !dy) {
        bench_fail("clCreateBuffer (x, y): %d", (int)err);
        goto done;
    }
    copy_bytes = stream.bytes;
    if (copy_probe(ocl, copy_bytes, o->reps, &copy_s))
        goto done;
    for (int i = 0; i < nres; i++) {
        result *r = &res[i];
        bp_run_options ro = BP_RUN_OPTIONS_INIT;
        ro.planes = r->planes;
        ro.act_bits = r->act_bits;
        if (time_opencl(ocl, mats, bench_rotation(bench_plane_bytes(m, k, r->planes)), dx, dy, m, k,
                        batch, &ro, o->reps, &r->dev_s, &r->wall_s))
            goto done;
    }
    clReleaseMemObject(dx);
    clReleaseMemObject(dy);
    dx = dy = NULL;
    for (size_t i = 1; i < ncopies; i++) {
        bp_matrix_destroy(mats[i]); /* releases their device copies */
        mats[i] = NULL;
    }
    bp_context_destroy(ocl);
    ocl = NULL;

    /* 5. OpenBLAS fp32 at the same shape and threads. */
    if (bench_openblas_gemm(w, x, m, k, batch, o->threads, o->reps, &blas_s))
        goto done;

    /* 6. Report. */
    double stream_gbps = bench_stream_gbps(&stream);
    double copy_gbps = 2.0 * (double)copy_bytes / copy_s / 1e9; /* read + write */
    double limit_gbps = dtype & CL_DEVICE_TYPE_CPU ? stream_gbps : copy_gbps;
    if (bench_report_stream(&rep, &stream, m, k, batch))
        goto done;
    bench_record *rec;
    if (!(rec = bench_report_add(&rep, "device_copy")))
        goto done;
    put_common(rec, "opencl", "copy", m, k, batch, o->threads, o->reps);
    bench_put_null(rec, "planes");
    bench_put_null(rec, "act_bits");
    bench_put_real(rec, "median_s", copy_s);
    bench_put_int(rec, "bytes", (long long)(2 * copy_bytes));
    bench_put_real(rec, "gbps", copy_gbps);
    bench_put_str(rec, "device", device);
    size_t blas_bytes = 4 * m * k;
    if (!(rec = bench_report_add(&rep, batch == 1 ? "openblas_sgemv" : "openblas_sgemm")))
        goto done;
    put_common(rec, "cpu", "openblas", m, k, batch, o->threads, o->reps);
    bench_put_null(rec, "planes");
    bench_put_null(rec, "act_bits");
    bench_put_real(rec, "median_s", blas_s);
    bench_put_int(rec, "bytes", (long long)blas_bytes);
    bench_put_real(rec, "gbps", (double)blas_bytes / blas_s / 1e9);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nres; i++) {
            const result *r = &res[i];
            size_t bytes = bench_plane_bytes(m, k, r->planes);
            double t = pass == 0 ? r->cpu_s : r->dev_s;
            double gbps = (double)bytes / t / 1e9;
            if (!(rec = bench_report_add(&rep, "bitplane")))
                goto done;
            put_common(rec, pass == 0 ? "cpu" : "opencl", pass == 0 ? r->cpu_kernel : "popcount", m,
                       k, batch, o->threads, o->reps);
            bench_put_int(rec, "planes", r->planes);
            bench_put_int(rec, "act_bits", r->act_bits);
            bench_put_real(rec, "median_s", t);
            bench_put_int(rec, "bytes", (long long)bytes);
            bench_put_real(rec, "gbps", gbps);
            bench_put_real(rec, "frac_of_stream", gbps / (pass == 0 ? stream_gbps : limit_gbps));
            bench_put_real(rec, "speedup_vs_fp32", blas_s / t);
            bench_put_str(rec, "method", method == BP_QUANT_UNIFORM ? "uniform" : "residual");
            bench_put_int(rec, "bits", o->bits);
            if (pass == 1) {
                bench_put_str(rec, "device", device);
                bench_put_real(rec, "wall_median_s", r->wall_s);
                bench_put_real(rec, "vs_cpu_avx512", t / r->cpu_s);
            }
        }
    rc = bench_report_emit(&rep, o->json);

done:
    if (dx)
        clReleaseMemObject(dx);
    if (dy)
        clReleaseMemObject(dy);
    if (mats)
        for (size_t i = 1; i < ncopies; i++)
            bp_matrix_destroy(mats[i]);
    free(mats);
    bp_matrix_destroy(mat);
    bp_context_destroy(cpu);
    bp_context_destroy(ocl);
    free(w);
    free(x);
    free(y);
    bench_report_free(&rep);
    return rc;
}
