/*
 * The activation column of the byte-code kernels (avx512-vnni-batched and
 * the AVX2 code kernels): q' = q - off as int8 in the kernel's byte order
 * and the word sums of q', made once per column and read by every weight
 * tile. Each kernel fills q8 in its own order (bp__code_column_carve gives
 * it the arrays).
 */
#ifndef BP_CODE_COLUMN_H
#define BP_CODE_COLUMN_H

#include "cpu_kernel.h"

typedef struct bp_code_column {
    int off;           /* 0, or 128 for unsigned 8-bit columns */
    const int8_t *q8;  /* kpad bytes q' = q - off */
    const int32_t *qw; /* kpad / 32 word sums of q' */
} bp_code_column;

/* q' fits int8 for act_bits <= 8 (with the offset for unsigned 8-bit
 * columns); the kernels bound their int32 segments by length, not by K,
 * and take any multiplier up to 255. */
static inline bool bp__code_column_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)kpad;
    (void)mult_bound;
    return act_bits >= 1 && act_bits <= 8;
}

static inline size_t bp__code_column_bytes(int act_bits, size_t kpad) {
    (void)act_bits;
    return bp__round_up(sizeof(bp_code_column), BP_ALIGN) + bp__round_up(kpad, BP_ALIGN) +
           kpad / 32 * sizeof(int32_t);
}

/* The column header at the start of scratch (bp__code_column_bytes), its
 * offset set and q8 / qw pointed at their arrays for the kernel to fill;
 * col->kernel_data points at it. */
static inline bp_code_column *bp__code_column_carve(bp_act_column *col, size_t kpad, void *scratch,
                                                    int8_t **q8, int32_t **qw) {
    bp_code_column *cc = scratch;
    *q8 = (int8_t *)((char *)scratch + bp__round_up(sizeof(bp_code_column), BP_ALIGN));
    *qw = (int32_t *)((char *)*q8 + bp__round_up(kpad, BP_ALIGN));
    cc->off = (!col->is_signed && col->act_bits == 8) ? 128 : 0;
    cc->q8 = *q8;
    cc->qw = *qw;
    col->kernel_data = cc;
    return cc;
}

#endif
