/*
 * libFuzzer target for the matrix loader: bp_matrix_deserialize on the raw
 * input, the same bytes with their checksum made valid (so mutations reach
 * the field checks behind the CRC), and bp_matrix_load on the bytes as a
 * file. Oracles beyond "no crash, no sanitizer report, no leak":
 *  - the file loader and the buffer parser agree on the status;
 *  - an accepted input serializes to its own size, and that serialization
 *    loads again to the same bytes (the loader may normalize what it
 *    recomputes, docs/numerics.md "Loaded files");
 *  - an accepted matrix can be dequantized and run through bp_gemm without
 *    a crash, returning only documented statuses, and its per-row plane
 *    counts (version 3) are in 1..bits.
 * Built with clang -fsanitize=fuzzer,address,undefined by tests/fuzz/
 * (CMakeLists.txt); replay_main.c replays files through it without
 * libFuzzer, which CTest does for the seed corpus.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_util.h"
#include "bitplane.h"
#include "bp_crc32c.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bp_context *cpu_context(void) {
    static bp_context *ctx;
    if (!ctx) {
        bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
        o.backend = BP_BACKEND_CPU;
        o.threads = 1;
        CHECK(bp_context_create(&o, &ctx) == BP_OK, "context: %s", bp_last_error());
    }
    return ctx;
}

static void exercise(const bp_matrix *m) {
    size_t rows = bp_matrix_rows(m), cols = bp_matrix_cols(m);
    int bits = bp_matrix_bits(m);
    CHECK(rows > 0 && cols > 0 && bits >= 1 && bits <= BP_MAX_BITS, "bad accessors");
    float *w = malloc(rows * cols * sizeof *w);
    float *x = malloc(cols * sizeof *x);
    float *y = malloc(rows * sizeof *y);
    CHECK(w && x && y, "out of memory");
    for (size_t j = 0; j < cols; j++)
        x[j] = (float)((int)(j % 7) - 3) + 0.25f;
    uint8_t *counts = malloc(rows);
    CHECK(counts, "out of memory");
    CHECK(bp_matrix_row_planes(m, counts) == BP_OK, "row_planes: %s", bp_last_error());
    for (size_t r = 0; r < rows; r++)
        CHECK(counts[r] >= 1 && counts[r] <= bits, "row %zu has %d planes", r, counts[r]);
    free(counts);
    for (int n = 1; n <= bits; n++) {
        CHECK(bp_matrix_prefix_error(m, n) >= 0, "prefix error %d: %s", n, bp_last_error());
        CHECK(bp_matrix_bytes_read(m, n) > 0, "bytes_read %d: %s", n, bp_last_error());
        bp_status st = bp_matrix_dequantize(NULL, m, n, w, cols);
        CHECK(st == BP_OK, "dequantize %d: %s", n, bp_last_error());
    }
    int act_bits[] = {1, 8, 16};
    for (size_t i = 0; i < sizeof act_bits / sizeof act_bits[0]; i++) {
        bp_run_options run = BP_RUN_OPTIONS_INIT;
        run.act_bits = act_bits[i];
        run.planes = 1 + (int)(i * 7) % bits;
        bp_status st = bp_gemm(cpu_context(), m, x, 1, cols, y, rows, &run);
        CHECK(st == BP_OK || st == BP_ERR_NON_FINITE, "gemm: %s (%s)", bp_status_string(st),
              bp_last_error());
    }
    free(w);
    free(x);
    free(y);
}

static bp_status parse(const uint8_t *data, size_t size, bool exercise_it) {
    bp_matrix *m = NULL;
    bp_status st = bp_matrix_deserialize(NULL, data, size, &m);
    CHECK((st == BP_OK) == (m != NULL), "status %d with matrix %p", (int)st, (void *)m);
    CHECK(st == BP_OK || bp_last_error()[0] != '\0', "failure without a message");
    if (st != BP_OK)
        return st;
    size_t need = 0;
    CHECK(bp_matrix_serialize(m, NULL, 0, &need) == BP_OK, "size: %s", bp_last_error());
    CHECK(need == size, "accepted %zu bytes but serializes to %zu", size, need);
    uint8_t *again = malloc(need);
    CHECK(again, "out of memory");
    CHECK(bp_matrix_serialize(m, again, need, &need) == BP_OK, "serialize: %s", bp_last_error());
    /* The loader may normalize what it can recompute (the uniform prefix
     * coefficients below alpha_n, docs/numerics.md "Loaded files"), so an
     * accepted input need not come back byte for byte; its serialization
     * must be a fixed point: loading it again gives the same bytes. */
    bp_matrix *m2 = NULL;
    CHECK(bp_matrix_deserialize(NULL, again, need, &m2) == BP_OK,
          "the library's own serialization does not load: %s", bp_last_error());
    uint8_t *again2 = malloc(need);
    size_t need2 = 0;
    CHECK(again2, "out of memory");
    CHECK(bp_matrix_serialize(m2, again2, need, &need2) == BP_OK && need2 == need,
          "serialize again: %s", bp_last_error());
    CHECK(memcmp(again, again2, need) == 0, "serialization is not a fixed point of loading");
    bp_matrix_destroy(m2);
    free(again2);
    free(again);
    if (exercise_it)
        exercise(m);
    bp_matrix_destroy(m);
    return st;
}

static void load_as_file(const uint8_t *data, size_t size, bp_status want) {
    char path[64];
    int fd = fuzz_memfd(data, size, path);
    bp_matrix *m = NULL;
    bp_status st = bp_matrix_load(NULL, path, &m);
    CHECK(st == want, "load gives %s (%s), deserialize %s", bp_status_string(st), bp_last_error(),
          bp_status_string(want));
    bp_matrix_destroy(m);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bp_status raw = parse(data, size, true);
    load_as_file(data, size, raw);
    if (size >= 68) {
        uint8_t *fixed = malloc(size);
        CHECK(fixed, "out of memory");
        memcpy(fixed, data, size);
        uint32_t crc = bp__crc32c(fixed, size - 4);
        for (int i = 0; i < 4; i++)
            fixed[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
        parse(fixed, size, raw != BP_OK);
        free(fixed);
    }
    return 0;
}
