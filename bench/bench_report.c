/* Building result records; formatting lives in bench_json.c and bench_table.c. */
#include "bench_report.h"
#include "bench_common.h"

#include <stdlib.h>
#include <string.h>

bench_record *bench_report_add(bench_report *r, const char *kind) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        bench_record *p = realloc(r->rec, cap * sizeof *p);
        if (!p) {
            bench_fail("out of memory for result records");
            return NULL;
        }
        r->rec = p;
        r->cap = cap;
    }
    bench_record *rec = &r->rec[r->n++];
    memset(rec, 0, sizeof *rec);
    bench_put_str(rec, "kind", kind);
    return rec;
}

void bench_report_free(bench_report *r) {
    free(r->rec);
    r->rec = NULL;
    r->n = r->cap = 0;
}

/* Records are filled by code in this directory with a fixed set of keys, so
 * running out of slots is a programming error worth stopping on loudly. */
static bench_field *new_field(bench_record *rec, const char *key, bench_field_type type) {
    if (rec->n >= BENCH_MAX_FIELDS) {
        fprintf(stderr, "bitplane-bench: internal: too many fields (key %s)\n", key);
        abort();
    }
    bench_field *f = &rec->f[rec->n++];
    f->key = key;
    f->type = type;
    return f;
}

void bench_put_str(bench_record *rec, const char *key, const char *v) {
    bench_field *f = new_field(rec, key, BENCH_F_STR);
    snprintf(f->str, sizeof f->str, "%s", v);
}

void bench_put_int(bench_record *rec, const char *key, long long v) {
    new_field(rec, key, BENCH_F_INT)->i = v;
}

void bench_put_real(bench_record *rec, const char *key, double v) {
    new_field(rec, key, BENCH_F_REAL)->d = v;
}

void bench_put_float(bench_record *rec, const char *key, float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)v);
    bench_put_real(rec, key, strtod(buf, NULL));
}

void bench_put_null(bench_record *rec, const char *key) {
    new_field(rec, key, BENCH_F_NULL);
}

void bench_put_array(bench_record *rec, const char *key, const double *v, int n) {
    bench_field *f = new_field(rec, key, BENCH_F_ARRAY);
    if (n > BENCH_MAX_ARRAY)
        n = BENCH_MAX_ARRAY;
    for (int i = 0; i < n; i++)
        f->arr[i] = v[i];
    f->n_arr = n;
}

void bench_skip(bench_record *rec, const char *reason) {
    rec->skipped = 1;
    snprintf(rec->reason, sizeof rec->reason, "%s", reason);
}

int bench_report_emit(const bench_report *r, int json) {
    if (json)
        bench_json_write(stdout, r);
    else
        bench_table_write(stdout, r);
    if (fflush(stdout) != 0 || ferror(stdout))
        return bench_fail("writing results to stdout failed");
    return 0;
}
