/*
 * The RNN part of bp_gpu_conformance: LSTM and GRU stacks (bitplane_rnn.h)
 * run on each CUDA path must give h bit-identical to the CPU REFERENCE path,
 * in float and integer modes, with fused and split gates, across batch sizes
 * and plane counts, and with per-row plane counts (bp_rnn_options.row_planes).
 * The products are the same exact gemm on every backend and the elementwise
 * part runs on the host, so nothing may differ. A backend that refuses
 * per-row counts (BP_ERR_UNSUPPORTED) is reported as such, not as a pass.
 */
#include "bitplane.h"
#include "bitplane_rnn.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gpu_conformance_rnn(bp_context *ref, bp_context *gpu[2], const char *names[2], int quick,
                         uint64_t seed, int *passed, int *failed);

static uint64_t state;
static float uniform_pm(float s) { /* xorshift64*, in [-s, s) */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return s * (2.0f * (float)((state * 0x2545F4914F6CDD1Dull) >> 40) / 16777216.0f - 1.0f);
}

void gpu_conformance_rnn(bp_context *ref, bp_context *gpu[2], const char *names[2], int quick,
                         uint64_t seed, int *passed, int *failed) {
    static const struct {
        size_t in, hidden, layers, steps, batch;
    } shapes[] = {
        {33, 40, 2, 5, 3}, {64, 256, 1, 4, 1}, {100, 136, 2, 3, 17}, {512, 1024, 1, 2, 4}};
    size_t nshapes = quick ? 2 : sizeof shapes / sizeof shapes[0];
    state = seed | 1;
    for (size_t s = 0; s < nshapes; s++)
        for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
            for (int split = 0; split <= 1; split++) {
                size_t E = shapes[s].in, H = shapes[s].hidden, L = shapes[s].layers;
                size_t T = shapes[s].steps, B = shapes[s].batch;
                size_t G = cell == BP_RNN_LSTM ? 4 : 3, GH = G * H;
                bp_rnn_layer_weights lw[2];
                float *mem[2][4];
                for (size_t l = 0; l < L; l++) {
                    size_t in = l ? H : E, n[4] = {GH * in, GH * H, GH, GH};
                    for (int k = 0; k < 4; k++) {
                        mem[l][k] = malloc(n[k] * sizeof(float));
                        for (size_t i = 0; i < n[k]; i++)
                            mem[l][k][i] = uniform_pm(k < 2 ? 2.0f / (float)H : 0.1f);
                    }
                    lw[l] = (bp_rnn_layer_weights){mem[l][0], mem[l][1], mem[l][2], mem[l][3]};
                }
                /* Per-row counts 1..8 (every third row all 8), runs not
                 * aligned to row groups; used by the second RNN. */
                bp_rnn_row_planes rp[2];
                uint8_t *counts[2][2];
                for (size_t l = 0; l < L; l++) {
                    for (int k = 0; k < 2; k++) {
                        counts[l][k] = malloc(GH);
                        for (size_t r = 0; r < GH; r++)
                            counts[l][k][r] =
                                (uint8_t)(r % 3 == 0 ? 8 : 1 + (int)(4.0f + uniform_pm(3.99f)));
                    }
                    rp[l] = (bp_rnn_row_planes){counts[l][0], counts[l][1]};
                }
                bp_rnn *rnns[2] = {NULL, NULL};
                bp_status st = BP_OK;
                for (int counted = 0; counted <= 1 && !st; counted++) {
                    bp_rnn_options ro = BP_RNN_OPTIONS_INIT;
                    ro.split_gates = split;
                    ro.row_planes = counted ? rp : NULL;
                    st = bp_rnn_create(ref, (bp_rnn_cell)cell, L, E, H, lw, NULL, &ro,
                                       &rnns[counted]);
                }
                if (st) {
                    printf("FATAL: bp_rnn_create: %s\n", bp_last_error());
                    exit(1);
                }
                size_t nx = T * B * E, ny = T * B * H;
                float *x = malloc(nx * sizeof(float)), *a = malloc(ny * sizeof(float));
                float *b = malloc(ny * sizeof(float));
                for (size_t i = 0; i < nx; i++)
                    x[i] = uniform_pm(1.5f);
                for (int counted = 0; counted <= 1; counted++)
                    for (int mode = BP_RNN_FLOAT; mode <= BP_RNN_INTEGER; mode++)
                        for (int planes = 1; planes <= 8; planes *= quick ? 8 : 2) {
                            const bp_rnn *rnn = rnns[counted];
                            bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
                            bp_rnn_precision prec[2];
                            memset(prec, 0, sizeof prec);
                            run.planes_ih = planes;
                            run.planes_hh = 9 - planes;
                            run.act_bits = 2 + (int)((s + (size_t)planes) % 14);
                            run.mode = (bp_rnn_mode)mode;
                            if (split) { /* per-gate plane counts */
                                for (size_t l = 0; l < L; l++)
                                    for (size_t g = 0; g < G; g++)
                                        prec[l].planes_hh[g] =
                                            1 + (int)((g + l + (size_t)planes) % 8);
                                run.layers = prec;
                            }
                            if ((st = bp_rnn_forward(ref, rnn, x, T, B, NULL, NULL, a, NULL, NULL,
                                                     &run))) {
                                printf("FATAL: bp_rnn_forward (cpu/reference): %s\n",
                                       bp_last_error());
                                exit(1);
                            }
                            for (int k = 0; k < 2; k++) {
                                memset(b, 0, ny * sizeof(float));
                                st = bp_rnn_forward(gpu[k], rnn, x, T, B, NULL, NULL, b, NULL, NULL,
                                                    &run);
                                if (counted && st == BP_ERR_UNSUPPORTED) {
                                    printf("UNSUPPORTED: rnn with per-row plane counts on %s: %s\n",
                                           names[k], bp_last_error());
                                    continue;
                                }
                                int ok = st == BP_OK && memcmp(a, b, ny * sizeof(float)) == 0;
                                if (ok)
                                    (*passed)++;
                                else {
                                    (*failed)++;
                                    printf("FAIL: rnn %s %s split=%d row_planes=%d E=%zu H=%zu "
                                           "L=%zu T=%zu B=%zu mode=%d planes=%d act_bits=%d: %s\n",
                                           names[k], cell == BP_RNN_LSTM ? "lstm" : "gru", split,
                                           counted, E, H, L, T, B, mode, planes, run.act_bits,
                                           st ? bp_last_error() : "h differs from cpu/reference");
                                }
                            }
                        }
                free(x);
                free(a);
                free(b);
                bp_rnn_destroy(rnns[0]);
                bp_rnn_destroy(rnns[1]);
                for (size_t l = 0; l < L; l++) {
                    for (int k = 0; k < 4; k++)
                        free(mem[l][k]);
                    free(counts[l][0]);
                    free(counts[l][1]);
                }
            }
}
