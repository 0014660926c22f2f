/*
 * Shared fixtures of the RNN tests: random PyTorch-layout weights of an
 * LSTM/GRU stack and Gaussian input arrays.
 */
#ifndef BP_TU_RNN_H
#define BP_TU_RNN_H

#include "bitplane_rnn.h"
#include "test_util.h"

#define TU_RNN_MAX_LAYERS 3

/* Weights uniform in +-2/sqrt(H), biases in +-1/sqrt(H) (never zero), one
 * allocation per array; lw is what bp_rnn_create takes. */
typedef struct tu_rnn_weights {
    bp_rnn_cell cell;
    int gates;
    size_t layers, in, H, GH;
    float *w_ih[TU_RNN_MAX_LAYERS], *w_hh[TU_RNN_MAX_LAYERS];
    float *b_ih[TU_RNN_MAX_LAYERS], *b_hh[TU_RNN_MAX_LAYERS];
    bp_rnn_layer_weights lw[TU_RNN_MAX_LAYERS];
} tu_rnn_weights;

void tu_rnn_weights_init(tu_rnn_weights *w, tu_rng *rng, bp_rnn_cell cell, size_t layers, size_t in,
                         size_t H);
void tu_rnn_weights_free(tu_rnn_weights *w);

/* n floats ~ N(0, sigma^2) (at least one element allocated); free it. */
float *tu_gauss_array(tu_rng *rng, size_t n, float sigma);

#endif
