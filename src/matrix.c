/* Matrix allocation, quantize entry point, accessors, dequantize, errors. */
#include "bp_error.h"
#include "bp_finite.h"
#include "bp_options.h"
#include "bp_quant.h"
#include "bp_rotation.h"
#include "bp_backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bp_status bp__check_dim(const char *name, size_t value) {
    if (value == 0)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "%s must be > 0, got 0", name);
    if (value > BP_MAX_DIM)
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "%s must be <= %zu, got %zu", name, BP_MAX_DIM,
                        value);
    return BP_OK;
}

bp_status bp__matrix_alloc(size_t rows, size_t cols, int bits, bp_matrix **out) {
    return bp__matrix_alloc_grouped(rows, cols, bits, 0, out);
}

bp_status bp__matrix_alloc_grouped(size_t rows, size_t cols, int bits, size_t group_size,
                                   bp_matrix **out) {
    *out = NULL;
    size_t kwords = bp__padded_cols(cols) / 32;
    size_t groups = (rows + BP_ROW_GROUP - 1) / BP_ROW_GROUP;
    size_t slab, all, ncoef, coef_bytes;
    if (bp__mul_overflows(groups * BP_ROW_GROUP, kwords, &slab) ||
        bp__mul_overflows(slab, (size_t)bits * sizeof(uint32_t), &all) ||
        bp__mul_overflows(rows, (size_t)bits * (bits + 1) / 2, &ncoef) ||
        bp__mul_overflows(ncoef, sizeof(float), &coef_bytes))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "a %zu x %zu matrix with %d planes overflows size_t",
                        rows, cols, bits);
    bp_matrix *m = calloc(1, sizeof *m);
    if (!m)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate a matrix header");
    if (pthread_mutex_init(&m->cache_lock, NULL) != 0) {
        free(m);
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot initialise a matrix lock");
    }
    m->rows = rows;
    m->cols = cols;
    m->bits = bits;
    m->kwords = kwords;
    m->row_groups = groups;
    m->plane_words = slab;
    bp__matrix_layout_full(m);
    m->planes = bp__aligned_alloc(all);
    m->coef = bp__aligned_alloc(coef_bytes);
    m->prefix_error = calloc((size_t)bits, sizeof(double));
    m->group_size = group_size;
    m->group_words = group_size ? group_size / 32 : kwords;
    m->ngroups = (kwords + m->group_words - 1) / m->group_words;
    /* groups * 16 * ngroups <= slab words: no overflow past the check above. */
    size_t mult_bytes = groups * BP_ROW_GROUP * m->ngroups;
    m->mult = bp__aligned_alloc(mult_bytes);
    if (m->mult)
        memset(m->mult, 1, mult_bytes);
    if (!m->planes || !m->coef || !m->prefix_error || !m->mult) {
        bp_matrix_destroy(m);
        return bp__fail(BP_ERR_OUT_OF_MEMORY,
                        "cannot allocate %zu bytes of planes for a %zu x %zu matrix", all, rows,
                        cols);
    }
    *out = m;
    return BP_OK;
}

bp_status bp__matrix_set_rotation(bp_matrix *m, int block, uint64_t seed) {
    m->rot_block = block;
    m->rot_seed = seed;
    if (!block)
        return BP_OK;
    m->rot_signs = bp__aligned_alloc(m->kwords * sizeof(uint32_t));
    if (!m->rot_signs)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate the rotation signs");
    bp__rotation_make_signs(m);
    return BP_OK;
}

void bp_matrix_destroy(bp_matrix *m) {
    if (!m)
        return;
    bp__matrix_cache_free(m);
    pthread_mutex_destroy(&m->cache_lock);
    bp__aligned_free(m->planes);
    bp__aligned_free(m->coef);
    bp__aligned_free(m->mult);
    bp__aligned_free(m->rot_signs);
    free(m->prefix_error);
    free(m->perm);
    free(m->row_planes);
    free(m);
}

size_t bp_matrix_rows(const bp_matrix *m) {
    return m ? m->rows : 0;
}
size_t bp_matrix_cols(const bp_matrix *m) {
    return m ? m->cols : 0;
}
int bp_matrix_bits(const bp_matrix *m) {
    return m ? m->bits : 0;
}
bp_quant_method bp_matrix_method(const bp_matrix *m) {
    return m ? m->method : BP_QUANT_UNIFORM;
}

size_t bp_matrix_group_size(const bp_matrix *m) {
    return m ? m->group_size : 0;
}
int bp_matrix_rotation(const bp_matrix *m) {
    return m ? m->rot_block : 0;
}

double bp_matrix_prefix_error(const bp_matrix *m, int n) {
    if (!m) {
        bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_prefix_error: m must not be NULL");
        return -1.0;
    }
    if (n < 1 || n > m->bits) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "n must be in 1..%d, got %d", m->bits, n);
        return -1.0;
    }
    return m->prefix_error[n - 1];
}

/* ---- per-row statistics ------------------------------------------------------ */

void bp__store_row(bp_matrix *m, size_t row, const uint32_t *rowbits) {
    for (int p = 0; p < m->bits; p++) {
        uint32_t *slab = m->planes + m->slab_offset[p];
        for (size_t wd = 0; wd < m->kwords; wd++)
            slab[bp__word_index(m, row, wd)] = rowbits[(size_t)p * m->kwords + wd];
    }
}

void bp__load_row(const bp_matrix *m, const float *w, double *out) {
    if (m->rot_block) {
        bp__rotate_weights(m, w, out);
        return;
    }
    for (size_t j = 0; j < m->cols; j++)
        out[j] = w[j];
}

void bp__store_row_mult(bp_matrix *m, size_t row, const uint8_t *mult, size_t ngroups) {
    for (size_t g = 0; g < ngroups; g++)
        bp__mult_tile_mut(m, row / BP_ROW_GROUP, g)[row % BP_ROW_GROUP] = mult[g];
}

double bp__row_sq_error(const double *G, int bits, const double *wt, double ww, const float *c,
                        int n) {
    double cross = 0, quad = 0;
    for (int p = 0; p < n; p++) {
        cross += (double)c[p] * wt[p];
        for (int q = 0; q < n; q++)
            quad += (double)c[p] * c[q] * G[p * bits + q];
    }
    double e = ww - 2.0 * cross + quad;
    return e > 0 ? e : 0;
}

void bp__matrix_finish_error(bp_matrix *m, const double *row_sq_err, const double *row_ww) {
    double total = 0;
    for (size_t r = 0; r < m->rows; r++)
        total += row_ww[r];
    for (int n = 1; n <= m->bits; n++) {
        double e = 0;
        for (size_t r = 0; r < m->rows; r++) {
            const int c = bp__row_planes(m, r) < n ? bp__row_planes(m, r) : n;
            e += row_sq_err[r * (size_t)m->bits + (size_t)(c - 1)];
        }
        m->prefix_error[n - 1] = total > 0 ? sqrt(e / total) : 0.0;
    }
}

/* ---- quantize entry point ---------------------------------------------------- */

static bp_status check_finite_matrix(const float *w, size_t rows, size_t cols, size_t ld,
                                     const char *name) {
    for (size_t r = 0; r < rows; r++) {
        size_t j = bp__first_non_finite(w + r * ld, cols);
        if (j < cols)
            return bp__fail(BP_ERR_NON_FINITE, "%s[%zu][%zu] is %s", name, r, j,
                            isnan(w[r * ld + j]) ? "NaN" : "Inf");
    }
    return BP_OK;
}

static inline bool is_pow2(size_t v) {
    return v && !(v & (v - 1));
}

/* True when the caller says the inputs are non-negative, or gives
 * calibration samples that all are (already checked by check_calibration). */
static bool inputs_nonnegative(const bp_quant_options *opt, size_t cols) {
    if (opt->nonnegative_inputs)
        return true;
    if (!opt->calibration)
        return false;
    for (size_t i = 0; i < opt->calibration_count; i++)
        for (size_t j = 0; j < cols; j++)
            if (!(opt->calibration[i * opt->calibration_ld + j] >= 0.0f))
                return false;
    return true;
}

/* Group size (0 = per row) and rotation block (0 = none) from the options.
 * The default rotation is none for non-negative inputs: rotated, they are
 * signed and cost the activation quantizer its unsigned mode's extra bit. */
static bp_status resolve_structure(const bp_quant_options *opt, size_t cols, size_t *group_size,
                                   int *rotation) {
    int g = opt->group_size ? opt->group_size : BP_DEFAULT_GROUP_SIZE;
    if (g == BP_GROUP_PER_ROW) {
        *group_size = 0;
    } else if (g < BP_GROUP_MIN_COLS || g > BP_GROUP_MAX_COLS || !is_pow2((size_t)g)) {
        return bp__fail(BP_ERR_OUT_OF_RANGE,
                        "group_size must be 0 (default %d), BP_GROUP_PER_ROW (-1) or a power of "
                        "two in %d..%d, got %d",
                        BP_DEFAULT_GROUP_SIZE, BP_GROUP_MIN_COLS, BP_GROUP_MAX_COLS,
                        opt->group_size);
    } else {
        *group_size = (size_t)g;
        if (cols > BP_GROUP_MAX_K)
            return bp__fail(BP_ERR_OUT_OF_RANGE,
                            "group scales need cols <= %zu (got %zu); use group_size "
                            "BP_GROUP_PER_ROW for wider matrices",
                            BP_GROUP_MAX_K, cols);
    }
    int b = opt->rotation                   ? opt->rotation
            : inputs_nonnegative(opt, cols) ? BP_ROTATION_NONE
                                            : BP_DEFAULT_ROTATION;
    if (b == BP_ROTATION_NONE)
        b = 0;
    else if (b < 4 || b > BP_ROTATION_MAX_BLOCK || !bp__is_pow4((size_t)b))
        return bp__fail(BP_ERR_OUT_OF_RANGE,
                        "rotation must be 0 (default block %d), BP_ROTATION_NONE (-1) or a "
                        "power-of-four block in 4..%d, got %d",
                        BP_DEFAULT_ROTATION, BP_ROTATION_MAX_BLOCK, opt->rotation);
    *rotation = b;
    return BP_OK;
}

/* Calibration options: uniform only, a finite sample set, a target prefix. */
static bp_status check_calibration(const bp_quant_options *opt, int bits, size_t cols,
                                   int *planes) {
    if (!opt->calibration) {
        if (opt->calibration_count || opt->calibration_planes)
            return bp__fail(BP_ERR_INVALID_ARGUMENT,
                            "calibration_count and calibration_planes need calibration samples");
        return BP_OK;
    }
    if (opt->method != BP_QUANT_UNIFORM)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "calibration applies to the uniform quantizer only");
    if (opt->calibration_count == 0)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "calibration_count must be > 0");
    if (opt->calibration_ld < cols)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "calibration_ld must be >= cols (%zu), got %zu",
                        cols, opt->calibration_ld);
    size_t span;
    if (!bp__span_bytes(opt->calibration_count, opt->calibration_ld, cols, &span))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "calibration_count x calibration_ld overflows");
    if (opt->calibration_planes < 0 || opt->calibration_planes > bits)
        return bp__fail(BP_ERR_OUT_OF_RANGE,
                        "calibration_planes must be 0 (default 4) or 1..%d, got %d", bits,
                        opt->calibration_planes);
    bp_status st = check_finite_matrix(opt->calibration, opt->calibration_count, cols,
                                       opt->calibration_ld, "calibration");
    if (st)
        return st;
    *planes = opt->calibration_planes ? opt->calibration_planes : (bits < 4 ? bits : 4);
    return BP_OK;
}

typedef struct quantize_job {
    bp_quantize_rows_fn fn;
    bp_matrix *m;
    const float *w;
    size_t ld;
    bp_quant_params params;
    size_t rows_per_task;
    double *sq_err, *ww;
    unsigned char *scratch;
    size_t scratch_bytes;
} quantize_job;

static void quantize_task(void *arg, size_t task, int worker) {
    quantize_job *j = arg;
    size_t r0 = task * j->rows_per_task;
    size_t r1 = r0 + j->rows_per_task < j->m->rows ? r0 + j->rows_per_task : j->m->rows;
    j->fn(j->m, j->w, j->ld, &j->params, r0, r1, j->sq_err, j->ww,
          j->scratch + (size_t)worker * j->scratch_bytes);
}

bp_status bp_matrix_quantize(bp_context *ctx, const float *w, size_t rows, size_t cols, size_t ld,
                             const bp_quant_options *options, bp_matrix **out) {
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_quantize: out must not be NULL");
    *out = NULL;
    if (!ctx)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_quantize: ctx must not be NULL");
    if (!w)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_quantize: w must not be NULL");
    bp_status st;
    if ((st = bp__check_dim("rows", rows)) || (st = bp__check_dim("cols", cols)))
        return st;
    if (ld < cols)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "ld must be >= cols (%zu), got %zu", cols, ld);
    size_t span;
    if (!bp__span_bytes(rows, ld, cols, &span))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "rows (%zu) x ld (%zu) overflows size_t", rows, ld);

    bp_quant_options opt;
    if ((st = bp__copy_options(&opt, sizeof opt, options, "bp_quant_options")))
        return st;
    int bits = opt.bits ? opt.bits : BP_DEFAULT_BITS;
    if (bits < 1 || bits > BP_MAX_BITS)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "bits must be 0 (default %d) or 1..%d, got %d",
                        BP_DEFAULT_BITS, BP_MAX_BITS, opt.bits);
    if (opt.method != BP_QUANT_UNIFORM && opt.method != BP_QUANT_RESIDUAL)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "unknown quantizer method %d", (int)opt.method);
    if (!(opt.clip >= 0.0f && opt.clip <= 1.0f))
        return bp__fail(BP_ERR_OUT_OF_RANGE, "clip must be 0 (automatic) or in (0, 1], got %g",
                        (double)opt.clip);
    if (opt.method == BP_QUANT_RESIDUAL && opt.clip != 0.0f)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "clip applies to the uniform quantizer only; set it to 0 for residual");
    int cal_planes = 0;
    if ((st = check_calibration(&opt, bits, cols, &cal_planes)))
        return st;
    size_t group_size = 0;
    int rotation = 0;
    if ((st = resolve_structure(&opt, cols, &group_size, &rotation)))
        return st;
    if ((st = check_finite_matrix(w, rows, cols, ld, "w")))
        return st;
    /* Per-row counts: quantize the rows in their stored order (every
     * quantizer is row-independent), then compact the slabs. */
    uint8_t *counts = NULL;
    uint32_t *perm = NULL;
    float *wperm = NULL;
    if (opt.row_planes) {
        bool all_full;
        if ((st = bp__row_planes_check(opt.row_planes, rows, bits, &all_full)))
            return st;
        if (!all_full) {
            if ((st = bp__row_planes_order(opt.row_planes, rows, bits, &counts, &perm)))
                return st;
            wperm = malloc(rows * cols * sizeof *wperm);
            if (!wperm) {
                free(counts);
                free(perm);
                return bp__fail(BP_ERR_OUT_OF_MEMORY,
                                "cannot allocate the permuted copy of a %zu x %zu matrix", rows,
                                cols);
            }
            for (size_t r = 0; r < rows; r++)
                memcpy(wperm + r * cols, w + (size_t)perm[r] * ld, cols * sizeof *wperm);
            w = wperm;
            ld = cols;
        }
    }

    bp_matrix *m;
    if ((st = bp__matrix_alloc_grouped(rows, cols, bits, group_size, &m))) {
        free(counts);
        free(perm);
        free(wperm);
        return st;
    }
    if ((st = bp__matrix_set_rotation(m, rotation, opt.rotation_seed))) {
        free(counts);
        free(perm);
        free(wperm);
        bp_matrix_destroy(m);
        return st;
    }
    m->method = opt.method;
    m->clip = opt.clip;
    double *cal_u = NULL;
    if (opt.calibration && (st = bp__calibration_factor(m, opt.calibration, opt.calibration_count,
                                                        opt.calibration_ld, &cal_u))) {
        free(counts);
        free(perm);
        free(wperm);
        bp_matrix_destroy(m);
        return st;
    }
    int workers = bp_context_threads(ctx);
    size_t scratch_bytes = bp__quantize_scratch_bytes(m);
    double *sq_err = calloc(rows * (size_t)bits, sizeof(double));
    double *ww = calloc(rows, sizeof(double));
    unsigned char *scratch = bp__aligned_alloc(scratch_bytes * (size_t)workers);
    if (!sq_err || !ww || !scratch) {
        free(sq_err);
        free(ww);
        bp__aligned_free(scratch);
        free(cal_u);
        free(counts);
        free(perm);
        free(wperm);
        bp_matrix_destroy(m);
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate quantizer statistics");
    }
    quantize_job job = {
        .fn =
            opt.method == BP_QUANT_UNIFORM ? bp__quantize_rows_uniform : bp__quantize_rows_residual,
        .m = m,
        .w = w,
        .ld = ld,
        .params = {.clip = opt.clip, .cal_u = cal_u, .cal_planes = cal_planes},
        .rows_per_task = 64,
        .sq_err = sq_err,
        .ww = ww,
        .scratch = scratch,
        .scratch_bytes = scratch_bytes,
    };
    bp__parallel_for(ctx, (rows + job.rows_per_task - 1) / job.rows_per_task, quantize_task, &job);
    free(wperm);
    st = counts ? bp__matrix_set_row_planes(m, counts, perm) : BP_OK;
    if (!st)
        bp__matrix_finish_error(m, sq_err, ww);
    free(cal_u);
    free(sq_err);
    free(ww);
    bp__aligned_free(scratch);
    if (st) {
        bp_matrix_destroy(m);
        return st;
    }
    *out = m;
    return BP_OK;
}

/* ---- dequantize ---------------------------------------------------------------- */

bp_status bp_matrix_dequantize(bp_context *ctx, const bp_matrix *m, int planes, float *out,
                               size_t ld) {
    (void)ctx;
    if (!m || !out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_dequantize: %s must not be NULL",
                        !m ? "m" : "out");
    if (planes < 0 || planes > m->bits)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "planes must be 0 (all) or 1..%d, got %d", m->bits,
                        planes);
    if (ld < m->cols)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "ld must be >= cols (%zu), got %zu", m->cols, ld);
    size_t span;
    if (!bp__span_bytes(m->rows, ld, m->cols, &span))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "rows (%zu) x ld (%zu) overflows size_t", m->rows,
                        ld);
    int n = planes ? planes : m->bits;
    double *row = malloc(m->cols * sizeof *row);
    if (!row)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate a row to dequantize");
    for (size_t r = 0; r < m->rows; r++) {
        /* A row uses min(its count, n) planes; rows are stored by count. */
        const int nr = bp__row_planes(m, r) < n ? bp__row_planes(m, r) : n;
        const size_t orow = m->perm ? m->perm[r] : r;
        const float *c = bp__coef(m, nr, r);
        for (size_t j = 0; j < m->cols; j++) {
            double v = 0;
            for (int p = 0; p < nr; p++)
                v += bp__plane_bit(m, p, r, j) ? (double)c[p] : -(double)c[p];
            row[j] = v * bp__mult(m, r, j / 32 / m->group_words);
        }
        /* Back from the rotated coordinates the matrix was quantized in. */
        if (m->rot_block)
            bp__unrotate_weights(m, row);
        for (size_t j = 0; j < m->cols; j++)
            out[orow * ld + j] = (float)row[j];
    }
    free(row);
    return BP_OK;
}
