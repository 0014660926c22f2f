/*
 * AVX2 lookup-table kernel (T-MAC style, exact): the AVX-512 LUT kernel's
 * tables of signed subset sums of four activations, looked up with VPSHUFB.
 *
 * VPSHUFB looks up bytes in one 16-entry table per 128-bit lane, so
 *  - each int16 table entry is split into a low-byte and a high-byte table,
 *    and VPUNPCKL/HBW of the two lookups rebuilds the int16 entries;
 *  - every lane must index one activation group only. A line holds byte k
 *    (columns 8k..8k+7, two nibble groups) of 16 row dwords; VPSHUFB (to
 *    k-major inside lanes), VPERMD and VPUNPCKL/HQDQ transpose the two line
 *    registers into V0 = [byte 0 of rows 0-15 | byte 2 of rows 0-15] and
 *    V1 = [byte 1 | byte 3]. Their low and high nibbles are four index
 *    vectors whose lanes select groups (0 | 4), (1 | 5), (2 | 6), (3 | 7).
 * After the unpack, int16 element r of a lane is row r (rows 0-7 in one
 * accumulator, 8-15 in the other); both lanes add into the same rows.
 *
 * Sums run in int16 and are widened into int32 rows before they can
 * overflow (each line adds at most 4 entries of |.| <= 4L per lane; int16
 * adds wrap, so only the value at a flush must fit).
 */
#include "cpu_kernel.h"

#include <immintrin.h>

#define BP_INLINE static inline __attribute__((always_inline))

#define L2_PREFETCH_BYTES 4096

static bool l2_runnable(void) {
    return bp__cpu_features()->avx2;
}

static int32_t l2_qmax(int act_bits, bool is_signed) {
    return is_signed ? (INT32_C(1) << (act_bits - 1)) - 1 : (INT32_C(1) << act_bits) - 1;
}

/* Entries |.| <= 4L fit int16 and a flush interval of >= 1 line exists for
 * act_bits <= 11; int32 sums over a group are bounded by kpad * L, and the
 * multiplied group sums are added in int64. mult_bound is checked like the
 * AVX-512 LUT kernel's so that both LUT paths take the same cases. */
static bool l2_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    if (act_bits < 2 || act_bits > 11)
        return false;
    return kpad <= (size_t)INT32_MAX / ((size_t)l2_qmax(act_bits, false) * mult_bound);
}

/* Per weight word: 4 index vectors x (low-byte table, high-byte table). */
static size_t l2_column_bytes(int act_bits, size_t kpad) {
    (void)act_bits;
    return kpad / 32 * 8 * 32;
}

/* Index vector v (0..3) of a word: lane 0 looks up group v, lane 1 group
 * v + 4 (groups of 4 columns inside the 32-column word, see the top). */
static void l2_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    uint8_t *tab = scratch;
    for (size_t grp = 0; grp < kpad / 4; grp++) {
        const int32_t *q = col->q + 4 * grp;
        size_t w = grp / 8, g = grp % 8, v = g % 4, lane = g / 4;
        uint8_t *lo = tab + (w * 8 + v * 2) * 32 + lane * 16;
        uint8_t *hi = lo + 32;
        int32_t e[16];
        e[0] = -(q[0] + q[1] + q[2] + q[3]);
        for (unsigned nib = 1; nib < 16; nib++)
            e[nib] = e[nib & (nib - 1)] + 2 * q[__builtin_ctz(nib)];
        for (int i = 0; i < 16; i++) {
            uint16_t u = (uint16_t)(int16_t)e[i];
            lo[i] = (uint8_t)(u & 0xffu);
            hi[i] = (uint8_t)(u >> 8);
        }
    }
    col->kernel_data = tab;
}

/* Adds the int16 entries selected by idx from table pair t into acc0 (rows
 * 0-7) and acc1 (rows 8-15). */
BP_INLINE void l2_lookup(__m256i idx, const __m256i *t, __m256i *acc0, __m256i *acc1) {
    __m256i lo = _mm256_shuffle_epi8(_mm256_load_si256(t), idx);
    __m256i hi = _mm256_shuffle_epi8(_mm256_load_si256(t + 1), idx);
    *acc0 = _mm256_add_epi16(*acc0, _mm256_unpacklo_epi8(lo, hi));
    *acc1 = _mm256_add_epi16(*acc1, _mm256_unpackhi_epi8(lo, hi));
}

/* int16 rows of both lanes into int32 rows. */
BP_INLINE __m256i l2_widen(__m256i acc16) {
    return _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc16)),
                            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc16, 1)));
}

/* Per-row sums of t q over lines [w0, w1) of one row group (int32). */
static void l2_sum(const uint32_t *group, size_t w0, size_t w1, const __m256i *tab, size_t flush,
                   int32_t *rows) {
    const __m256i kmajor = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0,
                                            4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m256i interleave = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i r0 = _mm256_setzero_si256(), r1 = _mm256_setzero_si256();
    for (size_t f0 = w0; f0 < w1; f0 += flush) {
        size_t f1 = w1 - f0 < flush ? w1 : f0 + flush;
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        for (size_t w = f0; w < f1; w++) {
            const uint32_t *lp = group + w * BP_ROW_GROUP;
            _mm_prefetch((const char *)lp + L2_PREFETCH_BYTES, _MM_HINT_T0);
            __m256i x0 = _mm256_permutevar8x32_epi32(
                _mm256_shuffle_epi8(_mm256_load_si256((const __m256i *)lp), kmajor), interleave);
            __m256i x1 = _mm256_permutevar8x32_epi32(
                _mm256_shuffle_epi8(_mm256_load_si256((const __m256i *)(lp + 8)), kmajor),
                interleave);
            __m256i v0 = _mm256_unpacklo_epi64(x0, x1);
            __m256i v1 = _mm256_unpackhi_epi64(x0, x1);
            const __m256i *t = tab + w * 8;
            l2_lookup(_mm256_and_si256(v0, low), t + 0, &a0, &a1);
            l2_lookup(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low), t + 2, &a0, &a1);
            l2_lookup(_mm256_and_si256(v1, low), t + 4, &a0, &a1);
            l2_lookup(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low), t + 6, &a0, &a1);
        }
        r0 = _mm256_add_epi32(r0, l2_widen(a0));
        r1 = _mm256_add_epi32(r1, l2_widen(a1));
    }
    _mm256_storeu_si256((__m256i *)rows, r0);
    _mm256_storeu_si256((__m256i *)(rows + 8), r1);
}

/* D_p of one row group, one plane, one column (16 int64): per group of
 * columns, the row sums times the row's multiplier (docs/numerics.md). */
static void l2_group(const bp_matrix *m, size_t rg, const uint32_t *group, const __m256i *tab,
                     size_t flush, int64_t *d) {
    const size_t kw = m->kwords, gw = m->group_words;
    const bool grouped = bp__grouped(m);
    for (int r = 0; r < BP_ROW_GROUP; r++)
        d[r] = 0;
    for (size_t g = 0, w0 = 0; w0 < kw; g++, w0 += gw) {
        size_t w1 = w0 + gw < kw ? w0 + gw : kw;
        int32_t rows[BP_ROW_GROUP];
        l2_sum(group, w0, w1, tab, flush, rows);
        const uint8_t *mult = grouped ? bp__mult_tile(m, rg, g) : NULL;
        for (int r = 0; r < BP_ROW_GROUP; r++)
            d[r] += mult ? (int64_t)mult[r] * rows[r] : rows[r];
    }
}

static void l2_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    for (size_t c = 0; c < call->ncols; c++) {
        const bp_act_column *col = call->cols[c];
        /* Each line adds at most 4 lookups x 4 activations x L per lane. */
        size_t flush = 32767 / (16 * (size_t)l2_qmax(col->act_bits, col->is_signed));
        for (int p = 0; p < col->planes; p++) {
            const uint32_t *slab = bp__slab(m, p);
            for (size_t g = call->g0; g < call->g1; g++)
                l2_group(m, g, slab + g * m->kwords * BP_ROW_GROUP, col->kernel_data, flush,
                         call->d + c * call->ld_col + (size_t)p * call->ld_plane +
                             (g - call->g0) * BP_ROW_GROUP);
        }
    }
    bp__kernel_fold_code(call);
}

const bp_cpu_kernel_desc bp__kernel_avx2_lut = {
    .name = "avx2-lut",
    .runnable = l2_runnable,
    .supports = l2_supports,
    .column_bytes = l2_column_bytes,
    .prepare = l2_prepare,
    .compute = l2_compute,
};
