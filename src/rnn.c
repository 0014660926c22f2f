/* bp_rnn objects: creation from PyTorch-layout weights, accessors. */
#include "bp_error.h"
#include "bp_finite.h"
#include "bp_options.h"
#include "rnn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bp_status bp__rnn_alloc(bp_rnn_cell cell, size_t layers, size_t input, size_t hidden, int split,
                        bp_rnn **out) {
    int gates = bp__rnn_cell_gates(cell);
    size_t rows;
    bp_rnn *rnn = calloc(1, sizeof *rnn);
    if (!rnn || !(rnn->layer = calloc(layers, sizeof *rnn->layer))) {
        free(rnn);
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate an RNN of %zu layers", layers);
    }
    rnn->cell = cell;
    rnn->gates = gates;
    rnn->split = split;
    rnn->layers = layers;
    rnn->input = input;
    rnn->hidden = hidden;
    if (bp__mul_overflows((size_t)gates, hidden, &rows)) {
        bp_rnn_destroy(rnn);
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "gates x hidden_size overflows size_t");
    }
    for (size_t l = 0; l < layers; l++) {
        bp_rnn_layer *L = &rnn->layer[l];
        L->in = l == 0 ? input : hidden;
        L->bias_ih = calloc(rows, sizeof(float));
        L->bias_hh = calloc(rows, sizeof(float));
        if (!L->bias_ih || !L->bias_hh) {
            bp_rnn_destroy(rnn);
            return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate the biases of layer %zu", l);
        }
    }
    *out = rnn;
    return BP_OK;
}

void bp_rnn_destroy(bp_rnn *rnn) {
    if (!rnn)
        return;
    for (size_t l = 0; rnn->layer && l < rnn->layers; l++) {
        bp_rnn_layer *L = &rnn->layer[l];
        for (int g = 0; g < BP_RNN_MAX_GATES; g++) {
            bp_matrix_destroy(L->ih[g]);
            bp_matrix_destroy(L->hh[g]);
        }
        free(L->bias_ih);
        free(L->bias_hh);
    }
    free(rnn->layer);
    free(rnn);
}

static bp_status check_finite(const float *v, size_t n, size_t layer, const char *name) {
    size_t i = bp__first_non_finite(v, n);
    if (i < n)
        return bp__fail(BP_ERR_NON_FINITE, "layer %zu: %s element %zu is %s", layer, name, i,
                        isnan(v[i]) ? "NaN" : "Inf");
    return BP_OK;
}

/* Per-row counts of one operator of one layer: gates*hidden entries, each
 * 1..bits. Checked here, over the whole operator, so that the message
 * names the row as the caller numbers it (a split gate's matrix would
 * number its own rows). */
static bp_status check_row_planes(const uint8_t *counts, size_t rows, int bits, size_t layer,
                                  const char *op) {
    for (size_t r = 0; counts && r < rows; r++)
        if (counts[r] < 1 || counts[r] > bits)
            return bp__fail(BP_ERR_OUT_OF_RANGE,
                            "row_planes[%zu].%s[%zu] must be in 1..%d (bits), got %u", layer, op, r,
                            bits, (unsigned)counts[r]);
    return BP_OK;
}

/* Quantize rows [row0, row0 + rows) of the (gates*hidden) x cols array w,
 * with those rows' plane counts when counts is not NULL. */
static bp_status quantize_rows(bp_context *ctx, const float *w, size_t row0, size_t rows,
                               size_t cols, const bp_quant_options *quant, const uint8_t *counts,
                               size_t layer, const char *name, bp_matrix **out) {
    bp_quant_options q = *quant;
    q.row_planes = counts ? counts + row0 : NULL;
    bp_status st = bp_matrix_quantize(ctx, w + row0 * cols, rows, cols, cols, &q, out);
    if (st) { /* Prefix the matrix's own message with where it came from. */
        char why[256];
        snprintf(why, sizeof why, "%s", bp_last_error());
        return bp__fail(st, "layer %zu %s: %s", layer, name, why);
    }
    return BP_OK;
}

bp_status bp_rnn_create(bp_context *ctx, bp_rnn_cell cell, size_t layers, size_t input_size,
                        size_t hidden_size, const bp_rnn_layer_weights *weights,
                        const bp_quant_options *quant, const bp_rnn_options *options,
                        bp_rnn **out) {
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_create: out must not be NULL");
    *out = NULL;
    if (!ctx || !weights)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_create: %s must not be NULL",
                        !ctx ? "ctx" : "weights");
    if (cell != BP_RNN_LSTM && cell != BP_RNN_GRU)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "cell must be BP_RNN_LSTM (1) or BP_RNN_GRU (2), got %d", (int)cell);
    if (layers < 1 || layers > BP_RNN_MAX_LAYERS)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "layers must be 1..%d, got %zu", BP_RNN_MAX_LAYERS,
                        layers);
    bp_status st;
    if ((st = bp__check_dim("input_size", input_size)) ||
        (st = bp__check_dim("hidden_size", hidden_size)))
        return st;
    bp_rnn_options opt;
    if ((st = bp__copy_options(&opt, sizeof opt, options, "bp_rnn_options")))
        return st;
    if (opt.split_gates != 0 && opt.split_gates != 1)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "split_gates must be 0 or 1, got %d", opt.split_gates);
    int gates = bp__rnn_cell_gates(cell);
    size_t rows = (size_t)gates * hidden_size;
    if ((st = bp__check_dim("gates x hidden_size", rows)))
        return st;
    for (size_t l = 0; l < layers; l++) {
        const bp_rnn_layer_weights *w = &weights[l];
        size_t in = l == 0 ? input_size : hidden_size;
        if (!w->weight_ih || !w->weight_hh)
            return bp__fail(BP_ERR_INVALID_ARGUMENT, "layer %zu: %s must not be NULL", l,
                            !w->weight_ih ? "weight_ih" : "weight_hh");
        if ((st = check_finite(w->weight_ih, rows * in, l, "weight_ih")) ||
            (st = check_finite(w->weight_hh, rows * hidden_size, l, "weight_hh")) ||
            (w->bias_ih && (st = check_finite(w->bias_ih, rows, l, "bias_ih"))) ||
            (w->bias_hh && (st = check_finite(w->bias_hh, rows, l, "bias_hh"))))
            return st;
    }

    /* The integer mode feeds hidden states to the products with a fixed
     * scale, which a rotation of K would break (rotated values reach
     * sqrt(block) times max|h| and saturate): recurrent layers default to no
     * rotation. A caller may still ask for one (float mode only). */
    bp_quant_options q;
    if ((st = bp__copy_options(&q, sizeof q, quant, "bp_quant_options")))
        return st;
    if (q.row_planes)
        return bp__fail(BP_ERR_UNSUPPORTED,
                        "bp_quant_options.row_planes (per-row plane counts) applies to "
                        "bp_matrix_quantize only; give an RNN's counts per layer and operator "
                        "in bp_rnn_options.row_planes");
    /* Counts are checked against the planes the matrices will have; a bad
     * bits value is left to the quantizer's own message. */
    int bits = q.bits ? q.bits : BP_DEFAULT_BITS;
    if (opt.row_planes && bits >= 1 && bits <= BP_MAX_BITS)
        for (size_t l = 0; l < layers; l++)
            if ((st = check_row_planes(opt.row_planes[l].ih, rows, bits, l, "ih")) ||
                (st = check_row_planes(opt.row_planes[l].hh, rows, bits, l, "hh")))
                return st;
    if (q.rotation == 0)
        q.rotation = BP_ROTATION_NONE;
    quant = &q;

    bp_rnn *rnn;
    if ((st = bp__rnn_alloc(cell, layers, input_size, hidden_size, opt.split_gates, &rnn)))
        return st;
    int mats = bp__rnn_mats(rnn);
    size_t mat_rows = rnn->split ? hidden_size : rows;
    for (size_t l = 0; l < layers && !st; l++) {
        const bp_rnn_layer_weights *w = &weights[l];
        bp_rnn_layer *L = &rnn->layer[l];
        if (w->bias_ih)
            memcpy(L->bias_ih, w->bias_ih, rows * sizeof(float));
        if (w->bias_hh)
            memcpy(L->bias_hh, w->bias_hh, rows * sizeof(float));
        const bp_rnn_row_planes *rp = opt.row_planes ? &opt.row_planes[l] : NULL;
        for (int g = 0; g < mats && !st; g++) {
            st = quantize_rows(ctx, w->weight_ih, (size_t)g * mat_rows, mat_rows, L->in, quant,
                               rp ? rp->ih : NULL, l, "weight_ih", &L->ih[g]);
            if (!st)
                st = quantize_rows(ctx, w->weight_hh, (size_t)g * mat_rows, mat_rows, hidden_size,
                                   quant, rp ? rp->hh : NULL, l, "weight_hh", &L->hh[g]);
        }
    }
    if (st) {
        bp_rnn_destroy(rnn);
        return st;
    }
    rnn->bits = bp_matrix_bits(rnn->layer[0].ih[0]);
    *out = rnn;
    return BP_OK;
}

bp_rnn_cell bp_rnn_cell_kind(const bp_rnn *rnn) {
    return rnn ? rnn->cell : (bp_rnn_cell)0;
}
size_t bp_rnn_layers(const bp_rnn *rnn) {
    return rnn ? rnn->layers : 0;
}
size_t bp_rnn_input_size(const bp_rnn *rnn) {
    return rnn ? rnn->input : 0;
}
size_t bp_rnn_hidden_size(const bp_rnn *rnn) {
    return rnn ? rnn->hidden : 0;
}
int bp_rnn_gates(const bp_rnn *rnn) {
    return rnn ? rnn->gates : 0;
}
int bp_rnn_split_gates(const bp_rnn *rnn) {
    return rnn ? rnn->split : 0;
}

const bp_matrix *bp_rnn_matrix(const bp_rnn *rnn, size_t layer, bp_rnn_operator op, int gate) {
    if (!rnn) {
        bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_matrix: rnn must not be NULL");
        return NULL;
    }
    if (layer >= rnn->layers) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "layer must be < %zu, got %zu", rnn->layers, layer);
        return NULL;
    }
    if (op != BP_RNN_INPUT && op != BP_RNN_RECURRENT) {
        bp__fail(BP_ERR_INVALID_ARGUMENT,
                 "op must be BP_RNN_INPUT (0) or BP_RNN_RECURRENT (1), got %d", (int)op);
        return NULL;
    }
    if (!rnn->split && gate != -1) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "gate must be -1 for an RNN with fused gates, got %d", gate);
        return NULL;
    }
    if (rnn->split && (gate < 0 || gate >= rnn->gates)) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "gate must be 0..%d for an RNN with split gates, got %d",
                 rnn->gates - 1, gate);
        return NULL;
    }
    const bp_rnn_layer *L = &rnn->layer[layer];
    int i = rnn->split ? gate : 0;
    return op == BP_RNN_INPUT ? L->ih[i] : L->hh[i];
}
