/*
 * Internal definitions of the OpenCL backend (libbitplane_opencl). Host code
 * follows CLBlast's habits: every OpenCL call is checked and turned into a
 * bp_status with the call's name and the error's name.
 */
#ifndef BP_OCL_INTERNAL_H
#define BP_OCL_INTERNAL_H

#include "bitplane_opencl.h"
#include "bp_abi.h"

#include <pthread.h>

/* Mirrors of opencl/kernels/common.cl. */
#define BP_OCL_CI_STRIDE         (2 + BP_MAX_ACT_BITS)
#define BP_OCL_ST_X_NONFINITE    1
#define BP_OCL_ST_BIAS_NONFINITE 2
#define BP_OCL_ST_Y_OVERFLOW     4
#define BP_OCL_QUANTIZE_GROUP    64 /* BP_QWG: work-items per column in quantize.cl */
#define BP_OCL_GEMM_GROUP        64 /* rows per work-group in the GEMM */
/* Bound on per-call activation scratch; larger batches run in chunks. */
#define BP_OCL_SCRATCH_BYTES ((size_t)64 << 20)

extern const bp_plugin_host *bp__ocl_host;
extern const bp_backend_ops bp__ocl_ops;

/* A built program and its kernels for one (device, options). */
typedef struct bp_ocl_program {
    struct bp_ocl_program *next;
    cl_device_id device;
    char *options;
    cl_program program;
    cl_kernel quantize;
    cl_kernel rotate;
    cl_kernel gemm[BP_MAX_ACT_BITS]; /* index act_bits - 1 */
} bp_ocl_program;

/* The backend state of one bp_context (ctx->backend_data). */
typedef struct bp_ocl_ctx {
    pthread_mutex_t lock; /* serialises every use of the fields below */
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue; /* in order, profiling on */
    char device_name[256];
    char options[256]; /* build options chosen for the device */
    size_t max_alloc;  /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    bp_ocl_program *programs;
    unsigned long programs_built, matrix_uploads;
    /* Deferred reports of bp_opencl_gemm (docs/design.md, section 3): a status word the
     * kernels OR bits into, the events of calls not yet known to be
     * complete, and the first device fault seen. */
    cl_mem status;
    cl_event *pending;
    size_t npending, pending_cap;
    bp_status fault;
    char fault_msg[512];
} bp_ocl_ctx;

/* A device copy of a matrix (kept in the matrix's cache, keyed by cl_context). */
typedef struct bp_ocl_matrix {
    cl_mem planes; /* all bits slabs, CPU layout */
    cl_mem coef;   /* c[n][row][p], every prefix */
    cl_mem mult;   /* group multipliers, CPU tiling (bp_abi.h) */
    cl_mem signs;  /* rotation signs (kwords words), or NULL */
    /* Per-row plane counts (docs/row-planes.md): rowinfo[2 r] = perm[r],
     * rowinfo[2 r + 1] = row_planes[r] per stored row; NULL without. The
     * planes are then the full-size slabs, missing row groups zero. */
    cl_mem rowinfo;
} bp_ocl_matrix;

/* Error helpers. */
const char *bp__ocl_error_name(cl_int err);
bp_status bp__ocl_fail(cl_int err, const char *what);

/* Platform and device choice (options, then BP_OPENCL_DEVICE). */
bp_status bp__ocl_select_device(const bp_context_options *opt, cl_platform_id *platform,
                                cl_device_id *device);
/* Build options for the device, or BP_ERR_UNSUPPORTED when it cannot run
 * the exact rule (no correctly rounded division and no fp64, no 64-bit
 * integers). */
bp_status bp__ocl_device_options(cl_device_id device, char *options, size_t cap, char *name,
                                 size_t name_cap, size_t *max_alloc);

/* The context's program for its device, built on first use. Lock held. */
bp_status bp__ocl_program_get(bp_ocl_ctx *c, const bp_ocl_program **out);
void bp__ocl_programs_free(bp_ocl_ctx *c);

/* The device copy of m for this context, uploaded on first use. */
bp_status bp__ocl_matrix_get(bp_ocl_ctx *c, const bp_matrix *m, bp_ocl_matrix **out);

/* One GEMM on device buffers, validated by the caller. */
typedef struct bp_ocl_call {
    const bp_matrix *m;
    cl_mem x;
    size_t x_off, ldx, batch;
    cl_mem y;
    size_t y_off, ldy;
    cl_mem bias; /* or NULL */
    size_t bias_off;
    cl_mem column_planes; /* batch ints, or NULL */
    int planes, act_bits;
    float act_scale;
} bp_ocl_call;

/* Enqueue quantize + GEMM on queue after the wait list; *done (never NULL)
 * receives an event that completes when y is written. Lock held. */
bp_status bp__ocl_enqueue(bp_ocl_ctx *c, const bp_ocl_call *call, cl_command_queue queue,
                          cl_uint nwait, const cl_event *wait, cl_event *done);

/* Remember a native call's event until it is known to be complete. Lock held. */
bp_status bp__ocl_track(bp_ocl_ctx *c, cl_event ev);
/* Wait for every tracked call and report (then clear) any deferred fault or
 * non-finite report. Lock held. */
bp_status bp__ocl_collect(bp_ocl_ctx *c);

/* bp_gemm with host pointers (ops->gemm). */
bp_status bp__ocl_host_gemm(bp_context *ctx, const bp_gemm_args *a);

#endif
