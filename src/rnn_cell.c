/*
 * The cell updates in plain C, float and integer mode: the definition of the
 * operations every ISA version (cpu/rnn_cell_*.c) repeats lane by lane. In
 * float mode each gate's sigmoid or tanh runs over a contiguous array so that
 * the compiler vectorizes it for the baseline ISA (rnn_math.c).
 */
#include "rnn_internal.h"

static void lstm_portable(const float *xi, float *p, float *c, float *h, size_t H, size_t j0,
                          size_t j1) {
    size_t n = j1 - j0;
    for (int g = 0; g < 4; g++)
        for (size_t j = j0; j < j1; j++)
            p[g * H + j] = xi[g * H + j] + p[g * H + j];
    bp__rnn_sigmoid_array(p + j0, n);         /* i */
    bp__rnn_sigmoid_array(p + H + j0, n);     /* f */
    bp__rnn_tanh_array(p + 2 * H + j0, n);    /* g */
    bp__rnn_sigmoid_array(p + 3 * H + j0, n); /* o */
    for (size_t j = j0; j < j1; j++) {
        float cn = p[H + j] * c[j] + p[j] * p[2 * H + j];
        c[j] = cn;
        h[j] = cn;
    }
    bp__rnn_tanh_array(h + j0, n);
    for (size_t j = j0; j < j1; j++)
        h[j] = p[3 * H + j] * h[j];
}

static void gru_portable(const float *xi, float *p, const float *hp, float *h, size_t H, size_t j0,
                         size_t j1) {
    size_t n = j1 - j0;
    for (size_t j = j0; j < j1; j++) {
        p[j] = xi[j] + p[j];
        p[H + j] = xi[H + j] + p[H + j];
    }
    bp__rnn_sigmoid_array(p + j0, n);     /* r */
    bp__rnn_sigmoid_array(p + H + j0, n); /* z */
    for (size_t j = j0; j < j1; j++)
        p[2 * H + j] = xi[2 * H + j] + p[j] * p[2 * H + j];
    bp__rnn_tanh_array(p + 2 * H + j0, n); /* n */
    for (size_t j = j0; j < j1; j++)
        h[j] = (1.0f - p[H + j]) * p[2 * H + j] + p[H + j] * hp[j];
}

const bp_rnn_float_cell bp__rnn_cell_portable = {
    .name = "portable",
    .lstm = lstm_portable,
    .gru = gru_portable,
};

/* ---- integer mode (formats and rounding in docs/rnn.md) ------------------------ */

/* Q0.15 state -> the float the next product reads: exact (|h| <= 2^15). */
static inline float q15_to_float(int32_t h) {
    return (float)h * (1.0f / 32768.0f);
}

static void lstm_int_portable(const int16_t *xq, const float *p, int16_t *hq, int16_t *cq, float *h,
                              size_t H, size_t j0, size_t j1) {
    for (size_t j = j0; j < j1; j++) {
        int32_t pi = bp__rnn_sat16(xq[j] + bp__rnn_q312(p[j]));
        int32_t pf = bp__rnn_sat16(xq[H + j] + bp__rnn_q312(p[H + j]));
        int32_t pg = bp__rnn_sat16(xq[2 * H + j] + bp__rnn_q312(p[2 * H + j]));
        int32_t po = bp__rnn_sat16(xq[3 * H + j] + bp__rnn_q312(p[3 * H + j]));
        int32_t i = bp__rnn_sigmoid_q15(pi), f = bp__rnn_sigmoid_q15(pf);
        int32_t g = bp__rnn_tanh_q15(pg), o = bp__rnn_sigmoid_q15(po);
        /* Q0.15 * Q4.11 >> 15 and Q0.15 * Q0.15 >> 19 are both Q4.11. */
        int32_t cn = bp__rnn_sat16(bp__rnn_rshift(f * cq[j], 15) + bp__rnn_rshift(i * g, 19));
        cq[j] = (int16_t)cn;
        /* Q4.11 -> Q3.12 (saturating: tanh is 1 to 15 bits beyond 8). */
        int32_t tc = bp__rnn_tanh_q15(bp__rnn_sat16(cn * 2));
        int32_t hn = bp__rnn_rshift(o * tc, 15);
        hq[j] = (int16_t)hn;
        h[j] = q15_to_float(hn);
    }
}

static void gru_int_portable(const int16_t *xq, const float *p, int16_t *hq, float *h, size_t H,
                             size_t j0, size_t j1) {
    for (size_t j = j0; j < j1; j++) {
        int32_t r = bp__rnn_sigmoid_q15(bp__rnn_sat16(xq[j] + bp__rnn_q312(p[j])));
        int32_t z = bp__rnn_sigmoid_q15(bp__rnn_sat16(xq[H + j] + bp__rnn_q312(p[H + j])));
        /* Q0.15 * Q3.12 >> 15 is Q3.12. */
        int32_t rn = bp__rnn_rshift(r * bp__rnn_q312(p[2 * H + j]), 15);
        int32_t n = bp__rnn_tanh_q15(bp__rnn_sat16(xq[2 * H + j] + rn));
        /* h' = n + z (h - n): |z (h - n)| <= 32757 * 65534 < 2^31. */
        int32_t hn = n + bp__rnn_rshift(z * (hq[j] - n), 15);
        hn = hn < -32767 ? -32767 : hn > 32767 ? 32767 : hn;
        hq[j] = (int16_t)hn;
        h[j] = q15_to_float(hn);
    }
}

const bp_rnn_int_cell bp__rnn_int_cell_portable = {
    .name = "portable",
    .lstm = lstm_int_portable,
    .gru = gru_int_portable,
};
