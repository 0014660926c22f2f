/*
 * CPU feature detection. x86: a feature counts only when CPUID reports it AND
 * the OS saves the register state it needs (XCR0 via xgetbv): a hypervisor or
 * kernel can hide YMM or ZMM state while CPUID still lists AVX2 or AVX-512.
 * AArch64 (Linux): the HWCAP bits of the auxiliary vector.
 *
 * Probed once per process: CPUID traps to the hypervisor in a virtual
 * machine (measured: 25-60 us per AUTO call at 64x64 when it ran per call),
 * and the answer cannot change while the process runs.
 */
#include "cpu_kernel.h"

static bp_cpu_features features;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0, or 0 when the OS does not expose it (no OSXSAVE). */
static unsigned xcr0(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
        return 0;
    unsigned lo, hi;
    /* The xgetbv mnemonic would need -mxsave; the encoding does not. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

static void probe(void) {
    unsigned a, b, c, d, b7 = 0, c7 = 0, a71 = 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b7, c7, d);
    __cpuid_count(7, 1, a71, b, c, d);
    unsigned x = xcr0();
    /* SSE (1) and AVX (2) state for YMM; plus opmask (5), ZMM_Hi256 (6) and
     * Hi16_ZMM (7) for ZMM. */
    bool ymm = (x & 0x06u) == 0x06u;
    bool zmm = ymm && (x & 0xe0u) == 0xe0u;
    features.avx2 = ymm && (b7 & bit_AVX2);
    features.avx_vnni = features.avx2 && (a71 & (1u << 4));
    features.avx512bw =
        zmm && features.avx2 && (b7 & bit_AVX512F) && (b7 & bit_AVX512BW) && (b7 & bit_AVX512VL);
    features.avx512dq = features.avx512bw && (b7 & bit_AVX512DQ);
    features.avx512_vpopcntdq = features.avx512bw && (c7 & bit_AVX512VPOPCNTDQ);
    features.avx512_vnni = features.avx512bw && (c7 & (1u << 11));
    features.gfni = features.avx512bw && (c7 & (1u << 8));
    features.avx512_vbmi = features.avx512bw && (c7 & (1u << 1));
}
#elif defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>

/* The kernel reports what user space may execute, whatever the CPU ID
 * registers say (a hypervisor or qemu -cpu can hide features). */
static void probe(void) {
    unsigned long hw = getauxval(AT_HWCAP);
    features.neon = (hw & HWCAP_ASIMD) != 0;
    features.neon_dotprod = features.neon && (hw & HWCAP_ASIMDDP) != 0;
}
#else
static void probe(void) {}
#endif

const bp_cpu_features *bp__cpu_features(void) {
    pthread_once(&probe_once, probe);
    return &features;
}

bool bp__cpu_has_avx512bw(void) {
    return bp__cpu_features()->avx512bw;
}

bool bp__cpu_has_avx512dq(void) {
    return bp__cpu_features()->avx512dq;
}

bool bp__cpu_has_avx512_vpopcntdq(void) {
    return bp__cpu_features()->avx512_vpopcntdq;
}
