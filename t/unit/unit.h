/*
 * A tiny test runner: CHECK() records a failure and lets the test go on,
 * so one run reports every broken check.
 */

#ifndef UNIT_H
#define UNIT_H

#include <stddef.h>
#include <stdint.h>


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

/* malloc() that aborts on failure; n may be 0. */
unsigned char *unit_alloc(size_t n);

/* p[0..len) copied to exactly len bytes, so ASan sees a read past it. */
unsigned char *unit_copy(const void *p, size_t len);

/* Writes v as 4 bytes big-endian; returns the end. */
unsigned char *unit_put32(unsigned char *p, uint32_t v);

/* Whether p[0..len) lies within buf[0..buf_len); empty lies anywhere. */
int unit_inside(const void *p, size_t len, const void *buf, size_t buf_len);


extern const unit_test_t  http_tests[];
extern const size_t       http_ntests;
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
extern const unit_test_t  policy_tests[];
extern const size_t       policy_ntests;
extern const unit_test_t  fields_tests[];
extern const size_t       fields_ntests;
extern const unit_test_t  form_tests[];
extern const size_t       form_ntests;
extern const unit_test_t  minutes_tests[];
extern const size_t       minutes_ntests;
extern const unit_test_t  jscan_tests[];
extern const size_t       jscan_ntests;

#endif /* UNIT_H */
