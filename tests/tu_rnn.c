#include "tu_rnn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void tu_rnn_weights_init(tu_rnn_weights *w, tu_rng *rng, bp_rnn_cell cell, size_t layers, size_t in,
                         size_t H) {
    memset(w, 0, sizeof *w);
    if (layers > TU_RNN_MAX_LAYERS)
        abort(); /* a test's own mistake */
    w->cell = cell;
    w->gates = cell == BP_RNN_LSTM ? 4 : 3;
    w->layers = layers;
    w->in = in;
    w->H = H;
    w->GH = (size_t)w->gates * H;
    float s = 1.0f / sqrtf((float)H);
    for (size_t l = 0; l < layers; l++) {
        size_t li = l ? H : in;
        w->w_ih[l] = tu_xmalloc(w->GH * li * sizeof(float));
        w->w_hh[l] = tu_xmalloc(w->GH * H * sizeof(float));
        w->b_ih[l] = tu_xmalloc(w->GH * sizeof(float));
        w->b_hh[l] = tu_xmalloc(w->GH * sizeof(float));
        tu_fill_uniform(rng, w->w_ih[l], w->GH * li, -2 * s, 2 * s);
        tu_fill_uniform(rng, w->w_hh[l], w->GH * H, -2 * s, 2 * s);
        tu_fill_uniform(rng, w->b_ih[l], w->GH, -s, s);
        tu_fill_uniform(rng, w->b_hh[l], w->GH, -s, s);
        w->lw[l] = (bp_rnn_layer_weights){w->w_ih[l], w->w_hh[l], w->b_ih[l], w->b_hh[l]};
    }
}

void tu_rnn_weights_free(tu_rnn_weights *w) {
    for (size_t l = 0; l < w->layers; l++) {
        free(w->w_ih[l]);
        free(w->w_hh[l]);
        free(w->b_ih[l]);
        free(w->b_hh[l]);
    }
}

float *tu_gauss_array(tu_rng *rng, size_t n, float sigma) {
    float *a = tu_xmalloc((n ? n : 1) * sizeof(float));
    tu_fill_gauss(rng, a, n, sigma);
    return a;
}
