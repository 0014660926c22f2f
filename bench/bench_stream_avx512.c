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
#define BENCH_WIDTH        512
#define BENCH_FORMS_FN     bench_stream_avx512_forms
#include "bench_stream_template.h"
