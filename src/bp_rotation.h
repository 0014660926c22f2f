/*
 * The randomized block-Hadamard rotation of K (src/rotation.c,
 * docs/numerics.md).
 */
#ifndef BP_ROTATION_H
#define BP_ROTATION_H

#include "bp_abi.h"

#define BP_ROTATION_MAX_BLOCK 4096
/* Rotation blocks are powers of four (docs/numerics.md). */
static inline bool bp__is_pow4(size_t v) {
    return v && !(v & (v - 1)) && (v & (size_t)0x5555555555555555ull);
}
/* Fill m->rot_signs from m->rot_seed (allocated by the caller). */
void bp__rotation_make_signs(bp_matrix *m);
/* Length of the rotation block that starts at column start. */
size_t bp__rotation_block_at(const bp_matrix *m, size_t start);
/* out (cols floats) = the rotated input x' of docs/numerics.md. */
void bp__rotate_input(const bp_matrix *m, const float *x, float *out);
/* out (cols doubles) = the rotated weight row w'. */
void bp__rotate_weights(const bp_matrix *m, const float *w, double *out);
/* The inverse of bp__rotate_weights, in place on cols doubles. */
void bp__unrotate_weights(const bp_matrix *m, double *v);
/* Bound on max|x'| / max|x| (a power of two). */
float bp__rotation_growth(const bp_matrix *m);
/* Give m a rotation (block 0 = none): allocates and fills the signs. */
bp_status bp__matrix_set_rotation(bp_matrix *m, int block, uint64_t seed);

#endif /* BP_ROTATION_H */
