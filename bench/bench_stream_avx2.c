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
#define BENCH_WIDTH        256
#define BENCH_FORMS_FN     bench_stream_avx2_forms
#include "bench_stream_template.h"
