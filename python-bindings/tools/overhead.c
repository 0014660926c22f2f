/* Per-call time of bp_gemm from C at a small shape, for comparison with the
 * same call through the Python binding (overhead.py runs both).
 * Usage: overhead ROWS COLS CALLS_PER_SAMPLE SAMPLES CPU_KERNEL -> one ns/call per
 * line; CPU_KERNEL is a kernel name as BP_CPU takes it (auto, reference, avx512, ...). */
#include <bitplane.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc != 6)
        return fprintf(stderr, "usage: overhead ROWS COLS CALLS SAMPLES CPU_KERNEL\n"), 2;
    size_t rows = strtoul(argv[1], NULL, 10), cols = strtoul(argv[2], NULL, 10);
    int calls = atoi(argv[3]), samples = atoi(argv[4]);
    float *w = malloc(rows * cols * sizeof *w), *x = malloc(cols * sizeof *x),
          *y = malloc(rows * sizeof *y);
    srand(1);
    for (size_t i = 0; i < rows * cols; i++)
        w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (size_t i = 0; i < cols; i++)
        x[i] = (float)rand() / RAND_MAX - 0.5f;
    bp_context_options co = BP_CONTEXT_OPTIONS_INIT;
    co.threads = 1;
    bp_context *ctx;
    bp_matrix *m;
    if (bp_cpu_kernel_from_name(argv[5], &co.cpu_kernel) || bp_context_create(&co, &ctx) ||
        bp_matrix_quantize(ctx, w, rows, cols, cols, NULL, &m))
        return fprintf(stderr, "%s\n", bp_last_error()), 1;
    bp_run_options run = BP_RUN_OPTIONS_INIT;
    run.planes = 4;
    for (int i = 0; i < calls; i++) /* warm-up */
        bp_gemm(ctx, m, x, 1, cols, y, rows, &run);
    for (int s = 0; s < samples; s++) {
        double t0 = now_ns();
        for (int i = 0; i < calls; i++)
            if (bp_gemm(ctx, m, x, 1, cols, y, rows, &run))
                return fprintf(stderr, "%s\n", bp_last_error()), 1;
        printf("%.1f\n", (now_ns() - t0) / calls);
    }
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
    free(w);
    free(x);
    free(y);
    return 0;
}
