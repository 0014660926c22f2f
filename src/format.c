/*
 * The matrix file format, version 1. All integers little-endian, floats as
 * IEEE-754 bit patterns:
 *
 *   offset  size  field
 *   0       8     magic "BITPLANE"
 *   8       4     version (1)
 *   12      4     header bytes (64)
 *   16      8     rows
 *   24      8     cols
 *   32      4     bits (planes k)
 *   36      4     method (0 uniform, 1 residual)
 *   40      4     clip (float32; 0 = automatic)
 *   44      4     flags (0; reserved)
 *   48      8     payload bytes
 *   56      8     reserved (0)
 *   64            prefix errors: bits float64
 *                 coefficients: c[n][row][p], rows*bits*(bits+1)/2 float32
 *                 planes: bits slabs of rows * ceil(cols/32) uint32, row-major,
 *                 bits past cols zero
 *   end-4   4     CRC-32C of every byte before it
 *
 * The planes are stored untiled so the in-memory tiling can change without a
 * format change. Every field is validated on load.
 */
#include "bp_crc32c.h"
#include "bp_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_VERSION 1u
#define HEADER_BYTES   64u
static const char magic[8] = {'B', 'I', 'T', 'P', 'L', 'A', 'N', 'E'};

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static uint64_t double_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}
static double bits_double(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Payload sizes; false on overflow. */
static bool payload_size(uint64_t rows, uint64_t cols, uint32_t bits, size_t *ncoef,
                         size_t *row_words, size_t *payload) {
    size_t rw = (size_t)((cols + 31) / 32), nc, words, total;
    if (bp__mul_overflows((size_t)rows, (size_t)bits * (bits + 1) / 2, &nc) ||
        bp__mul_overflows((size_t)rows * (size_t)bits, rw, &words) ||
        bp__mul_overflows(nc, 4, &total) || bp__add_overflows(total, (size_t)bits * 8, &total) ||
        bp__mul_overflows(words, 4, &words) || bp__add_overflows(total, words, &total))
        return false;
    *ncoef = nc;
    *row_words = rw;
    *payload = total;
    return true;
}

bp_status bp_matrix_serialize(const bp_matrix *m, void *buf, size_t cap, size_t *needed) {
    if (!m || !needed)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_serialize: %s must not be NULL",
                        !m ? "m" : "needed");
    size_t ncoef, rw, payload;
    if (!payload_size(m->rows, m->cols, (uint32_t)m->bits, &ncoef, &rw, &payload))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "matrix too large to serialise");
    size_t total = HEADER_BYTES + payload + 4;
    *needed = total;
    if (!buf)
        return cap == 0 ? BP_OK
                        : bp__fail(BP_ERR_INVALID_ARGUMENT, "buf is NULL but cap is %zu", cap);
    if (cap < total)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "buffer holds %zu bytes, the matrix needs %zu", cap,
                        total);
    unsigned char *p = buf;
    memset(p, 0, HEADER_BYTES);
    memcpy(p, magic, sizeof magic);
    put_u32(p + 8, FORMAT_VERSION);
    put_u32(p + 12, HEADER_BYTES);
    put_u64(p + 16, m->rows);
    put_u64(p + 24, m->cols);
    put_u32(p + 32, (uint32_t)m->bits);
    put_u32(p + 36, (uint32_t)m->method);
    put_u32(p + 40, float_bits(m->clip));
    put_u64(p + 48, payload);
    unsigned char *o = p + HEADER_BYTES;
    for (int n = 0; n < m->bits; n++, o += 8)
        put_u64(o, double_bits(m->prefix_error[n]));
    for (size_t i = 0; i < ncoef; i++, o += 4)
        put_u32(o, float_bits(m->coef[i]));
    for (int pl = 0; pl < m->bits; pl++)
        for (size_t r = 0; r < m->rows; r++)
            for (size_t w = 0; w < rw; w++, o += 4)
                put_u32(o, bp__slab(m, pl)[bp__word_index(m, r, w)]);
    put_u32(o, bp__crc32c(p, total - 4));
    return BP_OK;
}

static bp_status corrupt(const char *what) {
    return bp__fail(BP_ERR_CORRUPT, "matrix data is corrupt or truncated: %s", what);
}

bp_status bp_matrix_deserialize(bp_context *ctx, const void *buf, size_t len, bp_matrix **out) {
    (void)ctx;
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_deserialize: out must not be NULL");
    *out = NULL;
    if (!buf)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_deserialize: buf must not be NULL");
    const unsigned char *p = buf;
    if (len < HEADER_BYTES + 4)
        return corrupt("shorter than the header");
    if (memcmp(p, magic, sizeof magic) != 0)
        return corrupt("bad magic (not a bitplane matrix)");
    uint32_t version = get_u32(p + 8);
    if (version > FORMAT_VERSION)
        return bp__fail(BP_ERR_VERSION,
                        "matrix format version %u is newer than this library's (%u)", version,
                        FORMAT_VERSION);
    if (version == 0)
        return corrupt("format version 0");
    if (get_u32(p + 12) != HEADER_BYTES)
        return corrupt("header size");
    uint64_t rows = get_u64(p + 16), cols = get_u64(p + 24);
    uint32_t bits = get_u32(p + 32), method = get_u32(p + 36), flags = get_u32(p + 44);
    float clip = bits_float(get_u32(p + 40));
    if (rows == 0 || rows > BP_MAX_DIM || cols == 0 || cols > BP_MAX_DIM)
        return corrupt("rows or cols out of range");
    if (bits < 1 || bits > BP_MAX_BITS)
        return corrupt("bits out of range");
    if (method > BP_QUANT_RESIDUAL)
        return corrupt("unknown quantizer method");
    if (!(clip >= 0.0f && clip <= 1.0f) || (method == BP_QUANT_RESIDUAL && clip != 0.0f))
        return corrupt("clip out of range");
    if (flags != 0 || get_u64(p + 56) != 0)
        return corrupt("reserved fields are set");
    size_t ncoef, rw, payload;
    if (!payload_size(rows, cols, bits, &ncoef, &rw, &payload) || get_u64(p + 48) != payload)
        return corrupt("payload size does not match the shape");
    if (len != HEADER_BYTES + payload + 4)
        return corrupt(len < HEADER_BYTES + payload + 4 ? "truncated" : "trailing bytes");
    if (get_u32(p + len - 4) != bp__crc32c(p, len - 4))
        return corrupt("checksum mismatch");

    bp_matrix *m;
    bp_status st = bp__matrix_alloc((size_t)rows, (size_t)cols, (int)bits, &m);
    if (st)
        return st;
    m->method = (bp_quant_method)method;
    m->clip = clip;
    const unsigned char *o = p + HEADER_BYTES;
    for (uint32_t n = 0; n < bits; n++, o += 8) {
        m->prefix_error[n] = bits_double(get_u64(o));
        if (!isfinite(m->prefix_error[n]) || m->prefix_error[n] < 0) {
            bp_matrix_destroy(m);
            return corrupt("prefix error is not a finite value >= 0");
        }
    }
    for (size_t i = 0; i < ncoef; i++, o += 4) {
        m->coef[i] = bits_float(get_u32(o));
        if (!isfinite(m->coef[i])) {
            bp_matrix_destroy(m);
            return corrupt("non-finite coefficient");
        }
    }
    uint32_t tail_mask = cols % 32 ? ~((1u << (cols % 32)) - 1u) : 0u;
    for (uint32_t pl = 0; pl < bits; pl++)
        for (size_t r = 0; r < rows; r++)
            for (size_t w = 0; w < rw; w++, o += 4) {
                uint32_t word = get_u32(o);
                if (w == rw - 1 && (word & tail_mask)) {
                    bp_matrix_destroy(m);
                    return corrupt("padding bits are set");
                }
                m->planes[(size_t)pl * m->plane_words + bp__word_index(m, r, w)] = word;
            }
    *out = m;
    return BP_OK;
}

/* ---- files ----------------------------------------------------------------
 *
 * Loading opens without blocking (a FIFO or device must not hang the caller),
 * refuses anything but a regular file, reads the 64-byte header first and
 * then exactly the length the header declares, so a large foreign file is
 * rejected after reading 64 bytes. Saving writes a temporary file in the
 * target's directory, fsyncs it, renames it over the target and fsyncs the
 * directory, so a failed save leaves the previous file as it was. */

/* Read exactly len bytes at the current offset. */
static bp_status read_exact(int fd, void *buf, size_t len, const char *path) {
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t got = read(fd, p, len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return bp__fail(BP_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        if (got == 0)
            return bp__fail(BP_ERR_IO, "cannot read '%s': the file shrank while it was read", path);
        p += got;
        len -= (size_t)got;
    }
    return BP_OK;
}

static bp_status write_all(int fd, const void *buf, size_t len, const char *path) {
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t put = write(fd, p, len);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return bp__fail(BP_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        p += put;
        len -= (size_t)put;
    }
    return BP_OK;
}

/* The bytes after the header that the header declares (payload and
 * checksum), checked against the file's actual size before anything past
 * the header is read. The other fields are validated by
 * bp_matrix_deserialize. */
static bp_status declared_rest(const unsigned char *hdr, uint64_t file_size, size_t *rest) {
    if (file_size < HEADER_BYTES + 4)
        return corrupt("shorter than the header");
    if (memcmp(hdr, magic, sizeof magic) != 0)
        return corrupt("bad magic (not a bitplane matrix)");
    uint32_t version = get_u32(hdr + 8);
    if (version > FORMAT_VERSION)
        return bp__fail(BP_ERR_VERSION,
                        "matrix format version %u is newer than this library's (%u)", version,
                        FORMAT_VERSION);
    if (get_u32(hdr + 12) != HEADER_BYTES)
        return corrupt("header size");
    uint64_t payload = get_u64(hdr + 48);
    if (payload > UINT64_MAX - HEADER_BYTES - 4)
        return corrupt("payload size does not match the shape");
    uint64_t want = HEADER_BYTES + payload + 4;
    if (file_size != want)
        return corrupt(file_size < want ? "truncated" : "trailing bytes");
    if (want > SIZE_MAX)
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "the file declares %llu bytes",
                        (unsigned long long)want);
    *rest = (size_t)(payload + 4);
    return BP_OK;
}

static bp_status load_fd(bp_context *ctx, int fd, const char *path, bp_matrix **out) {
    struct stat info;
    if (fstat(fd, &info) != 0)
        return bp__fail(BP_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    if (!S_ISREG(info.st_mode))
        return bp__fail(BP_ERR_IO, "'%s' is not a regular file (a %s)", path,
                        S_ISDIR(info.st_mode)    ? "directory"
                        : S_ISFIFO(info.st_mode) ? "FIFO"
                        : S_ISSOCK(info.st_mode) ? "socket"
                        : S_ISCHR(info.st_mode)  ? "character device"
                        : S_ISBLK(info.st_mode)  ? "block device"
                                                 : "special file");
    uint64_t file_size = (uint64_t)info.st_size;
    unsigned char hdr[HEADER_BYTES];
    size_t have = file_size < HEADER_BYTES ? (size_t)file_size : HEADER_BYTES;
    size_t rest = 0;
    bp_status st = read_exact(fd, hdr, have, path);
    if (!st)
        st = declared_rest(hdr, file_size, &rest);
    if (st)
        return st;
    unsigned char *buf = malloc(HEADER_BYTES + rest);
    if (!buf)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to load '%s'",
                        HEADER_BYTES + rest, path);
    memcpy(buf, hdr, HEADER_BYTES);
    st = read_exact(fd, buf + HEADER_BYTES, rest, path);
    if (!st)
        st = bp_matrix_deserialize(ctx, buf, HEADER_BYTES + rest, out);
    free(buf);
    return st;
}

bp_status bp_matrix_load(bp_context *ctx, const char *path, bp_matrix **out) {
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_load: out must not be NULL");
    *out = NULL;
    if (!path)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_load: path must not be NULL");
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return bp__fail(BP_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    bp_status st = load_fd(ctx, fd, path, out);
    close(fd);
    if (st == BP_ERR_CORRUPT || st == BP_ERR_VERSION) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", bp_last_error());
        bp__fail(st, "'%s': %s", path, msg);
    }
    return st;
}

/* "<dir>/.<base>.tmp-<pid>-<n>", created exclusively with mode 0666 & ~umask. */
static int create_temp(const char *path, char **tmp_out) {
    static atomic_uint counter;
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    size_t cap = strlen(path) + 64;
    char *tmp = malloc(cap);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(tmp, cap, "%.*s.%s.tmp-%ld-%u", (int)dir_len, path, path + dir_len, (long)getpid(),
                 atomic_fetch_add(&counter, 1u));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
        if (fd >= 0) {
            *tmp_out = tmp;
            return fd;
        }
        if (errno != EEXIST)
            break;
    }
    int err = errno;
    free(tmp);
    errno = err;
    return -1;
}

/* Make the rename durable; file systems that cannot sync a directory
 * (EINVAL) are not an error. */
static bp_status sync_directory(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate a directory name");
    bp_status st = BP_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL))
        st = bp__fail(BP_ERR_IO, "saved '%s', but cannot sync its directory '%s': %s", path, dir,
                      strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return st;
}

bp_status bp_matrix_save(const bp_matrix *m, const char *path) {
    if (!m || !path)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_save: %s must not be NULL",
                        !m ? "m" : "path");
    if (!*path)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_save: path must not be empty");
    size_t len;
    bp_status st = bp_matrix_serialize(m, NULL, 0, &len);
    if (st)
        return st;
    void *buf = malloc(len);
    if (!buf)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to save a matrix", len);
    st = bp_matrix_serialize(m, buf, len, &len);
    char *tmp = NULL;
    int fd = -1;
    if (!st) {
        fd = create_temp(path, &tmp);
        if (fd < 0)
            st = bp__fail(BP_ERR_IO, "cannot create a temporary file next to '%s': %s", path,
                          strerror(errno));
    }
    if (!st)
        st = write_all(fd, buf, len, tmp);
    if (!st && fsync(fd) != 0)
        st = bp__fail(BP_ERR_IO, "cannot sync '%s': %s", tmp, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !st)
        st = bp__fail(BP_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
        st = bp__fail(BP_ERR_IO, "cannot replace '%s': %s", path, strerror(errno));
    if (st && tmp)
        unlink(tmp); /* the previous file, if any, is untouched */
    if (!st)
        st = sync_directory(path);
    free(tmp);
    free(buf);
    return st;
}
