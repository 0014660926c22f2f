/*
 * Host side of the CUDA backend (plain C over the CUDA runtime API): context
 * state, device copies of matrices, and the call sequence shared by bp_gemm
 * (host pointers) and bp_cuda_gemm (device pointers).
 */
#ifndef BP_CUDA_HOST_H
#define BP_CUDA_HOST_H

#include "bitplane_cuda.h"
#include "bp_abi.h"
#include "cuda_internal.h"

#include <cuda_runtime_api.h>

/* Set by the entry point; every error goes through host->fail. */
extern const bp_plugin_host *bp_cuda__host;
extern const bp_backend_ops bp_cuda__ops;

typedef struct bp_cuda_context {
    int device;
    int cc_major, cc_minor;
    bp_gpu_kernel kernel; /* AUTO, or forced by option / BP_GPU_KERNEL */
    cudaStream_t stream;  /* bp_gemm's own stream */
    cudaMemPool_t pool;   /* per-call scratch, stream-ordered */
    /* Deferred reports: mapped pinned host words the kernels store 1 into. */
    unsigned *flags_host;
    unsigned *flags_dev;
} bp_cuda_context;

/* A matrix uploaded to one device: re-tiled slabs (cuda_layout.h), plane
 * after plane, and the coefficient table as on the host. */
typedef struct bp_cuda_matrix {
    int device;
    uint32_t *planes;
    size_t plane_words; /* bp_cuda__plane_words: one full slab */
    size_t kwords;      /* bp_cuda_kwords(m->kwords): K padded to 512 bits */
    size_t wgroups;     /* multiplier groups per row over kwords */
    float *coef;
    uint8_t *mult;       /* group multipliers, host tiling with wgroups groups */
    uint32_t *rot_signs; /* rotation signs, or NULL */
    /* Per-row plane counts (NULL without): count and caller row of each
     * stored row, and where each compact slab starts (cuda_layout.h). */
    uint8_t *row_planes;
    uint32_t *perm;
    size_t slab_offset[BP_CUDA_MAX_PLANES];
} bp_cuda_matrix;

/* Report a CUDA error as BP_ERR_BACKEND (BP_ERR_OUT_OF_MEMORY for
 * allocation failures) naming the step; BP_OK for cudaSuccess. */
bp_status bp_cuda__check(cudaError_t err, const char *what);

/* Make ctx's device current; *prev receives the caller's device. */
bp_status bp_cuda__enter(const bp_cuda_context *cc, int *prev);
void bp_cuda__leave(int prev);

/* The device copy of m for cc's device, uploading it on first use. */
bp_status bp_cuda__matrix(bp_cuda_context *cc, const bp_matrix *m, const bp_cuda_matrix **out);

/* The device copy's shape: words per slab (K padded to 512 bits) and
 * multiplier groups per row. Pure C: cuda_retile.c, also used by the layout
 * test, like the two functions below. */
size_t bp_cuda__plane_words(const bp_matrix *m);
size_t bp_cuda__wgroups(const bp_matrix *m);
/* Words of device slab p (the row groups the host slab holds: all of them
 * without per-row counts), and every slab's offset into offset[0..bits-1],
 * slab after slab; returns the words of all slabs. */
size_t bp_cuda__slab_words(const bp_matrix *m, int p);
size_t bp_cuda__slab_offsets(const bp_matrix *m, size_t *offset);
/* Plane p of m (host slabs) in the device order of cuda_layout.h, into out
 * (bp_cuda__slab_words(m, p) words), zero past the host's K padding. */
void bp_cuda__retile_plane(const bp_matrix *m, int p, uint32_t *out);
/* m's multipliers with bp_cuda__wgroups(m) groups per row (row_groups * 16 *
 * wgroups bytes), 1 in the groups past the host's. */
void bp_cuda__retile_mult(const bp_matrix *m, uint8_t *out);

/* Which inner path a call with act_bits and batch takes. */
int bp_cuda__path(const bp_cuda_context *cc, int act_bits, size_t batch);

/* A validated call in device pointers; column planes resolved lazily. */
typedef struct bp_cuda_call {
    const bp_matrix *m;
    const void *x;
    int x_type;
    size_t batch, ldx;
    void *y;
    int y_type;
    size_t ldy;
    int planes, act_bits;
    const float *bias;        /* device */
    const int *column_planes; /* host, or NULL */
    float act_scale;
} bp_cuda_call;

/* Enqueue the whole call on stream (no host synchronisation). */
bp_status bp_cuda__run(bp_cuda_context *cc, const bp_cuda_call *call, cudaStream_t stream);

#endif /* BP_CUDA_HOST_H */
