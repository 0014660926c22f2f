/*
 * Results as ordered key/value records, so one measurement can be written
 * both as a JSON line (bench_json.c) and as a table row (bench_table.c)
 * without the subcommands knowing about either format.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stddef.h>
#include <stdio.h>

#define BENCH_MAX_FIELDS 24
#define BENCH_MAX_ARRAY  16

typedef enum bench_field_type {
    BENCH_F_STR,
    BENCH_F_INT,
    BENCH_F_REAL,
    BENCH_F_NULL, /* not applicable to this kind of line */
    BENCH_F_ARRAY,
} bench_field_type;

typedef struct bench_field {
    const char *key; /* static string */
    bench_field_type type;
    char str[96];
    long long i;
    double d;
    double arr[BENCH_MAX_ARRAY];
    int n_arr;
} bench_field;

typedef struct bench_record {
    bench_field f[BENCH_MAX_FIELDS];
    int n;
    /* A measurement that could not run here (e.g. no VPOPCNTDQ): JSON gets
     * "skipped":true plus the reason; the table prints it as a note line. */
    int skipped;
    char reason[160];
} bench_record;

typedef struct bench_report {
    bench_record *rec;
    size_t n, cap;
} bench_report;

/* Append a record whose first field is kind. NULL (after printing) on OOM. */
bench_record *bench_report_add(bench_report *r, const char *kind);
void bench_report_free(bench_report *r);

void bench_put_str(bench_record *rec, const char *key, const char *v);
void bench_put_int(bench_record *rec, const char *key, long long v);
void bench_put_real(bench_record *rec, const char *key, double v);
/* A float shown as its shortest decimal (0.9f as 0.9, not 0.899999976). */
void bench_put_float(bench_record *rec, const char *key, float v);
void bench_put_null(bench_record *rec, const char *key);
void bench_put_array(bench_record *rec, const char *key, const double *v, int n);
void bench_skip(bench_record *rec, const char *reason);

/* bench_json.c: one JSON object per line. */
void bench_json_write(FILE *f, const bench_report *r);
/* bench_table.c: an aligned table over the union of all fields. */
void bench_table_write(FILE *f, const bench_report *r);

/* Write r as JSON lines or a table; returns 1 (and prints) on write failure
 * so a full disk or closed pipe does not pass silently. */
int bench_report_emit(const bench_report *r, int json);

#endif
