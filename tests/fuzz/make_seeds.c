/*
 * Writes the fuzzer's seed corpus: valid matrix files of several shapes,
 * plane counts and both quantizers, some with per-row plane counts (version
 * 3), so that mutations start from inputs that pass the checksum and every
 * field check.
 * Usage: fuzz_make_seeds OUTDIR
 */
#include "bitplane.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    static const struct {
        size_t rows, cols;
        int bits;
        bp_quant_method method;
        int row_planes; /* 1: counts (r % bits) + 1 per row, version 3 */
    } shapes[] = {{1, 1, 1, BP_QUANT_UNIFORM, 0},   {3, 5, 2, BP_QUANT_RESIDUAL, 0},
                  {16, 32, 4, BP_QUANT_UNIFORM, 0}, {17, 33, 8, BP_QUANT_RESIDUAL, 0},
                  {2, 64, 16, BP_QUANT_UNIFORM, 0}, {5, 100, 3, BP_QUANT_UNIFORM, 0},
                  {21, 40, 4, BP_QUANT_UNIFORM, 1}, {18, 70, 3, BP_QUANT_RESIDUAL, 1}};
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = BP_BACKEND_CPU;
    o.threads = 1;
    bp_context *ctx = NULL;
    if (bp_context_create(&o, &ctx) != BP_OK) {
        fprintf(stderr, "%s\n", bp_last_error());
        return 1;
    }
    unsigned state = 12345u;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t n = shapes[s].rows * shapes[s].cols;
        float *w = malloc(n * sizeof *w);
        if (!w)
            return 1;
        for (size_t i = 0; i < n; i++) {
            state = state * 1664525u + 1013904223u;
            w[i] = (float)((int)(state >> 8) % 2001 - 1000) / 250.0f + 0.001f;
        }
        bp_quant_options q = BP_QUANT_OPTIONS_INIT;
        q.bits = shapes[s].bits;
        q.method = shapes[s].method;
        uint8_t counts[32];
        for (size_t r = 0; r < shapes[s].rows && r < sizeof counts; r++)
            counts[r] = (uint8_t)(r % (size_t)shapes[s].bits + 1);
        q.row_planes = shapes[s].row_planes ? counts : NULL;
        bp_matrix *m = NULL;
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%zu.bpm", argv[1], s);
        if (bp_matrix_quantize(ctx, w, shapes[s].rows, shapes[s].cols, shapes[s].cols, &q, &m) !=
                BP_OK ||
            bp_matrix_save(m, path) != BP_OK) {
            fprintf(stderr, "%s: %s\n", path, bp_last_error());
            return 1;
        }
        bp_matrix_destroy(m);
        free(w);
    }
    bp_context_destroy(ctx);
    return 0;
}
