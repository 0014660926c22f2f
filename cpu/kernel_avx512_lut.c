/*
 * AVX-512BW lookup-table kernel (T-MAC style), exact.
 *
 * Four weight bits of one row select one of 16 signed subset sums
 * sum_i (bit_i ? +q_i : -q_i) of four consecutive activations, so a plane's
 * row product is a sum of table lookups: the weight nibble is the VPERMW
 * index. This costs the same for every act_bits (no activation planes) and
 * runs close to the weight stream's read bandwidth.
 *
 * A row dword holds columns 32w..32w+31; its low half carries groups
 * 8w+0..3 and its high half groups 8w+4..7, nibble j of each half being group
 * j of that half. One zmm table T(w, j) = [16 entries of group 8w+j |
 * 16 entries of group 8w+4+j] therefore serves both halves of all 16 rows:
 * index ((line >> 4j) & 0x000F000F) | 0x00100000 picks the low 16 entries
 * for low halves and the high 16 for high halves.
 *
 * Sums run in int16 lanes (two per row) and are flushed into int32 rows by
 * VPMADDWD with ones before they can overflow. int16 adds wrap, so only the
 * value at a flush needs to fit, not every partial sum. Grouped matrices
 * (docs/numerics.md) flush at least once per group and VPMADDWD with the
 * row's multiplier in both halves instead of ones, which applies m per
 * group for free.
 */
#include "cpu_kernel.h"

#include <immintrin.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* How far ahead the weight stream is prefetched: the hardware prefetcher
 * alone leaves the kernel waiting on DRAM. */
#define LUT_PREFETCH_BYTES     8192
#define LUT_PREFETCH_MAX_BYTES 65536

/* Most row groups one pass reads in lockstep. */
#define LUT_MAX_GROUPS 8

/* Largest |q| a column can hold. */
static int32_t lut_qmax(int act_bits, bool is_signed) {
    return is_signed ? (INT32_C(1) << (act_bits - 1)) - 1 : (INT32_C(1) << act_bits) - 1;
}

static bool lut_runnable(void) {
    return bp__cpu_features()->avx512bw;
}

/* Tables are exact in int16 (|entry| <= 4L), one line adds at most 16L to a
 * lane, and int32 row sums are bounded by kpad * L * (largest multiplier). */
static bool lut_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    if (act_bits < 2 || act_bits > 11)
        return false;
    return kpad <= (size_t)INT32_MAX / ((size_t)lut_qmax(act_bits, false) * mult_bound);
}

/* Per weight word, the four 64-byte tables T(w, 0..3). */
static size_t lut_column_bytes(int act_bits, size_t kpad) {
    (void)act_bits;
    return kpad / 32 * 4 * 64;
}

static void lut_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    int16_t *tab = scratch;
    for (size_t grp = 0; grp < kpad / 4; grp++) {
        const int32_t *q = col->q + 4 * grp;
        size_t w = grp / 8, half = grp / 4 % 2, j = grp % 4;
        int16_t *e = tab + (w * 4 + j) * 32 + half * 16;
        /* Entry nib differs from entry nib-without-its-lowest-bit by
         * +2*q of that bit. */
        int32_t v[16];
        v[0] = -(q[0] + q[1] + q[2] + q[3]);
        for (unsigned nib = 1; nib < 16; nib++)
            v[nib] = v[nib & (nib - 1)] + 2 * q[__builtin_ctz(nib)];
        for (int i = 0; i < 16; i++)
            e[i] = (int16_t)v[i];
    }
    col->kernel_data = tab;
}

/*
 * G consecutive row groups of one slab for C columns. The tables of a column
 * are kpad * 8 bytes, far more than the weights a row group contributes per
 * line, and the weight stream evicts them from L1; reading G row groups in
 * lockstep reuses every table load G times.
 */
typedef struct lut_pass {
    const uint32_t *lines; /* row group g: lines + g * kwords * 16 */
    size_t kwords;
    size_t flush;    /* lines between int16 -> int32 flushes */
    size_t prefetch; /* prefetch distance in words */
    /* Grouped matrices: multiplier tiles of the pass's first row group
     * (row group g at mult + g * ngroups * 16), group words; NULL per row. */
    const uint8_t *mult;
    size_t ngroups, gw;
    const __m512i *tab[BP_KERNEL_MAX_COLS];
    int64_t *d[BP_KERNEL_MAX_COLS]; /* G * 16 outputs per column */
    /* Uniform matrices after the first plane: d holds the code product of
     * the planes so far and becomes 2 d + D_p (Horner, bp__kernel_fold_code's
     * arithmetic), so no per-plane D is stored and no fold pass runs. */
    bool horner;
} lut_pass;

BP_INLINE void lut_body(const lut_pass *ps, const int C, const int G) {
    const __m512i nib_mask = _mm512_set1_epi32(0x000F000F);
    const __m512i hi_select = _mm512_set1_epi32(0x00100000);
    const __m512i ones = _mm512_set1_epi16(1);
    const size_t kw = ps->kwords;
    __m512i acc32[LUT_MAX_GROUPS][BP_KERNEL_MAX_COLS];
#pragma GCC unroll 8
    for (int g = 0; g < G; g++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc32[g][c] = _mm512_setzero_si512();

    for (size_t w0 = 0; w0 < kw; w0 += ps->flush) {
        size_t w1 = kw - w0 < ps->flush ? kw : w0 + ps->flush;
        __m512i acc16[LUT_MAX_GROUPS][BP_KERNEL_MAX_COLS];
#pragma GCC unroll 8
        for (int g = 0; g < G; g++)
#pragma GCC unroll 4
            for (int c = 0; c < C; c++)
                acc16[g][c] = _mm512_setzero_si512();

        for (size_t w = w0; w < w1; w++) {
            __m512i t[BP_KERNEL_MAX_COLS][4];
#pragma GCC unroll 4
            for (int c = 0; c < C; c++)
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++)
                    t[c][j] = _mm512_load_si512(ps->tab[c] + 4 * w + j);
#pragma GCC unroll 8
            for (int g = 0; g < G; g++) {
                const uint32_t *lp = ps->lines + ((size_t)g * kw + w) * BP_ROW_GROUP;
                _mm_prefetch((const char *)(lp + ps->prefetch), _MM_HINT_T0);
                __m512i line = _mm512_load_si512(lp);
                /* 0xEA: (a & b) | c */
                __m512i i0 = _mm512_ternarylogic_epi32(line, nib_mask, hi_select, 0xEA);
                __m512i i1 = _mm512_ternarylogic_epi32(_mm512_srli_epi32(line, 4), nib_mask,
                                                       hi_select, 0xEA);
                __m512i i2 = _mm512_ternarylogic_epi32(_mm512_srli_epi32(line, 8), nib_mask,
                                                       hi_select, 0xEA);
                __m512i i3 = _mm512_ternarylogic_epi32(_mm512_srli_epi32(line, 12), nib_mask,
                                                       hi_select, 0xEA);
#pragma GCC unroll 4
                for (int c = 0; c < C; c++) {
                    __m512i s01 = _mm512_add_epi16(_mm512_permutexvar_epi16(i0, t[c][0]),
                                                   _mm512_permutexvar_epi16(i1, t[c][1]));
                    __m512i s23 = _mm512_add_epi16(_mm512_permutexvar_epi16(i2, t[c][2]),
                                                   _mm512_permutexvar_epi16(i3, t[c][3]));
                    acc16[g][c] = _mm512_add_epi16(acc16[g][c], _mm512_add_epi16(s01, s23));
                }
            }
        }

        if (ps->mult) {
            /* The flush lies inside group w0 / gw: weight both int16 halves
             * of each row by its multiplier. */
#pragma GCC unroll 8
            for (int g = 0; g < G; g++) {
                const uint8_t *t =
                    ps->mult + ((size_t)g * ps->ngroups + w0 / ps->gw) * BP_ROW_GROUP;
                __m512i m32 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)t));
                __m512i m16 = _mm512_or_si512(m32, _mm512_slli_epi32(m32, 16));
#pragma GCC unroll 4
                for (int c = 0; c < C; c++)
                    acc32[g][c] =
                        _mm512_add_epi32(acc32[g][c], _mm512_madd_epi16(acc16[g][c], m16));
            }
        } else {
#pragma GCC unroll 8
            for (int g = 0; g < G; g++)
#pragma GCC unroll 4
                for (int c = 0; c < C; c++)
                    acc32[g][c] =
                        _mm512_add_epi32(acc32[g][c], _mm512_madd_epi16(acc16[g][c], ones));
        }
    }

#pragma GCC unroll 8
    for (int g = 0; g < G; g++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            int64_t *d = ps->d[c] + g * BP_ROW_GROUP;
            __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc32[g][c]));
            __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc32[g][c], 1));
            if (ps->horner) {
                lo = _mm512_add_epi64(_mm512_slli_epi64(_mm512_loadu_si512(d), 1), lo);
                hi = _mm512_add_epi64(_mm512_slli_epi64(_mm512_loadu_si512(d + 8), 1), hi);
            }
            _mm512_storeu_si512(d, lo);
            _mm512_storeu_si512(d + 8, hi);
        }
}

typedef void (*lut_fn)(const lut_pass *ps);

#define LUT_FN(C, G)                                                                               \
    static void lut_##C##_##G(const lut_pass *ps) {                                                \
        lut_body(ps, C, G);                                                                        \
    }
LUT_FN(1, 1)
LUT_FN(1, 8)
LUT_FN(2, 1)
LUT_FN(2, 4)
LUT_FN(3, 1)
LUT_FN(3, 2)
LUT_FN(4, 1)
LUT_FN(4, 2)

/* [columns - 1]: the row groups per pass that keep the accumulators and
 * tables in registers, and the bodies for that many and for one. */
static const struct {
    size_t groups;
    lut_fn many, one;
} lut_fns[BP_KERNEL_MAX_COLS] = {
    {8, lut_1_8, lut_1_1}, {4, lut_2_4, lut_2_1}, {2, lut_3_2, lut_3_1}, {2, lut_4_2, lut_4_1}};

static void lut_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    const size_t kw = m->kwords;
    int max_planes = 0;
    for (size_t c = 0; c < call->ncols; c++)
        if (call->cols[c]->planes > max_planes)
            max_planes = call->cols[c]->planes;

    const bool uniform = m->method == BP_QUANT_UNIFORM;
    for (int p = 0; p < max_planes; p++) {
        lut_pass ps = {.kwords = kw,
                       .flush = SIZE_MAX,
                       .ngroups = m->ngroups,
                       .gw = m->group_words,
                       .horner = uniform && p > 0};
        size_t active[BP_KERNEL_MAX_COLS], n = 0;
        for (size_t c = 0; c < call->ncols; c++) {
            const bp_act_column *col = call->cols[c];
            if (col->planes <= p)
                continue;
            /* Each line adds at most 4 steps x 4 activations x L per lane. */
            size_t f = 32767 / (16 * (size_t)lut_qmax(col->act_bits, col->is_signed));
            if (f < ps.flush)
                ps.flush = f;
            ps.tab[n] = col->kernel_data;
            active[n++] = c;
        }
        if (bp__grouped(m)) {
            /* Flushes must not straddle groups: a power of two <= gw. */
            size_t f = 1;
            while (f * 2 <= ps.flush && f * 2 <= m->group_words)
                f *= 2;
            ps.flush = f;
        }
        const size_t G = lut_fns[n - 1].groups;
        /* The same line of the next pass's row groups when that is near
         * enough, else a fixed distance down each stream. */
        size_t pass_words = G * kw * BP_ROW_GROUP;
        ps.prefetch =
            pass_words * 4 <= LUT_PREFETCH_MAX_BYTES ? pass_words : LUT_PREFETCH_BYTES / 4;

        const uint32_t *slab = bp__slab(m, p);
        for (size_t g = call->g0; g < call->g1;) {
            size_t ng = call->g1 - g >= G ? G : 1;
            ps.lines = slab + g * kw * BP_ROW_GROUP;
            ps.mult = bp__grouped(m) ? bp__mult_tile(m, g, 0) : NULL;
            size_t row = (g - call->g0) * BP_ROW_GROUP;
            /* Uniform: every plane into slot 0 (see horner); a column with
             * fewer planes drops out after its last, its code product done. */
            for (size_t i = 0; i < n; i++)
                ps.d[i] = call->d + active[i] * call->ld_col +
                          (uniform ? 0 : (size_t)p * call->ld_plane) + row;
            (ng == G ? lut_fns[n - 1].many : lut_fns[n - 1].one)(&ps);
            g += ng;
        }
    }
}

const bp_cpu_kernel_desc bp__kernel_avx512_lut = {
    .name = "avx512-lut",
    .runnable = lut_runnable,
    .supports = lut_supports,
    .column_bytes = lut_column_bytes,
    .prepare = lut_prepare,
    .compute = lut_compute,
};
