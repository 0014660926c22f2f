/*
 * Human-readable output: one aligned table whose columns are the union of
 * all records' keys in first-seen order, so mixed kinds (stream, OpenBLAS,
 * bitplane) share columns and a field a kind lacks shows as "-".
 */
#include "bench_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CELL 256

static void format_real(char *buf, size_t cap, double d) {
    if (isfinite(d))
        snprintf(buf, cap, "%.4g", d);
    else
        snprintf(buf, cap, "-");
}

static void format_cell(char *buf, const bench_field *fl) {
    switch (fl->type) {
    case BENCH_F_STR:
        snprintf(buf, CELL, "%s", fl->str);
        break;
    case BENCH_F_INT:
        snprintf(buf, CELL, "%lld", fl->i);
        break;
    case BENCH_F_REAL:
        format_real(buf, CELL, fl->d);
        break;
    case BENCH_F_NULL:
        snprintf(buf, CELL, "-");
        break;
    case BENCH_F_ARRAY: {
        size_t len = 0;
        buf[0] = '\0';
        for (int j = 0; j < fl->n_arr && len + 16 < CELL; j++) {
            char one[32];
            format_real(one, sizeof one, fl->arr[j]);
            len += (size_t)snprintf(buf + len, CELL - len, "%s%s", j ? "," : "", one);
        }
        break;
    }
    }
}

static const bench_field *find(const bench_record *rec, const char *key) {
    for (int i = 0; i < rec->n; i++)
        if (strcmp(rec->f[i].key, key) == 0)
            return &rec->f[i];
    return NULL;
}

void bench_table_write(FILE *f, const bench_report *r) {
    /* Every key is one of a fixed set of static strings, so the union is small. */
    enum { MAXCOL = 64 };
    const char *cols[MAXCOL];
    int numeric[MAXCOL];
    size_t width[MAXCOL];
    int ncol = 0;
    char cell[CELL];

    for (size_t i = 0; i < r->n; i++) {
        const bench_record *rec = &r->rec[i];
        if (rec->skipped)
            continue;
        for (int j = 0; j < rec->n; j++) {
            int c = 0;
            while (c < ncol && strcmp(cols[c], rec->f[j].key) != 0)
                c++;
            if (c == ncol) {
                if (ncol == MAXCOL)
                    continue;
                cols[ncol] = rec->f[j].key;
                numeric[ncol] = 0;
                width[ncol] = strlen(rec->f[j].key);
                ncol++;
            }
            if (rec->f[j].type == BENCH_F_INT || rec->f[j].type == BENCH_F_REAL)
                numeric[c] = 1;
            format_cell(cell, &rec->f[j]);
            if (strlen(cell) > width[c])
                width[c] = strlen(cell);
        }
    }

    if (ncol > 0) {
        for (int c = 0; c < ncol; c++) {
            int w = numeric[c] ? (int)width[c] : c + 1 == ncol ? 0 : -(int)width[c];
            fprintf(f, "%s%*s", c ? "  " : "", w, cols[c]);
        }
        fputc('\n', f);
        for (size_t i = 0; i < r->n; i++) {
            const bench_record *rec = &r->rec[i];
            if (rec->skipped)
                continue;
            for (int c = 0; c < ncol; c++) {
                const bench_field *fl = find(rec, cols[c]);
                if (fl)
                    format_cell(cell, fl);
                else
                    snprintf(cell, sizeof cell, "-");
                /* No padding after a left-aligned last column: no trailing blanks. */
                int w = numeric[c] ? (int)width[c] : c + 1 == ncol ? 0 : -(int)width[c];
                fprintf(f, "%s%*s", c ? "  " : "", w, cell);
            }
            fputc('\n', f);
        }
    }
    for (size_t i = 0; i < r->n; i++)
        if (r->rec[i].skipped)
            fprintf(f, "# %s skipped: %s\n", r->rec[i].f[0].str, r->rec[i].reason);
}
