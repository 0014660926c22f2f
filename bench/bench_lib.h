/*
 * Thin wrappers over the bitplane API that check every status and report
 * failures the same way, so the subcommands read as plain sequences.
 * Each returns 0 on success and 1 (already reported) on failure.
 */
#ifndef BENCH_LIB_H
#define BENCH_LIB_H

#include "bench_args.h"
#include "bitplane.h"

#include <stddef.h>

/* A context with o->threads workers and o->kernel; checks the thread count
 * the library actually gave us, since every figure is labelled with it. */
int bench_context(const bench_opts *o, bp_context **out);
/* "cpu", "cuda", ... for the JSON `backend` field. */
const char *bench_backend_name(const bp_context *ctx);
/* The kernel name the context uses at this act_bits and K. */
int bench_kernel_name(const bp_context *ctx, const bp_matrix *m, int planes, int act_bits,
                      size_t batch, const char **out);

/* Quantize with group_size and rotation as in bp_quant_options (0 = the
 * library's defaults, -1 = per row / no rotation). */
int bench_quantize(bp_context *ctx, const float *w, size_t m, size_t k, int bits,
                   bp_quant_method method, float clip, int group_size, int rotation,
                   bp_matrix **out);
/* out[0] = src; out[1..n-1] are independent copies made by serialize and
 * deserialize (much cheaper than quantizing again). The caller destroys
 * out[1..n-1]. */
int bench_matrix_copies(bp_context *ctx, bp_matrix *src, size_t n, bp_matrix **out);

/* Weight bytes one call with `planes` planes reads: K padded to 512 bits. */
size_t bench_plane_bytes(size_t m, size_t k, int planes);

#endif
