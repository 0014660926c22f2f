/*
 * Core-side backend plumbing: the CPU ops table, plugin loading and the
 * context's parallel loop.
 */
#ifndef BP_BACKEND_H
#define BP_BACKEND_H

#include "bp_abi.h"
#include "bp_pool.h"

extern const bp_backend_ops bp__cpu_backend;

/* Load plugin `name` ("cuda", "opencl") once per process and return its ops;
 * NULL with BP_ERR_UNSUPPORTED and a message naming every path tried. */
const bp_backend_ops *bp__plugin_load(const char *name, bp_status *status);

/* Run fn over ntasks on ctx's pool, or inline when ctx is NULL. */
void bp__parallel_for(bp_context *ctx, size_t ntasks, bp_task_fn fn, void *arg);

#endif /* BP_BACKEND_H */
