/*
 * Float-mode LSTM/GRU cell updates, 8 units per AVX2 instruction
 * (cpu/rnn_cell_simd.h). Built with -mavx2 on x86-64 only; chosen at run
 * time when the CPU and OS support AVX2 (cpu/rnn_cell_dispatch.c). Same
 * bits as the portable code.
 */
#include <immintrin.h>

#define VEC           __m256
#define VLANES        8
#define V_SET1(f)     _mm256_set1_ps(f)
#define V_LOAD(p)     _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_ADD         _mm256_add_ps
#define V_SUB         _mm256_sub_ps
#define V_MUL         _mm256_mul_ps
#define V_DIV         _mm256_div_ps
#define V_MAX         _mm256_max_ps
#define V_MIN         _mm256_min_ps
#define V_NEG(v)      _mm256_xor_ps((v), _mm256_set1_ps(-0.0f))
#define V_POW2I(k)                                                                                 \
    _mm256_castsi256_ps(                                                                           \
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(k), _mm256_set1_epi32(127)), 23))

#include "rnn_cell_simd.h"

const bp_rnn_float_cell bp__rnn_cell_avx2 = {
    .name = "avx2",
    .lstm = lstm_simd,
    .gru = gru_simd,
};
