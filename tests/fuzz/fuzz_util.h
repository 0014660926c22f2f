/*
 * What both libFuzzer targets share: a CHECK that aborts with its place (the
 * fuzzer keeps the input that made it fail) and a memfd holding the input,
 * so the file loaders read exactly the bytes the in-memory loaders did.
 */
#ifndef BP_FUZZ_UTIL_H
#define BP_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h> /* memfd_create: the includer defines _GNU_SOURCE first */
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Writes data into a new memfd and its /proc path into path; returns the fd
 * (close it when done). */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char path[64]) {
    int fd = memfd_create("bitplane-fuzz", MFD_CLOEXEC);
    CHECK(fd >= 0, "memfd_create failed");
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        CHECK(n > 0, "write to memfd failed");
        off += (size_t)n;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
