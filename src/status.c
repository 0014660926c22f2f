/* Status strings and the thread-local last-error message. */
#include "bp_error.h"

#include <stdarg.h>
#include <stdio.h>

/* Thread-local like errno, so it works with no context and across threads.
 * Large enough for an OpenCL compiler log excerpt. */
static _Thread_local char last_error[4096];

const char *bp_status_string(bp_status status) {
    switch (status) {
#define BP_STATUS_CASE_(name, value, text)                                                         \
    case name:                                                                                     \
        return text;
        BP_STATUS_LIST(BP_STATUS_CASE_)
#undef BP_STATUS_CASE_
    }
    return "unknown status";
}

const char *bp_last_error(void) {
    return last_error;
}

bp_status bp__fail(bp_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void bp__clear_error(void) {
    last_error[0] = '\0';
}
