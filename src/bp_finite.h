/*
 * Input validation: finding a NaN or Inf in caller data quickly, so the
 * check that every public entry point makes costs little beside the work.
 */
#ifndef BP_FINITE_H
#define BP_FINITE_H

#include <stddef.h>

/* Index of the first NaN or Inf among v[0..n), or n when all are finite. */
size_t bp__first_non_finite(const float *v, size_t n);

#endif /* BP_FINITE_H */
