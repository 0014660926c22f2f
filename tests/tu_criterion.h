/*
 * Criterion, or a minimal stand-in for ThreadSanitizer builds.
 *
 * Criterion 2.4 cannot start under TSan ("Could not initialize inheritable
 * arena", Snaipe/Criterion#274): its BoxFort arena needs a fixed mapping that
 * TSan's shadow layout takes. For BP_SANITIZE=thread the CMake file builds
 * the `threads`-labelled tests with BP_TEST_NO_CRITERION, which maps the
 * subset of Criterion used there onto a tiny sequential runner
 * (tu_nocriterion.c). Tests then run in one process, one after another.
 */
#ifndef BP_TU_CRITERION_H
#define BP_TU_CRITERION_H

#ifndef BP_TEST_NO_CRITERION
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#else

#include <string.h>

typedef void (*tu_nocr_fn)(void);
void tu_nocr_register(const char *suite, const char *name, tu_nocr_fn fn);
void tu_nocr_register_fini(const char *suite, tu_nocr_fn fn);
/* fmt may be followed by one extra, ignored "" argument. */
void tu_nocr_check(int fatal, int ok, const char *expr, const char *file, int line, const char *fmt,
                   ...);
_Noreturn void tu_nocr_skip(const char *fmt, ...);
void tu_nocr_log(const char *fmt, ...);

#define TU_NOCR_CAT_(a, b) a##b
#define TU_NOCR_CAT(a, b)  TU_NOCR_CAT_(a, b)

#define Test(suite, name, ...)                                                                     \
    static void suite##_##name##_impl(void);                                                       \
    __attribute__((constructor)) static void suite##_##name##_reg(void) {                          \
        tu_nocr_register(#suite, #name, suite##_##name##_impl);                                    \
    }                                                                                              \
    static void suite##_##name##_impl(void)

#define TestSuite(suite, ...) TU_NOCR_SUITE_(suite, __VA_ARGS__, .fini = NULL)
#define TU_NOCR_SUITE_(suite, fini_init, ...)                                                      \
    __attribute__((constructor)) static void suite##_suite_reg(void) {                             \
        struct {                                                                                   \
            tu_nocr_fn fini;                                                                       \
        } s_ = {fini_init};                                                                        \
        tu_nocr_register_fini(#suite, s_.fini);                                                    \
    }

#define TU_NOCR_CHECK_(fatal, cond, ...)                                                           \
    tu_nocr_check((fatal), !!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)
#define cr_assert(...)                   TU_NOCR_CHECK_(1, __VA_ARGS__, "")
#define cr_expect(...)                   TU_NOCR_CHECK_(0, __VA_ARGS__, "")
#define TU_NOCR_EQ_(fatal, a, b, ...)    TU_NOCR_CHECK_(fatal, (a) == (b), __VA_ARGS__)
#define cr_assert_eq(a, ...)             TU_NOCR_EQ_(1, a, __VA_ARGS__, "")
#define cr_expect_eq(a, ...)             TU_NOCR_EQ_(0, a, __VA_ARGS__, "")
#define TU_NOCR_STREQ_(fatal, a, b, ...) TU_NOCR_CHECK_(fatal, strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_eq(a, ...)         TU_NOCR_STREQ_(1, a, __VA_ARGS__, "")
#define cr_expect_str_eq(a, ...)         TU_NOCR_STREQ_(0, a, __VA_ARGS__, "")
#define cr_skip_test(...)                tu_nocr_skip(__VA_ARGS__)
#define cr_log_warn(...)                 tu_nocr_log(__VA_ARGS__)
#define cr_log_info(...)                 tu_nocr_log(__VA_ARGS__)

#endif /* BP_TEST_NO_CRITERION */
#endif /* BP_TU_CRITERION_H */
