
/*
 * Copyright (C) The ngx_http_postback_module authors
 */


#include "pb_backoff.h"


uint64_t
pb_backoff_delay(const uint64_t *schedule, size_t n, size_t failed,
    uint32_t random, uint64_t retry_after_ms)
{
    size_t    i;
    uint64_t  base, span, delay;

    if (n == 0) {
        return retry_after_ms;
    }

    i = (failed > 0) ? failed - 1 : 0;
    base = schedule[i < n ? i : n - 1];

    /*
     * uniform in [base - 20%, base + 20%]; the percentages are taken of
     * base / 100 and base % 100 apart, as base * 40 may not fit
     */
    span = base / 100 * 2 * PB_BACKOFF_JITTER
           + base % 100 * 2 * PB_BACKOFF_JITTER / 100;
    delay = base - (base / 100 * PB_BACKOFF_JITTER
                    + base % 100 * PB_BACKOFF_JITTER / 100)
            + (span ? (uint64_t) random % (span + 1) : 0);

    return delay < retry_after_ms ? retry_after_ms : delay;
}
