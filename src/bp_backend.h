/*
 * Core-side backend plumbing: the CPU ops table, plugin loading and the
 * context's parallel loop.
 */
#ifndef BP_BACKEND_H
#define BP_BACKEND_H

#include "bp_abi.h"
#include "bp_pool.h"

extern const bp_backend_ops bp__cpu_backend;

/* The CPU backend's gemm with an activation applied in its combine
 * (bp_gemm_act); bp__cpu_backend.gemm is this with BP_ACTIVATION_NONE and
 * x checked. The argument struct is the plugin boundary's, so the
 * activation travels beside it. check_x: x has not been checked for NaN /
 * Inf; the backend fails as bp_gemm's check would (same message, y
 * untouched), in the quantizer's scan where it can. */
bp_status bp__cpu_gemm_act(bp_context *ctx, const bp_gemm_args *args, bp_activation activation,
                           bool check_x);

/* Load plugin `name` ("cuda", "opencl") once per process and return its ops;
 * NULL with BP_ERR_UNSUPPORTED and a message naming every path tried. */
const bp_backend_ops *bp__plugin_load(const char *name, bp_status *status);

/* Run fn over ntasks on ctx's pool, or inline when ctx is NULL. */
void bp__parallel_for(bp_context *ctx, size_t ntasks, bp_task_fn fn, void *arg);

#endif /* BP_BACKEND_H */
