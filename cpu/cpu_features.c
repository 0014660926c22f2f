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

#include <string.h>

static bp_cpu_features features;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
/* Set by tests (bp__cpu_features_set): what bp__cpu_features reports. */
static bp_cpu_features forced_features;
static const bp_cpu_features *forced;

/* The display family of CPUID leaf 1 EAX: the base family, plus the extended
 * family where the base is 0xF (Intel SDM / AMD APM, CPUID Fn0000_0001). */
static unsigned cpuid_family(unsigned leaf1_eax) {
    unsigned family = (leaf1_eax >> 8) & 0xfu;
    if (family == 0xfu)
        family += (leaf1_eax >> 20) & 0xffu;
    return family;
}

/* AMD family 0x19 is Zen 3 (no AVX-512) and Zen 4, whose AVX-512 runs each
 * 512-bit operation on two 256-bit halves; family 0x1A (Zen 5) has full
 * 512-bit units on server parts. */
bool bp__cpu_zmm_halves(const char *vendor, unsigned leaf1_eax, bool avx512) {
    return avx512 && memcmp(vendor, "AuthenticAMD", 12) == 0 && cpuid_family(leaf1_eax) == 0x19u;
}

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
    /* The vendor string is EBX, EDX, ECX of leaf 0, in that order. */
    char vendor[12];
    __cpuid(0, a, b, c, d);
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    __cpuid(1, a, b, c, d);
    features.zmm_halves = bp__cpu_zmm_halves(vendor, a, features.avx512bw);
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
    if (forced)
        return forced;
    pthread_once(&probe_once, probe);
    return &features;
}

void bp__cpu_features_set(const bp_cpu_features *f) {
    if (f)
        forced_features = *f;
    forced = f ? &forced_features : NULL;
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
