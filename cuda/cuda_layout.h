/*
 * Device data layouts of the CUDA backend, as index arithmetic shared by the
 * host upload code, the kernels and the host-side layout test.
 *
 * Both inner paths read the weights in the register order of the 1-bit
 * tensor-core instruction mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32
 * (PTX ISA, "Matrix fragments for mma.m16n8k256"): with lane = 4*gid + tig,
 *   A (16 rows x 256 bits): a[r] holds row gid + 8*(r & 1),
 *                           bits 32*tig + 128*(r >> 1) + [0, 32)
 *   B (256 bits x 8 cols):  b[h] holds column gid, bits 32*tig + 128*h + [0, 32)
 *   C/D (16 x 8 s32):       c[r] is row gid + 8*(r >> 1), column 2*tig + (r & 1)
 * A dot product over k only needs A and B to agree on which k a bit is, so
 * the bit order inside a word does not matter; rows and columns do.
 *
 * Weights: plane-major slabs (the plane-prefix property: n planes read the
 * first n slabs), each re-tiled per 16-row group g and 256-bit chunk kc into
 * 512 contiguous bytes, one uint4 per lane:
 *     word index ((g * KC + kc) * 32 + lane) * 4 + r
 * The host pads K to 64 bits only; the device copy pads it further, to
 * bp_cuda_kwords(host kwords) words (512 bits) with zero weight bits, so
 * that KC = kwords / 8 is always even. Padding words meet zero activation
 * words (the quantize kernel writes 0 past cols) and add nothing.
 *
 * Per-row plane counts (docs/row-planes.md): the device slabs stay as
 * compact as the host's. Slab p holds the host slab's row groups
 * 0 .. slab_groups[p] - 1, re-tiled as above, and starts at word
 * slab_offset[p] = sum of the words of slabs 0 .. p-1 (without counts every
 * slab holds every group and slab_offset[p] = p * plane_words). Rows are
 * stored by count, descending, so the first row of a group has the group's
 * largest count and row group g reads planes 0 .. bp_cuda_group_planes - 1,
 * all of which hold g.
 *
 * Activations: the act planes of the columns of one call form the N
 * dimension. Columns are grouped (cpg columns, jg = cpg * A plane-columns per
 * group, padded to ntiles tiles of 8); plane-column j of group grp is column
 * grp * cpg + j / A, act plane j % A. In B register order:
 *     word index (((grp * ntiles + j / 8) * KC + kc) * 32 + 4 * (j % 8) + tig) * 2 + h
 * holds act words 8 * kc + tig + 4 * h of that plane-column.
 */
#ifndef BP_CUDA_LAYOUT_H
#define BP_CUDA_LAYOUT_H

#include <stddef.h>

#if defined(__CUDACC__)
#define BP_CUDA_HD __host__ __device__ __forceinline__
#else
#define BP_CUDA_HD static inline
#endif

/* Words per row of the device copy: K padded to 512 bits (16 words). */
BP_CUDA_HD size_t bp_cuda_kwords(size_t host_kwords) {
    return (host_kwords + 15) / 16 * 16;
}
/* Word of the device weight slab holding register r of lane for (g, kc). */
BP_CUDA_HD size_t bp_cuda_a_index(size_t g, size_t KC, size_t kc, unsigned lane, unsigned r) {
    return ((g * KC + kc) * 32 + lane) * 4 + r;
}
/* Row within the group and 32-bit word within the 256-bit chunk of A[lane][r]. */
BP_CUDA_HD unsigned bp_cuda_a_row(unsigned lane, unsigned r) {
    return (lane >> 2) + 8 * (r & 1);
}
BP_CUDA_HD unsigned bp_cuda_a_word(unsigned lane, unsigned r) {
    return (lane & 3) + 4 * (r >> 1);
}
/* Planes row group g reads in a call whose columns use at most nmax
 * planes: the count of its first row (its largest, counts being stored in
 * descending order) capped at nmax. Every plane below it holds group g. */
BP_CUDA_HD int bp_cuda_group_planes(const unsigned char *row_planes, size_t g, int nmax) {
    const int first = row_planes[g * 16];
    return first < nmax ? first : nmax;
}
/* Word of the activation buffer for plane-column j of group grp, act word w. */
BP_CUDA_HD size_t bp_cuda_b_index(size_t grp, size_t ntiles, size_t KC, size_t j, size_t w) {
    size_t kc = w / 8, within = w % 8;
    return (((grp * ntiles + j / 8) * KC + kc) * 32 + 4 * (j % 8) + (within & 3)) * 2 + within / 4;
}
/* Row and column of accumulator register r of lane. */
BP_CUDA_HD unsigned bp_cuda_c_row(unsigned lane, unsigned r) {
    return (lane >> 2) + 8 * (r >> 1);
}
BP_CUDA_HD unsigned bp_cuda_c_col(unsigned lane, unsigned r) {
    return 2 * (lane & 3) + (r & 1);
}

#endif /* BP_CUDA_LAYOUT_H */
