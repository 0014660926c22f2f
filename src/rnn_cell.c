/*
 * The float-mode cell updates in plain C: the definition of the operations
 * every ISA version (cpu/rnn_cell_*.c) repeats lane by lane. Each gate's
 * sigmoid or tanh runs over a contiguous array so that the compiler
 * vectorizes it for the baseline ISA (rnn_math.c).
 */
#include "rnn_internal.h"

static void lstm_portable(const float *xi, float *p, float *c, float *h, size_t H, size_t j0,
                          size_t j1) {
    size_t n = j1 - j0;
    for (int g = 0; g < 4; g++)
        for (size_t j = j0; j < j1; j++)
            p[g * H + j] = xi[g * H + j] + p[g * H + j];
    bp__rnn_sigmoid_array(p + j0, n);         /* i */
    bp__rnn_sigmoid_array(p + H + j0, n);     /* f */
    bp__rnn_tanh_array(p + 2 * H + j0, n);    /* g */
    bp__rnn_sigmoid_array(p + 3 * H + j0, n); /* o */
    for (size_t j = j0; j < j1; j++) {
        float cn = p[H + j] * c[j] + p[j] * p[2 * H + j];
        c[j] = cn;
        h[j] = cn;
    }
    bp__rnn_tanh_array(h + j0, n);
    for (size_t j = j0; j < j1; j++)
        h[j] = p[3 * H + j] * h[j];
}

static void gru_portable(const float *xi, float *p, const float *hp, float *h, size_t H, size_t j0,
                         size_t j1) {
    size_t n = j1 - j0;
    for (size_t j = j0; j < j1; j++) {
        p[j] = xi[j] + p[j];
        p[H + j] = xi[H + j] + p[H + j];
    }
    bp__rnn_sigmoid_array(p + j0, n);     /* r */
    bp__rnn_sigmoid_array(p + H + j0, n); /* z */
    for (size_t j = j0; j < j1; j++)
        p[2 * H + j] = xi[2 * H + j] + p[j] * p[2 * H + j];
    bp__rnn_tanh_array(p + 2 * H + j0, n); /* n */
    for (size_t j = j0; j < j1; j++)
        h[j] = (1.0f - p[H + j]) * p[2 * H + j] + p[H + j] * hp[j];
}

const bp_rnn_float_cell bp__rnn_cell_portable = {
    .name = "portable",
    .lstm = lstm_portable,
    .gru = gru_portable,
};
