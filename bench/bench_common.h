/*
 * Small helpers every subcommand uses: timing, random data, error reporting,
 * aligned buffers.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include "bitplane.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- bench_timer.c ---- */

/* Seconds on CLOCK_MONOTONIC, immune to wall-clock adjustments. */
double bench_now(void);
/* Seconds of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID): time the
 * scheduler gives other jobs is not counted, for same-run ratios on a
 * loaded machine. */
double bench_thread_cpu_s(void);
/* Median of n values (n >= 1); v is reordered (sorted ascending). */
double bench_median(double *v, size_t n);

/*
 * One benchmarked call. `call` counts every call (warm-up included) so the
 * callee can rotate among copies of its data. Returns 0, or nonzero after
 * reporting an error.
 */
typedef int (*bench_fn)(void *arg, size_t call);
/* Run fn `warmup` times untimed, then `reps` times timed one call each;
 * *median_s receives the median. Returns fn's first nonzero result. */
int bench_time(bench_fn fn, void *arg, int warmup, int reps, double *median_s);

/* ---- bench_rng.c ---- */

typedef struct bench_rng {
    uint64_t s[4];
} bench_rng;

void bench_rng_seed(bench_rng *r, uint64_t seed);
/* Fill with independent N(0, 1) samples. */
void bench_fill_gaussian(bench_rng *r, float *v, size_t n);

/* ---- bench_error.c ---- */

/* Print "bitplane-bench: <what>: <status>: <bp_last_error()>"; returns 1,
 * the library-failure exit code. */
int bench_bp_fail(bp_status st, const char *what);
/* Print "bitplane-bench: <msg>" for a non-library failure; returns 1. */
int bench_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* 64-byte aligned allocation of n*size bytes with overflow check; NULL on
 * failure after printing what failed. Free with free(). */
void *bench_alloc(size_t n, size_t size, const char *what);

#endif
