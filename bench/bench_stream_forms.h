/*
 * The read-loop forms the stream probe (bench_stream.c) races to find the
 * fastest read this host can do. Each form sums n 64-bit words from a
 * 64-byte aligned buffer (n a multiple of 8) and returns a value derived
 * from every word, so the reads cannot be optimised away.
 *
 * The ISA forms live in bench_stream_avx2.c and bench_stream_avx512.c, the
 * only files built with those flags (x86-64 only); they are generated from
 * one loop template (bench_stream_template.h), so every form differs only in
 * its parameters.
 */
#ifndef BENCH_STREAM_FORMS_H
#define BENCH_STREAM_FORMS_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t (*bench_read_fn)(const uint64_t *p, size_t n);

/* What a form needs from the CPU; bench_stream.c checks it before a call. */
typedef enum bench_read_isa {
    BENCH_READ_PORTABLE,
    BENCH_READ_AVX2,
    BENCH_READ_AVX512F,
} bench_read_isa;

typedef struct bench_read_form {
    const char *name; /* e.g. "avx512-add-x4-pf1024-t0" */
    bench_read_isa isa;
    bench_read_fn fn;
} bench_read_form;

/* The portable form every CPU runs (bench_stream.c). */
const bench_read_form *bench_stream_portable_form(void);
/* The forms of each ISA file; *n receives the count. */
const bench_read_form *bench_stream_avx2_forms(size_t *n);
const bench_read_form *bench_stream_avx512_forms(size_t *n);

#endif
