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
 * and may define AC_C and AC_CG (below), and AC_GROUP_DOUBLED with ac_dot2()
 * and ac_widen2(), the forms of ac_dot() and ac_widen() that add twice the
 * products (see "Grouped matrices").
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
 * S' = sum u' q', U' = sum u', Q' = sum q'. Per-row matrices take one
 * segment per K block (512 columns, |s D| < 256 * 255 * 512) and widen it
 * into int64 D; s divides out exactly at the end.
 *
 * Grouped matrices (ac_gtile). A segment is the words of one group inside a
 * K block (every word at groups of 32), and its sum must be weighted by the
 * row's multiplier m, into an int32 sum t32 that widens into int64 once per
 * K block, in one of two forms.
 * - Doubled (AC_GROUP_DOUBLED, plain AVX2): the VPMADDWD that adds the
 *   pair sums into int32 takes each row's 2m as its factor instead of 1s,
 *   so the accumulator sums 2 m S'_seg over the whole block with nothing
 *   run per segment; at the block's end t32 = acc - k sum_seg m Q'_seg with
 *   k = s odd, which is sum_seg m sum (2 u' - s odd) q' = sum_seg m (s D_seg
 *   - off E_seg) exactly. With u' in [0, s odd], |2 u' - s odd| <= s odd <=
 *   2^W - 1 (127, or 15 for the 4-bit codes, whose word sums stay u' q' in
 *   int16: at most 30720, times 2m <= 510 well within int32).
 * - Centre (AVX-VNNI, VPDPBUSD takes no factor): one VPMULLD + VPADDD per
 *   accumulator and segment weights it into t32; the accumulator starts at
 *   -h Q'_seg, h = s odd / 2 for len < W and 2^(W-1) (128) for len = W
 *   (s odd = 2^W - 1 is odd there), so it ends at A_seg = sum (u' - h) q'
 *   with s D_seg = 2 A_seg + [len = W] Q'_seg + off E_seg, and |u' - h| <=
 *   2^(W-1) = 128.
 * With |q'| <= 128, over a K block |t32| = |sum_seg m (...)| <= 255 * 512 *
 * 128 * 127 (doubled) or * 128 (centre) < 2^31: the wrapping int32
 * arithmetic (VPMADDWD, VPDPBUSD, VPMULLD and VPADDD all work modulo 2^32)
 * gives it exactly (a _Static_assert checks it), whatever its partial sums.
 * VPMADDUBSW's int16 pairs are u' q' alone (bounds below). The terms that
 * do not depend on the code, sum_seg m Q'_seg (doubled, and centre at
 * len = W only: |.| <= 255 * 128 * 512) and sum_seg m E_seg (per tile and
 * code length, in int64, shared by all columns), are weighted apart at the
 * K block's end.
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
/* Columns of the grouped register tile (1..4): each accumulator has its
 * weighted int32 sum beside it (see the top). */
#ifndef AC_CG
#define AC_CG 2
#endif
#define AC_CMAX (AC_C > AC_CG ? AC_C : AC_CG)
/* Whether the including file defines ac_dot2() (acc + twice the products)
 * and, with 4-bit codes, ac_widen2() (acc32 + twice the int16 pair sums):
 * the grouped tiles then take the doubled form (see the top). */
#ifndef AC_GROUP_DOUBLED
#define AC_GROUP_DOUBLED 0
#endif
/* The single column, grouped: at most this many words per int32 segment
 * (see ac_single). */
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
    /* Grouped matrices: per row half and segment the multipliers, and per
     * code length and row half sum_seg m E_seg over the block (two int64
     * halves); NULL per row. */
    const __m256i (*mseg)[AC_KBLOCK_WORDS];
    const __m256i (*ew)[2][2];
#if AC_GROUP_DOUBLED
    /* The doubled form's factors: per segment and row half 2m in both
     * int16 halves of each row's dword (VPMADDWD's factor), and per row half
     * the multipliers of segments 2i, 2i + 1 as int16 pairs (the high one
     * zero where 2i + 1 is past the block's segments), for sum_seg m Q'_seg
     * by VPMADDWD. */
    const __m256i (*mfac)[2];
    const __m256i (*mpair)[AC_KBLOCK_WORDS / 2];
#endif
} ac_block;

/* How the columns of a register tile take their codes: as they are (every
 * column at the tile's length), through one mask (one shorter length), or
 * each through its own (several lengths). */
enum { AC_AS_IS, AC_MASK_ONE, AC_MASK_EACH };

/*
 * acc[h][c] += the tile's codes of words [w0, w1) (taken as `mode` says,
 * through mask[0] or mask[c]) dotted with column c's q'; `dbl` (grouped
 * tiles with AC_GROUP_DOUBLED) adds the products times fac[h], each row's
 * 2m. i16: the pair sums of each word add up in int16 first (AC_I16, tiles
 * of at most 4 planes).
 */
BP_INLINE void ac_dots(const ac_block *b, const ac_column *const *cols, const __m256i *mask,
                       size_t w0, size_t w1, __m256i acc[2][AC_CMAX], const int C, const int mode,
                       const bool i16, const bool dbl, const __m256i *fac) {
    (void)i16; /* only with AC_SHORT_BITS == 4 */
    (void)dbl; /* only with AC_GROUP_DOUBLED */
    (void)fac; /* only with AC_GROUP_DOUBLED */
    for (size_t w = w0; w < w1; w++) {
        const __m256i(*t)[8] = b->tile[w - b->w0];
#if AC_SHORT_BITS == 4
        __m256i p16[2][AC_CMAX];
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
#if AC_GROUP_DOUBLED
                    if (dbl) {
                        acc[h][c] = ac_dot2(acc[h][c], u, qv, fac[h]);
                        continue;
                    }
#endif
                    acc[h][c] = ac_dot(acc[h][c], u, qv);
                }
            }
        }
#if AC_SHORT_BITS == 4
        for (int h = 0; i16 && h < 2; h++)
            for (int c = 0; c < C; c++) {
#if AC_GROUP_DOUBLED
                if (dbl) {
                    acc[h][c] = ac_widen2(acc[h][c], p16[h][c], fac[h]);
                    continue;
                }
#endif
                acc[h][c] = ac_widen(acc[h][c], p16[h][c]);
            }
#endif
    }
}

/* int64 D[0..15] (at d) = lo, hi (`first`) or D + lo, hi. */
BP_INLINE void ac_store_d(int64_t *d, __m256i lo, __m256i hi, bool first) {
    if (!first) {
        lo = _mm256_add_epi64(lo, _mm256_loadu_si256((const __m256i *)d));
        hi = _mm256_add_epi64(hi, _mm256_loadu_si256((const __m256i *)(d + 4)));
    }
    _mm256_storeu_si256((__m256i *)d, lo);
    _mm256_storeu_si256((__m256i *)(d + 4), hi);
}

/* v >> s per int64 lane, arithmetic (AVX2 has no VPSRAQ): the logical
 * shift with the sign bit's image b = 2^(63 - s) subtracted back,
 * ((v >>> s) ^ b) - b. */
BP_INLINE __m256i ac_srai64(__m256i v, int s) {
    const __m256i b = _mm256_set1_epi64x((int64_t)(UINT64_C(1) << (63 - s)));
    return _mm256_sub_epi64(_mm256_xor_si256(_mm256_srli_epi64(v, s), b), b);
}

/* The two int64 halves of v's eight int32 lanes. */
BP_INLINE void ac_widen64(__m256i v, __m256i *lo, __m256i *hi) {
    *lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
    *hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
}

/*
 * Per-row matrices: one row group x C columns (code lengths lens[c]) over one
 * K block, one segment: D[c] (16 int64 at dout[c]) += s_c D; `first` stores
 * instead of adding.
 */
BP_INLINE void ac_tile(const ac_block *b, const ac_column *const *cols, const int *lens,
                       int64_t *const *dout, bool first, const int C, const int mode,
                       const bool i16) {
    const int wb = AC_WBITS(b->len_max);
    __m256i mask[AC_CMAX];
    int32_t odd_s[AC_CMAX];
    for (int c = 0; c < C; c++) {
        mask[c] = _mm256_set1_epi32((int32_t)ac_mask_word(lens[c], wb));
        odd_s[c] = (1 << wb) - (1 << (wb - lens[c]));
    }
    __m256i acc[2][AC_CMAX];
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < C; c++)
            acc[h][c] = _mm256_setzero_si256();
    ac_dots(b, cols, mask, b->w0, b->w1, acc, C, mode, i16, false, NULL);
    for (int c = 0; c < C; c++) {
        int32_t qs = 0;
        for (size_t w = b->w0; w < b->w1; w++)
            qs += cols[c]->qw[w];
        /* Wrapping int32: the true value fits (see the top). */
        const __m256i bq = _mm256_set1_epi32((int32_t)((uint32_t)odd_s[c] * (uint32_t)qs));
        for (int h = 0; h < 2; h++) {
            __m256i v = _mm256_sub_epi32(_mm256_add_epi32(acc[h][c], acc[h][c]), bq);
            if (cols[c]->off)
                v = _mm256_add_epi32(v, b->eseg[lens[c] - 1][h][0]);
            __m256i lo, hi;
            ac_widen64(v, &lo, &hi);
            ac_store_d(dout[c] + 8 * h, lo, hi, first);
        }
    }
}

/* The start scale k of a code length's accumulators (see the top): s odd
 * where the dot doubles its products, else the centre h. */
static inline int32_t ac_start_scale(int len, int wb) {
    const int32_t odd_s = (1 << wb) - (1 << (wb - len));
    return AC_GROUP_DOUBLED ? odd_s : len == wb ? 1 << (wb - 1) : odd_s / 2;
}

/* Each column's block sum of m (u' - k_u) q', weighted, stays within int32
 * (see the top): |q'| <= 128, and |u' - k| <= 2^(W-1) (centre) or
 * |2 u' - s odd| <= 2^W - 1 (doubled) for the longest codes W = AC_BITS. */
_Static_assert((int64_t)BP_MULT_MAX *AC_KBLOCK_WORDS * 32 * 128 *
                       (AC_GROUP_DOUBLED ? (1 << AC_BITS) - 1 : 1 << (AC_BITS - 1)) <=
                   INT32_MAX,
               "the weighted int32 sum of a K block must be exact");

/* sum_seg m Q'_seg for row half h over the block's nseg segments (qseg
 * zero past them), one VPMULLD per segment. */
BP_INLINE __m256i ac_mq(const ac_block *b, const int32_t *qseg, size_t nseg, int h) {
    __m256i mq = _mm256_setzero_si256();
    for (size_t k = 0; k < nseg; k++)
        mq = _mm256_add_epi32(mq, _mm256_mullo_epi32(b->mseg[h][k], _mm256_set1_epi32(qseg[k])));
    return mq;
}

#if AC_GROUP_DOUBLED
/* ac_mq for both row halves where |Q'_seg| <= 128 * 32 segw fits int16
 * (segw <= 8: within [-32768, 32512]): Q' packed into int16 pairs of
 * segments 2i, 2i + 1, each pair broadcast by VPERMD into one VPMADDWD
 * against the multipliers' pairs. */
BP_INLINE void ac_mq_pairs(const ac_block *b, const int32_t *qseg, size_t nseg, __m256i mq[2]) {
    const __m256i q16 = _mm256_permute4x64_epi64(
        _mm256_packs_epi32(_mm256_loadu_si256((const __m256i *)qseg),
                           _mm256_loadu_si256((const __m256i *)(qseg + 8))),
        0xD8);
    mq[0] = mq[1] = _mm256_setzero_si256();
    for (size_t i = 0; 2 * i < nseg; i++) {
        const __m256i qp = _mm256_permutevar8x32_epi32(q16, _mm256_set1_epi32((int32_t)i));
        for (int h = 0; h < 2; h++)
            mq[h] = _mm256_add_epi32(mq[h], _mm256_madd_epi16(b->mpair[h][i], qp));
    }
}
#endif

/*
 * Grouped matrices: one row group x C columns (code lengths lens[c]) over one
 * K block (see the top). Doubled form: the dot products' VPMADDWD takes each
 * row's 2m as its factor, so acc sums 2 m S'_seg over the block with nothing
 * per segment, and t32 = acc - k sum_seg m Q'_seg at the end. Centre form:
 * segment by segment, acc starts at -k Q'_seg, takes the segment's dot
 * products and is weighted into t32 by one VPMULLD. At the block's end D[c]
 * (16 int64 at dout[c]) += t32 (centre form: 2 t32, + sum m Q' at the full
 * code length), + sum m E for offset columns; `first` stores instead of
 * adding.
 */
BP_INLINE void ac_gtile_body(const ac_block *b, const ac_column *const *cols, const int *lens,
                             int64_t *const *dout, bool first, const int C, const int mode,
                             const bool i16, const bool word_segments) {
    const int wb = AC_WBITS(b->len_max);
    __m256i mask[AC_CMAX];
    int32_t qseg[AC_CMAX][AC_KBLOCK_WORDS]; /* Q'_seg */
    /* segw is a power of two: segment si holds words i with i >> sshift = si. */
    const size_t nw = b->w1 - b->w0, smask = word_segments ? 0 : b->segw - 1;
    const int sshift = word_segments ? 0 : __builtin_ctzll(b->segw);
    const size_t nseg = (nw + smask) >> sshift;
    for (int c = 0; c < C; c++) {
        mask[c] = _mm256_set1_epi32((int32_t)ac_mask_word(lens[c], wb));
        const int32_t *qw = cols[c]->qw + b->w0;
        for (size_t i = 0; i < nw; i++) /* |Q'_seg| <= 128 * 512 */
            qseg[c][i >> sshift] = (i & smask ? qseg[c][i >> sshift] : 0) + qw[i];
        for (size_t si = nseg; si < AC_KBLOCK_WORDS; si++)
            qseg[c][si] = 0;
    }
    __m256i t32[2][AC_CMAX];
#if AC_GROUP_DOUBLED
    __m256i acc[2][AC_CMAX];
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < C; c++)
            acc[h][c] = _mm256_setzero_si256();
    for (size_t w = b->w0; w < b->w1; w++)
        ac_dots(b, cols, mask, w, w + 1, acc, C, mode, i16, true, b->mfac[(w - b->w0) >> sshift]);
    for (int c = 0; c < C; c++) {
        const __m256i nk = _mm256_set1_epi32(-ac_start_scale(lens[c], wb));
        __m256i mq[2];
        if (b->segw <= 8)
            ac_mq_pairs(b, qseg[c], nseg, mq);
        else
            for (int h = 0; h < 2; h++)
                mq[h] = ac_mq(b, qseg[c], nseg, h);
        for (int h = 0; h < 2; h++)
            t32[h][c] = _mm256_add_epi32(acc[h][c], _mm256_mullo_epi32(mq[h], nk));
    }
#else
    int32_t start[AC_CMAX][AC_KBLOCK_WORDS]; /* -k Q'_seg */
    for (int c = 0; c < C; c++) {
        const int32_t k = ac_start_scale(lens[c], wb);
        for (size_t si = 0; si < nseg; si++)
            start[c][si] = -k * qseg[c][si];
    }
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < C; c++)
            t32[h][c] = _mm256_setzero_si256();
    /* One loop over words, a segment opening and closing inside it (one
     * segment per word at groups of 32). */
    __m256i acc[2][AC_CMAX] = {{_mm256_setzero_si256()}}; /* set at each segment's start */
    for (size_t w = b->w0; w < b->w1; w++) {
        const size_t i = w - b->w0, si = i >> sshift;
        if (!(i & smask))
            for (int c = 0; c < C; c++)
                acc[0][c] = acc[1][c] = _mm256_set1_epi32(start[c][si]);
        ac_dots(b, cols, mask, w, w + 1, acc, C, mode, i16, false, NULL);
        if (!((i + 1) & smask) || w + 1 == b->w1)
            for (int h = 0; h < 2; h++)
                for (int c = 0; c < C; c++)
                    t32[h][c] =
                        _mm256_add_epi32(t32[h][c], _mm256_mullo_epi32(acc[h][c], b->mseg[h][si]));
    }
#endif
    for (int c = 0; c < C; c++)
        for (int h = 0; h < 2; h++) {
            __m256i lo, hi;
            ac_widen64(t32[h][c], &lo, &hi);
            if (!AC_GROUP_DOUBLED) {
                lo = _mm256_add_epi64(lo, lo);
                hi = _mm256_add_epi64(hi, hi);
                if (lens[c] == wb) {
                    /* sum_seg m Q'_seg: |.| <= 255 * 128 * 512 < 2^31. */
                    __m256i mlo, mhi;
                    ac_widen64(ac_mq(b, qseg[c], nseg, h), &mlo, &mhi);
                    lo = _mm256_add_epi64(lo, mlo);
                    hi = _mm256_add_epi64(hi, mhi);
                }
            }
            if (cols[c]->off) {
                lo = _mm256_add_epi64(lo, b->ew[lens[c] - 1][h][0]);
                hi = _mm256_add_epi64(hi, b->ew[lens[c] - 1][h][1]);
            }
            ac_store_d(dout[c] + 8 * h, lo, hi, first);
        }
}

/* The grouped tile, with one segment per word (groups of 32) known to the
 * compiler: each accumulator then lives within one word. */
BP_INLINE void ac_gtile(const ac_block *b, const ac_column *const *cols, const int *lens,
                        int64_t *const *dout, bool first, const int C, const int mode,
                        const bool i16) {
    if (b->segw == 1)
        ac_gtile_body(b, cols, lens, dout, first, C, mode, i16, true);
    else
        ac_gtile_body(b, cols, lens, dout, first, C, mode, i16, false);
}

typedef void (*ac_tile_fn)(const ac_block *b, const ac_column *const *cols, const int *lens,
                           int64_t *const *dout, bool first);
/* One function per tile kind T (ac_tile, ac_gtile), column count and mode,
 * each with its int16 form and its int32 form. */
#define AC_FN(T, C, M)                                                                             \
    static void T##_##C##_##M(const ac_block *b, const ac_column *const *cols, const int *lens,    \
                              int64_t *const *dout, bool first) {                                  \
        if (AC_I16(b->len_max))                                                                    \
            T(b, cols, lens, dout, first, C, M, true);                                             \
        else                                                                                       \
            T(b, cols, lens, dout, first, C, M, false);                                            \
    }
#define AC_FN2(T, M)  AC_FN(T, 1, M) AC_FN(T, 2, M)
#define AC_FN3(T, M)  AC_FN2(T, M) AC_FN(T, 3, M)
#define AC_FN4(T, M)  AC_FN3(T, M) AC_FN(T, 4, M)
#define AC_ROW2(T, M) T##_1_##M, T##_2_##M
#define AC_ROW3(T, M) AC_ROW2(T, M), T##_3_##M
#define AC_ROW4(T, M) AC_ROW3(T, M), T##_4_##M
/* AC_FNn / AC_ROWn for n = AC_C and AC_CG. */
#define AC_CAT_(a, b) a##b
#define AC_CAT(a, b)  AC_CAT_(a, b)
AC_CAT(AC_FN, AC_C)
(ac_tile, 0) AC_CAT(AC_FN, AC_C)(ac_tile, 1) AC_CAT(AC_FN, AC_C)(ac_tile, 2)
    AC_CAT(AC_FN, AC_CG)(ac_gtile, 0) AC_CAT(AC_FN, AC_CG)(ac_gtile, 1)
        AC_CAT(AC_FN, AC_CG)(ac_gtile, 2)
    /* [mode][C - 1] */
    static const ac_tile_fn ac_tile_fns[3][AC_C] = {{AC_CAT(AC_ROW, AC_C)(ac_tile, 0)},
                                                    {AC_CAT(AC_ROW, AC_C)(ac_tile, 1)},
                                                    {AC_CAT(AC_ROW, AC_C)(ac_tile, 2)}};
static const ac_tile_fn ac_gtile_fns[3][AC_CG] = {{AC_CAT(AC_ROW, AC_CG)(ac_gtile, 0)},
                                                  {AC_CAT(AC_ROW, AC_CG)(ac_gtile, 1)},
                                                  {AC_CAT(AC_ROW, AC_CG)(ac_gtile, 2)}};

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
 * row sums of the codes of that length (the tile AND its mask); grouped
 * matrices also ew = sum_seg m E_seg. */
static void ac_offset_terms(const ac_block *b, int len, __m256i (*eseg)[AC_KBLOCK_WORDS],
                            __m256i (*ew)[2]) {
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
    /* Grouped: sum_seg m E_seg per row, in int64 (m E_seg may pass 2^31). */
    for (int h = 0; ew && h < 2; h++) {
        __m256i e64[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (size_t k = 0; k < si; k++) {
            __m256i e[2], mv[2];
            ac_widen64(eseg[h][k], &e[0], &e[1]);
            ac_widen64(b->mseg[h][k], &mv[0], &mv[1]);
            for (int i = 0; i < 2; i++)
                e64[i] = _mm256_add_epi64(e64[i], _mm256_mul_epi32(e[i], mv[i]));
        }
        ew[h][0] = e64[0];
        ew[h][1] = e64[1];
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
    _Alignas(64) __m256i ew[AC_BITS][2][2];
#if AC_GROUP_DOUBLED
    _Alignas(64) __m256i mfac[AC_KBLOCK_WORDS][2];
    _Alignas(64) __m256i mpair[2][AC_KBLOCK_WORDS / 2];
#endif
    /* Grouped: a segment is one group's words inside the block (group_words
     * is a power of two, so groups never straddle a block). */
    ac_block b = {
        .segw = grouped && m->group_words < AC_KBLOCK_WORDS ? m->group_words : AC_KBLOCK_WORDS,
        .len_max = len_max,
        .tile = (const __m256i(*)[2][8])tile,
        .eseg = (const __m256i(*)[2][AC_KBLOCK_WORDS])eseg,
        .mseg = grouped ? (const __m256i(*)[AC_KBLOCK_WORDS])mseg : NULL,
        .ew = grouped ? (const __m256i(*)[2][2])ew : NULL,
#if AC_GROUP_DOUBLED
        .mfac = (const __m256i(*)[2])mfac,
        .mpair = (const __m256i(*)[AC_KBLOCK_WORDS / 2]) mpair
#endif
    };
    const size_t cstep = grouped ? AC_CG : AC_C;
    int64_t *dr[AC_CMAX];
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
                for (int h = 0; h < 2; h++) {
                    mseg[h][si] =
                        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(mt + 8 * h)));
#if AC_GROUP_DOUBLED
                    const __m256i m2 = _mm256_add_epi32(mseg[h][si], mseg[h][si]);
                    mfac[si][h] = _mm256_or_si256(m2, _mm256_slli_epi32(m2, 16));
#endif
                }
            }
#if AC_GROUP_DOUBLED
            for (size_t i = 0; grouped && 2 * i < si; i++)
                for (int h = 0; h < 2; h++)
                    mpair[h][i] = _mm256_or_si256(
                        mseg[h][2 * i], 2 * i + 1 < si ? _mm256_slli_epi32(mseg[h][2 * i + 1], 16)
                                                       : _mm256_setzero_si256());
#endif
            for (int len = 1; len <= len_max; len++)
                if (offset_len[len - 1])
                    ac_offset_terms(&b, len, eseg[len - 1], grouped ? ew[len - 1] : NULL);
            for (size_t c0 = 0; c0 < nc; c0 += cstep) {
                const int C = nc - c0 >= cstep ? (int)cstep : (int)(nc - c0);
                const int mode = lens[c0] != lens[c0 + (size_t)C - 1] ? AC_MASK_EACH
                                 : lens[c0] < len_max                 ? AC_MASK_ONE
                                                                      : AC_AS_IS;
                for (int c = 0; c < C; c++)
                    dr[c] = dout[c0 + (size_t)c] + (g - g0) * BP_ROW_GROUP;
                const ac_tile_fn fn =
                    grouped ? ac_gtile_fns[mode][C - 1] : ac_tile_fns[mode][C - 1];
                fn(&b, cols + c0, lens + c0, dr, b.w0 == 0);
            }
        }
        /* s D -> D: exact division by s = 2^(W - len) of each column, an
         * arithmetic shift (a scalar int64 division per row took about a
         * fifth of an AVX-VNNI call at 1024 x 1024, batch 360, 4 planes). */
        for (size_t i = 0; i < nc; i++) {
            const int shift = AC_WBITS(len_max) - lens[i];
            int64_t *d = dout[i] + (g - g0) * BP_ROW_GROUP;
            for (int r = 0; shift && r < BP_ROW_GROUP; r += 4)
                _mm256_storeu_si256((__m256i *)(d + r),
                                    ac_srai64(_mm256_loadu_si256((const __m256i *)(d + r)), shift));
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
