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
 * reading of the same fragments. What it cannot check is the hardware.
 */
#include "bp_internal.h"
#include "test_util.h"
#include "tu_criterion.h"
#include "../cuda/cuda_layout.h"

#include <stdlib.h>
#include <string.h>

TestSuite(cuda_layout, .fini = tu_suite_fini);

void bp_cuda__retile_plane(const bp_matrix *m, int p, uint32_t *out);

/* PTX ISA, mma.m16n8k256 .b1 (row.col), lane = 4 * groupID + threadID_in_group:
 *  A element (row, k): lane (row % 8) * 4 + (k % 128) / 32,
 *                      register (row / 8) + 2 * (k / 128), bit k % 32
 *  B element (k, n):   lane n * 4 + (k % 128) / 32, register k / 128, bit k % 32
 *  D element (row, n): lane (row % 8) * 4 + n / 2, register 2 * (row / 8) + n % 2 */
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
    for (size_t i = 0; i < (size_t)bits * m->plane_words; i++)
        m->planes[i] = (uint32_t)tu_next(&rng);
    const size_t KC = m->kwords / 8, kw = m->kwords;

    /* One group of plane-columns as the backend forms them (cpg columns of
     * A act planes, padded to n-tiles of 8), with random act words. */
    const int cpg = 32 / A < 1 ? 1 : 32 / A, jg = cpg * A, ntiles = (jg + 7) / 8;
    const int grp = (int)tu_range(&rng, 0, 2);
    uint32_t *actw = calloc((size_t)ntiles * 8 * kw, sizeof *actw); /* [j][w] */
    uint32_t *act = calloc((size_t)(grp + 1) * ntiles * 8 * kw, sizeof *act);
    uint32_t *dev = malloc(m->plane_words * sizeof *dev);
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
                    for (size_t w = 0; w < kw; w++)
                        want += __builtin_popcount(bp__slab(m, p)[(g * kw + w) * 16 + (size_t)r] &
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
