/*
 * When to try a failed delivery again.  Pure C, no nginx headers.
 */

#ifndef PB_BACKOFF_H
#define PB_BACKOFF_H

#include <stddef.h>
#include <stdint.h>


#define PB_BACKOFF_JITTER  20   /* percent, either way */


/*
 * Delay in ms before the attempt after attempt number `failed` (1 for the
 * first send): schedule[failed - 1], the last entry repeating, with
 * +-20% jitter drawn from `random`, and never sooner than retry_after_ms
 * (the receiver's Retry-After, 0 if none).
 */
uint64_t pb_backoff_delay(const uint64_t *schedule, size_t n, size_t failed,
    uint32_t random, uint64_t retry_after_ms);

#endif /* PB_BACKOFF_H */
