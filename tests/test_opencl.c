/*
 * The OpenCL backend beyond the conformance table: the cl_mem entry points
 * (asynchronous enqueue after a wait list, events, deferred non-finite
 * reports, argument errors), the program cache, device selection and its
 * environment override, the build-failure message, one matrix shared by
 * threads with their own contexts and one context shared by threads, and
 * K = 2^20 at act_bits 16 against the reference.
 *
 * Every test skips with the library's reason when no OpenCL device exists
 * (it never passes silently). Outputs are compared bit for bit with the CPU
 * REFERENCE path.
 */
#include "test_util.h"
#include "bitplane_opencl.h"

#include "tu_criterion.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

TestSuite(opencl, .fini = tu_suite_fini);

static bp_context *ocl_context(void) {
    tu_target t = {BP_BACKEND_OPENCL, BP_GPU_KERNEL_AUTO};
    return tu_target_context(&t, 1);
}

static bp_matrix *random_matrix(tu_rng *rng, size_t rows, size_t cols, int bits) {
    float *w = tu_xmalloc(rows * cols * sizeof *w);
    tu_fill_gauss(rng, w, rows * cols, 0.1f);
    bp_matrix *m = tu_quantize(NULL, w, rows, cols, cols, bits, BP_QUANT_UNIFORM, 0.0f);
    free(w);
    return m;
}

static cl_mem buffer(bp_context *ctx, size_t bytes, const void *init) {
    cl_context cc;
    cr_assert(bp_opencl_context_handles(ctx, &cc, NULL, NULL) == BP_OK, "%s", bp_last_error());
    cl_int err;
    cl_mem b = clCreateBuffer(cc, CL_MEM_READ_WRITE | (init ? CL_MEM_COPY_HOST_PTR : 0), bytes,
                              (void *)init, &err);
    cr_assert(b != NULL, "clCreateBuffer(%zu): %d", bytes, (int)err);
    return b;
}

static void read_buffer(bp_context *ctx, cl_mem b, size_t bytes, void *out) {
    cl_command_queue q;
    bp_opencl_context_handles(ctx, NULL, NULL, &q);
    cl_int err = clEnqueueReadBuffer(q, b, CL_TRUE, 0, bytes, out, 0, NULL, NULL);
    cr_assert(err == CL_SUCCESS, "clEnqueueReadBuffer: %d", (int)err);
}

/* Reference y (rows x batch, ld rows) of the CPU REFERENCE path. */
static void reference(const bp_matrix *m, const float *x, size_t batch, size_t ldx,
                      const bp_run_options *o, float *y) {
    bp_context *ref = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    bp_status st = bp_gemm(ref, m, x, batch, ldx, y, bp_matrix_rows(m), o);
    cr_assert(st == BP_OK, "reference bp_gemm: %s", bp_last_error());
    bp_context_destroy(ref);
}

static void expect_equal(const float *ref, const float *got, size_t rows, size_t batch, size_t ldg,
                         const char *what, unsigned long long seed) {
    size_t r = 0, c = 0;
    for (size_t b = 0; b < batch; b++)
        for (size_t i = 0; i < rows; i++)
            if (tu_bits(ref[b * rows + i]) != tu_bits(got[b * ldg + i])) {
                r = i;
                c = b;
                cr_assert(0, "%s: row %zu col %zu: reference %a, OpenCL %a; seed=%llu", what, r, c,
                          (double)ref[b * rows + i], (double)got[b * ldg + i], seed);
            }
}

/* Asynchronous enqueue on buffers with offsets and gaps, after a user event. */
Test(opencl, native_gemm_async) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = ocl_context();
    const size_t M = 77, K = 700, B = 5, ldx = K + 3, ldy = M + 2, xoff = 11, yoff = 5, boff = 3;
    bp_matrix *m = random_matrix(&rng, M, K, 6);
    size_t xlen = xoff + (B - 1) * ldx + K, ylen = yoff + (B - 1) * ldy + M;
    float *x = tu_xmalloc(xlen * sizeof *x), *bias = tu_xmalloc((M + boff) * sizeof *bias);
    float *y = tu_xmalloc(ylen * sizeof *y), *y_ref = tu_xmalloc(B * M * sizeof *y_ref);
    tu_fill_gauss(&rng, x, xlen, 1.0f);
    tu_fill_gauss(&rng, bias, M + boff, 0.5f);
    for (size_t j = 0; j < K; j++)
        x[xoff + 2 * ldx + j] = fabsf(x[xoff + 2 * ldx + j]); /* an unsigned column */
    tu_fill_sentinel(y, ylen);
    int cp[5] = {0, 1, 6, 3, 0};

    cl_mem dx = buffer(ctx, xlen * sizeof *x, x), dy = buffer(ctx, ylen * sizeof *y, y);
    cl_mem db = buffer(ctx, (M + boff) * sizeof *bias, bias);
    cl_context cc;
    bp_opencl_context_handles(ctx, &cc, NULL, NULL);
    cl_int err;
    cl_event gate = clCreateUserEvent(cc, &err);
    cr_assert(gate != NULL);
    bp_run_options o = tu_run(4, 8);
    o.column_planes = cp;
    cl_event done = NULL;
    bp_status st = bp_opencl_gemm(ctx, m, dx, xoff, B, ldx, dy, yoff, ldy, db, boff, &o, NULL, 1,
                                  &gate, &done);
    cr_assert(st == BP_OK, "bp_opencl_gemm: %s", bp_last_error());
    cr_assert(done != NULL);
    cp[1] = 99; /* the call copied column_planes */
    cl_int exec = 0;
    clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof exec, &exec, NULL);
    cr_assert(exec != CL_COMPLETE, "the GEMM ran before the event it waits for");
    clSetUserEventStatus(gate, CL_COMPLETE);
    cr_assert(clWaitForEvents(1, &done) == CL_SUCCESS);
    read_buffer(ctx, dy, ylen * sizeof *y, y);
    cr_assert(bp_opencl_status(ctx) == BP_OK, "%s", bp_last_error());

    cp[1] = 1;
    o.bias = bias + boff;
    reference(m, x + xoff, B, ldx, &o, y_ref);
    expect_equal(y_ref, y + yoff, M, B, ldy, "native gemm", seed);
    cr_assert(tu_find_non_sentinel(y, yoff) < 0, "wrote before y_off");
    for (size_t b = 0; b + 1 < B; b++)
        cr_assert(tu_find_non_sentinel(y + yoff + b * ldy + M, ldy - M) < 0,
                  "wrote into the ldy gap");

    clReleaseEvent(done);
    clReleaseEvent(gate);
    clReleaseMemObject(dx);
    clReleaseMemObject(dy);
    clReleaseMemObject(db);
    free(x);
    free(bias);
    free(y);
    free(y_ref);
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
}

/* NaN/Inf on the device: NaN outputs now, BP_ERR_NON_FINITE later, never lost. */
Test(opencl, deferred_non_finite) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = ocl_context();
    const size_t M = 20, K = 100, B = 3;
    bp_matrix *m = random_matrix(&rng, M, K, 4);
    float x[300], y[60], bias[20], y_ref[60];
    tu_fill_gauss(&rng, x, B * K, 1.0f);
    tu_fill_gauss(&rng, bias, M, 1.0f);
    float xbad[300];
    memcpy(xbad, x, sizeof x);
    xbad[K + 17] = NAN;
    cl_mem dx = buffer(ctx, sizeof x, xbad), dy = buffer(ctx, sizeof y, NULL);
    bp_run_options o = tu_run(0, 8);
    bp_status st = bp_opencl_gemm(ctx, m, dx, 0, B, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, NULL);
    cr_assert(st == BP_OK, "a non-finite input is reported later, not at enqueue: %s",
              bp_last_error());
    st = bp_opencl_status(ctx);
    cr_assert(st == BP_ERR_NON_FINITE, "status %s (%s)", bp_status_string(st), bp_last_error());
    cr_assert(strstr(bp_last_error(), "x") != NULL, "%s", bp_last_error());
    read_buffer(ctx, dy, sizeof y, y);
    for (size_t r = 0; r < M; r++)
        cr_assert(isnan(y[M + r]), "row %zu of the NaN column is %g", r, (double)y[M + r]);
    reference(m, x, B, K, &o, y_ref);
    expect_equal(y_ref, y, M, 1, M, "column 0 beside a NaN column", seed);
    expect_equal(y_ref + 2 * M, y + 2 * M, M, 1, M, "column 2 beside a NaN column", seed);
    cr_assert(bp_opencl_status(ctx) == BP_OK, "the report is cleared once given");

    /* Inf in the bias, surfaced by the next synchronising host call. */
    bias[3] = INFINITY;
    cl_mem db = buffer(ctx, sizeof bias, bias);
    cl_mem dxok = buffer(ctx, sizeof x, x);
    st = bp_opencl_gemm(ctx, m, dxok, 0, B, K, dy, 0, M, db, 0, &o, NULL, 0, NULL, NULL);
    cr_assert(st == BP_OK, "%s", bp_last_error());
    float yh[60];
    tu_fill_sentinel(yh, 60);
    st = bp_gemm(ctx, m, x, B, K, yh, M, &o);
    cr_assert(st == BP_ERR_NON_FINITE, "host gemm reports the deferred error: %s (%s)",
              bp_status_string(st), bp_last_error());
    cr_assert(strstr(bp_last_error(), "bias") != NULL, "%s", bp_last_error());
    cr_assert(tu_find_non_sentinel(yh, 60) < 0, "y written despite the error");
    st = bp_gemm(ctx, m, x, B, K, yh, M, &o);
    cr_assert(st == BP_OK, "%s", bp_last_error());
    expect_equal(y_ref, yh, M, B, M, "host gemm after a deferred report", seed);

    clReleaseMemObject(dx);
    clReleaseMemObject(dxok);
    clReleaseMemObject(dy);
    clReleaseMemObject(db);
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
}

#define EXPECT_FAIL(expr, status, text)                                                            \
    do {                                                                                           \
        cl_event ev_ = (cl_event)1;                                                                \
        done = &ev_;                                                                               \
        bp_status st_ = (expr);                                                                    \
        cr_assert(st_ == (status), "%s: got %s (%s)", #expr, bp_status_string(st_),                \
                  bp_last_error());                                                                \
        cr_assert(strstr(bp_last_error(), (text)) != NULL, "%s: message '%s' lacks '%s'", #expr,   \
                  bp_last_error(), (text));                                                        \
        cr_assert(ev_ == NULL, "%s: *done was not cleared", #expr);                                \
    } while (0)

Test(opencl, native_argument_errors) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = ocl_context();
    bp_context *cpu = tu_context(BP_CPU_KERNEL_AUTO, 1);
    bp_context *other = ocl_context();
    const size_t M = 10, K = 50;
    bp_matrix *m = random_matrix(&rng, M, K, 4);
    cl_mem dx = buffer(ctx, 2 * K * sizeof(float), NULL),
           dy = buffer(ctx, 2 * M * sizeof(float), NULL);
    cl_mem big = buffer(ctx, 4 * (K + M) * sizeof(float), NULL);
    cl_mem foreign = buffer(other, 2 * K * sizeof(float), NULL);
    cl_command_queue foreign_q;
    bp_opencl_context_handles(other, NULL, NULL, &foreign_q);
    bp_run_options o = tu_run(0, 8);
    cl_event *done;
    cl_event w = NULL;

    EXPECT_FAIL(bp_opencl_gemm(NULL, m, dx, 0, 1, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "ctx");
    EXPECT_FAIL(bp_opencl_gemm(cpu, m, dx, 0, 1, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "not an OpenCL context");
    EXPECT_FAIL(bp_opencl_gemm(ctx, NULL, dx, 0, 1, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "m must not be NULL");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, NULL, 0, 1, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "x must not be NULL");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 0, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "batch must be > 0");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K - 1, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "ldx");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 3, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_OUT_OF_RANGE, "x needs");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, K + 1, 1, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_OUT_OF_RANGE, "x needs");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K, dy, M + 1, M, NULL, 0, &o, NULL, 0, NULL, done),
                BP_ERR_OUT_OF_RANGE, "y needs");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K, dy, 0, M, dy, 2 * M, &o, NULL, 0, NULL, done),
                BP_ERR_OUT_OF_RANGE, "bias needs");
    EXPECT_FAIL(
        bp_opencl_gemm(ctx, m, big, 0, 1, K, big, K - 1, M, NULL, 0, &o, NULL, 0, NULL, done),
        BP_ERR_INVALID_ARGUMENT, "x and y must not overlap");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K, big, 0, M, big, M - 1, &o, NULL, 0, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "bias and y must not overlap");
    EXPECT_FAIL(
        bp_opencl_gemm(ctx, m, foreign, 0, 1, K, dy, 0, M, NULL, 0, &o, NULL, 0, NULL, done),
        BP_ERR_INVALID_ARGUMENT, "another cl_context");
    EXPECT_FAIL(
        bp_opencl_gemm(ctx, m, dx, 0, 1, K, dy, 0, M, NULL, 0, &o, foreign_q, 0, NULL, done),
        BP_ERR_INVALID_ARGUMENT, "queue must belong");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K, dy, 0, M, NULL, 0, &o, NULL, 1, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "num_wait");
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K, dy, 0, M, NULL, 0, &o, NULL, 0, &w, done),
                BP_ERR_INVALID_ARGUMENT, "num_wait");
    float hb[10] = {0};
    bp_run_options ob = o;
    ob.bias = hb;
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K, dy, 0, M, NULL, 0, &ob, NULL, 0, NULL, done),
                BP_ERR_INVALID_ARGUMENT, "options->bias must be NULL");
    bp_run_options op = tu_run(5, 8);
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K, dy, 0, M, NULL, 0, &op, NULL, 0, NULL, done),
                BP_ERR_OUT_OF_RANGE, "planes");
    op = tu_run(0, 17);
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 1, K, dy, 0, M, NULL, 0, &op, NULL, 0, NULL, done),
                BP_ERR_OUT_OF_RANGE, "act_bits");
    int cp[2] = {1, 7};
    op = tu_run(0, 8);
    op.column_planes = cp;
    EXPECT_FAIL(bp_opencl_gemm(ctx, m, dx, 0, 2, K, dy, 0, M, NULL, 0, &op, NULL, 0, NULL, done),
                BP_ERR_OUT_OF_RANGE, "column_planes[1]");
    /* Nothing was enqueued by any of them. */
    cr_assert(bp_opencl_status(ctx) == BP_OK, "%s", bp_last_error());
    bp_opencl_stats stats = BP_OPENCL_STATS_INIT;
    cr_assert(bp_opencl_context_stats(ctx, &stats) == BP_OK);
    cr_assert(stats.matrix_uploads == 0 && stats.programs_built == 0,
              "a rejected call uploaded or built (%lu, %lu)", stats.matrix_uploads,
              stats.programs_built);
    cr_assert(bp_opencl_status(cpu) == BP_ERR_INVALID_ARGUMENT);
    cr_assert(bp_opencl_device_name(cpu) == NULL);

    clReleaseMemObject(dx);
    clReleaseMemObject(dy);
    clReleaseMemObject(big);
    clReleaseMemObject(foreign);
    bp_matrix_destroy(m);
    bp_context_destroy(other);
    bp_context_destroy(cpu);
    bp_context_destroy(ctx);
}

/* Programs are built once per context and option set; matrices uploaded once. */
Test(opencl, program_and_matrix_caches) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = ocl_context();
    const size_t M = 30, K = 200;
    bp_matrix *m1 = random_matrix(&rng, M, K, 4), *m2 = random_matrix(&rng, M, K, 3);
    float x[2 * 200], y[2 * 30];
    tu_fill_gauss(&rng, x, 2 * K, 1.0f);
    bp_opencl_stats s = BP_OPENCL_STATS_INIT;
    bp_opencl_context_stats(ctx, &s);
    cr_assert(s.programs_built == 0 && s.matrix_uploads == 0, "work before the first call");
    for (int ab = 1; ab <= 16; ab += 5)
        for (size_t b = 1; b <= 2; b++) {
            bp_run_options o = tu_run(0, ab);
            cr_assert(bp_gemm(ctx, m1, x, b, K, y, M, &o) == BP_OK, "%s", bp_last_error());
        }
    bp_opencl_context_stats(ctx, &s);
    cr_assert(s.programs_built == 1, "built %lu programs for one device and option set",
              s.programs_built);
    cr_assert(s.matrix_uploads == 1, "uploaded one matrix %lu times", s.matrix_uploads);
    cr_assert(bp_opencl_matrix_prepare(ctx, m2) == BP_OK, "%s", bp_last_error());
    bp_run_options o = tu_run(0, 8);
    cr_assert(bp_gemm(ctx, m2, x, 1, K, y, M, &o) == BP_OK);
    bp_opencl_context_stats(ctx, &s);
    cr_assert(s.matrix_uploads == 2 && s.programs_built == 1, "uploads %lu builds %lu",
              s.matrix_uploads, s.programs_built);
    /* Another option set is another program. */
    setenv("BP_OPENCL_BUILD_OPTIONS", "-DBP_UNUSED_MACRO=1", 1);
    cr_assert(bp_gemm(ctx, m2, x, 1, K, y, M, &o) == BP_OK, "%s", bp_last_error());
    bp_opencl_context_stats(ctx, &s);
    cr_assert(s.programs_built == 2, "built %lu programs for two option sets", s.programs_built);
    unsetenv("BP_OPENCL_BUILD_OPTIONS");
    bp_matrix_destroy(m1);
    bp_matrix_destroy(m2);
    bp_context_destroy(ctx);
}

Test(opencl, build_failure_carries_the_log) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = ocl_context();
    bp_matrix *m = random_matrix(&rng, 8, 64, 2);
    float x[64], y[8];
    tu_fill_gauss(&rng, x, 64, 1.0f);
    tu_fill_sentinel(y, 8);
    /* The quantize kernel sizes its local arrays by BP_QWG. */
    setenv("BP_OPENCL_BUILD_OPTIONS", "-DBP_QWG=bp_no_such_identifier", 1);
    bp_run_options o = tu_run(0, 8);
    bp_status st = bp_gemm(ctx, m, x, 1, 64, y, 8, &o);
    cr_assert(st == BP_ERR_BACKEND, "got %s (%s)", bp_status_string(st), bp_last_error());
    cr_assert(strstr(bp_last_error(), "build log") &&
                  strstr(bp_last_error(), "bp_no_such_identifier"),
              "the message lacks the compiler log: %s", bp_last_error());
    cr_assert(tu_find_non_sentinel(y, 8) < 0, "y written after a failed build");
    unsetenv("BP_OPENCL_BUILD_OPTIONS");
    cr_assert(bp_gemm(ctx, m, x, 1, 64, y, 8, &o) == BP_OK, "%s", bp_last_error());
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
}

static bp_status create(int platform, int device, bp_gpu_kernel k, bp_context **out) {
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = BP_BACKEND_OPENCL;
    o.platform = platform;
    o.device = device;
    o.gpu_kernel = k;
    o.threads = 1;
    *out = NULL;
    return bp_context_create(&o, out);
}

Test(opencl, device_selection) {
    bp_context *ctx = ocl_context(); /* skips without a device */
    char name[256];
    snprintf(name, sizeof name, "%s", bp_opencl_device_name(ctx));
    bp_context_destroy(ctx);
    bp_context *c = NULL;
    unsetenv("BP_OPENCL_DEVICE");
    unsetenv("BP_GPU_KERNEL");

    bp_status st = create(99, 0, BP_GPU_KERNEL_AUTO, &c);
    cr_assert(st == BP_ERR_UNSUPPORTED && strstr(bp_last_error(), "does not exist") &&
                  strstr(bp_last_error(), name),
              "platform 99: %s (%s)", bp_status_string(st), bp_last_error());
    st = create(0, 999, BP_GPU_KERNEL_AUTO, &c);
    cr_assert(st == BP_ERR_UNSUPPORTED, "device 999: %s", bp_last_error());
    st = create(0, 0, BP_GPU_KERNEL_MMA, &c);
    cr_assert(st == BP_ERR_UNSUPPORTED && strstr(bp_last_error(), "MMA"), "%s", bp_last_error());
    st = create(0, 0, BP_GPU_KERNEL_POPCOUNT, &c);
    cr_assert(st == BP_OK, "%s", bp_last_error());
    bp_context_destroy(c);

    setenv("BP_GPU_KERNEL", "mma", 1);
    st = create(0, 0, BP_GPU_KERNEL_AUTO, &c);
    cr_assert(st == BP_ERR_UNSUPPORTED && strstr(bp_last_error(), "BP_GPU_KERNEL"), "%s",
              bp_last_error());
    setenv("BP_GPU_KERNEL", "tensor", 1);
    st = create(0, 0, BP_GPU_KERNEL_AUTO, &c);
    cr_assert(st == BP_ERR_INVALID_ARGUMENT, "%s", bp_last_error());
    unsetenv("BP_GPU_KERNEL");

    /* The environment overrides the options: by indices, then by name. */
    setenv("BP_OPENCL_DEVICE", "0:0", 1);
    st = create(99, 0, BP_GPU_KERNEL_AUTO, &c);
    cr_assert(st == BP_OK, "BP_OPENCL_DEVICE=0:0 over platform 99: %s", bp_last_error());
    bp_context_destroy(c);
    char part[8] = {0};
    size_t len = strlen(name) < 5 ? strlen(name) : 5;
    for (size_t i = 0; i < len; i++) /* other case: matching ignores it */
        part[i] = (char)((name[i] >= 'a' && name[i] <= 'z') ? name[i] - 32 : name[i] + 0);
    setenv("BP_OPENCL_DEVICE", part, 1);
    st = create(0, 0, BP_GPU_KERNEL_AUTO, &c);
    cr_assert(st == BP_OK, "BP_OPENCL_DEVICE=%s: %s", part, bp_last_error());
    cr_assert(strcmp(bp_opencl_device_name(c), name) == 0);
    bp_context_destroy(c);
    setenv("BP_OPENCL_DEVICE", "no-such-device-anywhere", 1);
    st = create(0, 0, BP_GPU_KERNEL_AUTO, &c);
    cr_assert(st == BP_ERR_UNSUPPORTED && strstr(bp_last_error(), "names no OpenCL device") &&
                  strstr(bp_last_error(), name),
              "%s", bp_last_error());
    setenv("BP_OPENCL_DEVICE", "7:3", 1);
    st = create(0, 0, BP_GPU_KERNEL_AUTO, &c);
    cr_assert(st == BP_ERR_UNSUPPORTED && strstr(bp_last_error(), "BP_OPENCL_DEVICE"), "%s",
              bp_last_error());
    unsetenv("BP_OPENCL_DEVICE");
}

/* One matrix shared by threads with their own contexts, plus one context
 * shared by two threads; every result equals the reference bit for bit. */
typedef struct worker {
    bp_context *ctx;
    const bp_matrix *m;
    const float *x;
    const float *y_ref[3];
    size_t M, K, B;
    int failures;
} worker;

static void *worker_run(void *arg) {
    worker *w = arg;
    float *y = malloc(w->M * w->B * sizeof *y);
    for (int it = 0; it < 6 && y; it++) {
        int planes = 1 + it % 3;
        bp_run_options o = tu_run(planes, 8);
        if (bp_gemm(w->ctx, w->m, w->x, w->B, w->K, y, w->M, &o) != BP_OK ||
            memcmp(y, w->y_ref[planes - 1], w->M * w->B * sizeof *y) != 0)
            w->failures++;
    }
    free(y);
    return NULL;
}

Test(opencl, threads_share_matrix_and_context) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    const size_t M = 300, K = 1000, B = 3;
    bp_context *probe = ocl_context();
    bp_matrix *m = random_matrix(&rng, M, K, 3);
    float *x = tu_xmalloc(B * K * sizeof *x);
    tu_fill_gauss(&rng, x, B * K, 1.0f);
    float *y_ref[3];
    for (int p = 0; p < 3; p++) {
        y_ref[p] = tu_xmalloc(M * B * sizeof *y_ref[p]);
        bp_run_options o = tu_run(p + 1, 8);
        reference(m, x, B, K, &o, y_ref[p]);
    }
    enum { N = 4 };
    worker w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        /* Threads 0-1 share probe; 2-3 have their own contexts. */
        w[i] =
            (worker){.ctx = i < 2 ? probe : ocl_context(), .m = m, .x = x, .M = M, .K = K, .B = B};
        memcpy(w[i].y_ref, y_ref, sizeof y_ref);
        cr_assert(pthread_create(&t[i], NULL, worker_run, &w[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        cr_assert(w[i].failures == 0, "thread %d: %d calls failed or differed; seed=%llu", i,
                  w[i].failures, seed);
    }
    for (int i = 2; i < N; i++)
        bp_context_destroy(w[i].ctx);
    bp_context_destroy(probe);
    bp_matrix_destroy(m); /* frees the device copies of every context */
    for (int p = 0; p < 3; p++)
        free(y_ref[p]);
    free(x);
}

/* K = 2^20 at act_bits 16: |D| reaches K * 2^15 * ..., far past int32. */
Test(opencl, large_k_act_bits_16, .timeout = 300) {
    unsigned long long seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = ocl_context();
    const size_t M = 6, K = (size_t)1 << 20, B = 3;
    float *w = tu_xmalloc(M * K * sizeof *w);
    for (size_t r = 0; r < M; r++)
        for (size_t j = 0; j < K; j++)
            w[r * K + j] = r == 0 ? 0.5f : r == 1 ? -0.5f : (float)tu_gauss(&rng);
    bp_matrix *m = tu_quantize(NULL, w, M, K, K, 4, BP_QUANT_UNIFORM, 1.0f);
    free(w);
    float *x = tu_xmalloc(B * K * sizeof *x);
    tu_fill_gauss(&rng, x + 2 * K, K, 1.0f);
    for (size_t j = 0; j < K; j++) {
        x[j] = 3.0f;                     /* unsigned, every q = 65535 */
        x[K + j] = j % 3 ? -3.0f : 1.0f; /* signed, mostly -32767 */
    }
    float y[18], y_ref[18], e[6];
    for (int planes = 1; planes <= 4; planes += 3) {
        bp_run_options o = tu_run(planes, 16);
        cr_assert(bp_gemm(ctx, m, x, B, K, y, M, &o) == BP_OK, "%s", bp_last_error());
        reference(m, x, B, K, &o, y_ref);
        expect_equal(y_ref, y, M, B, M, "K=2^20 act_bits 16", seed);
        for (size_t b = 0; b < B; b++) {
            tu_exact_column(m, x + b * K, planes, 16, 0.0f, NULL, e);
            expect_equal(e, y + b * M, M, 1, M, "K=2^20 vs the documented rule", seed);
        }
    }
    free(x);
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
}
