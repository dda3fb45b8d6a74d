
/*
 * Copyright (C) The ngx_http_postback_module authors
 */


#include "pb_backoff.h"
#include "pb_policy.h"


int
pb_policy_outcome(int status, int error)
{
    if (error || status < 200 || status > 599) {
        return PB_OUTCOME_ERROR;
    }

    return PB_OUTCOME_2XX + status / 100 - 2;
}


int
pb_policy_decide(const pb_policy_attempt_t *a, uint64_t *delay)
{
    if (pb_policy_outcome(a->status, a->error) == PB_OUTCOME_2XX) {
        return PB_POLICY_DELIVERED;
    }

    if (a->status == 410) {
        return PB_POLICY_GONE;
    }

    if (a->resent) {
        return PB_POLICY_FAILED;
    }

    if (a->manual) {
        return PB_POLICY_RESUME;
    }

    if (a->attempt >= a->attempts) {
        return PB_POLICY_FAILED;
    }

    *delay = pb_backoff_delay(a->retry, a->nretry, a->attempt, a->random,
                              a->retry_after);

    return PB_POLICY_RETRY;
}


int
pb_policy_wrong_url(int status, int transport_wrong_url)
{
    return transport_wrong_url
           || status == 404 || status == 405 || status == 410;
}


int
pb_policy_attempted(pb_health_t *h, int ok, int wrong_url, uint64_t start)
{
    int  was_failing;

    was_failing = (h->failing_since != 0);

    if (ok) {
        h->failures = 0;
        h->failing_since = 0;
        h->wrong_url_since = 0;
        return was_failing;
    }

    /* 0 stands for "none": an attempt at the epoch counts from 1 ms */
    start = start ? start : 1;

    if (!was_failing) {
        h->failing_since = start;
    }

    if (!wrong_url) {
        h->wrong_url_since = 0;

    } else if (h->wrong_url_since == 0) {
        h->wrong_url_since = start;
    }

    return !was_failing;
}


int
pb_policy_disables(const pb_health_t *h, const pb_disable_rules_t *r,
    uint64_t now)
{
    if (r->on_error && h->wrong_url_since
        && now >= h->wrong_url_since
        && now - h->wrong_url_since >= r->on_error)
    {
        return PB_DISABLE_WRONG_URL;
    }

    if (r->after && h->failures >= r->after) {
        return PB_DISABLE_FAILURES;
    }

    if (r->after_time && h->failing_since
        && now >= h->failing_since
        && now - h->failing_since >= r->after_time)
    {
        return PB_DISABLE_FAILURES;
    }

    return PB_DISABLE_NONE;
}
