/*
 * Reads the input as a journal, the way a reader does: on CORRUPT skips
 * one byte and goes on, on TORN stops.  Every record read must point into
 * its frame, and must write back, in exactly pb_journal_size bytes, to the
 * same frame, which reads back as the same record.
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
    return a->type == b->type && a->method == b->method
           && a->created == b->created
           && same_bytes(&a->id, &b->id)
           && same_bytes(&a->callback, &b->callback)
           && same_bytes(&a->event, &b->event)
           && same_bytes(&a->url, &b->url)
           && same_bytes(&a->headers, &b->headers)
           && same_bytes(&a->body, &b->body);
}


static int
inside(const pb_bytes_t *b, const unsigned char *buf, size_t len)
{
    return b->len == 0
           || (b->data >= buf && b->len <= len
               && b->data <= buf + len - b->len);
}


static void
check_record(const pb_journal_record_t *r, const unsigned char *frame,
    size_t used)
{
    size_t                n, again_used;
    unsigned char        *buf;
    pb_journal_record_t   again;

    if ((r->type != PB_JOURNAL_CREATED && r->type != PB_JOURNAL_FINISHED)
        || r->method > 0xff
        || !inside(&r->id, frame, used)
        || !inside(&r->callback, frame, used)
        || !inside(&r->event, frame, used)
        || !inside(&r->url, frame, used)
        || !inside(&r->headers, frame, used)
        || !inside(&r->body, frame, used))
    {
        abort();
    }

    /* exactly the size, so ASan catches a write past it */
    n = pb_journal_size(r);

    buf = malloc(n);
    if (buf == NULL) {
        abort();
    }

    if (pb_journal_write(buf, r) != buf + n) {
        abort();
    }

    /* the frame is canonical: the same record, the same bytes */
    if (n != used || memcmp(buf, frame, n) != 0) {
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

    return 0;
}
