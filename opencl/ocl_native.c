/*
 * The cl_mem entry points of bitplane_opencl.h. Every argument is checked
 * before anything is enqueued; the work itself never blocks the caller.
 */
#include "ocl_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Fail without a message when the backend was never loaded (no host table). */
#define FAIL(st, ...) (bp__ocl_host ? bp__ocl_host->fail((st), __VA_ARGS__) : (st))

static bp_ocl_ctx *ocl_ctx(const bp_context *ctx, const char *fn, bp_status *st) {
    if (!ctx) {
        *st = FAIL(BP_ERR_INVALID_ARGUMENT, "%s: ctx must not be NULL", fn);
        return NULL;
    }
    if (ctx->ops != &bp__ocl_ops || !ctx->backend_data) {
        *st = FAIL(BP_ERR_INVALID_ARGUMENT, "%s: ctx is not an OpenCL context", fn);
        return NULL;
    }
    *st = BP_OK;
    return ctx->backend_data;
}

bp_status bp_opencl_context_handles(const bp_context *ctx, cl_context *context,
                                    cl_device_id *device, cl_command_queue *queue) {
    bp_status st;
    bp_ocl_ctx *c = ocl_ctx(ctx, "bp_opencl_context_handles", &st);
    if (!c)
        return st;
    if (context)
        *context = c->context;
    if (device)
        *device = c->device;
    if (queue)
        *queue = c->queue;
    return BP_OK;
}

const char *bp_opencl_device_name(const bp_context *ctx) {
    bp_status st;
    bp_ocl_ctx *c = ocl_ctx(ctx, "bp_opencl_device_name", &st);
    return c ? c->device_name : NULL;
}

bp_status bp_opencl_matrix_prepare(bp_context *ctx, const bp_matrix *m) {
    bp_status st;
    bp_ocl_ctx *c = ocl_ctx(ctx, "bp_opencl_matrix_prepare", &st);
    if (!c)
        return st;
    if (!m)
        return FAIL(BP_ERR_INVALID_ARGUMENT, "bp_opencl_matrix_prepare: m must not be NULL");
    bp_ocl_matrix *dm;
    pthread_mutex_lock(&c->lock);
    st = bp__ocl_matrix_get(c, m, &dm);
    pthread_mutex_unlock(&c->lock);
    return st;
}

bp_status bp_opencl_status(bp_context *ctx) {
    bp_status st;
    bp_ocl_ctx *c = ocl_ctx(ctx, "bp_opencl_status", &st);
    if (!c)
        return st;
    pthread_mutex_lock(&c->lock);
    st = bp__ocl_collect(c);
    pthread_mutex_unlock(&c->lock);
    return st;
}

bp_status bp_opencl_context_stats(bp_context *ctx, bp_opencl_stats *stats) {
    bp_status st;
    bp_ocl_ctx *c = ocl_ctx(ctx, "bp_opencl_context_stats", &st);
    if (!c)
        return st;
    if (!stats || stats->size < sizeof *stats)
        return FAIL(BP_ERR_INVALID_ARGUMENT,
                    "bp_opencl_context_stats: stats must be a bp_opencl_stats with size set");
    pthread_mutex_lock(&c->lock);
    stats->programs_built = c->programs_built;
    stats->matrix_uploads = c->matrix_uploads;
    pthread_mutex_unlock(&c->lock);
    return BP_OK;
}

/* A buffer of ctx's context holding `need` bytes from byte offset `off`. */
static bp_status check_buffer(const bp_ocl_ctx *c, cl_mem mem, const char *name, size_t off_elems,
                              size_t span_bytes) {
    size_t size = 0;
    cl_context owner = NULL;
    if (clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof size, &size, NULL) != CL_SUCCESS ||
        clGetMemObjectInfo(mem, CL_MEM_CONTEXT, sizeof owner, &owner, NULL) != CL_SUCCESS)
        return FAIL(BP_ERR_INVALID_ARGUMENT, "bp_opencl_gemm: %s is not a valid cl_mem", name);
    if (owner != c->context)
        return FAIL(BP_ERR_INVALID_ARGUMENT,
                    "bp_opencl_gemm: %s belongs to another cl_context than ctx's "
                    "(bp_opencl_context_handles gives ctx's)",
                    name);
    size_t off_bytes, end;
    if (off_elems > SIZE_MAX / sizeof(float) ||
        __builtin_add_overflow(off_elems * sizeof(float), span_bytes, &end) || end > size) {
        off_bytes = off_elems <= SIZE_MAX / sizeof(float) ? off_elems * sizeof(float) : SIZE_MAX;
        return FAIL(BP_ERR_OUT_OF_RANGE,
                    "bp_opencl_gemm: %s needs %zu bytes from byte offset %zu, but the buffer "
                    "holds %zu",
                    name, span_bytes, off_bytes, size);
    }
    return BP_OK;
}

static bool ranges_overlap(cl_mem a, size_t a_off, size_t a_bytes, cl_mem b, size_t b_off,
                           size_t b_bytes) {
    size_t a0 = a_off * sizeof(float), b0 = b_off * sizeof(float);
    return a == b && a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}

static bp_status check_queue(const bp_ocl_ctx *c, cl_command_queue q) {
    cl_context qc = NULL;
    cl_device_id qd = NULL;
    if (clGetCommandQueueInfo(q, CL_QUEUE_CONTEXT, sizeof qc, &qc, NULL) != CL_SUCCESS ||
        clGetCommandQueueInfo(q, CL_QUEUE_DEVICE, sizeof qd, &qd, NULL) != CL_SUCCESS)
        return FAIL(BP_ERR_INVALID_ARGUMENT, "bp_opencl_gemm: queue is not a valid command queue");
    if (qc != c->context || qd != c->device)
        return FAIL(BP_ERR_INVALID_ARGUMENT,
                    "bp_opencl_gemm: queue must belong to ctx's cl_context and device");
    return BP_OK;
}

static bp_status check_args(const bp_ocl_ctx *c, const bp_matrix *m, cl_mem x, size_t x_off,
                            size_t batch, size_t ldx, cl_mem y, size_t y_off, size_t ldy,
                            cl_mem bias, size_t bias_off, cl_uint num_wait, const cl_event *wait,
                            size_t *xbytes, size_t *ybytes) {
    if (!m || !x || !y)
        return FAIL(BP_ERR_INVALID_ARGUMENT, "bp_opencl_gemm: %s must not be NULL",
                    !m   ? "m"
                    : !x ? "x"
                         : "y");
    if ((num_wait > 0) != (wait != NULL))
        return FAIL(BP_ERR_INVALID_ARGUMENT, "bp_opencl_gemm: num_wait (%u) and wait (%s) disagree",
                    (unsigned)num_wait, wait ? "non-NULL" : "NULL");
    bp_status st = bp__ocl_host->check_gemm_shape(m, batch, ldx, sizeof(float), ldy, sizeof(float),
                                                  xbytes, ybytes);
    if (st)
        return st;
    st = check_buffer(c, x, "x", x_off, *xbytes);
    if (st == BP_OK)
        st = check_buffer(c, y, "y", y_off, *ybytes);
    if (st == BP_OK && bias)
        st = check_buffer(c, bias, "bias", bias_off, m->rows * sizeof(float));
    if (st != BP_OK)
        return st;
    if (ranges_overlap(x, x_off, *xbytes, y, y_off, *ybytes))
        return FAIL(BP_ERR_INVALID_ARGUMENT, "x and y must not overlap");
    if (bias && ranges_overlap(bias, bias_off, m->rows * sizeof(float), y, y_off, *ybytes))
        return FAIL(BP_ERR_INVALID_ARGUMENT, "bias and y must not overlap");
    return BP_OK;
}

bp_status bp_opencl_gemm(bp_context *ctx, const bp_matrix *m, cl_mem x, size_t x_off, size_t batch,
                         size_t ldx, cl_mem y, size_t y_off, size_t ldy, cl_mem bias,
                         size_t bias_off, const bp_run_options *options, cl_command_queue queue,
                         cl_uint num_wait, const cl_event *wait, cl_event *done) {
    if (done)
        *done = NULL;
    bp_status st;
    bp_ocl_ctx *c = ocl_ctx(ctx, "bp_opencl_gemm", &st);
    if (!c)
        return st;
    size_t xbytes, ybytes;
    if ((st = check_args(c, m, x, x_off, batch, ldx, y, y_off, ldy, bias, bias_off, num_wait, wait,
                         &xbytes, &ybytes)))
        return st;
    bp_run_options o;
    if ((st = bp__ocl_host->resolve_run_options(m, batch, options, &o)))
        return st;
    if (o.bias)
        return FAIL(BP_ERR_INVALID_ARGUMENT,
                    "bp_opencl_gemm: options->bias must be NULL; pass the bias as a cl_mem");
    if (queue && (st = check_queue(c, queue)))
        return st;

    bp_ocl_call call = {
        .m = m,
        .x = x,
        .x_off = x_off,
        .ldx = ldx,
        .batch = batch,
        .y = y,
        .y_off = y_off,
        .ldy = ldy,
        .bias = bias,
        .bias_off = bias_off,
        .planes = o.planes,
        .act_bits = o.act_bits,
        .act_scale = o.act_scale,
    };
    pthread_mutex_lock(&c->lock);
    cl_int err = CL_SUCCESS;
    if (o.column_planes) {
        /* Copied now (COPY_HOST_PTR), so the caller's array is free on return. */
        call.column_planes = clCreateBuffer(c->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                            batch * sizeof(cl_int), (void *)o.column_planes, &err);
        if (!call.column_planes)
            st = bp__ocl_fail(err, "clCreateBuffer (column_planes)");
    }
    cl_event ev = NULL;
    if (st == BP_OK)
        st = bp__ocl_enqueue(c, &call, queue ? queue : c->queue, num_wait, wait, &ev);
    if (st == BP_OK)
        st = bp__ocl_track(c, ev);
    pthread_mutex_unlock(&c->lock);
    if (call.column_planes)
        clReleaseMemObject(call.column_planes);
    if (ev && st == BP_OK && done)
        *done = ev;
    else if (ev)
        clReleaseEvent(ev);
    return st;
}
