
/*
 * Copyright (C) The ngx_http_postback_module authors
 */


#include "pb_minutes.h"


void
pb_minutes_add(pb_minutes_t *m, uint64_t ms, int delivered)
{
    uint64_t      minute;
    pb_minute_t  *b;

    minute = ms / 60000;
    b = &m->bucket[minute % PB_MINUTES];

    if (b->minute > minute) {
        return;
    }

    if (b->minute < minute) {
        b->minute = minute;
        b->delivered = 0;
        b->failed = 0;
    }

    if (delivered) {
        b->delivered++;

    } else {
        b->failed++;
    }
}


uint64_t
pb_minutes_series(const pb_minutes_t *m, uint64_t now_ms,
    uint32_t *delivered, uint32_t *failed)
{
    uint64_t            now, minute;
    unsigned            i;
    const pb_minute_t  *b;

    now = now_ms / 60000;

    for (i = 0; i < PB_MINUTES; i++) {
        delivered[i] = 0;
        failed[i] = 0;

        /* the minutes before the epoch, for a clock that says 1970 */
        if (now + i < PB_MINUTES - 1) {
            continue;
        }

        minute = now + i - (PB_MINUTES - 1);
        b = &m->bucket[minute % PB_MINUTES];

        if (b->minute == minute) {
            delivered[i] = b->delivered;
            failed[i] = b->failed;
        }
    }

    return now < PB_MINUTES - 1 ? 0 : (now - (PB_MINUTES - 1)) * 60000;
}
