/*
 * Kernel-level exactness: each kernel's prepare + compute, called
 * directly through bp_kernel_call, must produce D equal bit for bit to the
 * reference kernel's D, which computes sum_j t_j q_j from the definition.
 *
 * Shapes cover K that is not a multiple of 32 or 64, M that is not a
 * multiple of 16, every act_bits each kernel supports, signed and unsigned
 * columns, 1..4 columns per call with their own plane counts, and row-group
 * sub-ranges. Extreme cases (every weight +1 or -1, every |q| = L) hit the
 * accumulator bounds: int16 flushes in the LUT kernel, int64 widening in the
 * popcount kernel. Kernels must not write planes a column does not use.
 */
#include "test_util.h"
#include "../cpu/cpu_kernel.h"

#include "tu_criterion.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(kernels, .fini = tu_suite_fini);

#define NELEM(a)  (sizeof(a) / sizeof((a)[0]))
#define UNTOUCHED INT64_C(0x5a5a5a5a5a5a5a5a)

/* 129 and 300 span several 8-row-group passes of the LUT kernel plus a tail. */
static const size_t kM[] = {1, 15, 16, 17, 33, 129, 300};
/* K is padded to 64 bits: rows of 2, 4, 6, 8, 16, 18 ... words. */
static const size_t kK[] = {1, 31, 33, 65, 96, 200, 511, 512, 513, 4097};

typedef enum act_kind {
    ACT_SIGNED,       /* Gaussian: signed mode */
    ACT_UNSIGNED,     /* |Gaussian|: unsigned mode */
    ACT_EXTREME,      /* every |q| = L (signed: random signs; unsigned: constant) */
    ACT_MAX_UNSIGNED, /* every x = 1: unsigned, every q = L = 2^a - 1 */
} act_kind;

typedef struct kcase {
    size_t rows, cols;
    int bits;
    bool const_weights; /* every weight +1 (or -1): all planes all ones (zeros) */
    float weight_sign;
    int act_bits;
    size_t ncols;
    act_kind kinds[BP_KERNEL_MAX_COLS];
    int planes[BP_KERNEL_MAX_COLS];
    size_t g0, g1;     /* 0, 0 = all row groups */
    size_t group_size; /* 0 = per row, else random multipliers (255 when extreme) */
} kcase;

/* The multiplier bound a kernel must support for this case. */
static unsigned case_mult_bound(const kcase *kc) {
    return kc->group_size ? BP_MULT_MAX : 1u;
}

#define KCASE_FMT                                                                                  \
    "M=%zu K=%zu bits=%d const_w=%d act_bits=%d ncols=%zu g=[%zu,%zu) group_size=%zu "             \
    "seed=%" PRIu64

static const char *kind_name(act_kind k) {
    return k == ACT_SIGNED     ? "signed"
           : k == ACT_UNSIGNED ? "unsigned"
           : k == ACT_EXTREME  ? "extreme"
                               : "max-unsigned";
}

static void fill_column(tu_rng *rng, float *x, size_t cols, act_kind kind) {
    if (kind == ACT_MAX_UNSIGNED) {
        tu_fill_value(x, cols, 1.0f);
        return;
    }
    if (kind == ACT_EXTREME) {
        bool neg = tu_range(rng, 0, 1);
        for (size_t j = 0; j < cols; j++)
            x[j] = neg ? (tu_range(rng, 0, 1) ? 1.0f : -1.0f) : 1.0f;
        if (neg && cols > 0)
            x[0] = -1.0f; /* keep the column signed */
        return;
    }
    tu_fill_gauss(rng, x, cols, 1.0f);
    if (kind == ACT_UNSIGNED)
        for (size_t j = 0; j < cols; j++)
            x[j] = fabsf(x[j]);
}

/* Asserts the kernel's D equals the reference's on every compared slot and
 * left every unused plane slot untouched; returns whether any was nonzero. */
static bool compare_d(const bp_cpu_kernel_desc *kernel, const kcase *kc, const bp_matrix *m,
                      const int64_t *d_ref, const int64_t *d_ker, size_t g0, size_t g1,
                      size_t ld_plane, size_t ld_col, uint64_t seed) {
    bool any_nonzero = false;
    size_t rows_in_range = m->rows - g0 * BP_ROW_GROUP;
    if (rows_in_range > (g1 - g0) * BP_ROW_GROUP)
        rows_in_range = (g1 - g0) * BP_ROW_GROUP;
    for (size_t c = 0; c < kc->ncols; c++) {
        /* Uniform: D_u in slot 0, the other used slots are scratch. */
        const int compared = m->method == BP_QUANT_UNIFORM ? 1 : kc->planes[c];
        for (int p = 0; p < kc->bits; p++) {
            const int64_t *dr = d_ref + c * ld_col + (size_t)p * ld_plane;
            const int64_t *dk = d_ker + c * ld_col + (size_t)p * ld_plane;
            for (size_t r = 0; r < rows_in_range; r++) {
                if (p >= compared && p < kc->planes[c])
                    continue;
                if (p >= kc->planes[c]) {
                    cr_assert(dk[r] == UNTOUCHED,
                              "%s wrote plane %d of column %zu, which uses %d planes; " KCASE_FMT,
                              kernel->name, p, c, kc->planes[c], kc->rows, kc->cols, kc->bits,
                              kc->const_weights, kc->act_bits, kc->ncols, g0, g1, kc->group_size,
                              seed);
                    continue;
                }
                any_nonzero |= dr[r] != 0;
                cr_assert(dk[r] == dr[r],
                          "%s: D[col %zu (%s, %d planes)][plane %d][row %zu] = %" PRId64
                          ", reference %" PRId64 "; " KCASE_FMT,
                          kernel->name, c, kind_name(kc->kinds[c]), kc->planes[c], p,
                          g0 * BP_ROW_GROUP + r, dk[r], dr[r], kc->rows, kc->cols, kc->bits,
                          kc->const_weights, kc->act_bits, kc->ncols, g0, g1, kc->group_size, seed);
            }
        }
    }

    return any_nonzero;
}

/* Runs one case on each of the nk kernels and once on the reference (the
 * matrix, the columns and the reference D are built once: they dominate the
 * time, under qemu-user most of all); asserts every kernel's D is identical
 * to the reference's. Returns whether any compared D was nonzero (tiny
 * shapes can cancel to 0). */
static bool run_case_set(const bp_cpu_kernel_desc *const *kernels, size_t nk, const kcase *kc,
                         uint64_t seed) {
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_REFERENCE, 1);

    float *w = tu_xmalloc(kc->rows * kc->cols * sizeof *w);
    if (kc->const_weights)
        tu_fill_value(w, kc->rows * kc->cols, kc->weight_sign);
    else
        tu_fill_gauss(&rng, w, kc->rows * kc->cols, 1.0f);
    bp_quant_method method = tu_range(&rng, 0, 1) ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM;
    if (kc->const_weights)
        method = BP_QUANT_UNIFORM;
    bp_matrix *m = tu_quantize(ctx, w, kc->rows, kc->cols, kc->cols, kc->bits, method,
                               method == BP_QUANT_UNIFORM ? 1.0f : 0.0f);
    tu_set_groups(m, kc->group_size, kc->const_weights ? NULL : &rng);

    const size_t kpad = bp__padded_cols(kc->cols);
    size_t g0 = kc->g0, g1 = kc->g1 ? kc->g1 : m->row_groups;
    const size_t ld_plane = (g1 - g0) * BP_ROW_GROUP + 3; /* odd, to catch stride bugs */
    const size_t ld_col = (size_t)kc->bits * ld_plane;
    const size_t dlen = kc->ncols * ld_col;
    int64_t *d_ref = tu_xmalloc(dlen * sizeof *d_ref);
    int64_t *d_ker = tu_xmalloc(dlen * sizeof *d_ker);
    for (size_t i = 0; i < dlen; i++)
        d_ref[i] = UNTOUCHED;

    float *x = tu_xmalloc((kc->cols ? kc->cols : 1) * sizeof *x);
    int32_t *q[BP_KERNEL_MAX_COLS];
    void *scratch[BP_KERNEL_MAX_COLS];
    bp_act_column ref_cols[BP_KERNEL_MAX_COLS], ker_cols[BP_KERNEL_MAX_COLS];
    bp_kernel_call ref_call = {.m = m,
                               .g0 = g0,
                               .g1 = g1,
                               .ncols = kc->ncols,
                               .d = d_ref,
                               .ld_plane = ld_plane,
                               .ld_col = ld_col};
    bp_kernel_call ker_call = ref_call;
    ker_call.d = d_ker;
    for (size_t c = 0; c < kc->ncols; c++) {
        fill_column(&rng, x, kc->cols, kc->kinds[c]);
        q[c] = bp__aligned_alloc(bp__act_q_words(kpad) * sizeof(int32_t));
        cr_assert(q[c] != NULL);
        bp__quantize_activations(x, kc->cols, kpad, kc->act_bits, 0.0f, q[c], &ref_cols[c]);
        ref_cols[c].planes = kc->planes[c];
        cr_assert(!ref_cols[c].is_zero, "test data must not be all zero");
        ref_call.cols[c] = &ref_cols[c];
    }
    bp__kernel_reference.compute(&ref_call);

    bool any_nonzero = false;
    for (size_t ki = 0; ki < nk; ki++) {
        const bp_cpu_kernel_desc *kernel = kernels[ki];
        for (size_t i = 0; i < dlen; i++)
            d_ker[i] = UNTOUCHED;
        for (size_t c = 0; c < kc->ncols; c++) {
            ker_cols[c] = ref_cols[c];
            /* One spare byte keeps the allocation non-empty. */
            scratch[c] = bp__aligned_alloc(kernel->column_bytes(kc->act_bits, kpad) + 1);
            cr_assert(scratch[c] != NULL);
            kernel->prepare(&ker_cols[c], kpad, scratch[c]);
            ker_call.cols[c] = &ker_cols[c];
        }
        kernel->compute(&ker_call);
        any_nonzero |= compare_d(kernel, kc, m, d_ref, d_ker, g0, g1, ld_plane, ld_col, seed);
        for (size_t c = 0; c < kc->ncols; c++)
            bp__aligned_free(scratch[c]);
    }

    for (size_t c = 0; c < kc->ncols; c++)
        bp__aligned_free(q[c]);
    free(x);
    free(d_ref);
    free(d_ker);
    free(w);
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
    return any_nonzero;
}

static bool run_case(const bp_cpu_kernel_desc *kernel, const kcase *kc, uint64_t seed) {
    return run_case_set(&kernel, 1, kc, seed);
}

/* The kernels a sweep covers: every one built here that this CPU runs. */
#define MAX_KERNELS 16
typedef struct kset {
    const bp_cpu_kernel_desc *k[MAX_KERNELS];
    size_t n;
} kset;

/*
 * Runs kc on every kernel of ks that takes its act_bits and K: those that
 * take its multipliers on kc as drawn, per-row-only ones on the same case
 * per row. ran[i][a] counts the offers to kernel i.
 */
static void run_for_kernels(const kset *ks, const kcase *kc, uint64_t seed,
                            size_t (*ran)[BP_MAX_ACT_BITS + 1], size_t *cases, size_t *nonzero) {
    const size_t kpad = bp__padded_cols(kc->cols);
    const bp_cpu_kernel_desc *grouped[MAX_KERNELS], *per_row[MAX_KERNELS];
    size_t ng = 0, np = 0;
    for (size_t i = 0; i < ks->n; i++) {
        if (!ks->k[i]->supports(kc->act_bits, kpad, 1))
            continue;
        ran[i][kc->act_bits]++;
        if (ks->k[i]->supports(kc->act_bits, kpad, case_mult_bound(kc)))
            grouped[ng++] = ks->k[i];
        else
            per_row[np++] = ks->k[i];
    }
    if (ng) {
        *nonzero += run_case_set(grouped, ng, kc, seed);
        ++*cases;
    }
    if (np) {
        kcase k0 = *kc;
        k0.group_size = 0; /* a per-row-only kernel: test it per row */
        *nonzero += run_case_set(per_row, np, &k0, seed);
        ++*cases;
    }
}

/* Guards the sweeps against silently comparing zeros with zeros. A case
 * may be zero by chance (constant weights over K extreme +-L activations
 * sum to exactly 0 with probability about sqrt(2 / (pi K)), 0.3 % at
 * K = 70000), so a tenth of the cases, and at least one, may be. */
static void assert_mostly_nonzero(size_t nonzero, size_t cases, uint64_t seed) {
    const size_t spare = cases / 10 > 1 ? cases / 10 : 1;
    cr_assert(cases > 0 && nonzero > 0 && cases - nonzero <= spare,
              "only %zu of %zu cases had a nonzero D; seed=%" PRIu64, nonzero, cases, seed);
}

/* A random case of the given shape: random kinds, plane counts, row range. */
static kcase random_case(tu_rng *rng, size_t rows, size_t cols, int act_bits, size_t ncols) {
    kcase kc = {.rows = rows, .cols = cols, .act_bits = act_bits, .ncols = ncols};
    kc.bits = (int)tu_range(rng, 1, BP_MAX_BITS);
    for (size_t c = 0; c < ncols; c++) {
        kc.kinds[c] = (act_kind)tu_range(rng, 0, 2);
        kc.planes[c] = (int)tu_range(rng, 1, (size_t)kc.bits);
    }
    size_t groups = (rows + BP_ROW_GROUP - 1) / BP_ROW_GROUP;
    if (groups > 1 && tu_range(rng, 0, 1)) {
        kc.g0 = tu_range(rng, 0, groups - 1);
        kc.g1 = tu_range(rng, kc.g0 + 1, groups);
    }
    /* Half the cases grouped, 32..4096 columns per group. */
    if (tu_range(rng, 0, 1))
        kc.group_size = (size_t)32 << tu_range(rng, 0, 7);
    return kc;
}

/* The sweeps skip shapes a kernel's supports() refuses; a kernel that
 * wrongly refused an act_bits it is meant to handle would otherwise pass by
 * running nothing. Every act_bits in [a_lo, a_hi] must have run. */
/* The act_bits each kernel must handle on per-row matrices (its supports()
 * may refuse others, where dispatch falls back). A kernel missing here must
 * handle them all. */
static bool must_handle(const bp_cpu_kernel_desc *kernel, int a) {
    if (!strcmp(kernel->name, "avx512-lut") || !strcmp(kernel->name, "avx2-lut") ||
        !strcmp(kernel->name, "neon-lut"))
        return a >= 2 && a <= 11;
    if (!strcmp(kernel->name, "avx512-vnni") || !strcmp(kernel->name, "avx512-vnni-batched") ||
        !strcmp(kernel->name, "avx2-batched") || !strcmp(kernel->name, "avx-vnni-batched") ||
        !strcmp(kernel->name, "neon-dotprod"))
        return a <= 8;
    return true;
}

static void assert_every_act_bits_ran(const kset *ks, size_t (*ran)[BP_MAX_ACT_BITS + 1], int a_lo,
                                      int a_hi) {
    for (size_t i = 0; i < ks->n; i++)
        for (int a = a_lo; a <= a_hi; a++)
            cr_assert(ran[i][a] > 0 || !must_handle(ks->k[i], a),
                      "%s refused every shape at act_bits %d, which it must handle", ks->k[i]->name,
                      a);
}

/* Every shape x act_bits for one column, both signedness modes. */
static void sweep_gemv(const kset *ks, int a_lo, int a_hi) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t cases = 0, nonzero = 0, ran[MAX_KERNELS][BP_MAX_ACT_BITS + 1] = {{0}};
    for (int a = a_lo; a <= a_hi; a++)
        for (size_t i = 0; i < NELEM(kM); i++)
            for (size_t k = 0; k < NELEM(kK); k++)
                for (int kind = ACT_SIGNED; kind <= ACT_UNSIGNED; kind++) {
                    kcase kc = random_case(&rng, kM[i], kK[k], a, 1);
                    kc.kinds[0] = (act_kind)kind;
                    run_for_kernels(ks, &kc, tu_next(&rng) >> 12, ran, &cases, &nonzero);
                }
    assert_mostly_nonzero(nonzero, cases, seed);
    assert_every_act_bits_ran(ks, ran, a_lo, a_hi);
}

/* Batches of 2..4 columns with their own plane counts and modes. */
static void sweep_gemm(const kset *ks, int a_lo, int a_hi) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t cases = 0, nonzero = 0, ran[MAX_KERNELS][BP_MAX_ACT_BITS + 1] = {{0}};
    for (int a = a_lo; a <= a_hi; a++)
        for (size_t ncols = 2; ncols <= BP_KERNEL_MAX_COLS; ncols++)
            for (int rep = 0; rep < 4; rep++) {
                size_t rows = kM[tu_range(&rng, 0, NELEM(kM) - 1)];
                size_t cols = kK[tu_range(&rng, 0, NELEM(kK) - 1)];
                kcase kc = random_case(&rng, rows, cols, a, ncols);
                run_for_kernels(ks, &kc, tu_next(&rng) >> 12, ran, &cases, &nonzero);
            }
    assert_mostly_nonzero(nonzero, cases, seed);
}

/* All weights +1 or -1 and all |q| = L: the largest sums each path allows. */
static void sweep_extreme(const kset *ks, int a_lo, int a_hi, size_t cols) {
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t cases = 0, nonzero = 0, ran[MAX_KERNELS][BP_MAX_ACT_BITS + 1] = {{0}};
    for (int a = a_lo; a <= a_hi; a++)
        for (int sign = 0; sign < 2; sign++) {
            kcase kc = random_case(&rng, 17, cols, a, 1 + (size_t)(a % BP_KERNEL_MAX_COLS));
            kc.const_weights = true;
            kc.weight_sign = sign ? 1.0f : -1.0f;
            for (size_t c = 0; c < kc.ncols; c++)
                kc.kinds[c] = ACT_EXTREME;
            run_for_kernels(ks, &kc, tu_next(&rng) >> 12, ran, &cases, &nonzero);
        }
    assert_mostly_nonzero(nonzero, cases, seed);
    assert_every_act_bits_ran(ks, ran, a_lo, a_hi);
}

/* Every kernel built for this architecture that this CPU can run. */
static kset runnable_kernels(void) {
    size_t n;
    const bp_cpu_kernel_desc *const *list = bp__cpu_kernel_list(&n);
    kset ks = {.n = 0};
    char skipped[256] = "";
    cr_assert(n <= MAX_KERNELS, "%zu kernels, MAX_KERNELS is %d", n, MAX_KERNELS);
    for (size_t i = 0; i < n; i++) {
        if (!list[i]->runnable()) {
            size_t len = strlen(skipped);
            snprintf(skipped + len, sizeof skipped - len, "%s%s", len ? ", " : "", list[i]->name);
            continue;
        }
        ks.k[ks.n++] = list[i];
    }
    cr_assert(ks.n >= 1, "the portable kernel runs everywhere");
    if (skipped[0])
        cr_log_info("kernels this CPU cannot run, not tested here: %s", skipped);
    return ks;
}

/* The named kernel, or a skip when it is not built or cannot run here. */
static const bp_cpu_kernel_desc *require_kernel(const char *name) {
    const bp_cpu_kernel_desc *k = bp__cpu_kernel_by_name(name);
    if (!k)
        cr_skip_test("the %s kernel is not built for this architecture", name);
    if (!k->runnable())
        cr_skip_test("this CPU cannot run the %s kernel", name);
    return k;
}

/* act_bits 1..16 in four tests of four, so parallel runners (and the
 * emulated ARM64 suite, one CTest entry per test) split the longest sweep. */
Test(kernels, gemv_act_bits_1_to_4) {
    kset ks = runnable_kernels();
    sweep_gemv(&ks, 1, 4);
}

Test(kernels, gemv_act_bits_5_to_8) {
    kset ks = runnable_kernels();
    sweep_gemv(&ks, 5, 8);
}

Test(kernels, gemv_act_bits_9_to_12) {
    kset ks = runnable_kernels();
    sweep_gemv(&ks, 9, 12);
}

Test(kernels, gemv_act_bits_13_to_16) {
    kset ks = runnable_kernels();
    sweep_gemv(&ks, 13, BP_MAX_ACT_BITS);
}

Test(kernels, gemm_mixed_planes_act_bits_1_to_8) {
    kset ks = runnable_kernels();
    sweep_gemm(&ks, 1, 8);
}

Test(kernels, gemm_mixed_planes_act_bits_9_to_16) {
    kset ks = runnable_kernels();
    sweep_gemm(&ks, 9, BP_MAX_ACT_BITS);
}

/* Every line of every lane at the per-line bound: int16 flush intervals of
 * the LUT kernels, int64 widening of the popcount kernels. */
Test(kernels, extreme_values) {
    kset ks = runnable_kernels();
    sweep_extreme(&ks, 1, BP_MAX_ACT_BITS, 4097);
    /* |D| = K * (2^16 - 1) needs more than 32 bits (kernels that take it). */
    sweep_extreme(&ks, 16, 16, 70000);
}

/* The popcount kernels back the LUT paths, so they must take everything. */
Test(kernels, popcount_kernels_support_everything) {
    static const char *const names[] = {"portable", "avx2", "avx512", "neon"};
    for (size_t i = 0; i < NELEM(names); i++) {
        const bp_cpu_kernel_desc *k = bp__cpu_kernel_by_name(names[i]);
        if (!k)
            continue;
        for (int a = 1; a <= BP_MAX_ACT_BITS; a++)
            cr_assert(k->supports(a, (size_t)1 << 28, 1), "%s act_bits %d", k->name, a);
    }
}

/* Largest kpad (a multiple of BP_K_ALIGN_BITS, at most BP_MAX_DIM padded) the kernel
 * accepts at act_bits a; 0 when none. Assumes supports() is monotonic in
 * kpad, which lut_exact_at_its_largest_k checks at the boundary. */
static size_t largest_supported_kpad(const bp_cpu_kernel_desc *k, int a) {
    size_t lo = 0, hi = bp__padded_cols(BP_MAX_DIM) / BP_K_ALIGN_BITS; /* in alignment units */
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (k->supports(a, mid * BP_K_ALIGN_BITS, 1))
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo * BP_K_ALIGN_BITS;
}

/*
 * Whatever K the LUT kernel claims to support, it must be exact there. With
 * every weight +1 and every q = L (unsigned), the int32 row sums reach
 * kpad * L, the largest any input gives: a bound in supports() that is too
 * generous by even one BP_K_ALIGN_BITS-column step wraps them and D differs from the
 * reference. Run where that bound is below 2^23 columns (act_bits 9..11; at
 * smaller act_bits it lies beyond what a test can allocate).
 */
static void lut_exact_at_its_largest_k(const char *name) {
    const bp_cpu_kernel_desc *k = require_kernel(name);
    cr_assert(!k->supports(1, 512, 1), "act_bits 1 is the XNOR case, not a LUT one");
    cr_assert(!k->supports(12, 512, 1), "int16 tables cannot hold 4L at act_bits 12");
    size_t ran = 0;
    for (int a = 2; a <= 11; a++) {
        size_t kmax = largest_supported_kpad(k, a);
        cr_assert(kmax >= 4096, "%s act_bits %d: supports only %zu columns", name, a, kmax);
        cr_assert(!k->supports(a, kmax + BP_K_ALIGN_BITS, 1) ||
                      kmax + BP_K_ALIGN_BITS > bp__padded_cols(BP_MAX_DIM),
                  "act_bits %d: supports() is not monotonic above %zu", a, kmax);
        if (kmax > ((size_t)1 << 23))
            continue;
        kcase kc = {.rows = 1,
                    .cols = kmax,
                    .bits = 1,
                    .const_weights = true,
                    .weight_sign = 1.0f,
                    .act_bits = a,
                    .ncols = 1,
                    .kinds = {ACT_MAX_UNSIGNED},
                    .planes = {1}};
        cr_assert(run_case(k, &kc, tu_seed()), "act_bits %d K %zu: D was zero", a, kmax);
        ran++;
    }
    cr_assert(ran >= 3, "%s: the largest-K check ran for only %zu act_bits", name, ran);
}

Test(kernels, avx512_lut_exact_at_its_largest_k, .timeout = 300) {
    lut_exact_at_its_largest_k("avx512-lut");
}

Test(kernels, avx2_lut_exact_at_its_largest_k, .timeout = 300) {
    lut_exact_at_its_largest_k("avx2-lut");
}

/*
 * Batched kernels (compute_batch): one call with the whole batch must give
 * the reference's D for every column. Batches 1, 3, 8, 33 and 360, K not a
 * multiple of 32 or 512, odd row counts and row-group sub-ranges, group
 * multipliers, act_bits 1..8 in both modes, uniform and residual matrices,
 * one plane count for the batch or one per column (1..bits, up to 16).
 * A batch_spec fixes the matrix and the plane counts; without one (NULL)
 * they are random.
 */
typedef struct batch_spec {
    int bits;
    bp_quant_method method;
    const int *planes; /* batch entries */
    /* 0: random (per row, or a random group size); -1: per row; else the
     * group size. */
    int group;
    const act_kind *kinds; /* batch entries, or NULL: random */
} batch_spec;

static bool run_batch_case(const bp_cpu_kernel_desc *kernel, size_t rows, size_t cols, size_t batch,
                           int act_bits, uint64_t seed, const batch_spec *spec) {
    tu_rng rng;
    tu_rng_init(&rng, seed);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_REFERENCE, 1);
    float *w = tu_xmalloc(rows * cols * sizeof *w);
    tu_fill_gauss(&rng, w, rows * cols, 1.0f);
    const int bits = spec ? spec->bits : (int)tu_range(&rng, 1, BP_MAX_BITS);
    bp_quant_method method = spec                   ? spec->method
                             : tu_range(&rng, 0, 1) ? BP_QUANT_RESIDUAL
                                                    : BP_QUANT_UNIFORM;
    bp_matrix *m = tu_quantize(ctx, w, rows, cols, cols, bits, method,
                               method == BP_QUANT_UNIFORM ? 1.0f : 0.0f);
    const size_t group_size = spec && spec->group    ? (spec->group > 0 ? (size_t)spec->group : 0)
                              : tu_range(&rng, 0, 1) ? (size_t)32 << tu_range(&rng, 0, 7)
                                                     : 0;
    tu_set_groups(m, group_size, &rng);
    size_t g0 = 0, g1 = m->row_groups;
    if (g1 > 1 && tu_range(&rng, 0, 1)) {
        g0 = tu_range(&rng, 0, g1 - 1);
        g1 = tu_range(&rng, g0 + 1, g1);
    }
    const bool mixed = tu_range(&rng, 0, 1);
    const int common = (int)tu_range(&rng, 1, (size_t)bits);

    const size_t kpad = bp__padded_cols(cols);
    const size_t ld_plane = (g1 - g0) * BP_ROW_GROUP + 3; /* odd, to catch stride bugs */
    const size_t ld_col = (size_t)bits * ld_plane;
    int64_t *d_ref = tu_xmalloc(batch * ld_col * sizeof *d_ref);
    int64_t *d_ker = tu_xmalloc(batch * ld_col * sizeof *d_ker);
    int32_t *q = bp__aligned_alloc(batch * bp__act_q_words(kpad) * sizeof(int32_t));
    const size_t sbytes = bp__round_up(kernel->column_bytes(act_bits, kpad) + 1, BP_ALIGN);
    unsigned char *scratch = bp__aligned_alloc(batch * sbytes);
    bp_act_column *ref_cols = tu_xmalloc(batch * sizeof *ref_cols);
    bp_act_column *ker_cols = tu_xmalloc(batch * sizeof *ker_cols);
    const bp_act_column **ker_ptrs = tu_xmalloc(batch * sizeof *ker_ptrs);
    float *x = tu_xmalloc(cols * sizeof *x);
    cr_assert(q && scratch);
    for (size_t c = 0; c < batch; c++) {
        fill_column(&rng, x, cols,
                    spec && spec->kinds ? spec->kinds[c] : (act_kind)tu_range(&rng, 0, 2));
        bp__quantize_activations(x, cols, kpad, act_bits, 0.0f, q + c * bp__act_q_words(kpad),
                                 &ref_cols[c]);
        ref_cols[c].planes = spec    ? spec->planes[c]
                             : mixed ? (int)tu_range(&rng, 1, (size_t)bits)
                                     : common;
        cr_assert(!ref_cols[c].is_zero, "test data must not be all zero");
        ker_cols[c] = ref_cols[c];
        kernel->prepare(&ker_cols[c], kpad, scratch + c * sbytes);
        ker_ptrs[c] = &ker_cols[c];
    }
    for (size_t i = 0; i < batch * ld_col; i++)
        d_ref[i] = d_ker[i] = UNTOUCHED;
    for (size_t c0 = 0; c0 < batch; c0 += BP_KERNEL_MAX_COLS) {
        bp_kernel_call rc = {.m = m,
                             .g0 = g0,
                             .g1 = g1,
                             .d = d_ref + c0 * ld_col,
                             .ld_plane = ld_plane,
                             .ld_col = ld_col};
        for (size_t c = c0; c < batch && c < c0 + BP_KERNEL_MAX_COLS; c++)
            rc.cols[rc.ncols++] = &ref_cols[c];
        bp__kernel_reference.compute(&rc);
    }
    bp_kernel_batch_call kc = {.m = m,
                               .g0 = g0,
                               .g1 = g1,
                               .ncols = batch,
                               .cols = ker_ptrs,
                               .d = d_ker,
                               .ld_plane = ld_plane,
                               .ld_col = ld_col};
    kernel->compute_batch(&kc);

    size_t nrows = m->rows - g0 * BP_ROW_GROUP;
    if (nrows > (g1 - g0) * BP_ROW_GROUP)
        nrows = (g1 - g0) * BP_ROW_GROUP;
    bool any_nonzero = false;
    for (size_t c = 0; c < batch; c++) {
        const int n = ref_cols[c].planes;
        const int compared = method == BP_QUANT_UNIFORM ? 1 : n;
        for (int p = 0; p < compared; p++)
            for (size_t r = 0; r < nrows; r++) {
                const size_t i = c * ld_col + (size_t)p * ld_plane + r;
                any_nonzero |= d_ref[i] != 0;
                cr_assert(d_ker[i] == d_ref[i],
                          "%s batch %zu: D[col %zu (%d planes)][plane %d][row %zu] = %" PRId64
                          ", reference %" PRId64 "; M=%zu K=%zu bits=%d %s act_bits=%d "
                          "group_size=%zu g=[%zu,%zu) seed=%" PRIu64,
                          kernel->name, batch, c, n, p, g0 * BP_ROW_GROUP + r, d_ker[i], d_ref[i],
                          rows, cols, bits, method == BP_QUANT_UNIFORM ? "uniform" : "residual",
                          act_bits, group_size, g0, g1, seed);
            }
        for (int p = n; p < bits; p++)
            for (size_t r = 0; r < nrows; r++)
                cr_assert(d_ker[c * ld_col + (size_t)p * ld_plane + r] == UNTOUCHED,
                          "%s wrote plane %d of column %zu, which uses %d planes; seed=%" PRIu64,
                          kernel->name, p, c, n, seed);
    }
    free(x);
    free(ker_ptrs);
    free(ker_cols);
    free(ref_cols);
    bp__aligned_free(scratch);
    bp__aligned_free(q);
    free(d_ker);
    free(d_ref);
    free(w);
    bp_matrix_destroy(m);
    bp_context_destroy(ctx);
    return any_nonzero;
}

static void batch_all(const bp_cpu_kernel_desc *k) {
    static const size_t batches[] = {1, 3, 8, 33, 360};
    static const size_t rows[] = {1, 17, 33, 129};
    static const size_t cols[] = {31, 100, 513, 1500};
    if (!k->compute_batch)
        return;
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t cases = 0, nonzero = 0;
    for (int a = 1; a <= 8; a++)
        for (size_t b = 0; b < NELEM(batches); b++) {
            if (!k->supports(a, bp__padded_cols(1500), BP_MULT_MAX))
                continue;
            /* The largest batch on the smaller shapes, to keep the test quick. */
            size_t ri = tu_range(&rng, 0, NELEM(rows) - 1), ki = tu_range(&rng, 0, NELEM(cols) - 1);
            if (batches[b] > 64) {
                ri = ri % 2;
                ki = ki % 2;
            }
            nonzero +=
                run_batch_case(k, rows[ri], cols[ki], batches[b], a, tu_next(&rng) >> 12, NULL);
            cases++;
        }
    cr_assert(cases > 0, "%s has compute_batch but took no act_bits 1..8", k->name);
    assert_mostly_nonzero(nonzero, cases, seed);
}

Test(kernels, batched_matches_reference) {
    size_t n, ran = 0;
    const bp_cpu_kernel_desc *const *list = bp__cpu_kernel_list(&n);
    for (size_t i = 0; i < n; i++)
        if (list[i]->compute_batch && list[i]->runnable()) {
            batch_all(list[i]);
            ran++;
        }
    if (!ran)
        cr_skip_test("no batched kernel runs on this CPU");
}

/*
 * Mixed plane counts in one batched call, the case a server's coalesced
 * requests make (the batched code kernel unpacks each tile once at the
 * longest code and masks it for shorter ones): every non-empty subset of
 * 1..8 as the batch's plane counts, each count on 1-3 columns in random
 * order; act_bits 1..8 and random column modes (signed, unsigned, extreme);
 * uniform 8-bit matrices, uniform 16-bit ones with counts beyond 8 (both
 * chunks mixed), residual ones; per-row and grouped, K tails, row ranges.
 */
static void mixed_subsets(const bp_cpu_kernel_desc *k) {
    static const size_t rows[] = {17, 33, 64};
    static const size_t cols[] = {31, 100, 513, 700};
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t cases = 0, nonzero = 0;
    int planes[8 * 3];
    for (unsigned subset = 1; subset < 256; subset++) {
        const int a = 1 + (int)(subset % 8);
        const int kind = (int)tu_range(&rng, 0, 3);
        batch_spec spec = {.bits = kind == 3 ? 16 : 8,
                           .method = kind == 2 ? BP_QUANT_RESIDUAL : BP_QUANT_UNIFORM,
                           .planes = planes};
        size_t batch = 0;
        for (int n = 1; n <= 8; n++)
            for (size_t rep = tu_range(&rng, 1, 3); (subset >> (n - 1) & 1u) && rep; rep--)
                planes[batch++] = n + (spec.bits == 16 && tu_range(&rng, 0, 1) ? 8 : 0);
        for (size_t i = batch; i > 1; i--) { /* shuffle: runs must not rely on order */
            size_t j = tu_range(&rng, 0, i - 1);
            int t = planes[i - 1];
            planes[i - 1] = planes[j];
            planes[j] = t;
        }
        if (!k->supports(a, bp__padded_cols(700), BP_MULT_MAX))
            continue;
        nonzero += run_batch_case(k, rows[tu_range(&rng, 0, NELEM(rows) - 1)],
                                  cols[tu_range(&rng, 0, NELEM(cols) - 1)], batch, a,
                                  tu_next(&rng) >> 12, &spec);
        cases++;
    }
    cr_assert(cases > 0, "%s has compute_batch but took no act_bits 1..8", k->name);
    assert_mostly_nonzero(nonzero, cases, seed);
}

Test(kernels, batched_mixed_plane_subsets, .timeout = 300) {
    size_t n, ran = 0;
    const bp_cpu_kernel_desc *const *list = bp__cpu_kernel_list(&n);
    for (size_t i = 0; i < n; i++)
        if (list[i]->compute_batch && list[i]->runnable()) {
            mixed_subsets(list[i]);
            ran++;
        }
    if (!ran)
        cr_skip_test("no batched kernel runs on this CPU");
}

/*
 * Every code length the batched code kernels unpack, each on its own and
 * masked from a longer one: plane counts 1..8 (8-bit) and 9..16 (16-bit,
 * both chunks), mixed batches whose longest code is at most 4 (the AVX-512
 * kernel's two-rows-per-transpose unpack) or above 4 (its byte tree),
 * residual matrices (1-plane units); per row and grouped (32, 64, 512), K
 * in one word pair, a tile and a tile plus a tail, 1-3 row groups (one and
 * two per register tile); signed, unsigned and extreme columns in every
 * batch; act_bits 1..8 in turn. Fresh random weights and activations.
 */
static void every_code_length(const bp_cpu_kernel_desc *k) {
    static const int groups[] = {-1, 32, 64, 512};
    static const size_t cols[] = {31, 100, 513, 1100};
    static const size_t rows[] = {16, 33, 40};
    /* The last two: offset (unsigned) columns at some lengths below the
     * longest, other lengths in between signed or absent. */
    static const int mixed[][6] = {{4, 3, 2, 1, 1, 4}, {2, 1, 2, 1, 2, 1}, {3, 1, 3, 3, 1, 1},
                                   {8, 4, 1, 5, 2, 7}, {5, 2, 5, 1, 3, 4}, {6, 6, 5, 5, 6, 5},
                                   {7, 6, 3, 7, 6, 3}, {2, 8, 2, 3, 8, 6}};
    static const act_kind kinds[6] = {ACT_SIGNED,   ACT_UNSIGNED, ACT_EXTREME,
                                      ACT_UNSIGNED, ACT_SIGNED,   ACT_MAX_UNSIGNED};
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t cases = 0, nonzero = 0;
    int planes[6];
    for (size_t gi = 0; gi < NELEM(groups); gi++)
        for (int n = 1; n <= 16 + (int)NELEM(mixed) + 1; n++) {
            batch_spec spec = {.bits = n > 8 && n <= 16 ? 16 : 8,
                               .method = BP_QUANT_UNIFORM,
                               .planes = planes,
                               .group = groups[gi],
                               .kinds = kinds};
            for (int c = 0; c < 6; c++)
                planes[c] = n <= 16 ? n : n <= 16 + (int)NELEM(mixed) ? mixed[n - 17][c] : 1 + c;
            if (n == 16 + (int)NELEM(mixed) + 1)
                spec.method = BP_QUANT_RESIDUAL;
            const int a = 1 + (int)(cases % 8);
            if (!k->supports(a, bp__padded_cols(1100), BP_MULT_MAX))
                continue;
            nonzero += run_batch_case(k, rows[tu_range(&rng, 0, NELEM(rows) - 1)],
                                      cols[tu_range(&rng, 0, NELEM(cols) - 1)], 6, a,
                                      tu_next(&rng) >> 12, &spec);
            cases++;
        }
    cr_assert(cases > 0, "%s has compute_batch but took no act_bits 1..8", k->name);
    assert_mostly_nonzero(nonzero, cases, seed);
}

Test(kernels, batched_every_code_length, .timeout = 300) {
    size_t n, ran = 0;
    const bp_cpu_kernel_desc *const *list = bp__cpu_kernel_list(&n);
    for (size_t i = 0; i < n; i++)
        if (list[i]->compute_batch && list[i]->runnable()) {
            every_code_length(list[i]);
            ran++;
        }
    if (!ran)
        cr_skip_test("no batched kernel runs on this CPU");
}

/*
 * The offset terms of unsigned 8-bit columns at every code length in one
 * unit (the batched code kernels form them per length from per-plane bit
 * counts): planes 1..8 each on 1-3 unsigned (random or all at 255)
 * columns, in random order, one batch; per row and grouped (32 to 512: one
 * to 16 segments per K block), K in one tile, a tile and a tail, or several
 * tiles; 1-3 row groups. act_bits 8, where the offset applies.
 */
static void offset_every_length(const bp_cpu_kernel_desc *k) {
    static const int groups[] = {-1, 32, 64, 128, 512};
    static const size_t cols[] = {100, 513, 1100, 2100};
    static const size_t rows[] = {16, 33, 40};
    uint64_t seed = tu_seed();
    tu_rng rng;
    tu_rng_init(&rng, seed);
    size_t cases = 0, nonzero = 0;
    int planes[8 * 3];
    act_kind kinds[8 * 3];
    if (!k->supports(8, bp__padded_cols(2100), BP_MULT_MAX))
        return;
    for (size_t gi = 0; gi < NELEM(groups); gi++)
        for (size_t ki = 0; ki < NELEM(cols); ki++) {
            size_t batch = 0;
            for (int n = 1; n <= 8; n++)
                for (size_t rep = tu_range(&rng, 1, 3); rep; rep--) {
                    kinds[batch] = tu_range(&rng, 0, 1) ? ACT_UNSIGNED : ACT_MAX_UNSIGNED;
                    planes[batch++] = n;
                }
            for (size_t i = batch; i > 1; i--) { /* shuffle */
                size_t j = tu_range(&rng, 0, i - 1);
                int t = planes[i - 1];
                planes[i - 1] = planes[j];
                planes[j] = t;
            }
            batch_spec spec = {.bits = 8,
                               .method = BP_QUANT_UNIFORM,
                               .planes = planes,
                               .group = groups[gi],
                               .kinds = kinds};
            nonzero += run_batch_case(k, rows[tu_range(&rng, 0, NELEM(rows) - 1)], cols[ki], batch,
                                      8, tu_next(&rng) >> 12, &spec);
            cases++;
        }
    assert_mostly_nonzero(nonzero, cases, seed);
}

Test(kernels, batched_offset_terms_every_length, .timeout = 300) {
    size_t n, ran = 0;
    const bp_cpu_kernel_desc *const *list = bp__cpu_kernel_list(&n);
    for (size_t i = 0; i < n; i++)
        if (list[i]->compute_batch && list[i]->runnable()) {
            offset_every_length(list[i]);
            ran++;
        }
    if (!ran)
        cr_skip_test("no batched kernel runs on this CPU");
}

/* A batched code kernel's grouped int32 sums near their bound (its header):
 * every multiplier 255, every weight of one sign (all codes 0 or all
 * 2^n - 1), every q at L, K over several 512-column tiles and a tail, in
 * groups of 32 to 512 (256: the plain AVX2 kernel's int16 sums of a
 * group's q' at their largest, 127 * 256; 512: one group per tile), one
 * call per plane set (one length, or lengths
 * 8/7/4/1 masked from one unpack; 7 and 4 are the AVX2 kernels' full code
 * widths, where the centre form adds its Q' term). */
static void grouped_at_int32_bound(const char *name) {
    const bp_cpu_kernel_desc *k = require_kernel(name);
    static const int plane_sets[][BP_KERNEL_MAX_COLS] = {
        {8, 8, 8, 8}, {8, 7, 4, 1}, {7, 7, 7, 7}, {4, 4, 4, 4}};
    size_t cases = 0, nonzero = 0;
    for (int sign = 0; sign < 2; sign++)
        for (size_t group_size = 32; group_size <= 512; group_size *= 2)
            for (int act_bits = 7; act_bits <= 8; act_bits++)
                for (size_t ps = 0; ps < NELEM(plane_sets); ps++) {
                    kcase kc = {.rows = 33,
                                .cols = 2048 + 96,
                                .bits = 8,
                                .const_weights = true,
                                .weight_sign = sign ? 1.0f : -1.0f,
                                .act_bits = act_bits,
                                .ncols = BP_KERNEL_MAX_COLS,
                                .group_size = group_size};
                    for (size_t c = 0; c < kc.ncols; c++) {
                        kc.kinds[c] = ACT_MAX_UNSIGNED;
                        kc.planes[c] = plane_sets[ps][c];
                    }
                    nonzero += run_case_set(&k, 1, &kc, tu_seed() + cases);
                    cases++;
                }
    /* All-zero codes give D = -(2^n - 1) sum q, never zero here. */
    cr_assert_eq(nonzero, cases, "every case must have a nonzero D");
}

Test(kernels, batched_grouped_at_int32_bound, .timeout = 300) {
    grouped_at_int32_bound("avx512-vnni-batched");
}

Test(kernels, avx2_batched_grouped_at_int32_bound, .timeout = 300) {
    grouped_at_int32_bound("avx2-batched");
}

Test(kernels, avx_vnni_batched_grouped_at_int32_bound, .timeout = 300) {
    grouped_at_int32_bound("avx-vnni-batched");
}

Test(kernels, neon_lut_exact_at_its_largest_k, .timeout = 300) {
    lut_exact_at_its_largest_k("neon-lut");
}

/*
 * AArch64 dispatch (docs/kernels.md): AUTO takes the dot-product code kernel
 * for uniform matrices from 2 planes where the CPU has FEAT_DotProd, else
 * lookup tables from act_bits 6 and popcount below; a forced path falls back
 * where its kernel is not exact, and forcing neon-dotprod on a CPU without
 * the extension is refused with the reason. CI runs this under qemu-user
 * with and without the extension.
 */
Test(kernels, neon_dispatch) {
    if (!bp__cpu_kernel_by_name("neon"))
        cr_skip_test("the NEON kernels are built for AArch64 only");
    const bool dotprod = bp__cpu_features()->neon_dotprod;
    /* Set by the cross build for its run on a CPU model with the extension
     * (tests/CMakeLists.txt), so that neon-dotprod cannot go untested. */
    const char *require = getenv("BP_TEST_REQUIRE_DOTPROD");
    if (require && strcmp(require, "1") == 0)
        cr_assert(dotprod, "BP_TEST_REQUIRE_DOTPROD=1, but this CPU lacks FEAT_DotProd");
    tu_rng rng;
    tu_rng_init(&rng, tu_seed());
    const size_t rows = 32, cols = 256;
    float *w = tu_xmalloc(rows * cols * sizeof *w);
    tu_fill_gauss(&rng, w, rows * cols, 1.0f);
    bp_context *ctx = tu_context(BP_CPU_KERNEL_AUTO, 1);
    bp_matrix *u = tu_quantize(ctx, w, rows, cols, cols, 8, BP_QUANT_UNIFORM, 0.0f);
    bp_matrix *r = tu_quantize(ctx, w, rows, cols, cols, 4, BP_QUANT_RESIDUAL, 0.0f);
    const char *code = dotprod ? "neon-dotprod" : "neon-lut";
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 4, 8, 1), code);
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 2, 8, 8), code);
    /* Instruction counts per line (cpu/cpu_dispatch.c): 8 planes at act_bits 2
     * take popcount (2 x 8 x 16 < 363); 2 planes at act_bits 3, popcount at
     * batch 1 (96 < 107) and the shared codes at batch 4. */
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 8, 2, 1), "neon");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 4, 4, 1), dotprod ? code : "neon");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 2, 3, 1), "neon");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 2, 3, 4), dotprod ? code : "neon");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 1, 8, 1), "neon-lut");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 4, 9, 1), "neon-lut");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 4, 12, 1), "neon");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, r, 4, 8, 1), "neon-lut");
    cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, r, 4, 4, 1), "neon");
    for (int a = 1; a <= BP_MAX_ACT_BITS; a++)
        cr_expect(strcmp(bp_matrix_cpu_kernel_name(ctx, u, 0, a, 1), "reference") != 0,
                  "AUTO must never fall back to the reference (act_bits %d)", a);
    bp_context_destroy(ctx);

    ctx = tu_context(BP_CPU_KERNEL_NEON_LUT, 1);
    for (int a = 1; a <= BP_MAX_ACT_BITS; a++)
        cr_expect_str_eq(bp_matrix_cpu_kernel_name(ctx, u, 4, a, 1),
                         (a >= 2 && a <= 11) ? "neon-lut" : "neon", "act_bits %d", a);
    bp_context_destroy(ctx);

    bp_context *dp = tu_context_try(BP_CPU_KERNEL_NEON_DOTPROD, 1);
    if (!dotprod) {
        cr_expect(dp == NULL, "neon-dotprod must be refused without FEAT_DotProd");
        cr_expect(strstr(bp_last_error(), "FEAT_DotProd") != NULL, "reason: %s", bp_last_error());
    } else {
        cr_assert(dp != NULL, "neon-dotprod refused on a CPU with FEAT_DotProd: %s",
                  bp_last_error());
        for (int a = 1; a <= BP_MAX_ACT_BITS; a++)
            cr_expect_str_eq(bp_matrix_cpu_kernel_name(dp, u, 1, a, 1),
                             a <= 8    ? "neon-dotprod"
                             : a <= 11 ? "neon-lut"
                                       : "neon",
                             "act_bits %d", a);
        bp_context_destroy(dp);
    }
    bp_matrix_destroy(u);
    bp_matrix_destroy(r);
    free(w);
}
