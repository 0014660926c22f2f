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
 * BENCH_VEC), BENCH_READER (the function's name) and BENCH_ISA (the
 * bench_read_isa its forms need). Then a list macro
 * X(id, name, accumulators, op, non-temporal, hint, distance, streams)
 * expanded with BENCH_DEFINE_FORM defines the forms and with BENCH_FORM_ROW
 * gives their table rows.
 */
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

#define BENCH_DEFINE_FORM(id, name, acc, op, nt, hint, dist, streams)                              \
    static uint64_t id(const uint64_t *p, size_t n) {                                              \
        return BENCH_READER(p, n, acc, op, nt, hint, dist, streams);                               \
    }
#define BENCH_FORM_ROW(id, name, ...) {name, BENCH_ISA, id},
