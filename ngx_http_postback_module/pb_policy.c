
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

    if (a->resent || a->attempt >= a->attempts) {
        return PB_POLICY_FAILED;
    }

    *delay = pb_backoff_delay(a->retry, a->nretry, a->attempt, a->random,
                              a->retry_after);

    return PB_POLICY_RETRY;
}


int
pb_policy_disables(uint64_t failures, uint64_t disable_after)
{
    return disable_after != 0 && failures >= disable_after;
}
