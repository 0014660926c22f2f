/*
 * The median of a sample, header-only: the benchmarks that link the
 * library's bench helpers (bench_timer.c) and the stand-alone drivers that
 * cannot (bitplane-ab-bench loads two library builds by path;
 * avx2_paths_ratio.c is compiled by its script alone) share this one.
 */
#ifndef BENCH_MEDIAN_H
#define BENCH_MEDIAN_H

#include <stddef.h>
#include <stdlib.h>

static inline int bench_cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place (so v[0] is the fastest sample afterwards). */
static inline double bench_median_sorting(double *v, size_t n) {
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
