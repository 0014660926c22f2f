/* The README's example: quantize once, then pick the plane count per call. */
#include <bitplane.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    enum { ROWS = 256, COLS = 1024 };
    float *w = malloc(sizeof(float) * ROWS * COLS), x[COLS], y[ROWS];
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = (float)((i * 7919 % 2001) - 1000) / 1000.0f;
    for (int j = 0; j < COLS; j++)
        x[j] = (float)((j * 31 % 17) - 8);

    bp_context *ctx;
    bp_matrix *m;
    if (bp_context_create(NULL, &ctx) != BP_OK ||
        bp_matrix_quantize(ctx, w, ROWS, COLS, COLS, NULL, &m) != BP_OK) { /* k = 8 planes */
        fprintf(stderr, "bitplane: %s\n", bp_last_error());
        return 1;
    }
    for (int planes = 1; planes <= 8; planes *= 2) {
        bp_run_options run = BP_RUN_OPTIONS_INIT;
        run.planes = planes; /* the per-call accuracy/speed knob */
        if (bp_gemm(ctx, m, x, 1, COLS, y, ROWS, &run) != BP_OK) {
            fprintf(stderr, "bitplane: %s\n", bp_last_error());
            return 1;
        }
        printf("planes %d: y[0] = %9.4f, weight error %.4f\n", planes, y[0],
               bp_matrix_prefix_error(m, planes));
    }
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
    free(w);
    return 0;
}
