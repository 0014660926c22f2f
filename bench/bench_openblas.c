/*
 * The fp32 baseline: OpenBLAS sgemv (batch 1) or sgemm (batch > 1) on the
 * same shape and thread count as the bitplane call it is compared with.
 */
#include "bench_common.h"
#include "bench_probes.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* Declared again because some cblas.h builds (netlib's, or an OpenBLAS
 * configured without the extension header) omit it; an identical
 * redeclaration is harmless where it is present. */
void openblas_set_num_threads(int num_threads);

typedef struct blas_job {
    const float **w; /* copies of the weights */
    size_t copies;
    const float *x;
    float *y;
    size_t m, k, batch;
} blas_job;

static int blas_call(void *arg, size_t call) {
    blas_job *j = arg;
    const float *w = j->w[call % j->copies];
    if (j->batch == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)j->m, (int)j->k, 1.0f, w, (int)j->k, j->x, 1,
                    0.0f, j->y, 1);
    } else {
        /* Column-major view: W^T is k x m with leading dimension k, X is
         * k x batch (ld k) and Y is m x batch (ld m), matching bp_gemm. */
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)j->m, (int)j->batch, (int)j->k,
                    1.0f, w, (int)j->k, j->x, (int)j->k, 0.0f, j->y, (int)j->m);
    }
    return 0;
}

int bench_openblas_gemm(const float *w, const float *x, size_t m, size_t k, size_t batch,
                        int threads, int reps, double *median_s) {
    /* The CBLAS interface takes int dimensions. */
    if (m > 0x7fffffff || k > 0x7fffffff || batch > 0x7fffffff)
        return bench_fail("OpenBLAS: dimensions exceed int range (m %zu, k %zu, batch %zu)", m, k,
                          batch);
    openblas_set_num_threads(threads);

    /*
     * Small matrices would stay in cache from one repetition to the next and
     * report cache bandwidth, not the memory-bound figure a real model with
     * many layers sees. When the weights are under BENCH_STREAM_MIN_BYTES we
     * therefore rotate among enough separate copies that consecutive calls
     * together touch at least that many bytes (see BENCH_MAX_COPIES); each call still reads exactly
     * one m x k matrix.
     */
    size_t bytes = 4 * m * k;
    size_t copies = bench_rotation(bytes);
    blas_job j = {NULL, copies, x, NULL, m, k, batch};
    int rc = 1;
    j.w = (const float **)bench_alloc(copies, sizeof *j.w, "OpenBLAS copy table");
    j.y = bench_alloc(m * batch, sizeof(float), "OpenBLAS output");
    if (!j.w || !j.y)
        goto done;
    j.w[0] = w;
    for (size_t c = 1; c < copies; c++)
        j.w[c] = NULL;
    for (size_t c = 1; c < copies; c++) {
        float *copy = bench_alloc(m * k, sizeof(float), "OpenBLAS weight copy");
        if (!copy)
            goto done;
        memcpy(copy, w, bytes);
        j.w[c] = copy;
    }
    /* Warm up over the whole rotation: first-call thread start-up and page
     * faults stay out of the timed calls. */
    rc = bench_time(blas_call, &j, (int)copies + 2, reps, median_s);
done:
    if (j.w)
        for (size_t c = 1; c < copies; c++)
            free((void *)j.w[c]);
    free((void *)j.w);
    free(j.y);
    return rc;
}
