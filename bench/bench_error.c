/* Error reporting and checked allocation, so every failure names its cause. */
#include "bench_common.h"

#include <stdarg.h>
#include <stdlib.h>

int bench_bp_fail(bp_status st, const char *what) {
    fprintf(stderr, "bitplane-bench: %s failed: %s: %s\n", what, bp_status_string(st),
            bp_last_error());
    return 1;
}

int bench_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bitplane-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

void *bench_alloc(size_t n, size_t size, const char *what) {
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) {
        bench_fail("size of %s overflows", what);
        return NULL;
    }
    /* aligned_alloc needs a multiple of the alignment, and a nonzero size. */
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0)
        rounded = 64;
    if (rounded < bytes) {
        bench_fail("size of %s overflows", what);
        return NULL;
    }
    void *p = aligned_alloc(64, rounded);
    if (!p)
        bench_fail("out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}
