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
 * (sum x multiplier) into int32 lanes, and the segment's q sum times the
 * multiplier (the -(2^n - 1) sum_j m_g(j) q_j term) in the same step; N = 8
 * multiplies by VPMULLD. The int32 sums widen into int64 before they could
 * overflow. Nothing assumes a multiple of 16 words: any kwords >= 1 runs.
 *
 * K is limited to keep every int32 exact (supports()). More than 8 planes run
 * as chunks of 8 (D_u = 2^len D_u(first) + D_u(rest)); residual matrices run
 * each plane as a 1-plane code. act_bits > 8 is not handled here (the
 * dispatcher uses popcount).
 */
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
    const int32_t *qpre;       /* [kwords + 1] sum of q over words [0, w) */
} vn_column;

static bool vn_runnable(void) {
    const bp_cpu_features *f = bp__cpu_features();
    return f->avx512bw && f->avx512_vnni && f->gfni;
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

static size_t vn_column_bytes(int act_bits, size_t kpad) {
    size_t per_word = 0;
    for (int ni = 0; ni < VN_NPAD; ni++)
        per_word += vn_word_q_bytes[ni];
    return bp__round_up(sizeof(vn_column), BP_ALIGN) +
           kpad / 32 * (act_bits == 8 ? 2 : 1) * per_word + (kpad / 32 + 1) * sizeof(int32_t);
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

static void vn_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    vn_column *vc = scratch;
    int8_t *q8 = (int8_t *)((char *)scratch + bp__round_up(sizeof(vn_column), BP_ALIGN));
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
    /* |prefix| <= K * 255 fits int32 (vn_supports bounds K). */
    int32_t *qpre = (int32_t *)q8;
    qpre[0] = 0;
    for (size_t w = 0; w < kpad / 32; w++) {
        int32_t sw = 0;
        for (int j = 0; j < 32; j++)
            sw += col->q[32 * w + (size_t)j];
        qpre[w + 1] = qpre[w] + sw;
    }
    vc->qpre = qpre;
    col->kernel_data = vc;
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

/* Grouped matrices also weight the segment's q sum (|q| <= 255 as 8-bit
 * unsigned) by each row's multiplier with VPDPWSSD: at most this many lines
 * keep it within int16. */
#define VN_SEG_QSUM ((size_t)(INT16_MAX / (32 * 255)))

/* Grouped matrices, N <= 4: a segment of at most vn_seg_lines(N) lines keeps
 * every merged dword within int16, so VPACKSSDW packs two row vectors R_2j,
 * R_2j+1 exactly and VPDPWSSD adds (word x multiplier) pairs into int32 lanes
 * (both words of a packed dword belong to one row). N = 8 multiplies the
 * merged int32 vectors by VPMULLD instead (exact up to 32 lines:
 * 32 x 2 x 4 x 255 x 128 x 255 < 2^31). Either way at most VN_SEG_QSUM. */
static size_t vn_seg_lines(int N) {
    const size_t weighted = N == 8 ? (size_t)(INT32_MAX / (vn_merged_bound(8) * BP_MULT_MAX))
                                   : (size_t)(INT16_MAX / vn_merged_bound(N));
    return weighted < VN_SEG_QSUM ? weighted : VN_SEG_QSUM;
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

/*
 * Row sums sum_j m(j) U'_j q_j of one row group for one column, n real
 * planes padded to N with zeros, P parts: out[part][16 rows]. lines[p] is
 * plane p's row group for p < n; mult is the row group's multiplier tiles
 * (NULL per row), gw the words per group. Any kw >= 1: the loop runs one
 * word (one 64-byte line per plane) at a time, and segments end at group
 * boundaries and at the int32 bounds, never at fixed multiples of lines.
 * n, N and P are compile-time constants.
 */
BP_INLINE void vn_rowgroup(const uint32_t *const *lines, size_t kw, const int8_t *q8,
                           const int32_t *qpre, const uint8_t *mult, size_t gw,
                           int64_t (*out)[BP_ROW_GROUP], int64_t *base, const int n, const int N,
                           const int P) {
    const __m512i zero = _mm512_setzero_si512();
    const int NR = N <= 2 ? 2 : 4;      /* row vectors R */
    const int NT = N == 8 ? 4 : NR / 2; /* weighted vectors (grouped) */
    const size_t qstride = (size_t)P * VN_QBYTES(N);
    __m512i acc[2][8], R[2][4], t32[2][4], t64[2][4][2];
    /* Grouped: sum_j m(j) q_j per row, as int32 and int64 (rows as t32). */
    __m512i b32[4], b64[4][2];
    for (int r = 0; r < 4; r++) {
        for (int p = 0; p < P; p++)
            t32[p][r] = t64[p][r][0] = t64[p][r][1] = zero;
        b32[r] = b64[r][0] = b64[r][1] = zero;
    }

    /* Lines per segment: per row, what int32 holds for the raw and the
     * merged sums; grouped, the int16 (N <= 4) or int32 (N = 8) bound of the
     * weighted step, and never past a group. */
    const int64_t mb = vn_merged_bound(N);
    const size_t seg_max = mult ? (gw < vn_seg_lines(N) ? gw : vn_seg_lines(N))
                                : (size_t)(INT32_MAX / (mb > VN_LINE_BOUND ? mb : VN_LINE_BOUND));
    /* Grouped: segments between int32 -> int64 flushes of t32. */
    const int64_t seg_weighted = (N == 8 ? 1 : 2) * (int64_t)seg_max * mb * BP_MULT_MAX;
    const size_t widen_t32 = (size_t)(INT32_MAX / seg_weighted);
    const size_t widen_b32 = (size_t)(INT32_MAX / (INT16_MAX * BP_MULT_MAX));
    const size_t widen_every = widen_t32 < widen_b32 ? widen_t32 : widen_b32;

    size_t gi = 0, gend = mult && gw < kw ? gw : kw, nseg = 0, sstart = 0;
    size_t send = gend < seg_max ? gend : seg_max;
#pragma GCC unroll 2
    for (int p = 0; p < P; p++)
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++)
            acc[p][i] = zero;
    /* One loop over the words with the segment flush as a branch: the
     * accumulators stay in the same registers through the whole row group. */
    for (size_t w = 0; w < kw; w++) {
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
        const int8_t *qw = q8 + qstride * w;
        if (N == 1) {
            /* Byte j of qword k: bit 7 - c = column 8 (c % 4) + j of row
             * 4l + 2k (c < 4) or 4l + 2k + 1, scaled by 2^(7 - c). */
            const __m512i G = vn_transpose(L[0]);
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) {
                const __m512i f = _mm512_and_si512(G, _mm512_set1_epi8((char)(0x80 >> c)));
#pragma GCC unroll 2
                for (int p = 0; p < P; p++)
                    acc[p][c] =
                        _mm512_dpbusd_epi32(acc[p][c], f, vn_q8(qw + (size_t)p * VN_QBYTES(1), c));
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
                    const __m512i f =
                        _mm512_and_si512(V[v], _mm512_set1_epi8((char)(0xc0 >> (2 * c))));
#pragma GCC unroll 2
                    for (int p = 0; p < P; p++)
                        acc[p][4 * v + c] = _mm512_dpbusd_epi32(
                            acc[p][4 * v + c], f, vn_q8(qw + (size_t)p * VN_QBYTES(2), c));
                }
        } else if (N == 4) {
            /* Lane l of V_v: row 4l + v; high nibbles scaled by 16. */
            const __m512i hi_mask = _mm512_set1_epi8((char)0xf0);
            const __m512i lo_mask = _mm512_set1_epi8(0x0f);
            __m512i a = _mm512_unpacklo_epi8(L[0], L[1]), b = _mm512_unpackhi_epi8(L[0], L[1]);
            __m512i c = _mm512_unpacklo_epi8(L[2], L[3]), d = _mm512_unpackhi_epi8(L[2], L[3]);
            __m512i V[4] = {vn_transpose(_mm512_unpacklo_epi16(a, c)),
                            vn_transpose(_mm512_unpackhi_epi16(a, c)),
                            vn_transpose(_mm512_unpacklo_epi16(b, d)),
                            vn_transpose(_mm512_unpackhi_epi16(b, d))};
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) {
                __m512i hi = _mm512_and_si512(V[v], hi_mask);
                __m512i lo = _mm512_and_si512(V[v], lo_mask);
#pragma GCC unroll 2
                for (int p = 0; p < P; p++) {
                    const int8_t *qp = qw + (size_t)p * VN_QBYTES(4);
                    acc[p][2 * v] = _mm512_dpbusd_epi32(acc[p][2 * v], hi, vn_q16(qp, 0));
                    acc[p][2 * v + 1] = _mm512_dpbusd_epi32(acc[p][2 * v + 1], lo, vn_q16(qp, 1));
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
                            acc[p][a] = _mm512_dpbusd_epi32(
                                acc[p][a], V[s32], vn_q16(qw + (size_t)p * VN_QBYTES(8), s32));
                        }
                }
            }
        }
        if (w + 1 != send)
            continue;
            /* Merge the field accumulators into row vectors, unscaled. */
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
                    R[p][r] = _mm512_add_epi32(N == 4 ? _mm512_srai_epi32(acc[p][2 * r], 4)
                                                      : acc[p][2 * r],
                                               acc[p][2 * r + 1]);
            }
        }

        if (!mult) {
#pragma GCC unroll 2
            for (int p = 0; p < P; p++)
#pragma GCC unroll 4
                for (int r = 0; r < NR; r++)
                    vn_widen(t64[p][r], R[p][r]);
            send = kw - send < seg_max ? kw : send + seg_max;
        } else {
            /* Weight each row by its multiplier for group gi. */
            /* The segment's q sum as the low word of every dword (VN_SEG_QSUM),
             * added into one dword per row and lane (rows repeat across the
             * dwords of a lane for N >= 4). */
            const __mmask16 one_per_row = N == 8 ? 0x1111 : N == 4 ? 0x5555 : 0xffff;
            const __m512i qs =
                _mm512_set1_epi32((int32_t)(uint16_t)(int16_t)(qpre[send] - qpre[sstart]));
            const __m512i mt = _mm512_broadcast_i32x4(
                _mm_loadu_si128((const __m128i *)(mult + gi * BP_ROW_GROUP)));
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
                b32[t] = _mm512_mask_dpwssd_epi32(b32[t], one_per_row, mv, qs);
            }
            if (++nseg == widen_every) {
                for (int p = 0; p < P; p++)
                    for (int t = 0; t < NT; t++) {
                        vn_widen(t64[p][t], t32[p][t]);
                        t32[p][t] = zero;
                    }
                for (int t = 0; t < NT; t++) {
                    vn_widen(b64[t], b32[t]);
                    b32[t] = zero;
                }
                nseg = 0;
            }
            sstart = send;
            if (send == gend) {
                gi++;
                gend = kw - gend < gw ? kw : gend + gw;
            }
            send = gend - send < seg_max ? gend : send + seg_max;
        }
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
        const int nv = mult ? NT : NR;
        for (int t = 0; t < nv; t++) {
            if (mult)
                vn_widen(t64[p][t], t32[p][t]);
            int64_t v[16];
            _mm512_storeu_si512(v, t64[p][t][0]);
            _mm512_storeu_si512(v + 8, t64[p][t][1]);
            for (int k = 0; k < 16; k++) {
                const int l = k / 4, i = k % 4;
                const int row = mult && N != 8 ? vn_prow(N, t, l, i) : vn_rrow(N, t, l, i);
                out[p][row] += v[k];
            }
        }
    }
    if (!mult)
        return;
    for (int r = 0; r < BP_ROW_GROUP; r++)
        base[r] = 0;
    for (int t = 0; t < NT; t++) {
        vn_widen(b64[t], b32[t]);
        int64_t v[16];
        _mm512_storeu_si512(v, b64[t][0]);
        _mm512_storeu_si512(v + 8, b64[t][1]);
        for (int k = 0; k < 16; k++) {
            const int l = k / 4, i = k % 4;
            base[N != 8 ? vn_prow(N, t, l, i) : vn_rrow(N, t, l, i)] += v[k];
        }
    }
}

typedef void (*vn_fn)(const uint32_t *const *lines, size_t kw, const int8_t *q8,
                      const int32_t *qpre, const uint8_t *mult, size_t gw,
                      int64_t (*out)[BP_ROW_GROUP], int64_t *base);
#define VN_FN(n, N, P)                                                                             \
    static void vn_rowgroup_##n##_##P(const uint32_t *const *lines, size_t kw, const int8_t *q8,   \
                                      const int32_t *qpre, const uint8_t *mult, size_t gw,         \
                                      int64_t(*out)[BP_ROW_GROUP], int64_t *base) {                \
        vn_rowgroup(lines, kw, q8, qpre, mult, gw, out, base, n, N, P);                            \
    }
#define VN_FN2(n, N) VN_FN(n, N, 1) VN_FN(n, N, 2)
VN_FN2(1, 1)
VN_FN2(2, 2)
VN_FN2(3, 4)
VN_FN2(4, 4)
VN_FN2(5, 8)
VN_FN2(6, 8)
VN_FN2(7, 8)
VN_FN2(8, 8)

/* [n - 1][P - 1] */
static const vn_fn vn_fns[8][2] = {
    {vn_rowgroup_1_1, vn_rowgroup_1_2}, {vn_rowgroup_2_1, vn_rowgroup_2_2},
    {vn_rowgroup_3_1, vn_rowgroup_3_2}, {vn_rowgroup_4_1, vn_rowgroup_4_2},
    {vn_rowgroup_5_1, vn_rowgroup_5_2}, {vn_rowgroup_6_1, vn_rowgroup_6_2},
    {vn_rowgroup_7_1, vn_rowgroup_7_2}, {vn_rowgroup_8_1, vn_rowgroup_8_2},
};

/* sum_j u_j q_j over one row group, u the code of planes [p0, p0 + len)
 * (len 1..8): d[16]. */
static void vn_code_product(const bp_matrix *m, size_t g, const vn_column *vc, int p0, int len,
                            int64_t *d) {
    const size_t kw = m->kwords;
    const int N = vn_padded_planes(len), ni = N == 1 ? 0 : N == 2 ? 1 : N == 4 ? 2 : 3;
    const uint32_t *lines[8] = {NULL};
    for (int p = 0; p < len; p++)
        lines[p] = bp__slab(m, p0 + p) + g * kw * BP_ROW_GROUP;
    int64_t s[2][BP_ROW_GROUP];
    const bool grouped = bp__grouped(m);
    const uint8_t *mult = grouped ? bp__mult_tile(m, g, 0) : NULL;
    /* sum_j m_g(j) q_j per row: from the kernel when grouped, else qsum. */
    int64_t base[BP_ROW_GROUP];
    vn_fns[len - 1][vc->parts - 1](lines, kw, vc->q8[ni], vc->qpre, mult, m->group_words, s, base);
    if (!grouped)
        for (int r = 0; r < BP_ROW_GROUP; r++)
            base[r] = vc->qsum;
    const int64_t odd = ((int64_t)1 << len) - 1;
    for (int r = 0; r < BP_ROW_GROUP; r++) {
        int64_t uq = vc->parts == 2 ? 2 * s[0][r] + s[1][r] : s[0][r];
        /* U' = U * 2^(N-len): exact division by the padding. */
        uq /= (int64_t)1 << (N - len);
        d[r] = 2 * uq - odd * base[r];
    }
}

/*
 * Uniform matrices: D_u of the n planes, in chunks of at most 8 planes
 * (u_n = 2^len u_first + u_rest, so D = D * 2^len + D_chunk, exact).
 * Residual matrices: D_p of each plane as a 1-plane code.
 */
static void vn_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    const bool uniform = m->method == BP_QUANT_UNIFORM;
    /* Row groups outside, columns inside: a row group's lines (n x kwords x
     * 64 bytes) are read from memory once and from cache by the other
     * columns of the call. */
    for (size_t g = call->g0; g < call->g1; g++) {
        for (size_t c = 0; c < call->ncols; c++) {
            const bp_act_column *col = call->cols[c];
            const vn_column *vc = col->kernel_data;
            const int n = col->planes;
            int64_t *d = call->d + c * call->ld_col + (g - call->g0) * BP_ROW_GROUP;
            if (!uniform) {
                for (int p = 0; p < n; p++)
                    vn_code_product(m, g, vc, p, 1, d + (size_t)p * call->ld_plane);
                continue;
            }
            int64_t part[BP_ROW_GROUP];
            for (int p0 = 0; p0 < n; p0 += 8) {
                int len = n - p0 < 8 ? n - p0 : 8;
                vn_code_product(m, g, vc, p0, len, part);
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
