/*
 * CPU feature detection. A feature counts only when CPUID reports it AND the
 * OS saves the register state it needs (XCR0 via xgetbv): a hypervisor or
 * kernel can hide ZMM state while CPUID still lists AVX-512.
 *
 * Probed once per process: CPUID traps to the hypervisor in a virtual
 * machine (measured: 25-60 us per AUTO call at 64x64 when it ran per call),
 * and the answer cannot change while the process runs.
 */
#include "bp_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static bool os_saves_zmm(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    /* SSE (1), AVX (2), opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7). */
    const unsigned need = (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 7);
    return (lo & need) == need;
}

static bool leaf7(unsigned *b, unsigned *c) {
    unsigned a, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return false;
    __cpuid_count(7, 0, a, *b, *c, d);
    return true;
}

static bool has_avx512bw, has_avx512_vpopcntdq;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe(void) {
    unsigned b, c;
    if (!leaf7(&b, &c) || !os_saves_zmm())
        return;
    has_avx512bw = (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL);
    has_avx512_vpopcntdq = has_avx512bw && (c & bit_AVX512VPOPCNTDQ);
}

bool bp__cpu_has_avx512bw(void) {
    pthread_once(&probe_once, probe);
    return has_avx512bw;
}

bool bp__cpu_has_avx512_vpopcntdq(void) {
    pthread_once(&probe_once, probe);
    return has_avx512_vpopcntdq;
}

#else
bool bp__cpu_has_avx512bw(void) {
    return false;
}
bool bp__cpu_has_avx512_vpopcntdq(void) {
    return false;
}
#endif
