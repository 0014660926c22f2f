/*
 * AArch64 NEON popcount kernel, for every act_bits: the AND-popcount
 * identity of kernel_popcount_prepare.c with CNT (vcntq_u8) byte counts.
 *
 * A line (16 rows x 32 columns, 64 bytes) is four q registers, rows 4i..4i+3
 * in register i, one row dword per 32-bit lane. Per activation bit and
 * register: AND (XOR for binary columns) with the broadcast activation word,
 * CNT, and a byte add. Byte counters hold up to 31 lines (8 per line per
 * byte, <= 248); then UADDLP twice folds the four bytes of each row dword
 * into its 32-bit lane. Four activation bits share one pass over a block of
 * lines: 16 byte counters, 4 line registers and the broadcasts fit the 32
 * vector registers, and the block stays in L1 for the next four bits.
 */
#include "kernel_popcount.h"

#include <arm_neon.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* Lines per block: byte counters hold 31 lines of at most 8 each. */
#define NP_BLOCK_LINES 31
/* Activation bits per pass over a block. */
#define NP_PLANES 4

static bool np_runnable(void) {
    return bp__cpu_features()->neon;
}

static bool np_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)kpad;
    (void)mult_bound; /* counts stay int32: grouped matrices keep K <= BP_GROUP_MAX_K */
    return act_bits >= 1 && act_bits <= BP_MAX_ACT_BITS;
}

/* cnt[4b + i] (rows 4i..4i+3) += counts of NB activation bits from b0 over
 * n <= 31 lines. words: activation bit words, bit-major (kw per bit). */
BP_INLINE void np_block(const uint32_t *lines, size_t n, const uint32_t *words, size_t kw, int b0,
                        bool binary, uint32x4_t *cnt, const int NB) {
    uint8x16_t acc[NP_PLANES][4];
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            acc[b][i] = vdupq_n_u8(0);
    for (size_t w = 0; w < n; w++) {
        const uint32_t *lp = lines + w * BP_ROW_GROUP;
        uint32x4_t l[4] = {vld1q_u32(lp), vld1q_u32(lp + 4), vld1q_u32(lp + 8), vld1q_u32(lp + 12)};
#pragma GCC unroll 4
        for (int b = 0; b < NB; b++) {
            uint32x4_t a = vdupq_n_u32(words[(size_t)(b0 + b) * kw + w]);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                uint32x4_t x = binary ? veorq_u32(l[i], a) : vandq_u32(l[i], a);
                acc[b][i] = vaddq_u8(acc[b][i], vcntq_u8(vreinterpretq_u8_u32(x)));
            }
        }
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; b++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            cnt[4 * (b0 + b) + i] =
                vaddq_u32(cnt[4 * (b0 + b) + i], vpaddlq_u16(vpaddlq_u8(acc[b][i])));
}

static void np_block_1(const uint32_t *l, size_t n, const uint32_t *wd, size_t kw, int b0, bool bin,
                       uint32x4_t *cnt) {
    np_block(l, n, wd, kw, b0, bin, cnt, 1);
}
static void np_block_2(const uint32_t *l, size_t n, const uint32_t *wd, size_t kw, int b0, bool bin,
                       uint32x4_t *cnt) {
    np_block(l, n, wd, kw, b0, bin, cnt, 2);
}
static void np_block_3(const uint32_t *l, size_t n, const uint32_t *wd, size_t kw, int b0, bool bin,
                       uint32x4_t *cnt) {
    np_block(l, n, wd, kw, b0, bin, cnt, 3);
}
static void np_block_4(const uint32_t *l, size_t n, const uint32_t *wd, size_t kw, int b0, bool bin,
                       uint32x4_t *cnt) {
    np_block(l, n, wd, kw, b0, bin, cnt, 4);
}

/* Per-row counts c32[b][row] of lines [w0, w1) of one row group. */
static void np_count(const uint32_t *group, size_t kw, size_t w0, size_t w1,
                     const bp_act_column *col, int32_t (*c32)[BP_ROW_GROUP]) {
    typedef void (*block_fn)(const uint32_t *, size_t, const uint32_t *, size_t, int, bool,
                             uint32x4_t *);
    static const block_fn blocks[NP_PLANES] = {np_block_1, np_block_2, np_block_3, np_block_4};
    const int A = col->act_bits;
    uint32x4_t cnt[4 * BP_MAX_ACT_BITS];
    for (int i = 0; i < 4 * A; i++)
        cnt[i] = vdupq_n_u32(0);
    for (size_t w = w0; w < w1; w += NP_BLOCK_LINES) {
        size_t n = w1 - w < NP_BLOCK_LINES ? w1 - w : NP_BLOCK_LINES;
        for (int b0 = 0; b0 < A; b0 += NP_PLANES) {
            int nb = A - b0 < NP_PLANES ? A - b0 : NP_PLANES;
            blocks[nb - 1](group + w * BP_ROW_GROUP, n, col->bits + w, kw, b0, A == 1, cnt);
        }
    }
    for (int b = 0; b < A; b++)
        for (int i = 0; i < 4; i++)
            vst1q_u32((uint32_t *)c32[b] + 4 * i, cnt[4 * b + i]);
}

static void np_compute(const bp_kernel_call *call) {
    bp__popcount_compute(call, np_count);
}

const bp_cpu_kernel_desc bp__kernel_neon_popcount = {
    .name = "neon",
    .runnable = np_runnable,
    .supports = np_supports,
    .column_bytes = bp__popcount_column_bytes,
    .prepare = bp__popcount_prepare,
    .compute = np_compute,
};
