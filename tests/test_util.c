#define _POSIX_C_SOURCE 200809L
#include "test_util.h"
#include "bp_abi.h"

#include "tu_criterion.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- random numbers ------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t tu_seed(void) {
    static uint64_t counter;
    const char *env = getenv("BP_TEST_SEED");
    if (env && *env)
        return strtoull(env, NULL, 0) + counter++;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)getpid() << 32;
    x += 0x632be59bd9b4e019ull * ++counter;
    /* Keep it readable and below 2^53 so it survives any printing. */
    return splitmix64(&x) >> 12;
}

void tu_rng_init(tu_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t tu_next(tu_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tu_uniform(tu_rng *rng) {
    return (double)(tu_next(rng) >> 11) * 0x1.0p-53;
}

size_t tu_range(tu_rng *rng, size_t lo, size_t hi) {
    return lo + (size_t)(tu_next(rng) % (uint64_t)(hi - lo + 1));
}

double tu_gauss(tu_rng *rng) {
    double u1, u2;
    do
        u1 = tu_uniform(rng);
    while (u1 <= 0.0);
    u2 = tu_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void tu_fill_gauss(tu_rng *rng, float *a, size_t n, float sigma) {
    for (size_t i = 0; i < n; i++) {
        float v;
        do
            v = (float)(tu_gauss(rng) * sigma);
        while (v == 0.0f);
        a[i] = v;
    }
}

void tu_fill_uniform(tu_rng *rng, float *a, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) {
        float v;
        do
            v = (float)(lo + (hi - lo) * tu_uniform(rng));
        while (v == 0.0f);
        a[i] = v;
    }
}

void tu_fill_gauss_ld(tu_rng *rng, float *a, size_t rows, size_t cols, size_t ld, float sigma,
                      float gap) {
    for (size_t r = 0; r < rows; r++) {
        tu_fill_gauss(rng, a + r * ld, cols, sigma);
        for (size_t c = cols; c < ld; c++)
            a[r * ld + c] = gap;
    }
}

void tu_fill_value(float *a, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        a[i] = v;
}

void *tu_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    cr_assert(p != NULL, "test allocation of %zu bytes failed", bytes);
    return p;
}

void *tu_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    cr_assert(p != NULL, "test allocation of %zu x %zu bytes failed", n, size);
    return p;
}

/* ---- kernel paths ---------------------------------------------------------- */

const char *tu_kernel_name(bp_cpu_kernel k) {
    switch (k) {
    case BP_CPU_KERNEL_AUTO:
        return "auto";
    case BP_CPU_KERNEL_REFERENCE:
        return "reference";
    case BP_CPU_KERNEL_AVX512:
        return "avx512";
    case BP_CPU_KERNEL_AVX512_LUT:
        return "avx512-lut";
    case BP_CPU_KERNEL_AVX2:
        return "avx2";
    case BP_CPU_KERNEL_AVX2_LUT:
        return "avx2-lut";
    case BP_CPU_KERNEL_PORTABLE:
        return "portable";
    case BP_CPU_KERNEL_AVX512_VNNI:
        return "avx512-vnni";
    case BP_CPU_KERNEL_AVX512_VNNI_BATCHED:
        return "avx512-vnni-batched";
    case BP_CPU_KERNEL_AVX_VNNI:
        return "avx-vnni";
    case BP_CPU_KERNEL_NEON:
        return "neon";
    case BP_CPU_KERNEL_NEON_LUT:
        return "neon-lut";
    case BP_CPU_KERNEL_NEON_DOTPROD:
        return "neon-dotprod";
    }
    return "?";
}

static bp_status make_context(bp_cpu_kernel kernel, int threads, bp_context **out) {
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = BP_BACKEND_CPU;
    o.cpu_kernel = kernel;
    o.threads = threads;
    return bp_context_create(&o, out);
}

size_t tu_cpu_paths(tu_path *paths, char *missing, size_t missing_cap) {
    static const bp_cpu_kernel all[] = {
        BP_CPU_KERNEL_REFERENCE,   BP_CPU_KERNEL_PORTABLE,
        BP_CPU_KERNEL_AVX2,        BP_CPU_KERNEL_AVX2_LUT,
        BP_CPU_KERNEL_AVX512,      BP_CPU_KERNEL_AVX512_LUT,
        BP_CPU_KERNEL_AVX512_VNNI, BP_CPU_KERNEL_AVX512_VNNI_BATCHED,
        BP_CPU_KERNEL_AVX_VNNI,    BP_CPU_KERNEL_NEON,
        BP_CPU_KERNEL_NEON_LUT,    BP_CPU_KERNEL_NEON_DOTPROD};
    size_t n = 0;
    if (missing && missing_cap)
        missing[0] = '\0';
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        bp_context *ctx = NULL;
        bp_status st = make_context(all[i], 1, &ctx);
        if (st == BP_ERR_UNSUPPORTED) {
            cr_assert(ctx == NULL, "failed create must leave *out NULL");
            if (missing && missing_cap) {
                size_t len = strlen(missing);
                snprintf(missing + len, missing_cap - len, "%s%s (%s)", len ? ", " : "",
                         tu_kernel_name(all[i]), bp_last_error());
            }
            continue;
        }
        cr_assert(st == BP_OK, "creating a context on path %s failed: %s (%s)",
                  tu_kernel_name(all[i]), bp_status_string(st), bp_last_error());
        bp_context_destroy(ctx);
        paths[n].kernel = all[i];
        paths[n].name = tu_kernel_name(all[i]);
        n++;
    }
    cr_assert(n >= 1 && paths[0].kernel == BP_CPU_KERNEL_REFERENCE,
              "the reference path must always be available");
    return n;
}

const char *tu_target_name(const tu_target *t) {
    switch (t->backend) {
    case BP_BACKEND_CUDA:
        return t->kernel == BP_GPU_KERNEL_MMA        ? "cuda/mma"
               : t->kernel == BP_GPU_KERNEL_POPCOUNT ? "cuda/popcount"
                                                     : "cuda/auto";
    case BP_BACKEND_OPENCL:
        return t->kernel == BP_GPU_KERNEL_POPCOUNT ? "opencl/popcount" : "opencl/auto";
    default:
        switch (t->kernel) {
        case BP_CPU_KERNEL_REFERENCE:
            return "cpu/reference";
        case BP_CPU_KERNEL_AVX512:
            return "cpu/avx512";
        case BP_CPU_KERNEL_AVX512_LUT:
            return "cpu/avx512-lut";
        case BP_CPU_KERNEL_AVX2:
            return "cpu/avx2";
        case BP_CPU_KERNEL_AVX2_LUT:
            return "cpu/avx2-lut";
        case BP_CPU_KERNEL_PORTABLE:
            return "cpu/portable";
        case BP_CPU_KERNEL_AVX512_VNNI:
            return "cpu/avx512-vnni";
        case BP_CPU_KERNEL_AVX512_VNNI_BATCHED:
            return "cpu/avx512-vnni-batched";
        case BP_CPU_KERNEL_AVX_VNNI:
            return "cpu/avx-vnni";
        case BP_CPU_KERNEL_NEON:
            return "cpu/neon";
        case BP_CPU_KERNEL_NEON_LUT:
            return "cpu/neon-lut";
        case BP_CPU_KERNEL_NEON_DOTPROD:
            return "cpu/neon-dotprod";
        default:
            return "cpu/auto";
        }
    }
}

bp_context *tu_target_context(const tu_target *t, int threads) {
    if (t->backend == BP_BACKEND_CPU || t->backend == BP_BACKEND_AUTO)
        return tu_context((bp_cpu_kernel)t->kernel, threads);
    bp_context_options o = BP_CONTEXT_OPTIONS_INIT;
    o.backend = t->backend;
    o.gpu_kernel = (bp_gpu_kernel)t->kernel;
    o.threads = threads;
    bp_context *ctx = NULL;
    bp_status st = bp_context_create(&o, &ctx);
    if (st == BP_ERR_UNSUPPORTED)
        cr_skip_test("%s is not available here, so it was not tested: %s", tu_target_name(t),
                     bp_last_error());
    cr_assert(st == BP_OK, "bp_context_create(%s) failed: %s (%s)", tu_target_name(t),
              bp_status_string(st), bp_last_error());
    return ctx;
}

bp_context *tu_context_try(bp_cpu_kernel kernel, int threads) {
    bp_context *ctx = NULL;
    bp_status st = make_context(kernel, threads, &ctx);
    if (st == BP_ERR_UNSUPPORTED)
        return NULL;
    cr_assert(st == BP_OK, "bp_context_create(kernel=%s, threads=%d) failed: %s (%s)",
              tu_kernel_name(kernel), threads, bp_status_string(st), bp_last_error());
    cr_assert(ctx != NULL, "bp_context_create returned OK with NULL context");
    return ctx;
}

bp_context *tu_context(bp_cpu_kernel kernel, int threads) {
    bp_context *ctx = NULL;
    bp_status st = make_context(kernel, threads, &ctx);
    if (st == BP_ERR_UNSUPPORTED)
        cr_skip_test("CPU kernel path %s is not available on this machine: %s",
                     tu_kernel_name(kernel), bp_last_error());
    cr_assert(st == BP_OK, "bp_context_create(kernel=%s, threads=%d) failed: %s (%s)",
              tu_kernel_name(kernel), threads, bp_status_string(st), bp_last_error());
    cr_assert(ctx != NULL, "bp_context_create returned OK with NULL context");
    return ctx;
}

bp_matrix *tu_quantize(bp_context *ctx, const float *w, size_t rows, size_t cols, size_t ld,
                       int bits, bp_quant_method method, float clip) {
    bp_quant_options q = BP_QUANT_OPTIONS_INIT;
    q.bits = bits;
    q.method = method;
    q.clip = clip;
    q.group_size = BP_GROUP_PER_ROW;
    q.rotation = BP_ROTATION_NONE;
    return tu_quantize_opts(ctx, w, rows, cols, ld, &q);
}

bp_matrix *tu_quantize_opts(bp_context *ctx, const float *w, size_t rows, size_t cols, size_t ld,
                            const bp_quant_options *opts) {
    const bp_quant_options q = *opts;
    const int bits = q.bits;
    const bp_quant_method method = q.method;
    const float clip = q.clip;
    bp_matrix *m = NULL;
    bp_context *own = NULL;
    if (!ctx) /* quantize needs a context; use a private one */
        ctx = own = tu_context(BP_CPU_KERNEL_AUTO, 1);
    bp_status st = bp_matrix_quantize(ctx, w, rows, cols, ld, &q, &m);
    bp_context_destroy(own);
    cr_assert(st == BP_OK, "bp_matrix_quantize(%zux%zu ld %zu bits %d method %d clip %g): %s (%s)",
              rows, cols, ld, bits, (int)method, (double)clip, bp_status_string(st),
              bp_last_error());
    cr_assert(m != NULL);
    return m;
}

/* ---- the documented numerics, independently --------------------------------- */

void tu_quantize_act(const float *x, size_t cols, int act_bits, float act_scale, int32_t *q,
                     tu_act *info) {
    memset(info, 0, sizeof *info);
    info->act_bits = act_bits;
    if (act_bits == 1) {
        double sum = 0.0;
        for (size_t j = 0; j < cols; j++) {
            q[j] = (x[j] < 0.0f) ? -1 : 1;
            sum += fabs((double)x[j]);
        }
        info->scale_mean = act_scale > 0.0f ? (double)act_scale : sum / (double)cols;
        info->scale = act_scale > 0.0f ? act_scale : (float)info->scale_mean;
        info->is_signed = true;
        info->is_zero = (sum == 0.0);
        return;
    }
    float m = 0.0f;
    bool all_nonneg = true;
    for (size_t j = 0; j < cols; j++) {
        float a = fabsf(x[j]);
        if (a > m)
            m = a;
        if (x[j] < 0.0f)
            all_nonneg = false;
    }
    info->is_signed = !all_nonneg;
    int32_t lmax =
        all_nonneg ? (int32_t)((1u << act_bits) - 1) : (int32_t)((1u << (act_bits - 1)) - 1);
    float lf = (float)lmax;
    float inv, pre = 1.0f;
    if (act_scale > 0.0f) {
        inv = 1.0f / act_scale;
        info->scale = act_scale;
    } else {
        if (m == 0.0f) {
            info->is_zero = true;
            info->scale = 0.0f;
            for (size_t j = 0; j < cols; j++)
                q[j] = 0;
            return;
        }
        /* Tiny columns: x and m scaled by 2^64 first, exactly. */
        if (m < 0x1p-64f)
            pre = 0x1p64f;
        volatile float scaled = m * pre;
        inv = lf / scaled;
        info->scale = m / lf;
    }
    bool any = false;
    for (size_t j = 0; j < cols; j++) {
        volatile float xs = x[j] * pre;
        volatile float prod = xs * inv; /* one float32 multiply, no contraction */
        /* x == 0 gives 0 even when inv is +Inf (a tiny fixed scale). */
        float r = x[j] == 0.0f ? 0.0f : rintf(prod);
        float lo = all_nonneg ? 0.0f : -lf;
        if (r < lo)
            r = lo;
        if (r > lf)
            r = lf;
        q[j] = (int32_t)r;
        if (q[j] != 0)
            any = true;
    }
    info->is_zero = !any;
}

void tu_set_groups(bp_matrix *m, size_t group_size, tu_rng *rng) {
    size_t gw = group_size ? group_size / 32 : m->kwords;
    size_t ng = (m->kwords + gw - 1) / gw;
    size_t bytes = m->row_groups * BP_ROW_GROUP * ng;
    uint8_t *mult = bp__aligned_alloc(bytes);
    if (!mult) {
        fprintf(stderr, "tu_set_groups: out of memory\n");
        abort();
    }
    for (size_t i = 0; i < bytes; i++)
        mult[i] = !group_size ? 1 : rng ? (uint8_t)tu_range(rng, 1, BP_MULT_MAX) : BP_MULT_MAX;
    bp__aligned_free(m->mult);
    m->mult = mult;
    m->group_size = group_size;
    m->group_words = gw;
    m->ngroups = ng;
}

int tu_plane_sign(const bp_matrix *m, int p, size_t row, size_t col) {
    return bp__plane_bit(m, p, row, col) ? 1 : -1;
}

void tu_rotate_input(const bp_matrix *m, const float *x, float *out) {
    /* docs/numerics.md: signs, then per block the butterfly stages in order,
     * then the power of two. */
    for (size_t j = 0; j < m->cols; j++)
        out[j] = ((m->rot_signs[j / 32] >> (j % 32)) & 1u) ? -x[j] : x[j];
    size_t start = 0;
    while (start < m->cols) {
        size_t b = (size_t)m->rot_block, left = m->cols - start;
        while (b > left)
            b /= 4;
        int L = 0;
        while (((size_t)1 << L) < b)
            L++;
        for (size_t h = 1; h < b; h <<= 1)
            for (size_t pair = 0; pair < b / 2; pair++) {
                size_t lo = start + (pair / h) * 2 * h + pair % h;
                volatile float sum = out[lo] + out[lo + h], diff = out[lo] - out[lo + h];
                out[lo] = sum;
                out[lo + h] = diff;
            }
        for (size_t j = 0; j < b; j++)
            out[start + j] = out[start + j] * ldexpf(1.0f, -((L + 1) / 2));
        start += b;
    }
}

void tu_exact_column(const bp_matrix *m, const float *x, int planes, int act_bits, float act_scale,
                     const float *bias, float *y) {
    size_t rows = m->rows, cols = m->cols;
    int32_t *q = tu_xmalloc(cols * sizeof *q);
    float *xr = NULL;
    if (m->rot_block) {
        xr = tu_xmalloc(cols * sizeof *xr);
        tu_rotate_input(m, x, xr);
        x = xr;
    }
    tu_act info;
    tu_quantize_act(x, cols, act_bits, act_scale, q, &info);
    for (size_t r = 0; r < rows; r++) {
        float b = bias ? bias[r] : 0.0f;
        if (info.is_zero) {
            y[r] = bias ? b : 0.0f;
            continue;
        }
        const float *c = bp__coef(m, planes, r);
        float v;
        if (m->method == BP_QUANT_UNIFORM) {
            int64_t d = 0;
            for (size_t j = 0; j < cols; j++) {
                int64_t u = 0;
                for (int p = 0; p < planes; p++)
                    u += (bp__plane_bit(m, p, r, j) ? 1 : -1) * ((int64_t)1 << (planes - 1 - p));
                d += (int64_t)bp__mult(m, r, j / 32 / m->group_words) * u * q[j];
            }
            volatile float prod = (float)d * info.scale; /* one rounding each */
            v = c[planes - 1] * prod;
        } else {
            float acc = 0.0f;
            for (int p = 0; p < planes; p++) {
                int64_t d = 0;
                for (size_t j = 0; j < cols; j++)
                    d += (int64_t)bp__mult(m, r, j / 32 / m->group_words) *
                         (bp__plane_bit(m, p, r, j) ? q[j] : -q[j]);
                volatile float ds = (float)d * info.scale;
                acc = fmaf(c[p], ds, acc);
            }
            v = acc;
        }
        if (bias)
            v = v + b;
        y[r] = v;
    }
    free(q);
    free(xr);
}

void tu_gemm_f64(const float *w, size_t rows, size_t cols, size_t ldw, const double *x,
                 size_t batch, size_t ldx, double *y, size_t ldy) {
    for (size_t b = 0; b < batch; b++)
        for (size_t r = 0; r < rows; r++) {
            double s = 0.0;
            for (size_t j = 0; j < cols; j++)
                s += (double)w[r * ldw + j] * x[b * ldx + j];
            y[b * ldy + r] = s;
        }
}

double tu_rel_err(const double *ref, const float *got, size_t rows, size_t batch, size_t ldy) {
    double num = 0.0, den = 0.0;
    for (size_t b = 0; b < batch; b++)
        for (size_t r = 0; r < rows; r++) {
            double d = (double)got[b * ldy + r] - ref[b * ldy + r];
            num += d * d;
            den += ref[b * ldy + r] * ref[b * ldy + r];
        }
    if (den == 0.0)
        return num == 0.0 ? 0.0 : INFINITY;
    return sqrt(num / den);
}

double tu_rel_err_f(const float *ref, const float *got, size_t rows, size_t batch, size_t ldy) {
    double num = 0.0, den = 0.0;
    for (size_t b = 0; b < batch; b++)
        for (size_t r = 0; r < rows; r++) {
            double d = (double)got[b * ldy + r] - (double)ref[b * ldy + r];
            num += d * d;
            den += (double)ref[b * ldy + r] * (double)ref[b * ldy + r];
        }
    if (den == 0.0)
        return num == 0.0 ? 0.0 : INFINITY;
    return sqrt(num / den);
}

uint32_t tu_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

uint32_t tu_crc32c(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

void tu_put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

long tu_first_mismatch(const float *a, const float *b, size_t rows, size_t batch, size_t ld,
                       size_t *row, size_t *col) {
    for (size_t c = 0; c < batch; c++)
        for (size_t r = 0; r < rows; r++)
            if (tu_bits(a[c * ld + r]) != tu_bits(b[c * ld + r])) {
                if (row)
                    *row = r;
                if (col)
                    *col = c;
                return (long)(c * ld + r);
            }
    return -1;
}

bp_run_options tu_run(int planes, int act_bits) {
    bp_run_options o = BP_RUN_OPTIONS_INIT;
    o.planes = planes;
    o.act_bits = act_bits;
    return o;
}

void tu_fill_sentinel(float *y, size_t n) {
    uint32_t s = TU_SENTINEL_BITS;
    for (size_t i = 0; i < n; i++)
        memcpy(&y[i], &s, sizeof s);
}

long tu_find_non_sentinel(const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tu_bits(y[i]) != TU_SENTINEL_BITS)
            return (long)i;
    return -1;
}

long tu_find_sentinel(const float *y, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (tu_bits(y[i]) == TU_SENTINEL_BITS)
            return (long)i;
    return -1;
}

/* ---- leak check --------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define TU_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_HAVE_LSAN 1
#endif
#endif

#ifdef TU_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

void tu_suite_fini(void) {
#ifdef TU_HAVE_LSAN
    if (__lsan_do_recoverable_leak_check()) {
        fprintf(stderr, "bitplane tests: memory leaked during this test (LeakSanitizer report "
                        "above); aborting so the test fails\n");
        abort();
    }
#endif
}
