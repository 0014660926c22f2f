/*
 * Core-side matrix internals: allocation, the backend-copy cache and the
 * shape checks every entry point shares. The layout itself is in bp_abi.h.
 */
#ifndef BP_MATRIX_H
#define BP_MATRIX_H

#include "bp_abi.h"

/* The backend copy for (owner, key), made by create(m, arg, &data) on the
 * first call; later and concurrent calls get the same data. destroy(data)
 * runs when the matrix is destroyed. */
bp_status bp__matrix_cache_get(const bp_matrix *m, const void *owner, const void *key,
                               bp_cache_create_fn create, void *arg, void (*destroy)(void *),
                               void **data);
void bp__matrix_cache_free(bp_matrix *m);

/* Allocate a matrix with zeroed planes and coefficients, per row (every
 * multiplier 1) when group_size is 0, else groups of group_size columns
 * (a power of two in BP_GROUP_MIN_COLS..BP_GROUP_MAX_COLS, checked by the
 * caller) with multipliers 1 until the quantizer sets them. */
bp_status bp__matrix_alloc(size_t rows, size_t cols, int bits, bp_matrix **out);
bp_status bp__matrix_alloc_grouped(size_t rows, size_t cols, int bits, size_t group_size,
                                   bp_matrix **out);
/* Per-row plane counts (src/row_planes.c, docs/row-planes.md). */
/* Every slab full size at p * plane_words (no counts); alloc calls it. */
void bp__matrix_layout_full(bp_matrix *m);
/* The caller's counts: each 1..bits, else BP_ERR_OUT_OF_RANGE naming the
 * row; *all_full when every count is bits (then no counts are kept). */
bp_status bp__row_planes_check(const uint8_t *row_planes, size_t rows, int bits, bool *all_full);
/* The stored order of checked counts: *counts (stored order, descending)
 * and *perm (stored row -> caller row), malloc'd for the caller. */
bp_status bp__row_planes_order(const uint8_t *row_planes, size_t rows, int bits, uint8_t **counts,
                               uint32_t **perm);
/* Counts and permutation as a file holds them: NULL when they are what
 * bp__row_planes_order makes for some counts with at least one below bits,
 * else what is wrong. */
const char *bp__row_planes_check_stored(const uint8_t *counts, const uint32_t *perm, size_t rows,
                                        int bits);
/* Give m (full slabs, rows in stored order) its counts and permutation,
 * owned by m from here on even on failure: builds the runs and compacts the
 * slabs to the row groups each plane needs, zeroing the bits of rows at
 * planes past their count. */
bp_status bp__matrix_set_row_planes(bp_matrix *m, uint8_t *counts, uint32_t *perm);
/* prefix_error[n-1] = sqrt(sum of row_sq_err[row*bits + n-1] / sum ww[row]), a row with
 * a plane count c contributing its error at min(n, c) planes. */
void bp__matrix_finish_error(bp_matrix *m, const double *row_sq_err, const double *row_ww);
/* Validate a dimension against BP_MAX_DIM with a message naming it. */
bp_status bp__check_dim(const char *name, size_t value);

/* Copy a caller's run options (NULL = defaults) and check every knob against
 * m and batch (column_planes is read on the host). planes and act_bits come
 * back resolved (never 0). Used by bp_gemm and by the accelerators' native
 * entry points, so every entry point accepts and rejects the same options. */
bp_status bp__resolve_run_options(const bp_matrix *m, size_t batch, const bp_run_options *options,
                                  bp_run_options *out);
/* The shape checks every gemm entry point shares: batch in 1..BP_MAX_DIM,
 * ldx >= cols, ldy >= rows, and the bytes x and y span (elements of x_elem
 * and y_elem bytes) without size_t overflow. */
bp_status bp__check_gemm_shape(const bp_matrix *m, size_t batch, size_t ldx, size_t x_elem,
                               size_t ldy, size_t y_elem, size_t *xbytes, size_t *ybytes);

#endif /* BP_MATRIX_H */
