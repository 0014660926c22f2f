/*
 * bp_rnn_forward and bp_rnn_step: per layer, the input projections of all
 * steps as one batched product, then per step the recurrent product and the
 * fused gate/state update. Products go through the context's backend
 * (ctx->ops->gemm, the entry bp_gemm uses after validation), so the RNN runs
 * on every backend, except that on CPU contexts small layers use the code
 * products (cpu/rnn_codes.c: same integers and combine, same bits); the
 * elementwise part runs here, on the host, split over hidden units on the
 * context's pool when it is large enough to pay.
 * All scratch is one allocation per call, not per step.
 */
#include "bp_backend.h"
#include "bp_error.h"
#include "bp_finite.h"
#include "bp_mem.h"
#include "bp_options.h"
#include "rnn_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Elementwise work below this many (batch x hidden) units stays on the
 * calling thread: a pool round trip costs more than it saves. */
#define PARALLEL_MIN_UNITS 16384

static const char *gate_name(const bp_rnn *rnn, int g) {
    static const char *lstm[] = {"i", "f", "g", "o"}, *gru[] = {"r", "z", "n"};
    return rnn->cell == BP_RNN_LSTM ? lstm[g] : gru[g];
}

/* Resolved precision of one layer. */
typedef struct layer_precision {
    int planes_ih[BP_RNN_MAX_GATES], planes_hh[BP_RNN_MAX_GATES];
    int act_bits;
} layer_precision;

static bp_status check_planes(const bp_rnn *rnn, int v, const char *what) {
    if (v < 0 || v > rnn->bits)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "%s must be 0 (all) or 1..%d, got %d", what, rnn->bits,
                        v);
    return BP_OK;
}

static bp_status resolve_operator(const bp_rnn *rnn, size_t l, const char *op, int dflt,
                                  const int *entry, int *out) {
    char what[96];
    for (int g = 0; g < BP_RNN_MAX_GATES; g++) {
        int v = entry ? entry[g] : 0;
        snprintf(what, sizeof what, "layers[%zu].%s[%d]", l, op, g);
        if (g >= rnn->gates) {
            if (v != 0)
                return bp__fail(BP_ERR_OUT_OF_RANGE, "%s must be 0: a GRU has 3 gates, got %d",
                                what, v);
            continue;
        }
        bp_status st = check_planes(rnn, v, what);
        if (st)
            return st;
        out[g] = v ? v : dflt ? dflt : rnn->bits;
    }
    if (!rnn->split)
        for (int g = 1; g < rnn->gates; g++)
            if (out[g] != out[0])
                return bp__fail(BP_ERR_UNSUPPORTED,
                                "layer %zu: %s gives gate %s %d planes and gate %s %d, but the "
                                "RNN has fused gates; create it with split_gates = 1 for "
                                "per-gate plane counts",
                                l, op, gate_name(rnn, 0), out[0], gate_name(rnn, g), out[g]);
    return BP_OK;
}

static bp_status resolve_precision(const bp_rnn *rnn, const bp_rnn_run_options *o,
                                   layer_precision *prec) {
    bp_status st;
    if ((st = check_planes(rnn, o->planes_ih, "planes_ih")) ||
        (st = check_planes(rnn, o->planes_hh, "planes_hh")))
        return st;
    if (o->act_bits < 0 || o->act_bits > BP_MAX_ACT_BITS)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "act_bits must be 0 (default 8) or 1..%d, got %d",
                        BP_MAX_ACT_BITS, o->act_bits);
    if (o->mode != BP_RNN_FLOAT && o->mode != BP_RNN_INTEGER)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "mode must be BP_RNN_FLOAT (0) or BP_RNN_INTEGER (1), got %d",
                        (int)o->mode);
    for (size_t l = 0; l < rnn->layers; l++) {
        const bp_rnn_precision *e = o->layers ? &o->layers[l] : NULL;
        layer_precision *p = &prec[l];
        if ((st = resolve_operator(rnn, l, "planes_ih", o->planes_ih, e ? e->planes_ih : NULL,
                                   p->planes_ih)) ||
            (st = resolve_operator(rnn, l, "planes_hh", o->planes_hh, e ? e->planes_hh : NULL,
                                   p->planes_hh)))
            return st;
        int a = e ? e->act_bits : 0;
        if (a < 0 || a > BP_MAX_ACT_BITS)
            return bp__fail(BP_ERR_OUT_OF_RANGE,
                            "layers[%zu].act_bits must be 0 (run default) or 1..%d, got %d", l,
                            BP_MAX_ACT_BITS, a);
        a = a ? a : o->act_bits ? o->act_bits : 8;
        if (o->mode == BP_RNN_INTEGER && a < 2)
            return bp__fail(BP_ERR_OUT_OF_RANGE,
                            "layer %zu: integer mode needs act_bits 2..16 (a fixed-point hidden "
                            "state), got %d",
                            l, a);
        if (o->mode == BP_RNN_INTEGER && (bp_matrix_rotation(rnn->layer[l].hh[0]) != 0 ||
                                          (l > 0 && bp_matrix_rotation(rnn->layer[l].ih[0]) != 0)))
            return bp__fail(BP_ERR_UNSUPPORTED,
                            "layer %zu: integer mode feeds the hidden state with a fixed scale, "
                            "which a rotation of K would saturate; create the RNN with "
                            "rotation = BP_ROTATION_NONE (the default for recurrent layers)",
                            l);
        p->act_bits = a;
    }
    return BP_OK;
}

/* ---- the per-call state ------------------------------------------------------ */

typedef struct rnn_call {
    bp_context *ctx;
    const bp_rnn *rnn;
    bp_rnn_mode mode;
    const bp_rnn_float_cell *fcell; /* float-mode update for the context's CPU path */
    const bp_rnn_int_cell *icell;   /* integer-mode update, likewise */
    size_t steps, batch, H, GH;
    layer_precision prec[BP_RNN_MAX_LAYERS];
    void *mem;
    float *gi;     /* steps x batch x GH: input projections of one layer */
    int16_t *giq;  /* the same in Q3.12 (integer mode) */
    float *seq[2]; /* steps x batch x H: layer outputs, alternating */
    float *gh;     /* batch x GH: the step's recurrent product */
    float *hinit;  /* batch x H: the layer's initial h as the product sees it */
    float *cst;    /* batch x H: float cell state */
    int16_t *h15;  /* batch x H: integer hidden state, Q0.15 */
    int16_t *c11;  /* batch x H: integer cell state, Q4.11 */
    float *hfin;   /* layers x batch x H */
    float *cfin;   /* layers x batch x H */
    /* Code products (cpu/rnn_codes.c) per layer and matrix, NULL where the
     * backend's product runs, and their work buffer. */
    const bp_rnn_codes *codes_ih[BP_RNN_MAX_LAYERS][BP_RNN_MAX_GATES];
    const bp_rnn_codes *codes_hh[BP_RNN_MAX_LAYERS][BP_RNN_MAX_GATES];
    size_t codes_work_bytes;
    void *codes_work;
    const int *column_planes; /* NULL, or a cap per column (bp_rnn_step_columns) */
    int *colp;                /* batch: one matrix's count per column under those caps */
} rnn_call;

/* Carve the scratch out of one allocation; every piece 64-byte aligned. */
static bp_status alloc_scratch(rnn_call *c) {
    size_t sb, sbg, sbh, lbh, bh, bgh;
    size_t L = c->rnn->layers;
    if (bp__mul_overflows(c->steps, c->batch, &sb) || bp__mul_overflows(sb, c->GH, &sbg) ||
        bp__mul_overflows(sb, c->H, &sbh) || bp__mul_overflows(c->batch, c->H, &bh) ||
        bp__mul_overflows(c->batch, c->GH, &bgh) || bp__mul_overflows(L, bh, &lbh) ||
        sbg > SIZE_MAX / 16)
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "steps x batch x gates x hidden overflows size_t");
    bool integer = c->mode == BP_RNN_INTEGER;
    size_t sizes[] = {
        sbg * sizeof(float),
        integer ? sbg * sizeof(int16_t) : 0,
        sbh * sizeof(float),
        sbh * sizeof(float),
        bgh * sizeof(float),
        bh * sizeof(float),
        bh * sizeof(float),
        integer ? bh * sizeof(int16_t) : 0,
        integer ? bh * sizeof(int16_t) : 0,
        lbh * sizeof(float),
        lbh * sizeof(float),
        c->codes_work_bytes,
    };
    enum { N = sizeof sizes / sizeof sizes[0] };
    size_t off[N], total = 0;
    for (int i = 0; i < N; i++) {
        off[i] = total;
        size_t add = bp__round_up(sizes[i], BP_ALIGN);
        if (add < sizes[i] || bp__add_overflows(total, add, &total))
            return bp__fail(BP_ERR_SIZE_OVERFLOW, "RNN scratch size overflows size_t");
    }
    /* Not zero-filled: every piece is written before it is read (the
     * products write all their rows, the initial state fills h, c and
     * their integer forms, each step writes its output). */
    void *p = NULL;
    if (posix_memalign(&p, BP_ALIGN, total ? total : BP_ALIGN) != 0)
        p = NULL;
    unsigned char *mem = p;
    if (!mem)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of RNN scratch", total);
    c->mem = mem;
    c->gi = (float *)(mem + off[0]);
    c->giq = (int16_t *)(mem + off[1]);
    c->seq[0] = (float *)(mem + off[2]);
    c->seq[1] = (float *)(mem + off[3]);
    c->gh = (float *)(mem + off[4]);
    c->hinit = (float *)(mem + off[5]);
    c->cst = (float *)(mem + off[6]);
    c->h15 = (int16_t *)(mem + off[7]);
    c->c11 = (int16_t *)(mem + off[8]);
    c->hfin = (float *)(mem + off[9]);
    c->cfin = (float *)(mem + off[10]);
    c->codes_work = mem + off[11];
    return BP_OK;
}

/* The code products of m at planes (NULL where the backend's product runs),
 * and the largest padded K of the call's codes so far. */
static size_t codes_of(const rnn_call *c, const bp_matrix *m, int planes, int act_bits,
                       const bp_rnn_codes **out, size_t kpad) {
    *out = bp__rnn_codes_for(c->ctx, m, planes, act_bits);
    return *out && bp__rnn_codes_kpad(*out) > kpad ? bp__rnn_codes_kpad(*out) : kpad;
}

/* The code products of every matrix they apply to, and the size of their
 * work buffer. */
static void find_codes(rnn_call *c) {
    const bp_rnn *rnn = c->rnn;
    size_t kpad = 0;
    for (size_t l = 0; l < rnn->layers; l++)
        for (int g = 0; g < bp__rnn_mats(rnn); g++) {
            const layer_precision *p = &c->prec[l];
            kpad = codes_of(c, rnn->layer[l].ih[g], p->planes_ih[g], p->act_bits,
                            &c->codes_ih[l][g], kpad);
            kpad = codes_of(c, rnn->layer[l].hh[g], p->planes_hh[g], p->act_bits,
                            &c->codes_hh[l][g], kpad);
        }
    c->codes_work_bytes = kpad ? bp__rnn_codes_work_bytes(kpad) : 0;
}

/* y[.. + g*rows] = W[g] x + bias for every matrix of one operator. */
static bp_status product(rnn_call *c, bp_matrix *const *mats, const bp_rnn_codes *const *codes,
                         const float *bias, const int *planes, int act_bits, float act_scale,
                         const float *x, size_t batch, size_t ldx, float *y) {
    const bp_rnn *rnn = c->rnn;
    int n = bp__rnn_mats(rnn);
    size_t rows = rnn->split ? c->H : c->GH;
    for (int g = 0; g < n; g++) {
        if (c->column_planes) /* every column at its cap of this matrix's count */
            for (size_t i = 0; i < batch; i++) {
                int v = c->column_planes[i];
                c->colp[i] = v && v < planes[g] ? v : planes[g];
            }
        bp_gemm_args a = {
            .m = mats[g],
            .x = x,
            .batch = batch,
            .ldx = ldx,
            .y = y + (size_t)g * rows,
            .ldy = c->GH,
            .planes = planes[g],
            .act_bits = act_bits,
            .bias = bias + (size_t)g * rows,
            .column_planes = c->column_planes ? c->colp : NULL,
            .act_scale = act_scale,
        };
        bp_status st = codes[g] ? bp__rnn_codes_gemm(c->ctx, codes[g], &a, c->codes_work)
                                : c->ctx->ops->gemm(c->ctx, &a);
        if (st)
            return st;
    }
    return BP_OK;
}

/* ---- the fused cell update ------------------------------------------------------ */

typedef struct cell_job {
    const rnn_call *c;
    const float *gi;    /* batch x GH, this step */
    const int16_t *giq; /* batch x GH, this step (integer mode) */
    const float *hprev; /* batch x H */
    float *hout;        /* batch x H */
    size_t chunk;       /* units per task */
} cell_job;

/* Q0.15 state -> the float the next product reads: exact (|h| <= 2^15). */
static inline float q15_to_float(int32_t h) {
    return (float)h * (1.0f / 32768.0f);
}

static void cell_task(void *arg, size_t task, int worker) {
    (void)worker;
    const cell_job *job = arg;
    const rnn_call *c = job->c;
    size_t j0 = task * job->chunk, j1 = j0 + job->chunk < c->H ? j0 + job->chunk : c->H;
    bool lstm = c->rnn->cell == BP_RNN_LSTM, integer = c->mode == BP_RNN_INTEGER;
    for (size_t b = 0; b < c->batch; b++) {
        if (integer && lstm)
            c->icell->lstm(job->giq + b * c->GH, c->gh + b * c->GH, c->h15 + b * c->H,
                           c->c11 + b * c->H, job->hout + b * c->H, c->H, j0, j1);
        else if (integer)
            c->icell->gru(job->giq + b * c->GH, c->gh + b * c->GH, c->h15 + b * c->H,
                          job->hout + b * c->H, c->H, j0, j1);
        else if (lstm)
            c->fcell->lstm(job->gi + b * c->GH, c->gh + b * c->GH, c->cst + b * c->H,
                           job->hout + b * c->H, c->H, j0, j1);
        else
            c->fcell->gru(job->gi + b * c->GH, c->gh + b * c->GH, job->hprev + b * c->H,
                          job->hout + b * c->H, c->H, j0, j1);
    }
}

static void cell_update(rnn_call *c, cell_job *job) {
    size_t units = c->batch * c->H;
    if (c->ctx->threads > 1 && units >= PARALLEL_MIN_UNITS) {
        size_t tasks = (size_t)c->ctx->threads * 4;
        job->chunk = bp__round_up((c->H + tasks - 1) / tasks, 16);
        bp__parallel_for(c->ctx, (c->H + job->chunk - 1) / job->chunk, cell_task, job);
    } else {
        job->chunk = c->H;
        cell_task(job, 0, 0);
    }
}

/* ---- one layer over the whole sequence ----------------------------------------- */

static bp_status run_layer(rnn_call *c, size_t l, const float *in, const float *h0,
                           const float *c0) {
    const bp_rnn *rnn = c->rnn;
    const bp_rnn_layer *L = &rnn->layer[l];
    const layer_precision *p = &c->prec[l];
    bool integer = c->mode == BP_RNN_INTEGER;
    size_t H = c->H, B = c->batch, bh = B * H, sb = c->steps * B;
    float *out = c->seq[l & 1];
    /* Integer mode feeds the products its Q0.15 states with the fixed scale
     * 2^-(act_bits-1); layer 0's input is the caller's and uses the dynamic
     * rule. */
    float fixed = integer ? ldexpf(1.0f, -(p->act_bits - 1)) : 0.0f;

    /* All T x B columns in one product: the CPU framework blocks columns
     * itself (batched kernels take up to 64 per task), and 16-column
     * products measured no faster (H 256, batch 16, 4 planes). */
    bp_status st = product(c, L->ih, c->codes_ih[l], L->bias_ih, p->planes_ih, p->act_bits,
                           l ? fixed : 0.0f, in, sb, L->in, c->gi);
    if (st)
        return st;
    if (integer)
        for (size_t i = 0; i < sb * c->GH; i++)
            c->giq[i] = (int16_t)bp__rnn_q312(c->gi[i]);

    /* Initial state. */
    for (size_t i = 0; i < bh; i++) {
        float h = h0 ? h0[i] : 0.0f, cv = c0 ? c0[i] : 0.0f;
        if (integer) {
            int32_t hq = (int32_t)rintf(fminf(fmaxf(h * 32768.0f, -32767.0f), 32767.0f));
            c->h15[i] = (int16_t)hq;
            c->hinit[i] = q15_to_float(hq);
            c->c11[i] = (int16_t)rintf(fminf(fmaxf(cv * 2048.0f, -32768.0f), 32767.0f));
        } else {
            c->hinit[i] = h;
            c->cst[i] = cv;
        }
    }

    cell_job job = {.c = c};
    for (size_t t = 0; t < c->steps; t++) {
        job.hprev = t ? out + (t - 1) * bh : c->hinit;
        job.hout = out + t * bh;
        job.gi = c->gi + t * B * c->GH;
        job.giq = c->giq + t * B * c->GH;
        if ((st = product(c, L->hh, c->codes_hh[l], L->bias_hh, p->planes_hh, p->act_bits, fixed,
                          job.hprev, B, H, c->gh)))
            return st;
        cell_update(c, &job);
    }
    memcpy(c->hfin + l * bh, out + (c->steps - 1) * bh, bh * sizeof(float));
    if (rnn->cell == BP_RNN_LSTM)
        for (size_t i = 0; i < bh; i++)
            c->cfin[l * bh + i] = integer ? (float)c->c11[i] * (1.0f / 2048.0f) : c->cst[i];
    return BP_OK;
}

static bp_status check_finite(const float *v, size_t n, const char *name) {
    size_t i = v ? bp__first_non_finite(v, n) : n;
    if (i < n)
        return bp__fail(BP_ERR_NON_FINITE, "%s: element %zu is %s", name, i,
                        isnan(v[i]) ? "NaN" : "Inf");
    return BP_OK;
}

/* Whether n floats at a and m floats at b share memory (either may be NULL). */
static bool floats_overlap(const float *a, size_t n, const float *b, size_t m) {
    return a && b && bp__spans_overlap(a, n * sizeof(float), b, m * sizeof(float));
}

/* Outputs are written one after the other at the end of a call, so inputs
 * may alias them but two outputs must not share memory: the second copy
 * would silently overwrite the first (h and c of a step are h_n and c_n). */
static bp_status check_outputs_apart(const char *fn, bool step, const float *y, size_t yn,
                                     const float *h_n, const float *c_n, size_t lbh) {
    const char *h = step ? "h" : "h_n", *c = step ? "c" : "c_n";
    if (floats_overlap(h_n, lbh, c_n, lbh))
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "%s: %s and %s must not overlap", fn, h, c);
    if (floats_overlap(y, yn, h_n, lbh) || floats_overlap(y, yn, c_n, lbh))
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "%s: y and %s must not overlap", fn,
                        floats_overlap(y, yn, h_n, lbh) ? h : c);
    return BP_OK;
}

static bp_status run(bp_context *ctx, const bp_rnn *rnn, const float *x, size_t steps, size_t batch,
                     const float *h0, const float *c0, float *y, float *h_n, float *c_n,
                     const bp_rnn_run_options *options, bool step, const int *column_planes) {
    const char *fn = step ? "bp_rnn_step" : "bp_rnn_forward";
    if (!ctx || !rnn || !x)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "%s: %s must not be NULL", fn,
                        !ctx   ? "ctx"
                        : !rnn ? "rnn"
                               : "x");
    if (rnn->cell == BP_RNN_GRU && (c0 || c_n))
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "%s: %s must be NULL for a GRU (it has no cell state)", fn,
                        c0 ? (c_n == c0 ? "c" : "c0") : "c_n");
    bp_status st;
    if ((st = bp__check_dim("steps", steps)) || (st = bp__check_dim("batch", batch)))
        return st;
    size_t sb, xn, bh, lbh;
    if (bp__mul_overflows(steps, batch, &sb) || sb > BP_MAX_DIM)
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "steps x batch must be <= %zu, got %zu x %zu",
                        BP_MAX_DIM, steps, batch);
    if (bp__mul_overflows(sb, rnn->input, &xn) || bp__mul_overflows(batch, rnn->hidden, &bh) ||
        bp__mul_overflows(rnn->layers, bh, &lbh))
        return bp__fail(BP_ERR_SIZE_OVERFLOW, "input or state size overflows size_t");
    if ((st = check_outputs_apart(fn, step, y, sb * rnn->hidden, h_n, c_n, lbh)))
        return st;

    bp_rnn_run_options opt;
    if ((st = bp__copy_options(&opt, sizeof opt, options, "bp_rnn_run_options")))
        return st;
    rnn_call *c = calloc(1, sizeof *c);
    if (!c)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate the RNN call state");
    c->ctx = ctx;
    c->rnn = rnn;
    c->mode = opt.mode;
    c->fcell = bp__rnn_float_cell_for(ctx->cpu_kernel);
    c->icell = bp__rnn_int_cell_for(ctx->cpu_kernel);
    c->steps = steps;
    c->batch = batch;
    c->H = rnn->hidden;
    c->GH = (size_t)rnn->gates * rnn->hidden;
    if ((st = resolve_precision(rnn, &opt, c->prec)) == BP_OK)
        find_codes(c);
    if (st || (st = check_finite(x, xn, "x")) || (st = check_finite(h0, lbh, step ? "h" : "h0")) ||
        (st = check_finite(c0, lbh, step ? "c" : "c0")) || (st = alloc_scratch(c))) {
        free(c);
        return st;
    }
    c->column_planes = column_planes;
    if (column_planes && !(c->colp = malloc(batch * sizeof *c->colp)))
        st = bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu column plane counts", batch);
    for (size_t l = 0; l < rnn->layers && !st; l++)
        st = run_layer(c, l, l ? c->seq[(l - 1) & 1] : x, h0 ? h0 + l * bh : NULL,
                       c0 ? c0 + l * bh : NULL);
    if (!st) { /* Outputs only now, so inputs may alias them. */
        if (y)
            memcpy(y, c->seq[(rnn->layers - 1) & 1], sb * rnn->hidden * sizeof(float));
        if (h_n)
            memcpy(h_n, c->hfin, lbh * sizeof(float));
        if (c_n)
            memcpy(c_n, c->cfin, lbh * sizeof(float));
    }
    bp__aligned_free(c->mem);
    free(c->colp);
    free(c);
    return st;
}

bp_status bp_rnn_forward(bp_context *ctx, const bp_rnn *rnn, const float *x, size_t steps,
                         size_t batch, const float *h0, const float *c0, float *y, float *h_n,
                         float *c_n, const bp_rnn_run_options *options) {
    if (!y)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_forward: y must not be NULL");
    return run(ctx, rnn, x, steps, batch, h0, c0, y, h_n, c_n, options, false, NULL);
}

bp_status bp_rnn_step(bp_context *ctx, const bp_rnn *rnn, const float *x, size_t batch, float *h,
                      float *c, const bp_rnn_run_options *options) {
    if (!h)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_rnn_step: h must not be NULL");
    if (rnn && rnn->cell == BP_RNN_LSTM && !c)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "bp_rnn_step: c must not be NULL for an LSTM (its cell state)");
    return run(ctx, rnn, x, 1, batch, h, c, NULL, h, c, options, true, NULL);
}

/* The streaming step of many sessions at their own precisions: column i's
 * counts capped at column_planes[i] (0: the options' counts), through the
 * products' per-column plane counts, so one call per step serves every
 * stream. The checks that name the function are made here; run() does the
 * rest as for bp_rnn_step. */
bp_status bp_rnn_step_columns(bp_context *ctx, const bp_rnn *rnn, const float *x, size_t batch,
                              float *h, float *c, const int *column_planes,
                              const bp_rnn_run_options *options) {
    static const char fn[] = "bp_rnn_step_columns";
    if (!ctx || !rnn || !x || !h)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "%s: %s must not be NULL", fn,
                        !ctx   ? "ctx"
                        : !rnn ? "rnn"
                        : !x   ? "x"
                               : "h");
    if (rnn->cell == BP_RNN_LSTM && !c)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "%s: c must not be NULL for an LSTM (its cell state)", fn);
    if (rnn->cell == BP_RNN_GRU && c)
        return bp__fail(BP_ERR_INVALID_ARGUMENT,
                        "%s: c must be NULL for a GRU (it has no cell state)", fn);
    bp_status st = bp__check_dim("batch", batch);
    if (st)
        return st;
    for (size_t i = 0; column_planes && i < batch; i++)
        if (column_planes[i] < 0 || column_planes[i] > rnn->bits)
            return bp__fail(
                BP_ERR_OUT_OF_RANGE,
                "%s: column_planes[%zu] must be 0 (the options' counts) or 1..%d, got %d", fn, i,
                rnn->bits, column_planes[i]);
    return run(ctx, rnn, x, 1, batch, h, c, NULL, h, c, options, true, column_planes);
}
