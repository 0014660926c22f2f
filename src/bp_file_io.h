/*
 * File I/O shared by every saved object (matrices, RNNs): loads open only
 * regular files and never block on a FIFO; saves replace a file atomically,
 * so a failed write leaves the previous file intact.
 */
#ifndef BP_FILE_IO_H
#define BP_FILE_IO_H

#include "bitplane.h"

#include <stddef.h>
#include <stdint.h>

/* Open path for reading without blocking (a FIFO would wait for a writer),
 * refuse anything but a regular file (naming what it is), and give its
 * size. On success the caller closes *fd. */
bp_status bp__open_regular(const char *path, int *fd, uint64_t *size);
/* Read exactly len bytes; a short file is an error naming path. */
bp_status bp__read_exact(int fd, void *buf, size_t len, const char *path);
/* Write buf to a temporary file next to path, fsync it, rename it over
 * path and fsync the directory. On failure the temporary file is removed
 * and a previous file at path is untouched. */
bp_status bp__save_atomic(const char *path, const void *buf, size_t len);

#endif /* BP_FILE_IO_H */
