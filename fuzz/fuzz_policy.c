/*
 * Decides on an attempt decoded from the input, any values, and checks
 * the rules: DELIVERED for a 2xx alone, GONE for a 410 alone, RETRY only
 * while attempts are left and only for a delivery not resent, its delay
 * never before Retry-After and else within the jitter of its retry= entry.
 *
 * Input, big-endian, missing bytes read as 0: status (4), error (1),
 * Retry-After (8), attempt (8), attempts (8), resent (1), random (4),
 * failures (8), disable_after (8), then the number of retry= delays (1,
 * modulo 17) and the delays (8 each).
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


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                  v, outcome;
    size_t               i;
    int32_t              status;
    input_t              in;
    uint32_t             u;
    uint64_t             delay, failures, disable_after;
    uint64_t            *retry;
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
    a.random = (uint32_t) take(&in, 4);
    failures = take(&in, 8);
    disable_after = take(&in, 8);
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
        if (a.attempt >= a.attempts || a.resent) {
            abort();
        }

        check_delay(&a, delay);
        break;

    case PB_POLICY_FAILED:
        if (a.attempt < a.attempts && !a.resent) {
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

    if (!pb_policy_disables(failures, disable_after)
        != !(disable_after != 0 && failures >= disable_after))
    {
        abort();
    }

    free(retry);

    return 0;
}
