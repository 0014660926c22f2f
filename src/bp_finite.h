/*
 * Input validation: finding a NaN or Inf in caller data quickly, so the
 * check that every public entry point makes costs little beside the work.
 */
#ifndef BP_FINITE_H
#define BP_FINITE_H

#include "bitplane.h"

#include <stdbool.h>
#include <stddef.h>

/* Index of the first NaN or Inf among v[0..n), or n when all are finite. */
size_t bp__first_non_finite(const float *v, size_t n);
/* Fails with BP_ERR_NON_FINITE naming the first NaN / Inf of v[0..n),
 * as column `col` of the argument `name` ("x: column 3, element 7 is NaN");
 * BP_OK when all are finite. Every check of caller columns words it so. */
bp_status bp__check_finite_column(const float *v, size_t n, size_t col, const char *name);
/* The same over `count` columns of n values, column i at v + i * ld: the
 * first bad column's error. */
bp_status bp__check_finite_columns(const float *v, size_t count, size_t ld, size_t n,
                                   const char *name);
/* Its plain form, and on x86-64 its AVX-512F form (src/finite_avx512.c),
 * which bp__first_non_finite takes where bp__cpu_has_avx512bw() holds: the
 * same answer (tests/test_activations.c). */
size_t bp__first_non_finite_scalar(const float *v, size_t n);
#if defined(BP_ARCH_X86_64)
bool bp__cpu_has_avx512bw(void);
size_t bp__first_non_finite_avx512(const float *v, size_t n);
#endif

#endif /* BP_FINITE_H */
