/*
 * The AVX2 code kernels (docs/kernels.md, "AVX2 code kernels"), compiled
 * twice: cpu/kernel_avx2_batched.c (plain AVX2,
 * VPMADDUBSW + VPMADDWD) and cpu/kernel_avx_vnni_batched.c (AVX-VNNI, VEX
 * VPDPBUSD on YMM). Each weight tile is unpacked once into byte codes and
 * reused by every column of the batch, so the per-column work is the integer
 * dot product alone; a single column (the GEMV) runs the codes straight
 * into the dot products without a tile (ac_single).
 *
 * The including file defines, before including this header:
 *   AC_BITS      code width W in bits: 8 (VPDPBUSD takes u8 x s8 products
 *                without saturation) or 7 (VPMADDUBSW saturates its int16
 *                pair sums: with u <= 127 and |q'| <= 128 a pair is at most
 *                2 * 127 * 128 = 32512 <= 32767, so nothing saturates);
 *   ac_dot()     acc + the four u8 x s8 products of each dword lane;
 *   ac_runnable(), AC_NAME and AC_DESC (the kernel descriptor's name);
 *   AC_SHORT_BITS the code width of tiles of at most 4 planes: AC_BITS, or 4
 *                when it also defines ac_pairs() (acc16 + the u8 x s8 pair
 *                sums in int16) and ac_widen() (acc32 + the int16 pair sums
 *                of each dword): with u <= 15 a pair is at most 2 * 15 * 128
 *                = 3840, so a word's 8 slots (30720) add up in int16 and
 *                widen once per word;
 * and may define AC_C (below).
 *
 * The unpack. W is AC_BITS, or AC_SHORT_BITS for codes of at most 4
 * planes. Planes [p0, p0 + len) of a row group (len <= W) go into the
 * 8 slots of an 8x8 bit transpose, plane p in slot W - 1 - p and the other
 * slots zero; each slot is one YMM of 8 row dwords (bit k of byte b: column
 * 8b + k). Three rounds of masked swaps (shift, XOR, AND, XOR, shift, XOR
 * per slot pair) transpose every byte position's 8x8 bit block, so slot j
 * then holds in byte b of dword r the code of row r, column 8b + j: the
 * W-bit code of the planes, plane p0 in bit W - 1, i.e. u' = 2^(W - len) u.
 * The unpack runs per code length with the zero slots known to the compiler,
 * so absent planes cost nothing. A row group's 32-column word is 16 YMM of
 * codes (2 row halves x 8 slots); a K block of AC_KBLOCK_WORDS words (8 KB)
 * stays in L1 for all columns.
 *
 * The product. Dword r of slot j pairs with activation bytes q'[8b + j],
 * b = 0..3, so prepare() stores q' per word in that order (dword j = the 4
 * bytes slot j needs) and one broadcast serves both row halves: lane r of an
 * accumulator is row r, with no cross-lane reduction. q' = q for every mode
 * that fits int8 (signed up to 8 bits, unsigned up to 7, binary); unsigned
 * 8-bit columns use q' = q - 128 and add 128 sum u' back from the tile's row
 * sums. With s = 2^(W - len), odd = 2^len - 1, s odd = 2^W - s and cnt the K
 * positions of a segment (padding included: there u' = 0 and q = 0),
 *   s D_seg = 2 S' + 2 off U' - s odd Q' - s odd off cnt,
 * S' = sum u' q', U' = sum u', Q' = sum q'. Grouped matrices multiply each
 * segment by its row multiplier; a segment is at most AC_SEG_WORDS words
 * (128 columns) inside one group, so |m s D_seg| < 255 * 256 * 255 * 128 <
 * 2^31 and the wrapping int32 arithmetic gives it exactly; per-row matrices
 * flush once per K block (|s D| < 256 * 255 * 512). Segment results widen into
 * int64 D, and s divides out exactly at the end.
 *
 * Uniform matrices take the n planes as codes of at most AC_BITS planes
 * (D = 2^len D_first + D_rest, folded chunk by chunk into slot 0, see
 * ac_compute_batch); residual matrices take each plane as a 1-plane code.
 * Columns with different plane counts share one unpack per tile at the
 * longest code: a column at n < L planes takes the tile AND a byte mask
 * keeping its top n code bits, which is exactly the n-plane tile (u'_L AND
 * mask_n = sum_{p<n} b_p 2^(W-1-p) = 2^(W-n) u_n).
 */
#ifndef BP_KERNEL_AVX2_CODES_H
#define BP_KERNEL_AVX2_CODES_H

#include "code_column.h"
#include "cpu_kernel.h"

#include <immintrin.h>
#include <string.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* Words of K per unpacked tile (512 columns: 8 KB of codes per row group). */
#define AC_KBLOCK_WORDS 16
/* Columns of the register tile (2 row halves x AC_C columns of
 * accumulators), 3 or 4: the including file may set 3 where its dot product
 * needs more registers. */
#ifndef AC_C
#define AC_C 4
#endif
/* Grouped matrices: at most this many words per int32 segment (see top). */
#define AC_SEG_WORDS 4
/* How far ahead of its line the single-column loop prefetches each plane. */
#define AC_PREFETCH_BYTES 4096
/* Columns per unit pass: bounded so the pointer lists stay on the stack. */
#define AC_UNIT_COLS 64
/* The code's full byte mask, and the one keeping the top n of its bits. */
#define AC_FULL ((1u << AC_BITS) - 1u)
/* The code width W of a tile whose longest code is len planes. */
#define AC_WBITS(len) ((len) <= 4 ? AC_SHORT_BITS : AC_BITS)
/* Whether a tile of that length sums pairs in int16 (see the top). */
#define AC_I16(len) (AC_SHORT_BITS == 4 && (len) <= 4)

/* q8 in slot order (see the top). */
typedef bp_code_column ac_column;

static void ac_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    int8_t *q8;
    int32_t *qw;
    const ac_column *ac = bp__code_column_carve(col, kpad, scratch, &q8, &qw);
    for (size_t w = 0; w < kpad / 32; w++) {
        const int32_t *q = col->q + 32 * w;
        int32_t sum = 0;
        /* Byte 4j + b of the word: column 8b + j (slot j, byte b). */
        for (int j = 0; j < 8; j++)
            for (int b = 0; b < 4; b++) {
                const int32_t v = q[8 * b + j] - ac->off; /* fits int8 (see top) */
                q8[32 * w + 4 * j + b] = (int8_t)v;
                sum += v;
            }
        qw[w] = sum;
    }
}

/* One masked swap of the transpose: bits k of a with k & s set trade places
 * with bits k - s of b (16-bit shifts; the mask drops what crosses bytes). */
BP_INLINE void ac_swap(__m256i *a, __m256i *b, int s, __m256i mask) {
    const __m256i t = _mm256_and_si256(_mm256_xor_si256(_mm256_srli_epi16(*a, s), *b), mask);
    *b = _mm256_xor_si256(*b, t);
    *a = _mm256_xor_si256(*a, _mm256_slli_epi16(t, s));
}

/* Shift left by s (s < 0: right by -s) in 16-bit lanes, then keep mask: the
 * bits a shift moves across a byte boundary all fall outside the masks used
 * here (the code's top bits). */
BP_INLINE __m256i ac_shift_mask(__m256i v, int s, int mask) {
    v = s > 0 ? _mm256_slli_epi16(v, s) : s < 0 ? _mm256_srli_epi16(v, -s) : v;
    return _mm256_and_si256(v, _mm256_set1_epi8((char)mask));
}

/*
 * Codes of half h (rows 8h..8h+7) of one row group and word: lines[p] for
 * p < len into out[j] (see
 * the top). Called with a constant len, so the zero slots fold away. Short
 * codes take a smaller transpose: with 4 slots (len 3..4, plane p in slot
 * 3 - p) two rounds transpose each nibble's 4x4 block, so slot j holds the
 * 4-bit codes of columns 8b + j (low nibble) and 8b + 4 + j (high nibble);
 * with 2 slots (len <= 2) one round leaves in slot j the 2-bit codes of
 * columns 8b + 2k + j at bits 2k, 2k + 1. One shift and one AND per output
 * then move each code to the top of its byte (u' = 2^(W - len) u, as the
 * 8-slot form gives).
 */
BP_INLINE void ac_unpack_half(const uint32_t *const *lines, const int len, size_t w, int h,
                              __m256i *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x33),
                  m1 = _mm256_set1_epi8(0x55);
    const int wb = AC_WBITS(len);
    const int top2 = (3 << (wb - 2)) & 0xFF, top4 = (15 << (wb - 4)) & 0xFF;
    const int nslots = len <= 2 ? 2 : len <= 4 ? 4 : AC_BITS;
    __m256i x[8];
    for (int i = 0; i < 8; i++)
        x[i] = _mm256_setzero_si256();
    for (int p = 0; p < len; p++)
        x[nslots - 1 - p] =
            _mm256_load_si256((const __m256i *)(lines[p] + w * BP_ROW_GROUP + 8 * h));
    if (len <= 2) {
        ac_swap(&x[0], &x[1], 1, m1);
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 2; j++)
                out[2 * k + j] = ac_shift_mask(x[j], wb - 2 - 2 * k, top2);
    } else if (len <= 4) {
        for (int k = 0; k < 2; k++)
            ac_swap(&x[k], &x[k + 2], 2, m2);
        for (int i = 0; i < 4; i += 2)
            ac_swap(&x[i], &x[i + 1], 1, m1);
        for (int j = 0; j < 4; j++) {
            out[j] = ac_shift_mask(x[j], wb - 4, top4);
            out[j + 4] = ac_shift_mask(x[j], wb - 8, top4);
        }
    } else {
        for (int i = 0; i < 4; i++)
            ac_swap(&x[i], &x[i + 4], 4, m4);
        for (int i = 0; i < 8; i += 4)
            for (int k = 0; k < 2; k++)
                ac_swap(&x[i + k], &x[i + k + 2], 2, m2);
        for (int i = 0; i < 8; i += 2)
            ac_swap(&x[i], &x[i + 1], 1, m1);
        for (int j = 0; j < 8; j++)
            out[j] = x[j];
    }
}

/* Byte mask keeping the top len bits of each wb-bit code in a dword. */
static inline uint32_t ac_mask_word(int len, int wb) {
    const uint32_t full = (1u << wb) - 1u;
    return 0x01010101u * ((full << (wb - len)) & full);
}

/* Everything the columns of a unit need for a K block of one row group. */
typedef struct ac_block {
    size_t w0, w1; /* words of the block */
    size_t segw;   /* words per segment */
    int len_max;   /* the tile's code length */
    const __m256i (*tile)[2][8];
    /* Per code length n (index n - 1), row half and segment:
     * E = 2 * 128 U'_n - s odd 128 cnt, for lengths with offset columns. */
    const __m256i (*eseg)[2][AC_KBLOCK_WORDS];
    /* Per row half and segment: the multipliers (grouped matrices). */
    const __m256i (*mseg)[AC_KBLOCK_WORDS];
} ac_block;

/* How the columns of a register tile take their codes: as they are (every
 * column at the tile's length), through one mask (one shorter length), or
 * each through its own (several lengths). */
enum { AC_AS_IS, AC_MASK_ONE, AC_MASK_EACH };

/*
 * One row group x C columns (code lengths lens[c]) over one K block:
 * D[c] (16 int64 at dout[c]) += s_c D of each segment; `first` stores
 * instead of adding. i16: the pair sums of each word add up in int16 first
 * (AC_I16, tiles of at most 4 planes).
 */
BP_INLINE void ac_tile(const ac_block *b, const ac_column *const *cols, const int *lens,
                       int64_t *const *dout, bool first, const int C, const int mode,
                       const bool i16) {
    const int wb = AC_WBITS(b->len_max);
    (void)i16; /* only with AC_SHORT_BITS == 4 */
    __m256i mask[4];
    int32_t odd_s[4];
    for (int c = 0; c < C; c++) {
        mask[c] = _mm256_set1_epi32((int32_t)ac_mask_word(lens[c], wb));
        odd_s[c] = (1 << wb) - (1 << (wb - lens[c]));
    }
    size_t si = 0;
    for (size_t s0 = b->w0; s0 < b->w1; s0 += b->segw, si++) {
        const size_t s1 = b->w1 - s0 < b->segw ? b->w1 : s0 + b->segw;
        __m256i acc[2][4];
        for (int h = 0; h < 2; h++)
            for (int c = 0; c < C; c++)
                acc[h][c] = _mm256_setzero_si256();
        for (size_t w = s0; w < s1; w++) {
            const __m256i(*t)[8] = b->tile[w - b->w0];
#if AC_SHORT_BITS == 4
            __m256i p16[2][4];
            for (int h = 0; i16 && h < 2; h++)
                for (int c = 0; c < C; c++)
                    p16[h][c] = _mm256_setzero_si256();
#endif
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                __m256i code[2];
                for (int h = 0; h < 2; h++) {
                    code[h] = _mm256_load_si256(&t[h][j]);
                    if (mode == AC_MASK_ONE)
                        code[h] = _mm256_and_si256(code[h], mask[0]);
                }
                for (int c = 0; c < C; c++) {
                    int32_t q4;
                    memcpy(&q4, cols[c]->q8 + 32 * w + 4 * j, sizeof q4);
                    const __m256i qv = _mm256_set1_epi32(q4);
                    for (int h = 0; h < 2; h++) {
                        const __m256i u =
                            mode == AC_MASK_EACH ? _mm256_and_si256(code[h], mask[c]) : code[h];
#if AC_SHORT_BITS == 4
                        if (i16) {
                            p16[h][c] = ac_pairs(p16[h][c], u, qv);
                            continue;
                        }
#endif
                        acc[h][c] = ac_dot(acc[h][c], u, qv);
                    }
                }
            }
#if AC_SHORT_BITS == 4
            for (int h = 0; i16 && h < 2; h++)
                for (int c = 0; c < C; c++)
                    acc[h][c] = ac_widen(acc[h][c], p16[h][c]);
#endif
        }
        for (int c = 0; c < C; c++) {
            int32_t qs = 0;
            for (size_t w = s0; w < s1; w++)
                qs += cols[c]->qw[w];
            /* Wrapping int32: the true value fits (see the top). */
            const __m256i bq = _mm256_set1_epi32((int32_t)((uint32_t)odd_s[c] * (uint32_t)qs));
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_sub_epi32(_mm256_add_epi32(acc[h][c], acc[h][c]), bq);
                if (cols[c]->off)
                    v = _mm256_add_epi32(v, b->eseg[lens[c] - 1][h][si]);
                if (b->mseg)
                    v = _mm256_mullo_epi32(v, b->mseg[h][si]);
                int64_t *d = dout[c] + 8 * h;
                __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
                __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
                if (!(first && s0 == b->w0)) {
                    lo = _mm256_add_epi64(lo, _mm256_loadu_si256((const __m256i *)d));
                    hi = _mm256_add_epi64(hi, _mm256_loadu_si256((const __m256i *)(d + 4)));
                }
                _mm256_storeu_si256((__m256i *)d, lo);
                _mm256_storeu_si256((__m256i *)(d + 4), hi);
            }
        }
    }
}

typedef void (*ac_tile_fn)(const ac_block *b, const ac_column *const *cols, const int *lens,
                           int64_t *const *dout, bool first);
#define AC_FN(C, M)                                                                                \
    static void ac_tile_##C##_##M(const ac_block *b, const ac_column *const *cols,                 \
                                  const int *lens, int64_t *const *dout, bool first) {             \
        if (AC_I16(b->len_max))                                                                    \
            ac_tile(b, cols, lens, dout, first, C, M, true);                                       \
        else                                                                                       \
            ac_tile(b, cols, lens, dout, first, C, M, false);                                      \
    }
#if AC_C == 4
#define AC_FN_ALL(M) AC_FN(1, M) AC_FN(2, M) AC_FN(3, M) AC_FN(4, M)
#define AC_FN_ROW(M)                                                                               \
    { ac_tile_1_##M, ac_tile_2_##M, ac_tile_3_##M, ac_tile_4_##M }
#elif AC_C == 3
#define AC_FN_ALL(M) AC_FN(1, M) AC_FN(2, M) AC_FN(3, M)
#define AC_FN_ROW(M)                                                                               \
    { ac_tile_1_##M, ac_tile_2_##M, ac_tile_3_##M }
#else
#error "AC_C must be 3 or 4"
#endif
AC_FN_ALL(0)
AC_FN_ALL(1)
AC_FN_ALL(2)
/* [mode][C - 1] */
static const ac_tile_fn ac_tile_fns[3][AC_C] = {AC_FN_ROW(0), AC_FN_ROW(1), AC_FN_ROW(2)};

/* The tile of words [w0, w1) at code length len (1..AC_BITS). */
static void ac_unpack_block(const uint32_t *const *lines, int len, size_t w0, size_t w1,
                            __m256i (*tile)[2][8]) {
#define AC_UNPACK_CASE(n)                                                                          \
    case n:                                                                                        \
        for (size_t w = w0; w < w1; w++)                                                           \
            for (int h = 0; h < 2; h++)                                                            \
                ac_unpack_half(lines, n, w, h, tile[w - w0][h]);                                   \
        break;
    switch (len) {
        AC_UNPACK_CASE(1)
        AC_UNPACK_CASE(2)
        AC_UNPACK_CASE(3)
        AC_UNPACK_CASE(4)
        AC_UNPACK_CASE(5)
        AC_UNPACK_CASE(6)
        AC_UNPACK_CASE(7)
#if AC_BITS == 8
        AC_UNPACK_CASE(8)
#endif
    default:
        break;
    }
#undef AC_UNPACK_CASE
}

/* E per row half and segment of the block for code length len, with U' the
 * row sums of the codes of that length (the tile AND its mask). */
static void ac_offset_terms(const ac_block *b, int len, __m256i (*eseg)[AC_KBLOCK_WORDS]) {
    const __m256i ones = _mm256_set1_epi8(1);
    const int wb = AC_WBITS(b->len_max);
    const __m256i mask = _mm256_set1_epi32((int32_t)ac_mask_word(len, wb));
    const int32_t odd_s = (1 << wb) - (1 << (wb - len));
    size_t si = 0;
    for (size_t s0 = b->w0; s0 < b->w1; s0 += b->segw, si++) {
        const size_t s1 = b->w1 - s0 < b->segw ? b->w1 : s0 + b->segw;
        /* cnt = 32 (s1 - s0) positions. */
        const __m256i c = _mm256_set1_epi32(odd_s * 128 * 32 * (int32_t)(s1 - s0));
        for (int h = 0; h < 2; h++) {
            __m256i u = _mm256_setzero_si256();
            for (size_t w = s0; w < s1; w++)
                for (int j = 0; j < 8; j++)
                    u = ac_dot(u, _mm256_and_si256(b->tile[w - b->w0][h][j], mask), ones);
            eseg[h][si] = _mm256_sub_epi32(_mm256_slli_epi32(u, 8), c);
        }
    }
}

/*
 * One column (the GEMV): the codes go from the unpack straight into the dot
 * products, half a row group at a time, with no tile in memory. The same
 * segments, sums and flush as ac_tile; unsigned 8-bit columns add up the row
 * sums of the codes (U') as they go. s D at d (16 int64).
 */
BP_INLINE void ac_single(const bp_matrix *m, size_t g, const uint32_t *const *lines, const int len,
                         const ac_column *col, const bool off, int64_t *d) {
    const size_t kw = m->kwords;
    const bool grouped = bp__grouped(m);
    const size_t segw =
        grouped ? (m->group_words < AC_SEG_WORDS ? m->group_words : AC_SEG_WORDS) : AC_KBLOCK_WORDS;
    const int wb = AC_WBITS(len);
    const int32_t odd_s = (1 << wb) - (1 << (wb - len));
    const __m256i ones = _mm256_set1_epi8(1);
    for (size_t s0 = 0; s0 < kw; s0 += segw) {
        const size_t s1 = kw - s0 < segw ? kw : s0 + segw;
        __m256i acc[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        __m256i usum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        int32_t qs = 0;
        for (size_t w = s0; w < s1; w++) {
            qs += col->qw[w];
            for (int p = 0; p < len; p++)
                _mm_prefetch((const char *)(lines[p] + w * BP_ROW_GROUP) + AC_PREFETCH_BYTES,
                             _MM_HINT_T0);
            for (int h = 0; h < 2; h++) {
                __m256i code[8];
                ac_unpack_half(lines, len, w, h, code);
                for (int j = 0; j < 8; j++) {
                    int32_t q4;
                    memcpy(&q4, col->q8 + 32 * w + 4 * j, sizeof q4);
                    acc[h] = ac_dot(acc[h], code[j], _mm256_set1_epi32(q4));
                    if (off)
                        usum[h] = ac_dot(usum[h], code[j], ones);
                }
            }
        }
        /* Wrapping int32: the true value fits (see the top). */
        const __m256i bq = _mm256_set1_epi32((int32_t)((uint32_t)odd_s * (uint32_t)qs));
        const __m256i cnt = _mm256_set1_epi32(odd_s * 128 * 32 * (int32_t)(s1 - s0));
        const uint8_t *mt = grouped ? bp__mult_tile(m, g, s0 / m->group_words) : NULL;
        for (int h = 0; h < 2; h++) {
            __m256i v = _mm256_sub_epi32(_mm256_add_epi32(acc[h], acc[h]), bq);
            if (off)
                v = _mm256_add_epi32(v, _mm256_sub_epi32(_mm256_slli_epi32(usum[h], 8), cnt));
            if (mt)
                v = _mm256_mullo_epi32(
                    v, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(mt + 8 * h))));
            __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
            __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
            if (s0) {
                lo = _mm256_add_epi64(lo, _mm256_loadu_si256((const __m256i *)(d + 8 * h)));
                hi = _mm256_add_epi64(hi, _mm256_loadu_si256((const __m256i *)(d + 8 * h + 4)));
            }
            _mm256_storeu_si256((__m256i *)(d + 8 * h), lo);
            _mm256_storeu_si256((__m256i *)(d + 8 * h + 4), hi);
        }
    }
}

/* ac_single at code length len (1..AC_BITS), each length and offset its own
 * copy. */
static void ac_single_len(const bp_matrix *m, size_t g, const uint32_t *const *lines, int len,
                          const ac_column *col, int64_t *d) {
#define AC_SINGLE_CASE(n)                                                                          \
    case n:                                                                                        \
        if (col->off)                                                                              \
            ac_single(m, g, lines, n, col, true, d);                                               \
        else                                                                                       \
            ac_single(m, g, lines, n, col, false, d);                                              \
        break;
    switch (len) {
        AC_SINGLE_CASE(1)
        AC_SINGLE_CASE(2)
        AC_SINGLE_CASE(3)
        AC_SINGLE_CASE(4)
        AC_SINGLE_CASE(5)
        AC_SINGLE_CASE(6)
        AC_SINGLE_CASE(7)
#if AC_BITS == 8
        AC_SINGLE_CASE(8)
#endif
    default:
        break;
    }
#undef AC_SINGLE_CASE
}

/*
 * One unit: for each of nc columns the code of planes [p0, p0 + lens[c]),
 * the columns sorted by length, longest first; s D at dout[c] + 16 (g - g0)
 * for row groups [g0, g1), then the exact division by each column's s.
 */
static void ac_unit(const bp_matrix *m, size_t g0, size_t g1, int p0, const int *lens,
                    const ac_column *const *cols, int64_t *const *dout, size_t nc) {
    const size_t kw = m->kwords;
    const bool grouped = bp__grouped(m);
    const int len_max = lens[0];
    bool offset_len[AC_BITS] = {false}; /* lengths with offset columns */
    for (size_t i = 0; i < nc; i++)
        offset_len[lens[i] - 1] |= cols[i]->off != 0;
    _Alignas(64) __m256i tile[AC_KBLOCK_WORDS][2][8];
    _Alignas(64) __m256i eseg[AC_BITS][2][AC_KBLOCK_WORDS];
    _Alignas(64) __m256i mseg[2][AC_KBLOCK_WORDS];
    ac_block b = {.segw = grouped ? (m->group_words < AC_SEG_WORDS ? m->group_words : AC_SEG_WORDS)
                                  : AC_KBLOCK_WORDS,
                  .len_max = len_max,
                  .tile = (const __m256i(*)[2][8])tile,
                  .eseg = (const __m256i(*)[2][AC_KBLOCK_WORDS])eseg,
                  .mseg = grouped ? (const __m256i(*)[AC_KBLOCK_WORDS])mseg : NULL};
    int64_t *dr[AC_C];
    for (size_t g = g0; g < g1; g++) {
        const uint32_t *lines[AC_BITS];
        for (int p = 0; p < len_max; p++)
            lines[p] = bp__slab(m, p0 + p) + g * kw * BP_ROW_GROUP;
        if (nc == 1)
            ac_single_len(m, g, lines, len_max, cols[0], dout[0] + (g - g0) * BP_ROW_GROUP);
        for (b.w0 = 0; nc > 1 && b.w0 < kw; b.w0 = b.w1) {
            b.w1 = kw - b.w0 < AC_KBLOCK_WORDS ? kw : b.w0 + AC_KBLOCK_WORDS;
            ac_unpack_block(lines, len_max, b.w0, b.w1, tile);
            size_t si = 0;
            for (size_t s0 = b.w0; grouped && s0 < b.w1; s0 += b.segw, si++) {
                const uint8_t *mt = bp__mult_tile(m, g, s0 / m->group_words);
                for (int h = 0; h < 2; h++)
                    mseg[h][si] =
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(mt + 8 * h)));
            }
            for (int len = 1; len <= len_max; len++)
                if (offset_len[len - 1])
                    ac_offset_terms(&b, len, eseg[len - 1]);
            for (size_t c0 = 0; c0 < nc; c0 += AC_C) {
                const int C = nc - c0 >= AC_C ? AC_C : (int)(nc - c0);
                const int mode = lens[c0] != lens[c0 + (size_t)C - 1] ? AC_MASK_EACH
                                 : lens[c0] < len_max                 ? AC_MASK_ONE
                                                                      : AC_AS_IS;
                for (int c = 0; c < C; c++)
                    dr[c] = dout[c0 + (size_t)c] + (g - g0) * BP_ROW_GROUP;
                ac_tile_fns[mode][C - 1](&b, cols + c0, lens + c0, dr, b.w0 == 0);
            }
        }
        /* s D -> D: exact division by s = 2^(W - len) of each column. */
        for (size_t i = 0; i < nc; i++) {
            const int64_t s = (int64_t)1 << (AC_WBITS(len_max) - lens[i]);
            int64_t *d = dout[i] + (g - g0) * BP_ROW_GROUP;
            for (int r = 0; s > 1 && r < BP_ROW_GROUP; r++)
                d[r] /= s;
        }
    }
}

/* The columns of a unit: their codes' data, lengths and call indices. */
typedef struct ac_unit_cols {
    const ac_column *cols[AC_UNIT_COLS];
    int lens[AC_UNIT_COLS];
    size_t idx[AC_UNIT_COLS];
    int64_t *dout[AC_UNIT_COLS];
    size_t n;
} ac_unit_cols;

/* Columns [c0, c1) of the call with planes beyond p0, each with the code of
 * planes [p0, p0 + min(n - p0, step)), longest code first, so runs of one
 * length follow. */
static void ac_collect(const bp_kernel_batch_call *call, size_t c0, size_t c1, int p0, int step,
                       ac_unit_cols *u) {
    u->n = 0;
    for (int len = step; len >= 1; len--)
        for (size_t c = c0; c < c1; c++) {
            const int n = call->cols[c]->planes - p0;
            if ((n < step ? n : step) != len)
                continue;
            u->cols[u->n] = call->cols[c]->kernel_data;
            u->lens[u->n] = len;
            u->idx[u->n++] = c;
        }
}

/* Chunks of W planes a uniform code may need (BP_MAX_BITS planes). */
#define AC_MAX_CHUNKS ((BP_MAX_BITS + AC_BITS - 1) / AC_BITS)

/*
 * Residual matrices: each plane p < n as a 1-plane code into slot p.
 * Uniform matrices: the n planes as chunks of at most W, all in slot 0 (the
 * framework gives uniform matrices one slot up to 8 planes, and W = 7 needs
 * two chunks at 8): when a column needs more than one chunk, the row groups
 * run one at a time and each later chunk's s D goes to a 16-row buffer that
 * folds into slot 0 (D over planes [0, p0 + len) = 2^len D_[0,p0) + D_chunk,
 * exact).
 */
static void ac_compute_batch(const bp_kernel_batch_call *call) {
    const bp_matrix *m = call->m;
    for (size_t c0 = 0; c0 < call->ncols; c0 += AC_UNIT_COLS) {
        const size_t c1 = call->ncols - c0 < AC_UNIT_COLS ? call->ncols : c0 + AC_UNIT_COLS;
        if (m->method != BP_QUANT_UNIFORM) {
            ac_unit_cols u;
            for (int p = 0; p < m->bits; p++) {
                ac_collect(call, c0, c1, p, 1, &u);
                for (size_t i = 0; i < u.n; i++)
                    u.dout[i] = call->d + u.idx[i] * call->ld_col + (size_t)p * call->ld_plane;
                if (u.n)
                    ac_unit(m, call->g0, call->g1, p, u.lens, u.cols, u.dout, u.n);
            }
            continue;
        }
        ac_unit_cols u[AC_MAX_CHUNKS];
        int nchunks = 0;
        for (int p0 = 0; p0 < m->bits; p0 += AC_BITS) {
            ac_collect(call, c0, c1, p0, AC_BITS, &u[nchunks]);
            if (!u[nchunks].n)
                break;
            nchunks++;
        }
        if (nchunks == 1) {
            for (size_t i = 0; i < u[0].n; i++)
                u[0].dout[i] = call->d + u[0].idx[i] * call->ld_col;
            ac_unit(m, call->g0, call->g1, 0, u[0].lens, u[0].cols, u[0].dout, u[0].n);
            continue;
        }
        _Alignas(64) int64_t rest[AC_UNIT_COLS * BP_ROW_GROUP];
        for (size_t g = call->g0; g < call->g1; g++) {
            const size_t row0 = (g - call->g0) * BP_ROW_GROUP;
            for (size_t i = 0; i < u[0].n; i++)
                u[0].dout[i] = call->d + u[0].idx[i] * call->ld_col + row0;
            ac_unit(m, g, g + 1, 0, u[0].lens, u[0].cols, u[0].dout, u[0].n);
            for (int k = 1; k < nchunks; k++) {
                for (size_t i = 0; i < u[k].n; i++)
                    u[k].dout[i] = rest + i * BP_ROW_GROUP;
                ac_unit(m, g, g + 1, k * AC_BITS, u[k].lens, u[k].cols, u[k].dout, u[k].n);
                for (size_t i = 0; i < u[k].n; i++) {
                    int64_t *d = call->d + u[k].idx[i] * call->ld_col + row0;
                    for (int r = 0; r < BP_ROW_GROUP; r++)
                        d[r] = d[r] * ((int64_t)1 << u[k].lens[i]) + rest[i * BP_ROW_GROUP + r];
                }
            }
        }
    }
}

/* The per-call form (up to BP_KERNEL_MAX_COLS columns) for the plain path. */
static void ac_compute(const bp_kernel_call *call) {
    const bp_kernel_batch_call b = bp__kernel_batch_call_of(call);
    ac_compute_batch(&b);
}

const bp_cpu_kernel_desc AC_DESC = {
    .name = AC_NAME,
    .runnable = ac_runnable,
    .supports = bp__code_column_supports,
    .column_bytes = bp__code_column_bytes,
    .prepare = ac_prepare,
    .compute = ac_compute,
    .compute_batch = ac_compute_batch,
};

#endif /* BP_KERNEL_AVX2_CODES_H */
