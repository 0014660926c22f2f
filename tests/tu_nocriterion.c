/*
 * A minimal sequential test runner standing in for Criterion in TSan builds
 * (see tu_criterion.h). Runs every registered test in registration order,
 * reports failures and skips, and exits non-zero if any test failed.
 * Options: a single argument filters tests by substring of "suite::name".
 */
#define BP_TEST_NO_CRITERION 1
#include "tu_criterion.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TESTS 256

static struct {
    const char *suite, *name;
    tu_nocr_fn fn;
} tests[MAX_TESTS];
static size_t ntests;
static struct {
    const char *suite;
    tu_nocr_fn fini;
} finis[64];
static size_t nfinis;

static jmp_buf test_jmp;
static int test_failed, test_skipped;

void tu_nocr_register(const char *suite, const char *name, tu_nocr_fn fn) {
    if (ntests < MAX_TESTS) {
        tests[ntests].suite = suite;
        tests[ntests].name = name;
        tests[ntests].fn = fn;
        ntests++;
    }
}

void tu_nocr_register_fini(const char *suite, tu_nocr_fn fn) {
    if (fn && nfinis < 64) {
        finis[nfinis].suite = suite;
        finis[nfinis].fini = fn;
        nfinis++;
    }
}

void tu_nocr_check(int fatal, int ok, const char *expr, const char *file, int line, const char *fmt,
                   ...) {
    if (ok)
        return;
    fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n[----]   ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    test_failed = 1;
    if (fatal)
        longjmp(test_jmp, 1);
}

_Noreturn void tu_nocr_skip(const char *fmt, ...) {
    fprintf(stderr, "[SKIP] ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    test_skipped = 1;
    longjmp(test_jmp, 1);
}

void tu_nocr_log(const char *fmt, ...) {
    fprintf(stderr, "[WARN] ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

static size_t passed, failed, skipped;

static void run_one(tu_nocr_fn fn) {
    if (setjmp(test_jmp) == 0)
        fn();
}

int main(int argc, char **argv) {
    for (size_t i = 0; i < ntests; i++) {
        char full[256];
        snprintf(full, sizeof full, "%s::%s", tests[i].suite, tests[i].name);
        if (argc > 1 && argv[1][0] != '-' && !strstr(full, argv[1]))
            continue;
        test_failed = test_skipped = 0;
        fprintf(stderr, "[RUN ] %s\n", full);
        run_one(tests[i].fn);
        for (size_t f = 0; f < nfinis; f++)
            if (strcmp(finis[f].suite, tests[i].suite) == 0)
                finis[f].fini();
        if (test_skipped && !test_failed) {
            skipped++;
        } else if (test_failed) {
            failed++;
            fprintf(stderr, "[FAIL] %s\n", full);
        } else {
            passed++;
            fprintf(stderr, "[PASS] %s\n", full);
        }
    }
    fprintf(stderr, "[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | Skipped: %zu\n",
            passed + failed + skipped, passed, failed, skipped);
    /* A filter that matches nothing is a misregistered test, not a pass. */
    if (passed + failed + skipped == 0) {
        fprintf(stderr, "no test matches '%s'\n", argc > 1 ? argv[1] : "");
        return 1;
    }
    return failed ? 1 : 0;
}
