/*
 * One read loop, instantiated per vector width by the ISA files. Every
 * parameter but the width is a compile-time constant at each call site, so
 * after inlining each form is a plain loop: `acc` independent accumulators
 * (hide the add/xor latency), an add or xor reduction, ordinary or
 * non-temporal (vmovntdqa) loads, an optional software prefetch `dist`
 * bytes ahead of every 64-byte line with a given hint, and one or two
 * forward streams (the two halves of the range read in alternating 512-byte
 * blocks: more DRAM pages open at once, as a kernel reading several plane
 * slabs does).
 *
 * Define before including: BENCH_VEC (a GCC vector type of uint64_t),
 * BENCH_LOAD(ptr) and BENCH_NT_LOAD(ptr) (aligned loads returning
 * BENCH_VEC), BENCH_READER (the loop's name), BENCH_WIDTH (256 or 512: the
 * rows of BENCH_READ_FORMS to build), BENCH_ISA (the bench_read_isa those
 * forms need) and BENCH_FORMS_FN (the accessor bench_stream_forms.h
 * declares). Include once per file.
 */
#include "bench_stream_forms.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#ifndef BENCH_STREAM_TEMPLATE_COMMON
#define BENCH_STREAM_TEMPLATE_COMMON
enum { BENCH_OP_ADD, BENCH_OP_XOR };
enum { BENCH_PF_NONE, BENCH_PF_T0, BENCH_PF_T2, BENCH_PF_NTA };
/* Lines one iteration reads per stream: 512 bytes. */
#define BENCH_BLOCK_LINES 8

/* _mm_prefetch needs a literal hint; the switch folds away once inlined. */
static inline __attribute__((always_inline)) void bench_prefetch(const char *a, int hint) {
    switch (hint) {
    case BENCH_PF_T0:
        _mm_prefetch(a, _MM_HINT_T0);
        break;
    case BENCH_PF_T2:
        _mm_prefetch(a, _MM_HINT_T2);
        break;
    case BENCH_PF_NTA:
        _mm_prefetch(a, _MM_HINT_NTA);
        break;
    default:
        break;
    }
}
#endif

static inline __attribute__((always_inline)) uint64_t BENCH_READER(const uint64_t *p, size_t n,
                                                                   int acc, int op, int nt,
                                                                   int hint, size_t dist,
                                                                   int streams) {
    enum { LANES = sizeof(BENCH_VEC) / sizeof(uint64_t) };
    enum { VECS_PER_BLOCK = BENCH_BLOCK_LINES * 8 / LANES, BLOCK_WORDS = BENCH_BLOCK_LINES * 8 };
    BENCH_VEC a[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        a[j] = (BENCH_VEC){0};
    const size_t per = n / (size_t)streams / BLOCK_WORDS * BLOCK_WORDS;
    for (size_t i = 0; i < per; i += BLOCK_WORDS) {
#pragma GCC unroll 2
        for (int s = 0; s < streams; s++) {
            const uint64_t *q = p + (size_t)s * per + i;
            if (hint != BENCH_PF_NONE) {
#pragma GCC unroll 8
                for (int l = 0; l < BENCH_BLOCK_LINES; l++)
                    bench_prefetch((const char *)q + dist + (size_t)l * 64, hint);
            }
#pragma GCC unroll 16
            for (int v = 0; v < VECS_PER_BLOCK; v++) {
                BENCH_VEC x = nt ? BENCH_NT_LOAD(q + v * LANES) : BENCH_LOAD(q + v * LANES);
                a[v % acc] = op == BENCH_OP_XOR ? a[v % acc] ^ x : a[v % acc] + x;
            }
        }
    }
#pragma GCC unroll 8
    for (int j = 1; j < acc; j++)
        a[0] = op == BENCH_OP_XOR ? a[0] ^ a[j] : a[0] + a[j];
    uint64_t sum = 0;
    for (int l = 0; l < LANES; l++)
        sum += a[0][l];
    for (size_t i = (size_t)streams * per; i < n; i++)
        sum += p[i];
    return sum;
}

/*
 * Every vector form, in one list: X(width, id, name, accumulators, op,
 * non-temporal, prefetch hint, prefetch distance in bytes, streams). Each
 * ISA file keeps the rows of its BENCH_WIDTH.
 */
#define BENCH_READ_FORMS(X)                                                                        \
    X(256, add_x2, "avx2-add-x2", 2, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                         \
    X(256, add_x4, "avx2-add-x4", 4, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                         \
    X(256, add_x8, "avx2-add-x8", 8, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                         \
    X(256, two_streams, "avx2-add-x2-2streams", 2, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 2)           \
    X(256, xor_x4, "avx2-xor-x4", 4, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                         \
    X(256, xor_x8, "avx2-xor-x8", 8, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                         \
    X(256, nt_x4, "avx2-ntload-x4", 4, BENCH_OP_ADD, 1, BENCH_PF_NONE, 0, 1)                       \
    X(256, pf256_t0, "avx2-add-x4-pf256-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 256, 1)              \
    X(256, pf1k_t0, "avx2-add-x4-pf1024-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 1024, 1)             \
    X(256, pf4k_t0, "avx2-add-x4-pf4096-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 4096, 1)             \
    X(256, pf1k_nta, "avx2-add-x4-pf1024-nta", 4, BENCH_OP_ADD, 0, BENCH_PF_NTA, 1024, 1)          \
    X(512, add_x2, "avx512-add-x2", 2, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                       \
    X(512, add_x4, "avx512-add-x4", 4, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                       \
    X(512, add_x8, "avx512-add-x8", 8, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                       \
    X(512, xor_x2, "avx512-xor-x2", 2, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                       \
    X(512, xor_x4, "avx512-xor-x4", 4, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                       \
    X(512, xor_x8, "avx512-xor-x8", 8, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                       \
    X(512, nt_x4, "avx512-ntload-x4", 4, BENCH_OP_ADD, 1, BENCH_PF_NONE, 0, 1)                     \
    X(512, two_streams, "avx512-add-x4-2streams", 4, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 2)         \
    X(512, pf256_t0, "avx512-add-x4-pf256-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 256, 1)            \
    X(512, pf1k_t0, "avx512-add-x4-pf1024-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 1024, 1)           \
    X(512, pf4k_t0, "avx512-add-x4-pf4096-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 4096, 1)           \
    X(512, pf256_t2, "avx512-add-x4-pf256-t2", 4, BENCH_OP_ADD, 0, BENCH_PF_T2, 256, 1)            \
    X(512, pf1k_t2, "avx512-add-x4-pf1024-t2", 4, BENCH_OP_ADD, 0, BENCH_PF_T2, 1024, 1)           \
    X(512, pf4k_t2, "avx512-add-x4-pf4096-t2", 4, BENCH_OP_ADD, 0, BENCH_PF_T2, 4096, 1)           \
    X(512, pf256_nta, "avx512-add-x4-pf256-nta", 4, BENCH_OP_ADD, 0, BENCH_PF_NTA, 256, 1)         \
    X(512, pf1k_nta, "avx512-add-x4-pf1024-nta", 4, BENCH_OP_ADD, 0, BENCH_PF_NTA, 1024, 1)        \
    X(512, pf4k_nta, "avx512-add-x4-pf4096-nta", 4, BENCH_OP_ADD, 0, BENCH_PF_NTA, 4096, 1)

#if BENCH_WIDTH == 512
#define BENCH_KEEP_512(...) __VA_ARGS__
#define BENCH_KEEP_256(...)
#else
#define BENCH_KEEP_512(...)
#define BENCH_KEEP_256(...) __VA_ARGS__
#endif
#define BENCH_DEFINE_FORM(width, id, name, acc, op, nt, hint, dist, streams)                       \
    BENCH_KEEP_##width(static uint64_t id(const uint64_t *p, size_t n) {                           \
        return BENCH_READER(p, n, acc, op, nt, hint, dist, streams);                               \
    })
#define BENCH_FORM_ROW(width, id, name, ...) BENCH_KEEP_##width({name, BENCH_ISA, id}, )

BENCH_READ_FORMS(BENCH_DEFINE_FORM)
static const bench_read_form bench_forms[] = {BENCH_READ_FORMS(BENCH_FORM_ROW)};

const bench_read_form *BENCH_FORMS_FN(size_t *n) {
    *n = sizeof bench_forms / sizeof bench_forms[0];
    return bench_forms;
}
