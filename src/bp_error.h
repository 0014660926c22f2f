/*
 * Thread-local error reporting: every failing internal call records a
 * message for bp_last_error() and returns its status.
 */
#ifndef BP_ERROR_H
#define BP_ERROR_H

#include "bitplane.h"

/* Record a message for bp_last_error() and return status. printf-style. */
bp_status bp__fail(bp_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void bp__clear_error(void);

#endif /* BP_ERROR_H */
