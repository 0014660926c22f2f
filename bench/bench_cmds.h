/* The subcommands; each returns the process exit code (0 ok, 1 failure). */
#ifndef BENCH_CMDS_H
#define BENCH_CMDS_H

#include "bench_args.h"

int bench_cmd_gemv(const bench_opts *o);
int bench_cmd_peak(const bench_opts *o);
int bench_cmd_quantize(const bench_opts *o);
int bench_cmd_accuracy(const bench_opts *o);
/* gemv --backend cuda: bench_cuda.c (bench_cuda_none.c without CUDA). */
int bench_cmd_gemv_cuda(const bench_opts *o);
/* gemv --backend opencl (cmd_gemv_opencl.c, built with the OpenCL backend). */
int bench_cmd_gemv_opencl(const bench_opts *o);

#endif
