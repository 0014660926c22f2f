/*
 * Internal definitions shared by src/ and the backends. Not installed.
 *
 * Weight layout (CPU), chosen so that both the VPOPCNTDQ kernels and the
 * lookup-table kernel read the same bytes and the plane-prefix property holds:
 *  - Plane-major: plane p (MSB first) is one contiguous slab of
 *    plane_words uint32 words. Using n planes reads slabs 0..n-1 only.
 *  - Inside a slab, rows are tiled in groups of BP_ROW_GROUP (16) rows. Group
 *    g holds kwords 32-bit words per row, word-major:
 *        slab[(g * kwords + w) * 16 + (row % 16)]
 *    so one 64-byte line holds 16 rows x 32 columns, and a row group is one
 *    contiguous run of kwords * 64 bytes.
 *  - Bit j of word w of a row is column 32*w + j; 1 means +1, 0 means -1.
 *  - K is padded to a multiple of 512 bits. Padding columns and padding rows
 *    are 0 bits; activation padding is 0 as well, so padding adds nothing in
 *    both the AND form and the XOR (binary) form.
 */
#ifndef BP_INTERNAL_H
#define BP_INTERNAL_H

#include "bitplane.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BP_ROW_GROUP    16
#define BP_K_ALIGN_BITS 512
#define BP_MAX_ACT_BITS 16
#define BP_ALIGN        64

/* ---- errors -------------------------------------------------------------- */

/* Record a message for bp_last_error() and return status. printf-style. */
bp_status bp__fail(bp_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void bp__clear_error(void);

/* ---- checked arithmetic --------------------------------------------------- */

static inline bool bp__mul_overflows(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline bool bp__add_overflows(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}
/* Bytes spanned by `count` vectors of `len` elements of `elem` bytes spaced
 * `ld` elements apart; false when that overflows size_t. count must be >= 1. */
static inline bool bp__span_elem_bytes(size_t count, size_t ld, size_t len, size_t elem,
                                       size_t *out) {
    size_t s;
    return !bp__mul_overflows(count - 1, ld, &s) && !bp__add_overflows(s, len, &s) &&
           !bp__mul_overflows(s, elem, out);
}
/* The same for floats. */
static inline bool bp__span_bytes(size_t count, size_t ld, size_t len, size_t *out) {
    return bp__span_elem_bytes(count, ld, len, sizeof(float), out);
}
static inline size_t bp__round_up(size_t v, size_t to) {
    return (v + to - 1) / to * to;
}

void *bp__aligned_alloc(size_t bytes); /* zero-filled, 64-byte aligned, NULL on failure */
void bp__aligned_free(void *p);

/* ---- options ------------------------------------------------------------- */

/*
 * Copy a caller's options struct (first field `size`) into a zeroed full-size
 * struct. Accepts a NULL pointer (defaults), a smaller struct from an older
 * caller, and a larger one from a newer caller whose extra bytes are zero.
 */
bp_status bp__copy_options(void *dst, size_t dst_size, const void *src, const char *what);

/* ---- thread pool ---------------------------------------------------------- */

typedef struct bp_pool bp_pool;
typedef void (*bp_task_fn)(void *arg, size_t task, int worker);

bp_status bp__pool_create(int threads, bp_pool **out);
void bp__pool_destroy(bp_pool *pool);
int bp__pool_threads(const bp_pool *pool);
/* Run fn(arg, task, worker) for task in [0, ntasks); worker in [0, threads).
 * Blocks until all tasks finish. Calls on one pool serialise. */
void bp__pool_run(bp_pool *pool, size_t ntasks, bp_task_fn fn, void *arg);

/* ---- matrices -------------------------------------------------------------- */

struct bp_matrix {
    size_t rows, cols;
    int bits;
    bp_quant_method method;
    float clip;           /* requested clip (0 = automatic); uniform only */
    size_t kwords;        /* 32-bit words per row: padded K / 32 */
    size_t row_groups;    /* ceil(rows / 16) */
    size_t plane_words;   /* uint32 words in one slab: row_groups * 16 * kwords */
    uint32_t *planes;     /* bits slabs, 64-byte aligned */
    float *coef;          /* c[n][row][p], see bp__coef() */
    double *prefix_error; /* [bits], index n-1 */
    /* Group multipliers (docs/numerics.md): the row's K words split into
     * ngroups groups of group_words words (the last may be shorter); word w
     * belongs to group w / group_words. Per-row matrices (group_size 0) have
     * one group of kwords words and every multiplier 1. */
    size_t group_size;  /* columns per group; 0 = per row */
    size_t group_words; /* group_size / 32, or kwords per row */
    size_t ngroups;     /* ceil(kwords / group_words) */
    uint8_t *mult;      /* [row_group][group][16] in 1..BP_MULT_MAX, see bp__mult() */
    /* Rotation of K (src/rotation.c): 0 = none, else the block size. */
    int rot_block;
    uint64_t rot_seed;
    uint32_t *rot_signs; /* kwords words, bit j = negate column j; NULL without rotation */
    /* Backend copies of this matrix (device uploads), made on first use and
     * freed with the matrix. The matrix stays logically immutable, so the
     * list is guarded by its own lock. */
    pthread_mutex_t cache_lock;
    struct bp_matrix_cache *caches;
};

/* One backend copy of a matrix, keyed by (owner, key): owner identifies the
 * backend (its ops table), key the device or device context. */
typedef struct bp_matrix_cache {
    struct bp_matrix_cache *next;
    const void *owner;
    const void *key;
    void *data;
    void (*destroy)(void *data);
} bp_matrix_cache;

typedef bp_status (*bp_cache_create_fn)(const bp_matrix *m, void *arg, void **data);
/* The backend copy for (owner, key), made by create(m, arg, &data) on the
 * first call; later and concurrent calls get the same data. destroy(data)
 * runs when the matrix is destroyed. */
bp_status bp__matrix_cache_get(const bp_matrix *m, const void *owner, const void *key,
                               bp_cache_create_fn create, void *arg, void (*destroy)(void *),
                               void **data);
void bp__matrix_cache_free(bp_matrix *m);

static inline size_t bp__padded_cols(size_t cols) {
    return bp__round_up(cols, BP_K_ALIGN_BITS);
}
/* Coefficients of prefix n (1..bits) for row: n floats. */
static inline float *bp__coef(const bp_matrix *m, int n, size_t row) {
    size_t base = m->rows * (size_t)(n - 1) * (size_t)n / 2;
    return m->coef + base + row * (size_t)n;
}
/* Uniform matrices: the scale of prefix n, c[n][row][p] = alpha * 2^(n-1-p),
 * so alpha is the last coefficient of the prefix. */
static inline float bp__alpha(const bp_matrix *m, int n, size_t row) {
    return bp__coef(m, n, row)[n - 1];
}
/* Largest group multiplier, and the group sizes the quantizer accepts. */
#define BP_MULT_MAX       255
#define BP_GROUP_MIN_COLS 32
#define BP_GROUP_MAX_COLS 4096
/* Grouped matrices keep |D| within int64 and the kernels' int32 partial sums
 * (BP_MULT_MAX * K < 2^31) with K at most this. */
#define BP_GROUP_MAX_K ((size_t)1 << 23)
/* The 16 multipliers of row group rg and group g, one byte per row. */
static inline const uint8_t *bp__mult_tile(const bp_matrix *m, size_t rg, size_t g) {
    return m->mult + (rg * m->ngroups + g) * BP_ROW_GROUP;
}
static inline uint8_t *bp__mult_tile_mut(bp_matrix *m, size_t rg, size_t g) {
    return m->mult + (rg * m->ngroups + g) * BP_ROW_GROUP;
}
static inline int bp__mult(const bp_matrix *m, size_t row, size_t g) {
    return bp__mult_tile(m, row / BP_ROW_GROUP, g)[row % BP_ROW_GROUP];
}
/* Whether m carries group multipliers (else every multiplier is 1). */
static inline bool bp__grouped(const bp_matrix *m) {
    return m->group_size != 0;
}
/* Largest multiplier any kernel may meet in m: 1 per row, else BP_MULT_MAX. */
static inline unsigned bp__mult_bound(const bp_matrix *m) {
    return bp__grouped(m) ? BP_MULT_MAX : 1u;
}
static inline const uint32_t *bp__slab(const bp_matrix *m, int p) {
    return m->planes + (size_t)p * m->plane_words;
}
static inline size_t bp__word_index(const bp_matrix *m, size_t row, size_t word) {
    return ((row / BP_ROW_GROUP) * m->kwords + word) * BP_ROW_GROUP + row % BP_ROW_GROUP;
}
static inline int bp__plane_bit(const bp_matrix *m, int p, size_t row, size_t col) {
    return (int)((bp__slab(m, p)[bp__word_index(m, row, col / 32)] >> (col % 32)) & 1u);
}

/* Quantizers build one row at a time in a local buffer rowbits[p][kwords]
 * (plane p's words for this row), then store it into the tiled slabs. */
/* ||w - sum_{p<n} c[p] t_p||^2 from the statistics, clamped at 0. */
double bp__row_sq_error(const double *G, int bits, const double *wt, double ww, const float *c,
                        int n);
void bp__store_row(bp_matrix *m, size_t row, const uint32_t *rowbits);

/* Allocate a matrix with zeroed planes and coefficients, per row (every
 * multiplier 1) when group_size is 0, else groups of group_size columns
 * (a power of two in BP_GROUP_MIN_COLS..BP_GROUP_MAX_COLS, checked by the
 * caller) with multipliers 1 until the quantizer sets them. */
bp_status bp__matrix_alloc(size_t rows, size_t cols, int bits, bp_matrix **out);
bp_status bp__matrix_alloc_grouped(size_t rows, size_t cols, int bits, size_t group_size,
                                   bp_matrix **out);
/* prefix_error[n-1] = sqrt(sum of row_sq_err[row*bits + n-1] / sum ww[row]). */
void bp__matrix_finish_error(bp_matrix *m, const double *row_sq_err, const double *row_ww);
/* Validate a dimension against BP_MAX_DIM with a message naming it. */
bp_status bp__check_dim(const char *name, size_t value);

/* Quantizers fill planes, multipliers and coef of an allocated matrix. w is
 * finite. Quantize rows [r0, r1): planes, coefficients, and per-row squared
 * errors sq_err[row*bits + n-1] and ww[row] (of the rotated row, which has
 * the same norm up to rounding). Each row is independent. scratch holds
 * bp__quantize_scratch_bytes(m) bytes for one row. */
typedef struct bp_quant_params {
    float clip;          /* 0 = automatic */
    const double *cal_u; /* calibration: upper factor U of H^-1 (cols x cols), or NULL */
    int cal_planes;      /* the prefix the feedback targets */
} bp_quant_params;
typedef void (*bp_quantize_rows_fn)(bp_matrix *m, const float *w, size_t ld,
                                    const bp_quant_params *qp, size_t r0, size_t r1, double *sq_err,
                                    double *ww, void *scratch);
void bp__quantize_rows_uniform(bp_matrix *m, const float *w, size_t ld, const bp_quant_params *qp,
                               size_t r0, size_t r1, double *sq_err, double *ww, void *scratch);
void bp__quantize_rows_residual(bp_matrix *m, const float *w, size_t ld, const bp_quant_params *qp,
                                size_t r0, size_t r1, double *sq_err, double *ww, void *scratch);
/* The calibration factor U (cols x cols, row-major, upper) for m's shape and
 * rotation from count sample vectors x (ld apart); the caller frees it. */
bp_status bp__calibration_factor(const bp_matrix *m, const float *x, size_t count, size_t ld,
                                 double **out);
/* One row's working memory, carved from the scratch block. */
typedef struct bp_quant_scratch {
    uint32_t *rowbits; /* bits * kwords */
    double *row;       /* cols: the (rotated) row */
    double *aux;       /* cols */
    double *aux2;      /* cols */
    uint8_t *mult;     /* ngroups */
} bp_quant_scratch;
static inline size_t bp__quantize_scratch_bytes(const bp_matrix *m) {
    return bp__round_up((size_t)m->bits * m->kwords * sizeof(uint32_t), 64) +
           3 * bp__round_up(m->cols * sizeof(double), 64) + bp__round_up(m->ngroups, 64);
}
static inline bp_quant_scratch bp__quant_scratch(const bp_matrix *m, void *scratch) {
    unsigned char *p = scratch;
    bp_quant_scratch s;
    s.rowbits = (uint32_t *)p;
    p += bp__round_up((size_t)m->bits * m->kwords * sizeof(uint32_t), 64);
    s.row = (double *)p;
    p += bp__round_up(m->cols * sizeof(double), 64);
    s.aux = (double *)p;
    p += bp__round_up(m->cols * sizeof(double), 64);
    s.aux2 = (double *)p;
    p += bp__round_up(m->cols * sizeof(double), 64);
    s.mult = p;
    return s;
}
/* The row as the quantizer sees it: rotated (bp__rotate_weights) or copied. */
void bp__load_row(const bp_matrix *m, const float *w, double *out);
/* Group multipliers of row w (doubles) into mult[0..*ngroups): ceil(255
 * max|w_g| / max|w|), or 1 per row; *gcols receives the columns per group.
 * Returns max|w|. */
double bp__group_multipliers(const bp_matrix *m, const double *w, uint8_t *mult, size_t *gcols,
                             size_t *ngroups);
/* Store the multipliers of row's first ngroups groups (the rest stay 1). */
void bp__store_row_mult(bp_matrix *m, size_t row, const uint8_t *mult, size_t ngroups);
/* Uniform quantizer pieces, exposed for tests. */
float bp__uniform_auto_clip(const float *row, size_t cols, int bits);

/* ---- rotation of K (src/rotation.c) ------------------------------------------ */

#define BP_ROTATION_MAX_BLOCK 4096
/* Rotation blocks are powers of four (docs/numerics.md). */
static inline bool bp__is_pow4(size_t v) {
    return v && !(v & (v - 1)) && (v & (size_t)0x5555555555555555ull);
}
/* Fill m->rot_signs from m->rot_seed (allocated by the caller). */
void bp__rotation_make_signs(bp_matrix *m);
/* Length of the rotation block that starts at column start. */
size_t bp__rotation_block_at(const bp_matrix *m, size_t start);
/* out (cols floats) = the rotated input x' of docs/numerics.md. */
void bp__rotate_input(const bp_matrix *m, const float *x, float *out);
/* out (cols doubles) = the rotated weight row w'. */
void bp__rotate_weights(const bp_matrix *m, const float *w, double *out);
/* The inverse of bp__rotate_weights, in place on cols doubles. */
void bp__unrotate_weights(const bp_matrix *m, double *v);
/* Bound on max|x'| / max|x| (a power of two). */
float bp__rotation_growth(const bp_matrix *m);
/* Give m a rotation (block 0 = none): allocates and fills the signs. */
bp_status bp__matrix_set_rotation(bp_matrix *m, int block, uint64_t seed);

/* ---- activations ------------------------------------------------------------- */

/* One quantized input column, as every CPU kernel sees it. */
typedef struct bp_act_column {
    int planes;       /* weight planes n this column uses */
    int act_bits;     /* 1..16 */
    bool is_signed;   /* two's complement planes; plane act_bits-1 weighs -2^(a-1) */
    bool is_zero;     /* all q are 0: output is the bias alone */
    float scale;      /* s_x */
    const int32_t *q; /* padded K quantized values; binary: +1/-1, padding 0 */
    /* kpad/32 entries, one per 32-column word: act_bits >= 2 the sum of q
     * over the word, act_bits 1 the number of valid columns in it. Popcount
     * kernels subtract sum_g m_g * (this summed over group g). */
    const int32_t *word_base;
    /* Filled by the kernel's prepare step when it needs them: */
    uint32_t *bits; /* [act plane][kwords] words; binary: one plane of sign bits */
    int32_t plane_popcount[BP_MAX_ACT_BITS];
    void *kernel_data; /* kernel-specific (LUT tables) */
} bp_act_column;

/*
 * Quantize one column by the exact rule (see README "Numerics"). q receives
 * kpad values (padding 0) followed by the kpad/32 word_base entries
 * (bp__act_q_words() int32 in all). act_scale 0 = dynamic.
 */
void bp__quantize_activations(const float *x, size_t cols, size_t kpad, int act_bits,
                              float act_scale, int32_t *q, bp_act_column *col);
static inline size_t bp__act_q_words(size_t kpad) {
    return kpad + kpad / 32;
}
/* Weight of activation plane b: +-2^b. */
static inline int64_t bp__act_plane_weight(const bp_act_column *col, int b) {
    int64_t w = (int64_t)1 << b;
    return (col->is_signed && b == col->act_bits - 1) ? -w : w;
}
/* D from per-plane AND-popcounts: sum_b w_b (2*cnt_b - popcount(a_b)). */
static inline int64_t bp__act_combine_counts(const bp_act_column *col, const int32_t *cnt,
                                             size_t stride) {
    int64_t d = 0;
    for (int b = 0; b < col->act_bits; b++)
        d += bp__act_plane_weight(col, b) *
             (2 * (int64_t)cnt[(size_t)b * stride] - col->plane_popcount[b]);
    return d;
}

/* ---- exact combine --------------------------------------------------------- */

/* The exact combine (docs/numerics.md). Residual matrices: acc = fma chain
 * of c[p] * ((float)D_p[p*stride] * s) over p = 0..n-1. Uniform
 * matrices: alpha * ((float)D_u * s). The caller adds the bias, if any, as
 * one float add. Every backend follows the same operations in this order. */
float bp__combine(const float *c, const int64_t *d, size_t stride, int n, float s);
float bp__combine_uniform(float alpha, int64_t d_u, float s);

/* ---- CPU kernels ----------------------------------------------------------- */

#define BP_KERNEL_MAX_COLS 4

/* One microkernel call: D for row groups [g0, g1) and ncols columns. */
typedef struct bp_kernel_call {
    const bp_matrix *m;
    size_t g0, g1;
    size_t ncols; /* 1..BP_KERNEL_MAX_COLS */
    const bp_act_column *cols[BP_KERNEL_MAX_COLS];
    /* The kernel output (docs/numerics.md), exact integers with the group
     * multipliers applied, for row g0*16 + r of column c:
     *  - uniform matrices: the code product D_u of the column's n planes at
     *    d[c * ld_col + r] (plane slot 0);
     *  - residual matrices: D_p of weight plane p at
     *    d[c * ld_col + p * ld_plane + r].
     * Other slots are scratch. Rows past m->rows in the last group may be
     * written and are ignored. */
    int64_t *d;
    size_t ld_plane, ld_col;
} bp_kernel_call;

typedef struct bp_cpu_kernel_desc {
    const char *name;
    /* Whether this CPU and OS can run the kernel's instructions. */
    bool (*runnable)(void);
    /* Whether this path computes exact D for these activation bits, K and
     * largest group multiplier (bp__mult_bound: 1 per row, else 255). */
    bool (*supports)(int act_bits, size_t kpad, unsigned mult_bound);
    /* Scratch bytes per column for prepare (after q). */
    size_t (*column_bytes)(int act_bits, size_t kpad);
    /* Build kernel-specific data from col->q into scratch (aligned 64). */
    void (*prepare)(bp_act_column *col, size_t kpad, void *scratch);
    void (*compute)(const bp_kernel_call *call);
} bp_cpu_kernel_desc;

/* Built on every architecture. */
extern const bp_cpu_kernel_desc bp__kernel_reference;
extern const bp_cpu_kernel_desc bp__kernel_portable;
/* x86-64 only (BP_ARCH_X86_64): referenced only under that macro. */
extern const bp_cpu_kernel_desc bp__kernel_avx512_popcount;
extern const bp_cpu_kernel_desc bp__kernel_avx512_lut;
extern const bp_cpu_kernel_desc bp__kernel_avx512_vnni;
extern const bp_cpu_kernel_desc bp__kernel_avx2_popcount;
extern const bp_cpu_kernel_desc bp__kernel_avx2_lut;
/* AArch64 only (BP_ARCH_AARCH64): referenced only under that macro. */
extern const bp_cpu_kernel_desc bp__kernel_neon_popcount;
extern const bp_cpu_kernel_desc bp__kernel_neon_lut;
extern const bp_cpu_kernel_desc bp__kernel_neon_dotprod;

/* Every kernel built for this architecture except the reference, runnable
 * here or not (for the kernel tests); *n receives the count. */
const bp_cpu_kernel_desc *const *bp__cpu_kernel_list(size_t *n);
/* The kernel of that name from the list, or NULL when not built. */
const bp_cpu_kernel_desc *bp__cpu_kernel_by_name(const char *name);

/* Uniform matrices: replace the per-plane D_p of every column in the call by
 * D_u = sum_p 2^(n-1-p) D_p in plane slot 0, for kernels that count planes. */
void bp__kernel_fold_code(const bp_kernel_call *call);

/* Shared prepare step for popcount kernels: planes + popcounts. */
size_t bp__popcount_column_bytes(int act_bits, size_t kpad);
void bp__popcount_prepare(bp_act_column *col, size_t kpad, void *scratch);

/* CPU features, probed once per process: x86 from CPUID + XCR0, AArch64
 * from the kernel's HWCAP (getauxval); false where they do not apply. */
typedef struct bp_cpu_features {
    bool avx2;             /* AVX2 with YMM state */
    bool avx_vnni;         /* AVX-VNNI (VEX VPDPBUSD on YMM) */
    bool avx512bw;         /* AVX-512 F/BW/VL with ZMM state (implies avx2) */
    bool avx512_vpopcntdq; /* and VPOPCNTDQ */
    bool avx512_vnni;      /* and VNNI */
    bool gfni;             /* and GFNI */
    bool neon;             /* AArch64 Advanced SIMD (HWCAP_ASIMD) */
    bool neon_dotprod;     /* and SDOT/UDOT (FEAT_DotProd, HWCAP_ASIMDDP) */
} bp_cpu_features;
const bp_cpu_features *bp__cpu_features(void);
bool bp__cpu_has_avx512_vpopcntdq(void);
bool bp__cpu_has_avx512bw(void);

/* ---- backends and contexts -------------------------------------------------- */

/* Validated arguments of one bp_gemm call; planes/act_bits already resolved. */
typedef struct bp_gemm_args {
    const bp_matrix *m;
    const float *x;
    size_t batch, ldx;
    float *y;
    size_t ldy;
    int planes;               /* 1..bits */
    int act_bits;             /* 1..16 */
    const float *bias;        /* NULL or rows floats */
    const int *column_planes; /* NULL or batch entries, 0 = planes */
    float act_scale;          /* 0 = dynamic */
} bp_gemm_args;

/* Copy a caller's run options (NULL = defaults) and check every knob against
 * m and batch (column_planes is read on the host). planes and act_bits come
 * back resolved (never 0). Used by bp_gemm and by the accelerators' native
 * entry points, so every entry point accepts and rejects the same options. */
bp_status bp__resolve_run_options(const bp_matrix *m, size_t batch, const bp_run_options *options,
                                  bp_run_options *out);
/* The shape checks every gemm entry point shares: batch in 1..BP_MAX_DIM,
 * ldx >= cols, ldy >= rows, and the bytes x and y span (elements of x_elem
 * and y_elem bytes) without size_t overflow. */
bp_status bp__check_gemm_shape(const bp_matrix *m, size_t batch, size_t ldx, size_t x_elem,
                               size_t ldy, size_t y_elem, size_t *xbytes, size_t *ybytes);

/* A backend is a table of functions, filled once. Adding a backend adds one
 * folder and one entry in src/context.c. fini also runs after a failed init,
 * so it must accept a partly initialised context. */
typedef struct bp_backend_ops {
    const char *name;
    bp_status (*init)(bp_context *ctx, const bp_context_options *options);
    void (*fini)(bp_context *ctx);
    bp_status (*gemm)(bp_context *ctx, const bp_gemm_args *args);
} bp_backend_ops;

extern const bp_backend_ops bp__cpu_backend;

struct bp_context {
    bp_backend backend;
    const bp_backend_ops *ops;
    int threads;
    bp_cpu_kernel cpu_kernel; /* resolved from options and BP_CPU; AUTO = per call */
    bp_pool *pool;
    void *backend_data; /* owned by ops (accelerator state); NULL for the CPU */
};

/* ---- accelerator plugins ----------------------------------------------------- */

/*
 * Accelerator backends are shared libraries (libbitplane_<name>.so.0) that do
 * not link libbitplane: a CPU-only user never needs libcudart or libOpenCL,
 * and a static-library user gets the same thread-local errors as everyone
 * else. The core hands each plugin this table of its services; the plugin
 * exports one function, bp_plugin_<name>_entry, that checks the ABI and
 * returns its ops table (NULL with an error set through host->fail when it
 * cannot run). Plugins are never unloaded, so ops and destroy callbacks in
 * matrix caches stay valid for the life of the process.
 */
#define BP_PLUGIN_ABI 2

typedef struct bp_plugin_host {
    unsigned abi;       /* BP_PLUGIN_ABI of the core */
    unsigned version;   /* BP_VERSION_NUMBER of the core */
    size_t matrix_size; /* sizeof(bp_matrix), a cheap layout check */
    size_t context_size;
    size_t args_size;
    bp_status (*fail)(bp_status status, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;
    bp_status (*matrix_cache_get)(const bp_matrix *m, const void *owner, const void *key,
                                  bp_cache_create_fn create, void *arg, void (*destroy)(void *),
                                  void **data);
    bp_status (*resolve_run_options)(const bp_matrix *m, size_t batch,
                                     const bp_run_options *options, bp_run_options *out);
    bp_status (*check_gemm_shape)(const bp_matrix *m, size_t batch, size_t ldx, size_t x_elem,
                                  size_t ldy, size_t y_elem, size_t *xbytes, size_t *ybytes);
} bp_plugin_host;

typedef const bp_backend_ops *(*bp_plugin_entry_fn)(const bp_plugin_host *host);

/* A plugin's check of the host table against its own build: true when they
 * agree. On false, the reason has been reported through host->fail. */
static inline bool bp__plugin_host_matches(const bp_plugin_host *host, const char *plugin) {
    if (!host)
        return false;
    if (host->abi != BP_PLUGIN_ABI || host->matrix_size != sizeof(bp_matrix) ||
        host->context_size != sizeof(bp_context) || host->args_size != sizeof(bp_gemm_args) ||
        host->version != BP_VERSION_NUMBER) {
        host->fail(BP_ERR_UNSUPPORTED,
                   "%s was built for a different libbitplane (plugin ABI %u, version %u; "
                   "library ABI %u, version %u): install matching versions",
                   plugin, (unsigned)BP_PLUGIN_ABI, (unsigned)BP_VERSION_NUMBER, host->abi,
                   host->version);
        return false;
    }
    return true;
}

/* Load plugin `name` ("cuda", "opencl") once per process and return its ops;
 * NULL with BP_ERR_UNSUPPORTED and a message naming every path tried. */
const bp_backend_ops *bp__plugin_load(const char *name, bp_status *status);

/* The kernel a CPU context uses for a call. */
/* What the CPU dispatcher chooses a kernel by. */
typedef struct bp_kernel_shape {
    int act_bits;
    size_t kpad;
    size_t batch;
    unsigned mult_bound;        /* bp__mult_bound(m) */
    bp_quant_method method;     /* uniform matrices may use code kernels */
    int min_planes, max_planes; /* over the call's columns */
} bp_kernel_shape;
const bp_cpu_kernel_desc *bp__select_kernel(const bp_context *ctx, const bp_kernel_shape *shape);

/* Run fn over ntasks on ctx's pool, or inline when ctx is NULL. */
void bp__parallel_for(bp_context *ctx, size_t ntasks, bp_task_fn fn, void *arg);

#endif /* BP_INTERNAL_H */
