/*
 * Host-side check of the CUDA backend's data layouts, runnable without a GPU.
 *
 * The kernels feed the tensor cores from the re-tiled weight slabs
 * (cuda/cuda_retile.c) and the activation buffer (bp_cuda_b_index), and read
 * counts back through bp_cuda_c_row/col. This test emulates
 * mma.m16n8k256 .b1 .and.popc from the PTX ISA's own description of the
 * fragments, written out independently below, and checks that the kernels'
 * index arithmetic yields popcount(weight row & act plane-column) for every
 * (row, plane-column) of random data; it also checks the popcount path's
 * reading of the same fragments, and that the compact device slabs of a
 * matrix with per-row plane counts hold, where the kernel reads them, the
 * bits of the same matrix quantized without counts. What it cannot check is
 * the hardware.
 */
#include "bp_matrix.h"
#include "test_util.h"
#include "tu_criterion.h"
#include "../cuda/cuda_layout.h"

#include <stdlib.h>
#include <string.h>

TestSuite(cuda_layout, .fini = tu_suite_fini);

size_t bp_cuda__plane_words(const bp_matrix *m);
size_t bp_cuda__wgroups(const bp_matrix *m);
size_t bp_cuda__slab_words(const bp_matrix *m, int p);
size_t bp_cuda__slab_offsets(const bp_matrix *m, size_t *offset);
void bp_cuda__retile_plane(const bp_matrix *m, int p, uint32_t *out);
void bp_cuda__retile_mult(const bp_matrix *m, uint8_t *out);

/* PTX ISA, mma.m16n8k256 .b1 (row.col), lane = 4 * groupID + threadID_in_group:
 *  A element (row, k): lane (row % 8) * 4 + (k % 128) / 32,
 *                      register (row / 8) + 2 * (k / 128), bit k % 32
 *  B element (k, n):   lane n * 4 + (k % 128) / 32, register k / 128, bit k % 32
 *  D element (row, n): lane (row % 8) * 4 + n / 2, register 2 * (row / 8) + n % 2 */
/* Random bits in every host word of m's rows, zero in the K padding (as the
 * quantizers leave it): the device copy must add padding of its own. */
static void randomize_planes(bp_matrix *m, tu_rng *rng) {
    for (int p = 0; p < m->bits; p++)
        for (size_t row = 0; row < m->row_groups * BP_ROW_GROUP; row++)
            for (size_t w = 0; w < m->kwords; w++) {
                uint32_t v = (uint32_t)tu_next(rng);
                if (w * 32 >= m->cols)
                    v = 0;
                else if (m->cols - w * 32 < 32)
                    v &= (1u << (m->cols - w * 32)) - 1u;
                ((uint32_t *)bp__slab(m, p))[bp__word_index(m, row, w)] = v;
            }
}

static void emulate_mma(const uint32_t a[32][4], const uint32_t b[32][2], int32_t d[32][4]) {
    for (int row = 0; row < 16; row++)
        for (int n = 0; n < 8; n++) {
            int32_t sum = 0;
            for (int k = 0; k < 256; k++) {
                uint32_t abit =
                    (a[(row % 8) * 4 + (k % 128) / 32][row / 8 + 2 * (k / 128)] >> (k % 32)) & 1u;
                uint32_t bbit = (b[n * 4 + (k % 128) / 32][k / 128] >> (k % 32)) & 1u;
                sum += (int32_t)(abit & bbit);
            }
            d[(row % 8) * 4 + n / 2][2 * (row / 8) + n % 2] += sum;
        }
}

Test(cuda_layout, mma_and_popcount_fragments_give_row_popcounts) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const size_t rows = 16 * tu_range(&rng, 1, 3) - tu_range(&rng, 0, 15);
    const size_t cols = tu_range(&rng, 1, 1500);
    const int bits = 2, A = (int)tu_range(&rng, 1, 16);
    bp_matrix *m = NULL;
    cr_assert_eq(bp__matrix_alloc(rows, cols, bits, &m), BP_OK, "seed %llu",
                 (unsigned long long)seed);
    randomize_planes(m, &rng);
    /* The host pads K to 64 bits, the device copy to 512 (kw words): the
     * padding words of the copy must be zero, so random activation words
     * there (the kernel writes zeros) must not change the counts. */
    const size_t hkw = m->kwords, kw = bp_cuda_kwords(hkw), KC = kw / 8;
    cr_assert_eq(KC % 2, 0);

    /* One group of plane-columns as the backend forms them (cpg columns of
     * A act planes, padded to n-tiles of 8), with random act words. */
    const int cpg = 32 / A < 1 ? 1 : 32 / A, jg = cpg * A, ntiles = (jg + 7) / 8;
    const int grp = (int)tu_range(&rng, 0, 2);
    uint32_t *actw = calloc((size_t)ntiles * 8 * kw, sizeof *actw); /* [j][w] */
    uint32_t *act = calloc((size_t)(grp + 1) * ntiles * 8 * kw, sizeof *act);
    uint32_t *dev = malloc(bp_cuda__plane_words(m) * sizeof *dev);
    cr_assert(actw && act && dev);
    for (int j = 0; j < jg; j++)
        for (size_t w = 0; w < kw; w++) {
            actw[j * kw + w] = (uint32_t)tu_next(&rng);
            act[bp_cuda_b_index((size_t)grp, (size_t)ntiles, KC, (size_t)j, w)] = actw[j * kw + w];
        }

    for (int p = 0; p < bits; p++) {
        bp_cuda__retile_plane(m, p, dev);
        for (size_t g = 0; g < m->row_groups; g++) {
            int32_t mma_cnt[16][32] = {{0}}, pc_cnt[16][32] = {{0}};
            for (int t = 0; t < ntiles; t++) {
                int32_t d[32][4] = {{0}};
                for (size_t kc = 0; kc < KC; kc++) {
                    uint32_t a[32][4], b[32][2];
                    for (unsigned lane = 0; lane < 32; lane++) {
                        for (unsigned r = 0; r < 4; r++)
                            a[lane][r] = dev[bp_cuda_a_index(g, KC, kc, lane, r)];
                        /* The kernel's B load: uint2 at act_base + (t*KC + kc)*32 + lane. */
                        size_t u2 = (((size_t)grp * ntiles + t) * KC + kc) * 32 + lane;
                        b[lane][0] = act[2 * u2];
                        b[lane][1] = act[2 * u2 + 1];
                    }
                    emulate_mma(a, b, d);
                    /* The popcount path on the same fragments. */
                    for (unsigned lane = 0; lane < 32; lane++)
                        for (int jj = 0; jj < 8; jj++) {
                            int j = t * 8 + jj;
                            size_t u2 = (((size_t)grp * ntiles + t) * KC + kc) * 32 +
                                        4 * (size_t)jj + (lane & 3);
                            uint32_t b0 = act[2 * u2], b1 = act[2 * u2 + 1];
                            pc_cnt[lane >> 2][j] += __builtin_popcount(a[lane][0] & b0) +
                                                    __builtin_popcount(a[lane][2] & b1);
                            pc_cnt[(lane >> 2) + 8][j] += __builtin_popcount(a[lane][1] & b0) +
                                                          __builtin_popcount(a[lane][3] & b1);
                        }
                }
                for (unsigned lane = 0; lane < 32; lane++)
                    for (unsigned r = 0; r < 4; r++)
                        mma_cnt[bp_cuda_c_row(lane, r)][t * 8 + bp_cuda_c_col(lane, r)] +=
                            d[lane][r];
            }
            for (int r = 0; r < 16; r++)
                for (int j = 0; j < jg; j++) {
                    int32_t want = 0;
                    for (size_t w = 0; w < hkw; w++)
                        want += __builtin_popcount(bp__slab(m, p)[(g * hkw + w) * 16 + (size_t)r] &
                                                   actw[j * kw + w]);
                    cr_assert_eq(mma_cnt[r][j], want,
                                 "MMA layout: plane %d group %zu row %d plane-column %d: %d != %d "
                                 "(rows %zu cols %zu A %d, seed %llu)",
                                 p, g, r, j, mma_cnt[r][j], want, rows, cols, A,
                                 (unsigned long long)seed);
                    cr_assert_eq(
                        pc_cnt[r][j], want,
                        "popcount layout: plane %d group %zu row %d plane-column %d: %d != %d "
                        "(seed %llu)",
                        p, g, r, j, pc_cnt[r][j], want, (unsigned long long)seed);
                }
        }
    }
    free(actw);
    free(act);
    free(dev);
    bp_matrix_destroy(m);
}

/* The grouped paths of gemm_kernel (docs/numerics.md): with group multipliers
 * the MMA path runs one MMA per group in each 256-bit chunk, masking the A
 * registers of other groups (register r holds chunk word tig + 4 (r >> 1)),
 * and weights the accumulators by the multiplier of their row; the popcount
 * path weights each word's count by its row's multiplier. Emulated here on
 * random data against sum_w m[row][w / gw] popcount(t & a) from the
 * definition. */
Test(cuda_layout, grouped_mma_and_popcount_apply_multipliers) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const size_t rows = 16 * tu_range(&rng, 1, 2) - tu_range(&rng, 0, 15);
    const size_t cols = tu_range(&rng, 1, 2100);
    const size_t gw = (size_t)1 << tu_range(&rng, 0, 5); /* 1..32 words: 32..1024 columns */
    bp_matrix *m = NULL;
    cr_assert_eq(bp__matrix_alloc_grouped(rows, cols, 1, gw * 32, &m), BP_OK);
    randomize_planes(m, &rng);
    const size_t hkw = m->kwords, kw = bp_cuda_kwords(hkw), KC = kw / 8;
    for (size_t i = 0; i < m->row_groups * m->ngroups * 16; i++)
        m->mult[i] = (uint8_t)tu_range(&rng, 1, 255);
    /* The device's multiplier tiles, with the groups past the host's. */
    const size_t ngroups = bp_cuda__wgroups(m);
    cr_assert_geq(ngroups * gw, kw);
    uint8_t *mult = malloc(m->row_groups * ngroups * 16);
    cr_assert(mult);
    bp_cuda__retile_mult(m, mult);
    /* One tile of 8 plane-columns, group 0. */
    uint32_t *actw = malloc(8 * kw * sizeof *actw), *act = calloc(8 * kw, sizeof *act);
    uint32_t *dev = malloc(bp_cuda__plane_words(m) * sizeof *dev);
    cr_assert(actw && act && dev);
    for (int j = 0; j < 8; j++)
        for (size_t w = 0; w < kw; w++) {
            actw[j * kw + w] = (uint32_t)tu_next(&rng);
            act[bp_cuda_b_index(0, 1, KC, (size_t)j, w)] = actw[j * kw + w];
        }
    bp_cuda__retile_plane(m, 0, dev);
    const int sub = gw >= 8 ? 1 : (int)(8 / gw);
    for (size_t g = 0; g < m->row_groups; g++) {
        const uint8_t *mt = mult + g * ngroups * 16;
        int64_t mma_cnt[16][8] = {{0}}, pc_cnt[16][8] = {{0}};
        for (size_t kc = 0; kc < KC; kc++) {
            uint32_t a[32][4], b[32][2];
            for (unsigned lane = 0; lane < 32; lane++) {
                for (unsigned r = 0; r < 4; r++)
                    a[lane][r] = dev[bp_cuda_a_index(g, KC, kc, lane, r)];
                b[lane][0] = act[2 * (kc * 32 + lane)];
                b[lane][1] = act[2 * (kc * 32 + lane) + 1];
            }
            for (int s = 0; s < sub; s++) {
                const size_t wg = (8 * kc) / gw + (size_t)s;
                uint32_t am[32][4];
                for (unsigned lane = 0; lane < 32; lane++) {
                    const unsigned tig = lane & 3;
                    const bool lo_in = sub == 1 || tig / gw == (size_t)s;
                    const bool hi_in = sub == 1 || (tig + 4) / gw == (size_t)s;
                    am[lane][0] = lo_in ? a[lane][0] : 0u;
                    am[lane][1] = lo_in ? a[lane][1] : 0u;
                    am[lane][2] = hi_in ? a[lane][2] : 0u;
                    am[lane][3] = hi_in ? a[lane][3] : 0u;
                }
                int32_t d[32][4] = {{0}};
                emulate_mma(am, b, d);
                for (unsigned lane = 0; lane < 32; lane++)
                    for (unsigned r = 0; r < 4; r++) {
                        const unsigned row = bp_cuda_c_row(lane, r);
                        mma_cnt[row][bp_cuda_c_col(lane, r)] +=
                            (int64_t)mt[wg * 16 + row] * d[lane][r];
                    }
            }
            for (unsigned lane = 0; lane < 32; lane++) {
                const unsigned gid = lane >> 2, tig = lane & 3;
                const size_t gx = (8 * kc + tig) / gw, gz = (8 * kc + tig + 4) / gw;
                for (int j = 0; j < 8; j++) {
                    size_t u2 = kc * 32 + 4 * (size_t)j + tig;
                    uint32_t b0 = act[2 * u2], b1 = act[2 * u2 + 1];
                    pc_cnt[gid][j] += mt[gx * 16 + gid] * __builtin_popcount(a[lane][0] & b0) +
                                      mt[gz * 16 + gid] * __builtin_popcount(a[lane][2] & b1);
                    pc_cnt[gid + 8][j] +=
                        mt[gx * 16 + gid + 8] * __builtin_popcount(a[lane][1] & b0) +
                        mt[gz * 16 + gid + 8] * __builtin_popcount(a[lane][3] & b1);
                }
            }
        }
        for (int r = 0; r < 16; r++)
            for (int j = 0; j < 8; j++) {
                int64_t want = 0;
                for (size_t w = 0; w < hkw; w++)
                    want += (int64_t)bp__mult(m, g * 16 + (size_t)r, w / gw) *
                            __builtin_popcount(bp__slab(m, 0)[(g * hkw + w) * 16 + (size_t)r] &
                                               actw[j * kw + w]);
                cr_assert_eq(mma_cnt[r][j], want,
                             "grouped MMA: row group %zu row %d column %d: %lld != %lld (gw %zu, "
                             "cols %zu, seed %llu)",
                             g, r, j, (long long)mma_cnt[r][j], (long long)want, gw, cols,
                             (unsigned long long)seed);
                cr_assert_eq(pc_cnt[r][j], want,
                             "grouped popcount: row group %zu row %d column %d: %lld != %lld "
                             "(gw %zu, seed %llu)",
                             g, r, j, (long long)pc_cnt[r][j], (long long)want, gw,
                             (unsigned long long)seed);
            }
    }
    free(mult);
    free(actw);
    free(act);
    free(dev);
    bp_matrix_destroy(m);
}

/* The device slabs as cuda/cuda_matrix.c uploads them: each plane re-tiled
 * into a full-plane staging buffer, then its slab's words copied to the
 * slab's offset. Returns the buffer; *offsets receives the offsets. */
static uint32_t *upload_slabs(const bp_matrix *m, size_t *offsets, size_t *total) {
    *total = bp_cuda__slab_offsets(m, offsets);
    uint32_t *dev = tu_xmalloc(*total * sizeof *dev + 1);
    uint32_t *stage = tu_xmalloc(bp_cuda__plane_words(m) * sizeof *stage);
    for (int p = 0; p < m->bits; p++) {
        bp_cuda__retile_plane(m, p, stage);
        cr_assert_leq(offsets[p] + bp_cuda__slab_words(m, p), *total, "slab %d overruns", p);
        memcpy(dev + offsets[p], stage, bp_cuda__slab_words(m, p) * sizeof *stage);
    }
    free(stage);
    return dev;
}

/* Bit (row within the group, k within the 256-bit chunk) of an A fragment
 * of 512 bytes, from the PTX ISA's fragment description (see above). */
static int a_bit(const uint32_t *frag, unsigned row, unsigned k) {
    const unsigned lane = (row % 8) * 4 + (k % 128) / 32, reg = row / 8 + 2 * (k / 128);
    return (int)((frag[lane * 4 + reg] >> (k % 32)) & 1u);
}

/*
 * Per-row plane counts (docs/row-planes.md): the device slabs stay compact
 * like the host's. For W quantized with random counts and without (same
 * options and rotation seed): every row group the kernel reads at plane p
 * (bp_cuda_group_planes, the kernel's own bound) lies inside device slab p
 * (bp_cuda__slab_offsets, the upload's offsets); every bit there decodes to
 * the plain matrix's bit of the caller's row perm[r] while p is below the
 * row's count, and to 0 at planes past it, in padding rows and in the K
 * padding; every plane a row uses at any call cap is read for its group;
 * the slabs follow each other with no gap. Without counts, the offsets are the ones the device used
 * before counts existed (p * plane_words). Shapes: rows not a multiple of 16, K tails.
 */
Test(cuda_layout, row_plane_counts_compact_slabs_hold_the_caller_rows) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    for (int trial = 0; trial < 6; trial++) {
        const size_t rows = tu_range(&rng, 2, 90), cols = tu_range(&rng, 1, 1100);
        const int bits = (int)tu_range(&rng, 2, 8);
        float *w = tu_xmalloc(rows * cols * sizeof *w);
        tu_fill_gauss(&rng, w, rows * cols, 1.0f);
        uint8_t *counts = tu_xmalloc(rows);
        for (size_t r = 0; r < rows; r++)
            counts[r] = (uint8_t)tu_range(&rng, 1, (size_t)bits);
        counts[tu_range(&rng, 0, rows - 1)] = (uint8_t)(bits - 1); /* not all at bits */
        bp_quant_options q = BP_QUANT_OPTIONS_INIT;
        q.bits = bits;
        q.rotation_seed = tu_next(&rng);
        if (trial % 3 == 1) {
            q.group_size = BP_GROUP_PER_ROW;
            q.rotation = BP_ROTATION_NONE;
        } else if (trial % 3 == 2) {
            q.method = BP_QUANT_RESIDUAL;
            q.group_size = 32;
            q.rotation = 16;
        }
        bp_matrix *plain = tu_quantize_opts(NULL, w, rows, cols, cols, &q);
        q.row_planes = counts;
        bp_matrix *m = tu_quantize_opts(NULL, w, rows, cols, cols, &q);
        cr_assert(m->row_planes && m->perm, "seed %llu: counts were dropped",
                  (unsigned long long)seed);

        size_t off[BP_MAX_BITS], poff[BP_MAX_BITS], total, ptotal;
        uint32_t *dev = upload_slabs(m, off, &total);
        uint32_t *pdev = upload_slabs(plain, poff, &ptotal);
        const size_t pw = bp_cuda__plane_words(plain);
        cr_assert_eq(ptotal, (size_t)bits * pw);
        for (int p = 0; p < bits; p++)
            cr_assert_eq(poff[p], (size_t)p * pw, "without counts, slab %d moved", p);
        /* Compact: slab after slab, each only the row groups the host holds. */
        const size_t dkw = bp_cuda_kwords(m->kwords), KC = dkw / 8;
        size_t at = 0;
        for (int p = 0; p < bits; p++) {
            cr_assert_eq(off[p], at, "seed %llu: slab %d at %zu, want %zu",
                         (unsigned long long)seed, p, off[p], at);
            at += m->slab_groups[p] * 16 * dkw;
        }
        cr_assert_eq(total, at);
        for (int p = 0; p < bits; p++)
            for (size_t g = 0; g < m->row_groups; g++) {
                if (p >= bp_cuda_group_planes(m->row_planes, g, bits))
                    continue;
                cr_assert_lt(g, m->slab_groups[p],
                             "seed %llu: plane %d reads row group %zu, which slab %d does not hold "
                             "(%zu groups)",
                             (unsigned long long)seed, p, g, p, m->slab_groups[p]);
                for (size_t kc = 0; kc < KC; kc++) {
                    const uint32_t *frag = dev + off[p] + bp_cuda_a_index(g, KC, kc, 0, 0);
                    for (unsigned r = 0; r < 16; r++)
                        for (unsigned k = 0; k < 256; k++) {
                            const size_t row = g * 16 + r, col = kc * 256 + k;
                            int want = 0;
                            if (row < rows && col < cols && p < m->row_planes[row])
                                want = bp__plane_bit(plain, p, m->perm[row], col);
                            const int got = a_bit(frag, r, k);
                            if (got != want) /* asserted only then: millions of bits */
                                cr_assert_eq(got, want,
                                             "seed %llu: %zux%zu bits %d, plane %d stored row "
                                             "%zu (caller row %u, count %d) column %zu",
                                             (unsigned long long)seed, rows, cols, bits, p, row,
                                             row < rows ? m->perm[row] : 0u,
                                             row < rows ? m->row_planes[row] : 0, col);
                        }
                }
            }
        /* Every plane a (row, column) pair uses is read for its group, at
         * every cap the columns of a call may set. */
        for (int nmax = 1; nmax <= bits; nmax++)
            for (size_t r = 0; r < rows; r++) {
                const int uses = m->row_planes[r] < nmax ? m->row_planes[r] : nmax;
                cr_assert_geq(bp_cuda_group_planes(m->row_planes, r / 16, nmax), uses,
                              "seed %llu: row %zu uses %d planes at cap %d",
                              (unsigned long long)seed, r, uses, nmax);
            }
        free(dev);
        free(pdev);
        free(counts);
        free(w);
        bp_matrix_destroy(m);
        bp_matrix_destroy(plain);
    }
}
