/*
 * What an accelerator plugin sees of the core: the weight layout and the
 * bp_matrix that carries it, the context, the backend ops table and the
 * host services table. Plugins include this header and no other internal
 * one, so CPU-side changes never reach them. A change to anything here
 * bumps BP_PLUGIN_ABI.
 *
 * Not installed.
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
 *  - K is padded to a multiple of 64 bits (kwords even, any count >= 2), so
 *    small layers (K = 64..256) read and count no padding lines; kernels run
 *    word by word. Padding columns and padding rows are 0 bits; activation
 *    padding is 0 as well, so padding adds nothing in both the AND form and
 *    the XOR (binary) form. The file format stores unpadded rows, and the
 *    CUDA device copy pads further to 512 bits (cuda/cuda_layout.h).
 *  - Per-row plane counts (docs/row-planes.md): rows are stored permuted by
 *    count, descending (perm[stored] = caller row), and slab p holds only
 *    the row groups 0..slab_groups[p]-1 that contain a row with count > p,
 *    at word slab_offset[p]; the bits of a row at planes >= its count are 0.
 *    Without counts every slab holds every group at p * plane_words.
 */
#ifndef BP_ABI_H
#define BP_ABI_H

#include "bitplane.h"
#include "bp_mem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BP_ROW_GROUP    16
#define BP_K_ALIGN_BITS 64
#define BP_ALIGN        64

/* Opaque to plugins; only the CPU backend runs it. */
typedef struct bp_pool bp_pool;

/* ---- matrices -------------------------------------------------------------- */

struct bp_matrix {
    size_t rows, cols;
    int bits;
    bp_quant_method method;
    float clip;         /* requested clip (0 = automatic); uniform only */
    size_t kwords;      /* 32-bit words per row: padded K / 32 */
    size_t row_groups;  /* ceil(rows / 16) */
    size_t plane_words; /* uint32 words in one full slab: row_groups * 16 * kwords */
    uint32_t *planes;   /* bits slabs, 64-byte aligned; see bp__slab() */
    /* Slab p: slab_groups[p] row groups from word slab_offset[p]. */
    size_t slab_groups[BP_MAX_BITS];
    size_t slab_offset[BP_MAX_BITS];
    /* Per-row plane counts (NULL when every row has all planes): rows are
     * stored by count, descending, stable. perm[stored row] = caller row;
     * row_planes[stored row] = its count, non-increasing, 1..bits. Rows of
     * one count form run i = stored rows [run_start[i], run_start[i+1])
     * with count run_planes[i], i < nruns (0 without counts). */
    uint32_t *perm;
    uint8_t *row_planes;
    int nruns;
    size_t run_start[BP_MAX_BITS + 1];
    uint8_t run_planes[BP_MAX_BITS];
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
    return m->planes + m->slab_offset[p];
}
/* Whether m has per-row plane counts. */
static inline bool bp__has_row_planes(const bp_matrix *m) {
    return m->row_planes != NULL;
}
/* Planes stored row `row` (stored order) has: its count, or bits. */
static inline int bp__row_planes(const bp_matrix *m, size_t row) {
    return m->row_planes ? m->row_planes[row] : m->bits;
}
/* Words the slabs occupy: slab_offset[bits-1] + its groups. */
static inline size_t bp__planes_words(const bp_matrix *m) {
    return m->slab_offset[m->bits - 1] +
           m->slab_groups[m->bits - 1] * (size_t)BP_ROW_GROUP * m->kwords;
}
static inline size_t bp__word_index(const bp_matrix *m, size_t row, size_t word) {
    return ((row / BP_ROW_GROUP) * m->kwords + word) * BP_ROW_GROUP + row % BP_ROW_GROUP;
}
/* Bit of stored row `row`; 0 for a row group slab p does not hold. */
static inline int bp__plane_bit(const bp_matrix *m, int p, size_t row, size_t col) {
    if (row / BP_ROW_GROUP >= m->slab_groups[p])
        return 0;
    return (int)((bp__slab(m, p)[bp__word_index(m, row, col / 32)] >> (col % 32)) & 1u);
}

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

/* A backend is a table of functions, filled once. Adding a backend adds one
 * folder and one entry in src/context.c. fini also runs after a failed init,
 * so it must accept a partly initialised context. */
typedef struct bp_backend_ops {
    const char *name;
    bp_status (*init)(bp_context *ctx, const bp_context_options *options);
    void (*fini)(bp_context *ctx);
    bp_status (*gemm)(bp_context *ctx, const bp_gemm_args *args);
} bp_backend_ops;

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
#define BP_PLUGIN_ABI 3

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

#endif /* BP_ABI_H */
