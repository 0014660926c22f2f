/*
 * Reference measurements the bitplane figures are compared against in the
 * same run: memory bandwidth, OpenBLAS fp32, and the VPOPCNTQ issue rate.
 */
#ifndef BENCH_PROBES_H
#define BENCH_PROBES_H

#include "bench_args.h"
#include "bench_report.h"
#include "bench_stream_forms.h"

#include <stddef.h>
#include <stdint.h>

/* ---- bench_stream.c ---- */

/* The bytes a rotation of matrix copies covers between two uses of one
 * copy (the stream probe itself reads bench_stream_default_bytes()). */
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

/* Most threads and loop forms the stream probe handles. */
#define BENCH_STREAM_MAX_THREADS 1024
#define BENCH_STREAM_MAX_FORMS   48
/* Passes per form; the probe keeps each form's median. */
#define BENCH_STREAM_ROUNDS 5

/* The probe buffer: max(1 GiB, 4 x the last-level cache), at most 4 GiB. */
size_t bench_stream_default_bytes(void);

typedef struct bench_stream_form_result {
    const char *name; /* the loop form (bench_stream_forms.h) */
    int huge;         /* 1: buffer advised to 2 MiB pages, 0: 4 KiB pages */
    double median_s;  /* one pass */
} bench_stream_form_result;

/* The stream-read ceiling: the fastest form's median, and every form's. */
typedef struct bench_stream_ceiling {
    size_t bytes;      /* bytes asked of the probe */
    double median_s;   /* the fastest form's median pass */
    size_t bytes_read; /* bytes one pass reads */
    const char *isa;   /* the fastest form's name */
    bench_read_fn fn;  /* the fastest form */
    int huge;          /* the fastest form's buffer */
    int threads, rounds;
    long huge_mib; /* MiB of the buffers the kernel backed by huge pages, -1 unknown */
    int nforms;
    bench_stream_form_result forms[2 * BENCH_STREAM_MAX_FORMS];
} bench_stream_ceiling;

/*
 * Race every loop form this CPU runs over `bytes` (rounded up to whole
 * 2 MiB pages per thread) split evenly across `threads` pthreads, min(reps,
 * BENCH_STREAM_ROUNDS) round-robin passes each, and fill *out. Allocates
 * two buffers of that size while it runs.
 */
int bench_stream_probe(size_t bytes, int threads, int reps, bench_stream_ceiling *out);

/*
 * The fastest form kept to run again, one pass at a time, beside other
 * methods in the same rounds, so a x floor ratio compares times taken
 * under the same load (bench_ggml.c). Holds a buffer of the probe's size.
 */
typedef struct bench_stream_replay {
    uint64_t *buf;
    size_t per; /* bytes per thread */
    int threads;
    bench_read_fn fn;
} bench_stream_replay;
int bench_stream_replay_open(const bench_stream_ceiling *s, bench_stream_replay *r);
int bench_stream_replay_pass(bench_stream_replay *r, double *seconds);
void bench_stream_replay_close(bench_stream_replay *r);

/* Probe over at least the bytes a call with `planes` planes of an m x k
 * matrix reads, and at least bench_stream_default_bytes(), on o->threads. */
int bench_stream_for_gemv(const bench_opts *o, size_t m, size_t k, int planes,
                          bench_stream_ceiling *out);
static inline double bench_stream_gbps(const bench_stream_ceiling *s) {
    return (double)s->bytes_read / s->median_s / 1e9;
}
/* Append its "stream_read" record and one "stream_form" record per form;
 * 1 (reported) when out of memory. */
int bench_report_stream(bench_report *rep, const bench_stream_ceiling *s, size_t m, size_t k,
                        size_t batch);

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
/* Nonzero when CPUID reports AVX2 and XCR0 shows the OS saves YMM state. */
int bench_cpu_has_avx2(const char **why);

/* ---- bench_peak.c (built with AVX-512 flags, x86-64 only) ---- */

/*
 * Run `iters` iterations of BENCH_PEAK_CHAINS independent vpopcntq+vpaddq
 * chains on registers only. Call only when bench_cpu_has_vpopcntdq().
 * Returns a value derived from the chains so the loop cannot be removed.
 */
#define BENCH_PEAK_CHAINS 16
uint64_t bench_vpopcntq_loop(uint64_t iters, uint64_t seed);

/* Median time of `threads` threads each running bench_vpopcntq_loop(iters). */
int bench_vpopcntq_probe(int threads, uint64_t iters, int reps, double *median_s);

#endif
