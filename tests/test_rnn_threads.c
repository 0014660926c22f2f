/*
 * The RNN's threaded parts (rows of every product split by the backend, the
 * elementwise update split over hidden units on the context's pool once
 * batch x hidden >= 16384): several threads, and several caller threads
 * sharing one RNN, give the same h bit for bit as one thread. Labelled
 * `threads`, so CI also runs it under ThreadSanitizer.
 */
#include "test_util.h"
#include "bitplane_rnn.h"

#include "tu_criterion.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

TestSuite(rnn_threads, .fini = tu_suite_fini);

enum { E = 24, H = 136, B = 128, T = 2, CALLERS = 3 };

typedef struct shared {
    const bp_rnn *rnn;
    const float *x;
    const float *want;
    bp_rnn_mode mode;
    int ok;
} shared;

static void *caller(void *arg) {
    shared *s = arg;
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.threads = 2;
    bp_context *ctx = NULL;
    float *y = malloc((size_t)T * B * H * sizeof(float));
    bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
    run.planes_hh = 3;
    run.mode = s->mode;
    s->ok = y && bp_context_create(&o, &ctx) == BP_OK &&
            bp_rnn_forward(ctx, s->rnn, s->x, T, B, NULL, NULL, y, NULL, NULL, &run) == BP_OK &&
            memcmp(y, s->want, (size_t)T * B * H * sizeof(float)) == 0;
    bp_context_destroy(ctx);
    free(y);
    return NULL;
}

Test(rnn_threads, threads_and_callers_agree, .timeout = 300) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *one = tu_context(BP_CPU_KERNEL_AUTO, 1);
    for (int cell = BP_RNN_LSTM; cell <= BP_RNN_GRU; cell++) {
        size_t GH = (size_t)(cell == BP_RNN_LSTM ? 4 : 3) * H;
        float *w_ih = tu_xmalloc(GH * E * sizeof(float)),
              *w_hh = tu_xmalloc(GH * H * sizeof(float));
        float *x = tu_xmalloc((size_t)T * B * E * sizeof(float));
        float *want = tu_xmalloc((size_t)T * B * H * sizeof(float));
        tu_fill_uniform(&rng, w_ih, GH * E, -0.2f, 0.2f);
        tu_fill_uniform(&rng, w_hh, GH * H, -0.1f, 0.1f);
        tu_fill_gauss(&rng, x, (size_t)T * B * E, 1.0f);
        bp_rnn_layer_weights lw = {w_ih, w_hh, NULL, NULL};
        bp_rnn *rnn = NULL;
        cr_assert(bp_rnn_create(one, (bp_rnn_cell)cell, 1, E, H, &lw, NULL, NULL, &rnn) == BP_OK,
                  "%s", bp_last_error());
        for (int mode = BP_RNN_FLOAT; mode <= BP_RNN_INTEGER; mode++) {
            bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
            run.planes_hh = 3;
            run.mode = (bp_rnn_mode)mode;
            cr_assert(bp_rnn_forward(one, rnn, x, T, B, NULL, NULL, want, NULL, NULL, &run) ==
                      BP_OK);
            shared s[CALLERS];
            pthread_t th[CALLERS];
            for (int k = 0; k < CALLERS; k++) {
                s[k] = (shared){rnn, x, want, (bp_rnn_mode)mode, 0};
                cr_assert(pthread_create(&th[k], NULL, caller, &s[k]) == 0);
            }
            for (int k = 0; k < CALLERS; k++) {
                pthread_join(th[k], NULL);
                cr_assert(s[k].ok,
                          "cell %d mode %d caller %d: h differs from one thread (seed "
                          "%llu)",
                          cell, mode, k, (unsigned long long)seed);
            }
        }
        bp_rnn_destroy(rnn);
        free(w_ih);
        free(w_hh);
        free(x);
        free(want);
    }
    bp_context_destroy(one);
}
