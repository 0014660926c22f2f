/*
 * `gemv --backend cuda`: bitplane on the GPU against the device's own limit
 * and cuBLAS, all in one run, timed with CUDA events.
 *
 *  - cuda_copy: a device-to-device copy; bytes = read + written.
 *  - cublas_sgemv / cublas_sgemm (fp32), cublas_hgemm (fp16 in/out, fp32
 *    compute, tensor ops), cublas_int8 (int8 in, int32 out, TN GemmEx).
 *  - bitplane: every (act_bits, planes) on both inner paths (popcount and
 *    mma, forced), with frac_of_copy = weight bytes read per second over the
 *    copy's bytes per second, and speedups against fp32 and fp16 cuBLAS.
 *  - overhead_s on bitplane lines: one call's latency, enqueue to completion,
 *    on a 16 x 512 matrix (launches and activation quantization, no
 *    bandwidth).
 * Times are medians over reps; each rep times `rot` back-to-back calls that
 * rotate through enough weight copies to exceed twice the L2 cache, so the
 * weights come from HBM, and divides by rot. Warm-up: one full rotation.
 */
#include "bench_cmds.h"
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_report.h"
#include "bitplane_cuda.h"

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROT 64

typedef struct gpu_timer {
    cudaStream_t s;
    cudaEvent_t e0, e1;
    int reps;
} gpu_timer;

typedef int (*gpu_fn)(void *arg, size_t i, cudaStream_t s);

static int cu_fail(cudaError_t e, const char *what) {
    return bench_fail("%s: %s", what, cudaGetErrorString(e));
}
#define CU(call, what)                                                                             \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return cu_fail(e_, what);                                                              \
    } while (0)

/* Median seconds per call of fn over reps x rot calls. */
static int gpu_time(gpu_timer *t, gpu_fn fn, void *arg, size_t rot, double *median_s) {
    double *v = malloc((size_t)t->reps * sizeof *v);
    if (!v)
        return bench_fail("out of memory");
    for (size_t i = 0; i < rot; i++) /* warm-up */
        if (fn(arg, i, t->s))
            return free(v), 1;
    for (int r = 0; r < t->reps; r++) {
        CU(cudaEventRecord(t->e0, t->s), "cudaEventRecord");
        for (size_t i = 0; i < rot; i++)
            if (fn(arg, i, t->s))
                return free(v), 1;
        CU(cudaEventRecord(t->e1, t->s), "cudaEventRecord");
        CU(cudaEventSynchronize(t->e1), "cudaEventSynchronize");
        float ms = 0;
        CU(cudaEventElapsedTime(&ms, t->e0, t->e1), "cudaEventElapsedTime");
        v[r] = (double)ms / 1e3 / (double)rot;
    }
    *median_s = bench_median(v, (size_t)t->reps);
    free(v);
    return 0;
}

/* Copies needed so one rotation touches at least 2 x L2 bytes. */
static size_t rotation(size_t bytes, size_t l2) {
    size_t n = bytes ? (2 * l2 + bytes - 1) / bytes : 1;
    return n < 1 ? 1 : (n > MAX_ROT ? MAX_ROT : n);
}

/* ---- the measured calls ---------------------------------------------------- */

typedef struct copy_job {
    void *dst, *src;
    size_t bytes;
} copy_job;
static int copy_call(void *arg, size_t i, cudaStream_t s) {
    (void)i;
    copy_job *j = arg;
    CU(cudaMemcpyAsync(j->dst, j->src, j->bytes, cudaMemcpyDeviceToDevice, s), "cudaMemcpyAsync");
    return 0;
}

typedef struct blas_job {
    cublasHandle_t h;
    int kind; /* 0 fp32, 1 fp16, 2 int8 */
    void *w[MAX_ROT];
    void *x, *y;
    int m, k, batch;
} blas_job;
static int blas_call(void *arg, size_t i, cudaStream_t s) {
    (void)s;
    blas_job *j = arg;
    const void *w = j->w[i % MAX_ROT];
    cublasStatus_t st;
    /* Row-major W (m x k) is column-major A (k x m); y = A^T x. */
    if (j->kind == 0) {
        const float one = 1.0f, zero = 0.0f;
        st = j->batch == 1 ? cublasSgemv(j->h, CUBLAS_OP_T, j->k, j->m, &one, w, j->k, j->x, 1,
                                         &zero, j->y, 1)
                           : cublasSgemm(j->h, CUBLAS_OP_T, CUBLAS_OP_N, j->m, j->batch, j->k, &one,
                                         w, j->k, j->x, j->k, &zero, j->y, j->m);
    } else if (j->kind == 1) {
        const float one = 1.0f, zero = 0.0f;
        st = cublasGemmEx(j->h, CUBLAS_OP_T, CUBLAS_OP_N, j->m, j->batch, j->k, &one, w, CUDA_R_16F,
                          j->k, j->x, CUDA_R_16F, j->k, &zero, j->y, CUDA_R_16F, j->m,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    } else {
        const int32_t one = 1, zero = 0;
        st = cublasGemmEx(j->h, CUBLAS_OP_T, CUBLAS_OP_N, j->m, j->batch, j->k, &one, w, CUDA_R_8I,
                          j->k, j->x, CUDA_R_8I, j->k, &zero, j->y, CUDA_R_32I, j->m,
                          CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT);
    }
    if (st != CUBLAS_STATUS_SUCCESS)
        return bench_fail("cuBLAS (%s) failed: %s",
                          j->kind == 0   ? "fp32"
                          : j->kind == 1 ? "fp16"
                                         : "int8",
                          cublasGetStatusString(st));
    return 0;
}

typedef struct bp_job {
    bp_context *ctx;
    bp_matrix **mats;
    const void *x;
    void *y;
    size_t m, k, batch;
    bp_run_options ro;
} bp_job;
static int bp_call(void *arg, size_t i, cudaStream_t s) {
    bp_job *j = arg;
    bp_status st = bp_cuda_gemm(j->ctx, j->mats[i], j->x, BP_DTYPE_F32, j->batch, j->k, j->y,
                                BP_DTYPE_F32, j->m, &j->ro, s);
    return st ? bench_bp_fail(st, "bp_cuda_gemm") : 0;
}

/* ---- the command ----------------------------------------------------------- */

typedef struct res {
    int planes, act_bits;
    const char *kernel;
    double s;
} res;

static int put_common(bench_record *r, const char *kernel, size_t m, size_t k, size_t batch,
                      double s, size_t bytes, int reps) {
    bench_put_str(r, "backend", "cuda");
    bench_put_str(r, "kernel", kernel);
    bench_put_int(r, "m", (long long)m);
    bench_put_int(r, "k", (long long)k);
    bench_put_int(r, "batch", (long long)batch);
    bench_put_real(r, "median_s", s);
    bench_put_int(r, "bytes", (long long)bytes);
    bench_put_real(r, "gbps", (double)bytes / s / 1e9);
    bench_put_int(r, "reps", reps);
    return 0;
}

static int run(const bench_opts *o, bench_report *rep, gpu_timer *t, void **pool, size_t *npool) {
    const size_t m = o->m, k = o->k, batch = o->batch;
    int dev = 0, l2i = 0;
    CU(cudaGetDevice(&dev), "cudaGetDevice");
    CU(cudaDeviceGetAttribute(&l2i, cudaDevAttrL2CacheSize, dev), "cudaDeviceGetAttribute");
    const size_t l2 = (size_t)l2i;
#define DALLOC(ptr, bytes)                                                                         \
    do {                                                                                           \
        CU(cudaMalloc((void **)&(ptr), (bytes)), "cudaMalloc");                                    \
        pool[(*npool)++] = (ptr);                                                                  \
    } while (0)

    /* bitplane contexts, one per forced path; creation fails cleanly
     * without a device. */
    bp_context *ctx[2] = {NULL, NULL};
    const char *kname[2] = {"popcount", "mma"};
    for (int i = 0; i < 2; i++) {
        bp_context_options co = BP_CONTEXT_OPTIONS_INIT;
        co.backend = BP_BACKEND_CUDA;
        co.gpu_kernel = i == 0 ? BP_GPU_KERNEL_POPCOUNT : BP_GPU_KERNEL_MMA;
        bp_status st = bp_context_create(&co, &ctx[i]);
        if (st) {
            bp_context_destroy(ctx[0]);
            return bench_bp_fail(st, "bp_context_create(cuda)");
        }
    }
    int rc = 1;
    float *w = NULL, *x = NULL;
    bp_matrix *mat = NULL, *mats[MAX_ROT] = {0};
    size_t nmats = 0;
    res results[2 * BENCH_MAX_LIST * BENCH_MAX_LIST];
    int nres = 0;

    bench_rng rng;
    bench_rng_seed(&rng, o->seed);
    w = bench_alloc(m * k, sizeof *w, "weights");
    x = bench_alloc(batch * k, sizeof *x, "activations");
    if (!w || !x)
        goto done;
    bench_fill_gaussian(&rng, w, m * k);
    bench_fill_gaussian(&rng, x, batch * k);

    int pmin = o->planes[0], pmax = o->planes[0];
    for (int i = 1; i < o->n_planes; i++) {
        pmin = o->planes[i] < pmin ? o->planes[i] : pmin;
        pmax = o->planes[i] > pmax ? o->planes[i] : pmax;
    }

    /* 1. Copy probe over at least 2 x L2 and at least the largest read. */
    size_t cbytes = bench_plane_bytes(m, k, pmax);
    cbytes = cbytes < 4 * l2 ? 4 * l2 : cbytes;
    copy_job cj = {0};
    cj.bytes = cbytes;
    DALLOC(cj.src, cbytes);
    DALLOC(cj.dst, cbytes);
    CU(cudaMemset(cj.src, 1, cbytes), "cudaMemset");
    double copy_s = 0;
    if (gpu_time(t, copy_call, &cj, 4, &copy_s))
        goto done;
    const double copy_gbps = 2.0 * (double)cbytes / copy_s / 1e9;
    bench_record *r = bench_report_add(rep, "cuda_copy");
    if (!r)
        goto done;
    put_common(r, "memcpy_d2d", m, k, batch, copy_s, 2 * cbytes, t->reps);

    /* 2. bitplane. */
    if (bench_quantize(ctx[0], w, m, k, o->bits, BP_QUANT_UNIFORM, o->clip[0], o->group_size,
                       o->rotation, &mat))
        goto done;
    nmats = rotation(bench_plane_bytes(m, k, pmin), l2);
    if (bench_matrix_copies(ctx[0], mat, nmats, mats))
        goto done;
    for (size_t i = 0; i < nmats; i++)
        for (int c = 0; c < 2; c++)
            if (bp_cuda_matrix_upload(ctx[c], mats[i])) {
                bench_bp_fail(BP_ERR_BACKEND, "bp_cuda_matrix_upload");
                goto done;
            }
    void *dx, *dy;
    DALLOC(dx, batch * k * sizeof(float));
    DALLOC(dy, batch * m * sizeof(float));
    CU(cudaMemcpy(dx, x, batch * k * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    for (int a = 0; a < o->n_act_bits; a++)
        for (int p = 0; p < o->n_planes; p++)
            for (int c = 0; c < 2; c++) {
                res *rs = &results[nres];
                bp_job j = {ctx[c], mats, dx, dy, m, k, batch, BP_RUN_OPTIONS_INIT};
                j.ro.planes = rs->planes = o->planes[p];
                j.ro.act_bits = rs->act_bits = o->act_bits[a];
                rs->kernel = kname[c];
                size_t rot = rotation(bench_plane_bytes(m, k, rs->planes), l2);
                rot = rot > nmats ? nmats : rot;
                if (gpu_time(t, bp_call, &j, rot, &rs->s))
                    goto done;
                if (bp_cuda_synchronize(ctx[c], t->s)) {
                    bench_bp_fail(BP_ERR_BACKEND, "bp_cuda_synchronize");
                    goto done;
                }
                nres++;
            }

    /* Per-call overhead: a 16 x 512 matrix, one call per timed interval. */
    double overhead_s = 0;
    {
        /* Its own x and y: the main ones may hold fewer than 512 and 16. */
        void *sx, *sy;
        DALLOC(sx, 512 * sizeof(float));
        DALLOC(sy, 16 * sizeof(float));
        CU(cudaMemset(sx, 0, 512 * sizeof(float)), "cudaMemset");
        CU(cudaMemcpy(sx, x, (k < 512 ? k : 512) * sizeof(float), cudaMemcpyHostToDevice),
           "cudaMemcpy");
        float *ws = bench_alloc(16 * 512, sizeof *ws, "small weights");
        bp_matrix *small = NULL;
        if (!ws)
            goto done;
        bench_fill_gaussian(&rng, ws, 16 * 512);
        int bad = bench_quantize(ctx[1], ws, 16, 512, o->bits, BP_QUANT_UNIFORM, 0.0f,
                                 o->group_size, o->rotation, &small);
        free(ws);
        if (bad)
            goto done;
        bp_job j = {ctx[1], &small, sx, sy, 16, 512, 1, BP_RUN_OPTIONS_INIT};
        bad = gpu_time(t, bp_call, &j, 1, &overhead_s);
        bp_matrix_destroy(small);
        if (bad)
            goto done;
    }

    /* 3. cuBLAS at the same shape: fp32, fp16 (tensor ops), int8. */
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        bench_fail("cublasCreate failed");
        goto done;
    }
    cublasSetStream(h, t->s);
    double blas_s[3] = {0, 0, 0};
    const char *blas_kind[3] = {batch == 1 ? "cublas_sgemv" : "cublas_sgemm", "cublas_hgemm",
                                "cublas_int8"};
    const size_t esize[3] = {4, 2, 1};
    char int8_skip[160] = "";
    for (int kind = 0; kind < 3; kind++) {
        blas_job bj = {h, kind, {0}, NULL, NULL, (int)m, (int)k, (int)batch};
        const size_t wbytes = m * k * esize[kind];
        size_t rot = rotation(wbytes, l2);
        for (size_t i = 0; i < rot; i++) {
            DALLOC(bj.w[i], wbytes);
            CU(cudaMemset(bj.w[i], 0x11, wbytes), "cudaMemset"); /* finite, nonzero values */
        }
        for (size_t i = rot; i < MAX_ROT; i++)
            bj.w[i] = bj.w[i % rot];
        DALLOC(bj.x, batch * k * esize[kind]);
        CU(cudaMemset(bj.x, 0x11, batch * k * esize[kind]), "cudaMemset");
        DALLOC(bj.y, batch * m * (kind == 2 ? 4 : esize[kind]));
        if (kind == 2 && (m % 4 || k % 4)) {
            snprintf(int8_skip, sizeof int8_skip, "int8 GemmEx needs m and k multiples of 4");
            continue;
        }
        if (gpu_time(t, blas_call, &bj, rot, &blas_s[kind])) {
            if (kind == 2) { /* int8 may be unsupported for this shape */
                snprintf(int8_skip, sizeof int8_skip, "cuBLAS int8 GemmEx failed at this shape");
                continue;
            }
            cublasDestroy(h);
            goto done;
        }
        r = bench_report_add(rep, blas_kind[kind]);
        if (!r) {
            cublasDestroy(h);
            goto done;
        }
        put_common(r,
                   kind == 0   ? "cublas_fp32"
                   : kind == 1 ? "cublas_fp16_tensor"
                               : "cublas_int8",
                   m, k, batch, blas_s[kind], wbytes, t->reps);
    }
    cublasDestroy(h);
    if (int8_skip[0]) {
        r = bench_report_add(rep, "cublas_int8");
        if (!r)
            goto done;
        put_common(r, "cublas_int8", m, k, batch, 0, 0, t->reps);
        bench_skip(r, int8_skip);
    }

    for (int i = 0; i < nres; i++) {
        const res *rs = &results[i];
        size_t bytes = bench_plane_bytes(m, k, rs->planes);
        r = bench_report_add(rep, "bitplane");
        if (!r)
            goto done;
        put_common(r, rs->kernel, m, k, batch, rs->s, bytes, t->reps);
        bench_put_int(r, "planes", rs->planes);
        bench_put_int(r, "act_bits", rs->act_bits);
        bench_put_real(r, "frac_of_copy", ((double)bytes / rs->s / 1e9) / copy_gbps);
        bench_put_real(r, "speedup_vs_fp32", blas_s[0] / rs->s);
        bench_put_real(r, "speedup_vs_fp16", blas_s[1] / rs->s);
        bench_put_real(r, "overhead_s", overhead_s);
        bench_put_str(r, "method", "uniform");
        bench_put_int(r, "bits", o->bits);
    }
    rc = 0;
done:
    for (size_t i = 1; i < nmats; i++)
        bp_matrix_destroy(mats[i]);
    bp_matrix_destroy(mat); /* mats[0] */
    bp_context_destroy(ctx[0]);
    bp_context_destroy(ctx[1]);
    free(w);
    free(x);
    return rc;
}

int bench_cmd_gemv_cuda(const bench_opts *o) {
    bench_report rep = {0};
    gpu_timer t = {.reps = o->reps};
    void *pool[3 * MAX_ROT + 16];
    size_t npool = 0;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return bench_fail("--backend cuda: no CUDA device: %s",
                          e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    if (cudaStreamCreateWithFlags(&t.s, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreate(&t.e0) != cudaSuccess || cudaEventCreate(&t.e1) != cudaSuccess)
        return bench_fail("cannot create a CUDA stream and events");
    int rc = run(o, &rep, &t, pool, &npool);
    for (size_t i = 0; i < npool; i++)
        cudaFree(pool[i]);
    cudaEventDestroy(t.e0);
    cudaEventDestroy(t.e1);
    cudaStreamDestroy(t.s);
    if (rc == 0)
        rc = bench_report_emit(&rep, o->json);
    bench_report_free(&rep);
    return rc;
}
