/*
 * AVX-512 GFNI + VNNI code kernel for uniform matrices (docs/numerics.md):
 * the n used planes of each weight become one unsigned n-bit code U (plane 0
 * the most significant bit), and VPDPBUSD accumulates sum_j U_j q_j, so
 *   D_u = 2 sum_j U_j q_j - (2^n - 1) sum_j q_j
 * with work per weight nearly independent of n.
 *
 * The bit transpose. One 64-byte line of a slab is 16 rows x 32 columns, row
 * r's dword in 128-bit lane r / 4. N = 1, 2, 4 or 8 planes (n rounded up,
 * missing planes zero): byte unpacks of the N lines (none for N = 1) put, in
 * every qword, the N plane bytes of column octets of one row (two rows for
 * N = 1) next to each other. VGF2P8AFFINEQB with the identity as the data
 * operand and the planes as the matrix transposes each qword's 8x8 bit block:
 * output byte j then holds bit j of every input byte, plane 0 in bit 7. For
 * N = 8 a byte is the code of one column; for N = 4 it holds two codes
 * (nibbles), for N = 2 four (bit pairs), for N = 1 eight bits of two rows.
 * One AND per field isolates them in place, so each field's codes carry a
 * power-of-two scale (16 for high nibbles) that is shifted out exactly once
 * per segment (below), not per line. Unpacks never cross 128-bit lanes, so
 * every lane keeps its own rows: the int32 accumulator lanes map to rows and
 * no reduction over K is needed until the end of a row group.
 *
 * VPDPBUSD takes the codes as its unsigned operand and q as the signed one:
 * columns with q in -128..127 (every signed mode up to 8 bits, unsigned up
 * to 7, binary) use q directly; unsigned 8-bit columns split q = 2a + b
 * (a = q >> 1, b = q & 1) into two accumulations. Missing planes multiply U
 * by 2^(N-n), divided out exactly at the end.
 *
 * Segments. The words of a row group run in one loop; at the end of a
 * segment the field accumulators merge (exact shifts, adds) into int32 row
 * vectors. Per row, a segment is as long as int32 allows (all of K in
 * practice) and the row vectors widen into int64. Grouped matrices end a
 * segment at every group boundary and keep it short enough that the merged
 * sums fit int16: VPACKSSDW packs two row vectors and VPDPWSSD adds
 * (sum x multiplier) into int32 lanes; N = 8 multiplies by VPMULLD. The
 * int32 sums widen into int64 before they could overflow. The q-sum term
 * -(2^n - 1) sum_j m_g(j) q_j does not depend on the planes and runs apart,
 * once per row group and column (vn_group_base). Nothing assumes a multiple
 * of 16 words: any even kwords (the layout pads K to 64 bits) runs.
 *
 * Columns at 1 to 3 planes (any matrix) skip the transpose: each plane runs
 * as a 1-plane code whose weight nibbles index byte tables of signed subset
 * sums with VPERMB, and VPDPBUSD adds each row's bytes (vn_tab_pass below;
 * uniform: D_u = sum_p 2^(n-1-p) D_p); the kernel therefore also needs
 * VBMI.
 *
 * K is limited to keep every int32 exact (supports()). More than 8 planes run
 * as chunks of 8 (D_u = 2^len D_u(first) + D_u(rest)); residual matrices run
 * each plane as a 1-plane code. act_bits > 8 is not handled here (the
 * dispatcher uses popcount).
 */
#include "avx512_vnni_dpbusd.h"
#include "cpu_kernel.h"

#include <immintrin.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* Prefetch each plane's stream into L2 this far ahead. */
#define VN_PREFETCH_BYTES 8192

/* Padded plane counts N = 1, 2, 4, 8 (index 0..3). Per word and part, the q
 * bytes for N: N <= 2: one 8-byte group per field (8 fields for N = 1, 4 for
 * N = 2), broadcast to every qword; N >= 4: two 16-byte chunks, broadcast to
 * every 128-bit lane. */
#define VN_NPAD 4
static const size_t vn_word_q_bytes[VN_NPAD] = {64, 32, 32, 32};

/* Per-column data after prepare. */
typedef struct vn_column {
    int64_t qsum;              /* sum of q over the row */
    int parts;                 /* 1, or 2 for unsigned 8-bit columns (q = 2a + b) */
    const int8_t *q8[VN_NPAD]; /* [word][part][vn_word_q_bytes[ni]] */
    const int16_t *qword;      /* [kwords] sum of q over each word (|sum| <= 32 * 255) */
    /* Columns at up to VN_TAB_MAX_PLANES planes: the byte tables of
     * vn_tab_pass, [word][4][64]; NULL for columns at more planes. */
    const int8_t *tab;
} vn_column;

static bool vn_runnable(void) {
    const bp_cpu_features *f = bp__cpu_features();
    return f->avx512bw && f->avx512_vnni && f->gfni && f->avx512_vbmi;
}

/* |q| <= 128 (signed up to 8 bits; unsigned 8-bit columns run as parts of at
 * most 127 and 1), and a code byte is at most 255, so one line adds at most
 * VN_LINE_BOUND to an int32 accumulator lane (4 products per lane). */
#define VN_LINE_BOUND ((int64_t)4 * 255 * 128)

static bool vn_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)mult_bound; /* grouped: weighted per segment in exact int32 (below) */
    if (act_bits < 1 || act_bits > 8)
        return false;
    return kpad / 32 <= (size_t)(INT32_MAX / VN_LINE_BOUND);
}

/* Bytes of 1-plane tables per word: four 64-entry byte tables. */
#define VN_TAB_WORD 256

/* Columns at up to this many planes run each plane as a 1-plane code on the
 * byte tables (vn_tab_pass; uniform: D_u = sum_p 2^(n-1-p) D_p) instead of
 * the bit transpose: about 11 vector operations per plane line and no group
 * flush, against the transpose path's 10 plus, grouped, a merge and
 * weighting every 1-2 lines at 2 planes, and N = 4 with a zero plane at 3
 * (docs/kernels.md, "The batch-1 code kernel on Zen 4"). From 4 planes the
 * transpose path has fewer operations per plane line. */
#define VN_TAB_MAX_PLANES 3

static size_t vn_column_bytes(int act_bits, size_t kpad) {
    size_t per_word = 0;
    for (int ni = 0; ni < VN_NPAD; ni++)
        per_word += vn_word_q_bytes[ni];
    /* Columns at 4+ planes: q arranged for every N and the word sums;
     * columns at 1-3 planes: the tables alone. */
    const size_t codes =
        kpad / 32 * (act_bits == 8 ? 2 : 1) * per_word + kpad / 32 * sizeof(int16_t);
    const size_t tables = kpad / 32 * VN_TAB_WORD;
    return bp__round_up(sizeof(vn_column), BP_ALIGN) + (codes > tables ? codes : tables);
}

static int vn_padded_planes(int n) {
    return n == 1 ? 1 : n == 2 ? 2 : n <= 4 ? 4 : 8;
}

/* Column (within the word) of q byte i of a word's q bytes for N (see the
 * top and vn_rowgroup). */
static size_t vn_q_col(int N, size_t i) {
    if (N == 1) /* field c = i / 8: row A (c < 4) or B octet c % 4 */
        return 8 * (i / 8 % 4) + i % 8;
    if (N == 2) /* field c = i / 8: octet c */
        return i;
    const size_t c = i / 16, b = i % 16;
    if (N == 4) /* high nibbles: 0..7, 16..23; low nibbles: 8..15, 24..31 */
        return (b < 8 ? 0 : 16) + 8 * c + b % 8;
    return 16 * c + b; /* N = 8: chunk 0: columns 0..15, chunk 1: 16..31 */
}

/* Block offsets 8b of table byte 16b + x (vn_build_tables). */
static const uint8_t vn_tab_block[64] __attribute__((aligned(64))) = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  8,  8,  8,  8,  8,  8,
    8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
    16, 16, 16, 16, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24};

/*
 * The 1-plane tables (vn_tab_pass). For word w, table t = 2 h + s (h: low /
 * high nibbles of the row bytes, s: low / high part of q), entry 16 b + x is
 *   sum_i (bit i of x ? +1 : -1) * part_s(q[32 w + 8 b + 4 h + i])
 * with part_0(q) = q & 15 (0..15) and part_1(q) = q >> 4 (-8..15), so
 * q = 16 part_1 + part_0 and every entry lies in -60..60.
 * Built in vectors: the parts of the word's 32 q as bytes (VPMOVDB), each
 * entry's four parts gathered by VPERMB, -sum + 2 x (the parts whose bit
 * is set) by masked byte adds.
 */
static void vn_build_tables(const int32_t *q, size_t kpad, int8_t *tab) {
    const __m512i block = _mm512_load_si512(vn_tab_block);
    const __m512i m15 = _mm512_set1_epi32(15);
    /* Bit 16b + x of has[i]: bit i of x is set. */
    const __mmask64 has[4] = {0xAAAAAAAAAAAAAAAAull, 0xCCCCCCCCCCCCCCCCull, 0xF0F0F0F0F0F0F0F0ull,
                              0xFF00FF00FF00FF00ull};
    for (size_t w = 0; w < kpad / 32; w++) {
        const __m512i q0 = _mm512_loadu_si512(q + 32 * w), q1 = _mm512_loadu_si512(q + 32 * w + 16);
        /* Bytes 0..31: part 0 of columns 0..31; bytes 32..63: part 1. */
        const __m256i p0 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm512_cvtepi32_epi8(_mm512_and_si512(q0, m15))),
            _mm512_cvtepi32_epi8(_mm512_and_si512(q1, m15)), 1);
        const __m256i p1 = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm512_cvtepi32_epi8(_mm512_srai_epi32(q0, 4))),
            _mm512_cvtepi32_epi8(_mm512_srai_epi32(q1, 4)), 1);
        const __m512i parts = _mm512_inserti64x4(_mm512_castsi256_si512(p0), p1, 1);
        for (int t = 0; t < 4; t++) {
            const int h = t / 2, s = t % 2;
            __m512i g[4], sum = _mm512_setzero_si512();
            for (int i = 0; i < 4; i++) {
                const __m512i idx =
                    _mm512_add_epi8(block, _mm512_set1_epi8((char)(32 * s + 4 * h + i)));
                g[i] = _mm512_permutexvar_epi8(idx, parts);
                sum = _mm512_add_epi8(sum, g[i]);
            }
            /* -sum p_i, then +2 p_i where bit i of the entry is set. */
            __m512i e = _mm512_sub_epi8(_mm512_setzero_si512(), sum);
            for (int i = 0; i < 4; i++)
                e = _mm512_mask_add_epi8(e, has[i], e, _mm512_add_epi8(g[i], g[i]));
            _mm512_store_si512(tab + (w * 4 + (size_t)t) * 64, e);
        }
    }
}

static void vn_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    vn_column *vc = scratch;
    int8_t *q8 = (int8_t *)((char *)scratch + bp__round_up(sizeof(vn_column), BP_ALIGN));
    col->kernel_data = vc;
    if (col->planes <= VN_TAB_MAX_PLANES) {
        /* Only the tables: vn_compute runs these columns on them alone. */
        int8_t *tab = (int8_t *)bp__round_up((uintptr_t)q8, BP_ALIGN);
        vn_build_tables(col->q, kpad, tab);
        vc->tab = tab;
        return;
    }
    vc->tab = NULL;
    vc->parts = (!col->is_signed && col->act_bits == 8) ? 2 : 1;
    int64_t qsum = 0;
    for (size_t j = 0; j < kpad; j++)
        qsum += col->q[j];
    vc->qsum = qsum;
    for (int ni = 0; ni < VN_NPAD; ni++) {
        const int N = 1 << ni;
        vc->q8[ni] = q8;
        for (size_t w = 0; w < kpad / 32; w++)
            for (int p = 0; p < vc->parts; p++)
                for (size_t i = 0; i < vn_word_q_bytes[ni]; i++) {
                    int32_t q = col->q[32 * w + vn_q_col(N, i)];
                    if (vc->parts == 2)
                        q = p == 0 ? q >> 1 : q & 1;
                    *q8++ = (int8_t)q;
                }
    }
    /* |q| <= 255 (act_bits <= 8), so a word's sum fits int16. */
    int16_t *qword = (int16_t *)q8;
    for (size_t w = 0; w < kpad / 32; w++) {
        int32_t sw = 0;
        for (int j = 0; j < 32; j++)
            sw += col->q[32 * w + (size_t)j];
        qword[w] = (int16_t)sw;
    }
    vc->qword = qword;
}

BP_INLINE __m512i vn_transpose(__m512i v) {
    const __m512i identity = _mm512_set1_epi64((long long)0x8040201008040201ull);
    return _mm512_gf2p8affine_epi64_epi8(identity, v, 0);
}

/* q for field c of a word: 8 bytes to every qword (N <= 2) or 16 bytes to
 * every lane (N >= 4). */
BP_INLINE __m512i vn_q8(const int8_t *qw, int c) {
    int64_t v;
    __builtin_memcpy(&v, qw + 8 * c, sizeof v);
    return _mm512_set1_epi64(v);
}
BP_INLINE __m512i vn_q16(const int8_t *qw, int c) {
    return _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)(qw + 16 * c)));
}

/*
 * After a segment of lines the eight accumulators of a part merge into row
 * vectors R (2 for N <= 2, 4 for N >= 4) without the field scales (exact
 * arithmetic shifts: every sum in a field accumulator is a multiple of its
 * scale). Row of R_r, lane l (0..3), dword i (0..3):
 *   N = 1: 4l + 2 (i / 2) + r       N = 2: 4l + 2r + i / 2
 *   N = 4, 8: 4l + r
 * Per line a merged dword gains at most vn_merged_bound(N).
 */
static int vn_rrow(int N, int r, int l, int i) {
    if (N == 1)
        return 4 * l + 2 * (i / 2) + r;
    if (N == 2)
        return 4 * l + 2 * r + i / 2;
    return 4 * l + r;
}
static int64_t vn_merged_bound(int N) {
    /* fields per row vector x 4 products x largest unscaled code x 128 */
    return N == 1   ? 4 * 4 * 1 * 128
           : N == 2 ? 4 * 4 * 3 * 128
           : N == 4 ? 2 * 4 * 15 * 128
                    : 2 * VN_LINE_BOUND;
}

/* Grouped matrices, N <= 4: a segment of at most vn_seg_lines(N) lines keeps
 * every merged dword within int16, so VPACKSSDW packs two row vectors R_2j,
 * R_2j+1 exactly and VPDPWSSD adds (word x multiplier) pairs into int32 lanes
 * (both words of a packed dword belong to one row). N = 8 multiplies the
 * merged int32 vectors by VPMULLD instead (exact up to 32 lines:
 * 32 x 2 x 4 x 255 x 128 x 255 < 2^31). The q-sum term is weighted apart
 * (vn_group_base). */
static size_t vn_seg_lines(int N) {
    return N == 8 ? (size_t)(INT32_MAX / (vn_merged_bound(8) * BP_MULT_MAX))
                  : (size_t)(INT16_MAX / vn_merged_bound(N));
}
/* Row of packed vector j, lane l, dword i (N <= 4). */
static int vn_prow(int N, int j, int l, int i) {
    return i < 2 ? vn_rrow(N, 2 * j, l, 2 * i) : vn_rrow(N, 2 * j + 1, l, 2 * (i - 2));
}

/* VPSHUFB controls that spread a broadcast 16-byte multiplier tile over the
 * rows of the weighted vectors (vn_prow, vn_rrow): words (both words of a
 * dword) for N <= 4, dwords for N = 8. */
#define VN_W(r)        r, 0x80, r, 0x80
#define VN_D(r)        r, 0x80, 0x80, 0x80, r, 0x80, 0x80, 0x80, r, 0x80, 0x80, 0x80, r, 0x80, 0x80, 0x80
#define VN_LANE1(b)    VN_W(b), VN_W(b + 2), VN_W(b + 1), VN_W(b + 3)
#define VN_LANE2(b)    VN_W(b), VN_W(b + 1), VN_W(b + 2), VN_W(b + 3)
#define VN_LANE4(b)    VN_W(b), VN_W(b), VN_W(b + 1), VN_W(b + 1)
#define VN_LANES(f, r) f(r), f(4 + r), f(8 + r), f(12 + r)
static const uint8_t vn_ctl_w1[64] __attribute__((aligned(64))) = {VN_LANES(VN_LANE1, 0)};
static const uint8_t vn_ctl_w2[64] __attribute__((aligned(64))) = {VN_LANES(VN_LANE2, 0)};
static const uint8_t vn_ctl_w4[2][64]
    __attribute__((aligned(64))) = {{VN_LANES(VN_LANE4, 0)}, {VN_LANES(VN_LANE4, 2)}};
static const uint8_t vn_ctl_d8[4][64] __attribute__((aligned(64))) = {
    {VN_LANES(VN_D, 0)}, {VN_LANES(VN_D, 1)}, {VN_LANES(VN_D, 2)}, {VN_LANES(VN_D, 3)}};

BP_INLINE __m512i vn_mult_ctl(int N, int v) {
    const uint8_t *c = N == 1   ? vn_ctl_w1
                       : N == 2 ? vn_ctl_w2
                       : N == 4 ? vn_ctl_w4[v]
                                : vn_ctl_d8[v];
    return _mm512_load_si512(c);
}

/* Bytes of q per word and part for N (vn_word_q_bytes, as a constant). */
#define VN_QBYTES(N) ((N) == 1 ? 64 : 32)

/* int64 totals += the two halves of an int32 vector. */
BP_INLINE void vn_widen(__m512i *t, __m512i v) {
    t[0] = _mm512_add_epi64(t[0], _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)));
    t[1] = _mm512_add_epi64(t[1], _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)));
}

/* One word (one 64-byte line per plane) into the field accumulators acc. */
BP_INLINE void vn_word(const uint32_t *const *lines, size_t w, const int8_t *qw, __m512i (*acc)[8],
                       const int n, const int N, const int P, const bool grouped) {
    const __m512i zero = _mm512_setzero_si512();
    __m512i L[8];
#pragma GCC unroll 8
    for (int p = 0; p < N; p++) {
        if (p < n) {
            const uint32_t *lp = lines[p] + w * BP_ROW_GROUP;
            _mm_prefetch((const char *)lp + VN_PREFETCH_BYTES, _MM_HINT_T1);
            L[p] = _mm512_load_si512(lp);
        } else {
            L[p] = zero;
        }
    }
    if (N == 1) {
        /* Byte j of qword k: bit 7 - c = column 8 (c % 4) + j of row
         * 4l + 2k (c < 4) or 4l + 2k + 1, scaled by 2^(7 - c). */
        const __m512i G = vn_transpose(L[0]);
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const __m512i f = _mm512_and_si512(G, _mm512_set1_epi8((char)(0x80 >> c)));
#pragma GCC unroll 2
            for (int p = 0; p < P; p++)
                bp__dpbusd_inplace(&acc[p][c], f, vn_q8(qw + (size_t)p * VN_QBYTES(1), c));
        }
    } else if (N == 2) {
        /* Qword k of V_v: row 4l + 2v + k; bits 7-2c, 6-2c of byte j:
         * the code of column 8c + j, scaled by 4^(3 - c). */
        const __m512i V[2] = {vn_transpose(_mm512_unpacklo_epi8(L[0], L[1])),
                              vn_transpose(_mm512_unpackhi_epi8(L[0], L[1]))};
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const __m512i f = _mm512_and_si512(V[v], _mm512_set1_epi8((char)(0xc0 >> (2 * c))));
#pragma GCC unroll 2
                for (int p = 0; p < P; p++)
                    bp__dpbusd_inplace(&acc[p][4 * v + c], f,
                                       vn_q8(qw + (size_t)p * VN_QBYTES(2), c));
            }
    } else if (N == 4) {
        /* Lane l of V_v: row 4l + v; high nibbles scaled by 16, or, grouped,
         * shifted down by a second VGF2P8AFFINEQB (a matrix that moves bits
         * 7..4 to 3..0, in place of the AND) so that both nibbles add into
         * one accumulator per row vector and a segment needs no merge. */
        const __m512i hi_mask = _mm512_set1_epi8((char)0xf0);
        const __m512i shr4 = _mm512_set1_epi64((long long)0x1020408000000000ull);
        const __m512i lo_mask = _mm512_set1_epi8(0x0f);
        __m512i a = _mm512_unpacklo_epi8(L[0], L[1]), b = _mm512_unpackhi_epi8(L[0], L[1]);
        __m512i c = _mm512_unpacklo_epi8(L[2], L[3]), d = _mm512_unpackhi_epi8(L[2], L[3]);
        __m512i V[4] = {
            vn_transpose(_mm512_unpacklo_epi16(a, c)), vn_transpose(_mm512_unpackhi_epi16(a, c)),
            vn_transpose(_mm512_unpacklo_epi16(b, d)), vn_transpose(_mm512_unpackhi_epi16(b, d))};
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            __m512i hi = grouped ? _mm512_gf2p8affine_epi64_epi8(V[v], shr4, 0)
                                 : _mm512_and_si512(V[v], hi_mask);
            __m512i lo = _mm512_and_si512(V[v], lo_mask);
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) {
                const int8_t *qp = qw + (size_t)p * VN_QBYTES(4);
                const int a = grouped ? 2 * v : 2 * v + 1;
                bp__dpbusd_inplace(&acc[p][2 * v], hi, vn_q16(qp, 0));
                bp__dpbusd_inplace(&acc[p][a], lo, vn_q16(qp, 1));
            }
        }
    } else {
        /* Accumulator 4 s8 + 2 s16 + s32, lane l: row 4l + 2 s8 + s16. */
        __m512i e[2][4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            e[0][i] = _mm512_unpacklo_epi8(L[2 * i], L[2 * i + 1]);
            e[1][i] = _mm512_unpackhi_epi8(L[2 * i], L[2 * i + 1]);
        }
#pragma GCC unroll 2
        for (int s8 = 0; s8 < 2; s8++) {
            __m512i w01[2] = {_mm512_unpacklo_epi16(e[s8][0], e[s8][1]),
                              _mm512_unpackhi_epi16(e[s8][0], e[s8][1])};
            __m512i w23[2] = {_mm512_unpacklo_epi16(e[s8][2], e[s8][3]),
                              _mm512_unpackhi_epi16(e[s8][2], e[s8][3])};
#pragma GCC unroll 2
            for (int s16 = 0; s16 < 2; s16++) {
                __m512i V[2] = {vn_transpose(_mm512_unpacklo_epi32(w01[s16], w23[s16])),
                                vn_transpose(_mm512_unpackhi_epi32(w01[s16], w23[s16]))};
#pragma GCC unroll 2
                for (int s32 = 0; s32 < 2; s32++)
#pragma GCC unroll 2
                    for (int p = 0; p < P; p++) {
                        int a = 4 * s8 + 2 * s16 + s32;
                        bp__dpbusd_inplace(&acc[p][a], V[s32],
                                           vn_q16(qw + (size_t)p * VN_QBYTES(8), s32));
                    }
            }
        }
    }
}

/* The field accumulators of a segment merged into row vectors R, unscaled. */
BP_INLINE void vn_merge(__m512i (*acc)[8], __m512i (*R)[4], const int N, const int P,
                        const bool grouped) {
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        if (N == 1) {
#pragma GCC unroll 2
            for (int r = 0; r < 2; r++) {
                R[p][r] = _mm512_srai_epi32(acc[p][4 * r], 7 - 4 * r);
#pragma GCC unroll 3
                for (int c = 4 * r + 1; c < 4 * r + 4; c++)
                    R[p][r] = _mm512_add_epi32(R[p][r], _mm512_srai_epi32(acc[p][c], 7 - c));
            }
        } else if (N == 2) {
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++) {
                R[p][v] = _mm512_add_epi32(_mm512_srai_epi32(acc[p][4 * v], 6),
                                           _mm512_srai_epi32(acc[p][4 * v + 1], 4));
                R[p][v] = _mm512_add_epi32(R[p][v], _mm512_srai_epi32(acc[p][4 * v + 2], 2));
                R[p][v] = _mm512_add_epi32(R[p][v], acc[p][4 * v + 3]);
            }
        } else {
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                R[p][r] = N == 4 && grouped
                              ? acc[p][2 * r]
                              : _mm512_add_epi32(N == 4 ? _mm512_srai_epi32(acc[p][2 * r], 4)
                                                        : acc[p][2 * r],
                                                 acc[p][2 * r + 1]);
        }
    }
}

/*
 * Row sums sum_j m(j) U'_j q_j of one row group for one column, n real
 * planes padded to N with zeros, P parts: out[part][16 rows]. lines[p] is
 * plane p's row group for p < n; mult is the row group's multiplier tiles
 * (grouped; gw the words per group, a power of two). The loop runs one word
 * (one 64-byte line per plane) at a time; segments end at the int32 bounds
 * (per row) or every seg words, a power of two that divides gw, so a
 * segment never straddles a group. n, N, P and grouped are compile-time
 * constants.
 */
BP_INLINE void vn_rowgroup(const uint32_t *const *lines, size_t kw, const int8_t *q8,
                           const uint8_t *mult, size_t gw, int64_t (*out)[BP_ROW_GROUP],
                           const int n, const int N, const int P, const bool grouped) {
    const __m512i zero = _mm512_setzero_si512();
    const int NR = N <= 2 ? 2 : 4;      /* row vectors R */
    const int NT = N == 8 ? 4 : NR / 2; /* weighted vectors (grouped) */
    const size_t qstride = (size_t)P * VN_QBYTES(N);
    __m512i acc[2][8], R[2][4], t32[2][4], t64[2][4][2];
    for (int r = 0; r < 4; r++)
        for (int p = 0; p < P; p++)
            t32[p][r] = t64[p][r][0] = t64[p][r][1] = zero;

    /* Lines per segment. Per row: what int32 holds for the raw and the
     * merged sums. Grouped: the largest power of two within the int16
     * (N <= 4) or int32 (N = 8) bound of the weighted step and within the
     * group, so it divides gw (a power of two) and a segment never straddles
     * a group. */
    const int64_t mb = vn_merged_bound(N);
    size_t seg;
    if (grouped) {
        const size_t lim = gw < vn_seg_lines(N) ? gw : vn_seg_lines(N);
        seg = (size_t)1 << (63 - __builtin_clzll(lim));
    } else {
        seg = (size_t)(INT32_MAX / (mb > VN_LINE_BOUND ? mb : VN_LINE_BOUND));
    }
    /* Grouped: segments between int32 -> int64 flushes of t32. */
    const int64_t seg_weighted = (N == 8 ? 1 : 2) * (int64_t)seg * mb * BP_MULT_MAX;
    const size_t widen_every = (size_t)(INT32_MAX / seg_weighted);
    const int gshift = __builtin_ctzll(gw);

#pragma GCC unroll 2
    for (int p = 0; p < P; p++)
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            acc[p][i] = zero;
    /* One loop over the words with the segment flush as a branch: the
     * accumulators stay in the same registers through the whole row group. */
    size_t s0 = 0, send = kw < seg ? kw : seg, nseg = 0;
    for (size_t w = 0; w < kw; w++) {
        vn_word(lines, w, q8 + qstride * w, acc, n, N, P, grouped);
        if (w + 1 != send)
            continue;
        vn_merge(acc, R, N, P, grouped);
        if (!grouped) {
#pragma GCC unroll 2
            for (int p = 0; p < P; p++)
#pragma GCC unroll 4
                for (int r = 0; r < NR; r++)
                    vn_widen(t64[p][r], R[p][r]);
        } else {
            /* Weight each row by its multiplier for the segment's group. */
            const __m512i mt = _mm512_broadcast_i32x4(
                _mm_loadu_si128((const __m128i *)(mult + (s0 >> gshift) * BP_ROW_GROUP)));
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const __m512i mv = _mm512_shuffle_epi8(mt, vn_mult_ctl(N, t));
#pragma GCC unroll 2
                for (int p = 0; p < P; p++)
                    t32[p][t] =
                        N == 8
                            ? _mm512_add_epi32(t32[p][t], _mm512_mullo_epi32(R[p][t], mv))
                            : _mm512_dpwssd_epi32(
                                  t32[p][t], _mm512_packs_epi32(R[p][2 * t], R[p][2 * t + 1]), mv);
            }
            if (++nseg == widen_every || send == kw) {
#pragma GCC unroll 2
                for (int p = 0; p < P; p++)
#pragma GCC unroll 4
                    for (int t = 0; t < NT; t++) {
                        vn_widen(t64[p][t], t32[p][t]);
                        t32[p][t] = zero;
                    }
                nseg = 0;
            }
        }
        s0 = send;
        send = kw - send < seg ? kw : send + seg;
#pragma GCC unroll 2
        for (int p = 0; p < P; p++)
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                acc[p][i] = zero;
    }

    /* Rows of the int64 totals (vn_rrow per row; vn_prow / vn_rrow grouped). */
#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        for (int r = 0; r < BP_ROW_GROUP; r++)
            out[p][r] = 0;
        const int nv = grouped ? NT : NR;
        for (int t = 0; t < nv; t++) {
            int64_t v[16];
            _mm512_storeu_si512(v, t64[p][t][0]);
            _mm512_storeu_si512(v + 8, t64[p][t][1]);
            for (int k = 0; k < 16; k++) {
                const int l = k / 4, i = k % 4;
                const int row = grouped && N != 8 ? vn_prow(N, t, l, i) : vn_rrow(N, t, l, i);
                out[p][row] += v[k];
            }
        }
    }
}

typedef void (*vn_fn)(const uint32_t *const *lines, size_t kw, const int8_t *q8,
                      const uint8_t *mult, size_t gw, int64_t (*out)[BP_ROW_GROUP]);
#define VN_FN(n, N, P, G, name)                                                                    \
    static void name(const uint32_t *const *lines, size_t kw, const int8_t *q8,                    \
                     const uint8_t *mult, size_t gw, int64_t(*out)[BP_ROW_GROUP]) {                \
        vn_rowgroup(lines, kw, q8, mult, gw, out, n, N, P, G);                                     \
    }
#define VN_FN4(n, N)                                                                               \
    VN_FN(n, N, 1, false, vn_rowgroup_##n##_1)                                                     \
    VN_FN(n, N, 2, false, vn_rowgroup_##n##_2)                                                     \
    VN_FN(n, N, 1, true, vn_rowgroup_##n##_1g)                                                     \
    VN_FN(n, N, 2, true, vn_rowgroup_##n##_2g)
VN_FN4(1, 1)
VN_FN4(2, 2)
VN_FN4(3, 4)
VN_FN4(4, 4)
VN_FN4(5, 8)
VN_FN4(6, 8)
VN_FN4(7, 8)
VN_FN4(8, 8)

/* [grouped][n - 1][P - 1] */
#define VN_FNS(s)                                                                                  \
    {                                                                                              \
        {vn_rowgroup_1_1##s, vn_rowgroup_1_2##s}, {vn_rowgroup_2_1##s, vn_rowgroup_2_2##s},        \
            {vn_rowgroup_3_1##s, vn_rowgroup_3_2##s}, {vn_rowgroup_4_1##s, vn_rowgroup_4_2##s},    \
            {vn_rowgroup_5_1##s, vn_rowgroup_5_2##s}, {vn_rowgroup_6_1##s, vn_rowgroup_6_2##s},    \
            {vn_rowgroup_7_1##s, vn_rowgroup_7_2##s}, {                                            \
            vn_rowgroup_8_1##s, vn_rowgroup_8_2##s                                                 \
        }                                                                                          \
    }
static const vn_fn vn_fns[2][8][2] = {VN_FNS(), VN_FNS(g)};

/*
 * Grouped matrices: base[r] = sum_w m[r][g(w)] Q_w over the 16 rows of one
 * row group (Q_w the column's sum of q over word w), the q-sum term of D_u.
 * It does not depend on the planes, so it runs once per row group and
 * column, apart from the plane loop: VPDPWSSD adds two words per dword,
 * (m[r][g(w)], m[r][g(w+1)]) . (Q_w, Q_w+1), the multiplier pairs spread to
 * dword r by one zero-masked VPERMB (from tiles g, g+1 for one-word groups,
 * else twice tile g; kw is even and groups of 2+ words are even too), the Q
 * pair a broadcast dword. A pair adds at most 2 * 255 * 8160 < 2^22 to a
 * lane, so the int32 sums widen into int64 every VN_BASE_WIDEN pairs.
 */
#define VN_BASE_WIDEN 256
#define VN_PAIR(a, b) a, 0, b, 0
#define VN_PAIRS(o)                                                                                \
    VN_PAIR(0, o), VN_PAIR(1, 1 + o), VN_PAIR(2, 2 + o), VN_PAIR(3, 3 + o), VN_PAIR(4, 4 + o),     \
        VN_PAIR(5, 5 + o), VN_PAIR(6, 6 + o), VN_PAIR(7, 7 + o), VN_PAIR(8, 8 + o),                \
        VN_PAIR(9, 9 + o), VN_PAIR(10, 10 + o), VN_PAIR(11, 11 + o), VN_PAIR(12, 12 + o),          \
        VN_PAIR(13, 13 + o), VN_PAIR(14, 14 + o), VN_PAIR(15, 15 + o)
static const uint8_t vn_base_idx[2][64]
    __attribute__((aligned(64))) = {{VN_PAIRS(16)}, {VN_PAIRS(0)}};

static void vn_group_base(const uint8_t *mult, size_t kw, size_t gw, const int16_t *qword,
                          int64_t *base) {
    const __mmask64 even = 0x5555555555555555ull;
    const __m512i idx = _mm512_load_si512(vn_base_idx[gw == 1 ? 0 : 1]);
    const int gshift = __builtin_ctzll(gw); /* gw is a power of two */
    __m512i t64[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    for (size_t w0 = 0; w0 < kw; w0 += 2 * VN_BASE_WIDEN) {
        const size_t w1 = kw - w0 < 2 * VN_BASE_WIDEN ? kw : w0 + 2 * VN_BASE_WIDEN;
        __m512i b32 = _mm512_setzero_si512();
        for (size_t w = w0; w < w1; w += 2) {
            /* Tiles g, g + 1 (one-word groups: both in the row group) or g. */
            const uint8_t *mt = mult + (w >> gshift) * BP_ROW_GROUP;
            const __m512i tiles =
                gw == 1 ? _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)mt))
                        : _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)mt));
            int32_t qpair;
            __builtin_memcpy(&qpair, qword + w, sizeof qpair);
            b32 = _mm512_dpwssd_epi32(b32, _mm512_maskz_permutexvar_epi8(even, idx, tiles),
                                      _mm512_set1_epi32(qpair));
        }
        vn_widen(t64, b32);
    }
    _mm512_storeu_si512(base, t64[0]);
    _mm512_storeu_si512(base + 8, t64[1]);
}

/* D_u of planes [p0, p0 + len) (len 1..8) over one row group: d[16]; base
 * is sum_j m_g(j) q_j per row (vn_group_base, or qsum per row). */
static void vn_code_product(const bp_matrix *m, size_t g, const vn_column *vc, int p0, int len,
                            const int64_t *base, int64_t *d) {
    const size_t kw = m->kwords;
    const int N = vn_padded_planes(len), ni = N == 1 ? 0 : N == 2 ? 1 : N == 4 ? 2 : 3;
    const uint32_t *lines[8] = {NULL};
    for (int p = 0; p < len; p++)
        lines[p] = bp__slab(m, p0 + p) + g * kw * BP_ROW_GROUP;
    int64_t s[2][BP_ROW_GROUP];
    const uint8_t *mult = bp__grouped(m) ? bp__mult_tile(m, g, 0) : NULL;
    vn_fns[mult != NULL][len - 1][vc->parts - 1](lines, kw, vc->q8[ni], mult, m->group_words, s);
    const int64_t odd = ((int64_t)1 << len) - 1;
    for (int r = 0; r < BP_ROW_GROUP; r++) {
        int64_t uq = vc->parts == 2 ? 2 * s[0][r] + s[1][r] : s[0][r];
        /* U' = U * 2^(N-len): exact division by the padding. */
        uq /= (int64_t)1 << (N - len);
        d[r] = 2 * uq - odd * base[r];
    }
}

/*
 * The 1-plane code by byte tables: D = sum_j (2 u_j - 1) q_j, u the plane
 * bit. Byte b of a row dword holds columns 8b..8b+7; its low and high
 * nibbles index a 64-byte table whose 16-entry block b belongs to that
 * nibble's 4 columns (vn_build_tables), so one VPERMB serves all 64 bytes of
 * a line: index = (nibble) | (b << 4), one VPTERNLOGD. q = 16 part_1 +
 * part_0 keeps every entry in int8; the two nibbles' lookups add in bytes
 * (|sum| <= 120) and VPDPBUSD adds the four bytes of each dword times an
 * unsigned byte, so the int32 accumulator lane r is row r of the line: no
 * transpose, no field scales, no row merging. Per line and row group: 1
 * shift, 2 VPTERNLOGD, 4 VPERMB (tables loaded once per word for G row
 * groups), 2 VPADDB, 2 VPDPBUSD.
 *
 * The unsigned byte is where the group multipliers go. Per row it is 1 for
 * part 0 and 16 for part 1, one accumulator each. Grouped, it is the row's
 * multiplier m (1..255) for both parts: VPERMB spreads the group's 16-byte
 * tile so that the four bytes of dword r hold m[r], once per group and row
 * group, and the two accumulators add m x (part sums) straight away; the
 * row's D is acc0 + 16 acc1, formed in int64 at the end. Nothing is
 * flushed per group.
 *
 * Bounds. Per row, one line adds at most 32 * 255 = 8160 to a row
 * (unsigned 8-bit q) over both accumulators. Grouped, one line adds at most
 * 4 * 120 * 255 = 122400 < VN_LINE_BOUND to each accumulator, so either way
 * the int32 sums hold all of K (vn_supports).
 */
#define VN_TAB_MAX_G 4

typedef struct vn_tab_args {
    const uint32_t *lines; /* the pass's first row group; row group g at + g * kw * 16 */
    size_t kw;
    const __m512i *tab;  /* [word][4] */
    const uint8_t *mult; /* the first row group's tiles (NULL per row) */
    size_t mult_stride;  /* bytes between row groups' tiles */
    size_t gw;           /* words per group (kw per row) */
    size_t prefetch;     /* in uint32 */
    int64_t *d;          /* G * 16 outputs */
} vn_tab_args;

/* VPERMB indices: byte i of the result is byte i / 4 of the tile. */
static const uint8_t vn_tab_spread[64] __attribute__((aligned(64))) = {
    0,  0,  0,  0,  1,  1,  1,  1,  2,  2,  2,  2,  3,  3,  3,  3,  4,  4,  4,  4,  5,  5,
    5,  5,  6,  6,  6,  6,  7,  7,  7,  7,  8,  8,  8,  8,  9,  9,  9,  9,  10, 10, 10, 10,
    11, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15};

/* int64 of the int32 lanes of v, stored to d[0..15] (x 2^shift). */
static void vn_tab_store(int64_t *d, __m512i v, int shift) {
    const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
    const __m512i hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
    _mm512_storeu_si512(d, _mm512_slli_epi64(lo, (unsigned)shift));
    _mm512_storeu_si512(d + 8, _mm512_slli_epi64(hi, (unsigned)shift));
}

BP_INLINE void vn_tab_pass(const vn_tab_args *a, const int G, const bool grouped) {
    const __m512i nib = _mm512_set1_epi8(0x0f);
    const __m512i sel = _mm512_set1_epi32(0x30201000);
    const __m512i ones = _mm512_set1_epi8(1), sixteen = _mm512_set1_epi8(16);
    const __m512i zero = _mm512_setzero_si512();
    const size_t kw = a->kw, gw = a->gw;
    __m512i acc[VN_TAB_MAX_G][2], mv[VN_TAB_MAX_G];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++)
        acc[g][0] = acc[g][1] = mv[g] = zero;
    /* One loop over the words; grouped, the multipliers change at group
     * boundaries (gend), a predictable branch. */
    size_t gend = 0;
    const uint8_t *mt = a->mult;
    for (size_t w = 0; w < kw; w++) {
        if (grouped && w == gend) {
            gend += gw;
            const __m512i spread = _mm512_load_si512(vn_tab_spread);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++) {
                const uint8_t *tile = mt + (size_t)g * a->mult_stride;
                mv[g] = _mm512_permutexvar_epi8(
                    spread, _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)tile)));
            }
            /* The next pass's tiles, one line at a time. */
            if (((uintptr_t)mt & 63) == 0)
#pragma GCC unroll 4
                for (int g = 0; g < G; g++)
                    _mm_prefetch((const char *)(mt + (size_t)(G + g) * a->mult_stride),
                                 _MM_HINT_T1);
            mt += BP_ROW_GROUP;
        }
        const __m512i *t = a->tab + 4 * w;
        const __m512i t0 = _mm512_load_si512(t), t1 = _mm512_load_si512(t + 1);
        const __m512i t2 = _mm512_load_si512(t + 2), t3 = _mm512_load_si512(t + 3);
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            const uint32_t *lp = a->lines + ((size_t)g * kw + w) * BP_ROW_GROUP;
            _mm_prefetch((const char *)(lp + a->prefetch), _MM_HINT_T1);
            const __m512i L = _mm512_load_si512(lp);
            /* 0xEA: (a & b) | c */
            const __m512i ia = _mm512_ternarylogic_epi32(L, nib, sel, 0xEA);
            const __m512i ib = _mm512_ternarylogic_epi32(_mm512_srli_epi16(L, 4), nib, sel, 0xEA);
            const __m512i lo =
                _mm512_add_epi8(_mm512_permutexvar_epi8(ia, t0), _mm512_permutexvar_epi8(ib, t2));
            const __m512i hi =
                _mm512_add_epi8(_mm512_permutexvar_epi8(ia, t1), _mm512_permutexvar_epi8(ib, t3));
            bp__dpbusd_inplace(&acc[g][0], grouped ? mv[g] : ones, lo);
            bp__dpbusd_inplace(&acc[g][1], grouped ? mv[g] : sixteen, hi);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        int64_t *d = a->d + 16 * g;
        if (!grouped) {
            vn_tab_store(d, _mm512_add_epi32(acc[g][0], acc[g][1]), 0);
            continue;
        }
        int64_t hi[16];
        vn_tab_store(d, acc[g][0], 0);
        vn_tab_store(hi, acc[g][1], 4);
        for (int r = 0; r < 16; r++)
            d[r] += hi[r];
    }
}

static void vn_tab_1(const vn_tab_args *a) {
    vn_tab_pass(a, 1, false);
}
static void vn_tab_4(const vn_tab_args *a) {
    vn_tab_pass(a, VN_TAB_MAX_G, false);
}
static void vn_tab_1g(const vn_tab_args *a) {
    vn_tab_pass(a, 1, true);
}
static void vn_tab_4g(const vn_tab_args *a) {
    vn_tab_pass(a, VN_TAB_MAX_G, true);
}

/* Row groups [g0, g1) of one 1-plane code (plane p) for one column with
 * tables: d[16 (g - g0) + r]. */
static void vn_tab_product(const bp_matrix *m, int p, size_t g0, size_t g1, const vn_column *vc,
                           int64_t *d) {
    const size_t kw = m->kwords;
    const size_t pass_words = VN_TAB_MAX_G * kw * BP_ROW_GROUP;
    vn_tab_args a = {
        .kw = kw,
        .tab = (const __m512i *)vc->tab,
        .mult_stride = m->ngroups * BP_ROW_GROUP,
        .gw = m->group_words,
        /* The same line of the next pass when that is near, else 8 KB. */
        .prefetch = pass_words * 4 <= 65536 ? pass_words : VN_PREFETCH_BYTES / 4,
    };
    for (size_t g = g0; g < g1;) {
        const bool many = g1 - g >= VN_TAB_MAX_G;
        a.lines = bp__slab(m, p) + g * kw * BP_ROW_GROUP;
        a.mult = bp__grouped(m) ? bp__mult_tile(m, g, 0) : NULL;
        a.d = d + (g - g0) * BP_ROW_GROUP;
        if (a.mult)
            (many ? vn_tab_4g : vn_tab_1g)(&a);
        else
            (many ? vn_tab_4 : vn_tab_1)(&a);
        g += many ? VN_TAB_MAX_G : 1;
    }
}

/* Row groups per chunk of the n-plane uniform code on tables (n >= 2):
 * plane 0's D_0 into d, each further plane's D_p into a stack buffer, then
 * d = 2 d + D_p, so d = sum_p 2^(n-1-p) D_p = D_u exactly (D_u = sum_j
 * m_j (2 U_j - (2^n - 1)) q_j with U = sum_p 2^(n-1-p) u_p). A chunk
 * streams each slab for 64 row groups (512 KiB per plane at K = 4096). */
#define VN_TAB_CHUNK 64

static void vn_tab_uniform(const bp_matrix *m, int n, size_t g0, size_t g1, const vn_column *vc,
                           int64_t *d) {
    int64_t dp[VN_TAB_CHUNK * BP_ROW_GROUP];
    for (size_t g = g0; g < g1; g += VN_TAB_CHUNK) {
        const size_t ge = g1 - g < VN_TAB_CHUNK ? g1 : g + VN_TAB_CHUNK;
        int64_t *dc = d + (g - g0) * BP_ROW_GROUP;
        vn_tab_product(m, 0, g, ge, vc, dc);
        for (int p = 1; p < n; p++) {
            vn_tab_product(m, p, g, ge, vc, dp);
            for (size_t i = 0; i < (ge - g) * BP_ROW_GROUP; i++)
                dc[i] = 2 * dc[i] + dp[i];
        }
    }
}

/* Columns with tables (at most VN_TAB_MAX_PLANES planes), whole row ranges:
 * uniform at 1 plane and residual planes are 1-plane codes each. */
static void vn_tab_column(const bp_kernel_call *call, const bp_act_column *col,
                          const vn_column *vc, int64_t *d) {
    const bp_matrix *m = call->m;
    if (m->method == BP_QUANT_UNIFORM && col->planes >= 2) {
        vn_tab_uniform(m, col->planes, call->g0, call->g1, vc, d);
        return;
    }
    const int nd = m->method == BP_QUANT_UNIFORM ? 1 : col->planes;
    for (int p = 0; p < nd; p++)
        vn_tab_product(m, p, call->g0, call->g1, vc, d + (size_t)p * call->ld_plane);
}

/*
 * Uniform matrices: D_u of the n planes, in chunks of at most 8 planes
 * (u_n = 2^len u_first + u_rest, so D = D * 2^len + D_chunk, exact).
 * Residual matrices: D_p of each plane as a 1-plane code.
 */
static void vn_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    const bool uniform = m->method == BP_QUANT_UNIFORM;
    /* Columns with tables: whole row ranges per column. */
    bool tables_only = true;
    for (size_t c = 0; c < call->ncols; c++) {
        const vn_column *vc = call->cols[c]->kernel_data;
        if (vc->tab) {
            vn_tab_column(call, call->cols[c], vc, call->d + c * call->ld_col);
        } else {
            tables_only = false;
        }
    }
    if (tables_only)
        return;
    /* Row groups outside, columns inside: a row group's lines (n x kwords x
     * 64 bytes) are read from memory once and from cache by the other
     * columns of the call. */
    for (size_t g = call->g0; g < call->g1; g++) {
        for (size_t c = 0; c < call->ncols; c++) {
            const bp_act_column *col = call->cols[c];
            const vn_column *vc = col->kernel_data;
            const int n = col->planes;
            if (vc->tab)
                continue;
            int64_t *d = call->d + c * call->ld_col + (g - call->g0) * BP_ROW_GROUP;
            int64_t base[BP_ROW_GROUP];
            if (bp__grouped(m)) {
                vn_group_base(bp__mult_tile(m, g, 0), m->kwords, m->group_words, vc->qword, base);
            } else {
                for (int r = 0; r < BP_ROW_GROUP; r++)
                    base[r] = vc->qsum;
            }
            if (!uniform) {
                for (int p = 0; p < n; p++)
                    vn_code_product(m, g, vc, p, 1, base, d + (size_t)p * call->ld_plane);
                continue;
            }
            int64_t part[BP_ROW_GROUP];
            for (int p0 = 0; p0 < n; p0 += 8) {
                int len = n - p0 < 8 ? n - p0 : 8;
                vn_code_product(m, g, vc, p0, len, base, part);
                for (int r = 0; r < BP_ROW_GROUP; r++)
                    d[r] = p0 == 0 ? part[r] : d[r] * ((int64_t)1 << len) + part[r];
            }
        }
    }
}

const bp_cpu_kernel_desc bp__kernel_avx512_vnni = {
    .name = "avx512-vnni",
    .runnable = vn_runnable,
    .supports = vn_supports,
    .column_bytes = vn_column_bytes,
    .prepare = vn_prepare,
    .compute = vn_compute,
};
