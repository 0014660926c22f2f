/*
 * bp_gemm with host pointers on an OpenCL context: copy x (and bias, column
 * plane counts) to the device, run the same kernels as bp_opencl_gemm, and
 * read y back into the caller's layout (the ldy gaps are never written).
 * Synchronous, so it also reports any deferred error of earlier native calls
 * on this context first, before doing any work.
 */
#include "ocl_internal.h"

#include <stdlib.h>

static cl_mem upload(bp_ocl_ctx *c, const void *src, size_t bytes, cl_int *err) {
    /* COPY_HOST_PTR copies during the call, with no queue involved. */
    return clCreateBuffer(c->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, (void *)src,
                          err);
}

static bp_status run(bp_ocl_ctx *c, const bp_gemm_args *a) {
    bp_status st = bp__ocl_collect(c);
    if (st != BP_OK)
        return st;
    const bp_matrix *m = a->m;
    size_t xbytes = ((a->batch - 1) * a->ldx + m->cols) * sizeof(float);
    size_t ybytes = a->batch * m->rows * sizeof(float);
    cl_int err = CL_SUCCESS;
    bp_ocl_call call = {
        .m = m,
        .x_off = 0,
        .ldx = a->ldx,
        .batch = a->batch,
        .y_off = 0,
        .ldy = m->rows,
        .planes = a->planes,
        .act_bits = a->act_bits,
        .act_scale = a->act_scale,
    };
    call.x = upload(c, a->x, xbytes, &err);
    if (call.x)
        call.y = clCreateBuffer(c->context, CL_MEM_WRITE_ONLY, ybytes, NULL, &err);
    if (call.y && a->bias)
        call.bias = upload(c, a->bias, m->rows * sizeof(float), &err);
    if (call.y && (!a->bias || call.bias) && a->column_planes)
        call.column_planes = upload(c, a->column_planes, a->batch * sizeof(int), &err);
    if (!call.x || !call.y || (a->bias && !call.bias) || (a->column_planes && !call.column_planes))
        st = bp__ocl_fail(err, "clCreateBuffer (gemm arguments)");

    cl_event done = NULL;
    if (st == BP_OK)
        st = bp__ocl_enqueue(c, &call, c->queue, 0, NULL, &done);
    cl_int flags = 0;
    if (st == BP_OK) {
        /* Into a scratch copy first: on any failure, y stays untouched. */
        float *tmp = malloc(ybytes);
        if (!tmp)
            st = bp__ocl_host->fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes", ybytes);
        if (st == BP_OK) {
            err = clEnqueueReadBuffer(c->queue, c->status, CL_FALSE, 0, sizeof flags, &flags, 1,
                                      &done, NULL);
            if (err == CL_SUCCESS)
                err = clEnqueueReadBuffer(c->queue, call.y, CL_TRUE, 0, ybytes, tmp, 0, NULL, NULL);
            if (err != CL_SUCCESS)
                st = bp__ocl_fail(err, "clEnqueueReadBuffer (y)");
        }
        if (st == BP_OK && flags)
            st = bp__ocl_collect(c); /* reports and clears; x was checked, so not expected */
        if (st == BP_OK)
            for (size_t b = 0; b < a->batch; b++)
                for (size_t r = 0; r < m->rows; r++)
                    a->y[b * a->ldy + r] = tmp[b * m->rows + r];
        free(tmp);
    }
    if (done)
        clReleaseEvent(done);
    if (st != BP_OK)
        clFinish(c->queue); /* nothing may still use the caller's memory */
    if (call.x)
        clReleaseMemObject(call.x);
    if (call.y)
        clReleaseMemObject(call.y);
    if (call.bias)
        clReleaseMemObject(call.bias);
    if (call.column_planes)
        clReleaseMemObject(call.column_planes);
    return st;
}

bp_status bp__ocl_host_gemm(bp_context *ctx, const bp_gemm_args *a) {
    bp_ocl_ctx *c = ctx->backend_data;
    pthread_mutex_lock(&c->lock);
    bp_status st = run(c, a);
    pthread_mutex_unlock(&c->lock);
    return st;
}
