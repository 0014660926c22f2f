/*
 * CPU kernel dispatch. Every path computes the same exact integers D, so the
 * choice changes speed only. Precedence: an explicit context option, then the
 * BP_CPU environment variable, then AUTO (chosen per call by the CPU, batch,
 * act_bits and K). The reference kernel is the test oracle: AUTO never picks
 * it (the portable popcount kernel runs on any CPU).
 */
#include "bp_error.h"
#include "cpu_kernel.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#if defined(BP_ARCH_X86_64)
#define X86(k) (&(k))
#else
#define X86(k) NULL
#endif
#if defined(BP_ARCH_AARCH64)
#define ARM64(k) (&(k))
#else
#define ARM64(k) NULL
#endif

/* A user-visible path: its main kernel (NULL when not built for this
 * architecture), the architecture it is built for and what it needs, for
 * the error messages. */
typedef struct cpu_path {
    const char *name;
    bp_cpu_kernel id;
    const bp_cpu_kernel_desc *kernel;
    const char *arch;
    const char *needs;
} cpu_path;

static const cpu_path paths[] = {
    {"auto", BP_CPU_KERNEL_AUTO, NULL, "", ""},
    {"reference", BP_CPU_KERNEL_REFERENCE, &bp__kernel_reference, "", ""},
    {"avx512", BP_CPU_KERNEL_AVX512, X86(bp__kernel_avx512_popcount), "x86-64",
     "AVX-512 F/BW/VL/VPOPCNTDQ with ZMM state enabled"},
    {"avx512-lut", BP_CPU_KERNEL_AVX512_LUT, X86(bp__kernel_avx512_lut), "x86-64",
     "AVX-512 F/BW/VL with ZMM state enabled"},
    {"avx2", BP_CPU_KERNEL_AVX2, X86(bp__kernel_avx2_batched), "x86-64",
     "AVX2 with YMM state enabled"},
    {"avx2-lut", BP_CPU_KERNEL_AVX2_LUT, X86(bp__kernel_avx2_lut), "x86-64",
     "AVX2 with YMM state enabled"},
    {"portable", BP_CPU_KERNEL_PORTABLE, &bp__kernel_portable, "", ""},
    {"avx512-vnni", BP_CPU_KERNEL_AVX512_VNNI, X86(bp__kernel_avx512_vnni), "x86-64",
     "AVX-512 F/BW/VL/VNNI/VBMI and GFNI with ZMM state enabled"},
    {"avx512-vnni-batched", BP_CPU_KERNEL_AVX512_VNNI_BATCHED, X86(bp__kernel_avx512_vnni_batched),
     "x86-64", "AVX-512 F/BW/VL/VNNI and GFNI with ZMM state enabled"},
    {"avx-vnni", BP_CPU_KERNEL_AVX_VNNI, X86(bp__kernel_avx_vnni_batched), "x86-64",
     "AVX2 and AVX-VNNI with YMM state enabled"},
    {"neon", BP_CPU_KERNEL_NEON, ARM64(bp__kernel_neon_popcount), "AArch64",
     "Advanced SIMD (HWCAP_ASIMD)"},
    {"neon-lut", BP_CPU_KERNEL_NEON_LUT, ARM64(bp__kernel_neon_lut), "AArch64",
     "Advanced SIMD (HWCAP_ASIMD)"},
    {"neon-dotprod", BP_CPU_KERNEL_NEON_DOTPROD, ARM64(bp__kernel_neon_dotprod), "AArch64",
     "the dot-product extension (FEAT_DotProd, HWCAP_ASIMDDP)"},
};
#define NPATHS (sizeof paths / sizeof paths[0])

static const bp_cpu_kernel_desc *const kernel_list[] = {
    &bp__kernel_portable,
#if defined(BP_ARCH_X86_64)
    &bp__kernel_avx2_popcount, &bp__kernel_avx2_lut,         &bp__kernel_avx512_popcount,
    &bp__kernel_avx512_lut,    &bp__kernel_avx512_vnni,      &bp__kernel_avx512_vnni_batched,
    &bp__kernel_avx2_batched,  &bp__kernel_avx_vnni_batched,
#endif
#if defined(BP_ARCH_AARCH64)
    &bp__kernel_neon_popcount, &bp__kernel_neon_lut,         &bp__kernel_neon_dotprod,
#endif
};

const bp_cpu_kernel_desc *const *bp__cpu_kernel_list(size_t *n) {
    *n = sizeof kernel_list / sizeof kernel_list[0];
    return kernel_list;
}

const bp_cpu_kernel_desc *bp__cpu_kernel_by_name(const char *name) {
    for (size_t i = 0; i < sizeof kernel_list / sizeof kernel_list[0]; i++)
        if (strcmp(kernel_list[i]->name, name) == 0)
            return kernel_list[i];
    return NULL;
}

static const cpu_path *find_path(bp_cpu_kernel k) {
    for (size_t i = 0; i < NPATHS; i++)
        if (paths[i].id == k)
            return &paths[i];
    return NULL;
}

bp_status bp_cpu_kernel_from_name(const char *name, bp_cpu_kernel *out) {
    if (!name || !out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "bp_cpu_kernel_from_name: name and out are required");
    for (size_t i = 0; i < NPATHS; i++)
        if (strcmp(name, paths[i].name) == 0) {
            *out = paths[i].id;
            return BP_OK;
        }
    char names[256] = "";
    for (size_t i = 0, len = 0; i < NPATHS && len < sizeof names; i++)
        len +=
            (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", paths[i].name);
    return bp__fail(BP_ERR_INVALID_ARGUMENT, "'%.64s' is not one of %s", name, names);
}

const char *bp_cpu_kernel_to_name(bp_cpu_kernel kernel) {
    const cpu_path *p = find_path(kernel);
    return p ? p->name : NULL;
}

static bp_status parse_env(bp_cpu_kernel *out) {
    const char *env = getenv("BP_CPU");
    *out = BP_CPU_KERNEL_AUTO;
    if (!env || !*env)
        return BP_OK;
    if (bp_cpu_kernel_from_name(env, out) == BP_OK)
        return BP_OK;
    /* Copied: bp__fail overwrites the message it would read. */
    char why[320];
    snprintf(why, sizeof why, "%s", bp_last_error());
    return bp__fail(BP_ERR_INVALID_ARGUMENT, "BP_CPU=%s", why);
}

static bp_status check_runnable(bp_cpu_kernel k, const char *origin) {
    const cpu_path *p = find_path(k);
    if (k == BP_CPU_KERNEL_AUTO)
        return BP_OK;
    if (!p->kernel)
        return bp__fail(BP_ERR_UNSUPPORTED,
                        "%s forces the %s kernel, which is not built for this architecture "
                        "(it needs %s)",
                        origin, p->name, p->arch);
    if (!p->kernel->runnable())
        return bp__fail(BP_ERR_UNSUPPORTED, "%s forces the %s kernel, but this CPU or OS lacks %s",
                        origin, p->name, p->needs);
    return BP_OK;
}

static bp_status cpu_init(bp_context *ctx, const bp_context_options *opt) {
    if (!find_path(opt->cpu_kernel))
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

#if defined(BP_ARCH_X86_64)
/* The popcount kernel that backs a lookup-table path where its tables are
 * not exact: VPOPCNTDQ when the CPU has it, else AVX2. */
static const bp_cpu_kernel_desc *x86_popcount(void) {
    return bp__cpu_features()->avx512_vpopcntdq ? &bp__kernel_avx512_popcount
                                                : &bp__kernel_avx2_popcount;
}

/*
 * AUTO on x86-64, from measurements (README, "Layout and kernels"):
 *  - AVX-512 VPOPCNTDQ: the popcount kernel streams a single column faster
 *    (GEMV 65536x4096, act_bits 8: 78% vs 66% of stream-read), the lookup
 *    tables win once several columns share each weight line (batch 8: 1.4x).
 *  - AVX-512BW without VPOPCNTDQ: the AVX-512 lookup tables.
 *  - AVX2: the AVX2 lookup tables.
 * Each LUT path falls back to the best popcount kernel where its tables are
 * not exact (act_bits 1 and 12..16, very large K).
 */
/* The code kernel (avx512-vnni) for uniform matrices at act_bits <= 8 and
 * at most 8 planes (docs/kernels.md, kernel-only timings in L2 and L3, 1
 * thread, round-robin): per row from 2 planes at any batch (2-3.5x the
 * popcount kernel at batch 1, 1.3-2.2x the LUT kernel at 4 columns; at 1
 * plane 0.9-1.1x popcount, and the LUT kernel 1.5x faster at 4 columns);
 * grouped at batch 1 from 1 plane (1.47x popcount at 1 plane, 2.7-4.8x from
 * 2) and at batch > 1 from 3 planes (4 columns: 1.12x / 1.52x the LUT kernel
 * at 3 / 4 planes, level at 2, the LUT kernel 2x faster at 1). */
static bool vnni_auto(const bp_kernel_shape *s) {
    if (s->method != BP_QUANT_UNIFORM || s->max_planes > 8 ||
        !bp__kernel_avx512_vnni.supports(s->act_bits, s->kpad, s->mult_bound))
        return false;
    if (s->mult_bound > 1)
        return s->batch == 1 || s->min_planes >= 3;
    return s->min_planes >= 2;
}

/* The batched code kernel (avx512-vnni-batched) for uniform matrices at
 * act_bits <= 8 once a weight tile serves enough columns (docs/kernels.md,
 * "Batched code kernel"): from batch 2 at 2 or more planes, its unpack's
 * work following the plane count up to 4 (at batch 2-3 0.28-1.0x the time
 * of the LUT kernel at 2 planes and avx512-vnni from 3 on 64 x 64 to
 * 4096 x 4096, level only on 4096 x 4096 at 2 planes); from batch 16 at
 * 1 plane, where the 1-plane byte tables are faster below that (1.6-2.6x
 * at batch 2-4). Residual matrices stay on the LUT kernel: the batched
 * kernel runs each of their planes as a separate code, 1.7x slower at
 * batch 8-32. A batch of 4-15 columns at mixed counts with a 1-plane
 * column: the LUT kernel's time follows the units (the sum of the columns'
 * counts), the batched kernel's the columns, so the choice is by the mean
 * count. Measured on the served wide stack's layers at batch 4-12
 * (docs/kernels.md, "Mixed plane counts"): the LUT kernel 1.2-2.3x faster
 * at a mean of 1.1-1.3 and within 12 % at 1.6-2.8, the batched kernel
 * 1.2-2.3x faster from 3.8. */
#define BATCHED_MIXED_MEAN_PLANES 3
static bool batched_auto(const bp_kernel_shape *s) {
    if (s->method != BP_QUANT_UNIFORM ||
        !bp__kernel_avx512_vnni_batched.supports(s->act_bits, s->kpad, s->mult_bound))
        return false;
    if (s->batch >= 16)
        return true;
    if (s->min_planes >= 2)
        return s->batch >= 2;
    return s->batch >= 4 && s->units >= BATCHED_MIXED_MEAN_PLANES * s->batch;
}

/* Small products of uniform matrices at batch 1 whose used planes stay in
 * L2 go to the LUT kernel, up to 4 planes, ahead of the code kernel: with K
 * padded to 64 bits its per-call tables are small, and the code kernel's
 * fixed work per row group (transpose set-up, lane-to-row sums) dominates.
 * Measured (docs/kernels.md), 1 thread, act_bits 8, LUT / code kernel time:
 * 64 x 64 0.69x (per row, 4 planes) and 0.61x (grouped, 2 planes),
 * 256 x 64 0.49x (grouped, 4 planes), 1024 x 256 0.71x (per row) and
 * 0.64x / 0.42x (grouped, 4 / 2 planes); at 8 planes the two are within
 * 10 %, and at 2048 x 1024, 4 planes (1 MiB of planes) the code kernel wins
 * per row (0.81x). */
#define LUT_IN_CACHE_BYTES ((size_t)256 << 10)
static bool lut_in_cache(const bp_kernel_shape *s) {
    if (s->batch != 1 || s->max_planes > 4 ||
        !bp__kernel_avx512_lut.supports(s->act_bits, s->kpad, s->mult_bound))
        return false;
    /* rows * kpad * planes / 8 <= LUT_IN_CACHE_BYTES, without overflow. */
    return s->rows <= LUT_IN_CACHE_BYTES * 8 / s->kpad / (size_t)s->max_planes;
}

/* Uniform matrices with every column at 1 plane: the code kernel's byte
 * tables (VPERMB + VPDPBUSD, docs/kernels.md "1-plane byte tables") below the
 * batched kernel's batch, at every size. Kernel-only, in L2, 1 thread,
 * act_bits 8, against the LUT kernel: 2048 x 4096 1.7x (grouped) and 1.6x
 * (per row) the speed; 1024 x 4096 at 2 / 4 columns 1.3x / 1.1x; 64 x 64 to
 * 1024 x 256 1.3-1.5x, with a cheaper per-call table build. */
static bool vnni_tables_auto(const bp_kernel_shape *s) {
    return s->method == BP_QUANT_UNIFORM && s->max_planes == 1 &&
           bp__kernel_avx512_vnni.supports(s->act_bits, s->kpad, s->mult_bound);
}

/*
 * The AVX2 paths: what AUTO runs on x86-64 CPUs with AVX2 and without
 * AVX-512 (BP_CPU_KERNEL_AVX_VNNI where the CPU has AVX-VNNI), and what
 * BP_CPU=avx2 / avx-vnni force on any AVX2 CPU. `batched` is the path's code
 * kernel (docs/kernels.md, "AVX2 code kernels"), taken for uniform matrices
 * at act_bits <= 8 at every batch and plane count (a single column runs the
 * codes straight into the dot products). Against avx2-lut, thread CPU time,
 * interleaved, 1 thread, act_bits 8 (docs/kernels.md): at batch 1 0.24-0.52x
 * its time from 2 planes on 1024 x 256 to 4096 x 4096 and 0.37-0.72x on
 * 64 x 64; at 1 plane 0.62-0.95x at batch 1-4 from 1024 x 256, level
 * (1.0-1.04x) at 64 x 64. Else the lookup tables where exact, else popcount.
 */
static bool avx2_batched_auto(const bp_kernel_shape *s, const bp_cpu_kernel_desc *batched) {
    return s->method == BP_QUANT_UNIFORM && batched->supports(s->act_bits, s->kpad, s->mult_bound);
}

static const bp_cpu_kernel_desc *avx2_path(const bp_kernel_shape *s,
                                           const bp_cpu_kernel_desc *batched) {
    if (avx2_batched_auto(s, batched))
        return batched;
    return bp__kernel_avx2_lut.supports(s->act_bits, s->kpad, s->mult_bound)
               ? &bp__kernel_avx2_lut
               : &bp__kernel_avx2_popcount;
}

/*
 * Zen 4 (zmm_halves: 512-bit operations on two 256-bit halves), uniform
 * matrices at act_bits <= 8 with every column at 2-8 planes: the code kernel
 * (avx512-vnni) ahead of the batched code kernel at batch 2, and at batch 4
 * with every column at 2 planes, and ahead of the LUT kernel's small
 * products at batch 1. There one batched pass costs more than a table or
 * transpose pass per column, and the LUT kernel's small-product lead is
 * reversed. Measured on Zen 4 (docs/kernels.md, "AUTO on Zen 4"; every
 * kernel forced, 1 thread, act_bits 8, groups of 32, three processes),
 * avx512-vnni over the former choice: batch 2 on 4096 x 4096 0.48-0.53 /
 * 0.73-0.75 / 0.83-0.86 at 2 / 4 / 8 planes (65536 x 4096 0.49 / 0.68 /
 * 0.82); batch 4 at 2 planes 0.70 (at 4 and 8 planes the batched kernel
 * stays ahead, 1.09-1.27); batch 1 on 1024 x 256 0.67-0.84 / 0.58-0.71 of
 * avx512-lut at 2 / 4 planes. On the Xeon the same cases go the other way
 * (the rules below), so they are this CPU's only.
 */
static bool zmm_halves_code_auto(const bp_kernel_shape *s) {
    if (s->method != BP_QUANT_UNIFORM || s->min_planes < 2 || s->max_planes > 8 ||
        !bp__kernel_avx512_vnni.supports(s->act_bits, s->kpad, s->mult_bound))
        return false;
    return s->batch <= 2 || (s->batch == 4 && s->max_planes == 2);
}

static bp_cpu_kernel x86_auto(const bp_kernel_shape *s) {
    const bp_cpu_features *f = bp__cpu_features();
    const bool code = bp__kernel_avx512_vnni.runnable();
    if (code && f->zmm_halves && zmm_halves_code_auto(s))
        return BP_CPU_KERNEL_AVX512_VNNI;
    if (bp__kernel_avx512_vnni_batched.runnable() && batched_auto(s))
        return BP_CPU_KERNEL_AVX512_VNNI_BATCHED;
    if (code && vnni_tables_auto(s))
        return BP_CPU_KERNEL_AVX512_VNNI;
    /* Also ahead of the popcount kernel, at 1 plane (1024 x 256: LUT 0.47x
     * grouped, 0.53x per row) and without VNNI. */
    if (f->avx512bw && s->method == BP_QUANT_UNIFORM && lut_in_cache(s))
        return BP_CPU_KERNEL_AVX512_LUT;
    if (code && vnni_auto(s))
        return BP_CPU_KERNEL_AVX512_VNNI;
    if (f->avx512_vpopcntdq)
        return s->batch > 1 ? BP_CPU_KERNEL_AVX512_LUT : BP_CPU_KERNEL_AVX512;
    if (f->avx512bw)
        return BP_CPU_KERNEL_AVX512_LUT;
    if (f->avx2)
        return f->avx_vnni ? BP_CPU_KERNEL_AVX_VNNI : BP_CPU_KERNEL_AVX2;
    return BP_CPU_KERNEL_PORTABLE;
}
#endif

#if defined(BP_ARCH_AARCH64)
/*
 * AUTO on AArch64. Only qemu-user was available to run these kernels, which
 * says nothing about speed, so the rules compare instruction counts of the
 * inner loops per 64-byte line (16 rows x 32 columns), read from the
 * generated code (GCC 12 -O2, objdump; docs/kernels.md):
 *  - neon (popcount): 65 per 4 activation bits and plane, about 16 x act_bits
 *    per plane;
 *  - neon-lut: 76 per plane whatever act_bits (act_bits 2..11), ahead of
 *    popcount from act_bits 5; taken from 6, where the margin is clear,
 *    because its tables (8 bytes per column of K and input column) crowd L1
 *    more than activation bits do;
 *  - neon-dotprod: per chunk of at most 7 planes, for all of them at once,
 *    the counts in nd_line below, plus about 40 per further column of a
 *    batch that shares the codes (up to 4).
 */
static unsigned nd_line(int n) {
    static const unsigned per_chunk[8] = {0, 100, 107, 138, 145, 225, 235, 263};
    unsigned cost = 0;
    for (int p0 = 0; p0 < n; p0 += 7)
        cost += per_chunk[n - p0 < 7 ? n - p0 : 7];
    return cost;
}

static bool arm64_dotprod_auto(const bp_kernel_shape *s) {
    if (s->method != BP_QUANT_UNIFORM || s->min_planes < 2 ||
        !bp__kernel_neon_dotprod.supports(s->act_bits, s->kpad, s->mult_bound))
        return false;
    const unsigned n = (unsigned)s->max_planes, a = (unsigned)s->act_bits;
    const unsigned cols = s->batch < 4 ? (unsigned)s->batch : 4;
    /* Per column and line: the code kernel's shared unpack over the columns
     * that share it, against the per-column popcount and LUT loops. */
    const unsigned dot = (nd_line((int)n) + 40 * (cols - 1)) / cols;
    unsigned other = 16 * a * n;
    if (a >= 2 && 76 * n < other)
        other = 76 * n;
    return dot < other;
}

static bp_cpu_kernel arm64_auto(const bp_kernel_shape *s) {
    const bp_cpu_features *f = bp__cpu_features();
    if (f->neon_dotprod && arm64_dotprod_auto(s))
        return BP_CPU_KERNEL_NEON_DOTPROD;
    if (f->neon)
        return s->act_bits >= 6 ? BP_CPU_KERNEL_NEON_LUT : BP_CPU_KERNEL_NEON;
    return BP_CPU_KERNEL_PORTABLE;
}
#endif

const bp_cpu_kernel_desc *bp__select_kernel(const bp_context *ctx, const bp_kernel_shape *s) {
    bp_cpu_kernel k = ctx ? ctx->cpu_kernel : BP_CPU_KERNEL_REFERENCE;
    const int act_bits = s->act_bits;
    const size_t kpad = s->kpad;
    const unsigned mult_bound = s->mult_bound;
    if (k == BP_CPU_KERNEL_AUTO) {
#if defined(BP_ARCH_X86_64)
        k = x86_auto(s);
#elif defined(BP_ARCH_AARCH64)
        k = arm64_auto(s);
#else
        k = BP_CPU_KERNEL_PORTABLE;
#endif
    }
    switch (k) {
#if defined(BP_ARCH_X86_64)
    case BP_CPU_KERNEL_AVX512_VNNI:
        if (bp__kernel_avx512_vnni.supports(act_bits, kpad, mult_bound))
            return &bp__kernel_avx512_vnni;
        /* Elsewhere (act_bits > 8, grouped matrices) as AVX512_LUT. */
        return bp__kernel_avx512_lut.supports(act_bits, kpad, mult_bound) ? &bp__kernel_avx512_lut
                                                                          : x86_popcount();
    case BP_CPU_KERNEL_AVX512_VNNI_BATCHED:
        if (bp__kernel_avx512_vnni_batched.supports(act_bits, kpad, mult_bound))
            return &bp__kernel_avx512_vnni_batched;
        return bp__kernel_avx512_lut.supports(act_bits, kpad, mult_bound) ? &bp__kernel_avx512_lut
                                                                          : x86_popcount();
    case BP_CPU_KERNEL_AVX512_LUT:
        return bp__kernel_avx512_lut.supports(act_bits, kpad, mult_bound) ? &bp__kernel_avx512_lut
                                                                          : x86_popcount();
    case BP_CPU_KERNEL_AVX2_LUT:
        return bp__kernel_avx2_lut.supports(act_bits, kpad, mult_bound) ? &bp__kernel_avx2_lut
                                                                        : &bp__kernel_avx2_popcount;
    case BP_CPU_KERNEL_AVX512:
        return &bp__kernel_avx512_popcount;
    case BP_CPU_KERNEL_AVX2:
        return avx2_path(s, &bp__kernel_avx2_batched);
    case BP_CPU_KERNEL_AVX_VNNI:
        return avx2_path(s, &bp__kernel_avx_vnni_batched);
#endif
#if defined(BP_ARCH_AARCH64)
    case BP_CPU_KERNEL_NEON_DOTPROD:
        if (bp__kernel_neon_dotprod.supports(act_bits, kpad, mult_bound))
            return &bp__kernel_neon_dotprod;
        /* Elsewhere (act_bits > 8) as NEON_LUT. */
        /* fall through */
    case BP_CPU_KERNEL_NEON_LUT:
        return bp__kernel_neon_lut.supports(act_bits, kpad, mult_bound) ? &bp__kernel_neon_lut
                                                                        : &bp__kernel_neon_popcount;
    case BP_CPU_KERNEL_NEON:
        return &bp__kernel_neon_popcount;
#endif
    case BP_CPU_KERNEL_PORTABLE:
        return &bp__kernel_portable;
    default:
        (void)act_bits;
        (void)kpad;
        (void)mult_bound;
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
    bp_kernel_shape shape = {.act_bits = act_bits,
                             .kpad = bp__padded_cols(cols),
                             .batch = batch,
                             .mult_bound = 1,
                             .method = BP_QUANT_RESIDUAL,
                             .min_planes = 1,
                             .max_planes = 1,
                             .units = batch,
                             .rows = SIZE_MAX};
    return bp__select_kernel(ctx, &shape)->name;
}

const char *bp_matrix_cpu_kernel_name(const bp_context *ctx, const bp_matrix *m, int planes,
                                      int act_bits, size_t batch) {
    if (!m) {
        bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_cpu_kernel_name: m must not be NULL");
        return NULL;
    }
    if (planes < 0 || planes > m->bits) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "planes must be 0 (all) or 1..%d, got %d", m->bits, planes);
        return NULL;
    }
    /* The shared argument checks (ctx, act_bits, batch, backend). */
    if (!bp_context_cpu_kernel_name(ctx, act_bits, m->cols, batch))
        return NULL;
    if (act_bits == 0)
        act_bits = 8;
    if (planes == 0)
        planes = m->bits;
    bp_kernel_shape shape = {.act_bits = act_bits,
                             .kpad = bp__padded_cols(m->cols),
                             .batch = batch,
                             .mult_bound = bp__mult_bound(m),
                             .method = m->method,
                             .min_planes = planes,
                             .max_planes = planes,
                             .units = (size_t)planes * batch,
                             .rows = m->rows};
    return bp__select_kernel(ctx, &shape)->name;
}
