/*
 * Checked size arithmetic and aligned allocation.
 */
#ifndef BP_MEM_H
#define BP_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool bp__mul_overflows(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline bool bp__add_overflows(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}
/* Bytes spanned by `count` vectors of `len` elements of `elem` bytes spaced
 * `ld` elements apart; false when that overflows size_t. count must be >= 1. */
static inline bool bp__span_elem_bytes(size_t count, size_t ld, size_t len, size_t elem,
                                       size_t *out) {
    size_t s;
    return !bp__mul_overflows(count - 1, ld, &s) && !bp__add_overflows(s, len, &s) &&
           !bp__mul_overflows(s, elem, out);
}
/* The same for floats. */
static inline bool bp__span_bytes(size_t count, size_t ld, size_t len, size_t *out) {
    return bp__span_elem_bytes(count, ld, len, sizeof(float), out);
}
/* Whether the a_bytes at a and the b_bytes at b share memory (the caller
 * passes non-NULL pointers whose spans did not overflow). */
static inline bool bp__spans_overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
    uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
    return a0 < b0 + b_bytes && b0 < a0 + a_bytes;
}
static inline size_t bp__round_up(size_t v, size_t to) {
    return (v + to - 1) / to * to;
}

void *bp__aligned_alloc(size_t bytes); /* zero-filled, 64-byte aligned, NULL on failure */
void bp__aligned_free(void *p);

#endif /* BP_MEM_H */
