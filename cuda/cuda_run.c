/*
 * One call on the device, in device pointers: group the columns, take
 * scratch from the context's stream-ordered pool, and enqueue the quantize
 * and gemm kernels per chunk of BP_CUDA_CHUNK columns. Nothing here waits
 * for the device.
 */
#include "cuda_host.h"

#include <string.h>

static size_t elem_size(int type) {
    return type == BP_CUDA_F32 ? 4 : 2;
}

bp_status bp_cuda__run(bp_cuda_context *cc, const bp_cuda_call *c, cudaStream_t stream) {
    const bp_matrix *m = c->m;
    const bp_cuda_matrix *dm;
    bp_status st = bp_cuda__matrix(cc, m, &dm);
    if (st)
        return st;

    bp_cuda_launch l = {0};
    l.ldx = c->ldx;
    l.ldy = c->ldy;
    l.x_type = c->x_type;
    l.y_type = c->y_type;
    l.bias = c->bias;
    l.planes = dm->planes;
    l.plane_words = dm->plane_words;
    l.coef = dm->coef;
    if (dm->row_planes) {
        l.row_planes = dm->row_planes;
        l.perm = dm->perm;
        memcpy(l.slab_offset, dm->slab_offset, sizeof l.slab_offset);
    }
    l.mult = dm->mult;
    l.group_words = m->group_words;
    l.wgroups = dm->wgroups;
    l.grouped = m->group_size != 0;
    l.uniform = m->method == BP_QUANT_UNIFORM;
    l.rot_block = m->rot_block;
    l.rot_signs = dm->rot_signs;
    l.rows = m->rows;
    l.cols = m->cols;
    l.kwords = dm->kwords; /* the device copy's K padding (cuda_layout.h) */
    l.row_groups = m->row_groups;
    l.act_bits = c->act_bits;
    l.A = c->act_bits == 1 ? 2 : c->act_bits;
    l.act_scale = c->act_scale;
    l.path = bp_cuda__path(cc, c->act_bits, c->batch);
    l.flags = cc->flags_dev;

    /* Column groups: as many columns as fit the path's plane-columns (at
     * least one), padded to n-tiles of 8. */
    const int maxj = l.path == BP_CUDA_PATH_MMA ? BP_CUDA_MMA_COLPLANES : BP_CUDA_POPC_COLPLANES;
    const size_t chunk = c->batch < BP_CUDA_CHUNK ? c->batch : BP_CUDA_CHUNK;
    int cpg = maxj / l.A;
    cpg = cpg < 1 ? 1 : cpg;
    cpg = (size_t)cpg > chunk ? (int)chunk : cpg;
    l.cpg = cpg;
    l.jg = cpg * l.A;
    l.ntiles = (l.jg + 7) / 8;
    const size_t max_groups = (chunk + (size_t)cpg - 1) / (size_t)cpg;
    const size_t act_bytes = max_groups * (size_t)l.ntiles * 8 * dm->kwords * sizeof(uint32_t);

    st = bp_cuda__check(cudaMallocFromPoolAsync((void **)&l.act, act_bytes, cc->pool, stream),
                        "cudaMallocFromPoolAsync (activation planes)");
    if (!st)
        st = bp_cuda__check(cudaMallocFromPoolAsync((void **)&l.colinfo,
                                                    chunk * sizeof(bp_cuda_col), cc->pool, stream),
                            "cudaMallocFromPoolAsync (column data)");
    if (!st)
        st = bp_cuda__check(cudaMallocFromPoolAsync((void **)&l.wq,
                                                    chunk * dm->kwords * sizeof(int32_t), cc->pool,
                                                    stream),
                            "cudaMallocFromPoolAsync (word sums)");
    if (!st && m->rot_block)
        st =
            bp_cuda__check(cudaMallocFromPoolAsync(
                               (void **)&l.xrot, chunk * m->cols * sizeof(float), cc->pool, stream),
                           "cudaMallocFromPoolAsync (rotated inputs)");
    for (size_t c0 = 0; !st && c0 < c->batch; c0 += chunk) {
        const size_t nc = c->batch - c0 < chunk ? c->batch - c0 : chunk;
        l.x = (const char *)c->x + c0 * c->ldx * elem_size(c->x_type);
        l.y = (char *)c->y + c0 * c->ldy * elem_size(c->y_type);
        l.ncols = (int)nc;
        l.ngroups = (int)((nc + (size_t)cpg - 1) / (size_t)cpg);
        for (size_t i = 0; i < nc; i++) {
            int n = c->column_planes ? c->column_planes[c0 + i] : 0;
            l.col_planes[i] = (unsigned char)(n ? n : c->planes);
        }
        st = bp_cuda__check((cudaError_t)bp_cuda__launch(&l, stream), "kernel launch");
    }
    if (l.act)
        cudaFreeAsync(l.act, stream);
    if (l.colinfo)
        cudaFreeAsync(l.colinfo, stream);
    if (l.wq)
        cudaFreeAsync(l.wq, stream);
    if (l.xrot)
        cudaFreeAsync(l.xrot, stream);
    return st;
}
