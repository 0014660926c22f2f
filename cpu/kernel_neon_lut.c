/*
 * AArch64 NEON lookup-table kernel (T-MAC style, exact): the tables of the
 * x86 LUT kernels, signed subset sums sum_i (bit_i ? +q_i : -q_i) of four
 * consecutive activations, looked up with TBL (vqtbl1q_u8) by the weight
 * nibble. The cost per weight is the same for every act_bits.
 *
 * LD4 (vld4q_u8) of a 64-byte line (16 rows x 32 columns) de-interleaves it
 * into four registers: register k holds byte k (columns 8k..8k+7) of rows
 * 0..15, one row per byte lane. Its low nibbles index group 2k and its high
 * nibbles group 2k + 1 of the word (4 columns each), so every TBL looks up
 * one 16-entry table for all 16 rows at once. TBL reads bytes, so each int16
 * entry is split into a low-byte and a high-byte table; ZIP1/ZIP2 of the two
 * lookups rebuild the int16 entries of rows 0-7 and 8-15.
 *
 * Sums run in int16 lanes, one set for low-nibble and one for high-nibble
 * groups (each gains at most 4 entries of |.| <= 4L per line), and are
 * widened into int32 rows before they can overflow. int16 adds wrap, so only
 * the value at a flush must fit.
 */
#include "cpu_kernel.h"

#include <arm_neon.h>

static bool nl_runnable(void) {
    return bp__cpu_features()->neon;
}

static int32_t nl_qmax(int act_bits, bool is_signed) {
    return is_signed ? (INT32_C(1) << (act_bits - 1)) - 1 : (INT32_C(1) << act_bits) - 1;
}

/* Entries |.| <= 4L fit int16 and a flush interval of >= 1 line exists
 * (16L <= 32767) for act_bits <= 11; int32 sums over a group are bounded by
 * kpad * L * (largest multiplier), the x86 LUT kernels' bound. */
static bool nl_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    if (act_bits < 2 || act_bits > 11)
        return false;
    return kpad <= (size_t)INT32_MAX / ((size_t)nl_qmax(act_bits, false) * mult_bound);
}

/* Per weight word: 8 groups x (low-byte table, high-byte table). */
static size_t nl_column_bytes(int act_bits, size_t kpad) {
    (void)act_bits;
    return kpad / 32 * 8 * 32;
}

static void nl_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    uint8_t *tab = scratch;
    for (size_t grp = 0; grp < kpad / 4; grp++) {
        const int32_t *q = col->q + 4 * grp;
        uint8_t *lo = tab + grp * 32, *hi = lo + 16;
        /* Entry nib differs from entry nib-without-its-lowest-bit by
         * +2*q of that bit. */
        int32_t e[16];
        e[0] = -(q[0] + q[1] + q[2] + q[3]);
        for (unsigned nib = 1; nib < 16; nib++)
            e[nib] = e[nib & (nib - 1)] + 2 * q[__builtin_ctz(nib)];
        for (int i = 0; i < 16; i++) {
            uint16_t u = (uint16_t)(int16_t)e[i];
            lo[i] = (uint8_t)(u & 0xffu);
            hi[i] = (uint8_t)(u >> 8);
        }
    }
    col->kernel_data = tab;
}

/* Adds the int16 entries that idx selects from the table pair at t into
 * acc[0] (rows 0-7) and acc[1] (rows 8-15). */
static inline __attribute__((always_inline)) void nl_lookup(uint8x16_t idx, const uint8_t *t,
                                                            int16x8_t *acc) {
    uint8x16_t lo = vqtbl1q_u8(vld1q_u8(t), idx);
    uint8x16_t hi = vqtbl1q_u8(vld1q_u8(t + 16), idx);
    acc[0] = vaddq_s16(acc[0], vreinterpretq_s16_u8(vzip1q_u8(lo, hi)));
    acc[1] = vaddq_s16(acc[1], vreinterpretq_s16_u8(vzip2q_u8(lo, hi)));
}

/* Per-row sums of t q over lines [w0, w1) of one row group (int32). */
static void nl_sum(const uint32_t *group, size_t w0, size_t w1, const uint8_t *tab, size_t flush,
                   int32_t *rows) {
    const uint8x16_t low = vdupq_n_u8(0x0f);
    int32x4_t r[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (size_t f0 = w0; f0 < w1; f0 += flush) {
        size_t f1 = w1 - f0 < flush ? w1 : f0 + flush;
        /* [low-nibble groups, high-nibble groups][rows 0-7, 8-15] */
        int16x8_t a[2][2] = {{vdupq_n_s16(0), vdupq_n_s16(0)}, {vdupq_n_s16(0), vdupq_n_s16(0)}};
        for (size_t w = f0; w < f1; w++) {
            uint8x16x4_t v = vld4q_u8((const uint8_t *)(group + w * BP_ROW_GROUP));
            const uint8_t *t = tab + w * 8 * 32;
            nl_lookup(vandq_u8(v.val[0], low), t + 0 * 32, a[0]);
            nl_lookup(vshrq_n_u8(v.val[0], 4), t + 1 * 32, a[1]);
            nl_lookup(vandq_u8(v.val[1], low), t + 2 * 32, a[0]);
            nl_lookup(vshrq_n_u8(v.val[1], 4), t + 3 * 32, a[1]);
            nl_lookup(vandq_u8(v.val[2], low), t + 4 * 32, a[0]);
            nl_lookup(vshrq_n_u8(v.val[2], 4), t + 5 * 32, a[1]);
            nl_lookup(vandq_u8(v.val[3], low), t + 6 * 32, a[0]);
            nl_lookup(vshrq_n_u8(v.val[3], 4), t + 7 * 32, a[1]);
        }
        r[0] = vaddq_s32(r[0], vaddl_s16(vget_low_s16(a[0][0]), vget_low_s16(a[1][0])));
        r[1] = vaddq_s32(r[1], vaddl_high_s16(a[0][0], a[1][0]));
        r[2] = vaddq_s32(r[2], vaddl_s16(vget_low_s16(a[0][1]), vget_low_s16(a[1][1])));
        r[3] = vaddq_s32(r[3], vaddl_high_s16(a[0][1], a[1][1]));
    }
    for (int i = 0; i < 4; i++)
        vst1q_s32(rows + 4 * i, r[i]);
}

/* D_p of one row group, one plane, one column (16 int64): per group of
 * columns, the row sums times the row's multiplier (docs/numerics.md). */
static void nl_group(const bp_matrix *m, size_t rg, const uint32_t *group, const uint8_t *tab,
                     size_t flush, int64_t *d) {
    const size_t kw = m->kwords, gw = m->group_words;
    const bool grouped = bp__grouped(m);
    for (int r = 0; r < BP_ROW_GROUP; r++)
        d[r] = 0;
    for (size_t g = 0, w0 = 0; w0 < kw; g++, w0 += gw) {
        size_t w1 = w0 + gw < kw ? w0 + gw : kw;
        int32_t rows[BP_ROW_GROUP];
        nl_sum(group, w0, w1, tab, flush, rows);
        const uint8_t *mult = grouped ? bp__mult_tile(m, rg, g) : NULL;
        for (int r = 0; r < BP_ROW_GROUP; r++)
            d[r] += mult ? (int64_t)mult[r] * rows[r] : rows[r];
    }
}

static void nl_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    for (size_t c = 0; c < call->ncols; c++) {
        const bp_act_column *col = call->cols[c];
        /* Each line adds at most 4 lookups x 4 activations x L per lane. */
        size_t flush = 32767 / (16 * (size_t)nl_qmax(col->act_bits, col->is_signed));
        for (int p = 0; p < col->planes; p++) {
            const uint32_t *slab = bp__slab(m, p);
            for (size_t g = call->g0; g < call->g1; g++)
                nl_group(m, g, slab + g * m->kwords * BP_ROW_GROUP, col->kernel_data, flush,
                         call->d + c * call->ld_col + (size_t)p * call->ld_plane +
                             (g - call->g0) * BP_ROW_GROUP);
        }
    }
    bp__kernel_fold_code(call);
}

const bp_cpu_kernel_desc bp__kernel_neon_lut = {
    .name = "neon-lut",
    .runnable = nl_runnable,
    .supports = nl_supports,
    .column_bytes = nl_column_bytes,
    .prepare = nl_prepare,
    .compute = nl_compute,
};
