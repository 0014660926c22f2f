/*
 * The CPU microkernel interface (BLIS-style split: cpu/cpu_gemm.c is the
 * framework, cpu/kernel_*.c the microkernels), the kernel registry, CPU
 * feature probing and the dispatcher (docs/kernels.md).
 */
#ifndef BP_CPU_KERNEL_H
#define BP_CPU_KERNEL_H

#include "bp_activations.h"
#include "bp_backend.h"

#define BP_KERNEL_MAX_COLS 4

/* One microkernel call: D for row groups [g0, g1) and ncols columns. */
typedef struct bp_kernel_call {
    const bp_matrix *m;
    size_t g0, g1;
    size_t ncols; /* 1..BP_KERNEL_MAX_COLS */
    const bp_act_column *cols[BP_KERNEL_MAX_COLS];
    /* The kernel output (docs/numerics.md), exact integers with the group
     * multipliers applied, for row g0*16 + r of column c:
     *  - uniform matrices: the code product D_u of the column's n planes at
     *    d[c * ld_col + r] (plane slot 0);
     *  - residual matrices: D_p of weight plane p at
     *    d[c * ld_col + p * ld_plane + r].
     * Other slots are scratch. Rows past m->rows in the last group may be
     * written and are ignored. */
    int64_t *d;
    size_t ld_plane, ld_col;
} bp_kernel_call;

/* A batched microkernel call: D for row groups [g0, g1) and any number of
 * columns, laid out as in bp_kernel_call. Uniform matrices get slot 1 as
 * scratch only beyond 8 planes (cpu_gemm.c: ld_col >= ld_plane up to 8
 * planes, 2 * ld_plane above), so a kernel for codes of at most 8 planes
 * must finish in slot 0; residual matrices get bits * ld_plane. */
typedef struct bp_kernel_batch_call {
    const bp_matrix *m;
    size_t g0, g1;
    size_t ncols;
    const bp_act_column *const *cols;
    int64_t *d;
    size_t ld_plane, ld_col;
} bp_kernel_batch_call;

/* The batched form of a per-call request (its columns, same D layout), for
 * batched kernels that serve the per-call entry too. */
static inline bp_kernel_batch_call bp__kernel_batch_call_of(const bp_kernel_call *call) {
    return (bp_kernel_batch_call){.m = call->m,
                                  .g0 = call->g0,
                                  .g1 = call->g1,
                                  .ncols = call->ncols,
                                  .cols = call->cols,
                                  .d = call->d,
                                  .ld_plane = call->ld_plane,
                                  .ld_col = call->ld_col};
}

typedef struct bp_cpu_kernel_desc {
    const char *name;
    /* Whether this CPU and OS can run the kernel's instructions. */
    bool (*runnable)(void);
    /* Whether this path computes exact D for these activation bits, K and
     * largest group multiplier (bp__mult_bound: 1 per row, else 255). */
    bool (*supports)(int act_bits, size_t kpad, unsigned mult_bound);
    /* Scratch bytes per column for prepare (after q). */
    size_t (*column_bytes)(int act_bits, size_t kpad);
    /* Build kernel-specific data from col->q into scratch (aligned 64). */
    void (*prepare)(bp_act_column *col, size_t kpad, void *scratch);
    /* Optional, act_bits >= 2: the same kernel data built straight from the
     * column's x (cols values, the rotated x' where the matrix rotates) by
     * the rounding bp__act_column_rounding fixed, in one pass without the
     * int32 q (col->q and col->word_base stay NULL; the framework then
     * gives no q space, and scratch starts after the rotation's). It must
     * give the bytes prepare gives from bp__quantize_activations' q. NULL:
     * the framework quantizes into q, then calls prepare. */
    void (*prepare_x)(bp_act_column *col, const float *x, size_t cols, size_t kpad,
                      const bp_act_rounding *rd, void *scratch);
    void (*compute)(const bp_kernel_call *call);
    /* Optional: the whole batch slice at once (kernels that reuse unpacked
     * weight tiles across columns); NULL for per-call kernels. */
    void (*compute_batch)(const bp_kernel_batch_call *call);
} bp_cpu_kernel_desc;

/* Built on every architecture. */
extern const bp_cpu_kernel_desc bp__kernel_reference;
extern const bp_cpu_kernel_desc bp__kernel_portable;
/* x86-64 only (BP_ARCH_X86_64): referenced only under that macro. */
extern const bp_cpu_kernel_desc bp__kernel_avx512_popcount;
extern const bp_cpu_kernel_desc bp__kernel_avx512_lut;
extern const bp_cpu_kernel_desc bp__kernel_avx512_vnni;
extern const bp_cpu_kernel_desc bp__kernel_avx512_vnni_batched;
extern const bp_cpu_kernel_desc bp__kernel_avx2_popcount;
extern const bp_cpu_kernel_desc bp__kernel_avx2_lut;
extern const bp_cpu_kernel_desc bp__kernel_avx2_batched;
extern const bp_cpu_kernel_desc bp__kernel_avx_vnni_batched;
/* AArch64 only (BP_ARCH_AARCH64): referenced only under that macro. */
extern const bp_cpu_kernel_desc bp__kernel_neon_popcount;
extern const bp_cpu_kernel_desc bp__kernel_neon_lut;
extern const bp_cpu_kernel_desc bp__kernel_neon_dotprod;

/* Every kernel built for this architecture except the reference, runnable
 * here or not (for the kernel tests); *n receives the count. */
const bp_cpu_kernel_desc *const *bp__cpu_kernel_list(size_t *n);
/* The kernel of that name from the list, or NULL when not built. */
const bp_cpu_kernel_desc *bp__cpu_kernel_by_name(const char *name);

/* Uniform matrices: replace the per-plane D_p of every column in the call by
 * D_u = sum_p 2^(n-1-p) D_p in plane slot 0, for kernels that count planes. */
void bp__kernel_fold_code(const bp_kernel_call *call);

/* Shared prepare step for popcount kernels: planes + popcounts. */
size_t bp__popcount_column_bytes(int act_bits, size_t kpad);
void bp__popcount_prepare(bp_act_column *col, size_t kpad, void *scratch);

/* CPU features, probed once per process: x86 from CPUID + XCR0, AArch64
 * from the kernel's HWCAP (getauxval); false where they do not apply. */
typedef struct bp_cpu_features {
    bool avx2;             /* AVX2 with YMM state */
    bool avx_vnni;         /* AVX-VNNI (VEX VPDPBUSD on YMM) */
    bool avx512bw;         /* AVX-512 F/BW/VL with ZMM state (implies avx2) */
    bool avx512dq;         /* and DQ (VCVTQQ2PS) */
    bool avx512_vpopcntdq; /* and VPOPCNTDQ */
    bool avx512_vnni;      /* and VNNI */
    bool gfni;             /* and GFNI */
    bool avx512_vbmi;      /* and VBMI (VPERMB) */
    bool neon;             /* AArch64 Advanced SIMD (HWCAP_ASIMD) */
    bool neon_dotprod;     /* and SDOT/UDOT (FEAT_DotProd, HWCAP_ASIMDDP) */
    /* AVX-512 (avx512bw) whose 512-bit operations execute as two 256-bit
     * halves: AMD family 0x19 (Zen 4). AUTO has rules of its own for it
     * (cpu_dispatch.c); a forced path (BP_CPU, the context option) ignores it. */
    bool zmm_halves;
} bp_cpu_features;
const bp_cpu_features *bp__cpu_features(void);
/* Tests of AUTO's rules: from now on bp__cpu_features() (and so AUTO and the
 * kernels' runnable checks) reports a copy of *f; NULL restores the probed
 * features. Call it while no other thread uses the library, and only ask for
 * kernel choices then: a kernel the real CPU lacks must not be run. */
void bp__cpu_features_set(const bp_cpu_features *f);
/* Whether a CPU of this CPUID vendor string (leaf 0, 12 characters) and leaf
 * 1 EAX, with AVX-512 usable, runs 512-bit operations on 256-bit halves
 * (zmm_halves). Pure, on every architecture, for the probe and its tests. */
bool bp__cpu_zmm_halves(const char *vendor, unsigned leaf1_eax, bool avx512);
bool bp__cpu_has_avx512_vpopcntdq(void);
bool bp__cpu_has_avx512bw(void);
bool bp__cpu_has_avx512dq(void);

/* What the CPU dispatcher chooses a kernel by. */
typedef struct bp_kernel_shape {
    int act_bits;
    size_t kpad;
    size_t batch;
    unsigned mult_bound;        /* bp__mult_bound(m) */
    bp_quant_method method;     /* uniform matrices may use code kernels */
    int min_planes, max_planes; /* over the call's columns */
    size_t units;               /* sum over the columns of their plane counts */
    size_t rows;                /* matrix rows; SIZE_MAX when unknown (large) */
} bp_kernel_shape;
const bp_cpu_kernel_desc *bp__select_kernel(const bp_context *ctx, const bp_kernel_shape *shape);

#endif /* BP_CPU_KERNEL_H */
