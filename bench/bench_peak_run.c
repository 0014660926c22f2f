/*
 * Runs the VPOPCNTQ loop on every thread at once, timed from launch to the
 * last join, so the figure is the whole-machine rate the kernel competes
 * with at the same thread count. Kept apart from bench_peak.c so this file
 * needs no ISA flags.
 */
#include "bench_common.h"
#include "bench_probes.h"

#include <pthread.h>

typedef struct peak_part {
    uint64_t iters, seed, result;
} peak_part;

static void *peak_worker(void *arg) {
    peak_part *p = arg;
#if defined(BENCH_X86_64)
    p->result = bench_vpopcntq_loop(p->iters, p->seed);
#else
    p->result = 0; /* unreachable: bench_cpu_has_vpopcntdq() is 0 off x86-64 */
#endif
    return NULL;
}

static volatile uint64_t peak_sink;

typedef struct peak_job {
    peak_part parts[1024];
    int threads;
} peak_job;

static int peak_call(void *arg, size_t call) {
    peak_job *job = arg;
    pthread_t tid[1024];
    int started = 0;
    for (int t = 0; t < job->threads; t++)
        job->parts[t].seed = call * 1024 + (uint64_t)t;
    for (int t = 1; t < job->threads; t++) {
        if (pthread_create(&tid[t], NULL, peak_worker, &job->parts[t]) != 0)
            break;
        started = t;
    }
    peak_worker(&job->parts[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    if (started != job->threads - 1)
        return bench_fail("pthread_create failed in the VPOPCNTQ probe");
    uint64_t s = 0;
    for (int t = 0; t < job->threads; t++)
        s += job->parts[t].result;
    peak_sink = s;
    return 0;
}

int bench_vpopcntq_probe(int threads, uint64_t iters, int reps, double *median_s) {
    static peak_job job; /* 32 KiB: too large for comfort on the stack */
    if (threads < 1 || threads > 1024)
        return bench_fail("VPOPCNTQ probe: threads must be 1..1024, got %d", threads);
    job.threads = threads;
    for (int t = 0; t < threads; t++)
        job.parts[t].iters = iters;
    return bench_time(peak_call, &job, 2, reps, median_s);
}
