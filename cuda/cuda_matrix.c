/*
 * Device copies of matrices: each plane slab is re-tiled into the MMA
 * register order of cuda_layout.h and uploaded after the previous one, so
 * the device copy keeps the plane-prefix property (n planes read the first
 * n slabs). With per-row plane counts the slabs stay compact, as on the
 * host (slab p holds only the row groups that use plane p), and the stored
 * rows' counts and caller rows go along. Made once per (matrix, device)
 * through the core's matrix cache and freed with the matrix.
 */
#include "cuda_host.h"
#include "cuda_layout.h"

#include <stdlib.h>

_Static_assert(BP_CUDA_MAX_PLANES == BP_MAX_BITS, "slab_offset holds one entry per plane");

static void free_device(bp_cuda_matrix *dm) {
    cudaFree(dm->planes);
    cudaFree(dm->coef);
    cudaFree(dm->mult);
    cudaFree(dm->rot_signs);
    cudaFree(dm->row_planes);
    cudaFree(dm->perm);
}

static void destroy_copy(void *data) {
    bp_cuda_matrix *dm = data;
    int prev = 0;
    /* Called when the matrix is destroyed, from any thread and with any
     * device current: switch to the copy's device for the frees. */
    if (cudaGetDevice(&prev) == cudaSuccess) {
        cudaSetDevice(dm->device);
        free_device(dm);
        cudaSetDevice(prev);
    }
    free(dm);
}

static bp_status make_copy(const bp_matrix *m, void *arg, void **data) {
    bp_cuda_context *cc = arg;
    const size_t plane_words = bp_cuda__plane_words(m), wgroups = bp_cuda__wgroups(m);
    const size_t mult_bytes = m->row_groups * BP_ROW_GROUP * wgroups;
    /* One staging buffer for a plane (a full one: a compact slab is never
     * larger), then for the multipliers (never more bytes than a plane: a
     * group is at least one word). */
    bp_cuda_matrix *dm = calloc(1, sizeof *dm);
    uint32_t *stage = malloc(plane_words * sizeof(uint32_t));
    if (!dm || !stage) {
        free(dm);
        free(stage);
        return bp_cuda__host->fail(BP_ERR_OUT_OF_MEMORY,
                                   "cannot allocate %zu bytes to stage a plane for upload",
                                   plane_words * sizeof(uint32_t));
    }
    dm->device = cc->device;
    dm->plane_words = plane_words;
    dm->kwords = bp_cuda_kwords(m->kwords);
    dm->wgroups = wgroups;
    const size_t slabs_words = bp_cuda__slab_offsets(m, dm->slab_offset);
    const size_t ncoef = m->rows * (size_t)m->bits * (size_t)(m->bits + 1) / 2;
    const bool counts = bp__has_row_planes(m);
    bp_status st = bp_cuda__check(cudaMalloc((void **)&dm->planes, slabs_words * sizeof(uint32_t)),
                                  "cudaMalloc (matrix planes)");
    if (!st)
        st = bp_cuda__check(cudaMalloc((void **)&dm->coef, ncoef * sizeof(float)),
                            "cudaMalloc (coefficients)");
    if (!st)
        st = bp_cuda__check(cudaMalloc((void **)&dm->mult, mult_bytes), "cudaMalloc (multipliers)");
    const size_t sign_bytes = m->kwords * sizeof(uint32_t);
    if (!st && m->rot_block)
        st = bp_cuda__check(cudaMalloc((void **)&dm->rot_signs, sign_bytes),
                            "cudaMalloc (rotation signs)");
    if (!st && counts)
        st = bp_cuda__check(cudaMalloc((void **)&dm->row_planes, m->rows),
                            "cudaMalloc (row plane counts)");
    if (!st && counts)
        st = bp_cuda__check(cudaMalloc((void **)&dm->perm, m->rows * sizeof(uint32_t)),
                            "cudaMalloc (row permutation)");
    /* A cudaMemcpy from pageable memory may return before its last DMA
     * lands, on the legacy default stream, which non-blocking streams (ours,
     * maybe the caller's) do not wait for. So copy on the context's stream
     * and wait for it after each plane: `stage` is then free to refill, and
     * the copy is complete before anyone can use it. */
    for (int p = 0; !st && p < m->bits; p++) {
        bp_cuda__retile_plane(m, p, stage);
        st = bp_cuda__check(cudaMemcpyAsync(dm->planes + dm->slab_offset[p], stage,
                                            bp_cuda__slab_words(m, p) * sizeof(uint32_t),
                                            cudaMemcpyHostToDevice, cc->stream),
                            "cudaMemcpyAsync (matrix planes)");
        if (!st)
            st = bp_cuda__check(cudaStreamSynchronize(cc->stream),
                                "cudaStreamSynchronize (matrix upload)");
    }
    if (!st)
        st = bp_cuda__check(cudaMemcpyAsync(dm->coef, m->coef, ncoef * sizeof(float),
                                            cudaMemcpyHostToDevice, cc->stream),
                            "cudaMemcpyAsync (coefficients)");
    if (!st) {
        /* The planes' copies have completed (synchronised above), so the
         * staging buffer is free; this copy completes before the final
         * synchronisation below, before stage is freed. */
        bp_cuda__retile_mult(m, (uint8_t *)stage);
        st = bp_cuda__check(
            cudaMemcpyAsync(dm->mult, stage, mult_bytes, cudaMemcpyHostToDevice, cc->stream),
            "cudaMemcpyAsync (multipliers)");
    }
    if (!st && m->rot_block)
        st = bp_cuda__check(cudaMemcpyAsync(dm->rot_signs, m->rot_signs, sign_bytes,
                                            cudaMemcpyHostToDevice, cc->stream),
                            "cudaMemcpyAsync (rotation signs)");
    if (!st && counts)
        st = bp_cuda__check(cudaMemcpyAsync(dm->row_planes, m->row_planes, m->rows,
                                            cudaMemcpyHostToDevice, cc->stream),
                            "cudaMemcpyAsync (row plane counts)");
    if (!st && counts)
        st = bp_cuda__check(cudaMemcpyAsync(dm->perm, m->perm, m->rows * sizeof(uint32_t),
                                            cudaMemcpyHostToDevice, cc->stream),
                            "cudaMemcpyAsync (row permutation)");
    if (!st)
        st = bp_cuda__check(cudaStreamSynchronize(cc->stream),
                            "cudaStreamSynchronize (matrix upload)");
    else
        cudaStreamSynchronize(cc->stream); /* nothing in flight when we free */
    free(stage);
    if (st) {
        free_device(dm);
        free(dm);
        return st;
    }
    *data = dm;
    return BP_OK;
}

bp_status bp_cuda__matrix(bp_cuda_context *cc, const bp_matrix *m, const bp_cuda_matrix **out) {
    void *data = NULL;
    /* Keyed by device ordinal + 1 (never NULL): contexts on one device
     * share the copy. */
    bp_status st =
        bp_cuda__host->matrix_cache_get(m, &bp_cuda__ops, (const void *)(intptr_t)(cc->device + 1),
                                        make_copy, cc, destroy_copy, &data);
    *out = data;
    return st;
}
