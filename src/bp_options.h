/*
 * Versioned option structs: callers built against older or newer headers
 * pass structs of other sizes (first field `size`).
 */
#ifndef BP_OPTIONS_H
#define BP_OPTIONS_H

#include "bitplane.h"

#include <stddef.h>

/*
 * Copy a caller's options struct (first field `size`) into a zeroed full-size
 * struct. Accepts a NULL pointer (defaults), a smaller struct from an older
 * caller, and a larger one from a newer caller whose extra bytes are zero.
 */
bp_status bp__copy_options(void *dst, size_t dst_size, const void *src, const char *what);

#endif /* BP_OPTIONS_H */
