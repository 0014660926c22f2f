/*
 * Host slab (16-row groups, word-major, K padded to 64 bits) to the device
 * weight order of cuda_layout.h (K padded to 512 bits), the device slab
 * offsets (compact with per-row plane counts, like the host's), and the
 * group multipliers re-tiled to the device's group count. Pure C with no
 * CUDA dependency, so the host-side layout test (tests/test_cuda_layout.c)
 * checks exactly this code.
 */
#include "bp_abi.h"
#include "cuda_layout.h"

#include <string.h>

size_t bp_cuda__plane_words(const bp_matrix *m);
size_t bp_cuda__wgroups(const bp_matrix *m);
size_t bp_cuda__slab_words(const bp_matrix *m, int p);
size_t bp_cuda__slab_offsets(const bp_matrix *m, size_t *offset);
void bp_cuda__retile_plane(const bp_matrix *m, int p, uint32_t *out);
void bp_cuda__retile_mult(const bp_matrix *m, uint8_t *out);

size_t bp_cuda__plane_words(const bp_matrix *m) {
    /* <= 8 x the host slab, whose size in bytes fits size_t. */
    return m->row_groups * BP_ROW_GROUP * bp_cuda_kwords(m->kwords);
}

size_t bp_cuda__wgroups(const bp_matrix *m) {
    const size_t dkw = bp_cuda_kwords(m->kwords);
    return (dkw + m->group_words - 1) / m->group_words;
}

size_t bp_cuda__slab_words(const bp_matrix *m, int p) {
    return m->slab_groups[p] * BP_ROW_GROUP * bp_cuda_kwords(m->kwords);
}

size_t bp_cuda__slab_offsets(const bp_matrix *m, size_t *offset) {
    size_t at = 0;
    for (int p = 0; p < m->bits; p++) {
        offset[p] = at;
        at += bp_cuda__slab_words(m, p);
    }
    return at;
}

void bp_cuda__retile_plane(const bp_matrix *m, int p, uint32_t *out) {
    const uint32_t *slab = bp__slab(m, p);
    const size_t dkw = bp_cuda_kwords(m->kwords), KC = dkw / 8;
    for (size_t g = 0; g < m->slab_groups[p]; g++)
        for (size_t kc = 0; kc < KC; kc++)
            for (unsigned lane = 0; lane < 32; lane++)
                for (unsigned r = 0; r < 4; r++) {
                    size_t w = kc * 8 + bp_cuda_a_word(lane, r);
                    out[bp_cuda_a_index(g, KC, kc, lane, r)] =
                        w < m->kwords
                            ? slab[(g * m->kwords + w) * BP_ROW_GROUP + bp_cuda_a_row(lane, r)]
                            : 0u;
                }
}

/* The host tiles [row group][ngroups][16] into [row group][wgroups][16]; the
 * groups that lie wholly in the device padding get multiplier 1 (they meet
 * zero weights and zero activations, so any value is exact). */
void bp_cuda__retile_mult(const bp_matrix *m, uint8_t *out) {
    const size_t wg = bp_cuda__wgroups(m);
    for (size_t g = 0; g < m->row_groups; g++) {
        uint8_t *dst = out + g * wg * BP_ROW_GROUP;
        memcpy(dst, bp__mult_tile(m, g, 0), m->ngroups * BP_ROW_GROUP);
        memset(dst + m->ngroups * BP_ROW_GROUP, 1, (wg - m->ngroups) * BP_ROW_GROUP);
    }
}
