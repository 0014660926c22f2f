/*
 * Float-mode LSTM/GRU cell updates, 16 units per AVX-512 instruction
 * (cpu/rnn_cell_simd.h). Built with -mavx512f on x86-64 only; chosen at run
 * time when the CPU and OS support AVX-512 (cpu/rnn_cell_dispatch.c). Same
 * bits as the portable code.
 */
#include <immintrin.h>

#define VEC           __m512
#define VLANES        16
#define V_SET1(f)     _mm512_set1_ps(f)
#define V_LOAD(p)     _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_ADD         _mm512_add_ps
#define V_SUB         _mm512_sub_ps
#define V_MUL         _mm512_mul_ps
#define V_DIV         _mm512_div_ps
#define V_MAX         _mm512_max_ps
#define V_MIN         _mm512_min_ps
/* Integer xor: the float one is AVX-512DQ. */
#define V_NEG(v)                                                                                   \
    _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)))
#define V_POW2I(k)                                                                                 \
    _mm512_castsi512_ps(                                                                           \
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(k), _mm512_set1_epi32(127)), 23))

#include "rnn_cell_simd.h"

const bp_rnn_float_cell bp__rnn_cell_avx512 = {
    .name = "avx512",
    .lstm = lstm_simd,
    .gru = gru_simd,
};
