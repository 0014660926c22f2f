/*
 * The randomized block-Hadamard rotation of K (docs/numerics.md).
 *
 * K splits into blocks: whole blocks of rot_block columns (a power of four),
 * then the rest into descending powers of four (K = 100, block 64:
 * 64 + 16 + 16 + 4). Column j gets a random sign from the matrix's seed. For
 * a block of b = 4^l columns with H the unnormalized +-1 Hadamard matrix
 * (H H = b I) and D the signs, both sides use the orthonormal R = H D / 2^l:
 *   input:   x' = (H D x) * 2^-l,   weights: w' = (H D w) * 2^-l,
 * so w' . x' = w . x and ||w'|| = ||w||: the quantizer's errors are the
 * errors of the original weights. The input side runs in float on every
 * backend in one fixed order: negate, then the butterfly stages
 * h = 1, 2, 4, ..., b/2, each pair (j, j + h) becoming (a + c, a - c), then
 * one multiply by 2^-l. Every operation is one IEEE rounding, so all
 * backends agree bit for bit. The weight side runs in double before
 * quantization.
 */
#include "bp_rotation.h"
#include "bp_finite.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void bp__rotation_make_signs(bp_matrix *m) {
    for (size_t w = 0; w < m->kwords; w++) {
        uint32_t bits = (uint32_t)splitmix64(m->rot_seed + w);
        size_t j0 = w * 32;
        if (j0 >= m->cols)
            bits = 0;
        else if (m->cols - j0 < 32)
            bits &= (1u << (m->cols - j0)) - 1u;
        m->rot_signs[w] = bits;
    }
}

size_t bp__rotation_block_at(const bp_matrix *m, size_t start) {
    size_t rem = m->cols - start, b = (size_t)m->rot_block;
    if (rem >= b)
        return b;
    b = 1;
    while (b * 4 <= rem)
        b *= 4;
    return b;
}

static int log2_exact(size_t b) {
    int l = 0;
    while (((size_t)1 << l) < b)
        l++;
    return l;
}

static int sign_bit(const bp_matrix *m, size_t j) {
    return (int)((m->rot_signs[j / 32] >> (j % 32)) & 1u);
}

void bp__rotate_signs_scalar(const uint32_t *signs, const float *x, size_t j0, size_t cols,
                             float *out) {
    for (size_t j = j0; j < j0 + cols; j++)
        out[j] = (signs[j / 32] >> (j % 32)) & 1u ? -x[j] : x[j];
}

void bp__rotate_block_scalar(float *v, size_t b, float scale) {
    for (size_t h = 1; h < b; h *= 2)
        for (size_t i = 0; i < b; i += 2 * h)
            for (size_t j = i; j < i + h; j++) {
                float a = v[j], c = v[j + h];
                v[j] = a + c;
                v[j + h] = a - c;
            }
    for (size_t j = 0; j < b; j++)
        v[j] = v[j] * scale;
}

/* 2^-(l/2) for a block of b = 4^(l/2) columns, exactly. */
static float block_scale(size_t b) {
    return 1.0f / (float)((size_t)1 << (log2_exact(b) / 2));
}

bool bp__rotate_input(const bp_matrix *m, const float *x, float *out, bp_act_range *range,
                      bool check) {
    range->amax = 0.0f;
    range->nonneg = true;
    size_t s = 0;
    bool finite = true;
#if defined(BP_ARCH_X86_64)
    /* One fused pass per block in vectors (src/rotation_avx512.c), the same
     * operations per element, up to the blocks below 16 columns (only at the
     * end of K, so every vector block starts at a multiple of 16). */
    if (bp__cpu_has_avx512bw())
        s = bp__rotate_blocks_avx512(m->rot_signs, x, out, m->cols, (size_t)m->rot_block, range,
                                     &finite);
#endif
    if (check &&
        (!finite || (s < m->cols && bp__first_non_finite(x + s, m->cols - s) < m->cols - s)))
        return false;
    while (s < m->cols) {
        const size_t b = bp__rotation_block_at(m, s);
        bp__rotate_signs_scalar(m->rot_signs, x, s, b, out);
        bp__rotate_block_scalar(out + s, b, block_scale(b));
        bp_act_range r;
        bp__act_scan_scalar(out + s, b, &r.amax, &r.nonneg);
        range->amax = r.amax > range->amax ? r.amax : range->amax;
        range->nonneg &= r.nonneg;
        s += b;
    }
    return true;
}

void bp__rotate_weights(const bp_matrix *m, const float *w, double *out) {
    for (size_t j = 0; j < m->cols; j++)
        out[j] = sign_bit(m, j) ? -(double)w[j] : (double)w[j];
    for (size_t s = 0; s < m->cols;) {
        const size_t b = bp__rotation_block_at(m, s);
        double *v = out + s;
        for (size_t h = 1; h < b; h *= 2)
            for (size_t i = 0; i < b; i += 2 * h)
                for (size_t j = i; j < i + h; j++) {
                    double a = v[j], c = v[j + h];
                    v[j] = a + c;
                    v[j + h] = a - c;
                }
        const double scale = ldexp(1.0, -(log2_exact(b) / 2));
        for (size_t j = 0; j < b; j++)
            v[j] *= scale;
        s += b;
    }
}

void bp__unrotate_weights(const bp_matrix *m, double *v) {
    /* R is orthonormal and H symmetric: w = D (H w') 2^-l. */
    for (size_t s = 0; s < m->cols;) {
        const size_t b = bp__rotation_block_at(m, s);
        double *u = v + s;
        for (size_t h = 1; h < b; h *= 2)
            for (size_t i = 0; i < b; i += 2 * h)
                for (size_t j = i; j < i + h; j++) {
                    double a = u[j], c = u[j + h];
                    u[j] = a + c;
                    u[j + h] = a - c;
                }
        const double scale = ldexp(1.0, -(log2_exact(b) / 2));
        for (size_t j = 0; j < b; j++)
            u[j] *= scale;
        s += b;
    }
    for (size_t j = 0; j < m->cols; j++)
        if (sign_bit(m, j))
            v[j] = -v[j];
}

float bp__rotation_growth(const bp_matrix *m) {
    /* |x'| <= b 2^-l max|x| = 2^l max|x|. */
    return ldexpf(1.0f, log2_exact((size_t)m->rot_block) / 2);
}
