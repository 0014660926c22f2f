/*
 * Quantized input columns (src/activations.c) and the exact combine
 * (src/combine.c) every backend follows (docs/numerics.md).
 */
#ifndef BP_ACTIVATIONS_H
#define BP_ACTIVATIONS_H

#include "bp_abi.h"

/* One quantized input column, as every CPU kernel sees it. */
typedef struct bp_act_column {
    int planes;       /* weight planes n this column uses */
    int act_bits;     /* 1..16 */
    bool is_signed;   /* two's complement planes; plane act_bits-1 weighs -2^(a-1) */
    bool is_zero;     /* all q are 0: output is the bias alone */
    float scale;      /* s_x */
    const int32_t *q; /* padded K quantized values; binary: +1/-1, padding 0 */
    /* kpad/32 entries, one per 32-column word: act_bits >= 2 the sum of q
     * over the word, act_bits 1 the number of valid columns in it. Popcount
     * kernels subtract sum_g m_g * (this summed over group g). */
    const int32_t *word_base;
    /* Filled by the kernel's prepare step when it needs them: */
    uint32_t *bits; /* [act plane][kwords] words; binary: one plane of sign bits */
    int32_t plane_popcount[BP_MAX_ACT_BITS];
    void *kernel_data; /* kernel-specific (LUT tables) */
} bp_act_column;

/* What the quantizer's scan finds in a column: max|x| (a NaN |x| skipped,
 * as fmaxf does) and whether every x >= 0. */
typedef struct bp_act_range {
    float amax;
    bool nonneg;
} bp_act_range;

/*
 * Quantize one column by the exact rule (see README "Numerics"). q receives
 * kpad values (padding 0) followed by the kpad/32 word_base entries
 * (bp__act_q_words() int32 in all). act_scale 0 = dynamic.
 */
void bp__quantize_activations(const float *x, size_t cols, size_t kpad, int act_bits,
                              float act_scale, int32_t *q, bp_act_column *col);
/* The same with the scan of x already done (range, e.g. found by the input
 * rotation as it wrote x); NULL = scan here. */
void bp__quantize_activations_in(const float *x, size_t cols, size_t kpad, int act_bits,
                                 float act_scale, const bp_act_range *range, int32_t *q,
                                 bp_act_column *col);
static inline size_t bp__act_q_words(size_t kpad) {
    return kpad + kpad / 32;
}
/* The rounding a column's scan fixes (act_bits 2..16): q = clamp(rint((x *
 * pre) * inv), lo, L) under round-half-even, 0 where x == 0. */
typedef struct bp_act_rounding {
    float pre, inv, L, lo;
} bp_act_rounding;
/* The quantizer's first half for act_bits 2..16: the column's act_bits,
 * is_signed, is_zero and scale (q, word_base, bits and kernel_data NULL)
 * and its rounding, from the scan of x (range, or scanned here when NULL).
 * bp__quantize_activations_in is this, then the rounding into q. */
void bp__act_column_rounding(const float *x, size_t cols, int act_bits, float act_scale,
                             const bp_act_range *range, bp_act_column *col, bp_act_rounding *rd);
/* The quantizer's loops (src/activations.c), each in a scalar form and, on
 * x86-64, an AVX-512 form (src/activations_avx512.c; rounding and word sums
 * there in one pass) that gives the same results bit for bit
 * (tests/test_activations.c); bp__quantize_activations takes the AVX-512
 * form where bp__cpu_has_avx512bw() (cpu/cpu_features.c) holds.
 * Scan: max|x| (a NaN |x| skipped, as fmaxf does) and whether every x >= 0. */
void bp__act_scan_scalar(const float *x, size_t cols, float *amax, bool *nonneg);
/* The scan of a column not yet checked for NaN / Inf, the check in the same
 * read: false when some x is not finite (*r is then unspecified). */
bool bp__act_scan_checked(const float *x, size_t cols, bp_act_range *r);
/* Round: q = clamp(rint((x * pre) * inv), lo, L) (round-half-even), 0 where
 * x == 0. */
void bp__act_round_scalar(const float *x, size_t cols, float pre, float inv, float L, float lo,
                          int32_t *q);
/* Word sums: base[w] = sum of q over word w. */
void bp__act_word_sums_scalar(const int32_t *q, size_t kwords, int32_t *base);
#if defined(BP_ARCH_X86_64)
bool bp__cpu_has_avx512bw(void);
void bp__act_scan_avx512(const float *x, size_t cols, float *amax, bool *nonneg);
/* The scan with the check of bp__act_scan_checked: returns whether every
 * x is finite (no NaN lane, max|x| below Inf). */
bool bp__act_scan_finite_avx512(const float *x, size_t cols, float *amax, bool *nonneg);
/* Round and word sums in one pass: q[0 .. kpad) (0 from cols on) and
 * base[w] = sum of q over word w, for w < kpad / 32; inv_finite says inv is
 * finite (then x == 0 needs no test: 0 * inv rounds to a zero). */
void bp__act_round_sums_avx512(const float *x, size_t cols, size_t kpad, float pre, float inv,
                               bool inv_finite, float L, float lo, int32_t *q, int32_t *base);
/* The same rounding straight into the byte-code kernels' column
 * (cpu/code_column.h) without the int32 q: q8[j] = the low byte of q - off
 * (VPMOVDB, as the kernels' prepare packs it) in K order, and qw[w] = the
 * wrapping int32 sum of q over word w, minus 32 off: the bytes and sums the
 * kernels' prepare makes from the quantizer's q and word sums. */
void bp__act_round_codes_avx512(const float *x, size_t cols, size_t kpad, const bp_act_rounding *rd,
                                int off, int8_t *q8, int32_t *qw);
#endif

/* Weight of activation plane b: +-2^b. */
static inline int64_t bp__act_plane_weight(const bp_act_column *col, int b) {
    int64_t w = (int64_t)1 << b;
    return (col->is_signed && b == col->act_bits - 1) ? -w : w;
}
/* D from per-plane AND-popcounts: sum_b w_b (2*cnt_b - popcount(a_b)). */
static inline int64_t bp__act_combine_counts(const bp_act_column *col, const int32_t *cnt,
                                             size_t stride) {
    int64_t d = 0;
    for (int b = 0; b < col->act_bits; b++)
        d += bp__act_plane_weight(col, b) *
             (2 * (int64_t)cnt[(size_t)b * stride] - col->plane_popcount[b]);
    return d;
}

/* ---- exact combine --------------------------------------------------------- */

/* The exact combine (docs/numerics.md). Residual matrices: acc = fma chain
 * of c[p] * ((float)D_p[p*stride] * s) over p = 0..n-1. Uniform
 * matrices: alpha * ((float)D_u * s). The caller adds the bias, if any, as
 * one float add. Every backend follows the same operations in this order. */
float bp__combine(const float *c, const int64_t *d, size_t stride, int n, float s);
/* D_u * s_x first: it is about y / alpha, so huge weights cannot overflow an
 * intermediate when y itself is finite. Inline: it runs once per output. */
static inline float bp__combine_uniform(float alpha, int64_t d_u, float s) {
    return alpha * ((float)d_u * s);
}
/* ReLU as every path applies it after the bias: +0 for v <= 0 (-0
 * included) and for NaN, v otherwise; the same as MAXPS(v, +0). */
static inline float bp__relu(float v) {
    return v > 0.0f ? v : 0.0f;
}
/* y[r] = bp__combine_uniform(alpha[r * stride], d[r], s) (+ bias[r] when
 * bias is not NULL, then bp__relu when relu) for r < rows, the same bits,
 * in a loop that vectorizes (src/combine.c). Returns false when some y[r]
 * before the ReLU is not finite. */
bool bp__combine_uniform_rows(const float *alpha, size_t stride, const int64_t *d, float s,
                              const float *bias, bool relu, float *y, size_t rows);
#if defined(BP_ARCH_X86_64)
bool bp__cpu_has_avx512dq(void);
/* Its AVX-512 form for stride 1 (src/combine_avx512.c, AVX-512F + DQ, the
 * same bits), the same return value; taken where bp__cpu_has_avx512dq()
 * holds. */
bool bp__combine_uniform_rows_avx512(const float *alpha, const int64_t *d, float s,
                                     const float *bias, bool relu, float *y, size_t rows);
#endif

#endif /* BP_ACTIVATIONS_H */
