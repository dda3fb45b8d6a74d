
/*
 * Copyright (C) The ngx_http_postback_module authors
 */


#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pb_journal.h"


#define PB_JOURNAL_HEAD   8     /* "PBJ", type, length */
#define PB_JOURNAL_TAIL   4     /* CRC-32 */
#define PB_JOURNAL_LIMIT  (256 * 1024 * 1024)

/* the types of 0.1 journals, read as 'D' and 'E' */
#define PB_JOURNAL_CREATED_01   'C'
#define PB_JOURNAL_FINISHED_01  'F'


static int pb_journal_type(unsigned char c);
static int pb_journal_kind(const pb_journal_entry_t *e);
static int pb_journal_attempts_valid(const pb_bytes_t *attempts);
static void pb_journal_history(pb_journal_entry_t *e,
    pb_journal_entry_t **finished, size_t n, uint64_t budget);
static int pb_journal_more(const unsigned char *p, size_t len);
static int pb_journal_same_id(const pb_journal_entry_t *x,
    const pb_journal_entry_t *y);
static const unsigned char *pb_journal_payload(unsigned char c,
    const unsigned char *p, const unsigned char *end,
    pb_journal_record_t *r);


static unsigned char *
pb_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;

    return p + 4;
}


static uint32_t
pb_get32(const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}


static unsigned char *
pb_put_bytes(unsigned char *p, const pb_bytes_t *b)
{
    p = pb_put32(p, (uint32_t) b->len);

    if (b->len) {
        memcpy(p, b->data, b->len);
    }

    return p + b->len;
}


/* reads a length-prefixed field from p[0..end); NULL when it overruns */

static const unsigned char *
pb_get_bytes(const unsigned char *p, const unsigned char *end, pb_bytes_t *b)
{
    if (end - p < 4) {
        return NULL;
    }

    b->len = pb_get32(p);
    p += 4;

    if ((size_t) (end - p) < b->len) {
        return NULL;
    }

    b->data = p;

    return p + b->len;
}


static unsigned char *
pb_put64(unsigned char *p, uint64_t v)
{
    p = pb_put32(p, (uint32_t) (v >> 32));

    return pb_put32(p, (uint32_t) v);
}


static uint64_t
pb_get64(const unsigned char *p)
{
    return (uint64_t) pb_get32(p) << 32 | pb_get32(p + 4);
}


static size_t
pb_journal_payload_size(const pb_journal_record_t *r)
{
    if (r->type == PB_JOURNAL_FINISHED) {
        return 8 + 1 + 4 + r->id.len
               + (r->attempts.len ? 4 + r->attempts.len : 0);
    }

    if (r->type == PB_JOURNAL_KEY) {
        return 8 + 8 + 4 + r->key.len + 4 + r->event.len;
    }

    if (r->type == PB_JOURNAL_CALLBACK) {
        return 8 + 8 + 1 + 4 + 4 + r->callback.len;
    }

    return 8 + 1 + 8 + 8 * 4 + r->id.len + r->callback.len + r->event.len
           + r->url.len + r->headers.len + r->body.len + r->fields.len
           + r->key.len + 8 + 4;
}


size_t
pb_journal_size(const pb_journal_record_t *r)
{
    return PB_JOURNAL_HEAD + pb_journal_payload_size(r) + PB_JOURNAL_TAIL;
}


unsigned char *
pb_journal_write(unsigned char *dst, const pb_journal_record_t *r)
{
    unsigned char  *payload, *p;

    memcpy(dst, "PBJ", 3);
    dst[3] = (unsigned char) r->type;
    p = pb_put32(dst + 4, (uint32_t) pb_journal_payload_size(r));
    payload = p;

    p = pb_put64(p, r->tag);

    if (r->type == PB_JOURNAL_FINISHED) {
        *p++ = (unsigned char) r->state;
        p = pb_put_bytes(p, &r->id);

        if (r->attempts.len) {
            p = pb_put_bytes(p, &r->attempts);
        }

    } else if (r->type == PB_JOURNAL_KEY) {
        p = pb_put64(p, r->created);
        p = pb_put_bytes(p, &r->key);
        p = pb_put_bytes(p, &r->event);

    } else if (r->type == PB_JOURNAL_CALLBACK) {
        p = pb_put64(p, r->created);
        *p++ = (unsigned char) r->state;
        p = pb_put32(p, r->digest);
        p = pb_put_bytes(p, &r->callback);

    } else {
        *p++ = (unsigned char) r->method;
        p = pb_put64(p, r->created);
        p = pb_put_bytes(p, &r->id);
        p = pb_put_bytes(p, &r->callback);
        p = pb_put_bytes(p, &r->event);
        p = pb_put_bytes(p, &r->url);
        p = pb_put_bytes(p, &r->headers);
        p = pb_put_bytes(p, &r->body);
        p = pb_put_bytes(p, &r->fields);
        p = pb_put_bytes(p, &r->key);
        p = pb_put64(p, r->armed);
        p = pb_put32(p, (uint32_t) r->params_at);
    }

    return pb_put32(p, (uint32_t) crc32(0, payload, (uInt) (p - payload)));
}


size_t
pb_journal_attempt_size(const pb_journal_attempt_t *a)
{
    return 8 + 4 + 4 + 1 + 4 + a->error.len + 4 + a->response.len;
}


unsigned char *
pb_journal_attempt_write(unsigned char *dst, const pb_journal_attempt_t *a)
{
    dst = pb_put64(dst, a->start);
    dst = pb_put32(dst, a->duration);
    dst = pb_put32(dst, (uint32_t) a->status);
    *dst++ = (unsigned char) (a->manual ? 1 : 0);
    dst = pb_put_bytes(dst, &a->error);

    return pb_put_bytes(dst, &a->response);
}


int
pb_journal_attempt_next(pb_bytes_t *attempts, pb_journal_attempt_t *a)
{
    const unsigned char  *p, *end;

    if (attempts->len == 0) {
        return 0;
    }

    p = attempts->data;
    end = p + attempts->len;

    if (end - p < 8 + 4 + 4 + 1) {
        return -1;
    }

    a->start = pb_get64(p);
    a->duration = pb_get32(p + 8);
    a->status = (int32_t) pb_get32(p + 12);
    a->manual = p[16];

    p = pb_get_bytes(p + 17, end, &a->error);
    p = p ? pb_get_bytes(p, end, &a->response) : NULL;

    if (p == NULL || a->manual > 1) {
        return -1;
    }

    attempts->data = p;
    attempts->len = end - p;

    return 1;
}


/* a finished record's attempts read whole, each as written */

static int
pb_journal_attempts_valid(const pb_bytes_t *attempts)
{
    int                   rc;
    pb_bytes_t            rest;
    pb_journal_attempt_t  a;

    rest = *attempts;

    while ((rc = pb_journal_attempt_next(&rest, &a)) == 1) {
        /* void */
    }

    return rc == 0;
}


size_t
pb_journal_frame_size(const unsigned char *p)
{
    return PB_JOURNAL_HEAD + pb_get32(p + 4) + PB_JOURNAL_TAIL;
}


int
pb_journal_read(const unsigned char *buf, size_t len, pb_journal_record_t *r,
    size_t *used)
{
    size_t                size;
    const unsigned char  *p, *end;

    if (len < PB_JOURNAL_HEAD) {
        /* an empty buffer may be NULL: memcmp() must not see it */
        return (len == 0 || memcmp(buf, "PBJ", len < 3 ? len : 3) == 0)
               ? PB_JOURNAL_TORN : PB_JOURNAL_CORRUPT;
    }

    if (memcmp(buf, "PBJ", 3) != 0 || pb_journal_type(buf[3]) == 0) {
        return PB_JOURNAL_CORRUPT;
    }

    size = pb_get32(buf + 4);

    if (size > PB_JOURNAL_LIMIT) {
        return PB_JOURNAL_CORRUPT;
    }

    if (len - PB_JOURNAL_HEAD < size + PB_JOURNAL_TAIL) {
        return PB_JOURNAL_TORN;
    }

    p = buf + PB_JOURNAL_HEAD;
    end = p + size;

    if (pb_get32(end) != (uint32_t) crc32(0, p, (uInt) size)) {
        return PB_JOURNAL_CORRUPT;
    }

    memset(r, 0, sizeof(pb_journal_record_t));
    r->type = pb_journal_type(buf[3]);

    p = pb_journal_payload(buf[3], p, end, r);

    if (p != end) {
        return PB_JOURNAL_CORRUPT;
    }

    *used = PB_JOURNAL_HEAD + size + PB_JOURNAL_TAIL;

    return PB_JOURNAL_OK;
}


/* the type a frame's type byte stands for, 0 for none */

static int
pb_journal_type(unsigned char c)
{
    switch (c) {

    case PB_JOURNAL_CREATED:
    case PB_JOURNAL_CREATED_01:
        return PB_JOURNAL_CREATED;

    case PB_JOURNAL_FINISHED:
    case PB_JOURNAL_FINISHED_01:
        return PB_JOURNAL_FINISHED;

    case PB_JOURNAL_KEY:
        return PB_JOURNAL_KEY;

    case PB_JOURNAL_CALLBACK:
        return PB_JOURNAL_CALLBACK;

    default:
        return 0;
    }
}


/* reads the payload of a frame of type c; NULL, or not end: damaged */

static const unsigned char *
pb_journal_payload(unsigned char c, const unsigned char *p,
    const unsigned char *end, pb_journal_record_t *r)
{
    int  current;

    current = (c != PB_JOURNAL_CREATED_01 && c != PB_JOURNAL_FINISHED_01);

    if (current) {
        if (end - p < 9) {
            return NULL;
        }

        r->tag = pb_get64(p);
        p += 8;
    }

    if (r->type == PB_JOURNAL_FINISHED) {
        if (current) {
            r->state = *p++;
        }

        p = pb_get_bytes(p, end, &r->id);

        /* the attempts came later, and are there only for a history */
        if (current && p && p < end) {
            p = pb_get_bytes(p, end, &r->attempts);

            /* none are not written: an empty field is no frame of ours */
            if (p && (r->attempts.len == 0
                      || !pb_journal_attempts_valid(&r->attempts)))
            {
                return NULL;
            }
        }

        return p;
    }

    if (r->type == PB_JOURNAL_KEY) {
        if (end - p < 8) {
            return NULL;
        }

        r->created = pb_get64(p);
        p += 8;

        p = pb_get_bytes(p, end, &r->key);

        return p ? pb_get_bytes(p, end, &r->event) : NULL;
    }

    if (r->type == PB_JOURNAL_CALLBACK) {
        if (end - p < 8 + 1 + 4) {
            return NULL;
        }

        r->created = pb_get64(p);
        r->state = p[8];
        r->digest = pb_get32(p + 9);

        return pb_get_bytes(p + 13, end, &r->callback);
    }

    if (end - p < 9) {
        return NULL;
    }

    r->method = *p++;
    r->created = pb_get64(p);
    p += 8;

    p = pb_get_bytes(p, end, &r->id);
    p = p ? pb_get_bytes(p, end, &r->callback) : NULL;
    p = p ? pb_get_bytes(p, end, &r->event) : NULL;
    p = p ? pb_get_bytes(p, end, &r->url) : NULL;
    p = p ? pb_get_bytes(p, end, &r->headers) : NULL;
    p = p ? pb_get_bytes(p, end, &r->body) : NULL;

    if (current && p) {
        p = pb_get_bytes(p, end, &r->fields);
    }

    /* the key and armed came later: records written before lack them */
    if (current && p && p < end) {
        p = pb_get_bytes(p, end, &r->key);
    }

    if (current && p && p < end) {
        if (end - p < 8) {
            return NULL;
        }

        r->armed = pb_get64(p);
        p += 8;
    }

    if (current && p && p < end) {
        if (end - p < 4) {
            return NULL;
        }

        r->params_at = pb_get32(p);
        p += 4;
    }

    return p;
}


size_t
pb_journal_scan(const unsigned char *buf, size_t len, pb_journal_entry_t *e,
    size_t max, size_t *damaged, size_t *end)
{
    size_t               n, pos, used;
    pb_journal_record_t  r;

    n = 0;
    pos = 0;

    while (pos < len) {

        switch (pb_journal_read(buf + pos, len - pos, &r, &used)) {

        case PB_JOURNAL_OK:
            if (n == max) {
                *end = pos;
                return n;
            }

            e[n].offset = pos;
            e[n].size = used;
            e[n].type = r.type;
            e[n].tag = r.tag;
            e[n].id = r.id.data;
            e[n].id_len = r.id.len;
            e[n].stamp = 0;
            e[n].removed = 0;
            e[n].live = 0;
            e[n].history = 0;
            e[n].finished = 0;

            if (r.type == PB_JOURNAL_KEY) {
                e[n].id = r.key.data;
                e[n].id_len = r.key.len;
                e[n].stamp = r.created;
                e[n].removed = (r.event.len == 0);

            } else if (r.type == PB_JOURNAL_CALLBACK) {
                e[n].id = r.callback.data;
                e[n].id_len = r.callback.len;
                e[n].stamp = r.created;
            }

            n++;
            pos += used;
            continue;

        case PB_JOURNAL_TORN:
            if (pb_journal_more(buf + pos + 1, len - pos - 1)) {
                /* a damaged length, not the end: records follow */
                break;
            }

            *end = pos;
            return n;

        default: /* PB_JOURNAL_CORRUPT: look for the next record */
            break;
        }

        if (damaged) {
            (*damaged)++;
        }

        pos++;
    }

    *end = len;

    return n;
}


/* whether a frame's magic is somewhere in p[0..len) */

static int
pb_journal_more(const unsigned char *p, size_t len)
{
    const unsigned char  *m;

    while (len >= 3) {
        m = memchr(p, 'P', len - 2);
        if (m == NULL) {
            return 0;
        }

        if (m[1] == 'B' && m[2] == 'J') {
            return 1;
        }

        len -= m + 1 - p;
        p = m + 1;
    }

    return 0;
}


/* deliveries, keys and callbacks each have their own ids */

static int
pb_journal_kind(const pb_journal_entry_t *e)
{
    switch (e->type) {

    case PB_JOURNAL_KEY:
        return 1;

    case PB_JOURNAL_CALLBACK:
        return 2;

    default:
        return 0;
    }
}


static int
pb_journal_by_id(const void *a, const void *b)
{
    int                        rc;
    size_t                     len;
    const pb_journal_entry_t  *x, *y;

    x = *(const pb_journal_entry_t *const *) a;
    y = *(const pb_journal_entry_t *const *) b;

    /* a key may look like an id or a callback's name */
    if (pb_journal_kind(x) != pb_journal_kind(y)) {
        return pb_journal_kind(x) - pb_journal_kind(y);
    }

    len = x->id_len < y->id_len ? x->id_len : y->id_len;
    rc = len ? memcmp(x->id, y->id, len) : 0;

    if (rc == 0 && x->id_len != y->id_len) {
        rc = x->id_len < y->id_len ? -1 : 1;
    }

    if (rc == 0 && x->offset != y->offset) {
        rc = x->offset < y->offset ? -1 : 1;
    }

    return rc;
}


/* the same delivery's, key's or callback's */

static int
pb_journal_same_id(const pb_journal_entry_t *x, const pb_journal_entry_t *y)
{
    return pb_journal_kind(x) == pb_journal_kind(y)
           && x->id_len == y->id_len
           && (x->id_len == 0 || memcmp(x->id, y->id, x->id_len) == 0);
}


long
pb_journal_live(pb_journal_entry_t *e, size_t n, uint64_t history)
{
    long                 live;
    size_t               i, j, k, nfinished;
    pb_journal_entry_t  *first, *latest, *finished, **by_id, **ended;

    if (n == 0) {
        return 0;
    }

    /* one array: the list by id, then the finished deliveries */
    by_id = malloc(2 * n * sizeof(pb_journal_entry_t *));
    if (by_id == NULL) {
        return -1;
    }

    ended = by_id + n;
    nfinished = 0;

    for (i = 0; i < n; i++) {
        by_id[i] = &e[i];
    }

    qsort(by_id, n, sizeof(pb_journal_entry_t *), pb_journal_by_id);

    live = 0;

    /* each run of one id (or key), oldest first */
    for (i = 0; i < n; i = j) {
        finished = NULL;
        first = NULL;
        latest = NULL;

        for (j = i; j < n; j++) {
            if (j > i && !pb_journal_same_id(by_id[i], by_id[j])) {
                break;
            }

            if (pb_journal_kind(by_id[j]) != 0) {
                if (latest == NULL || by_id[j]->stamp >= latest->stamp) {
                    latest = by_id[j];
                }

            } else if (by_id[j]->type == PB_JOURNAL_FINISHED) {
                finished = by_id[j];

            } else if (first == NULL) {
                first = by_id[j];
            }
        }

        for (k = i; k < j; k++) {
            by_id[k]->live = 0;
            by_id[k]->history = 0;
            by_id[k]->finished = 0;
        }

        if (first && !finished) {
            first->live = 1;
            live++;

        } else if (first && finished->offset > first->offset) {
            first->finished = finished - e + 1;
            ended[nfinished++] = first;
        }

        if (latest && !latest->removed) {
            latest->live = 1;
            live++;
        }
    }

    pb_journal_history(e, ended, nfinished, history);

    free(by_id);

    return live;
}


static int
pb_journal_by_end(const void *a, const void *b)
{
    const pb_journal_entry_t  *x, *y;

    x = *(const pb_journal_entry_t *const *) a;
    y = *(const pb_journal_entry_t *const *) b;

    /* the last finished first */
    return (x->finished < y->finished) - (x->finished > y->finished);
}


/*
 * The history: the finished deliveries (created records of e, with their
 * finished records' places) whose two records fit in budget bytes, the
 * last finished first.
 */

static void
pb_journal_history(pb_journal_entry_t *e, pb_journal_entry_t **finished,
    size_t n, uint64_t budget)
{
    size_t               i;
    uint64_t             used, size;
    pb_journal_entry_t  *created, *end;

    qsort(finished, n, sizeof(pb_journal_entry_t *), pb_journal_by_end);

    used = 0;

    for (i = 0; i < n; i++) {
        created = finished[i];
        end = &e[created->finished - 1];
        size = (uint64_t) created->size + end->size;

        if (size > budget - used) {
            created->finished = 0;
            continue;
        }

        used += size;
        created->history = 1;
        end->history = 1;
    }
}
