/* Minimal assertion helpers shared by the C unit tests.
 * A failed CHECK prints where and why, and the test exits non-zero at the end. */
#ifndef UCSPITLS_TESTS_CHECK_H
#define UCSPITLS_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

#define CHECK_STREQ(a, b)                                                  \
    do {                                                                   \
        const char *check_a_ = (a), *check_b_ = (b);                       \
        if (check_a_ == NULL || check_b_ == NULL ||                        \
            strcmp(check_a_, check_b_) != 0) {                             \
            fprintf(stderr, "%s:%d: CHECK_STREQ failed: \"%s\" != \"%s\"\n",\
                    __FILE__, __LINE__, check_a_ ? check_a_ : "(null)",   \
                    check_b_ ? check_b_ : "(null)");                       \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

/* Returns the process exit code: 0 when every CHECK held. */
static inline int check_done(const char *name)
{
    if (check_failures)
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
    else
        fprintf(stderr, "%s: all checks passed\n", name);
    return check_failures ? 1 : 0;
}

#endif
