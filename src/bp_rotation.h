/*
 * The randomized block-Hadamard rotation of K (src/rotation.c,
 * docs/numerics.md).
 */
#ifndef BP_ROTATION_H
#define BP_ROTATION_H

#include "bp_abi.h"
#include "bp_activations.h"

#define BP_ROTATION_MAX_BLOCK 4096
/* Rotation blocks are powers of four (docs/numerics.md). */
static inline bool bp__is_pow4(size_t v) {
    return v && !(v & (v - 1)) && (v & (size_t)0x5555555555555555ull);
}
/* Fill m->rot_signs from m->rot_seed (allocated by the caller). */
void bp__rotation_make_signs(bp_matrix *m);
/* Length of the rotation block that starts at column start. */
size_t bp__rotation_block_at(const bp_matrix *m, size_t start);
/* out (cols floats) = the rotated input x' of docs/numerics.md; *range =
 * the quantizer's scan of x' (bp__quantize_activations_in), found as x' is
 * written. check: x has not been checked for NaN / Inf; returns false when
 * some x is not (out and *range then unspecified); true otherwise. */
bool bp__rotate_input(const bp_matrix *m, const float *x, float *out, bp_act_range *range,
                      bool check);
/* out (cols doubles) = the rotated weight row w'. */
void bp__rotate_weights(const bp_matrix *m, const float *w, double *out);
/* The inverse of bp__rotate_weights, in place on cols doubles. */
void bp__unrotate_weights(const bp_matrix *m, double *v);
/* Bound on max|x'| / max|x| (a power of two). */
float bp__rotation_growth(const bp_matrix *m);
/* Give m a rotation (block 0 = none): allocates and fills the signs. */
bp_status bp__matrix_set_rotation(bp_matrix *m, int block, uint64_t seed);

/* bp__rotate_input's steps (src/rotation.c) in scalar form: then the
 * scalar scan of each block. On x86-64, bp__rotate_input takes the AVX-512
 * form (src/rotation_avx512.c) where bp__cpu_has_avx512bw()
 * (cpu/cpu_features.c) holds, for every block of 16 columns or more (one
 * call per column): the same results bit for bit (tests/test_activations.c).
 * Signs: out[j] = x[j] with its sign flipped where bit j of signs is set,
 * for j in [j0, j0 + cols). */
void bp__rotate_signs_scalar(const uint32_t *signs, const float *x, size_t j0, size_t cols,
                             float *out);
/* Block: the butterfly stages and the scale of one block of b columns. */
void bp__rotate_block_scalar(float *v, size_t b, float scale);
#if defined(BP_ARCH_X86_64)
bool bp__cpu_has_avx512bw(void);
/* Signs, stages and scale of the blocks of x (cols columns, blocks of
 * rot_block as bp__rotation_block_at splits them) from column 0 up to the
 * first block below 16 columns: out[0 .. s) for the returned s, and the
 * range of that part merged into *range (the max of the maxima, the AND of
 * nonneg); *finite says whether every x it read was finite. */
size_t bp__rotate_blocks_avx512(const uint32_t *signs, const float *x, float *out, size_t cols,
                                size_t rot_block, bp_act_range *range, bool *finite);
#endif

#endif /* BP_ROTATION_H */
