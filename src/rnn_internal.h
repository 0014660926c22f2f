/*
 * Internal definitions of the LSTM/GRU layer (src/rnn_*.c). Not installed.
 * docs/rnn.md describes the numerics; bitplane_rnn.h the API.
 */
#ifndef BP_RNN_INTERNAL_H
#define BP_RNN_INTERNAL_H

#include "bitplane_rnn.h"
#include "bp_matrix.h"

typedef struct bp_rnn_layer {
    size_t in; /* input length of this layer */
    /* Fused gates: [0] holds all gates*hidden rows. Split: [g] holds gate g. */
    bp_matrix *ih[BP_RNN_MAX_GATES];
    bp_matrix *hh[BP_RNN_MAX_GATES];
    float *bias_ih, *bias_hh; /* gates*hidden each; zeros when none was given */
} bp_rnn_layer;

struct bp_rnn {
    bp_rnn_cell cell;
    int gates;
    int split; /* 0 fused, 1 one matrix per gate */
    int bits;  /* planes k of every matrix */
    size_t layers, input, hidden;
    bp_rnn_layer *layer;
};

static inline int bp__rnn_cell_gates(bp_rnn_cell cell) {
    return cell == BP_RNN_LSTM ? 4 : cell == BP_RNN_GRU ? 3 : 0;
}
/* Matrices per operator: 1 fused, gates when split. */
static inline int bp__rnn_mats(const bp_rnn *rnn) {
    return rnn->split ? rnn->gates : 1;
}

/* An RNN shell with its layer array and zeroed biases; matrices NULL. */
bp_status bp__rnn_alloc(bp_rnn_cell cell, size_t layers, size_t input, size_t hidden, int split,
                        bp_rnn **out);

/* ---- elementwise numerics (src/rnn_math.c) ---------------------------------- */

/* Float mode: the library's own exp-based sigmoid and tanh, built from IEEE
 * add, multiply, divide and exact bit operations only (no libm), so every
 * build and platform computes the same bits. Max error: see docs/rnn.md. */
float bp__rnn_sigmoid(float x);
float bp__rnn_tanh(float x);
void bp__rnn_sigmoid_array(float *v, size_t n);
void bp__rnn_tanh_array(float *v, size_t n);

/* Float-mode cell updates of one batch column over hidden units [j0, j1):
 * p holds the recurrent product's G*H pre-activations (gate g at g*H) and is
 * overwritten as scratch; xi the input projection's, laid out alike. LSTM:
 * c (cell state) is updated in place and h gets h'. GRU: hp is h_{t-1}.
 * Every implementation performs the portable code's IEEE operations in the
 * same order per unit (one lane each), so all give the same bits; they
 * differ only in how many units one instruction handles. */
typedef struct bp_rnn_float_cell {
    const char *name;
    void (*lstm)(const float *xi, float *p, float *c, float *h, size_t H, size_t j0, size_t j1);
    void (*gru)(const float *xi, float *p, const float *hp, float *h, size_t H, size_t j0,
                size_t j1);
} bp_rnn_float_cell;

/* src/rnn_cell.c: plain C (vectorized by the compiler for the baseline ISA). */
extern const bp_rnn_float_cell bp__rnn_cell_portable;

/* Integer-mode cell updates of one batch column over units [j0, j1) (formats
 * in docs/rnn.md): xq holds the input projection's G*H pre-activations in
 * Q3.12, p the recurrent product's in float (converted by bp__rnn_q312); the
 * Q0.15 hidden state hq (and the LSTM's Q4.11 cell state cq) are updated in
 * place and h gets h' as the next product reads it. Every version computes
 * the portable code's integers, so all give the same bits. */
typedef struct bp_rnn_int_cell {
    const char *name;
    void (*lstm)(const int16_t *xq, const float *p, int16_t *hq, int16_t *cq, float *h, size_t H,
                 size_t j0, size_t j1);
    void (*gru)(const int16_t *xq, const float *p, int16_t *hq, float *h, size_t H, size_t j0,
                size_t j1);
} bp_rnn_int_cell;
/* src/rnn_cell.c: plain C, one unit at a time. */
extern const bp_rnn_int_cell bp__rnn_int_cell_portable;
/* The implementation for a context's CPU path (cpu/rnn_cell_dispatch.c):
 * the AVX-512 cell for the AVX-512 paths, AVX2 for the AVX2 paths, the
 * portable one for the reference and portable paths, and for AUTO the
 * widest this CPU runs. */
const bp_rnn_float_cell *bp__rnn_float_cell_for(bp_cpu_kernel kernel);
/* The integer-mode update for a context's CPU path: AVX-512 for the AVX-512
 * paths and AUTO where the CPU runs it, else the portable one. */
const bp_rnn_int_cell *bp__rnn_int_cell_for(bp_cpu_kernel kernel);

/* Integer mode. Q3.12: int16 with 12 fraction bits; Q0.15: 15 fraction
 * bits; Q4.11: 11 fraction bits. */
#define BP_RNN_Q_PRE  12 /* gate pre-activations */
#define BP_RNN_Q_GATE 15 /* gate outputs and the hidden state */
#define BP_RNN_Q_CELL 11 /* LSTM cell state */

/* float -> Q3.12: round to nearest even, saturate to int16. Only used on
 * the float outputs of the products (the library's combine), which are
 * finite. Inline, as the functions below, because the integer step calls
 * them per unit: rintf is a libm call on baseline x86-64. Adding and
 * subtracting 1.5 * 2^23 rounds the clamped s (|s| <= 2^15) to an integer
 * with ties to even, exactly as rintf does in the default rounding mode. */
static inline int32_t bp__rnn_q312(float v) {
    float s = v * 4096.0f;
    s = s < -32768.0f ? -32768.0f : (s > 32767.0f ? 32767.0f : s);
    return (int32_t)((s + 12582912.0f) - 12582912.0f);
}
/* Q3.12 -> Q0.15 by 256-segment piecewise-linear tables over [0, 8]
 * (src/rnn_math.c): tanh(k/32) and sigmoid(k/32), k = 0..256. */
extern const int16_t bp__rnn_tanh_table[257], bp__rnn_sigmoid_table[257];
/* f(|x|) for x in Q3.12, interpolated in table t. */
static inline int32_t bp__rnn_lookup(const int16_t *t, int32_t x) {
    int32_t a = x < 0 ? -x : x;
    a = a > 32767 ? 32767 : a;
    int32_t k = a >> 7, frac = a & 127;
    return t[k] + (((t[k + 1] - t[k]) * frac + 64) >> 7);
}
static inline int32_t bp__rnn_tanh_q15(int32_t x) {
    int32_t v = bp__rnn_lookup(bp__rnn_tanh_table, x);
    return x < 0 ? -v : v;
}
static inline int32_t bp__rnn_sigmoid_q15(int32_t x) {
    int32_t v = bp__rnn_lookup(bp__rnn_sigmoid_table, x);
    return x < 0 ? 32768 - v : v;
}
/* v / 2^s rounded half up (add half, arithmetic shift). s >= 1. */
static inline int32_t bp__rnn_rshift(int32_t v, int s) {
    return (v + ((int32_t)1 << (s - 1))) >> s;
}
static inline int32_t bp__rnn_sat16(int32_t v) {
    return v < -32768 ? -32768 : v > 32767 ? 32767 : v;
}

/* ---- code products on CPU contexts (cpu/rnn_codes.c) ------------------------ */

/* A small uniform matrix's n used planes as one byte per weight, for the
 * VNNI products of the step loop (cpu/rnn_codes.h, docs/rnn.md). */
typedef struct bp_rnn_codes bp_rnn_codes;
/* The codes of m at `planes` planes, made on first use and kept with m, or
 * NULL where they do not apply (another backend or a forced CPU path, no
 * AVX-512 VNNI, act_bits > 8, residual, rotated or per-row-plane matrices,
 * codes over 1 MiB, int32 bounds); then the backend's product runs. */
const bp_rnn_codes *bp__rnn_codes_for(const bp_context *ctx, const bp_matrix *m, int planes,
                                      int act_bits);
/* Padded K of the codes, and the bytes of work buffer a product on codes of
 * padded K kpad needs (64-byte aligned). */
size_t bp__rnn_codes_kpad(const bp_rnn_codes *k);
size_t bp__rnn_codes_work_bytes(size_t kpad);
/* The product a describes (planes and act_bits those of the codes), with y
 * bit-identical to ctx->ops->gemm's. Codes hold one plane count, so column
 * planes that cap a column below it send the product to ctx->ops->gemm. */
bp_status bp__rnn_codes_gemm(bp_context *ctx, const bp_rnn_codes *k, const bp_gemm_args *a,
                             void *work);

#endif /* BP_RNN_INTERNAL_H */
