/*
 * AVX2 popcount kernel, for every act_bits: the AVX-512 popcount kernel's
 * identity and row-lane layout on 256-bit registers. AVX2 has no vector
 * popcount, so bytes are counted with two VPSHUFB nibble lookups (the
 * 16-entry popcount table), summed as bytes for up to 31 lines (8 per line
 * per byte keeps them <= 248) and then widened per row: VPMADDUBSW and
 * VPMADDWD with ones add the four bytes of a row's dword into one int32.
 *
 * A line (16 rows x 32 columns) is two registers, rows 0-7 and 8-15. Four
 * activation planes are counted per pass over a block of lines, which keeps
 * eight byte counters and the line in the 16 YMM registers; the block stays
 * in L1 for the next four planes.
 */
#include "kernel_popcount.h"

#include <immintrin.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* Lines per block: byte counters hold 31 lines of at most 8 each. */
#define P2_BLOCK_LINES 31
/* Activation planes per pass over a block. */
#define P2_PLANES         4
#define P2_PREFETCH_BYTES 4096

static bool p2_runnable(void) {
    return bp__cpu_features()->avx2;
}

static bool p2_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)kpad;
    (void)mult_bound; /* counts stay int32: grouped matrices keep K <= BP_GROUP_MAX_K */
    return act_bits >= 1 && act_bits <= BP_MAX_ACT_BITS;
}

static __m256i p2_popcount_bytes(__m256i x) {
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                           2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(x, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
}

/* Byte sums of one row dword into its int32 lane. */
static __m256i p2_widen(__m256i bytes) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1)),
                             _mm256_set1_epi16(1));
}

/* cnt[2b], cnt[2b+1] (rows 0-7, 8-15) += counts of NB planes starting at
 * plane b0 over n <= 31 lines. words: act plane words, plane-major (kw). */
BP_INLINE void p2_block(const uint32_t *lines, size_t n, const uint32_t *words, size_t kw, int b0,
                        bool binary, __m256i *cnt, const int NB) {
    __m256i acc[P2_PLANES][2];
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++)
        acc[b][0] = acc[b][1] = _mm256_setzero_si256();
    for (size_t w = 0; w < n; w++) {
        const uint32_t *lp = lines + w * BP_ROW_GROUP;
        _mm_prefetch((const char *)lp + P2_PREFETCH_BYTES, _MM_HINT_T0);
        __m256i l0 = _mm256_load_si256((const __m256i *)lp);
        __m256i l1 = _mm256_load_si256((const __m256i *)(lp + 8));
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++) {
            __m256i a = _mm256_set1_epi32((int)words[(size_t)(b0 + b) * kw + w]);
            __m256i x0 = binary ? _mm256_xor_si256(l0, a) : _mm256_and_si256(l0, a);
            __m256i x1 = binary ? _mm256_xor_si256(l1, a) : _mm256_and_si256(l1, a);
            acc[b][0] = _mm256_add_epi8(acc[b][0], p2_popcount_bytes(x0));
            acc[b][1] = _mm256_add_epi8(acc[b][1], p2_popcount_bytes(x1));
        }
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++) {
        cnt[2 * (b0 + b)] = _mm256_add_epi32(cnt[2 * (b0 + b)], p2_widen(acc[b][0]));
        cnt[2 * (b0 + b) + 1] = _mm256_add_epi32(cnt[2 * (b0 + b) + 1], p2_widen(acc[b][1]));
    }
}

static void p2_block_1(const uint32_t *l, size_t n, const uint32_t *wd, size_t kw, int b0, bool bin,
                       __m256i *cnt) {
    p2_block(l, n, wd, kw, b0, bin, cnt, 1);
}
static void p2_block_2(const uint32_t *l, size_t n, const uint32_t *wd, size_t kw, int b0, bool bin,
                       __m256i *cnt) {
    p2_block(l, n, wd, kw, b0, bin, cnt, 2);
}
static void p2_block_3(const uint32_t *l, size_t n, const uint32_t *wd, size_t kw, int b0, bool bin,
                       __m256i *cnt) {
    p2_block(l, n, wd, kw, b0, bin, cnt, 3);
}
static void p2_block_4(const uint32_t *l, size_t n, const uint32_t *wd, size_t kw, int b0, bool bin,
                       __m256i *cnt) {
    p2_block(l, n, wd, kw, b0, bin, cnt, 4);
}

/* Per-row counts c32[b][row] of lines [w0, w1) of one row group. */
static void p2_count(const uint32_t *group, size_t kw, size_t w0, size_t w1,
                     const bp_act_column *col, int32_t (*c32)[BP_ROW_GROUP]) {
    typedef void (*block_fn)(const uint32_t *, size_t, const uint32_t *, size_t, int, bool,
                             __m256i *);
    static const block_fn blocks[P2_PLANES] = {p2_block_1, p2_block_2, p2_block_3, p2_block_4};
    const int A = col->act_bits;
    __m256i cnt[2 * BP_MAX_ACT_BITS];
    for (int i = 0; i < 2 * A; i++)
        cnt[i] = _mm256_setzero_si256();
    for (size_t w = w0; w < w1; w += P2_BLOCK_LINES) {
        size_t n = w1 - w < P2_BLOCK_LINES ? w1 - w : P2_BLOCK_LINES;
        for (int b0 = 0; b0 < A; b0 += P2_PLANES) {
            int nb = A - b0 < P2_PLANES ? A - b0 : P2_PLANES;
            blocks[nb - 1](group + w * BP_ROW_GROUP, n, col->bits + w, kw, b0, A == 1, cnt);
        }
    }
    for (int b = 0; b < A; b++) {
        _mm256_storeu_si256((__m256i *)c32[b], cnt[2 * b]);
        _mm256_storeu_si256((__m256i *)(c32[b] + 8), cnt[2 * b + 1]);
    }
}

static void p2_compute(const bp_kernel_call *call) {
    bp__popcount_compute(call, p2_count);
}

const bp_cpu_kernel_desc bp__kernel_avx2_popcount = {
    .name = "avx2",
    .runnable = p2_runnable,
    .supports = p2_supports,
    .column_bytes = bp__popcount_column_bytes,
    .prepare = bp__popcount_prepare,
    .compute = p2_compute,
};
