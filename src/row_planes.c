/*
 * Per-row plane counts (docs/row-planes.md): validation of the caller's
 * counts, the stored order (rows by count, descending, stable), the compact
 * slabs that hold only the row groups a plane needs, the runs of equal counts
 * the CPU framework walks, and the public helpers (counts of a matrix, bytes
 * a call reads, counts from importance scores).
 */
#include "bp_error.h"
#include "bp_matrix.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void bp__matrix_layout_full(bp_matrix *m) {
    for (int p = 0; p < BP_MAX_BITS; p++) {
        m->slab_groups[p] = p < m->bits ? m->row_groups : 0;
        m->slab_offset[p] = p < m->bits ? (size_t)p * m->plane_words : 0;
    }
}

bp_status bp__row_planes_check(const uint8_t *row_planes, size_t rows, int bits, bool *all_full) {
    *all_full = true;
    for (size_t r = 0; r < rows; r++) {
        if (row_planes[r] < 1 || row_planes[r] > bits)
            return bp__fail(BP_ERR_OUT_OF_RANGE, "row_planes[%zu] must be in 1..%d (bits), got %u",
                            r, bits, (unsigned)row_planes[r]);
        *all_full &= row_planes[r] == bits;
    }
    return BP_OK;
}

bp_status bp__row_planes_order(const uint8_t *row_planes, size_t rows, int bits, uint8_t **counts,
                               uint32_t **perm) {
    *counts = malloc(rows);
    *perm = malloc(rows * sizeof **perm);
    if (!*counts || !*perm) {
        free(*counts);
        free(*perm);
        *counts = NULL;
        *perm = NULL;
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate the row order of %zu rows", rows);
    }
    /* Counting sort by count, descending; rows of one count keep their order. */
    size_t start[BP_MAX_BITS + 2] = {0};
    for (size_t r = 0; r < rows; r++)
        start[bits - row_planes[r] + 1]++;
    for (int i = 1; i <= bits; i++)
        start[i] += start[i - 1];
    for (size_t r = 0; r < rows; r++) {
        size_t s = start[bits - row_planes[r]]++;
        (*perm)[s] = (uint32_t)r;
        (*counts)[s] = row_planes[r];
    }
    return BP_OK;
}

const char *bp__row_planes_check_stored(const uint8_t *counts, const uint32_t *perm, size_t rows,
                                        int bits) {
    bool all_full = true;
    for (size_t r = 0; r < rows; r++) {
        if (counts[r] < 1 || counts[r] > bits)
            return "a row's plane count is not in 1..bits";
        if (r && counts[r] > counts[r - 1])
            return "row plane counts are not in descending order";
        all_full &= counts[r] == bits;
    }
    if (all_full)
        return "every row plane count equals bits (such a matrix is stored as version 2)";
    unsigned char *seen = calloc(rows, 1);
    if (!seen)
        return "out of memory checking the row permutation";
    const char *bad = NULL;
    for (size_t r = 0; r < rows && !bad; r++) {
        if (perm[r] >= rows || seen[perm[r]])
            bad = "the row permutation is not a permutation of 0..rows-1";
        else if (r && counts[r] == counts[r - 1] && perm[r] < perm[r - 1])
            bad = "rows of one plane count are not in their original order";
        else
            seen[perm[r]] = 1;
    }
    free(seen);
    return bad;
}

/* Stored rows with a count > p. */
static size_t rows_above(const bp_matrix *m, int p) {
    size_t n = 0;
    for (int i = 0; i < m->nruns; i++)
        if (m->run_planes[i] > p)
            n = m->run_start[i + 1];
    return n;
}

bp_status bp__matrix_set_row_planes(bp_matrix *m, uint8_t *counts, uint32_t *perm) {
    m->row_planes = counts;
    m->perm = perm;
    m->nruns = 0;
    for (size_t r = 0; r < m->rows; r++)
        if (r == 0 || counts[r] != counts[r - 1]) {
            m->run_start[m->nruns] = r;
            m->run_planes[m->nruns++] = counts[r];
        }
    m->run_start[m->nruns] = m->rows;

    /* Compact the full slabs (p * plane_words) into the groups each needs. */
    const size_t group_words = (size_t)BP_ROW_GROUP * m->kwords;
    size_t groups[BP_MAX_BITS], offset[BP_MAX_BITS], words = 0;
    for (int p = 0; p < m->bits; p++) {
        groups[p] = (rows_above(m, p) + BP_ROW_GROUP - 1) / BP_ROW_GROUP;
        offset[p] = words;
        words += groups[p] * group_words;
    }
    uint32_t *planes = bp__aligned_alloc(words * sizeof *planes);
    if (!planes)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes of compact planes",
                        words * sizeof *planes);
    for (int p = 0; p < m->bits; p++) {
        uint32_t *slab = planes + offset[p];
        memcpy(slab, m->planes + (size_t)p * m->plane_words, groups[p] * group_words * 4);
        /* Rows of a held group that stop before plane p keep 0 bits there,
         * so the matrix does not depend on how it was made (quantized or
         * loaded). */
        size_t end = groups[p] * BP_ROW_GROUP < m->rows ? groups[p] * BP_ROW_GROUP : m->rows;
        for (size_t r = rows_above(m, p); r < end; r++)
            for (size_t w = 0; w < m->kwords; w++)
                slab[bp__word_index(m, r, w)] = 0;
    }
    bp__aligned_free(m->planes);
    m->planes = planes;
    for (int p = 0; p < m->bits; p++) {
        m->slab_groups[p] = groups[p];
        m->slab_offset[p] = offset[p];
    }
    return BP_OK;
}

/* ---- public helpers ------------------------------------------------------------ */

bp_status bp_matrix_row_planes(const bp_matrix *m, uint8_t *out) {
    if (!m || !out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_row_planes: %s must not be NULL",
                        !m ? "m" : "out");
    for (size_t r = 0; r < m->rows; r++) {
        if (m->row_planes)
            out[m->perm[r]] = m->row_planes[r];
        else
            out[r] = (uint8_t)m->bits;
    }
    return BP_OK;
}

size_t bp_matrix_bytes_read(const bp_matrix *m, int planes) {
    if (!m) {
        bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_matrix_bytes_read: m must not be NULL");
        return 0;
    }
    if (planes < 0 || planes > m->bits) {
        bp__fail(BP_ERR_OUT_OF_RANGE, "planes must be 0 (all) or 1..%d, got %d", m->bits, planes);
        return 0;
    }
    const int n = planes ? planes : m->bits;
    size_t bytes = 0;
    for (int p = 0; p < n; p++)
        bytes += m->slab_groups[p] * (size_t)BP_ROW_GROUP * m->kwords * sizeof(uint32_t);
    /* Every row uses plane 0, so every row group's multipliers are read,
     * once per product whatever the plane count. */
    if (bp__grouped(m))
        bytes += m->slab_groups[0] * m->ngroups * (size_t)BP_ROW_GROUP;
    if (!m->row_planes)
        return bytes + m->rows * (size_t)n * sizeof(float);
    for (int i = 0; i < m->nruns; i++) {
        const int used = m->run_planes[i] < n ? m->run_planes[i] : n;
        bytes += (m->run_start[i + 1] - m->run_start[i]) * (size_t)used * sizeof(float);
    }
    return bytes;
}

typedef struct scored_row {
    float score;
    uint32_t row;
} scored_row;

/* Score descending, then row ascending: a total order, so the ranking does
 * not depend on the sort's stability. */
static int by_score(const void *a, const void *b) {
    const scored_row *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->row > y->row) - (x->row < y->row);
}

/* The class counts: `classes` evenly spaced integers, highest first, in
 * [lo, hi] where [lo, hi] is centred on round(budget) (half-width up to
 * classes - 1, narrowed at 1 and bits) and widened until it holds them. */
static void class_levels(int bits, double budget, int classes, int *level) {
    if (classes == 1) {
        level[0] = (int)floor(budget + 1e-9);
        return;
    }
    int r = (int)floor(budget + 0.5);
    r = r < 1 ? 1 : (r > bits ? bits : r);
    int d = classes - 1;
    d = d < r - 1 ? d : r - 1;
    d = d < bits - r ? d : bits - r;
    int lo = r - d, hi = r + d;
    while (hi - lo + 1 < classes) {
        if (hi < bits)
            hi++;
        else
            lo--;
    }
    for (int i = 0; i < classes; i++)
        level[i] = lo + (int)floor((double)(classes - 1 - i) * (hi - lo) / (classes - 1) + 0.5);
}

bp_status bp_row_planes_from_scores(const float *scores, size_t rows, int bits, double budget,
                                    int classes, uint8_t *out) {
    if (!scores || !out)
        return bp__fail(BP_ERR_INVALID_ARGUMENT, "bp_row_planes_from_scores: %s must not be NULL",
                        !scores ? "scores" : "out");
    bp_status st = bp__check_dim("rows", rows);
    if (st)
        return st;
    if (bits < 1 || bits > BP_MAX_BITS)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "bits must be in 1..%d, got %d", BP_MAX_BITS, bits);
    if (!(budget >= 1.0 && budget <= (double)bits))
        return bp__fail(BP_ERR_OUT_OF_RANGE,
                        "budget (mean planes per row) must be in 1..%d (bits), got %g", bits,
                        budget);
    if (classes < 1 || classes > bits)
        return bp__fail(BP_ERR_OUT_OF_RANGE, "classes must be in 1..%d (bits), got %d", bits,
                        classes);
    for (size_t r = 0; r < rows; r++)
        if (!isfinite(scores[r]))
            return bp__fail(BP_ERR_NON_FINITE, "scores[%zu] is %s", r,
                            isnan(scores[r]) ? "NaN" : "Inf");
    scored_row *rank = malloc(rows * sizeof *rank);
    if (!rank)
        return bp__fail(BP_ERR_OUT_OF_MEMORY, "cannot allocate the ranking of %zu rows", rows);
    for (size_t i = 0; i < rows; i++)
        rank[i] = (scored_row){scores[i], (uint32_t)i};
    qsort(rank, rows, sizeof *rank, by_score);

    int level[BP_MAX_BITS];
    class_levels(bits, budget, classes, level);
    /* Rows move in blocks of one row group, so runs of equal count do not
     * split a group; small matrices (under 64 rows per class), whose
     * classes would not fill a block, move row by row. */
    const size_t block = rows >= (size_t)64 * (size_t)classes ? BP_ROW_GROUP : 1;
    /* Class c holds ranked rows [end[c-1], end[c]) (end[-1] = 0); every
     * row starts in the last class, whose count is at most the budget. */
    size_t end[BP_MAX_BITS];
    for (int c = 0; c < classes; c++)
        end[c] = c + 1 < classes ? 0 : rows;
    double spare = floor(budget * (double)rows + 1e-6) - (double)level[classes - 1] * (double)rows;
    /* One block of ranked rows from class c + 1 up into class c; false
     * when the budget or the class runs out. */
#define MOVE_UP(c)                                                                                 \
    (end[c] < end[(c) + 1] &&                                                                      \
     (double)(level[c] - level[(c) + 1]) *                                                         \
             (double)(end[(c) + 1] - end[c] < block ? end[(c) + 1] - end[c] : block) <=            \
         spare)
    /* First equal shares (ends at multiples of the block), each class filled from
     * the top while the budget allows; then what is left raises further
     * blocks a class at a time, best-ranked first. */
    for (int c = 0; c + 1 < classes; c++) {
        size_t share = (size_t)floor((double)rows * (c + 1) / classes / block + 0.5) * block;
        share = share > rows ? rows : share;
        end[c] = c ? end[c - 1] : 0;
        while (end[c] < share) {
            size_t len = rows - end[c] < block ? rows - end[c] : block;
            double cost = (double)(level[c] - level[classes - 1]) * (double)len;
            if (cost > spare)
                break;
            spare -= cost;
            end[c] += len;
        }
    }
    for (bool moved = true; moved;) {
        moved = false;
        for (int c = 0; c + 1 < classes; c++)
            if (MOVE_UP(c)) {
                size_t len = end[c + 1] - end[c] < block ? end[c + 1] - end[c] : block;
                spare -= (double)(level[c] - level[c + 1]) * (double)len;
                end[c] += len;
                moved = true;
            }
    }
#undef MOVE_UP
    size_t r = 0;
    for (int c = 0; c < classes; c++)
        for (; r < end[c]; r++)
            out[rank[r].row] = (uint8_t)level[c];
    free(rank);
    return BP_OK;
}
