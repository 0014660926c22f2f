/*
 * AVX-512 VPOPCNTDQ kernel.
 *
 * One 64-byte line of a weight slab is 16 rows x 32 columns, one dword per
 * row, so ANDing it with a broadcast activation dword and counting bits per
 * dword yields 16 row partial counts at once: the counters are row lanes and
 * no horizontal reduction is ever needed. Counts stay int32 (each is at most
 * K) and are widened to int64 only in the final combine.
 *
 * Grouped matrices (docs/numerics.md) count each group of columns apart and
 * add count * multiplier per row lane (VPMULLD), so the int32 counters hold
 * sum_g m_g cnt_g <= 255 K; the subtracted term sum_g m_g sum_{j in g} q_j
 * is formed per row in int64 at the store.
 *
 * The inner loop is instantiated per act_bits so that its counters are
 * unrolled into registers. Columns of a batch take turns over one block of a
 * row group that stays in L1, so the weights come from memory once per call
 * whatever the batch and K.
 */
#include "cpu_kernel.h"

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

/* Grouped form: n lines in groups of gw (the last may be shorter), group g
 * with the multipliers at mult + 16 g; cnt[b] += m * (group count). */
BP_INLINE void pc_group_lines(const uint32_t *lines, size_t n, size_t gw, const uint32_t *words,
                              const uint8_t *mult, __m512i *cnt, const int A) {
    const size_t ngr = (n + gw - 1) / gw;
    __m512i acc[BP_MAX_ACT_BITS];
#pragma GCC unroll 16
    for (int b = 0; b < A; b++)
        acc[b] = _mm512_load_si512(cnt + b);
    for (size_t g = 0; g < ngr; g++) {
        const __m512i mv =
            _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(mult + g * BP_ROW_GROUP)));
        __m512i part[BP_MAX_ACT_BITS];
#pragma GCC unroll 16
        for (int b = 0; b < A; b++)
            part[b] = _mm512_setzero_si512();
        const size_t w1 = (g + 1) * gw < n ? (g + 1) * gw : n;
        for (size_t w = g * gw; w < w1; w++) {
            _mm_prefetch((const char *)(lines + 16 * w) + PC_PREFETCH_BYTES, _MM_HINT_T0);
            __m512i line = _mm512_load_si512(lines + 16 * w);
#pragma GCC unroll 16
            for (int b = 0; b < A; b++) {
                __m512i a = _mm512_set1_epi32((int)words[w * (size_t)A + (size_t)b]);
                __m512i x = A == 1 ? _mm512_xor_si512(line, a) : _mm512_and_si512(line, a);
                part[b] = _mm512_add_epi32(part[b], _mm512_popcnt_epi32(x));
            }
        }
#pragma GCC unroll 16
        for (int b = 0; b < A; b++)
            acc[b] = _mm512_add_epi32(acc[b], _mm512_mullo_epi32(part[b], mv));
    }
#pragma GCC unroll 16
    for (int b = 0; b < A; b++)
        _mm512_store_si512(cnt + b, acc[b]);
}

typedef void (*pc_lines_fn)(const uint32_t *lines, size_t n, const uint32_t *words, __m512i *cnt);
typedef void (*pc_group_fn)(const uint32_t *lines, size_t n, size_t gw, const uint32_t *words,
                            const uint8_t *mult, __m512i *cnt);

#define PC_FN(A)                                                                                   \
    static void pc_lines_##A(const uint32_t *lines, size_t n, const uint32_t *words,               \
                             __m512i *cnt) {                                                       \
        pc_lines(lines, n, words, cnt, A);                                                         \
    }                                                                                              \
    static void pc_group_lines_##A(const uint32_t *lines, size_t n, size_t gw,                     \
                                   const uint32_t *words, const uint8_t *mult, __m512i *cnt) {     \
        pc_group_lines(lines, n, gw, words, mult, cnt, A);                                         \
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

static const pc_group_fn pc_group_fns[BP_MAX_ACT_BITS] = {
    pc_group_lines_1,  pc_group_lines_2,  pc_group_lines_3,  pc_group_lines_4,
    pc_group_lines_5,  pc_group_lines_6,  pc_group_lines_7,  pc_group_lines_8,
    pc_group_lines_9,  pc_group_lines_10, pc_group_lines_11, pc_group_lines_12,
    pc_group_lines_13, pc_group_lines_14, pc_group_lines_15, pc_group_lines_16,
};

/* Grouped matrices: base = sum_g m[row][g] * sum_{w in g} word_base[w] for
 * the 16 rows of row group rg, as two int64 halves. */
static void pc_group_base(const bp_matrix *m, size_t rg, const bp_act_column *col, __m512i *lo,
                          __m512i *hi) {
    *lo = _mm512_setzero_si512();
    *hi = _mm512_setzero_si512();
    for (size_t g = 0; g < m->ngroups; g++) {
        int64_t qg = 0;
        size_t w1 = (g + 1) * m->group_words < m->kwords ? (g + 1) * m->group_words : m->kwords;
        for (size_t w = g * m->group_words; w < w1; w++)
            qg += col->word_base[w];
        const __m512i mv =
            _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)bp__mult_tile(m, rg, g)));
        const __m512i mv2 =
            _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(bp__mult_tile(m, rg, g) + 8)));
        /* |qg| <= group_size * 65535 < 2^31: VPMULDQ's signed 32-bit inputs. */
        const __m512i q = _mm512_set1_epi64(qg);
        *lo = _mm512_add_epi64(*lo, _mm512_mul_epi32(mv, q));
        *hi = _mm512_add_epi64(*hi, _mm512_mul_epi32(mv2, q));
    }
}

/* Writes 16 int64 D values from the per-plane counts of one column: per row
 * (base NULL) from the whole-row identities, grouped from the multiplied
 * counts and the base of pc_group_base. */
static void pc_store(int64_t *d, const bp_act_column *col, const __m512i *cnt, int32_t cols_valid,
                     const __m512i *base) {
    __m512i lo, hi;
    if (base) {
        /* binary: D = base - 2 cnt; else D = sum_b w_b 2 cnt_b - base. */
        const bool bin = col->act_bits == 1;
        lo = bin ? base[0] : _mm512_sub_epi64(_mm512_setzero_si512(), base[0]);
        hi = bin ? base[1] : _mm512_sub_epi64(_mm512_setzero_si512(), base[1]);
        for (int b = 0; b < col->act_bits; b++) {
            __m128i sh = _mm_cvtsi32_si128(b + 1);
            __m512i tl =
                _mm512_sll_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(cnt[b])), sh);
            __m512i th =
                _mm512_sll_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(cnt[b], 1)), sh);
            if (bin || bp__act_plane_weight(col, b) < 0) {
                lo = _mm512_sub_epi64(lo, tl);
                hi = _mm512_sub_epi64(hi, th);
            } else {
                lo = _mm512_add_epi64(lo, tl);
                hi = _mm512_add_epi64(hi, th);
            }
        }
    } else if (col->act_bits == 1) {
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
    const bool grouped = bp__grouped(m);
    const size_t gw = m->group_words;
    /* Grouped: whole groups per column turn (group sizes are powers of two,
     * so a turn of PC_BLOCK_LINES lines holds whole groups, or one group). */
    const size_t block = grouped && gw > PC_BLOCK_LINES ? gw : PC_BLOCK_LINES;
    __m512i cnt[BP_KERNEL_MAX_COLS][BP_MAX_ACT_BITS];
    __m512i base[BP_KERNEL_MAX_COLS][2];
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

            for (size_t w0 = 0; w0 < kw; w0 += block) {
                size_t n = kw - w0 < block ? kw - w0 : block;
                for (size_t c = 0; c < call->ncols; c++) {
                    const bp_act_column *col = call->cols[c];
                    if (col->planes <= p)
                        continue;
                    const uint32_t *words = col->kernel_data;
                    if (grouped)
                        /* w0 is a multiple of gw (block is); the row's last
                         * group may be cut short at kw. */
                        pc_group_fns[col->act_bits - 1](group + w0 * BP_ROW_GROUP, n, gw,
                                                        words + w0 * (size_t)col->act_bits,
                                                        bp__mult_tile(m, g, w0 / gw), cnt[c]);
                    else
                        pc_lines_fns[col->act_bits - 1](group + w0 * BP_ROW_GROUP, n,
                                                        words + w0 * (size_t)col->act_bits, cnt[c]);
                }
            }

            size_t row = (g - call->g0) * BP_ROW_GROUP;
            for (size_t c = 0; c < call->ncols; c++)
                if (call->cols[c]->planes > p) {
                    if (grouped)
                        pc_group_base(m, g, call->cols[c], &base[c][0], &base[c][1]);
                    pc_store(call->d + c * call->ld_col + (size_t)p * call->ld_plane + row,
                             call->cols[c], cnt[c], (int32_t)m->cols, grouped ? base[c] : NULL);
                }
        }
    }
    bp__kernel_fold_code(call);
}

static bool pc_runnable(void) {
    return bp__cpu_features()->avx512_vpopcntdq;
}

static bool pc_supports(int act_bits, size_t kpad, unsigned mult_bound) {
    (void)kpad;
    (void)mult_bound; /* grouped matrices keep K <= BP_GROUP_MAX_K */
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
