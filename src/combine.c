/*
 * The exact combine, shared by every CPU path (the uniform one is inline in
 * bp_activations.h). Compiled, like the whole
 * library, with -ffp-contract=off: fmaf is the only fused operation.
 */
#include "bp_activations.h"

#include <math.h>

float bp__combine(const float *c, const int64_t *d, size_t stride, int n, float s) {
    /* (float)D_p * s_x first, as for uniform matrices: huge coefficients
     * cannot overflow an intermediate while y is finite. */
    float acc = 0.0f;
    for (int p = 0; p < n; p++)
        acc = fmaf(c[p], (float)d[(size_t)p * stride] * s, acc);
    return acc;
}
