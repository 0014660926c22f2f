/*
 * Calibration (docs/numerics.md, "Calibration"): the inverse Hessian factor
 * of GPTQ-style error feedback. With sample activations X (count vectors of
 * K, rotated like the inputs when the matrix has a rotation),
 *   H = X X^T / count + lambda I,  lambda = 0.01 mean(diag),
 * and U is the upper Cholesky factor of H^-1 (H^-1 = U^T U). Dense double
 * arithmetic in O(K^3): plain loops, ordered for unit-stride access. The core
 * library depends on libc and libm only, and a K x K factorization once per
 * quantization does not justify a LAPACK dependency.
 */
#include "bp_error.h"
#include "bp_quant.h"
#include "bp_rotation.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* In place: lower Cholesky factor of the symmetric positive definite a (n x n,
 * row-major, lower triangle read). false when a pivot is not positive. */
static bool cholesky_lower(double *a, size_t n) {
    for (size_t j = 0; j < n; j++) {
        double *aj = a + j * n;
        double d = aj[j];
        for (size_t k = 0; k < j; k++)
            d -= aj[k] * aj[k];
        if (!(d > 0))
            return false;
        d = sqrt(d);
        aj[j] = d;
        for (size_t i = j + 1; i < n; i++) {
            double *ai = a + i * n;
            double s = ai[j];
            for (size_t k = 0; k < j; k++)
                s -= ai[k] * aj[k];
            ai[j] = s / d;
        }
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            a[i * n + j] = 0;
    return true;
}

/* In place: inverse of the lower triangular l (n x n). */
static void invert_lower(double *l, size_t n) {
    for (size_t j = 0; j < n; j++) {
        l[j * n + j] = 1.0 / l[j * n + j];
        for (size_t i = j + 1; i < n; i++) {
            double s = 0;
            for (size_t k = j; k < i; k++)
                s += l[i * n + k] * l[k * n + j];
            l[i * n + j] = -s / l[i * n + i];
        }
    }
}

bp_status bp__calibration_factor(const bp_matrix *m, const float *x, size_t count, size_t ld,
                                 double **out) {
    *out = NULL;
    const size_t n = m->cols;
    size_t bytes;
    if (bp__mul_overflows(n, n, &bytes) || bp__mul_overflows(bytes, sizeof(double), &bytes))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "calibration with %zu columns overflows size_t", n);
    double *h = calloc(n * n, sizeof *h), *v = malloc(n * sizeof *v);
    if (!h || !v) {
        free(h);
        free(v);
        return bp__fail(BP_ERR_OUT_OF_MEMORY,
                        "calibration needs %zu bytes for its K x K matrices (K = %zu)", 2 * bytes,
                        n);
    }
    for (size_t c = 0; c < count; c++) {
        if (m->rot_block) {
            bp__rotate_weights(m, x + c * ld, v);
        } else {
            for (size_t j = 0; j < n; j++)
                v[j] = x[c * ld + j];
        }
        for (size_t i = 0; i < n; i++) {
            const double vi = v[i];
            double *hi = h + i * n;
            for (size_t j = 0; j <= i; j++)
                hi[j] += vi * v[j];
        }
    }
    double mean_diag = 0;
    for (size_t i = 0; i < n; i++)
        mean_diag += h[i * n + i] / (double)count;
    mean_diag /= (double)n;
    /* Columns the samples never touch get unit curvature; every column a
     * 1% ridge, as GPTQ does, so H is safely positive definite. */
    const double ridge = 0.01 * (mean_diag > 0 ? mean_diag : 1.0);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j <= i; j++)
            h[i * n + j] /= (double)count;
        if (h[i * n + i] == 0)
            h[i * n + i] = 1;
        h[i * n + i] += ridge;
    }
    bool ok = cholesky_lower(h, n);
    if (ok) {
        /* H^-1 = L^-T L^-1, then its upper factor U = chol_lower(H^-1)^T. */
        invert_lower(h, n);
        double *hinv = malloc(bytes);
        if (!hinv) {
            free(h);
            free(v);
            return bp__fail(BP_ERR_OUT_OF_MEMORY, "calibration needs %zu more bytes", bytes);
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j <= i; j++) {
                double s = 0;
                for (size_t k = i; k < n; k++)
                    s += h[k * n + i] * h[k * n + j];
                hinv[i * n + j] = s;
            }
        ok = cholesky_lower(hinv, n);
        /* Store U = L'^T row-major: U[i][j] = L'[j][i], j >= i. */
        for (size_t i = 0; ok && i < n; i++)
            for (size_t j = 0; j < n; j++)
                h[i * n + j] = j >= i ? hinv[j * n + i] : 0.0;
        free(hinv);
    }
    free(v);
    if (!ok) {
        free(h);
        return bp__fail(BP_ERR_INTERNAL, "calibration: the damped Hessian is not positive "
                                         "definite (non-finite or huge samples?)");
    }
    *out = h;
    return BP_OK;
}
