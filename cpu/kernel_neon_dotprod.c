/*
 * AArch64 dot-product code kernel (FEAT_DotProd, SDOT) for uniform matrices
 * (docs/numerics.md): the used planes of each weight become one unsigned
 * code U (plane 0 the most significant bit), and SDOT accumulates
 * sum_j U_j q_j, so
 *   D_u = 2 sum_j U_j q_j - (2^n - 1) sum_j q_j
 * with work per weight nearly independent of n. Compiled with
 * -march=armv8.2-a+dotprod (this file only); dispatch checks HWCAP_ASIMDDP.
 *
 * The bit transpose. A 64-byte line (16 rows x 32 columns) is four q
 * registers, rows 4i..4i+3 in register i; byte 4l + k of a register is byte
 * k of row 4i + l, i.e. columns 8k..8k+7. The N plane registers of one such
 * quarter (N = 2, 4 or 8 slots: n planes, zero slots above them) are merged
 * bytewise by log2(N) rounds of shift + BSL (a 1-, 2- and 4-bit interleave),
 * the in-register form of an 8x8 bit-matrix transpose. Each round turns two
 * registers of b-bit fields into two registers of 2b-bit fields, so the
 * result is eight registers per quarter whose bytes (N = 8), nibbles (N = 4,
 * split by AND / shift) or bit pairs (N = 2, split by shift + AND) are the
 * codes of one column position s in 0..7 of every byte, i.e. columns
 * 8k + s. Byte 4l + k of code register s then pairs with q[8k + s], the
 * same four bytes for every row lane l, which is what SDOT's lane form
 * broadcasts: each row register accumulates its own four rows and no
 * reduction across lanes is needed.
 *
 * SDOT takes both operands signed, so codes must stay <= 127: at most 7
 * planes per pass (n = 8 runs as 7 + 1, more planes as chunks of 7:
 * D_u = 2^len D_u(first) + D_u(rest), exact). Columns with q in -128..127
 * (signed up to 8 bits, unsigned up to 7, binary) use q directly; unsigned
 * 8-bit columns split q = 2a + b (a = q >> 1, b = q & 1) into two
 * accumulations ("parts"). The codes of a row group are built once per pass
 * and used by up to four part columns of equal plane count.
 *
 * Per row lane and line an int32 accumulator gains at most 32 * 127 * 128,
 * so sums are flushed into int64 every ND_FLUSH_ROW lines, and grouped
 * matrices at every group boundary, where a widening multiply-add applies
 * the row's multiplier. Residual matrices run each plane as a 1-plane code.
 */
#include "cpu_kernel.h"

#include <arm_neon.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* Planes per code: codes <= 127 for the signed byte dot product. */
#define ND_MAX_CHUNK 7
/* Part columns sharing one pass over a row group's codes. */
#define ND_MAX_PARTS 4
/* Lines between int32 -> int64 flushes: 4096 * 32 * 127 * 128 < 2^31. */
#define ND_FLUSH_ROW ((size_t)4096)

/* Per-column data after prepare. */
typedef struct nd_column {
    int64_t qsum;         /* sum of q over the row */
    int parts;            /* 1, or 2 for unsigned 8-bit columns (q = 2a + b) */
    const int8_t *q8;     /* [word][part][32], see nd_prepare */
    const int32_t *qword; /* [word] sum of q over the word (group sums) */
} nd_column;

static bool nd_runnable(void) {
    return bp__cpu_features()->neon_dotprod;
}

static bool nd_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)kpad;       /* int32 sums are flushed every ND_FLUSH_ROW lines */
    (void)mult_bound; /* and at every group boundary, multiplied in int64 */
    return act_bits >= 1 && act_bits <= 8;
}

static size_t nd_column_bytes(int act_bits, size_t kpad) {
    return bp__round_up(sizeof(nd_column), BP_ALIGN) + kpad / 32 * (act_bits == 8 ? 2 : 1) * 32 +
           kpad / 32 * sizeof(int32_t);
}

/*
 * q arranged per 32-column word and part as two 16-byte registers: register
 * h, 4-byte lane L, byte k holds q[32 w + 8 k + s] for position s = 4 h + L,
 * so the code register of position s meets its q with lane L of register h.
 */
static void nd_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    nd_column *nc = scratch;
    int8_t *q8 = (int8_t *)((char *)scratch + bp__round_up(sizeof(nd_column), BP_ALIGN));
    const size_t kw = kpad / 32;
    nc->parts = (!col->is_signed && col->act_bits == 8) ? 2 : 1;
    int32_t *qword = (int32_t *)(q8 + kw * (size_t)nc->parts * 32);
    int64_t qsum = 0;
    for (size_t w = 0; w < kw; w++) {
        const int32_t *q = col->q + 32 * w;
        int32_t sw = 0;
        for (int j = 0; j < 32; j++)
            sw += q[j];
        qword[w] = sw;
        qsum += sw;
        for (int p = 0; p < nc->parts; p++) {
            int8_t *out = q8 + (w * (size_t)nc->parts + (size_t)p) * 32;
            for (int s = 0; s < 8; s++)
                for (int k = 0; k < 4; k++) {
                    int32_t v = q[8 * k + s];
                    if (nc->parts == 2)
                        v = p == 0 ? v >> 1 : v & 1;
                    out[(s / 4) * 16 + (s % 4) * 4 + k] = (int8_t)v;
                }
        }
    }
    nc->qsum = qsum;
    nc->q8 = q8;
    nc->qword = qword;
    col->kernel_data = nc;
}

/* One interleave round on two registers of b-bit fields (a the more
 * significant): lo pairs the even fields, hi the odd ones, as 2b-bit
 * fields with a's bits on top. mask selects the upper b bits of each
 * 2b-bit field. */
#define ND_ROUND(a, b, mask, bits, lo, hi)                                                         \
    do {                                                                                           \
        (lo) = vbslq_u8((mask), vshlq_n_u8((a), (bits)), (b));                                     \
        (hi) = vbslq_u8((mask), (a), vshrq_n_u8((b), (bits)));                                     \
    } while (0)

/* acc[v][i] += codes x q of position s for every part column v. */
#define ND_DOT(s, codes)                                                                           \
    do {                                                                                           \
        const int8x16_t c_ = vreinterpretq_s8_u8(codes);                                           \
        for (int v = 0; v < V; v++)                                                                \
            acc[v][i] = vdotq_laneq_s32(acc[v][i], c_, qv[v][(s) / 4], (s) % 4);                   \
    } while (0)

/*
 * Row sums sum_j U_j q_j of one row group for V part columns: out[v][16].
 * planes[p] is plane p's row group (p < n); the codes use N slots, planes in
 * the low n. q8[v] / qstride[v]: part column v's q registers and their
 * stride per word in bytes. mult: the row group's multiplier tiles (NULL per
 * row), gw words per group. n and V are compile-time constants.
 */
BP_INLINE void nd_rowgroup(const uint32_t *const *planes, size_t kw, const int8_t *const *q8,
                           const size_t *qstride, const uint8_t *mult, size_t gw,
                           int64_t (*out)[BP_ROW_GROUP], const int n, const int V) {
    const int N = n <= 2 ? 2 : n <= 4 ? 4 : 8;
    const uint8x16_t m1 = vdupq_n_u8(0xaa), m2 = vdupq_n_u8(0xcc), m4 = vdupq_n_u8(0xf0);
    const uint8x16_t low2 = vdupq_n_u8(0x03), low4 = vdupq_n_u8(0x0f);
    const uint8x16_t zero = vdupq_n_u8(0);
    int64x2_t tot[ND_MAX_PARTS][4][2];
    for (int v = 0; v < V; v++)
        for (int i = 0; i < 4; i++)
            tot[v][i][0] = tot[v][i][1] = vdupq_n_s64(0);
    const size_t flush = mult ? gw : ND_FLUSH_ROW;

    for (size_t f0 = 0; f0 < kw; f0 += flush) {
        const size_t f1 = kw - f0 < flush ? kw : f0 + flush;
        int32x4_t acc[ND_MAX_PARTS][4];
        for (int v = 0; v < V; v++)
            for (int i = 0; i < 4; i++)
                acc[v][i] = vdupq_n_s32(0);
        for (size_t w = f0; w < f1; w++) {
            int8x16_t qv[ND_MAX_PARTS][2];
            for (int v = 0; v < V; v++) {
                const int8_t *qp = q8[v] + w * qstride[v];
                qv[v][0] = vld1q_s8(qp);
                qv[v][1] = vld1q_s8(qp + 16);
            }
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                uint8x16_t P[8];
#pragma GCC unroll 8
                for (int slot = 0; slot < N; slot++) {
                    const int p = slot - (N - n);
                    P[slot] = p >= 0 ? vld1q_u8((const uint8_t *)(planes[p] + w * BP_ROW_GROUP +
                                                                  4 * (size_t)i))
                                     : zero;
                }
                if (N == 2) {
                    uint8x16_t E, O;
                    ND_ROUND(P[0], P[1], m1, 1, E, O);
                    /* Field f of E is column 2f, of O column 2f + 1. */
                    ND_DOT(0, vandq_u8(E, low2));
                    ND_DOT(2, vandq_u8(vshrq_n_u8(E, 2), low2));
                    ND_DOT(4, vandq_u8(vshrq_n_u8(E, 4), low2));
                    ND_DOT(6, vshrq_n_u8(E, 6));
                    ND_DOT(1, vandq_u8(O, low2));
                    ND_DOT(3, vandq_u8(vshrq_n_u8(O, 2), low2));
                    ND_DOT(5, vandq_u8(vshrq_n_u8(O, 4), low2));
                    ND_DOT(7, vshrq_n_u8(O, 6));
                } else {
                    /* Quad q of slots 4q..4q+3: nibble j of Y[c] is the
                     * quad's code of column 4j + c. */
                    uint8x16_t Y[2][4];
#pragma GCC unroll 2
                    for (int q = 0; q < N / 4; q++) {
                        uint8x16_t E01, O01, E23, O23;
                        ND_ROUND(P[4 * q], P[4 * q + 1], m1, 1, E01, O01);
                        ND_ROUND(P[4 * q + 2], P[4 * q + 3], m1, 1, E23, O23);
                        /* E: field f is column 2f; O: column 2f + 1. */
                        ND_ROUND(E01, E23, m2, 2, Y[q][0], Y[q][2]);
                        ND_ROUND(O01, O23, m2, 2, Y[q][1], Y[q][3]);
                    }
                    if (N == 4) {
                        ND_DOT(0, vandq_u8(Y[0][0], low4));
                        ND_DOT(4, vshrq_n_u8(Y[0][0], 4));
                        ND_DOT(1, vandq_u8(Y[0][1], low4));
                        ND_DOT(5, vshrq_n_u8(Y[0][1], 4));
                        ND_DOT(2, vandq_u8(Y[0][2], low4));
                        ND_DOT(6, vshrq_n_u8(Y[0][2], 4));
                        ND_DOT(3, vandq_u8(Y[0][3], low4));
                        ND_DOT(7, vshrq_n_u8(Y[0][3], 4));
                    } else {
                        uint8x16_t lo, hi;
                        ND_ROUND(Y[0][0], Y[1][0], m4, 4, lo, hi);
                        ND_DOT(0, lo);
                        ND_DOT(4, hi);
                        ND_ROUND(Y[0][1], Y[1][1], m4, 4, lo, hi);
                        ND_DOT(1, lo);
                        ND_DOT(5, hi);
                        ND_ROUND(Y[0][2], Y[1][2], m4, 4, lo, hi);
                        ND_DOT(2, lo);
                        ND_DOT(6, hi);
                        ND_ROUND(Y[0][3], Y[1][3], m4, 4, lo, hi);
                        ND_DOT(3, lo);
                        ND_DOT(7, hi);
                    }
                }
            }
        }

        /* Flush into int64, weighting each row by its multiplier for this
         * group (the flush lies inside group f0 / gw). */
        if (mult) {
            const uint8x16_t m8 = vld1q_u8(mult + f0 / gw * BP_ROW_GROUP);
            const uint16x8_t m16[2] = {vmovl_u8(vget_low_u8(m8)), vmovl_high_u8(m8)};
            for (int i = 0; i < 4; i++) {
                const uint16x8_t h = m16[i / 2];
                const int32x4_t mi =
                    vreinterpretq_s32_u32(i % 2 ? vmovl_high_u16(h) : vmovl_u16(vget_low_u16(h)));
                for (int v = 0; v < V; v++) {
                    tot[v][i][0] =
                        vmlal_s32(tot[v][i][0], vget_low_s32(acc[v][i]), vget_low_s32(mi));
                    tot[v][i][1] = vmlal_high_s32(tot[v][i][1], acc[v][i], mi);
                }
            }
        } else {
            for (int v = 0; v < V; v++)
                for (int i = 0; i < 4; i++) {
                    tot[v][i][0] = vaddw_s32(tot[v][i][0], vget_low_s32(acc[v][i]));
                    tot[v][i][1] = vaddw_high_s32(tot[v][i][1], acc[v][i]);
                }
        }
    }
    for (int v = 0; v < V; v++)
        for (int i = 0; i < 4; i++) {
            vst1q_s64(out[v] + 4 * i, tot[v][i][0]);
            vst1q_s64(out[v] + 4 * i + 2, tot[v][i][1]);
        }
}

typedef void (*nd_fn)(const uint32_t *const *planes, size_t kw, const int8_t *const *q8,
                      const size_t *qstride, const uint8_t *mult, size_t gw,
                      int64_t (*out)[BP_ROW_GROUP]);
#define ND_FN(n, V)                                                                                \
    static void nd_rowgroup_##n##_##V(                                                             \
        const uint32_t *const *planes, size_t kw, const int8_t *const *q8, const size_t *qstride,  \
        const uint8_t *mult, size_t gw, int64_t(*out)[BP_ROW_GROUP]) {                             \
        nd_rowgroup(planes, kw, q8, qstride, mult, gw, out, n, V);                                 \
    }
#define ND_FN4(n) ND_FN(n, 1) ND_FN(n, 2) ND_FN(n, 3) ND_FN(n, 4)
ND_FN4(1)
ND_FN4(2)
ND_FN4(3)
ND_FN4(4)
ND_FN4(5)
ND_FN4(6)
ND_FN4(7)

#define ND_ROW(n)                                                                                  \
    { nd_rowgroup_##n##_1, nd_rowgroup_##n##_2, nd_rowgroup_##n##_3, nd_rowgroup_##n##_4 }
/* [n - 1][V - 1] */
static const nd_fn nd_fns[ND_MAX_CHUNK][ND_MAX_PARTS] = {ND_ROW(1), ND_ROW(2), ND_ROW(3), ND_ROW(4),
                                                         ND_ROW(5), ND_ROW(6), ND_ROW(7)};

/* sum_g m_g(row) sum_{j in g} q_j for the 16 rows of row group rg. */
static void nd_base(const bp_matrix *m, size_t rg, const nd_column *nc, int64_t *base) {
    if (!bp__grouped(m)) {
        for (int r = 0; r < BP_ROW_GROUP; r++)
            base[r] = nc->qsum;
        return;
    }
    for (int r = 0; r < BP_ROW_GROUP; r++)
        base[r] = 0;
    const size_t kw = m->kwords;
    for (size_t g = 0, w0 = 0; w0 < kw; g++, w0 += m->group_words) {
        size_t w1 = w0 + m->group_words < kw ? w0 + m->group_words : kw;
        int64_t qg = 0;
        for (size_t w = w0; w < w1; w++)
            qg += nc->qword[w];
        const uint8_t *mt = bp__mult_tile(m, rg, g);
        for (int r = 0; r < BP_ROW_GROUP; r++)
            base[r] += (int64_t)mt[r] * qg;
    }
}

/*
 * Columns idx[0..nsel) of the call, all with the same planes, for row group
 * g: uniform matrices get D_u of their planes in chunks of at most 7,
 * residual ones D_p of each plane as a 1-plane code.
 */
static void nd_columns(const bp_kernel_call *call, size_t g, const size_t *idx, size_t nsel,
                       int nparts) {
    const bp_matrix *m = call->m;
    const size_t kw = m->kwords;
    const bool uniform = m->method == BP_QUANT_UNIFORM;
    const int n = call->cols[idx[0]]->planes;
    const int8_t *q8[ND_MAX_PARTS];
    size_t qstride[ND_MAX_PARTS];
    for (size_t c = 0, v = 0; c < nsel; c++) {
        const nd_column *nc = call->cols[idx[c]]->kernel_data;
        for (int p = 0; p < nc->parts; p++, v++) {
            q8[v] = nc->q8 + (size_t)p * 32;
            qstride[v] = (size_t)nc->parts * 32;
        }
    }
    int64_t base[BP_KERNEL_MAX_COLS][BP_ROW_GROUP];
    for (size_t c = 0; c < nsel; c++)
        nd_base(m, g, call->cols[idx[c]]->kernel_data, base[c]);
    const uint8_t *mult = bp__grouped(m) ? bp__mult_tile(m, g, 0) : NULL;
    const int step = uniform ? ND_MAX_CHUNK : 1;
    for (int p0 = 0; p0 < n; p0 += step) {
        const int len = n - p0 < step ? n - p0 : step;
        const uint32_t *planes[ND_MAX_CHUNK];
        for (int p = 0; p < len; p++)
            planes[p] = bp__slab(m, p0 + p) + g * kw * BP_ROW_GROUP;
        int64_t s[ND_MAX_PARTS][BP_ROW_GROUP];
        nd_fns[len - 1][nparts - 1](planes, kw, q8, qstride, mult, m->group_words, s);
        const int64_t odd = ((int64_t)1 << len) - 1;
        for (size_t c = 0, v = 0; c < nsel; c++) {
            const nd_column *nc = call->cols[idx[c]]->kernel_data;
            int64_t *d = call->d + idx[c] * call->ld_col + (g - call->g0) * BP_ROW_GROUP;
            if (!uniform)
                d += (size_t)p0 * call->ld_plane;
            for (int r = 0; r < BP_ROW_GROUP; r++) {
                int64_t uq = nc->parts == 2 ? 2 * s[v][r] + s[v + 1][r] : s[v][r];
                int64_t part = 2 * uq - odd * base[c][r];
                d[r] = (!uniform || p0 == 0) ? part : d[r] * ((int64_t)1 << len) + part;
            }
            v += (size_t)nc->parts;
        }
    }
}

/* Columns with equal plane counts share the codes of each pass, up to
 * ND_MAX_PARTS part columns at a time. */
static void nd_compute(const bp_kernel_call *call) {
    for (size_t g = call->g0; g < call->g1; g++) {
        bool done[BP_KERNEL_MAX_COLS] = {false};
        for (size_t c0 = 0; c0 < call->ncols; c0++) {
            if (done[c0])
                continue;
            size_t idx[BP_KERNEL_MAX_COLS], nsel = 0;
            int nparts = 0;
            for (size_t c = c0; c < call->ncols; c++) {
                const bp_act_column *col = call->cols[c];
                const int parts = ((const nd_column *)col->kernel_data)->parts;
                if (done[c] || col->planes != call->cols[c0]->planes ||
                    nparts + parts > ND_MAX_PARTS)
                    continue;
                done[c] = true;
                idx[nsel++] = c;
                nparts += parts;
            }
            nd_columns(call, g, idx, nsel, nparts);
        }
    }
}

const bp_cpu_kernel_desc bp__kernel_neon_dotprod = {
    .name = "neon-dotprod",
    .runnable = nd_runnable,
    .supports = nd_supports,
    .column_bytes = nd_column_bytes,
    .prepare = nd_prepare,
    .compute = nd_compute,
};
