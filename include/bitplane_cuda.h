/*
 * bitplane CUDA entry points: device pointers and streams.
 *
 * The CUDA backend lives in libbitplane_cuda.so.0 (CMake target
 * bitplane::bitplane_cuda). A context created with BP_BACKEND_CUDA already
 * runs bp_gemm() with host pointers; link libbitplane_cuda and include this
 * header to chain layers on the GPU without host round trips.
 *
 * Promises of every function below:
 *  - ctx must be a context created with BP_BACKEND_CUDA; it selects the
 *    device (bp_context_options.device). The calling thread's current device
 *    is restored before returning.
 *  - Argument errors return at once, with bp_last_error() set, and enqueue
 *    nothing.
 *  - bp_cuda_gemm makes no hidden host synchronisation: it only enqueues work
 *    on `stream` (scratch memory comes from a stream-ordered pool), except
 *    the first time a matrix is used on a device, when its planes are
 *    uploaded synchronously; bp_cuda_matrix_upload() does that ahead of time.
 *  - Device faults and non-finite inputs (NaN/Inf in x or bias) cannot be
 *    seen when the work is enqueued. They are recorded and reported, never
 *    lost, by the next bp_cuda_synchronize() or bp_cuda_status() on the
 *    context (which then forget them). The outputs of a column with
 *    non-finite input are unspecified but the call never faults.
 *  - The numerics are the library's exact rule: for act_bits >= 2, y is
 *    bit-identical to bp_gemm on any backend for the same float inputs.
 *    fp16/bf16 inputs are widened exactly to float first; fp16/bf16 outputs
 *    are the float result rounded to nearest even.
 *
 * Before bp_context_destroy() on a CUDA context, finish the work enqueued
 * through it (bp_cuda_synchronize() each stream used): its kernels write the
 * context's report words until they complete.
 *
 * Thread-safety: any number of threads may call these on one context with
 * their own streams; only bp_cuda_status/synchronize share the deferred
 * reports of the whole context.
 *
 * Inner paths (bp_context_options.gpu_kernel, env BP_GPU_KERNEL): POPCOUNT is
 * AND + __popc on CUDA cores; MMA is the 1-bit tensor-core instruction
 * mma.sync.m16n8k256 .b1 .and.popc. AUTO takes POPCOUNT while
 * batch * act planes <= 4 (popcount throughput then still keeps up with
 * memory) and MMA otherwise; this rule is provisional until measured.
 * Both give identical integers. The backend needs compute capability 8.0+.
 */
#ifndef BITPLANE_CUDA_H
#define BITPLANE_CUDA_H

#include "bitplane.h"

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef BP_DTYPE_DEFINED
#define BP_DTYPE_DEFINED
/* Element types of device-side inputs and outputs. */
typedef enum bp_dtype {
    BP_DTYPE_F32 = 0,
    BP_DTYPE_F16 = 1,  /* IEEE binary16 (__half) */
    BP_DTYPE_BF16 = 2, /* bfloat16 (__nv_bfloat16) */
} bp_dtype;
#endif

/**
 * y = W_n x (+ bias) on the device, enqueued on `stream` (0 = the legacy
 * default stream). x: `batch` columns of cols elements of x_type, column i at
 * element offset i*ldx; y: columns of rows elements of y_type at i*ldy. Both
 * are device pointers, aligned to their element size, and must not overlap.
 * options->bias, if set, is a device pointer to rows floats;
 * options->column_planes, if set, is a host array of batch ints read before
 * the call returns.
 */
BP_API bp_status bp_cuda_gemm(bp_context *ctx, const bp_matrix *m, const void *x, bp_dtype x_type,
                              size_t batch, size_t ldx, void *y, bp_dtype y_type, size_t ldy,
                              const bp_run_options *options, cudaStream_t stream);

/** Upload m to ctx's device now (synchronous) so later calls enqueue only. */
BP_API bp_status bp_cuda_matrix_upload(bp_context *ctx, const bp_matrix *m);

/**
 * Wait for `stream`, then report what the context has recorded: a device
 * fault (BP_ERR_BACKEND) or non-finite input (BP_ERR_NON_FINITE), and forget
 * the report. BP_OK when there is none.
 */
BP_API bp_status bp_cuda_synchronize(bp_context *ctx, cudaStream_t stream);

/**
 * Report, without waiting, what has been recorded so far (as
 * bp_cuda_synchronize, for work that has already finished).
 */
BP_API bp_status bp_cuda_status(bp_context *ctx);

/**
 * Name of the inner path ("popcount" or "mma") a call with these act_bits
 * (0 = 8) and batch uses on ctx. Static storage; NULL with the error set for
 * bad arguments.
 */
BP_API const char *bp_cuda_kernel_name(const bp_context *ctx, int act_bits, size_t batch);

#ifdef __cplusplus
}
#endif

#endif /* BITPLANE_CUDA_H */
