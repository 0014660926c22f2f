/*
 * bitplane_rnn: LSTM and GRU stacks whose matrix products are bit-serial.
 *
 * Weights come in PyTorch's layout and gate order (torch.nn.LSTM / GRU):
 *  - LSTM: gates i, f, g, o;  weight_ih (4H x in), weight_hh (4H x H),
 *          i = sig(W_ii x + b_ii + W_hi h + b_hi), likewise f, o;
 *          g = tanh(...), c' = f*c + i*g, h' = o*tanh(c').
 *  - GRU:  gates r, z, n;  weight_ih (3H x in), weight_hh (3H x H),
 *          r = sig(W_ir x + b_ir + W_hr h + b_hr), likewise z;
 *          n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h' = (1-z)*n + z*h.
 * Layer 0 takes input_size inputs, every later layer the hidden state of the
 * layer below (in = hidden_size).
 *
 * Every weight matrix is quantized once, at creation, with the caller's
 * bp_quant_options; every call picks the plane counts (per layer, per
 * operator -- input or recurrent -- and per gate) and act_bits. The input
 * projections of all time steps of a layer run as one batched product; each
 * step then runs the recurrent product and the gate nonlinearities and state
 * update in C, without returning to the caller.
 *
 * The conventions of bitplane.h hold: a bp_status from every call that can
 * fail, bp_last_error() with a precise message, nothing written to outputs
 * on failure, option structs that start with `size`. An RNN is immutable
 * after creation: any number of threads may run it at once. It can run on
 * any context (every backend computes the same products bit for bit; the
 * elementwise part runs on the host, see docs/rnn.md).
 */
#ifndef BITPLANE_RNN_H
#define BITPLANE_RNN_H

#include "bitplane.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bp_rnn_cell {
    BP_RNN_LSTM = 1, /* 4 gates: i, f, g, o */
    BP_RNN_GRU = 2,  /* 3 gates: r, z, n */
} bp_rnn_cell;

#define BP_RNN_MAX_GATES  4
#define BP_RNN_MAX_LAYERS 64

/* One layer's weights, row-major float32, PyTorch layout. */
typedef struct bp_rnn_layer_weights {
    const float *weight_ih; /* (gates*hidden) x in, leading dimension in */
    const float *weight_hh; /* (gates*hidden) x hidden, leading dimension hidden */
    const float *bias_ih;   /* gates*hidden floats, or NULL for zeros */
    const float *bias_hh;   /* gates*hidden floats, or NULL for zeros */
} bp_rnn_layer_weights;

/* Per-row plane counts of one layer (docs/row-planes.md): gates*hidden
 * counts in the rows' PyTorch order (gate by gate), each 1..bits, the most
 * planes that row ever uses; NULL gives every row of that operator all
 * planes. With split gates, gate g's matrix takes entries g*hidden ..
 * (g+1)*hidden - 1. */
typedef struct bp_rnn_row_planes {
    const uint8_t *ih; /* rows of weight_ih */
    const uint8_t *hh; /* rows of weight_hh */
} bp_rnn_row_planes;

typedef struct bp_rnn_options {
    size_t size; /* sizeof(bp_rnn_options) */
    /* 0 (default): one matrix per operator (input, recurrent) and layer; a
     * call gives every gate of an operator the same plane count (fastest:
     * one product per operator). 1: one matrix per gate as well, so each
     * gate of each operator can take its own plane count. Quantization is
     * per row, so both store identical planes and coefficients and give
     * identical results at equal plane counts. */
    int split_gates;
    /* NULL, or one entry per layer: per-row plane counts of its input and
     * recurrent matrices. Row r then uses min(count, the call's planes for
     * its operator and gate) planes, bit for bit what a matrix quantized
     * without counts gives at that many planes, and a product reads only
     * the planes its rows use. (bp_quant_options.row_planes is for single
     * matrices; bp_rnn_create refuses it.) */
    const bp_rnn_row_planes *row_planes;
} bp_rnn_options;

#define BP_RNN_OPTIONS_INIT ((bp_rnn_options){.size = sizeof(bp_rnn_options)})

typedef struct bp_rnn bp_rnn;

/**
 * Quantize a stack of `layers` (1..BP_RNN_MAX_LAYERS) LSTM or GRU layers
 * from weights[layers]. quant applies to every matrix (NULL = defaults);
 * options may be NULL. Non-finite weights or biases give BP_ERR_NON_FINITE
 * naming the layer, array and element. The caller owns *out
 * (bp_rnn_destroy). ctx runs the quantization; the RNN does not keep it.
 */
BP_API bp_status bp_rnn_create(bp_context *ctx, bp_rnn_cell cell, size_t layers, size_t input_size,
                               size_t hidden_size, const bp_rnn_layer_weights *weights,
                               const bp_quant_options *quant, const bp_rnn_options *options,
                               bp_rnn **out);
/** Free an RNN. NULL is a no-op. */
BP_API void bp_rnn_destroy(bp_rnn *rnn);

/** Accessors; 0 for NULL. */
BP_API bp_rnn_cell bp_rnn_cell_kind(const bp_rnn *rnn);
BP_API size_t bp_rnn_layers(const bp_rnn *rnn);
BP_API size_t bp_rnn_input_size(const bp_rnn *rnn);
BP_API size_t bp_rnn_hidden_size(const bp_rnn *rnn);
/** 4 for an LSTM, 3 for a GRU. */
BP_API int bp_rnn_gates(const bp_rnn *rnn);
/** 1 when created with split_gates, else 0. */
BP_API int bp_rnn_split_gates(const bp_rnn *rnn);

typedef enum bp_rnn_operator {
    BP_RNN_INPUT = 0,     /* weight_ih */
    BP_RNN_RECURRENT = 1, /* weight_hh */
} bp_rnn_operator;

/**
 * The quantized matrix of one layer's operator: with fused gates (gate must
 * be -1) all gates*hidden rows; with split gates (gate in 0..gates-1) that
 * gate's hidden rows. Owned by the RNN (do not destroy). Use it for
 * bp_matrix_prefix_error and bp_matrix_dequantize. NULL with the error set
 * for bad arguments.
 */
BP_API const bp_matrix *bp_rnn_matrix(const bp_rnn *rnn, size_t layer, bp_rnn_operator op,
                                      int gate);

typedef enum bp_rnn_mode {
    /* Float elementwise: the library's own sigmoid and tanh in float32. */
    BP_RNN_FLOAT = 0,
    /* Integer elementwise (docs/rnn.md): Q3.12 int16 gate pre-activations,
     * table sigmoid/tanh to Q0.15, int16 cell state Q4.11, hidden state
     * Q0.15 re-quantized to act_bits with the fixed scale 2^-(act_bits-1)
     * for the next product. act_bits 2..16. */
    BP_RNN_INTEGER = 1,
} bp_rnn_mode;

/* Precision of one layer; zeros fall back to the run options' values. */
typedef struct bp_rnn_precision {
    int planes_ih[BP_RNN_MAX_GATES]; /* per gate, PyTorch order; a GRU uses 3 */
    int planes_hh[BP_RNN_MAX_GATES];
    int act_bits;
} bp_rnn_precision;

typedef struct bp_rnn_run_options {
    size_t size;   /* sizeof(bp_rnn_run_options) */
    int planes_ih; /* input matrices, every gate and layer: 1..bits; 0 = all */
    int planes_hh; /* recurrent matrices: 1..bits; 0 = all */
    int act_bits;  /* 0 = 8; 1..16 (float mode), 2..16 (integer mode) */
    /* NULL, or one entry per layer; an entry's zeros take the values above.
     * Gates of one operator may differ only when the RNN has split gates. */
    const bp_rnn_precision *layers;
    bp_rnn_mode mode; /* default BP_RNN_FLOAT */
} bp_rnn_run_options;

#define BP_RNN_RUN_OPTIONS_INIT ((bp_rnn_run_options){.size = sizeof(bp_rnn_run_options)})

/**
 * Run a whole sequence. x: steps x batch x input_size floats (time-major,
 * contiguous). h0 and c0: layers x batch x hidden_size, or NULL for zeros;
 * c0 must be NULL for a GRU. Outputs: y (steps x batch x hidden_size) gets
 * every h_t of the last layer; h_n and c_n (layers x batch x hidden_size,
 * each may be NULL; c_n must be NULL for a GRU) get the final state.
 * Outputs are written only when the call succeeds and may alias the inputs
 * (h_n == h0 continues a stream in place). Scratch is allocated once per
 * call, never per step.
 */
BP_API bp_status bp_rnn_forward(bp_context *ctx, const bp_rnn *rnn, const float *x, size_t steps,
                                size_t batch, const float *h0, const float *c0, float *y,
                                float *h_n, float *c_n, const bp_rnn_run_options *options);

/**
 * One time step for streaming: x is batch x input_size; h (and c for an
 * LSTM; NULL for a GRU) are layers x batch x hidden_size in the caller's
 * memory, read and then updated in place. The step's output is the last
 * layer's slice of h. Equal, bit for bit, to bp_rnn_forward over the same
 * steps.
 */
BP_API bp_status bp_rnn_step(bp_context *ctx, const bp_rnn *rnn, const float *x, size_t batch,
                             float *h, float *c, const bp_rnn_run_options *options);

/**
 * bp_rnn_step with a precision per batch column, so that streams at
 * different precisions share one step: column i runs every matrix at
 * min(column_planes[i], the count the options give that matrix), a 0 entry
 * at the options' counts (column_planes may be NULL: bp_rnn_step). Each
 * column equals, bit for bit, bp_rnn_step on that column alone with those
 * counts, for act_bits >= 2 (activations are quantized per column; at
 * act_bits 1 only columns of equal counts are promised that). Entries
 * outside 0..bits give BP_ERR_OUT_OF_RANGE naming the column.
 */
BP_API bp_status bp_rnn_step_columns(bp_context *ctx, const bp_rnn *rnn, const float *x,
                                     size_t batch, float *h, float *c, const int *column_planes,
                                     const bp_rnn_run_options *options);

/*
 * Files: a versioned little-endian container ("BPRNN\0\0\0", version 1;
 * version 2 when a matrix has per-row plane counts)
 * with the cell, sizes, biases and every matrix in bitplane's matrix format,
 * and a CRC-32C over all of it; every field is validated on load (corrupt
 * data BP_ERR_CORRUPT, a newer version BP_ERR_VERSION). The same
 * serialize/deserialize contract as matrices.
 */
BP_API bp_status bp_rnn_save(const bp_rnn *rnn, const char *path);
BP_API bp_status bp_rnn_load(bp_context *ctx, const char *path, bp_rnn **out);
BP_API bp_status bp_rnn_serialize(const bp_rnn *rnn, void *buf, size_t cap, size_t *needed);
BP_API bp_status bp_rnn_deserialize(bp_context *ctx, const void *buf, size_t len, bp_rnn **out);

#ifdef __cplusplus
}
#endif

#endif /* BITPLANE_RNN_H */
