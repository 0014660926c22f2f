/*
 * The matrix file format, version 3 for matrices with per-row plane counts,
 * else version 2 (byte for byte as before); versions 1 and 2 load. All integers
 * little-endian, floats as IEEE-754 bit patterns:
 *
 *   offset  size  field
 *   0       8     magic "BITPLANE"
 *   8       4     version (3 with row plane counts, else 2; 1 for older files)
 *   12      4     header bytes (96; 64 in version 1)
 *   16      8     rows
 *   24      8     cols
 *   32      4     bits (planes k)
 *   36      4     method (0 uniform, 1 residual)
 *   40      4     clip (float32; 0 = automatic)
 *   44      4     flags (0; reserved)
 *   48      8     payload bytes
 *   56      8     reserved (0)
 *   version 2 and 3:
 *   64      4     group size (columns; 0 = one scale per row)
 *   68      4     rotation block (0 = none)
 *   72      8     rotation seed
 *   80      16    reserved (0)
 *   header        prefix errors: bits float64
 *                 coefficients: c[n][row][p], rows*bits*(bits+1)/2 float32
 *                 version 2, grouped: multipliers, rows * ceil(cols / group
 *                 size) uint8, row-major, then zero bytes to a multiple of 4
 *                 version 3 only: row plane counts, rows uint8 in stored
 *                 order (1..bits, non-increasing, not all bits), zero bytes
 *                 to a multiple of 4; then the permutation, rows uint32,
 *                 stored row -> caller row (rows of one count in caller
 *                 order); coefficients and multipliers are in stored order
 *                 planes: bits slabs of rows * ceil(cols/32) uint32, row-major,
 *                 bits past cols zero; in version 3 plane p holds only the
 *                 stored rows whose count is > p
 *   end-4   4     CRC-32C of every byte before it
 *
 * The planes are stored untiled so the in-memory tiling can change without a
 * format change. The rotation signs are recomputed from the seed.
 *
 * Trust model: every field is validated on load (docs/numerics.md, "Loaded
 * files"): shapes, enumerations, group and rotation sizes, multipliers in
 * 1..255, finite coefficients whose represented weights stay within the
 * float range, prefix errors in [0, 1]. For uniform matrices the
 * coefficients below the prefix scale are recomputed from it. A file that
 * passes is any matrix the quantizer could have stored; it fully decides the
 * model's outputs, so load files only from sources trusted for the model.
 */
#include "bp_crc32c.h"
#include "bp_file_io.h"
#include "bp_error.h"
#include "bp_matrix.h"
#include "bp_rotation.h"
#include "bp_le.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FORMAT_VERSION  3u
#define HEADER_BYTES_V1 64u
#define HEADER_BYTES    96u
static const char magic[8] = {'B', 'I', 'T', 'P', 'L', 'A', 'N', 'E'};

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

/* Bytes of the multiplier block (padded to 4); 0 per row or in version 1. */
static size_t mult_block_bytes(uint64_t rows, uint64_t cols, uint32_t group_size) {
    if (!group_size)
        return 0;
    return bp__round_up((size_t)rows * (size_t)((cols + group_size - 1) / group_size), 4);
}

/* Bytes of the row-plane block of version 3: rows counts padded to 4, then
 * rows uint32 permutation entries; 0 without counts. */
static size_t row_block_bytes(uint64_t rows, bool counts) {
    return counts ? bp__round_up((size_t)rows, 4) + 4 * (size_t)rows : 0;
}

/* Payload sizes; false on overflow. rows, cols and group_size are already
 * range-checked, so the multiplier and row blocks cannot overflow.
 * plane_rows[p] (version 3) is how many rows plane p stores; NULL = all. */
static bool payload_size(uint64_t rows, uint64_t cols, uint32_t bits, uint32_t group_size,
                         const size_t *plane_rows, size_t *ncoef, size_t *row_words,
                         size_t *payload) {
    size_t rw = (size_t)((cols + 31) / 32), nc, words = 0, total;
    for (uint32_t p = 0; p < bits; p++)
        if (bp__add_overflows(words, plane_rows ? plane_rows[p] : (size_t)rows, &words))
            return false;
    if (bp__mul_overflows((size_t)rows, (size_t)bits * (bits + 1) / 2, &nc) ||
        bp__mul_overflows(words, rw, &words) || bp__mul_overflows(nc, 4, &total) ||
        bp__add_overflows(total, (size_t)bits * 8, &total) || bp__mul_overflows(words, 4, &words) ||
        bp__add_overflows(total, words, &total) ||
        bp__add_overflows(total, mult_block_bytes(rows, cols, group_size), &total) ||
        bp__add_overflows(total, row_block_bytes(rows, plane_rows != NULL), &total))
        return false;
    *ncoef = nc;
    *row_words = rw;
    *payload = total;
    return true;
}

/* Rows with a count > p, for every plane, from counts in stored order. */
static void rows_per_plane(const uint8_t *counts, size_t rows, uint32_t bits, size_t *plane_rows) {
    for (uint32_t p = 0; p < bits; p++)
        plane_rows[p] = 0;
    for (size_t r = 0; r < rows; r++)
        for (uint32_t p = 0; p < counts[r]; p++)
            plane_rows[p] = r + 1;
}

bp_status bp_matrix_serialize(const bp_matrix *m, void *buf, size_t cap, size_t *needed) {
    if (!m || !needed)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_serialize: %s must not be NULL",
                        !m ? "m" : "needed");
    size_t ncoef, rw, payload, plane_rows[BP_MAX_BITS];
    const uint32_t gs = (uint32_t)m->group_size;
    const bool counts = bp__has_row_planes(m);
    if (counts)
        rows_per_plane(m->row_planes, m->rows, (uint32_t)m->bits, plane_rows);
    if (!payload_size(m->rows, m->cols, (uint32_t)m->bits, gs, counts ? plane_rows : NULL, &ncoef,
                      &rw, &payload))
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
    /* Version 3 only when it is needed: other files stay readable by
     * version-2 readers. */
    put_u32(p + 8, counts ? FORMAT_VERSION : 2u);
    put_u32(p + 12, HEADER_BYTES);
    put_u64(p + 16, m->rows);
    put_u64(p + 24, m->cols);
    put_u32(p + 32, (uint32_t)m->bits);
    put_u32(p + 36, (uint32_t)m->method);
    put_u32(p + 40, float_bits(m->clip));
    put_u64(p + 48, payload);
    put_u32(p + 64, gs);
    put_u32(p + 68, (uint32_t)m->rot_block);
    put_u64(p + 72, m->rot_seed);
    unsigned char *o = p + HEADER_BYTES;
    for (int n = 0; n < m->bits; n++, o += 8)
        put_u64(o, double_bits(m->prefix_error[n]));
    for (size_t i = 0; i < ncoef; i++, o += 4)
        put_u32(o, float_bits(m->coef[i]));
    if (gs) {
        const size_t ng = (m->cols + gs - 1) / gs, mb = mult_block_bytes(m->rows, m->cols, gs);
        for (size_t r = 0; r < m->rows; r++)
            for (size_t g = 0; g < ng; g++)
                *o++ = (unsigned char)bp__mult(m, r, g);
        for (size_t i = m->rows * ng; i < mb; i++)
            *o++ = 0;
    }
    if (counts) {
        for (size_t r = 0; r < bp__round_up(m->rows, 4); r++)
            *o++ = r < m->rows ? m->row_planes[r] : 0;
        for (size_t r = 0; r < m->rows; r++, o += 4)
            put_u32(o, m->perm[r]);
    }
    for (int pl = 0; pl < m->bits; pl++)
        for (size_t r = 0; r < (counts ? plane_rows[pl] : m->rows); r++)
            for (size_t w = 0; w < rw; w++, o += 4)
                put_u32(o, bp__slab(m, pl)[bp__word_index(m, r, w)]);
    put_u32(o, bp__crc32c(p, total - 4));
    return BP_OK;
}

/* Prefix errors a quantizer can record (a relative least-squares error, at
 * most 1 up to rounding). */
#define PREFIX_ERROR_MAX 1.0001

/*
 * Coefficients a quantizer can produce: uniform c[n][row][p] = alpha_n
 * 2^(n-1-p) (the lower ones are recomputed from alpha_n, which is all the
 * combine reads), and represented weights within the float range:
 * |alpha_n| (2^n - 1) m_max for uniform, sum_p |c_p| m_max for residual, at
 * most 2 FLT_MAX (weights near FLT_MAX round up a little). NULL when valid.
 */
static const char *check_coefficients(bp_matrix *m) {
    const double mmax = bp__grouped(m) ? BP_MULT_MAX : 1.0, limit = 2.0 * (double)FLT_MAX;
    for (int n = 1; n <= m->bits; n++)
        for (size_t r = 0; r < m->rows; r++) {
            float *c = bp__coef(m, n, r);
            double reach = 0;
            if (m->method == BP_QUANT_UNIFORM) {
                reach = fabs((double)c[n - 1]) * (double)((1u << n) - 1) * mmax;
                for (int p = 0; p < n - 1; p++)
                    c[p] = ldexpf(c[n - 1], n - 1 - p);
            } else {
                for (int p = 0; p < n; p++)
                    reach += fabs((double)c[p]);
                reach *= mmax;
            }
            if (!(reach <= limit))
                return "coefficient too large: the weights it represents exceed the float range";
        }
    return NULL;
}

static bp_status corrupt(const char *what) {
    return bp__fail(BP_ERR_CORRUPT, "matrix data is corrupt or truncated: %s", what);
}

/* Magic, version and header size of a serialized matrix of len bytes (p
 * holds at least min(len, HEADER_BYTES) of them): the checks both the
 * buffer and the file path make before trusting any other field. */
static bp_status check_header_start(const unsigned char *p, uint64_t len, uint32_t *version,
                                    uint32_t *header) {
    if (len < HEADER_BYTES_V1 + 4)
        return corrupt("shorter than the header");
    if (memcmp(p, magic, sizeof magic) != 0)
        return corrupt("bad magic (not a bitplane matrix)");
    *version = get_u32(p + 8);
    if (*version > FORMAT_VERSION)
        return bp__fail(BP_ERR_VERSION,
                        "matrix format version %u is newer than this library's (%u)", *version,
                        FORMAT_VERSION);
    if (*version == 0)
        return corrupt("format version 0");
    *header = *version == 1 ? HEADER_BYTES_V1 : HEADER_BYTES;
    if (len < *header + 4)
        return corrupt("shorter than the header");
    if (get_u32(p + 12) != *header)
        return corrupt("header size");
    return BP_OK;
}

bp_status bp_matrix_deserialize(bp_context *ctx, const void *buf, size_t len, bp_matrix **out) {
    (void)ctx;
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_deserialize: out must not be NULL");
    *out = NULL;
    if (!buf)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_deserialize: buf must not be NULL");
    const unsigned char *p = buf;
    uint32_t version, header;
    bp_status st = check_header_start(p, len, &version, &header);
    if (st)
        return st;
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
    uint32_t group_size = 0, rot_block = 0;
    uint64_t rot_seed = 0;
    if (version >= 2) {
        group_size = get_u32(p + 64);
        rot_block = get_u32(p + 68);
        rot_seed = get_u64(p + 72);
        if (get_u64(p + 80) != 0 || get_u64(p + 88) != 0)
            return corrupt("reserved fields are set");
        if (group_size && (group_size < BP_GROUP_MIN_COLS || group_size > BP_GROUP_MAX_COLS ||
                           (group_size & (group_size - 1))))
            return corrupt("group size is not 0 or a power of two in 32..4096");
        if (group_size && cols > BP_GROUP_MAX_K)
            return corrupt("group scales with more than 2^23 columns");
        if (rot_block &&
            (rot_block < 4 || rot_block > BP_ROTATION_MAX_BLOCK || !bp__is_pow4(rot_block)))
            return corrupt("rotation block is not 0 or a power of four in 4..4096");
    }
    /* Version 3: the row counts (after the multipliers) size the planes;
     * they are bounds-checked here and fully validated below. */
    size_t ncoef, rw, payload, plane_rows[BP_MAX_BITS];
    const uint8_t *counts = NULL;
    if (version >= 3) {
        if (!payload_size(rows, cols, bits, group_size, NULL, &ncoef, &rw, &payload))
            return corrupt("payload size does not match the shape");
        size_t at =
            header + (size_t)bits * 8 + ncoef * 4 + mult_block_bytes(rows, cols, group_size);
        if (len < at + (size_t)rows + 4)
            return corrupt("truncated");
        counts = p + at;
        for (size_t r = 0; r < rows; r++)
            if (counts[r] < 1 || counts[r] > bits)
                return corrupt("a row's plane count is not in 1..bits");
        rows_per_plane(counts, (size_t)rows, bits, plane_rows);
    }
    if (!payload_size(rows, cols, bits, group_size, counts ? plane_rows : NULL, &ncoef, &rw,
                      &payload) ||
        get_u64(p + 48) != payload)
        return corrupt("payload size does not match the shape");
    if (len != header + payload + 4)
        return corrupt(len < header + payload + 4 ? "truncated" : "trailing bytes");
    if (get_u32(p + len - 4) != bp__crc32c(p, len - 4))
        return corrupt("checksum mismatch");

    bp_matrix *m;
    st = bp__matrix_alloc_grouped((size_t)rows, (size_t)cols, (int)bits, group_size, &m);
    if (!st)
        st = bp__matrix_set_rotation(m, (int)rot_block, rot_seed);
    if (st) {
        bp_matrix_destroy(m);
        return st;
    }
    m->method = (bp_quant_method)method;
    m->clip = clip;
    const char *bad = NULL;
    const unsigned char *o = p + header;
    for (uint32_t n = 0; n < bits; n++, o += 8) {
        m->prefix_error[n] = bits_double(get_u64(o));
        /* A least-squares fit never does worse than all-zero weights. */
        if (!(m->prefix_error[n] >= 0 && m->prefix_error[n] <= PREFIX_ERROR_MAX))
            bad = "prefix error is not in [0, 1]";
    }
    for (size_t i = 0; i < ncoef; i++, o += 4) {
        m->coef[i] = bits_float(get_u32(o));
        if (!isfinite(m->coef[i]))
            bad = "non-finite coefficient";
    }
    if (group_size) {
        const size_t ng = (size_t)((cols + group_size - 1) / group_size);
        const size_t mb = mult_block_bytes(rows, cols, group_size);
        for (size_t r = 0; r < rows; r++)
            for (size_t g = 0; g < ng; g++, o++) {
                if (*o < 1)
                    bad = "group multiplier 0";
                bp__mult_tile_mut(m, r / BP_ROW_GROUP, g)[r % BP_ROW_GROUP] = *o;
            }
        for (size_t i = (size_t)rows * ng; i < mb; i++, o++)
            if (*o)
                bad = "multiplier padding is set";
    }
    uint8_t *row_counts = NULL;
    uint32_t *perm = NULL;
    if (counts) {
        row_counts = malloc((size_t)rows);
        perm = malloc((size_t)rows * sizeof *perm);
        if (!row_counts || !perm) {
            free(row_counts);
            free(perm);
            bp_matrix_destroy(m);
            return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate the row order of %zu rows",
                            (size_t)rows);
        }
        memcpy(row_counts, o, (size_t)rows);
        for (size_t r = rows; r < bp__round_up((size_t)rows, 4); r++)
            if (o[r])
                bad = "row plane count padding is set";
        o += bp__round_up((size_t)rows, 4);
        for (size_t r = 0; r < rows; r++, o += 4)
            perm[r] = get_u32(o);
        const char *why = bp__row_planes_check_stored(row_counts, perm, (size_t)rows, (int)bits);
        bad = why ? why : bad;
    }
    uint32_t tail_mask = cols % 32 ? ~((1u << (cols % 32)) - 1u) : 0u;
    for (uint32_t pl = 0; pl < bits; pl++)
        for (size_t r = 0; r < (counts ? plane_rows[pl] : rows); r++)
            for (size_t w = 0; w < rw; w++, o += 4) {
                uint32_t word = get_u32(o);
                if (w == rw - 1 && (word & tail_mask))
                    bad = "padding bits are set";
                m->planes[(size_t)pl * m->plane_words + bp__word_index(m, r, w)] = word;
            }
    if (!bad)
        bad = check_coefficients(m);
    if (bad) {
        free(row_counts);
        free(perm);
        bp_matrix_destroy(m);
        return corrupt(bad);
    }
    if (counts && (st = bp__matrix_set_row_planes(m, row_counts, perm))) {
        bp_matrix_destroy(m);
        return st;
    }
    *out = m;
    return BP_OK;
}

/* ---- files ----------------------------------------------------------------
 *
 * Loading opens without blocking (a FIFO or device must not hang the caller),
 * refuses anything but a regular file, reads the header (HEADER_BYTES) first
 * and then exactly the length the header declares, so a large foreign file
 * is rejected after reading HEADER_BYTES bytes. Saving writes a temporary file in the
 * target's directory, fsyncs it, renames it over the target and fsyncs the
 * directory, so a failed save leaves the previous file as it was. */

/* Read exactly len bytes at the current offset. */
/* The whole length the header declares (header, payload and checksum),
 * checked against the file's actual size before anything past the header is
 * read. hdr holds the first min(file_size, HEADER_BYTES) bytes. The other
 * fields are validated by bp_matrix_deserialize. */
static bp_status declared_length(const unsigned char *hdr, uint64_t file_size, size_t *total) {
    uint32_t version, header;
    bp_status st = check_header_start(hdr, file_size, &version, &header);
    if (st)
        return st;
    uint64_t payload = get_u64(hdr + 48);
    if (payload > UINT64_MAX - header - 4)
        return corrupt("payload size does not match the shape");
    uint64_t want = header + payload + 4;
    if (file_size != want)
        return corrupt(file_size < want ? "truncated" : "trailing bytes");
    if (want > SIZE_MAX)
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "the file declares %llu bytes",
                        (unsigned long long)want);
    *total = (size_t)want;
    return BP_OK;
}

static bp_status load_fd(bp_context *ctx, int fd, uint64_t file_size, const char *path,
                         bp_matrix **out) {
    unsigned char hdr[HEADER_BYTES];
    size_t have = file_size < HEADER_BYTES ? (size_t)file_size : HEADER_BYTES;
    size_t total = 0;
    bp_status st = bp__read_exact(fd, hdr, have, path);
    if (!st)
        st = declared_length(hdr, file_size, &total);
    if (st)
        return st;
    /* total == file_size >= have: the header bytes already read are the
     * first `have` bytes of the buffer. */
    unsigned char *buf = malloc(total);
    if (!buf)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to load '%s'", total,
                        path);
    memcpy(buf, hdr, have);
    st = bp__read_exact(fd, buf + have, total - have, path);
    if (!st)
        st = bp_matrix_deserialize(ctx, buf, total, out);
    free(buf);
    return st;
}

bp_status bp_matrix_load(bp_context *ctx, const char *path, bp_matrix **out) {
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_load: out must not be NULL");
    *out = NULL;
    if (!path)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_load: path must not be NULL");
    int fd;
    uint64_t file_size;
    bp_status st = bp__open_regular(path, &fd, &file_size);
    if (st)
        return st;
    st = load_fd(ctx, fd, file_size, path, out);
    close(fd);
    if (st == BP_ERR_CORRUPT || st == BP_ERR_VERSION) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", bp_last_error());
        bp__fail(st, "'%s': %s", path, msg);
    }
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
    if (!st)
        st = bp__save_atomic(path, buf, len);
    free(buf);
    return st;
}
