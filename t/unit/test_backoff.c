/*
 * Unit tests of pb_backoff: the schedule, its last entry repeating, the
 * +-20% jitter bounds and Retry-After as a floor.
 */

#include <stdint.h>

#include "pb_backoff.h"
#include "unit.h"


static const uint64_t  schedule[] = { 5000, 300000, 1800000, 7200000 };


static void
test_schedule_without_jitter_spread(void)
{
    /* random 0 is the low end: base - 20% */
    CHECK(pb_backoff_delay(schedule, 4, 1, 0, 0) == 4000);
    CHECK(pb_backoff_delay(schedule, 4, 2, 0, 0) == 240000);
    CHECK(pb_backoff_delay(schedule, 4, 4, 0, 0) == 5760000);
}


static void
test_last_entry_repeats(void)
{
    CHECK(pb_backoff_delay(schedule, 4, 5, 0, 0) == 5760000);
    CHECK(pb_backoff_delay(schedule, 4, 50, 0, 0) == 5760000);
}


static void
test_jitter_bounds(void)
{
    uint32_t  r;
    uint64_t  d, lo, hi;

    lo = UINT64_MAX;
    hi = 0;

    for (r = 0; r < 100000; r += 7) {
        d = pb_backoff_delay(schedule, 4, 1, r * 2654435761u, 0);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }

    CHECK(lo >= 4000 && hi <= 6000);
    CHECK(lo < 4100 && hi > 5900);   /* the whole range is used */
}


static void
test_huge_delays(void)
{
    static const uint64_t  huge[] = { 1000000000000000000ULL };

    /* base * 40 would wrap: random 0 is still the low end, base - 20% */
    CHECK(pb_backoff_delay(huge, 1, 1, 0, 0) == 800000000000000000ULL);
    CHECK(pb_backoff_delay(huge, 1, 1, UINT32_MAX, 0)
          == 800000000000000000ULL + UINT32_MAX);
}


static void
test_retry_after_is_a_floor(void)
{
    CHECK(pb_backoff_delay(schedule, 4, 1, 0, 60000) == 60000);
    CHECK(pb_backoff_delay(schedule, 4, 1, 0, 1000) == 4000);
}


static void
test_edges(void)
{
    static const uint64_t  one[] = { 1 };
    static const uint64_t  zero[] = { 0 };

    CHECK(pb_backoff_delay(schedule, 0, 1, 0, 700) == 700);
    CHECK(pb_backoff_delay(schedule, 4, 0, 0, 0) == 4000);
    CHECK(pb_backoff_delay(zero, 1, 1, 12345, 0) == 0);
    CHECK(pb_backoff_delay(one, 1, 1, 12345, 0) <= 2);
}


const unit_test_t  backoff_tests[] = {
    UNIT_TEST(test_schedule_without_jitter_spread),
    UNIT_TEST(test_last_entry_repeats),
    UNIT_TEST(test_jitter_bounds),
    UNIT_TEST(test_huge_delays),
    UNIT_TEST(test_retry_after_is_a_floor),
    UNIT_TEST(test_edges),
};

const size_t  backoff_ntests = sizeof(backoff_tests) / sizeof(backoff_tests[0]);
