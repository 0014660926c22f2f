/* CRC-32C of a byte range, for the matrix file format. */
#ifndef BP_CRC32C_H
#define BP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t bp__crc32c(const void *data, size_t len);

#endif
