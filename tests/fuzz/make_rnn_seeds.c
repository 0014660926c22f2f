/*
 * Writes the RNN fuzzer's seed corpus: valid RNN files of both cells, fused
 * and split gates, one to three layers, several plane counts and both
 * quantizers, one with per-row plane counts (format version 2), so that
 * mutations start from inputs that pass every checksum and field check.
 * Shapes are small: libFuzzer's default maximum input length keeps them whole.
 * Usage: fuzz_make_rnn_seeds OUTDIR
 */
#include "bitplane_rnn.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    static const struct {
        bp_rnn_cell cell;
        size_t layers, in, hidden;
        int bits, split;
        bp_quant_method method;
        int row_planes; /* 1: counts (r % bits) + 1 per row of every matrix */
    } shapes[] = {
        {BP_RNN_LSTM, 1, 3, 2, 2, 0, BP_QUANT_UNIFORM, 0},
        {BP_RNN_GRU, 1, 2, 3, 4, 0, BP_QUANT_RESIDUAL, 0},
        {BP_RNN_LSTM, 2, 5, 3, 3, 1, BP_QUANT_UNIFORM, 0},
        {BP_RNN_GRU, 3, 1, 2, 8, 1, BP_QUANT_UNIFORM, 0},
        {BP_RNN_LSTM, 1, 4, 4, 4, 0, BP_QUANT_UNIFORM, 1},
        {BP_RNN_GRU, 2, 3, 2, 3, 1, BP_QUANT_RESIDUAL, 1},
    };
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = BP_BACKEND_CPU;
    o.threads = 1;
    bp_context *ctx = NULL;
    if (bp_context_create(&o, &ctx) != BP_OK) {
        fprintf(stderr, "%s\n", bp_last_error());
        return 1;
    }
    unsigned state = 4321u;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t gates = shapes[s].cell == BP_RNN_LSTM ? 4 : 3, GH = gates * shapes[s].hidden;
        float *arrays[3][4];
        bp_rnn_layer_weights lw[3];
        uint8_t counts[16];
        for (size_t r = 0; r < GH; r++)
            counts[r] = (uint8_t)(r % (size_t)shapes[s].bits + 1);
        bp_rnn_row_planes rp[3];
        for (size_t l = 0; l < shapes[s].layers; l++) {
            size_t in = l == 0 ? shapes[s].in : shapes[s].hidden;
            size_t n[4] = {GH * in, GH * shapes[s].hidden, GH, GH};
            for (int a = 0; a < 4; a++) {
                arrays[l][a] = malloc(n[a] * sizeof(float));
                if (!arrays[l][a])
                    return 1;
                for (size_t i = 0; i < n[a]; i++) {
                    state = state * 1664525u + 1013904223u;
                    arrays[l][a][i] = (float)((int)(state >> 8) % 2001 - 1000) / 2000.0f + 0.001f;
                }
            }
            lw[l] = (bp_rnn_layer_weights){arrays[l][0], arrays[l][1], arrays[l][2], arrays[l][3]};
            rp[l] = (bp_rnn_row_planes){counts, counts};
        }
        bp_quant_options q = BP_QUANT_OPTIONS_INIT;
        q.bits = shapes[s].bits;
        q.method = shapes[s].method;
        bp_rnn_options ro = BP_RNN_OPTIONS_INIT;
        ro.split_gates = shapes[s].split;
        ro.row_planes = shapes[s].row_planes ? rp : NULL;
        bp_rnn *rnn = NULL;
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%zu.bprnn", argv[1], s);
        if (bp_rnn_create(ctx, shapes[s].cell, shapes[s].layers, shapes[s].in, shapes[s].hidden, lw,
                          &q, &ro, &rnn) != BP_OK ||
            bp_rnn_save(rnn, path) != BP_OK) {
            fprintf(stderr, "%s: %s\n", path, bp_last_error());
            return 1;
        }
        bp_rnn_destroy(rnn);
        for (size_t l = 0; l < shapes[s].layers; l++)
            for (int a = 0; a < 4; a++)
                free(arrays[l][a]);
    }
    bp_context_destroy(ctx);
    return 0;
}
