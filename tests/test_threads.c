/*
 * Thread-safety (label `threads`, run under TSan in CI):
 *  - 8 threads share ONE matrix and call bp_gemm at once with different
 *    plane counts, act_bits and batch sizes, on one shared context and on one
 *    context each; every result equals the serial result bit for bit;
 *  - dequantize and serialize run concurrently with them;
 *  - bp_last_error() is per thread;
 *  - contexts and matrices can be created and destroyed concurrently.
 * Worker threads never call Criterion asserts; they record failures that
 * the main thread reports.
 */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"
#include "bp_abi.h"

#include "tu_criterion.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(threads, .fini = tu_suite_fini);

#define NTHREADS 8
#define ITERS    6

typedef struct shared {
    const bp_matrix *m;
    bp_context *shared_ctx; /* NULL: each worker makes its own */
    pthread_barrier_t barrier;
    size_t M, K;
} shared;

typedef struct worker {
    shared *sh;
    int id;
    int planes, act_bits;
    size_t batch;
    int column_planes[4];
    float *x;
    float *expect; /* serial result */
    float *deq_expect;
    unsigned char *ser_expect;
    size_t ser_len;
    char failure[256];
} worker;

static void run_once(bp_context *ctx, worker *w, float *y) {
    bp_run_options o = tu_run(w->planes, w->act_bits);
    if (w->id % 3 == 2)
        o.column_planes = w->column_planes;
    bp_status st = bp_gemm(ctx, w->sh->m, w->x, w->batch, w->sh->K, y, w->sh->M, &o);
    if (st != BP_OK && !w->failure[0])
        snprintf(w->failure, sizeof w->failure, "thread %d: bp_gemm failed: %s (%s)", w->id,
                 bp_status_string(st), bp_last_error());
}

static void *worker_main(void *arg) {
    worker *w = arg;
    shared *sh = w->sh;
    bp_context *ctx = sh->shared_ctx;
    if (!ctx) {
        bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
        o.threads = 1 + w->id % 2;
        o.cpu_kernel = w->id % 4 == 3 ? BP_CPU_KERNEL_REFERENCE : BP_CPU_KERNEL_AUTO;
        if (bp_context_create(&o, &ctx) != BP_OK) {
            snprintf(w->failure, sizeof w->failure, "thread %d: context: %s", w->id,
                     bp_last_error());
            pthread_barrier_wait(&sh->barrier);
            return NULL;
        }
    }
    size_t ylen = w->batch * sh->M;
    float *y = malloc(ylen * sizeof *y);
    float *deq = malloc(sh->M * sh->K * sizeof *deq);
    unsigned char *ser = malloc(w->ser_len);
    pthread_barrier_wait(&sh->barrier);
    for (int it = 0; it < ITERS && y && deq && ser; it++) {
        tu_fill_sentinel(y, ylen);
        run_once(ctx, w, y);
        if (memcmp(y, w->expect, ylen * sizeof *y) != 0 && !w->failure[0]) {
            size_t r = 0, c = 0;
            tu_first_mismatch(w->expect, y, sh->M, w->batch, sh->M, &r, &c);
            snprintf(w->failure, sizeof w->failure,
                     "thread %d iteration %d (planes %d act_bits %d batch %zu): concurrent "
                     "result differs from serial at row %zu col %zu: %a vs %a",
                     w->id, it, w->planes, w->act_bits, w->batch, r, c,
                     (double)w->expect[c * sh->M + r], (double)y[c * sh->M + r]);
        }
        if (w->id % 4 == 1) { /* concurrent readers of the same matrix */
            int n = 1 + (w->id + it) % bp_matrix_bits(sh->m);
            if (bp_matrix_dequantize(NULL, sh->m, n, deq, sh->K) != BP_OK ||
                (n == w->planes && memcmp(deq, w->deq_expect, sh->M * sh->K * sizeof *deq) != 0)) {
                if (!w->failure[0])
                    snprintf(w->failure, sizeof w->failure,
                             "thread %d: concurrent dequantize failed or differs", w->id);
            }
            size_t need = 0;
            if (bp_matrix_serialize(sh->m, ser, w->ser_len, &need) != BP_OK || need != w->ser_len ||
                memcmp(ser, w->ser_expect, need) != 0) {
                if (!w->failure[0])
                    snprintf(w->failure, sizeof w->failure,
                             "thread %d: concurrent serialize failed or differs", w->id);
            }
        }
        /* bp_last_error is thread-local: fail with a thread-specific value. */
        bp_run_options bad = tu_run(1000 + w->id, 8);
        bp_status st = bp_gemm(ctx, sh->m, w->x, 1, sh->K, y, sh->M, &bad);
        char want[32];
        snprintf(want, sizeof want, "%d", 1000 + w->id);
        if (st != BP_ERR_OUT_OF_RANGE || !strstr(bp_last_error(), want)) {
            if (!w->failure[0])
                snprintf(w->failure, sizeof w->failure,
                         "thread %d: bp_last_error() not thread-local: status %s, message '%s'",
                         w->id, bp_status_string(st), bp_last_error());
        }
    }
    if (!y || !deq || !ser)
        snprintf(w->failure, sizeof w->failure, "thread %d: out of memory", w->id);
    free(y);
    free(deq);
    free(ser);
    if (!sh->shared_ctx)
        bp_context_destroy(ctx);
    return NULL;
}

static void run_threads(int shared_context) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    shared sh;
    sh.M = 300;
    sh.K = 777;
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    float *wts = tu_xmalloc(sh.M * sh.K * sizeof *wts);
    tu_fill_gauss(&rng, wts, sh.M * sh.K, 1.0f);
    bp_matrix *m = tu_quantize(ctx, wts, sh.M, sh.K, sh.K, 8, BP_QUANT_UNIFORM, 0.0f);
    free(wts);
    sh.m = m;
    sh.shared_ctx = shared_context ? ctx : NULL;
    pthread_barrier_init(&sh.barrier, NULL, NTHREADS);
    size_t ser_len = 0;
    cr_assert_eq(bp_matrix_serialize(m, NULL, 0, &ser_len), BP_OK);
    unsigned char *ser = tu_xmalloc(ser_len);
    cr_assert_eq(bp_matrix_serialize(m, ser, ser_len, &ser_len), BP_OK);

    static const int act_list[] = {2, 4, 8, 16, 1, 12, 8, 3};
    worker w[NTHREADS];
    bp_context *serial = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    for (int t = 0; t < NTHREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].sh = &sh;
        w[t].id = t;
        w[t].planes = t + 1;
        w[t].act_bits = act_list[t];
        w[t].batch = 1 + (size_t)(t % 4);
        for (int c = 0; c < 4; c++)
            w[t].column_planes[c] = (t + 3 * c) % 9;
        w[t].x = tu_xmalloc(w[t].batch * sh.K * sizeof *w[t].x);
        tu_fill_gauss(&rng, w[t].x, w[t].batch * sh.K, 1.0f);
        w[t].expect = tu_xmalloc(w[t].batch * sh.M * sizeof *w[t].expect);
        run_once(serial, &w[t], w[t].expect);
        cr_assert(!w[t].failure[0], "%s", w[t].failure);
        if (w[t].act_bits == 1) {
            /* Binary activations may differ across paths within tolerance;
             * compute the serial result on the path the thread will use. */
            bp_context *same = shared_context ? ctx : NULL;
            if (!same) {
                bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
                o.threads = 1 + t % 2;
                o.cpu_kernel = t % 4 == 3 ? BP_CPU_KERNEL_REFERENCE : BP_CPU_KERNEL_AUTO;
                cr_assert_eq(bp_context_create(&o, &same), BP_OK);
            }
            run_once(same, &w[t], w[t].expect);
            if (same != ctx)
                bp_context_destroy(same);
        }
        w[t].deq_expect = tu_xmalloc(sh.M * sh.K * sizeof *w[t].deq_expect);
        cr_assert_eq(bp_matrix_dequantize(NULL, m, w[t].planes, w[t].deq_expect, sh.K), BP_OK);
        w[t].ser_expect = ser;
        w[t].ser_len = ser_len;
    }
    bp_context_destroy(serial);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < NTHREADS; t++)
        cr_expect(!w[t].failure[0], "%s context: %s (seed=%llu)", shared_context ? "shared" : "own",
                  w[t].failure, seed);
    for (int t = 0; t < NTHREADS; t++) {
        free(w[t].x);
        free(w[t].expect);
        free(w[t].deq_expect);
    }
    free(ser);
    pthread_barrier_destroy(&sh.barrier);
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
}

Test(threads, shared_matrix_shared_context, .timeout = 300) {
    run_threads(1);
}

Test(threads, shared_matrix_own_contexts, .timeout = 300) {
    run_threads(0);
}

/* Concurrent create/quantize/destroy: each thread quantizes the same weights
 * on its own context; the serialized bytes must all be identical. */
typedef struct qjob {
    const float *w;
    size_t M, K;
    unsigned char *out;
    size_t len;
    char failure[200];
} qjob;

static void *quantize_main(void *arg) {
    qjob *j = arg;
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.threads = 2;
    bp_context *ctx = NULL;
    bp_matrix *m = NULL;
    if (bp_context_create(&o, &ctx) != BP_OK) {
        snprintf(j->failure, sizeof j->failure, "context: %s", bp_last_error());
        return NULL;
    }
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.method = BP_QUANT_RESIDUAL;
    if (bp_matrix_quantize(ctx, j->w, j->M, j->K, j->K, &q, &m) != BP_OK) {
        snprintf(j->failure, sizeof j->failure, "quantize: %s", bp_last_error());
    } else if (bp_matrix_serialize(m, NULL, 0, &j->len) != BP_OK || !(j->out = malloc(j->len)) ||
               bp_matrix_serialize(m, j->out, j->len, &j->len) != BP_OK) {
        snprintf(j->failure, sizeof j->failure, "serialize: %s", bp_last_error());
    }
    bp_context_destroy(ctx); /* the matrix outlives its context */
    bp_matrix_destroy(m);
    return NULL;
}

Test(threads, concurrent_quantize, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t M = 150, K = 300;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    qjob jobs[6];
    pthread_t th[6];
    for (int t = 0; t < 6; t++) {
        memset(&jobs[t], 0, sizeof jobs[t]);
        jobs[t].w = w;
        jobs[t].M = M;
        jobs[t].K = K;
        cr_assert_eq(pthread_create(&th[t], NULL, quantize_main, &jobs[t]), 0);
    }
    for (int t = 0; t < 6; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 6; t++) {
        cr_assert(!jobs[t].failure[0], "thread %d: %s", t, jobs[t].failure);
        cr_assert(jobs[t].len == jobs[0].len && memcmp(jobs[t].out, jobs[0].out, jobs[0].len) == 0,
                  "thread %d: concurrent quantization gave a different matrix; seed=%llu", t, seed);
    }
    for (int t = 0; t < 6; t++)
        free(jobs[t].out);
    free(w);
}

/* bp_last_error works in a brand-new thread with no context: "" at first. */
static void *fresh_thread(void *arg) {
    char *out = arg;
    snprintf(out, 64, "[%s]", bp_last_error());
    bp_matrix *m;
    bp_matrix_load(NULL, "/nonexistent-bitplane/x", &m);
    snprintf(out + 64, 64, "%s", bp_last_error());
    return NULL;
}

Test(threads, last_error_per_thread) {
    char main_msg[256];
    bp_context_create(NULL, NULL); /* fail on the main thread */
    snprintf(main_msg, sizeof main_msg, "%s", bp_last_error());
    cr_assert(main_msg[0]);
    char buf[128] = {0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fresh_thread, buf), 0);
    pthread_join(th, NULL);
    cr_expect_str_eq(buf, "[]", "a new thread must start with an empty message, got %s", buf);
    cr_expect(strstr(buf + 64, "nonexistent") != NULL, "thread's own message: %s", buf + 64);
    cr_expect_str_eq(bp_last_error(), main_msg, "another thread's failure changed this thread's");
}
