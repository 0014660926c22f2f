/*
 * Reference measurements the bitplane figures are compared against in the
 * same run: memory bandwidth, OpenBLAS fp32, and the VPOPCNTQ issue rate.
 */
#ifndef BENCH_PROBES_H
#define BENCH_PROBES_H

#include "bench_args.h"
#include "bench_report.h"

#include <stddef.h>
#include <stdint.h>

/* ---- bench_stream.c ---- */

/* The smallest probe buffer: well beyond any L3 on the machines we target. */
#define BENCH_STREAM_MIN_BYTES ((size_t)256 << 20)

/*
 * Most copies a benchmark rotates among to keep small matrices out of cache.
 * Under 256 KiB per call the rotation then covers less than
 * BENCH_STREAM_MIN_BYTES, but such calls measure call overhead, not
 * bandwidth, and a million tiny copies would only cost memory and time.
 */
#define BENCH_MAX_COPIES 1024

/* Copies needed so consecutive calls reading `bytes` each touch at least
 * BENCH_STREAM_MIN_BYTES before reusing one (bench_stream.c). */
size_t bench_rotation(size_t bytes);

/*
 * Median time of a read-only streaming sum over `bytes` (rounded up to a
 * whole number of 4 KiB pages per thread) split evenly across `threads`
 * pthreads. *bytes_read receives the bytes one pass reads and *isa the
 * load width used ("avx512" where the CPU and OS allow it, else "sse2").
 */
int bench_stream_probe(size_t bytes, int threads, int reps, double *median_s, size_t *bytes_read,
                       const char **isa);

/* The stream-read ceiling of one gemv run, as every backend's gemv reports it. */
typedef struct bench_stream_ceiling {
    size_t bytes;      /* bytes asked of the probe */
    double median_s;   /* one pass */
    size_t bytes_read; /* bytes one pass reads */
    const char *isa;
} bench_stream_ceiling;

/* Probe over at least the bytes a call with `planes` planes of an m x k
 * matrix reads (and at least BENCH_STREAM_MIN_BYTES), on o->threads. */
int bench_stream_for_gemv(const bench_opts *o, size_t m, size_t k, int planes,
                          bench_stream_ceiling *out);
static inline double bench_stream_gbps(const bench_stream_ceiling *s) {
    return (double)s->bytes_read / s->median_s / 1e9;
}
/* Append its "stream_read" record; 1 (reported) when out of memory. */
int bench_report_stream(bench_report *rep, const bench_stream_ceiling *s, const bench_opts *o,
                        size_t m, size_t k, size_t batch);

/* ---- bench_openblas.c ---- */

/*
 * Median time of y = W x with OpenBLAS on T threads: sgemv for batch 1,
 * sgemm for batch > 1, in the same layout bp_gemm uses (W row-major m x k,
 * x as batch columns of k floats, y as batch columns of m floats).
 * Small shapes rotate among copies of w (see bench_openblas.c).
 */
int bench_openblas_gemm(const float *w, const float *x, size_t m, size_t k, size_t batch,
                        int threads, int reps, double *median_s);

/* ---- bench_cpu.c (no ISA flags) ---- */

/* Nonzero when CPUID reports AVX512F and XCR0 shows the OS saves opmask
 * and ZMM state; otherwise why points at the reason. */
int bench_cpu_has_avx512f(const char **why);
/* As above, and CPUID also reports AVX512_VPOPCNTDQ. */
int bench_cpu_has_vpopcntdq(const char **why);

/* ---- bench_peak.c (the only file built with AVX-512 flags) ---- */

/*
 * Run `iters` iterations of BENCH_PEAK_CHAINS independent vpopcntq+vpaddq
 * chains on registers only. Call only when bench_cpu_has_vpopcntdq().
 * Returns a value derived from the chains so the loop cannot be removed.
 */
#define BENCH_PEAK_CHAINS 16
uint64_t bench_vpopcntq_loop(uint64_t iters, uint64_t seed);

/* Sum of n words with 64-byte aligned loads (p 64-byte aligned). Call only
 * when bench_cpu_has_avx512f(). */
uint64_t bench_avx512_sum(const uint64_t *p, size_t n);
/* The same with a software prefetch BENCH_STREAM_PREFETCH bytes ahead, and
 * as two interleaved forward streams (p 64-byte aligned, n a multiple of 8). */
#define BENCH_STREAM_PREFETCH 2048
uint64_t bench_avx512_sum_prefetch(const uint64_t *p, size_t n);
uint64_t bench_avx512_sum_2streams(const uint64_t *p, size_t n);

/* Median time of `threads` threads each running bench_vpopcntq_loop(iters). */
int bench_vpopcntq_probe(int threads, uint64_t iters, int reps, double *median_s);

#endif
