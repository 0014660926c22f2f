/*
 * Stand-in accelerator plugins for tests/test_plugin.c, one library per
 * FAKE_MODE, each built as libbitplane_cuda.so.0 in its own directory:
 *   0  no entry symbol: not a bitplane backend
 *   1  an entry that rejects the host (as a plugin from another release does)
 *   2  a working backend whose "device copy" of a matrix is a host copy of
 *      its planes made through the core's matrix cache; gemm writes, for
 *      every row, the number of set bits in that row's planes 0..planes-1,
 *      read from the copy, so the test can check what was cached
 */
#include "bp_abi.h"

#include <stdlib.h>
#include <string.h>

#if FAKE_MODE == 0
BP_API int bp_plugin_something_else(void);
int bp_plugin_something_else(void) {
    return 0;
}
#else

static const bp_plugin_host *host;
static int copies_made, copies_freed; /* read by the test through dlsym */

BP_API int bp_fake_copies_made(void);
BP_API int bp_fake_copies_freed(void);
int bp_fake_copies_made(void) {
    return __atomic_load_n(&copies_made, __ATOMIC_SEQ_CST);
}
int bp_fake_copies_freed(void) {
    return __atomic_load_n(&copies_freed, __ATOMIC_SEQ_CST);
}

static bp_status fake_init(bp_context *ctx, const bp_context_options *o) {
    if (o->device != 0)
        return host->fail(BP_ERR_UNSUPPORTED, "fake backend: no device %d", o->device);
    ctx->backend_data = malloc(1);
    return ctx->backend_data ? BP_OK : host->fail(BP_ERR_OUT_OF_MEMORY, "fake backend");
}

static void fake_fini(bp_context *ctx) {
    free(ctx->backend_data);
}

static bp_status make_copy(const bp_matrix *m, void *arg, void **data) {
    (void)arg;
    if (bp__has_row_planes(m)) /* compact slabs: this stand-in copies full ones */
        return host->fail(BP_ERR_UNSUPPORTED, "fake backend: per-row plane counts");
    size_t bytes = (size_t)m->bits * m->plane_words * sizeof(uint32_t);
    void *copy = malloc(bytes);
    if (!copy)
        return host->fail(BP_ERR_OUT_OF_MEMORY, "fake backend: copy");
    memcpy(copy, m->planes, bytes);
    __atomic_add_fetch(&copies_made, 1, __ATOMIC_SEQ_CST);
    *data = copy;
    return BP_OK;
}

static void free_copy(void *data) {
    free(data);
    __atomic_add_fetch(&copies_freed, 1, __ATOMIC_SEQ_CST);
}

static const bp_backend_ops fake_ops;

static bp_status fake_gemm(bp_context *ctx, const bp_gemm_args *a) {
    (void)ctx;
    void *data;
    bp_status st = host->matrix_cache_get(a->m, &fake_ops, NULL, make_copy, NULL, free_copy, &data);
    if (st)
        return st;
    const uint32_t *planes = data;
    const bp_matrix *m = a->m;
    for (size_t r = 0; r < m->rows; r++) {
        unsigned count = 0;
        for (int p = 0; p < a->planes; p++)
            for (size_t w = 0; w < m->kwords; w++)
                count += (unsigned)__builtin_popcount(
                    planes[(size_t)p * m->plane_words + bp__word_index(m, r, w)]);
        for (size_t b = 0; b < a->batch; b++)
            a->y[b * a->ldy + r] = (float)count;
    }
    return BP_OK;
}

static const bp_backend_ops fake_ops = {"fake", fake_init, fake_fini, fake_gemm};

BP_API const bp_backend_ops *bp_plugin_cuda_entry(const bp_plugin_host *h);
const bp_backend_ops *bp_plugin_cuda_entry(const bp_plugin_host *h) {
#if FAKE_MODE == 1
    bp_plugin_host other = *h;
    other.abi = BP_PLUGIN_ABI + 1;
    bp__plugin_host_matches(&other, "fake plugin");
    return NULL;
#else
    if (!bp__plugin_host_matches(h, "fake plugin"))
        return NULL;
    host = h;
    return &fake_ops;
#endif
}
#endif
