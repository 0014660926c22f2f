/*
 * VPDPBUSD with the accumulator updated in place, for the AVX-512 VNNI
 * kernel files (built with -mavx512vnni on x86-64 only). GCC 12 treats
 * _mm512_dpbusd_epi32's accumulator as a separate input and, in the
 * kernels' unrolled loops, copies (and spills) every accumulator around each
 * instruction; the tied asm operand keeps them in registers. The instruction
 * itself is destructive, so nothing else changes.
 */
#ifndef BP_AVX512_VNNI_DPBUSD_H
#define BP_AVX512_VNNI_DPBUSD_H

#include <immintrin.h>

/* *acc += VPDPBUSD(u, s): u unsigned bytes, s signed bytes, 4 per dword. */
static inline __attribute__((always_inline)) void bp__dpbusd_inplace(__m512i *acc, __m512i u,
                                                                     __m512i s) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(*acc) : "v"(u), "v"(s));
}

#endif
