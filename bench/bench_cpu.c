/*
 * Run-time guards for the AVX2 and AVX-512 loops (bench_peak.c,
 * bench_stream_avx2.c, bench_stream_avx512.c). Built without ISA flags
 * so nothing here can itself execute an AVX-512 instruction on a machine
 * that lacks it.
 */
#include "bench_probes.h"

#if defined(BENCH_X86_64)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    /* The xgetbv mnemonic would need -mxsave; the encoding does not. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Leaf 7 subleaf 0 EBX and ECX, after checking the OS saves ZMM state. */
static int avx512_state(const char **why, unsigned *ebx7, unsigned *ecx7) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) {
        *why = "OSXSAVE not enabled (cannot query OS-saved register state)";
        return 0;
    }
    /* XCR0 bits 1, 2: SSE and AVX state; 5, 6, 7: opmask, ZMM0-15 upper
     * halves, ZMM16-31. All must be OS-enabled to use 512-bit registers. */
    if ((read_xcr0() & 0xe6) != 0xe6) {
        *why = "the OS does not enable AVX-512 (ZMM/opmask) state in XCR0";
        return 0;
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        *why = "CPUID leaf 7 not available";
        return 0;
    }
    *ebx7 = b;
    *ecx7 = c;
    if (!(b & (1u << 16))) {
        *why = "CPU lacks AVX512F";
        return 0;
    }
    *why = "";
    return 1;
}

int bench_cpu_has_avx512f(const char **why) {
    unsigned b, c;
    return avx512_state(why, &b, &c);
}

int bench_cpu_has_avx2(const char **why) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) {
        *why = "OSXSAVE not enabled (cannot query OS-saved register state)";
        return 0;
    }
    if ((read_xcr0() & 0x6) != 0x6) {
        *why = "the OS does not enable AVX (YMM) state in XCR0";
        return 0;
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 5))) {
        *why = "CPU lacks AVX2";
        return 0;
    }
    *why = "";
    return 1;
}

int bench_cpu_has_vpopcntdq(const char **why) {
    unsigned b, c;
    if (!avx512_state(why, &b, &c))
        return 0;
    if (!(c & (1u << 14))) {
        *why = "CPU lacks AVX512_VPOPCNTDQ";
        return 0;
    }
    return 1;
}

#else
int bench_cpu_has_avx512f(const char **why) {
    *why = "not an x86-64 build";
    return 0;
}

int bench_cpu_has_vpopcntdq(const char **why) {
    *why = "not an x86-64 build";
    return 0;
}

int bench_cpu_has_avx2(const char **why) {
    *why = "not an x86-64 build";
    return 0;
}
#endif
