/*
 * bitplane: bit-serial ("PrecisionBatching") neural-network inference.
 *
 * Weights are quantized once into k one-bit planes, most significant first.
 * Every call picks how many planes n (1..k) to use; popcount kernels then
 * accumulate those n planes against per-call fixed-point activations. Fewer
 * planes read fewer bytes and do fewer popcounts, so a caller trades accuracy
 * for speed per request without re-quantizing.
 *
 * Conventions that hold for every function below:
 *  - Every function that can fail returns a bp_status. On failure it writes
 *    nothing to its outputs (output handles are set to NULL) and
 *    bp_last_error() holds a precise message. The library never aborts,
 *    exits or prints.
 *  - Options are structs whose first field is `size`. Initialise them with the
 *    BP_*_OPTIONS_INIT macros; a zeroed struct with only `size` set means
 *    defaults, and a NULL options pointer means defaults too. `size` must be
 *    sizeof the struct as the caller compiled it (the _INIT macros set
 *    exactly that): it is how a library of another version knows which
 *    fields the caller has. The library reads `size` bytes from the pointer;
 *    a larger value than the caller's struct makes it read past the end of
 *    the caller's object, which is undefined behaviour it cannot detect.
 *    Bytes beyond the fields this library knows must be zero (else
 *    BP_ERR_UNSUPPORTED); a smaller size leaves the missing fields at their
 *    defaults; size values below sizeof(size_t) or above 1 MiB are
 *    rejected with BP_ERR_INVALID_ARGUMENT.
 *  - Matrices are row-major: element (r, c) of a matrix with leading
 *    dimension ld is at w[r*ld + c].
 *
 * Numerics, layouts and kernels are described in the repository's README
 * and in docs/ (docs/design.md for the architecture).
 */
#ifndef BITPLANE_H
#define BITPLANE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(BP_STATIC_DEFINE)
#define BP_API
#elif defined(__GNUC__)
#define BP_API __attribute__((visibility("default")))
#else
#define BP_API
#endif

/* ---- version ------------------------------------------------------------ */

#define BP_VERSION_MAJOR  0
#define BP_VERSION_MINOR  1
#define BP_VERSION_PATCH  0
#define BP_VERSION_NUMBER (BP_VERSION_MAJOR * 10000 + BP_VERSION_MINOR * 100 + BP_VERSION_PATCH)

/** The library's version as "MAJOR.MINOR.PATCH"; static storage. */
BP_API const char *bp_version(void);
/** The library's version as BP_VERSION_NUMBER; compare against the header's. */
BP_API unsigned bp_version_number(void);

/* ---- status ------------------------------------------------------------- */

/* One list generates both the enum and bp_status_string(). */
#define BP_STATUS_LIST(X)                                                                          \
    X(BP_OK, 0, "ok")                                                                              \
    X(BP_ERR_INVALID_ARGUMENT, 1, "invalid argument")                                              \
    X(BP_ERR_OUT_OF_RANGE, 2, "value out of range")                                                \
    X(BP_ERR_SIZE_OVERFLOW, 3, "size overflow")                                                    \
    X(BP_ERR_NON_FINITE, 4, "non-finite value (NaN or Inf)")                                       \
    X(BP_ERR_OUT_OF_MEMORY, 5, "out of memory")                                                    \
    X(BP_ERR_UNSUPPORTED, 6, "unsupported on this build or machine")                               \
    X(BP_ERR_IO, 7, "I/O error")                                                                   \
    X(BP_ERR_CORRUPT, 8, "corrupt or truncated data")                                              \
    X(BP_ERR_VERSION, 9, "unsupported file version")                                               \
    X(BP_ERR_BACKEND, 10, "backend failure")                                                       \
    X(BP_ERR_INTERNAL, 11, "internal error")

typedef enum bp_status {
#define BP_STATUS_ENUM_(name, value, text) name = value,
    BP_STATUS_LIST(BP_STATUS_ENUM_)
#undef BP_STATUS_ENUM_
} bp_status;

/** A short static description of a status ("invalid argument"). Never NULL. */
BP_API const char *bp_status_string(bp_status status);

/**
 * The calling thread's last error message, thread-local like errno: for
 * example "rows must be > 0, got 0". Set by every failing call, left alone
 * by successful ones. Works before any context exists. Never NULL; "" when
 * no call on this thread has failed. Valid until the thread's next call.
 */
BP_API const char *bp_last_error(void);

/* ---- context ------------------------------------------------------------ */

typedef enum bp_backend {
    BP_BACKEND_AUTO = 0, /* the CPU; accelerators are only used when asked for */
    BP_BACKEND_CPU = 1,
    BP_BACKEND_CUDA = 2,   /* loads libbitplane_cuda.so.0 on first use */
    BP_BACKEND_OPENCL = 3, /* loads libbitplane_opencl.so.0 on first use */
} bp_backend;

/*
 * CPU kernel paths. AUTO picks per call by the CPU, batch and act_bits (see
 * the README's kernel table for the measured rules); every path computes the
 * same exact integers, so results are bit-identical. The environment
 * variable BP_CPU=auto|reference|portable|avx2|avx2-lut|avx-vnni|avx512|
 * avx512-lut|avx512-vnni|avx512-vnni-batched|neon|neon-lut|neon-dotprod
 * overrides AUTO (an explicit option here wins over the environment). A path
 * this CPU cannot run fails context creation with BP_ERR_UNSUPPORTED.
 *  - REFERENCE: plain C from the definition, the ground truth (test oracle).
 *  - PORTABLE: word-level popcount in plain C, any CPU.
 *  - AVX2: the AVX2 path, as AUTO runs it on an AVX2 CPU without AVX-512
 *    or AVX-VNNI: plane codes unpacked once per weight tile and reused by
 *    every column (VPMADDUBSW + VPMADDWD) for uniform matrices at act_bits
 *    <= 8 in batches, AVX2_LUT's choice elsewhere.
 *  - AVX_VNNI: the same with AVX-VNNI's VPDPBUSD on YMM (needs AVX-VNNI).
 *  - AVX2_LUT: AVX2 VPSHUFB lookup tables where they are exact (act_bits
 *    2..8), AVX2 popcount elsewhere.
 *  - AVX512: AVX-512 VPOPCNTDQ popcount kernels only.
 *  - AVX512_VNNI: GFNI bit transpose + VPDPBUSD on plane codes, VPERMB byte
 *    tables for 1-plane columns (needs AVX-512 VNNI, VBMI and GFNI; act_bits
 *    <= 8), AVX512 or AVX512_LUT's choice elsewhere.
 *  - AVX512_VNNI_BATCHED: the same codes unpacked once per weight tile and
 *    reused by every column of the batch (VPDPBUSD with broadcast
 *    activations), every matrix kind and plane count at act_bits <= 8;
 *    AVX512_LUT's choice above 8.
 *  - AVX512_LUT: AVX-512BW lookup-table kernel where its int16 tables are
 *    exact (act_bits 2..11 and K*2^act_bits < 2^31), popcount elsewhere
 *    (VPOPCNTDQ when present, else AVX2).
 *  - NEON (AArch64): CNT popcount kernel, every act_bits.
 *  - NEON_LUT (AArch64): TBL lookup tables where exact (act_bits 2..11),
 *    NEON popcount elsewhere.
 *  - NEON_DOTPROD (AArch64 with FEAT_DotProd): plane codes unpacked per
 *    tile and SDOT against the activations (act_bits <= 8), NEON_LUT's
 *    choice elsewhere.
 */
typedef enum bp_cpu_kernel {
    BP_CPU_KERNEL_AUTO = 0,
    BP_CPU_KERNEL_REFERENCE = 1,
    BP_CPU_KERNEL_AVX512 = 2,
    BP_CPU_KERNEL_AVX512_LUT = 3,
    BP_CPU_KERNEL_AVX2 = 4,
    BP_CPU_KERNEL_AVX2_LUT = 5,
    BP_CPU_KERNEL_PORTABLE = 6,
    BP_CPU_KERNEL_AVX512_VNNI = 7,
    BP_CPU_KERNEL_AVX512_VNNI_BATCHED = 8,
    BP_CPU_KERNEL_AVX_VNNI = 9,
    /* AArch64 paths (values from 16 leave room for x86 ones). */
    BP_CPU_KERNEL_NEON = 16,
    BP_CPU_KERNEL_NEON_LUT = 17,
    BP_CPU_KERNEL_NEON_DOTPROD = 18,
} bp_cpu_kernel;

/**
 * The CPU kernel path named `name`, as BP_CPU and the tools spell it ("auto",
 * "reference", "portable", "avx2", "avx2-lut", "avx-vnni", "avx512",
 * "avx512-lut", "avx512-vnni", "avx512-vnni-batched", "neon", "neon-lut", "neon-dotprod"),
 * into *out. Every name is known on every architecture; whether this CPU can
 * run the path is checked when a context is created. Any other string:
 * BP_ERR_INVALID_ARGUMENT, the message listing the names.
 */
BP_API bp_status bp_cpu_kernel_from_name(const char *name, bp_cpu_kernel *out);
/** The name of a path, or NULL for a value that is not a bp_cpu_kernel.
 * Static storage. */
BP_API const char *bp_cpu_kernel_to_name(bp_cpu_kernel kernel);

/*
 * Accelerator inner paths. AUTO picks by shape (see the backend's header);
 * every path computes the same exact integers, so y is bit-identical. The
 * environment variable BP_GPU_KERNEL=auto|popcount|mma overrides AUTO (an
 * explicit option here wins). A path the device cannot run fails context
 * creation with BP_ERR_UNSUPPORTED.
 *  - POPCOUNT: AND + popcount on general-purpose cores (CUDA __popc,
 *    OpenCL popcount).
 *  - MMA: 1-bit tensor-core MMA (CUDA, sm_80 and newer).
 */
typedef enum bp_gpu_kernel {
    BP_GPU_KERNEL_AUTO = 0,
    BP_GPU_KERNEL_POPCOUNT = 1,
    BP_GPU_KERNEL_MMA = 2,
} bp_gpu_kernel;

typedef struct bp_context_options {
    size_t size;              /* sizeof(bp_context_options) */
    bp_backend backend;       /* default BP_BACKEND_AUTO */
    int threads;              /* host worker threads; 0 = all online cores; 1..1024 */
    bp_cpu_kernel cpu_kernel; /* default BP_CPU_KERNEL_AUTO (then BP_CPU applies) */
    /* Accelerator selection, ignored by the CPU backend. CUDA: device ordinal.
     * OpenCL: device index within the platform (see bitplane_opencl.h for the
     * BP_OPENCL_DEVICE override). 0 = the first device. */
    int device;
    int platform;             /* OpenCL platform index; 0 = the first platform */
    bp_gpu_kernel gpu_kernel; /* default BP_GPU_KERNEL_AUTO (then BP_GPU_KERNEL applies) */
} bp_context_options;

#define BP_CONTEXT_OPTIONS_INIT ((bp_context_options){.size = sizeof(bp_context_options)})

/**
 * A context owns a backend, its thread pool and scratch. Thread-safety:
 * concurrent calls on one context are safe but serialise; use one context
 * per thread for parallel throughput.
 */
typedef struct bp_context bp_context;

/**
 * Create a context. Fails with BP_ERR_UNSUPPORTED when the requested backend
 * or a forced CPU kernel (option or BP_CPU) cannot run on this machine.
 * Accelerator backends live in their own shared libraries
 * (libbitplane_cuda.so.0, libbitplane_opencl.so.0), loaded here on first use
 * from the directory in BP_PLUGIN_DIR, else the directory of libbitplane
 * itself, else the dynamic loader's search path. The message says which
 * files were tried and why each failed.
 * The caller owns *out and frees it with bp_context_destroy().
 */
BP_API bp_status bp_context_create(const bp_context_options *options, bp_context **out);
/** Destroy a context. NULL is a no-op. Matrices made on it stay valid. */
BP_API void bp_context_destroy(bp_context *ctx);
/** Number of worker threads the context uses (>= 1); 0 for NULL. */
BP_API int bp_context_threads(const bp_context *ctx);
/** The backend the context runs on (never AUTO); AUTO for NULL. */
BP_API bp_backend bp_context_backend(const bp_context *ctx);
/**
 * Name of the CPU kernel the context would use for a call with these
 * act_bits (0 = 8), cols and batch on a per-plane product (a residual
 * matrix, or a uniform one at 1 plane): "reference", "portable", "avx2",
 * "avx2-lut", "avx512", "avx512-lut", "neon", "neon-lut"; on a context
 * forced to "avx512-vnni" or "avx512-vnni-batched", that kernel where it
 * supports the call. Uniform matrices at 2+ planes may use "avx512-vnni",
 * the batched code kernels or "neon-dotprod" instead where the CPU has them
 * (bp_matrix_cpu_kernel_name gives the exact choice; README, kernel table).
 * Static storage. Returns NULL and sets the error for bad arguments.
 */
BP_API const char *bp_context_cpu_kernel_name(const bp_context *ctx, int act_bits, size_t cols,
                                              size_t batch);

/* ---- quantized matrices ------------------------------------------------- */

typedef enum bp_quant_method {
    /* Nested mid-rise grid: round to the nearest odd multiple of a step
     * (per group of columns: clip * max|w_row| * m_group / 255 / (2^k - 1));
     * every prefix is round-to-nearest on its own grid, with a least-squares
     * scale per prefix. Zero-free. */
    BP_QUANT_UNIFORM = 0,
    /* Greedy binary coding (sign of the residual, then mean |residual|) with
     * a joint least-squares refit of the coefficients for every prefix. */
    BP_QUANT_RESIDUAL = 1,
} bp_quant_method;

#define BP_MAX_BITS     16
#define BP_DEFAULT_BITS 8
/* act_bits: activations are quantized to 1..BP_MAX_ACT_BITS bits (0: 8). */
#define BP_MAX_ACT_BITS 16

/* group_size: one scale per row instead of per group of columns. */
#define BP_GROUP_PER_ROW (-1)
/* rotation: no rotation of K. */
#define BP_ROTATION_NONE (-1)
/* What 0 selects (docs/numerics.md, README "Numerics"). */
#define BP_DEFAULT_GROUP_SIZE 32
#define BP_DEFAULT_ROTATION   256

typedef struct bp_quant_options {
    size_t size;            /* sizeof(bp_quant_options) */
    int bits;               /* planes k, 1..16; 0 = 8 */
    bp_quant_method method; /* default BP_QUANT_UNIFORM */
    /* Uniform only: clip ratio in (0, 1] of each group's range. 0 =
     * automatic: with group scales 1 (the groups follow their own range);
     * per row, the ratio that minimises the mean over n = 2..6 of
     * log(relative row error), searched in [0.7, 1]. */
    float clip;
    /* Columns per group scale: 0 = BP_DEFAULT_GROUP_SIZE; BP_GROUP_PER_ROW;
     * or a power of two in 32..4096. Each (row, group) gets an 8-bit integer
     * multiplier m in 1..255 of the row's scale (0.25 bits per weight at 32,
     * 0.125 at 64). Grouped matrices need cols <= 2^23. */
    int group_size;
    /* Randomized block-Hadamard rotation of K: 0 = BP_DEFAULT_ROTATION
     * (none when the inputs are non-negative, see nonnegative_inputs);
     * BP_ROTATION_NONE; or a power-of-four block in 4..4096 (orthonormal
     * with a power-of-two scale). Weights are quantized after the rotation
     * and bp_gemm rotates x itself, so callers pass plain x. K past the last
     * whole block is split into smaller power-of-four blocks. */
    int rotation;
    /* Seed of the rotation's random signs (stored in the file). */
    uint64_t rotation_seed;
    /* Uniform only: sample activations to minimise the output error
     * ||W X - W_n X|| instead of the weight error (GPTQ-style error feedback
     * on the nested grid, docs/numerics.md). calibration_count vectors of
     * cols floats, vector i at calibration + i * calibration_ld; NULL =
     * none. Costs O(cols^3) once and 16 cols^2 bytes. Give more samples
     * than cols: fewer leave the sample covariance rank-deficient, and the
     * feedback then fits the samples rather than the inputs. */
    const float *calibration;
    size_t calibration_count;
    size_t calibration_ld;
    /* Plane count the feedback targets, 1..bits; 0 = 4 (or bits if fewer).
     * Shorter prefixes are the truncations of its code; longer ones refine
     * it toward the compensated weights. */
    int calibration_planes;
    /* Nonzero: the caller promises every input column is >= 0 (after a
     * ReLU, pixel values). Then rotation 0 means none: a rotated
     * non-negative column is signed, and the activation quantizer would lose
     * its unsigned mode's extra bit (docs/numerics.md). Calibration samples
     * that are all >= 0 imply it. An explicit rotation block still rotates. */
    int nonnegative_inputs;
    /* Per-row plane counts (docs/row-planes.md): rows entries in w's row
     * order, each 1..bits, the most planes that row ever uses; a call's
     * planes cap it further (row r uses min(row_planes[r], planes)). Rows
     * are stored by count so that a call reads only the planes its rows
     * use; y still comes back in w's row order. NULL (or every count equal
     * to bits) = every row has all planes. RNN layers take theirs in
     * bp_rnn_options.row_planes (bitplane_rnn.h) and refuse this field.
     * bp_row_planes_from_scores() derives counts from importance scores. */
    const uint8_t *row_planes;
} bp_quant_options;

#define BP_QUANT_OPTIONS_INIT ((bp_quant_options){.size = sizeof(bp_quant_options)})

/**
 * A quantized weight matrix: k bit planes plus coefficient tables and the
 * recorded error of every prefix. Logically immutable. Thread-safety: any
 * number of threads may use one matrix at once (bp_gemm with different plane
 * counts, dequantize, save). It lives on the host and is not tied to the
 * context that made it: any context of any backend may use it (a CPU-made
 * or loaded matrix runs on a CUDA or OpenCL context, which uploads it once
 * per device on first use), and it does not keep its context alive.
 */
typedef struct bp_matrix bp_matrix;

/**
 * Name of the CPU kernel a bp_gemm call on m with these planes (0 = all,
 * the same for every column), act_bits (0 = 8) and batch would use on ctx
 * (the exact choice, including "avx512-vnni" or "neon-dotprod" for uniform
 * matrices). Static
 * storage. Returns NULL and sets the error for bad arguments.
 */
BP_API const char *bp_matrix_cpu_kernel_name(const bp_context *ctx, const bp_matrix *m, int planes,
                                             int act_bits, size_t batch);

/** Largest supported rows and cols (each); larger sizes give BP_ERR_SIZE_OVERFLOW. */
#define BP_MAX_DIM ((size_t)1 << 28)

/**
 * Quantize the rows x cols float matrix w (leading dimension ld >= cols).
 * Weights must be finite: NaN or Inf gives BP_ERR_NON_FINITE naming the first
 * offending element. The caller owns *out (bp_matrix_destroy()).
 */
BP_API bp_status bp_matrix_quantize(bp_context *ctx, const float *w, size_t rows, size_t cols,
                                    size_t ld, const bp_quant_options *options, bp_matrix **out);
/** Free a matrix. NULL is a no-op. */
BP_API void bp_matrix_destroy(bp_matrix *m);
/** Rows (output length), cols (input length K) and planes k; 0 for NULL. */
BP_API size_t bp_matrix_rows(const bp_matrix *m);
BP_API size_t bp_matrix_cols(const bp_matrix *m);
BP_API int bp_matrix_bits(const bp_matrix *m);
/** The quantizer that made the matrix. */
BP_API bp_quant_method bp_matrix_method(const bp_matrix *m);
/** Columns per group scale (0 = one scale per row); 0 for NULL. */
BP_API size_t bp_matrix_group_size(const bp_matrix *m);
/** Rotation block of K (0 = no rotation); 0 for NULL. */
BP_API int bp_matrix_rotation(const bp_matrix *m);
/**
 * Recorded relative weight error ||W - W_n||_F / ||W||_F with n planes,
 * n in 1..bits (0 when W is all zero). Returns a negative value and sets the
 * error when m is NULL or n is out of range.
 */
BP_API double bp_matrix_prefix_error(const bp_matrix *m, int n);
/**
 * The per-row plane counts of m in the caller's row order (rows bytes into
 * out): the counts given to bp_matrix_quantize, or bits for every row of a
 * matrix made without them.
 */
BP_API bp_status bp_matrix_row_planes(const bp_matrix *m, uint8_t *out);
/**
 * Weight bytes a product with `planes` planes (0 = all) reads from m in the
 * CPU layout: the bit slabs' row groups of 16 rows (K padded to 64 bits)
 * that hold a row using plane p < planes, plus 4 bytes of coefficient per
 * row and plane used, plus, with group scales, the one-byte multiplier of
 * every (row, group) at any plane count (0.125 bits per weight at groups
 * of 64). Returns 0 and sets the error for bad arguments.
 */
BP_API size_t bp_matrix_bytes_read(const bp_matrix *m, int planes);
/**
 * Per-row plane counts from importance scores (higher score, more planes)
 * and a budget, the mean planes per row (1..bits): rows split into `classes`
 * (1..bits) classes of evenly spaced counts around the budget, equal shares
 * of rows ranked by score filled from the top in blocks of 16 rows (single
 * rows under 64 rows per class) while the mean stays <= budget
 * (docs/row-planes.md gives the rule). out receives
 * rows counts in the scores' order. Scores must be finite.
 */
BP_API bp_status bp_row_planes_from_scores(const float *scores, size_t rows, int bits,
                                           double budget, int classes, uint8_t *out);
/**
 * Write the effective weights at `planes` planes (0 = all) into out
 * (rows x cols, leading dimension ld >= cols). The work is done on the
 * calling thread from the host copy of the matrix: ctx is accepted for
 * symmetry with the other calls but not used, and may be NULL.
 */
BP_API bp_status bp_matrix_dequantize(bp_context *ctx, const bp_matrix *m, int planes, float *out,
                                      size_t ld);

/* ---- inference ---------------------------------------------------------- */

typedef struct bp_run_options {
    size_t size; /* sizeof(bp_run_options) */
    int planes;  /* weight planes n, 1..bits; 0 = all */
    /* Activation bits a: 0 = 8; 2..16 fixed point (unsigned when the whole
     * column is >= 0, else signed); 1 = binary sign with scale mean|x|
     * (XNOR-popcount). */
    int act_bits;
    const float *bias;        /* rows floats added to every output column, or NULL */
    const int *column_planes; /* batch plane counts (1..bits, 0 = `planes`), or NULL */
    /* 0 = dynamic scale max|x|/L per column. > 0: fixed scale s, so that
     * x is represented as s*q with q saturated to the act_bits range. */
    float act_scale;
} bp_run_options;

#define BP_RUN_OPTIONS_INIT ((bp_run_options){.size = sizeof(bp_run_options)})

/**
 * y = W_n x (+ bias) for `batch` input columns.
 * Input column i is x + i*ldx (cols floats, ldx >= cols); output column i is
 * y + i*ldy (rows floats, ldy >= rows). x and y must not overlap.
 *
 * Activations are quantized per column on every call with an exact rule, so
 * for act_bits >= 2 every backend, kernel path, thread count and batch
 * position gives bit-identical y. Non-finite inputs (x, bias) give
 * BP_ERR_NON_FINITE before any work, and y is left untouched. A result that
 * overflows float (the weights times x beyond FLT_MAX) gives
 * BP_ERR_NON_FINITE after the work, never a silent Inf: y then holds the
 * results, with Inf where they overflowed (the OpenCL backend leaves y
 * untouched). On any other failure y is left untouched.
 */
BP_API bp_status bp_gemm(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch,
                         size_t ldx, float *y, size_t ldy, const bp_run_options *options);

/** Elementwise function bp_gemm_act applies to each output after the bias. */
typedef enum bp_activation {
    BP_ACTIVATION_NONE = 0, /* y = W_n x (+ bias), as bp_gemm */
    BP_ACTIVATION_RELU = 1  /* y = max(W_n x (+ bias), 0): +0 for every v <= 0, -0 included */
} bp_activation;

/**
 * bp_gemm followed by `activation` on every output, in one call: the CPU
 * backend applies it in its combine, as each output is written (a layer
 * followed by a ReLU then needs no second pass over y); other backends run
 * the product and then one pass over y. The same bits as bp_gemm and the
 * activation applied to its y, on every backend, kernel, thread count and
 * batch position (act_bits >= 2). Errors as bp_gemm, and an activation
 * outside bp_activation gives BP_ERR_INVALID_ARGUMENT before any work. An
 * overflow is detected before the activation: BP_ERR_NON_FINITE, with y
 * holding the activated results on the CPU (an overflow to -Inf is 0
 * after a ReLU) and what bp_gemm leaves there on other backends.
 */
BP_API bp_status bp_gemm_act(bp_context *ctx, const bp_matrix *m, const float *x, size_t batch,
                             size_t ldx, float *y, size_t ldy, const bp_run_options *options,
                             bp_activation activation);

/* ---- files -------------------------------------------------------------- */

/*
 * A versioned little-endian format with a CRC-32C checksum; every field is
 * validated on load. Corrupt data gives BP_ERR_CORRUPT, a newer format
 * version BP_ERR_VERSION.
 */

/**
 * Write m to path, replacing it atomically: the data goes to a temporary
 * file in the same directory, which is fsynced and renamed over path, and
 * the directory is fsynced. If the save fails (disk full, EFBIG, ...) path
 * keeps its previous content and the temporary file is removed. A symbolic
 * link at path is replaced by the file, not followed. Writes past
 * RLIMIT_FSIZE fail with EFBIG only when SIGXFSZ is ignored by the process
 * (the library does not change signal dispositions).
 */
BP_API bp_status bp_matrix_save(const bp_matrix *m, const char *path);
/**
 * Read a matrix written by bp_matrix_save. The caller owns *out. Only a
 * regular file is read (a FIFO, device or directory gives BP_ERR_IO at once,
 * without blocking); the 64-byte header is checked first and then exactly
 * the length it declares is read, so a foreign or oversized file is refused
 * after 64 bytes. The matrix is built on the host: ctx is accepted for
 * symmetry but not used, and may be NULL.
 */
BP_API bp_status bp_matrix_load(bp_context *ctx, const char *path, bp_matrix **out);
/**
 * Serialise into buf (capacity cap). *needed always receives the full size.
 * With buf NULL (cap 0) it only reports the size; a short buffer gives
 * BP_ERR_OUT_OF_RANGE.
 */
BP_API bp_status bp_matrix_serialize(const bp_matrix *m, void *buf, size_t cap, size_t *needed);
/** Parse a buffer written by bp_matrix_serialize. The caller owns *out.
 * ctx is not used and may be NULL, as for bp_matrix_load. */
BP_API bp_status bp_matrix_deserialize(bp_context *ctx, const void *buf, size_t len,
                                       bp_matrix **out);

#ifdef __cplusplus
}
#endif

#endif /* BITPLANE_H */
