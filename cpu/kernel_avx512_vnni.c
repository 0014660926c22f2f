/*
 * AVX-512 GFNI + VNNI code kernel for uniform matrices (docs/numerics.md):
 * the n used planes of each weight become one unsigned n-bit code U (plane 0
 * the most significant bit), and VPDPBUSD accumulates sum_j U_j q_j, so
 *   D_u = 2 sum_j U_j q_j - (2^n - 1) sum_j q_j
 * with work per weight nearly independent of n.
 *
 * The bit transpose. One 64-byte line of a slab is 16 rows x 32 columns, row
 * r's dword in 128-bit lane r / 4. Byte unpacks of the N lines of planes
 * 0..N-1 (N = 2, 4 or 8: n rounded up, missing planes zero) leave, in every
 * lane, the bytes of one or two rows with the N plane bytes of each column
 * octet next to each other in one qword. VGF2P8AFFINEQB with the identity as
 * the data operand and the planes as the matrix transposes each qword's 8x8
 * bit block: output byte j then holds bit j of every input byte, plane 0 in
 * bit 7. For N = 8 a byte is the code of one column; for N = 4 a byte holds
 * two codes (nibbles) and for N = 2 four (bit pairs), split by shift + AND.
 * Unpacks never cross 128-bit lanes, so every lane keeps its own rows: the
 * int32 accumulator lanes map to rows and no reduction over K is needed
 * until the end of a row group.
 *
 * VPDPBUSD takes the codes as its unsigned operand and q as the signed one:
 * columns with q in -128..127 (every signed mode up to 8 bits, unsigned up
 * to 7, binary) use q directly; unsigned 8-bit columns split q = 2a + b
 * (a = q >> 1, b = q & 1) into two accumulations. Missing planes multiply U
 * by 2^(N-n), divided out exactly at the end.
 *
 * Per row dword and line, an accumulator gains at most 4 * 255 * 128, so
 * K is limited to keep int32 exact (supports()). More than 8 planes run as
 * chunks of 8 (D_u = 2^len D_u(first) + D_u(rest)); residual matrices run
 * each plane as a 1-plane code. Grouped matrices and act_bits > 8 are not
 * handled here (the dispatcher uses popcount).
 */
#include "cpu_kernel.h"

#include <immintrin.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* Prefetch each plane's stream into L2 this far ahead. */
#define VN_PREFETCH_BYTES 8192

/* Per-column data after prepare: the q chunks for each padded plane count
 * (index 0, 1, 2 for N = 2, 4, 8), each [word][part][chunk][16]. */
typedef struct vn_column {
    int64_t qsum; /* sum of q over the row */
    int parts;    /* 1, or 2 for unsigned 8-bit columns (q = 2a + b) */
    const int8_t *q8[3];
    const int32_t *qword; /* [word] sum of q over the word (group sums) */
} vn_column;

static int vn_chunks(int N) {
    return N == 2 ? 4 : 2;
}

static bool vn_runnable(void) {
    const bp_cpu_features *f = bp__cpu_features();
    return f->avx512bw && f->avx512_vnni && f->gfni;
}

static bool vn_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)mult_bound; /* grouped: int32 flushes every <= 64 lines (below) */
    if (act_bits < 1 || act_bits > 8)
        return false;
    return kpad / 32 <= (size_t)INT32_MAX / (4 * 255 * 128);
}

/* Lines between int32 -> int64 flushes: per row, as many as int32 holds
 * (4 * 255 * 128 per line and dword); grouped, at most 64 lines and within
 * one group, so that (partial sum) x (multiplier <= 255) fits int32. */
#define VN_FLUSH_ROW     ((size_t)INT32_MAX / (4 * 255 * 128))
#define VN_FLUSH_GROUPED ((size_t)64)

/* Per word and part: 4 + 2 + 2 chunks of 16 bytes. */
static size_t vn_column_bytes(int act_bits, size_t kpad) {
    return bp__round_up(sizeof(vn_column), BP_ALIGN) +
           kpad / 32 * (act_bits == 8 ? 2 : 1) * 8 * 16 + kpad / 32 * sizeof(int32_t);
}

static int vn_padded_planes(int n) {
    return n <= 2 ? 2 : n <= 4 ? 4 : 8;
}

/* Column of byte i of chunk c in a lane, per N (see the top). */
static size_t vn_chunk_col(int N, int c, int i) {
    if (N == 8) /* chunk 0: columns 0..15, chunk 1: 16..31 */
        return (size_t)(16 * c + i);
    if (N == 4) /* high nibbles: 0..7, 16..23; low nibbles: 8..15, 24..31 */
        return (size_t)((i < 8 ? 0 : 16) + 8 * c + i % 8);
    return (size_t)(8 * c + i % 8); /* N = 2: field c, two rows per lane */
}

static void vn_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    vn_column *vc = scratch;
    int8_t *q8 = (int8_t *)((char *)scratch + bp__round_up(sizeof(vn_column), BP_ALIGN));
    vc->parts = (!col->is_signed && col->act_bits == 8) ? 2 : 1;
    int64_t qsum = 0;
    for (size_t j = 0; j < kpad; j++)
        qsum += col->q[j];
    vc->qsum = qsum;
    int32_t *qword = (int32_t *)((char *)scratch + bp__round_up(sizeof(vn_column), BP_ALIGN) +
                                 kpad / 32 * (size_t)vc->parts * 8 * 16);
    for (size_t w = 0; w < kpad / 32; w++) {
        int32_t sw = 0;
        for (int j = 0; j < 32; j++)
            sw += col->q[32 * w + (size_t)j];
        qword[w] = sw;
    }
    vc->qword = qword;
    for (int ni = 0; ni < 3; ni++) {
        const int N = 2 << ni;
        vc->q8[ni] = q8;
        for (size_t w = 0; w < kpad / 32; w++)
            for (int p = 0; p < vc->parts; p++)
                for (int c = 0; c < vn_chunks(N); c++)
                    for (int i = 0; i < 16; i++) {
                        int32_t q = col->q[32 * w + vn_chunk_col(N, c, i)];
                        if (vc->parts == 2)
                            q = p == 0 ? q >> 1 : q & 1;
                        *q8++ = (int8_t)q;
                    }
    }
    col->kernel_data = vc;
}

BP_INLINE __m512i vn_transpose(__m512i v) {
    const __m512i identity = _mm512_set1_epi64((long long)0x8040201008040201ull);
    return _mm512_gf2p8affine_epi64_epi8(identity, v, 0);
}

BP_INLINE __m512i vn_chunk(const int8_t *q8, size_t idx) {
    return _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)(q8 + 16 * idx)));
}

/*
 * Row sums sum_j U'_j q_j of one row group for one column, n real planes
 * padded to N with zeros, P parts: out[part][16 rows]. lines[p] is plane p's
 * row group for p < n. n, N and P are compile-time constants.
 */
BP_INLINE void vn_rowgroup(const uint32_t *const *lines, size_t kw, const int8_t *q8,
                           const uint8_t *mult, size_t gw, int64_t (*out)[BP_ROW_GROUP],
                           const int n, const int N, const int P) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x03);
    /* N = 8: 8 vectors; N = 4: 4 vectors x 2 nibbles; N = 2: 2 vectors x 4
     * fields. Eight accumulators per part in every case. */
    __m512i acc[2][8];
    /* Row of accumulator a, lane l, dword i (see the top). */
    int32_t rowof[8][16];
    for (int a = 0; a < 8; a++)
        for (int l = 0; l < 4; l++)
            for (int i = 0; i < 4; i++)
                rowof[a][4 * l + i] = N == 2 ? 4 * l + 2 * (a / 4) + i / 2 : 4 * l + a / 2;
    /* int64 totals per accumulator lane: [part][a][lo, hi] */
    __m512i tot[2][8][2];
    for (int p = 0; p < P; p++)
        for (int a = 0; a < 8; a++)
            tot[p][a][0] = tot[p][a][1] = zero;
    const size_t qstride = (size_t)P * (N == 2 ? 4 : 2);
    const size_t flush = mult ? (gw < VN_FLUSH_GROUPED ? gw : VN_FLUSH_GROUPED) : VN_FLUSH_ROW;

    for (size_t f0 = 0; f0 < kw; f0 += flush) {
        const size_t f1 = kw - f0 < flush ? kw : f0 + flush;
#pragma GCC unroll 2
        for (int p = 0; p < P; p++)
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++)
                acc[p][i] = zero;
        for (size_t w = f0; w < f1; w++) {
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
            const int8_t *qw = q8 + 16 * qstride * w;
            if (N == 2) {
                __m512i V[2] = {vn_transpose(_mm512_unpacklo_epi8(L[0], L[1])),
                                vn_transpose(_mm512_unpackhi_epi8(L[0], L[1]))};
#pragma GCC unroll 2
                for (int v = 0; v < 2; v++) {
                    __m512i f[4] = {_mm512_and_si512(_mm512_srli_epi16(V[v], 6), m2),
                                    _mm512_and_si512(_mm512_srli_epi16(V[v], 4), m2),
                                    _mm512_and_si512(_mm512_srli_epi16(V[v], 2), m2),
                                    _mm512_and_si512(V[v], m2)};
#pragma GCC unroll 2
                    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
                        for (int c = 0; c < 4; c++)
                            acc[p][4 * v + c] = _mm512_dpbusd_epi32(acc[p][4 * v + c], f[c],
                                                                    vn_chunk(qw, 4 * p + c));
                }
            } else if (N == 4) {
                __m512i a = _mm512_unpacklo_epi8(L[0], L[1]), b = _mm512_unpackhi_epi8(L[0], L[1]);
                __m512i c = _mm512_unpacklo_epi8(L[2], L[3]), d = _mm512_unpackhi_epi8(L[2], L[3]);
                __m512i V[4] = {vn_transpose(_mm512_unpacklo_epi16(a, c)),
                                vn_transpose(_mm512_unpackhi_epi16(a, c)),
                                vn_transpose(_mm512_unpacklo_epi16(b, d)),
                                vn_transpose(_mm512_unpackhi_epi16(b, d))};
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) {
                    __m512i hi = _mm512_and_si512(_mm512_srli_epi16(V[v], 4), m4);
                    __m512i lo = _mm512_and_si512(V[v], m4);
#pragma GCC unroll 2
                    for (int p = 0; p < P; p++) {
                        acc[p][2 * v] = _mm512_dpbusd_epi32(acc[p][2 * v], hi, vn_chunk(qw, 2 * p));
                        acc[p][2 * v + 1] =
                            _mm512_dpbusd_epi32(acc[p][2 * v + 1], lo, vn_chunk(qw, 2 * p + 1));
                    }
                }
            } else {
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
                                acc[p][a] = _mm512_dpbusd_epi32(acc[p][a], V[s32],
                                                                vn_chunk(qw, 2 * p + s32));
                            }
                    }
                }
            }
        }

        /* Flush: weight each lane by its row's multiplier for this group (the
         * flush lies inside group f0 / gw), then widen into the int64 totals. */
        __m512i mrow = zero;
        if (mult)
            mrow = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(mult + f0 / gw * 16)));
        for (int a = 0; a < 8; a++) {
            __m512i mv = mult ? _mm512_permutexvar_epi32(_mm512_loadu_si512(rowof[a]), mrow) : zero;
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) {
                __m512i v = mult ? _mm512_mullo_epi32(acc[p][a], mv) : acc[p][a];
                tot[p][a][0] = _mm512_add_epi64(tot[p][a][0],
                                                _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)));
                tot[p][a][1] = _mm512_add_epi64(
                    tot[p][a][1], _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)));
            }
        }
    }

#pragma GCC unroll 2
    for (int p = 0; p < P; p++) {
        for (int r = 0; r < BP_ROW_GROUP; r++)
            out[p][r] = 0;
        for (int a = 0; a < 8; a++) {
            int64_t v[16];
            _mm512_storeu_si512(v, tot[p][a][0]);
            _mm512_storeu_si512(v + 8, tot[p][a][1]);
            for (int k = 0; k < 16; k++)
                out[p][rowof[a][k]] += v[k];
        }
    }
}

typedef void (*vn_fn)(const uint32_t *const *lines, size_t kw, const int8_t *q8,
                      const uint8_t *mult, size_t gw, int64_t (*out)[BP_ROW_GROUP]);
#define VN_FN(n, N, P)                                                                             \
    static void vn_rowgroup_##n##_##P(const uint32_t *const *lines, size_t kw, const int8_t *q8,   \
                                      const uint8_t *mult, size_t gw,                              \
                                      int64_t(*out)[BP_ROW_GROUP]) {                               \
        vn_rowgroup(lines, kw, q8, mult, gw, out, n, N, P);                                        \
    }
#define VN_FN2(n, N) VN_FN(n, N, 1) VN_FN(n, N, 2)
VN_FN2(1, 2)
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
    const int N = vn_padded_planes(len), ni = N == 2 ? 0 : N == 4 ? 1 : 2;
    const uint32_t *lines[8] = {NULL};
    for (int p = 0; p < len; p++)
        lines[p] = bp__slab(m, p0 + p) + g * kw * BP_ROW_GROUP;
    int64_t s[2][BP_ROW_GROUP];
    const bool grouped = bp__grouped(m);
    const uint8_t *mult = grouped ? bp__mult_tile(m, g, 0) : NULL;
    vn_fns[len - 1][vc->parts - 1](lines, kw, vc->q8[ni], mult, m->group_words, s);
    /* sum_j m_g(j) q_j per row: qsum per row, else per group. */
    int64_t base[BP_ROW_GROUP];
    for (int r = 0; r < BP_ROW_GROUP; r++)
        base[r] = grouped ? 0 : vc->qsum;
    for (size_t gi = 0, w0 = 0; grouped && w0 < kw; gi++, w0 += m->group_words) {
        size_t w1 = w0 + m->group_words < kw ? w0 + m->group_words : kw;
        int64_t qg = 0;
        for (size_t w = w0; w < w1; w++)
            qg += vc->qword[w];
        const uint8_t *mt = mult + gi * BP_ROW_GROUP;
        for (int r = 0; r < BP_ROW_GROUP; r++)
            base[r] += (int64_t)mt[r] * qg;
    }
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
    for (size_t c = 0; c < call->ncols; c++) {
        const bp_act_column *col = call->cols[c];
        const vn_column *vc = col->kernel_data;
        const int n = col->planes;
        for (size_t g = call->g0; g < call->g1; g++) {
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
