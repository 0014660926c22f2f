/*
 * The weight quantizers (src/quant_uniform.c, src/quant_residual.c,
 * src/calibrate.c) and their shared pieces.
 */
#ifndef BP_QUANT_H
#define BP_QUANT_H

#include "bp_matrix.h"

/* Quantizers build one row at a time in a local buffer rowbits[p][kwords]
 * (plane p's words for this row), then store it into the tiled slabs. */
/* ||w - sum_{p<n} c[p] t_p||^2 from the statistics, clamped at 0. */
double bp__row_sq_error(const double *G, int bits, const double *wt, double ww, const float *c,
                        int n);
void bp__store_row(bp_matrix *m, size_t row, const uint32_t *rowbits);

/* Quantizers fill planes, multipliers and coef of an allocated matrix. w is
 * finite. Quantize rows [r0, r1): planes, coefficients, and per-row squared
 * errors sq_err[row*bits + n-1] and ww[row] (of the rotated row, which has
 * the same norm up to rounding). Each row is independent. scratch holds
 * bp__quantize_scratch_bytes(m) bytes for one row. */
typedef struct bp_quant_params {
    float clip;          /* 0 = automatic */
    const double *cal_u; /* calibration: upper factor U of H^-1 (cols x cols), or NULL */
    int cal_planes;      /* the prefix the feedback targets */
} bp_quant_params;
typedef void (*bp_quantize_rows_fn)(bp_matrix *m, const float *w, size_t ld,
                                    const bp_quant_params *qp, size_t r0, size_t r1, double *sq_err,
                                    double *ww, void *scratch);
void bp__quantize_rows_uniform(bp_matrix *m, const float *w, size_t ld, const bp_quant_params *qp,
                               size_t r0, size_t r1, double *sq_err, double *ww, void *scratch);
void bp__quantize_rows_residual(bp_matrix *m, const float *w, size_t ld, const bp_quant_params *qp,
                                size_t r0, size_t r1, double *sq_err, double *ww, void *scratch);
/* The calibration factor U (cols x cols, row-major, upper) for m's shape and
 * rotation from count sample vectors x (ld apart); the caller frees it. */
bp_status bp__calibration_factor(const bp_matrix *m, const float *x, size_t count, size_t ld,
                                 double **out);
/* One row's working memory, carved from the scratch block. */
typedef struct bp_quant_scratch {
    uint32_t *rowbits; /* bits * kwords */
    double *row;       /* cols: the (rotated) row */
    double *aux;       /* cols */
    double *aux2;      /* cols */
    uint8_t *mult;     /* ngroups */
} bp_quant_scratch;
static inline size_t bp__quantize_scratch_bytes(const bp_matrix *m) {
    return bp__round_up((size_t)m->bits * m->kwords * sizeof(uint32_t), 64) +
           3 * bp__round_up(m->cols * sizeof(double), 64) + bp__round_up(m->ngroups, 64);
}
static inline bp_quant_scratch bp__quant_scratch(const bp_matrix *m, void *scratch) {
    unsigned char *p = scratch;
    bp_quant_scratch s;
    s.rowbits = (uint32_t *)p;
    p += bp__round_up((size_t)m->bits * m->kwords * sizeof(uint32_t), 64);
    s.row = (double *)p;
    p += bp__round_up(m->cols * sizeof(double), 64);
    s.aux = (double *)p;
    p += bp__round_up(m->cols * sizeof(double), 64);
    s.aux2 = (double *)p;
    p += bp__round_up(m->cols * sizeof(double), 64);
    s.mult = p;
    return s;
}
/* The row as the quantizer sees it: rotated (bp__rotate_weights) or copied. */
void bp__load_row(const bp_matrix *m, const float *w, double *out);
/* Group multipliers of row w (doubles) into mult[0..*ngroups): ceil(255
 * max|w_g| / max|w|), or 1 per row; *gcols receives the columns per group.
 * Returns max|w|. */
double bp__group_multipliers(const bp_matrix *m, const double *w, uint8_t *mult, size_t *gcols,
                             size_t *ngroups);
/* Store the multipliers of row's first ngroups groups (the rest stay 1). */
void bp__store_row_mult(bp_matrix *m, size_t row, const uint8_t *mult, size_t ngroups);
/* Uniform quantizer pieces, exposed for tests. */
float bp__uniform_auto_clip(const float *row, size_t cols, int bits);

#endif /* BP_QUANT_H */
