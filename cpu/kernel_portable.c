/*
 * The portable popcount kernel: the same AND-popcount identity as the SIMD
 * kernels (see kernel_popcount_prepare.c), in plain C, so every CPU gets a
 * word-level path and the bit-by-bit reference stays the test oracle only.
 * The 16 row counters of a 64-byte line are independent, so compilers can
 * vectorize the row loop where the target has a vector popcount (AArch64
 * CNT, for example).
 */
#include "kernel_popcount.h"

#include <string.h>

static bool portable_runnable(void) {
    return true;
}

static bool portable_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)kpad;
    (void)mult_bound; /* counts stay int32: grouped matrices keep K <= BP_GROUP_MAX_K */
    return act_bits >= 1 && act_bits <= BP_MAX_ACT_BITS;
}

/* Per-row counts cnt[b][row] of lines [w0, w1) of one row group. */
static void portable_count(const uint32_t *group, size_t kw, size_t w0, size_t w1,
                           const bp_act_column *col, int32_t (*cnt)[BP_ROW_GROUP]) {
    const int A = col->act_bits;
    /* Local counters: cnt may alias the planes (int32 and uint32), which
     * would keep the compiler from holding these in registers. */
    int32_t acc[BP_MAX_ACT_BITS][BP_ROW_GROUP] = {{0}};
    for (size_t w = w0; w < w1; w++) {
        const uint32_t *line = group + w * BP_ROW_GROUP;
        for (int b = 0; b < A; b++) {
            uint32_t a = col->bits[(size_t)b * kw + w];
            for (int r = 0; r < BP_ROW_GROUP; r++)
                acc[b][r] += __builtin_popcount(A == 1 ? line[r] ^ a : line[r] & a);
        }
    }
    memcpy(cnt, acc, (size_t)A * sizeof acc[0]);
}

static void portable_compute(const bp_kernel_call *call) {
    bp__popcount_compute(call, portable_count);
}

const bp_cpu_kernel_desc bp__kernel_portable = {
    .name = "portable",
    .runnable = portable_runnable,
    .supports = portable_supports,
    .column_bytes = bp__popcount_column_bytes,
    .prepare = bp__popcount_prepare,
    .compute = portable_compute,
};
