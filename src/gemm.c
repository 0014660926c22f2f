/* bp_gemm and bp_gemm_act: argument validation, then the context's backend. */
#include "bp_activations.h"
#include "bp_backend.h"
#include "bp_error.h"
#include "bp_finite.h"
#include "bp_options.h"
#include "bp_matrix.h"
#include "bp_mem.h"

#include <math.h>
#include <stdint.h>

bp_status bp__resolve_run_options(const bp_matrix *m, size_t batch, const bp_run_options *options,
                                  bp_run_options *out) {
    bp_status st = bp__copy_options(out, sizeof *out, options, "bp_run_options");
    if (st)
        return st;
    if (out->planes < 0 || out->planes > m->bits)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "planes must be 0 (all) or 1..%d, got %d", m->bits,
                        out->planes);
    if (out->act_bits < 0 || out->act_bits > BP_MAX_ACT_BITS)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "act_bits must be 0 (default 8) or 1..%d, got %d",
                        BP_MAX_ACT_BITS, out->act_bits);
    if (!(out->act_scale >= 0.0f) || isinf(out->act_scale))
        return bp__fail(BP_ERR_OUT_OF_RANGE,
                        "act_scale must be 0 (dynamic) or a finite value > 0, got %g",
                        (double)out->act_scale);
    if (out->column_planes)
        for (size_t i = 0; i < batch; i++)
            if (out->column_planes[i] < 0 || out->column_planes[i] > m->bits)
                return bp__fail(BP_ERR_OUT_OF_RANGE,
                                "column_planes[%zu] must be 0 (planes) or 1..%d, got %d", i,
                                m->bits, out->column_planes[i]);
    out->planes = out->planes ? out->planes : m->bits;
    out->act_bits = out->act_bits ? out->act_bits : 8;
    return BP_OK;
}

bp_status bp__check_gemm_shape(const bp_matrix *m, size_t batch, size_t ldx, size_t x_elem,
                               size_t ldy, size_t y_elem, size_t *xbytes, size_t *ybytes) {
    if (batch == 0)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "batch must be > 0, got 0");
    if (batch > BP_MAX_DIM)
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "batch must be <= %zu, got %zu", BP_MAX_DIM, batch);
    if (ldx < m->cols)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "ldx must be >= cols (%zu), got %zu", m->cols,
                        ldx);
    if (ldy < m->rows)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "ldy must be >= rows (%zu), got %zu", m->rows,
                        ldy);
    if (!bp__span_elem_bytes(batch, ldx, m->cols, x_elem, xbytes) ||
        !bp__span_elem_bytes(batch, ldy, m->rows, y_elem, ybytes))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "batch (%zu) x leading dimension overflows size_t",
                        batch);
    return BP_OK;
}

/* The activation on a backend without its own: one pass over y. */
static void apply_activation(float *y, size_t rows, size_t batch, size_t ldy,
                             bp_activation activation) {
    if (activation != BP_ACTIVATION_RELU)
        return;
    for (size_t i = 0; i < batch; i++)
        for (size_t r = 0; r < rows; r++)
            y[i * ldy + r] = bp__relu(y[i * ldy + r]);
}

static bp_status gemm_act(const char *fn, bp_context *ctx, const bp_matrix *m, const float *x,
                          size_t batch, size_t ldx, float *y, size_t ldy,
                          const bp_run_options *options, bp_activation activation) {
    if (!ctx || !m || !x || !y)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "%s: %s must not be NULL", fn,
                        !ctx ? "ctx"
                        : !m ? "m"
                        : !x ? "x"
                             : "y");
    size_t xbytes, ybytes;
    bp_status st =
        bp__check_gemm_shape(m, batch, ldx, sizeof(float), ldy, sizeof(float), &xbytes, &ybytes);
    if (st)
        return st;
    if (bp__spans_overlap(x, xbytes, y, ybytes))
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "x and y must not overlap");

    bp_run_options opt;
    if ((st = bp__resolve_run_options(m, batch, options, &opt)))
        return st;
    if (opt.bias && bp__spans_overlap(opt.bias, m->rows * sizeof(float), y, ybytes))
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bias and y must not overlap");
    /* The CPU backend checks x itself, in the quantizer's scan where it
     * can (cpu/cpu_gemm.c), with the same message and y untouched; an x
     * error still comes before a bias error. */
    const bool cpu = ctx->ops == &bp__cpu_backend;
    const bool bias_bad = opt.bias && bp__first_non_finite(opt.bias, m->rows) < m->rows;
    if ((!cpu || bias_bad) && (st = bp__check_finite_columns(x, batch, ldx, m->cols, "x")))
        return st;
    if (bias_bad)
        return bp__check_finite_columns(opt.bias, 1, m->rows, m->rows, "bias");

    bp_gemm_args args = {
        .m = m,
        .x = x,
        .batch = batch,
        .ldx = ldx,
        .y = y,
        .ldy = ldy,
        .planes = opt.planes,
        .act_bits = opt.act_bits,
        .bias = opt.bias,
        .column_planes = opt.column_planes,
        .act_scale = opt.act_scale,
    };
    if (ctx->ops == &bp__cpu_backend)
        return bp__cpu_gemm_act(ctx, &args, activation, true);
    st = ctx->ops->gemm(ctx, &args);
    /* Only on success: after an overflow the OpenCL backend leaves y
     * untouched (bitplane.h). */
    if (st == BP_OK)
        apply_activation(y, m->rows, batch, ldy, activation);
    return st;
}

bp_status bp_gemm(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch, size_t ldx,
                  float *y, size_t ldy, const bp_run_options *options) {
    return gemm_act("bp_gemm", ctx, m, x, batch, ldx, y, ldy, options, BP_ACTIVATION_NONE);
}

bp_status bp_gemm_act(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch, size_t ldx,
                      float *y, size_t ldy, const bp_run_options *options,
                      bp_activation activation) {
    if (activation != BP_ACTIVATION_NONE && activation != BP_ACTIVATION_RELU)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "bp_gemm_act: activation must be BP_ACTIVATION_NONE (0) or "
                        "BP_ACTIVATION_RELU (1), got %d",
                        (int)activation);
    return gemm_act("bp_gemm_act", ctx, m, x, batch, ldx, y, ldy, options, activation);
}
