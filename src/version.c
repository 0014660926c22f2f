/* Library version, for callers that check the header against the binary. */
#include "bitplane.h"

#define BP_STR_(x) #x
#define BP_STR(x)  BP_STR_(x)

const char *bp_version(void) {
    return BP_STR(BP_VERSION_MAJOR) "." BP_STR(BP_VERSION_MINOR) "." BP_STR(BP_VERSION_PATCH);
}

unsigned bp_version_number(void) {
    return BP_VERSION_NUMBER;
}
