/*
 * The bandwidth ceiling: a read-only streaming sum, the same access pattern
 * as the plane slabs, split across the same number of threads as the
 * kernel. bitplane lines report their bandwidth as a fraction of this, and a
 * slow probe flatters every fraction, so it times several loop forms and
 * keeps the fastest: the portable sum (SSE2), and where CPUID/XCR0 allow
 * 64-byte AVX-512 loads (bench_peak.c), plain, with a software prefetch,
 * and as two interleaved streams. `isa` names the winner.
 */
#include "bench_common.h"
#include "bench_probes.h"
#include "bench_lib.h"

#include <pthread.h>
#include <stdlib.h>

size_t bench_rotation(size_t bytes) {
    if (bytes >= BENCH_STREAM_MIN_BYTES)
        return 1;
    size_t n = (BENCH_STREAM_MIN_BYTES + bytes - 1) / bytes;
    return n < BENCH_MAX_COPIES ? n : BENCH_MAX_COPIES;
}

/* The loop forms, in the order they are tried. */
enum { FORM_SSE2, FORM_AVX512, FORM_AVX512_PREFETCH, FORM_AVX512_2STREAMS, NFORMS };
static const char *const form_names[NFORMS] = {"sse2", "avx512", "avx512-prefetch",
                                               "avx512-2streams"};

typedef struct stream_part {
    const uint64_t *p;
    size_t n; /* uint64 words, a multiple of 8 */
    int form;
    uint64_t sum;
} stream_part;

/* The portable fallback. Eight accumulators over one cache line give the
 * vectoriser independent add chains, so the loop is bound by loads, never
 * by add latency. */
static uint64_t sum_words(const uint64_t *p, size_t n) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = 0; i < n; i += 8) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
        s4 += p[i + 4];
        s5 += p[i + 5];
        s6 += p[i + 6];
        s7 += p[i + 7];
    }
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

static void *stream_worker(void *arg) {
    stream_part *part = arg;
    switch (part->form) {
#if defined(BENCH_X86_64)
    case FORM_AVX512:
        part->sum = bench_avx512_sum(part->p, part->n);
        break;
    case FORM_AVX512_PREFETCH:
        part->sum = bench_avx512_sum_prefetch(part->p, part->n);
        break;
    case FORM_AVX512_2STREAMS:
        part->sum = bench_avx512_sum_2streams(part->p, part->n);
        break;
#endif
    default:
        part->sum = sum_words(part->p, part->n);
    }
    return NULL;
}

/* Keeps the sums observable so the reads cannot be optimised away. */
static volatile uint64_t stream_sink;

/* One pass with threads-1 new pthreads plus the calling thread. Creating the
 * threads per pass costs tens of microseconds against a pass of >= 256 MiB
 * (milliseconds), and avoids a hand-rolled barrier. */
static int stream_pass(stream_part *parts, int threads) {
    pthread_t tid[1024];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, stream_worker, &parts[t]) != 0)
            break;
        started = t;
    }
    stream_worker(&parts[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    if (started != threads - 1)
        return bench_fail("pthread_create failed in the stream probe");
    uint64_t s = 0;
    for (int t = 0; t < threads; t++)
        s += parts[t].sum;
    stream_sink = s;
    return 0;
}

typedef struct stream_job {
    stream_part *parts;
    int threads;
} stream_job;

static int stream_call(void *arg, size_t call) {
    (void)call;
    stream_job *job = arg;
    return stream_pass(job->parts, job->threads);
}

int bench_stream_probe(size_t bytes, int threads, int reps, double *median_s, size_t *bytes_read,
                       const char **isa) {
    if (threads < 1 || threads > 1024)
        return bench_fail("stream probe: threads must be 1..1024, got %d", threads);
    /* Whole 4 KiB pages per thread: every thread reads the same amount and
     * no two threads share a cache line. */
    size_t per = (bytes / (size_t)threads + 4095) / 4096 * 4096;
    size_t total = per * (size_t)threads;
    uint64_t *buf = bench_alloc(total, 1, "stream probe buffer");
    if (!buf)
        return 1;
    /* Distinct non-zero data: pages must really be backed, not the shared
     * zero page, or the probe would read one cached page over and over. */
    for (size_t i = 0; i < total / 8; i++)
        buf[i] = i * 0x9e3779b97f4a7c15ull;

    const char *why;
    int nforms = bench_cpu_has_avx512f(&why) ? NFORMS : 1;
    static stream_part parts[1024];
    int rc = 0;
    double best = 0;
    for (int f = 0; f < nforms && rc == 0; f++) {
        for (int t = 0; t < threads; t++) {
            parts[t].form = f;
            parts[t].p = buf + (size_t)t * (per / 8);
            parts[t].n = per / 8;
            parts[t].sum = 0;
        }
        stream_job job = {parts, threads};
        double med = 0;
        rc = bench_time(stream_call, &job, 2, reps, &med);
        if (rc == 0 && (f == 0 || med < best)) {
            best = med;
            *isa = form_names[f];
        }
    }
    free(buf);
    if (rc == 0) {
        *median_s = best;
        *bytes_read = total;
    }
    return rc;
}

int bench_stream_for_gemv(const bench_opts *o, size_t m, size_t k, int planes,
                          bench_stream_ceiling *out) {
    out->bytes = bench_plane_bytes(m, k, planes);
    if (out->bytes < BENCH_STREAM_MIN_BYTES)
        out->bytes = BENCH_STREAM_MIN_BYTES;
    out->median_s = 0;
    out->bytes_read = 0;
    out->isa = "";
    return bench_stream_probe(out->bytes, o->threads, o->reps, &out->median_s, &out->bytes_read,
                              &out->isa);
}

int bench_report_stream(bench_report *rep, const bench_stream_ceiling *s, const bench_opts *o,
                        size_t m, size_t k, size_t batch) {
    bench_record *rec = bench_report_add(rep, "stream_read");
    if (!rec)
        return 1;
    bench_put_str(rec, "backend", "cpu");
    bench_put_str(rec, "kernel", "stream");
    bench_put_int(rec, "m", (long long)m);
    bench_put_int(rec, "k", (long long)k);
    bench_put_int(rec, "batch", (long long)batch);
    bench_put_null(rec, "planes");
    bench_put_null(rec, "act_bits");
    bench_put_int(rec, "threads", o->threads);
    bench_put_real(rec, "median_s", s->median_s);
    bench_put_int(rec, "bytes", (long long)s->bytes_read);
    bench_put_real(rec, "gbps", bench_stream_gbps(s));
    bench_put_int(rec, "reps", o->reps);
    bench_put_str(rec, "isa", s->isa);
    return 0;
}
