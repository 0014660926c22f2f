/*
 * The RNN's code products on CPU contexts (cpu/rnn_codes.h): when they
 * apply, the codes of a (matrix, plane count) are made once and kept in the
 * matrix's backend-copy cache; each product quantizes its columns by the
 * library's rule (bp__quantize_activations), packs q to int8 with the group
 * sums, and runs the VNNI loop over row groups on the context's pool. The
 * integers and the combine are the library's, so y equals every CPU path's
 * bit for bit. Anything the loop does not cover goes to the backend's
 * product instead: a chunk of columns in which some q leaves int8 (unsigned
 * 8-bit columns, such as one-hot inputs), and, to report it with the
 * backend's message, a product whose y overflows.
 */
#include "bp_backend.h"
#include "bp_error.h"
#include "bp_matrix.h"
#include "cpu_kernel.h"
#include "rnn_codes.h"
#include "rnn_internal.h"

#include <stdlib.h>

/* Codes of at most this many bytes (rows x padded K): they stay in L2 next
 * to the rest of a step, where the recurrent products of small layers are
 * bound by per-call work rather than by the weight stream. Larger layers
 * stream bit planes, which are n/8 of the bytes. */
#define CODES_MAX_BYTES ((size_t)1 << 20)
/* Columns quantized and packed per pass (the work buffer's size). */
#define CODES_CHUNK 64
/* Row groups per task on the pool. */
#define CODES_TASK_GROUPS 16

/* The cache owner: one per process, keyed by the plane count. */
static const char codes_owner;

static bool codes_cpu(const bp_context *ctx) {
#if defined(BP_ARCH_X86_64)
    const bp_cpu_features *f = bp__cpu_features();
    return ctx->backend == BP_BACKEND_CPU && ctx->cpu_kernel == BP_CPU_KERNEL_AUTO && f->avx512bw &&
           f->avx512_vnni;
#else
    (void)ctx;
    return false;
#endif
}

/* Every int32 of the loop stays exact: a group's 2 acc (2 x columns of the
 * group x (2^n - 1) x 128) and the row's total (K x (2^n - 1) x 128 x the
 * largest multiplier). */
static bool codes_exact(const bp_matrix *m, int n) {
    const size_t kpad = bp__padded_cols(m->cols);
    const size_t group_cols = bp__grouped(m) ? m->group_words * 32 : kpad;
    const size_t worst =
        2 * group_cols > kpad * bp__mult_bound(m) ? 2 * group_cols : kpad * bp__mult_bound(m);
    return worst <= (size_t)INT32_MAX / (((size_t)1 << n) - 1) / 128;
}

static void codes_destroy(void *p) {
    bp_rnn_codes *k = p;
    if (!k)
        return;
    bp__aligned_free(k->u);
    bp__aligned_free(k->alpha);
    free(k);
}

static bp_status codes_create(const bp_matrix *m, void *arg, void **data) {
    const int n = *(const int *)arg;
    bp_rnn_codes *k = calloc(1, sizeof *k);
    if (!k)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate RNN codes");
    k->n = n;
    k->rows = m->rows;
    k->row_groups = m->row_groups;
    k->kpad = m->kwords * 32;
    k->quads = k->kpad / 4;
    k->group_quads = m->group_words * 8;
    k->ngroups = m->ngroups;
    k->mult = bp__grouped(m) ? m->mult : NULL;
    k->u = bp__aligned_alloc(k->row_groups * BP_ROW_GROUP * k->kpad);
    k->alpha = bp__aligned_alloc(k->row_groups * BP_ROW_GROUP * sizeof(float));
    if (!k->u || !k->alpha) {
        codes_destroy(k);
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate RNN codes");
    }
    for (size_t r = 0; r < m->rows; r++)
        k->alpha[r] = bp__alpha(m, n, r);
    /* Bit i of row r's word w (column 32 w + i) of each plane into byte
     * i % 4 of dword r of quad 8 w + i / 4. */
    for (size_t rg = 0; rg < m->row_groups; rg++)
        for (size_t w = 0; w < m->kwords; w++)
            for (size_t r = 0; r < BP_ROW_GROUP; r++) {
                uint32_t bits[BP_MAX_BITS];
                for (int p = 0; p < n; p++)
                    bits[p] = bp__slab(m, p)[(rg * m->kwords + w) * BP_ROW_GROUP + r];
                uint8_t *out = k->u + ((rg * k->quads + 8 * w) * BP_ROW_GROUP + r) * 4;
                for (size_t i = 0; i < 32; i++) {
                    unsigned code = 0;
                    for (int p = 0; p < n; p++)
                        code = 2 * code + ((bits[p] >> i) & 1u);
                    out[i / 4 * BP_ROW_GROUP * 4 + i % 4] = (uint8_t)code;
                }
            }
    *data = k;
    return BP_OK;
}

const bp_rnn_codes *bp__rnn_codes_for(const bp_context *ctx, const bp_matrix *m, int planes,
                                      int act_bits) {
    if (!codes_cpu(ctx) || act_bits > 8 || planes > 8 || m->method != BP_QUANT_UNIFORM ||
        m->rot_block || m->nruns || m->perm || !codes_exact(m, planes))
        return NULL;
    size_t bytes;
    if (bp__mul_overflows(m->row_groups * BP_ROW_GROUP, bp__padded_cols(m->cols), &bytes) ||
        bytes > CODES_MAX_BYTES)
        return NULL;
    void *data = NULL;
    /* Out of memory for the codes: the product runs without them. */
    if (bp__matrix_cache_get(m, &codes_owner, (const void *)(uintptr_t)planes, codes_create,
                             &planes, codes_destroy, &data) != BP_OK)
        return NULL;
    return data;
}

/* The work buffer's pieces for padded K kpad. */
typedef struct codes_work {
    int32_t *q32;  /* one column: kpad values and kpad / 32 word sums */
    int8_t *q8;    /* [CODES_CHUNK][kpad] */
    int32_t *qg;   /* [CODES_CHUNK][kpad / 32] */
    float *scale;  /* [CODES_CHUNK] */
    size_t *index; /* [CODES_CHUNK]: the column in the product */
} codes_work;

static size_t work_layout(size_t kpad, unsigned char *base, codes_work *w) {
    const size_t sizes[] = {
        bp__act_q_words(kpad) * sizeof(int32_t),
        CODES_CHUNK * kpad,
        CODES_CHUNK * (kpad / 32) * sizeof(int32_t),
        CODES_CHUNK * sizeof(float),
        CODES_CHUNK * sizeof(size_t),
    };
    size_t off[5], total = 0;
    for (int i = 0; i < 5; i++) {
        off[i] = total;
        total += bp__round_up(sizes[i], BP_ALIGN);
    }
    if (base) {
        w->q32 = (int32_t *)(base + off[0]);
        w->q8 = (int8_t *)(base + off[1]);
        w->qg = (int32_t *)(base + off[2]);
        w->scale = (float *)(base + off[3]);
        w->index = (size_t *)(base + off[4]);
    }
    return total;
}

size_t bp__rnn_codes_work_bytes(size_t kpad) {
    return work_layout(kpad, NULL, NULL);
}

size_t bp__rnn_codes_kpad(const bp_rnn_codes *k) {
    return k->kpad;
}

#if defined(BP_ARCH_X86_64)
typedef struct codes_job {
    const bp_rnn_codes *k;
    const bp_gemm_args *a;
    const codes_work *w;
    size_t ncols;
    int overflow;
} codes_job;

static void codes_task(void *arg, size_t task, int worker) {
    (void)worker;
    codes_job *job = arg;
    const bp_rnn_codes *k = job->k;
    const size_t rg_end = (task + 1) * CODES_TASK_GROUPS < k->row_groups
                              ? (task + 1) * CODES_TASK_GROUPS
                              : k->row_groups;
    const size_t ngw = k->kpad / 32;
    bool finite = true;
    /* 8 row groups at a time, every column block on them while their codes
     * are in L1. */
    for (size_t rg = task * CODES_TASK_GROUPS; rg < rg_end; rg += 8) {
        bp_rnn_codes_call call = {
            .k = k, .rg0 = rg, .rg1 = rg + 8 < rg_end ? rg + 8 : rg_end, .bias = job->a->bias};
        for (size_t c0 = 0; c0 < job->ncols; c0 += BP_RNN_CODES_MAX_COLS) {
            call.ncols =
                job->ncols - c0 < BP_RNN_CODES_MAX_COLS ? job->ncols - c0 : BP_RNN_CODES_MAX_COLS;
            for (size_t c = 0; c < call.ncols; c++) {
                const size_t i = c0 + c;
                call.q8[c] = job->w->q8 + i * k->kpad;
                call.qg[c] = job->w->qg + i * ngw;
                call.scale[c] = job->w->scale[i];
                call.y[c] = job->a->y + job->w->index[i] * job->a->ldy;
            }
            finite &= bp__rnn_codes_rows_avx512(&call);
        }
    }
    if (!finite)
        __atomic_store_n(&job->overflow, 1, __ATOMIC_RELAXED);
}

/* Whether some column of a runs below the codes' plane count. */
static bool capped_column(const bp_rnn_codes *k, const bp_gemm_args *a) {
    for (size_t i = 0; a->column_planes && i < a->batch; i++)
        if (a->column_planes[i] && a->column_planes[i] < k->n)
            return true;
    return false;
}

bp_status bp__rnn_codes_gemm(bp_context *ctx, const bp_rnn_codes *k, const bp_gemm_args *a,
                             void *work) {
    if (capped_column(k, a))
        return ctx->ops->gemm(ctx, a);
    const bp_matrix *m = a->m;
    codes_work w;
    work_layout(k->kpad, work, &w);
    const int32_t code_span = (INT32_C(1) << k->n) - 1;
    codes_job job = {.k = k, .a = a, .w = &w};
    for (size_t c0 = 0; c0 < a->batch; c0 += CODES_CHUNK) {
        const size_t c1 = a->batch - c0 < CODES_CHUNK ? a->batch : c0 + CODES_CHUNK;
        job.ncols = 0;
        bool wide = false;
        for (size_t col = c0; col < c1 && !wide; col++) {
            bp_act_column ac;
            bp__quantize_activations(a->x + col * a->ldx, m->cols, k->kpad, a->act_bits,
                                     a->act_scale, w.q32, &ac);
            if (ac.is_zero) { /* the bias alone, as the backend writes it */
                float *y = a->y + col * a->ldy;
                for (size_t r = 0; r < m->rows; r++)
                    y[r] = a->bias ? a->bias[r] : 0.0f;
                continue;
            }
            wide = !bp__rnn_codes_pack_avx512(w.q32, k->kpad, k->group_quads * 4, code_span,
                                              w.q8 + job.ncols * k->kpad,
                                              w.qg + job.ncols * (k->kpad / 32));
            w.scale[job.ncols] = ac.scale;
            w.index[job.ncols++] = col;
        }
        if (wide) {
            /* Unsigned 8-bit q (non-negative columns at act_bits 8) leaves
             * int8: the chunk runs through the backend, in one call. */
            bp_gemm_args part = *a;
            part.x = a->x + c0 * a->ldx;
            part.y = a->y + c0 * a->ldy;
            part.batch = c1 - c0;
            bp_status st = ctx->ops->gemm(ctx, &part);
            if (st)
                return st;
            continue;
        }
        if (job.ncols)
            bp__parallel_for(ctx, (k->row_groups + CODES_TASK_GROUPS - 1) / CODES_TASK_GROUPS,
                             codes_task, &job);
        /* An overflow of the float range: the backend's product writes the
         * same y and reports where. */
        if (job.overflow)
            return ctx->ops->gemm(ctx, a);
    }
    return BP_OK;
}
#else
bp_status bp__rnn_codes_gemm(bp_context *ctx, const bp_rnn_codes *k, const bp_gemm_args *a,
                             void *work) {
    /* Not reached: bp__rnn_codes_for gives no codes off x86-64. */
    (void)k;
    (void)work;
    return ctx->ops->gemm(ctx, a);
}
#endif
