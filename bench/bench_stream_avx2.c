/*
 * The 256-bit read forms of the stream probe, for hosts without AVX-512 and
 * to check whether two loads per line ever beat one on hosts with it. Built
 * with -mavx2 on x86-64 only; bench_stream.c calls them only when CPUID and
 * XCR0 allow AVX2.
 */
#include "bench_stream_forms.h"

typedef uint64_t bench_u64x4 __attribute__((vector_size(32)));
#define BENCH_VEC          bench_u64x4
#define BENCH_LOAD(ptr)    ((bench_u64x4)_mm256_load_si256((const __m256i *)(ptr)))
#define BENCH_NT_LOAD(ptr) ((bench_u64x4)_mm256_stream_load_si256((const __m256i *)(ptr)))
#define BENCH_READER       read256
#define BENCH_ISA          BENCH_READ_AVX2
#include "bench_stream_template.h"

/* id, name, accumulators, op, non-temporal, prefetch hint, distance (bytes), streams */
#define AVX2_FORMS(X)                                                                              \
    X(add_x2, "avx2-add-x2", 2, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                              \
    X(add_x4, "avx2-add-x4", 4, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                              \
    X(add_x8, "avx2-add-x8", 8, BENCH_OP_ADD, 0, BENCH_PF_NONE, 0, 1)                              \
    X(xor_x4, "avx2-xor-x4", 4, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                              \
    X(xor_x8, "avx2-xor-x8", 8, BENCH_OP_XOR, 0, BENCH_PF_NONE, 0, 1)                              \
    X(nt_x4, "avx2-ntload-x4", 4, BENCH_OP_ADD, 1, BENCH_PF_NONE, 0, 1)                            \
    X(pf256_t0, "avx2-add-x4-pf256-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 256, 1)                   \
    X(pf1k_t0, "avx2-add-x4-pf1024-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 1024, 1)                  \
    X(pf4k_t0, "avx2-add-x4-pf4096-t0", 4, BENCH_OP_ADD, 0, BENCH_PF_T0, 4096, 1)                  \
    X(pf1k_nta, "avx2-add-x4-pf1024-nta", 4, BENCH_OP_ADD, 0, BENCH_PF_NTA, 1024, 1)

AVX2_FORMS(BENCH_DEFINE_FORM)
static const bench_read_form forms[] = {AVX2_FORMS(BENCH_FORM_ROW)};

const bench_read_form *bench_stream_avx2_forms(size_t *n) {
    *n = sizeof forms / sizeof forms[0];
    return forms;
}
