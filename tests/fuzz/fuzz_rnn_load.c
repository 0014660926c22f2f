/*
 * libFuzzer target for the RNN loader (src/rnn_format.c): bp_rnn_deserialize
 * on the raw input; the same bytes with every checksum made valid -- each
 * embedded matrix's CRC where the container's length fields lead to one, then
 * the container's -- so that mutations reach the field checks behind them;
 * and bp_rnn_load on the bytes as a file. Oracles beyond "no crash, no
 * sanitizer report, no leak, no allocation the input's size does not
 * justify":
 *  - the file loader and the buffer parser agree on the status;
 *  - every failure sets a message;
 *  - an accepted input serializes to its own size, and that serialization
 *    loads again to the same bytes;
 *  - an accepted RNN runs two steps of bp_rnn_forward, bp_rnn_step and
 *    bp_rnn_step_columns without a crash, returning only documented statuses.
 * Built with clang -fsanitize=fuzzer,address,undefined by tests/fuzz/
 * (CMakeLists.txt); replay_main.c replays files through it without
 * libFuzzer, which CTest does for the seed corpus.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz_util.h"
#include "bitplane_rnn.h"
#include "bp_crc32c.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { HEADER = 64 };

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

static uint64_t get_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_crc(uint8_t *p, size_t len) {
    uint32_t crc = bp__crc32c(p, len - 4);
    for (int i = 0; i < 4; i++)
        p[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
}

/* Walks the container as the loader would and fixes each embedded matrix's
 * checksum, as far as the header's sizes and the length fields allow. */
static void fix_matrix_crcs(uint8_t *p, size_t size) {
    uint64_t gates = get_le(p + 16, 4) == BP_RNN_LSTM ? 4 : 3, split = get_le(p + 20, 4) != 0,
             layers = get_le(p + 24, 8), hidden = get_le(p + 40, 8);
    if (layers > 64 || hidden > (1u << 20))
        return;
    size_t off = HEADER, end = size - 4;
    for (uint64_t l = 0; l < layers; l++) {
        uint64_t bias = 8 * gates * hidden;
        if (bias > end - off)
            return;
        off += (size_t)bias;
        for (uint64_t i = 0; i < 2 * (split ? gates : 1); i++) {
            if (end - off < 8)
                return;
            uint64_t len = get_le(p + off, 8);
            if (len > end - off - 8)
                return;
            if (len >= 4)
                put_crc(p + off + 8, (size_t)len);
            off += 8 + (size_t)len;
        }
    }
}

static bool documented_run_status(bp_status st) {
    return st == BP_OK || st == BP_ERR_NON_FINITE;
}

static void exercise(const bp_rnn *rnn) {
    size_t layers = bp_rnn_layers(rnn), in = bp_rnn_input_size(rnn), H = bp_rnn_hidden_size(rnn);
    int gates = bp_rnn_gates(rnn);
    CHECK(layers >= 1 && layers <= BP_RNN_MAX_LAYERS && in >= 1 && H >= 1 &&
              (gates == 3 || gates == 4),
          "bad accessors");
    const bp_matrix *m0 = bp_rnn_matrix(rnn, 0, BP_RNN_INPUT, bp_rnn_split_gates(rnn) ? 0 : -1);
    CHECK(m0, "no matrix 0: %s", bp_last_error());
    int bits = bp_matrix_bits(m0);
    /* Shapes the loader accepted fit in the input, so these allocations are
     * bounded by it (4 bytes per weight row at the least). */
    const size_t steps = 2, batch = 2;
    float *x = malloc(steps * batch * in * sizeof *x);
    float *h = calloc(layers * batch * H, sizeof *h);
    float *c = calloc(layers * batch * H, sizeof *c);
    float *y = malloc(steps * batch * H * sizeof *y);
    CHECK(x && h && c && y, "out of memory");
    for (size_t j = 0; j < steps * batch * in; j++)
        x[j] = (float)((int)(j % 7) - 3) * 0.25f + 0.125f;
    bool lstm = bp_rnn_cell_kind(rnn) == BP_RNN_LSTM;
    bp_rnn_run_options run = BP_RNN_RUN_OPTIONS_INIT;
    run.planes_ih = 1 + (bits - 1) / 2;
    bp_status st = bp_rnn_forward(cpu_context(), rnn, x, steps, batch, NULL, NULL, y, h,
                                  lstm ? c : NULL, &run);
    CHECK(documented_run_status(st), "forward: %s (%s)", bp_status_string(st), bp_last_error());
    run.mode = BP_RNN_INTEGER;
    st = bp_rnn_step(cpu_context(), rnn, x, batch, h, lstm ? c : NULL, &run);
    /* The integer mode refuses matrices with a rotation of K (a file may
     * hold them: bp_rnn_create takes any layout). */
    CHECK(documented_run_status(st) ||
              (st == BP_ERR_UNSUPPORTED && strstr(bp_last_error(), "rotation") != NULL),
          "step: %s (%s)", bp_status_string(st), bp_last_error());
    int columns[2] = {1, bits};
    run.mode = BP_RNN_FLOAT;
    st = bp_rnn_step_columns(cpu_context(), rnn, x, batch, h, lstm ? c : NULL, columns, &run);
    CHECK(documented_run_status(st), "step_columns: %s (%s)", bp_status_string(st),
          bp_last_error());
    free(x);
    free(h);
    free(c);
    free(y);
}

static bp_status parse(const uint8_t *data, size_t size, bool exercise_it) {
    bp_rnn *rnn = NULL;
    bp_status st = bp_rnn_deserialize(NULL, data, size, &rnn);
    CHECK((st == BP_OK) == (rnn != NULL), "status %d with RNN %p", (int)st, (void *)rnn);
    CHECK(st == BP_OK || bp_last_error()[0] != '\0', "failure without a message");
    if (st != BP_OK)
        return st;
    size_t need = 0;
    CHECK(bp_rnn_serialize(rnn, NULL, 0, &need) == BP_OK, "size: %s", bp_last_error());
    CHECK(need == size, "accepted %zu bytes but serializes to %zu", size, need);
    uint8_t *again = malloc(need), *again2 = malloc(need);
    CHECK(again && again2, "out of memory");
    CHECK(bp_rnn_serialize(rnn, again, need, &need) == BP_OK, "serialize: %s", bp_last_error());
    /* Like matrices, the loader may normalize what it recomputes: the
     * serialization must be a fixed point of loading. */
    bp_rnn *rnn2 = NULL;
    CHECK(bp_rnn_deserialize(NULL, again, need, &rnn2) == BP_OK,
          "the library's own serialization does not load: %s", bp_last_error());
    size_t need2 = 0;
    CHECK(bp_rnn_serialize(rnn2, again2, need, &need2) == BP_OK && need2 == need,
          "serialize again: %s", bp_last_error());
    CHECK(memcmp(again, again2, need) == 0, "serialization is not a fixed point of loading");
    bp_rnn_destroy(rnn2);
    free(again2);
    free(again);
    if (exercise_it)
        exercise(rnn);
    bp_rnn_destroy(rnn);
    return st;
}

static void load_as_file(const uint8_t *data, size_t size, bp_status want) {
    char path[64];
    int fd = fuzz_memfd(data, size, path);
    bp_rnn *rnn = NULL;
    bp_status st = bp_rnn_load(NULL, path, &rnn);
    CHECK(st == want, "load gives %s (%s), deserialize %s", bp_status_string(st), bp_last_error(),
          bp_status_string(want));
    bp_rnn_destroy(rnn);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bp_status raw = parse(data, size, true);
    load_as_file(data, size, raw);
    if (size >= HEADER + 4) {
        uint8_t *fixed = malloc(size);
        CHECK(fixed, "out of memory");
        memcpy(fixed, data, size);
        fix_matrix_crcs(fixed, size);
        put_crc(fixed, size);
        parse(fixed, size, raw != BP_OK);
        free(fixed);
    }
    return 0;
}
