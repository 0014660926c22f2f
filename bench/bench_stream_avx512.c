/*
 * The 512-bit read forms of the stream probe. Built with -mavx512f on
 * x86-64 only; bench_stream.c calls them only when CPUID and XCR0 allow
 * AVX-512. One load per 64-byte line leaves the core's load queue room for
 * the most lines in flight, which is what bounds one core's DRAM read rate.
 */
#include "bench_stream_forms.h"

typedef uint64_t bench_u64x8 __attribute__((vector_size(64)));
#define BENCH_VEC          bench_u64x8
#define BENCH_LOAD(ptr)    ((bench_u64x8)_mm512_load_si512((const void *)(ptr)))
#define BENCH_NT_LOAD(ptr) ((bench_u64x8)_mm512_stream_load_si512((void *)(ptr)))
#define BENCH_READER       read512
#define BENCH_ISA          BENCH_READ_AVX512F
#include "bench_stream_template.h"

/* id, name, accumulators, op, non-temporal, prefetch hint, distance (bytes), streams */
#define AVX512_FORMS(X)                                                                            \
    X(add_x2, "avx512-add-x2", 2, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                            \
    X(add_x4, "avx512-add-x4", 4, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                            \
    X(add_x8, "avx512-add-x8", 8, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                            \
    X(xor_x2, "avx512-xor-x2", 2, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                            \
    X(xor_x4, "avx512-xor-x4", 4, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                            \
    X(xor_x8, "avx512-xor-x8", 8, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                            \
    X(nt_x4, "avx512-ntload-x4", 4, BENCH_OP_ADD, 1, BENCH_PF_NONE, 0, 1)                          \
    X(two_streams, "avx512-add-x4-2streams", 4, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 2)              \
    X(pf256_t0, "avx512-add-x4-pf256-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 256, 1)                 \
    X(pf1k_t0, "avx512-add-x4-pf1024-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 1024, 1)                \
    X(pf4k_t0, "avx512-add-x4-pf4096-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 4096, 1)                \
    X(pf256_t2, "avx512-add-x4-pf256-t2", 4, BENCH_OP_ADD, 0, BENCH_PF_T2, 256, 1)                 \
    X(pf1k_t2, "avx512-add-x4-pf1024-t2", 4, BENCH_OP_ADD, 0, BENCH_PF_T2, 1024, 1)                \
    X(pf4k_t2, "avx512-add-x4-pf4096-t2", 4, BENCH_OP_ADD, 0, BENCH_PF_T2, 4096, 1)                \
    X(pf256_nta, "avx512-add-x4-pf256-nta", 4, BENCH_OP_ADD, 0, BENCH_PF_NTA, 256, 1)              \
    X(pf1k_nta, "avx512-add-x4-pf1024-nta", 4, BENCH_OP_ADD, 0, BENCH_PF_NTA, 1024, 1)             \
    X(pf4k_nta, "avx512-add-x4-pf4096-nta", 4, BENCH_OP_ADD, 0, BENCH_PF_NTA, 4096, 1)

AVX512_FORMS(BENCH_DEFINE_FORM)
static const bench_read_form forms[] = {AVX512_FORMS(BENCH_FORM_ROW)};

const bench_read_form *bench_stream_avx512_forms(size_t *n) {
    *n = sizeof forms / sizeof forms[0];
    return forms;
}
