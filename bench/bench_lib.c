/* Status-checked wrappers over the bitplane API. */
#include "bench_lib.h"
#include "bench_common.h"

#include <stdlib.h>

int bench_context(const bench_opts *o, bp_context **out) {
    bp_context_options co = BP_CONTEXT_OPTIONS_INIT;
    co.backend = BP_BACKEND_CPU;
    co.threads = o->threads;
    co.cpu_kernel = o->kernel;
    bp_status st = bp_context_create(&co, out);
    if (st != BP_OK)
        return bench_bp_fail(st, "bp_context_create");
    int got = bp_context_threads(*out);
    if (got != o->threads) {
        bp_context_destroy(*out);
        *out = NULL;
        return bench_fail("asked for %d threads, the context has %d", o->threads, got);
    }
    return 0;
}

const char *bench_backend_name(const bp_context *ctx) {
    switch (bp_context_backend(ctx)) {
    case BP_BACKEND_CPU:
        return "cpu";
    case BP_BACKEND_CUDA:
        return "cuda";
    case BP_BACKEND_OPENCL:
        return "opencl";
    case BP_BACKEND_AUTO:
        break;
    }
    return "unknown";
}

int bench_kernel_name(const bp_context *ctx, const bp_matrix *m, int planes, int act_bits,
                      size_t batch, const char **out) {
    *out = bp_matrix_cpu_kernel_name(ctx, m, planes, act_bits, batch);
    if (!*out)
        return bench_fail("bp_matrix_cpu_kernel_name failed: %s", bp_last_error());
    return 0;
}

int bench_quantize(bp_context *ctx, const float *w, size_t m, size_t k, int bits,
                   bp_quant_method method, float clip, int group_size, int rotation,
                   bp_matrix **out) {
    bp_quant_options qo = BP_QUANT_OPTIONS_INIT;
    qo.group_size = group_size;
    qo.rotation = rotation;
    qo.bits = bits;
    qo.method = method;
    qo.clip = method == BP_QUANT_UNIFORM ? clip : 0.0f;
    bp_status st = bp_matrix_quantize(ctx, w, m, k, k, &qo, out);
    if (st != BP_OK)
        return bench_bp_fail(st, "bp_matrix_quantize");
    return 0;
}

int bench_matrix_copies(bp_context *ctx, bp_matrix *src, size_t n, bp_matrix **out) {
    out[0] = src;
    for (size_t i = 1; i < n; i++)
        out[i] = NULL;
    if (n == 1)
        return 0;
    size_t need = 0;
    bp_status st = bp_matrix_serialize(src, NULL, 0, &need);
    if (st != BP_OK)
        return bench_bp_fail(st, "bp_matrix_serialize (size query)");
    void *buf = bench_alloc(need, 1, "serialized matrix");
    if (!buf)
        return 1;
    int rc = 0;
    st = bp_matrix_serialize(src, buf, need, &need);
    if (st != BP_OK)
        rc = bench_bp_fail(st, "bp_matrix_serialize");
    for (size_t i = 1; i < n && rc == 0; i++) {
        st = bp_matrix_deserialize(ctx, buf, need, &out[i]);
        if (st != BP_OK)
            rc = bench_bp_fail(st, "bp_matrix_deserialize");
    }
    free(buf);
    if (rc)
        for (size_t i = 1; i < n; i++) {
            bp_matrix_destroy(out[i]);
            out[i] = NULL;
        }
    return rc;
}

size_t bench_plane_bytes(size_t m, size_t k, int planes) {
    return (size_t)planes * m * ((k + 511) / 512 * 512) / 8;
}
