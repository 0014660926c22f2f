/*
 * Per-row plane counts (docs/row-planes.md):
 *  - the exact oracle: W quantized once with counts and once without (same
 *    options) gives, for every row r, call planes p and column planes,
 *    y_counts[r] == y_plain(min(count_r, p))[r] bit for bit, on every CPU
 *    path, threads 1 and 2, batch 1 and batched (column_planes), several
 *    shapes (rows not a multiple of 16, K from 1 up), uniform grouped and
 *    rotated (the defaults), per-row uniform, residual; dequantize follows
 *    the same rule and the recorded prefix errors the dequantized weights;
 *  - the counts come back in the caller's order, the bytes a call reads
 *    shrink with them, and the file format stores them (version 3, round
 *    trip bit-exact; files without counts stay version 2);
 *  - the same oracle on OpenCL (PoCL) and on CUDA's two paths (skipped
 *    without a CUDA device);
 *  - bad counts, bad score splits and corrupt version-3 fields give clear
 *    errors; bp_rnn_create refuses bp_quant_options.row_planes (RNN layers
 *    take counts in bp_rnn_options, tests/test_rnn_row_planes.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"
#include "bitplane_rnn.h"
#include "bp_abi.h"
#include "bp_error.h"

#include "tu_criterion.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(row_planes, .fini = tu_suite_fini);

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct shape {
    size_t rows, cols;
    int bits;
    bp_quant_method method;
    int group_size, rotation;
} shape;

static bp_matrix *quantize(bp_context *ctx, const float *w, const shape *s, const uint8_t *counts,
                           uint64_t seed) {
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.bits = s->bits;
    q.method = s->method;
    q.group_size = s->group_size;
    q.rotation = s->rotation;
    q.rotation_seed = seed;
    q.row_planes = counts;
    return tu_quantize_opts(ctx, w, s->rows, s->cols, s->cols, &q);
}

static void gemm_ok(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch, float *y,
                    const bp_run_options *o) {
    bp_status st = bp_gemm(ctx, m, x, batch, bp_matrix_cols(m), y, bp_matrix_rows(m), o);
    cr_assert(st == BP_OK, "bp_gemm: %s (%s)", bp_status_string(st), bp_last_error());
}

/* Random counts 1..bits, most rows below bits, so runs are not aligned to
 * row groups. */
static void random_counts(tu_rng *rng, uint8_t *c, size_t rows, int bits) {
    for (size_t r = 0; r < rows; r++)
        c[r] = (uint8_t)tu_range(rng, 1, (size_t)bits);
    c[tu_range(rng, 0, rows - 1)] = (uint8_t)(bits > 1 ? bits - 1 : 1);
}

/* The oracle on one shape, on `gpu` (NULL: every CPU path, threads 1 and 2). */
static void check_oracle(tu_rng *rng, unsigned long long seed, const shape *s,
                         const tu_target *gpu) {
    const size_t M = s->rows, K = s->cols, B = 6;
    const int bits = s->bits;
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(rng, w, M * K, 1.0f);
    uint8_t *counts = tu_xmalloc(M);
    random_counts(rng, counts, M, bits);
    const uint64_t rseed = tu_next(rng);
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    bp_matrix *plain = quantize(ref, w, s, NULL, rseed);
    bp_matrix *mc = quantize(ref, w, s, counts, rseed);
    uint8_t *back = tu_xmalloc(M);
    cr_assert_eq(bp_matrix_row_planes(mc, back), BP_OK, "%s", bp_last_error());
    cr_assert(memcmp(back, counts, M) == 0, "seed %llu: row_planes do not come back", seed);

    /* Dequantize: row r at n planes is the plain matrix's at min(c_r, n). */
    float *dq = tu_xmalloc(M * K * sizeof *dq), *dp = tu_xmalloc(M * K * sizeof *dp);
    for (int n = 1; n <= bits; n++) {
        cr_assert_eq(bp_matrix_dequantize(NULL, mc, n, dq, K), BP_OK, "%s", bp_last_error());
        double err = 0, ww = 0;
        for (size_t r = 0; r < M; r++) {
            int nr = counts[r] < n ? counts[r] : n;
            cr_assert_eq(bp_matrix_dequantize(NULL, plain, nr, dp, K), BP_OK);
            cr_assert(memcmp(dq + r * K, dp + r * K, K * sizeof *dq) == 0,
                      "seed %llu: dequantize row %zu at %d planes (count %d) differs", seed, r, n,
                      counts[r]);
            for (size_t j = 0; j < K; j++) {
                double e = (double)w[r * K + j] - dq[r * K + j];
                err += e * e;
                ww += (double)w[r * K + j] * w[r * K + j];
            }
        }
        /* The recorded error is that of the capped rows. */
        double want = sqrt(err / ww), got = bp_matrix_prefix_error(mc, n);
        cr_assert(fabs(got - want) <= 1e-3 * want + 1e-6,
                  "seed %llu: prefix_error(%d) = %g, the dequantized weights give %g", seed, n, got,
                  want);
    }
    free(dp);
    free(dq);

    float *x = tu_xmalloc(B * K * sizeof *x), *bias = tu_xmalloc(M * sizeof *bias);
    float *yp = tu_xmalloc((size_t)bits * B * M * sizeof *yp); /* plain at n planes */
    float *y = tu_xmalloc(B * M * sizeof *y);
    tu_fill_gauss(rng, x, B * K, 1.0f);
    tu_fill_gauss(rng, bias, M, 1.0f);
    memset(x + K, 0, K * sizeof *x); /* a zero column: the bias alone */
    const int act_bits = (int)tu_range(rng, 2, 9);
    for (int n = 1; n <= bits; n++) {
        bp_run_options o = tu_run(n, act_bits);
        o.bias = bias;
        gemm_ok(ref, plain, x, B, yp + (size_t)(n - 1) * B * M, &o);
    }
    tu_target targets[TU_MAX_PATHS];
    size_t np = 0;
    if (gpu) {
        targets[np++] = *gpu;
    } else {
        tu_path paths[TU_MAX_PATHS];
        np = tu_cpu_paths(paths, NULL, 0);
        for (size_t k = 0; k < np; k++)
            targets[k] = (tu_target){BP_BACKEND_CPU, (int)paths[k].kernel};
    }
    int colp[B];
    for (size_t k = 0; k < np; k++)
        for (int threads = 1; threads <= (gpu ? 1 : 2); threads++) {
            bp_context *ctx = tu_target_context(&targets[k], threads);
            for (int p = 1; p <= bits; p++)
                for (int batched = 0; batched < 2; batched++) {
                    size_t batch = batched ? B : 1;
                    bp_run_options o = tu_run(p, act_bits);
                    o.bias = bias;
                    for (size_t c = 0; c < B; c++)
                        colp[c] = c == 0 ? 0 : (int)tu_range(rng, 0, (size_t)bits);
                    o.column_planes = batched ? colp : NULL;
                    tu_fill_sentinel(y, B * M);
                    gemm_ok(ctx, mc, x, batch, y, &o);
                    for (size_t c = 0; c < batch; c++) {
                        int cp = batched && colp[c] ? colp[c] : p;
                        for (size_t r = 0; r < M; r++) {
                            int n = counts[r] < cp ? counts[r] : cp;
                            float want = yp[((size_t)(n - 1) * B + c) * M + r];
                            cr_assert(tu_bits(y[c * M + r]) == tu_bits(want),
                                      "seed %llu: %s, %d threads, %zux%zu bits %d method %d "
                                      "group %d rot %d, planes %d, col %zu (planes %d) of %zu, "
                                      "act_bits %d: y[%zu] (count %d) = %a, want %a",
                                      seed, tu_target_name(&targets[k]), threads, M, K, bits,
                                      (int)s->method, s->group_size, s->rotation, p, c, cp, batch,
                                      act_bits, r, counts[r], (double)y[c * M + r], (double)want);
                        }
                    }
                }
            bp_context_destroy(ctx);
        }
    bp_context_destroy(ref);
    bp_matrix_destroy(plain);
    bp_matrix_destroy(mc);
    free(y);
    free(yp);
    free(bias);
    free(x);
    free(back);
    free(counts);
    free(w);
}

Test(row_planes, oracle_uniform_defaults, .timeout = 600) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const shape shapes[] = {
        {37, 300, 8, BP_QUANT_UNIFORM, 0, 0},   {300, 64, 4, BP_QUANT_UNIFORM, 0, 0},
        {5, 1, 3, BP_QUANT_UNIFORM, 0, 0},      {17, 4097, 8, BP_QUANT_UNIFORM, 0, 0},
        {600, 129, 10, BP_QUANT_UNIFORM, 0, 0},
    };
    for (size_t i = 0; i < NELEM(shapes); i++)
        check_oracle(&rng, seed, &shapes[i], NULL);
}

Test(row_planes, oracle_per_row_and_residual, .timeout = 600) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const shape shapes[] = {
        {45, 200, 6, BP_QUANT_UNIFORM, BP_GROUP_PER_ROW, BP_ROTATION_NONE},
        {290, 96, 5, BP_QUANT_RESIDUAL, 0, 0},
        {33, 4, 4, BP_QUANT_RESIDUAL, BP_GROUP_PER_ROW, BP_ROTATION_NONE},
        {70, 2, 2, BP_QUANT_UNIFORM, BP_GROUP_PER_ROW, BP_ROTATION_NONE},
    };
    for (size_t i = 0; i < NELEM(shapes); i++)
        check_oracle(&rng, seed, &shapes[i], NULL);
}

/* OpenCL (PoCL here): full-size slabs on the device, each row capped at its
 * count and written to its caller row, bit-exact with the CPU. */
Test(row_planes, oracle_opencl, .timeout = 600) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const tu_target ocl = {BP_BACKEND_OPENCL, BP_GPU_KERNEL_AUTO};
    const shape shapes[] = {
        {37, 300, 8, BP_QUANT_UNIFORM, 0, 0},
        {45, 70, 5, BP_QUANT_RESIDUAL, BP_GROUP_PER_ROW, BP_ROTATION_NONE},
        {300, 64, 4, BP_QUANT_UNIFORM, BP_GROUP_PER_ROW, BP_ROTATION_NONE},
    };
    for (size_t i = 0; i < NELEM(shapes); i++)
        check_oracle(&rng, seed, &shapes[i], &ocl);
}

/* CUDA, both inner paths (skipped without a CUDA device): compact device
 * slabs, each row capped at its count and written to its caller row,
 * bit-exact with the plain matrix at the capped counts, batch 1 and batched
 * with column planes; rows not a multiple of 16, K tails, every quantizer
 * structure. */
Test(row_planes, oracle_cuda, .timeout = 600) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const tu_target paths[] = {{BP_BACKEND_CUDA, BP_GPU_KERNEL_POPCOUNT},
                               {BP_BACKEND_CUDA, BP_GPU_KERNEL_MMA}};
    bp_context_destroy(tu_target_context(&paths[0], 1)); /* skip before any work */
    const shape shapes[] = {
        {37, 300, 8, BP_QUANT_UNIFORM, 0, 0},
        {45, 70, 5, BP_QUANT_RESIDUAL, BP_GROUP_PER_ROW, BP_ROTATION_NONE},
        {300, 64, 4, BP_QUANT_UNIFORM, BP_GROUP_PER_ROW, BP_ROTATION_NONE},
        {17, 4097, 8, BP_QUANT_RESIDUAL, 0, 0},
        {5, 1, 3, BP_QUANT_UNIFORM, 0, 0},
    };
    for (size_t k = 0; k < NELEM(paths); k++)
        for (size_t i = 0; i < NELEM(shapes); i++)
            check_oracle(&rng, seed, &shapes[i], &paths[k]);
}

/* Counts with every row at bits are no counts: the plain layout and a
 * version-2 file. */
Test(row_planes, all_full_counts_are_plain) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    const shape s = {40, 70, 5, BP_QUANT_UNIFORM, 0, 0};
    float w[40 * 70];
    tu_fill_gauss(&rng, w, NELEM(w), 1.0f);
    uint8_t c[40];
    memset(c, 5, sizeof c);
    bp_matrix *a = quantize(NULL, w, &s, NULL, 7), *b = quantize(NULL, w, &s, c, 7);
    cr_assert(b->row_planes == NULL && b->perm == NULL && b->nruns == 0);
    size_t la, lb;
    cr_assert_eq(bp_matrix_serialize(a, NULL, 0, &la), BP_OK);
    cr_assert_eq(bp_matrix_serialize(b, NULL, 0, &lb), BP_OK);
    cr_assert_eq(la, lb);
    unsigned char *ba = tu_xmalloc(la), *bb = tu_xmalloc(lb);
    cr_assert_eq(bp_matrix_serialize(a, ba, la, &la), BP_OK);
    cr_assert_eq(bp_matrix_serialize(b, bb, lb, &lb), BP_OK);
    cr_assert(memcmp(ba, bb, la) == 0, "all-full counts changed the file");
    cr_assert_eq(ba[8], 2, "a matrix without counts must be written as version 2");
    uint8_t back[40];
    cr_assert_eq(bp_matrix_row_planes(a, back), BP_OK);
    for (size_t r = 0; r < 40; r++)
        cr_assert_eq(back[r], 5);
    free(ba);
    free(bb);
    bp_matrix_destroy(a);
    bp_matrix_destroy(b);
}

/* Bytes read: only the row groups a plane needs, and the coefficients of
 * the planes each row uses. */
Test(row_planes, bytes_read) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    const size_t M = 64, K = 128;
    const shape s = {M, K, 8, BP_QUANT_UNIFORM, 0, 0};
    float *w = tu_xmalloc(M * K * sizeof *w);
    tu_fill_gauss(&rng, w, M * K, 1.0f);
    uint8_t c[64];
    for (size_t r = 0; r < M; r++)
        c[r] = r % 2 ? 8 : 2; /* interleaved: the stored order groups them */
    bp_matrix *plain = quantize(NULL, w, &s, NULL, 1), *mc = quantize(NULL, w, &s, c, 1);
    const size_t slab_group = 16 * (K / 8); /* bytes of one row group of one plane */
    /* The default groups of 64: one multiplier byte per (row, group), at
     * every plane count. */
    const size_t mult = M * (K / BP_DEFAULT_GROUP_SIZE);
    cr_assert_eq(bp_matrix_group_size(plain), BP_DEFAULT_GROUP_SIZE);
    for (int n = 0; n <= 8; n++) {
        const int used = n ? n : 8;
        size_t want_plain = (size_t)used * (4 * slab_group + 4 * M) + mult;
        cr_assert_eq(bp_matrix_bytes_read(plain, n), want_plain, "plain, planes %d", n);
        const int hi = used, lo = used < 2 ? used : 2;
        size_t want = (size_t)lo * 4 * slab_group + (size_t)(hi - lo) * 2 * slab_group +
                      4 * 32 * (size_t)(hi + lo) + mult;
        cr_assert_eq(bp_matrix_bytes_read(mc, n), want, "counts 8/2, planes %d: %zu, want %zu", n,
                     bp_matrix_bytes_read(mc, n), want);
    }
    /* One scale per row: no multipliers to read. */
    const shape per_row = {M, K, 8, BP_QUANT_UNIFORM, BP_GROUP_PER_ROW, 0};
    bp_matrix *pr = quantize(NULL, w, &per_row, NULL, 1);
    cr_assert_eq(bp_matrix_bytes_read(pr, 4), 4 * (4 * slab_group + 4 * M));
    bp_matrix_destroy(pr);
    cr_assert_eq(bp_matrix_bytes_read(mc, 9), 0);
    cr_assert(strstr(bp_last_error(), "planes must be 0 (all) or 1..8, got 9"), "%s",
              bp_last_error());
    bp_matrix_destroy(plain);
    bp_matrix_destroy(mc);
    free(w);
}

/* ---- files ------------------------------------------------------------------ */

static unsigned char *serialize(const bp_matrix *m, size_t *len) {
    cr_assert_eq(bp_matrix_serialize(m, NULL, 0, len), BP_OK, "%s", bp_last_error());
    unsigned char *buf = tu_xmalloc(*len);
    cr_assert_eq(bp_matrix_serialize(m, buf, *len, len), BP_OK, "%s", bp_last_error());
    return buf;
}

Test(row_planes, save_load_round_trip) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const shape shapes[] = {{77, 90, 6, BP_QUANT_UNIFORM, 0, 0},
                            {50, 40, 4, BP_QUANT_RESIDUAL, BP_GROUP_PER_ROW, BP_ROTATION_NONE}};
    for (size_t i = 0; i < NELEM(shapes); i++) {
        const shape *s = &shapes[i];
        float *w = tu_xmalloc(s->rows * s->cols * sizeof *w);
        tu_fill_gauss(&rng, w, s->rows * s->cols, 1.0f);
        uint8_t *c = tu_xmalloc(s->rows);
        random_counts(&rng, c, s->rows, s->bits);
        bp_matrix *m = quantize(NULL, w, s, c, tu_next(&rng));
        size_t len, len2;
        unsigned char *buf = serialize(m, &len);
        cr_assert_eq(buf[8], 3, "a matrix with counts is written as version 3");
        char path[] = "/tmp/bp_row_planes_XXXXXX";
        int fd = mkstemp(path);
        cr_assert(fd >= 0);
        close(fd);
        cr_assert_eq(bp_matrix_save(m, path), BP_OK, "%s", bp_last_error());
        bp_matrix *l = NULL;
        cr_assert_eq(bp_matrix_load(NULL, path, &l), BP_OK, "%s", bp_last_error());
        remove(path);
        unsigned char *again = serialize(l, &len2);
        cr_assert(len == len2 && memcmp(buf, again, len) == 0,
                  "seed %llu: re-serialised bytes differ", seed);
        uint8_t *back = tu_xmalloc(s->rows);
        cr_assert_eq(bp_matrix_row_planes(l, back), BP_OK);
        cr_assert(memcmp(back, c, s->rows) == 0);
        cr_assert_eq(bp__planes_words(l), bp__planes_words(m));
        cr_assert(memcmp(l->planes, m->planes, bp__planes_words(m) * 4) == 0,
                  "seed %llu: loaded planes differ", seed);
        const size_t B = 3;
        float *x = tu_xmalloc(B * s->cols * sizeof *x);
        float *y1 = tu_xmalloc(B * s->rows * sizeof *y1), *y2 = tu_xmalloc(B * s->rows * 4);
        tu_fill_gauss(&rng, x, B * s->cols, 1.0f);
        bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 2);
        for (int p = 1; p <= s->bits; p++) {
            bp_run_options o = tu_run(p, 8);
            gemm_ok(ctx, m, x, B, y1, &o);
            gemm_ok(ctx, l, x, B, y2, &o);
            size_t rr, cc;
            cr_assert(tu_first_mismatch(y1, y2, s->rows, B, s->rows, &rr, &cc) < 0,
                      "seed %llu: loaded matrix gives another y[%zu][%zu] at %d planes", seed, rr,
                      cc, p);
            cr_assert_eq(bp_matrix_prefix_error(l, p), bp_matrix_prefix_error(m, p));
        }
        bp_context_destroy(ctx);
        free(x);
        free(y1);
        free(y2);
        free(back);
        free(again);
        free(buf);
        bp_matrix_destroy(l);
        bp_matrix_destroy(m);
        free(c);
        free(w);
    }
}

/*
 * Version-3 fields made invalid behind a valid checksum. Layout for this
 * matrix (per row, no rotation, 3 bits, 20 rows, 40 columns): header 96,
 * prefix errors 3 x 8, coefficients 20 x 6 floats, then 20 counts, then 20
 * permutation entries.
 */
Test(row_planes, corrupt_version_3_fields) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    enum { M = 20, K = 40 };
    const shape s = {M, K, 3, BP_QUANT_UNIFORM, BP_GROUP_PER_ROW, BP_ROTATION_NONE};
    float w[M * K];
    tu_fill_gauss(&rng, w, NELEM(w), 1.0f);
    uint8_t c[M];
    for (size_t r = 0; r < M; r++)
        c[r] = (uint8_t)(1 + r % 3);
    bp_matrix *m = quantize(NULL, w, &s, c, 0);
    size_t len;
    unsigned char *buf = serialize(m, &len);
    const size_t counts = 96 + 3 * 8 + M * 6 * 4, perm = counts + M;
    /* Stored order: counts 3,3,...,2,...,1; perm of rows with count 3 first. */
    cr_assert_eq(buf[counts], 3);
    cr_assert_eq(buf[counts + M - 1], 1);
    struct {
        const char *what;
        size_t at;
        uint32_t value;
        int width;
        const char *message;
    } cases[] = {
        {"count 0", counts + M - 1, 0, 1, "not in 1..bits"},
        {"count above bits", counts, 4, 1, "not in 1..bits"},
        {"counts not descending", counts, 2, 1, "descending"},
        {"permutation out of range", perm, M, 4, "not a permutation"},
        {"permutation repeats a row", perm + 4, 2, 4, "not a permutation"},
    };
    for (size_t i = 0; i < NELEM(cases); i++) {
        unsigned char *b = tu_xmalloc(len);
        memcpy(b, buf, len);
        if (cases[i].width == 1)
            b[cases[i].at] = (unsigned char)cases[i].value;
        else
            tu_put_le32(b + cases[i].at, cases[i].value);
        tu_put_le32(b + len - 4, tu_crc32c(b, len - 4));
        bp_matrix *l = (bp_matrix *)(uintptr_t)1;
        bp_status st = bp_matrix_deserialize(NULL, b, len, &l);
        cr_assert_eq(st, BP_ERR_CORRUPT, "%s: got %s (%s)", cases[i].what, bp_status_string(st),
                     bp_last_error());
        cr_assert(l == NULL);
        cr_assert(strstr(bp_last_error(), cases[i].message), "%s: message '%s'", cases[i].what,
                  bp_last_error());
        free(b);
    }
    /* Swap two permutation entries of one count: still a permutation, but
     * rows of one count must keep their order. */
    unsigned char *b = tu_xmalloc(len);
    memcpy(b, buf, len);
    unsigned char t[4];
    memcpy(t, b + perm, 4);
    memcpy(b + perm, b + perm + 4, 4);
    memcpy(b + perm + 4, t, 4);
    tu_put_le32(b + len - 4, tu_crc32c(b, len - 4));
    bp_matrix *l = NULL;
    cr_assert_eq(bp_matrix_deserialize(NULL, b, len, &l), BP_ERR_CORRUPT);
    cr_assert(strstr(bp_last_error(), "original order"), "%s", bp_last_error());
    /* Every truncation is refused. */
    for (size_t cut = 0; cut < len; cut += 7) {
        bp_matrix *t2 = NULL;
        cr_assert_eq(bp_matrix_deserialize(NULL, buf, cut, &t2), BP_ERR_CORRUPT, "cut %zu", cut);
    }
    free(b);
    free(buf);
    bp_matrix_destroy(m);
}

/* ---- bad input ----------------------------------------------------------------- */

Test(row_planes, bad_counts) {
    float w[20 * 8];
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    tu_fill_gauss(&rng, w, NELEM(w), 1.0f);
    uint8_t c[20];
    memset(c, 2, sizeof c);
    struct {
        size_t row;
        uint8_t value;
        const char *message;
    } cases[] = {
        {0, 0, "row_planes[0] must be in 1..4 (bits), got 0"},
        {13, 5, "row_planes[13] must be in 1..4 (bits), got 5"},
        {19, 255, "row_planes[19] must be in 1..4 (bits), got 255"},
    };
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    for (size_t i = 0; i < NELEM(cases); i++) {
        uint8_t bad[20];
        memcpy(bad, c, sizeof bad);
        bad[cases[i].row] = cases[i].value;
        bp_quant_options q = BP_QUANT_OPTIONS_INIT;
        q.bits = 4;
        q.row_planes = bad;
        bp_matrix *m = (bp_matrix *)(uintptr_t)1;
        bp_status st = bp_matrix_quantize(ctx, w, 20, 8, 8, &q, &m);
        cr_assert_eq(st, BP_ERR_OUT_OF_RANGE, "%s", bp_last_error());
        cr_assert(m == NULL);
        cr_assert_str_eq(bp_last_error(), cases[i].message);
    }
    /* RNN layers take counts per layer and operator, not in the quant options. */
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.row_planes = c;
    float wih[3 * 4 * 4] = {0}, whh[3 * 4 * 4] = {0};
    bp_rnn_layer_weights lw = {.weight_ih = wih, .weight_hh = whh};
    bp_rnn *rnn = (bp_rnn *)(uintptr_t)1;
    bp_status st = bp_rnn_create(ctx, BP_RNN_GRU, 1, 4, 4, &lw, &q, NULL, &rnn);
    cr_assert_eq(st, BP_ERR_UNSUPPORTED, "%s", bp_last_error());
    cr_assert(rnn == NULL);
    cr_assert(strstr(bp_last_error(), "row_planes"), "%s", bp_last_error());
    uint8_t out[4];
    cr_assert_eq(bp_matrix_row_planes(NULL, out), BP_ERR_INVALID_ARGUMENT);
    bp_context_destroy(ctx);
}

/* ---- counts from scores -------------------------------------------------------- */

static void split(const float *scores, size_t rows, int bits, double budget, int classes,
                  uint8_t *out) {
    bp_status st = bp_row_planes_from_scores(scores, rows, bits, budget, classes, out);
    cr_assert_eq(st, BP_OK, "%s", bp_last_error());
}

Test(row_planes, from_scores) {
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    enum { R = 1000 };
    float *sc = tu_xmalloc(R * sizeof *sc);
    uint8_t *c = tu_xmalloc(R);
    tu_fill_gauss(&rng, sc, R, 1.0f);
    const double budgets[] = {1.0, 2.0, 2.5, 4.0, 4.3, 7.9, 8.0};
    for (size_t b = 0; b < NELEM(budgets); b++)
        for (int classes = 1; classes <= 8; classes++) {
            split(sc, R, 8, budgets[b], classes, c);
            size_t sum = 0;
            int levels[17] = {0}, nlev = 0;
            for (size_t r = 0; r < R; r++) {
                sum += c[r];
                cr_assert(c[r] >= 1 && c[r] <= 8);
                if (!levels[c[r]]++)
                    nlev++;
                for (size_t q = 0; q < R; q += 97) /* higher score, at least as many */
                    cr_assert(!(sc[q] > sc[r] && c[q] < c[r]), "not monotone in the score");
            }
            cr_assert(nlev <= classes, "budget %g, %d classes: %d distinct counts", budgets[b],
                      classes, nlev);
            cr_assert((double)sum / R <= budgets[b] + 1e-9, "budget %g, %d classes: mean %g",
                      budgets[b], classes, (double)sum / R);
            /* Classes fill in blocks of 16 ranked rows: every count but the
             * lowest has a multiple of 16 rows. */
            int lowest = 9;
            for (int l = 1; l <= 8; l++)
                lowest = levels[l] && l < lowest ? l : lowest;
            for (int l = 1; l <= 8; l++)
                cr_assert(l == lowest || levels[l] % 16 == 0, "count %d has %d rows", l, levels[l]);
        }
    /* A symmetric split spends the whole budget: 4 planes, 2 classes = 5 / 3. */
    for (size_t r = 0; r < 256; r++)
        sc[r] = (float)r;
    split(sc, 256, 8, 4.0, 2, c);
    for (size_t r = 0; r < 256; r++)
        cr_assert_eq(c[r], r >= 128 ? 5 : 3, "row %zu", r);
    /* Under 64 rows per class, rows move one by one: a 10-row matrix still
     * spends its budget (3 planes for the top 5, 1 for the rest). */
    split(sc, 10, 8, 2.0, 2, c);
    for (size_t r = 0; r < 10; r++)
        cr_assert_eq(c[r], r >= 5 ? 3 : 1, "10 rows: row %zu has %d", r, c[r]);
    /* Bad arguments, each named. */
    cr_assert_eq(bp_row_planes_from_scores(sc, 256, 8, 0.5, 2, c), BP_ERR_OUT_OF_RANGE);
    cr_assert(strstr(bp_last_error(), "budget"), "%s", bp_last_error());
    cr_assert_eq(bp_row_planes_from_scores(sc, 256, 8, 8.5, 2, c), BP_ERR_OUT_OF_RANGE);
    cr_assert_eq(bp_row_planes_from_scores(sc, 256, 8, NAN, 2, c), BP_ERR_OUT_OF_RANGE);
    cr_assert_eq(bp_row_planes_from_scores(sc, 256, 8, 4, 0, c), BP_ERR_OUT_OF_RANGE);
    cr_assert(strstr(bp_last_error(), "classes must be in 1..8"), "%s", bp_last_error());
    cr_assert_eq(bp_row_planes_from_scores(sc, 256, 8, 4, 9, c), BP_ERR_OUT_OF_RANGE);
    cr_assert_eq(bp_row_planes_from_scores(sc, 256, 17, 4, 2, c), BP_ERR_OUT_OF_RANGE);
    cr_assert_eq(bp_row_planes_from_scores(sc, 0, 8, 4, 2, c), BP_ERR_INVALID_ARGUMENT);
    cr_assert_eq(bp_row_planes_from_scores(NULL, 4, 8, 4, 2, c), BP_ERR_INVALID_ARGUMENT);
    sc[7] = NAN;
    cr_assert_eq(bp_row_planes_from_scores(sc, 256, 8, 4, 2, c), BP_ERR_NON_FINITE);
    cr_assert(strstr(bp_last_error(), "scores[7] is NaN"), "%s", bp_last_error());
    free(sc);
    free(c);
}
