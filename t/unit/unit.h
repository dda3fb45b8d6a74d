/*
 * A tiny test runner: CHECK() records a failure and lets the test go on,
 * so one run reports every broken check.
 */

#ifndef UNIT_H
#define UNIT_H

#include <stddef.h>


/* A string literal as pointer and length; the literal may contain NULs. */
#define S(lit)  (lit), (sizeof(lit) - 1)

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            unit_fail(__FILE__, __LINE__, #cond);                            \
        }                                                                    \
    } while (0)

#define UNIT_TEST(fn)  { #fn, fn }


typedef struct {
    const char  *name;
    void       (*fn)(void);
} unit_test_t;


void unit_fail(const char *file, int line, const char *expr);

/* Compares bytes; on a mismatch prints both sides escaped and returns 0. */
int unit_bytes_eq(const void *got, size_t got_len, const void *want,
    size_t want_len);


extern const unit_test_t  escape_tests[];
extern const size_t       escape_ntests;
extern const unit_test_t  sign_tests[];
extern const size_t       sign_ntests;
extern const unit_test_t  backoff_tests[];
extern const size_t       backoff_ntests;
extern const unit_test_t  jsonpath_tests[];
extern const size_t       jsonpath_ntests;
extern const unit_test_t  template_tests[];
extern const size_t       template_ntests;
extern const unit_test_t  payload_tests[];
extern const size_t       payload_ntests;
extern const unit_test_t  inflate_tests[];
extern const size_t       inflate_ntests;
extern const unit_test_t  journal_tests[];
extern const size_t       journal_ntests;

#endif /* UNIT_H */
