/*
 * The RNN file format, versions 1 and 2: a container around bitplane's
 * matrix format. All integers little-endian, floats as IEEE-754 bit
 * patterns. Version 2 is written only when some matrix has per-row plane
 * counts (a matrix-format version-3 matrix); every other RNN is written as
 * version 1, byte for byte as before, so older readers keep reading it.
 *
 *   offset  size  field
 *   0       8     magic "BPRNN\0\0\0"
 *   8       4     version (1, or 2 with per-row plane counts)
 *   12      4     header bytes (64)
 *   16      4     cell (1 LSTM, 2 GRU)
 *   20      4     split_gates (0 or 1)
 *   24      8     layers
 *   32      8     input_size
 *   40      8     hidden_size
 *   48      8     payload bytes
 *   56      8     reserved (0)
 *   64            per layer: bias_ih and bias_hh (gates*hidden float32
 *                 each), then the input matrices, then the recurrent ones
 *                 (1 each when fused, gates each when split), each as a
 *                 uint64 length followed by a matrix in the matrix format
 *                 (its own header and CRC)
 *   end-4   4     CRC-32C of every byte before it
 *
 * On load every field is validated: sizes, each matrix's shape against the
 * layer, one plane count k for all matrices, finite biases, no trailing
 * bytes, per-row plane counts in version 2 files only and in at least one
 * of their matrices.
 */
#include "bp_crc32c.h"
#include "bp_file_io.h"
#include "bp_le.h"
#include "bp_error.h"
#include "rnn_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RNN_FORMAT_VERSION        2u /* the newest this library reads */
#define RNN_FORMAT_ROW_PLANES     2u /* the first with per-row plane counts */
#define RNN_FORMAT_WITHOUT_COUNTS 1u
#define RNN_HEADER_BYTES          64u
static const char rnn_magic[8] = {'B', 'P', 'R', 'N', 'N', 0, 0, 0};

/* Matrix i of layer l in file order: the input matrices, then the recurrent. */
static const bp_matrix *matrix_at(const bp_rnn *rnn, size_t l, int i) {
    int mats = bp__rnn_mats(rnn);
    return i < mats ? rnn->layer[l].ih[i] : rnn->layer[l].hh[i - mats];
}

/* Whether any matrix of the RNN has per-row plane counts. */
static bool has_row_planes(const bp_rnn *rnn) {
    for (size_t l = 0; l < rnn->layers; l++)
        for (int i = 0; i < 2 * bp__rnn_mats(rnn); i++)
            if (bp__has_row_planes(matrix_at(rnn, l, i)))
                return true;
    return false;
}

bp_status bp_rnn_serialize(const bp_rnn *rnn, void *buf, size_t cap, size_t *needed) {
    if (!rnn || !needed)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_serialize: %s must not be NULL",
                        !rnn ? "rnn" : "needed");
    size_t GH = (size_t)rnn->gates * rnn->hidden;
    size_t total = RNN_HEADER_BYTES + 4, len;
    for (size_t l = 0; l < rnn->layers; l++)
        for (int i = 0; i < 2 * bp__rnn_mats(rnn); i++) {
            bp_status st = bp_matrix_serialize(matrix_at(rnn, l, i), NULL, 0, &len);
            if (st)
                return st;
            if (bp__add_overflows(total, len + 8, &total))
                return bp__fail(BP_ERR_SIZE_OVERFLOW, "RNN too large to serialise");
        }
    if (bp__add_overflows(total, rnn->layers * 2 * GH * 4, &total))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "RNN too large to serialise");
    *needed = total;
    if (!buf)
        return cap == 0 ? BP_OK
                        : bp__fail(BP_ERR_INVALID_ARGUMENT, "buf is NULL but cap is %zu", cap);
    if (cap < total)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "buffer holds %zu bytes, the RNN needs %zu", cap,
                        total);
    unsigned char *p = buf;
    memset(p, 0, RNN_HEADER_BYTES);
    memcpy(p, rnn_magic, sizeof rnn_magic);
    put_u32(p + 8, has_row_planes(rnn) ? RNN_FORMAT_ROW_PLANES : RNN_FORMAT_WITHOUT_COUNTS);
    put_u32(p + 12, RNN_HEADER_BYTES);
    put_u32(p + 16, (uint32_t)rnn->cell);
    put_u32(p + 20, (uint32_t)rnn->split);
    put_u64(p + 24, rnn->layers);
    put_u64(p + 32, rnn->input);
    put_u64(p + 40, rnn->hidden);
    put_u64(p + 48, total - RNN_HEADER_BYTES - 4);
    unsigned char *o = p + RNN_HEADER_BYTES;
    for (size_t l = 0; l < rnn->layers; l++) {
        const float *bias[2] = {rnn->layer[l].bias_ih, rnn->layer[l].bias_hh};
        for (int k = 0; k < 2; k++)
            for (size_t j = 0; j < GH; j++, o += 4) {
                uint32_t u;
                memcpy(&u, &bias[k][j], sizeof u);
                put_u32(o, u);
            }
        for (int i = 0; i < 2 * bp__rnn_mats(rnn); i++) {
            const bp_matrix *m = matrix_at(rnn, l, i);
            bp_status st = bp_matrix_serialize(m, NULL, 0, &len);
            if (!st)
                st = bp_matrix_serialize(m, o + 8, len, &len);
            if (st)
                return st;
            put_u64(o, len);
            o += 8 + len;
        }
    }
    put_u32(o, bp__crc32c(p, total - 4));
    return BP_OK;
}

static bp_status corrupt(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static bp_status corrupt(const char *fmt, ...) {
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bp__fail(BP_ERR_CORRUPT, "RNN data is corrupt or truncated: %s", what);
}

bp_status bp_rnn_deserialize(bp_context *ctx, const void *buf, size_t len, bp_rnn **out) {
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_deserialize: out must not be NULL");
    *out = NULL;
    if (!buf)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_deserialize: buf must not be NULL");
    const unsigned char *p = buf;
    if (len < RNN_HEADER_BYTES + 4)
        return corrupt("shorter than the header (%zu bytes)", len);
    if (memcmp(p, rnn_magic, sizeof rnn_magic) != 0)
        return corrupt("bad magic (not a bitplane RNN)");
    uint32_t version = get_u32(p + 8);
    if (version > RNN_FORMAT_VERSION)
        return bp__fail(BP_ERR_VERSION, "RNN format version %u is newer than this library's (%u)",
                        version, RNN_FORMAT_VERSION);
    if (version == 0)
        return corrupt("format version 0");
    if (get_u32(p + 12) != RNN_HEADER_BYTES)
        return corrupt("header size");
    if (get_u64(p + 48) != len - RNN_HEADER_BYTES - 4)
        return corrupt(get_u64(p + 48) > len - RNN_HEADER_BYTES - 4
                           ? "truncated: %zu bytes"
                           : "trailing bytes after the payload (%zu in all)",
                       len);
    if (get_u32(p + len - 4) != bp__crc32c(p, len - 4))
        return corrupt("checksum mismatch");
    uint32_t cell = get_u32(p + 16), split = get_u32(p + 20);
    uint64_t layers = get_u64(p + 24), input = get_u64(p + 32), hidden = get_u64(p + 40);
    if (cell != BP_RNN_LSTM && cell != BP_RNN_GRU)
        return corrupt("unknown cell %u", (unsigned)cell);
    if (split > 1)
        return corrupt("split_gates %u is not 0 or 1", (unsigned)split);
    if (layers < 1 || layers > BP_RNN_MAX_LAYERS)
        return corrupt("layers %zu out of range", (size_t)layers);
    if (input < 1 || input > BP_MAX_DIM || hidden < 1 || hidden > BP_MAX_DIM)
        return corrupt("input or hidden size out of range");
    if (get_u64(p + 56) != 0)
        return corrupt("reserved field is set");
    /* Every layer holds 2 x gates x hidden float biases and one length field
     * per matrix: refuse sizes the payload cannot hold before allocating for
     * them, so a short file cannot make the loader reserve gigabytes. The
     * bounds above keep this product below 2^40. */
    uint64_t gates = cell == BP_RNN_LSTM ? 4 : 3;
    uint64_t least = layers * (8 * gates * hidden + 8 * 2 * (split ? gates : 1));
    if (least > len - RNN_HEADER_BYTES - 4)
        return corrupt("%zu layers of hidden size %zu need at least %zu bytes, the payload has %zu",
                       (size_t)layers, (size_t)hidden, (size_t)least, len - RNN_HEADER_BYTES - 4);

    bp_rnn *rnn;
    bp_status st = bp__rnn_alloc((bp_rnn_cell)cell, (size_t)layers, (size_t)input, (size_t)hidden,
                                 (int)split, &rnn);
    if (st)
        return st;
    size_t GH = (size_t)rnn->gates * rnn->hidden, left = len - RNN_HEADER_BYTES - 4;
    size_t mat_rows = split ? rnn->hidden : GH;
    int mats = bp__rnn_mats(rnn);
    const unsigned char *o = p + RNN_HEADER_BYTES;
    for (size_t l = 0; l < rnn->layers && !st; l++) {
        bp_rnn_layer *L = &rnn->layer[l];
        if (left / 8 < GH) {
            st = corrupt("layer %zu: truncated biases", l);
            break;
        }
        float *bias[2] = {L->bias_ih, L->bias_hh};
        for (int k = 0; k < 2 && !st; k++)
            for (size_t j = 0; j < GH; j++, o += 4) {
                uint32_t u = get_u32(o);
                memcpy(&bias[k][j], &u, sizeof u);
                if (!isfinite(bias[k][j])) {
                    st = corrupt("layer %zu: non-finite bias", l);
                    break;
                }
            }
        left -= st ? 0 : 8 * GH;
        for (int i = 0; i < 2 * mats && !st; i++) {
            bool input_op = i < mats;
            bp_matrix **slot = input_op ? &L->ih[i] : &L->hh[i - mats];
            uint64_t mlen = left >= 8 ? get_u64(o) : UINT64_MAX;
            if (left < 8 || mlen > left - 8) {
                st = corrupt("layer %zu: truncated matrix", l);
                break;
            }
            st = bp_matrix_deserialize(ctx, o + 8, (size_t)mlen, slot);
            if (st) {
                char why[256];
                snprintf(why, sizeof why, "%s", bp_last_error());
                bp__fail(st, "layer %zu: %s", l, why);
                break;
            }
            size_t cols = input_op ? L->in : rnn->hidden;
            if (bp_matrix_rows(*slot) != mat_rows || bp_matrix_cols(*slot) != cols)
                st = corrupt("layer %zu: a matrix has the wrong shape", l);
            else if (bp__has_row_planes(*slot) && version < RNN_FORMAT_ROW_PLANES)
                st = corrupt("layer %zu: a matrix has per-row plane counts in a version-%u "
                             "file (they need version %u)",
                             l, (unsigned)version, RNN_FORMAT_ROW_PLANES);
            else if (rnn->bits && bp_matrix_bits(*slot) != rnn->bits)
                st = corrupt("layer %zu: matrices differ in plane count", l);
            rnn->bits = bp_matrix_bits(*slot);
            o += 8 + mlen;
            left -= 8 + (size_t)mlen;
        }
    }
    if (!st && left != 0)
        st = corrupt("%zu bytes left over after the last layer", left);
    if (!st && version >= RNN_FORMAT_ROW_PLANES && !has_row_planes(rnn))
        st = corrupt("a version-%u file without per-row plane counts (such an RNN is stored "
                     "as version %u)",
                     (unsigned)version, RNN_FORMAT_WITHOUT_COUNTS);
    if (st) {
        bp_rnn_destroy(rnn);
        return st;
    }
    *out = rnn;
    return BP_OK;
}

bp_status bp_rnn_save(const bp_rnn *rnn, const char *path) {
    if (!rnn || !path)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_save: %s must not be NULL",
                        !rnn ? "rnn" : "path");
    if (!*path)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_save: path must not be empty");
    size_t len;
    bp_status st = bp_rnn_serialize(rnn, NULL, 0, &len);
    if (st)
        return st;
    void *buf = malloc(len);
    if (!buf)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to save an RNN", len);
    st = bp_rnn_serialize(rnn, buf, len, &len);
    if (!st)
        st = bp__save_atomic(path, buf, len);
    free(buf);
    return st;
}

bp_status bp_rnn_load(bp_context *ctx, const char *path, bp_rnn **out) {
    if (!out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_load: out must not be NULL");
    *out = NULL;
    if (!path)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_load: path must not be NULL");
    int fd;
    uint64_t file_size;
    bp_status st = bp__open_regular(path, &fd, &file_size);
    if (st)
        return st;
    if (file_size > SIZE_MAX) {
        close(fd);
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "'%s' holds %llu bytes", path,
                        (unsigned long long)file_size);
    }
    size_t size = (size_t)file_size;
    void *buf = malloc(size ? size : 1);
    if (!buf)
        st = bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes to load '%s'", size, path);
    if (!st)
        st = bp__read_exact(fd, buf, size, path);
    close(fd);
    if (!st) {
        st = bp_rnn_deserialize(ctx, buf, size, out);
        if (st == BP_ERR_CORRUPT || st == BP_ERR_VERSION) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", bp_last_error());
            bp__fail(st, "'%s': %s", path, msg);
        }
    }
    free(buf);
    return st;
}
