/*
 * pb_policy: outcome classes, what becomes of a delivery after an attempt
 * (delivered, retried with a delay, failed, gone, resumed after a manual
 * one), and the rules that disable a callback.
 */

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pb_backoff.h"
#include "pb_policy.h"
#include "unit.h"


#define ATTEMPTS  5

#define NITEMS(a)  (sizeof(a) / sizeof((a)[0]))


static const uint64_t  schedule[] = { 5000, 300000, 1800000, 7200000 };


/* Attempt n of ATTEMPTS, with the schedule above. */
static pb_policy_attempt_t
attempt(int status, size_t n)
{
    pb_policy_attempt_t  a;

    memset(&a, 0, sizeof(a));

    a.status = status;
    a.attempt = n;
    a.attempts = ATTEMPTS;
    a.retry = schedule;
    a.nretry = NITEMS(schedule);
    a.random = 12345;

    return a;
}


/* The delay of a retry; any other verdict fails the test. */
static uint64_t
retry_delay(const pb_policy_attempt_t *a)
{
    uint64_t  delay;

    delay = 0;
    CHECK(pb_policy_decide(a, &delay) == PB_POLICY_RETRY);

    return delay;
}


static void
test_outcome_classes(void)
{
    size_t  i;
    int     got;

    static const struct {
        int  status;
        int  error;
        int  outcome;
    } cases[] = {
        { INT_MIN, 0, PB_OUTCOME_ERROR },
        { -1, 0, PB_OUTCOME_ERROR },
        { 0, 0, PB_OUTCOME_ERROR },
        { 100, 0, PB_OUTCOME_ERROR },
        { 199, 0, PB_OUTCOME_ERROR },
        { 200, 0, PB_OUTCOME_2XX },
        { 204, 0, PB_OUTCOME_2XX },
        { 299, 0, PB_OUTCOME_2XX },
        { 300, 0, PB_OUTCOME_3XX },
        { 399, 0, PB_OUTCOME_3XX },
        { 400, 0, PB_OUTCOME_4XX },
        { 410, 0, PB_OUTCOME_4XX },
        { 499, 0, PB_OUTCOME_4XX },
        { 500, 0, PB_OUTCOME_5XX },
        { 599, 0, PB_OUTCOME_5XX },
        { 600, 0, PB_OUTCOME_ERROR },
        { 699, 0, PB_OUTCOME_ERROR },
        { 700, 0, PB_OUTCOME_ERROR },
        { 999, 0, PB_OUTCOME_ERROR },
        { INT_MAX, 0, PB_OUTCOME_ERROR },

        /* a broken transfer is an error whatever the status said */
        { 200, 1, PB_OUTCOME_ERROR },
        { 299, 1, PB_OUTCOME_ERROR },
        { 301, 1, PB_OUTCOME_ERROR },
        { 404, 1, PB_OUTCOME_ERROR },
        { 503, 1, PB_OUTCOME_ERROR },
        { 0, 1, PB_OUTCOME_ERROR },
        { 200, -1, PB_OUTCOME_ERROR },
        { 200, INT_MIN, PB_OUTCOME_ERROR },
    };

    for (i = 0; i < NITEMS(cases); i++) {
        got = pb_policy_outcome(cases[i].status, cases[i].error);

        CHECK(got == cases[i].outcome);
        if (got != cases[i].outcome) {
            fprintf(stderr, "    status %d, error %d: %d, not %d\n",
                    cases[i].status, cases[i].error, got,
                    cases[i].outcome);
        }

        CHECK(got >= 0 && got < PB_OUTCOMES);
    }
}


/*
 * The verdict on every attempt up to one past the last, sent or resent:
 * want, except that RETRY turns into FAILED on the last attempt, past it
 * and for a resent delivery.
 */
static void
check_verdicts(int status, int error, int want)
{
    int                  v, expect, resent;
    size_t               n;
    uint64_t             delay;
    pb_policy_attempt_t  a;

    for (resent = 0; resent < 2; resent++) {
        for (n = 1; n <= ATTEMPTS + 1; n++) {
            a = attempt(status, n);
            a.error = error;
            a.resent = resent;

            expect = want;

            if (want == PB_POLICY_RETRY && (resent || n >= ATTEMPTS)) {
                expect = PB_POLICY_FAILED;
            }

            v = pb_policy_decide(&a, &delay);

            CHECK(v == expect);
            if (v != expect) {
                fprintf(stderr, "    status %d, error %d, attempt %zu"
                        " of %d, resent %d: %d, not %d\n", status, error,
                        n, ATTEMPTS, resent, v, expect);
            }
        }
    }
}


static void
test_2xx_delivered(void)
{
    check_verdicts(200, 0, PB_POLICY_DELIVERED);
    check_verdicts(201, 0, PB_POLICY_DELIVERED);
    check_verdicts(204, 0, PB_POLICY_DELIVERED);
    check_verdicts(299, 0, PB_POLICY_DELIVERED);
}


static void
test_2xx_with_error_not_delivered(void)
{
    check_verdicts(200, 1, PB_POLICY_RETRY);
    check_verdicts(204, 1, PB_POLICY_RETRY);
    check_verdicts(299, 1, PB_POLICY_RETRY);
}


static void
test_others_retried_then_failed(void)
{
    size_t  i;

    static const int  statuses[] = {
        0, -1, 100, 199, 300, 302, 399, 400, 404, 409, 411, 429, 499,
        500, 503, 599, 600, 1000
    };

    for (i = 0; i < NITEMS(statuses); i++) {
        check_verdicts(statuses[i], 0, PB_POLICY_RETRY);
        check_verdicts(statuses[i], 1, PB_POLICY_RETRY);
    }
}


static void
test_410_gone(void)
{
    /* on any attempt, the last one and a resent delivery included */
    check_verdicts(410, 0, PB_POLICY_GONE);
}


static void
test_single_attempt(void)
{
    uint64_t             delay;
    pb_policy_attempt_t  a;

    /* attempts=1: the first attempt is the last */
    a = attempt(503, 1);
    a.attempts = 1;
    CHECK(pb_policy_decide(&a, &delay) == PB_POLICY_FAILED);

    a.status = 200;
    CHECK(pb_policy_decide(&a, &delay) == PB_POLICY_DELIVERED);

    a.status = 410;
    CHECK(pb_policy_decide(&a, &delay) == PB_POLICY_GONE);
}


/* The delay after attempt n lies in the jitter bounds of its entry. */
static void
check_delay_in_bounds(size_t n, uint32_t random)
{
    uint64_t             base, delay;
    pb_policy_attempt_t  a;

    a = attempt(503, n);
    a.attempts = 100;
    a.random = random;

    base = schedule[n - 1 < NITEMS(schedule) ? n - 1 : NITEMS(schedule) - 1];
    delay = retry_delay(&a);

    CHECK(delay >= base - base * PB_BACKOFF_JITTER / 100);
    CHECK(delay <= base + base * PB_BACKOFF_JITTER / 100);
    CHECK(delay == pb_backoff_delay(schedule, NITEMS(schedule), n, random,
                                    0));
}


static void
test_retry_delay_follows_schedule(void)
{
    size_t    n;
    uint32_t  r;

    /* the last entry repeats after the schedule's end */
    for (n = 1; n <= NITEMS(schedule) + 3; n++) {
        for (r = 0; r < 2000; r++) {
            check_delay_in_bounds(n, r * 2654435761u);
        }

        check_delay_in_bounds(n, 0);
        check_delay_in_bounds(n, UINT32_MAX);
    }
}


static void
test_retry_after_is_a_floor(void)
{
    uint64_t             delay;
    pb_policy_attempt_t  a;

    a = attempt(503, 1);

    /* beyond the jitter: Retry-After itself */
    a.retry_after = 60000;
    CHECK(retry_delay(&a) == 60000);

    a.retry_after = UINT64_MAX;
    CHECK(retry_delay(&a) == UINT64_MAX);

    /* below the jitter: the schedule */
    a.retry_after = 1000;
    delay = retry_delay(&a);
    CHECK(delay >= 4000 && delay <= 6000);

    /* inside it: no sooner */
    a.retry_after = 5500;
    a.random = 0;
    CHECK(retry_delay(&a) == 5500);

    /* a 2xx whose transfer broke honours it too */
    a = attempt(200, 2);
    a.error = 1;
    a.retry_after = 3600000;
    CHECK(retry_delay(&a) == 3600000);

    /* no retry= delays: Retry-After alone */
    a = attempt(429, 1);
    a.retry = NULL;
    a.nretry = 0;
    a.retry_after = 7000;
    CHECK(retry_delay(&a) == 7000);

    /* no retry after the last attempt, whatever Retry-After says */
    a = attempt(503, ATTEMPTS);
    a.retry_after = 1000;
    CHECK(pb_policy_decide(&a, &delay) == PB_POLICY_FAILED);
}


/* a manual attempt never ends or moves a pending delivery's schedule */
static void
test_manual_resumes(void)
{
    size_t               n;
    uint64_t             delay;
    pb_policy_attempt_t  a;

    for (n = 0; n <= ATTEMPTS + 1; n++) {
        a = attempt(503, n);
        a.manual = 1;
        CHECK(pb_policy_decide(&a, &delay) == PB_POLICY_RESUME);

        a.status = 200;
        CHECK(pb_policy_decide(&a, &delay) == PB_POLICY_DELIVERED);

        a.status = 410;
        CHECK(pb_policy_decide(&a, &delay) == PB_POLICY_GONE);

        /* a finished one sent again ends as it was */
        a.status = 503;
        a.resent = 1;
        CHECK(pb_policy_decide(&a, &delay) == PB_POLICY_FAILED);
    }
}


static void
test_wrong_url(void)
{
    CHECK(pb_policy_wrong_url(404, 0));
    CHECK(pb_policy_wrong_url(405, 0));
    CHECK(pb_policy_wrong_url(410, 0));
    CHECK(pb_policy_wrong_url(0, 1));
    CHECK(pb_policy_wrong_url(503, 1));

    CHECK(!pb_policy_wrong_url(0, 0));
    CHECK(!pb_policy_wrong_url(400, 0));
    CHECK(!pb_policy_wrong_url(403, 0));
    CHECK(!pb_policy_wrong_url(500, 0));
    CHECK(!pb_policy_wrong_url(503, 0));
}


/* failing since the first failure, wrong-url since the first in a row */
static void
test_health_tracking(void)
{
    pb_health_t  h;

    memset(&h, 0, sizeof(h));

    CHECK(pb_policy_attempted(&h, 0, 0, 1000) == 1);
    CHECK(h.failing_since == 1000 && h.wrong_url_since == 0);

    CHECK(pb_policy_attempted(&h, 0, 1, 2000) == 0);
    CHECK(pb_policy_attempted(&h, 0, 1, 3000) == 0);
    CHECK(h.failing_since == 1000 && h.wrong_url_since == 2000);

    /* any other failure ends the wrong-url run, not the failing one */
    CHECK(pb_policy_attempted(&h, 0, 0, 4000) == 0);
    CHECK(h.failing_since == 1000 && h.wrong_url_since == 0);

    h.failures = 7;
    CHECK(pb_policy_attempted(&h, 1, 0, 5000) == 1);
    CHECK(h.failing_since == 0 && h.wrong_url_since == 0
          && h.failures == 0);

    CHECK(pb_policy_attempted(&h, 1, 0, 6000) == 0);

    /* an attempt at 0 still counts as a start */
    CHECK(pb_policy_attempted(&h, 0, 1, 0) == 1);
    CHECK(h.failing_since != 0 && h.wrong_url_since != 0);
}


static void
test_disables(void)
{
    size_t              i;
    pb_health_t         h;
    pb_disable_rules_t  r;

    static const struct {
        uint64_t  failures, failing_since, wrong_url_since;
        uint64_t  after, after_time, on_error;
        uint64_t  now;
        int       why;
    } cases[] = {
        /* every rule off: never */
        { UINT64_MAX, 1, 1, 0, 0, 0, UINT64_MAX, PB_DISABLE_NONE },

        /* deliveries in a row */
        { 0, 0, 0, 1, 0, 0, 0, PB_DISABLE_NONE },
        { 1, 1, 0, 1, 0, 0, 1, PB_DISABLE_FAILURES },
        { 2, 1, 0, 3, 0, 0, 1, PB_DISABLE_NONE },
        { 3, 1, 0, 3, 0, 0, 1, PB_DISABLE_FAILURES },
        { UINT64_MAX - 1, 1, 0, UINT64_MAX, 0, 0, 1, PB_DISABLE_NONE },

        /* failing for a time */
        { 0, 1000, 0, 0, 500, 0, 1499, PB_DISABLE_NONE },
        { 0, 1000, 0, 0, 500, 0, 1500, PB_DISABLE_FAILURES },
        { 0, 0, 0, 0, 500, 0, UINT64_MAX, PB_DISABLE_NONE },
        { 0, 2000, 0, 0, 500, 0, 1000, PB_DISABLE_NONE },

        /* wrong-url answers alone for a time, checked first */
        { 0, 1000, 1000, 0, 0, 100, 1099, PB_DISABLE_NONE },
        { 0, 1000, 1000, 0, 0, 100, 1100, PB_DISABLE_WRONG_URL },
        { 9, 1000, 1000, 1, 1, 100, 1100, PB_DISABLE_WRONG_URL },
        { 0, 1000, 0, 0, 0, 100, UINT64_MAX, PB_DISABLE_NONE },
        { 0, 1000, 1000, 0, 0, 0, UINT64_MAX, PB_DISABLE_NONE },
    };

    for (i = 0; i < NITEMS(cases); i++) {
        h.failures = cases[i].failures;
        h.failing_since = cases[i].failing_since;
        h.wrong_url_since = cases[i].wrong_url_since;
        r.after = cases[i].after;
        r.after_time = cases[i].after_time;
        r.on_error = cases[i].on_error;

        CHECK(pb_policy_disables(&h, &r, cases[i].now) == cases[i].why);
        if (pb_policy_disables(&h, &r, cases[i].now) != cases[i].why) {
            fprintf(stderr, "    case %zu\n", i);
        }
    }
}


const unit_test_t  policy_tests[] = {
    UNIT_TEST(test_outcome_classes),
    UNIT_TEST(test_2xx_delivered),
    UNIT_TEST(test_2xx_with_error_not_delivered),
    UNIT_TEST(test_others_retried_then_failed),
    UNIT_TEST(test_410_gone),
    UNIT_TEST(test_single_attempt),
    UNIT_TEST(test_retry_delay_follows_schedule),
    UNIT_TEST(test_retry_after_is_a_floor),
    UNIT_TEST(test_manual_resumes),
    UNIT_TEST(test_wrong_url),
    UNIT_TEST(test_health_tracking),
    UNIT_TEST(test_disables),
};

const size_t  policy_ntests = sizeof(policy_tests) / sizeof(policy_tests[0]);
