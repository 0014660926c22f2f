/*
 * bp_gpu_conformance: the CUDA backend's conformance table as one program
 * with no test framework, so it runs on a GPU machine that has neither
 * Criterion nor OpenBLAS (cuda/gpu-check.sh builds and runs it there; CTest
 * runs it everywhere and it skips, exit 77, without a device).
 *
 * Every case compares the CUDA paths (popcount and MMA, forced) with the CPU
 * REFERENCE path bit for bit (act_bits >= 2; act_bits 1 within float
 * tolerance, since mean|x| depends on the reduction order): shapes with odd
 * rows and K, planes 1..k, act_bits 1..16, batch 1..64, both quantizers,
 * bias, fixed activation scales, mixed signed/unsigned/zero columns and
 * per-column plane counts; then sizes beyond one launch (batch 300, more
 * row groups than gridDim.y, K = 2^20 with |D| near its bound). Then the
 * device-pointer API: fp32/fp16/bf16 in and out, a two-layer chain on one
 * stream, immediate argument errors and deferred non-finite reports. Then
 * matrices with per-row plane counts (docs/row-planes.md) through bp_gemm
 * and bp_cuda_gemm. Then the LSTM/GRU layers on each path against the CPU
 * (gpu_conformance_rnn.c).
 *
 *   bp_gpu_conformance [--quick] [--seed S]
 * Prints one line per failure and "N passed, N failed" at the end.
 */
#include "bitplane.h"
#include "bitplane_cuda.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int passed, failed;

/* tests/gpu_conformance_rnn.c */
void gpu_conformance_rnn(bp_context *ref, bp_context *gpu[2], const char *names[2], int quick,
                         uint64_t seed, int *passed, int *failed);
static uint64_t rng_state;

static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uniform(void) {
    return (double)(next() >> 11) / 9007199254740992.0;
}
static float gauss(void) {
    double u = uniform() + 1e-300, v = uniform();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond)                                                                                  \
            passed++;                                                                              \
        else {                                                                                     \
            failed++;                                                                              \
            printf("FAIL: ");                                                                      \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static void die(const char *what, bp_status st) {
    printf("FATAL: %s: %s: %s\n", what, bp_status_string(st), bp_last_error());
    exit(1);
}
#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            printf("FATAL: %s: %s\n", #call, cudaGetErrorString(e_));                              \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static bp_context *make_ctx(bp_backend b, bp_cpu_kernel ck, bp_gpu_kernel gk, bp_status *st) {
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = b;
    o.cpu_kernel = ck;
    o.gpu_kernel = gk;
    o.threads = b == BP_BACKEND_CPU ? 0 : 1;
    bp_context *c = NULL;
    *st = bp_context_create(&o, &c);
    return c;
}

/* Columns: Gaussian (signed), ReLU (unsigned), heavy-tailed, all zero, tiny
 * (max|x| below L / FLT_MAX, where the rule scales by 2^64 first) and
 * subnormal. */
static void fill_x(float *x, size_t cols, size_t batch, size_t ldx) {
    for (size_t b = 0; b < batch; b++) {
        int kind = (int)(next() % 8);
        for (size_t j = 0; j < cols; j++) {
            float v = gauss();
            if (kind == 1 || kind == 5)
                v = fabsf(v);
            else if (kind == 2)
                v = v * v * v * 10.0f;
            else if (kind == 3 && b > 0)
                v = 0.0f;
            else if (kind == 6)
                v *= 0x1p-116f;
            else if (kind == 7)
                v = fabsf(v) * 0x1p-130f;
            x[b * ldx + j] = v;
        }
    }
}

static int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}
static double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

typedef struct shape {
    size_t rows, cols;
} shape;

static void table(bp_context *ref, bp_context *gpu[2], const char *names[2], int quick) {
    static const shape shapes[] = {{1, 1},      {7, 3},     {16, 512},  {33, 513},
                                   {100, 1000}, {17, 4097}, {64, 2048}, {300, 300}};
    static const int acts[] = {1, 2, 3, 4, 7, 8, 12, 16};
    static const size_t batches[] = {1, 2, 3, 5, 8, 17, 33, 64};
    const size_t nshapes = quick ? 4 : sizeof shapes / sizeof shapes[0];
    for (size_t si = 0; si < nshapes; si++)
        for (int method = 0; method < 2; method++)
            for (int bits = 1; bits <= 8; bits += quick ? 7 : 3) {
                const size_t M = shapes[si].rows, K = shapes[si].cols;
                float *w = malloc(M * K * sizeof *w);
                for (size_t i = 0; i < M * K; i++)
                    w[i] = gauss();
                bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
                qo.bits = bits;
                qo.method = method ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
                /* Cycle the structures of docs/numerics.md: the defaults
                 * (groups of 32 + rotation 256), one scale per row, and
                 * groups of 64 with rotation blocks of 16. */
                switch ((si + (size_t)bits) % 3) {
                case 1:
                    qo.group_size = BP_GROUP_PER_ROW;
                    qo.rotation = BP_ROTATION_NONE;
                    break;
                case 2:
                    qo.group_size = 64;
                    qo.rotation = 16;
                    qo.rotation_seed = si;
                    break;
                default:
                    break;
                }
                bp_matrix *m = NULL;
                bp_status st = bp_matrix_quantize(ref, w, M, K, K, &qo, &m);
                if (st)
                    die("bp_matrix_quantize", st);
                for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++)
                    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                        if (quick && bi % 3)
                            continue;
                        const int a = acts[ai];
                        const size_t B = batches[bi], ldx = K + (next() % 3),
                                     ldy = M + (next() % 3);
                        float *x = malloc(B * ldx * sizeof *x);
                        float *bias = malloc(M * sizeof *bias);
                        float *y0 = calloc(B * ldy, sizeof *y0), *y1 = calloc(B * ldy, sizeof *y1);
                        int *cp = malloc(B * sizeof *cp);
                        fill_x(x, K, B, ldx);
                        for (size_t r = 0; r < M; r++)
                            bias[r] = gauss();
                        for (size_t b = 0; b < B; b++)
                            cp[b] = (int)(next() % (size_t)(bits + 1)); /* 0 = planes */
                        /* Every planes 1..bits, plus per-column counts, bias and
                         * a fixed scale on some. */
                        for (int planes = 1; planes <= bits + 1; planes++) {
                            bp_run_options ro = BP_RUN_OPTIONS_INIT;
                            ro.act_bits = a;
                            ro.planes = planes <= bits ? planes : 0;
                            ro.column_planes = planes > bits ? cp : NULL;
                            ro.bias = (planes + (int)bi) % 2 ? bias : NULL;
                            ro.act_scale = planes == 2 && a > 1 ? 0.01f : 0.0f;
                            memset(y0, 0, B * ldy * sizeof *y0);
                            if ((st = bp_gemm(ref, m, x, B, ldx, y0, ldy, &ro)))
                                die("bp_gemm (reference)", st);
                            for (int k = 0; k < 2; k++) {
                                memset(y1, 0, B * ldy * sizeof *y1);
                                st = bp_gemm(gpu[k], m, x, B, ldx, y1, ldy, &ro);
                                int ok = st == BP_OK && (a >= 2 ? same_bits(y0, y1, B * ldy)
                                                                : rel_err(y1, y0, B * ldy) < 1e-5);
                                CHECK(ok,
                                      "%s M=%zu K=%zu bits=%d %s planes=%d%s act_bits=%d batch=%zu "
                                      "bias=%d act_scale=%g: %s%s (rel err %.3g)",
                                      names[k], M, K, bits, method ? "residual" : "uniform",
                                      ro.planes, ro.column_planes ? " (per column)" : "", a, B,
                                      ro.bias != NULL, (double)ro.act_scale, bp_status_string(st),
                                      st ? bp_last_error() : "", rel_err(y1, y0, B * ldy));
                            }
                        }
                        free(x);
                        free(bias);
                        free(y0);
                        free(y1);
                        free(cp);
                    }
                bp_matrix_destroy(m);
                free(w);
            }
}

/* One bit-exact comparison of both CUDA paths against the reference. */
static void compare_one(bp_context *ref, bp_context *gpu[2], const char *names[2],
                        const bp_matrix *m, const float *x, size_t B, size_t ldx, size_t M,
                        const bp_run_options *ro, const char *what) {
    float *y0 = calloc(B * M, sizeof *y0), *y1 = calloc(B * M, sizeof *y1);
    if (!y0 || !y1) {
        printf("FATAL: out of memory (%s)\n", what);
        exit(1);
    }
    bp_status st = bp_gemm(ref, m, x, B, ldx, y0, M, ro);
    if (st)
        die("bp_gemm (reference)", st);
    for (int k = 0; k < 2; k++) {
        memset(y1, 0, B * M * sizeof *y1);
        st = bp_gemm(gpu[k], m, x, B, ldx, y1, M, ro);
        CHECK(st == BP_OK && same_bits(y0, y1, B * M), "%s %s act_bits=%d: %s%s (rel err %.3g)",
              names[k], what, ro->act_bits, bp_status_string(st), st ? bp_last_error() : "",
              rel_err(y1, y0, B * M));
    }
    free(y0);
    free(y1);
}

/* Sizes the table does not reach: more columns than one launch takes (256),
 * more 16-row groups than gridDim.y holds (65535), and |D| near its bound
 * (K = 2^20, unsigned 16-bit activations at full scale, one-signed weights). */
static void large(bp_context *ref, bp_context *gpu[2], const char *names[2], int quick) {
    static const int acts[] = {2, 8, 16};
    {
        const size_t M = 33, K = 513, B = 300;
        float *w = malloc(M * K * sizeof *w), *x = malloc(B * K * sizeof *x);
        int *cp = malloc(B * sizeof *cp);
        for (size_t i = 0; i < M * K; i++)
            w[i] = gauss();
        fill_x(x, K, B, K);
        for (size_t b = 0; b < B; b++)
            cp[b] = (int)(next() % 9);
        bp_matrix *m = NULL;
        bp_status st = bp_matrix_quantize(ref, w, M, K, K, NULL, &m);
        if (st)
            die("bp_matrix_quantize", st);
        for (size_t ai = 0; ai < 3; ai++) {
            bp_run_options ro = BP_RUN_OPTIONS_INIT;
            ro.act_bits = acts[ai];
            ro.column_planes = cp;
            compare_one(ref, gpu, names, m, x, B, K, M, &ro, "M=33 K=513 batch=300 (per column)");
        }
        bp_matrix_destroy(m);
        free(w);
        free(x);
        free(cp);
    }
    if (quick)
        return;
    {
        const size_t M = 65535 * 16 + 17, K = 40, B = 3;
        float *w = malloc(M * K * sizeof *w), *x = malloc(B * K * sizeof *x);
        for (size_t i = 0; i < M * K; i++)
            w[i] = gauss();
        fill_x(x, K, B, K);
        bp_matrix *m = NULL;
        bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
        qo.bits = 3;
        bp_status st = bp_matrix_quantize(ref, w, M, K, K, &qo, &m);
        if (st)
            die("bp_matrix_quantize", st);
        bp_run_options ro = BP_RUN_OPTIONS_INIT;
        compare_one(ref, gpu, names, m, x, B, K, M, &ro, "M=1048577 K=40 batch=3");
        bp_matrix_destroy(m);
        free(w);
        free(x);
    }
    {
        const size_t M = 20, K = (size_t)1 << 20, B = 2;
        float *w = malloc(M * K * sizeof *w), *x = malloc(B * K * sizeof *x);
        for (size_t i = 0; i < M * K; i++)
            w[i] = 1.0f + 0.25f * (float)(i % 7);
        for (size_t i = 0; i < B * K; i++)
            x[i] = i < K ? 1.0f : 1.0f + (float)(i % 3); /* unsigned, near max|x| */
        bp_matrix *m = NULL;
        bp_status st = bp_matrix_quantize(ref, w, M, K, K, NULL, &m);
        if (st)
            die("bp_matrix_quantize", st);
        bp_run_options ro = BP_RUN_OPTIONS_INIT;
        ro.act_bits = 16;
        compare_one(ref, gpu, names, m, x, B, K, M, &ro, "M=20 K=2^20 batch=2 (large D)");
        bp_matrix_destroy(m);
        free(w);
        free(x);
    }
}

/*
 * Per-row plane counts (docs/row-planes.md): W quantized with counts, each
 * CUDA path against the CPU reference on the same matrix, bit for bit (the
 * CPU's own oracle, tests/test_row_planes.c, checks that against the plain
 * matrix at min(count, planes)). Random counts, so runs of equal count do
 * not fall on row-group boundaries, and once counts from scores, whose
 * runs do; call planes 1..bits (below, at and above the counts) and
 * per-column planes; batch 1, a few columns, and more columns than one
 * column group of either path; rows not a multiple of 16, K tails, both
 * quantizers, the three structures of table(). y is compared over its whole
 * stride (ldy > rows), so an output at its stored row instead of its caller
 * row, or a stray write, shows.
 */
static void row_counts(bp_context *ref, bp_context *gpu[2], const char *names[2], int quick) {
    static const struct {
        size_t rows, cols;
        int bits, residual, structure, from_scores;
    } cases[] = {{37, 300, 8, 0, 0, 0},  {45, 70, 5, 1, 1, 0},    {300, 64, 4, 0, 1, 1},
                 {17, 4097, 8, 1, 0, 0}, {100, 1000, 6, 0, 2, 0}, {5, 1, 3, 0, 0, 0},
                 {513, 200, 8, 1, 2, 1}};
    static const int acts[] = {2, 3, 8, 16};
    static const size_t batches[] = {1, 5, 40};
    const size_t ncases = quick ? 3 : sizeof cases / sizeof cases[0];
    for (size_t ci = 0; ci < ncases; ci++) {
        const size_t M = cases[ci].rows, K = cases[ci].cols;
        const int bits = cases[ci].bits;
        float *w = malloc(M * K * sizeof *w), *scores = malloc(M * sizeof *scores);
        uint8_t *counts = malloc(M);
        for (size_t i = 0; i < M * K; i++)
            w[i] = gauss();
        bp_status st;
        if (cases[ci].from_scores) {
            for (size_t r = 0; r < M; r++)
                scores[r] = fabsf(gauss());
            if ((st = bp_row_planes_from_scores(scores, M, bits, bits / 2.0, 3, counts)))
                die("bp_row_planes_from_scores", st);
        } else {
            for (size_t r = 0; r < M; r++)
                counts[r] = (uint8_t)(1 + next() % (uint64_t)bits);
            counts[next() % M] = (uint8_t)(bits - 1); /* never all at bits */
        }
        bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
        qo.bits = bits;
        qo.method = cases[ci].residual ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
        qo.row_planes = counts;
        if (cases[ci].structure == 1) {
            qo.group_size = BP_GROUP_PER_ROW;
            qo.rotation = BP_ROTATION_NONE;
        } else if (cases[ci].structure == 2) {
            qo.group_size = 32;
            qo.rotation = 16;
            qo.rotation_seed = ci;
        }
        bp_matrix *m = NULL;
        if ((st = bp_matrix_quantize(ref, w, M, K, K, &qo, &m)))
            die("bp_matrix_quantize (row_planes)", st);
        for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++)
            for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
                if (quick && ai % 2)
                    continue;
                const int a = acts[ai];
                const size_t B = batches[bi], ldx = K + (next() % 3), ldy = M + 1 + (next() % 3);
                float *x = malloc(B * ldx * sizeof *x), *bias = malloc(M * sizeof *bias);
                float *y0 = calloc(B * ldy, sizeof *y0), *y1 = calloc(B * ldy, sizeof *y1);
                int *cp = malloc(B * sizeof *cp);
                fill_x(x, K, B, ldx);
                for (size_t r = 0; r < M; r++)
                    bias[r] = gauss();
                for (size_t b = 0; b < B; b++)
                    cp[b] = (int)(next() % (uint64_t)(bits + 1)); /* 0 = planes */
                for (int planes = 1; planes <= bits + 1; planes++) {
                    bp_run_options ro = BP_RUN_OPTIONS_INIT;
                    ro.act_bits = a;
                    ro.planes = planes <= bits ? planes : 0;
                    ro.column_planes = planes > bits ? cp : NULL;
                    ro.bias = (planes + (int)bi) % 2 ? bias : NULL;
                    memset(y0, 0, B * ldy * sizeof *y0);
                    if ((st = bp_gemm(ref, m, x, B, ldx, y0, ldy, &ro)))
                        die("bp_gemm (reference, row_planes)", st);
                    for (int k = 0; k < 2; k++) {
                        memset(y1, 0, B * ldy * sizeof *y1);
                        st = bp_gemm(gpu[k], m, x, B, ldx, y1, ldy, &ro);
                        CHECK(st == BP_OK && same_bits(y0, y1, B * ldy),
                              "%s row_planes%s M=%zu K=%zu bits=%d %s structure=%d planes=%d%s "
                              "act_bits=%d batch=%zu bias=%d: %s%s (rel err %.3g)",
                              names[k], cases[ci].from_scores ? " (from scores)" : "", M, K, bits,
                              cases[ci].residual ? "residual" : "uniform", cases[ci].structure,
                              ro.planes, ro.column_planes ? " (per column)" : "", a, B,
                              ro.bias != NULL, bp_status_string(st), st ? bp_last_error() : "",
                              rel_err(y1, y0, B * ldy));
                    }
                }
                free(x);
                free(bias);
                free(y0);
                free(y1);
                free(cp);
            }
        bp_matrix_destroy(m);
        free(counts);
        free(scores);
        free(w);
    }
}

/* The device-pointer API with per-row counts: bp_cuda_gemm on one stream,
 * fp32 and fp16 out, per-column planes, against the CPU reference. */
static void row_counts_device_api(bp_context *ref, bp_context *gpu, const char *name) {
    const size_t M = 70, K = 333, B = 7;
    const int bits = 6;
    float *w = malloc(M * K * sizeof *w), *x = malloc(B * K * sizeof *x);
    float *y0 = malloc(B * M * sizeof *y0), *y1 = malloc(B * M * sizeof *y1);
    uint16_t *h = malloc(B * M * 2);
    uint8_t counts[70];
    int cp[7];
    for (size_t i = 0; i < M * K; i++)
        w[i] = gauss();
    fill_x(x, K, B, K);
    for (size_t r = 0; r < M; r++)
        counts[r] = (uint8_t)(1 + next() % (uint64_t)bits);
    counts[0] = 2;
    for (size_t b = 0; b < B; b++)
        cp[b] = (int)(next() % (uint64_t)(bits + 1));
    bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
    qo.bits = bits;
    qo.row_planes = counts;
    bp_matrix *m = NULL;
    bp_status st = bp_matrix_quantize(ref, w, M, K, K, &qo, &m);
    if (st)
        die("bp_matrix_quantize (row_planes)", st);
    bp_run_options ro = BP_RUN_OPTIONS_INIT;
    ro.column_planes = cp;
    if ((st = bp_gemm(ref, m, x, B, K, y0, M, &ro)))
        die("bp_gemm (reference, row_planes)", st);
    cudaStream_t s;
    void *dx, *dy;
    CU(cudaStreamCreate(&s));
    CU(cudaMalloc(&dx, B * K * 4));
    CU(cudaMalloc(&dy, B * M * 4));
    CU(cudaMemcpy(dx, x, B * K * 4, cudaMemcpyHostToDevice));
    st = bp_cuda_gemm(gpu, m, dx, BP_DTYPE_F32, B, K, dy, BP_DTYPE_F32, M, &ro, s);
    bp_status st2 = bp_cuda_synchronize(gpu, s);
    CU(cudaMemcpy(y1, dy, B * M * 4, cudaMemcpyDeviceToHost));
    CHECK(!st && !st2 && same_bits(y0, y1, B * M),
          "%s: bp_cuda_gemm with per-row counts differs from the CPU: %s", name, bp_last_error());
    st = bp_cuda_gemm(gpu, m, dx, BP_DTYPE_F32, B, K, dy, BP_DTYPE_F16, M, &ro, s);
    st2 = bp_cuda_synchronize(gpu, s);
    CU(cudaMemcpy(h, dy, B * M * 2, cudaMemcpyDeviceToHost));
    int ok = !st && !st2;
    for (size_t i = 0; ok && i < B * M; i++) {
        _Float16 v = (_Float16)y0[i];
        uint16_t want;
        memcpy(&want, &v, 2);
        ok = h[i] == want;
    }
    CHECK(ok, "%s: bp_cuda_gemm with per-row counts, fp16 out, differs from the CPU rounded", name);
    cudaFree(dx);
    cudaFree(dy);
    cudaStreamDestroy(s);
    bp_matrix_destroy(m);
    free(w);
    free(x);
    free(y0);
    free(y1);
    free(h);
}

/* float -> bf16, round to nearest even (inputs here are finite). */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void device_api(bp_context *ref, bp_context *gpu, const char *name) {
    const size_t M = 300, K = 777, B = 5;
    float *w = malloc(M * K * sizeof *w), *w2 = malloc(M * M * sizeof *w2);
    for (size_t i = 0; i < M * K; i++)
        w[i] = gauss();
    for (size_t i = 0; i < M * M; i++)
        w2[i] = gauss();
    bp_matrix *m = NULL, *m2 = NULL;
    bp_status st;
    if ((st = bp_matrix_quantize(ref, w, M, K, K, NULL, &m)) ||
        (st = bp_matrix_quantize(ref, w2, M, M, M, NULL, &m2)))
        die("bp_matrix_quantize", st);
    float *x = malloc(B * K * sizeof *x), *y0 = malloc(B * M * sizeof *y0),
          *y1 = malloc(B * M * sizeof *y1), *z0 = malloc(B * M * sizeof *z0);
    fill_x(x, K, B, K);
    cudaStream_t s;
    CU(cudaStreamCreate(&s));
    void *dx, *dy, *dz;
    CU(cudaMalloc(&dx, B * K * 4));
    CU(cudaMalloc(&dy, B * M * 4));
    CU(cudaMalloc(&dz, B * M * 4));
    bp_run_options ro = BP_RUN_OPTIONS_INIT;
    ro.planes = 5;

    /* fp32 in/out, then a second layer on the same stream with no sync. */
    CU(cudaMemcpy(dx, x, B * K * 4, cudaMemcpyHostToDevice));
    CHECK(bp_cuda_matrix_upload(gpu, m) == BP_OK, "%s: bp_cuda_matrix_upload: %s", name,
          bp_last_error());
    st = bp_cuda_gemm(gpu, m, dx, BP_DTYPE_F32, B, K, dy, BP_DTYPE_F32, M, &ro, s);
    bp_status st2 = bp_cuda_gemm(gpu, m2, dy, BP_DTYPE_F32, B, M, dz, BP_DTYPE_F32, M, &ro, s);
    bp_status st3 = bp_cuda_synchronize(gpu, s);
    CHECK(!st && !st2 && !st3, "%s: chained bp_cuda_gemm: %s", name, bp_last_error());
    CU(cudaMemcpy(y1, dz, B * M * 4, cudaMemcpyDeviceToHost));
    if ((st = bp_gemm(ref, m, x, B, K, y0, M, &ro)) ||
        (st = bp_gemm(ref, m2, y0, B, M, z0, M, &ro)))
        die("bp_gemm (reference)", st);
    CHECK(same_bits(y1, z0, B * M), "%s: two chained layers on one stream differ from the CPU",
          name);

    /* fp16 and bf16 inputs equal the CPU on the widened floats; fp16/bf16
     * outputs equal the CPU result rounded to nearest even. */
    uint16_t *h = malloc(B * K * 2), *ho = malloc(B * M * 2);
    float *xw = malloc(B * K * sizeof *xw);
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < B * K; i++) {
            if (t == 0) {
                _Float16 v = (_Float16)x[i];
                memcpy(&h[i], &v, 2);
                xw[i] = (float)v;
            } else {
                h[i] = to_bf16(x[i]);
                xw[i] = from_bf16(h[i]);
            }
        }
        bp_dtype dt = t == 0 ? BP_DTYPE_F16 : BP_DTYPE_BF16;
        CU(cudaMemcpy(dx, h, B * K * 2, cudaMemcpyHostToDevice));
        st = bp_cuda_gemm(gpu, m, dx, dt, B, K, dy, BP_DTYPE_F32, M, &ro, s);
        st2 = bp_cuda_synchronize(gpu, s);
        CU(cudaMemcpy(y1, dy, B * M * 4, cudaMemcpyDeviceToHost));
        if ((st3 = bp_gemm(ref, m, xw, B, K, y0, M, &ro)))
            die("bp_gemm (reference)", st3);
        CHECK(!st && !st2 && same_bits(y1, y0, B * M), "%s: %s input differs from the CPU (%s)",
              name, t ? "bf16" : "fp16", bp_last_error());
        st = bp_cuda_gemm(gpu, m, dx, dt, B, K, dy, dt, M, &ro, s);
        st2 = bp_cuda_synchronize(gpu, s);
        CU(cudaMemcpy(ho, dy, B * M * 2, cudaMemcpyDeviceToHost));
        int ok = !st && !st2;
        for (size_t i = 0; ok && i < B * M; i++) {
            uint16_t want;
            if (t == 0) {
                _Float16 v = (_Float16)y0[i];
                memcpy(&want, &v, 2);
            } else
                want = to_bf16(y0[i]);
            ok = ho[i] == want;
        }
        CHECK(ok, "%s: %s output differs from the CPU result rounded", name, t ? "bf16" : "fp16");
    }

    /* Argument errors return at once; non-finite input is deferred, reported
     * once, then forgotten. */
    CHECK(bp_cuda_gemm(gpu, m, NULL, BP_DTYPE_F32, B, K, dy, BP_DTYPE_F32, M, NULL, s) ==
              BP_ERR_INVALID_ARGUMENT,
          "%s: NULL x not rejected", name);
    bp_run_options bad = BP_RUN_OPTIONS_INIT;
    bad.planes = 99;
    CHECK(bp_cuda_gemm(gpu, m, dx, BP_DTYPE_F32, B, K, dy, BP_DTYPE_F32, M, &bad, s) ==
              BP_ERR_OUT_OF_RANGE,
          "%s: planes 99 not rejected", name);
    CHECK(bp_cuda_gemm(gpu, m, dx, BP_DTYPE_F32, B, K, dx, BP_DTYPE_F32, M, NULL, s) ==
              BP_ERR_INVALID_ARGUMENT,
          "%s: overlapping x and y not rejected", name);
    CHECK(bp_cuda_gemm(gpu, m, (char *)dx + 2, BP_DTYPE_F32, B, K, dy, BP_DTYPE_F32, M, NULL, s) ==
              BP_ERR_INVALID_ARGUMENT,
          "%s: misaligned x not rejected", name);
    x[3] = NAN;
    CU(cudaMemcpy(dx, x, B * K * 4, cudaMemcpyHostToDevice));
    st = bp_cuda_gemm(gpu, m, dx, BP_DTYPE_F32, B, K, dy, BP_DTYPE_F32, M, &ro, s);
    st2 = bp_cuda_synchronize(gpu, s);
    st3 = bp_cuda_status(gpu);
    CHECK(st == BP_OK && st2 == BP_ERR_NON_FINITE && st3 == BP_OK,
          "%s: NaN input: enqueue %s, synchronize %s, then status %s", name, bp_status_string(st),
          bp_status_string(st2), bp_status_string(st3));

    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dz);
    cudaStreamDestroy(s);
    free(h);
    free(ho);
    free(xw);
    free(x);
    free(y0);
    free(y1);
    free(z0);
    free(w);
    free(w2);
    bp_matrix_destroy(m);
    bp_matrix_destroy(m2);
}

int main(int argc, char **argv) {
    int quick = 0;
    uint64_t seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bp_gpu_conformance [--quick] [--seed S]\n");
            return 2;
        }
    }
    if (getenv("BP_TEST_SEED"))
        seed = strtoull(getenv("BP_TEST_SEED"), NULL, 10);
    rng_state = seed;
    printf("bp_gpu_conformance: seed %llu%s\n", (unsigned long long)seed, quick ? " (quick)" : "");

    bp_status st;
    bp_context *gpu[2];
    const char *names[2] = {"cuda/popcount", "cuda/mma"};
    gpu[0] = make_ctx(BP_BACKEND_CUDA, BP_CPU_KERNEL_AUTO, BP_GPU_KERNEL_POPCOUNT, &st);
    if (st == BP_ERR_UNSUPPORTED) {
        printf("SKIP: the CUDA backend is not available here, so it was not tested: %s\n",
               bp_last_error());
        return 77;
    }
    if (st)
        die("bp_context_create (cuda/popcount)", st);
    gpu[1] = make_ctx(BP_BACKEND_CUDA, BP_CPU_KERNEL_AUTO, BP_GPU_KERNEL_MMA, &st);
    if (st)
        die("bp_context_create (cuda/mma)", st);
    bp_context *ref = make_ctx(BP_BACKEND_CPU, BP_CPU_KERNEL_REFERENCE, BP_GPU_KERNEL_AUTO, &st);
    if (st)
        die("bp_context_create (cpu/reference)", st);

    table(ref, gpu, names, quick);
    large(ref, gpu, names, quick);
    for (int k = 0; k < 2; k++)
        device_api(ref, gpu[k], names[k]);
    row_counts(ref, gpu, names, quick);
    for (int k = 0; k < 2; k++)
        row_counts_device_api(ref, gpu[k], names[k]);
    gpu_conformance_rnn(ref, gpu, names, quick, seed, &passed, &failed);

    bp_context_destroy(gpu[0]);
    bp_context_destroy(gpu[1]);
    bp_context_destroy(ref);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
