/*
 * Command-line options of bitplane-bench, parsed once into one struct so the
 * subcommands never see argv.
 */
#ifndef BENCH_ARGS_H
#define BENCH_ARGS_H

#include "bitplane.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_MAX_LIST 16

typedef enum bench_cmd {
    BENCH_CMD_GEMV = 0,
    BENCH_CMD_PEAK = 1,
    BENCH_CMD_QUANTIZE = 2,
    BENCH_CMD_ACCURACY = 3,
} bench_cmd;

/* Quantizers to run, as a mask so `quantize --method both` is one value. */
#define BENCH_METHOD_UNIFORM  1
#define BENCH_METHOD_RESIDUAL 2

typedef struct bench_opts {
    bench_cmd cmd;
    size_t m, k, batch;
    int planes[BENCH_MAX_LIST];
    int n_planes;
    int act_bits[BENCH_MAX_LIST];
    int n_act_bits;
    float clip[BENCH_MAX_LIST];
    int n_clip;
    int threads;
    int reps;
    int bits;
    int methods;    /* BENCH_METHOD_* mask */
    int group_size; /* bp_quant_options.group_size: 0 default, -1 per row */
    int rotation;   /* bp_quant_options.rotation: 0 default, -1 none */
    bp_cpu_kernel kernel;
    const char *kernel_name; /* as given, for messages */
    bp_backend backend;      /* gemv --backend cpu|cuda|opencl */
    int json;
    uint64_t seed;
} bench_opts;

/* Parse argv. Returns 0 on success, 2 after printing a precise message and
 * the usage to stderr, or -1 when --help printed the usage to stdout. */
int bench_parse_args(int argc, char **argv, bench_opts *out);
void bench_usage(FILE *f);

#endif
