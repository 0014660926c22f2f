/*
 * Integer-mode LSTM/GRU cell updates, 16 units per AVX-512 instruction: the
 * portable code's integer operations (src/rnn_cell.c) lane by lane, so every
 * Q value and h has its bits. The Q3.12 conversion is bp__rnn_q312's (clamp,
 * then adding and subtracting 1.5 * 2^23 under round-to-nearest-even: IEEE
 * operations, exact per lane); each table lookup gathers the dword at t + k,
 * whose halves are t[k] and t[k + 1] (k <= 255, so within the 257 entries).
 * Units past the last whole vector take the portable code. Built with
 * -mavx512f on x86-64 only; chosen by cpu/rnn_cell_dispatch.c.
 */
#include "rnn_internal.h"

#include <immintrin.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* float -> Q3.12, as bp__rnn_q312. */
BP_INLINE __m512i v_q312(__m512 v) {
    __m512 s = _mm512_mul_ps(v, _mm512_set1_ps(4096.0f));
    s = _mm512_min_ps(_mm512_max_ps(s, _mm512_set1_ps(-32768.0f)), _mm512_set1_ps(32767.0f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    return _mm512_cvttps_epi32(_mm512_sub_ps(_mm512_add_ps(s, magic), magic));
}

BP_INLINE __m512i v_sat16(__m512i v) {
    return _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(-32768)),
                            _mm512_set1_epi32(32767));
}

/* (v + 2^(s-1)) >> s, arithmetic. */
BP_INLINE __m512i v_rshift(__m512i v, const int s) {
    return _mm512_srai_epi32(_mm512_add_epi32(v, _mm512_set1_epi32(1 << (s - 1))), s);
}

/* f(|x|) interpolated in table t, as bp__rnn_lookup. */
BP_INLINE __m512i v_lookup(const int16_t *t, __m512i x) {
    __m512i a = _mm512_min_epi32(_mm512_abs_epi32(x), _mm512_set1_epi32(32767));
    __m512i k = _mm512_srai_epi32(a, 7), frac = _mm512_and_si512(a, _mm512_set1_epi32(127));
    __m512i pair = _mm512_i32gather_epi32(k, (const void *)t, 2);
    __m512i t0 = _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16);
    __m512i t1 = _mm512_srai_epi32(pair, 16);
    __m512i d = _mm512_mullo_epi32(_mm512_sub_epi32(t1, t0), frac);
    return _mm512_add_epi32(t0, v_rshift(d, 7));
}

BP_INLINE __m512i v_tanh_q15(__m512i x) {
    __m512i v = v_lookup(bp__rnn_tanh_table, x);
    __mmask16 neg = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
    return _mm512_mask_sub_epi32(v, neg, _mm512_setzero_si512(), v);
}

BP_INLINE __m512i v_sigmoid_q15(__m512i x) {
    __m512i v = v_lookup(bp__rnn_sigmoid_table, x);
    __mmask16 neg = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
    return _mm512_mask_sub_epi32(v, neg, _mm512_set1_epi32(32768), v);
}

BP_INLINE __m512i load_q(const int16_t *p) {
    return _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)p));
}

BP_INLINE void store_q(int16_t *p, __m512i v) {
    _mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(v));
}

/* Q0.15 -> float, exact. */
BP_INLINE void store_h(float *h, __m512i v) {
    _mm512_storeu_ps(h, _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(1.0f / 32768.0f)));
}

/* The gate's Q3.12 pre-activation: sat16(xq + q312(p)). */
BP_INLINE __m512i pre(const int16_t *xq, const float *p) {
    return v_sat16(_mm512_add_epi32(load_q(xq), v_q312(_mm512_loadu_ps(p))));
}

static void lstm_int_avx512(const int16_t *xq, const float *p, int16_t *hq, int16_t *cq, float *h,
                            size_t H, size_t j0, size_t j1) {
    size_t j = j0;
    for (; j + 16 <= j1; j += 16) {
        __m512i i = v_sigmoid_q15(pre(xq + j, p + j));
        __m512i f = v_sigmoid_q15(pre(xq + H + j, p + H + j));
        __m512i g = v_tanh_q15(pre(xq + 2 * H + j, p + 2 * H + j));
        __m512i o = v_sigmoid_q15(pre(xq + 3 * H + j, p + 3 * H + j));
        __m512i cn = v_sat16(_mm512_add_epi32(v_rshift(_mm512_mullo_epi32(f, load_q(cq + j)), 15),
                                              v_rshift(_mm512_mullo_epi32(i, g), 19)));
        store_q(cq + j, cn);
        __m512i tc = v_tanh_q15(v_sat16(_mm512_add_epi32(cn, cn)));
        __m512i hn = v_rshift(_mm512_mullo_epi32(o, tc), 15);
        store_q(hq + j, hn);
        store_h(h + j, hn);
    }
    bp__rnn_int_cell_portable.lstm(xq, p, hq, cq, h, H, j, j1);
}

static void gru_int_avx512(const int16_t *xq, const float *p, int16_t *hq, float *h, size_t H,
                           size_t j0, size_t j1) {
    size_t j = j0;
    for (; j + 16 <= j1; j += 16) {
        __m512i r = v_sigmoid_q15(pre(xq + j, p + j));
        __m512i z = v_sigmoid_q15(pre(xq + H + j, p + H + j));
        __m512i rn = v_rshift(_mm512_mullo_epi32(r, v_q312(_mm512_loadu_ps(p + 2 * H + j))), 15);
        __m512i n = v_tanh_q15(v_sat16(_mm512_add_epi32(load_q(xq + 2 * H + j), rn)));
        __m512i d = _mm512_mullo_epi32(z, _mm512_sub_epi32(load_q(hq + j), n));
        __m512i hn = _mm512_add_epi32(n, v_rshift(d, 15));
        hn = _mm512_min_epi32(_mm512_max_epi32(hn, _mm512_set1_epi32(-32767)),
                              _mm512_set1_epi32(32767));
        store_q(hq + j, hn);
        store_h(h + j, hn);
    }
    bp__rnn_int_cell_portable.gru(xq, p, hq, h, H, j, j1);
}

const bp_rnn_int_cell bp__rnn_int_cell_avx512 = {
    .name = "avx512",
    .lstm = lstm_int_avx512,
    .gru = gru_int_avx512,
};
