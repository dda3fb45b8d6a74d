/*
 * Reads the input as a journal, the way a reader does: on CORRUPT skips
 * one byte and goes on, on TORN stops.  Every record read must point into
 * its frame, and must write back, in exactly pb_journal_size bytes, to a
 * frame that reads back as the same record: the same frame for a 'D',
 * 'E', 'K' or 'S' one (a 'D' one without key, armed or params_at gains
 * them empty), a 'D' or 'E' one of tag 0 for a 'C' or 'F' one of 0.1.
 * Then
 * the input is listed whole, as the spool reads a journal, and its live
 * records are checked against a plain count.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pb_journal.h"


static int
same_bytes(const pb_bytes_t *a, const pb_bytes_t *b)
{
    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


static int
same_record(const pb_journal_record_t *a, const pb_journal_record_t *b)
{
    return a->type == b->type && a->tag == b->tag
           && a->method == b->method && a->state == b->state
           && a->created == b->created
           && same_bytes(&a->id, &b->id)
           && same_bytes(&a->callback, &b->callback)
           && same_bytes(&a->event, &b->event)
           && same_bytes(&a->url, &b->url)
           && same_bytes(&a->headers, &b->headers)
           && same_bytes(&a->body, &b->body)
           && same_bytes(&a->fields, &b->fields)
           && same_bytes(&a->key, &b->key) && a->armed == b->armed
           && a->params_at == b->params_at && a->digest == b->digest
           && same_bytes(&a->attempts, &b->attempts);
}


static int
inside(const pb_bytes_t *b, const unsigned char *buf, size_t len)
{
    return b->len == 0
           || (b->data >= buf && b->len <= len
               && b->data <= buf + len - b->len);
}


/* What the record's type leaves out is empty. */
static int
well_formed(const pb_journal_record_t *r)
{
    if (r->method > 0xff || r->state > 0xff) {
        return 0;
    }

    if (r->type != PB_JOURNAL_FINISHED && r->attempts.len != 0) {
        return 0;
    }

    if (r->type == PB_JOURNAL_CREATED) {
        return r->state == 0 && r->digest == 0;
    }

    if (r->type == PB_JOURNAL_CALLBACK) {
        return r->method == 0 && r->armed == 0 && r->params_at == 0
               && r->id.len == 0 && r->event.len == 0 && r->key.len == 0
               && r->url.len == 0 && r->headers.len == 0
               && r->body.len == 0 && r->fields.len == 0;
    }

    if (r->type == PB_JOURNAL_KEY) {
        return r->state == 0 && r->method == 0 && r->armed == 0
               && r->params_at == 0 && r->digest == 0
               && r->id.len == 0 && r->callback.len == 0
               && r->url.len == 0 && r->headers.len == 0
               && r->body.len == 0 && r->fields.len == 0;
    }

    return r->type == PB_JOURNAL_FINISHED
           && r->method == 0 && r->created == 0
           && r->callback.len == 0 && r->event.len == 0
           && r->url.len == 0 && r->headers.len == 0
           && r->body.len == 0 && r->fields.len == 0 && r->key.len == 0
           && r->armed == 0 && r->params_at == 0 && r->digest == 0;
}


/* every attempt of a finished record reads, inside its frame */
static int
attempts_read(const pb_bytes_t *attempts, const unsigned char *frame,
    size_t used)
{
    int                   rc;
    pb_bytes_t            rest;
    pb_journal_attempt_t  a;

    rest = *attempts;

    while ((rc = pb_journal_attempt_next(&rest, &a)) == 1) {
        if (!inside(&a.error, frame, used)
            || !inside(&a.response, frame, used)
            || a.manual > 1)
        {
            return 0;
        }
    }

    return rc == 0 && rest.len == 0;
}


static void
check_record(const pb_journal_record_t *r, const unsigned char *frame,
    size_t used)
{
    int                   legacy;
    size_t                n, again_used;
    unsigned char        *buf;
    pb_journal_record_t   again;

    if (!well_formed(r)
        || !inside(&r->id, frame, used)
        || !inside(&r->callback, frame, used)
        || !inside(&r->event, frame, used)
        || !inside(&r->url, frame, used)
        || !inside(&r->headers, frame, used)
        || !inside(&r->body, frame, used)
        || !inside(&r->fields, frame, used)
        || !inside(&r->key, frame, used)
        || !inside(&r->attempts, frame, used)
        || !attempts_read(&r->attempts, frame, used))
    {
        abort();
    }

    switch (frame[3]) {

    case 'C':
    case 'F':
        /* read as 'D' or 'E', with what 0.1 did not have empty */
        if (r->type != (frame[3] == 'C' ? PB_JOURNAL_CREATED
                                        : PB_JOURNAL_FINISHED)
            || r->tag != 0 || r->state != 0 || r->fields.len != 0
            || r->key.len != 0 || r->armed != 0 || r->params_at != 0)
        {
            abort();
        }

        legacy = 1;
        break;

    default:
        if (r->type != frame[3]) {
            abort();
        }

        legacy = 0;
        break;
    }

    /* exactly the size, so ASan catches a write past it */
    n = pb_journal_size(r);

    buf = malloc(n);
    if (buf == NULL) {
        abort();
    }

    if (pb_journal_write(buf, r) != buf + n || buf[3] != r->type) {
        abort();
    }

    if (legacy) {
        /* the tag, fields, key, armed and params_at, or tag and state */
        if (n != used
                 + (r->type == PB_JOURNAL_CREATED ? 8 + 4 + 4 + 8 + 4
                                                  : 8 + 1))
        {
            abort();
        }

    } else if (r->type == PB_JOURNAL_CREATED
               && (n == used + 4 + 8 + 4 || n == used + 8 + 4
                   || n == used + 4))
    {
        /* written before keys, timeout events or params_at: added empty */
        if (r->params_at != 0
            || (n != used + 4 && r->armed != 0)
            || (n == used + 4 + 8 + 4 && r->key.len != 0))
        {
            abort();
        }

    } else if (n != used || memcmp(buf, frame, n) != 0) {
        /* the frame is canonical: the same record, the same bytes */
        abort();
    }

    again_used = 0;

    if (pb_journal_read(buf, n, &again, &again_used) != PB_JOURNAL_OK
        || again_used != n
        || !same_record(&again, r))
    {
        abort();
    }

    free(buf);
}


/* deliveries (0), keys (K) and callbacks (S) have ids of their own */
static int
kind(const pb_journal_entry_t *e)
{
    return (e->type == PB_JOURNAL_KEY || e->type == PB_JOURNAL_CALLBACK)
           ? e->type : 0;
}


static int
same_id(const pb_journal_entry_t *a, const pb_journal_entry_t *b)
{
    return kind(a) == kind(b)
           && a->id_len == b->id_len
           && (a->id_len == 0 || memcmp(a->id, b->id, a->id_len) == 0);
}


/*
 * A key or callback record is live when no later change of its key or
 * callback outranks it.
 */
static int
key_live(const pb_journal_entry_t *e, size_t n, size_t i)
{
    size_t  k;

    if (e[i].removed) {
        return 0;
    }

    for (k = 0; k < n; k++) {
        if (k != i && same_id(&e[i], &e[k])
            && (e[k].stamp > e[i].stamp
                || (e[k].stamp == e[i].stamp && k > i)))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * The history: pairs of a first created record and a finished record of
 * its id after it, neither live, all of them within budget.
 */

static void
check_history(const pb_journal_entry_t *e, size_t n, uint64_t budget)
{
    size_t                     i, k;
    uint64_t                   used;
    const pb_journal_entry_t  *end;

    used = 0;

    for (i = 0; i < n; i++) {
        if (e[i].history) {
            used += e[i].size;
        }

        if (e[i].finished == 0) {
            continue;
        }

        if (e[i].type != PB_JOURNAL_CREATED || !e[i].history
            || e[i].live || e[i].finished > n)
        {
            abort();
        }

        end = &e[e[i].finished - 1];

        if (end->type != PB_JOURNAL_FINISHED || !end->history
            || end->offset <= e[i].offset || !same_id(&e[i], end))
        {
            abort();
        }

        for (k = 0; k < i; k++) {
            if (e[k].type == PB_JOURNAL_CREATED && same_id(&e[k], &e[i])) {
                abort();
            }
        }

    }

    for (i = 0; i < n; i++) {
        if (e[i].history && e[i].type != PB_JOURNAL_FINISHED
            && e[i].finished == 0)
        {
            abort();
        }
    }

    if (used > budget) {
        abort();
    }
}


/*
 * The whole input as a journal: listed in order, a few records at a time
 * (as a reader with a small list does), each listed one reading back at
 * its place; the live ones are the first created record of each id that
 * no finished record names, the latest change of each key still in the
 * table and of each callback, and only those.
 */

static void
check_scan(const uint8_t *data, size_t size)
{
    int                  finished, first;
    size_t               i, k, n, at, end, used;
    pb_journal_entry_t   e[64];
    pb_journal_record_t  r;

    n = 0;
    at = 0;

    for ( ;; ) {
        k = pb_journal_scan(data + at, size - at, e + n,
                            n + 3 < 64 ? 3 : 64 - n, NULL, &end);

        for (i = n; i < n + k; i++) {
            e[i].offset += at;

            if (e[i].offset + e[i].size > size
                || (i > 0 && e[i].offset < e[i - 1].offset + e[i - 1].size)
                || pb_journal_read(data + e[i].offset, size - e[i].offset,
                                   &r, &used)
                   != PB_JOURNAL_OK
                || used != e[i].size || r.type != e[i].type)
            {
                abort();
            }
        }

        n += k;
        at += end;

        if (k == 0 || n == 64 || at >= size) {
            break;
        }
    }

    if (pb_journal_live(e, n, size / 2) < 0) {
        abort();
    }

    check_history(e, n, size / 2);

    for (i = 0; i < n; i++) {
        if (kind(&e[i]) != 0) {
            if (e[i].live != key_live(e, n, i)) {
                abort();
            }

            continue;
        }

        finished = 0;
        first = (e[i].type == PB_JOURNAL_CREATED);

        for (k = 0; k < n; k++) {
            if (!same_id(&e[i], &e[k])) {
                continue;
            }

            finished |= (e[k].type == PB_JOURNAL_FINISHED);

            if (k < i && e[k].type == PB_JOURNAL_CREATED) {
                first = 0;
            }
        }

        if (e[i].live != (first && !finished)) {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc;
    size_t                pos, used;
    pb_journal_record_t   r;

    pos = 0;

    while (pos < size) {
        used = 0;
        rc = pb_journal_read(data + pos, size - pos, &r, &used);

        if (rc == PB_JOURNAL_TORN) {
            break;
        }

        if (rc == PB_JOURNAL_CORRUPT) {
            pos++;
            continue;
        }

        if (rc != PB_JOURNAL_OK || used == 0 || used > size - pos) {
            abort();
        }

        check_record(&r, data + pos, used);

        pos += used;
    }

    check_scan(data, size);

    return 0;
}
