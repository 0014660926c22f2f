/*
 * The OpenCL backend's entry point, ops table and context lifetime.
 * libbitplane dlopens this library for BP_BACKEND_OPENCL (src/plugin.c), so
 * only users of that backend need libOpenCL at run time.
 */
#include "ocl_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const bp_plugin_host *bp__ocl_host;

BP_API const bp_backend_ops *bp_plugin_opencl_entry(const bp_plugin_host *host);

const char *bp__ocl_error_name(cl_int err) {
    switch (err) {
#define E(x)                                                                                       \
    case x:                                                                                        \
        return #x;
        E(CL_SUCCESS)
        E(CL_DEVICE_NOT_FOUND)
        E(CL_DEVICE_NOT_AVAILABLE)
        E(CL_COMPILER_NOT_AVAILABLE)
        E(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        E(CL_OUT_OF_RESOURCES)
        E(CL_OUT_OF_HOST_MEMORY)
        E(CL_PROFILING_INFO_NOT_AVAILABLE)
        E(CL_BUILD_PROGRAM_FAILURE)
        E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
        E(CL_INVALID_VALUE)
        E(CL_INVALID_DEVICE)
        E(CL_INVALID_CONTEXT)
        E(CL_INVALID_QUEUE_PROPERTIES)
        E(CL_INVALID_COMMAND_QUEUE)
        E(CL_INVALID_MEM_OBJECT)
        E(CL_INVALID_BUILD_OPTIONS)
        E(CL_INVALID_PROGRAM)
        E(CL_INVALID_PROGRAM_EXECUTABLE)
        E(CL_INVALID_KERNEL_NAME)
        E(CL_INVALID_KERNEL)
        E(CL_INVALID_ARG_INDEX)
        E(CL_INVALID_ARG_VALUE)
        E(CL_INVALID_ARG_SIZE)
        E(CL_INVALID_KERNEL_ARGS)
        E(CL_INVALID_WORK_DIMENSION)
        E(CL_INVALID_WORK_GROUP_SIZE)
        E(CL_INVALID_WORK_ITEM_SIZE)
        E(CL_INVALID_GLOBAL_OFFSET)
        E(CL_INVALID_EVENT_WAIT_LIST)
        E(CL_INVALID_EVENT)
        E(CL_INVALID_OPERATION)
        E(CL_INVALID_BUFFER_SIZE)
        E(CL_INVALID_GLOBAL_WORK_SIZE)
#undef E
    case -1001:
        return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "unknown OpenCL error";
}

bp_status bp__ocl_fail(cl_int err, const char *what) {
    bp_status st = (err == CL_OUT_OF_HOST_MEMORY || err == CL_MEM_OBJECT_ALLOCATION_FAILURE)
                       ? BP_ERR_OUT_OF_MEMORY
                       : BP_ERR_BACKEND;
    return bp__ocl_host->fail(st, "OpenCL: %s failed: %s (%d)", what, bp__ocl_error_name(err),
                              (int)err);
}

/* The gpu_kernel option, then BP_GPU_KERNEL: this backend has one path. */
static bp_status check_gpu_kernel(bp_gpu_kernel k) {
    const char *origin = "bp_context_options.gpu_kernel";
    if (k == BP_GPU_KERNEL_AUTO) {
        const char *env = getenv("BP_GPU_KERNEL");
        if (!env || !*env || strcasecmp(env, "auto") == 0 || strcasecmp(env, "popcount") == 0)
            return BP_OK;
        if (strcasecmp(env, "mma") != 0)
            return bp__ocl_host->fail(BP_ERR_INVALID_ARGUMENT,
                                      "BP_GPU_KERNEL='%.64s' is not one of auto, popcount, mma",
                                      env);
        k = BP_GPU_KERNEL_MMA;
        origin = "BP_GPU_KERNEL";
    }
    if (k == BP_GPU_KERNEL_MMA)
        return bp__ocl_host->fail(BP_ERR_UNSUPPORTED,
                                  "%s asks for the MMA path, which the OpenCL backend does not "
                                  "have (OpenCL exposes no 1-bit tensor-core MMA); use auto or "
                                  "popcount",
                                  origin);
    return BP_OK;
}

static void ocl_fini(bp_context *ctx) {
    bp_ocl_ctx *c = ctx->backend_data;
    if (!c)
        return;
    if (c->queue)
        clFinish(c->queue);
    for (size_t i = 0; i < c->npending; i++)
        clReleaseEvent(c->pending[i]);
    free(c->pending);
    bp__ocl_programs_free(c);
    if (c->status)
        clReleaseMemObject(c->status);
    if (c->queue)
        clReleaseCommandQueue(c->queue);
    if (c->context)
        clReleaseContext(c->context);
    pthread_mutex_destroy(&c->lock);
    free(c);
    ctx->backend_data = NULL;
}

static bp_status ocl_init(bp_context *ctx, const bp_context_options *opt) {
    bp_status st = check_gpu_kernel(opt->gpu_kernel);
    if (st != BP_OK)
        return st;
    bp_ocl_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return bp__ocl_host->fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate an OpenCL context");
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return bp__ocl_host->fail(BP_ERR_INTERNAL, "cannot initialise a mutex");
    }
    ctx->backend_data = c;
    st = bp__ocl_select_device(opt, &c->platform, &c->device);
    if (st == BP_OK)
        st = bp__ocl_device_options(c->device, c->options, sizeof c->options, c->device_name,
                                    sizeof c->device_name, &c->max_alloc);
    if (st != BP_OK)
        return st; /* bp_context_create calls fini */
    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)c->platform, 0};
    c->context = clCreateContext(props, 1, &c->device, NULL, NULL, &err);
    if (!c->context)
        return bp__ocl_fail(err, "clCreateContext");
    c->queue = clCreateCommandQueue(c->context, c->device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (!c->queue)
        return bp__ocl_fail(err, "clCreateCommandQueue");
    cl_int zero = 0;
    c->status = clCreateBuffer(c->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof zero,
                               &zero, &err);
    if (!c->status)
        return bp__ocl_fail(err, "clCreateBuffer (status word)");
    return BP_OK;
}

const bp_backend_ops bp__ocl_ops = {
    .name = "opencl",
    .init = ocl_init,
    .fini = ocl_fini,
    .gemm = bp__ocl_host_gemm,
};

const bp_backend_ops *bp_plugin_opencl_entry(const bp_plugin_host *host) {
    if (!bp__plugin_host_matches(host, "libbitplane_opencl"))
        return NULL;
    bp__ocl_host = host;
    return &bp__ocl_ops;
}
