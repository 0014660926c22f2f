/*
 * Per-call activation quantization, by a rule exact enough that every backend
 * produces the same integers (README "Numerics"):
 *   m = max|x|; unsigned mode (L = 2^a - 1) when every x >= 0, else signed
 *   (L = 2^(a-1) - 1); inv = L / m as one float division; q = rint(x * inv)
 *   as one float multiply under round-half-even, clamped; s_x = m / L.
 * A fixed act_scale s replaces m / L by s and inv by 1 / s; values beyond the
 * range then saturate instead of wrapping.
 * Tiny columns (m < 2^-64) are first scaled by 2^64: inv = L / (m * 2^64)
 * and q = rint((x * 2^64) * inv). Scaling by a power of two is exact here
 * (the products stay below 1 and subnormals only gain bits), so q is what
 * the rule gives for any m; without it L / m overflows to +Inf once
 * m < L / FLT_MAX (about 1e-34 at act_bits 16) and every nonzero input
 * would saturate to +-L. s_x = m / L is unchanged. Every backend applies the
 * same step (opencl/kernels/quantize.cl, cuda/cuda_kernels.cu).
 */
#include "bp_activations.h"
#include "bp_finite.h"

#include <math.h>
#include <string.h>

#if defined(BP_ARCH_X86_64)
/* The AVX-512 loops (src/activations_avx512.c, identical results) where the
 * CPU and OS run them; every caller is x86-64 only. */
static bool use_avx512(void) {
    return bp__cpu_has_avx512bw();
}
#endif

/* Below this max|x|, columns are scaled by BP_ACT_TINY_SCALE first. */
#define BP_ACT_TINY       0x1p-64f
#define BP_ACT_TINY_SCALE 0x1p64f

static void quantize_binary(const float *x, size_t cols, float act_scale, int32_t *q,
                            bp_act_column *col) {
    double sum = 0;
    for (size_t j = 0; j < cols; j++) {
        sum += fabs((double)x[j]);
        q[j] = x[j] < 0 ? -1 : 1;
    }
    col->is_signed = true;
    col->is_zero = sum == 0;
    col->scale = act_scale > 0 ? act_scale : (float)(sum / (double)cols);
}

/* Per 32-column word: the sum of q (act_bits >= 2) or the count of valid
 * columns (act_bits 1), the term the popcount identities subtract. */
static void fill_word_base(const int32_t *q, size_t cols, size_t kpad, int act_bits,
                           int32_t *base) {
    if (act_bits != 1) {
        bp__act_word_sums_scalar(q, kpad / 32, base);
        return;
    }
    for (size_t w = 0; w < kpad / 32; w++)
        base[w] = cols > w * 32 ? (int32_t)(cols - w * 32 < 32 ? cols - w * 32 : 32) : 0;
}

void bp__act_word_sums_scalar(const int32_t *q, size_t kwords, int32_t *base) {
    for (size_t w = 0; w < kwords; w++) {
        int32_t s = 0;
        for (size_t j = 0; j < 32; j++)
            s += q[w * 32 + j];
        base[w] = s;
    }
}

/* Fills q[0 .. kpad) and the column's fields; returns true when it wrote
 * the word sums too (q + kpad). */
static bool quantize_values(const float *x, size_t cols, size_t kpad, int act_bits, float act_scale,
                            const bp_act_range *range, int32_t *q, bp_act_column *col);

void bp__quantize_activations_in(const float *x, size_t cols, size_t kpad, int act_bits,
                                 float act_scale, const bp_act_range *range, int32_t *q,
                                 bp_act_column *col) {
    if (!quantize_values(x, cols, kpad, act_bits, act_scale, range, q, col))
        fill_word_base(q, cols, kpad, act_bits, q + kpad);
    col->word_base = q + kpad;
}

void bp__quantize_activations(const float *x, size_t cols, size_t kpad, int act_bits,
                              float act_scale, int32_t *q, bp_act_column *col) {
    bp__quantize_activations_in(x, cols, kpad, act_bits, act_scale, NULL, q, col);
}

/* rintf under round-half-even (the default mode), inline: libm's rintf and
 * fmaxf are calls on baseline x86-64, one per input element. |v| + 2^23
 * lies in [2^23, 2^24), where floats are the integers, so the addition
 * rounds |v| to an integer, ties to even; larger floats are integers (or
 * Inf / NaN) already. Same result as rintf for every float. */
static inline float rint_even(float v) {
    const float a = fabsf(v);
    const float r = a < 0x1p23f ? (a + 0x1p23f) - 0x1p23f : a;
    return copysignf(r, v);
}

void bp__act_column_rounding(const float *x, size_t cols, int act_bits, float act_scale,
                             const bp_act_range *range, bp_act_column *col, bp_act_rounding *rd) {
    col->act_bits = act_bits;
    col->q = NULL;
    col->word_base = NULL;
    col->bits = NULL;
    col->kernel_data = NULL;
    /* A compare gives fmaxf's result without a libm call per element: x is
     * finite, and a NaN (only from a rotated input that overflowed) is
     * skipped by both. */
    bp_act_range r;
    if (range) {
        r = *range;
    } else {
#if defined(BP_ARCH_X86_64)
        if (use_avx512())
            bp__act_scan_avx512(x, cols, &r.amax, &r.nonneg);
        else
#endif
            bp__act_scan_scalar(x, cols, &r.amax, &r.nonneg);
    }
    const float L = r.nonneg ? (float)((1u << act_bits) - 1) : (float)((1u << (act_bits - 1)) - 1);
    col->is_signed = !r.nonneg;
    col->is_zero = r.amax == 0.0f;
    *rd = (bp_act_rounding){.pre = 1.0f, .inv = 0.0f, .L = L, .lo = r.nonneg ? 0.0f : -L};
    if (col->is_zero) {
        col->scale = 0.0f;
        return;
    }
    if (act_scale > 0) {
        rd->inv = 1.0f / act_scale;
        col->scale = act_scale;
    } else {
        rd->pre = r.amax < BP_ACT_TINY ? BP_ACT_TINY_SCALE : 1.0f;
        rd->inv = L / (r.amax * rd->pre);
        col->scale = r.amax / L;
    }
}

static bool quantize_values(const float *x, size_t cols, size_t kpad, int act_bits, float act_scale,
                            const bp_act_range *range, int32_t *q, bp_act_column *col) {
    if (act_bits == 1) {
        col->act_bits = act_bits;
        col->q = q;
        col->bits = NULL;
        col->kernel_data = NULL;
        memset(q + cols, 0, (kpad - cols) * sizeof *q);
        quantize_binary(x, cols, act_scale, q, col);
        return false;
    }
    bp_act_rounding rd;
    bp__act_column_rounding(x, cols, act_bits, act_scale, range, col, &rd);
    col->q = q;
    if (col->is_zero) {
        memset(q, 0, bp__act_q_words(kpad) * sizeof *q);
        return true;
    }
#if defined(BP_ARCH_X86_64)
    if (use_avx512()) {
        bp__act_round_sums_avx512(x, cols, kpad, rd.pre, rd.inv, isfinite(rd.inv), rd.L, rd.lo, q,
                                  q + kpad);
        return true;
    }
#endif
    memset(q + cols, 0, (kpad - cols) * sizeof *q);
    bp__act_round_scalar(x, cols, rd.pre, rd.inv, rd.L, rd.lo, q);
    return false;
}

bool bp__act_scan_checked(const float *x, size_t cols, bp_act_range *r) {
#if defined(BP_ARCH_X86_64)
    if (use_avx512())
        return bp__act_scan_finite_avx512(x, cols, &r->amax, &r->nonneg);
#endif
    if (bp__first_non_finite(x, cols) < cols)
        return false;
    bp__act_scan_scalar(x, cols, &r->amax, &r->nonneg);
    return true;
}

void bp__act_scan_scalar(const float *x, size_t cols, float *amax, bool *nonneg) {
    /* fmaxf without the call: a NaN |x| leaves the maximum as fmaxf does.
     * The scan runs in ACT_LANES independent lanes so that it vectorizes on
     * baseline ISAs: the maximum of the non-NaN |x| (all >= +0) and the AND
     * of x >= 0 do not depend on the order of the elements. */
    enum { ACT_LANES = 16 };
    float lane_max[ACT_LANES] = {0};
    int32_t lane_neg[ACT_LANES] = {0};
    size_t j0 = 0;
    for (; j0 + ACT_LANES <= cols; j0 += ACT_LANES)
        for (int l = 0; l < ACT_LANES; l++) {
            const float a = fabsf(x[j0 + l]);
            lane_max[l] = a > lane_max[l] ? a : lane_max[l];
            lane_neg[l] |= !(x[j0 + l] >= 0.0f);
        }
    for (size_t j = j0; j < cols; j++) {
        const float a = fabsf(x[j]);
        lane_max[0] = a > lane_max[0] ? a : lane_max[0];
        lane_neg[0] |= !(x[j] >= 0.0f);
    }
    float m = 0.0f;
    bool all_nonneg = true;
    for (int l = 0; l < ACT_LANES; l++) {
        m = lane_max[l] > m ? lane_max[l] : m;
        all_nonneg &= lane_neg[l] == 0;
    }
    *amax = m;
    *nonneg = all_nonneg;
}

void bp__act_round_scalar(const float *x, size_t cols, float pre, float inv, float L, float lo,
                          int32_t *q) {
    for (size_t j = 0; j < cols; j++) {
        /* x == 0 is tested first because inv may be +Inf for a tiny fixed scale. */
        float prod = (x[j] * pre) * inv;
        float r = x[j] == 0.0f ? 0.0f : rint_even(prod);
        r = r > L ? L : (r < lo ? lo : r);
        q[j] = (int32_t)r;
    }
}
