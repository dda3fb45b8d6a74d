/*
 * Decides on an attempt decoded from the input, any values, and checks
 * the rules: DELIVERED for a 2xx alone, GONE for a 410 alone, RESUME for
 * a manual attempt alone, RETRY only while attempts are left and only for
 * an automatic one, its delay never before Retry-After and else within
 * the jitter of its retry= entry; the disabling rules as they read.
 *
 * Input, big-endian, missing bytes read as 0: status (4), error (1),
 * Retry-After (8), attempt (8), attempts (8), resent (1), manual (1),
 * random (4), failures (8), failing since (8), wrong-url since (8), the
 * rules (8 each: after, after_time, on_error), now (8), then the number
 * of retry= delays (1, modulo 17) and the delays (8 each).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_backoff.h"
#include "pb_policy.h"


#define MAX_RETRY  16


typedef struct {
    const uint8_t  *pos;
    const uint8_t  *end;
} input_t;


static uint64_t
take(input_t *in, size_t n)
{
    size_t    i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < n; i++) {
        v = v << 8 | (in->pos < in->end ? *in->pos++ : 0);
    }

    return v;
}


/*
 * Whether delay lies within the jitter of base: base +- 20% (exact, with
 * no overflow), one more above for the span's rounding.
 */
static int
within_jitter(uint64_t delay, uint64_t base)
{
    uint64_t  jitter;

    jitter = base / 100 * PB_BACKOFF_JITTER
             + base % 100 * PB_BACKOFF_JITTER / 100;

    if (delay >= base) {
        return delay - base <= jitter + 1;
    }

    return base - delay <= jitter;
}


static void
check_delay(const pb_policy_attempt_t *a, uint64_t delay)
{
    size_t    i;
    uint64_t  base;

    if (delay < a->retry_after) {
        abort();
    }

    if (a->nretry == 0) {
        if (delay != a->retry_after) {
            abort();
        }

        return;
    }

    i = a->attempt > 0 ? a->attempt - 1 : 0;
    base = a->retry[i < a->nretry ? i : a->nretry - 1];

    /* Retry-After may put it past the jitter, nothing else may */
    if (!within_jitter(delay, base) && delay != a->retry_after) {
        abort();
    }
}


/* the rules of pb_policy_disables, read another way */
static int
expected_disable(const pb_health_t *h, const pb_disable_rules_t *r,
    uint64_t now)
{
    int  wrong_url, count, time;

    wrong_url = r->on_error != 0 && h->wrong_url_since != 0
                && now >= h->wrong_url_since && now >= r->on_error
                && now - r->on_error >= h->wrong_url_since;
    count = r->after != 0 && h->failures >= r->after;
    time = r->after_time != 0 && h->failing_since != 0
           && now >= h->failing_since
           && now - h->failing_since >= r->after_time;

    if (wrong_url) {
        return PB_DISABLE_WRONG_URL;
    }

    return (count || time) ? PB_DISABLE_FAILURES : PB_DISABLE_NONE;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  v, outcome;
    size_t               i;
    int32_t              status;
    input_t              in;
    uint32_t             u;
    uint64_t             delay, now;
    uint64_t            *retry;
    pb_health_t          h;
    pb_disable_rules_t   r;
    pb_policy_attempt_t  a;

    in.pos = data;
    in.end = data + size;

    memset(&a, 0, sizeof(a));

    u = (uint32_t) take(&in, 4);
    memcpy(&status, &u, sizeof(status));
    a.status = status;
    a.error = (signed char) take(&in, 1);
    a.retry_after = take(&in, 8);
    a.attempt = (size_t) take(&in, 8);
    a.attempts = (size_t) take(&in, 8);
    a.resent = (int) take(&in, 1);
    a.manual = (int) take(&in, 1);
    a.random = (uint32_t) take(&in, 4);
    h.failures = take(&in, 8);
    h.failing_since = take(&in, 8);
    h.wrong_url_since = take(&in, 8);
    r.after = take(&in, 8);
    r.after_time = take(&in, 8);
    r.on_error = take(&in, 8);
    now = take(&in, 8);
    a.nretry = (size_t) (take(&in, 1) % (MAX_RETRY + 1));

    /* exactly nretry entries, so ASan catches a read past the schedule */
    retry = a.nretry ? malloc(a.nretry * sizeof(uint64_t)) : NULL;
    if (a.nretry && retry == NULL) {
        abort();
    }

    for (i = 0; i < a.nretry; i++) {
        retry[i] = take(&in, 8);
    }

    a.retry = retry;

    outcome = pb_policy_outcome(a.status, a.error);

    if (outcome < 0 || outcome >= PB_OUTCOMES) {
        abort();
    }

    delay = 0;
    v = pb_policy_decide(&a, &delay);

    switch (v) {

    case PB_POLICY_DELIVERED:
        if (outcome != PB_OUTCOME_2XX) {
            abort();
        }
        break;

    case PB_POLICY_GONE:
        if (a.status != 410) {
            abort();
        }
        break;

    case PB_POLICY_RETRY:
        if (a.attempt >= a.attempts || a.resent || a.manual) {
            abort();
        }

        check_delay(&a, delay);
        break;

    case PB_POLICY_RESUME:
        if (!a.manual || a.resent) {
            abort();
        }
        break;

    case PB_POLICY_FAILED:
        if (a.attempt < a.attempts && !a.resent) {
            abort();
        }

        if (a.manual && !a.resent) {
            abort();
        }
        break;

    default:
        abort();
    }

    /* a 2xx is delivered, a 410 without an error gone, on any attempt */
    if ((outcome == PB_OUTCOME_2XX) != (v == PB_POLICY_DELIVERED)
        || (a.status == 410 && !a.error && v != PB_POLICY_GONE))
    {
        abort();
    }

    if (pb_policy_disables(&h, &r, now) != expected_disable(&h, &r, now)) {
        abort();
    }

    free(retry);

    return 0;
}
