/*
 * Which cell update an RNN call uses (float mode, and integer mode below):
 * the one matching the context's CPU path, so that forcing a path
 * (bp_context_options.cpu_kernel, BP_CPU) also selects its elementwise code, and the tests that
 * compare every path against the reference path cover each version. All versions give the same bits
 * (src/rnn_internal.h); the choice changes speed only.
 */
#include "cpu_kernel.h"
#include "rnn_internal.h"

#if defined(BP_ARCH_X86_64)
extern const bp_rnn_float_cell bp__rnn_cell_avx512;
extern const bp_rnn_float_cell bp__rnn_cell_avx2;
extern const bp_rnn_int_cell bp__rnn_int_cell_avx512;
#endif

const bp_rnn_float_cell *bp__rnn_float_cell_for(bp_cpu_kernel kernel) {
#if defined(BP_ARCH_X86_64)
    const bp_cpu_features *f = bp__cpu_features();
    switch (kernel) {
    case BP_CPU_KERNEL_AUTO:
        return f->avx512bw ? &bp__rnn_cell_avx512
               : f->avx2   ? &bp__rnn_cell_avx2
                           : &bp__rnn_cell_portable;
    /* A context on these paths was checked to run them: AVX-512 F/BW/VL
     * with ZMM state, or AVX2 with YMM state. */
    case BP_CPU_KERNEL_AVX512:
    case BP_CPU_KERNEL_AVX512_LUT:
    case BP_CPU_KERNEL_AVX512_VNNI:
    case BP_CPU_KERNEL_AVX512_VNNI_BATCHED:
        return f->avx512bw ? &bp__rnn_cell_avx512 : &bp__rnn_cell_portable;
    case BP_CPU_KERNEL_AVX2:
    case BP_CPU_KERNEL_AVX2_LUT:
    case BP_CPU_KERNEL_AVX_VNNI:
        return f->avx2 ? &bp__rnn_cell_avx2 : &bp__rnn_cell_portable;
    default:
        return &bp__rnn_cell_portable;
    }
#else
    /* AArch64: the portable code, which the compiler vectorizes for NEON. */
    (void)kernel;
    return &bp__rnn_cell_portable;
#endif
}

const bp_rnn_int_cell *bp__rnn_int_cell_for(bp_cpu_kernel kernel) {
#if defined(BP_ARCH_X86_64)
    switch (kernel) {
    case BP_CPU_KERNEL_AUTO:
    /* As above: these paths were checked to run AVX-512 F/BW/VL. */
    case BP_CPU_KERNEL_AVX512:
    case BP_CPU_KERNEL_AVX512_LUT:
    case BP_CPU_KERNEL_AVX512_VNNI:
    case BP_CPU_KERNEL_AVX512_VNNI_BATCHED:
        return bp__cpu_features()->avx512bw ? &bp__rnn_int_cell_avx512 : &bp__rnn_int_cell_portable;
    default:
        return &bp__rnn_int_cell_portable;
    }
#else
    (void)kernel;
    return &bp__rnn_int_cell_portable;
#endif
}
