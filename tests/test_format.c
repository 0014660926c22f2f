/*
 * The matrix file format (src/format.c, version 2; version 1 still loads):
 *  - save/load and serialize/deserialize round trips give an identical
 *    matrix (dequantize, gemm bit for bit, prefix errors, bytes);
 *  - every truncation, every single-byte flip and trailing bytes are
 *    rejected with BP_ERR_CORRUPT, each buffer exactly sized so ASan sees
 *    any over-read;
 *  - a newer version gives BP_ERR_VERSION;
 *  - a version-1 file (bytes written here from the version-1 layout) loads;
 *  - fields made invalid with a recomputed (valid) checksum are rejected,
 *    so validation does not rely on the CRC alone.
 * Layout used here: magic at 0, version u32 at 8, header size u32 at 12,
 * rows u64 at 16, cols u64 at 24, bits u32 at 32, method u32 at 36, clip f32
 * at 40, flags u32 at 44, payload bytes u64 at 48, reserved u64 at 56,
 * group size u32 at 64, rotation block u32 at 68, seed u64 at 72, 16
 * reserved bytes, payload from 96 (prefix errors f64, coefficients f32,
 * multipliers u8 row-major padded to 4 when grouped, untiled planes),
 * CRC-32C of everything before it in the last 4 bytes.
 */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"
#include "bp_abi.h"
#include "bp_error.h"

#include "tu_criterion.h"

#include "data/format_v2_k512.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(format, .fini = tu_suite_fini);

#define NELEM(a)     (sizeof(a) / sizeof((a)[0]))
#define OFF_VERSION  8
#define OFF_HEADER   12
#define OFF_ROWS     16
#define OFF_COLS     24
#define OFF_BITS     32
#define OFF_METHOD   36
#define OFF_CLIP     40
#define OFF_FLAGS    44
#define OFF_PAYLOAD  48
#define OFF_RESERVED 56
#define OFF_GROUP    64
#define OFF_ROTATION 68
#define OFF_SEED     72
#define OFF_RESV2    80
#define HEADER       96
#define HEADER_V1    64

static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void fix_crc(unsigned char *buf, size_t len) {
    tu_put_le32(buf + len - 4, tu_crc32c(buf, len - 4));
}

static bp_matrix *random_matrix(tu_rng *rng, size_t M, size_t K, int bits, bp_quant_method method) {
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(rng, w, M * K, 1.0f);
    /* Grouped and rotated (the defaults' structure) with a random seed, so
     * every version-2 field is present. */
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.bits = bits;
    q.method = method;
    q.clip = method == BP_QUANT_UNIFORM ? 0.75f : 0.0f;
    q.group_size = 32;
    q.rotation = 16;
    q.rotation_seed = tu_next(rng);
    bp_matrix *m = tu_quantize_opts(NULL, w, M, K, K, &q);
    free(w);
    return m;
}

static unsigned char *serialize(const bp_matrix *m, size_t *len) {
    size_t need = 0;
    cr_assert_eq(bp_matrix_serialize(m, NULL, 0, &need), BP_OK, "%s", bp_last_error());
    unsigned char *buf = tu_xmalloc(need);
    size_t need2 = 0;
    cr_assert_eq(bp_matrix_serialize(m, buf, need, &need2), BP_OK, "%s", bp_last_error());
    cr_assert_eq(need2, need);
    *len = need;
    return buf;
}

/* Deserialize from an exactly sized heap copy; returns the status. */
static bp_status try_parse(const unsigned char *data, size_t len, bp_matrix **out) {
    unsigned char *copy = tu_xmalloc(len);
    if (len)
        memcpy(copy, data, len);
    bp__clear_error();
    bp_status st = bp_matrix_deserialize(NULL, copy, len, out);
    free(copy);
    return st;
}

static void expect_reject(const unsigned char *data, size_t len, bp_status want, const char *what) {
    bp_matrix *m = (bp_matrix *)(uintptr_t)1;
    bp_status st = try_parse(data, len, &m);
    cr_assert_eq(st, want, "%s: expected %s, got %s (%s)", what, bp_status_string(want),
                 bp_status_string(st), bp_last_error());
    cr_assert(m == NULL, "%s: failing deserialize must set *out to NULL", what);
    cr_assert(bp_last_error()[0] != '\0', "%s: no error message", what);
}

/* Two matrices are identical: shape, method, prefix errors, dequantize and
 * gemm bit for bit, and serialized bytes. */
static void assert_identical(const bp_matrix *a, const bp_matrix *b, tu_rng *rng,
                             unsigned long long seed) {
    cr_assert_eq(bp_matrix_rows(a), bp_matrix_rows(b));
    cr_assert_eq(bp_matrix_cols(a), bp_matrix_cols(b));
    cr_assert_eq(bp_matrix_bits(a), bp_matrix_bits(b));
    cr_assert_eq(bp_matrix_method(a), bp_matrix_method(b));
    size_t M = bp_matrix_rows(a), K = bp_matrix_cols(a);
    int bits = bp_matrix_bits(a);
    float *da = tu_xmalloc(M * K * sizeof *da), *db = tu_xmalloc(M * K * sizeof *db);
    for (int n = 0; n <= bits; n++) {
        if (n > 0)
            cr_assert(bp_matrix_prefix_error(a, n) == bp_matrix_prefix_error(b, n),
                      "prefix_error(%d): %.17g vs %.17g", n, bp_matrix_prefix_error(a, n),
                      bp_matrix_prefix_error(b, n));
        cr_assert_eq(bp_matrix_dequantize(NULL, a, n, da, K), BP_OK);
        cr_assert_eq(bp_matrix_dequantize(NULL, b, n, db, K), BP_OK);
        cr_assert(memcmp(da, db, M * K * sizeof *da) == 0, "dequantize(%d) differs; seed=%llu", n,
                  seed);
    }
    free(da);
    free(db);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
    size_t B = 5;
    float *x = tu_xmalloc(B * K * sizeof *x);
    float *ya = tu_xmalloc(B * M * sizeof *ya), *yb = tu_xmalloc(B * M * sizeof *yb);
    tu_fill_gauss(rng, x, B * K, 1.0f);
    for (int n = 1; n <= bits; n++)
        for (int act = 1; act <= 16; act += 5) {
            bp_run_options o = tu_run(n, act);
            cr_assert_eq(bp_gemm(ctx, a, x, B, K, ya, M, &o), BP_OK);
            cr_assert_eq(bp_gemm(ctx, b, x, B, K, yb, M, &o), BP_OK);
            cr_assert(memcmp(ya, yb, B * M * sizeof *ya) == 0,
                      "gemm differs after round trip: planes %d act_bits %d; seed=%llu", n, act,
                      seed);
        }
    free(x);
    free(ya);
    free(yb);
    bp_context_destroy(ctx);
    size_t la, lb;
    unsigned char *sa = serialize(a, &la), *sb = serialize(b, &lb);
    cr_assert(la == lb && memcmp(sa, sb, la) == 0, "serialized bytes differ after round trip");
    free(sa);
    free(sb);
}

static void temp_path(char *path, size_t cap) {
    snprintf(path, cap, "/tmp/bp_test_format_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp failed");
    /* Leave garbage in it: save must replace an existing file. */
    cr_assert(write(fd, "garbage", 7) == 7);
    close(fd);
}

Test(format, save_load_round_trip) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    static const struct {
        size_t rows, cols;
        int bits;
        bp_quant_method method;
    } cases[] = {{1, 1, 1, BP_QUANT_UNIFORM},     {7, 31, 8, BP_QUANT_UNIFORM},
                 {33, 513, 8, BP_QUANT_RESIDUAL}, {17, 1000, 16, BP_QUANT_UNIFORM},
                 {16, 64, 3, BP_QUANT_RESIDUAL},  {5, 33, 16, BP_QUANT_RESIDUAL}};
    char path[64];
    temp_path(path, sizeof path);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    for (size_t i = 0; i < NELEM(cases); i++) {
        bp_matrix *m =
            random_matrix(&rng, cases[i].rows, cases[i].cols, cases[i].bits, cases[i].method);
        bp_status st = bp_matrix_save(m, path);
        cr_assert_eq(st, BP_OK, "save: %s", bp_last_error());
        bp_matrix *l = NULL;
        st = bp_matrix_load(i % 2 ? ctx : NULL, path, &l);
        cr_assert_eq(st, BP_OK, "load: %s (%s)", bp_status_string(st), bp_last_error());
        assert_identical(m, l, &rng, seed);
        /* serialize/deserialize round trip too */
        size_t len;
        unsigned char *buf = serialize(m, &len);
        bp_matrix *d = NULL;
        cr_assert_eq(try_parse(buf, len, &d), BP_OK, "deserialize: %s", bp_last_error());
        assert_identical(m, d, &rng, seed);
        /* The file is exactly the serialized bytes. */
        FILE *f = fopen(path, "rb");
        cr_assert(f);
        unsigned char *fb = tu_xmalloc(len + 1);
        size_t got = fread(fb, 1, len + 1, f);
        fclose(f);
        cr_assert(got == len && memcmp(fb, buf, len) == 0, "file differs from serialize()");
        free(fb);
        free(buf);
        bp_matrix_destroy(m);
        bp_matrix_destroy(l);
        bp_matrix_destroy(d);
    }
    bp_context_destroy(ctx);
    remove(path);
}

static void truncations(size_t M, size_t K, int bits, bp_quant_method method) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_matrix *m = random_matrix(&rng, M, K, bits, method);
    size_t len;
    unsigned char *buf = serialize(m, &len);
    for (size_t l = 0; l < len; l++) {
        char what[96];
        snprintf(what, sizeof what, "%zux%zu bits %d: truncated to %zu of %zu bytes", M, K, bits, l,
                 len);
        expect_reject(buf, l, BP_ERR_CORRUPT, what);
    }
    /* Trailing bytes are corrupt too. */
    unsigned char *longer = tu_xmalloc(len + 8);
    memcpy(longer, buf, len);
    memset(longer + len, 0, 8);
    expect_reject(longer, len + 1, BP_ERR_CORRUPT, "one trailing byte");
    expect_reject(longer, len + 8, BP_ERR_CORRUPT, "eight trailing bytes");
    free(longer);
    bp_matrix *ok = NULL;
    cr_assert_eq(try_parse(buf, len, &ok), BP_OK);
    bp_matrix_destroy(ok);
    free(buf);
    bp_matrix_destroy(m);
}

Test(format, every_truncation_small) {
    truncations(5, 40, 3, BP_QUANT_UNIFORM);
    truncations(3, 7, 2, BP_QUANT_RESIDUAL);
}

Test(format, every_truncation_medium, .timeout = 120) {
    truncations(33, 513, 8, BP_QUANT_RESIDUAL);
}

static void flips(size_t M, size_t K, int bits, bp_quant_method method, size_t samples) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_matrix *m = random_matrix(&rng, M, K, bits, method);
    size_t len;
    unsigned char *buf = serialize(m, &len);
    unsigned char *copy = tu_xmalloc(len);
    static const unsigned char masks[] = {0x01, 0x80, 0xff, 0x10};
    size_t count = samples ? samples : len;
    for (size_t s = 0; s < count; s++) {
        size_t i = samples ? tu_range(&rng, 0, len - 1) : s;
        for (size_t k = 0; k < NELEM(masks) + 1; k++) {
            unsigned char mask =
                k < NELEM(masks) ? masks[k] : (unsigned char)tu_range(&rng, 1, 255);
            memcpy(copy, buf, len);
            copy[i] ^= mask;
            bp_matrix *out = (bp_matrix *)(uintptr_t)1;
            bp_status st = try_parse(copy, len, &out);
            bool version_byte = i >= OFF_VERSION && i < OFF_VERSION + 4;
            cr_assert(st == BP_ERR_CORRUPT || (version_byte && st == BP_ERR_VERSION),
                      "%zux%zu bits %d: byte %zu of %zu xor 0x%02x accepted or misreported: %s "
                      "(%s); seed=%llu",
                      M, K, bits, i, len, mask, bp_status_string(st), bp_last_error(), seed);
            cr_assert(out == NULL);
            cr_assert(bp_last_error()[0] != '\0');
        }
    }
    free(copy);
    free(buf);
    bp_matrix_destroy(m);
}

Test(format, every_byte_flip_small) {
    flips(5, 40, 3, BP_QUANT_UNIFORM, 0);
    flips(2, 3, 5, BP_QUANT_RESIDUAL, 0);
}

Test(format, sampled_byte_flips_medium, .timeout = 120) {
    flips(40, 700, 8, BP_QUANT_UNIFORM, 1500);
}

Test(format, newer_version) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_matrix *m = random_matrix(&rng, 9, 50, 4, BP_QUANT_UNIFORM);
    size_t len;
    unsigned char *buf = serialize(m, &len);
    cr_assert(memcmp(buf, "BITPLANE", 8) == 0, "magic");
    cr_assert_eq(get32(buf + OFF_VERSION), 2u, "format version field");
    cr_assert_eq(get32(buf + len - 4), tu_crc32c(buf, len - 4),
                 "trailer is not CRC-32C of the preceding bytes");
    uint32_t versions[] = {4, 255, 0x10000, UINT32_MAX};
    for (size_t i = 0; i < NELEM(versions); i++)
        for (int recrc = 0; recrc < 2; recrc++) {
            unsigned char *c = tu_xmalloc(len);
            memcpy(c, buf, len);
            tu_put_le32(c + OFF_VERSION, versions[i]);
            if (recrc)
                fix_crc(c, len);
            char what[64];
            snprintf(what, sizeof what, "version %u (crc %s)", versions[i],
                     recrc ? "fixed" : "stale");
            expect_reject(c, len, BP_ERR_VERSION, what);
            /* A newer file may also have a different size. */
            expect_reject(c, len - 5, BP_ERR_VERSION, what);
            free(c);
        }
    unsigned char *c = tu_xmalloc(len);
    memcpy(c, buf, len);
    tu_put_le32(c + OFF_VERSION, 0);
    fix_crc(c, len);
    expect_reject(c, len, BP_ERR_CORRUPT, "version 0");
    /* Through a file too. */
    char path[64];
    temp_path(path, sizeof path);
    tu_put_le32(c + OFF_VERSION, 4);
    fix_crc(c, len);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(c, 1, len, f) == len);
    fclose(f);
    bp_matrix *l = (bp_matrix *)(uintptr_t)1;
    bp_status st = bp_matrix_load(NULL, path, &l);
    cr_assert_eq(st, BP_ERR_VERSION, "load of a version-4 file: %s (%s)", bp_status_string(st),
                 bp_last_error());
    cr_assert(l == NULL);
    remove(path);
    free(c);
    free(buf);
    bp_matrix_destroy(m);
}

/* Invalid fields behind a valid checksum are still rejected. */
Test(format, fields_validated_behind_valid_crc) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t M = 5, K = 40;
    int bits = 4;
    bp_matrix *m = random_matrix(&rng, M, K, bits, BP_QUANT_UNIFORM);
    size_t len;
    unsigned char *buf = serialize(m, &len);
    size_t coef_off = HEADER + (size_t)bits * 8;
    size_t ncoef = M * (size_t)bits * (size_t)(bits + 1) / 2;
    size_t mult_off = coef_off + ncoef * 4, ng = (K + 31) / 32;
    size_t mult_bytes = (M * ng + 3) / 4 * 4;
    size_t plane_off = mult_off + mult_bytes;
    size_t rw = (K + 31) / 32;
    cr_assert_eq(len, plane_off + (size_t)bits * M * rw * 4 + 4, "unexpected layout");
    cr_assert(M * ng < mult_bytes, "the case should have multiplier padding");
    float fnan = NAN, finf = INFINITY, two = 2.0f, neg = -0.5f, huge = 3e38f;
    uint32_t u_nan, u_inf, u_two, u_neg, u_huge;
    memcpy(&u_nan, &fnan, 4);
    memcpy(&u_inf, &finf, 4);
    memcpy(&u_two, &two, 4);
    memcpy(&u_neg, &neg, 4);
    memcpy(&u_huge, &huge, 4);
    /* c[2][row 0][1] is the scale of the 2-plane prefix: 3e38 * 3 overflows. */
    size_t alpha2_off = coef_off + 4 * (M * 1 + 1);
    struct {
        const char *what;
        size_t off;
        int width; /* 1, 4 or 8 */
        uint64_t value;
    } edits[] = {
        {"group size 48", OFF_GROUP, 4, 48},
        {"group size 16", OFF_GROUP, 4, 16},
        {"group size 8192", OFF_GROUP, 4, 8192},
        {"group size 64 (payload mismatch)", OFF_GROUP, 4, 64},
        {"rotation block 3", OFF_ROTATION, 4, 3},
        {"rotation block 1", OFF_ROTATION, 4, 1},
        {"rotation block 32 (not a power of four)", OFF_ROTATION, 4, 32},
        {"rotation block 8192", OFF_ROTATION, 4, 8192},
        {"version-2 reserved", OFF_RESV2, 8, 1},
        {"version-2 reserved tail", OFF_RESV2 + 8, 8, 1},
        {"multiplier 0", mult_off + 1, 1, 0},
        {"multiplier padding", mult_off + M * ng, 1, 7},
        {"prefix error 2", HEADER + 8, 8, 0x4000000000000000ull},
        {"coefficient 3e38 (weights beyond float)", alpha2_off, 4, u_huge},
        {"magic", 0, 4, 0x41544942u /* "BITA" */},
        {"header size", OFF_HEADER, 4, 65},
        {"header size of version 1", OFF_HEADER, 4, HEADER_V1},
        {"rows 0", OFF_ROWS, 8, 0},
        {"rows huge", OFF_ROWS, 8, UINT64_MAX},
        {"rows > BP_MAX_DIM", OFF_ROWS, 8, (uint64_t)BP_MAX_DIM + 1},
        {"rows+1 (payload mismatch)", OFF_ROWS, 8, M + 1},
        {"cols 0", OFF_COLS, 8, 0},
        {"cols huge", OFF_COLS, 8, (uint64_t)1 << 62},
        {"bits 0", OFF_BITS, 4, 0},
        {"bits 17", OFF_BITS, 4, 17},
        {"bits 5", OFF_BITS, 4, 5},
        {"method 2", OFF_METHOD, 4, 2},
        {"method residual with clip", OFF_METHOD, 4, 1},
        {"clip NaN", OFF_CLIP, 4, u_nan},
        {"clip Inf", OFF_CLIP, 4, u_inf},
        {"clip 2", OFF_CLIP, 4, u_two},
        {"clip -0.5", OFF_CLIP, 4, u_neg},
        {"flags", OFF_FLAGS, 4, 1},
        {"payload size", OFF_PAYLOAD, 8, len},
        {"payload size huge", OFF_PAYLOAD, 8, UINT64_MAX},
        {"reserved", OFF_RESERVED, 8, 1},
        {"prefix error NaN", HEADER, 8, 0x7ff8000000000000ull},
        {"prefix error negative", HEADER + 8, 8, 0xbff0000000000000ull},
        {"prefix error Inf", HEADER + 16, 8, 0x7ff0000000000000ull},
        {"coefficient NaN", coef_off, 4, u_nan},
        {"coefficient Inf", coef_off + 4 * (ncoef - 1), 4, u_inf},
        {"padding bits set", plane_off + 4 * (rw - 1), 4, 0xffffffffu},
    };
    for (size_t i = 0; i < NELEM(edits); i++) {
        unsigned char *c = tu_xmalloc(len);
        memcpy(c, buf, len);
        if (edits[i].width == 1)
            c[edits[i].off] = (unsigned char)edits[i].value;
        else if (edits[i].width == 4)
            tu_put_le32(c + edits[i].off, (uint32_t)edits[i].value);
        else
            put64(c + edits[i].off, edits[i].value);
        fix_crc(c, len);
        expect_reject(c, len, BP_ERR_CORRUPT, edits[i].what);
        free(c);
    }
    /* Sanity: a harmless edit with a fixed CRC (a coefficient value) loads. */
    unsigned char *c = tu_xmalloc(len);
    memcpy(c, buf, len);
    tu_put_le32(c + coef_off, u_two);
    fix_crc(c, len);
    bp_matrix *l = NULL;
    cr_assert_eq(try_parse(c, len, &l), BP_OK, "%s", bp_last_error());
    bp_matrix_destroy(l);
    /* A 1e36 one-plane scale (times multipliers up to 255) represents weights
     * within the float range, so it loads; gemm must then report the
     * overflow, not return Inf. */
    float big = 1e36f;
    uint32_t u_big;
    memcpy(&u_big, &big, 4);
    memcpy(c, buf, len);
    tu_put_le32(c + coef_off, u_big);
    fix_crc(c, len);
    cr_assert_eq(try_parse(c, len, &l), BP_OK, "%s", bp_last_error());
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    float *x = tu_xmalloc(K * sizeof *x), *y = tu_xmalloc(M * sizeof *y);
    tu_fill_gauss(&rng, x, K, 1.0f);
    bp_run_options o = tu_run(1, 8);
    bp_status st = bp_gemm(ctx, l, x, 1, K, y, M, &o);
    bool finite = true;
    for (size_t r = 0; r < M; r++)
        finite &= isfinite(y[r]) != 0;
    cr_assert(st == BP_ERR_NON_FINITE || (st == BP_OK && finite),
              "1e36 coefficient: status %s, y %s; seed=%llu", bp_status_string(st),
              finite ? "finite" : "not finite", seed);
    free(x);
    free(y);
    bp_context_destroy(ctx);
    bp_matrix_destroy(l);
    free(c);
    free(buf);
    bp_matrix_destroy(m);
}

Test(format, load_missing_path) {
    bp_matrix *m = (bp_matrix *)(uintptr_t)1;
    bp_status st = bp_matrix_load(NULL, "/nonexistent-bitplane-dir/missing.bpm", &m);
    cr_assert_eq(st, BP_ERR_IO, "%s", bp_status_string(st));
    cr_assert(m == NULL);
    cr_assert(strstr(bp_last_error(), "missing.bpm") != NULL,
              "the message should name the path: %s", bp_last_error());
}

/* A version-1 file, written here byte by byte from the version-1 layout
 * (64-byte header, no multipliers, no rotation), still loads: the matrix it
 * describes dequantizes to sum_p c[n][row][p] t_p and gemm follows the
 * documented rule. */
Test(format, version_1_file_loads) {
    enum { M = 3, K = 40, BITS = 2, RW = 2 };
    static const float alpha1[M] = {0.5f, 0.25f, 1.5f}, alpha2[M] = {0.2f, 0.125f, 0.75f};
    const size_t ncoef = M * BITS * (BITS + 1) / 2;
    const size_t payload = BITS * 8 + ncoef * 4 + (size_t)BITS * M * RW * 4;
    const size_t len = HEADER_V1 + payload + 4;
    unsigned char *b = tu_xmalloc(len);
    memset(b, 0, len);
    memcpy(b, "BITPLANE", 8);
    tu_put_le32(b + OFF_VERSION, 1);
    tu_put_le32(b + OFF_HEADER, HEADER_V1);
    put64(b + OFF_ROWS, M);
    put64(b + OFF_COLS, K);
    tu_put_le32(b + OFF_BITS, BITS);
    tu_put_le32(b + OFF_METHOD, BP_QUANT_UNIFORM);
    put64(b + OFF_PAYLOAD, payload);
    unsigned char *o = b + HEADER_V1;
    const double errs[BITS] = {0.5, 0.25};
    for (int n = 0; n < BITS; n++, o += 8) {
        uint64_t u;
        memcpy(&u, &errs[n], 8);
        put64(o, u);
    }
    float coef[M * BITS * (BITS + 1) / 2];
    for (int r = 0; r < M; r++) {
        coef[r] = alpha1[r];                /* n = 1 */
        coef[M + 2 * r] = 2.0f * alpha2[r]; /* n = 2, p = 0 */
        coef[M + 2 * r + 1] = alpha2[r];    /* n = 2, p = 1 */
    }
    for (size_t i = 0; i < ncoef; i++, o += 4) {
        uint32_t u;
        memcpy(&u, &coef[i], 4);
        tu_put_le32(o, u);
    }
    uint32_t words[BITS][M][RW];
    for (int p = 0; p < BITS; p++)
        for (int r = 0; r < M; r++) {
            words[p][r][0] = 0x9e3779b9u * (uint32_t)(p * 7 + r + 1);
            words[p][r][1] = (0x85ebca6bu * (uint32_t)(p * 5 + r + 3)) & 0xffu; /* 8 valid bits */
            for (int w = 0; w < RW; w++, o += 4)
                tu_put_le32(o, words[p][r][w]);
        }
    fix_crc(b, len);

    bp_matrix *m = NULL;
    cr_assert_eq(try_parse(b, len, &m), BP_OK, "version-1 file: %s", bp_last_error());
    cr_assert_eq(bp_matrix_bits(m), BITS);
    cr_assert(bp_matrix_prefix_error(m, 1) == 0.5 && bp_matrix_prefix_error(m, 2) == 0.25);
    float *d = tu_xmalloc(M * K * sizeof *d);
    for (int n = 1; n <= BITS; n++) {
        cr_assert_eq(bp_matrix_dequantize(NULL, m, n, d, K), BP_OK);
        for (int r = 0; r < M; r++)
            for (int j = 0; j < K; j++) {
                double v = 0;
                for (int p = 0; p < n; p++) {
                    int bit = (int)((words[p][r][j / 32] >> (j % 32)) & 1u);
                    double c = n == 1 ? alpha1[r] : (p == 0 ? 2.0 * alpha2[r] : alpha2[r]);
                    v += bit ? c : -c;
                }
                cr_assert(d[r * K + j] == (float)v, "dequantize(%d)[%d][%d] = %g, want %g", n, r, j,
                          (double)d[r * K + j], v);
            }
    }
    /* gemm follows the documented rule on the loaded matrix. */
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    float x[K], y[M], e[M];
    tu_fill_gauss(&rng, x, K, 1.0f);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    for (int n = 1; n <= BITS; n++) {
        bp_run_options o2 = tu_run(n, 8);
        cr_assert_eq(bp_gemm(ctx, m, x, 1, K, y, M, &o2), BP_OK, "%s", bp_last_error());
        tu_exact_column(m, x, n, 8, 0.0f, NULL, e);
        cr_assert(memcmp(y, e, sizeof y) == 0, "gemm at %d planes differs from the rule; seed=%llu",
                  n, seed);
    }
    /* Saved again it becomes a version-2 file with the same contents. */
    size_t len2;
    unsigned char *b2 = serialize(m, &len2);
    cr_assert_eq(get32(b2 + OFF_VERSION), 2u);
    bp_matrix *m2 = NULL;
    cr_assert_eq(try_parse(b2, len2, &m2), BP_OK, "%s", bp_last_error());
    assert_identical(m, m2, &rng, seed);
    bp_matrix_destroy(m2);
    free(b2);
    bp_context_destroy(ctx);
    free(d);
    bp_matrix_destroy(m);
    free(b);
}

/* Files written while K was padded to 512 bits in memory load into today's
 * 64-bit padding unchanged (the format stores unpadded rows), give the same
 * y bit for bit on every CPU path, and serialise back to the same bytes. */
static void check_old_padding_file(const unsigned char *file, size_t len,
                                   const uint32_t (*want)[2][5]) {
    enum { M = 5, K = 100, B = 2 };
    bp_matrix *m = NULL;
    cr_assert_eq(try_parse(file, len, &m), BP_OK, "old file: %s", bp_last_error());
    cr_assert_eq(bp_matrix_rows(m), M);
    cr_assert_eq(bp_matrix_cols(m), K);
    cr_assert_eq(m->kwords, bp__padded_cols(K) / 32);
    float x[B * K];
    memcpy(x, old_pad_x, sizeof x);
    static const bp_cpu_kernel kernels[] = {BP_CPU_KERNEL_REFERENCE, BP_CPU_KERNEL_AUTO,
                                            BP_CPU_KERNEL_PORTABLE};
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        bp_context *ctx = tu_context(kernels[k], 1);
        for (int n = 1; n <= 4; n++) {
            float y[B * M];
            bp_run_options o = tu_run(n, 8);
            cr_assert_eq(bp_gemm(ctx, m, x, B, K, y, M, &o), BP_OK, "%s", bp_last_error());
            for (int b = 0; b < B; b++)
                for (int r = 0; r < M; r++)
                    cr_assert_eq(tu_bits(y[b * M + r]), want[n - 1][b][r],
                                 "kernel %d planes %d: y[%d][%d] = %a, the old build gave 0x%08x",
                                 (int)kernels[k], n, b, r, (double)y[b * M + r], want[n - 1][b][r]);
        }
        bp_context_destroy(ctx);
    }
    size_t need = 0;
    cr_assert_eq(bp_matrix_serialize(m, NULL, 0, &need), BP_OK);
    cr_assert_eq(need, len);
    unsigned char *again = tu_xmalloc(need);
    cr_assert_eq(bp_matrix_serialize(m, again, need, &need), BP_OK);
    cr_assert(memcmp(again, file, len) == 0, "re-serialised bytes differ from the old file");
    free(again);
    bp_matrix_destroy(m);
}

Test(format, old_padding_files_load_unchanged) {
    check_old_padding_file(old_pad_file0, sizeof old_pad_file0, old_pad_y0);
    check_old_padding_file(old_pad_file1, sizeof old_pad_file1, old_pad_y1);
}
