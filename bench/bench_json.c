/* JSON-lines output: one object per record, keys in the order they were put. */
#include "bench_report.h"

#include <math.h>

static void write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* JSON has no NaN or Inf; a consumer must see "no value", not a parse error. */
static void write_real(FILE *f, double d) {
    if (isfinite(d))
        fprintf(f, "%.9g", d);
    else
        fputs("null", f);
}

static void write_record(FILE *f, const bench_record *rec) {
    fputc('{', f);
    for (int i = 0; i < rec->n; i++) {
        const bench_field *fl = &rec->f[i];
        if (i)
            fputc(',', f);
        write_string(f, fl->key);
        fputc(':', f);
        switch (fl->type) {
        case BENCH_F_STR:
            write_string(f, fl->str);
            break;
        case BENCH_F_INT:
            fprintf(f, "%lld", fl->i);
            break;
        case BENCH_F_REAL:
            write_real(f, fl->d);
            break;
        case BENCH_F_NULL:
            fputs("null", f);
            break;
        case BENCH_F_ARRAY:
            fputc('[', f);
            for (int j = 0; j < fl->n_arr; j++) {
                if (j)
                    fputc(',', f);
                write_real(f, fl->arr[j]);
            }
            fputc(']', f);
            break;
        }
    }
    if (rec->skipped) {
        fputs(",\"skipped\":true,\"reason\":", f);
        write_string(f, rec->reason);
    }
    fputs("}\n", f);
}

void bench_json_write(FILE *f, const bench_report *r) {
    for (size_t i = 0; i < r->n; i++)
        write_record(f, &r->rec[i]);
}
