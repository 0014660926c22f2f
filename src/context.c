/* Context lifetime and the backend table. */
#include "bp_error.h"
#include "bp_options.h"
#include "bp_backend.h"

#include <stdlib.h>
#include <unistd.h>

#define BP_MAX_THREADS 1024

static int online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > BP_MAX_THREADS ? BP_MAX_THREADS : (int)n);
}

/* The backend table: the CPU is built in, accelerators are plugins. */
static const bp_backend_ops *backend_ops(bp_backend backend, bp_status *st) {
    *st = BP_OK;
    switch (backend) {
    case BP_BACKEND_AUTO:
    case BP_BACKEND_CPU:
        return &bp__cpu_backend;
    case BP_BACKEND_CUDA:
        return bp__plugin_load("cuda", st);
    case BP_BACKEND_OPENCL:
        return bp__plugin_load("opencl", st);
    }
    *st = bp__fail(BP_ERR_INVALID_ARGUMENT, "unknown backend %d", (int)backend);
    return NULL;
}

bp_status bp_context_create(const bp_context_options *options, bp_context **out) {
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_context_create: out must not be NULL");
    *out = NULL;
    bp_context_options opt;
    bp_status st = bp__copy_options(&opt, sizeof opt, options, "bp_context_options");
    if (st != BP_OK)
        return st;
    if (opt.threads < 0 || opt.threads > BP_MAX_THREADS)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "threads must be 0 (all cores) or 1..%d, got %d",
                        BP_MAX_THREADS, opt.threads);
    if (opt.device < 0 || opt.platform < 0)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "%s must be >= 0, got %d",
                        opt.device < 0 ? "device" : "platform",
                        opt.device < 0 ? opt.device : opt.platform);
    if ((unsigned)opt.gpu_kernel > BP_GPU_KERNEL_MMA)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "unknown gpu_kernel %d", (int)opt.gpu_kernel);
    const bp_backend_ops *ops = backend_ops(opt.backend, &st);
    if (!ops)
        return st;

    bp_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate a context");
    ctx->backend = opt.backend == BP_BACKEND_AUTO ? BP_BACKEND_CPU : opt.backend;
    ctx->ops = ops;
    ctx->threads = opt.threads ? opt.threads : online_cores();
    st = ops->init(ctx, &opt);
    if (st == BP_OK)
        st = bp__pool_create(ctx->threads, &ctx->pool);
    if (st != BP_OK) {
        bp_context_destroy(ctx);
        return st;
    }
    *out = ctx;
    return BP_OK;
}

void bp_context_destroy(bp_context *ctx) {
    if (!ctx)
        return;
    if (ctx->ops && ctx->ops->fini)
        ctx->ops->fini(ctx);
    bp__pool_destroy(ctx->pool);
    free(ctx);
}

int bp_context_threads(const bp_context *ctx) {
    return ctx ? ctx->threads : 0;
}

bp_backend bp_context_backend(const bp_context *ctx) {
    return ctx ? ctx->backend : BP_BACKEND_AUTO;
}

void bp__parallel_for(bp_context *ctx, size_t ntasks, bp_task_fn fn, void *arg) {
    if (ctx && ctx->pool) {
        bp__pool_run(ctx->pool, ntasks, fn, arg);
        return;
    }
    for (size_t t = 0; t < ntasks; t++)
        fn(arg, t, 0);
}
