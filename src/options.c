/* Versioned option structs: the first field is the caller's sizeof. */
#include "bp_error.h"
#include "bp_options.h"

#include <string.h>

bp_status bp__copy_options(void *dst, size_t dst_size, const void *src, const char *what) {
    memset(dst, 0, dst_size);
    if (src == NULL) {
        *(size_t *)dst = dst_size;
        return BP_OK;
    }
    size_t size;
    memcpy(&size, src, sizeof size);
    if (size < sizeof(size_t))
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "%s.size must be set to sizeof(%s) (use the _INIT macro), got %zu", what,
                        what, size);
    if (size > ((size_t)1 << 20))
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "%s.size is implausibly large: %zu", what, size);
    /* A newer caller may pass a longer struct; its new fields must be unset. */
    const unsigned char *bytes = src;
    for (size_t i = dst_size; i < size; i++)
        if (bytes[i] != 0)
            return bp__fail(BP_ERR_UNSUPPORTED,
                            "%s.size is %zu but this library knows %zu bytes and byte %zu is set; "
                            "the option needs a newer bitplane",
                            what, size, dst_size, i);
    memcpy(dst, src, size < dst_size ? size : dst_size);
    *(size_t *)dst = dst_size;
    return BP_OK;
}
