/*
 * Host slab (16-row groups, word-major) to the device weight order of
 * cuda_layout.h. Pure C with no CUDA dependency, so the host-side layout
 * test (tests/test_cuda_layout.c) checks exactly this code.
 */
#include "bp_abi.h"
#include "cuda_layout.h"

void bp_cuda__retile_plane(const bp_matrix *m, int p, uint32_t *out);

void bp_cuda__retile_plane(const bp_matrix *m, int p, uint32_t *out) {
    const uint32_t *slab = bp__slab(m, p);
    const size_t KC = m->kwords / 8;
    for (size_t g = 0; g < m->row_groups; g++)
        for (size_t kc = 0; kc < KC; kc++)
            for (unsigned lane = 0; lane < 32; lane++)
                for (unsigned r = 0; r < 4; r++) {
                    size_t w = kc * 8 + bp_cuda_a_word(lane, r);
                    out[bp_cuda_a_index(g, KC, kc, lane, r)] =
                        slab[(g * m->kwords + w) * BP_ROW_GROUP + bp_cuda_a_row(lane, r)];
                }
}
