/*
 * Internal interface of the CUDA backend: the host code (C, compiled by the
 * C compiler) and the kernels (cuda_kernels.cu) meet here.
 */
#ifndef BP_CUDA_INTERNAL_H
#define BP_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Columns per launch pair (quantize + gemm); their plane counts travel in
 * the launch parameters. */
#define BP_CUDA_CHUNK 256
/* Plane-columns per group: the MMA path covers 4 n-tiles per weight fragment,
 * the popcount path keeps 2 x 16 counters per lane. */
#define BP_CUDA_MMA_COLPLANES  32
#define BP_CUDA_POPC_COLPLANES 16
/* Warps per gemm block; they split K and add their counts in shared memory. */
#define BP_CUDA_WARPS          4
#define BP_CUDA_MAX_ACT_PLANES 16
/* Weight planes a matrix may have (BP_MAX_BITS, checked in cuda_run.c). */
#define BP_CUDA_MAX_PLANES 16

enum { BP_CUDA_PATH_POPCOUNT = 1, BP_CUDA_PATH_MMA = 2 };
enum { BP_CUDA_F32 = 0, BP_CUDA_F16 = 1, BP_CUDA_BF16 = 2 };
/* Deferred reports, one mapped host word each (plain stores, no atomics). */
enum { BP_CUDA_FLAG_X = 0, BP_CUDA_FLAG_BIAS = 1, BP_CUDA_FLAG_Y = 2, BP_CUDA_NFLAGS = 3 };

/* What the quantize kernel records about one column. */
typedef struct bp_cuda_col {
    float scale;   /* s_x */
    int planes;    /* weight planes n */
    int zero;      /* output is the bias alone */
    int is_signed; /* plane a-1 weighs -2^(a-1) */
    int32_t pop[BP_CUDA_MAX_ACT_PLANES];
} bp_cuda_col;

/* Everything one launch pair needs; passed by value to both kernels. */
typedef struct bp_cuda_launch {
    const void *x; /* first column of the chunk */
    size_t ldx;
    void *y;
    size_t ldy;
    int x_type, y_type;
    const float *bias; /* device, or NULL */
    const uint32_t *planes;
    size_t plane_words; /* words per slab */
    const float *coef;  /* c[n][row][p] as on the host */
    /* Group multipliers (docs/numerics.md): host tiling
     * mult[((row / 16) * wgroups + g) * 16 + row % 16]; word w is in group
     * w / group_words. grouped 0: every multiplier is 1. */
    const uint8_t *mult;
    size_t group_words, wgroups;
    int grouped, uniform;
    /* Rotation of K (docs/numerics.md): block 0 = none; signs read for j < cols. */
    int rot_block;
    const uint32_t *rot_signs;
    float *xrot; /* scratch, ncols * cols: the rotated inputs */
    size_t rows, cols, kwords, row_groups;
    int act_bits; /* 1..16 */
    int A;        /* act planes per column: act_bits, or 2 for binary (sign, !sign) */
    float act_scale;
    int path;
    int ncols, cpg, jg, ntiles, ngroups;
    uint32_t *act;        /* scratch, B register order */
    bp_cuda_col *colinfo; /* scratch, ncols */
    int32_t *wq;          /* scratch, ncols * kwords: sum of q per 32-column word */
    unsigned *flags;      /* device view of the mapped report words */
    unsigned char col_planes[BP_CUDA_CHUNK];
    /* Per-row plane counts (docs/row-planes.md; NULL without): stored row
     * r uses min(row_planes[r], column planes) planes, and its output and
     * bias are at perm[r]; slab p starts at word slab_offset[p] and holds
     * the row groups that use plane p (cuda_layout.h). Last, so that the
     * fields above keep their places. */
    const unsigned char *row_planes;
    const uint32_t *perm;
    size_t slab_offset[BP_CUDA_MAX_PLANES];
} bp_cuda_launch;

/* Enqueue quantize + gemm for one chunk. Returns a cudaError_t as int. */
int bp_cuda__launch(const bp_cuda_launch *l, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* BP_CUDA_INTERNAL_H */
