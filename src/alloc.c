/* Aligned, zero-filled allocation: kernels stream 64-byte lines. */
#include "bp_abi.h"

#include <stdlib.h>
#include <string.h>

void *bp__aligned_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0)
        bytes = BP_ALIGN;
    if (posix_memalign(&p, BP_ALIGN, bytes) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

void bp__aligned_free(void *p) {
    free(p);
}
