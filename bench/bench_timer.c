/* Timing: CLOCK_MONOTONIC and medians, the only statistic the reports use. */
#define _POSIX_C_SOURCE 200809L
#include "bench_common.h"
#include "bench_median.h"

#include <stdlib.h>
#include <time.h>

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_median(double *v, size_t n) {
    return bench_median_sorting(v, n);
}

int bench_time(bench_fn fn, void *arg, int warmup, int reps, double *median_s) {
    double *t = bench_alloc((size_t)reps, sizeof *t, "timing samples");
    if (!t)
        return 1;
    size_t call = 0;
    int rc = 0;
    for (int i = 0; i < warmup && rc == 0; i++)
        rc = fn(arg, call++);
    for (int i = 0; i < reps && rc == 0; i++) {
        double t0 = bench_now();
        rc = fn(arg, call++);
        t[i] = bench_now() - t0;
    }
    if (rc == 0)
        *median_s = bench_median(t, (size_t)reps);
    free(t);
    return rc;
}
