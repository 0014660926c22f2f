/*
 * The CPU framework around the microkernels (BLIS-style split): it quantizes
 * the input columns, lets the kernel prepare them (bit planes or lookup
 * tables), splits rows into blocks across the pool, calls the microkernel for
 * up to BP_KERNEL_MAX_COLS columns at a time and applies the exact combine
 * (docs/numerics.md: D_u for uniform matrices, D_p per plane for residual).
 * Batched kernels (compute_batch) instead get every column of a block of up
 * to BATCH_MAX_COLS at once, so they can reuse unpacked weight tiles; tasks
 * are then (row block, column block) pairs.
 * Each output element depends only on its row and its column, never on the
 * blocking, so results do not change with threads, batch size or position.
 */
#include "bp_backend.h"
#include "bp_error.h"
#include "bp_finite.h"
#include "bp_rotation.h"
#include "cpu_kernel.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Row groups (16 rows) per task: 256 rows keeps D and the coefficient reads
 * small while the weight slabs stream through. */
#define GROUPS_PER_TASK 16
/* Bound on the per-call activation scratch; larger batches run in chunks. */
#define CHUNK_BYTES ((size_t)64 << 20)
/* Batched kernels: columns per task, and the per-worker D buffer that bounds
 * them (int64 words: 256 KB, within L2 beside the weight tiles). Each task
 * unpacks its rows' weight tiles once, so on small layers (one row task)
 * wider column blocks mean fewer unpacks: 128 columns instead of 64 took
 * 4-5 % off 128 x 256 and 256 x 64 at batch 360 (docs/small-layers.md). */
#define BATCH_MAX_COLS 128
#define BATCH_MIN_COLS 8
#define BATCH_D_WORDS  ((size_t)32768)

/*
 * Per-call scratch (column structs, activation data, D buffers) comes from a
 * buffer kept per calling thread, so small calls pay no allocation and no
 * zero-fill (every byte is written before it is read: quantize and prepare
 * fill the column data, kernels write D before the combine reads it). Up to
 * SCRATCH_KEEP_BYTES stay cached; larger requests are allocated per call.
 * The buffer is freed when its thread exits.
 */
#define SCRATCH_KEEP_BYTES ((size_t)4 << 20)

typedef struct scratch_cache {
    void *p;
    size_t bytes;
} scratch_cache;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

static void scratch_destroy(void *v) {
    scratch_cache *sc = v;
    free(sc->p);
    free(sc);
}

static void scratch_key_init(void) {
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

/* A 64-byte aligned buffer of at least `bytes`, not zeroed; *owned says the
 * caller must free it. NULL when out of memory. */
static void *scratch_get(size_t bytes, bool *owned) {
    void *p = NULL;
    *owned = true;
    pthread_once(&scratch_once, scratch_key_init);
    if (bytes > SCRATCH_KEEP_BYTES || !scratch_key_ok)
        return posix_memalign(&p, BP_ALIGN, bytes) == 0 ? p : NULL;
    scratch_cache *sc = pthread_getspecific(scratch_key);
    if (!sc) {
        sc = calloc(1, sizeof *sc);
        if (!sc || pthread_setspecific(scratch_key, sc) != 0) {
            free(sc);
            return posix_memalign(&p, BP_ALIGN, bytes) == 0 ? p : NULL;
        }
    }
    if (sc->bytes < bytes) {
        free(sc->p);
        sc->p = NULL;
        sc->bytes = 0;
        if (posix_memalign(&p, BP_ALIGN, bytes) != 0)
            return NULL;
        sc->p = p;
        sc->bytes = bytes;
    }
    *owned = false;
    return sc->p;
}

typedef struct cpu_call {
    const bp_gemm_args *a;
    const bp_cpu_kernel_desc *kernel;
    size_t kpad;
    size_t c0, nc;         /* current chunk of columns */
    bp_act_column *cols;   /* nc entries */
    unsigned char *colmem; /* nc * col_bytes */
    size_t col_bytes, q_bytes, rot_bytes;
    int64_t *dmem;     /* per worker D buffer */
    size_t d_words;    /* per worker */
    size_t row_tasks;  /* row blocks of GROUPS_PER_TASK groups */
    size_t batch_cols; /* batched kernels: columns per task */
    size_t slots;      /* D slots per column in the worker buffer */
    bool relu;         /* y = max(W x + bias, 0) (bp_gemm_act) */
    bool from_x;       /* the kernel's prepare_x builds the columns from x */
    bool scan_check;   /* x unchecked: its first read checks it (one chunk) */
    size_t bad_col;    /* scan_check: the first column with a NaN / Inf, else SIZE_MAX */
    int overflow;      /* set (atomically) when a result is not finite */
    size_t overflow_row, overflow_col;
} cpu_call;

static int column_planes(const bp_gemm_args *a, size_t col) {
    int n = a->column_planes ? a->column_planes[col] : 0;
    return n ? n : a->planes;
}

/* scan_check: column col has a NaN / Inf; keep the first such column. */
static void note_bad_column(cpu_call *c, size_t col) {
    size_t first = __atomic_load_n(&c->bad_col, __ATOMIC_RELAXED);
    while (col < first && !__atomic_compare_exchange_n(&c->bad_col, &first, col, true,
                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void prepare_task(void *arg, size_t i, int worker) {
    (void)worker;
    cpu_call *c = arg;
    const bp_gemm_args *a = c->a;
    size_t col = c->c0 + i;
    unsigned char *mem = c->colmem + i * c->col_bytes;
    bp_act_column *ac = &c->cols[i];
    const float *x = a->x + col * a->ldx;
    bp_act_range range, *found = NULL;
    if (a->m->rot_block) {
        /* The matrix was quantized in rotated coordinates (src/rotation.c);
         * the rotation scans x' as it writes it (and checks x as it reads
         * it, when bp_gemm left that to this first read). */
        float *xr = (float *)(mem + c->q_bytes);
        if (!bp__rotate_input(a->m, x, xr, &range, c->scan_check)) {
            note_bad_column(c, col);
            return;
        }
        x = xr;
        found = &range;
    } else if (c->scan_check) {
        /* bp_gemm left the NaN / Inf check of x to the scan. */
        if (!bp__act_scan_checked(x, a->m->cols, &range)) {
            note_bad_column(c, col);
            return;
        }
        found = &range;
    }
    ac->planes = column_planes(a, col);
    if (c->from_x) {
        /* Code kernels: x to int8 codes in one pass after the scan, no
         * int32 q (q_bytes is 0). */
        bp_act_rounding rd;
        bp__act_column_rounding(x, a->m->cols, a->act_bits, a->act_scale, found, ac, &rd);
        if (!ac->is_zero)
            c->kernel->prepare_x(ac, x, a->m->cols, c->kpad, &rd, mem + c->rot_bytes);
        return;
    }
    bp__quantize_activations_in(x, a->m->cols, c->kpad, a->act_bits, a->act_scale, found,
                                (int32_t *)mem, ac);
    if (!ac->is_zero)
        c->kernel->prepare(ac, c->kpad, mem + c->q_bytes + c->rot_bytes);
}

/* Records the first y[perm[r]] (perm NULL: y[r]) of stored rows [r0, r1)
 * of chunk column i that is not finite, unless another task did already.
 * After a ReLU an overflow to -Inf left 0 in y: then no row is found and
 * the row is recorded as SIZE_MAX (unknown). */
static void note_overflow(cpu_call *c, const float *y, size_t r0, size_t r1, size_t i,
                          const uint32_t *perm) {
    size_t row = SIZE_MAX;
    for (size_t r = r0; r < r1 && row == SIZE_MAX; r++) {
        const size_t o = perm ? perm[r] : r;
        if (!isfinite(y[o]))
            row = o;
    }
    if (!__atomic_exchange_n(&c->overflow, 1, __ATOMIC_RELAXED)) {
        c->overflow_row = row;
        c->overflow_col = c->c0 + i;
    }
}

/* y for stored rows [r0, r1) of chunk column i from its D (row r0 at
 * d[0]); stored row r goes to y[perm[r]] (perm NULL: y[r]). Always inlined,
 * so the call without counts (perm a constant NULL) keeps its plain loops. */
static inline __attribute__((always_inline)) void
combine_rows_to(cpu_call *c, const bp_act_column *ac, const int64_t *d, size_t ld_plane, size_t r0,
                size_t r1, size_t i, const uint32_t *perm) {
    const bp_gemm_args *a = c->a;
    const bp_matrix *m = a->m;
    float *y = a->y + (c->c0 + i) * a->ldy;
    const int n = ac->planes;
    bool finite = true;
    if (m->method == BP_QUANT_UNIFORM) {
        /* The prefix's coefficients are n floats per row, alpha the last
         * (bp__alpha), so the row loop strides by n. */
        const float *alpha = bp__coef(m, n, r0) + (n - 1);
        if (!perm) {
            finite =
                bp__combine_uniform_rows(alpha, (size_t)n, d, ac->scale,
                                         a->bias ? a->bias + r0 : NULL, c->relu, y + r0, r1 - r0);
        } else {
            /* Per-row plane counts: scattered to the caller's rows. */
            for (size_t r = r0; r < r1; r++) {
                const size_t o = perm[r];
                float v = bp__combine_uniform(alpha[(r - r0) * (size_t)n], d[r - r0], ac->scale);
                v = a->bias ? v + a->bias[o] : v;
                finite &= isfinite(v) != 0;
                y[o] = c->relu ? bp__relu(v) : v;
            }
        }
    } else {
        for (size_t r = r0; r < r1; r++) {
            const size_t o = perm ? perm[r] : r;
            float v = bp__combine(bp__coef(m, n, r), d + (r - r0), ld_plane, n, ac->scale);
            v = a->bias ? v + a->bias[o] : v;
            finite &= isfinite(v) != 0;
            y[o] = c->relu ? bp__relu(v) : v;
        }
    }
    /* Finite inputs, so only an overflow of the float range; checked once
     * per block so the loops above stay branch-free. */
    if (!finite)
        note_overflow(c, y, r0, r1, i, perm);
}

static void combine_rows(cpu_call *c, const bp_act_column *ac, const int64_t *d, size_t ld_plane,
                         size_t r0, size_t r1, size_t i) {
    combine_rows_to(c, ac, d, ld_plane, r0, r1, i, NULL);
}

/* Uniform matrices without a row permutation: y for stored rows [r0, r1)
 * of chunk column i from D, with alpha[r - r0] contiguous. */
static void combine_uniform_to(cpu_call *c, const bp_act_column *ac, const float *alpha,
                               const int64_t *d, size_t r0, size_t r1, size_t i) {
    const bp_gemm_args *a = c->a;
    float *y = a->y + (c->c0 + i) * a->ldy;
    if (!bp__combine_uniform_rows(alpha, 1, d, ac->scale, a->bias ? a->bias + r0 : NULL, c->relu,
                                  y + r0, r1 - r0))
        note_overflow(c, y, r0, r1, i, NULL);
}

/* Output of a zero column for stored rows [r0, r1): the bias alone (after
 * the ReLU, if any). */
static void zero_rows(const cpu_call *c, size_t r0, size_t r1, size_t i) {
    const bp_gemm_args *a = c->a;
    const uint32_t *perm = a->m->perm;
    float *y = a->y + (c->c0 + i) * a->ldy;
    for (size_t r = r0; r < r1; r++) {
        const size_t o = perm ? perm[r] : r;
        const float v = a->bias ? a->bias[o] : 0.0f;
        y[o] = c->relu ? bp__relu(v) : v;
    }
}

/*
 * Matrices with per-row plane counts (docs/row-planes.md): the stored rows
 * [r0, r1) of a task split into segments, each one or more runs of equal
 * count on which every column's planes min(count, column planes) agree
 * (runs merge when the later one still covers the most planes any column
 * asks for). Each segment runs the kernel on the row groups that cover it
 * with column copies carrying those planes; a group straddling two segments
 * is computed once for each, and each combines only its own rows. The slabs
 * hold every group a segment reads at every plane it uses (bp_abi.h).
 */
typedef struct row_segment {
    size_t r0, r1; /* stored rows */
    int planes;    /* the first run's count: a column uses min(this, its planes) */
} row_segment;

/* The segment of [r, r1) that starts at r, for columns using at most
 * max_planes planes. */
static row_segment next_segment(const bp_matrix *m, size_t r, size_t r1, int max_planes) {
    int i = 0;
    while (m->run_start[i + 1] <= r)
        i++;
    row_segment s = {.r0 = r, .planes = m->run_planes[i]};
    int j = i + 1;
    while (j < m->nruns && m->run_start[j] < r1 && m->run_planes[j] >= max_planes)
        j++;
    s.r1 = m->run_start[j] < r1 ? m->run_start[j] : r1;
    return s;
}

/* The kernel and the combine for ncols columns (cols, chunk indices owner)
 * over stored rows [r0, r1), segment by segment. d holds the worker's D
 * buffer, slots D slots per column. */
static void compute_runs(cpu_call *c, size_t r0, size_t r1, const bp_act_column *const *cols,
                         const size_t *owner, size_t ncols, int64_t *d, size_t slots) {
    const bp_matrix *m = c->a->m;
    bp_act_column local[BATCH_MAX_COLS];
    const bp_act_column *lp[BATCH_MAX_COLS];
    int max_planes = 0;
    for (size_t k = 0; k < ncols; k++)
        max_planes = cols[k]->planes > max_planes ? cols[k]->planes : max_planes;
    for (size_t r = r0; r < r1;) {
        const row_segment s = next_segment(m, r, r1, max_planes);
        const size_t g0 = s.r0 / BP_ROW_GROUP, g1 = (s.r1 + BP_ROW_GROUP - 1) / BP_ROW_GROUP;
        const size_t ld_plane = (g1 - g0) * BP_ROW_GROUP, skip = s.r0 - g0 * BP_ROW_GROUP;
        for (size_t k = 0; k < ncols; k++) {
            local[k] = *cols[k];
            local[k].planes = s.planes < cols[k]->planes ? s.planes : cols[k]->planes;
            lp[k] = &local[k];
        }
        if (c->kernel->compute_batch) {
            bp_kernel_batch_call call = {.m = m,
                                         .g0 = g0,
                                         .g1 = g1,
                                         .ncols = ncols,
                                         .cols = lp,
                                         .d = d,
                                         .ld_plane = ld_plane,
                                         .ld_col = ld_plane * slots};
            c->kernel->compute_batch(&call);
        } else {
            bp_kernel_call call = {.m = m,
                                   .g0 = g0,
                                   .g1 = g1,
                                   .ncols = ncols,
                                   .d = d,
                                   .ld_plane = ld_plane,
                                   .ld_col = ld_plane * slots};
            for (size_t k = 0; k < ncols; k++)
                call.cols[k] = lp[k];
            c->kernel->compute(&call);
        }
        for (size_t k = 0; k < ncols; k++)
            combine_rows_to(c, lp[k], d + k * ld_plane * slots + skip, ld_plane, s.r0, s.r1,
                            owner[k], m->perm);
        r = s.r1;
    }
}

static void compute_task(void *arg, size_t task, int worker) {
    cpu_call *c = arg;
    const bp_gemm_args *a = c->a;
    const bp_matrix *m = a->m;
    size_t g0 = task * GROUPS_PER_TASK;
    size_t g1 = g0 + GROUPS_PER_TASK < m->row_groups ? g0 + GROUPS_PER_TASK : m->row_groups;
    size_t r0 = g0 * BP_ROW_GROUP;
    size_t r1 = g1 * BP_ROW_GROUP < m->rows ? g1 * BP_ROW_GROUP : m->rows;
    size_t ld_plane = (g1 - g0) * BP_ROW_GROUP;

    bp_kernel_call call = {.m = m, .g0 = g0, .g1 = g1, .ld_plane = ld_plane};
    call.ld_col = ld_plane * (size_t)m->bits;
    call.d = c->dmem + (size_t)worker * c->d_words;
    size_t owner[BP_KERNEL_MAX_COLS];

    for (size_t i = 0; i <= c->nc; i++) {
        /* Gather non-zero columns; flush when full or at the end. */
        if (i < c->nc && !c->cols[i].is_zero) {
            owner[call.ncols] = i;
            call.cols[call.ncols++] = &c->cols[i];
            if (call.ncols < BP_KERNEL_MAX_COLS)
                continue;
        } else if (i < c->nc) {
            zero_rows(c, r0, r1, i);
            continue;
        }
        if (call.ncols == 0)
            continue;
        if (m->nruns) {
            compute_runs(c, r0, r1, call.cols, owner, call.ncols, call.d, (size_t)m->bits);
            call.ncols = 0;
            continue;
        }
        c->kernel->compute(&call);
        for (size_t k = 0; k < call.ncols; k++)
            combine_rows(c, call.cols[k], call.d + k * call.ld_col, ld_plane, r0, r1, owner[k]);
        call.ncols = 0;
    }
}

/* Batched kernels: task = (row block, column block); one kernel call for all
 * non-zero columns of the block. */
static void compute_batch_task(void *arg, size_t task, int worker) {
    cpu_call *c = arg;
    const bp_gemm_args *a = c->a;
    const bp_matrix *m = a->m;
    size_t g0 = task % c->row_tasks * GROUPS_PER_TASK;
    size_t g1 = g0 + GROUPS_PER_TASK < m->row_groups ? g0 + GROUPS_PER_TASK : m->row_groups;
    size_t r0 = g0 * BP_ROW_GROUP;
    size_t r1 = g1 * BP_ROW_GROUP < m->rows ? g1 * BP_ROW_GROUP : m->rows;
    size_t i0 = task / c->row_tasks * c->batch_cols;
    size_t i1 = c->nc - i0 < c->batch_cols ? c->nc : i0 + c->batch_cols;
    const bp_act_column *cols[BATCH_MAX_COLS];
    size_t owner[BATCH_MAX_COLS];
    size_t n = 0;
    for (size_t i = i0; i < i1; i++) {
        if (!c->cols[i].is_zero) {
            owner[n] = i;
            cols[n++] = &c->cols[i];
            continue;
        }
        zero_rows(c, r0, r1, i);
    }
    if (n == 0)
        return;
    if (m->nruns) {
        compute_runs(c, r0, r1, cols, owner, n, c->dmem + (size_t)worker * c->d_words, c->slots);
        return;
    }
    size_t ld_plane = (g1 - g0) * BP_ROW_GROUP;
    bp_kernel_batch_call call = {.m = m,
                                 .g0 = g0,
                                 .g1 = g1,
                                 .ncols = n,
                                 .cols = cols,
                                 .d = c->dmem + (size_t)worker * c->d_words,
                                 .ld_plane = ld_plane,
                                 .ld_col = ld_plane * c->slots};
    c->kernel->compute_batch(&call);
    if (m->method != BP_QUANT_UNIFORM || m->perm) {
        for (size_t k = 0; k < n; k++)
            combine_rows(c, cols[k], call.d + k * call.ld_col, ld_plane, r0, r1, owner[k]);
        return;
    }
    /* Uniform: alpha of each plane count present gathered once per task
     * into a contiguous row vector (the coefficient table strides by n), so
     * the combine of every column runs in vectors; the same products. */
    float alpha[GROUPS_PER_TASK * BP_ROW_GROUP];
    uint32_t todo = 0;
    for (size_t k = 0; k < n; k++)
        todo |= 1u << (cols[k]->planes - 1);
    for (int np = 1; np <= m->bits; np++) {
        if (!(todo & 1u << (np - 1)))
            continue;
        const float *coef = bp__coef(m, np, r0) + (np - 1);
        for (size_t r = 0; r < r1 - r0; r++)
            alpha[r] = coef[r * (size_t)np];
        for (size_t k = 0; k < n; k++)
            if (cols[k]->planes == np)
                combine_uniform_to(c, cols[k], alpha, call.d + k * call.ld_col, r0, r1, owner[k]);
    }
}

bp_status bp__cpu_gemm(bp_context *ctx, const bp_gemm_args *a) {
    return bp__cpu_gemm_act(ctx, a, BP_ACTIVATION_NONE, false);
}

bp_status bp__cpu_gemm_act(bp_context *ctx, const bp_gemm_args *a, bp_activation activation,
                           bool check_x) {
    const bp_matrix *m = a->m;
    cpu_call c = {.a = a, .relu = activation == BP_ACTIVATION_RELU, .bad_col = SIZE_MAX};
    c.kpad = bp__padded_cols(m->cols);
    bp_kernel_shape shape = {.act_bits = a->act_bits,
                             .kpad = c.kpad,
                             .batch = a->batch,
                             .mult_bound = bp__mult_bound(m),
                             .method = m->method,
                             .min_planes = a->planes,
                             .max_planes = a->planes,
                             .units = (size_t)a->planes * a->batch,
                             .rows = m->rows};
    if (a->column_planes) {
        /* The range over the columns: a->planes counts only where a column
         * says 0, which the loop sees. */
        shape.min_planes = m->bits;
        shape.max_planes = 1;
        shape.units = 0;
    }
    for (size_t i = 0; a->column_planes && i < a->batch; i++) {
        int n = column_planes(a, i);
        shape.min_planes = n < shape.min_planes ? n : shape.min_planes;
        shape.max_planes = n > shape.max_planes ? n : shape.max_planes;
        shape.units += (size_t)n;
    }
    if (m->nruns) {
        /* Rows use min(count, column planes): the range the kernels see. */
        const int most = m->run_planes[0], least = m->run_planes[m->nruns - 1];
        shape.max_planes = shape.max_planes < most ? shape.max_planes : most;
        shape.min_planes = shape.min_planes < least ? shape.min_planes : least;
    }
    c.kernel = bp__select_kernel(ctx, &shape);
    c.from_x = c.kernel->prepare_x && a->act_bits >= 2;
    c.q_bytes = c.from_x ? 0 : bp__round_up(bp__act_q_words(c.kpad) * sizeof(int32_t), BP_ALIGN);
    c.rot_bytes = m->rot_block ? bp__round_up(m->cols * sizeof(float), BP_ALIGN) : 0;
    c.col_bytes = c.q_bytes + c.rot_bytes +
                  bp__round_up(c.kernel->column_bytes(a->act_bits, c.kpad), BP_ALIGN);
    size_t chunk = CHUNK_BYTES / c.col_bytes;
    chunk = chunk < 1 ? 1 : (chunk > a->batch ? a->batch : chunk);
    /* The check of x in the first read of each column (the rotation, else
     * the quantizer's scan; binary columns without a rotation have none)
     * when every column is read before any y is written (one chunk); else
     * here, before anything runs. */
    c.scan_check = check_x && chunk == a->batch && (m->rot_block || a->act_bits >= 2);
    if (check_x && !c.scan_check) {
        const bp_status st = bp__check_finite_columns(a->x, a->batch, a->ldx, m->cols, "x");
        if (st)
            return st;
    }
    c.row_tasks = (m->row_groups + GROUPS_PER_TASK - 1) / GROUPS_PER_TASK;
    size_t task_groups = m->row_groups < GROUPS_PER_TASK ? m->row_groups : GROUPS_PER_TASK;
    size_t task_rows = task_groups * BP_ROW_GROUP;
    c.slots = (size_t)m->bits;
    c.d_words = BP_KERNEL_MAX_COLS * c.slots * task_rows;
    if (c.kernel->compute_batch) {
        /* Uniform matrices need slot 0, and slot 1 beyond 8 planes. */
        if (m->method == BP_QUANT_UNIFORM)
            c.slots = m->bits > 8 ? 2 : 1;
        size_t fit = BATCH_D_WORDS / (c.slots * task_rows);
        c.batch_cols = fit < BATCH_MIN_COLS   ? BATCH_MIN_COLS
                       : fit > BATCH_MAX_COLS ? BATCH_MAX_COLS
                                              : fit;
        c.d_words = c.batch_cols * c.slots * task_rows;
    }
    int workers = ctx->threads;
    if (c.kernel->compute_batch) {
        /* The columns of a chunk in equal blocks of at most batch_cols; when
         * there are fewer row tasks than workers, a multiple of the workers
         * (while blocks keep BATCH_MIN_COLS), so no worker idles. */
        const size_t ncols = chunk, w = (size_t)workers;
        size_t blocks = (ncols + c.batch_cols - 1) / c.batch_cols;
        if (w > 1 && c.row_tasks < w) {
            const size_t most = ncols / BATCH_MIN_COLS > 1 ? ncols / BATCH_MIN_COLS : 1;
            const size_t even = (blocks + w - 1) / w * w;
            blocks = even < most ? even : (most > blocks ? most : blocks);
        }
        c.batch_cols = (ncols + blocks - 1) / blocks;
    }

    /* chunk * col_bytes <= CHUNK_BYTES and the D buffers are small, so the
     * sum cannot overflow. */
    size_t cols_bytes = bp__round_up(chunk * sizeof *c.cols, BP_ALIGN);
    size_t colmem_bytes = chunk * c.col_bytes;
    size_t total = cols_bytes + colmem_bytes + (size_t)workers * c.d_words * sizeof(int64_t);
    bool owned;
    unsigned char *mem = scratch_get(total, &owned);
    if (!mem)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of activation scratch",
                        total);
    c.cols = (bp_act_column *)mem;
    memset(c.cols, 0, chunk * sizeof *c.cols);
    c.colmem = mem + cols_bytes;
    c.dmem = (int64_t *)(mem + cols_bytes + colmem_bytes);
    for (c.c0 = 0; c.c0 < a->batch; c.c0 += c.nc) {
        c.nc = a->batch - c.c0 < chunk ? a->batch - c.c0 : chunk;
        bp__parallel_for(ctx, c.nc, prepare_task, &c);
        if (c.bad_col != SIZE_MAX) {
            /* One chunk (scan_check): nothing written yet. */
            if (owned)
                free(mem);
            return bp__check_finite_column(a->x + c.bad_col * a->ldx, m->cols, c.bad_col, "x");
        }
        if (c.kernel->compute_batch)
            bp__parallel_for(ctx, c.row_tasks * ((c.nc + c.batch_cols - 1) / c.batch_cols),
                             compute_batch_task, &c);
        else
            bp__parallel_for(ctx, c.row_tasks, compute_task, &c);
    }
    if (owned)
        free(mem);
    if (c.overflow && c.overflow_row == SIZE_MAX)
        return bp__fail(BP_ERR_NON_FINITE,
                        "a result of column %zu overflowed the float range to -Inf before the "
                        "ReLU, which stored 0 for it: the matrix's weights times this input "
                        "exceed FLT_MAX",
                        c.overflow_col);
    if (c.overflow)
        return bp__fail(BP_ERR_NON_FINITE,
                        "y[%zu] of column %zu overflowed the float range: the matrix's weights "
                        "times this input exceed FLT_MAX (y holds the results, Inf where they "
                        "overflowed)",
                        c.overflow_row, c.overflow_col);
    return BP_OK;
}
