/*
 * The AVX-512 microbenchmark loops, kept in the only file built with ISA
 * flags; callers check bench_cpu.c's run-time guards first.
 *
 * The VPOPCNTQ issue-rate ceiling: independent vpopcntq+vpaddq chains on
 * registers only, no memory traffic. Each chain is x = popcnt(x) + x: the popcount depends on the
 * previous result, so the compiler cannot hoist or fold it, and the add keeps the values from
 * collapsing to a fixed point. With 16 chains in flight the popcount latency is hidden and the loop
 * runs at the popcount throughput, which is what the bit-serial kernels are bounded by.
 */
#include "bench_probes.h"

#include <immintrin.h>

uint64_t bench_vpopcntq_loop(uint64_t iters, uint64_t seed) {
    __m512i x[BENCH_PEAK_CHAINS];
    for (int c = 0; c < BENCH_PEAK_CHAINS; c++)
        x[c] = _mm512_set1_epi64((long long)(seed + (uint64_t)c * 0x9e3779b97f4a7c15ull));
    for (uint64_t i = 0; i < iters; i++) {
        for (int c = 0; c < BENCH_PEAK_CHAINS; c++)
            x[c] = _mm512_add_epi64(_mm512_popcnt_epi64(x[c]), x[c]);
    }
    /* Summed as unsigned: the intrinsic reduce adds signed lanes, which
     * overflows (undefined behaviour) on these arbitrary values. */
    uint64_t lanes[8], sum = 0;
    for (int c = 0; c < BENCH_PEAK_CHAINS; c++) {
        _mm512_storeu_si512((void *)lanes, x[c]);
        for (int l = 0; l < 8; l++)
            sum += lanes[l];
    }
    return sum;
}

/*
 * The streaming sum with 64-byte loads. One load per cache line (four with
 * SSE2) leaves the core's load queue room for four times as many lines in
 * flight, which is what bounds one core's DRAM bandwidth; on the Zen 4 dev
 * machine the SSE2 loop read more slowly than OpenBLAS's sgemv, so it was
 * not a ceiling. Four accumulators hide the add latency.
 */
uint64_t bench_avx512_sum(const uint64_t *p, size_t n) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a = _mm512_add_epi64(a, _mm512_load_si512((const void *)(p + i)));
        b = _mm512_add_epi64(b, _mm512_load_si512((const void *)(p + i + 8)));
        c = _mm512_add_epi64(c, _mm512_load_si512((const void *)(p + i + 16)));
        d = _mm512_add_epi64(d, _mm512_load_si512((const void *)(p + i + 24)));
    }
    a = _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d));
    uint64_t lanes[8], sum = 0;
    _mm512_storeu_si512((void *)lanes, a);
    for (int l = 0; l < 8; l++)
        sum += lanes[l];
    for (; i < n; i++)
        sum += p[i];
    return sum;
}

/* The same sum with a software prefetch BENCH_STREAM_PREFETCH bytes ahead
 * (what the kernels do), for hosts whose hardware prefetcher alone does not
 * keep enough lines in flight. */
uint64_t bench_avx512_sum_prefetch(const uint64_t *p, size_t n) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm_prefetch((const char *)(p + i) + BENCH_STREAM_PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i) + BENCH_STREAM_PREFETCH + 128, _MM_HINT_T0);
        a = _mm512_add_epi64(a, _mm512_load_si512((const void *)(p + i)));
        b = _mm512_add_epi64(b, _mm512_load_si512((const void *)(p + i + 8)));
        c = _mm512_add_epi64(c, _mm512_load_si512((const void *)(p + i + 16)));
        d = _mm512_add_epi64(d, _mm512_load_si512((const void *)(p + i + 24)));
    }
    a = _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d));
    uint64_t lanes[8], sum = 0;
    _mm512_storeu_si512((void *)lanes, a);
    for (int l = 0; l < 8; l++)
        sum += lanes[l];
    for (; i < n; i++)
        sum += p[i];
    return sum;
}

/* Two forward streams at once (the two halves of the range), as a kernel
 * reading several plane slabs does: more DRAM pages open in parallel. */
uint64_t bench_avx512_sum_2streams(const uint64_t *p, size_t n) {
    size_t half = n / 2 / 32 * 32;
    const uint64_t *q = p + half;
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i < half; i += 16) {
        a = _mm512_add_epi64(a, _mm512_load_si512((const void *)(p + i)));
        b = _mm512_add_epi64(b, _mm512_load_si512((const void *)(p + i + 8)));
        c = _mm512_add_epi64(c, _mm512_load_si512((const void *)(q + i)));
        d = _mm512_add_epi64(d, _mm512_load_si512((const void *)(q + i + 8)));
    }
    a = _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d));
    uint64_t lanes[8], sum = 0;
    _mm512_storeu_si512((void *)lanes, a);
    for (int l = 0; l < 8; l++)
        sum += lanes[l];
    for (size_t i = 2 * half; i < n; i++)
        sum += p[i];
    return sum;
}
