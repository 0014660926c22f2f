/*
 * AVX-512 forms of the activation quantizer's loops (src/activations.c), for
 * the per-column cost of small layers at large batch. Each lane performs the
 * scalar code's operations in the same order, so q, the scale and the flags
 * are identical bit for bit (tests/test_activations.c compares both forms):
 *  - max|x|: VMAXPS(|x|, m) returns m when |x| is NaN, as the scalar
 *    `a > amax ? a : amax` does; max is exact, so the lane order is free;
 *  - q = rint((x * pre) * inv) under round-half-even, clamped, 0 where
 *    x == 0 (needed only when inv is infinite: else 0 * inv is a zero
 *    already): clamped first by VMAXPS and VMINPS (a NaN stays NaN as in
 *    the scalar ternaries), then rounded and converted by one VCVTPS2DQ
 *    with round-to-nearest-even (0x80000000 for NaN, as the scalar cast's
 *    CVTTSS2SI), with the word sums in the same pass (the padding quantized
 *    to 0); or (bp__act_round_codes_avx512) packed into the byte-code
 *    kernels' int8 q - off as it goes, the int32 q never stored.
 * Built with AVX-512 flags only on x86-64; src/activations.c calls it where
 * bp__cpu_has_avx512bw() says the CPU and OS run it.
 */
#include "bp_activations.h"

#include <immintrin.h>
#include <math.h>

static __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* The scan; check: also whether every x is finite (a NaN lane is
 * unordered with itself; an Inf makes max|x| Inf). */
static inline __attribute__((always_inline)) bool scan(const float *x, size_t cols, float *amax,
                                                       bool *nonneg, bool check) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
    const __m512 zero = _mm512_setzero_ps();
    __m512 m = zero;
    /* Lanes where some x is not >= 0 (NaN included, as the scalar
     * !(x >= 0)); the zeros past cols are >= 0. */
    __mmask16 neg = 0, nan = 0;
    for (size_t j = 0; j < cols; j += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(tail_mask(cols - j), x + j);
        const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), abs_mask));
        m = _mm512_max_ps(a, m);
        neg |= _mm512_cmp_ps_mask(v, zero, _CMP_NGE_UQ);
        if (check)
            nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    *amax = _mm512_reduce_max_ps(m);
    *nonneg = neg == 0;
    return nan == 0 && *amax < INFINITY;
}

void bp__act_scan_avx512(const float *x, size_t cols, float *amax, bool *nonneg) {
    (void)scan(x, cols, amax, nonneg, false);
}

bool bp__act_scan_finite_avx512(const float *x, size_t cols, float *amax, bool *nonneg) {
    return scan(x, cols, amax, nonneg, true);
}

/* One vector of q: clamp(rint((x * pre) * inv), lo, L), 0 where x == 0
 * when zero_test. The clamps are VMAXPS(lo, r) then VMINPS(L, .): each
 * returns its second operand when either is NaN, so a NaN stays NaN, as
 * in the scalar ternaries, and otherwise they are the scalar comparisons.
 * The clamp runs before the rounding: lo and L are integers and rint is
 * monotonic, so rint(clamp(p)) = clamp(rint(p)) for every non-NaN p, and
 * the clamped value fits int32, so one VCVTPS2DQ under round-to-nearest-even
 * is rint and the cast at once (a NaN gives 0x80000000, as VCVTTPS2DQ and
 * the scalar cast do). has_pre false skips the multiply by pre = 1
 * (exact). */
static inline __attribute__((always_inline)) __m512i
round_vec(__m512 v, __m512 vpre, __m512 vinv, __m512 vL, __m512 vlo, bool has_pre, bool zero_test) {
    const __m512 prod = _mm512_mul_ps(has_pre ? _mm512_mul_ps(v, vpre) : v, vinv);
    __m512 r = _mm512_min_ps(vL, _mm512_max_ps(vlo, prod));
    if (zero_test) {
        const __m512 zero = _mm512_setzero_ps();
        r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(v, zero, _CMP_EQ_OQ), zero);
    }
    return _mm512_cvt_roundps_epi32(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

/* Lanes of x to load at column j: the rest of cols, none past it (the
 * padding then quantizes to 0). */
static __mmask16 load_mask(size_t cols, size_t j) {
    return j < cols ? tail_mask(cols - j) : 0;
}

/* The sums of a, b, c and d (int32 lanes, exact) in lanes 0..3: halves,
 * then quarters folded across the four vectors, then each 128-bit lane in
 * itself; 10 operations where four reductions take about 36. */
static inline __attribute__((always_inline)) __m128i sum4(__m512i a, __m512i b, __m512i c,
                                                          __m512i d) {
    const __m512i ab =
        _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, 0x44), _mm512_shuffle_i64x2(a, b, 0xee));
    const __m512i cd =
        _mm512_add_epi32(_mm512_shuffle_i64x2(c, d, 0x44), _mm512_shuffle_i64x2(c, d, 0xee));
    __m512i q =
        _mm512_add_epi32(_mm512_shuffle_i64x2(ab, cd, 0x88), _mm512_shuffle_i64x2(ab, cd, 0xdd));
    q = _mm512_add_epi32(q, _mm512_shuffle_epi32(q, (_MM_PERM_ENUM)0x4e));
    q = _mm512_add_epi32(q, _mm512_shuffle_epi32(q, (_MM_PERM_ENUM)0xb1));
    const __m512i firsts = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castsi512_si128(_mm512_permutexvar_epi32(firsts, q));
}

/* The rounding's constants. */
typedef struct round_consts {
    __m512 pre, inv, L, lo;
} round_consts;

/* Where a word of q goes: int32 q, or (codes) the int8 q - off of the
 * byte-code kernels. */
typedef struct round_out {
    int32_t *q;
    int8_t *q8;
    __m512i off;
} round_out;

/* Word j / 32 of q: stored, and its lane sums (of the int32 q) returned. */
static inline __attribute__((always_inline)) __m512i round_word(const float *x, size_t cols,
                                                                size_t j, const round_consts *c,
                                                                const round_out *o, bool has_pre,
                                                                bool zero_test, bool codes) {
    const __m512 a = _mm512_maskz_loadu_ps(load_mask(cols, j), x + j);
    const __m512 b = _mm512_maskz_loadu_ps(load_mask(cols, j + 16), x + j + 16);
    const __m512i qa = round_vec(a, c->pre, c->inv, c->L, c->lo, has_pre, zero_test);
    const __m512i qb = round_vec(b, c->pre, c->inv, c->L, c->lo, has_pre, zero_test);
    if (codes) {
        /* VPMOVDB keeps the low byte: q - off itself wherever it fits int8. */
        _mm_storeu_si128((__m128i *)(o->q8 + j),
                         _mm512_cvtepi32_epi8(_mm512_sub_epi32(qa, o->off)));
        _mm_storeu_si128((__m128i *)(o->q8 + j + 16),
                         _mm512_cvtepi32_epi8(_mm512_sub_epi32(qb, o->off)));
    } else {
        _mm512_storeu_si512(o->q + j, qa);
        _mm512_storeu_si512(o->q + j + 16, qb);
    }
    return _mm512_add_epi32(qa, qb);
}

/* Rounding with word sums; codes: into q8 with base[w] = sum - 32 off. */
static inline __attribute__((always_inline)) void
round_sums(const float *x, size_t cols, size_t kpad, float pre, float inv, float L, float lo,
           const round_out *o, int32_t *base, bool has_pre, bool zero_test, bool codes) {
    const round_consts c = {_mm512_set1_ps(pre), _mm512_set1_ps(inv), _mm512_set1_ps(L),
                            _mm512_set1_ps(lo)};
    /* Four words per step, missing ones as zeros; vector adds wrap (a NaN
     * gives q = INT32_MIN), where _mm512_reduce_add_epi32's C adds would
     * overflow. */
    const size_t words = kpad / 32;
    const __m512i zero = _mm512_setzero_si512();
    const __m128i off32 = _mm_slli_epi32(_mm512_castsi512_si128(o->off), 5);
    for (size_t w = 0; w < words; w += 4) {
        const size_t j = 32 * w;
        const __m512i s0 = round_word(x, cols, j, &c, o, has_pre, zero_test, codes);
        const __m512i s1 =
            w + 1 < words ? round_word(x, cols, j + 32, &c, o, has_pre, zero_test, codes) : zero;
        const __m512i s2 =
            w + 2 < words ? round_word(x, cols, j + 64, &c, o, has_pre, zero_test, codes) : zero;
        const __m512i s3 =
            w + 3 < words ? round_word(x, cols, j + 96, &c, o, has_pre, zero_test, codes) : zero;
        const size_t left = words - w;
        __m128i sums = sum4(s0, s1, s2, s3);
        if (codes)
            sums = _mm_sub_epi32(sums, off32);
        _mm_mask_storeu_epi32(base + w, left >= 4 ? (__mmask8)0xf : (__mmask8)((1u << left) - 1u),
                              sums);
    }
}

void bp__act_round_sums_avx512(const float *x, size_t cols, size_t kpad, float pre, float inv,
                               bool inv_finite, float L, float lo, int32_t *q, int32_t *base) {
    const round_out o = {.q = q, .off = _mm512_setzero_si512()};
    /* The common cases get their own loops without the extra operations. */
    if (inv_finite && pre == 1.0f)
        round_sums(x, cols, kpad, pre, inv, L, lo, &o, base, false, false, false);
    else
        round_sums(x, cols, kpad, pre, inv, L, lo, &o, base, true, !inv_finite, false);
}

void bp__act_round_codes_avx512(const float *x, size_t cols, size_t kpad, const bp_act_rounding *rd,
                                int off, int8_t *q8, int32_t *qw) {
    const round_out o = {.q8 = q8, .off = _mm512_set1_epi32(off)};
    if (isfinite(rd->inv) && rd->pre == 1.0f)
        round_sums(x, cols, kpad, rd->pre, rd->inv, rd->L, rd->lo, &o, qw, false, false, true);
    else
        round_sums(x, cols, kpad, rd->pre, rd->inv, rd->L, rd->lo, &o, qw, true, !isfinite(rd->inv),
                   true);
}
