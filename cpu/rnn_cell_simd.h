/*
 * Float-mode LSTM/GRU cell updates on SIMD vectors, one unit per lane: the
 * body of cpu/rnn_cell_avx512.c and cpu/rnn_cell_avx2.c, which define the
 * vector type and operations below and then include this file.
 *
 * Each lane performs exactly the IEEE operations of the portable code
 * (src/rnn_cell.c, src/rnn_math.c) in the same order: add, subtract,
 * multiply and divide (correctly rounded, never fused: the library builds
 * with -ffp-contract=off and these files do not multiply-add), min/max for
 * the clamp and integer bit operations for 2^k. So every unit's result has
 * the same bits as the portable path's, which the RNN tests check against
 * the reference path on every CPU path. Units past the last whole vector
 * take the scalar functions themselves.
 *
 * The including file defines:
 *   VEC, VLANES               vector of floats and its lane count
 *   V_SET1(f), V_LOAD(p), V_STORE(p, v)
 *   V_ADD, V_SUB, V_MUL, V_DIV, V_MAX, V_MIN   (a op b, lane by lane)
 *   V_NEG(v)                  sign bit flipped (exact, as unary minus)
 *   V_POW2I(k)                2^k from a float vector holding integers
 *                             in [-126, 127], built from bits
 */
#include "rnn_internal.h"

/* exp(x) for x clamped to [-87, 88]: src/rnn_math.c's exp_clamped. The
 * clamp's operand order gives C's x < lo ? lo : x for every x, NaN
 * included (MAX/MIN return the second operand when unordered). */
static inline VEC v_exp_clamped(VEC x) {
    x = V_MAX(V_SET1(-87.0f), x);
    x = V_MIN(V_SET1(88.0f), x);
    const VEC magic = V_SET1(12582912.0f);
    VEC k = V_MUL(x, V_SET1(1.44269504088896341f));
    k = V_SUB(V_ADD(k, magic), magic);
    VEC r = V_SUB(x, V_MUL(k, V_SET1(0.693359375f)));
    r = V_ADD(r, V_MUL(k, V_SET1(2.12194440e-4f)));
    VEC p = V_SET1(1.9875691500e-4f);
    p = V_ADD(V_MUL(p, r), V_SET1(1.3981999507e-3f));
    p = V_ADD(V_MUL(p, r), V_SET1(8.3334519073e-3f));
    p = V_ADD(V_MUL(p, r), V_SET1(4.1665795894e-2f));
    p = V_ADD(V_MUL(p, r), V_SET1(1.6666665459e-1f));
    p = V_ADD(V_MUL(p, r), V_SET1(5.0000001201e-1f));
    p = V_ADD(V_ADD(V_MUL(p, V_MUL(r, r)), r), V_SET1(1.0f));
    return V_MUL(p, V_POW2I(k));
}

/* 1 / (1 + exp(-x)) */
static inline VEC v_sigmoid(VEC x) {
    const VEC one = V_SET1(1.0f);
    return V_DIV(one, V_ADD(one, v_exp_clamped(V_NEG(x))));
}

/* 1 - 2 / (exp(2x) + 1) */
static inline VEC v_tanh(VEC x) {
    const VEC one = V_SET1(1.0f), two = V_SET1(2.0f);
    return V_SUB(one, V_DIV(two, V_ADD(v_exp_clamped(V_MUL(two, x)), one)));
}

/* LSTM, as lstm_portable: gates i f g o from xi + p, c' = f c + i g,
 * h' = o tanh(c'). p is left as it was (the portable code's use of p as
 * scratch is not part of the result). */
static void lstm_simd(const float *xi, float *p, float *c, float *h, size_t H, size_t j0,
                      size_t j1) {
    size_t j = j0;
    for (; j + VLANES <= j1; j += VLANES) {
        VEC i = v_sigmoid(V_ADD(V_LOAD(xi + j), V_LOAD(p + j)));
        VEC f = v_sigmoid(V_ADD(V_LOAD(xi + H + j), V_LOAD(p + H + j)));
        VEC g = v_tanh(V_ADD(V_LOAD(xi + 2 * H + j), V_LOAD(p + 2 * H + j)));
        VEC o = v_sigmoid(V_ADD(V_LOAD(xi + 3 * H + j), V_LOAD(p + 3 * H + j)));
        VEC cn = V_ADD(V_MUL(f, V_LOAD(c + j)), V_MUL(i, g));
        V_STORE(c + j, cn);
        V_STORE(h + j, V_MUL(o, v_tanh(cn)));
    }
    for (; j < j1; j++) {
        float i = bp__rnn_sigmoid(xi[j] + p[j]);
        float f = bp__rnn_sigmoid(xi[H + j] + p[H + j]);
        float g = bp__rnn_tanh(xi[2 * H + j] + p[2 * H + j]);
        float o = bp__rnn_sigmoid(xi[3 * H + j] + p[3 * H + j]);
        float cn = f * c[j] + i * g;
        c[j] = cn;
        h[j] = o * bp__rnn_tanh(cn);
    }
}

/* GRU, as gru_portable: r, z from xi + p, n = tanh(xi_n + r p_n),
 * h' = (1 - z) n + z h. */
static void gru_simd(const float *xi, float *p, const float *hp, float *h, size_t H, size_t j0,
                     size_t j1) {
    const VEC one = V_SET1(1.0f);
    size_t j = j0;
    for (; j + VLANES <= j1; j += VLANES) {
        VEC r = v_sigmoid(V_ADD(V_LOAD(xi + j), V_LOAD(p + j)));
        VEC z = v_sigmoid(V_ADD(V_LOAD(xi + H + j), V_LOAD(p + H + j)));
        VEC n = v_tanh(V_ADD(V_LOAD(xi + 2 * H + j), V_MUL(r, V_LOAD(p + 2 * H + j))));
        V_STORE(h + j, V_ADD(V_MUL(V_SUB(one, z), n), V_MUL(z, V_LOAD(hp + j))));
    }
    for (; j < j1; j++) {
        float r = bp__rnn_sigmoid(xi[j] + p[j]);
        float z = bp__rnn_sigmoid(xi[H + j] + p[H + j]);
        float n = bp__rnn_tanh(xi[2 * H + j] + r * p[2 * H + j]);
        h[j] = (1.0f - z) * n + z * hp[j];
    }
}
