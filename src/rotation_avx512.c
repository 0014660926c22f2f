/*
 * AVX-512 form of the input rotation (src/rotation.c) for blocks of 16
 * columns and more, fused into one pass per block: the sign flip as the
 * block is loaded, every butterfly stage and the scale in registers (blocks
 * up to 256 columns; larger ones in 256-column pieces, then the stages
 * h >= 256 through L1 with the scale folded into the last), and the
 * quantizer's scan of x' (bp_act_range) as the block is stored, and
 * bp_gemm's NaN / Inf check of x as it is loaded. Every
 * element goes through the scalar code's operations in the same order
 * (sign flip, one add or subtract per stage, one multiply by 2^-l), so x'
 * and its range are identical bit for bit (tests/test_activations.c
 * compares both forms).
 *
 * Stages h >= 16 pair whole vectors. Stages h = 1..8 pair lanes j and
 * j ^ h of one vector, the partner p from an in-lane permute (h = 1, 2) or a
 * 128-bit lane shuffle (h = 4, 8); lanes with bit h clear take u + p
 * (a + c), the others p - u (a - c), both as one FMA u * (+-1) + p: the
 * product is exact, so the FMA rounds the sum once, as the add or subtract
 * does. Built with AVX-512 flags only on x86-64; src/rotation.c calls it
 * where bp__cpu_has_avx512bw() holds.
 */
#include "bp_rotation.h"

#include <immintrin.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* Columns held in registers: 16 vectors. */
#define REG_COLS 256

/* Lane multipliers of stage h = 1, 2, 4, 8: +1 where bit h of the lane is
 * clear, -1 where it is set. */
typedef struct lane_signs {
    __m512 s1, s2, s4, s8;
} lane_signs;

BP_INLINE lane_signs make_lane_signs(void) {
    const __m512 p = _mm512_set1_ps(1.0f), n = _mm512_set1_ps(-1.0f);
    lane_signs s = {
        _mm512_mask_mov_ps(p, (__mmask16)0xaaaa, n),
        _mm512_mask_mov_ps(p, (__mmask16)0xcccc, n),
        _mm512_mask_mov_ps(p, (__mmask16)0xf0f0, n),
        _mm512_mask_mov_ps(p, (__mmask16)0xff00, n),
    };
    return s;
}

/* Columns j .. j + 15 of x with their signs flipped (j a multiple of 16),
 * then stages h = 1, 2, 4, 8. */
BP_INLINE __m512 load_chunk(const uint32_t *signs, const float *x, size_t j, const lane_signs *s,
                            __mmask16 *bad) {
    const __m512i sign_bit = _mm512_set1_epi32((int)0x80000000u);
    const __m512i exp_bits = _mm512_set1_epi32(0x7f800000);
    const __mmask16 neg = (__mmask16)(signs[j / 32] >> (j % 32));
    const __m512i v = _mm512_loadu_si512(x + j);
    /* x itself not finite (exponent all ones), for bp_gemm's check. */
    *bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, exp_bits), exp_bits);
    __m512 u = _mm512_castsi512_ps(_mm512_mask_xor_epi32(v, neg, v, sign_bit));
    u = _mm512_fmadd_ps(u, s->s1, _mm512_permute_ps(u, 0xb1));       /* lanes 1 0 3 2 */
    u = _mm512_fmadd_ps(u, s->s2, _mm512_permute_ps(u, 0x4e));       /* lanes 2 3 0 1 */
    u = _mm512_fmadd_ps(u, s->s4, _mm512_shuffle_f32x4(u, u, 0xb1)); /* quarters 1 0 3 2 */
    u = _mm512_fmadd_ps(u, s->s8, _mm512_shuffle_f32x4(u, u, 0x4e)); /* quarters 2 3 0 1 */
    return u;
}

/* The range of x' so far: the running max|x'| (a NaN skipped: VMAXPS
 * returns its second operand when either is NaN) and the lanes where some
 * x' is not >= 0 (NaN included, as the scalar !(x >= 0)); and the lanes
 * where some x (the input) is NaN or Inf. */
typedef struct range_acc {
    __m512 max;
    __mmask16 neg, bad;
} range_acc;

BP_INLINE void store_scanned(float *out, __m512 v, range_acc *r) {
    const __m512 abs = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
    r->max = _mm512_max_ps(abs, r->max);
    r->neg |= _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NGE_UQ);
    _mm512_storeu_ps(out, v);
}

/* nv = b / 16 vectors (1, 4 or 16) of one block starting at column j0:
 * signs, every stage up to h = 8 nv, then, when last, the scale and the
 * scan. Always inlined with a constant nv, so v stays in registers. */
BP_INLINE void block_in_registers(const uint32_t *signs, const float *x, float *out, size_t j0,
                                  size_t nv, bool last, __m512 scale, range_acc *r) {
    const lane_signs s = make_lane_signs();
    __m512 v[REG_COLS / 16];
#pragma GCC unroll 16
    for (size_t i = 0; i < nv; i++)
        v[i] = load_chunk(signs, x, j0 + 16 * i, &s, &r->bad);
        /* Stage h = 16 hv pairs vectors j and j + hv for j with bit hv clear. */
#pragma GCC unroll 4
    for (size_t hv = 1; hv < nv; hv *= 2)
#pragma GCC unroll 16
        for (size_t j = 0; j < nv; j++)
            if (!(j & hv)) {
                const __m512 a = v[j], c = v[j | hv];
                v[j] = _mm512_add_ps(a, c);
                v[j | hv] = _mm512_sub_ps(a, c);
            }
#pragma GCC unroll 16
    for (size_t i = 0; i < nv; i++) {
        if (last)
            store_scanned(out + j0 + 16 * i, _mm512_mul_ps(v[i], scale), r);
        else
            _mm512_storeu_ps(out + j0 + 16 * i, v[i]);
    }
}

/* One block of b columns (16, 64, 256, 1024 or 4096) at column j0. */
static void rotate_block(const uint32_t *signs, const float *x, float *out, size_t j0, size_t b,
                         range_acc *acc) {
    /* 2^-l for b = 4^l, exactly. */
    const __m512 vscale = _mm512_set1_ps(1.0f / (float)(1u << (__builtin_ctzll(b) / 2)));
    range_acc r = *acc;
    if (b == 16) {
        block_in_registers(signs, x, out, j0, 1, true, vscale, &r);
    } else if (b == 64) {
        block_in_registers(signs, x, out, j0, 4, true, vscale, &r);
    } else if (b == REG_COLS) {
        block_in_registers(signs, x, out, j0, REG_COLS / 16, true, vscale, &r);
    } else {
        /* 1024 or 4096: 256-column pieces, then the wider stages in L1,
         * the last one scaled and scanned. */
        for (size_t i = 0; i < b; i += REG_COLS)
            block_in_registers(signs, x, out, j0 + i, REG_COLS / 16, false, vscale, &r);
        float *v = out + j0;
        for (size_t h = REG_COLS; h < b; h *= 2) {
            const bool last = 2 * h == b;
            for (size_t i = 0; i < b; i += 2 * h)
                for (size_t j = i; j < i + h; j += 16) {
                    const __m512 a = _mm512_loadu_ps(v + j), c = _mm512_loadu_ps(v + j + h);
                    const __m512 sum = _mm512_add_ps(a, c), dif = _mm512_sub_ps(a, c);
                    if (last) {
                        store_scanned(v + j, _mm512_mul_ps(sum, vscale), &r);
                        store_scanned(v + j + h, _mm512_mul_ps(dif, vscale), &r);
                    } else {
                        _mm512_storeu_ps(v + j, sum);
                        _mm512_storeu_ps(v + j + h, dif);
                    }
                }
        }
    }
    *acc = r;
}

size_t bp__rotate_blocks_avx512(const uint32_t *signs, const float *x, float *out, size_t cols,
                                size_t rot_block, bp_act_range *range, bool *finite) {
    range_acc r = {_mm512_setzero_ps(), 0, 0};
    size_t s = 0;
    while (s < cols) {
        /* bp__rotation_block_at: whole blocks, then descending powers of 4. */
        const size_t rem = cols - s;
        size_t b = rot_block;
        if (rem < b)
            for (b = 1; b * 4 <= rem; b *= 4) {
            }
        if (b < 16)
            break;
        rotate_block(signs, x, out, s, b, &r);
        s += b;
    }
    const float m = _mm512_reduce_max_ps(r.max);
    range->amax = m > range->amax ? m : range->amax;
    range->nonneg &= r.neg == 0;
    *finite = r.bad == 0;
    return s;
}
