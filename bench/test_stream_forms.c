/*
 * Every stream-probe read form this CPU can run (the portable one on every
 * CPU) computes what it claims:
 * add forms the 64-bit sum of all words, xor forms the sum over vector lanes
 * of each lane's xor, on lengths that leave a tail after the last 512-byte
 * block (and after each half for the two-stream form). A form that skipped
 * or re-read lines would be timed over the wrong number of bytes.
 */
#include "bench_common.h"
#include "bench_probes.h"
#include "bench_stream_forms.h"

#include <stdlib.h>
#include <string.h>

static uint64_t expected(const uint64_t *p, size_t n, const char *name) {
    int lanes = strncmp(name, "avx512", 6) == 0 ? 8 : 4;
    size_t streams = strstr(name, "2streams") ? 2 : 1;
    size_t per = n / streams / 64 * 64, body = streams * per;
    uint64_t sum = 0;
    if (!strstr(name, "-xor-")) {
        for (size_t i = 0; i < n; i++)
            sum += p[i];
        return sum;
    }
    uint64_t x[8] = {0};
    for (size_t i = 0; i < body; i++)
        x[i % (size_t)lanes] ^= p[i];
    for (int l = 0; l < lanes; l++)
        sum += x[l];
    for (size_t i = body; i < n; i++)
        sum += p[i];
    return sum;
}

static int check(const bench_read_form *forms, size_t count, const uint64_t *buf, int *checked) {
    static const size_t lengths[] = {8, 64, 72, 1000, 4096, 4096 + 8, 64 * 37 + 24};
    for (size_t f = 0; f < count; f++) {
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            uint64_t got = forms[f].fn(buf, lengths[l]);
            uint64_t want = expected(buf, lengths[l], forms[f].name);
            if (got != want) {
                fprintf(stderr, "%s over %zu words: got %llu, want %llu\n", forms[f].name,
                        lengths[l], (unsigned long long)got, (unsigned long long)want);
                return 1;
            }
        }
        (*checked)++;
    }
    return 0;
}

int main(void) {
    const size_t n = 8192;
    uint64_t *buf = bench_alloc(n, sizeof *buf, "test buffer");
    if (!buf)
        return 1;
    bench_rng rng;
    bench_rng_seed(&rng, 7);
    for (size_t i = 0; i < n; i++) {
        float f[2];
        bench_fill_gaussian(&rng, f, 2);
        memcpy(&buf[i], f, sizeof buf[i]);
    }
    int checked = 0;
    int rc = check(bench_stream_portable_form(), 1, buf, &checked);
#if defined(BENCH_X86_64)
    const char *why;
    size_t count;
    if (bench_cpu_has_avx2(&why)) {
        const bench_read_form *f = bench_stream_avx2_forms(&count);
        rc |= check(f, count, buf, &checked);
    } else {
        printf("skipping the AVX2 forms: %s\n", why);
    }
    if (bench_cpu_has_avx512f(&why)) {
        const bench_read_form *f = bench_stream_avx512_forms(&count);
        rc |= check(f, count, buf, &checked);
    } else {
        printf("skipping the AVX-512 forms: %s\n", why);
    }
#endif
    printf("%d read forms checked\n", checked);
    free(buf);
    return rc;
}
