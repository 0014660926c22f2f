/*
 * The device-pointer API of bitplane_cuda.h. Every argument is checked here,
 * before anything is enqueued, with the same rules and messages as bp_gemm;
 * what only the device can see (NaN/Inf in x or bias, faults) is deferred to
 * bp_cuda_synchronize / bp_cuda_status through the context's report words.
 */
#include "cuda_host.h"

#include <math.h>
#include <string.h>

/* The context's CUDA state, or NULL after setting the error. */
static bp_cuda_context *cuda_state(const bp_context *ctx, const char *fn) {
    if (!bp_cuda__host) /* no CUDA context was ever created in this process */
        return NULL;
    if (!ctx) {
        bp_cuda__host->fail(BP_ERR_INVALID_ARGUMENT, "%s: ctx must not be NULL", fn);
        return NULL;
    }
    if (ctx->ops != &bp_cuda__ops || !ctx->backend_data) {
        bp_cuda__host->fail(BP_ERR_INVALID_ARGUMENT,
                            "%s: ctx is not a CUDA context (create it with BP_BACKEND_CUDA)", fn);
        return NULL;
    }
    return ctx->backend_data;
}

static bool dtype_ok(bp_dtype t) {
    return t == BP_DTYPE_F32 || t == BP_DTYPE_F16 || t == BP_DTYPE_BF16;
}

bp_status bp_cuda_gemm(bp_context *ctx, const bp_matrix *m, const void *x, bp_dtype x_type,
                       size_t batch, size_t ldx, void *y, bp_dtype y_type, size_t ldy,
                       const bp_run_options *options, cudaStream_t stream) {
    bp_cuda_context *cc = cuda_state(ctx, "bp_cuda_gemm");
    if (!cc)
        return BP_ERR_INVALID_ARGUMENT;
    const bp_plugin_host *h = bp_cuda__host;
    if (!m || !x || !y)
        return h->fail(BP_ERR_INVALID_ARGUMENT, "bp_cuda_gemm: %s must not be NULL",
                       !m   ? "m"
                       : !x ? "x"
                            : "y");
    if (!dtype_ok(x_type) || !dtype_ok(y_type))
        return h->fail(BP_ERR_INVALID_ARGUMENT, "bp_cuda_gemm: unknown %s type %d",
                       !dtype_ok(x_type) ? "x" : "y", (int)(!dtype_ok(x_type) ? x_type : y_type));
    const size_t xs = x_type == BP_DTYPE_F32 ? 4 : 2, ys = y_type == BP_DTYPE_F32 ? 4 : 2;
    size_t xbytes, ybytes;
    bp_status st = h->check_gemm_shape(m, batch, ldx, xs, ldy, ys, &xbytes, &ybytes);
    if (st)
        return st;
    uintptr_t x0 = (uintptr_t)x, y0 = (uintptr_t)y;
    /* A misaligned element load would be a device fault, which poisons the
     * whole CUDA context: refuse it here. */
    if (x0 % xs || y0 % ys)
        return h->fail(BP_ERR_INVALID_ARGUMENT,
                       "bp_cuda_gemm: %s must be aligned to its element size (%zu bytes)",
                       x0 % xs ? "x" : "y", x0 % xs ? xs : ys);
    if (x0 < y0 + ybytes && y0 < x0 + xbytes)
        return h->fail(BP_ERR_INVALID_ARGUMENT, "x and y must not overlap");
    bp_run_options opt;
    if ((st = h->resolve_run_options(m, batch, options, &opt)))
        return st;
    if (opt.bias) {
        uintptr_t b0 = (uintptr_t)opt.bias, bbytes = m->rows * sizeof(float);
        if (b0 % sizeof(float))
            return h->fail(BP_ERR_INVALID_ARGUMENT,
                           "bp_cuda_gemm: bias must be aligned to 4 bytes (float)");
        if (b0 < y0 + ybytes && y0 < b0 + bbytes)
            return h->fail(BP_ERR_INVALID_ARGUMENT, "bias and y must not overlap");
    }

    bp_cuda_call call = {
        .m = m,
        .x = x,
        .x_type = (int)x_type,
        .batch = batch,
        .ldx = ldx,
        .y = y,
        .y_type = (int)y_type,
        .ldy = ldy,
        .planes = opt.planes,
        .act_bits = opt.act_bits,
        .bias = opt.bias,
        .column_planes = opt.column_planes,
        .act_scale = opt.act_scale,
    };
    int prev = 0;
    if ((st = bp_cuda__enter(cc, &prev)))
        return st;
    st = bp_cuda__run(cc, &call, stream);
    bp_cuda__leave(prev);
    return st;
}

bp_status bp_cuda_matrix_upload(bp_context *ctx, const bp_matrix *m) {
    bp_cuda_context *cc = cuda_state(ctx, "bp_cuda_matrix_upload");
    if (!cc)
        return BP_ERR_INVALID_ARGUMENT;
    if (!m)
        return bp_cuda__host->fail(BP_ERR_INVALID_ARGUMENT,
                                   "bp_cuda_matrix_upload: m must not be NULL");
    int prev = 0;
    bp_status st = bp_cuda__enter(cc, &prev);
    if (st)
        return st;
    const bp_cuda_matrix *dm;
    st = bp_cuda__matrix(cc, m, &dm);
    bp_cuda__leave(prev);
    return st;
}

/* Take (and forget) the recorded reports. */
static bp_status take_reports(bp_cuda_context *cc) {
    /* A sticky device fault is returned by every runtime call from now on. */
    cudaError_t err = cudaPeekAtLastError();
    if (err != cudaSuccess) {
        cudaGetLastError();
        return bp_cuda__check(err, "an earlier asynchronous call on the device");
    }
    unsigned x = __atomic_exchange_n(&cc->flags_host[BP_CUDA_FLAG_X], 0u, __ATOMIC_SEQ_CST);
    unsigned b = __atomic_exchange_n(&cc->flags_host[BP_CUDA_FLAG_BIAS], 0u, __ATOMIC_SEQ_CST);
    unsigned y = __atomic_exchange_n(&cc->flags_host[BP_CUDA_FLAG_Y], 0u, __ATOMIC_SEQ_CST);
    if (y && !x && !b)
        return bp_cuda__host->fail(BP_ERR_NON_FINITE,
                                   "a bp_cuda_gemm call on this context since the last status "
                                   "query had a result that overflowed the float range: the "
                                   "matrix's weights times its input exceed FLT_MAX (those "
                                   "outputs are Inf)");
    if (x || b)
        return bp_cuda__host->fail(
            BP_ERR_NON_FINITE,
            "a bp_cuda_gemm call on this context since the last status query had a NaN or Inf in "
            "%s; the outputs of the affected columns are unspecified",
            x && b ? "x and bias"
            : x    ? "x"
                   : "bias");
    return BP_OK;
}

bp_status bp_cuda_synchronize(bp_context *ctx, cudaStream_t stream) {
    bp_cuda_context *cc = cuda_state(ctx, "bp_cuda_synchronize");
    if (!cc)
        return BP_ERR_INVALID_ARGUMENT;
    int prev = 0;
    bp_status st = bp_cuda__enter(cc, &prev);
    if (st)
        return st;
    st = bp_cuda__check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    bp_status rep = take_reports(cc);
    bp_cuda__leave(prev);
    return st ? st : rep;
}

bp_status bp_cuda_status(bp_context *ctx) {
    bp_cuda_context *cc = cuda_state(ctx, "bp_cuda_status");
    if (!cc)
        return BP_ERR_INVALID_ARGUMENT;
    int prev = 0;
    bp_status st = bp_cuda__enter(cc, &prev);
    if (st)
        return st;
    st = take_reports(cc);
    bp_cuda__leave(prev);
    return st;
}

const char *bp_cuda_kernel_name(const bp_context *ctx, int act_bits, size_t batch) {
    bp_cuda_context *cc = cuda_state(ctx, "bp_cuda_kernel_name");
    if (!cc)
        return NULL;
    if (act_bits < 0 || act_bits > BP_MAX_ACT_BITS || batch == 0) {
        bp_cuda__host->fail(BP_ERR_OUT_OF_RANGE,
                            "bp_cuda_kernel_name: act_bits must be 0..%d and batch > 0, got %d "
                            "and %zu",
                            BP_MAX_ACT_BITS, act_bits, batch);
        return NULL;
    }
    return bp_cuda__path(cc, act_bits ? act_bits : 8, batch) == BP_CUDA_PATH_MMA ? "mma"
                                                                                 : "popcount";
}
