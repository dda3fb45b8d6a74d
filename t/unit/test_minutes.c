/*
 * Unit tests of pb_minutes: attempts counted in their minute, the series
 * oldest first, buckets an hour old reading as 0 and reused, a clock
 * gone back.
 */

#include <string.h>

#include "pb_minutes.h"
#include "unit.h"


#define MINUTE  60000ULL

/* 2026-01-01T00:00:00Z, a minute's start */
#define T0      1767225600000ULL


static pb_minutes_t  ring;
static uint32_t      delivered[PB_MINUTES], failed[PB_MINUTES];


/* the series at now, checking the oldest minute's start it returns */
static void
series_at(uint64_t now)
{
    CHECK(pb_minutes_series(&ring, now, delivered, failed)
          == (now / MINUTE - (PB_MINUTES - 1)) * MINUTE);
}


static unsigned
sum(const uint32_t *v)
{
    unsigned  i, n;

    n = 0;

    for (i = 0; i < PB_MINUTES; i++) {
        n += v[i];
    }

    return n;
}


static void
test_empty(void)
{
    memset(&ring, 0, sizeof(ring));

    series_at(T0);
    CHECK(sum(delivered) == 0 && sum(failed) == 0);
}


static void
test_counted_in_their_minute(void)
{
    memset(&ring, 0, sizeof(ring));

    pb_minutes_add(&ring, T0 + 1, 1);
    pb_minutes_add(&ring, T0 + MINUTE - 1, 1);
    pb_minutes_add(&ring, T0 + 30000, 0);
    pb_minutes_add(&ring, T0 + MINUTE, 0);

    /* now in T0's minute: it is the last, the newest */
    series_at(T0 + 59999);
    CHECK(delivered[PB_MINUTES - 1] == 2 && failed[PB_MINUTES - 1] == 1);
    CHECK(sum(delivered) == 2 && sum(failed) == 1);

    /* a minute later: T0's one step back, the next minute's last */
    series_at(T0 + MINUTE + 5);
    CHECK(delivered[PB_MINUTES - 2] == 2 && failed[PB_MINUTES - 2] == 1);
    CHECK(delivered[PB_MINUTES - 1] == 0 && failed[PB_MINUTES - 1] == 1);
}


static void
test_an_hour_later(void)
{
    memset(&ring, 0, sizeof(ring));

    pb_minutes_add(&ring, T0, 1);
    pb_minutes_add(&ring, T0 + 10 * MINUTE, 0);

    /* 59 minutes on, T0's minute is the oldest shown */
    series_at(T0 + 59 * MINUTE);
    CHECK(delivered[0] == 1 && failed[10] == 1);

    /* 60 minutes on, it is gone; the bucket is not cleared but stale */
    series_at(T0 + 60 * MINUTE);
    CHECK(sum(delivered) == 0 && failed[9] == 1);

    /* the same bucket, an hour later, starts over */
    pb_minutes_add(&ring, T0 + 60 * MINUTE, 0);
    series_at(T0 + 60 * MINUTE);
    CHECK(sum(delivered) == 0 && failed[PB_MINUTES - 1] == 1);
    CHECK(sum(failed) == 2);

    /* hours on, nothing */
    series_at(T0 + 500 * MINUTE);
    CHECK(sum(delivered) == 0 && sum(failed) == 0);
}


static void
test_clock_gone_back(void)
{
    memset(&ring, 0, sizeof(ring));

    pb_minutes_add(&ring, T0 + 60 * MINUTE, 1);

    /* the same bucket an hour earlier: not counted, the newer one kept */
    pb_minutes_add(&ring, T0, 0);
    series_at(T0 + 60 * MINUTE);
    CHECK(delivered[PB_MINUTES - 1] == 1 && sum(failed) == 0);

    /* seen from an hour before, the newer minute is not shown */
    series_at(T0);
    CHECK(sum(delivered) == 0 && sum(failed) == 0);
}


static void
test_near_the_epoch(void)
{
    memset(&ring, 0, sizeof(ring));

    pb_minutes_add(&ring, 0, 0);
    pb_minutes_add(&ring, 3 * MINUTE, 1);

    /* the oldest minutes are before the epoch: counted from it */
    CHECK(pb_minutes_series(&ring, 3 * MINUTE, delivered, failed) == 0);
    CHECK(failed[PB_MINUTES - 4] == 1 && delivered[PB_MINUTES - 1] == 1);
    CHECK(sum(failed) == 1 && sum(delivered) == 1);
}


const unit_test_t  minutes_tests[] = {
    UNIT_TEST(test_empty),
    UNIT_TEST(test_counted_in_their_minute),
    UNIT_TEST(test_an_hour_later),
    UNIT_TEST(test_clock_gone_back),
    UNIT_TEST(test_near_the_epoch),
};

const size_t  minutes_ntests = sizeof(minutes_tests) / sizeof(minutes_tests[0]);
