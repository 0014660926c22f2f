/*
 * bitplane on OpenCL: entry points on cl_mem buffers and command queues.
 *
 * Link libbitplane_opencl (CMake: bitplane::bitplane_opencl) next to
 * libbitplane to use this header; bp_gemm with host pointers on an OpenCL
 * context needs only libbitplane, which loads the backend itself.
 *
 * Contexts: bp_context_create with backend BP_BACKEND_OPENCL picks a device
 * by bp_context_options.platform and .device (indices, default 0:0), which
 * the environment variable BP_OPENCL_DEVICE overrides:
 *   BP_OPENCL_DEVICE="P:D"    platform P, device D (decimal indices)
 *   BP_OPENCL_DEVICE="name"   the first device whose name contains `name`,
 *                             case-insensitively (e.g. "pthread", "A100")
 * A selection that names no device fails with BP_ERR_UNSUPPORTED and a
 * message listing the devices present. gpu_kernel MMA is unsupported here;
 * AUTO and POPCOUNT run the popcount kernels. Each context owns its own
 * cl_context and in-order command queue (profiling enabled).
 *
 * Kernels are built once per context, device and option set, on first use.
 * BP_OPENCL_BUILD_OPTIONS appends options to that build (diagnostics). A
 * build failure returns BP_ERR_BACKEND with the compiler log in the message.
 *
 * Numerics are those of bp_gemm: for act_bits >= 2, y is bit-identical to the
 * CPU backend. The device needs a correctly rounded float division
 * (CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) or fp64, and 64-bit integers.
 */
#ifndef BITPLANE_OPENCL_H
#define BITPLANE_OPENCL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include "bitplane.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The OpenCL objects of an OpenCL context, for allocating buffers and
 * ordering work around bitplane's. Any output pointer may be NULL. The
 * handles stay owned by ctx (do not release them) and live as long as it.
 * Fails with BP_ERR_INVALID_ARGUMENT when ctx is not an OpenCL context.
 */
BP_API bp_status bp_opencl_context_handles(const bp_context *ctx, cl_context *context,
                                           cl_device_id *device, cl_command_queue *queue);

/** The device's name (CL_DEVICE_NAME); static storage owned by ctx. NULL
 * and an error for a context that is not OpenCL. */
BP_API const char *bp_opencl_device_name(const bp_context *ctx);

/**
 * Upload m to ctx's device now rather than on its first use (which copies
 * it synchronously from host memory). The copy lives until m is destroyed
 * and keeps ctx's cl_context alive until then.
 */
BP_API bp_status bp_opencl_matrix_prepare(bp_context *ctx, const bp_matrix *m);

/**
 * Enqueue y = W_n x (+ bias) on device buffers without blocking.
 *  - x: column i is at element x_off + i*ldx (cols floats, ldx >= cols);
 *    y: column i at y_off + i*ldy (rows floats, ldy >= rows); bias: NULL or
 *    rows floats at bias_off. Offsets and leading dimensions count floats.
 *    Buffers must belong to ctx's cl_context; x and y must not overlap.
 *  - options: as for bp_gemm, except that options->bias must be NULL (pass
 *    the cl_mem instead). column_planes, when given, is copied before return.
 *  - queue: a queue of ctx's cl_context and device, or NULL for ctx's own.
 *    The work starts after the num_wait events in wait; *done, when done is
 *    not NULL, receives an event for its completion (the caller releases it).
 * Argument errors return at once and enqueue nothing. Device faults and
 * non-finite values in x or bias cannot be seen at enqueue time: a column
 * with NaN or Inf gives NaN outputs, and the report is deferred to the next
 * synchronising call on ctx (bp_opencl_status, or bp_gemm with host
 * pointers, which then returns it before doing any work). It is never lost.
 * The matrix is uploaded on first use unless bp_opencl_matrix_prepare ran.
 * Thread-safety: calls on one context serialise on its lock.
 */
BP_API bp_status bp_opencl_gemm(bp_context *ctx, const bp_matrix *m, cl_mem x, size_t x_off,
                                size_t batch, size_t ldx, cl_mem y, size_t y_off, size_t ldy,
                                cl_mem bias, size_t bias_off, const bp_run_options *options,
                                cl_command_queue queue, cl_uint num_wait, const cl_event *wait,
                                cl_event *done);

/**
 * Synchronise: wait for every bp_opencl_gemm enqueued on ctx, then report
 * and clear deferred errors: BP_ERR_NON_FINITE when an input held NaN or
 * Inf, BP_ERR_BACKEND for a device fault, else BP_OK.
 */
BP_API bp_status bp_opencl_status(bp_context *ctx);

/** Counters of an OpenCL context, for diagnostics and tests. */
typedef struct bp_opencl_stats {
    size_t size;                  /* sizeof(bp_opencl_stats) */
    unsigned long programs_built; /* program builds (one per device and option set) */
    unsigned long matrix_uploads; /* matrices copied to this context's device */
} bp_opencl_stats;

#define BP_OPENCL_STATS_INIT ((bp_opencl_stats){.size = sizeof(bp_opencl_stats)})

/** Fill *stats (whose size field must be set). */
BP_API bp_status bp_opencl_context_stats(bp_context *ctx, bp_opencl_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* BITPLANE_OPENCL_H */
