/*
 * The bandwidth ceiling: the fastest read-only streaming sum this host can
 * do, split across the same number of threads as the kernel. Every ×floor
 * figure divides by it, and a slow probe flatters every fraction, so the
 * probe races many loop forms (bench_stream_forms.h: vector width, add or
 * xor, 2/4/8 accumulators, software prefetch at several distances and
 * hints, non-temporal loads, two streams) over a buffer backed by 2 MiB
 * pages (madvise(MADV_HUGEPAGE)), plus the plain forms over a 4 KiB-page
 * buffer, and keeps the fastest median. Forms take turns pass by pass
 * (round-robin), so a burst of load from other processes hits them all
 * alike. The buffer is max(1 GiB, 4 x the last-level cache), at most
 * 4 GiB: a 480 MiB L3 holds a 256 MiB buffer whole and would report cache
 * bandwidth.
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "bench_common.h"
#include "bench_lib.h"
#include "bench_probes.h"
#include "bench_stream_forms.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE ((size_t)2 << 20)
#define MIN_BYTES ((size_t)1 << 30)
#define MAX_BYTES ((size_t)4 << 30)

size_t bench_rotation(size_t bytes) {
    if (bytes >= BENCH_STREAM_MIN_BYTES)
        return 1;
    size_t n = (BENCH_STREAM_MIN_BYTES + bytes - 1) / bytes;
    return n < BENCH_MAX_COPIES ? n : BENCH_MAX_COPIES;
}

size_t bench_stream_default_bytes(void) {
    long llc = 0;
#if defined(_SC_LEVEL3_CACHE_SIZE)
    llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    size_t bytes = llc > 0 ? 4 * (size_t)llc : MIN_BYTES;
    bytes = bytes < MIN_BYTES ? MIN_BYTES : bytes;
    return bytes > MAX_BYTES ? MAX_BYTES : bytes;
}

/* The portable form. Eight accumulators over one cache line give the
 * vectoriser independent add chains, so the loop is bound by loads. */
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

static const bench_read_form portable_form = {"portable-x8", BENCH_READ_PORTABLE, sum_words};

const bench_read_form *bench_stream_portable_form(void) {
    return &portable_form;
}

/* The forms this CPU can run, into out (capacity BENCH_STREAM_MAX_FORMS). */
static size_t usable_forms(const bench_read_form **out) {
    size_t n = 0;
    out[n++] = &portable_form;
#if defined(BENCH_X86_64)
    const char *why;
    size_t count;
    if (bench_cpu_has_avx2(&why)) {
        const bench_read_form *f = bench_stream_avx2_forms(&count);
        for (size_t i = 0; i < count && n < BENCH_STREAM_MAX_FORMS; i++)
            out[n++] = &f[i];
    }
    if (bench_cpu_has_avx512f(&why)) {
        const bench_read_form *f = bench_stream_avx512_forms(&count);
        for (size_t i = 0; i < count && n < BENCH_STREAM_MAX_FORMS; i++)
            out[n++] = &f[i];
    }
#endif
    return n;
}

/* The 4 KiB-page buffer only runs the plain forms: enough to show what
 * huge pages are worth without doubling the probe's time. */
static int plain_form(const char *name) {
    return strcmp(name, "portable-x8") == 0 || strcmp(name, "avx2-add-x4") == 0 ||
           strcmp(name, "avx512-add-x4") == 0;
}

/* A buffer of `bytes` (a multiple of 2 MiB) with or without huge pages,
 * filled with distinct non-zero words so every page is really backed, not
 * the shared zero page. */
static uint64_t *page_buffer(size_t bytes, int huge) {
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, bytes) != 0) {
        bench_fail("stream probe: cannot allocate %zu MiB", bytes >> 20);
        return NULL;
    }
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
    /* Advice only: where it is refused the figures still stand, and the
     * huge_mib field shows what the kernel actually gave. */
    (void)madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#else
    (void)huge;
#endif
    uint64_t *w = p;
    for (size_t i = 0; i < bytes / 8; i++)
        w[i] = (i + 1) * 0x9e3779b97f4a7c15ull;
    return w;
}

/* AnonHugePages of this process in MiB, or -1 where /proc does not say. */
static long anon_huge_mib(void) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

typedef struct stream_part {
    const uint64_t *p;
    size_t n; /* uint64 words, a multiple of 8 */
    bench_read_fn fn;
    uint64_t sum;
} stream_part;

static void *stream_worker(void *arg) {
    stream_part *part = arg;
    part->sum = part->fn(part->p, part->n);
    return NULL;
}

/* Keeps the sums observable so the reads cannot be optimised away. */
static volatile uint64_t stream_sink;

/* One timed pass with threads-1 new pthreads plus the calling thread.
 * Creating threads per pass costs tens of microseconds against a pass of
 * a gigabyte or more (tens of milliseconds) and needs no barrier. */
static int stream_pass(stream_part *parts, int threads, double *seconds) {
    pthread_t tid[BENCH_STREAM_MAX_THREADS];
    int started = 0;
    double t0 = bench_now();
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, stream_worker, &parts[t]) != 0)
            break;
        started = t;
    }
    stream_worker(&parts[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    *seconds = bench_now() - t0;
    if (started != threads - 1)
        return bench_fail("pthread_create failed in the stream probe");
    uint64_t s = 0;
    for (int t = 0; t < threads; t++)
        s += parts[t].sum;
    stream_sink = s;
    return 0;
}

int bench_stream_probe(size_t bytes, int threads, int reps, bench_stream_ceiling *out) {
    if (threads < 1 || threads > BENCH_STREAM_MAX_THREADS)
        return bench_fail("stream probe: threads must be 1..%d, got %d", BENCH_STREAM_MAX_THREADS,
                          threads);
    /* Whole 2 MiB pages per thread: every thread reads the same amount, on
     * its own huge pages. */
    size_t per = (bytes / (size_t)threads + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    size_t total = per * (size_t)threads;
    const int rounds = reps < BENCH_STREAM_ROUNDS ? (reps < 1 ? 1 : reps) : BENCH_STREAM_ROUNDS;

    const bench_read_form *forms[BENCH_STREAM_MAX_FORMS];
    size_t nforms = usable_forms(forms);
    /* One run per (form, buffer): every form on huge pages, the plain ones
     * on 4 KiB pages too. */
    struct run {
        const bench_read_form *form;
        int huge;
        double t[BENCH_STREAM_ROUNDS];
    } runs[2 * BENCH_STREAM_MAX_FORMS];
    size_t nruns = 0;
    for (size_t f = 0; f < nforms; f++)
        runs[nruns++] = (struct run){forms[f], 1, {0}};
    for (size_t f = 0; f < nforms; f++)
        if (plain_form(forms[f]->name))
            runs[nruns++] = (struct run){forms[f], 0, {0}};

    long huge_before = anon_huge_mib();
    uint64_t *bufs[2] = {page_buffer(total, 0), NULL};
    if (bufs[0])
        bufs[1] = page_buffer(total, 1);
    long huge_after = anon_huge_mib();
    if (!bufs[0] || !bufs[1]) {
        free(bufs[0]);
        return 1;
    }

    static stream_part parts[BENCH_STREAM_MAX_THREADS];
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        for (size_t i = 0; i < nruns && rc == 0; i++) {
            for (int t = 0; t < threads; t++)
                parts[t] = (stream_part){bufs[runs[i].huge] + (size_t)t * (per / 8), per / 8,
                                         runs[i].form->fn, 0};
            rc = stream_pass(parts, threads, &runs[i].t[r]);
        }
    }
    free(bufs[0]);
    free(bufs[1]);
    if (rc != 0)
        return rc;

    memset(out, 0, sizeof *out);
    out->bytes = bytes;
    out->bytes_read = total;
    out->threads = threads;
    out->rounds = rounds;
    out->huge_mib = huge_before < 0 || huge_after < 0 ? -1 : huge_after - huge_before;
    for (size_t i = 0; i < nruns; i++) {
        bench_stream_form_result *fr = &out->forms[out->nforms++];
        fr->name = runs[i].form->name;
        fr->huge = runs[i].huge;
        fr->median_s = bench_median(runs[i].t, (size_t)rounds);
        if (i == 0 || fr->median_s < out->median_s) {
            out->median_s = fr->median_s;
            out->isa = fr->name;
            out->fn = runs[i].form->fn;
            out->huge = fr->huge;
        }
    }
    return 0;
}

int bench_stream_replay_open(const bench_stream_ceiling *s, bench_stream_replay *r) {
    r->threads = s->threads;
    r->per = s->bytes_read / (size_t)s->threads;
    r->fn = s->fn;
    r->buf = page_buffer(s->bytes_read, s->huge);
    return r->buf ? 0 : 1;
}

int bench_stream_replay_pass(bench_stream_replay *r, double *seconds) {
    static stream_part parts[BENCH_STREAM_MAX_THREADS];
    for (int t = 0; t < r->threads; t++)
        parts[t] = (stream_part){r->buf + (size_t)t * (r->per / 8), r->per / 8, r->fn, 0};
    return stream_pass(parts, r->threads, seconds);
}

void bench_stream_replay_close(bench_stream_replay *r) {
    free(r->buf);
    r->buf = NULL;
}

int bench_stream_for_gemv(const bench_opts *o, size_t m, size_t k, int planes,
                          bench_stream_ceiling *out) {
    size_t bytes = bench_plane_bytes(m, k, planes);
    size_t floor_bytes = bench_stream_default_bytes();
    return bench_stream_probe(bytes > floor_bytes ? bytes : floor_bytes, o->threads, o->reps, out);
}

static const char *pages_name(int huge) {
    return huge ? "2M-madvise" : "4K";
}

int bench_report_stream(bench_report *rep, const bench_stream_ceiling *s, size_t m, size_t k,
                        size_t batch) {
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
    bench_put_int(rec, "threads", s->threads);
    bench_put_real(rec, "median_s", s->median_s);
    bench_put_int(rec, "bytes", (long long)s->bytes_read);
    bench_put_real(rec, "gbps", bench_stream_gbps(s));
    bench_put_int(rec, "reps", s->rounds);
    bench_put_str(rec, "isa", s->isa);
    bench_put_str(rec, "pages", pages_name(s->huge));
    if (s->huge_mib >= 0)
        bench_put_int(rec, "huge_mib", s->huge_mib);
    else
        bench_put_null(rec, "huge_mib");
    /* Every form, so a reader can see what won and by how much. */
    for (int i = 0; i < s->nforms; i++) {
        const bench_stream_form_result *f = &s->forms[i];
        rec = bench_report_add(rep, "stream_form");
        if (!rec)
            return 1;
        bench_put_str(rec, "kernel", f->name);
        bench_put_str(rec, "pages", pages_name(f->huge));
        bench_put_int(rec, "threads", s->threads);
        bench_put_real(rec, "median_s", f->median_s);
        bench_put_int(rec, "bytes", (long long)s->bytes_read);
        bench_put_real(rec, "gbps", (double)s->bytes_read / f->median_s / 1e9);
        bench_put_int(rec, "reps", s->rounds);
    }
    return 0;
}
