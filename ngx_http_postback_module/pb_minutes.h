/*
 * A callback's attempts of the last hour, minute by minute: delivered
 * (answered 2xx) and failed (any other answer, or none).  A ring of
 * buckets indexed by the minute since the epoch, each stamped with its
 * minute, so that a bucket an hour old reads as 0 without anything
 * clearing it.  Pure C, no nginx headers.
 */

#ifndef PB_MINUTES_H
#define PB_MINUTES_H

#include <stdint.h>


#define PB_MINUTES  60


typedef struct {
    uint64_t         minute;       /* since the epoch */
    uint32_t         delivered;
    uint32_t         failed;
} pb_minute_t;


typedef struct {
    pb_minute_t      bucket[PB_MINUTES];
} pb_minutes_t;


/*
 * Counts an attempt that ended at ms (since the epoch) in its minute's
 * bucket; one older than the bucket's minute (the clock went back an
 * hour) is not counted.
 */
void pb_minutes_add(pb_minutes_t *m, uint64_t ms, int delivered);

/*
 * The PB_MINUTES minutes up to the one of now_ms, oldest first, into
 * delivered[] and failed[]; a minute nothing was counted in is 0.
 * Returns the oldest minute's start, in ms since the epoch.
 */
uint64_t pb_minutes_series(const pb_minutes_t *m, uint64_t now_ms,
    uint32_t *delivered, uint32_t *failed);

#endif /* PB_MINUTES_H */
