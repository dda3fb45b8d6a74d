/*
 * Runs every unit test in a child process, so that a crash or a leak
 * (reported by the sanitizers when the child exits) fails that test
 * alone.  The last line of output is the summary "N passed, M failed";
 * the exit status is non-zero on a failure.
 */

#define _POSIX_C_SOURCE  200809L

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"


typedef struct {
    const unit_test_t  *tests;
    const size_t       *ntests;
} unit_suite_t;


static const unit_suite_t  unit_suites[] = {
    { escape_tests, &escape_ntests },
    { jsonpath_tests, &jsonpath_ntests },
    { template_tests, &template_ntests },
    { payload_tests, &payload_ntests },
    { inflate_tests, &inflate_ntests },
    { backoff_tests, &backoff_ntests },
    { sign_tests, &sign_ntests },
    { journal_tests, &journal_ntests },
    { policy_tests, &policy_ntests },
    { fields_tests, &fields_ntests },
    { form_tests, &form_ntests },
    { http_tests, &http_ntests },
    { minutes_tests, &minutes_ntests },
    { jscan_tests, &jscan_ntests },
};

static const char  *unit_current;
static int          unit_current_failed;


void
unit_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n",
            file, line, unit_current, expr);
    unit_current_failed = 1;
}


static void
unit_print_escaped(const char *label, const unsigned char *p, size_t len)
{
    size_t  i;

    fprintf(stderr, "    %s (%zu bytes): \"", label, len);

    for (i = 0; i < len; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '"') {
            fputc(p[i], stderr);

        } else {
            fprintf(stderr, "\\x%02x", p[i]);
        }
    }

    fputs("\"\n", stderr);
}


int
unit_bytes_eq(const void *got, size_t got_len, const void *want,
    size_t want_len)
{
    /* memcmp() must not see the NULL of an empty buffer */
    if (got_len == want_len
        && (got_len == 0 || memcmp(got, want, got_len) == 0))
    {
        return 1;
    }

    unit_print_escaped("got ", got, got_len);
    unit_print_escaped("want", want, want_len);

    return 0;
}


unsigned char *
unit_alloc(size_t n)
{
    unsigned char  *p;

    p = malloc(n ? n : 1);
    if (p == NULL) {
        abort();
    }

    return p;
}


unsigned char *
unit_copy(const void *p, size_t len)
{
    unsigned char  *copy;

    copy = unit_alloc(len);

    if (len > 0) {
        memcpy(copy, p, len);
    }

    return copy;
}


unsigned char *
unit_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;

    return p + 4;
}


int
unit_inside(const void *p, size_t len, const void *buf, size_t buf_len)
{
    const unsigned char  *s, *b;

    s = p;
    b = buf;

    return len == 0
           || (s >= b && len <= buf_len && s <= b + buf_len - len);
}


static int
unit_run(const unit_test_t *test)
{
    int    status;
    pid_t  pid;

    unit_current = test->name;
    unit_current_failed = 0;

    /* the child must not inherit unwritten output */
    fflush(stdout);
    fflush(stderr);

    pid = fork();

    if (pid == -1) {
        perror("fork");
        return 0;
    }

    if (pid == 0) {
        test->fn();
        exit(unit_current_failed ? EXIT_FAILURE : EXIT_SUCCESS);
    }

    if (waitpid(pid, &status, 0) == -1) {
        perror("waitpid");
        return 0;
    }

    return WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SUCCESS;
}


int
main(void)
{
    size_t              s, t, passed, failed;
    const unit_test_t  *test;

    passed = 0;
    failed = 0;

    for (s = 0; s < sizeof(unit_suites) / sizeof(unit_suites[0]); s++) {
        for (t = 0; t < *unit_suites[s].ntests; t++) {
            test = &unit_suites[s].tests[t];

            if (unit_run(test)) {
                passed++;
                continue;
            }

            fprintf(stderr, "FAIL %s\n", test->name);
            failed++;
        }
    }

    printf("%zu passed, %zu failed\n", passed, failed);

    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
