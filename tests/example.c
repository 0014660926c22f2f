/* The README's example: quantize once, then pick the plane count per call.
 * The part between the EXAMPLE markers is the README's C example, verbatim
 * (python-bindings/tests/test_readme.py checks that they match). */
#include <bitplane.h>
#include <stdio.h>
#include <stdlib.h>

enum { ROWS = 256, COLS = 1024 };

static int example(const float *w, const float *x, float *y) {
    /* EXAMPLE BEGIN */
    bp_context *ctx;
    bp_matrix *m;
    if (bp_context_create(NULL, &ctx) != BP_OK ||                        /* CPU, all cores */
        bp_matrix_quantize(ctx, w, ROWS, COLS, COLS, NULL, &m) != BP_OK) /* once: k = 8 planes */
        return fprintf(stderr, "bitplane: %s\n", bp_last_error()), 1;
    for (int planes = 1; planes <= 8; planes *= 2) {
        bp_run_options run = BP_RUN_OPTIONS_INIT;
        run.planes = planes; /* per call: the accuracy/speed knob */
        if (bp_gemm(ctx, m, x, 1, COLS, y, ROWS, &run) != BP_OK) /* y = W x */
            return fprintf(stderr, "bitplane: %s\n", bp_last_error()), 1;
        printf("planes %d: y[0] = %9.4f, weight error %.4f\n", planes, y[0],
               bp_matrix_prefix_error(m, planes));
    }
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
    /* EXAMPLE END */
    return 0;
}

int main(void) {
    static float w[ROWS * COLS];
    float x[COLS], y[ROWS];
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = (float)((i * 7919 % 2001) - 1000) / 1000.0f;
    for (int j = 0; j < COLS; j++)
        x[j] = (float)((j * 31 % 17) - 8);
    return example(w, x, y);
}
