/*
 * The RNN's code products in AVX-512 VNNI (cpu/rnn_codes.h): VPDPBUSD
 * multiplies 4 code bytes of each of 16 rows by 4 int8 activations and adds
 * them into the row's int32 lane. Every row group and column keeps one
 * accumulator per multiplier group; at the group's end it becomes
 * m_g (2 acc - (2^n - 1) Q_g) and joins the column's int32 total, which
 * cpu/rnn_codes.c keeps exact (its bounds). The combine follows, in
 * registers: alpha * ((float)D * s) + bias, the library's operations in
 * its order, so y has the bits of every CPU path.
 *
 * Several row groups run in lockstep so that at least 6 independent
 * accumulator chains cover VPDPBUSD's latency when few columns share a
 * weight vector. Built with AVX-512 VNNI flags on x86-64 only; used where
 * the CPU runs them (cpu/rnn_codes.c).
 */
#include "avx512_vnni_dpbusd.h"
#include "rnn_codes.h"

#include <immintrin.h>
#include <string.h>

#define BP_INLINE static inline __attribute__((always_inline))
#define MAX_R     8

BP_INLINE __m512i broadcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* Row groups rg .. rg + R - 1 for C columns; false when a y is not finite. */
BP_INLINE bool codes_body(const bp_rnn_codes_call *call, size_t rg, const int R, const int C) {
    const struct bp_rnn_codes *k = call->k;
    const size_t quads = k->quads, gq = k->group_quads;
    const uint8_t *u = k->u + rg * quads * 64;
    __m512i tot[MAX_R][BP_RNN_CODES_MAX_COLS];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int c = 0; c < C; c++)
            tot[r][c] = _mm512_setzero_si512();

    for (size_t g = 0; g < k->ngroups; g++) {
        const size_t q0 = g * gq, q1 = q0 + gq < quads ? q0 + gq : quads;
        __m512i acc[MAX_R][BP_RNN_CODES_MAX_COLS];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
#pragma GCC unroll 8
            for (int c = 0; c < C; c++)
                acc[r][c] = _mm512_setzero_si512();
        for (size_t qd = q0; qd < q1; qd++) {
            __m512i qb[BP_RNN_CODES_MAX_COLS];
#pragma GCC unroll 8
            for (int c = 0; c < C; c++)
                qb[c] = broadcast4(call->q8[c] + 4 * qd);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                const __m512i w = _mm512_load_si512(u + ((size_t)r * quads + qd) * 64);
#pragma GCC unroll 8
                for (int c = 0; c < C; c++)
                    bp__dpbusd_inplace(&acc[r][c], w, qb[c]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            __m512i m = _mm512_setzero_si512();
            if (k->mult)
                m = _mm512_cvtepu8_epi32(_mm_loadu_si128(
                    (const __m128i *)(k->mult + ((rg + (size_t)r) * k->ngroups + g) * 16)));
#pragma GCC unroll 8
            for (int c = 0; c < C; c++) {
                __m512i t = _mm512_sub_epi32(_mm512_add_epi32(acc[r][c], acc[r][c]),
                                             _mm512_set1_epi32(call->qg[c][g]));
                if (k->mult)
                    t = _mm512_mullo_epi32(t, m);
                tot[r][c] = _mm512_add_epi32(tot[r][c], t);
            }
        }
    }

    const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
    __mmask16 bad = 0;
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
        const size_t row0 = (rg + (size_t)r) * 16;
        const size_t left = k->rows - row0;
        const __mmask16 rows = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        const __m512 alpha = _mm512_load_ps(k->alpha + row0);
        const __m512 bias =
            call->bias ? _mm512_maskz_loadu_ps(rows, call->bias + row0) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (int c = 0; c < C; c++) {
            const __m512 d = _mm512_cvtepi32_ps(tot[r][c]);
            __m512 v = _mm512_mul_ps(alpha, _mm512_mul_ps(d, _mm512_set1_ps(call->scale[c])));
            if (call->bias)
                v = _mm512_add_ps(v, bias);
            _mm512_mask_storeu_ps(call->y[c] + row0, rows, v);
            const __m512i e = _mm512_and_si512(_mm512_castps_si512(v), exp_mask);
            bad |= _mm512_mask_cmpeq_epi32_mask(rows, e, exp_mask);
        }
    }
    return bad == 0;
}

typedef bool (*codes_fn)(const bp_rnn_codes_call *call, size_t rg);

#define CODES_FN(R, C)                                                                             \
    static bool codes_##R##_##C(const bp_rnn_codes_call *call, size_t rg) {                        \
        return codes_body(call, rg, R, C);                                                         \
    }
CODES_FN(8, 1)
CODES_FN(1, 1)
CODES_FN(4, 2)
CODES_FN(1, 2)
CODES_FN(2, 3)
CODES_FN(1, 3)
CODES_FN(2, 4)
CODES_FN(1, 4)
CODES_FN(1, 5)
CODES_FN(1, 6)
CODES_FN(1, 7)
CODES_FN(1, 8)

/* [columns - 1]: row groups per pass, and the bodies for that many and one. */
static const struct {
    size_t groups;
    codes_fn many, one;
} codes_fns[BP_RNN_CODES_MAX_COLS] = {
    {8, codes_8_1, codes_1_1}, {4, codes_4_2, codes_1_2}, {2, codes_2_3, codes_1_3},
    {2, codes_2_4, codes_1_4}, {1, codes_1_5, codes_1_5}, {1, codes_1_6, codes_1_6},
    {1, codes_1_7, codes_1_7}, {1, codes_1_8, codes_1_8},
};

bool bp__rnn_codes_rows_avx512(const bp_rnn_codes_call *call) {
    const size_t G = codes_fns[call->ncols - 1].groups;
    bool finite = true;
    size_t rg = call->rg0;
    for (; rg + G <= call->rg1; rg += G)
        finite &= codes_fns[call->ncols - 1].many(call, rg);
    for (; rg < call->rg1; rg++)
        finite &= codes_fns[call->ncols - 1].one(call, rg);
    return finite;
}

bool bp__rnn_codes_pack_avx512(const int32_t *q, size_t kpad, size_t group_cols, int32_t span,
                               int8_t *q8, int32_t *qg) {
    const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
    __mmask16 wide = 0;
    for (size_t j0 = 0, g = 0; j0 < kpad; j0 += group_cols, g++) {
        const size_t j1 = j0 + group_cols < kpad ? j0 + group_cols : kpad;
        __m512i sum = _mm512_setzero_si512();
        for (size_t j = j0; j < j1; j += 16) {
            const __m512i v = _mm512_loadu_si512(q + j);
            wide |= _mm512_cmplt_epi32_mask(v, lo) | _mm512_cmpgt_epi32_mask(v, hi);
            _mm_storeu_si128((__m128i *)(q8 + j), _mm512_cvtepi32_epi8(v));
            sum = _mm512_add_epi32(sum, v);
        }
        qg[g] = _mm512_reduce_add_epi32(sum) * span;
    }
    return wide == 0;
}
