/*
 * The VPOPCNTQ issue-rate loop, built with AVX-512 flags on x86-64 only;
 * callers check bench_cpu.c's run-time guards first. (The stream probe's
 * read loops are in bench_stream_avx2.c and bench_stream_avx512.c.)
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
