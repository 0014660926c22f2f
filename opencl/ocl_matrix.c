/*
 * Device copies of a matrix: all bits slabs in the CPU layout (plane-major,
 * so a call with n planes reads only the first n slabs; full size for
 * matrices with per-row plane counts) and the whole
 * coefficient table and the group multipliers, uploaded once per cl_context through the core's
 * matrix cache and freed with the matrix. The buffers retain their cl_context, so the key cannot be
 * reused by another context while the copy exists.
 */
#include "ocl_internal.h"

#include <stdlib.h>
#include <string.h>

static void matrix_free(void *data) {
    bp_ocl_matrix *dm = data;
    if (!dm)
        return;
    if (dm->planes)
        clReleaseMemObject(dm->planes);
    if (dm->coef)
        clReleaseMemObject(dm->coef);
    if (dm->mult)
        clReleaseMemObject(dm->mult);
    if (dm->signs)
        clReleaseMemObject(dm->signs);
    if (dm->rowinfo)
        clReleaseMemObject(dm->rowinfo);
    free(dm);
}

static bp_status matrix_upload(const bp_matrix *m, void *arg, void **data) {
    bp_ocl_ctx *c = arg;
    size_t plane_bytes = (size_t)m->bits * m->plane_words * sizeof(uint32_t);
    size_t coef_bytes = m->rows * (size_t)m->bits * (size_t)(m->bits + 1) / 2 * sizeof(float);
    if (plane_bytes > c->max_alloc || coef_bytes > c->max_alloc)
        return bp__ocl_host->fail(BP_ERR_UNSUPPORTED,
                                  "a %zux%zu matrix with %d planes needs a %zu-byte buffer; "
                                  "OpenCL device '%s' allocates at most %zu bytes at once",
                                  m->rows, m->cols, m->bits, plane_bytes, c->device_name,
                                  c->max_alloc);
    bp_ocl_matrix *dm = calloc(1, sizeof *dm);
    if (!dm)
        return bp__ocl_host->fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate a device matrix");
    /* Matrices with per-row counts upload full-size slabs (the row groups a
     * slab does not hold are zero) and each stored row's caller row and
     * count; the kernel caps each row's planes and writes y[perm[r]]. */
    uint32_t *full = NULL, *rowinfo = NULL;
    if (bp__has_row_planes(m)) {
        full = calloc(plane_bytes ? plane_bytes : 1, 1);
        rowinfo = malloc(2 * m->rows * sizeof *rowinfo);
        if (!full || !rowinfo) {
            free(full);
            free(rowinfo);
            free(dm);
            return bp__ocl_host->fail(BP_ERR_OUT_OF_MEMORY,
                                      "cannot allocate %zu bytes to stage a matrix for upload",
                                      plane_bytes);
        }
        for (int p = 0; p < m->bits; p++)
            memcpy(full + (size_t)p * m->plane_words, bp__slab(m, p),
                   m->slab_groups[p] * BP_ROW_GROUP * m->kwords * sizeof(uint32_t));
        for (size_t r = 0; r < m->rows; r++) {
            rowinfo[2 * r] = m->perm[r];
            rowinfo[2 * r + 1] = m->row_planes[r];
        }
    }
    cl_int err = CL_SUCCESS;
    /* COPY_HOST_PTR copies now, from memory that stays valid for the call. */
    dm->planes = clCreateBuffer(c->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, plane_bytes,
                                full ? full : m->planes, &err);
    if (dm->planes && rowinfo)
        dm->rowinfo = clCreateBuffer(c->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                     2 * m->rows * sizeof *rowinfo, rowinfo, &err);
    free(full);
    free(rowinfo);
    if (!dm->planes || (bp__has_row_planes(m) && !dm->rowinfo)) {
        matrix_free(dm);
        return bp__ocl_fail(err, "clCreateBuffer (matrix upload)");
    }
    if (dm->planes)
        dm->coef = clCreateBuffer(c->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, coef_bytes,
                                  m->coef, &err);
    size_t mult_bytes = m->row_groups * BP_ROW_GROUP * m->ngroups;
    if (dm->coef)
        dm->mult = clCreateBuffer(c->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, mult_bytes,
                                  m->mult, &err);
    if (dm->mult && m->rot_block)
        dm->signs = clCreateBuffer(c->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                   m->kwords * sizeof(uint32_t), m->rot_signs, &err);
    if (!dm->planes || !dm->coef || !dm->mult || (m->rot_block && !dm->signs)) {
        matrix_free(dm);
        return bp__ocl_fail(err, "clCreateBuffer (matrix upload)");
    }
    c->matrix_uploads++;
    *data = dm;
    return BP_OK;
}

bp_status bp__ocl_matrix_get(bp_ocl_ctx *c, const bp_matrix *m, bp_ocl_matrix **out) {
    void *data = NULL;
    bp_status st = bp__ocl_host->matrix_cache_get(m, &bp__ocl_ops, c->context, matrix_upload, c,
                                                  matrix_free, &data);
    *out = data;
    return st;
}
