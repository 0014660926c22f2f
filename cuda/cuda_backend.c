/*
 * The CUDA backend's plugin entry, context lifetime and bp_gemm with host
 * pointers. Loaded by libbitplane (src/plugin.c) as libbitplane_cuda.so.0;
 * the CUDA runtime is linked statically into this library only, so a
 * CPU-only user of libbitplane never needs libcudart.
 */
#include "cuda_host.h"

#include <stdlib.h>
#include <string.h>

const bp_plugin_host *bp_cuda__host;

bp_status bp_cuda__check(cudaError_t err, const char *what) {
    if (err == cudaSuccess)
        return BP_OK;
    /* Reported now, so take it out of the runtime's per-thread error state:
     * left there, the next call's launch check (cudaGetLastError) or status
     * query would report it again. Sticky device faults stay. */
    cudaGetLastError();
    return bp_cuda__host->fail(
        err == cudaErrorMemoryAllocation ? BP_ERR_OUT_OF_MEMORY : BP_ERR_BACKEND,
        "CUDA: %s failed: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

bp_status bp_cuda__enter(const bp_cuda_context *cc, int *prev) {
    bp_status st = bp_cuda__check(cudaGetDevice(prev), "cudaGetDevice");
    if (!st && *prev != cc->device)
        st = bp_cuda__check(cudaSetDevice(cc->device), "cudaSetDevice");
    return st;
}

void bp_cuda__leave(int prev) {
    int now;
    if (cudaGetDevice(&now) == cudaSuccess && now != prev)
        cudaSetDevice(prev);
}

/* option (if not AUTO) > BP_GPU_KERNEL > AUTO */
static bp_status resolve_kernel(bp_gpu_kernel opt, bp_gpu_kernel *out) {
    *out = opt;
    if (opt != BP_GPU_KERNEL_AUTO)
        return BP_OK;
    const char *env = getenv("BP_GPU_KERNEL");
    if (!env || !env[0] || strcmp(env, "auto") == 0)
        return BP_OK;
    if (strcmp(env, "popcount") == 0)
        *out = BP_GPU_KERNEL_POPCOUNT;
    else if (strcmp(env, "mma") == 0)
        *out = BP_GPU_KERNEL_MMA;
    else
        return bp_cuda__host->fail(BP_ERR_INVALID_ARGUMENT,
                                   "BP_GPU_KERNEL must be auto, popcount or mma, got '%s'", env);
    return BP_OK;
}

static void destroy_state(bp_cuda_context *cc) {
    if (cc->stream)
        cudaStreamDestroy(cc->stream);
    if (cc->pool)
        cudaMemPoolDestroy(cc->pool);
    if (cc->flags_host)
        cudaFreeHost(cc->flags_host);
    free(cc);
}

static bp_status cuda_init(bp_context *ctx, const bp_context_options *o) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    cudaGetLastError(); /* reported below, not by a later call */
    if (err != cudaSuccess || count == 0)
        return bp_cuda__host->fail(BP_ERR_UNSUPPORTED, "no CUDA device: %s",
                                   err != cudaSuccess ? cudaGetErrorString(err)
                                                      : "the driver reports 0 devices");
    if (o->device >= count)
        return bp_cuda__host->fail(BP_ERR_UNSUPPORTED,
                                   "no CUDA device %d: this machine has %d (0..%d)", o->device,
                                   count, count - 1);
    bp_cuda_context *cc = calloc(1, sizeof *cc);
    if (!cc)
        return bp_cuda__host->fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate the CUDA context");
    cc->device = o->device;
    bp_status st = resolve_kernel(o->gpu_kernel, &cc->kernel);
    int prev = 0, pools = 0;
    if (!st)
        st = bp_cuda__enter(cc, &prev);
    if (st) {
        free(cc);
        return st;
    }
    st = bp_cuda__check(
        cudaDeviceGetAttribute(&cc->cc_major, cudaDevAttrComputeCapabilityMajor, cc->device),
        "cudaDeviceGetAttribute");
    if (!st)
        st = bp_cuda__check(
            cudaDeviceGetAttribute(&cc->cc_minor, cudaDevAttrComputeCapabilityMinor, cc->device),
            "cudaDeviceGetAttribute");
    if (!st)
        st = bp_cuda__check(
            cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, cc->device),
            "cudaDeviceGetAttribute");
    if (!st && cc->cc_major < 8)
        st = bp_cuda__host->fail(
            BP_ERR_UNSUPPORTED,
            "CUDA device %d has compute capability %d.%d; the CUDA backend needs 8.0 or newer "
            "(1-bit tensor-core MMA; the library is built for sm_80 and up)",
            cc->device, cc->cc_major, cc->cc_minor);
    if (!st && !pools)
        st = bp_cuda__host->fail(BP_ERR_UNSUPPORTED,
                                 "CUDA device %d has no stream-ordered memory pools, which the "
                                 "backend needs for scratch without host synchronisation",
                                 cc->device);
    if (!st)
        st = bp_cuda__check(cudaStreamCreateWithFlags(&cc->stream, cudaStreamNonBlocking),
                            "cudaStreamCreateWithFlags");
    if (!st) {
        struct cudaMemPoolProps props;
        memset(&props, 0, sizeof props);
        props.allocType = cudaMemAllocationTypePinned;
        props.location.type = cudaMemLocationTypeDevice;
        props.location.id = cc->device;
        st = bp_cuda__check(cudaMemPoolCreate(&cc->pool, &props), "cudaMemPoolCreate");
    }
    if (!st) {
        /* Keep freed scratch in the pool: later calls then allocate without
         * going back to the driver. */
        uint64_t keep = UINT64_MAX;
        st = bp_cuda__check(
            cudaMemPoolSetAttribute(cc->pool, cudaMemPoolAttrReleaseThreshold, &keep),
            "cudaMemPoolSetAttribute");
    }
    if (!st)
        st = bp_cuda__check(cudaHostAlloc((void **)&cc->flags_host,
                                          BP_CUDA_NFLAGS * sizeof(unsigned), cudaHostAllocMapped),
                            "cudaHostAlloc (report flags)");
    if (!st) {
        memset(cc->flags_host, 0, BP_CUDA_NFLAGS * sizeof(unsigned));
        st = bp_cuda__check(cudaHostGetDevicePointer((void **)&cc->flags_dev, cc->flags_host, 0),
                            "cudaHostGetDevicePointer");
    }
    bp_cuda__leave(prev);
    if (st) {
        destroy_state(cc);
        return st;
    }
    ctx->backend_data = cc;
    return BP_OK;
}

static void cuda_fini(bp_context *ctx) {
    bp_cuda_context *cc = ctx->backend_data;
    if (!cc)
        return;
    int prev = 0;
    if (bp_cuda__enter(cc, &prev) == BP_OK) {
        cudaStreamSynchronize(cc->stream);
        destroy_state(cc);
        bp_cuda__leave(prev);
    }
    ctx->backend_data = NULL;
}

int bp_cuda__path(const bp_cuda_context *cc, int act_bits, size_t batch) {
    if (cc->kernel == BP_GPU_KERNEL_MMA)
        return BP_CUDA_PATH_MMA;
    if (cc->kernel == BP_GPU_KERNEL_POPCOUNT)
        return BP_CUDA_PATH_POPCOUNT;
    /* Provisional (not yet measured): per weight word the popcount path
     * issues batch * A popcounts; at 16 popcounts per clock per SM that keeps
     * pace with HBM only up to about 4, beyond which the tensor cores win. */
    size_t A = act_bits == 1 ? 2 : (size_t)act_bits;
    size_t cols = batch < BP_CUDA_CHUNK ? batch : BP_CUDA_CHUNK;
    return cols * A <= 4 ? BP_CUDA_PATH_POPCOUNT : BP_CUDA_PATH_MMA;
}

/* bp_gemm with host pointers: copy in, run, copy out, wait. Validation has
 * been done by the core (including finiteness of x and bias). */
static bp_status cuda_gemm(bp_context *ctx, const bp_gemm_args *a) {
    bp_cuda_context *cc = ctx->backend_data;
    const bp_matrix *m = a->m;
    int prev = 0;
    bp_status st = bp_cuda__enter(cc, &prev);
    if (st)
        return st;
    /* Columns per round trip: bounded so x and y scratch stay modest. */
    size_t per_col = (m->cols + m->rows) * sizeof(float);
    size_t chunk = ((size_t)256 << 20) / per_col;
    chunk = chunk < 1 ? 1 : (chunk > a->batch ? a->batch : chunk);
    float *dx = NULL, *dy = NULL, *dbias = NULL;
    cudaStream_t s = cc->stream;
    st = bp_cuda__check(
        cudaMallocFromPoolAsync((void **)&dx, chunk * m->cols * sizeof(float), cc->pool, s),
        "cudaMallocFromPoolAsync (x)");
    if (!st)
        st = bp_cuda__check(
            cudaMallocFromPoolAsync((void **)&dy, chunk * m->rows * sizeof(float), cc->pool, s),
            "cudaMallocFromPoolAsync (y)");
    if (!st && a->bias) {
        st = bp_cuda__check(
            cudaMallocFromPoolAsync((void **)&dbias, m->rows * sizeof(float), cc->pool, s),
            "cudaMallocFromPoolAsync (bias)");
        if (!st)
            st = bp_cuda__check(
                cudaMemcpyAsync(dbias, a->bias, m->rows * sizeof(float), cudaMemcpyHostToDevice, s),
                "cudaMemcpyAsync (bias)");
    }
    for (size_t c0 = 0; !st && c0 < a->batch; c0 += chunk) {
        size_t nc = a->batch - c0 < chunk ? a->batch - c0 : chunk;
        st = bp_cuda__check(cudaMemcpy2DAsync(dx, m->cols * sizeof(float), a->x + c0 * a->ldx,
                                              a->ldx * sizeof(float), m->cols * sizeof(float), nc,
                                              cudaMemcpyHostToDevice, s),
                            "cudaMemcpy2DAsync (x)");
        bp_cuda_call call = {
            .m = m,
            .x = dx,
            .x_type = BP_CUDA_F32,
            .batch = nc,
            .ldx = m->cols,
            .y = dy,
            .y_type = BP_CUDA_F32,
            .ldy = m->rows,
            .planes = a->planes,
            .act_bits = a->act_bits,
            .bias = dbias,
            .column_planes = a->column_planes ? a->column_planes + c0 : NULL,
            .act_scale = a->act_scale,
        };
        if (!st)
            st = bp_cuda__run(cc, &call, s);
        /* Copied straight into the caller's y. With more than one chunk, a
         * device fault in a later chunk leaves earlier columns written. */
        if (!st)
            st = bp_cuda__check(cudaMemcpy2DAsync(a->y + c0 * a->ldy, a->ldy * sizeof(float), dy,
                                                  m->rows * sizeof(float), m->rows * sizeof(float),
                                                  nc, cudaMemcpyDeviceToHost, s),
                                "cudaMemcpy2DAsync (y)");
    }
    if (dx)
        cudaFreeAsync(dx, s);
    if (dy)
        cudaFreeAsync(dy, s);
    if (dbias)
        cudaFreeAsync(dbias, s);
    bp_status sync = bp_cuda__check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    /* x and bias were checked, so a raised flag means a result overflowed
     * the float range; y holds the results, Inf where they overflowed. */
    if (!st && !sync && __atomic_exchange_n(&cc->flags_host[BP_CUDA_FLAG_Y], 0u, __ATOMIC_SEQ_CST))
        sync = bp_cuda__host->fail(BP_ERR_NON_FINITE,
                                   "a result overflowed the float range: the matrix's weights "
                                   "times this input exceed FLT_MAX (y holds the results, Inf "
                                   "where they overflowed)");
    bp_cuda__leave(prev);
    return st ? st : sync;
}

const bp_backend_ops bp_cuda__ops = {
    .name = "cuda",
    .init = cuda_init,
    .fini = cuda_fini,
    .gemm = cuda_gemm,
};

BP_API const bp_backend_ops *bp_plugin_cuda_entry(const bp_plugin_host *host);
const bp_backend_ops *bp_plugin_cuda_entry(const bp_plugin_host *host) {
    if (!bp__plugin_host_matches(host, "libbitplane_cuda"))
        return NULL;
    bp_cuda__host = host;
    return &bp_cuda__ops;
}
