/*
 * Aligned, zero-filled allocation: kernels stream 64-byte lines.
 *
 * Blocks of BP_HUGE_MIN bytes and more (the plane slabs and multipliers of
 * large matrices) start on a 2 MiB boundary and are advised to transparent
 * huge pages before the first touch: the batch-1 GEMV is bound by how fast
 * one core streams the slabs, and it streams them faster from 2 MiB pages
 * (docs/kernels.md, "Huge pages for the weight stream"). Only whole 2 MiB
 * pages inside the block are advised, so a block never grows; where the
 * kernel has no huge pages to give (or THP is off) the advice changes
 * nothing.
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#include "bp_abi.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define BP_HUGE_PAGE ((size_t)2 << 20)
#define BP_HUGE_MIN  (2 * BP_HUGE_PAGE)

void *bp__aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0)
        bytes = BP_ALIGN;
    const int huge = bytes >= BP_HUGE_MIN;
    if (posix_memalign(&p, huge ? BP_HUGE_PAGE : BP_ALIGN, bytes) != 0)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge)
        (void)madvise(p, bytes & ~(BP_HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes);
    return p;
}

void bp__aligned_free(void *p) {
    free(p);
}
