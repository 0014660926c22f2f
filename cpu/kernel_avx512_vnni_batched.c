/*
 * AVX-512 GFNI + VNNI batched code kernel (docs/kernels.md, "Batched code
 * kernel"): each weight tile is unpacked once into uint8 codes and reused by
 * every column of the batch, so the per-column work is VPDPBUSD alone.
 *
 * The unpack. The planes [p0, p0 + len) of a row group (len <= 8, missing
 * planes zero) go through the GFNI 8x8 bit transpose. Up to 4 planes, one
 * transpose takes two rows' codes at once (vb_unpack_pairs), so the work
 * follows len. From 5 planes they go through the byte-interleave tree of
 * the avx512-vnni kernel: vector V_a then holds, in 128-bit lane
 * l, the codes of row 4l + a/2 for columns 16 (a % 2) .. + 15, plane p0 in
 * bit 7, so the code is u' = 2^(8-len) u. A 4x4 dword transpose per lane turns
 * the eight V_a into eight vectors T_t, t = 0..7, whose dword r is row r's
 * codes of columns 4t .. 4t + 3 of the 32-column word. Those tiles (512
 * bytes per row group and word) stay in L1 for all columns.
 *
 * The product. For each column and 4 columns of K, one VPDPBUSD with the
 * column's 4 activation bytes broadcast (an embedded {1to16} broadcast)
 * adds u' q' over 16 rows. q' = q is signed int8 for every mode that fits;
 * unsigned 8-bit columns use q' = q - 128 (offset 128) and add 128 sum u' back
 * from the tile's row sums. With s = 2^(8-len), odd = 2^len - 1 and cnt the K
 * positions of a segment (padding included: there u' = 0 and q = 0),
 *   s D_seg = 2 S' + 2 off U' - s odd Q' - s odd off cnt,
 * S' = sum u' q', U' = sum u', Q' = sum q'. Per-row matrices take one
 * segment per K block (512 columns) and flush it into int64 D.
 *
 * Grouped matrices (vb_gtile). A segment is the words of one group inside a
 * K block, and its sum must be weighted by the row's multiplier m. With
 * groups of 32 that is every word, so the weighting is one VPMULLD + VPADDD
 * per accumulator into an int32 sum that widens into int64 once per K block,
 * and nothing else runs per segment: the accumulator starts at -h Q'_seg
 * (a broadcast scalar per column and segment) with h = 128 - s/2 for
 * len <= 7 (2h = s odd) and h = 128 for len = 8, so it ends at
 *   A_seg = sum (u' - h) q',  s D_seg = 2 A_seg + [len = 8] Q'_seg + off E_seg,
 * E_seg = 256 U' - 128 s odd cnt. |u' - h| <= 128 and |q'| <= 128, so
 * over a K block |sum_seg m A_seg| <= 255 * 512 * 128 * 128 < 2^31: the
 * wrapping int32 arithmetic (VPDPBUSD, VPMULLD and VPADDD all work modulo
 * 2^32) gives that sum exactly. The terms that do not depend on the code,
 * sum_seg m Q'_seg (len = 8 columns only) and sum_seg m E_seg (per tile and
 * code length, shared by all columns), are weighted apart, at the K block's
 * end. Segment results widen into int64 D, and s divides out exactly at the
 * end.
 *
 * Uniform matrices take the n planes as one code (n > 8: chunks of 8 with
 * D = 2^len D_first + D_rest); residual matrices take each plane as a 1-plane
 * code. Columns with different plane counts share one unpack per tile, at
 * the batch's longest code: a shorter code is the tile AND a byte mask
 * (vb_unit). act_bits above 8 are not handled (supports()).
 */
#include "avx512_vnni_dpbusd.h"
#include "code_column.h"
#include "cpu_kernel.h"

#include <immintrin.h>
#include <string.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* Words of K per unpacked tile (512 columns: 8 KB of codes per row group). */
#define VB_KBLOCK_WORDS 16
/* Row groups and columns of the register tile: 2 x 8 int32 accumulators;
 * grouped matrices 2 x 6, each with its weighted int32 sum beside it (24
 * registers; 2-4 % faster than 2 x 4 on 128 x 256 and 256 x 64 at batch
 * 32-360), or 1 x 8 for a single row group (layers of at most 16 rows, the
 * odd last group): 8 independent VPDPBUSD chains instead of 4 hide its
 * latency. */
#define VB_R  2
#define VB_C  8
#define VB_CG 6

typedef bp_code_column vb_column;

static bool vb_runnable(void) {
    const bp_cpu_features *f = bp__cpu_features();
    return f->avx512bw && f->avx512_vnni && f->gfni && f->avx512_vpopcntdq;
}

static void vb_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    int8_t *q8;
    int32_t *qw;
    const vb_column *vc = bp__code_column_carve(col, kpad, scratch, &q8, &qw);
    const __m512i off = _mm512_set1_epi32(vc->off);
    /* From 2 activation bits on, the quantizer's word sums are those of q
     * over all 32 positions (padding q = 0), so sum q' = base - 32 off
     * without a reduction per word; binary columns carry counts there. */
    const bool sums = col->act_bits >= 2;
    for (size_t w = 0; w < kpad / 32; w++) {
        /* q' = q - off fits int8 (see the top): VPMOVDB keeps it exactly. */
        __m512i a = _mm512_sub_epi32(_mm512_loadu_si512(col->q + 32 * w), off);
        __m512i b = _mm512_sub_epi32(_mm512_loadu_si512(col->q + 32 * w + 16), off);
        _mm_storeu_si128((__m128i *)(q8 + 32 * w), _mm512_cvtepi32_epi8(a));
        _mm_storeu_si128((__m128i *)(q8 + 32 * w + 16), _mm512_cvtepi32_epi8(b));
        qw[w] = sums ? col->word_base[w] - 32 * vc->off
                     : _mm512_reduce_add_epi32(_mm512_add_epi32(a, b));
    }
}

/* vb_prepare's bytes and sums straight from x (src/activations_avx512.c
 * rounds each word and packs it as above, summing the int32 q). */
static void vb_prepare_x(bp_act_column *col, const float *x, size_t cols, size_t kpad,
                         const bp_act_rounding *rd, void *scratch) {
    int8_t *q8;
    int32_t *qw;
    const vb_column *vc = bp__code_column_carve(col, kpad, scratch, &q8, &qw);
    bp__act_round_codes_avx512(x, cols, kpad, rd, vc->off, q8, qw);
}

BP_INLINE __m512i vb_transpose(__m512i v) {
    const __m512i identity = _mm512_set1_epi64((long long)0x8040201008040201ull);
    return _mm512_gf2p8affine_epi64_epi8(identity, v, 0);
}

/* 4x4 dword transpose inside each 128-bit lane: out[i] lane l = (a_i, b_i,
 * c_i, d_i) of that lane. */
BP_INLINE void vb_transpose4(__m512i a, __m512i b, __m512i c, __m512i d, __m512i *out) {
    __m512i t0 = _mm512_unpacklo_epi32(a, b), t1 = _mm512_unpackhi_epi32(a, b);
    __m512i t2 = _mm512_unpacklo_epi32(c, d), t3 = _mm512_unpackhi_epi32(c, d);
    out[0] = _mm512_unpacklo_epi64(t0, t2);
    out[1] = _mm512_unpackhi_epi64(t0, t2);
    out[2] = _mm512_unpacklo_epi64(t1, t3);
    out[3] = _mm512_unpackhi_epi64(t1, t3);
}

/* Codes of one row group and word from 5-8 planes: lines[p] for p < len
 * (else zero) into tile[0..7] (see the top). */
BP_INLINE void vb_unpack_tree(const uint32_t *const *lines, int len, size_t w, __m512i *tile) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i L[8];
    for (int p = 0; p < 8; p++)
        L[p] = p < len ? _mm512_load_si512(lines[p] + w * BP_ROW_GROUP) : zero;
    __m512i e[2][4];
    for (int i = 0; i < 4; i++) {
        e[0][i] = _mm512_unpacklo_epi8(L[2 * i], L[2 * i + 1]);
        e[1][i] = _mm512_unpackhi_epi8(L[2 * i], L[2 * i + 1]);
    }
    __m512i V[8];
    for (int s8 = 0; s8 < 2; s8++) {
        __m512i w01[2] = {_mm512_unpacklo_epi16(e[s8][0], e[s8][1]),
                          _mm512_unpackhi_epi16(e[s8][0], e[s8][1])};
        __m512i w23[2] = {_mm512_unpacklo_epi16(e[s8][2], e[s8][3]),
                          _mm512_unpackhi_epi16(e[s8][2], e[s8][3])};
        for (int s16 = 0; s16 < 2; s16++) {
            V[4 * s8 + 2 * s16] = vb_transpose(_mm512_unpacklo_epi32(w01[s16], w23[s16]));
            V[4 * s8 + 2 * s16 + 1] = vb_transpose(_mm512_unpackhi_epi32(w01[s16], w23[s16]));
        }
    }
    /* T_{4h + i}: dword i of V_h, V_{2+h}, V_{4+h}, V_{6+h} per lane. */
    vb_transpose4(V[0], V[2], V[4], V[6], tile);
    vb_transpose4(V[1], V[3], V[5], V[7], tile + 4);
}

/* The word's lines of planes [0, len) into l[0..n), zero from len on. */
BP_INLINE void vb_load_lines(const uint32_t *const *lines, const int len, const int n, size_t w,
                             __m512i *l) {
    for (int p = 0; p < n; p++)
        l[p] = p < len ? _mm512_load_si512(lines[p] + w * BP_ROW_GROUP) : _mm512_setzero_si512();
}

/*
 * Codes of one row group and word from 1-4 planes, two rows per 8x8 bit
 * transpose. Plane line k holds row r's bits of columns 8j .. 8j + 7 in
 * byte 4r + j, so qword q of every line holds rows 2q and 2q + 1. For each
 * byte column j, D_j's qword q gathers (VPSHUFB, inside the qword) the
 * planes of row 2q into bytes 0..3 and those of row 2q + 1 into bytes 4..7
 * (missing planes zero). The transpose then gives, in byte i of the qword,
 * row 2q's code of column 8j + i in the high nibble (plane p0 in bit 7)
 * and row 2q + 1's in the low nibble. Tile T_t's qword q is rows 2q and
 * 2q + 1 at columns 4t .. 4t + 3, so T_2j takes the low dword's high
 * nibbles, and its high dword is the low dword's low nibbles moved up; T_2j+1
 * likewise from the high dword. The bytes are those vb_unpack_tree gives,
 * at a cost that follows len: per word of 16 rows, 4 VPSHUFB (len <= 2) or
 * 8 (len 3-4) after 1-4 shifts and 0-2 selects that pair the planes' bytes,
 * then 8 GFNI, 8 VPSHUFD (the dword copies; 2-4 % faster than 32-bit
 * shifts) and 8 selects, where the tree runs 40 shuffles and 8 GFNI at
 * every len. (From 5 planes, two such transposes (planes 0-3 and 4-7)
 * merged by nibble selects and dword interleaves measured 0-11 % slower
 * than the tree at batch 4, so the tree stays there.)
 */

/* The 1-4 lines l as byte pairs of planes 0-1 (e[0]) and 2-3 (e[1]): even
 * bytes of the pair's first line in e[.][0] with its second line's even
 * bytes beside them (odd bytes), odd bytes in e[.][1] likewise: 16-bit
 * shifts and selects, so that one in-lane byte shuffle per pair then
 * gathers a row's two planes. */
BP_INLINE void vb_pair_bytes(const __m512i *l, const int len, __m512i e[2][2]) {
    const __m512i odd_bytes = _mm512_set1_epi16((short)0xFF00);
    for (int h = 0; 2 * h < len; h++) {
        const __m512i a = l[2 * h], b = l[2 * h + 1];
        if (2 * h + 1 < len) {
            e[h][0] = _mm512_ternarylogic_epi64(_mm512_slli_epi16(b, 8), a, odd_bytes, 0xE4);
            e[h][1] = _mm512_ternarylogic_epi64(b, _mm512_srli_epi16(a, 8), odd_bytes, 0xE4);
        } else {
            e[h][0] = a;
            e[h][1] = _mm512_srli_epi16(a, 8);
        }
    }
}

/* Two rows' codes of byte column j from the pairs e of 1-4 lines (above):
 * D_j by VPSHUFB (the second pair merged under a mask), then the transpose. */
BP_INLINE __m512i vb_pair_codes(__m512i e[2][2], const int len, int j) {
    const __m512i identity = _mm512_set1_epi64((long long)0x8040201008040201ull);
    /* Qword bytes k = 0, 1 (row 2q) and 4, 5 (row 2q + 1) from the pair
     * bytes at jj, jj + 1 and 4 + jj, 5 + jj of the same qword, jj = j & 2
     * (e[.][j & 1] holds byte column j there); k = 2, 3, 6, 7 likewise from
     * the second pair. */
    const long long lo = (j & 2) ? 0x0706070603020302ll : 0x0504050401000100ll;
    const long long hi = lo + 0x0808080808080808ll; /* the lane's second qword */
    const __m512i pick = _mm512_set_epi64(hi, lo, hi, lo, hi, lo, hi, lo);
    const __mmask64 m01 = len >= 2 ? 0x3333333333333333ull : 0x1111111111111111ull;
    const __mmask64 m23 = len == 4 ? 0xCCCCCCCCCCCCCCCCull : 0x4444444444444444ull;
    __m512i d = _mm512_maskz_shuffle_epi8(m01, e[0][j & 1], pick);
    if (len >= 3)
        d = _mm512_mask_shuffle_epi8(d, m23, e[1][j & 1], pick);
    return _mm512_gf2p8affine_epi64_epi8(identity, d, 0);
}

BP_INLINE void vb_unpack_pairs(const uint32_t *const *lines, const int len, size_t w,
                               __m512i *tile) {
    /* GF(2) affine map of a byte b: (b & 0x0F) << 4 (bit 4 + i from bit i). */
    const __m512i nibble_up = _mm512_set1_epi64(0x0000000001020408ll);
    /* Low dword's high nibbles: where the selects take their first input. */
    const __m512i low_high_nibbles = _mm512_set1_epi64(0x00000000F0F0F0F0ll);
    __m512i l[4], e[2][2];
    vb_load_lines(lines, len, 4, w, l);
    vb_pair_bytes(l, len, e);
    for (int j = 0; j < 4; j++) {
        const __m512i codes = vb_pair_codes(e, len, j);
        const __m512i up = _mm512_gf2p8affine_epi64_epi8(codes, nibble_up, 0);
        /* c ? a : b (VPTERNLOGQ 0xE4 with a, b, c = selector). */
        tile[2 * j] = _mm512_ternarylogic_epi64(codes, _mm512_shuffle_epi32(up, _MM_PERM_CCAA),
                                                low_high_nibbles, 0xE4);
        tile[2 * j + 1] = _mm512_ternarylogic_epi64(_mm512_shuffle_epi32(codes, _MM_PERM_DDBB), up,
                                                    low_high_nibbles, 0xE4);
    }
}

/* Codes of one row group, words [w0, w1), into tile[w - w0][0..7]. */
BP_INLINE void vb_unpack_words(const uint32_t *const *lines, const int len, size_t w0, size_t w1,
                               __m512i (*tile)[8]) {
    for (size_t w = w0; w < w1; w++)
        if (len <= 4)
            vb_unpack_pairs(lines, len, w, tile[w - w0]);
        else
            vb_unpack_tree(lines, len, w, tile[w - w0]);
}

/* The words of a block at one length: the length a constant in each copy,
 * so the unused planes' shuffles drop out. */
static void vb_unpack_block(const uint32_t *const *lines, int len, size_t w0, size_t w1,
                            __m512i (*tile)[8]) {
    switch (len) {
    case 1:
        vb_unpack_words(lines, 1, w0, w1, tile);
        break;
    case 2:
        vb_unpack_words(lines, 2, w0, w1, tile);
        break;
    case 3:
        vb_unpack_words(lines, 3, w0, w1, tile);
        break;
    case 4:
        vb_unpack_words(lines, 4, w0, w1, tile);
        break;
    case 5:
        vb_unpack_words(lines, 5, w0, w1, tile);
        break;
    case 6:
        vb_unpack_words(lines, 6, w0, w1, tile);
        break;
    case 7:
        vb_unpack_words(lines, 7, w0, w1, tile);
        break;
    default:
        vb_unpack_words(lines, 8, w0, w1, tile);
        break;
    }
}

/* Broadcast of the 4 activation bytes at p (VPDPBUSD folds it into {1to16}). */
BP_INLINE __m512i vb_bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* Byte mask keeping the top len bits of each byte of a dword (see vb_unit). */
static inline uint32_t vb_mask_word(int len) {
    return 0x01010101u * ((0xFFu << (8 - len)) & 0xFFu);
}

/* Everything the columns of a unit need for a K block. */
typedef struct vb_block {
    const bp_matrix *m;
    size_t w0, w1;        /* words of the block */
    size_t segw;          /* words per segment */
    __mmask16 seg_starts; /* bit i: a segment starts at word w0 + i */
    int len_max;          /* the tile's code length */
    __m512i (*tile)[VB_KBLOCK_WORDS][8];
    /* Per row: per code length n (index n - 1) and row group of the tile,
     * E = 2 * 128 U'_n - s odd 128 cnt over the block, for lengths with
     * offset columns. */
    __m512i (*eseg)[VB_R];
    /* Grouped matrices: per row group and segment the multipliers, and per
     * code length and row group sum_seg m E_seg over the block (two int64
     * halves); NULL per row. */
    __m512i (*mseg)[VB_KBLOCK_WORDS];
    __m512i (*ew)[VB_R][2];
} vb_block;

/* How the columns of a register tile take their codes from the tile: as
 * they are (every column at the tile's length), all through one mask (one
 * shorter length), or each through its own (several lengths). */
enum { VB_FULL, VB_MASK_ONE, VB_MASK_EACH };

/* acc[r][c] += the tile's codes of words [w0, w1) of row group r (taken
 * as `mode` says, through mask[0] or mask[c]) dotted with column c's q'.
 * `tied`: VPDPBUSD through the in-place asm (the grouped tile, whose
 * accumulators start at a broadcast that GCC would otherwise copy per
 * word); else the intrinsic (the per-row tile: the asm makes GCC spill its
 * 2 x 8 accumulators). */
BP_INLINE void vb_dots(const vb_block *b, const vb_column *const *cols, const __m512i *mask,
                       size_t w0, size_t w1, __m512i acc[VB_R][VB_C], const int R, const int C,
                       const int mode, const bool tied) {
    for (size_t w = w0; w < w1; w++) {
#pragma GCC unroll 8
        for (int t = 0; t < 8; t++) {
            __m512i code[VB_R];
            for (int r = 0; r < R; r++) {
                code[r] = _mm512_load_si512(&b->tile[r][w - b->w0][t]);
                if (mode == VB_MASK_ONE)
                    code[r] = _mm512_and_si512(code[r], mask[0]);
            }
            for (int c = 0; c < C; c++) {
                const __m512i qv = vb_bcast4(cols[c]->q8 + 32 * w + 4 * (size_t)t);
                for (int r = 0; r < R; r++) {
                    const __m512i u =
                        mode == VB_MASK_EACH ? _mm512_and_si512(code[r], mask[c]) : code[r];
                    if (tied)
                        bp__dpbusd_inplace(&acc[r][c], u, qv);
                    else
                        acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], u, qv);
                }
            }
        }
    }
}

/* The int64 pair v (16 rows of s D) stored at d: added to what d holds
 * unless `first`; on the matrix's last K block, s = 2^(8 - len) divides out
 * exactly (an arithmetic shift), so D is written once per tile. */
BP_INLINE void vb_store_d(int64_t *d, __m512i v0, __m512i v1, bool first, bool last, int len) {
    if (!first) {
        v0 = _mm512_add_epi64(v0, _mm512_loadu_si512(d));
        v1 = _mm512_add_epi64(v1, _mm512_loadu_si512(d + 8));
    }
    if (last) {
        const __m128i shift = _mm_cvtsi32_si128(8 - len);
        v0 = _mm512_sra_epi64(v0, shift);
        v1 = _mm512_sra_epi64(v1, shift);
    }
    _mm512_storeu_si512(d, v0);
    _mm512_storeu_si512(d + 8, v1);
}

/*
 * Per-row matrices: R row groups x C columns (code lengths lens[c]) over one
 * K block, one segment: D[r][c] (16 int64 at dout[c] + 16 r) += s_c D,
 * s_c = 2^(8 - lens[c]); `first` stores instead of adding, and the last K
 * block divides s_c out (vb_store_d).
 */
BP_INLINE void vb_tile(const vb_block *b, const vb_column *const *cols, const int *lens,
                       int64_t *const *dout, bool first, const int R, const int C, const int mode) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i mask[VB_C];
    int32_t odd_s[VB_C]; /* s (2^len - 1) = 256 - s */
    for (int c = 0; c < C; c++) {
        mask[c] = _mm512_set1_epi32((int32_t)vb_mask_word(lens[c]));
        odd_s[c] = 256 - (1 << (8 - lens[c]));
    }
    __m512i acc[VB_R][VB_C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            acc[r][c] = zero;
    vb_dots(b, cols, mask, b->w0, b->w1, acc, R, C, mode, false);
    for (int c = 0; c < C; c++) {
        int32_t qs = 0;
        for (size_t w = b->w0; w < b->w1; w++)
            qs += cols[c]->qw[w];
        /* Wrapping int32: the true value fits (512 positions, see the top). */
        const __m512i bq = _mm512_set1_epi32((int32_t)((uint32_t)odd_s[c] * (uint32_t)qs));
        for (int r = 0; r < R; r++) {
            __m512i v = _mm512_sub_epi32(_mm512_add_epi32(acc[r][c], acc[r][c]), bq);
            if (cols[c]->off)
                v = _mm512_add_epi32(v, b->eseg[lens[c] - 1][r]);
            vb_store_d(dout[c] + 16 * r, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)),
                       _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)), first,
                       b->w1 == b->m->kwords, lens[c]);
        }
    }
}

typedef void (*vb_tile_fn)(const vb_block *b, const vb_column *const *cols, const int *lens,
                           int64_t *const *dout, bool first);
#define VB_FN(R, C, M)                                                                             \
    static void vb_tile_##R##_##C##_##M(const vb_block *b, const vb_column *const *cols,           \
                                        const int *lens, int64_t *const *dout, bool first) {       \
        vb_tile(b, cols, lens, dout, first, R, C, M);                                              \
    }
#define VB_FN8(R, M)                                                                               \
    VB_FN(R, 1, M)                                                                                 \
    VB_FN(R, 2, M)                                                                                 \
    VB_FN(R, 3, M)                                                                                 \
    VB_FN(R, 4, M) VB_FN(R, 5, M) VB_FN(R, 6, M) VB_FN(R, 7, M) VB_FN(R, 8, M)
VB_FN8(1, 0)
VB_FN8(2, 0)
VB_FN8(1, 1)
VB_FN8(2, 1)
VB_FN8(1, 2)
VB_FN8(2, 2)

#define VB_FNS(R, M)                                                                               \
    {                                                                                              \
        vb_tile_##R##_1_##M, vb_tile_##R##_2_##M, vb_tile_##R##_3_##M, vb_tile_##R##_4_##M,        \
            vb_tile_##R##_5_##M, vb_tile_##R##_6_##M, vb_tile_##R##_7_##M, vb_tile_##R##_8_##M     \
    }
/* [mode][R - 1][C - 1] */
static const vb_tile_fn vb_tile_fns[3][VB_R][VB_C] = {
    {VB_FNS(1, 0), VB_FNS(2, 0)}, {VB_FNS(1, 1), VB_FNS(2, 1)}, {VB_FNS(1, 2), VB_FNS(2, 2)}};

/* The centre h of a length's codes (see the top): 2h = s odd below 8. */
static inline int32_t vb_centre(int len) {
    return len == 8 ? 128 : 128 - (1 << (7 - len));
}

/* A K block of grouped A_seg sums, weighted, stays within int32 (top). */
_Static_assert((int64_t)BP_MULT_MAX *VB_KBLOCK_WORDS * 32 * 128 * 128 <= INT32_MAX,
               "the weighted int32 sum of a K block must be exact");

/*
 * Grouped matrices: R row groups x C columns (code lengths lens[c]) over one
 * K block, segment by segment (see the top): acc starts at -h Q'_seg, takes
 * the segment's VPDPBUSD and is weighted into t32 by one VPMULLD; at the
 * block's end D[r][c] (16 int64 at dout[c] + 16 r) += 2 t32 (+ sum m Q' for
 * len 8, + sum m E for offset columns); `first` stores instead of adding,
 * and the last K block divides s out (vb_store_d).
 */
BP_INLINE void vb_gtile(const vb_block *b, const vb_column *const *cols, const int *lens,
                        int64_t *const *dout, bool first, const int R, const int C,
                        const int mode) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i mask[VB_C];
    _Alignas(64) int32_t qseg[VB_C][VB_KBLOCK_WORDS]; /* Q'_seg */
    _Alignas(64) int32_t hq[VB_C][VB_KBLOCK_WORDS];   /* -h Q'_seg */
    const size_t nw = b->w1 - b->w0;
    const __mmask16 wmask = (__mmask16)((1u << nw) - 1);
    for (int c = 0; c < C; c++) {
        mask[c] = _mm512_set1_epi32((int32_t)vb_mask_word(lens[c]));
        /* Word sums of the block (|Q'| <= 128 * 32 per word), then per
         * segment: lane i adds lanes i + 1, i + 2, ... up to the segment
         * length (a power of two; lanes past the block are zero), and the
         * lanes that start segments are packed to the front. */
        __m512i q = _mm512_maskz_loadu_epi32(wmask, cols[c]->qw + b->w0);
        if (b->segw > 1) {
            q = _mm512_add_epi32(q, _mm512_alignr_epi32(zero, q, 1));
            if (b->segw > 2)
                q = _mm512_add_epi32(q, _mm512_alignr_epi32(zero, q, 2));
            if (b->segw > 4)
                q = _mm512_add_epi32(q, _mm512_alignr_epi32(zero, q, 4));
            if (b->segw > 8)
                q = _mm512_add_epi32(q, _mm512_alignr_epi32(zero, q, 8));
            q = _mm512_maskz_compress_epi32(b->seg_starts, q);
        }
        _mm512_store_si512(qseg[c], q);
        _mm512_store_si512(hq[c], _mm512_mullo_epi32(q, _mm512_set1_epi32(-vb_centre(lens[c]))));
    }
    __m512i t32[VB_R][VB_C];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            t32[r][c] = zero;
    size_t si = 0;
    for (size_t s0 = b->w0; s0 < b->w1; s0 += b->segw, si++) {
        const size_t s1 = b->w1 - s0 < b->segw ? b->w1 : s0 + b->segw;
        __m512i acc[VB_R][VB_C];
        for (int c = 0; c < C; c++) {
            const __m512i init = _mm512_set1_epi32(hq[c][si]);
            for (int r = 0; r < R; r++)
                acc[r][c] = init;
        }
        vb_dots(b, cols, mask, s0, s1, acc, R, C, mode, true);
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++)
                t32[r][c] =
                    _mm512_add_epi32(t32[r][c], _mm512_mullo_epi32(acc[r][c], b->mseg[r][si]));
    }
    const size_t nseg = si;
    for (int c = 0; c < C; c++)
        for (int r = 0; r < R; r++) {
            __m512i v[2] = {_mm512_cvtepi32_epi64(_mm512_castsi512_si256(t32[r][c])),
                            _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(t32[r][c], 1))};
            v[0] = _mm512_add_epi64(v[0], v[0]);
            v[1] = _mm512_add_epi64(v[1], v[1]);
            if (lens[c] == 8) {
                /* sum_seg m Q'_seg: |.| <= 255 * 128 * 512 < 2^31. */
                __m512i mq = zero;
                for (size_t k = 0; k < nseg; k++)
                    mq = _mm512_add_epi32(
                        mq, _mm512_mullo_epi32(b->mseg[r][k], _mm512_set1_epi32(qseg[c][k])));
                v[0] = _mm512_add_epi64(v[0], _mm512_cvtepi32_epi64(_mm512_castsi512_si256(mq)));
                v[1] =
                    _mm512_add_epi64(v[1], _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(mq, 1)));
            }
            if (cols[c]->off) {
                v[0] = _mm512_add_epi64(v[0], b->ew[lens[c] - 1][r][0]);
                v[1] = _mm512_add_epi64(v[1], b->ew[lens[c] - 1][r][1]);
            }
            vb_store_d(dout[c] + 16 * r, v[0], v[1], first, b->w1 == b->m->kwords, lens[c]);
        }
}

#define VB_GFN(R, C, M)                                                                            \
    static void vb_gtile_##R##_##C##_##M(const vb_block *b, const vb_column *const *cols,          \
                                         const int *lens, int64_t *const *dout, bool first) {      \
        vb_gtile(b, cols, lens, dout, first, R, C, M);                                             \
    }
#define VB_GFN4(R, M) VB_GFN(R, 1, M) VB_GFN(R, 2, M) VB_GFN(R, 3, M) VB_GFN(R, 4, M)
#define VB_GFN8(M)    VB_GFN4(1, M) VB_GFN(1, 5, M) VB_GFN(1, 6, M) VB_GFN(1, 7, M) VB_GFN(1, 8, M)
VB_GFN8(0)
VB_GFN4(2, 0)
VB_GFN(2, 5, 0)
VB_GFN(2, 6, 0)
VB_GFN8(1)
VB_GFN4(2, 1)
VB_GFN(2, 5, 1)
VB_GFN(2, 6, 1)
VB_GFN8(2)
VB_GFN4(2, 2)
VB_GFN(2, 5, 2)
VB_GFN(2, 6, 2)
#define VB_GFNS1(M)                                                                                \
    {                                                                                              \
        vb_gtile_1_1_##M, vb_gtile_1_2_##M, vb_gtile_1_3_##M, vb_gtile_1_4_##M, vb_gtile_1_5_##M,  \
            vb_gtile_1_6_##M, vb_gtile_1_7_##M, vb_gtile_1_8_##M                                   \
    }
#define VB_GFNS2(M)                                                                                \
    {                                                                                              \
        vb_gtile_2_1_##M, vb_gtile_2_2_##M, vb_gtile_2_3_##M, vb_gtile_2_4_##M, vb_gtile_2_5_##M,  \
            vb_gtile_2_6_##M                                                                       \
    }
/* [mode][R - 1][C - 1]: R = 1 up to VB_C columns, R = 2 up to VB_CG. */
static const vb_tile_fn vb_gtile_fns[3][VB_R][VB_C] = {
    {VB_GFNS1(0), VB_GFNS2(0)}, {VB_GFNS1(1), VB_GFNS2(1)}, {VB_GFNS1(2), VB_GFNS2(2)}};

/* Row r's count of set bits of plane p0 + p over words [s0, s1) of the
 * lines: one VPOPCNTD per word (dword i of a line is row i's 32 bits). */
BP_INLINE __m512i vb_plane_count(const uint32_t *const *lines, int p, size_t s0, size_t s1) {
    __m512i cnt = _mm512_setzero_si512();
    for (size_t w = s0; w < s1; w++)
        cnt = _mm512_add_epi32(cnt,
                               _mm512_popcnt_epi32(_mm512_load_si512(lines[p] + w * BP_ROW_GROUP)));
    return cnt;
}

/* The offset terms of the lengths n with offset columns (unsigned 8-bit),
 * from U'_n, the row sums of the n-plane codes (the tile AND its mask):
 * U'_n = sum_{p<n} 2^(7-p) C_p with C_p the row's count of set bits of
 * plane p0 + p, so one VPOPCNTD per plane line and word serves every length
 * at once (a VPDPBUSD against ones per tile vector and length ran before: 8
 * lengths cost half a 16-column batch's products).
 * Per row: b->eseg[n - 1], E = 2 * 128 U'_n - s odd 128 cnt over the
 * block's one segment. Grouped: b->ew[n - 1] = sum_seg m E_seg =
 * 256 sum_{p<n} 2^(7-p) W_p - s odd 128 * 32 sum_seg m words_seg, with
 * W_p = sum_seg m C_p,seg: the multipliers weight the 8 plane counts per
 * segment instead of E per length and segment. Bounds per K block: W_p <=
 * 255 * 512 and sum_{p<n} 2^(7-p) W_p <= 255 * 255 * 512 fit int32; the
 * terms of ew pass 2^31 and are formed in int64. */
static void vb_offset_terms(const vb_block *b, const uint32_t *const (*lines)[8], int R,
                            const bool *offset_len) {
    int len_top = 0; /* the longest length with offset columns */
    for (int n = 1; n <= b->len_max; n++)
        if (offset_len[n - 1])
            len_top = n;
    for (int r = 0; r < R; r++) {
        if (!b->mseg) {
            /* Per row: one segment, the block. */
            const int32_t words = (int32_t)(b->w1 - b->w0);
            __m512i u = _mm512_setzero_si512();
            for (int p = 0; p < len_top; p++) {
                const __m512i cnt = vb_plane_count(lines[r], p, b->w0, b->w1);
                u = _mm512_add_epi32(u, _mm512_slli_epi32(cnt, 7 - p));
                const int n = p + 1;
                if (!offset_len[n - 1])
                    continue;
                const int32_t odd_s = 256 - (1 << (8 - n)); /* s odd */
                const __m512i c = _mm512_set1_epi32(odd_s * 128 * 32 * words);
                b->eseg[n - 1][r] = _mm512_sub_epi32(_mm512_slli_epi32(u, 8), c);
            }
            continue;
        }
        __m512i wp[8], mw = _mm512_setzero_si512();
        for (int p = 0; p < len_top; p++)
            wp[p] = _mm512_setzero_si512();
        size_t si = 0;
        for (size_t s0 = b->w0; s0 < b->w1; s0 += b->segw, si++) {
            const size_t s1 = b->w1 - s0 < b->segw ? b->w1 : s0 + b->segw;
            const __m512i mv = b->mseg[r][si];
            mw =
                _mm512_add_epi32(mw, _mm512_mullo_epi32(mv, _mm512_set1_epi32((int32_t)(s1 - s0))));
            for (int p = 0; p < len_top; p++)
                wp[p] = _mm512_add_epi32(
                    wp[p], _mm512_mullo_epi32(mv, vb_plane_count(lines[r], p, s0, s1)));
        }
        const __m512i mw64[2] = {_mm512_cvtepi32_epi64(_mm512_castsi512_si256(mw)),
                                 _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(mw, 1))};
        __m512i u = _mm512_setzero_si512();
        for (int p = 0; p < len_top; p++) {
            u = _mm512_add_epi32(u, _mm512_slli_epi32(wp[p], 7 - p));
            const int n = p + 1;
            if (!offset_len[n - 1])
                continue;
            const __m512i c = _mm512_set1_epi64((256 - (1 << (8 - n))) * 128 * 32);
            const __m512i u64[2] = {_mm512_cvtepi32_epi64(_mm512_castsi512_si256(u)),
                                    _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(u, 1))};
            for (int h = 0; h < 2; h++)
                b->ew[n - 1][r][h] =
                    _mm512_sub_epi64(_mm512_slli_epi64(u64[h], 8), _mm512_mul_epi32(mw64[h], c));
        }
    }
}

/* The offset terms as vb_offset_terms forms them, for one length n only
 * (a batch at one plane count, the common case): U'_n per segment as a
 * VPDPBUSD of the codes (the tile AND the mask) against ones, 8 per word
 * and row group, then E weighted per segment in int64 (grouped). With a
 * single length this beats the 8 plane counts and their weighting (the
 * served wide stack at 8 planes, 4 and 16 rows: 5-10 % of the forward). */
static void vb_offset_terms_one(const vb_block *b, int R, int n) {
    const __m512i ones = _mm512_set1_epi8(1);
    const __m512i mask = _mm512_set1_epi32((int32_t)vb_mask_word(n));
    const int32_t odd_s = 256 - (1 << (8 - n));
    for (int r = 0; r < R; r++) {
        __m512i e64[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        size_t si = 0;
        for (size_t s0 = b->w0; s0 < b->w1; s0 += b->segw, si++) {
            const size_t s1 = b->w1 - s0 < b->segw ? b->w1 : s0 + b->segw;
            /* cnt = 32 (s1 - s0) positions. */
            const __m512i c = _mm512_set1_epi32(odd_s * 128 * 32 * (int32_t)(s1 - s0));
            __m512i u = _mm512_setzero_si512();
            for (size_t w = s0; w < s1; w++)
                for (int t = 0; t < 8; t++) {
                    __m512i code = _mm512_load_si512(&b->tile[r][w - b->w0][t]);
                    if (n < b->len_max)
                        code = _mm512_and_si512(code, mask);
                    u = _mm512_dpbusd_epi32(u, code, ones);
                }
            const __m512i e = _mm512_sub_epi32(_mm512_slli_epi32(u, 8), c);
            if (!b->mseg) { /* per row: one segment */
                b->eseg[n - 1][r] = e;
                continue;
            }
            /* m E_seg may pass 2^31: int64. */
            const __m512i mv = b->mseg[r][si];
            e64[0] = _mm512_add_epi64(
                e64[0], _mm512_mul_epi32(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(e)),
                                         _mm512_cvtepi32_epi64(_mm512_castsi512_si256(mv))));
            e64[1] = _mm512_add_epi64(
                e64[1], _mm512_mul_epi32(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(e, 1)),
                                         _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(mv, 1))));
        }
        if (b->mseg) {
            b->ew[n - 1][r][0] = e64[0];
            b->ew[n - 1][r][1] = e64[1];
        }
    }
}

/*
 * One unit: for each of nc columns the code of planes [p0, p0 + lens[c]),
 * the columns sorted by length, longest first. Each weight tile is unpacked
 * once, at the longest length L; a column of a shorter length n takes the
 * tile AND a mask keeping the top n bits of each byte. That is exactly the
 * tile a length-n unpack gives: the tile byte is u'_L = sum_{p<L} b_p 2^(7-p)
 * (plane p0 + p in bit 7 - p), so u'_L AND (0xFF << (8 - n)) = sum_{p<n} b_p
 * 2^(7-p) = 2^(8-n) u_n with u_n the n-plane code (u_n = floor(u_L /
 * 2^(L-n)), planes MSB first). Every sum below (S', U', the bounds, s =
 * 2^(8-n)) is then that of an n-plane unit, term for term.
 * Register tiles take the sorted columns 8 at a time (grouped, two row
 * groups: 6), so
 * columns of several lengths share one (VB_MASK_EACH: one VPANDD per
 * VPDPBUSD).
 * D at dout[c] + 16 (g - g0) for row groups [g0, g1): the tiles sum s D
 * over the K blocks and divide each column's s out at the last one.
 */
static void vb_unit(const bp_matrix *m, size_t g0, size_t g1, int p0, const int *lens,
                    const vb_column *const *cols, int64_t *const *dout, size_t nc) {
    const size_t kw = m->kwords;
    const bool grouped = bp__grouped(m);
    const int len_max = lens[0];
    bool offset_len[8] = {false}; /* lengths with offset columns */
    for (size_t i = 0; i < nc; i++)
        offset_len[lens[i] - 1] |= cols[i]->off != 0;
    int offset_lens = 0, offset_one = 0; /* how many; the last one */
    for (int n = 1; n <= 8; n++)
        if (offset_len[n - 1]) {
            offset_lens++;
            offset_one = n;
        }
    _Alignas(64) __m512i tile[VB_R][VB_KBLOCK_WORDS][8];
    _Alignas(64) __m512i eseg[8][VB_R];
    _Alignas(64) __m512i mseg[VB_R][VB_KBLOCK_WORDS];
    _Alignas(64) __m512i ew[8][VB_R][2];
    /* Grouped: a segment is one group's words inside the block (group_words
     * is a power of two, so groups never straddle a block). */
    vb_block b = {.m = m,
                  .segw = grouped && m->group_words < VB_KBLOCK_WORDS ? m->group_words
                                                                      : VB_KBLOCK_WORDS,
                  .len_max = len_max,
                  .tile = tile,
                  .eseg = eseg,
                  .mseg = grouped ? mseg : NULL,
                  .ew = grouped ? ew : NULL};
    for (size_t i = 0; i < VB_KBLOCK_WORDS; i += b.segw)
        b.seg_starts |= (__mmask16)(1u << i);
    int64_t *dr[VB_C];
    for (size_t g = g0; g < g1; g += VB_R) {
        const int R = g1 - g >= VB_R ? VB_R : (int)(g1 - g);
        const size_t cstep = grouped && R == VB_R ? VB_CG : VB_C;
        const uint32_t *lines[VB_R][8];
        for (int r = 0; r < R; r++)
            for (int p = 0; p < len_max; p++)
                lines[r][p] = bp__slab(m, p0 + p) + (g + (size_t)r) * kw * BP_ROW_GROUP;
        for (b.w0 = 0; b.w0 < kw; b.w0 = b.w1) {
            b.w1 = kw - b.w0 < VB_KBLOCK_WORDS ? kw : b.w0 + VB_KBLOCK_WORDS;
            for (int r = 0; r < R; r++)
                vb_unpack_block(lines[r], len_max, b.w0, b.w1, tile[r]);
            size_t si = 0;
            for (size_t s0 = b.w0; grouped && s0 < b.w1; s0 += b.segw, si++)
                for (int r = 0; r < R; r++) {
                    const uint8_t *mt = bp__mult_tile(m, g + (size_t)r, s0 / m->group_words);
                    mseg[r][si] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)mt));
                }
            if (offset_lens == 1)
                vb_offset_terms_one(&b, R, offset_one);
            else if (offset_lens > 1)
                vb_offset_terms(&b, (const uint32_t *const(*)[8])lines, R, offset_len);
            for (size_t c0 = 0; c0 < nc; c0 += cstep) {
                const int C = nc - c0 >= cstep ? (int)cstep : (int)(nc - c0);
                const int mode = lens[c0] != lens[c0 + (size_t)C - 1] ? VB_MASK_EACH
                                 : lens[c0] < len_max                 ? VB_MASK_ONE
                                                                      : VB_FULL;
                for (int c = 0; c < C; c++)
                    dr[c] = dout[c0 + (size_t)c] + (g - g0) * BP_ROW_GROUP;
                const vb_tile_fn fn =
                    grouped ? vb_gtile_fns[mode][R - 1][C - 1] : vb_tile_fns[mode][R - 1][C - 1];
                fn(&b, cols + c0, lens + c0, dr, b.w0 == 0);
            }
        }
    }
}

/* Columns per unit pass: bounded so the pointer lists stay on the stack. */
#define VB_UNIT_COLS 128

static void vb_compute_batch(const bp_kernel_batch_call *call) {
    const bp_matrix *m = call->m;
    const bool uniform = m->method == BP_QUANT_UNIFORM;
    const vb_column *cols[VB_UNIT_COLS];
    int64_t *dout[VB_UNIT_COLS];
    int lens[VB_UNIT_COLS];
    for (size_t c0 = 0; c0 < call->ncols; c0 += VB_UNIT_COLS) {
        const size_t c1 = call->ncols - c0 < VB_UNIT_COLS ? call->ncols : c0 + VB_UNIT_COLS;
        /* Units: uniform matrices one code of planes [0, min(n, 8)) per
         * column (slot 0), and [8, n) beyond 8 planes (slot 1); residual
         * matrices each plane p < n as a 1-plane code (slot p). A unit's
         * columns go longest code first, so runs of one length follow. */
        const int step = uniform ? 8 : 1;
        for (int p0 = 0; p0 < m->bits; p0 += step) {
            /* A counting sort by length (stable: columns of one length keep
             * their order), one pass to count and one to place. */
            size_t at[9] = {0};
            for (size_t c = c0; c < c1; c++) {
                const int n = call->cols[c]->planes - p0;
                at[n <= 0 ? 0 : n < step ? n : step]++;
            }
            size_t nc = 0;
            for (int len = step; len >= 1; len--) {
                const size_t count = at[len];
                at[len] = nc;
                nc += count;
            }
            for (size_t c = c0; c < c1; c++) {
                const int n = call->cols[c]->planes - p0;
                if (n <= 0)
                    continue;
                const int len = n < step ? n : step;
                const size_t i = at[len]++;
                cols[i] = call->cols[c]->kernel_data;
                lens[i] = len;
                dout[i] = call->d + c * call->ld_col + (size_t)(p0 / step) * call->ld_plane;
            }
            if (nc)
                vb_unit(m, call->g0, call->g1, p0, lens, cols, dout, nc);
        }
        /* Uniform beyond 8 planes: D = 2^(n-8) D_first + D_rest (exact). */
        for (size_t c = c0; uniform && c < c1; c++) {
            const int n = call->cols[c]->planes;
            if (n <= 8)
                continue;
            int64_t *d = call->d + c * call->ld_col;
            for (size_t r = 0; r < (call->g1 - call->g0) * BP_ROW_GROUP; r++)
                d[r] = d[r] * ((int64_t)1 << (n - 8)) + d[call->ld_plane + r];
        }
    }
}

/* The per-call form (up to BP_KERNEL_MAX_COLS columns) for the plain path. */
static void vb_compute(const bp_kernel_call *call) {
    const bp_kernel_batch_call b = bp__kernel_batch_call_of(call);
    vb_compute_batch(&b);
}

const bp_cpu_kernel_desc bp__kernel_avx512_vnni_batched = {
    .name = "avx512-vnni-batched",
    .runnable = vb_runnable,
    .supports = bp__code_column_supports,
    .column_bytes = bp__code_column_bytes,
    .prepare = vb_prepare,
    .prepare_x = vb_prepare_x,
    .compute = vb_compute,
    .compute_batch = vb_compute_batch,
};
