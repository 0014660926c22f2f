/*
 * The RNN's int8 code products on CPU contexts (cpu/rnn_codes.c, the VNNI
 * loop in cpu/rnn_codes_avx512.c; docs/rnn.md "Code products").
 *
 * For a small uniform matrix and a plane count n, the n used planes of every
 * weight are unpacked once into one unsigned byte U = sum_{p<n} 2^(n-1-p) t_p
 * (t_p the plane bit, plane 0 the most significant) and kept with the matrix
 * (its backend-copy cache, freed with it). A product is then
 *   D = sum_g m_g (2 sum_{j in g} U_j q_j - (2^n - 1) sum_{j in g} q_j),
 * the same integer every kernel computes (docs/numerics.md), by VPDPBUSD on
 * the bytes with no per-call unpacking, table building or plane loop; the
 * combine is the library's, so y has the same bits as on every CPU path.
 */
#ifndef BP_RNN_CODES_H
#define BP_RNN_CODES_H

#include "bp_abi.h"

/* Columns one VNNI call handles (accumulators per row group). */
#define BP_RNN_CODES_MAX_COLS 8

struct bp_rnn_codes {
    int n;               /* planes in the codes */
    size_t rows;         /* matrix rows */
    size_t row_groups;   /* ceil(rows / 16) */
    size_t kpad;         /* padded K, a multiple of 64 */
    size_t quads;        /* kpad / 4 */
    size_t group_quads;  /* quads per multiplier group (quads when per row) */
    size_t ngroups;      /* groups per row */
    const uint8_t *mult; /* the matrix's multipliers, NULL when per row */
    /* [row group][quad][16 rows][4 columns]: row r of the group in dword r
     * of each 64-byte vector, as VPDPBUSD's accumulator lanes. */
    uint8_t *u;
    float *alpha; /* [row_groups * 16]: each row's scale of prefix n, 0 past rows */
};

/* One VNNI call: row groups [rg0, rg1) for ncols (1..8) nonzero columns. */
typedef struct bp_rnn_codes_call {
    const struct bp_rnn_codes *k;
    size_t rg0, rg1;
    size_t ncols;
    const int8_t *q8[BP_RNN_CODES_MAX_COLS];  /* kpad bytes per column */
    const int32_t *qg[BP_RNN_CODES_MAX_COLS]; /* (2^n - 1) * sum of q per group */
    float scale[BP_RNN_CODES_MAX_COLS];       /* s_x */
    float *y[BP_RNN_CODES_MAX_COLS];          /* the column's output, row 0 */
    const float *bias;                        /* rows floats or NULL */
} bp_rnn_codes_call;

#if defined(BP_ARCH_X86_64)
/* y[c][r] = alpha[r] * ((float)D * s_c) (+ bias[r]) for the call's rows, the
 * combine's operations in its order. Returns false when a y is not finite. */
bool bp__rnn_codes_rows_avx512(const bp_rnn_codes_call *call);
/* One column's q (kpad int32) as int8 into q8, and span times the sum of q
 * over each group of group_cols columns (a multiple of 16) into qg. False
 * when some q leaves int8 (q8 then holds truncated values). */
bool bp__rnn_codes_pack_avx512(const int32_t *q, size_t kpad, size_t group_cols, int32_t span,
                               int8_t *q8, int32_t *qg);
#endif

#endif /* BP_RNN_CODES_H */
