/*
 * Shared helpers for the Criterion suite: a seeded RNG, input fills, an
 * independent re-implementation of the documented numerics (activation rule,
 * exact integer D, exact combine) and fp64 reference products, error
 * measures, and the list of CPU kernel paths present on this machine.
 *
 * Seeds: every test draws a fresh seed from tu_seed() (time, pid and a
 * counter) unless BP_TEST_SEED is set in the environment, and every failure
 * message prints it, so a failure can be replayed with BP_TEST_SEED=<seed>.
 */
#ifndef BP_TEST_UTIL_H
#define BP_TEST_UTIL_H

#include "bitplane.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- random numbers ------------------------------------------------------ */

typedef struct tu_rng {
    uint64_t s[4];
} tu_rng;

/* A fresh seed per call, or BP_TEST_SEED when set. */
uint64_t tu_seed(void);
void tu_rng_init(tu_rng *rng, uint64_t seed);
uint64_t tu_next(tu_rng *rng);
/* Uniform in [0, 1). */
double tu_uniform(tu_rng *rng);
/* Uniform integer in [lo, hi] (inclusive). */
size_t tu_range(tu_rng *rng, size_t lo, size_t hi);
double tu_gauss(tu_rng *rng);

/* a[i] ~ N(0, sigma^2), never exactly zero. */
void tu_fill_gauss(tu_rng *rng, float *a, size_t n, float sigma);
/* a[i] ~ U(lo, hi), never exactly zero. */
void tu_fill_uniform(tu_rng *rng, float *a, size_t n, float lo, float hi);
/* Strided fill: rows x cols values at a[r*ld + c]; the gaps get `gap`. */
void tu_fill_gauss_ld(tu_rng *rng, float *a, size_t rows, size_t cols, size_t ld, float sigma,
                      float gap);
void tu_fill_value(float *a, size_t n, float v);

/* malloc that aborts the test on failure; tu_free is free. */
void *tu_xmalloc(size_t bytes);
void *tu_xcalloc(size_t n, size_t size);

/* ---- kernel paths ---------------------------------------------------------- */

typedef struct tu_path {
    bp_cpu_kernel kernel;
    const char *name;
} tu_path;

#define TU_MAX_PATHS 12

const char *tu_kernel_name(bp_cpu_kernel k);
/*
 * Every CPU kernel path (REFERENCE, PORTABLE, AVX2, AVX2_LUT, AVX512, AVX512_LUT, AVX512_VNNI,
 * AVX512_VNNI_BATCHED)
 * whose context can be created on this machine, REFERENCE first. Paths whose creation returns
 * BP_ERR_UNSUPPORTED are left out and listed in `missing` (may be NULL, at least 128 bytes) for a
 * skip message. Any other failure fails the test.
 */
size_t tu_cpu_paths(tu_path *paths, char *missing, size_t missing_cap);
/* Create a context on a kernel path; cr_skip_test when BP_ERR_UNSUPPORTED,
 * cr_assert on any other failure. */
bp_context *tu_context(bp_cpu_kernel kernel, int threads);
/*
 * A conformance target: a backend and its inner path (bp_cpu_kernel for the
 * CPU, bp_gpu_kernel for accelerators). Accelerator targets that cannot be
 * created here (no plugin, no device) are skipped with the library's reason.
 */
typedef struct tu_target {
    bp_backend backend;
    int kernel;
} tu_target;
const char *tu_target_name(const tu_target *t); /* "cpu/avx512", "cuda/mma", ... */
bp_context *tu_target_context(const tu_target *t, int threads);
/* Every target of every backend, REFERENCE first: for parameterized tests. */
#define TU_ALL_TARGETS                                                                             \
    {BP_BACKEND_CPU, BP_CPU_KERNEL_REFERENCE}, {BP_BACKEND_CPU, BP_CPU_KERNEL_AUTO},               \
        {BP_BACKEND_CPU, BP_CPU_KERNEL_AVX512}, {BP_BACKEND_CPU, BP_CPU_KERNEL_AVX512_LUT},        \
        {BP_BACKEND_CPU, BP_CPU_KERNEL_AVX2}, {BP_BACKEND_CPU, BP_CPU_KERNEL_AVX2_LUT},            \
        {BP_BACKEND_CPU, BP_CPU_KERNEL_PORTABLE}, {BP_BACKEND_CPU, BP_CPU_KERNEL_AVX512_VNNI},     \
        {BP_BACKEND_CPU, BP_CPU_KERNEL_AVX512_VNNI_BATCHED},                                       \
        {BP_BACKEND_CPU, BP_CPU_KERNEL_AVX_VNNI}, {BP_BACKEND_CPU, BP_CPU_KERNEL_NEON},            \
        {BP_BACKEND_CPU, BP_CPU_KERNEL_NEON_LUT}, {BP_BACKEND_CPU, BP_CPU_KERNEL_NEON_DOTPROD},    \
        {BP_BACKEND_CUDA, BP_GPU_KERNEL_POPCOUNT}, {BP_BACKEND_CUDA, BP_GPU_KERNEL_MMA}, {         \
        BP_BACKEND_OPENCL, BP_GPU_KERNEL_AUTO                                                      \
    }

/* Like tu_context but returns NULL when unsupported (no skip). */
bp_context *tu_context_try(bp_cpu_kernel kernel, int threads);

/* Quantize, asserting success. clip 0 = automatic. */
bp_matrix *tu_quantize(bp_context *ctx, const float *w, size_t rows, size_t cols, size_t ld,
                       int bits, bp_quant_method method, float clip);

/* ---- the documented numerics, independently --------------------------------- */

typedef struct tu_act {
    int act_bits;
    bool is_signed;
    bool is_zero;
    float scale;
    double scale_mean; /* act_bits 1: mean|x| in double */
} tu_act;

/*
 * The activation rule (README "Numerics", src/activations.c): q receives
 * cols values. act_bits 1 gives q = +-1 and scale mean|x| (float of the
 * double mean). act_scale > 0 uses the fixed scale.
 */
void tu_quantize_act(const float *x, size_t cols, int act_bits, float act_scale, int32_t *q,
                     tu_act *info);

/* Quantize with explicit options (asserts success). tu_quantize above uses
 * one scale per row and no rotation: the structure most tests reason about. */
bp_matrix *tu_quantize_opts(bp_context *ctx, const float *w, size_t rows, size_t cols, size_t ld,
                            const bp_quant_options *opts);

/* The rotated input of docs/numerics.md, transcribed from the text. */
void tu_rotate_input(const bp_matrix *m, const float *x, float *out);

/*
 * Give m group multipliers: group_size 0 = per row (all 1), else groups of
 * group_size columns with multipliers drawn from rng in 1..255, or all 255
 * when rng is NULL (the largest sums). Planes and coefficients stay.
 */
void tu_set_groups(bp_matrix *m, size_t group_size, tu_rng *rng);

/* Plane bit of the matrix as +1/-1 via the internal layout. */
int tu_plane_sign(const bp_matrix *m, int p, size_t row, size_t col);

/*
 * Exact y for one column per docs/numerics.md, from the definition:
 * uniform: D_u = sum_j m_j u_n[j] q_j, y = alpha * ((float)D_u * s);
 * residual: D_p = sum_j m_j t_p[j] q_j exactly, y = fmaf chain over p of
 * c[p] * ((float)D_p * s); then + bias. Uses the internal layout and coefficient table. act_bits >=
 * 2 is bit-exact; act_bits 1 uses the float of the double mean, so compare within tolerance.
 */
void tu_exact_column(const bp_matrix *m, const float *x, int planes, int act_bits, float act_scale,
                     const float *bias, float *y);

/* y (rows x batch, ldy) = W (rows x cols, ldw) * X (cols x batch, ldx) in double. */
void tu_gemm_f64(const float *w, size_t rows, size_t cols, size_t ldw, const double *x,
                 size_t batch, size_t ldx, double *y, size_t ldy);

/* ||got - ref||_2 / ||ref||_2 over rows x batch (ld ldy for both). */
double tu_rel_err(const double *ref, const float *got, size_t rows, size_t batch, size_t ldy);
/* Same for two float arrays (ref promoted to double). */
double tu_rel_err_f(const float *ref, const float *got, size_t rows, size_t batch, size_t ldy);

/*
 * First bit-pattern mismatch between a and b over rows x batch with leading
 * dimension ld, or -1. *row and *col receive the position.
 */
long tu_first_mismatch(const float *a, const float *b, size_t rows, size_t batch, size_t ld,
                       size_t *row, size_t *col);
uint32_t tu_bits(float f);

/* File-format helpers for corruption tests: an independent CRC-32C
 * (Castagnoli, reflected 0x82F63B78, bitwise) and a little-endian store. */
uint32_t tu_crc32c(const unsigned char *p, size_t n);
void tu_put_le32(unsigned char *p, uint32_t v);

/* A run-options struct with the common knobs set. */
bp_run_options tu_run(int planes, int act_bits);

/* Fill y with a recognisable NaN payload (sentinel) and check it. */
#define TU_SENTINEL_BITS 0x7fc0beefu
void tu_fill_sentinel(float *y, size_t n);
/* Index of the first element that is not the sentinel, or -1. */
long tu_find_non_sentinel(const float *y, size_t n);
/* Index of the first element that is the sentinel, or -1. */
long tu_find_sentinel(const float *y, size_t n);

/*
 * Suite teardown for every test file: TestSuite(name, .fini = tu_suite_fini).
 * Under AddressSanitizer it runs a leak check at the end of each test (in
 * the test's own process) and aborts on a leak, so the test is reported as
 * crashing in teardown: Criterion ignores LeakSanitizer's exit status in
 * its worker processes, so leaks would otherwise pass silently.
 */
void tu_suite_fini(void);

#endif /* BP_TEST_UTIL_H */
