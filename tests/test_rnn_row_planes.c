/*
 * Per-row plane counts in LSTM/GRU layers (bp_rnn_options.row_planes,
 * docs/row-planes.md):
 *  - the plain-matrix oracle: a layer whose rows have counts gives, in float
 *    mode, exactly what its products at min(count, planes) planes per row
 *    (taken row by row from the same matrices quantized without counts)
 *    followed by the library's cell update give, on every CPU path and
 *    backend, threads 1 and 2, fused and split gates;
 *  - counts constant per gate equal per-gate plane counts of an RNN without
 *    counts, bit for bit, in float and integer mode (sequence and step);
 *  - the integer mode with counts is identical on every path;
 *  - the counts come back per matrix, bytes read shrink with them, and
 *    files store them (RNN format version 2; without counts still 1);
 *  - bad counts and mismatched file versions give clear errors.
 */
#include "test_util.h"
#include "tu_rnn.h"
#include "rnn_internal.h"

#include "tu_criterion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(rnn_row_planes, .fini = tu_suite_fini);

#define NELEM(a)  (sizeof(a) / sizeof((a)[0]))
#define MAX_LAYER 2

/* Random weights (tu_rnn_weights) and a per-row count array per layer and
 * operator, filled by each test. */
typedef struct stack {
    tu_rnn_weights w;
    uint8_t *c_ih[MAX_LAYER], *c_hh[MAX_LAYER];
    bp_rnn_row_planes rp[MAX_LAYER];
} stack;

static void stack_init(stack *s, tu_rng *rng, bp_rnn_cell cell, size_t layers, size_t in,
                       size_t H) {
    memset(s, 0, sizeof *s);
    tu_rnn_weights_init(&s->w, rng, cell, layers, in, H);
    for (size_t l = 0; l < layers; l++) {
        s->c_ih[l] = tu_xmalloc(s->w.GH);
        s->c_hh[l] = tu_xmalloc(s->w.GH);
        s->rp[l] = (bp_rnn_row_planes){s->c_ih[l], s->c_hh[l]};
    }
}

static void stack_free(stack *s) {
    for (size_t l = 0; l < s->w.layers; l++) {
        free(s->c_ih[l]);
        free(s->c_hh[l]);
    }
    tu_rnn_weights_free(&s->w);
}

/* Random counts 1..8, most below 8, runs not aligned to 16-row groups. */
static void random_counts(tu_rng *rng, uint8_t *c, size_t n) {
    for (size_t r = 0; r < n; r++)
        c[r] = (uint8_t)(tu_range(rng, 0, 3) == 0 ? 8 : tu_range(rng, 1, 7));
}

static bp_rnn *create(bp_context *ctx, const stack *s, int split, bool counts) {
    bp_rnn_options o = BP_RNN_OPTIONS_INIT;
    o.split_gates = split;
    o.row_planes = counts ? s->rp : NULL;
    bp_rnn *rnn = NULL;
    bp_status st =
        bp_rnn_create(ctx, s->w.cell, s->w.layers, s->w.in, s->w.H, s->w.lw, NULL, &o, &rnn);
    cr_assert(st == BP_OK, "bp_rnn_create: %s", bp_last_error());
    return rnn;
}

/* ---- the plain-matrix oracle ------------------------------------------------------ */

/*
 * y (rows x batch, ld GH) = W x + bias with row r of operator matrix set
 * `mats` at min(counts[r], planes) planes, each row taken from a product of
 * the plain (count-free) matrix at that many planes.
 */
static void oracle_product(bp_context *ctx, const bp_rnn *plain, size_t l, bp_rnn_operator op,
                           const uint8_t *counts, int planes, const float *bias, const float *x,
                           size_t batch, size_t ldx, float *y, size_t GH) {
    int split = bp_rnn_split_gates(plain), mats = split ? bp_rnn_gates(plain) : 1;
    size_t rows = GH / (size_t)mats;
    float *tmp = tu_xmalloc(rows * batch * sizeof(float));
    for (int g = 0; g < mats; g++) {
        const bp_matrix *m = bp_rnn_matrix(plain, l, op, split ? g : -1);
        for (int n = 1; n <= 8; n++) {
            bp_run_options o = tu_run(n, 8);
            o.bias = bias + (size_t)g * rows;
            bp_status st = bp_gemm(ctx, m, x, batch, ldx, tmp, rows, &o);
            cr_assert(st == BP_OK, "oracle gemm: %s", bp_last_error());
            for (size_t r = 0; r < rows; r++) {
                size_t R = (size_t)g * rows + r;
                int use = counts[R] < planes ? counts[R] : planes;
                if (use == n)
                    for (size_t b = 0; b < batch; b++)
                        y[b * GH + R] = tmp[b * rows + r];
            }
        }
    }
    free(tmp);
}

/* Float-mode forward of the whole stack from zero state, products by the
 * oracle and the library's portable cell update (which every CPU path's
 * cell equals bit for bit, tests/test_rnn.c). */
static void oracle_forward(bp_context *ref, const bp_rnn *plain, const stack *s, int planes_ih,
                           int planes_hh, const float *x, size_t T, size_t B, float *y) {
    size_t H = s->w.H, GH = s->w.GH;
    const bp_rnn_float_cell *cell = &bp__rnn_cell_portable;
    float *gi = tu_xmalloc(T * B * GH * sizeof(float)), *gh = tu_xmalloc(B * GH * sizeof(float));
    float *seq = tu_xmalloc(T * B * H * sizeof(float)), *zero = tu_xcalloc(B * H, sizeof(float));
    float *c = tu_xmalloc(B * H * sizeof(float));
    float *in = tu_xmalloc(T * B * (s->w.in > H ? s->w.in : H) * sizeof(float));
    memcpy(in, x, T * B * s->w.in * sizeof(float));
    for (size_t l = 0; l < s->w.layers; l++) {
        size_t li = l ? H : s->w.in;
        oracle_product(ref, plain, l, BP_RNN_INPUT, s->c_ih[l], planes_ih, s->w.b_ih[l], in, T * B,
                       li, gi, GH);
        memset(c, 0, B * H * sizeof(float));
        for (size_t t = 0; t < T; t++) {
            const float *hp = t ? seq + (t - 1) * B * H : zero;
            oracle_product(ref, plain, l, BP_RNN_RECURRENT, s->c_hh[l], planes_hh, s->w.b_hh[l], hp,
                           B, H, gh, GH);
            for (size_t b = 0; b < B; b++) {
                const float *xi = gi + (t * B + b) * GH;
                float *p = gh + b * GH, *h = seq + (t * B + b) * H;
                if (s->w.cell == BP_RNN_LSTM)
                    cell->lstm(xi, p, c + b * H, h, H, 0, H);
                else
                    cell->gru(xi, p, hp + b * H, h, H, 0, H);
            }
        }
        memcpy(in, seq, T * B * H * sizeof(float));
    }
    memcpy(y, seq, T * B * H * sizeof(float));
    free(gi);
    free(gh);
    free(seq);
    free(zero);
    free(c);
    free(in);
}

static const tu_target kTargets[] = {TU_ALL_TARGETS};

ParameterizedTestParameters(rnn_row_planes, oracle_on_every_path) {
    return cr_make_param_array(tu_target, (tu_target *)kTargets, NELEM(kTargets));
}

ParameterizedTest(tu_target *target, rnn_row_planes, oracle_on_every_path, .timeout = 300) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    for (int threads = 1; threads <= 2; threads++) {
        bp_context *ctx = tu_target_context(target, threads);
        for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
            for (int split = 0; split <= 1; split++) {
                stack s;
                /* H 40: runs of counts straddle 16-row groups; batch 3 and
                 * T x B = 12 columns in the input product. */
                size_t T = 4, B = 3, layers = 2;
                stack_init(&s, &rng, (bp_rnn_cell)cell, layers, 21, 40);
                for (size_t l = 0; l < layers; l++) {
                    random_counts(&rng, s.c_ih[l], s.w.GH);
                    random_counts(&rng, s.c_hh[l], s.w.GH);
                }
                bp_rnn *counted = create(ref, &s, split, true);
                bp_rnn *plain = create(ref, &s, split, false);
                float *x = tu_gauss_array(&rng, T * B * s.w.in, 1.0f);
                size_t n = T * B * s.w.H;
                float *want = tu_xmalloc(n * sizeof(float)), *got = tu_xmalloc(n * sizeof(float));
                float *want_int = tu_xmalloc(n * sizeof(float));
                const int planes[][2] = {{0, 0}, {5, 3}, {2, 8}};
                for (size_t k = 0; k < NELEM(planes); k++) {
                    int pi = planes[k][0] ? planes[k][0] : 8, ph = planes[k][1] ? planes[k][1] : 8;
                    oracle_forward(ref, plain, &s, pi, ph, x, T, B, want);
                    bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
                    run.planes_ih = planes[k][0];
                    run.planes_hh = planes[k][1];
                    bp_status st =
                        bp_rnn_forward(ctx, counted, x, T, B, NULL, NULL, got, NULL, NULL, &run);
                    if (st == BP_ERR_UNSUPPORTED && target->backend == BP_BACKEND_CUDA) {
                        /* CUDA refuses matrices with counts for now, and says so. */
                        cr_assert(strstr(bp_last_error(), "per-row plane counts") != NULL, "%s",
                                  bp_last_error());
                        continue;
                    }
                    cr_assert(st == BP_OK, "%s: %s", tu_target_name(target), bp_last_error());
                    size_t r, col;
                    long bad = tu_first_mismatch(want, got, s.w.H, T * B, s.w.H, &r, &col);
                    cr_assert(bad < 0,
                              "%s threads %d cell %d split %d planes %d/%d: h differs from the "
                              "plain-matrix oracle at unit %zu, column %zu (seed %llu)",
                              tu_target_name(target), threads, cell, split, pi, ph, r, col,
                              (unsigned long long)seed);
                    /* Integer mode: identical to the reference path. */
                    run.mode = BP_RNN_INTEGER;
                    cr_assert(bp_rnn_forward(ref, counted, x, T, B, NULL, NULL, want_int, NULL,
                                             NULL, &run) == BP_OK,
                              "%s", bp_last_error());
                    cr_assert(bp_rnn_forward(ctx, counted, x, T, B, NULL, NULL, got, NULL, NULL,
                                             &run) == BP_OK,
                              "%s", bp_last_error());
                    bad = tu_first_mismatch(want_int, got, s.w.H, T * B, s.w.H, &r, &col);
                    cr_assert(bad < 0,
                              "%s threads %d cell %d split %d planes %d/%d integer mode: h "
                              "differs from the reference path at unit %zu, column %zu (seed "
                              "%llu)",
                              tu_target_name(target), threads, cell, split, pi, ph, r, col,
                              (unsigned long long)seed);
                }
                free(x);
                free(want);
                free(want_int);
                free(got);
                bp_rnn_destroy(counted);
                bp_rnn_destroy(plain);
                stack_free(&s);
            }
        bp_context_destroy(ctx);
    }
    bp_context_destroy(ref);
}

/* ---- counts constant per gate = per-gate planes ----------------------------------- */

Test(rnn_row_planes, gate_counts_equal_per_gate_planes) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
        for (int mode = BP_RNN_FLOAT; mode <= BP_RNN_INTEGER; mode++) {
            stack s;
            size_t T = 5, B = 2, layers = 2;
            stack_init(&s, &rng, (bp_rnn_cell)cell, layers, 9, 20);
            int gi[MAX_LAYER][BP_RNN_MAX_GATES], gh[MAX_LAYER][BP_RNN_MAX_GATES];
            for (size_t l = 0; l < layers; l++)
                for (int g = 0; g < s.w.gates; g++) {
                    gi[l][g] = (int)tu_range(&rng, 1, 8);
                    gh[l][g] = (int)tu_range(&rng, 1, 8);
                    memset(s.c_ih[l] + (size_t)g * s.w.H, gi[l][g], s.w.H);
                    memset(s.c_hh[l] + (size_t)g * s.w.H, gh[l][g], s.w.H);
                }
            /* Fused gates with counts: rows of the stacked matrix are
             * reordered by count across gates. */
            bp_rnn *counted = create(ctx, &s, 0, true);
            bp_rnn *split = create(ctx, &s, 1, false);
            size_t bh = B * s.w.H, lbh = layers * bh, n = T * bh;
            bool lstm = cell == BP_RNN_LSTM;
            float *x = tu_gauss_array(&rng, T * B * s.w.in, 1.0f);
            float *a = tu_xmalloc(n * sizeof(float)), *b = tu_xmalloc(n * sizeof(float));
            float *h = tu_xcalloc(lbh, sizeof(float)), *c = tu_xcalloc(lbh, sizeof(float));
            const int caps[] = {0, 6, 3};
            for (size_t k = 0; k < NELEM(caps); k++) {
                int cap = caps[k] ? caps[k] : 8;
                bp_rnn_precision prec[MAX_LAYER];
                memset(prec, 0, sizeof prec);
                for (size_t l = 0; l < layers; l++)
                    for (int g = 0; g < s.w.gates; g++) {
                        prec[l].planes_ih[g] = gi[l][g] < cap ? gi[l][g] : cap;
                        prec[l].planes_hh[g] = gh[l][g] < cap ? gh[l][g] : cap;
                    }
                bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
                run.mode = (bp_rnn_mode)mode;
                run.act_bits = 6;
                run.planes_ih = run.planes_hh = caps[k];
                cr_assert(bp_rnn_forward(ctx, counted, x, T, B, NULL, NULL, a, NULL, NULL, &run) ==
                              BP_OK,
                          "%s", bp_last_error());
                bp_rnn_run_options per_gate = run;
                per_gate.planes_ih = per_gate.planes_hh = 0;
                per_gate.layers = prec;
                cr_assert(bp_rnn_forward(ctx, split, x, T, B, NULL, NULL, b, NULL, NULL,
                                         &per_gate) == BP_OK,
                          "%s", bp_last_error());
                size_t r, col;
                long bad = tu_first_mismatch(b, a, s.w.H, T * B, s.w.H, &r, &col);
                cr_assert(bad < 0,
                          "cell %d mode %d cap %d: counts per gate differ from per-gate planes "
                          "at unit %zu, column %zu (seed %llu)",
                          cell, mode, cap, r, col, (unsigned long long)seed);
                /* Steps equal the sequence. */
                memset(h, 0, lbh * sizeof(float));
                memset(c, 0, lbh * sizeof(float));
                for (size_t t = 0; t < T; t++) {
                    cr_assert(bp_rnn_step(ctx, counted, x + t * B * s.w.in, B, h, lstm ? c : NULL,
                                          &run) == BP_OK,
                              "%s", bp_last_error());
                    cr_assert(memcmp(h + (layers - 1) * bh, a + t * bh, bh * sizeof(float)) == 0,
                              "cell %d mode %d: step %zu differs from the sequence", cell, mode, t);
                }
            }
            free(x);
            free(a);
            free(b);
            free(h);
            free(c);
            bp_rnn_destroy(counted);
            bp_rnn_destroy(split);
            stack_free(&s);
        }
    bp_context_destroy(ctx);
}

/* ---- counts back, bytes read ---------------------------------------------------- */

static void check_counts(const bp_rnn *rnn, const stack *s) {
    int split = bp_rnn_split_gates(rnn), mats = split ? s->w.gates : 1;
    size_t rows = s->w.GH / (size_t)mats;
    uint8_t *got = tu_xmalloc(rows);
    for (size_t l = 0; l < s->w.layers; l++)
        for (int op = 0; op < 2; op++)
            for (int g = 0; g < mats; g++) {
                const bp_matrix *m = bp_rnn_matrix(rnn, l, (bp_rnn_operator)op, split ? g : -1);
                cr_assert(bp_matrix_row_planes(m, got) == BP_OK, "%s", bp_last_error());
                const uint8_t *want = (op ? s->c_hh[l] : s->c_ih[l]) + (size_t)g * rows;
                cr_assert(memcmp(got, want, rows) == 0,
                          "layer %zu op %d gate %d: counts differ from those given", l, op, g);
            }
    free(got);
}

Test(rnn_row_planes, counts_and_bytes_read) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    stack s;
    stack_init(&s, &rng, BP_RNN_GRU, 1, 64, 64);
    /* Alternate 8 and 2 planes in blocks of 16 rows: the bytes of 5. */
    for (size_t r = 0; r < s.w.GH; r++) {
        s.c_ih[0][r] = (uint8_t)((r / 16) % 2 ? 2 : 8);
        s.c_hh[0][r] = 3;
    }
    for (int split = 0; split <= 1; split++) {
        bp_rnn *counted = create(ctx, &s, split, true);
        bp_rnn *plain = create(ctx, &s, split, false);
        check_counts(counted, &s);
        int mats = split ? s.w.gates : 1;
        size_t counted_ih = 0, plain_ih = 0, counted_hh = 0, plain_hh = 0;
        for (int g = 0; g < mats; g++) {
            int gate = split ? g : -1;
            counted_ih += bp_matrix_bytes_read(bp_rnn_matrix(counted, 0, BP_RNN_INPUT, gate), 0);
            plain_ih += bp_matrix_bytes_read(bp_rnn_matrix(plain, 0, BP_RNN_INPUT, gate), 5);
            counted_hh +=
                bp_matrix_bytes_read(bp_rnn_matrix(counted, 0, BP_RNN_RECURRENT, gate), 0);
            plain_hh += bp_matrix_bytes_read(bp_rnn_matrix(plain, 0, BP_RNN_RECURRENT, gate), 3);
        }
        cr_assert(counted_ih == plain_ih, "split %d: input bytes %zu, uniform 5 planes %zu", split,
                  counted_ih, plain_ih);
        cr_assert(counted_hh == plain_hh, "split %d: recurrent bytes %zu, uniform 3 planes %zu",
                  split, counted_hh, plain_hh);
        bp_rnn_destroy(counted);
        bp_rnn_destroy(plain);
    }
    stack_free(&s);
    bp_context_destroy(ctx);
}

/* ---- files ------------------------------------------------------------------------ */

static unsigned char *serialize(const bp_rnn *rnn, size_t *len) {
    cr_assert(bp_rnn_serialize(rnn, NULL, 0, len) == BP_OK, "%s", bp_last_error());
    unsigned char *buf = tu_xmalloc(*len);
    cr_assert(bp_rnn_serialize(rnn, buf, *len, len) == BP_OK, "%s", bp_last_error());
    return buf;
}

/* Set the header's version and fix the checksum. */
static void set_version(unsigned char *buf, size_t len, uint32_t version) {
    tu_put_le32(buf + 8, version);
    tu_put_le32(buf + len - 4, tu_crc32c(buf, len - 4));
}

Test(rnn_row_planes, save_load_round_trip_and_versions) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++)
        for (int split = 0; split <= 1; split++) {
            stack s;
            stack_init(&s, &rng, (bp_rnn_cell)cell, 2, 11, 24);
            for (size_t l = 0; l < 2; l++) {
                random_counts(&rng, s.c_ih[l], s.w.GH);
                /* Layer 1's recurrent matrix keeps all planes. */
                if (l == 1)
                    memset(s.c_hh[l], 8, s.w.GH);
                else
                    random_counts(&rng, s.c_hh[l], s.w.GH);
            }
            bp_rnn *rnn = create(ctx, &s, split, true);
            size_t len;
            unsigned char *buf = serialize(rnn, &len);
            cr_assert(buf[8] == 2, "an RNN with counts is written as version 2, got %u", buf[8]);
            char path[64];
            snprintf(path, sizeof path, "/tmp/bp_test_rnn_rp_%d.bin", (int)getpid());
            cr_assert(bp_rnn_save(rnn, path) == BP_OK, "%s", bp_last_error());
            bp_rnn *back = NULL;
            cr_assert(bp_rnn_load(ctx, path, &back) == BP_OK, "%s", bp_last_error());
            remove(path);
            check_counts(back, &s);
            size_t len2;
            unsigned char *buf2 = serialize(back, &len2);
            cr_assert(len2 == len && memcmp(buf, buf2, len) == 0, "re-serialised bytes differ");
            size_t T = 3, B = 2, n = T * B * s.w.H;
            float *x = tu_gauss_array(&rng, T * B * s.w.in, 1.0f);
            float *a = tu_xmalloc(n * sizeof(float)), *b = tu_xmalloc(n * sizeof(float));
            bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
            run.planes_ih = 6;
            cr_assert(bp_rnn_forward(ctx, rnn, x, T, B, NULL, NULL, a, NULL, NULL, &run) == BP_OK);
            cr_assert(bp_rnn_forward(ctx, back, x, T, B, NULL, NULL, b, NULL, NULL, &run) == BP_OK);
            cr_assert(memcmp(a, b, n * sizeof(float)) == 0, "loaded RNN computes differently");
            /* Counts in a version-1 file: corrupt, naming the reason. */
            bp_rnn *bad = (bp_rnn *)1;
            set_version(buf, len, 1);
            cr_assert(bp_rnn_deserialize(ctx, buf, len, &bad) == BP_ERR_CORRUPT && bad == NULL);
            cr_assert(strstr(bp_last_error(), "per-row plane counts in a version-1 file"), "%s",
                      bp_last_error());
            /* A version newer than the library's. */
            set_version(buf, len, 3);
            cr_assert(bp_rnn_deserialize(ctx, buf, len, &bad) == BP_ERR_VERSION && bad == NULL);
            free(buf);
            free(buf2);
            free(x);
            free(a);
            free(b);
            bp_rnn_destroy(back);
            bp_rnn_destroy(rnn);
            /* Without counts: version 1 as before; relabelled 2 it is corrupt. */
            bp_rnn *plain = create(ctx, &s, split, false);
            buf = serialize(plain, &len);
            cr_assert(buf[8] == 1, "an RNN without counts is written as version 1, got %u", buf[8]);
            set_version(buf, len, 2);
            cr_assert(bp_rnn_deserialize(ctx, buf, len, &bad) == BP_ERR_CORRUPT && bad == NULL);
            cr_assert(strstr(bp_last_error(), "without per-row plane counts"), "%s",
                      bp_last_error());
            free(buf);
            bp_rnn_destroy(plain);
            stack_free(&s);
        }
    bp_context_destroy(ctx);
}

/* ---- bad input --------------------------------------------------------------------- */

Test(rnn_row_planes, bad_counts) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    stack s;
    stack_init(&s, &rng, BP_RNN_LSTM, 2, 5, 8);
    for (size_t l = 0; l < 2; l++) {
        memset(s.c_ih[l], 4, s.w.GH);
        memset(s.c_hh[l], 3, s.w.GH);
    }
    struct {
        size_t layer;
        int hh;
        size_t row;
        uint8_t value;
        int bits;
        const char *message;
    } cases[] = {
        {0, 0, 0, 0, 8, "row_planes[0].ih[0] must be in 1..8 (bits), got 0"},
        {1, 1, 31, 9, 8, "row_planes[1].hh[31] must be in 1..8 (bits), got 9"},
        {1, 0, 17, 5, 4, "row_planes[1].ih[17] must be in 1..4 (bits), got 5"},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        uint8_t *c = cases[i].hh ? s.c_hh[cases[i].layer] : s.c_ih[cases[i].layer];
        uint8_t keep = c[cases[i].row];
        c[cases[i].row] = cases[i].value;
        bp_quant_options q = BP_QUANT_OPTIONS_INIT;
        q.bits = cases[i].bits;
        for (int split = 0; split <= 1; split++) {
            bp_rnn_options o = BP_RNN_OPTIONS_INIT;
            o.split_gates = split;
            o.row_planes = s.rp;
            bp_rnn *rnn = (bp_rnn *)1;
            bp_status st = bp_rnn_create(ctx, s.w.cell, 2, s.w.in, s.w.H, s.w.lw, &q, &o, &rnn);
            cr_assert(st == BP_ERR_OUT_OF_RANGE && rnn == NULL, "case %zu: %s", i, bp_last_error());
            cr_assert_str_eq(bp_last_error(), cases[i].message);
        }
        c[cases[i].row] = keep;
    }
    /* bp_quant_options.row_planes is for single matrices. */
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.row_planes = s.c_ih[0];
    bp_rnn *rnn = (bp_rnn *)1;
    cr_assert(bp_rnn_create(ctx, s.w.cell, 2, s.w.in, s.w.H, s.w.lw, &q, NULL, &rnn) ==
                  BP_ERR_UNSUPPORTED &&
              rnn == NULL);
    cr_assert(strstr(bp_last_error(), "bp_rnn_options.row_planes"), "%s", bp_last_error());
    /* NULL per operator: that operator keeps all planes. */
    s.rp[0].ih = NULL;
    s.rp[1].hh = NULL;
    bp_rnn_options o = BP_RNN_OPTIONS_INIT;
    o.row_planes = s.rp;
    cr_assert(bp_rnn_create(ctx, s.w.cell, 2, s.w.in, s.w.H, s.w.lw, NULL, &o, &rnn) == BP_OK, "%s",
              bp_last_error());
    uint8_t got[32];
    cr_assert(bp_matrix_row_planes(bp_rnn_matrix(rnn, 0, BP_RNN_INPUT, -1), got) == BP_OK);
    for (size_t r = 0; r < s.w.GH; r++)
        cr_assert(got[r] == 8, "layer 0 input row %zu: %u planes, want all 8", r, got[r]);
    bp_rnn_destroy(rnn);
    stack_free(&s);
    bp_context_destroy(ctx);
}
