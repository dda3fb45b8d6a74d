/*
 * What an attempt's outcome means for its delivery and its callback: the
 * retry rules, a manual attempt's place beside them, and when a callback
 * is disabled (410, disable_on_error=, disable_after=).  Pure C, no nginx
 * headers.
 */

#ifndef PB_POLICY_H
#define PB_POLICY_H

#include <stddef.h>
#include <stdint.h>


/* the outcome classes of attempts, as the metrics count them */
#define PB_OUTCOME_2XX     0
#define PB_OUTCOME_3XX     1
#define PB_OUTCOME_4XX     2
#define PB_OUTCOME_5XX     3
#define PB_OUTCOME_ERROR   4    /* no answer, or a broken one */
#define PB_OUTCOMES        5

/* what becomes of the delivery */
#define PB_POLICY_DELIVERED  0  /* a 2xx: it ends delivered */
#define PB_POLICY_RETRY      1  /* another attempt, *delay ms from now */
#define PB_POLICY_FAILED     2  /* no attempt left: it ends failed */
#define PB_POLICY_GONE       3  /* 410 Gone: it ends failed, the callback
                                   is disabled */
#define PB_POLICY_RESUME     4  /* a manual attempt failed: the delivery
                                   goes back to its schedule as it was */


typedef struct {
    int              status;       /* HTTP status, 0: no answer */
    int              error;        /* the transfer broke, even after 2xx */
    uint64_t         retry_after;  /* ms, the receiver's Retry-After */
    size_t           attempt;      /* automatic attempts made, this one
                                      included when it is one */
    size_t           attempts;     /* attempts= */
    int              manual;       /* asked for, outside the schedule */
    int              resent;       /* ... of a finished delivery */
    const uint64_t  *retry;        /* retry= delays, ms */
    size_t           nretry;
    uint32_t         random;       /* for the jitter */
} pb_policy_attempt_t;


/* why a callback is disabled */
#define PB_DISABLE_NONE       0
#define PB_DISABLE_GONE       1     /* its receiver answered 410 */
#define PB_DISABLE_FAILURES   2     /* disable_after=: deliveries, or time */
#define PB_DISABLE_WRONG_URL  3     /* disable_on_error= */


/* how a callback's receiver has been doing, kept by its callback */
typedef struct {
    uint64_t         failures;     /* deliveries failed in a row */
    uint64_t         failing_since;    /* ms: the first attempt that
                                          failed since the last 2xx */
    uint64_t         wrong_url_since;  /* ms: the first of the attempts in
                                          a row answered as if the url
                                          were wrong */
} pb_health_t;


/* disable_after= and disable_on_error=; 0: that rule is off */
typedef struct {
    uint64_t         after;        /* deliveries failed in a row */
    uint64_t         after_time;   /* ms of failing attempts */
    uint64_t         on_error;     /* ms of wrong-url answers alone */
} pb_disable_rules_t;


/* The outcome class of an answer (or of none). */
int pb_policy_outcome(int status, int error);

/*
 * The delivery's fate after attempt a: one of PB_POLICY_*; *delay is set
 * for PB_POLICY_RETRY (pb_backoff_delay with the receiver's Retry-After as
 * a floor).  A manual attempt never uses up or moves the automatic ones:
 * it resumes them, and a resent delivery gets no further attempt.
 */
int pb_policy_decide(const pb_policy_attempt_t *a, uint64_t *delay);

/*
 * Whether an answer says the url itself is wrong rather than the receiver
 * being down: 404, 405, 410, or a transport error that says so (a name
 * that does not resolve, a certificate that does not verify).
 */
int pb_policy_wrong_url(int status, int transport_wrong_url);

/*
 * An attempt that started at `start` (ms) ended: ok (a 2xx) or not, its
 * answer wrong_url or not.  Returns 1 when this changed whether the
 * receiver is failing (its first failure, or a recovery).
 */
int pb_policy_attempted(pb_health_t *h, int ok, int wrong_url,
    uint64_t start);

/*
 * Which rule, if any, disables the callback at `now` (ms): one of
 * PB_DISABLE_*; a delivery that just failed for good is counted in
 * h->failures by the caller first.
 */
int pb_policy_disables(const pb_health_t *h, const pb_disable_rules_t *r,
    uint64_t now);

#endif /* PB_POLICY_H */
