/*
 * LSTM and GRU layers (bitplane_rnn.h): against a float64 reference of
 * PyTorch's equations on the effective (dequantized) weights; sequence calls
 * equal step calls bit for bit; fused and split gates agree; every backend
 * and CPU path gives identical h; the integer mode's tables and its
 * distance from the float mode; save/load round trips, corruption and every
 * bad argument.
 */
#include "test_util.h"
#include "tu_rnn.h"
#include "rnn_internal.h"

#include "tu_criterion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(rnn, .fini = tu_suite_fini);

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static bp_rnn *make_rnn(bp_context *ctx, const tu_rnn_weights *md, int split,
                        bp_quant_method method) {
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.method = method;
    bp_rnn_options o = BP_RNN_OPTIONS_INIT;
    o.split_gates = split;
    bp_rnn *rnn = NULL;
    bp_status st = bp_rnn_create(ctx, md->cell, md->layers, md->in, md->H, md->lw, &q, &o, &rnn);
    cr_assert(st == BP_OK, "bp_rnn_create: %s", bp_last_error());
    return rnn;
}

static double sig(double x) {
    return 1.0 / (1.0 + exp(-x));
}

/*
 * float64 PyTorch equations with the effective weights at the call's plane
 * counts (per layer, operator and gate, from bp_rnn_matrix + dequantize).
 */
static void reference(const bp_rnn *rnn, const tu_rnn_weights *md, const bp_rnn_precision *prec,
                      const float *x, size_t T, size_t B, const float *h0, const float *c0,
                      double *y) {
    size_t H = md->H, G = (size_t)md->gates, GH = G * H;
    size_t maxin = md->in > H ? md->in : H;
    float *w = tu_xmalloc(GH * maxin * sizeof(float));
    double *in = tu_xmalloc(T * B * maxin * sizeof(double));
    double *out = tu_xmalloc(T * B * H * sizeof(double));
    double *h = tu_xmalloc(B * H * sizeof(double)), *c = tu_xmalloc(B * H * sizeof(double));
    double *pre = tu_xmalloc(GH * sizeof(double));
    float *wh = tu_xmalloc(GH * H * sizeof(float));
    for (size_t i = 0; i < T * B * md->in; i++)
        in[i] = x[i];
    for (size_t l = 0; l < md->layers; l++) {
        size_t li = l ? H : md->in;
        int mats = bp_rnn_split_gates(rnn) ? md->gates : 1;
        size_t mrows = mats > 1 ? H : GH;
        for (int g = 0; g < mats; g++) {
            int gate = mats > 1 ? g : -1;
            cr_assert(bp_matrix_dequantize(NULL, bp_rnn_matrix(rnn, l, BP_RNN_INPUT, gate),
                                           prec[l].planes_ih[g], w + g * mrows * li, li) == BP_OK);
            cr_assert(bp_matrix_dequantize(NULL, bp_rnn_matrix(rnn, l, BP_RNN_RECURRENT, gate),
                                           prec[l].planes_hh[g], wh + g * mrows * H, H) == BP_OK);
        }
        for (size_t i = 0; i < B * H; i++) {
            h[i] = h0 ? h0[l * B * H + i] : 0.0;
            c[i] = c0 ? c0[l * B * H + i] : 0.0;
        }
        for (size_t t = 0; t < T; t++)
            for (size_t b = 0; b < B; b++) {
                const double *xt = in + (t * B + b) * li;
                double *hb = h + b * H, *cb = c + b * H;
                double gi[4 * 64], gh[4 * 64];
                cr_assert(GH <= NELEM(gi));
                for (size_t r = 0; r < GH; r++) {
                    double a = md->b_ih[l][r], e = md->b_hh[l][r];
                    for (size_t k = 0; k < li; k++)
                        a += (double)w[r * li + k] * xt[k];
                    for (size_t k = 0; k < H; k++)
                        e += (double)wh[r * H + k] * hb[k];
                    gi[r] = a;
                    gh[r] = e;
                    pre[r] = a + e;
                }
                for (size_t j = 0; j < H; j++) {
                    if (md->cell == BP_RNN_LSTM) {
                        double i = sig(pre[j]), f = sig(pre[H + j]), g = tanh(pre[2 * H + j]),
                               o = sig(pre[3 * H + j]);
                        cb[j] = f * cb[j] + i * g;
                        out[(t * B + b) * H + j] = o * tanh(cb[j]);
                    } else {
                        double r = sig(gi[j] + gh[j]), z = sig(gi[H + j] + gh[H + j]);
                        double n = tanh(gi[2 * H + j] + r * gh[2 * H + j]);
                        out[(t * B + b) * H + j] = (1 - z) * n + z * hb[j];
                    }
                }
                memcpy(hb, out + (t * B + b) * H, H * sizeof(double));
            }
        memcpy(in, out, T * B * H * sizeof(double));
    }
    memcpy(y, out, T * B * H * sizeof(double));
    free(w);
    free(wh);
    free(in);
    free(out);
    free(h);
    free(c);
    free(pre);
}

static double max_abs_diff(const double *ref, const float *got, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(ref[i] - got[i]));
    return m;
}

static bp_rnn_precision uniform_precision(int gates, int planes_ih, int planes_hh, int act_bits,
                                          int bits) {
    bp_rnn_precision p = {.act_bits = act_bits};
    for (int g = 0; g < gates; g++) {
        p.planes_ih[g] = planes_ih ? planes_ih : bits;
        p.planes_hh[g] = planes_hh ? planes_hh : bits;
    }
    return p;
}

/* ---- float mode against the float64 reference ------------------------------------ */

Test(rnn, float_mode_matches_pytorch_equations) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
        for (int split = 0; split <= 1; split++) {
            tu_rnn_weights md;
            size_t T = 6, B = 3, layers = 2;
            tu_rnn_weights_init(&md, &rng, (bp_rnn_cell)cell, layers, 13, 16);
            bp_rnn *rnn = make_rnn(ctx, &md, split, BP_QUANT_UNIFORM);
            float *x = tu_gauss_array(&rng, T * B * md.in, 1.0f);
            float *h0 = tu_gauss_array(&rng, layers * B * md.H, 0.3f);
            float *c0 = cell == BP_RNN_LSTM ? tu_gauss_array(&rng, layers * B * md.H, 0.5f) : NULL;
            float *y = tu_xmalloc(T * B * md.H * sizeof(float));
            double *want = tu_xmalloc(T * B * md.H * sizeof(double));
            /* Per-layer, per-operator precision; per-gate too when split. */
            bp_rnn_precision prec[2] = {uniform_precision(md.gates, 3, 8, 16, 8),
                                        uniform_precision(md.gates, 8, 5, 16, 8)};
            if (split) {
                prec[0].planes_ih[1] = 6;
                prec[1].planes_hh[2] = 2;
            }
            bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
            run.layers = prec;
            cr_assert(bp_rnn_forward(ctx, rnn, x, T, B, h0, c0, y, NULL, NULL, &run) == BP_OK, "%s",
                      bp_last_error());
            reference(rnn, &md, prec, x, T, B, h0, c0, want);
            double err = max_abs_diff(want, y, T * B * md.H);
            /* act_bits 16 leaves the activations' rounding (2^-16 relative)
             * and float32 arithmetic: measured around 1e-5. */
            cr_assert(err < 2e-4, "cell %d split %d: max |h - ref| = %g (seed %llu)", cell, split,
                      err, (unsigned long long)seed);
            free(x);
            free(h0);
            free(c0);
            free(y);
            free(want);
            bp_rnn_destroy(rnn);
            tu_rnn_weights_free(&md);
        }
    bp_context_destroy(ctx);
}

/* ---- sequence = steps; fused = split; h_n/c_n ------------------------------------ */

static void check_sequence_equals_steps(bp_context *ctx, tu_rng *rng, uint64_t seed,
                                        bp_rnn_cell cell, bp_rnn_mode mode) {
    tu_rnn_weights md;
    size_t T = 5, B = 2, layers = 3;
    tu_rnn_weights_init(&md, rng, cell, layers, 9, 20);
    bp_rnn *fused = make_rnn(ctx, &md, 0, BP_QUANT_UNIFORM);
    bp_rnn *split = make_rnn(ctx, &md, 1, BP_QUANT_UNIFORM);
    size_t bh = B * md.H, lbh = layers * bh;
    bool lstm = cell == BP_RNN_LSTM;
    float *x = tu_gauss_array(rng, T * B * md.in, 1.0f);
    float *h0 = tu_gauss_array(rng, lbh, 0.4f);
    float *c0 = lstm ? tu_gauss_array(rng, lbh, 0.4f) : NULL;
    float *y = tu_xmalloc(T * bh * sizeof(float)), *y2 = tu_xmalloc(T * bh * sizeof(float));
    float *hn = tu_xmalloc(lbh * sizeof(float)), *cn = tu_xmalloc(lbh * sizeof(float));
    float *h = tu_xmalloc(lbh * sizeof(float)), *c = tu_xmalloc(lbh * sizeof(float));
    bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
    run.planes_ih = 4;
    run.planes_hh = 3;
    run.act_bits = 6;
    run.mode = mode;
    cr_assert(bp_rnn_forward(ctx, fused, x, T, B, h0, c0, y, hn, lstm ? cn : NULL, &run) == BP_OK,
              "%s", bp_last_error());
    memcpy(h, h0, lbh * sizeof(float));
    if (lstm)
        memcpy(c, c0, lbh * sizeof(float));
    for (size_t t = 0; t < T; t++) {
        cr_assert(bp_rnn_step(ctx, fused, x + t * B * md.in, B, h, lstm ? c : NULL, &run) == BP_OK,
                  "%s", bp_last_error());
        size_t r, col;
        long bad = tu_first_mismatch(y + t * bh, h + (layers - 1) * bh, md.H, B, md.H, &r, &col);
        cr_assert(bad < 0,
                  "cell %d mode %d: step %zu differs from the sequence at unit %zu (seed %llu)",
                  cell, mode, t, r, (unsigned long long)seed);
    }
    cr_assert(memcmp(h, hn, lbh * sizeof(float)) == 0, "h_n differs from stepping");
    if (lstm)
        cr_assert(memcmp(c, cn, lbh * sizeof(float)) == 0, "c_n differs from stepping");
    /* Split gates store the same rows: identical results at equal planes. */
    cr_assert(bp_rnn_forward(ctx, split, x, T, B, h0, c0, y2, NULL, NULL, &run) == BP_OK, "%s",
              bp_last_error());
    cr_assert(memcmp(y, y2, T * bh * sizeof(float)) == 0,
              "cell %d mode %d: split gates differ from fused (seed %llu)", cell, mode,
              (unsigned long long)seed);
    /* Outputs may alias inputs: continue a stream in place. */
    memcpy(h, h0, lbh * sizeof(float));
    if (lstm)
        memcpy(c, c0, lbh * sizeof(float));
    cr_assert(bp_rnn_forward(ctx, fused, x, T, B, h, lstm ? c : NULL, y2, h, lstm ? c : NULL,
                             &run) == BP_OK);
    cr_assert(memcmp(h, hn, lbh * sizeof(float)) == 0, "in-place h_n differs");
    free(x);
    free(h0);
    free(c0);
    free(y);
    free(y2);
    free(hn);
    free(cn);
    free(h);
    free(c);
    bp_rnn_destroy(fused);
    bp_rnn_destroy(split);
    tu_rnn_weights_free(&md);
}

Test(rnn, sequence_equals_steps_and_split_equals_fused) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
        for (int mode = BP_RNN_FLOAT; mode <= BP_RNN_INTEGER; mode++)
            check_sequence_equals_steps(ctx, &rng, seed, (bp_rnn_cell)cell, (bp_rnn_mode)mode);
    bp_context_destroy(ctx);
}

/* ---- every backend and CPU path, threads 1 and 2: identical h --------------------- */

static const tu_target kTargets[] = {TU_ALL_TARGETS};

ParameterizedTestParameters(rnn, backends_identical) {
    return cr_make_param_array(tu_target, (tu_target *)kTargets + 1, NELEM(kTargets) - 1);
}

ParameterizedTest(tu_target *target, rnn, backends_identical, .timeout = 300) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    for (int threads = 1; threads <= 2; threads++) {
        bp_context *ctx = tu_target_context(target, threads);
        for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
            for (int mode = BP_RNN_FLOAT; mode <= BP_RNN_INTEGER; mode++) {
                tu_rnn_weights md;
                /* H 136 x batch 128 crosses the threshold for threaded
                 * elementwise work. */
                size_t T = threads == 2 ? 2 : 4, B = threads == 2 ? 128 : 3;
                size_t layers = threads == 2 ? 1 : 2;
                tu_rnn_weights_init(&md, &rng, (bp_rnn_cell)cell, layers, 33,
                                    threads == 2 ? 136 : 40);
                bp_rnn *rnn = make_rnn(ref, &md, 0, BP_QUANT_UNIFORM);
                float *x = tu_gauss_array(&rng, T * B * md.in, 1.0f);
                size_t n = T * B * md.H;
                float *a = tu_xmalloc(n * sizeof(float)), *b = tu_xmalloc(n * sizeof(float));
                bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
                run.planes_ih = 5;
                run.planes_hh = 3;
                run.mode = (bp_rnn_mode)mode;
                cr_assert(bp_rnn_forward(ref, rnn, x, T, B, NULL, NULL, a, NULL, NULL, &run) ==
                              BP_OK,
                          "%s", bp_last_error());
                cr_assert(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, b, NULL, NULL, &run) ==
                              BP_OK,
                          "%s: %s", tu_target_name(target), bp_last_error());
                size_t r, col;
                long bad = tu_first_mismatch(a, b, md.H, T * B, md.H, &r, &col);
                cr_assert(bad < 0,
                          "%s threads %d cell %d mode %d: h differs from the reference path "
                          "at unit %zu, column %zu (seed %llu)",
                          tu_target_name(target), threads, cell, mode, r, col,
                          (unsigned long long)seed);
                free(x);
                free(a);
                free(b);
                bp_rnn_destroy(rnn);
                tu_rnn_weights_free(&md);
            }
        bp_context_destroy(ctx);
    }
    bp_context_destroy(ref);
}

/* ---- elementwise numerics ---------------------------------------------------------- */

Test(rnn, own_sigmoid_and_tanh_accuracy) {
    double es = 0, et = 0;
    for (int i = -200000; i <= 200000; i++) {
        float x = (float)i * 1e-4f;
        es = fmax(es, fabs(bp__rnn_sigmoid(x) - sig(x)));
        et = fmax(et, fabs(bp__rnn_tanh(x) - tanh((double)x)));
    }
    cr_assert(es < 2e-7 && et < 3e-7, "max abs error sigmoid %g, tanh %g", es, et);
    cr_assert(bp__rnn_tanh(100.0f) == 1.0f && bp__rnn_tanh(-100.0f) == -1.0f);
    cr_assert(bp__rnn_sigmoid(-1000.0f) >= 0.0f && bp__rnn_sigmoid(1000.0f) == 1.0f);
    cr_assert(bp__rnn_tanh(INFINITY) == 1.0f && bp__rnn_sigmoid(-INFINITY) >= 0.0f);
}

/* A float for the cell tests: uniform in [-20, 20] (where every bit of the
 * exp polynomial shows) half the time, else special values around the exp
 * clamp (+-87, +-88, and +-44 for tanh's 2x), zeros and subnormals, or a
 * random sign and exponent in 2^-140..2^100 (finite sums and products
 * throughout). */
static float wide_float(tu_rng *rng) {
    static const float special[] = {0.0f,   -0.0f,   87.0f,  -87.0f,  88.0f,  -88.0f, 87.5f,
                                    -87.5f, 88.5f,   -88.5f, 44.0f,   -44.0f, 43.75f, -44.25f,
                                    1e-45f, -1e-45f, 1e-40f, -3e-39f, 0.5f,   -1.0f,  20.0f};
    uint64_t r = tu_next(rng);
    if (r % 2 == 0)
        return (float)(40.0 * tu_uniform(rng) - 20.0);
    if (r % 8 == 1)
        return special[(r >> 8) % NELEM(special)];
    float m = (float)(1.0 + tu_uniform(rng));
    float v = ldexpf(m, (int)tu_range(rng, 0, 240) - 140);
    return r & 2 ? -v : v;
}

Test(rnn, float_cell_versions_identical) {
    /* Every float-mode cell version this CPU runs gives the portable code's
     * bits on wide inputs, with tails (H 37) and without (H 64). */
    static const bp_cpu_kernel kernels[] = {BP_CPU_KERNEL_AUTO, BP_CPU_KERNEL_AVX2,
                                            BP_CPU_KERNEL_AVX512, BP_CPU_KERNEL_NEON};
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    for (size_t H = 37; H <= 64; H += 27) {
        size_t n = 4 * H;
        float *xi = tu_xmalloc(n * sizeof(float)), *p0 = tu_xmalloc(n * sizeof(float));
        float *p = tu_xmalloc(n * sizeof(float)), *c0 = tu_xmalloc(H * sizeof(float));
        float *c = tu_xmalloc(H * sizeof(float)), *cr = tu_xmalloc(H * sizeof(float));
        float *h = tu_xmalloc(H * sizeof(float)), *hr = tu_xmalloc(H * sizeof(float));
        for (int round = 0; round < 200; round++) {
            for (size_t i = 0; i < n; i++) {
                xi[i] = wide_float(&rng);
                p0[i] = wide_float(&rng);
            }
            for (size_t j = 0; j < H; j++)
                c0[j] = wide_float(&rng);
            /* j0 > 0 covers a task's slice of the units. */
            size_t j0 = round % 2 ? 0 : 3;
            for (size_t k = 0; k < NELEM(kernels); k++) {
                const bp_rnn_float_cell *cell = bp__rnn_float_cell_for(kernels[k]);
                for (int gru = 0; gru <= 1; gru++) {
                    memcpy(p, p0, n * sizeof(float));
                    memcpy(cr, c0, H * sizeof(float));
                    memset(hr, 0, H * sizeof(float));
                    if (gru)
                        bp__rnn_cell_portable.gru(xi, p, c0, hr, H, j0, H);
                    else
                        bp__rnn_cell_portable.lstm(xi, p, cr, hr, H, j0, H);
                    memcpy(p, p0, n * sizeof(float));
                    memcpy(c, c0, H * sizeof(float));
                    memset(h, 0, H * sizeof(float));
                    if (gru)
                        cell->gru(xi, p, c0, h, H, j0, H);
                    else
                        cell->lstm(xi, p, c, h, H, j0, H);
                    cr_assert(memcmp(h, hr, H * sizeof(float)) == 0 &&
                                  memcmp(c, cr, H * sizeof(float)) == 0,
                              "%s %s cell differs from the portable one (H %zu, seed %llu)",
                              cell->name, gru ? "GRU" : "LSTM", H, (unsigned long long)seed);
                }
            }
        }
        free(xi);
        free(p0);
        free(p);
        free(c0);
        free(c);
        free(cr);
        free(h);
        free(hr);
    }
}

Test(rnn, integer_cell_versions_identical) {
    /* Every integer-mode cell version this CPU runs gives the portable
     * code's states and h: random Q3.12 projections and states over their
     * whole int16 ranges, product outputs across and beyond Q3.12's range
     * (saturating) and on its rounding ties, with tails (H 37) and without
     * (H 64), and from unit 3 (a task's slice). */
    static const bp_cpu_kernel kernels[] = {BP_CPU_KERNEL_AUTO, BP_CPU_KERNEL_AVX2,
                                            BP_CPU_KERNEL_AVX512, BP_CPU_KERNEL_NEON};
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    for (size_t H = 37; H <= 64; H += 27) {
        size_t n = 4 * H;
        int16_t *xq = tu_xmalloc(n * sizeof(int16_t)), *h0 = tu_xmalloc(H * sizeof(int16_t));
        int16_t *c0 = tu_xmalloc(H * sizeof(int16_t)), *hq[2], *cq[2];
        float *p = tu_xmalloc(n * sizeof(float)), *h[2];
        for (int v = 0; v < 2; v++) {
            hq[v] = tu_xmalloc(H * sizeof(int16_t));
            cq[v] = tu_xmalloc(H * sizeof(int16_t));
            h[v] = tu_xmalloc(H * sizeof(float));
        }
        for (int round = 0; round < 300; round++) {
            for (size_t i = 0; i < n; i++) {
                xq[i] = (int16_t)(tu_next(&rng) & 0xffff);
                float g;
                tu_fill_gauss(&rng, &g, 1, round % 3 == 0 ? 12.0f : 3.0f);
                /* A third on Q3.12 rounding ties. */
                p[i] = tu_next(&rng) % 3
                           ? g
                           : ((float)(int32_t)(tu_next(&rng) % 80000) - 40000.5f) / 4096.0f;
            }
            for (size_t j = 0; j < H; j++) {
                h0[j] = (int16_t)((int32_t)(tu_next(&rng) % 65535) - 32767);
                c0[j] = (int16_t)(tu_next(&rng) & 0xffff);
            }
            size_t j0 = round % 2 ? 0 : 3;
            for (size_t k = 0; k < NELEM(kernels); k++) {
                const bp_rnn_int_cell *cells[2] = {&bp__rnn_int_cell_portable,
                                                   bp__rnn_int_cell_for(kernels[k])};
                for (int gru = 0; gru <= 1; gru++) {
                    for (int v = 0; v < 2; v++) {
                        memcpy(hq[v], h0, H * sizeof(int16_t));
                        memcpy(cq[v], c0, H * sizeof(int16_t));
                        memset(h[v], 0, H * sizeof(float));
                        if (gru)
                            cells[v]->gru(xq, p, hq[v], h[v], H, j0, H);
                        else
                            cells[v]->lstm(xq, p, hq[v], cq[v], h[v], H, j0, H);
                    }
                    cr_assert(memcmp(h[0], h[1], H * sizeof(float)) == 0 &&
                                  memcmp(hq[0], hq[1], H * sizeof(int16_t)) == 0 &&
                                  memcmp(cq[0], cq[1], H * sizeof(int16_t)) == 0,
                              "%s integer %s cell differs from the portable one (H %zu, seed "
                              "%llu)",
                              cells[1]->name, gru ? "GRU" : "LSTM", H, (unsigned long long)seed);
                }
            }
        }
        free(xq);
        free(h0);
        free(c0);
        free(p);
        for (int v = 0; v < 2; v++) {
            free(hq[v]);
            free(cq[v]);
            free(h[v]);
        }
    }
}

Test(rnn, integer_tables_accuracy) {
    /* Every Q3.12 input: Q0.15 output within the stated bounds. */
    int worst_t = 0, worst_s = 0;
    for (int32_t x = -32768; x <= 32767; x++) {
        double v = x / 4096.0;
        int32_t t = bp__rnn_tanh_q15(x), s = bp__rnn_sigmoid_q15(x);
        int dt = abs(t - (int)lrint(fmin(tanh(v) * 32768.0, 32767.0)));
        int ds = abs(s - (int)lrint(fmin(sig(v) * 32768.0, 32767.0)));
        worst_t = dt > worst_t ? dt : worst_t;
        worst_s = ds > worst_s ? ds : worst_s;
        cr_assert(t >= -32767 && t <= 32767 && s >= 0 && s <= 32767);
        cr_assert(x == 0 || bp__rnn_tanh_q15(-x) == -t || x == -32768);
    }
    cr_assert(worst_t <= 4 && worst_s <= 1, "tanh off by %d LSB, sigmoid by %d", worst_t, worst_s);
    cr_assert(bp__rnn_q312(1.0f) == 4096 && bp__rnn_q312(-100.0f) == -32768 &&
              bp__rnn_q312(100.0f) == 32767 && bp__rnn_q312(0.5f / 4096.0f) == 0 &&
              bp__rnn_q312(1.5f / 4096.0f) == 2);
    /* Q3.12 conversion equals rintf of the clamped product on every tie and
     * its neighbours across the range, and on random floats. */
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    for (int32_t k = -33000; k <= 33000; k++)
        for (int d = -1; d <= 1; d++) {
            float v = nextafterf((k + 0.5f) / 4096.0f, d < 0 ? -INFINITY : INFINITY);
            v = d == 0 ? (k + 0.5f) / 4096.0f : v;
            float s = fminf(fmaxf(v * 4096.0f, -32768.0f), 32767.0f);
            cr_assert(bp__rnn_q312(v) == (int32_t)rintf(s), "q312(%a)", (double)v);
        }
    for (int i = 0; i < 100000; i++) {
        float v;
        tu_fill_gauss(&rng, &v, 1, 4.0f);
        float s = fminf(fmaxf(v * 4096.0f, -32768.0f), 32767.0f);
        cr_assert(bp__rnn_q312(v) == (int32_t)rintf(s), "q312(%a)", (double)v);
    }
}

Test(rnn, integer_mode_stays_near_float_mode) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++) {
        tu_rnn_weights md;
        size_t T = 32, B = 4;
        tu_rnn_weights_init(&md, &rng, (bp_rnn_cell)cell, 2, 24, 48);
        bp_rnn *rnn = make_rnn(ctx, &md, 0, BP_QUANT_UNIFORM);
        float *x = tu_gauss_array(&rng, T * B * md.in, 1.0f);
        size_t n = T * B * md.H;
        float *f = tu_xmalloc(n * sizeof(float)), *q = tu_xmalloc(n * sizeof(float));
        bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
        run.act_bits = 8;
        cr_assert(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, f, NULL, NULL, &run) == BP_OK);
        run.mode = BP_RNN_INTEGER;
        cr_assert(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, q, NULL, NULL, &run) == BP_OK);
        double num = 0, den = 0, worst = 0;
        for (size_t i = 0; i < n; i++) {
            num += ((double)f[i] - q[i]) * ((double)f[i] - q[i]);
            den += (double)f[i] * f[i];
            worst = fmax(worst, fabs((double)f[i] - q[i]));
            /* Integer outputs are Q0.15 values. */
            cr_assert(q[i] * 32768.0f == rintf(q[i] * 32768.0f));
        }
        /* Both modes quantize h to 8 bits (dynamic vs fixed scale); the
         * integer tables add a few 1e-4. Measured: rel about 1-2 %. */
        cr_assert(sqrt(num / den) < 0.05 && worst < 0.1,
                  "cell %d: integer vs float rel %g, max %g (seed %llu)", cell, sqrt(num / den),
                  worst, (unsigned long long)seed);
        free(x);
        free(f);
        free(q);
        bp_rnn_destroy(rnn);
        tu_rnn_weights_free(&md);
    }
    bp_context_destroy(ctx);
}

/* ---- save / load ------------------------------------------------------------------- */

Test(rnn, save_load_round_trip_and_corruption) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
        for (int split = 0; split <= 1; split++) {
            tu_rnn_weights md;
            tu_rnn_weights_init(&md, &rng, (bp_rnn_cell)cell, 2, 7, 12);
            bp_rnn *rnn = make_rnn(ctx, &md, split, (bp_quant_method)split);
            size_t len;
            cr_assert(bp_rnn_serialize(rnn, NULL, 0, &len) == BP_OK);
            unsigned char *buf = tu_xmalloc(len);
            cr_assert(bp_rnn_serialize(rnn, buf, len - 1, &len) == BP_ERR_OUT_OF_RANGE);
            cr_assert(bp_rnn_serialize(rnn, buf, len, &len) == BP_OK);
            char path[64];
            snprintf(path, sizeof path, "/tmp/bp_test_rnn_%d.bin", (int)getpid());
            cr_assert(bp_rnn_save(rnn, path) == BP_OK, "%s", bp_last_error());
            bp_rnn *back = NULL;
            cr_assert(bp_rnn_load(ctx, path, &back) == BP_OK, "%s", bp_last_error());
            remove(path);
            cr_assert(bp_rnn_cell_kind(back) == md.cell && bp_rnn_layers(back) == 2 &&
                      bp_rnn_input_size(back) == 7 && bp_rnn_hidden_size(back) == 12 &&
                      bp_rnn_split_gates(back) == split);
            size_t T = 4, B = 2, n = T * B * md.H;
            float *x = tu_gauss_array(&rng, T * B * md.in, 1.0f);
            float *a = tu_xmalloc(n * sizeof(float)), *b = tu_xmalloc(n * sizeof(float));
            bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
            run.planes_hh = 3;
            cr_assert(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, a, NULL, NULL, &run) == BP_OK);
            cr_assert(bp_rnn_forward(ctx, back, x, T, B, NULL, NULL, b, NULL, NULL, &run) == BP_OK);
            cr_assert(memcmp(a, b, n * sizeof(float)) == 0, "loaded RNN computes differently");
            size_t len2;
            unsigned char *buf2 = tu_xmalloc(len);
            cr_assert(bp_rnn_serialize(back, buf2, len, &len2) == BP_OK && len2 == len);
            cr_assert(memcmp(buf, buf2, len) == 0, "re-serialised bytes differ");
            /* Every truncation and a sample of byte flips are refused. */
            bp_rnn *bad = NULL;
            for (size_t cut = 0; cut < len; cut += 1 + cut / 16) {
                bp_status st = bp_rnn_deserialize(ctx, buf, cut, &bad);
                cr_assert(st == BP_ERR_CORRUPT && bad == NULL, "cut %zu: %s", cut, bp_last_error());
            }
            for (int k = 0; k < 200; k++) {
                size_t at = tu_range(&rng, 0, len - 1);
                unsigned char bit = (unsigned char)(1u << tu_range(&rng, 0, 7));
                buf[at] ^= bit;
                bp_status st = bp_rnn_deserialize(ctx, buf, len, &bad);
                cr_assert((st == BP_ERR_CORRUPT || st == BP_ERR_VERSION) && bad == NULL,
                          "flip at %zu accepted (seed %llu)", at, (unsigned long long)seed);
                buf[at] ^= bit;
            }
            free(buf);
            free(buf2);
            free(x);
            free(a);
            free(b);
            bp_rnn_destroy(back);
            bp_rnn_destroy(rnn);
            tu_rnn_weights_free(&md);
        }
    bp_rnn *bad = (bp_rnn *)1;
    cr_assert(bp_rnn_load(ctx, "/nonexistent/rnn.bin", &bad) == BP_ERR_IO && bad == NULL);
    cr_assert(strstr(bp_last_error(), "/nonexistent/rnn.bin") != NULL);
    /* The matrix loader's file rules hold for RNN files too: a FIFO is
     * refused at once (not waited on), and so is a directory. */
    char fifo[] = "/tmp/bp-rnn-fifo-XXXXXX";
    cr_assert(mkdtemp(fifo) != NULL);
    cr_assert(bp_rnn_load(ctx, fifo, &bad) == BP_ERR_IO && bad == NULL);
    cr_assert(strstr(bp_last_error(), "not a regular file (a directory)") != NULL, "%s",
              bp_last_error());
    char fifo_path[64];
    snprintf(fifo_path, sizeof fifo_path, "%s/p", fifo);
    cr_assert(mkfifo(fifo_path, 0600) == 0);
    cr_assert(bp_rnn_load(ctx, fifo_path, &bad) == BP_ERR_IO && bad == NULL);
    cr_assert(strstr(bp_last_error(), "not a regular file (a FIFO)") != NULL, "%s",
              bp_last_error());
    unlink(fifo_path);
    rmdir(fifo);
    bp_context_destroy(ctx);
}

static void put_le64(unsigned char *p, uint64_t v) {
    tu_put_le32(p, (uint32_t)v);
    tu_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Header fields that claim more than the payload holds are refused before
 * anything is allocated for them, even with a valid checksum: a 68-byte file
 * claiming 64 layers of hidden size 2^28 once made the loader calloc 8 GiB of
 * biases per layer (as did this 84-byte one). Also a huge matrix length field
 * and a newer version. */
Test(rnn, header_sizes_beyond_the_payload) {
    unsigned char file[64 + 16 + 4] = {'B', 'P', 'R', 'N', 'N', 0, 0, 0};
    tu_put_le32(file + 8, 1);
    tu_put_le32(file + 12, 64);
    tu_put_le32(file + 16, BP_RNN_LSTM);
    put_le64(file + 24, BP_RNN_MAX_LAYERS);
    put_le64(file + 32, 3);
    put_le64(file + 40, BP_MAX_DIM);
    put_le64(file + 48, sizeof file - 68);
    tu_put_le32(file + sizeof file - 4, tu_crc32c(file, sizeof file - 4));
    bp_rnn *rnn = (bp_rnn *)1;
    bp_status st = bp_rnn_deserialize(NULL, file, sizeof file, &rnn);
    cr_assert(st == BP_ERR_CORRUPT && rnn == NULL, "%s", bp_last_error());
    cr_assert(strstr(bp_last_error(), "64 layers of hidden size 268435456 need at least "
                                      "549755814912 bytes, the payload has 16") != NULL,
              "%s", bp_last_error());
    /* One small layer whose bias fits and whose first matrix length field
     * claims 2^64 - 1 bytes. */
    unsigned char small[64 + 8 * 4 * 1 + 16 + 4] = {'B', 'P', 'R', 'N', 'N', 0, 0, 0};
    memcpy(small, file, 64);
    put_le64(small + 24, 1);
    put_le64(small + 40, 1);
    put_le64(small + 48, sizeof small - 68);
    memset(small + 64, 0, 32);
    put_le64(small + 96, UINT64_MAX);
    put_le64(small + 104, 0);
    tu_put_le32(small + sizeof small - 4, tu_crc32c(small, sizeof small - 4));
    st = bp_rnn_deserialize(NULL, small, sizeof small, &rnn);
    cr_assert(st == BP_ERR_CORRUPT && rnn == NULL, "%s", bp_last_error());
    cr_assert(strstr(bp_last_error(), "layer 0: truncated matrix") != NULL, "%s", bp_last_error());
    tu_put_le32(small + 8, 3);
    tu_put_le32(small + sizeof small - 4, tu_crc32c(small, sizeof small - 4));
    st = bp_rnn_deserialize(NULL, small, sizeof small, &rnn);
    cr_assert(st == BP_ERR_VERSION && rnn == NULL, "%s", bp_last_error());
    cr_assert(strstr(bp_last_error(), "RNN format version 3 is newer than this library's (2)") !=
                  NULL,
              "%s", bp_last_error());
}

/* ---- bad arguments ----------------------------------------------------------------- */

#define EXPECT(call, status, text)                                                                 \
    do {                                                                                           \
        bp_status st_ = (call);                                                                    \
        cr_assert(st_ == (status), "%s: got %s (%s)", #call, bp_status_string(st_),                \
                  bp_last_error());                                                                \
        cr_assert(strstr(bp_last_error(), (text)) != NULL, "%s: message '%s' lacks '%s'", #call,   \
                  bp_last_error(), (text));                                                        \
    } while (0)

Test(rnn, bad_arguments) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    tu_rnn_weights md;
    tu_rnn_weights_init(&md, &rng, BP_RNN_LSTM, 2, 5, 8);
    bp_rnn *rnn = NULL;
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    EXPECT(bp_rnn_create(ctx, BP_RNN_LSTM, 2, 5, 8, md.lw, &q, NULL, NULL), BP_ERR_INVALID_ARGUMENT,
           "out must not be NULL");
    EXPECT(bp_rnn_create(NULL, BP_RNN_LSTM, 2, 5, 8, md.lw, &q, NULL, &rnn),
           BP_ERR_INVALID_ARGUMENT, "ctx must not be NULL");
    EXPECT(bp_rnn_create(ctx, (bp_rnn_cell)7, 2, 5, 8, md.lw, &q, NULL, &rnn),
           BP_ERR_INVALID_ARGUMENT, "cell must be BP_RNN_LSTM (1) or BP_RNN_GRU (2), got 7");
    EXPECT(bp_rnn_create(ctx, BP_RNN_LSTM, 0, 5, 8, md.lw, &q, NULL, &rnn), BP_ERR_OUT_OF_RANGE,
           "layers must be 1..64, got 0");
    EXPECT(bp_rnn_create(ctx, BP_RNN_LSTM, 2, 0, 8, md.lw, &q, NULL, &rnn), BP_ERR_INVALID_ARGUMENT,
           "input_size must be > 0");
    bp_rnn_options ro = BP_RNN_OPTIONS_INIT;
    ro.split_gates = 2;
    EXPECT(bp_rnn_create(ctx, BP_RNN_LSTM, 2, 5, 8, md.lw, &q, &ro, &rnn), BP_ERR_OUT_OF_RANGE,
           "split_gates must be 0 or 1, got 2");
    q.bits = 17;
    EXPECT(bp_rnn_create(ctx, BP_RNN_LSTM, 2, 5, 8, md.lw, &q, NULL, &rnn), BP_ERR_OUT_OF_RANGE,
           "layer 0 weight_ih: bits");
    q.bits = 0;
    md.w_hh[1][17] = NAN;
    EXPECT(bp_rnn_create(ctx, BP_RNN_LSTM, 2, 5, 8, md.lw, &q, NULL, &rnn), BP_ERR_NON_FINITE,
           "layer 1: weight_hh element 17 is NaN");
    md.w_hh[1][17] = 0.1f;
    md.lw[0].weight_ih = NULL;
    EXPECT(bp_rnn_create(ctx, BP_RNN_LSTM, 2, 5, 8, md.lw, &q, NULL, &rnn), BP_ERR_INVALID_ARGUMENT,
           "layer 0: weight_ih must not be NULL");
    md.lw[0].weight_ih = md.w_ih[0];
    cr_assert(rnn == NULL);
    cr_assert(bp_rnn_create(ctx, BP_RNN_LSTM, 2, 5, 8, md.lw, &q, NULL, &rnn) == BP_OK);

    size_t T = 3, B = 2;
    float *x = tu_gauss_array(&rng, T * B * 5, 1.0f);
    float *y = tu_xmalloc(T * B * 8 * sizeof(float));
    float *h = tu_gauss_array(&rng, 2 * B * 8, 0.1f), *c = tu_gauss_array(&rng, 2 * B * 8, 0.1f);
    tu_fill_sentinel(y, T * B * 8);
    bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, NULL, NULL, NULL, &run),
           BP_ERR_INVALID_ARGUMENT, "y must not be NULL");
    EXPECT(bp_rnn_forward(ctx, NULL, x, T, B, NULL, NULL, y, NULL, NULL, &run),
           BP_ERR_INVALID_ARGUMENT, "rnn must not be NULL");
    EXPECT(bp_rnn_forward(ctx, rnn, x, 0, B, NULL, NULL, y, NULL, NULL, &run),
           BP_ERR_INVALID_ARGUMENT, "steps must be > 0, got 0");
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, 0, NULL, NULL, y, NULL, NULL, &run),
           BP_ERR_INVALID_ARGUMENT, "batch must be > 0, got 0");
    EXPECT(bp_rnn_forward(ctx, rnn, x, (size_t)1 << 20, (size_t)1 << 20, NULL, NULL, y, NULL, NULL,
                          &run),
           BP_ERR_SIZE_OVERFLOW, "steps x batch must be <=");
    run.planes_ih = 9;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run), BP_ERR_OUT_OF_RANGE,
           "planes_ih must be 0 (all) or 1..8, got 9");
    run.planes_ih = 0;
    run.act_bits = 17;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run), BP_ERR_OUT_OF_RANGE,
           "act_bits must be 0 (default 8) or 1..16, got 17");
    run.act_bits = 1;
    run.mode = BP_RNN_INTEGER;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run), BP_ERR_OUT_OF_RANGE,
           "integer mode needs act_bits 2..16");
    run.act_bits = 0;
    run.mode = (bp_rnn_mode)5;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run),
           BP_ERR_INVALID_ARGUMENT, "mode must be BP_RNN_FLOAT (0) or BP_RNN_INTEGER (1), got 5");
    run.mode = BP_RNN_FLOAT;
    bp_rnn_precision prec[2] = {{{0}, {0}, 0}, {{0}, {0}, 0}};
    prec[1].planes_hh[2] = 3;
    run.layers = prec;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run), BP_ERR_UNSUPPORTED,
           "layer 1: planes_hh gives gate i 8 planes and gate g 3, but the RNN has fused gates");
    prec[1].planes_hh[2] = -1;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run), BP_ERR_OUT_OF_RANGE,
           "layers[1].planes_hh[2] must be 0 (all) or 1..8, got -1");
    prec[1].planes_hh[2] = 0;
    prec[0].act_bits = 20;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run), BP_ERR_OUT_OF_RANGE,
           "layers[0].act_bits must be 0 (run default) or 1..16, got 20");
    run.layers = NULL;
    x[7] = INFINITY;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run), BP_ERR_NON_FINITE,
           "x: element 7 is Inf");
    x[7] = 0.5f;
    /* Past the first block of the finiteness scan, and the last element. */
    float *xl = tu_gauss_array(&rng, 61 * B * 5, 1.0f),
          *yl = tu_xmalloc(61 * B * 8 * sizeof(float));
    xl[300] = -INFINITY;
    EXPECT(bp_rnn_forward(ctx, rnn, xl, 61, B, NULL, NULL, yl, NULL, NULL, &run), BP_ERR_NON_FINITE,
           "x: element 300 is Inf");
    xl[300] = 0.0f;
    xl[61 * B * 5 - 1] = NAN;
    EXPECT(bp_rnn_forward(ctx, rnn, xl, 61, B, NULL, NULL, yl, NULL, NULL, &run), BP_ERR_NON_FINITE,
           "x: element 609 is NaN");
    free(xl);
    free(yl);
    h[3] = NAN;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, h, NULL, y, NULL, NULL, &run), BP_ERR_NON_FINITE,
           "h0: element 3 is NaN");
    EXPECT(bp_rnn_step(ctx, rnn, x, B, h, c, &run), BP_ERR_NON_FINITE, "h: element 3 is NaN");
    h[3] = 0.5f;
    EXPECT(bp_rnn_step(ctx, rnn, x, B, h, NULL, &run), BP_ERR_INVALID_ARGUMENT,
           "c must not be NULL for an LSTM");
    EXPECT(bp_rnn_step(ctx, rnn, x, B, NULL, c, &run), BP_ERR_INVALID_ARGUMENT,
           "h must not be NULL");
    bp_rnn_run_options big = BP_RNN_RUN_OPTIONS_INIT;
    unsigned char larger[sizeof big + 8] = {0};
    memcpy(larger, &big, sizeof big);
    ((bp_rnn_run_options *)(void *)larger)->size = sizeof larger;
    larger[sizeof big + 2] = 1;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL,
                          (const bp_rnn_run_options *)(const void *)larger),
           BP_ERR_UNSUPPORTED, "bp_rnn_run_options.size is");
    cr_assert(tu_find_non_sentinel(y, T * B * 8) < 0, "a failed call wrote y");
    EXPECT(bp_rnn_matrix(rnn, 2, BP_RNN_INPUT, -1) ? BP_OK : BP_ERR_OUT_OF_RANGE,
           BP_ERR_OUT_OF_RANGE, "layer must be < 2, got 2");
    EXPECT(bp_rnn_matrix(rnn, 0, BP_RNN_INPUT, 1) ? BP_OK : BP_ERR_OUT_OF_RANGE,
           BP_ERR_OUT_OF_RANGE, "gate must be -1 for an RNN with fused gates, got 1");
    cr_assert(bp_matrix_rows(bp_rnn_matrix(rnn, 1, BP_RNN_RECURRENT, -1)) == 32);
    bp_rnn_destroy(rnn);
    tu_rnn_weights_free(&md);

    /* A GRU has no cell state. */
    tu_rnn_weights_init(&md, &rng, BP_RNN_GRU, 1, 5, 8);
    cr_assert(bp_rnn_create(ctx, BP_RNN_GRU, 1, 5, 8, md.lw, NULL, NULL, &rnn) == BP_OK);
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, c, y, NULL, NULL, &run), BP_ERR_INVALID_ARGUMENT,
           "c0 must be NULL for a GRU");
    EXPECT(bp_rnn_step(ctx, rnn, x, B, h, c, &run), BP_ERR_INVALID_ARGUMENT,
           "c must be NULL for a GRU");
    bp_rnn_precision p1 = {{0, 0, 0, 2}, {0}, 0};
    run.layers = &p1;
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, NULL, &run), BP_ERR_OUT_OF_RANGE,
           "layers[0].planes_ih[3] must be 0: a GRU has 3 gates");
    bp_rnn_destroy(rnn);
    bp_rnn_destroy(NULL);
    cr_assert(bp_rnn_layers(NULL) == 0 && bp_rnn_gates(NULL) == 0);
    tu_rnn_weights_free(&md);
    free(x);
    free(y);
    free(h);
    free(c);
    bp_context_destroy(ctx);
}

/* Inputs may alias outputs, but two outputs may not share memory: the
 * second copy would overwrite the first and return a silent wrong state
 * (an LSTM step with h == c once returned OK with h holding c). */
Test(rnn, outputs_must_not_overlap) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    tu_rnn_weights md;
    tu_rnn_weights_init(&md, &rng, BP_RNN_LSTM, 2, 5, 8);
    bp_rnn *rnn = NULL;
    cr_assert(bp_rnn_create(ctx, BP_RNN_LSTM, 2, 5, 8, md.lw, NULL, NULL, &rnn) == BP_OK);
    size_t T = 3, B = 2, n = 2 * B * 8;
    float *x = tu_gauss_array(&rng, T * B * 5, 1.0f);
    float *state = tu_gauss_array(&rng, 3 * n, 0.1f), *y = tu_xmalloc(T * B * 8 * sizeof(float));
    float *before = tu_xmalloc(3 * n * sizeof(float));
    memcpy(before, state, 3 * n * sizeof(float));
    EXPECT(bp_rnn_step(ctx, rnn, x, B, state, state, NULL), BP_ERR_INVALID_ARGUMENT,
           "bp_rnn_step: h and c must not overlap");
    EXPECT(bp_rnn_step(ctx, rnn, x, B, state + 1, state + n, NULL), BP_ERR_INVALID_ARGUMENT,
           "bp_rnn_step: h and c must not overlap");
    int cols[2] = {1, 0};
    EXPECT(bp_rnn_step_columns(ctx, rnn, x, B, state + n - 1, state, cols, NULL),
           BP_ERR_INVALID_ARGUMENT, "h and c must not overlap");
    cr_assert(memcmp(before, state, 3 * n * sizeof(float)) == 0, "a refused step wrote state");
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, state, state + n, state + n + 4, NULL),
           BP_ERR_INVALID_ARGUMENT, "bp_rnn_forward: h_n and c_n must not overlap");
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, state, state + 8, NULL, NULL),
           BP_ERR_INVALID_ARGUMENT, "bp_rnn_forward: y and h_n must not overlap");
    EXPECT(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, y, NULL, y + 5, NULL),
           BP_ERR_INVALID_ARGUMENT, "bp_rnn_forward: y and c_n must not overlap");
    cr_assert(memcmp(before, state, 3 * n * sizeof(float)) == 0, "a refused call wrote state");
    /* Adjacent outputs and inputs aliasing outputs stay allowed. */
    cr_assert(bp_rnn_step(ctx, rnn, x, B, state, state + n, NULL) == BP_OK, "%s", bp_last_error());
    cr_assert(bp_rnn_forward(ctx, rnn, x, T, B, state, state + n, y, state, state + n, NULL) ==
                  BP_OK,
              "%s", bp_last_error());
    free(x);
    free(state);
    free(y);
    free(before);
    bp_rnn_destroy(rnn);
    tu_rnn_weights_free(&md);
    bp_context_destroy(ctx);
}

/* ---- code products (cpu/rnn_codes.c) ----------------------------------------------- */

/* The step loop's VNNI code products give y bit-identical to the reference
 * path's bp_gemm: per-row and grouped matrices, K not a multiple of 64,
 * plane counts 1 to 8, binary and fixed-point activations with dynamic and
 * fixed scales, a zero column (the bias alone), a non-negative column
 * (unsigned q, which at 8 bits leaves int8 and sends the chunk through the
 * backend), batches across the loop's 8-column blocks, 1 and 2 threads. An
 * overflowing product reports the backend's error. Skipped where the CPU
 * has no AVX-512 VNNI. */
Test(rnn, code_products_identical, .timeout = 300) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    static const struct {
        size_t rows, cols;
        int group_size;
    } shapes[] = {
        {512, 256, 0}, {160, 40, 0}, {136, 200, BP_GROUP_PER_ROW}, {50, 300, 32}, {33, 1000, 128}};
    static const int planes[] = {1, 2, 4, 7, 8}, act_bits[] = {1, 2, 5, 8};
    static const size_t batches[] = {1, 3, 20};
    enum { BMAX = 20 };
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    bp_context *ctxs[2] = {tu_context(BP_CPU_KERNEL_AUTO, 1), tu_context(BP_CPU_KERNEL_AUTO, 2)};
    int engaged = 0;
    for (size_t s = 0; s < NELEM(shapes); s++) {
        const size_t rows = shapes[s].rows, cols = shapes[s].cols;
        float *w = tu_gauss_array(&rng, rows * cols, 0.1f);
        float *bias = tu_gauss_array(&rng, rows, 0.1f);
        /* xs[0]: signed columns and a zero one; xs[1]: also a non-negative
         * one. */
        float *xs[2] = {tu_gauss_array(&rng, BMAX * cols, 1.0f),
                        tu_xmalloc(BMAX * cols * sizeof(float))};
        float *a = tu_xmalloc(BMAX * rows * sizeof(float));
        float *b = tu_xmalloc(BMAX * rows * sizeof(float));
        for (size_t j = 0; j < cols; j++)
            xs[0][1 * cols + j] = 0.0f;
        memcpy(xs[1], xs[0], BMAX * cols * sizeof(float));
        for (size_t j = 0; j < cols; j++)
            xs[1][2 * cols + j] = fabsf(xs[1][2 * cols + j]);
        bp_quant_options q = BP_QUANT_OPTIONS_INIT;
        q.group_size = shapes[s].group_size;
        q.rotation = BP_ROTATION_NONE; /* as recurrent layers have it */
        bp_matrix *m = NULL;
        cr_assert(bp_matrix_quantize(ref, w, rows, cols, cols, &q, &m) == BP_OK, "%s",
                  bp_last_error());
        const size_t kpad = (cols + 63) / 64 * 64;
        void *work = tu_xmalloc(bp__rnn_codes_work_bytes(kpad) + 64);
        void *work64 = (void *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
        for (size_t pi = 0; pi < NELEM(planes); pi++)
            for (size_t ai = 0; ai < NELEM(act_bits); ai++)
                for (int v = 0; v < 4; v++) {
                    const int n = planes[pi], fixed = v & 1;
                    const float *x = xs[v >> 1];
                    if (!bp__rnn_codes_for(ctxs[0], m, n, act_bits[ai]))
                        continue;
                    engaged++;
                    bp_run_options ro = BP_RUN_OPTIONS_INIT;
                    ro.planes = n;
                    ro.act_bits = act_bits[ai];
                    ro.bias = bias;
                    ro.act_scale = fixed && act_bits[ai] > 1 ? 0.03f : 0.0f;
                    /* Columns are independent: one reference for every batch. */
                    cr_assert(bp_gemm(ref, m, x, BMAX, cols, a, rows, &ro) == BP_OK, "%s",
                              bp_last_error());
                    for (int t = 0; t < 2; t++)
                        for (size_t bi = 0; bi < NELEM(batches); bi++) {
                            const size_t B = batches[bi];
                            const bp_rnn_codes *k = bp__rnn_codes_for(ctxs[t], m, n, act_bits[ai]);
                            cr_assert(k != NULL);
                            bp_gemm_args args = {.m = m,
                                                 .x = x,
                                                 .batch = B,
                                                 .ldx = cols,
                                                 .y = b,
                                                 .ldy = rows,
                                                 .planes = n,
                                                 .act_bits = act_bits[ai],
                                                 .bias = bias,
                                                 .act_scale = ro.act_scale};
                            cr_assert(bp__rnn_codes_gemm(ctxs[t], k, &args, work64) == BP_OK, "%s",
                                      bp_last_error());
                            size_t r, col;
                            long bad = tu_first_mismatch(a, b, rows, B, rows, &r, &col);
                            cr_assert(bad < 0,
                                      "%zu x %zu group %d, %d planes, act_bits %d, batch %zu, "
                                      "x %d, fixed %d, threads %d: row %zu column %zu differs "
                                      "(seed %llu)",
                                      rows, cols, shapes[s].group_size, n, act_bits[ai], B, v >> 1,
                                      fixed, t + 1, r, col, (unsigned long long)seed);
                        }
                }
        /* y beyond the float range: the backend's error. */
        const bp_rnn_codes *k = bp__rnn_codes_for(ctxs[0], m, 4, 8);
        if (k) {
            float *big = tu_xmalloc(cols * sizeof(float));
            for (size_t j = 0; j < cols; j++)
                big[j] = 3e38f;
            bp_gemm_args args = {.m = m,
                                 .x = big,
                                 .batch = 1,
                                 .ldx = cols,
                                 .y = b,
                                 .ldy = rows,
                                 .planes = 4,
                                 .act_bits = 8};
            cr_assert(bp__rnn_codes_gemm(ctxs[0], k, &args, work64) == BP_ERR_NON_FINITE);
            cr_assert(strstr(bp_last_error(), "overflowed the float range") != NULL, "%s",
                      bp_last_error());
            free(big);
        }
        free(work);
        bp_matrix_destroy(m);
        free(w);
        free(bias);
        free(xs[0]);
        free(xs[1]);
        free(a);
        free(b);
    }
    bp_context_destroy(ctxs[0]);
    bp_context_destroy(ctxs[1]);
    bp_context_destroy(ref);
    if (!engaged)
        cr_skip_test("no code products here (they need AVX-512 VNNI on the AUTO path)");
}
