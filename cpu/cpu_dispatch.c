/*
 * CPU kernel dispatch. Every path computes the same exact integers D, so the
 * choice changes speed only. Precedence: an explicit context option, then the
 * BP_CPU environment variable, then AUTO, chosen per call: the reference
 * without AVX-512 VPOPCNTDQ, popcount for one column, and for a batch the
 * LUT kernel where it supports act_bits and K, else popcount (the table in
 * docs/design.md, section 4).
 */
#include "bp_internal.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    bp_cpu_kernel kernel;
} kernel_names[] = {
    {"auto", BP_CPU_KERNEL_AUTO},
    {"reference", BP_CPU_KERNEL_REFERENCE},
    {"avx512", BP_CPU_KERNEL_AVX512},
    {"avx512-lut", BP_CPU_KERNEL_AVX512_LUT},
};

static bp_status parse_env(bp_cpu_kernel *out) {
    const char *env = getenv("BP_CPU");
    *out = BP_CPU_KERNEL_AUTO;
    if (!env || !*env)
        return BP_OK;
    for (size_t i = 0; i < sizeof kernel_names / sizeof kernel_names[0]; i++)
        if (strcmp(env, kernel_names[i].name) == 0) {
            *out = kernel_names[i].kernel;
            return BP_OK;
        }
    return bp__fail(BP_ERR_INVALID_ARGUMENT,
                    "BP_CPU='%.64s' is not one of auto, reference, avx512, avx512-lut", env);
}

static bp_status check_runnable(bp_cpu_kernel k, const char *origin) {
    if (k == BP_CPU_KERNEL_AVX512 && !bp__cpu_has_avx512_vpopcntdq())
        return bp__fail(BP_ERR_UNSUPPORTED,
                        "%s forces the avx512 kernel, but this CPU or OS lacks AVX-512 "
                        "F/BW/VL/VPOPCNTDQ with ZMM state enabled",
                        origin);
    /* The LUT path falls back to popcount for act_bits it cannot represent. */
    if (k == BP_CPU_KERNEL_AVX512_LUT &&
        !(bp__cpu_has_avx512bw() && bp__cpu_has_avx512_vpopcntdq()))
        return bp__fail(BP_ERR_UNSUPPORTED,
                        "%s forces the avx512-lut kernel, but this CPU or OS lacks AVX-512 "
                        "F/BW/VL/VPOPCNTDQ with ZMM state enabled",
                        origin);
    return BP_OK;
}

static bp_status cpu_init(bp_context *ctx, const bp_context_options *opt) {
    if ((unsigned)opt->cpu_kernel > BP_CPU_KERNEL_AVX512_LUT)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "unknown cpu_kernel %d", (int)opt->cpu_kernel);
    if (opt->cpu_kernel != BP_CPU_KERNEL_AUTO) {
        ctx->cpu_kernel = opt->cpu_kernel;
        return check_runnable(ctx->cpu_kernel, "bp_context_options.cpu_kernel");
    }
    bp_status st = parse_env(&ctx->cpu_kernel);
    if (st == BP_OK)
        st = check_runnable(ctx->cpu_kernel, "BP_CPU");
    return st;
}

bp_status bp__cpu_gemm(bp_context *ctx, const bp_gemm_args *args);

const bp_backend_ops bp__cpu_backend = {
    .name = "cpu",
    .init = cpu_init,
    .fini = NULL,
    .gemm = bp__cpu_gemm,
};

/*
 * AUTO on an AVX-512 machine: measured on the dev machine (bench/results),
 * the popcount kernel streams a single column faster (GEMV 65536x4096,
 * act_bits 8: 78% vs 66% of stream-read), while the lookup tables win once
 * several columns share each weight line (batch 8: 1.4x faster).
 */
const bp_cpu_kernel_desc *bp__select_kernel(const bp_context *ctx, int act_bits, size_t kpad,
                                            size_t batch, unsigned mult_bound) {
    bp_cpu_kernel k = ctx ? ctx->cpu_kernel : BP_CPU_KERNEL_REFERENCE;
    if (k == BP_CPU_KERNEL_AUTO) {
        if (!bp__cpu_has_avx512_vpopcntdq())
            k = BP_CPU_KERNEL_REFERENCE;
        else
            k = batch > 1 ? BP_CPU_KERNEL_AVX512_LUT : BP_CPU_KERNEL_AVX512;
    }
    switch (k) {
    case BP_CPU_KERNEL_AVX512_LUT:
        if (bp__kernel_avx512_lut.supports(act_bits, kpad, mult_bound))
            return &bp__kernel_avx512_lut;
        return &bp__kernel_avx512_popcount;
    case BP_CPU_KERNEL_AVX512:
        return &bp__kernel_avx512_popcount;
    default:
        return &bp__kernel_reference;
    }
}

const char *bp_context_cpu_kernel_name(const bp_context *ctx, int act_bits, size_t cols,
                                       size_t batch) {
    if (!ctx) {
        bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_context_cpu_kernel_name: ctx must not be NULL");
        return NULL;
    }
    if (act_bits == 0)
        act_bits = 8;
    if (act_bits < 1 || act_bits > BP_MAX_ACT_BITS) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "act_bits must be 0 (default 8) or 1..16, got %d", act_bits);
        return NULL;
    }
    if (cols == 0 || cols > BP_MAX_DIM) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "cols must be in 1..%zu, got %zu", BP_MAX_DIM, cols);
        return NULL;
    }
    if (batch == 0 || batch > BP_MAX_DIM) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "batch must be in 1..%zu, got %zu", BP_MAX_DIM, batch);
        return NULL;
    }
    if (ctx->backend != BP_BACKEND_CPU) {
        bp__fail(BP_ERR_INVALID_ARGUMENT, "context is not a CPU context");
        return NULL;
    }
    return bp__select_kernel(ctx, act_bits, bp__padded_cols(cols), batch, 1)->name;
}
