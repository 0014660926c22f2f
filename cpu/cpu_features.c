/*
 * CPU feature detection. A feature counts only when CPUID reports it AND the
 * OS saves the register state it needs (XCR0 via xgetbv): a hypervisor or
 * kernel can hide ZMM state while CPUID still lists AVX-512.
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

bool bp__cpu_has_avx512bw(void) {
    unsigned b, c;
    if (!leaf7(&b, &c) || !os_saves_zmm())
        return false;
    return (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL);
}

bool bp__cpu_has_avx512_vpopcntdq(void) {
    unsigned b, c;
    if (!bp__cpu_has_avx512bw() || !leaf7(&b, &c))
        return false;
    return (c & bit_AVX512VPOPCNTDQ) != 0;
}

#else
bool bp__cpu_has_avx512bw(void) {
    return false;
}
bool bp__cpu_has_avx512_vpopcntdq(void) {
    return false;
}
#endif
