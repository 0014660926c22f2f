/*
 * AVX-512 VPOPCNTDQ kernel.
 *
 * One 64-byte line of a weight slab is 16 rows x 32 columns, one dword per
 * row, so ANDing it with a broadcast activation dword and counting bits per
 * dword yields 16 row partial counts at once: the counters are row lanes and
 * no horizontal reduction is ever needed. Counts stay int32 (each is at most
 * K) and are widened to int64 only in the final combine.
 *
 * The inner loop is instantiated per act_bits so that its counters are
 * unrolled into registers. Columns of a batch take turns over one block of a
 * row group that stays in L1, so the weights come from memory once per call
 * whatever the batch and K.
 */
#include "bp_internal.h"

#include <immintrin.h>

#define BP_INLINE static inline __attribute__((always_inline))

/* How far ahead of the current line the weight stream is prefetched. The
 * hardware prefetcher alone leaves the kernel waiting on DRAM. */
#define PC_PREFETCH_BYTES 8192

/* Lines of a row group processed per column turn; 16 KiB stays in L1. */
#define PC_BLOCK_LINES 256

/*
 * The shared prepare step stores activation planes plane-major. The kernel
 * wants the act_bits words that meet one weight word side by side, so that
 * every broadcast is one base register plus a constant offset instead of one
 * pointer per plane (16 pointers would exhaust the general registers).
 */
static size_t pc_own_bytes(int act_bits, size_t kpad) {
    return bp__round_up((size_t)act_bits * (kpad / 32) * sizeof(uint32_t), BP_ALIGN);
}

static size_t pc_column_bytes(int act_bits, size_t kpad) {
    return pc_own_bytes(act_bits, kpad) + bp__popcount_column_bytes(act_bits, kpad);
}

static void pc_prepare(bp_act_column *col, size_t kpad, void *scratch) {
    const size_t kw = kpad / 32, A = (size_t)col->act_bits;
    uint32_t *words = scratch;
    bp__popcount_prepare(col, kpad, (char *)scratch + pc_own_bytes(col->act_bits, kpad));
    for (size_t b = 0; b < A; b++)
        for (size_t w = 0; w < kw; w++)
            words[w * A + b] = col->bits[b * kw + w];
    col->kernel_data = words;
}

/* cnt[b] += popcount(line AND a_b) per row lane over n lines (XOR for the
 * binary form). words holds A activation words per line. */
BP_INLINE void pc_lines(const uint32_t *lines, size_t n, const uint32_t *words, __m512i *cnt,
                        const int A) {
    __m512i acc[BP_MAX_ACT_BITS];
#pragma GCC unroll 16
    for (int b = 0; b < A; b++)
        acc[b] = _mm512_load_si512(cnt + b);

    for (size_t w = 0; w < n; w++) {
        _mm_prefetch((const char *)(lines + 16 * w) + PC_PREFETCH_BYTES, _MM_HINT_T0);
        __m512i line = _mm512_load_si512(lines + 16 * w);
#pragma GCC unroll 16
        for (int b = 0; b < A; b++) {
            __m512i a = _mm512_set1_epi32((int)words[w * (size_t)A + (size_t)b]);
            __m512i x = A == 1 ? _mm512_xor_si512(line, a) : _mm512_and_si512(line, a);
            acc[b] = _mm512_add_epi32(acc[b], _mm512_popcnt_epi32(x));
        }
    }

#pragma GCC unroll 16
    for (int b = 0; b < A; b++)
        _mm512_store_si512(cnt + b, acc[b]);
}

typedef void (*pc_lines_fn)(const uint32_t *lines, size_t n, const uint32_t *words, __m512i *cnt);

#define PC_FN(A)                                                                                   \
    static void pc_lines_##A(const uint32_t *lines, size_t n, const uint32_t *words,               \
                             __m512i *cnt) {                                                       \
        pc_lines(lines, n, words, cnt, A);                                                         \
    }
PC_FN(1)
PC_FN(2)
PC_FN(3)
PC_FN(4)
PC_FN(5)
PC_FN(6)
PC_FN(7)
PC_FN(8)
PC_FN(9)
PC_FN(10)
PC_FN(11)
PC_FN(12)
PC_FN(13)
PC_FN(14)
PC_FN(15)
PC_FN(16)

static const pc_lines_fn pc_lines_fns[BP_MAX_ACT_BITS] = {
    pc_lines_1,  pc_lines_2,  pc_lines_3,  pc_lines_4,  pc_lines_5,  pc_lines_6,
    pc_lines_7,  pc_lines_8,  pc_lines_9,  pc_lines_10, pc_lines_11, pc_lines_12,
    pc_lines_13, pc_lines_14, pc_lines_15, pc_lines_16,
};

/* Writes 16 int64 D values from the per-plane counts of one column. */
static void pc_store(int64_t *d, const bp_act_column *col, const __m512i *cnt, int32_t cols_valid) {
    __m512i lo, hi;
    if (col->act_bits == 1) {
        /* t.s = K - 2 * popcount(t XOR s); padding is 0 in both operands. */
        __m512i t =
            _mm512_sub_epi32(_mm512_set1_epi32(cols_valid), _mm512_add_epi32(cnt[0], cnt[0]));
        lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(t));
        hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(t, 1));
    } else {
        lo = _mm512_setzero_si512();
        hi = _mm512_setzero_si512();
        for (int b = 0; b < col->act_bits; b++) {
            /* 2*cnt - popcount(a_b) fits int32 (|.| <= K); its product with
             * 2^b may not, hence the widening first. */
            __m512i t = _mm512_sub_epi32(_mm512_add_epi32(cnt[b], cnt[b]),
                                         _mm512_set1_epi32(col->plane_popcount[b]));
            __m128i sh = _mm_cvtsi32_si128(b);
            __m512i tl = _mm512_sll_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(t)), sh);
            __m512i th =
                _mm512_sll_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(t, 1)), sh);
            if (bp__act_plane_weight(col, b) < 0) {
                lo = _mm512_sub_epi64(lo, tl);
                hi = _mm512_sub_epi64(hi, th);
            } else {
                lo = _mm512_add_epi64(lo, tl);
                hi = _mm512_add_epi64(hi, th);
            }
        }
    }
    _mm512_storeu_si512(d, lo);
    _mm512_storeu_si512(d + 8, hi);
}

static void pc_compute(const bp_kernel_call *call) {
    const bp_matrix *m = call->m;
    const size_t kw = m->kwords;
    __m512i cnt[BP_KERNEL_MAX_COLS][BP_MAX_ACT_BITS];
    int max_planes = 0;
    for (size_t c = 0; c < call->ncols; c++)
        if (call->cols[c]->planes > max_planes)
            max_planes = call->cols[c]->planes;

    for (int p = 0; p < max_planes; p++) {
        const uint32_t *slab = bp__slab(m, p);
        for (size_t g = call->g0; g < call->g1; g++) {
            const uint32_t *group = slab + g * kw * BP_ROW_GROUP;
            for (size_t c = 0; c < call->ncols; c++)
                for (int b = 0; b < call->cols[c]->act_bits; b++)
                    cnt[c][b] = _mm512_setzero_si512();

            for (size_t w0 = 0; w0 < kw; w0 += PC_BLOCK_LINES) {
                size_t n = kw - w0 < PC_BLOCK_LINES ? kw - w0 : PC_BLOCK_LINES;
                for (size_t c = 0; c < call->ncols; c++) {
                    const bp_act_column *col = call->cols[c];
                    if (col->planes <= p)
                        continue;
                    const uint32_t *words = col->kernel_data;
                    pc_lines_fns[col->act_bits - 1](group + w0 * BP_ROW_GROUP, n,
                                                    words + w0 * (size_t)col->act_bits, cnt[c]);
                }
            }

            size_t row = (g - call->g0) * BP_ROW_GROUP;
            for (size_t c = 0; c < call->ncols; c++)
                if (call->cols[c]->planes > p)
                    pc_store(call->d + c * call->ld_col + (size_t)p * call->ld_plane + row,
                             call->cols[c], cnt[c], (int32_t)m->cols);
        }
    }
}

static bool pc_runnable(void) {
    return bp__cpu_features()->avx512_vpopcntdq;
}

static bool pc_supports(int act_bits, size_t kpad) {
    (void)kpad;
    return act_bits >= 1 && act_bits <= BP_MAX_ACT_BITS;
}

const bp_cpu_kernel_desc bp__kernel_avx512_popcount = {
    .name = "avx512",
    .runnable = pc_runnable,
    .supports = pc_supports,
    .column_bytes = pc_column_bytes,
    .prepare = pc_prepare,
    .compute = pc_compute,
};
