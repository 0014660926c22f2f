/*
 * bp_rnn_step_columns: one step for many streams at their own precisions.
 * Every column must equal, bit for bit, bp_rnn_step on that column alone at
 * its capped counts (LSTM and GRU, float and integer mode, fused and split
 * gates with per-gate counts, several steps so that the state carries), and
 * bad arguments get precise errors that leave the state untouched.
 */
#include "test_util.h"
#include "tu_rnn.h"

#include <bitplane_rnn.h>

#include "tu_criterion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(rnn_columns, .fini = tu_suite_fini);

enum { LAYERS = 2, IN = 11, H = 24, B = 7, T = 3 };

/* Options whose every count is capped at `cap` (0: unchanged): what a
 * column at column_planes = cap must equal when run alone. */
static bp_rnn_run_options capped(const bp_rnn_run_options *o, const bp_rnn_precision *layers,
                                 int gates, int bits, int cap, bp_rnn_precision *out) {
    bp_rnn_run_options r = *o;
    for (size_t l = 0; l < LAYERS; l++) {
        out[l] = layers[l];
        for (int g = 0; g < gates; g++) {
            int ih = layers[l].planes_ih[g] ? layers[l].planes_ih[g]
                     : o->planes_ih         ? o->planes_ih
                                            : bits;
            int hh = layers[l].planes_hh[g] ? layers[l].planes_hh[g]
                     : o->planes_hh         ? o->planes_hh
                                            : bits;
            out[l].planes_ih[g] = cap && cap < ih ? cap : ih;
            out[l].planes_hh[g] = cap && cap < hh ? cap : hh;
        }
    }
    r.layers = out;
    return r;
}

static void check_columns(bp_context *ctx, tu_rng *rng, bp_rnn_cell cell, int split,
                          bp_rnn_mode mode) {
    int gates = cell == BP_RNN_LSTM ? 4 : 3, bits = 8;
    bool lstm = cell == BP_RNN_LSTM;
    tu_rnn_weights w;
    tu_rnn_weights_init(&w, rng, cell, LAYERS, IN, H);
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    bp_rnn_options ro = BP_RNN_OPTIONS_INIT;
    ro.split_gates = split;
    bp_rnn *rnn = NULL;
    cr_assert(bp_rnn_create(ctx, cell, LAYERS, IN, H, w.lw, &q, &ro, &rnn) == BP_OK, "%s",
              bp_last_error());

    /* Layer 1 has its own counts (per gate when split); layer 0 takes the
     * run's planes_ih / planes_hh. */
    bp_rnn_precision layers[LAYERS] = {{.act_bits = 0}, {.act_bits = 0}};
    for (int g = 0; g < gates; g++) {
        layers[1].planes_ih[g] = split ? 3 + g : 5;
        layers[1].planes_hh[g] = split ? 7 - g : 4;
    }
    bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
    run.planes_ih = 6;
    run.planes_hh = 7;
    run.act_bits = 6;
    run.mode = mode;
    run.layers = layers;
    /* Every kind of entry: 0 (the options), below, equal to and above the
     * options' counts, and the extremes. */
    const int cols[B] = {0, 1, 3, 8, 5, 2, 6};

    size_t lbh = (size_t)LAYERS * B * H;
    float *x = tu_xmalloc((size_t)T * B * IN * sizeof(float));
    float *h = tu_xmalloc(lbh * sizeof(float)), *c = tu_xmalloc(lbh * sizeof(float));
    float *h1 = tu_xmalloc((size_t)LAYERS * H * sizeof(float));
    float *c1 = tu_xmalloc((size_t)LAYERS * H * sizeof(float));
    tu_fill_gauss(rng, x, (size_t)T * B * IN, 1.0f);
    tu_fill_gauss(rng, h, lbh, 0.4f);
    tu_fill_gauss(rng, c, lbh, 0.4f);
    /* The single-column references, each carried on its own. */
    float *hs = tu_xmalloc(lbh * sizeof(float)), *cs = tu_xmalloc(lbh * sizeof(float));
    memcpy(hs, h, lbh * sizeof(float));
    memcpy(cs, c, lbh * sizeof(float));

    for (size_t t = 0; t < T; t++) {
        const float *xt = x + t * B * IN;
        cr_assert(bp_rnn_step_columns(ctx, rnn, xt, B, h, lstm ? c : NULL, cols, &run) == BP_OK,
                  "%s", bp_last_error());
        for (size_t b = 0; b < B; b++) {
            for (size_t l = 0; l < LAYERS; l++) {
                memcpy(h1 + l * H, hs + (l * B + b) * H, H * sizeof(float));
                memcpy(c1 + l * H, cs + (l * B + b) * H, H * sizeof(float));
            }
            bp_rnn_precision prec[LAYERS];
            bp_rnn_run_options one = capped(&run, layers, gates, bits, cols[b], prec);
            cr_assert(bp_rnn_step(ctx, rnn, xt + b * IN, 1, h1, lstm ? c1 : NULL, &one) == BP_OK,
                      "%s", bp_last_error());
            for (size_t l = 0; l < LAYERS; l++) {
                memcpy(hs + (l * B + b) * H, h1 + l * H, H * sizeof(float));
                memcpy(cs + (l * B + b) * H, c1 + l * H, H * sizeof(float));
            }
        }
        size_t r, col;
        cr_assert(tu_first_mismatch(hs, h, H, (size_t)LAYERS * B, H, &r, &col) < 0,
                  "cell %d split %d mode %d step %zu: h of layer %zu column %zu (planes %d) "
                  "differs from the single call at unit %zu",
                  cell, split, mode, t, col / B, col % B, cols[col % B], r);
        if (lstm)
            cr_assert(memcmp(cs, c, lbh * sizeof(float)) == 0,
                      "cell %d split %d mode %d step %zu: c differs from the single calls", cell,
                      split, mode, t);
    }
    /* All columns at 0 is bp_rnn_step. */
    memcpy(hs, h, lbh * sizeof(float));
    memcpy(cs, c, lbh * sizeof(float));
    const int zeros[B] = {0};
    cr_assert(bp_rnn_step_columns(ctx, rnn, x, B, h, lstm ? c : NULL, zeros, &run) == BP_OK);
    cr_assert(bp_rnn_step(ctx, rnn, x, B, hs, lstm ? cs : NULL, &run) == BP_OK);
    cr_assert(memcmp(hs, h, lbh * sizeof(float)) == 0, "zero column counts differ from the step");

    free(x);
    free(h);
    free(c);
    free(h1);
    free(c1);
    free(hs);
    free(cs);
    bp_rnn_destroy(rnn);
    tu_rnn_weights_free(&w);
}

Test(rnn_columns, each_column_equals_its_own_step) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
        for (int split = 0; split <= 1; split++)
            for (int mode = BP_RNN_FLOAT; mode <= BP_RNN_INTEGER; mode++)
                check_columns(ctx, &rng, (bp_rnn_cell)cell, split, (bp_rnn_mode)mode);
    bp_context_destroy(ctx);
}

#define EXPECT(call, status, text)                                                                 \
    do {                                                                                           \
        bp_status st_ = (call);                                                                    \
        cr_assert(st_ == (status), "%s: got %s (%s)", #call, bp_status_string(st_),                \
                  bp_last_error());                                                                \
        cr_assert(strstr(bp_last_error(), (text)) != NULL, "%s: message '%s' lacks '%s'", #call,   \
                  bp_last_error(), (text));                                                        \
    } while (0)

Test(rnn_columns, bad_arguments_leave_the_state) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    tu_rnn_weights w;
    tu_rnn_weights_init(&w, &rng, BP_RNN_LSTM, LAYERS, IN, H);
    bp_rnn *rnn = NULL;
    cr_assert(bp_rnn_create(ctx, BP_RNN_LSTM, LAYERS, IN, H, w.lw, NULL, NULL, &rnn) == BP_OK);
    size_t lbh = (size_t)LAYERS * B * H;
    float *x = tu_xmalloc((size_t)B * IN * sizeof(float));
    float *h = tu_xmalloc(lbh * sizeof(float)), *c = tu_xmalloc(lbh * sizeof(float));
    float *h0 = tu_xmalloc(lbh * sizeof(float));
    tu_fill_gauss(&rng, x, (size_t)B * IN, 1.0f);
    tu_fill_gauss(&rng, h, lbh, 0.4f);
    tu_fill_gauss(&rng, c, lbh, 0.4f);
    memcpy(h0, h, lbh * sizeof(float));
    int cols[B] = {1, 2, 3, 4, 5, 6, 7};
    cols[4] = 9;
    EXPECT(bp_rnn_step_columns(ctx, rnn, x, B, h, c, cols, NULL), BP_ERR_OUT_OF_RANGE,
           "bp_rnn_step_columns: column_planes[4] must be 0 (the options' counts) or 1..8, got 9");
    cols[4] = -1;
    EXPECT(bp_rnn_step_columns(ctx, rnn, x, B, h, c, cols, NULL), BP_ERR_OUT_OF_RANGE,
           "column_planes[4]");
    cols[4] = 5;
    EXPECT(bp_rnn_step_columns(ctx, rnn, x, B, h, NULL, cols, NULL), BP_ERR_INVALID_ARGUMENT,
           "bp_rnn_step_columns: c must not be NULL for an LSTM");
    EXPECT(bp_rnn_step_columns(ctx, rnn, x, B, NULL, c, cols, NULL), BP_ERR_INVALID_ARGUMENT,
           "bp_rnn_step_columns: h must not be NULL");
    EXPECT(bp_rnn_step_columns(ctx, NULL, x, B, h, c, cols, NULL), BP_ERR_INVALID_ARGUMENT,
           "bp_rnn_step_columns: rnn must not be NULL");
    EXPECT(bp_rnn_step_columns(ctx, rnn, x, 0, h, c, cols, NULL), BP_ERR_INVALID_ARGUMENT, "batch");
    bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
    run.planes_hh = 9;
    EXPECT(bp_rnn_step_columns(ctx, rnn, x, B, h, c, cols, &run), BP_ERR_OUT_OF_RANGE,
           "planes_hh must be 0 (all) or 1..8, got 9");
    x[3] = NAN;
    EXPECT(bp_rnn_step_columns(ctx, rnn, x, B, h, c, cols, NULL), BP_ERR_NON_FINITE,
           "x: element 3 is NaN");
    cr_assert(memcmp(h, h0, lbh * sizeof(float)) == 0, "a refused call changed h");
    free(x);
    free(h);
    free(c);
    free(h0);
    bp_rnn_destroy(rnn);
    tu_rnn_weights_free(&w);
    bp_context_destroy(ctx);
}
