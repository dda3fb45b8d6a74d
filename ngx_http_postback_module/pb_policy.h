/*
 * What an attempt's outcome means for its delivery and its callback: the
 * retry, 410 and disable_after= rules.  Pure C, no nginx headers.
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


typedef struct {
    int              status;       /* HTTP status, 0: no answer */
    int              error;        /* the transfer broke, even after 2xx */
    uint64_t         retry_after;  /* ms, the receiver's Retry-After */
    size_t           attempt;      /* this one's number, 1 for the first */
    size_t           attempts;     /* attempts= */
    int              resent;       /* a finished delivery sent once more */
    const uint64_t  *retry;        /* retry= delays, ms */
    size_t           nretry;
    uint32_t         random;       /* for the jitter */
} pb_policy_attempt_t;


/* The outcome class of an answer (or of none). */
int pb_policy_outcome(int status, int error);

/*
 * The delivery's fate after attempt a: one of PB_POLICY_*; *delay is set
 * for PB_POLICY_RETRY (pb_backoff_delay with the receiver's Retry-After as
 * a floor).  A resent delivery gets no further attempt.
 */
int pb_policy_decide(const pb_policy_attempt_t *a, uint64_t *delay);

/*
 * Whether a callback whose deliveries failed `failures` times in a row is
 * disabled by disable_after= (0: never).
 */
int pb_policy_disables(uint64_t failures, uint64_t disable_after);

#endif /* PB_POLICY_H */
